"""Fisher's exact test for 2 x k tables against scipy (2 x 2) and a brute-force enumeration (2 x k)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from flairseg.association import contingency, fisher_exact_2xk, median_split


def _brute(table: np.ndarray) -> float:
    columns, row = table.sum(axis=0), table[0].sum()
    n = table.sum()

    def prob(first: tuple[int, ...]) -> float:
        return math.prod(math.comb(int(c), a) for c, a in zip(columns, first)) / math.comb(int(n), int(row))

    observed = prob(tuple(table[0]))
    total = 0.0
    for first in itertools.product(*[range(int(c) + 1) for c in columns]):
        if sum(first) == row and prob(first) <= observed * (1 + 1e-7):
            total += prob(first)
    return total


@pytest.mark.parametrize("table", [[[3, 1], [1, 3]], [[10, 2], [3, 15]], [[0, 5], [6, 1]], [[12, 30], [31, 15]]])
def test_two_by_two_matches_scipy(table: list[list[int]]) -> None:
    assert fisher_exact_2xk(np.array(table)) == pytest.approx(stats.fisher_exact(table).pvalue, rel=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_two_by_k_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 7, size=(2, int(rng.integers(3, 5))))
    table[:, 0] += 1
    assert fisher_exact_2xk(table) == pytest.approx(_brute(table), rel=1e-9)


def test_median_split_and_contingency() -> None:
    high = median_split([1.0, 2.0, 3.0, 4.0, math.nan])
    assert high.tolist() == [False, False, True, True, False]
    table, levels = contingency([1.0, 2.0, 3.0, 4.0, math.nan], [1, 2, None, 2, 1])
    assert levels == [1, 2] and table.tolist() == [[1, 1], [0, 1]]  # case 3 (no label) and case 5 (no feature) dropped


def test_the_exact_enumeration_is_bounded() -> None:
    from flairseg.association import count_tables, fisher_exact_2xk
    from flairseg.errors import InputError

    assert count_tables([2, 3], 2) == 3  # (0,2) (1,1) (2,0)
    one_per_patient = np.ones((2, 60), dtype=int)  # a column with one value per patient
    with pytest.raises(InputError, match="a column of 60 distinct values cannot be tested exactly with more than 24"):
        fisher_exact_2xk(one_per_patient)


def test_a_refused_test_names_its_patients_and_clusters_and_how_many_patients_fit() -> None:
    """Few clusters over many patients have too many tables as well: the refusal says so, not that the column has too
    many values, and names the most patients the test of that many clusters takes."""
    from flairseg.association import MAX_TABLES, _most_patients, count_tables, fisher_exact_2xk
    from flairseg.errors import InputError

    def evenly(patients: int) -> int:  # the tables of patients spread evenly over 3 clusters, half above the median
        return count_tables([patients // 3 + (j < patients % 3) for j in range(3)], patients // 2)

    most = _most_patients(3)
    assert evenly(most) <= MAX_TABLES < evenly(most + 1)
    table = np.array([[1500, 1500, 1500], [1500, 1500, 1500]])
    with pytest.raises(InputError, match=rf"\(9,000 patients in 3 clusters\).*up to about {most:,} patients: test"):
        fisher_exact_2xk(table, "hypothesis bevr:RNASeqCluster")


def test_the_table_count_is_exact_below_its_cap_and_quick_above_it() -> None:
    import time

    from flairseg.association import MAX_TABLES, count_tables

    rng = np.random.default_rng(0)
    for _ in range(20):
        columns = rng.integers(1, 5, size=rng.integers(2, 5)).tolist()
        row = int(rng.integers(0, sum(columns) + 1))
        rows = [a for a in itertools.product(*(range(c + 1) for c in columns)) if sum(a) == row]
        assert count_tables(columns, row) == len(rows)
        assert count_tables(columns, row, cap=3) == min(len(rows), 3)
    start = time.process_time()
    assert count_tables([1] * 4000, 2000) == MAX_TABLES + 1  # C(4000, 2000), a 1,200-digit number, never formed
    assert time.process_time() - start < 1.0


def test_the_exact_enumeration_needs_memory_for_the_tables_not_for_their_width() -> None:
    """30 patients with a label each, 5 above the median: 142,506 tables of 30 columns (34 MB as one int64 array)."""
    import tracemalloc

    one_label_each = np.zeros((2, 30), dtype=int)
    one_label_each[0, :5] = one_label_each[1, 5:] = 1
    tracemalloc.start()
    try:
        p = fisher_exact_2xk(one_label_each)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert p == pytest.approx(1.0) and peak < 12 * 2**20  # every table is equally probable
