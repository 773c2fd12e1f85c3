"""Dice distribution figure, outline frames and GIFs, tumour montages."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import phantom
from flairseg.figures import dice_distribution, outline_frames, outline_gif, tumour_montage


@pytest.fixture
def volumes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image, truth = phantom(slices=10, size=64)
    return image[..., 1], truth, np.roll(truth, 2, axis=2)


def test_outline_colours(volumes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    flair, truth, pred = volumes
    before = flair.copy()
    frames = outline_frames(flair, truth, pred)
    assert frames.shape == (*flair.shape, 3) and frames.dtype == np.uint8
    blue = (frames == (0, 0, 255)).all(axis=-1)
    red = (frames == (255, 0, 0)).all(axis=-1)
    assert blue.any() and red.any()
    assert not (blue & ~truth).any() and not (red & ~pred).any()  # outlines lie on the masks' inner boundary
    core = truth & np.roll(truth, 1, 1) & np.roll(truth, -1, 1) & np.roll(truth, 1, 2) & np.roll(truth, -1, 2)
    assert not blue[core].any()
    grey = ~(blue | red)
    assert (frames[grey][:, 0] == frames[grey][:, 2]).all()
    np.testing.assert_array_equal(flair, before)


def test_gif_and_montage(volumes: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    flair, truth, pred = volumes
    outline_gif(flair, truth, pred, tmp_path / "case.gif")
    gif = Image.open(tmp_path / "case.gif")
    assert gif.format == "GIF" and gif.n_frames == 10
    tumour_montage(flair, truth, pred, tmp_path / "case.png")
    montage = Image.open(tmp_path / "case.png")
    tumour_slices = int((truth | pred).any(axis=(1, 2)).sum())
    assert montage.format == "PNG" and montage.size[0] == 64 * min(6, tumour_slices)
    tumour_montage(flair, None, np.zeros_like(truth), tmp_path / "none.png")
    assert Image.open(tmp_path / "none.png").size == (64, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.gif", "case.png", "none.png"]


def test_dice_distribution_lines(tmp_path: Path) -> None:
    dice = {f"TCGA_{i:02d}": v for i, v in enumerate(np.linspace(0.3, 0.95, 30) ** 0.3)}  # skewed: mean != median
    dice["UNDEFINED"] = math.nan
    dice_distribution(dice, tmp_path / "dice.png")
    pixels = np.asarray(Image.open(tmp_path / "dice.png").convert("RGB")).astype(int)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    green = (pixels[..., 1] > 100) & (pixels[..., 0] < 60) & (pixels[..., 2] < 60)
    assert red.sum(axis=0).max() > 100 and green.sum(axis=0).max() > 100  # two tall vertical lines
    dice_distribution({"one": 0.5}, tmp_path / "one.png")
    with pytest.raises(ValueError):
        dice_distribution({}, tmp_path / "empty.png")
