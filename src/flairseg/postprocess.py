"""Postprocessing of binary masks: largest 3-D component, per-slice hole filling or convex hull.

Pure functions on (slices, height, width) arrays; inputs are never modified.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

from flairseg.errors import ConfigError

Task = Literal["abnormality", "brain"]
CONNECTIVITIES = (6, 18, 26)
# 2-D operations applied to every slice at once: a 3-D structuring element that is flat in z.
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = True


def _check_volume(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"expected a (slices, height, width) mask, got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def largest_component(mask: np.ndarray, connectivity: int = 26) -> np.ndarray:
    """Keep the largest 3-D connected component (6-, 18- or 26-connected); empty stays empty."""
    if connectivity not in CONNECTIVITIES:
        raise ConfigError(f"connectivity must be one of {CONNECTIVITIES}, not {connectivity}")
    mask = _check_volume(mask)
    if not mask.any():
        return mask.copy()
    spans = [np.flatnonzero(mask.any(axis=other)) for other in ((1, 2), (0, 2), (0, 1))]
    box = tuple(slice(int(span[0]), int(span[-1]) + 1) for span in spans)  # label only the foreground's bounding box: less memory, same result
    rank = {6: 1, 18: 2, 26: 3}[connectivity]
    labels, count = ndimage.label(mask[box], structure=ndimage.generate_binary_structure(3, rank))
    if count <= 1:
        return mask.copy()
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    kept = np.zeros_like(mask)
    kept[box] = labels == int(np.argmax(sizes))
    return kept


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of every slice in 2-D (a hole closed only through another slice is still filled)."""
    return ndimage.binary_fill_holes(_check_volume(mask), structure=_IN_PLANE)


def convex_hull_per_slice(mask: np.ndarray) -> np.ndarray:
    """Replace every non-empty slice by the 2-D convex hull of its foreground.

    A slice whose foreground has no area (one pixel, or pixels on a line) is kept as it is.
    """
    import warnings

    from skimage.morphology import convex_hull_image

    mask = _check_volume(mask)
    hull = np.zeros_like(mask)
    for index in np.flatnonzero(mask.any(axis=(1, 2))):
        with warnings.catch_warnings():  # skimage warns and returns an empty image for a degenerate hull
            warnings.simplefilter("ignore", UserWarning)
            # hull of pixel centres: a convex set stays as it is
            hull[index] = convex_hull_image(mask[index], offset_coordinates=False) | mask[index]
    return hull


def postprocess(mask: np.ndarray, task: Task, connectivity: int = 26, convex_hull: bool = False) -> np.ndarray:
    """Postprocessing of a binary prediction for a task.

    abnormality: largest 3-D component. brain: largest 3-D component, then per-slice hole
    filling, or with ``convex_hull`` the paper's per-slice convex hull (which also fills
    holes). The hull is not the default: on the 88 LGG cases it makes the HD-BET brain
    labels themselves 3.9-8.3 % larger (median 5.8 %), while hole filling changes them by
    at most 0.16 %.
    """
    kept = largest_component(mask, connectivity)
    if task == "abnormality":
        return kept
    if task == "brain":
        return convex_hull_per_slice(kept) if convex_hull else fill_holes_per_slice(kept)
    raise ConfigError(f"unknown task {task!r}; choose 'abnormality' or 'brain'")
