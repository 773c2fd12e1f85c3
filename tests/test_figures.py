"""Dice distribution figure, outline frames and GIFs, tumour montages."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence
from scipy import ndimage

from synthetic import phantom
from flairseg.figures import dice_distribution, outline_frames, outline_gif, tumour_montage

SLICES, SIZE = 12, 64


@pytest.fixture
def volumes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FLAIR, truth, and a prediction that is the truth shifted by 2 pixels."""
    image, truth = phantom(slices=SLICES, size=SIZE)
    return image[..., 1], truth, np.roll(truth, 2, axis=2)


def reference_outline(mask: np.ndarray) -> np.ndarray:
    """Inner boundary computed slice by slice with a 2-D erosion."""
    return np.stack([plane & ~ndimage.binary_erosion(plane) for plane in mask])


def colour(frames: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    return (frames == rgb).all(axis=-1)


def test_outline_colours(volumes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    flair, truth, pred = volumes
    copies = [a.copy() for a in volumes]
    frames = outline_frames(flair, truth, pred)
    assert frames.shape == (*flair.shape, 3) and frames.dtype == np.uint8
    truth_edge, pred_edge = reference_outline(truth), reference_outline(pred)
    blue, red, green = colour(frames, (0, 0, 255)), colour(frames, (255, 0, 0)), colour(frames, (0, 230, 0))
    assert blue.any() and (pred_edge & truth_edge).any()
    np.testing.assert_array_equal(blue, truth_edge & ~pred_edge)  # manual alone
    np.testing.assert_array_equal(red, pred_edge & ~truth_edge)  # model alone
    np.testing.assert_array_equal(green, pred_edge & truth_edge)  # both
    assert not blue[truth & ~truth_edge].any() and not red[pred & ~pred_edge].any()
    grey = frames[~(blue | red | green)]
    assert (grey[:, 0] == grey[:, 1]).all() and (grey[:, 1] == grey[:, 2]).all()
    assert grey.min() == 0 and grey.max() == 255  # percentile window spans the full range
    for given, copy in zip(volumes, copies):
        np.testing.assert_array_equal(given, copy)


def test_outline_frames_of_chosen_slices_keep_the_whole_volume_window(
    volumes: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    flair, truth, pred = volumes
    chosen = np.array([0, len(flair) // 2, len(flair) - 1])
    np.testing.assert_array_equal(
        outline_frames(flair, truth, pred, chosen), outline_frames(flair, truth, pred)[chosen]
    )


def test_outline_frames_without_masks_and_bad_shapes(volumes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    flair, truth, _ = volumes
    frames = outline_frames(flair.astype(np.float32) * 3.7 - 20, None, None)
    assert (frames[..., 0] == frames[..., 2]).all()
    np.testing.assert_array_equal(frames, outline_frames(flair, None, None))  # the window is scale-invariant
    with pytest.raises(ValueError, match="shape"):
        outline_frames(flair, truth[:, :32], None)
    with pytest.raises(ValueError, match="slices"):
        outline_frames(flair[0], None, None)


def test_gif(volumes: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    flair, truth, pred = volumes
    outline_gif(flair, truth, pred, tmp_path / "case.gif", fps=4)
    gif = Image.open(tmp_path / "case.gif")
    assert gif.format == "GIF" and gif.n_frames == SLICES and gif.info["loop"] == 0
    expected = outline_frames(flair, truth, pred)
    for frame, want in zip(ImageSequence.Iterator(gif), expected):
        assert frame.info["duration"] == 250
        got = np.asarray(frame.convert("RGB"))
        np.testing.assert_array_equal(colour(got, (255, 0, 0)), colour(want, (255, 0, 0)))
        np.testing.assert_array_equal(colour(got, (0, 0, 255)), colour(want, (0, 0, 255)))
    with pytest.raises(ValueError, match="fps"):
        outline_gif(flair, truth, pred, tmp_path / "bad.gif", fps=0)
    assert [p.name for p in tmp_path.iterdir()] == ["case.gif"]


def test_montage(volumes: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    flair, truth, pred = volumes
    tumour_slices = int((truth | pred).any(axis=(1, 2)).sum())
    assert 6 < tumour_slices < SLICES
    tumour_montage(flair, truth, pred, tmp_path / "case.png")
    montage = Image.open(tmp_path / "case.png")
    assert montage.format == "PNG" and montage.mode == "RGB"
    assert montage.size == (6 * SIZE + 5 * 2, 2 * SIZE + 2)  # 6 columns, 2 rows, 2-pixel gaps
    assert colour(np.asarray(montage), (255, 0, 0)).any()
    tumour_montage(flair, truth, pred, tmp_path / "three.png", max_slices=3)
    assert Image.open(tmp_path / "three.png").size == (3 * SIZE + 2 * 2, SIZE)
    tumour_montage(flair, None, np.zeros_like(truth), tmp_path / "none.png")
    assert Image.open(tmp_path / "none.png").size == (SIZE, SIZE)
    with pytest.raises(ValueError, match="max_slices"):
        tumour_montage(flair, truth, pred, tmp_path / "bad.png", max_slices=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.png", "none.png", "three.png"]


def test_dice_distribution_lines(tmp_path: Path) -> None:
    dice = {f"TCGA_{i:02d}": v for i, v in enumerate(np.linspace(0.3, 0.95, 30) ** 0.3)}  # skewed: mean < median
    dice["UNDEFINED"] = math.nan
    given = dict(dice)
    dice_distribution(dice, tmp_path / "dice.png", title="Synthetic")
    assert dice == given  # same keys and the same value objects
    pixels = np.asarray(Image.open(tmp_path / "dice.png").convert("RGB")).astype(int)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    green = (pixels[..., 1] > 100) & (pixels[..., 0] < 60) & (pixels[..., 2] < 60)
    red_column, green_column = red.sum(axis=0).argmax(), green.sum(axis=0).argmax()
    assert red[:, red_column].sum() > 100 and green[:, green_column].sum() > 100  # two tall vertical lines
    assert red_column < green_column  # the mean lies left of the median
    assert pixels.shape[0] > 600  # the figure grows with the number of cases


def test_dice_distribution_edge_cases(tmp_path: Path) -> None:
    dice_distribution({"one": 0.5}, tmp_path / "one.png")
    dice_distribution({"a": math.nan, "b": math.nan}, tmp_path / "undefined.png")
    for name in ("one.png", "undefined.png"):
        assert Image.open(tmp_path / name).format == "PNG"
    with pytest.raises(ValueError, match="empty"):
        dice_distribution({}, tmp_path / "empty.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png", "undefined.png"]


def test_import_is_cheap() -> None:
    code = "import sys, flairseg.figures; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
