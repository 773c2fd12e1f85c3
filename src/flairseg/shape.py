"""Tumour shape features of Buda et al. (2019): ASD and MF (2-D) and BEVR (3-D).

- ASD, angular standard deviation: on the slice with the largest tumour area, the
  centroid-to-boundary distance (normalised by its mean) is split into ``sectors``
  equal angular sectors around the centroid; ASD is the mean of the per-sector
  standard deviations.
- MF, margin fluctuation: the same normalised distance as a signal along the boundary;
  MF is the standard deviation of the signal minus a circularly smoothed copy of it.
- BEVR, bounding ellipsoid volume ratio: tumour volume over the volume of the
  minimum-volume ellipsoid enclosing the corners of its voxels (Khachiyan's algorithm).
  The ratio of two volumes under the same affine map, so anisotropic spacing does not
  change it.

Choices the paper leaves open are parameters with these defaults: the boundary is the
longest iso-contour at 0.5 (``skimage.measure.find_contours``) resampled to
``points`` = 360 points equally spaced by arc length; the centroid is the region's
(pixel centres); sectors start at angle 0 (the column axis) and there are 10 of them;
the smoothing window is ``smoothing`` = 0.1 of the boundary (a circular moving
average); distances use the in-plane spacing when known. Normalising by the mean
distance and sampling by arc length make ASD and MF invariant to scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from flairseg.metrics import surface
from flairseg.postprocess import largest_component


@dataclass(frozen=True)
class ShapeFeatures:
    """The features of one case."""

    case_id: str
    asd: float
    mf: float
    bevr: float
    volume: float  # mm^3 when spacing is known, else voxels
    slice_index: int  # 0-based slice of the largest tumour area (ASD, MF)
    slice_area: float


def largest_slice(mask: np.ndarray) -> int:
    """0-based index of the slice with the largest foreground area (first on ties)."""
    return int(np.argmax(np.asarray(mask, dtype=bool).sum(axis=(1, 2))))


def _boundary(plane: np.ndarray, spacing: tuple[float, float], points: int) -> tuple[np.ndarray, np.ndarray]:
    """Boundary resampled by arc length (points x 2, in mm) and the region centroid (mm)."""
    from skimage.measure import find_contours

    largest = _largest_2d(plane)
    contours = find_contours(np.pad(largest, 1).astype(float), 0.5)
    contour = max(contours, key=len) - 1.0
    contour = contour * np.asarray(spacing)
    closed = np.vstack([contour, contour[:1]]) if not np.allclose(contour[0], contour[-1]) else contour
    steps = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    samples = np.linspace(0.0, arc[-1], points, endpoint=False)
    resampled = np.stack([np.interp(samples, arc, closed[:, axis]) for axis in range(2)], axis=1)
    centroid = np.argwhere(largest).mean(axis=0) * np.asarray(spacing)
    return resampled, centroid


def _radial(plane: np.ndarray, spacing: tuple[float, float], points: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised centroid-to-boundary distance along the boundary, and each point's angle."""
    boundary, centroid = _boundary(plane, spacing, points)
    offset = boundary - centroid
    distance = np.hypot(offset[:, 0], offset[:, 1])
    angle = np.mod(np.arctan2(-offset[:, 0], offset[:, 1]), 2 * np.pi)  # counter-clockwise from the column axis
    return distance / distance.mean(), angle


def angular_standard_deviation(
    plane: np.ndarray,
    spacing: tuple[float, float] = (1.0, 1.0),
    sectors: int = 10,
    origin: float = 0.0,
    points: int = 360,
) -> float:
    """ASD of a 2-D mask; NaN for fewer than 3 foreground pixels."""
    plane = np.asarray(plane, dtype=bool)
    if plane.sum() < 3:
        return math.nan
    radius, angle = _radial(plane, spacing, points)
    sector = np.floor(np.mod(angle - origin, 2 * np.pi) / (2 * np.pi / sectors)).astype(int) % sectors
    stds = [radius[sector == s].std() for s in range(sectors) if np.count_nonzero(sector == s) >= 2]
    return float(np.mean(stds)) if stds else math.nan


def margin_fluctuation(
    plane: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0), smoothing: float = 0.1, points: int = 360
) -> float:
    """MF of a 2-D mask; NaN for fewer than 3 foreground pixels."""
    plane = np.asarray(plane, dtype=bool)
    if plane.sum() < 3:
        return math.nan
    radius, _ = _radial(plane, spacing, points)
    window = max(3, int(round(smoothing * points)) | 1)
    smoothed = ndimage.uniform_filter1d(radius, size=window, mode="wrap")
    return float(np.std(radius - smoothed))


def minimum_volume_ellipsoid(
    points: np.ndarray, tolerance: float = 1e-7, max_iterations: int = 100000
) -> tuple[np.ndarray, np.ndarray]:
    """(A, c) with the minimum-volume enclosing ellipsoid {x : (x - c)^T A (x - c) <= 1} of ``points``.

    Khachiyan's algorithm with Todd and Yildirim's away steps (a point's weight also shrinks where it lies deepest
    inside), which converge where the plain algorithm crawls on symmetric point sets: it stops once every point lies
    within (1 + ``tolerance``) of the ellipsoid's boundary and every weighted one within as little inside it, in the
    algorithm's lifted measure (the points' quadratic form then exceeds 1 by at most about 4/3 ``tolerance`` in 3-D).
    """
    points = np.asarray(points, dtype=float)
    n, d = points.shape
    lifted = np.vstack([points.T, np.ones(n)])
    weights = np.full(n, 1.0 / n)
    for _ in range(max_iterations):
        scatter = (lifted * weights) @ lifted.T
        m = np.einsum("ij,ji->i", lifted.T, np.linalg.solve(scatter, lifted))
        far = int(np.argmax(m))
        held = np.flatnonzero(weights > 0)
        near = int(held[np.argmin(m[held])])
        outside, inside = m[far] / (d + 1.0) - 1.0, 1.0 - m[near] / (d + 1.0)
        if max(outside, inside) < tolerance:
            break
        if outside >= inside:  # towards the point furthest out
            step = (m[far] - d - 1.0) / ((d + 1.0) * (m[far] - 1.0))
            weights = (1.0 - step) * weights
            weights[far] += step
        else:  # away from the weighted point deepest inside, at most down to no weight
            drop = weights[near] / (1.0 - weights[near])  # the step that takes the point's weight to none
            step = min((d + 1.0 - m[near]) / ((d + 1.0) * (m[near] - 1.0)), drop)
            weights = (1.0 + step) * weights
            weights[near] = 0.0 if step == drop else weights[near] - step
    centre = points.T @ weights
    covariance = (points.T * weights) @ points - np.outer(centre, centre)
    return np.linalg.inv(covariance) / d, centre


def ellipsoid_volume(matrix: np.ndarray) -> float:
    """Volume of {x : x^T A x <= 1} in 3-D."""
    return 4.0 / 3.0 * math.pi / math.sqrt(float(np.linalg.det(matrix)))


def bounding_ellipsoid_volume_ratio(mask: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """BEVR of a 3-D mask: voxel volume over the minimum enclosing ellipsoid of the voxel corners."""
    from scipy.spatial import ConvexHull

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return math.nan
    step = np.asarray(spacing if spacing is not None else (1.0, 1.0, 1.0), dtype=float)
    voxels = np.argwhere(surface(mask))  # inner voxels add no hull corner
    corners = (
        voxels[:, None, :] + np.array(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij")).reshape(3, -1).T[None]
    ).reshape(-1, 3)
    corners = np.unique(corners, axis=0) * step
    hull = corners[ConvexHull(corners).vertices]
    matrix, _ = minimum_volume_ellipsoid(hull)
    return float(mask.sum() * np.prod(step) / ellipsoid_volume(matrix))


def shape_features(
    case_id: str,
    mask: np.ndarray,
    spacing: Sequence[float] | None = None,
    sectors: int = 10,
    smoothing: float = 0.1,
    points: int = 360,
) -> ShapeFeatures:
    """ASD and MF on the largest-area slice, BEVR and volume of the whole (S, H, W) mask."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"expected a (slices, height, width) mask, got shape {mask.shape}")
    step = tuple(float(s) for s in spacing) if spacing is not None else (1.0, 1.0, 1.0)
    index = largest_slice(mask)
    plane = mask[index]
    in_plane = (step[1], step[2])
    return ShapeFeatures(
        case_id=case_id,
        asd=angular_standard_deviation(plane, in_plane, sectors=sectors, points=points),
        mf=margin_fluctuation(plane, in_plane, smoothing=smoothing, points=points),
        bevr=bounding_ellipsoid_volume_ratio(mask, step),
        volume=float(mask.sum() * np.prod(step)),
        slice_index=index,
        slice_area=float(plane.sum() * step[1] * step[2]),
    )


def _largest_2d(plane: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of one slice (the 3-D helper on a one-slice volume, 6-connected)."""
    return largest_component(plane[None], connectivity=6)[0]
