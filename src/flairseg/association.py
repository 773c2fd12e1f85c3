"""Association of shape features with genomic subtypes: median split and Fisher's exact test.

Each feature is split at its median (values above the median are "high"; ties go low);
the 2 x k table of high/low against the k clusters of a genomic column is tested with
Fisher's exact test, generalised to 2 x k by exact enumeration (Freeman-Halton: the
p-value is the total probability, under fixed margins, of every table no more probable
than the observed one). Cases without a label are dropped per test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import gammaln

from flairseg.errors import InputError

_RELATIVE_TOLERANCE = 1e-7  # tables this close to the observed probability count as equally probable
MAX_TABLES = 5_000_000  # the exact test enumerates at most this many tables (16 bytes each, whatever their width)


def count_tables(columns: Sequence[int], row_total: int, cap: int = MAX_TABLES + 1) -> int:
    """How many first rows (a_1..a_k), 0 <= a_j <= c_j, sum to ``row_total`` (the tables the exact test enumerates),
    or ``cap`` when there are at least that many.

    ``ways[s]``, the rows of the columns so far summing to s, is kept at most ``cap`` (a sum of capped counts reaches
    the cap exactly when the true sum does), so the count costs k vectorised passes over ``row_total`` + 1 numbers
    however many tables there are.
    """
    ways = np.zeros(row_total + 1, dtype=np.int64)
    ways[0] = 1
    sums = np.arange(row_total + 1)
    for capacity in columns:
        running = np.concatenate(([0], np.cumsum(ways)))  # running[s + 1] = ways[0] + ... + ways[s]
        ways = np.minimum(running[sums + 1] - running[np.maximum(sums - capacity, 0)], cap)
    return int(ways[row_total])


def _log_choose(n: np.ndarray | float, k: np.ndarray | float) -> np.ndarray:
    return gammaln(np.asarray(n) + 1) - gammaln(np.asarray(k) + 1) - gammaln(np.asarray(n) - np.asarray(k) + 1)


def _log_weights(columns: Sequence[int], row_total: int) -> np.ndarray:
    """sum_j log C(c_j, a_j) of every first row (a_1..a_k), 0 <= a_j <= c_j, summing to ``row_total``, in no
    particular order (the test sums over them).

    The rows are built a column at a time as (sum so far, log weight so far) pairs, never as (tables, k) arrays: 16
    bytes a partial row whatever k is, and no more partial rows than whole ones (a partial row is kept only when the
    columns left can complete it). The largest column comes last and is not enumerated: its value is what the row
    total leaves, so the work grows with the tables, not with the tables times the largest column's patients.
    """
    *inner, last = sorted(columns)
    sums, logs = np.zeros(1, dtype=np.int64), np.zeros(1)
    room = np.append(np.cumsum([*inner, last][::-1])[::-1], 0)  # room[j]: the capacity of columns j..k
    for j, capacity in enumerate(inner):
        kept_sums, kept_logs = [], []
        for value, weight in zip(range(capacity + 1), _log_choose(capacity, np.arange(capacity + 1))):
            totals = sums + value
            keep = (totals <= row_total) & (totals + room[j + 1] >= row_total)
            kept_sums.append(totals[keep])
            kept_logs.append(logs[keep] + weight)
        sums, logs = np.concatenate(kept_sums), np.concatenate(kept_logs)
    rest = row_total - sums  # the last column's value; every partial row kept leaves one it can hold
    return logs + _log_choose(last, rest)


def _most_patients(clusters: int) -> int:
    """About the most patients whose exact test over ``clusters`` clusters stays within MAX_TABLES: the tables of
    patients spread evenly over the clusters, half of them above the median (the margins with the most tables for a
    number of patients), counted for ever more patients, doubling and then halving the step."""

    def fits(patients: int) -> bool:
        even = [patients // clusters + (j < patients % clusters) for j in range(min(patients, clusters))]
        return count_tables(even, patients // 2) <= MAX_TABLES

    fitting, step = 0, 1
    while fits(fitting + step):
        fitting, step = fitting + step, step * 2
    while step > 1:
        step //= 2
        if fits(fitting + step):
            fitting += step
    return fitting


def _too_many_tables(what: str, patients: int, clusters: int) -> InputError:
    """The refusal of a test whose tables are too many to enumerate, naming what makes them many and what fits."""
    most = _most_patients(clusters)
    if most < 2 * clusters:
        advice = (
            f"a column of {clusters} distinct values cannot be tested exactly with more than {most} patients: use a "
            "column of genomic clusters, a few values each shared by many patients"
        )
    else:
        advice = f"with {clusters} clusters it stays within that up to about {most:,} patients: test a random "
        advice += "subset of them, or a column of fewer clusters"
    return InputError(
        f"the exact test of {what} ({patients:,} patients in {clusters} clusters) would enumerate more than "
        f"{MAX_TABLES:,} tables, a number that grows with the patients and the clusters; {advice}"
    )


def fisher_exact_2xk(table: np.ndarray, what: str = "this table") -> float:
    """Two-sided exact p-value of a 2 x k contingency table (k >= 2) of non-negative counts; ``what`` names the
    table in a refusal of one with too many tables to enumerate."""
    table = np.asarray(table, dtype=np.int64)
    if table.ndim != 2 or table.shape[0] != 2 or table.shape[1] < 1 or (table < 0).any():
        raise ValueError(f"expected a 2 x k table of non-negative counts, got {table.tolist()}")
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    columns = list(map(int, table.sum(axis=0)))
    row_total, n = int(table[0].sum()), int(table.sum())
    if count_tables(columns, row_total) > MAX_TABLES:
        raise _too_many_tables(what, n, table.shape[1])
    log_p = _log_weights(columns, row_total) - _log_choose(n, row_total)
    observed = sum(float(_log_choose(c, a)) for c, a in zip(columns, table[0])) - _log_choose(n, row_total)
    p = np.exp(log_p[log_p <= observed + _RELATIVE_TOLERANCE]).sum()
    return float(min(1.0, p))


def median_split(values: Sequence[float]) -> np.ndarray:
    """True where a value is above the median of the finite values (ties and below: False)."""
    array = np.asarray(values, dtype=float)
    return array > np.median(array[np.isfinite(array)])


def _missing(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def contingency(values: Sequence[float], labels: Sequence[object]) -> tuple[np.ndarray, list[object]]:
    """2 x k table (rows: below/at, above the feature's median) against the sorted distinct labels.

    The median is taken over all cases with a finite feature; cases with a missing label
    or feature are then dropped from this table.
    """
    high = median_split(values)
    finite = np.isfinite(np.asarray(values, dtype=float))
    keep = [i for i, label in enumerate(labels) if finite[i] and not _missing(label)]
    kept_labels = [labels[i] for i in keep]
    levels = sorted(set(kept_labels), key=str)
    position = {level: j for j, level in enumerate(levels)}
    table = np.zeros((2, len(levels)), dtype=np.int64)
    for i, label in zip(keep, kept_labels):
        table[int(high[i]), position[label]] += 1
    return table, levels
