"""Evaluate predicted masks against the truth: per-case metrics CSV, summary and figures.

Both trees are in the same layout: Kaggle case folders (``<CASE>_<k>_mask.tif``) or
folders of NIfTI masks (``<case>_mask.nii.gz``, or ``<case>.nii.gz`` when no file carries
the suffix); a case of one against the other is refused (:func:`~flairseg.cases.check_same_grid`).
Cases are matched by id; a truth case without a prediction is an error.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from flairseg.cases import Case, check_same_grid
from flairseg.config import TASK_SPECS
from flairseg.data import institution
from flairseg.errors import InputError
from flairseg.html_report import write_html_report
from flairseg.io import index_cases, read_case, read_mask
from flairseg.kaggle import read_kaggle_case, slice_files
from flairseg.metrics import CaseMetrics, Summary, case_metrics, summarise_cases
from flairseg.outputs import ReportFolder, atomic_dir, atomic_file, check_output, markdown_text

CONVENTIONS = (
    "Dice over all slices of a case at once; both masks empty -> 1, one empty -> 0. "
    "HD95: larger directed 95th-percentile surface distance, mm when spacing is known, else voxels; "
    "both empty -> 0, one empty -> undefined. Summaries leave undefined values out."
)


@dataclass(frozen=True)
class Evaluation:
    """What an evaluation produced: per-case rows, their summaries and the report folder."""

    rows: list[CaseMetrics]
    summary: dict[str, Summary]
    out: Path
    extra_predictions: list[str]


def _flair(truth: Case) -> np.ndarray | None:
    """The FLAIR channel of the truth case's images, if they are stored beside its masks."""
    source = truth.geometry.source
    if truth.geometry.format == "kaggle":
        try:
            image = read_kaggle_case(source, masks="ignore").image
        except InputError:
            return None
    else:
        stem = truth.case_id
        candidates = [source.with_name(stem + ext) for ext in (".nii.gz", ".nii")]
        found = next((c for c in candidates if c.is_file() and c != source), None)
        if found is None:
            return None
        image = read_case(found, masks="ignore").image
    if image is None or image.shape[:3] != truth.shape:
        return None
    return image[..., 1] if image.shape[-1] == 3 else image[..., 0]


def _write_csv(rows: Sequence[CaseMetrics], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0].as_row()))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.as_row().items()})


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _summary_markdown(rows: Sequence[CaseMetrics], summary: dict[str, Summary], title: str) -> str:
    dice = {row.case_id: row.dice for row in rows}
    median_case = min(dice, key=lambda c: abs(dice[c] - summary["dice"].median))
    mean_case = min(dice, key=lambda c: abs(dice[c] - summary["dice"].mean))
    unit = rows[0].units
    lines = [
        f"# {title}",
        "",
        f"{len(rows)} cases. {CONVENTIONS}",
        "",
        "| metric | n | mean | std | median | Q1 | Q3 | min | max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        label = {"hd95": f"hd95 ({unit})", "pred_volume": "pred volume", "truth_volume": "truth volume"}.get(name, name)
        values = (s.mean, s.std, s.median, s.q1, s.q3, s.minimum, s.maximum)
        lines.append(f"| {label} | {s.n} | " + " | ".join(_fmt(v) for v in values) + " |")
    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(institution(row.case_id), []).append(row.dice)
    if len(groups) > 1 or "" not in groups:
        lines += ["", "| institution | cases | Dice mean | Dice median |", "|---|---|---|---|"]
        for name, values in sorted(groups.items()):
            shown = markdown_text(name) or "other"
            lines.append(f"| {shown} | {len(values)} | {np.mean(values):.4f} | {np.median(values):.4f} |")
    worst = sorted(rows, key=lambda r: r.dice)[:5]
    lines += [
        "",
        f"Case nearest the mean Dice: {markdown_text(mean_case)} ({dice[mean_case]:.4f}); "
        f"median case: {markdown_text(median_case)} ({dice[median_case]:.4f}).",
        "",
        "Lowest Dice: " + ", ".join(f"{markdown_text(r.case_id)} ({r.dice:.4f})" for r in worst) + ".",
        "",
    ]
    return "\n".join(lines)


def write_report(
    rows: Sequence[CaseMetrics], folder: Path, title: str, figures: bool = True, task: str = "abnormality"
) -> dict[str, Summary]:
    """Write metrics.csv, summary.md, summary.json (and dice_distribution.png) into ``folder``, file by file
    atomically, under ``task``'s names (:meth:`ReportFolder.scores`).
    """
    from flairseg import figures as fig

    names = ReportFolder(folder)
    summary = dict(summarise_cases(rows))
    with atomic_file(names.scores("metrics.csv", task)) as tmp:
        _write_csv(rows, tmp)
    with atomic_file(names.scores("summary.md", task)) as tmp:
        tmp.write_text(_summary_markdown(rows, summary, title))
    record = {"cases": len(rows), "conventions": CONVENTIONS, **{k: asdict(v) for k, v in summary.items()}}
    with atomic_file(names.scores("summary.json", task)) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    if figures:
        fig.dice_distribution({r.case_id: r.dice for r in rows}, names.scores("dice_distribution.png", task))
    return summary


def write_case_table(name: str, key: str, rows: Sequence[dict[str, object]], report: Path) -> None:
    """One case's rows of the table ``name`` as ``report/<name>/<key>.csv`` (merged by :func:`merge_case_tables`).

    ``key`` names the case and its task (``<case>_mask``, ``<case>_brain``). A case's own file
    survives reruns that skip it, so the merged table always covers every case; no rows remove it.
    """
    path = ReportFolder(report).case_table(name, key)
    if not rows:
        path.unlink(missing_ok=True)
        return
    with atomic_file(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# the columns of each per-case table (:data:`flairseg.outputs.CASE_TABLES`) that the merge reads
CASE_TABLE_COLUMNS = {
    "metrics": tuple(f.name for f in fields(CaseMetrics)),
    "inputs": ("case", "task", "flair"),
    "qc": ("case", "task", "flags"),
    "components": ("case", "component", "kept"),
}


def read_case_tables(name: str, report: Path, key_suffix: str = "") -> list[dict[str, str]]:
    """Every case's rows of the table ``name`` (``report/<name>/*<key_suffix>.csv``), in the order of their keys, each
    file checked to be one :func:`write_case_table` wrote (:func:`_case_table_rows`)."""
    rows: list[dict[str, str]] = []
    for path in ReportFolder(report).case_tables(name, key_suffix):
        try:
            rows.extend(_case_table_rows(name, path))
        except FileNotFoundError:  # removed since it was listed, by a --part job whose case left the report
            continue
    return rows


def _case_table_rows(name: str, path: Path) -> list[dict[str, str]]:
    """The rows of one case's table, refused (a one-line InputError naming the file and the way out) unless it is
    UTF-8 CSV with the table's columns and one value per column in each of its rows (at least one: an empty table is
    never written), its metrics numbers and its components' ``kept`` yes or no."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows, header = list(reader), reader.fieldnames or []
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "unreadable"
        raise _broken_case_table(path, why) from None
    missing = [column for column in CASE_TABLE_COLUMNS[name] if column not in header]
    if missing or not rows:
        raise _broken_case_table(path, f"no {missing[0]} column" if missing else "no rows")
    if any(None in row or None in row.values() for row in rows):
        raise _broken_case_table(path, "a row whose values do not match the header")
    if not _values_of_their_kind(name, rows):
        raise _broken_case_table(path, "a value of the wrong kind")
    return rows


def _values_of_their_kind(name: str, rows: list[dict[str, str]]) -> bool:
    """Whether the values the merge reads are of their kind: metrics rows read back as :class:`CaseMetrics`, a
    component kept or not."""
    if name == "components":
        return all(row["kept"] in ("yes", "no") for row in rows)
    if name == "metrics":
        try:
            for row in rows:
                CaseMetrics.from_row(row)
        except ValueError:
            return False
    return True


def _broken_case_table(path: Path, why: str) -> InputError:
    """The error for a case's table that is not as flairseg wrote it: predicting its case again writes it anew (a
    case that is reused keeps its tables), and one of a case no longer predicted into the folder can go."""
    return InputError(
        f"{path} is not a table flairseg wrote ({why}); pass --overwrite to predict its case again, or delete the "
        "file if that case is no longer among the inputs"
    )


def merge_case_tables(names: Sequence[str], report: Path) -> dict[str, list[dict[str, str]]]:
    """Merge each table's ``report/<name>/*.csv`` into ``report/<name>.csv`` (no rows: no file) and return the rows by
    name; every case's table is read and checked before any merged table is written."""
    tables = {name: read_case_tables(name, report) for name in names}
    for name, rows in tables.items():
        path = ReportFolder(report).table(name)
        if not rows:
            path.unlink(missing_ok=True)  # a table whose every case left the report lists none of them
            continue
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with atomic_file(path) as tmp, tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
    return tables


def _refuse_one_tree_for_both(pred: Path, truth: Path) -> None:
    """Refuse a prediction and a truth that are one folder or file (links followed): masks scored against themselves
    are a perfect Dice 1 that says nothing (a slip of the shell history)."""
    if os.path.samefile(pred, truth):
        raise InputError(
            f"--pred {pred} and --truth {truth} are the same {'folder' if pred.is_dir() else 'file'}: every case "
            "would score Dice 1 against itself; give the predicted masks as --pred and the true masks as --truth"
        )


def _refuse_cases_of_both(pred_index: dict[str, Path], truth_index: dict[str, Path]) -> None:
    """Refuse a case of one tree that is, holds or lies in a case of the other (the prediction given as a case of the
    truth tree, or kept inside a truth case's folder): the masks of one would be read as the other's. A prediction
    folder kept in the truth's folder beside its cases is no case of it: allowed."""
    truth_cases = {Path(os.path.abspath(path)): case_id for case_id, path in truth_index.items()}
    pred_cases = {Path(os.path.abspath(path)): case_id for case_id, path in pred_index.items()}
    for ours, theirs, option, other in (
        (pred_cases, truth_cases, "--pred", "--truth"),
        (truth_cases, pred_cases, "--truth", "--pred"),
    ):
        for path, case_id in ours.items():
            shared = next((p for p in (path, *path.parents) if p in theirs), None)
            if shared is not None:
                raise InputError(
                    f"case {case_id} of {option} ({path}) is or lies in case {theirs[shared]} of {other} ({shared}): "
                    "the masks of one would be read as the other's; keep the predictions and the truth in separate "
                    "folders"
                )


def _refuse_a_case_for_both(pred_index: dict[str, Path], truth_index: dict[str, Path], suffix: str) -> None:
    """Refuse a prediction that is a truth mask, its own case's or another's: the truth's file or folder, or a mask
    slice that is one of the truth's (a Kaggle case folder of links or hard links to them, the folder itself linked
    or not). Compared as :func:`os.path.samefile` does, by device and inode, links followed: it would score its
    truth, or another case's, as a prediction."""
    truth_files = {
        _file_identity(path): (case_id, path)
        for case_id, truth_path in truth_index.items()
        for path in _mask_files_read(truth_path, suffix)
    }
    for case_id in truth_index:
        for path in _mask_files_read(pred_index[case_id], suffix):
            same = truth_files.get(_file_identity(path))
            if same is not None:
                whose = "its truth" if same[0] == case_id else f"the truth of case {same[0]}"
                raise InputError(
                    f"the prediction of case {case_id} ({path}) is {whose} {same[1]} (a link?): a truth mask would "
                    "be scored as a prediction; give the predicted masks as --pred"
                )


def _mask_files_read(case: Path, suffix: str) -> list[Path]:
    """A mask case's path (a NIfTI file or a Kaggle case folder) and, for a folder, the mask slices read from it."""
    return [case, *(path for _, path in sorted(slice_files(case, suffix).items()))] if case.is_dir() else [case]


def _file_identity(path: Path) -> tuple[int, int]:
    """What :func:`os.path.samefile` compares: the device and inode ``path`` leads to."""
    found = path.stat()
    return found.st_dev, found.st_ino


def evaluate(
    pred: str | os.PathLike,
    truth: str | os.PathLike,
    out: str | os.PathLike,
    overwrite: bool = False,
    figures: bool = True,
    quiet: bool = False,
    task: str = "abnormality",
) -> Evaluation:
    """Compare predicted masks with the truth and write ``metrics.csv``, ``summary.md``,
    ``summary.json``, ``dice_distribution.png`` and per-case ``gifs/`` and ``montages/``.

    ``task`` picks the masks of both trees: ``_mask`` files (abnormality) or ``_brain`` files (brain).

    The report folder appears complete or not at all.
    """
    from tqdm import tqdm

    from flairseg import figures as fig

    pred, truth = Path(pred), Path(truth)
    for path, what in ((pred, "prediction"), (truth, "truth")):
        if not path.exists():
            raise InputError(f"{what} path {path} does not exist")
    out_path = check_output(out, [pred, truth], overwrite, kind="evaluation report")
    _refuse_one_tree_for_both(pred, truth)
    suffix = TASK_SPECS[task].label_suffix  # brain masks and tumour masks are never compared with each other
    truth_index, pred_index = index_cases(truth, "only", suffix), index_cases(pred, "only", suffix)
    _refuse_cases_of_both(pred_index, truth_index)
    missing = sorted(set(truth_index) - set(pred_index))
    if missing:
        raise InputError(
            f"no prediction for {len(missing)} of {len(truth_index)} truth cases (e.g. {', '.join(missing[:3])})"
        )
    _refuse_a_case_for_both(pred_index, truth_index, suffix)
    extra = sorted(set(pred_index) - set(truth_index))
    rows: list[CaseMetrics] = []
    with atomic_dir(out_path, mark="evaluation report", replace=overwrite) as tmp:
        for case_id in tqdm(sorted(truth_index), desc="evaluate", unit="case", disable=quiet, file=sys.stderr):
            truth_case = read_mask(truth_index[case_id], suffix, "truth")
            pred_case = read_mask(pred_index[case_id], suffix, "prediction")
            check_same_grid(case_id, pred_case, truth_case, "prediction")
            rows.append(case_metrics(case_id, pred_case.mask, truth_case.mask, truth_case.geometry.spacing))
            if figures:
                flair = _flair(truth_case)
                background = flair if flair is not None else np.zeros(truth_case.shape, dtype=np.uint8)
                fig.outline_gif(background, truth_case.mask, pred_case.mask, ReportFolder(tmp).gif(case_id))
                fig.tumour_montage(background, truth_case.mask, pred_case.mask, ReportFolder(tmp).montage(case_id))
        summary = write_report(rows, tmp, f"Evaluation of {pred.name} against {truth.name}", figures=figures)
        if figures:
            write_html_report(tmp, f"Evaluation of {pred.name} against {truth.name}")
    return Evaluation(rows, summary, out_path, extra)
