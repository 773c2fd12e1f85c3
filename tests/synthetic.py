"""Small synthetic data for the tests: a phantom head with a tumour, written in the Kaggle layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def phantom(slices: int = 8, size: int = 64, seed: int = 0, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A head-like ellipse with a bright blob "tumour": (S, H, W, 3) uint8 image and (S, H, W) bool mask."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:slices, :size, :size].astype(float)
    zc, c = (slices - 1) / 2, (size - 1) / 2
    head = ((y - c) / (0.42 * size)) ** 2 + ((x - c) / (0.35 * size)) ** 2 + ((z - zc) / (0.6 * slices)) ** 2 <= 1
    tumour = ((y - c + 0.1 * size) ** 2 + (x - c - 0.1 * size - shift) ** 2) / (0.12 * size) ** 2 + (
        (z - zc) / (0.3 * slices)
    ) ** 2 <= 1
    base = rng.integers(1, 7, size=(slices, size, size)).astype(float)
    base[head] = rng.normal(100, 8, size=int(head.sum()))
    base[tumour & head] += 60
    image = np.stack([base * 0.8, base, base * 0.9], axis=-1)
    return np.clip(image, 0, 255).astype(np.uint8), tumour & head


def write_kaggle_case(root: Path, case_id: str, image: np.ndarray, mask: np.ndarray | None) -> Path:
    """Write a case folder ``root/case_id`` of ``<case>_<k>.tif`` (+ ``_mask.tif``) like the Kaggle dataset."""
    folder = root / case_id
    folder.mkdir(parents=True)
    for k in range(image.shape[0]):
        plane = image[k]
        photometric = "rgb" if plane.ndim == 3 and plane.shape[-1] == 3 else "minisblack"
        tifffile.imwrite(folder / f"{case_id}_{k + 1}.tif", plane, photometric=photometric)
        if mask is not None:
            tifffile.imwrite(
                folder / f"{case_id}_{k + 1}_mask.tif", mask[k].astype(np.uint8) * 255, photometric="minisblack"
            )
    return folder


def write_phantom_tree(root: Path, prefix: str, count: int, slices: int = 8, size: int = 64) -> Path:
    """``count`` phantom cases named ``<prefix><k>`` (seeds 0 .. count - 1) in the Kaggle layout under ``root``."""
    for index in range(count):
        image, mask = phantom(slices=slices, size=size, seed=index)
        write_kaggle_case(root, f"{prefix}{index}", image, mask)
    return root


def make_marked_folder(path: Path, kind: str | None = None) -> None:
    """A folder ``path`` with flairseg's marker, as its commands leave the folders they make, naming ``kind`` (None:
    the marker of an older flairseg, which names no kind)."""
    from flairseg.outputs import MARKER, write_marker

    path.mkdir(parents=True)
    if kind is None:
        (path / MARKER).write_text("made by flairseg; `--overwrite` may replace this folder\n")
    else:
        write_marker(path, kind)  # type: ignore[arg-type]


def with_nan_pixel(slice_file: Path) -> None:
    """Rewrite the image slices of ``slice_file``'s Kaggle case folder as float32 (a case's slices share one bit
    depth) and give ``slice_file`` a NaN pixel: a sound header, a slice that fails once decoded."""
    import re

    for path in slice_file.parent.glob("*.tif"):
        if re.fullmatch(r".+_\d+\.tif", path.name) and not path.stem.endswith(("_mask", "_brain")):
            image = tifffile.imread(path).astype(np.float32)
            if path == slice_file:
                image.flat[1] = np.nan
            tifffile.imwrite(path, image, photometric="rgb" if image.ndim == 3 else "minisblack")
