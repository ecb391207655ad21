"""`python -m fl_privacy.attack RUN_DIR [attack.KEY=VALUE ...]`: attack a run's captured updates, then score.

Two separate steps, on two sides of the threat model:
1. `reconstruct_captures` is the honest-but-curious server: it reads only `captures/` (what the server saw)
   and the run's model config, runs the configured attack and writes `attack/reconstructions/`.
2. `fl_privacy.evaluation.captures.evaluate_run` is the lab: it loads the ground truth the clients recorded
   under `truth/` and writes `attack/scores.json` and truth | reconstruction grids.
The attack settings come from the run's `attack` config (or `conf/attack/gradient_inversion.yaml`), with
`attack.KEY=VALUE` overrides on the command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from fl_privacy.attacks.dispatch import attack_settings, run_attack
from fl_privacy.errors import ConfigError
from fl_privacy.models import build_model
from fl_privacy.progress import in_terminal, progress
from fl_privacy.results import CAPTURES, RECONSTRUCTIONS, round_file, save_torch
from strategies.gradient_capture import load_capture

log = logging.getLogger("fl_privacy.attack")

DEFAULT_ATTACK = Path(__file__).resolve().parents[1] / "conf" / "attack" / "gradient_inversion.yaml"


def run_config(run_dir: Path) -> DictConfig:
    """The resolved config a run recorded in its summary.json."""
    summary = Path(run_dir) / "summary.json"
    if not summary.exists():
        raise FileNotFoundError(f"{summary} not found: RUN_DIR must be a finished fl_privacy.run directory")
    return OmegaConf.create(json.loads(summary.read_text())["config"])


def attack_config(cfg: DictConfig, overrides: Sequence[str] = ()) -> DictConfig:
    """The run's `attack` node (or the default one) with `attack.KEY=VALUE` overrides applied."""
    base = cfg.attack if "attack" in cfg else OmegaConf.load(DEFAULT_ATTACK)
    for override in overrides:
        if not override.startswith("attack.") or "=" not in override:
            raise ConfigError(override, override, "overrides look like attack.KEY=VALUE")
    dotlist = [override.removeprefix("attack.") for override in overrides]
    return OmegaConf.merge(base, OmegaConf.from_dotlist(dotlist))


def reconstruct_captures(run_dir: Path, model_cfg: DictConfig, attack: DictConfig) -> list[Path]:
    """Run `attack.name` on every capture under `run_dir/captures`; returns the reconstruction files."""
    run_dir = Path(run_dir)
    captures = sorted((run_dir / CAPTURES).glob("round_*/partition_*.pt"))
    if attack.max_captures is not None:
        captures = captures[:attack.max_captures]
    if not captures:
        raise FileNotFoundError(f"no captures under {run_dir / CAPTURES} "
                                "(run the experiment with strategy=gradient_capture)")
    settings = attack_settings(attack.name, attack, progress=in_terminal())
    shutil.rmtree(run_dir / RECONSTRUCTIONS, ignore_errors=True)  # a previous attack's results
    written = []
    for number, path in enumerate(progress(captures, f"{attack.name} on captures", "capture"), start=1):
        payload, meta = load_capture(path)
        model = build_model(model_cfg, meta["input_shape"], meta["num_classes"])
        started = time.perf_counter()
        result = run_attack(attack.name, model, payload, settings)
        seconds = time.perf_counter() - started
        target = round_file(run_dir, RECONSTRUCTIONS, meta["round"], meta["partition"], ".pt")
        save_torch(target, {"images": result.images, "labels": result.labels, "loss": result.loss,
                            "seconds": seconds, "attack": attack.name, "metadata": meta})
        written.append(target)
        log.info("%s %d/%d: round %d partition %d, %d inputs, matching loss %.3g, %.1f s", attack.name,
                 number, len(captures), meta["round"], meta["partition"], payload.num_inputs, result.loss,
                 seconds)
    return written


def attack_run(run_dir: Path, cfg: DictConfig, attack: DictConfig) -> dict:
    """Both steps: reconstruct from the captures, then (separately) score against the truth."""
    from fl_privacy.evaluation.captures import evaluate_run

    torch.set_num_threads(int(attack.torch_threads))
    reconstruct_captures(run_dir, cfg.model, attack)
    return evaluate_run(run_dir, cfg.data, int(cfg.seed))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fl_privacy.attack", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory of strategy=gradient_capture")
    parser.add_argument("overrides", nargs="*", help="attack.KEY=VALUE, e.g. attack.name=inverting")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s][%(levelname)s] - %(message)s")
    from fl_privacy.config import check_attack

    try:
        cfg = run_config(args.run_dir)
        attack = attack_config(cfg, args.overrides)
        check_attack(attack)
    except (ConfigError, FileNotFoundError) as error:
        log.error("%s", error)
        return 2
    summary = attack_run(args.run_dir, cfg, attack)["summary"]
    log.info("scores: %s", json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
