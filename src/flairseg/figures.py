"""Figures of the field: the Dice distribution, outline GIFs and tumour montages.

matplotlib is imported lazily and used through its object API (no pyplot, no global
backend switch), so importing this module is cheap and safe in notebooks and servers.
Every file is written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from flairseg.outputs import atomic_file

TRUTH_COLOUR = (0, 0, 255)
PRED_COLOUR = (255, 0, 0)
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def dice_distribution(dice: Mapping[str, float], path: str | os.PathLike, title: str | None = None) -> None:
    """PNG with one horizontal bar per case sorted by Dice, a red mean line and a green median line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not dice:
        raise ValueError("no cases to plot")
    defined = {case: value for case, value in dice.items() if not math.isnan(value)}
    undefined = len(dice) - len(defined)
    cases = sorted(defined, key=lambda case: defined[case])
    values = np.array([defined[case] for case in cases])
    figure = Figure(figsize=(6.0, max(3.0, 0.18 * len(cases) + 1.4)), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.barh(np.arange(len(cases)), values, height=0.7, color="#8fa9c9")
    if len(values):
        mean, median = float(values.mean()), float(np.median(values))
        axes.axvline(mean, color="red", linewidth=2, label=f"mean {mean:.3f}")
        axes.axvline(median, color="green", linewidth=2, label=f"median {median:.3f}")
        axes.legend(loc="lower right", fontsize=8)
    axes.set_yticks(np.arange(len(cases)), cases, fontsize=max(4, min(8, 400 // max(len(cases), 1))))
    axes.set_ylim(-0.6, len(cases) - 0.4)
    axes.set_xlim(0, 1)
    axes.set_xlabel("Dice similarity coefficient")
    suffix = f" ({undefined} undefined)" if undefined else ""
    axes.set_title((title or f"Dice distribution, {len(cases)} cases") + suffix, fontsize=10)
    figure.tight_layout()
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png")


def _grey(volume: np.ndarray) -> np.ndarray:
    volume = np.asarray(volume, dtype=np.float64)
    low, high = np.percentile(volume, [0.5, 99.5]) if volume.size else (0.0, 1.0)
    scaled = np.clip((volume - low) / (high - low), 0, 1) if high > low else np.zeros_like(volume)
    return np.round(scaled * 255).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=_IN_PLANE, border_value=0)


def outline_frames(flair: np.ndarray, truth: np.ndarray | None, pred: np.ndarray | None) -> np.ndarray:
    """(S, H, W, 3) uint8 frames: FLAIR in grey, truth outline blue, prediction outline red (on top)."""
    grey = _grey(flair)
    frames = np.repeat(grey[..., None], 3, axis=-1)
    for mask, colour in ((truth, TRUTH_COLOUR), (pred, PRED_COLOUR)):
        if mask is not None:
            frames[_outline(mask)] = colour
    return frames


def outline_gif(
    flair: np.ndarray, truth: np.ndarray | None, pred: np.ndarray | None, path: str | os.PathLike, fps: float = 5.0
) -> None:
    """Animated GIF through all slices of :func:`outline_frames`, looping forever."""
    from PIL import Image

    frames = [Image.fromarray(frame) for frame in outline_frames(flair, truth, pred)]
    with atomic_file(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)


def tumour_montage(
    flair: np.ndarray, truth: np.ndarray | None, pred: np.ndarray | None, path: str | os.PathLike, max_slices: int = 24
) -> None:
    """PNG grid of the outlined slices with tumour in truth or prediction, each labelled with its slice number."""
    from PIL import Image, ImageDraw

    frames = outline_frames(flair, truth, pred)
    masks = [m for m in (truth, pred) if m is not None]
    has_tumour = np.zeros(frames.shape[0], dtype=bool)
    for mask in masks:
        has_tumour |= np.asarray(mask, dtype=bool).any(axis=(1, 2))
    chosen = np.flatnonzero(has_tumour)
    labels = [f"{index + 1}" for index in chosen]
    if chosen.size == 0:
        chosen, labels = np.array([frames.shape[0] // 2]), ["no tumour"]
    elif chosen.size > max_slices:
        picks = np.linspace(0, chosen.size - 1, max_slices).round().astype(int)
        chosen, labels = chosen[picks], [labels[i] for i in picks]
    columns = min(6, chosen.size)
    rows = math.ceil(chosen.size / columns)
    height, width = frames.shape[1:3]
    sheet = np.zeros((rows * height, columns * width, 3), dtype=np.uint8)
    for position, index in enumerate(chosen):
        row, column = divmod(position, columns)
        sheet[row * height : (row + 1) * height, column * width : (column + 1) * width] = frames[index]
    image = Image.fromarray(sheet)
    draw = ImageDraw.Draw(image)
    for position, label in enumerate(labels):
        row, column = divmod(position, columns)
        draw.text((column * width + 3, row * height + 2), label, fill=(255, 255, 0))
    with atomic_file(path) as tmp:
        image.save(tmp, format="PNG")
