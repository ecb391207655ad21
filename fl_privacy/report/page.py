"""The report's table (CSV) and its one self-contained HTML page (images as base64 data URIs)."""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path

from fl_privacy.report.jobs import Job
from fl_privacy.results import COMPLETED, FAILED, INTERRUPTED, RUNNING

FIXED_COLUMNS = ("job", "status")
FINAL_COLUMNS = ("accuracy", "loss", "best_accuracy", "rounds", "wall_seconds")
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; position: sticky; top: 0; }
tr.failed td { background: #fff1e6; } tr.missing td { background: #fde8e8; color: #999; }
.table { overflow-x: auto; max-width: 100%; } figure { display: inline-block; margin: 0.5em 1em 0.5em 0; }
figcaption { font-size: 12px; color: #555; } img { max-width: 100%; } code { background: #f5f5f5; }
"""


def table_rows(jobs: list[Job]) -> tuple[list[str], list[dict]]:
    """Column names and one row per job: overrides, status, final metrics, flat attack/defense numbers."""
    override_keys = list(dict.fromkeys(key for job in jobs for key in job.overrides))
    measured = sorted({key for job in jobs for key in job.values} - set(FINAL_COLUMNS))
    columns = [*FIXED_COLUMNS, *override_keys, *FINAL_COLUMNS, *measured]
    rows = [{"job": job.name, "status": job.status, **job.overrides, **job.values} for job in jobs]
    return columns, rows


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def csv_text(columns: list[str], rows: list[dict]) -> str:
    """The table as CSV (missing cells empty, floats to 6 significant digits)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode("ascii")


def _figure(png: Path, caption: str) -> str:
    return (f'<figure><img src="{data_uri(png)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _html_table(columns: list[str], rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        f'<tr class="{html.escape(str(row["status"]))}">'
        + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows)
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def html_page(title: str, jobs: list[Job], columns: list[str], rows: list[dict],
              plots: list[tuple[Path, str]], notes: list[str]) -> str:
    """One HTML page: notes, the table, the report's plots and every job's own figures, all inline."""
    counts = {status: sum(job.status == status for job in jobs)
              for status in (COMPLETED, FAILED, INTERRUPTED, RUNNING, "missing")}
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             "<p>" + ", ".join(f"{n} {status}" for status, n in counts.items()) + " jobs.</p>"]
    parts += [f"<p>{html.escape(note)}</p>" for note in notes]
    parts += ["<h2>Jobs</h2>", _html_table(columns, rows), "<h2>Plots</h2>"]
    parts += [_figure(png, caption) for png, caption in plots] or ["<p>No rounds recorded yet.</p>"]
    with_images = [job for job in jobs if job.images]
    if with_images:
        parts.append("<h2>Figures of the jobs</h2>")
        for job in with_images:
            parts.append(f"<h3>job {html.escape(job.name)}</h3>")
            parts += [_figure(png, str(png.relative_to(job.path))) for png in job.images]
    parts.append("</body></html>\n")
    return "\n".join(parts)
