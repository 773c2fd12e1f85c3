"""Largest 3-D component, per-slice hole filling and convex hull."""

from __future__ import annotations

import numpy as np
import pytest

from flairseg.errors import ConfigError
from flairseg.postprocess import (
    convex_hull_per_slice,
    fill_holes_per_slice,
    largest_component,
    postprocess,
    select_components,
)


def test_largest_component_keeps_biggest_and_leaves_input() -> None:
    mask = np.zeros((6, 20, 20), bool)
    mask[1:4, 2:8, 2:8] = True  # 108 voxels
    mask[4, 15:17, 15:17] = True  # 4 voxels
    before = mask.copy()
    kept = largest_component(mask)
    assert kept.sum() == 108 and not kept[4].any()
    np.testing.assert_array_equal(mask, before)


def test_connectivity_26_vs_6() -> None:
    mask = np.zeros((3, 5, 5), bool)
    mask[0, 1, 1] = mask[1, 2, 2] = mask[2, 3, 3] = True  # a diagonal chain touching at corners
    mask[0, 4, 4] = mask[0, 4, 3] = True  # two face-connected voxels
    assert largest_component(mask, 26).sum() == 3
    assert largest_component(mask, 6).sum() == 2
    with pytest.raises(ConfigError):
        largest_component(mask, 8)


def test_empty_stays_empty() -> None:
    empty = np.zeros((2, 4, 4), bool)
    assert not largest_component(empty).any()
    assert not postprocess(empty, "brain").any()


def test_fill_holes_is_per_slice() -> None:
    ring = np.zeros((3, 9, 9), bool)
    ring[1, 2:7, 2:7] = True
    ring[1, 4, 4] = False
    filled = fill_holes_per_slice(ring)
    assert filled[1, 4, 4] and filled.sum() == 25


def test_convex_hull_per_slice() -> None:
    mask = np.zeros((2, 11, 11), bool)
    mask[0, 2:9, 2] = mask[0, 2, 2:9] = True  # an L shape
    hull = convex_hull_per_slice(mask)
    assert hull[0, 4, 4] and not hull[0, 8, 8] and not hull[1].any()
    assert (hull >= mask).all()


def test_convex_hull_keeps_slices_without_area() -> None:
    mask = np.zeros((3, 9, 9), bool)
    mask[0, 4, 4] = True  # one pixel
    mask[1, 2:7, 3] = True  # a line
    mask[2, 1, 1] = mask[2, 7, 7] = True  # two pixels
    assert np.array_equal(convex_hull_per_slice(mask), mask)


def test_postprocess_tasks() -> None:
    mask = np.zeros((4, 12, 12), bool)
    mask[:, 2:10, 2:10] = True
    mask[:, 5, 5] = False  # a hole in every slice
    mask[0, 0, 11] = True  # a speck
    abnormality = postprocess(mask, "abnormality")
    assert not abnormality[0, 0, 11] and not abnormality[1, 5, 5]
    brain = postprocess(mask, "brain")
    assert brain[1, 5, 5] and not brain[0, 0, 11]
    assert np.array_equal(brain, fill_holes_per_slice(largest_component(mask)))


def test_brain_hole_filling_by_default_convex_hull_on_request() -> None:
    mask = np.zeros((2, 11, 11), bool)
    mask[:, 2:9, 2:4] = mask[:, 2:4, 2:9] = True  # an L: hole-free but not convex
    assert np.array_equal(postprocess(mask, "brain"), mask)
    hulled = postprocess(mask, "brain", convex_hull=True)
    assert hulled.sum() > mask.sum() and hulled[0, 5, 5] and (hulled >= mask).all()
    with pytest.raises(ConfigError):
        postprocess(mask, "tumor")


def _two_blobs() -> tuple[np.ndarray, np.ndarray]:
    """A large faint component (60 voxels, p 0.6) and a small confident one (8 voxels, p 0.98)."""
    mask = np.zeros((4, 12, 12), bool)
    probability = np.zeros(mask.shape, np.float32)
    mask[0:3, 1:5, 1:6] = True
    probability[0:3, 1:5, 1:6] = 0.6
    mask[1:3, 8:10, 8:10] = True
    probability[1:3, 8:10, 8:10] = 0.98
    return mask, probability


@pytest.mark.parametrize(
    ("rule", "value", "kept"),
    [
        ("none", 0.0, 68),
        ("largest", 0.0, 60),
        ("relative-volume", 0.1, 68),
        ("relative-volume", 0.2, 60),
        ("largest-mass", 0.0, 60),
        ("peak", 0.9, 8),
        ("peak", 0.5, 68),
    ],
)
def test_select_components_rules(rule: str, value: float, kept: int) -> None:
    mask, probability = _two_blobs()
    before = mask.copy()
    selected, components = select_components(mask, probability, rule, value)
    assert selected.sum() == kept
    assert [c.voxels for c in components] == [60, 8]  # largest first, every component listed
    assert sum(c.voxels for c in components if c.kept) == kept
    assert components[1].peak == pytest.approx(0.98) and components[0].mass == pytest.approx(36.0)
    np.testing.assert_array_equal(mask, before)


def test_largest_mass_prefers_a_confident_component_over_a_larger_faint_one() -> None:
    mask, probability = _two_blobs()
    probability[0:3, 1:5, 1:6] = 0.05  # the large one is barely above nothing: mass 3 < 7.84
    selected, _ = select_components(mask, probability, "largest-mass")
    assert selected.sum() == 8 and selected[1, 8, 8]


def test_select_components_refuses_bad_rules() -> None:
    mask, probability = _two_blobs()
    with pytest.raises(ConfigError, match="did you mean 'largest'"):
        select_components(mask, probability, "larges")
    with pytest.raises(ConfigError, match=r"value in \(0, 1\]"):
        select_components(mask, probability, "peak", 0.0)
    with pytest.raises(ConfigError, match="needs the probability"):
        select_components(mask, None, "peak", 0.9)
    assert select_components(np.zeros((2, 3, 3), bool), None, "largest")[1] == []


def test_a_hole_is_background_not_4_connected_to_the_border() -> None:
    """One hole definition (MATLAB imfill's, which made the paper's labels): background reaching the border
    only through diagonal steps is a hole and is filled."""
    plane = np.ones((7, 7), dtype=bool)
    for k in range(4):
        plane[k, k] = False  # a diagonal chain of background from the corner to the centre
    filled = fill_holes_per_slice(plane[None])[0]
    assert filled[1, 1] and filled[2, 2] and filled[3, 3] and not filled[0, 0]


def test_components_labelled_in_the_foreground_box_match_the_whole_volume() -> None:
    from scipy import ndimage

    from flairseg.postprocess import largest_component, select_components

    rng = np.random.default_rng(3)
    mask = np.zeros((30, 40, 50), dtype=bool)
    mask[5:25, 10:30, 20:45] = ndimage.binary_opening(rng.random((20, 20, 25)) > 0.6)
    probability = rng.random(mask.shape).astype(np.float32)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    assert count > 3
    voxels = np.bincount(labels.ravel())[1:]
    kept, components = select_components(mask, probability, "relative-volume", 0.2)
    expected = np.isin(labels, 1 + np.flatnonzero(voxels >= 0.2 * voxels.max()))
    np.testing.assert_array_equal(kept, expected)
    assert sorted(c.voxels for c in components) == sorted(voxels.tolist())
    peaks = ndimage.maximum(probability, labels, index=np.arange(1, count + 1))
    assert sorted(c.peak for c in components) == pytest.approx(sorted(peaks.tolist()))
    np.testing.assert_array_equal(largest_component(mask), labels == 1 + np.argmax(voxels))
