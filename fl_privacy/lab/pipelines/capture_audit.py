"""`fl-privacy audit-captures DIR`: attack what `fl_privacy.capture` recorded of a user's own Flower app,
score it against each node's own data when the user hands it over, and write the risk report.

Two steps on two sides of the threat model, as in the lab's own pipelines:
1. the attacker (`attack_captures`) reads only `DIR/captures/` and the user's model factory: it detects each
   reply's update mode, builds the server's view with the assumed FedAvg recipe and inverts it;
2. the scorer (`score_findings`) reads `DIR/partitions/` (which node held which partition, recorded by the
   client mod) and calls the user's `--client-data` function per node, then scores each reconstruction
   against that node's own data, with the other nodes' data as the reference for identification.
With `--candidates MODULE:FUNC` the attacker also runs the update membership attacks on every capture
(`attack_membership`: which of the candidates did this node train on?), and the scorer scores them against
each node's own training images (`score_membership`: exact pixel match), beside a negative control.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fl_privacy.attacks.capture_inversion import (
    Budget,
    Recipe,
    UpdateMode,
    attack_name,
    build_view,
    detect_update_mode,
    invert_capture,
    num_classes_of,
    probe_input_shape,
    threat_model,
)
from fl_privacy.attacks.capture_membership import (
    capture_membership_scores,
    membership_threat_model,
    membership_view,
)
from fl_privacy.data.images import ImageDataset
from fl_privacy.errors import ConfigError
from fl_privacy.evaluation.node_membership import (
    attack_metrics,
    control_membership,
    exact_members,
    scorable,
)
from fl_privacy.evaluation.node_scores import pooled, score_against_node
from fl_privacy.evaluation.reconstruction import save_comparison_grid
from fl_privacy.progress import progress
from fl_privacy.results import RunFileError, load_tensors, read_json, save_image_grid, write_json
from fl_privacy.run_layout import (
    CAPTURES,
    NODE_PARTITIONS,
    RISK_MEMBERSHIP_SCORES,
    RISK_REPORT,
    node_capture_files,
    node_partition_file,
    risk_grid_file,
)

log = logging.getLogger(__name__)

PARTITION_KEYS = ("partition-id", "num-partitions")  # Flower's simulation node_config
IDENTIFICATION_RULE = (
    "after Hungarian matching on MSE to the node's own training images, nearer (MSE, pixels in [0, 1]) its "
    "matched image than every image of the same class the update did not use (the node's held-out sets and "
    "every other node's data); blank, uniform-noise (negative control), class-mean and label-only (a random "
    "image of each restored label from that pool, left out of its own comparison) baselines under the same "
    "matching and rule")


@dataclass(frozen=True)
class AuditOptions:
    """What `audit-captures` was asked: the attacker's assumptions, its budget, and how much to attack."""

    recipe: Recipe = Recipe()
    budget: Budget = Budget()
    mode: UpdateMode | None = None  # None: detect per reply
    input_shape: tuple[int, int, int] | None = None  # None: probe the architecture
    rounds: tuple[int, ...] | None = None
    max_images: int = 64  # larger updates are reported as not attacked (the optimisation would not fit)
    nodes: tuple[int, ...] | None = None
    bootstrap: int = 1000  # resamples for the membership AUC / TPR intervals


def load_callable(spec: str, flag: str) -> Callable[..., Any]:
    """`MODULE:NAME` imported (the current folder first on the path, as for `python -m`), or a one-line
    ConfigError naming `flag`."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ConfigError(flag, spec, "give MODULE:NAME, e.g. my_app.task:Net")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        target = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(flag, spec, f"cannot import it ({error})") from None
    if not callable(target):
        raise ConfigError(flag, spec, "is not callable")
    return target


def build_model(factory: Callable[[], nn.Module], spec: str, state: dict[str, torch.Tensor]) -> nn.Module:
    """The factory's model, checked to be the captured architecture (same parameter names and shapes)."""
    try:
        model = factory()
    except Exception as error:  # the user's code: any failure is theirs to fix, said in one line
        raise ConfigError("--model", spec, f"calling it failed ({type(error).__name__}: {error})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError("--model", spec, f"must return a torch.nn.Module, got {type(model).__name__}")
    own = model.state_dict()
    missing = sorted(set(state) - set(own))
    extra = sorted(set(own) - set(state))
    wrong = [f"{n} {tuple(own[n].shape)} vs captured {tuple(state[n].shape)}" for n in own
             if n in state and tuple(own[n].shape) != tuple(state[n].shape)]
    if missing or extra or wrong:
        details = "; ".join(part for part in (
            f"captured but not built: {', '.join(missing[:3])}" if missing else "",
            f"built but not captured: {', '.join(extra[:3])}" if extra else "",
            f"shape differs: {', '.join(wrong[:3])}" if wrong else "") if part)
        raise ConfigError("--model", spec, f"does not build the captured architecture ({details})")
    return model


def _capture_files(root: Path, options: AuditOptions) -> list[Path]:
    files = node_capture_files(root)
    if not files:
        raise RunFileError(f"no captures under {Path(root) / CAPTURES} (wrap your strategy with "
                           "fl_privacy.capture.capture_updates(strategy, DIR))")
    kept = []
    for path in files:
        server_round, node = int(path.parent.name.split("_")[1]), int(path.stem.split("_")[1])
        if (options.rounds is None or server_round in options.rounds) and \
                (options.nodes is None or node in options.nodes):
            kept.append(path)
    return kept


@dataclass
class Attacker:
    """What the attacker holds before it starts: the captures, the user's model factory and the model it
    built (checked against the capture), the input shape, and the setup the report states."""

    files: list[Path]
    factory: Callable[[], nn.Module]
    model: nn.Module
    shape: tuple[int, int, int]
    names: list[str]
    setup: dict


def prepare_attacker(root: Path, model_spec: str, options: AuditOptions) -> Attacker:
    """Load the factory, check it builds the captured architecture, settle the input shape."""
    files = _capture_files(root, options)
    factory = load_callable(model_spec, "--model")
    first = load_tensors(files[0])
    model = build_model(factory, model_spec, first["global_state"])
    model.load_state_dict(first["global_state"])
    num_classes = num_classes_of(model, first["global_state"])
    shape = options.input_shape or probe_input_shape(model, num_classes)
    if shape is None:
        raise ConfigError("--input-shape", None, f"the model takes none of the usual image shapes; give "
                          f"C,H,W of its input ({num_classes} classes)")
    names = [name for name, _ in model.named_parameters()]
    setup = {"model": model_spec, "input_shape": list(shape),
             "input_shape_source": "--input-shape" if options.input_shape else "probed from the architecture",
             "num_classes": num_classes, "recipe": asdict(options.recipe),
             "recipe_note": "the FedAvg client training the attacker assumes (it cannot see it); "
                            "FedSGD needs none",
             "attack": attack_name(options.budget), "budget": asdict(options.budget)}
    return Attacker(files, factory, model, shape, names, setup)


def attack_captures(root: Path, attacker: Attacker, model_spec: str, options: AuditOptions) -> list[dict]:
    """The attacker: every capture under `root` inverted (or the reason it was not)."""
    factory, model, names, shape = attacker.factory, attacker.model, attacker.names, attacker.shape
    findings = []
    for path in progress(attacker.files, "inverting captures", "capture"):
        record = load_tensors(path)
        meta = record.get("metadata", {})
        try:
            global_state, returned = record["global_state"], record["updated_state"]
        except (KeyError, TypeError):
            raise RunFileError(f"{path} is not a capture written by fl_privacy.capture") from None
        build_model(factory, model_spec, global_state)  # every capture has the same architecture
        lacking = [name for name in names if name not in returned]
        if lacking:
            raise RunFileError(f"{path}: the node returned no {lacking[0]} (the arrays it returned are not "
                               "the model's parameters)")
        finding: dict[str, Any] = {"round": meta.get("round"), "node_id": meta.get("node_id"),
                                   "num_examples": meta.get("num_examples"),
                                   "capture": str(path.relative_to(root))}
        evidence = detect_update_mode(global_state, returned, names, options.mode)
        finding["update_mode"] = asdict(evidence)
        count = meta.get("num_examples")
        if not count:
            finding["not_attacked"] = (f"the reply carries no '{meta.get('num_examples_key')}' metric: the "
                                       "server does not know how many examples to reconstruct")
            findings.append(finding)
            continue
        view = build_view(global_state, returned, int(count), shape, evidence.mode, options.recipe)
        finding["threat_model"] = threat_model(evidence.mode, view.batch_size,
                                               options.recipe if evidence.mode == "fedavg" else None)
        if view.num_inputs > options.max_images:
            finding["not_attacked"] = (f"{view.num_inputs} examples behind this update exceed --max-images "
                                       f"{options.max_images}: the joint optimisation of that many images is "
                                       "beyond this attack's budget (not evidence of safety)")
            findings.append(finding)
            continue
        model.load_state_dict(global_state)
        started = time.perf_counter()
        try:
            result = invert_capture(model, view, options.budget)
        except ValueError as error:  # e.g. no dense head with a bias for label restoration
            finding["not_attacked"] = f"the attack does not apply: {error}"
            findings.append(finding)
            continue
        finding["attack"] = {"seconds": time.perf_counter() - started, "matching_loss": result.loss,
                             "restored_labels": result.labels.tolist(), "num_inputs": view.num_inputs}
        finding["_images"], finding["_labels"] = result.images, result.labels
        log.info("round %s node %s: %s, %d inputs, matching loss %.3g", finding["round"], finding["node_id"],
                 evidence.mode, view.num_inputs, result.loss)
        findings.append(finding)
    return findings


Examples = tuple[torch.Tensor, torch.Tensor]


def _as_tensors(data: Any, spec: str, flag: str = "--client-data") -> Examples:
    """Images (N, C, H, W) and labels (N,) from (images, labels) tensors, or a DataLoader or Dataset of
    (x, y) or {"img"/"image", "label"} items."""
    if isinstance(data, tuple | list) and len(data) == 2 and all(isinstance(d, torch.Tensor) for d in data):
        return data[0].float(), data[1].long()
    images, labels = [], []
    try:
        for item in _iterate(data):
            x, y = (item["img"] if "img" in item else item["image"], item["label"]) \
                if isinstance(item, dict) else (item[0], item[1])
            images.append(torch.as_tensor(x).float())
            labels.append(torch.as_tensor(y).long())
    except (TypeError, KeyError, IndexError) as error:
        raise ConfigError(flag, spec, "must return (images, labels) tensors, a DataLoader or a "
                          f"Dataset of (image, label) ({type(error).__name__}: {error})") from None
    if not images:
        raise ConfigError(flag, spec, "returned no examples")
    batched = images[0].dim() == 4
    return ((torch.cat(images), torch.cat(labels)) if batched
            else (torch.stack(images), torch.stack(labels)))


def _split_return(data: Any, spec: str) -> tuple[Examples, list[Examples]]:
    """The node's training examples and its other (held-out) sets: a tuple of loaders or datasets, as the
    template's (trainloader, testloader), is (train, [test, ...]); anything else is the training set."""
    pair_of_tensors = isinstance(data, tuple | list) and len(data) == 2 and \
        all(isinstance(d, torch.Tensor) for d in data)
    if isinstance(data, tuple | list) and data and not pair_of_tensors:
        return _as_tensors(data[0], spec), [_as_tensors(part, spec) for part in data[1:]]
    return _as_tensors(data, spec), []


def _iterate(data: Any) -> Iterable:
    if isinstance(data, torch.utils.data.DataLoader):
        return data
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        return (data[i] for i in range(len(data)))
    return iter(data)


def node_data(spec: str, loader: Callable[..., Any], node_config: dict, shape: Sequence[int]
              ) -> tuple[Examples, list[Examples]]:
    """One node's training examples and held-out sets from the user's function, called as
    FUNC(partition_id, num_partitions), checked against the model's input (shape, values in [0, 1])."""
    if not all(key in node_config for key in PARTITION_KEYS):
        raise RunFileError(f"a node's node_config {node_config} lacks {PARTITION_KEYS}")
    own, held_out = _split_return(loader(int(node_config[PARTITION_KEYS[0]]),
                                         int(node_config[PARTITION_KEYS[1]])), spec)
    for images, _ in (own, *held_out):
        if tuple(images.shape[1:]) != tuple(shape):
            raise ConfigError("--client-data", spec, f"returned images of shape {tuple(images.shape[1:])}, "
                              f"but the captured model takes {tuple(shape)}")
        low, high = float(images.min()), float(images.max())
        if low < -1e-6 or high > 1 + 1e-6:
            raise ConfigError("--client-data", spec, f"returned pixel values in [{low:.2f}, {high:.2f}]: the "
                              "audit reconstructs images in [0, 1] (normalise inside the model, or return "
                              "unnormalised images)")
    return own, held_out


NodeData = dict[int, tuple[Examples, list[Examples]]]


def load_truth(root: Path, data_spec: str, shape: Sequence[int], files: list[Path]
               ) -> tuple[dict[int, dict], NodeData]:
    """The scorer's inputs, loaded and checked before any attack: each node's node_config (recorded by the
    client mod) and its own data from the user's function."""
    loader = load_callable(data_spec, "--client-data")
    nodes = sorted({int(path.stem.split("_")[1])
                    for path in (Path(root) / NODE_PARTITIONS).glob("node_*.json")})
    configs = {node: read_json(node_partition_file(root, node))["node_config"] for node in nodes}
    missing = sorted({int(path.stem.split("_")[1]) for path in files} - set(configs))
    if missing:
        raise RunFileError(f"no {node_partition_file(root, missing[0])}: add "
                           "fl_privacy.capture.record_partitions(DIR) to the ClientApp's mods")
    return configs, {node: node_data(data_spec, loader, configs[node], shape) for node in configs}


def score_findings(root: Path, findings: list[dict], configs: dict[int, dict], data: NodeData,
                   seed: int = 0) -> dict:
    """The scorer: each attacked capture against its node's own data (`seed` and the capture's number draw
    its label-only guess); writes each truth | reconstruction grid. Returns the pooled scores (n = images)."""
    attacked = [f for f in findings if "_images" in f]
    for number, finding in enumerate(attacked):
        node = finding["node_id"]
        finding["partition_id"] = int(configs[node][PARTITION_KEYS[0]])
        (truth, truth_labels), held_out = data[node]
        # every image the update did not use: this node's held-out sets, every other node's data
        others = [*held_out, *(part for n in data if n != node for part in (data[n][0], *data[n][1]))]
        reference = torch.cat([o[0] for o in others]) if others else truth[:0]
        reference_labels = torch.cat([o[1] for o in others]) if others else truth_labels[:0]
        scores = score_against_node(finding["_images"], finding["_labels"], truth, truth_labels, reference,
                                    reference_labels, seed=seed * 1_000_003 + number)
        finding["scores"] = scores
        grid = risk_grid_file(root, finding["round"], node)
        save_comparison_grid(truth[scores["matched"]], finding["_images"], grid)
        finding["grid"] = str(grid.relative_to(root))
    return pooled([f["scores"] for f in attacked])


def load_candidates(spec: str, shape: Sequence[int], num_classes: int) -> ImageDataset:
    """The attacker's candidate records from the user's FUNC(): images (N, C, H, W) of the model's input
    shape in [0, 1] and labels (N,) of its classes, checked before any attack (one line naming
    `--candidates` otherwise)."""
    function = load_callable(spec, "--candidates")
    try:
        data = function()
    except Exception as error:  # the user's code: any failure is theirs to fix, said in one line
        raise ConfigError("--candidates", spec,
                          f"calling it failed ({type(error).__name__}: {error})") from None
    if isinstance(data, tuple | list) and len(data) == 2 and \
            all(isinstance(d, torch.Tensor | np.ndarray) for d in data):
        images, labels = torch.as_tensor(data[0]).float(), torch.as_tensor(data[1])
    else:
        try:
            images, labels = _as_tensors(data, spec, "--candidates")
        except RuntimeError as error:  # records of different shapes
            raise ConfigError("--candidates", spec, f"records do not stack ({error})") from None
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(shape):
        raise ConfigError("--candidates", spec, f"returned images of shape {tuple(images.shape)}, but the "
                          f"captured model takes N x {' x '.join(str(s) for s in shape)}")
    if labels.dim() != 1 or len(labels) != len(images):
        raise ConfigError("--candidates", spec, f"returned labels of shape {tuple(labels.shape)} for "
                          f"{len(images)} images (give one label per image)")
    if len(images) < 2:
        raise ConfigError("--candidates", spec, "returned fewer than 2 records")
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise ConfigError("--candidates", spec, "returned labels that are not whole class indices")
    labels = labels.long()
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ConfigError("--candidates", spec, f"returned labels in [{int(labels.min())}, "
                          f"{int(labels.max())}], but the model has {num_classes} classes")
    low, high = float(images.min()), float(images.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise ConfigError("--candidates", spec, f"returned pixel values in [{low:.2f}, {high:.2f}]: give "
                          "images in [0, 1], as the model's --client-data")
    return ImageDataset(images.contiguous(), labels)


def attack_membership(root: Path, attacker: Attacker, candidates: ImageDataset, findings: list[dict],
                      options: AuditOptions) -> dict[str, dict[str, list[float]]]:
    """The attacker: per capture, every candidate's membership scores against that node's update (the
    update attacks through an `UpdateAuditorView`). Adds each finding's `membership` (threat model, what
    ran) and returns the scores by capture, written to `RISK_MEMBERSHIP_SCORES`."""
    factory, names = attacker.factory, attacker.names
    scores: dict[str, dict[str, list[float]]] = {}
    for finding in progress(findings, "membership attacks", "capture"):
        record = load_tensors(root / finding["capture"])
        mode: UpdateMode = finding["update_mode"]["mode"]
        view = membership_view(record["global_state"], record["updated_state"], names, mode,
                               options.recipe.lr, attacker.shape, candidates, factory)
        started = time.perf_counter()
        values = capture_membership_scores(view)
        scores[finding["capture"]] = {name: np.asarray(v, dtype=float).tolist() for name, v in values.items()}
        finding["membership"] = {
            "threat_model": membership_threat_model(mode, options.recipe.lr),
            "num_candidates": len(candidates), "seconds": time.perf_counter() - started,
            "look_ahead_lr": options.recipe.lr if mode == "fedsgd" else None}
    write_json(root / RISK_MEMBERSHIP_SCORES, {"num_candidates": len(candidates), "scores": scores})
    return scores


def score_membership(findings: list[dict], configs: dict[int, dict], data: NodeData,
                     candidates: ImageDataset, scores: dict[str, dict[str, list[float]]], resamples: int
                     ) -> dict:
    """The scorer: per capture, the membership figures against its node's own training images (exact pixel
    match) and the negative control; pooled over the scored captures (one threshold)."""
    partitions = {node: int(configs[node][PARTITION_KEYS[0]]) for node in configs}
    members = {node: exact_members(candidates.images, data[node][0][0]) for node in data}
    pooled_scores: dict[str, list[np.ndarray]] = {}
    pooled_kept: dict[str, list[np.ndarray]] = {}
    pooled_member: list[np.ndarray] = []
    pooled_control: list[np.ndarray] = []
    scored = 0
    for finding in findings:
        if "membership" not in finding:
            continue
        node = finding["node_id"]
        is_member = members[node]
        entry = finding["membership"]
        entry.update({"partition_id": partitions[node], "num_members": int(is_member.sum()),
                      "num_non_members": int((~is_member).sum())})
        if not scorable(is_member):
            entry["not_scored"] = (f"{int(is_member.sum())} of {len(is_member)} candidates are this node's "
                                   "training images: no ROC without members and non-members")
            continue
        values = {name: np.asarray(v) for name, v in scores[finding["capture"]].items()}
        order = sorted((n for n in members if n != node), key=lambda n: (partitions[n] - partitions[node])
                       % (max(partitions.values()) + 1))
        kind, control, keep = control_membership(is_member, [(partitions[n], members[n]) for n in order])
        entry["attacks"] = attack_metrics(values, is_member, resamples)
        kept = {name: v[keep] for name, v in values.items()}
        entry["control"] = {"kind": kind, "attacks": attack_metrics(kept, control[keep], resamples)}
        for name, v in values.items():
            pooled_scores.setdefault(name, []).append(v)
            pooled_kept.setdefault(name, []).append(kept[name])
        pooled_member.append(is_member)
        pooled_control.append(control[keep])
        scored += 1
    summary: dict[str, Any] = {"captures_scored": scored, "num_candidates": len(candidates),
                               "member_rule": "a candidate equals (every pixel, float32) one of the node's "
                                              "own training images (the first set --client-data returns)",
                               "pooling": "the scored captures' scores concatenated (one threshold for all)"}
    if scored:
        joined = {name: np.concatenate(parts) for name, parts in pooled_scores.items()}
        summary["pooled"] = attack_metrics(joined, np.concatenate(pooled_member), resamples)
        summary["control_pooled"] = attack_metrics({name: np.concatenate(parts) for name, parts
                                                    in pooled_kept.items()}, np.concatenate(pooled_control),
                                                   resamples)
        summary["control_kinds"] = sorted({f["membership"]["control"]["kind"].split(" (")[0]
                                           for f in findings if "control" in f.get("membership", {})})
    return summary


def audit_captures(root: Path, model_spec: str, data_spec: str | None = None,
                   options: AuditOptions = AuditOptions(), candidates_spec: str | None = None) -> dict:
    """Attack every capture under `root` (inversion; membership when `candidates_spec` is given), score it
    when `data_spec` is given, and write `root/risk_report.json` (the command draws the page from it).
    Every input is loaded and checked before any attack runs. Returns the report."""
    root = Path(root)
    started = time.perf_counter()
    attacker = prepare_attacker(root, model_spec, options)
    candidates = None if candidates_spec is None else \
        load_candidates(candidates_spec, attacker.shape, attacker.setup["num_classes"])
    truth = None if data_spec is None else load_truth(root, data_spec, attacker.shape, attacker.files)
    findings = attack_captures(root, attacker, model_spec, options)
    membership_scores = None if candidates is None else \
        attack_membership(root, attacker, candidates, findings, options)
    summary: dict[str, Any] = {"captures": len(findings),
                               "attacked": sum("_images" in f for f in findings),
                               "fedavg": sum(f["update_mode"]["mode"] == "fedavg" for f in findings),
                               "fedsgd": sum(f["update_mode"]["mode"] == "fedsgd" for f in findings)}
    if truth is not None:
        summary["scores"] = score_findings(root, findings, *truth, seed=options.budget.seed)
        summary["client_data"] = data_spec
    if candidates is not None and membership_scores is not None:
        summary["membership"] = {"candidates": candidates_spec,
                                 "threat_model": "honest-but-curious server: sees the sent and returned "
                                                 "arrays of each reply and the candidates, never who holds "
                                                 "them"}
        if truth is not None:
            summary["membership"].update(score_membership(findings, *truth, candidates, membership_scores,
                                                          options.bootstrap))
    else:
        for finding in findings:
            if "_images" in finding:
                grid = risk_grid_file(root, finding["round"], finding["node_id"])
                save_image_grid(grid, finding["_images"].float().clamp(0, 1), nrow=8, pad_value=1.0)
                finding["grid"] = str(grid.relative_to(root))
    for finding in findings:
        finding.pop("_images", None)
        finding.pop("_labels", None)
    summary["seconds"] = time.perf_counter() - started
    report = {"setup": attacker.setup, "summary": summary, "findings": findings,
              "identification_rule": IDENTIFICATION_RULE}
    write_json(root / RISK_REPORT, report)
    return report
