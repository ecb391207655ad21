"""Gradient inversion of a run's captured updates, then scoring: two steps on two sides of the threat model.

1. `reconstruct_captures` is the honest-but-curious server: it reads only `captures/` (what the server saw)
   and the model settings, runs `attack.gradient_inversion` on each `CapturedUpdate` and writes
   `attack/reconstructions/` (into a staging folder, swapped in only when every capture succeeded);
2. `score_reconstructions` is the lab: it loads the truth the clients' hook recorded under `truth/`, scores
   every reconstruction and writes `attack/scores.json` and truth | reconstruction grids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from fl_privacy.attacks.gradient_inversion import InvertingConfig, Reconstruction
from fl_privacy.attacks.inverting_engine import invert_many
from fl_privacy.attacks.registry import attack_options, run_attack
from fl_privacy.attacks.views import CapturedUpdate
from fl_privacy.config.schema import Settings
from fl_privacy.data.datasets import load_splits
from fl_privacy.data.images import DataSplits
from fl_privacy.devices import torch_device
from fl_privacy.evaluation.comparison_pool import whole_data_set
from fl_privacy.evaluation.identification import identification_scores
from fl_privacy.evaluation.inversion_scores import score_capture, summarise
from fl_privacy.evaluation.reconstruction import save_comparison_grid
from fl_privacy.evaluation.success_rates import Cell, baseline_scores, best_candidate_psnr
from fl_privacy.lab.channels.side_channels import truth_indices
from fl_privacy.lab.runtime.torch_threads import restores_torch_threads
from fl_privacy.models import build_model
from fl_privacy.progress import in_terminal, progress
from fl_privacy.results import RunFileError, load_tensors, save_torch, staged_folder, write_json
from fl_privacy.run_layout import (
    ATTACK_GRID,
    ATTACK_GRIDS,
    ATTACK_SCORES,
    CAPTURES,
    RECONSTRUCTIONS,
    round_files,
)

log = logging.getLogger(__name__)

GRID_IMAGES = 16


def load_capture(path: Path) -> tuple[CapturedUpdate, dict]:
    """A capture file as the server attacker's view and the metadata the server saw."""
    record = load_tensors(path)
    try:
        meta = record["metadata"]
        view = CapturedUpdate(
            record["global_state"], tuple(meta["input_shape"]), batch_size=int(meta["batch_size"]),
            num_examples=int(meta["num_examples"]), gradient=record.get("gradient"),
            updated_state=record.get("updated_state"), lr=meta["lr"], local_steps=meta["local_steps"])
    except (KeyError, TypeError, ValueError) as error:
        raise RunFileError(f"{path} is not a capture written by strategy=gradient_capture ({error})"
                           ) from None
    return view, meta


def reconstruct_captures(run_dir: Path, settings: Settings) -> list[Path]:
    """Run `attack.gradient_inversion` on every capture under `run_dir/captures`; returns the files
    written."""
    run_dir, attack = Path(run_dir), settings.attack.gradient_inversion
    captures = round_files(run_dir, CAPTURES, ".pt")[:attack.max_captures]
    if attack.max_images_per_round is not None:
        captures = per_round_budget(captures, attack.max_images_per_round)
    if not captures:
        raise RunFileError(f"no captures under {run_dir / CAPTURES} "
                           "(run the experiment with strategy=gradient_capture)")
    options = attack_options(attack, progress=in_terminal())
    out = run_dir / RECONSTRUCTIONS
    written = []
    results = (_batched(captures, settings, options) if chosen_engine(settings) == "batched"
               else _one_at_a_time(captures, settings, options))
    with staged_folder(out) as staging:
        for number, (path, view, meta, result, seconds) in enumerate(results, start=1):
            relative = path.relative_to(run_dir / CAPTURES)
            record: dict[str, object] = {"images": result.images, "labels": result.labels,
                                         "loss": result.loss, "seconds": seconds, "attack": attack.name,
                                         "metadata": meta, "iterations_run": list(result.iterations_run),
                                         "tv_weight": result.tv_weight}
            if attack.name == "best":  # every candidate, for the evaluation's labelled upper bound only
                record |= {"candidates": list(result.candidates),
                           "candidate_losses": list(result.restart_losses)}
            save_torch(staging / relative, record)
            written.append(out / relative)
            log.info("%s %d/%d: round %d partition %d, %d inputs, matching loss %.3g, %.1f s",
                     attack.name, number, len(captures), meta["round"], meta["partition"], view.num_inputs,
                     result.loss, seconds)
    return written


def chosen_engine(settings: Settings) -> str:
    """`attack.gradient_inversion.engine` with `auto` resolved: the batched engine on a CUDA device (for
    name=inverting with bound=clamp, the problems it takes), else the one-capture loop: on one CPU core the
    batched engine runs at 0.66-0.79x the loop's rate (benchmarks/inversion_engine.py,
    docs/gradient_inversion.md §7)."""
    attack = settings.attack.gradient_inversion
    if attack.engine != "auto":
        return attack.engine
    batchable = attack.name == "inverting" and attack.bound == "clamp"
    return "batched" if batchable and torch_device(settings.device).type == "cuda" else "loop"


Attacked = tuple[Path, CapturedUpdate, dict, Reconstruction, float]  # capture, view, meta, result, seconds


def _one_at_a_time(captures: list[Path], settings: Settings, options: Any) -> Iterator[Attacked]:
    attack = settings.attack.gradient_inversion
    for path in progress(captures, f"{attack.name} on captures", "capture"):
        view, meta = load_capture(path)
        model = build_model(settings.model, meta["input_shape"], meta["num_classes"])
        started = time.perf_counter()
        result = run_attack(attack.name, model, view, options)
        yield path, view, meta, result, time.perf_counter() - started


def _batched(captures: list[Path], settings: Settings, options: Any) -> Iterator[Attacked]:
    """Every round's captures as one batched problem on `settings.device` (engine=batched); a capture's
    seconds are its round's share."""
    assert isinstance(options, InvertingConfig)  # engine=batched is checked to mean name=inverting
    rounds: dict[str, list[Path]] = {}
    for path in captures:
        rounds.setdefault(path.parent.name, []).append(path)
    for paths in progress(list(rounds.values()), "batched Inverting Gradients on rounds", "round"):
        loaded = [load_capture(path) for path in paths]
        meta = loaded[0][1]
        model = build_model(settings.model, meta["input_shape"], meta["num_classes"])
        started = time.perf_counter()
        with torch.random.fork_rng():
            results = invert_many(model, [view for view, _ in loaded], options, torch_device(settings.device))
        seconds = (time.perf_counter() - started) / len(paths)
        for path, (view, meta), result in zip(paths, loaded, results, strict=True):
            yield path, view, meta, result, seconds


def per_round_budget(captures: list[Path], images: int) -> list[Path]:
    """The first captures of each round (in partition order) until they hold at least `images` images
    (the server reads the example count each capture announced)."""
    kept, held = [], dict[str, int]()
    for path in captures:
        round_dir = path.parent.name
        if held.get(round_dir, 0) < images:
            kept.append(path)
            held[round_dir] = held.get(round_dir, 0) + load_capture(path)[0].num_inputs
    return kept


def score_reconstructions(run_dir: Path, settings: Settings) -> dict:
    """Score every reconstruction of `run_dir` against the truth; writes and returns `attack/scores.json`."""
    run_dir = Path(run_dir)
    splits = load_splits(settings.data, settings.seed)
    with staged_folder(run_dir / ATTACK_GRIDS) as grids:
        return _score_into(run_dir, splits, grids)


def _score_into(run_dir: Path, splits: DataSplits, grids: Path) -> dict:
    captures, truth_images, reconstructed, batches = [], [], [], []
    # every image's scores and its baselines' (drawn from the test split, never the truth), per round
    cells: dict[int, Cell] = {}
    for path in round_files(run_dir, RECONSTRUCTIONS, ".pt"):
        reconstruction = load_tensors(path)
        meta = reconstruction["metadata"]
        truth = splits.train.subset(truth_indices(run_dir, meta))
        scores = score_capture(reconstruction, truth, splits.num_classes)
        captures.append(scores)
        if reconstruction["images"] is not None:
            aligned = reconstruction["images"][torch.tensor(scores["order"])]
            save_comparison_grid(truth.images, aligned, grids / f"{path.parent.name}_{path.stem}.png")
            truth_images.append(truth.images)
            reconstructed.append(aligned)
            batches.append((meta["round"], reconstruction["images"], reconstruction["labels"], truth))
            cells.setdefault(meta["round"], Cell()).add(
                scores, baseline_scores(truth, splits.test, seed=len(captures)),
                best_candidate_psnr(reconstruction.get("candidates"), truth.images))
    if not captures:
        raise RunFileError(f"no reconstructions under {run_dir / RECONSTRUCTIONS}")
    if truth_images:
        save_comparison_grid(torch.cat(truth_images)[:GRID_IMAGES], torch.cat(reconstructed)[:GRID_IMAGES],
                             run_dir / ATTACK_GRID)
    result = {"summary": summarise(captures), "captures": captures}
    if truth_images:
        result["rates"] = sum(cells.values(), Cell()).rates()
        result["rates_by_round"] = {str(number): cell.rates() for number, cell in sorted(cells.items())}
        # comparison pool: every image of the data set outside each batch (the test split alone is too small)
        result |= identification_scores(batches, whole_data_set(splits))
        result["timing"] = {"seconds_per_image": sum(c["seconds"] for c in captures)
                            / sum(c["num_inputs"] for c in captures), "images": len(torch.cat(truth_images))}
    write_json(run_dir / ATTACK_SCORES, result)
    log.info("attack scores: %s", result["summary"])
    return result


@restores_torch_threads
def invert_and_score(run_dir: Path, settings: Settings) -> dict:
    """Both steps; returns the scores' summary."""
    torch.set_num_threads(settings.attack.gradient_inversion.torch_threads)
    reconstruct_captures(run_dir, settings)
    return score_reconstructions(run_dir, settings)["summary"]
