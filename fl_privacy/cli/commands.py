"""The `fl-privacy` commands, one argument convention for all (see `fl_privacy.cli`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from omegaconf import OmegaConf

from fl_privacy.config import Settings, settings_from_dict
from fl_privacy.errors import ConfigError, DataNotFoundError
from fl_privacy.results import RunFileError, read_summary

log = logging.getLogger("fl_privacy.cli")


def run_settings(run_dir: Path, node: str, overrides: Sequence[str]) -> Settings:
    """The settings a finished run recorded, with `NODE.KEY=VALUE` overrides, validated like a new run."""
    for override in overrides:
        if not override.startswith(f"{node}.") or "=" not in override:
            key, _, value = override.partition("=")
            raise ConfigError(key, value, f"this command's overrides look like {node}.KEY=VALUE")
    config = OmegaConf.merge(read_summary(run_dir)["config"], OmegaConf.from_dotlist(list(overrides)))
    values = OmegaConf.to_container(config, resolve=True)
    assert isinstance(values, dict)
    roles = values.get("client", {}).get("roles")
    if isinstance(roles, dict):  # summary.json keeps the partition ids of client.roles as strings
        values["client"]["roles"] = {int(partition): role for partition, role in roles.items()}
    return settings_from_dict(cast(dict[str, Any], values))  # a config tree's keys are strings


def _attack(run_dir: Path, settings: Settings) -> None:
    from fl_privacy.lab.pipelines.inversion_pipeline import invert_and_score
    from fl_privacy.lab.preflight import check_inversion_attack

    check_inversion_attack(settings)
    log.info("scores: %s", json.dumps(invert_and_score(run_dir, settings)))


def _audit(run_dir: Path, settings: Settings) -> None:
    from fl_privacy.lab.pipelines.audit_pipeline import audit_run

    result = audit_run(run_dir, settings)
    log.info("membership AUC: %s",
             json.dumps({name: round(m["auc"], 4) for name, m in result["attacks"].items()}))


def _audit_updates(run_dir: Path, settings: Settings) -> None:
    from fl_privacy.lab.pipelines.update_audit import audit_updates

    result = audit_updates(run_dir, settings)
    per_round = {r["round"]: {name: round(m["auc"], 4) for name, m in r["attacks"].items()}
                 for r in result["rounds"]}
    log.info("update attack AUC per round: %s", json.dumps(per_round))


def _invert(run_dir: Path, settings: Settings) -> None:
    from fl_privacy.lab.pipelines.representation_pipeline import run_representation_inversion
    from fl_privacy.lab.preflight import check_representation_layers

    check_representation_layers(settings)
    log.info("%s", json.dumps(run_representation_inversion(run_dir, settings)["layers"]))


def _gan_eval(run_dir: Path, settings: Settings) -> None:
    import torch

    from fl_privacy.lab.pipelines.gan_evaluation import evaluate_generators

    torch.set_num_threads(1)  # small matrices: one thread is fastest, and a shared CPU stays usable
    result = evaluate_generators(run_dir, settings)
    final = result["final"]
    log.info("round %d: %s; Fréchet / floor %.1f; run-level record test p (pixels) %.3g", final["round"],
             ", ".join(f"{name} share {j['share']:.3f}, ceiling {j['ceiling']:.3f}"
                       for name, j in final["judges"].items()),
             final["frechet_over_floor"], result["records_run"]["p_value"])


# command -> (help, the attacker node its overrides address, what it does)
RUN_COMMANDS: dict[str, tuple[str, str, Callable[[Path, Settings], None]]] = {
    "attack": ("gradient inversion of a run's captures, then scoring", "attack.gradient_inversion", _attack),
    "audit": ("membership-inference audit of a run", "attack.membership", _audit),
    "audit-updates": ("the server's per-round membership attack on a client's captured updates",
                      "attack.membership", _audit_updates),
    "invert": ("inversion of the final model's representations", "attack.representation_inversion", _invert),
    "gan-eval": ("the GAN attack's kept generators against the truth: share, KID, Fréchet, record-level test",
                 "evaluation.oracle", _gan_eval),
}


def _report(args: argparse.Namespace) -> None:
    from fl_privacy.report.build import build_report

    log.info("open %s", build_report(args.path, args.out, args.metric, args.color).html)


def _attack_table(args: argparse.Namespace) -> None:
    from fl_privacy.report.tables import attack_table, success_table

    print(attack_table(args.path, args.by, args.per_round))
    print("\nRecognisable = SSIM >= 0.5 and above the class-mean baseline's SSIM; baselines are medians.\n")
    print(success_table(args.path, args.by))


def _membership_table(args: argparse.Namespace) -> None:
    from fl_privacy.report.tables import membership_table, update_table

    if args.updates:
        print(update_table(args.path))
        return
    print(membership_table(args.path, args.by, args.over_runs))


def _dp_audit_table(args: argparse.Namespace) -> None:
    from fl_privacy.report.tables import dp_audit_table

    print(dp_audit_table(args.path, args.by))


def _shape(text: str) -> tuple[int, int, int]:
    try:
        channels, height, width = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give C,H,W, e.g. 1,28,28") from None
    return channels, height, width


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be a positive {kind.__name__}")
        return value

    return parse


def _audit_captures(args: argparse.Namespace) -> None:
    import torch

    from fl_privacy.lab.pipelines.capture_audit import AuditOptions, Budget, Recipe, audit_captures
    from fl_privacy.report.risk_report import write_risk_page
    from fl_privacy.run_layout import RISK_REPORT, RISK_REPORT_PAGE

    options = AuditOptions(
        recipe=Recipe(args.local_lr, args.local_epochs, args.batch_size),
        budget=Budget(iterations=args.iterations, restarts=args.restarts, dlg_iterations=args.dlg_iterations,
                      seed=args.seed),
        mode=args.update_mode, input_shape=args.input_shape,
        rounds=tuple(args.rounds) if args.rounds else None, nodes=tuple(args.nodes) if args.nodes else None,
        max_images=args.max_images, bootstrap=args.bootstrap)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is fastest, and a shared CPU stays usable
    try:
        report = audit_captures(args.path, args.model, args.client_data, options, args.candidates)
    finally:
        torch.set_num_threads(threads)
    write_risk_page(args.path / RISK_REPORT_PAGE, report, args.path)
    log.info("summary: %s", json.dumps(report["summary"]))
    log.info("wrote %s; open %s", args.path / RISK_REPORT, args.path / RISK_REPORT_PAGE)


def _audit_captures_parser(commands) -> None:
    audit = commands.add_parser("audit-captures", help="attack the captures of your own Flower app "
                                "(fl_privacy.capture) and write DIR/risk_report.json and .html")
    audit.add_argument("path", type=Path, help="the folder given to capture_updates / record_partitions")
    audit.add_argument("--model", required=True, help="MODULE:FACTORY building the captured model")
    audit.add_argument("--client-data", default=None,
                       help="MODULE:FUNC(partition_id, num_partitions) -> a node's own data, for scoring")
    audit.add_argument("--candidates", default=None,
                       help="MODULE:FUNC() -> (images N x C x H x W in [0, 1], labels N): records some node "
                            "may have trained on; runs the update membership attacks on every capture")
    count, positive = _positive(int), _positive(float)
    audit.add_argument("--bootstrap", type=count, default=1000,
                       help="bootstrap resamples for the membership AUC / TPR intervals")
    audit.add_argument("--update-mode", choices=("fedsgd", "fedavg"), default=None,
                       help="skip detection (default: detected per reply)")
    audit.add_argument("--local-lr", type=positive, default=0.01, help="assumed FedAvg local learning rate")
    audit.add_argument("--local-epochs", type=count, default=1, help="assumed FedAvg local epochs")
    audit.add_argument("--batch-size", type=count, default=32, help="assumed FedAvg local batch size")
    audit.add_argument("--input-shape", type=_shape, default=None, help="C,H,W (default: probed)")
    audit.add_argument("--rounds", type=int, nargs="*", help="only these rounds")
    audit.add_argument("--nodes", type=int, nargs="*", help="only these node ids")
    audit.add_argument("--max-images", type=count, default=64, help="larger updates: reported, not attacked")
    audit.add_argument("--iterations", type=count, default=200, help="Inverting Gradients' Adam steps")
    audit.add_argument("--restarts", type=count, default=2, help="Inverting Gradients' restarts")
    audit.add_argument("--dlg-iterations", type=count, default=5, help="DLG's outer L-BFGS steps")
    audit.add_argument("--seed", type=int, default=0, help="the attack's seed")


def _fl_audit_table(args: argparse.Namespace) -> None:
    from fl_privacy.report.tables import fl_audit_table

    print(fl_audit_table(args.path, args.by))


def parser() -> argparse.ArgumentParser:
    """The `fl-privacy` argument parser (`run` is handed to Hydra before parsing)."""
    top = argparse.ArgumentParser(prog="fl-privacy", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="an experiment: fl-privacy run +experiment=NAME KEY=VALUE ...")
    for name, (description, node, _) in RUN_COMMANDS.items():
        command = commands.add_parser(name, help=description)
        command.add_argument("path", type=Path, help="a finished run directory")
        command.add_argument("overrides", nargs="*", help=f"{node}.KEY=VALUE")
    report = commands.add_parser("report", help="tables and plots of a run or multirun directory")
    report.add_argument("path", type=Path, help="a run or multirun directory (multirun/DATE/TIME)")
    report.add_argument("--out", type=Path, default=None, help="output folder (default PATH/report)")
    report.add_argument("--metric", default=None, help="attack-success column of the frontier plot")
    report.add_argument("--color", default=None, help="column that colours the frontier")
    for name, per_round in (("attack-table", True), ("membership-table", False), ("dp-audit-table", False),
                            ("fl-audit-table", False)):
        table = commands.add_parser(name, help=f"a Markdown {name.replace('-', ' ')} over finished runs")
        table.add_argument("path", type=Path, help="a run or multirun directory")
        table.add_argument("--by", nargs="*", default=[], help="config keys that label the rows")
        if per_round:
            table.add_argument("--per-round", action="store_true", help="one row per capture round")
        else:
            table.add_argument("--over-runs", action="store_true",
                               help="one row per label and attack: every run's AUC and the mean over "
                               "the runs (seeds) with its 95%% bootstrap CI")
            table.add_argument("--updates", action="store_true",
                               help="the server's per-round update attack (mia/updates.json), mean over runs")
    gan = commands.add_parser("gan-table", help="the GAN attribution table: per arm, means over seeds of "
                              "gan-eval's final round (Markdown)")
    gan.add_argument("path", type=Path, help="a multirun directory of evaluated GAN runs")
    par_gan = commands.add_parser("par-gan-table", help="the PAR-GAN table: per seed and k, then per k the "
                                  "mean and the statistics standard's 95%% CI over seeds (Markdown)")
    par_gan.add_argument("path", type=Path, nargs="+", help="runs or multiruns of kind=par_gan")
    par_gan.add_argument("--matched", action="store_true", help="compare the k at matched sample quality "
                         "(runs with defense.par_gan.quality_checkpoints; report/par_gan_matched.py)")
    _audit_captures_parser(commands)
    return top


def _gan_table(args: argparse.Namespace) -> None:
    from fl_privacy.report.gan_table import gan_table

    print(gan_table(args.path))


def _par_gan_table(args: argparse.Namespace) -> None:
    if args.matched:
        from fl_privacy.report.par_gan_matched import matched_quality_table

        print(matched_quality_table(*args.path))
        return
    from fl_privacy.report.par_gan_table import par_gan_table

    print(par_gan_table(*args.path))


TABLE_COMMANDS = {"report": _report, "attack-table": _attack_table, "membership-table": _membership_table,
                  "dp-audit-table": _dp_audit_table, "fl-audit-table": _fl_audit_table,
                  "gan-table": _gan_table, "par-gan-table": _par_gan_table, "audit-captures": _audit_captures}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch a command; bad settings or an unreadable run file end with one line and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        from fl_privacy import run

        sys.argv = ["fl-privacy run", *argv[1:]]
        run.main()
        return 0
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s][%(levelname)s] - %(message)s")
    try:
        if args.command in RUN_COMMANDS:
            _, node, execute = RUN_COMMANDS[args.command]
            execute(args.path, run_settings(args.path, node, args.overrides))
        else:
            TABLE_COMMANDS[args.command](args)
    except (ConfigError, RunFileError, DataNotFoundError) as error:
        log.error("%s", error)
        return 2
    return 0
