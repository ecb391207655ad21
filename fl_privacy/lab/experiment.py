"""One experiment, start to finish: the only code that holds both the truth and what attackers produce.

`run_experiment` is the one run sequence (`python -m fl_privacy.run` and `flwr run` both use it; they differ
only in how the rounds run). `kind=federated` builds the federation, runs the rounds with the lab's hooks,
monitors and checkpoints, then the post-run pipelines (each an attack step then a scoring step);
`kind=par_gan` runs the in-process PAR-GAN program. Every run ends with summary.json.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fl_privacy.config.schema import Settings
from fl_privacy.data.federation import Federation, build_federation
from fl_privacy.lab.channels.rounds import RoundRecorder
from fl_privacy.lab.channels.side_channels import RunHooks
from fl_privacy.lab.channels.tracking import Tracker
from fl_privacy.lab.checkpoints import Checkpoint, Checkpointer, load_checkpoint
from fl_privacy.lab.preflight import check_before_run
from fl_privacy.lab.run_dir import check_run_dir, clear_earlier_run
from fl_privacy.lab.summary import (
    SummaryFile,
    divergence_round,
    failure_summary,
    final_metrics,
    privacy_summary,
    recorded_status,
)
from fl_privacy.progress import round_progress
from fl_privacy.results import MetricsLog
from fl_privacy.run_layout import ACCURACY_FIGURE, METRICS

log = logging.getLogger("fl_privacy")

@dataclass(frozen=True)
class RoundsJob:
    """What running the rounds needs: the settings, the data, where the files go, the lab's hooks into the
    clients, its round recorder and checkpointer, and the checkpoint a resumed run continues from."""

    settings: Settings
    federation: Federation
    run_dir: Path
    hooks: RunHooks
    recorder: RoundRecorder
    checkpoints: Checkpointer
    resume: Checkpoint | None


def simulate_rounds(job: RoundsJob) -> None:
    """The rounds in Flower's simulation engine on Ray, in this process (`python -m fl_privacy.run`)."""
    from fl_privacy.lab.runtime.simulation import simulate

    simulate(job.settings, job.federation, job.run_dir, job.hooks, job.recorder, job.checkpoints, job.resume)


def run_experiment(settings: Settings, run_dir: Path,
                   run_rounds: Callable[[RoundsJob], None] = simulate_rounds, dir_key: str = "hydra.run.dir"
                   ) -> dict:
    """The one run sequence, for `python -m fl_privacy.run` and `flwr run` alike: check the run directory,
    build the data and check it against the settings, then, recording the status in summary.json, run the
    rounds (`run_rounds`: in-process simulation, or the ServerApp's grid under `flwr run`) with the lab's
    hooks, monitors and checkpoints, then the post-run pipelines. Returns the summary.

    An earlier run in `run_dir` is refused unless `resume=true` (continue it from its checkpoint) or
    `overwrite=true` (replace it); summary.json says `running` until the run completes, fails or is
    interrupted."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir, settings, dir_key)
    if settings.kind == "par_gan":  # in-process GAN training, no Flower simulation (docs/attacks.md: PAR-GAN)
        from fl_privacy.lab.pipelines.par_gan_experiment import par_gan_data, run_par_gan

        splits = par_gan_data(settings)  # the data and the checks that need it, before anything is written
        with _fresh_summary(run_dir, settings) as summary:
            run_par_gan(settings, splits, run_dir, summary)
        return summary.content
    federation = build_federation(settings.federation)
    check_before_run(settings, federation)
    with _fresh_summary(run_dir, settings) as summary:
        started = time.monotonic()
        resume = load_checkpoint(run_dir) if settings.resume else None
        hooks, recorder, finishers = prepare_run(settings, federation, run_dir, resume)
        checkpoints = Checkpointer(run_dir, settings.checkpoint_every, recorder.monitors_state)
        with round_progress(settings.strategy.num_rounds) as bar:
            recorder.bar = bar
            run_rounds(RoundsJob(settings, federation, run_dir, hooks, recorder, checkpoints, resume))
        finish_run(settings, run_dir, summary, recorder.metrics_log.records, finishers, started,
                   recorder.tracker)
    return summary.content


@contextmanager
def _fresh_summary(run_dir: Path, settings: Settings) -> Iterator[SummaryFile]:
    if settings.overwrite:
        clear_earlier_run(run_dir)
    with recorded_status(run_dir, settings) as summary:
        yield summary


def prepare_run(settings: Settings, federation: Federation, run_dir: Path, resume: Checkpoint | None = None):
    """The lab's hooks into the clients, its round recorder (with the GAN monitor when an adversary
    runs), and what each monitor adds to the summary at the end; a resumed run's recorder starts from
    the checkpoint (its metrics.jsonl lines and monitors' state up to that round)."""
    from fl_privacy.lab.channels.gan_monitoring import gan_monitor
    from fl_privacy.lab.channels.tracking import open_tracker

    log.info("data %s: %d train (%d warm-up, clients %s), %d test", settings.data.name,
             len(federation.splits.train), len(federation.warmup_indices),
             [len(p) for p in federation.client_indices], len(federation.splits.test))
    hooks = RunHooks.for_run(settings, run_dir)
    monitors, finishers = {}, {}
    if (monitor := gan_monitor(settings, federation, run_dir, hooks)) is not None:
        monitors["gan_attack"], finishers["gan_attack"] = monitor, monitor.finish
    metrics_log = MetricsLog(run_dir / METRICS, keep_through=resume.round if resume is not None else None)
    recorder = RoundRecorder(metrics_log, monitors, settings.strategy.num_rounds,
                             open_tracker(settings, run_dir))
    if resume is not None:
        recorder.load_monitors_state(resume.monitors)
    return hooks, recorder, finishers


def finish_run(settings: Settings, run_dir: Path, summary: SummaryFile, records: list[dict], finishers: dict,
               started: float, tracker: Tracker | None = None) -> None:
    """After the rounds: the summary's sections, then each configured post-run pipeline, then the accuracy
    figure (and the tracker's last images)."""
    from fl_privacy.figures import plot_accuracy
    from fl_privacy.lab.pipelines import run_after_run_pipelines

    if (diverged := divergence_round(records)) is not None:
        log.warning("the federation diverged: central loss not finite from round %d on; the rounds after it "
                    "measure nothing", diverged)
    summary.update(metrics=final_metrics(records), privacy=privacy_summary(settings, records),
                   failures=failure_summary(records), diverged_at_round=diverged,
                   attacks={name: finish() for name, finish in finishers.items()},
                   wall_seconds=time.monotonic() - started)
    for name, result in run_after_run_pipelines(settings, run_dir):
        summary.update(**{name: result})
    plot_accuracy(records, run_dir / ACCURACY_FIGURE,
                  f"{settings.data.name}, {settings.partition.name}, "
                  f"{settings.simulation.num_clients} clients")
    if tracker is not None:
        tracker.finish()
    log.info("wrote %s", run_dir)
