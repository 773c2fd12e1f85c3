"""Dice with its empty-mask rule, HD95 against a brute-force computation, summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from flairseg.metrics import case_metrics, dice_from_counts, hd95, summarise


def _brute_hd95(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Independent HD95: surfaces by erosion, all pairwise distances in mm."""

    def surface_points(mask: np.ndarray) -> np.ndarray:
        surface = mask & ~ndimage.binary_erosion(mask, border_value=0)
        return np.argwhere(surface) * np.asarray(spacing)

    a, b = surface_points(pred), surface_points(truth)
    distances = cdist(a, b)
    return max(np.percentile(distances.min(axis=1), 95), np.percentile(distances.min(axis=0), 95))


def test_dice_conventions() -> None:
    assert dice_from_counts(0, 0, 0) == 1.0
    assert dice_from_counts(0, 10, 0) == 0.0
    assert dice_from_counts(0, 0, 10) == 0.0
    assert dice_from_counts(5, 10, 10) == 0.5


def test_case_metrics_known_values() -> None:
    truth = np.zeros((4, 10, 10), bool)
    truth[1:3, 2:6, 2:6] = True  # 32 voxels
    pred = np.roll(truth, 1, axis=2)  # 24 overlap
    m = case_metrics("c", pred, truth, spacing=(5.0, 0.5, 0.5))
    assert m.dice == pytest.approx(2 * 24 / 64)
    assert m.sensitivity == pytest.approx(24 / 32) and m.precision == pytest.approx(24 / 32)
    assert m.truth_volume == pytest.approx(32 * 1.25 / 1000)  # ml
    assert m.units == "mm"


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (5.0, 0.9, 0.7)])
def test_hd95_matches_brute_force(seed: int, spacing: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(seed)
    truth = ndimage.binary_opening(rng.random((8, 24, 24)) > 0.55, iterations=1)
    pred = ndimage.binary_dilation(truth, iterations=1) ^ (rng.random(truth.shape) > 0.9)
    truth[2, 10, 10] = pred[3, 12, 12] = True  # never empty
    assert hd95(pred, truth, spacing) == pytest.approx(_brute_hd95(pred, truth, spacing), rel=1e-9)


def test_hd95_empty_rules() -> None:
    empty = np.zeros((2, 5, 5), bool)
    full = empty.copy()
    full[0, 1, 1] = True
    assert hd95(empty, empty) == 0.0
    assert math.isnan(hd95(full, empty))
    m = case_metrics("c", empty, empty)
    assert m.dice == 1.0 and math.isnan(m.sensitivity) and math.isnan(m.precision) and m.units == "voxel"


def test_summary_ignores_nan() -> None:
    s = summarise([0.5, 0.7, math.nan, 0.9])
    assert s.n == 3 and s.undefined == 1
    assert s.mean == pytest.approx(0.7) and s.median == pytest.approx(0.7)
    assert s.q1 == pytest.approx(0.6) and s.q3 == pytest.approx(0.8)
