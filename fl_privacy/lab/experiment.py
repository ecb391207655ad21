"""One experiment, start to finish: the only code that holds both the truth and what attackers produce.

`run_experiment` dispatches on `kind`: `federated` builds the federation, runs the Flower simulation with
the lab's hooks and monitors, then the post-run pipelines (gradient inversion, membership audit,
representation inversion) each as attack step then scoring step; `par_gan` runs the in-process PAR-GAN
program. Every run ends with summary.json.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fl_privacy.config.schema import Settings
from fl_privacy.data.federation import Federation, build_federation
from fl_privacy.lab.preflight import check_before_run
from fl_privacy.lab.side_channels import RunHooks
from fl_privacy.lab.summary import final_metrics, privacy_summary, run_header
from fl_privacy.results import METRICS, SUMMARY, MetricsLog, write_json

log = logging.getLogger("fl_privacy")

def run_experiment(settings: Settings, run_dir: Path) -> dict:
    """Run one validated experiment and write its files into `run_dir`; returns the summary."""
    run_dir = Path(run_dir)
    if settings.kind == "par_gan":  # in-process GAN training, no Flower simulation (README: PAR-GAN)
        from fl_privacy.lab.par_gan_experiment import run_par_gan

        return run_par_gan(settings, run_dir)
    from fl_privacy.lab.simulation import simulate
    from fl_privacy.progress import round_progress

    started = time.monotonic()
    federation = build_federation(settings)
    check_before_run(settings, federation)
    hooks, recorder, finishers = prepare_run(settings, federation, run_dir)
    with round_progress(settings.strategy.num_rounds) as bar:
        recorder.bar = bar
        simulate(settings, federation, run_dir, hooks, recorder)
    return finish_run(settings, run_dir, recorder.metrics_log.records, finishers, started)


def prepare_run(settings: Settings, federation: Federation, run_dir: Path):
    """The lab's hooks into the clients, its round recorder (with the GAN monitor when an adversary
    runs), and what each monitor adds to the summary at the end."""
    from fl_privacy.lab.gan_monitoring import gan_monitor
    from fl_privacy.lab.rounds import RoundRecorder

    log.info("data %s: %d train (%d warm-up, clients %s), %d test", settings.data.name,
             len(federation.splits.train), len(federation.warmup_indices),
             [len(p) for p in federation.client_indices], len(federation.splits.test))
    hooks = RunHooks.for_run(settings, run_dir)
    monitors, finishers = {}, {}
    if (monitor := gan_monitor(settings, federation, run_dir, hooks)) is not None:
        monitors["gan_attack"], finishers["gan_attack"] = monitor, monitor.finish
    recorder = RoundRecorder(MetricsLog(run_dir / METRICS), monitors, settings.strategy.num_rounds)
    return hooks, recorder, finishers


def finish_run(settings: Settings, run_dir: Path, records: list[dict], finishers: dict, started: float
               ) -> dict:
    """After the rounds: summary.json, then each configured post-run pipeline, then the accuracy figure."""
    from fl_privacy.lab.pipelines import run_after_run_pipelines
    from fl_privacy.report.figures import plot_accuracy

    summary = {**run_header(settings), "metrics": final_metrics(records),
               "privacy": privacy_summary(settings, records),
               "attacks": {name: finish() for name, finish in finishers.items()},
               "wall_seconds": time.monotonic() - started}
    write_json(run_dir / SUMMARY, summary)
    for name, result in run_after_run_pipelines(settings, run_dir):
        summary[name] = result
        write_json(run_dir / SUMMARY, summary)
    plot_accuracy(records, run_dir / "accuracy.png",
                  f"{settings.data.name}, {settings.partition.name}, "
                  f"{settings.simulation.num_clients} clients")
    log.info("wrote %s", run_dir)
    return summary
