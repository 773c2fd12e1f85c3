"""Radiogenomics commands: shape features of a tree of masks, and their association with genomic subtypes.

:func:`shape_tree` reads every case's tumour mask (Kaggle folders or NIfTI masks, manual or
predicted) and writes one row of :mod:`flairseg.shape` features per case to a CSV.
:func:`associate` joins such a CSV with a clinical table (the dataset's ``data.csv``: one row
per patient, genomic cluster columns), tests each declared hypothesis (feature x cluster
column) with a median split and Fisher's exact test (:mod:`flairseg.association`),
applies Bonferroni's correction over the declared hypotheses and writes the table as CSV
and Markdown plus one box plot per hypothesis.

Cases are matched to clinical rows by their case id, or by its patient part: TCGA case
ids carry the scan date (``TCGA_CS_4941_19960909``), ``data.csv`` does not (``TCGA_CS_4941``).
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from flairseg.association import contingency, fisher_exact_2xk
from flairseg.cases import patient_id
from flairseg.errors import InputError
from flairseg.io import index_cases, read_mask
from flairseg.outputs import atomic_dir, atomic_file, check_output, distinct_names, markdown_text
from flairseg.shape import ShapeFeatures, shape_features

FEATURES = ("asd", "mf", "bevr", "volume")
MAX_POINTS = 100_000  # boundary points of a slice's outline: far past what the features need, a bound on memory
# a missing cluster, as tables and spreadsheets write it (Excel's #N/A among them), compared in lower case
MISSING_LABELS = ("", "na", "n/a", "#n/a", "#na", "nan", "none", "null", "-")


@dataclass(frozen=True)
class Hypothesis:
    """One pre-declared test: a shape feature against a genomic cluster column."""

    feature: str
    column: str

    def __str__(self) -> str:
        return f"{self.feature}:{self.column}"


# Buda et al. (2019) tested 10 pre-declared feature x subtype pairs; the abstract names BEVR
# against all five tested subtypes (RNASeq, methylation, copy number, miRNA and the IDH/1p19q-
# based cluster of clusters, COC), MF x RNASeq and ASD x RNASeq. The paper's full list is not at
# hand: the last three pairs here (ASD x COC, after the authors' 2017 pilot, MF x COC and
# MF x methylation) are this project's declared choice. See docs/radiogenomics.md.
PAPER_HYPOTHESES = (
    Hypothesis("bevr", "RNASeqCluster"),
    Hypothesis("bevr", "MethylationCluster"),
    Hypothesis("bevr", "CNCluster"),
    Hypothesis("bevr", "miRNACluster"),
    Hypothesis("bevr", "COCCluster"),
    Hypothesis("mf", "RNASeqCluster"),
    Hypothesis("asd", "RNASeqCluster"),
    Hypothesis("asd", "COCCluster"),
    Hypothesis("mf", "COCCluster"),
    Hypothesis("mf", "MethylationCluster"),
)


def parse_hypothesis(text: str) -> Hypothesis:
    """``FEATURE:COLUMN`` (e.g. ``bevr:RNASeqCluster``) -> Hypothesis; the feature must be known."""
    feature, sep, column = text.partition(":")
    feature = feature.strip().lower()
    if not sep or not column.strip():
        raise InputError(f"a hypothesis is FEATURE:COLUMN (e.g. bevr:RNASeqCluster), not {text!r}")
    if feature not in FEATURES:
        raise InputError(f"unknown feature {feature!r} in hypothesis {text!r}; choose one of {', '.join(FEATURES)}")
    return Hypothesis(feature, column.strip())


# ---------------------------------------------------------------------------- features


@dataclass(frozen=True)
class ShapeRun:
    """What :func:`shape_tree` wrote: one feature row per case, and the cases with an empty mask."""

    rows: list[ShapeFeatures]
    out: Path
    empty: list[str]


def _fmt(value: float | int | str) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


_FEATURE_NAMES = [f.name for f in fields(ShapeFeatures)]  # the header of the table `shape` writes


def _is_features_table(path: Path) -> bool:
    """Whether the file ``path`` begins with the header of the table `shape` writes (a spreadsheet's byte-order mark
    aside)."""
    with path.open("rb") as handle:
        header = handle.readline(1 << 16).removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n")
    return header == ",".join(_FEATURE_NAMES).encode()


def shape_tree(
    masks: str | os.PathLike,
    out: str | os.PathLike,
    sectors: int = 10,
    smoothing: float = 0.1,
    points: int = 360,
    overwrite: bool = False,
    quiet: bool = False,
) -> ShapeRun:
    """Shape features of every case's mask under ``masks`` written to the CSV ``out``.

    Features are in millimetres where the masks carry a spacing (volumes) and in voxels
    otherwise (Kaggle TIFFs); ASD, MF and BEVR have no unit. A case with an empty mask gets
    an empty row (its features are undefined) and is listed in the result.
    """
    from tqdm import tqdm

    if not (8 <= points <= MAX_POINTS and 1 <= sectors <= points // 2 and 0 < smoothing < 1):
        raise InputError(
            f"need 8 <= points <= {MAX_POINTS:,}, 1 <= sectors <= points / 2 (two boundary points a sector) and "
            f"0 < smoothing < 1 (got points {points}, sectors {sectors}, smoothing {smoothing})"
        )
    masks = Path(masks)
    if not masks.exists():
        raise InputError(f"mask path {masks} does not exist")
    out_path = check_output(out, [masks], overwrite, writes="file", is_own_file=_is_features_table)
    if out_path.suffix.lower() != ".csv":
        raise InputError(f"the features file must end in .csv, not {out_path.name!r}")
    seen = index_cases(masks, masks="only")
    rows, empty = [], []
    for case_id in tqdm(sorted(seen), desc="shape", unit="case", disable=quiet, file=sys.stderr):
        case = read_mask(seen[case_id], what="mask")
        if case.mask is None or not case.mask.any():
            empty.append(case_id)
        rows.append(
            shape_features(
                case_id, case.mask, case.geometry.spacing, sectors=sectors, smoothing=smoothing, points=points
            )
        )
    with atomic_file(out_path, overwrite, _is_features_table) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_FEATURE_NAMES)
        for row in rows:
            writer.writerow([_fmt(v) for v in asdict(row).values()])
    return ShapeRun(rows, out_path, empty)


# ---------------------------------------------------------------------------- association


@dataclass(frozen=True)
class AssociationRow:
    """The result of one hypothesis."""

    feature: str
    column: str
    cases: int  # cases with both a finite feature and a label
    levels: tuple[str, ...]  # the column's clusters, in table order
    low: tuple[int, ...]  # cases at or below the median, per cluster
    high: tuple[int, ...]  # cases above the median, per cluster
    p: float
    p_bonferroni: float
    significant: bool


@dataclass(frozen=True)
class Association:
    rows: list[AssociationRow]
    out: Path
    matched: int  # cases of the features file found in the clinical table
    unmatched: list[str]  # cases of the features file with no clinical row
    alpha: float


LINE = "\0line"  # the key under which a read row keeps its line number (no CSV header holds a NUL)


def _read_csv(path: Path, what: str) -> tuple[list[str], list[dict[str, str]]]:
    if not path.exists():
        raise InputError(f"{what} file {path} does not exist")
    if not path.is_file():
        raise InputError(f"{what} file {path} is not a file (a folder or a pipe?); give the CSV file")
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                if None in row:  # cells beyond the header's columns, which DictReader would set aside
                    raise InputError(
                        f"{what} file {path}, line {reader.line_num}: {len(reader.fieldnames or []) + len(row[None])} "
                        f"cells, more than the header's {len(reader.fieldnames or [])} columns"
                    )
                rows.append({**row, LINE: str(reader.line_num)})
            header = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read {what} file {path}: {exc}") from None
    if not header or not rows:
        raise InputError(f"{what} file {path} has no header or no rows")
    _refuse_repeated_columns(header, what, path)
    return header, rows


def _refuse_repeated_columns(header: list[str], what: str, path: Path) -> None:
    """Refuse a header naming a column twice (which one holds the data?); unnamed columns (trailing commas) may
    repeat."""
    seen: set[str] = set()
    for name in (column.strip() for column in header):
        if name in seen:
            raise InputError(f"{what} file {path} names the column {name!r} twice in its header; keep one")
        if name:
            seen.add(name)


def _unique_by(rows: list[dict[str, str]], column: str, what: str, path: Path) -> dict[str, dict[str, str]]:
    """Rows keyed by ``column``; an id on two rows that differ is refused (which one holds the truth?)."""
    by_id: dict[str, dict[str, str]] = {}
    for row in rows:
        key = (row[column] or "").strip()
        first = by_id.setdefault(key, row)
        if _without_line(first) != _without_line(row):
            raise InputError(
                f"{what} file {path} lists {column} {key!r} on lines {first[LINE]} and {row[LINE]} with different "
                "values; keep one row per id"
            )
    return by_id


def _without_line(row: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in row.items() if k != LINE}


def read_features(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """A features CSV (as written by :func:`shape_tree`) -> {case id: {feature: value}}; empty cells are NaN."""
    path = Path(path)
    header, rows = _read_csv(path, "features")
    if "case_id" not in header:
        raise InputError(f"features file {path} has no case_id column; make it with `flairseg shape`")
    table: dict[str, dict[str, float]] = {}
    for row in _unique_by(rows, "case_id", "features", path).values():
        number = row[LINE]
        values = {}
        for name in FEATURES:
            if name not in header:
                continue
            text = (row.get(name) or "").strip()
            try:
                values[name] = float(text) if text else math.nan
            except ValueError:
                raise InputError(f"features file {path}, line {number}: {name} is {text!r}, not a number") from None
        table[row["case_id"]] = values
    return table


def _label(value: str | None) -> str | None:
    """A cluster label as a table gives it: None when missing; a whole number written as a float (``1.0``, as a
    spreadsheet exports a numeric column) as the integer it is, so that ``1`` and ``1.0`` are one cluster."""
    text = (value or "").strip()
    if text.lower() in MISSING_LABELS:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() and "." in text and abs(number) < 2**53 else text


def _group_plot(
    feature: str, column: str, values: Sequence[float], labels: Sequence[str | None], p: float, path: Path
) -> None:
    from flairseg.figures import grouped_boxplot

    groups: dict[str, list[float]] = {}
    for value, label in zip(values, labels):
        if label is not None and math.isfinite(value):
            groups.setdefault(label, []).append(value)
    ordered = {f"{column} {k}": groups[k] for k in sorted(groups, key=_level_order)}
    finite = [v for v in values if math.isfinite(v)]
    grouped_boxplot(
        ordered,
        path,
        title=f"{feature.upper()} by {column} (Fisher p = {p:.2g})",
        ylabel=feature.upper(),
        split=float(np.median(finite)) if finite else None,
    )


def _level_order(level: str) -> tuple[int, float | str]:
    try:
        return (0, float(level))
    except ValueError:
        return (1, level)


def _markdown(rows: Sequence[AssociationRow], alpha: float, matched: int, unmatched: Sequence[str]) -> str:
    m = len(rows)
    lines = [
        "# Shape features and genomic subtypes",
        "",
        f"{matched} cases with clinical data ({len(unmatched)} without). Each feature is split at its median "
        f"(above: high); Fisher's exact test (2 x k exact) per hypothesis, cases without a label dropped per test; "
        f"Bonferroni over {m} hypotheses: significant when p < {alpha:g} / {m} = {alpha / m:.2g}.",
        "",
        "| feature | subtype | cases | clusters | low (per cluster) | high (per cluster) | p | p (Bonferroni) | "
        "significant |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        levels, low, high = (
            " / ".join(map(markdown_text, values)) for values in (r.levels, map(str, r.low), map(str, r.high))
        )
        significant = "yes" if r.significant else ""
        lines.append(
            f"| {r.feature.upper()} | {markdown_text(r.column)} | {r.cases} | {levels} | {low} | {high} | {r.p:.3g} | "
            f"{r.p_bonferroni:.3g} | {significant} |"
        )
    return "\n".join(lines) + "\n"


def _check_hypotheses(
    hypotheses: Sequence[Hypothesis], header: list[str], by_case: dict, features: Path, clinical: Path
) -> None:
    """Refuse a hypothesis whose clinical column or feature is missing, or given twice (Bonferroni's correction
    would count it twice)."""
    for index, h in enumerate(hypotheses):
        if h in hypotheses[:index]:
            raise InputError(f"hypothesis {h} is given twice; give each hypothesis once")
        if h.column not in header:
            raise InputError(f"clinical file {clinical} has no column {h.column!r} for hypothesis {h}")
        if not any(h.feature in values for values in by_case.values()):
            raise InputError(f"features file {features} has no {h.feature!r} column for hypothesis {h}")


def _match_cases(
    by_case: dict, rows: list[dict[str, str]], id_column: str, features: Path, clinical: Path
) -> tuple[list[tuple[str, dict[str, str]]], list[tuple[str, None]]]:
    """Each case's clinical row, by case id or its patient id: (matched, unmatched); none matched is refused."""
    clinical_rows = _unique_by(rows, id_column, "clinical", clinical)
    matched, unmatched, taken = [], [], {}
    for case_id in sorted(by_case):
        key = case_id if case_id in clinical_rows else patient_id(case_id)
        row = clinical_rows.get(key)
        (matched if row is not None else unmatched).append((case_id, row))
        if row is not None and taken.setdefault(key, case_id) != case_id:
            raise InputError(
                f"cases {taken[key]} and {case_id} of {features} both take the row of {key} in {clinical}: one "
                "patient would count twice in the test; keep one case per patient in the features file"
            )
    if not matched:
        raise InputError(
            f"no case of {features} has a row in {clinical} (matched by {id_column}, e.g. {sorted(by_case)[0]!r})"
        )
    return matched, unmatched


def _write_table(results: list[AssociationRow], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f.name for f in fields(AssociationRow)])
        for r in results:
            low, high = " ".join(map(str, r.low)), " ".join(map(str, r.high))
            p_values = [f"{r.p:.6g}", f"{r.p_bonferroni:.6g}"]
            writer.writerow([r.feature, r.column, r.cases, " ".join(r.levels), low, high, *p_values, r.significant])


def _plot_key(hypothesis: Hypothesis) -> str:
    """``FEATURE_COLUMN``: a hypothesis's box plot is named after it (made safe by :func:`distinct_names`)."""
    return f"{hypothesis.feature}_{hypothesis.column}"


def _test_hypothesis(
    h: Hypothesis, values: Sequence[float], labels: Sequence[str | None], alpha: float, tests: int
) -> AssociationRow:
    """One hypothesis's median split and Fisher's exact test, Bonferroni-corrected over ``tests`` hypotheses."""
    if not any(label is not None and math.isfinite(value) for value, label in zip(values, labels)):
        raise InputError(
            f"hypothesis {h} has no case with both a {h.feature} value and a {h.column} label (empty masks give "
            "no features, missing labels no level); drop it, or give cases that have both"
        )
    table, levels = contingency(values, labels)
    p = fisher_exact_2xk(table, f"hypothesis {h}")
    low, high = tuple(map(int, table[0])), tuple(map(int, table[1]))
    bonferroni, significant = min(1.0, p * tests), p < alpha / tests
    return AssociationRow(
        h.feature, h.column, int(table.sum()), tuple(map(str, levels)), low, high, p, bonferroni, significant
    )


def associate(
    features: str | os.PathLike,
    clinical: str | os.PathLike,
    out: str | os.PathLike,
    hypotheses: Sequence[Hypothesis] = PAPER_HYPOTHESES,
    alpha: float = 0.05,
    id_column: str = "Patient",
    plots: bool = True,
    overwrite: bool = False,
) -> Association:
    """Test each hypothesis on the cases of ``features`` found in ``clinical``; write the report folder ``out``.

    The folder holds ``associations.csv``, ``associations.md`` and ``boxplots/FEATURE_COLUMN.png``, a name made
    safe (:func:`~flairseg.outputs.safe_name`: a column name is never a path); hypotheses whose plot names would
    coincide are refused before any work.
    """
    if not hypotheses:
        raise InputError("no hypotheses to test")
    if not 0 < alpha < 1:
        raise InputError(f"alpha must lie in (0, 1), not {alpha}")
    features, clinical = Path(features), Path(clinical)
    out_path = check_output(out, [features, clinical], overwrite, kind="association report")
    by_case = read_features(features)
    header, rows = _read_csv(clinical, "clinical")
    if id_column not in header:
        raise InputError(
            f"clinical file {clinical} has no {id_column!r} column (columns: {', '.join(header)}); pass --id-column"
        )
    _check_hypotheses(hypotheses, header, by_case, features, clinical)
    matched, unmatched = _match_cases(by_case, rows, id_column, features, clinical)
    plot_names = distinct_names(map(_plot_key, hypotheses), "box plot") if plots else {}
    results = []
    with atomic_dir(out_path, mark="association report", replace=overwrite) as tmp:
        for h in hypotheses:
            values = [by_case[c].get(h.feature, math.nan) for c, _ in matched]
            labels = [_label(row[h.column]) for _, row in matched]
            results.append(_test_hypothesis(h, values, labels, alpha, len(hypotheses)))
            if plots:
                plot = tmp / "boxplots" / f"{plot_names[_plot_key(h)]}.png"
                _group_plot(h.feature, h.column, values, labels, results[-1].p, plot)
        _write_table(results, tmp / "associations.csv")
        (tmp / "associations.md").write_text(_markdown(results, alpha, len(matched), [c for c, _ in unmatched]))
    return Association(results, out_path, len(matched), [c for c, _ in unmatched], alpha)


def significant_summary(result: Association) -> str:
    """One line for the command's summary: how many hypotheses, which are significant."""
    hits = [f"{r.feature.upper()} x {r.column} (p {r.p:.2g})" for r in result.rows if r.significant]
    smallest = min(result.rows, key=lambda r: r.p)
    return (
        f"{len(result.rows)} hypotheses on {result.matched} cases; significant after Bonferroni: "
        f"{', '.join(hits) if hits else 'none'}; smallest p {smallest.p:.2g} ({smallest.feature.upper()} x "
        f"{smallest.column})"
    )
