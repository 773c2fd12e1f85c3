"""Shape features pinned by geometry: disks vs gears (ASD, MF), balls, cubes and rescaled grids (BEVR)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from flairseg.shape import (
    angular_standard_deviation,
    bounding_ellipsoid_volume_ratio,
    margin_fluctuation,
    minimum_volume_ellipsoid,
    shape_features,
)


def _disk(size: int = 121, radius: float = 40) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    return np.hypot(yy, xx) <= radius


def _gear(size: int = 121, radius: float = 30, teeth: int = 7, depth: float = 0.3, turn: float = 0.0) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    angle = np.arctan2(yy, xx) + turn
    return np.hypot(yy, xx) <= radius * (1 + depth * np.sign(np.cos(teeth * angle)) * 0.5)


def test_disk_is_smooth_and_gear_is_not() -> None:
    disk, gear = _disk(), _gear()
    assert angular_standard_deviation(disk) < 0.02 and margin_fluctuation(disk) < 0.02
    assert angular_standard_deviation(gear) > 5 * angular_standard_deviation(disk)
    assert margin_fluctuation(gear) > 5 * margin_fluctuation(disk)


@pytest.mark.parametrize("turn", [0.3, 1.0])
def test_rotation_invariance(turn: float) -> None:
    base, turned = _gear(), _gear(turn=turn)
    assert angular_standard_deviation(turned) == pytest.approx(angular_standard_deviation(base), rel=0.15)
    assert margin_fluctuation(turned) == pytest.approx(margin_fluctuation(base), rel=0.15)


def test_scale_invariance() -> None:
    small, large = _gear(size=121, radius=30), _gear(size=241, radius=60)
    assert angular_standard_deviation(large) == pytest.approx(angular_standard_deviation(small), rel=0.15)
    assert margin_fluctuation(large) == pytest.approx(margin_fluctuation(small), rel=0.15)
    # spacing scales the geometry the same way as more pixels
    assert angular_standard_deviation(small, spacing=(0.7, 0.7)) == pytest.approx(
        angular_standard_deviation(small), rel=1e-9
    )


def test_khachiyan_circumscribes_a_cube() -> None:
    corners = np.array(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij")).reshape(3, -1).T.astype(float)
    matrix, centre = minimum_volume_ellipsoid(corners)
    np.testing.assert_allclose(centre, 0.5, atol=1e-6)
    np.testing.assert_allclose(matrix, np.eye(3) / 0.75, rtol=1e-4)  # the circumsphere, radius sqrt(3)/2


def test_bevr_of_cube_ball_and_rescaled_grids() -> None:
    cube = np.zeros((10, 10, 10), bool)
    cube[2:8, 2:8, 2:8] = True
    assert bounding_ellipsoid_volume_ratio(cube) == pytest.approx(2 / (math.pi * math.sqrt(3)), abs=1e-4)
    z, y, x = np.mgrid[:25, :25, :25] - 12
    ball = z**2 + y**2 + x**2 <= 11**2
    small = z**2 + y**2 + x**2 <= 5**2
    # voxel corners stick out of a digital ball by up to half a voxel diagonal: near 1, nearer as it grows
    assert 0.6 < bounding_ellipsoid_volume_ratio(small) < bounding_ellipsoid_volume_ratio(ball) <= 1.0
    assert bounding_ellipsoid_volume_ratio(ball) > 0.75
    ellipsoid = (z / 12) ** 2 + (y / 6) ** 2 + (x / 9) ** 2 <= 1
    bevr = bounding_ellipsoid_volume_ratio(ellipsoid)
    assert bounding_ellipsoid_volume_ratio(ellipsoid, spacing=(3.0, 0.5, 0.8)) == pytest.approx(bevr, rel=1e-6)
    stretched = np.repeat(ellipsoid, 2, axis=0)  # the same object on a grid twice as fine along z
    assert bounding_ellipsoid_volume_ratio(stretched, spacing=(0.5, 1, 1)) == pytest.approx(bevr, rel=1e-6)


def test_shape_features_picks_largest_slice() -> None:
    mask = np.zeros((5, 64, 64), bool)
    mask[1] = _disk(64, 10)
    mask[2] = _disk(64, 20)
    mask[3] = _disk(64, 15)
    features = shape_features("c", mask, spacing=(5.0, 0.9, 0.9))
    assert features.slice_index == 2 and features.volume == pytest.approx(mask.sum() * 5 * 0.81)
    assert features.asd < 0.03 and 0 < features.bevr < 1
    assert math.isnan(shape_features("e", np.zeros((2, 8, 8), bool)).bevr)
    assert not mask[0].any() and ndimage.label(mask)[1] == 1  # input untouched
