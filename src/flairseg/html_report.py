"""``report.html``: one self-contained page per run for checking the masks by eye.

It is written from what the run already left in its report folder: the QC table
(``qc.csv``: volumes, components, flags), each task's metrics table when truth masks were given
(``metrics.csv``, ``metrics_brain.csv``: Dice, HD95), one overlay montage per case
(``montages/<case>[_mask|_brain].png``) and the Dice distribution figures. For runs of up to
EMBEDDED_CASES cases the images are embedded (data URIs), so the file opens from disk with no
network and can be mailed as it is; larger runs link the montages (``montages/...``, the page
then needs its folder), so the page stays small enough for a browser. Flagged cases come first;
a click on a column heading sorts the table by it (a few lines of plain script).
"""

from __future__ import annotations

import base64
import csv
import html
from collections.abc import Mapping
from pathlib import Path

from flairseg.config import TASK_SPECS
from flairseg.outputs import ReportFolder, atomic_file

EMBEDDED_CASES = 50  # larger runs link their montages instead: about 0.5 MB each for real scans

LEGEND_WITH_TRUTH = (
    "outlines: <b style='color:#4060ff'>manual</b>, <b style='color:#ff3030'>model</b>, "
    "<b style='color:#00a000'>both</b>"
)
LEGEND_MODEL_ONLY = "outline: <b style='color:#ff3030'>model</b>"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
td:first-child, th:first-child, td.flags { text-align: left; }
tr.flagged td.flags { color: #b00000; font-weight: bold; }
section { margin: 2em 0; }
img { max-width: 100%; image-rendering: pixelated; }
"""

_SORT_SCRIPT = """
document.querySelectorAll('#cases th').forEach(function (th, column) {
  th.addEventListener('click', function () {
    var body = document.querySelector('#cases tbody');
    var rows = Array.from(body.rows);
    var down = th.dataset.order !== 'ascending';
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
      var nx = parseFloat(x), ny = parseFloat(y);
      var order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return down ? order : -order;
    });
    th.dataset.order = down ? 'ascending' : 'descending';
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _read_table(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _image(path: Path) -> str:
    return f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _montage(report: Path, case: str, task: str) -> Path | None:
    """The case's montage: predict names it by case and task, evaluate by case."""
    keys = ([ReportFolder.key(case, task)] if task in TASK_SPECS else []) + [case]
    return next((path for path in map(ReportFolder(report).montage, keys) if path.is_file()), None)


def _metrics(report: Path, task: str = "abnormality") -> dict[str, dict[str, str]]:
    """``task``'s metrics rows by case (evaluate and demo write theirs under the plain names)."""
    return {row["case_id"]: row for row in _read_table(ReportFolder(report).scores("metrics.csv", task))}


def _with_metrics(row: dict[str, str], metrics: dict[str, dict[str, str]]) -> dict[str, str]:
    scored = metrics.get(row["case"], {})
    return {**row, "dice": scored.get("dice", ""), "hd95": scored.get("hd95", ""), "units": scored.get("units", "")}


def case_rows(report: Path) -> list[dict[str, str]]:
    """One row per case and task: the QC columns joined with that task's metrics (Dice, HD95) where truth was given."""
    qc = _read_table(report / "qc.csv")
    if qc:
        metrics = {task: _metrics(report, task) for task in TASK_SPECS}
        rows = [_with_metrics(row, metrics[row["task"]]) for row in qc]
    else:  # evaluate and demo: one set of masks scored, no QC table
        metrics = _metrics(report)
        rows = [_with_metrics({"case": case, "task": "", "flags": "none"}, metrics) for case in metrics]
    return sorted(rows, key=lambda r: (r["flags"] == "none", r["case"], r["task"]))


def _columns(rows: list[dict[str, str]]) -> Mapping[str, str]:
    """Heading of each column shown, in order; columns that no row fills are left out."""
    units = {r["units"] for r in rows if r.get("units")}
    hd95 = f"HD95 ({units.pop()})" if len(units) == 1 else "HD95"
    wanted = {
        "case": "case",
        "task": "task",
        "volume_ml": "volume (mL)",
        "voxels": "voxels",
        "components_kept": "components kept",
        "components_removed": "components removed",
        "flags": "flags",
        "dice": "Dice",
        "hd95": hd95,
    }
    return {key: heading for key, heading in wanted.items() if any(r.get(key) not in (None, "") for r in rows)}


def render(report: Path, title: str) -> str:
    """The page's HTML text."""
    rows = case_rows(report)
    columns = _columns(rows)
    has_truth = any(r["dice"] for r in rows)
    flagged = sum(r["flags"] != "none" for r in rows)
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p>{len(rows)} case(s), {flagged} flagged (listed first). Click a column heading to sort.</p>",
        "<table id='cases'><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in columns.values())
        + "</tr></thead><tbody>",
    ]
    for index, row in enumerate(rows):
        cells = []
        for key in columns:
            value = row.get(key, "")
            shown = f"<a href='#case-{index}'>{html.escape(value)}</a>" if key == "case" else html.escape(value)
            css = " class='flags'" if key == "flags" else ""
            cells.append(f"<td{css} data-value='{html.escape(value, quote=True)}'>{shown}</td>")
        parts.append(f"<tr{' class=flagged' if row['flags'] != 'none' else ''}>{''.join(cells)}</tr>")
    parts.append("</tbody></table>")
    figures = [ReportFolder(report).scores("dice_distribution.png", task) for task in TASK_SPECS]
    figures = [path for path in figures if path.is_file()]
    if has_truth and figures:
        parts.append(
            "<h2>Dice distribution</h2>"
            + "".join(f"<img alt='Dice distribution' src='{_image(path)}'>" for path in figures)
        )
    parts.append(
        f"<h2>Cases</h2><p>{LEGEND_WITH_TRUTH if has_truth else LEGEND_MODEL_ONLY}; yellow numbers: slice numbers "
        "(from 1); "
        "R and L: the patient's right and left where the scan's orientation is known.</p>"
    )
    for index, row in enumerate(rows):
        montage = _montage(report, row["case"], row["task"])
        source = (
            ""
            if montage is None
            else _image(montage)
            if len(rows) <= EMBEDDED_CASES
            else html.escape(montage.relative_to(report).as_posix(), quote=True)
        )
        image = f"<img alt='overlay of {html.escape(row['case'])}' src='{source}'>" if montage else "<p>no overlay</p>"
        parts.append(
            f"<section id='case-{index}'><h3>{html.escape(row['case'])} {html.escape(row['task'])}"
            f" &mdash; flags: {html.escape(row['flags'])}</h3>{image}</section>"
        )
    parts.append(f"<script>{_SORT_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def write_html_report(report: Path, title: str) -> Path:
    """Write ``report/report.html`` (atomically) and return its path."""
    path = ReportFolder(report).html
    with atomic_file(path) as tmp:
        tmp.write_text(render(report, title), encoding="utf-8")
    return path
