"""Auditing a user's own Flower app (issue 30): the strategy wrapper records faithfully and passes errors
through, the partition mod records node_config, and `audit-captures` turns a tiny capture into a report."""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, Metadata, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg
from torch import nn

from fl_privacy.capture import capture_updates, record_partitions
from fl_privacy.results import load_tensors
from fl_privacy.run_layout import node_capture_file, node_partition_file

NODES = (11, 22, 33)


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch):
    """What Flower's server process would have set before messages are built."""
    from flwr.supercore.task_identity import TaskIdentity

    for identity in ("_task_id", "_run_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, identity, 1)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(4, 3)


def _client_train(message: Message, node: int) -> Message:
    """A node's local training: one SGD step on its own fixed data; replies arrays and num-examples."""
    model = _model()
    model.load_state_dict(message.content.array_records["arrays"].to_torch_state_dict())
    generator = torch.Generator().manual_seed(node)
    x, y = torch.randn(node % 5 + 2, 4, generator=generator), torch.randint(0, 3, (node % 5 + 2,),
                                                                           generator=generator)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    metrics = MetricRecord({"num-examples": len(x), "train_loss": float(loss.detach())})
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return _reply(content, message, node)


def _reply(content: RecordDict, message: Message, node: int) -> Message:
    metadata = Metadata(run_id=1, message_id=f"r{node}", src_node_id=node, dst_node_id=0,
                        reply_to_message_id=message.metadata.message_id, group_id="", created_at=0.0,
                        ttl=60.0, message_type=message.metadata.message_type)
    return Message(content=content, metadata=metadata)


class FakeGrid:
    """The part of Flower's Grid that `Strategy.start` uses: node ids and send-and-receive in process."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def get_node_ids(self) -> list[int]:
        return list(NODES)

    def send_and_receive(self, messages, timeout=None):
        messages = list(messages)
        self.sent += messages
        return iter([_client_train(m, m.metadata.dst_node_id) for m in messages])  # a one-shot iterable


def _start(strategy, rounds: int = 2):
    random.seed(0)  # Flower samples nodes with `random`: the same order, so the same summation order
    return strategy.start(grid=FakeGrid(), initial_arrays=ArrayRecord(_model().state_dict()),
                          num_rounds=rounds)


def test_wrapper_records_every_reply_and_leaves_the_run_unchanged(tmp_path):
    plain = _start(FedAvg(fraction_evaluate=0.0))
    wrapped = capture_updates(FedAvg(fraction_evaluate=0.0), tmp_path)
    captured = _start(wrapped)
    # the same aggregate, round by round, as the strategy on its own
    for name, value in plain.arrays.to_torch_state_dict().items():
        assert torch.equal(captured.arrays.to_torch_state_dict()[name], value)
    assert dict(captured.train_metrics_clientapp[2]) == dict(plain.train_metrics_clientapp[2])
    assert wrapped.fraction_train == 1.0  # the wrapped strategy's settings read through
    initial = _model().state_dict()
    for node in NODES:
        first = load_tensors(node_capture_file(tmp_path, 1, node))
        for name, value in initial.items():  # round 1 sent the initial arrays
            assert torch.equal(first["global_state"][name], value)
        meta = first["metadata"]
        assert meta["node_id"] == node and meta["round"] == 1
        assert meta["num_examples"] == node % 5 + 2 and "train_loss" in meta["metrics"]
        # what the node returned, exactly (replayed here from the same sent arrays)
        again = _client_train(Message(RecordDict({"arrays": ArrayRecord(first["global_state"])}),
                                      dst_node_id=node, message_type="train"), node)
        for name, value in again.content.array_records["arrays"].to_torch_state_dict().items():
            assert torch.equal(first["updated_state"][name], value)
        second = load_tensors(node_capture_file(tmp_path, 2, node))
        assert not torch.equal(second["global_state"]["weight"], first["global_state"]["weight"])


class Broken(FedAvg):
    def aggregate_train(self, server_round, replies):
        raise RuntimeError(f"user bug in round {server_round}")


class BrokenConfigure(FedAvg):
    def configure_train(self, server_round, arrays, config, grid):
        raise KeyError("missing-key")


@pytest.mark.parametrize("strategy,error,text", [(Broken, RuntimeError, "user bug in round 1"),
                                                 (BrokenConfigure, KeyError, "missing-key")])
def test_wrapped_strategy_errors_pass_through_unchanged(tmp_path, strategy, error, text):
    with pytest.raises(error) as plain:
        _start(strategy(fraction_evaluate=0.0))
    with pytest.raises(error) as wrapped:
        _start(capture_updates(strategy(fraction_evaluate=0.0), tmp_path))
    assert type(wrapped.value) is type(plain.value) and str(wrapped.value) == str(plain.value)
    assert text in str(wrapped.value)


def test_wrapper_refuses_what_is_not_a_strategy(tmp_path):
    with pytest.raises(TypeError, match="Strategy"):
        capture_updates(object(), tmp_path)  # type: ignore[arg-type]


def test_partition_mod_records_node_config_and_passes_the_reply_through(tmp_path):
    mod = record_partitions(tmp_path)
    context = Context(run_id=1, node_id=22, node_config={"partition-id": 3, "num-partitions": 4},
                      state=RecordDict(), run_config={})
    message = Message(RecordDict({"config": ConfigRecord({"x": 1})}), dst_node_id=22, message_type="train")
    sentinel = _reply(RecordDict(), message, 22)
    seen = []

    def call_next(msg, ctx):
        seen.append((msg, ctx))
        return sentinel

    assert mod(message, context, call_next) is sentinel
    assert seen == [(message, context)]
    record = json.loads(node_partition_file(tmp_path, 22).read_text())
    assert record == {"node_id": 22, "node_config": {"partition-id": 3, "num-partitions": 4}}


# --- audit-captures on a tiny capture made here ----------------------------------------------------------
TINY_APP = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(36, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(torch.sigmoid(self.hidden(x.flatten(1))))


def tiny():
    torch.manual_seed(0)
    return Tiny()


def wrong():
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 3))


def images(partition_id, count, offset=0):
    """Smooth images (3x3 blocks upsampled), nothing like the uniform noise an attack starts from."""
    generator = torch.Generator().manual_seed(100 * partition_id + offset)
    x = torch.rand(count, 1, 3, 3, generator=generator).repeat_interleave(2, 2).repeat_interleave(2, 3)
    return x, torch.arange(count) % 3


def data(partition_id, num_partitions):
    return TensorDataset(*images(partition_id, 2)), TensorDataset(*images(partition_id, 9, offset=1))


def bad_shape(partition_id, num_partitions):
    return torch.rand(2, 1, 5, 5), torch.zeros(2, dtype=torch.long)


def wide():
    """For the membership capture: a ReLU MLP with 10 classes."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 64), nn.ReLU(), nn.Linear(64, 10))


def records(seed, count):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 1, 6, 6, generator=generator)
    return images, torch.randint(0, 10, (count,), generator=generator)


def member_data(partition_id, num_partitions):
    """For the membership capture: 16 training images per node, nothing held out."""
    return records(10 + partition_id, 16)


def candidates():
    """Both nodes' 16 training images and 32 images no node holds."""
    parts = [records(10, 16), records(11, 16), records(50, 32)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def tiny_candidates():
    return torch.cat([images(0, 2)[0], images(7, 4)[0]]), torch.tensor([0, 1, 2, 0, 1, 2])


def candidates_flat():
    return torch.rand(4, 36), torch.zeros(4, dtype=torch.long)
'''


@pytest.fixture(scope="module")
def tiny_capture(tmp_path_factory):
    """Two rounds of three nodes of the tiny app through the wrapper and the partition mod: node 11 sends a
    FedSGD gradient of one image, the others one FedAvg step (lr 0.1) on their two images."""
    root = tmp_path_factory.mktemp("app")
    (root / "tinyapp.py").write_text(TINY_APP)
    sys.path.insert(0, str(root))
    import tinyapp

    mod = record_partitions(root / "audit")

    def train(message: Message, context: Context) -> Message:
        node = context.node_id
        model = tinyapp.tiny()
        model.load_state_dict(message.content.array_records["arrays"].to_torch_state_dict())
        x, y = tinyapp.images(int(context.node_config["partition-id"]), 2)
        if node == 11:
            x, y = x[:1], y[:1]
        loss = nn.functional.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        names = [n for n, _ in model.named_parameters()]
        if node == 11:  # FedSGD: the gradient itself
            arrays = {n: g.detach() for n, g in zip(names, grads, strict=True)}
        else:
            arrays = {n: (p - 0.1 * g).detach()
                      for (n, p), g in zip(model.named_parameters(), grads, strict=True)}
        metrics = MetricRecord({"num-examples": len(x)})
        return _reply(RecordDict({"arrays": ArrayRecord(arrays), "metrics": metrics}), message, node)

    class Grid(FakeGrid):
        def send_and_receive(self, messages, timeout=None):
            replies = []
            for m in messages:
                node = m.metadata.dst_node_id
                context = Context(run_id=1, node_id=node, state=RecordDict(), run_config={},
                                  node_config={"partition-id": NODES.index(node), "num-partitions": 3})
                replies.append(mod(m, context, train))
            return replies

    random.seed(0)
    monkey = pytest.MonkeyPatch()
    from flwr.supercore.task_identity import TaskIdentity

    for identity in ("_task_id", "_run_id", "_node_id"):
        monkey.setattr(TaskIdentity, identity, 1)
    capture_updates(FedAvg(fraction_evaluate=0.0), root / "audit").start(
        grid=Grid(), initial_arrays=ArrayRecord(tinyapp.tiny().state_dict()), num_rounds=2)
    monkey.undo()
    yield root / "audit"
    sys.path.remove(str(root))


AUDIT = ["--input-shape", "1,6,6", "--iterations", "10", "--restarts", "1", "--dlg-iterations", "2",
         "--local-lr", "0.1", "--batch-size", "2", "--rounds", "1"]


def test_audit_captures_writes_the_risk_report(tiny_capture):
    from fl_privacy.cli.commands import main
    from fl_privacy.run_layout import RISK_REPORT, RISK_REPORT_PAGE

    assert main(["audit-captures", str(tiny_capture), "--model", "tinyapp:tiny",
                 "--client-data", "tinyapp:data", "--nodes", "11", "22", *AUDIT]) == 0
    report = json.loads((tiny_capture / RISK_REPORT).read_text())
    findings = {f["node_id"]: f for f in report["findings"]}
    assert sorted(findings) == [11, 22] and {f["round"] for f in findings.values()} == {1}
    # the update mode is read off the arrays: node 11 sent a gradient, node 22 weights
    assert findings[11]["update_mode"]["mode"] == "fedsgd"
    assert findings[22]["update_mode"]["mode"] == "fedavg"
    assert findings[11]["threat_model"]["sok_threat_model"].startswith("B")
    assert findings[22]["threat_model"]["sok_threat_model"].startswith("C")
    assert findings[22]["partition_id"] == 1 and findings[22]["scores"]["truth_pool"] == 2
    # one image behind a gradient of a sigmoid MLP: DLG recovers it, nearer it than every other image
    single = findings[11]["scores"]
    assert single["identified"] == [True] and single["psnr"][0] > 25
    assert single["baselines"]["uniform_noise"]["identification"]["hits"] == 0
    assert report["summary"]["scores"]["identification"]["n"] == 3
    page = (tiny_capture / RISK_REPORT_PAGE).read_text()
    assert page.count("data:image/png;base64") == 2 and "Informed Eavesdropper" in page


@pytest.mark.parametrize("args,key,words", [
    (["--model", "tinyapp:wrong", "--client-data", "tinyapp:data"], "--model",
     "does not build the captured architecture"),
    (["--model", "tinyapp:tiny", "--client-data", "tinyapp:bad_shape"], "--client-data",
     "returned images of shape (1, 5, 5), but the captured model takes (1, 6, 6)"),
    (["--model", "tinyapp:missing"], "--model", "cannot import it"),
])
def test_audit_captures_bad_input_is_one_line(tiny_capture, caplog, args, key, words):
    from fl_privacy.cli.commands import main

    started = time.perf_counter()
    assert main(["audit-captures", str(tiny_capture), *args, *AUDIT]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith(key) and words in errors[0]
    assert "\n" not in errors[0]
    assert time.perf_counter() - started < 5  # refused before any attack runs


def test_every_capture_goes_through_the_one_attack_function(tiny_capture, monkeypatch):
    """A stronger inversion plugs in at `invert_capture`; without --client-data nothing is scored."""
    from fl_privacy.attacks.gradient_inversion import Reconstruction
    from fl_privacy.lab.pipelines import capture_audit

    calls = []

    def stand_in(model, view, budget):
        calls.append((view.is_gradient, view.num_inputs))
        return Reconstruction(torch.full((view.num_inputs, *view.input_shape), 0.5),
                              torch.zeros(view.num_inputs, dtype=torch.long), 0.0, (0.0,))

    monkeypatch.setattr(capture_audit, "invert_capture", stand_in)
    report = capture_audit.audit_captures(tiny_capture, "tinyapp:tiny", None,
                                          capture_audit.AuditOptions(input_shape=(1, 6, 6), rounds=(2,)))
    assert sorted(calls) == [(False, 2), (False, 2), (True, 1)]
    assert all((tiny_capture / f["grid"]).exists() and "scores" not in f for f in report["findings"])
    assert "scores" not in report["summary"]


# --- the worked example's own apps, without Ray ---------------------------------------------------------
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flower_app"


def test_example_app_is_captured_and_its_captures_are_auditable(tmp_path, monkeypatch):
    """examples/flower_app's ServerApp main and ClientApp handlers (and its partition mod), driven by an
    in-process grid of 2 nodes for 1 round: the captures and partition ids land in `capture-dir`, the
    audit accepts its own model and data, and refuses the other model for these captures."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setenv("FLOWER_APP_CAPTURE_DIR", str(tmp_path))
    monkeypatch.setenv("FLOWER_APP_NUM_SERVER_ROUNDS", "1")
    from flower_app import client_app, server_app

    from fl_privacy.errors import ConfigError
    from fl_privacy.lab.pipelines.capture_audit import AuditOptions, load_truth, prepare_attacker

    class ExampleGrid(FakeGrid):
        def get_node_ids(self) -> list[int]:
            return [11, 22]

        def send_and_receive(self, messages, timeout=None):
            replies = []
            for message in messages:
                node = message.metadata.dst_node_id
                context = Context(run_id=1, node_id=node, state=RecordDict(), run_config={},
                                  node_config={"partition-id": [11, 22].index(node), "num-partitions": 2})
                handler = client_app.train if message.metadata.message_type == "train" \
                    else client_app.evaluate
                reply = client_app._partition_mod(message, context, handler)
                replies.append(_reply(reply.content, message, node))
            return replies

    random.seed(0)
    server_app.main(ExampleGrid(), Context(run_id=1, node_id=0, node_config={}, state=RecordDict(),
                                           run_config={}))
    for node in (11, 22):
        record = load_tensors(node_capture_file(tmp_path, 1, node))
        assert record["metadata"]["num_examples"] == 8 and "fc3.bias" in record["updated_state"]
        assert json.loads(node_partition_file(tmp_path, node).read_text())["node_config"]["partition-id"] \
            == [11, 22].index(node)
    attacker = prepare_attacker(tmp_path, "flower_app.task:Net", AuditOptions())
    assert attacker.shape == (1, 28, 28)  # probed from the template's CNN
    _, data = load_truth(tmp_path, "flower_app.task:load_data", attacker.shape, attacker.files)
    (train, _), held_out = data[11]
    assert len(train) == 8 and len(held_out) == 1 and len(held_out[0][0]) == 500
    # the example's candidates: every partition's 8 training images (of 4) and as many held out
    from fl_privacy.evaluation.node_membership import exact_members
    from fl_privacy.lab.pipelines.capture_audit import load_candidates

    candidates = load_candidates("flower_app.task:candidates", attacker.shape, 10)
    assert len(candidates) == 64
    from flower_app.task import load_data

    loader, _ = load_data(2, 4)
    assert exact_members(candidates.images, torch.cat([x for x, _ in loader])).sum() == 8
    with pytest.raises(ConfigError, match="does not build the captured architecture"):
        prepare_attacker(tmp_path, "flower_app.task:MLP", AuditOptions())


# --- membership inference on captured updates (--candidates) ---------------------------------------------
@pytest.fixture(scope="module")
def membership_capture(tiny_capture, tmp_path_factory):
    """One round of two FedAvg nodes of the `wide` model, written in the capture format: each node (partition
    0 and 1) takes 30 full-batch SGD steps at lr 0.5 on its own 16 images (`member_data`)."""
    import tinyapp

    from fl_privacy.results import save_torch, write_json

    root = tmp_path_factory.mktemp("membership")
    sent = tinyapp.wide().state_dict()
    for node, partition in ((7, 0), (8, 1)):
        model = tinyapp.wide()
        x, y = tinyapp.member_data(partition, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(30):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        save_torch(node_capture_file(root, 1, node), {
            "global_state": sent, "updated_state": {k: v.detach() for k, v in model.state_dict().items()},
            "metadata": {"round": 1, "node_id": node, "num_examples": len(x), "metrics": {}}})
        write_json(node_partition_file(root, node),
                   {"node_id": node, "node_config": {"partition-id": partition, "num-partitions": 2}})
    return root


def test_membership_on_captured_updates_finds_the_nodes_records_and_not_others(membership_capture):
    from fl_privacy.cli.commands import main
    from fl_privacy.run_layout import RISK_MEMBERSHIP_SCORES, RISK_REPORT, RISK_REPORT_PAGE

    assert main(["audit-captures", str(membership_capture), "--model", "tinyapp:wide", "--client-data",
                 "tinyapp:member_data", "--candidates", "tinyapp:candidates", "--input-shape", "1,6,6",
                 "--max-images", "1", "--bootstrap", "100", "--local-lr", "0.5", "--batch-size", "16"]) == 0
    report = json.loads((membership_capture / RISK_REPORT).read_text())
    member = report["summary"]["membership"]
    assert member["captures_scored"] == 2 and member["num_candidates"] == 64
    pooled, control = member["pooled"]["gradient_cosine"], member["control_pooled"]["gradient_cosine"]
    assert (pooled["num_members"], pooled["num_non_members"]) == (32, 96)
    assert pooled["auc"] > 0.95 and pooled["auc_ci"][0] > 0.9
    assert control["auc_ci"][0] < 0.5 < control["auc_ci"][1]  # another node's records: chance
    for finding in report["findings"]:
        entry = finding["membership"]
        assert (entry["num_members"], entry["num_non_members"]) == (16, 48)
        assert entry["control"]["kind"].startswith("another node's records")
        assert entry["threat_model"]["attacker"].startswith("honest-but-curious server")
        assert "not_attacked" in finding  # inversion skipped (--max-images 1); membership still ran
    scores = json.loads((membership_capture / RISK_MEMBERSHIP_SCORES).read_text())
    assert len(scores["scores"]) == 2
    page = (membership_capture / RISK_REPORT_PAGE).read_text()
    assert "Membership inference on updates" in page and "negative control" in page


def test_membership_without_client_data_scores_nothing_and_takes_fedsgd(tiny_capture):
    """The tiny capture's node 11 sent a gradient: the attack looks one step ahead along it."""
    from fl_privacy.lab.pipelines.capture_audit import AuditOptions, Recipe, audit_captures
    from fl_privacy.run_layout import RISK_MEMBERSHIP_SCORES

    report = audit_captures(tiny_capture, "tinyapp:tiny", None,
                            AuditOptions(recipe=Recipe(lr=0.1), input_shape=(1, 6, 6), max_images=1,
                                         rounds=(1,)), "tinyapp:tiny_candidates")
    assert "pooled" not in report["summary"]["membership"]
    assert all("attacks" not in f["membership"] for f in report["findings"])
    findings = {f["node_id"]: f["membership"] for f in report["findings"]}
    assert findings[11]["look_ahead_lr"] == 0.1 and findings[22]["look_ahead_lr"] is None
    scores = json.loads((tiny_capture / RISK_MEMBERSHIP_SCORES).read_text())["scores"]
    assert len(scores) == 3 and all(len(v["gradient_cosine"]) == 6 for v in scores.values())


@pytest.mark.parametrize("function,words", [
    ("tinyapp:candidates_flat", "returned images of shape (4, 36), but the captured model takes N x 1 x 6 x"),
    ("tinyapp:nowhere", "cannot import it"),
])
def test_candidates_of_the_wrong_shape_is_one_line_before_any_attack(tiny_capture, caplog, monkeypatch,
                                                                     function, words):
    from fl_privacy.cli.commands import main
    from fl_privacy.lab.pipelines import capture_audit

    def refuse(*args, **kwargs):
        raise AssertionError("an attack ran")

    monkeypatch.setattr(capture_audit, "invert_capture", refuse)
    monkeypatch.setattr(capture_audit, "capture_membership_scores", refuse)
    assert main(["audit-captures", str(tiny_capture), "--model", "tinyapp:tiny", "--client-data",
                 "tinyapp:data", "--candidates", function, *AUDIT]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith("--candidates") and words in errors[0]
    assert "\n" not in errors[0]
