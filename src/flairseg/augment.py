"""Train-time random geometry and intensity, drawn from an explicit ``np.random.Generator``.

One affine map per slice (rotation, isotropic scale, left-right flip about the slice centre)
is applied to a whole batch at once with ``torch.nn.functional.grid_sample`` on the batch's
device (the GPU when training there): the image channels with linear interpolation (outside
the slice: each channel's minimum), the mask with nearest, so both stay aligned; an optional
multiplicative intensity jitter touches the image only.
:func:`scanner_transforms` are MONAI's intensity transforms for what differs between scanners and
the ways scans are prepared (gamma, bias field, blur, noise); :func:`apply_scanner` runs them on
a batch, seeded once per batch.
:func:`flair_only` turns a three-sequence slice into what a FLAIR-only input gives (the
FLAIR copied into the pre- and post-contrast channels, as ``missing="copy-flair"`` does).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from monai.transforms import Compose


@dataclass(frozen=True)
class Augmentation:
    """One draw of the random transform."""

    angle: float  # degrees
    scale: float
    flip: bool
    gain: float  # multiplicative intensity factor


def draw(rng: np.random.Generator, rotation: float, scale: float, flip: float, intensity: float) -> Augmentation:
    """Draw a transform: angle in [-rotation, rotation], scale in [1 - scale, 1 + scale], flip with probability
    ``flip``.
    """
    return Augmentation(
        angle=float(rng.uniform(-rotation, rotation)) if rotation else 0.0,
        scale=float(rng.uniform(1 - scale, 1 + scale)) if scale else 1.0,
        flip=bool(rng.random() < flip) if flip else False,
        gain=float(np.exp(rng.normal(0.0, intensity))) if intensity else 1.0,
    )


def flair_only(image: np.ndarray) -> np.ndarray:
    """A (C, H, W) pre/FLAIR/post slice (then any FLAIR neighbours) as a FLAIR-only input gives it: the FLAIR in
    the pre- and post-contrast channels."""
    return np.concatenate([np.repeat(image[1:2], 3, axis=0), image[3:]])


def _theta(aug: Augmentation, height: int, width: int) -> np.ndarray:
    """``aug`` as the 2 x 3 matrix of ``F.affine_grid``: output to input, normalised (x, y), corners aligned."""
    angle = np.radians(aug.angle)
    # output pixel -> input pixel in (row, col), about the centre: undo the flip, rotation and scale
    inverse = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]]) / aug.scale
    if aug.flip:
        inverse = inverse @ np.diag([1.0, -1.0])
    half = np.array([max(height - 1, 1) / 2, max(width - 1, 1) / 2])
    normalised = np.diag(1 / half) @ inverse @ np.diag(half)
    theta = np.zeros((2, 3))
    theta[:, :2] = normalised[::-1, ::-1]  # (row, col) -> (x, y)
    return theta


def apply(images: torch.Tensor, masks: torch.Tensor, augs: list[Augmentation]) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``augs[i]`` to ``images[i]`` (B, C, H, W, float) and ``masks[i]`` (B, H, W, 0/1 float); new tensors."""
    batch, _, height, width = images.shape
    theta = torch.as_tensor(
        np.stack([_theta(a, height, width) for a in augs]), dtype=images.dtype, device=images.device
    )
    grid = F.affine_grid(theta, [batch, 1, height, width], align_corners=True)
    floor = images.amin(dim=(2, 3), keepdim=True)
    out_images = F.grid_sample(images - floor, grid, mode="bilinear", padding_mode="zeros", align_corners=True) + floor
    out_masks = F.grid_sample(masks[:, None], grid, mode="nearest", padding_mode="zeros", align_corners=True)[:, 0]
    gains = torch.as_tensor([a.gain for a in augs], dtype=images.dtype, device=images.device)
    return out_images * gains[:, None, None, None], out_masks


@functools.lru_cache(maxsize=4)
def scanner_transforms(gamma: float, bias_field: float, noise: float, blur: float) -> Compose | None:
    """MONAI transforms, each applied with its probability: a smooth multiplicative bias field (degree 3), a gamma
    in [0.7, 1.5], Gaussian blur of 0.5-1.5 pixels (thicker slices, coarser grids) and Gaussian noise (std up to 0.1
    of the standardised intensity). None when every probability is 0.
    """
    if not (gamma or bias_field or noise or blur):
        return None
    from monai.data import set_track_meta  # a 5 s import, needed only by training runs that ask for these
    from monai.transforms import Compose, RandAdjustContrast, RandBiasField, RandGaussianNoise, RandGaussianSmooth

    set_track_meta(False)  # plain tensors out, no MONAI metadata
    return Compose(
        [
            RandBiasField(prob=bias_field, degree=3, coeff_range=(0.0, 0.15)),
            RandAdjustContrast(prob=gamma, gamma=(0.7, 1.5)),
            RandGaussianSmooth(prob=blur, sigma_x=(0.5, 1.5), sigma_y=(0.5, 1.5)),
            RandGaussianNoise(prob=noise, std=0.1),
        ]
    )


def apply_scanner(images: torch.Tensor, transforms: Compose, seed: int) -> torch.Tensor:
    """``transforms`` on each whole (C, H, W) slice of a (B, C, H, W) batch in turn, seeded once with ``seed``
    (seeding MONAI's generators costs more than the transforms), above each channel's floor, its background (so
    the background stays background under the bias field and the gamma); a new tensor.
    """
    transforms.set_random_state(seed=seed)
    floor = images.amin(dim=(2, 3), keepdim=True)
    return torch.stack([transforms(image) for image in images - floor]) + floor
