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
from collections.abc import Callable, Sequence
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


def node_config(cfg: DictConfig, name: str, default: DictConfig, overrides: Sequence[str] = ()) -> DictConfig:
    """The run's `name` node (or `default`) with `name.KEY=VALUE` overrides applied."""
    base = cfg.get(name, default)
    for override in overrides:
        if not override.startswith(f"{name}.") or "=" not in override:
            raise ConfigError(override, override, f"overrides look like {name}.KEY=VALUE")
    dotlist = [override.removeprefix(f"{name}.") for override in overrides]
    return OmegaConf.merge(base, OmegaConf.from_dotlist(dotlist))


def attack_config(cfg: DictConfig, overrides: Sequence[str] = ()) -> DictConfig:
    """The run's `attack` node (or the default one) with `attack.KEY=VALUE` overrides applied."""
    return node_config(cfg, "attack", OmegaConf.load(DEFAULT_ATTACK), overrides)


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


def run_command(argv: Sequence[str] | None, module: str, description: str, run_dir_help: str,
                override_help: str, settings: Callable[[DictConfig, Sequence[str]], DictConfig],
                execute: Callable[[Path, DictConfig, DictConfig], None]) -> int:
    """`python -m MODULE RUN_DIR [OVERRIDES]`: read the run's config, derive and check the settings
    (a `ConfigError` or a missing file ends with one line and exit code 2), then execute."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("run_dir", type=Path, help=run_dir_help)
    parser.add_argument("overrides", nargs="*", help=override_help)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s][%(levelname)s] - %(message)s")
    try:
        cfg = run_config(args.run_dir)
        chosen = settings(cfg, args.overrides)
    except (ConfigError, FileNotFoundError) as error:
        log.error("%s", error)
        return 2
    execute(args.run_dir, cfg, chosen)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    def settings(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
        from fl_privacy.config import check_attack

        attack = attack_config(cfg, overrides)
        check_attack(attack)
        return attack

    def execute(run_dir: Path, cfg: DictConfig, attack: DictConfig) -> None:
        log.info("scores: %s", json.dumps(attack_run(run_dir, cfg, attack)["summary"]))

    return run_command(argv, "fl_privacy.attack", __doc__.splitlines()[0],
                       "a run directory of strategy=gradient_capture",
                       "attack.KEY=VALUE, e.g. attack.name=inverting", settings, execute)


if __name__ == "__main__":
    sys.exit(main())
