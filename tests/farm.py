"""The test suite's tiny simulations, run once per session in one process on one Ray.

Each named simulation is the override list of a `python -m fl_privacy.run` command. The session runs the
ones its collected tests ask for (`@pytest.mark.farm("name", ...)`, see conftest.py) through the real entry
point (Hydra, validation, run.log, exit codes), one after another in one background subprocess, started
before the first test, that keeps Ray and the client actors from one run to the next as a multirun does.
Every network request any of its processes attempts is logged to `ROOT/urls.log` and refused
(tests/intercept/sitecustomize.py). Usage as a script:

    python tests/farm.py ROOT NAME [NAME ...]   # ROOT/NAME/ is each run's directory, ROOT/NAME.exit its code
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
INTERCEPT = TESTS / "intercept"

# A tiny federation: 4 Dirichlet clients, 2 rounds, half of them sampled per round.
TINY = ["simulation.num_clients=4", "strategy.num_rounds=2", "partition=dirichlet",
        "partition.alpha=1.0", "strategy.fraction_train=0.5", "strategy.fraction_evaluate=0.5",
        "strategy.warmup.epochs=1", "client.local_epochs=1"]
# FedAvg clients whose captured rounds are FedAvg (`capture_fedavg`) or FedSGD probes (`capture_fedsgd`)
CAPTURE = ["strategy=gradient_capture", "model=lenet", "simulation.num_clients=3", "strategy.num_rounds=2",
           "strategy.warmup.epochs=0", "strategy.capture.rounds=[1,2]", "partition=iid",
           "client.examples_per_round=4", "client.batch_size=2", "client.lr=0.05", "client.local_epochs=1",
           "client.update_mode=fedavg", "attack.gradient_inversion.name=labels",
           "attack.gradient_inversion.after_run=true", "save_model=false"]
# DP clients with a checkpoint every round (tests/test_run_resume.py stops and resumes the same run)
DP_RUN = ["client.role=dp", "model.norm=group", "strategy.num_rounds=4", "checkpoint_every=1"]
# Short versions of the headline experiments (tests/test_regression.py pins their numbers)
SHORT_RUNS = {
    "fedavg": ["+experiment=fedavg_noniid", "strategy.num_rounds=2", "strategy.warmup.epochs=1"],
    # the unclipped clients the golden file was made with (the preset has clipped them since)
    "gan": ["+experiment=gan_attack", "client.max_grad_norm=null", "strategy.num_rounds=3",
            "strategy.warmup.epochs=1",
            "attack.gan.start_round=2", "attack.gan.start_accuracy=null", "attack.gan.generator_steps=5",
            "attack.gan.num_fakes=32", "evaluation.oracle.epochs=1",
            "evaluation.oracle.samples_per_round=64", "evaluation.oracle.cache_dir={root}/oracle",
            # the per-seed oracle the golden file was made with (the monitor uses the shared judge since)
            "evaluation.oracle.monitor_judge=false"],
    "dlg": ["+experiment=dlg", "simulation.num_clients=2", "attack.gradient_inversion.iterations=20"],
    "mia": ["+experiment=mia", "strategy.num_rounds=2", "strategy.capture.rounds=[2]",
            "strategy.warmup.epochs=1",
            # the attacks the golden file was made with (RMIA joined the default list later)
            "attack.membership.attacks=[loss,confidence,entropy,modified_entropy,shadow,lira_offline,lira_online]",
            "attack.membership.num_shadow=2", "attack.membership.num_reference=2",
            "attack.membership.training.epochs=1"],
}

SIMULATIONS: dict[str, list[str]] = {
    "capture_fedavg": [*CAPTURE, "strategy.capture.update_mode=fedavg"],
    "capture_fedsgd": [*CAPTURE, "strategy.capture.update_mode=fedsgd"],
    # every defense at once: DP clients 0 and 1, pruning, suppress-privacy, central DP, and a capturing
    # server that sees only the secure aggregate
    "defended": [
        "strategy=gradient_capture", "simulation.num_clients=3", "strategy.num_rounds=2", "partition=iid",
        "strategy.warmup.epochs=1", "client.examples_per_round=48", "client.batch_size=16",
        "+client.roles={0:dp,1:dp}", "defense.dp.noise_decay.schedule=exp",
        "defense.dp.noise_decay.rate=0.01", "defense.pruning.fraction=0.3", "defense.suppress.enabled=true",
        "defense.suppress.start_round=1", "defense.suppress.rounds=1", "defense.central_dp.enabled=true",
        "defense.central_dp.noise_multiplier=0.5", "defense.central_dp.clipping_norm=5",
        "defense.secure_aggregation=true", "strategy.capture.rounds=[2]"],
    # ~1900 records per client: σ = 1.5 at q ≈ 1/30 spends ε ≈ 0.8, 1.0, 1.2 after rounds 1, 2, 3, so the
    # budget 1.1 stops round 3
    "dp_audit_budget": [
        "+experiment=dp_audit", "strategy.num_rounds=3", "client.local_epochs=1", "data.holdout_fraction=0",
        "data.canaries.count=100", "attack.dp_audit.guesses=[10,25]", "defense.dp.target_epsilon=null",
        "defense.dp.noise_multiplier=1.5", "defense.dp.max_epsilon=1.1", "strategy.warmup.epochs=1"],
    "gan_tiny": [
        "+experiment=gan_attack", "simulation.num_clients=3", "strategy.num_rounds=3",
        "attack.gan.victim_class=1", "attack.gan.start_round=2", "attack.gan.start_accuracy=null",
        "attack.gan.generator_steps=3", "attack.gan.num_fakes=32", "strategy.warmup.epochs=1",
        "evaluation.oracle.epochs=1", "evaluation.oracle.components=8",
        "evaluation.oracle.samples_per_round=64", "evaluation.oracle.cache_dir={root}/oracle"],
    "mia_tiny": [
        "+experiment=mia", "simulation.num_clients=3", "strategy.num_rounds=2", "strategy.warmup.epochs=1",
        "attack.membership.num_shadow=2", "attack.membership.num_reference=2",
        "attack.membership.training.epochs=1", "attack.membership.training.batch_size=128",
        "attack.membership.bootstrap=50", "strategy.capture.rounds=[1,2]",
        "attack.membership.update_attack.after_run=true", "attack.membership.update_attack.non_members=120"],
    "dp_uninterrupted": [*TINY, *DP_RUN],
    **{f"short_{name}": overrides for name, overrides in SHORT_RUNS.items()},
}


def run_dir(root: Path, name: str) -> Path:
    return root / name


def exit_file(root: Path, name: str) -> Path:
    return root / f"{name}.exit"


def done_file(root: Path) -> Path:
    return root / "farm.done"


def start_farm(root: Path, names: list[str]) -> subprocess.Popen:
    """Start the simulations `names` into `root` in the background (one subprocess, network intercepted);
    `done_file(root)` appears when it ends, however it ends."""
    environment = {**os.environ, "PYTHONPATH": str(INTERCEPT), "FLP_URL_LOG": str(root / "urls.log")}
    with (root / "farm.log").open("w") as log:
        # the shell marks the end even when the farm process dies without a word
        return subprocess.Popen(["sh", "-c", '"$@"; touch "$0"', str(done_file(root)), sys.executable,
                                 str(Path(__file__)), str(root), *names], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, env=environment)


def main(root: Path, names: list[str]) -> None:
    """Each simulation through the entry point's Hydra main, on the Ray the previous one left."""
    from fl_privacy.lab.runtime import ray_runtime
    from fl_privacy.run import main as lab_main

    ray_runtime.begin_sweep()
    try:
        for name in names:
            overrides = [override.replace("{root}", str(root)) for override in SIMULATIONS[name]]
            sys.argv = ["fl_privacy.run", *overrides, f"hydra.run.dir={run_dir(root, name)}"]
            code: object = 0
            try:
                lab_main()
            except SystemExit as exit_:
                code = exit_.code
            exit_file(root, name).write_text(str(code or 0))
    finally:
        ray_runtime.end_sweep()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
