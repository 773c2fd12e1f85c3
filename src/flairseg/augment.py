"""Train-time random geometry and intensity, drawn from an explicit ``np.random.Generator``.

One affine map (rotation, isotropic scale, left-right flip about the slice centre) is
applied to the image channels (linear interpolation) and the mask (nearest), so both
stay aligned; an optional multiplicative intensity jitter touches the image only.
:func:`flair_only` turns a three-sequence slice into what a FLAIR-only input gives (the
FLAIR copied into the pre- and post-contrast channels, as ``missing="copy-flair"`` does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Augmentation:
    """One draw of the random transform."""

    angle: float  # degrees
    scale: float
    flip: bool
    gain: float  # multiplicative intensity factor


def draw(rng: np.random.Generator, rotation: float, scale: float, flip: float, intensity: float) -> Augmentation:
    """Draw a transform: angle in [-rotation, rotation], scale in [1 - scale, 1 + scale], flip with probability ``flip``."""
    return Augmentation(
        angle=float(rng.uniform(-rotation, rotation)) if rotation else 0.0,
        scale=float(rng.uniform(1 - scale, 1 + scale)) if scale else 1.0,
        flip=bool(rng.random() < flip) if flip else False,
        gain=float(np.exp(rng.normal(0.0, intensity))) if intensity else 1.0,
    )


def flair_only(image: np.ndarray) -> np.ndarray:
    """A (3, H, W) pre/FLAIR/post slice as a FLAIR-only input gives it: the FLAIR in every channel."""
    return np.repeat(image[1:2], 3, axis=0)


def apply(image: np.ndarray, mask: np.ndarray, aug: Augmentation) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``aug`` to a (C, H, W) image and its (H, W) mask; returns new arrays."""
    height, width = mask.shape
    centre = np.array([(height - 1) / 2, (width - 1) / 2])
    theta = np.radians(aug.angle)
    # output pixel -> input pixel: undo the flip, rotation and scale about the centre
    inverse = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]]) / aug.scale
    if aug.flip:
        inverse = inverse @ np.diag([1.0, -1.0])
    offset = centre - inverse @ centre
    identity = aug.angle == 0 and aug.scale == 1
    if identity and not aug.flip:
        out_image, out_mask = image.astype(np.float32, copy=True), mask.copy()
    elif identity:
        out_image, out_mask = np.ascontiguousarray(image[:, :, ::-1], dtype=np.float32), np.ascontiguousarray(mask[:, ::-1])
    else:
        out_image = np.stack(
            [ndimage.affine_transform(c.astype(np.float32), inverse, offset, order=1, mode="constant", cval=float(c.min())) for c in image]
        )
        out_mask = ndimage.affine_transform(mask.astype(np.uint8), inverse, offset, order=0, mode="constant", cval=0).astype(mask.dtype)
    if aug.gain != 1.0:
        out_image *= aug.gain
    return out_image, out_mask
