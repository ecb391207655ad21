"""The one-page risk report of `fl-privacy audit-captures` (self-contained HTML, grids inline): per round
and node what leaked, each finding tagged with its threat model in the SoK's taxonomy."""

from __future__ import annotations

import html
from pathlib import Path

from fl_privacy.report.page import STYLE, data_uri
from fl_privacy.results import write_text
from fl_privacy.run_layout import RISK_MEMBERSHIP_SCORES

EXTRA_STYLE = """
td { text-align: left; vertical-align: top; white-space: normal; max-width: 28em; }
.leak { color: #a00; font-weight: bold; } .safe { color: #060; } .na { color: #777; }
"""


def _share(entry: dict | None) -> str:
    if not entry:
        return "–"
    low, high = entry["ci95"]
    return f"{entry['hits']}/{entry['n']} = {entry['share']:.2f} [{low:.2f}, {high:.2f}]"


def _median(entry: dict | None) -> str:
    if not entry:
        return "–"
    low, high = entry["ci95"]
    return f"{entry['median']:.1f} dB [{low:.1f}, {high:.1f}] (n={entry['n']})"


def _leaked(finding: dict) -> str:
    """What leaked, in words: identified images and labels, or why the capture was not attacked."""
    if "not_attacked" in finding:
        return f"<span class='na'>not attacked: {html.escape(finding['not_attacked'])}</span>"
    attack = finding["attack"]
    lines = [f"restored labels: {html.escape(str(attack['restored_labels'][:32]))}"
             + ("…" if len(attack["restored_labels"]) > 32 else "")]
    scores = finding.get("scores")
    if scores:
        hits = scores["identification"]["hits"]
        css = "leak" if hits else "safe"
        lines.append(f"<span class='{css}'>identified images: {_share(scores['identification'])}</span>")
        lines.append(f"median PSNR: {_median(scores['median_psnr'])}")
        lines.append(f"label accuracy (matched): {_share(scores['label_accuracy'])}; label counts "
                     f"{scores['label_count_accuracy']:.2f}")
        for name, base in scores["baselines"].items():
            lines.append(f"baseline {name}: identified {_share(base['identification'])}, "
                         f"PSNR {_median(base['median_psnr'])}")
    else:
        lines.append("<span class='na'>not scored (no --client-data)</span>")
    lines.append(f"matching loss {attack['matching_loss']:.3g}, {attack['seconds']:.0f} s")
    return "<br>".join(lines)


def _auc(metrics: dict | None) -> str:
    if not metrics:
        return "–"
    low, high = metrics.get("auc_ci") or (None, None)
    interval = f" [{low:.2f}, {high:.2f}]" if low is not None else ""
    return f"{metrics['auc']:.2f}{interval}"


def _tpr(metrics: dict) -> str:
    value = metrics.get("tpr_at_1pct_fpr")
    if value is None:
        return f"n/a (needs ≥ 100 non-members, has {metrics['num_non_members']})"
    low, high = metrics.get("tpr_at_1pct_fpr_ci") or (None, None)
    return f"{value:.2f}" + (f" [{low:.2f}, {high:.2f}]" if low is not None else "")


def _membership(report: dict) -> str:
    """The membership section: pooled figures per attack beside the negative control, and per capture."""
    member = report["summary"].get("membership")
    if not member:
        return ""
    parts = ["<h2>Membership inference on updates</h2>",
             f"<p>{html.escape(member['threat_model'])}; candidates from "
             f"{html.escape(member['candidates'])}."]
    if "pooled" not in member:
        note = ("no capture's node holds both members and non-members among the candidates"
                if "captures_scored" in member else "not scored (no --client-data)")
        parts.append(f" <span class='na'>{note}; scores in {RISK_MEMBERSHIP_SCORES}.</span></p>")
        return "".join(parts)
    parts.append(f" Member: {html.escape(member['member_rule'])}. Pooled over {member['captures_scored']} "
                 f"captures ({html.escape(member['pooling'])}); AUC with stratified bootstrap 95% CI; "
                 f"negative control: {html.escape(', '.join(member['control_kinds']))} (must be near "
                 "0.5).</p>")
    head = "".join(f"<th>{h}</th>" for h in ("attack", "AUC [95% CI]", "TPR @ 1% FPR",
                                             "members / non-members", "negative control AUC"))
    rows = [f"<tr><td>{html.escape(name)}</td><td>{_auc(metrics)}</td><td>{_tpr(metrics)}</td>"
            f"<td>{metrics['num_members']} / {metrics['num_non_members']}</td>"
            f"<td>{_auc(member['control_pooled'][name])}</td></tr>"
            for name, metrics in member["pooled"].items()]
    parts.append(f"<div class='table'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}"
                 "</tbody></table></div>")
    names = list(member["pooled"])
    head = "".join(f"<th>{h}</th>" for h in ("round", "node (partition)", "members / non-members",
                                             *(f"{n} AUC" for n in names), "control"))
    rows = []
    for finding in report["findings"]:
        entry = finding.get("membership") or {}
        if "partition_id" not in entry:
            continue
        cells = ([f"<td>{_auc(entry['attacks'][n])} (control {_auc(entry['control']['attacks'][n])})</td>"
                  for n in names] if "attacks" in entry else
                 [f"<td class='na'>{html.escape(entry.get('not_scored', ''))}</td>"] * len(names))
        control = html.escape(entry["control"]["kind"]) if "control" in entry else "–"
        rows.append(f"<tr><td>{finding['round']}</td><td>{finding['node_id']} ({entry['partition_id']})</td>"
                    f"<td>{entry['num_members']} / {entry['num_non_members']}</td>{''.join(cells)}"
                    f"<td>{control}</td></tr>")
    parts.append(f"<div class='table'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}"
                 "</tbody></table></div>")
    return "".join(parts)


def _threat(finding: dict) -> str:
    threat = finding.get("threat_model")
    mode = finding["update_mode"]
    evidence = (f"{mode['mode']} ({mode['source']}: cosine(returned, sent) {mode['cosine']:.3f}, "
                f"relative change {mode['relative_change']:.3g})")
    if not threat:
        return html.escape(evidence)
    return "<br>".join(html.escape(line) for line in (
        f"who: {threat['attacker']}", f"sees: {'; '.join(threat['sees'])}", f"update mode: {evidence}",
        f"batch size: {threat['batch_size']}", f"SoK threat model {threat['sok_threat_model']}",
        f"SoK attack family: {threat['sok_attack']}"))


def risk_page(report: dict, root: Path) -> str:
    """The report as one HTML page; grids are read from `root` and inlined."""
    setup, summary = report["setup"], report["summary"]
    scores = summary.get("scores") or {}
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Federated learning risk report</title>",
             f"<style>{STYLE}{EXTRA_STYLE}</style></head><body>",
             "<h1>Federated learning risk report</h1>",
             f"<p>{summary['captures']} captured replies ({summary['fedavg']} FedAvg, {summary['fedsgd']} "
             f"FedSGD), {summary['attacked']} attacked, in {summary['seconds']:.0f} s.</p>"]
    if scores:
        parts.append("<p><b>Over all attacked images</b>: identified "
                     f"<span class='{'leak' if scores['identification']['hits'] else 'safe'}'>"
                     f"{_share(scores['identification'])}</span> (Wilson 95% CI); median PSNR "
                     f"{_median(scores['median_psnr'])} (bootstrap 95% CI); label accuracy "
                     f"{_share(scores['label_accuracy'])}; identified under the same rule: blank "
                     f"{_share(scores.get('blank_identification'))}, uniform noise "
                     f"{_share(scores.get('uniform_noise_identification'))}, class mean "
                     f"{_share(scores.get('class_mean_identification'))}, label-only guess "
                     f"{_share(scores.get('label_only_identification'))}.</p>")
    parts.append("<p>" + "<br>".join(html.escape(line) for line in (
        f"model: {setup['model']}, input {tuple(setup['input_shape'])} ({setup['input_shape_source']}), "
        f"{setup['num_classes']} classes",
        f"attack: {setup['attack']}",
        f"assumed FedAvg recipe: lr {setup['recipe']['lr']}, {setup['recipe']['epochs']} epoch(s), batches "
        f"of {setup['recipe']['batch_size']} ({setup['recipe_note']})",
        f"identification: {report['identification_rule']}",
        "taxonomy: Carletti et al., SoK: Gradient Inversion Attacks in Federated Learning, USENIX Security "
        "2025")) + "</p>")
    head = "".join(f"<th>{name}</th>" for name in ("round", "node (partition)", "examples", "threat model",
                                                    "what leaked", "truth | reconstruction"))
    rows = []
    for finding in report["findings"]:
        grid = finding.get("grid")
        image = (f"<img src='{data_uri(Path(root) / grid)}' alt='{html.escape(grid)}' "
                 "style='max-width:420px'>" if grid else "")
        partition = f" ({finding['partition_id']})" if "partition_id" in finding else ""
        rows.append(f"<tr><td>{finding['round']}</td><td>{finding['node_id']}{partition}</td>"
                    f"<td>{finding['num_examples']}</td><td>{_threat(finding)}</td><td>{_leaked(finding)}</td>"
                    f"<td>{image}</td></tr>")
    parts.append(f"<div class='table'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}"
                 "</tbody></table></div>")
    parts.append(_membership(report) + "</body></html>")
    return "".join(parts)


def write_risk_page(path: Path, report: dict, root: Path) -> Path:
    """Write `risk_page` atomically to `path`."""
    write_text(Path(path), risk_page(report, root))
    return Path(path)
