"""Figures of the field: the Dice distribution, outline GIFs and tumour montages.

matplotlib and Pillow are imported lazily and matplotlib is used through its object API
(``Figure`` + ``FigureCanvasAgg``, no pyplot, no global backend switch), so importing
this module is cheap and safe in notebooks and servers. Every file is written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np

from flairseg.metrics import surface
from flairseg.outputs import atomic_file

TRUTH_COLOUR = (0, 0, 255)  # manual outline
PRED_COLOUR = (255, 0, 0)  # model outline
AGREE_COLOUR = (0, 230, 0)  # where both outlines run
MONTAGE_COLUMNS = 6
_GAP = 2  # pixels between montage tiles
_GAP_GREY = 64


def dice_distribution(dice: Mapping[str, float], path: str | os.PathLike, title: str | None = None) -> None:
    """Write a PNG with one horizontal bar per case sorted by Dice, a red mean and a green median line.

    The lowest Dice is at the bottom. Cases whose Dice is NaN (undefined) are left out and
    counted in the title. The mean line is dashed so that it stays visible on the median.

    Args:
        dice: Dice per case id.
        path: output PNG.
        title: figure title; default "Dice distribution, N cases".

    Raises:
        ValueError: when ``dice`` is empty.
    """
    if not dice:
        raise ValueError("no cases to plot: the Dice mapping is empty")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    defined = {case: float(value) for case, value in dice.items() if not math.isnan(value)}
    cases = sorted(defined, key=defined.__getitem__)
    values = np.array([defined[case] for case in cases])
    rows = np.arange(len(cases))
    figure = Figure(figsize=(6.0, max(2.4, 0.18 * len(cases) + 1.4)), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.barh(rows, values, height=0.7, color="#8fa9c9")
    if len(values):
        mean, median = float(values.mean()), float(np.median(values))
        median_line = axes.axvline(median, color="green", linewidth=2, label=f"median {median:.3f}")
        mean_line = axes.axvline(mean, color="red", linewidth=2, linestyle="--", label=f"mean {mean:.3f}")
        axes.legend(  # in a row above the axes, where it never hides a bar
            handles=[mean_line, median_line],
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncols=2,
            frameon=False,
            fontsize=8,
        )
    else:
        axes.text(0.5, 0.5, "no defined Dice", ha="center", va="center", transform=axes.transAxes)
    axes.set_yticks(rows, cases, fontsize=6.5)
    axes.set_ylim(-0.6, max(len(cases), 1) - 0.4)
    axes.set_xlim(0, 1)
    axes.set_xlabel("Dice similarity coefficient")
    undefined = len(dice) - len(defined)
    heading = title or f"Dice distribution, {len(cases)} case{'' if len(cases) == 1 else 's'}"
    axes.set_title(heading + (f" ({undefined} undefined)" if undefined else ""), fontsize=10, pad=20)
    figure.tight_layout()
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png")


def _grey(volume: np.ndarray, slices: np.ndarray | None = None) -> np.ndarray:
    """Map the 0.5th..99.5th percentile window of the whole volume to uint8 0..255, on ``slices`` (default all).

    The window is found in the volume's own dtype and only the slices drawn are converted to float64:
    a float64 copy of a large volume and its temporaries once took 1.6 GB for a 512 x 512 x 200 one.
    """
    low, high = (float(v) for v in np.percentile(volume, [0.5, 99.5]))
    chosen = np.asarray(volume if slices is None else volume[slices], dtype=np.float64)
    scaled = np.clip((chosen - low) / (high - low), 0, 1) if high > low else np.zeros_like(chosen)
    return np.round(scaled * 255).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    """Inner boundary of every slice of a (S, H, W) mask, one pixel wide."""
    mask = np.asarray(mask, dtype=bool)
    return surface(mask, in_plane=True)


def _checked_flair(flair: np.ndarray, truth: np.ndarray | None, pred: np.ndarray | None) -> np.ndarray:
    """``flair`` as an array, refused unless it is a non-empty (S, H, W) volume with the masks on its grid."""
    flair = np.asarray(flair)
    if flair.ndim != 3 or flair.size == 0:
        raise ValueError(f"flair must be a non-empty (slices, height, width) array, got shape {flair.shape}")
    for name, mask in (("truth", truth), ("pred", pred)):
        if mask is not None and np.shape(mask) != flair.shape:
            raise ValueError(
                f"{name} has shape {np.shape(mask)} but flair has {flair.shape}; give masks on the image grid"
            )
    return flair


def outline_frames(
    flair: np.ndarray, truth: np.ndarray | None, pred: np.ndarray | None, slices: np.ndarray | None = None
) -> np.ndarray:
    """Render FLAIR slices in grey with the truth outline in blue, the prediction outline in red, green where both run.

    Args:
        flair: (S, H, W) image of any real dtype.
        truth: (S, H, W) ground-truth mask, or None.
        pred: (S, H, W) predicted mask, or None.
        slices: indices of the slices to render (default all); the grey window is the whole volume's.

    Returns:
        (len(slices), H, W, 3) uint8 RGB frames.

    Raises:
        ValueError: when ``flair`` is not 3-D, is empty, or a mask's shape differs from it.
    """
    flair = _checked_flair(flair, truth, pred)
    frames = np.repeat(_grey(flair, slices)[..., None], 3, axis=-1)
    chosen = slice(None) if slices is None else slices
    edges = [None if mask is None else _outline(np.asarray(mask)[chosen]) for mask in (truth, pred)]
    for edge, colour in zip(edges, (TRUTH_COLOUR, PRED_COLOUR)):
        if edge is not None:
            frames[edge] = colour
    if edges[0] is not None and edges[1] is not None:
        frames[edges[0] & edges[1]] = AGREE_COLOUR
    return frames


def outline_gif(
    flair: np.ndarray, truth: np.ndarray | None, pred: np.ndarray | None, path: str | os.PathLike, fps: float = 5.0
) -> None:
    """Write an animated GIF through all slices of :func:`outline_frames`, looping forever.

    Pillow merges identical consecutive frames into one longer frame, so the playback time
    is always ``S / fps`` but the frame count can be below S for, e.g., blank padding slices.

    Raises:
        ValueError: when ``fps`` is not positive, or as :func:`outline_frames`.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    from PIL import Image

    frames = [Image.fromarray(frame) for frame in outline_frames(flair, truth, pred)]
    with atomic_file(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)


def _tumour_slices(count: int, masks: list[np.ndarray], max_slices: int) -> tuple[np.ndarray, list[str]]:
    """Indices and labels of the slices to show: those with tumour (evenly thinned) or the middle one."""
    has_tumour = np.zeros(count, dtype=bool)
    for mask in masks:
        has_tumour |= np.asarray(mask, dtype=bool).any(axis=(1, 2))
    chosen = np.flatnonzero(has_tumour)
    if chosen.size == 0:
        return np.array([count // 2]), ["no tumour"]
    if chosen.size > max_slices:
        chosen = chosen[np.linspace(0, chosen.size - 1, max_slices).round().astype(int)]
    return chosen, [str(index + 1) for index in chosen]


def tumour_montage(
    flair: np.ndarray,
    truth: np.ndarray | None,
    pred: np.ndarray | None,
    path: str | os.PathLike,
    max_slices: int = 24,
    sides: tuple[str, str] | None = None,
) -> None:
    """Write a PNG grid of the outlined slices with tumour in truth or prediction.

    Each tile is labelled with its 1-based slice number. At most ``max_slices`` slices are
    shown, evenly spread when more have tumour; with no tumour at all, the middle slice is
    shown labelled "no tumour". Tiles are separated by a thin grey gap. ``sides`` (e.g.
    ``("R", "L")``) are written at the left and right edge of the first tile: the patient's
    sides, where the image's orientation is known.

    Raises:
        ValueError: when ``max_slices`` is below 1, or as :func:`outline_frames`.
    """
    if max_slices < 1:
        raise ValueError(f"max_slices must be at least 1, got {max_slices}")
    from PIL import Image, ImageDraw, ImageFont

    flair = _checked_flair(flair, truth, pred)
    chosen, labels = _tumour_slices(len(flair), [m for m in (truth, pred) if m is not None], max_slices)
    frames = outline_frames(flair, truth, pred, chosen)  # only the slices shown
    columns = min(MONTAGE_COLUMNS, chosen.size)
    rows = math.ceil(chosen.size / columns)
    height, width = frames.shape[1:3]
    padded = np.full((rows * columns, height + _GAP, width + _GAP, 3), _GAP_GREY, dtype=np.uint8)
    padded[: chosen.size, :height, :width] = frames
    padded[chosen.size :, :height, :width] = 0
    sheet = padded.reshape(rows, columns, height + _GAP, width + _GAP, 3).transpose(0, 2, 1, 3, 4)
    sheet = sheet.reshape(rows * (height + _GAP), columns * (width + _GAP), 3)[:-_GAP, :-_GAP]
    image = Image.fromarray(np.ascontiguousarray(sheet))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, height // 14))
    for position, label in enumerate(labels):
        row, column = divmod(position, columns)
        origin = (column * (width + _GAP) + 3, row * (height + _GAP) + 2)
        draw.text(origin, label, fill=(255, 255, 0), font=font, stroke_width=1, stroke_fill=(0, 0, 0))
    for side, anchor, x in zip(sides or (), ("lm", "rm"), (3, width - 3)):
        draw.text(
            (x, height // 2),
            side,
            fill=(255, 255, 255),
            font=font,
            anchor=anchor,
            stroke_width=1,
            stroke_fill=(0, 0, 0),
        )
    with atomic_file(path) as tmp:
        image.save(tmp, format="PNG", compress_level=3)  # 4x faster than the default 6, and no larger on MRI


def grouped_boxplot(
    groups: Mapping[str, list[float]], path: str | os.PathLike, title: str, ylabel: str, split: float | None = None
) -> None:
    """Write a PNG with one box plot per group (in the mapping's order) and its points jittered over it.

    Each group's tick label carries its size. Groups with no values are drawn empty. ``split``,
    when given, is drawn as a dashed horizontal line (e.g. the median that splits high from low).

    Raises:
        ValueError: when ``groups`` is empty.
    """
    if not groups:
        raise ValueError("no groups to plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(groups)
    figure = Figure(figsize=(1.2 + 1.1 * len(names), 3.6), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.boxplot([list(groups[n]) for n in names], showfliers=False, medianprops={"color": "green"})
    jitter = np.random.default_rng(0)  # fixed, so the figure is the same every run
    for position, name in enumerate(names, start=1):
        values = np.asarray(groups[name], dtype=float)
        axes.scatter(
            position + jitter.uniform(-0.12, 0.12, values.size), values, s=10, color="#4a6f9c", alpha=0.7, zorder=3
        )
    if split is not None:
        axes.axhline(split, color="red", linestyle="--", linewidth=1, label=f"median split {split:.3g}")
        axes.legend(loc="best", fontsize=7, frameon=False)
    axes.set_xticks(range(1, len(names) + 1), [f"{n}\n(n={len(groups[n])})" for n in names], fontsize=8)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png")
