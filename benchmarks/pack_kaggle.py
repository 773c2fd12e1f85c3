"""Carry a Kaggle tree to a training machine in parts of bounded size, losslessly.

    python benchmarks/pack_kaggle.py pack DATA/kaggle_3m PACKED --parts 4    # PACKED/p0/data.tar ... p3
    python benchmarks/pack_kaggle.py unpack PACKED/p0/data.tar DEST/kaggle_3m   # on the training machine, per part

Each slice, mask and brain label is stored as lossless WebP (Pillow and tifffile are all the unpacking needs), whole
cases to a part, the parts about equal in size: the 88 LGG cases (1.1 GB of TIFFs) take 193 MB in four parts.
Packing checks every slice decodes to its exact pixels. Unpacking writes the TIFFs back and, once the part is whole,
an empty file ``DEST/../done_<part folder>``, so that a training can wait for every part (``cv_compare.py
--wait-for``) while later parts are still being copied.
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

FLAT = ("_mask.webp", "_brain.webp")  # one-channel labels: WebP holds RGB, the first channel is the label


def webp(image: np.ndarray, name: str) -> bytes:
    """``image`` as lossless WebP, checked to decode to the same pixels."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "WEBP", lossless=True, quality=100, method=2)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
    if image.dtype != np.uint8 or not np.array_equal(decoded[..., 0] if image.ndim == 2 else decoded, image):
        raise SystemExit(f"pack_kaggle: {name} does not survive lossless WebP (not 8-bit?)")
    return buffer.getvalue()


def case_entries(case: Path) -> list[tuple[str, bytes]]:
    """Every TIFF of one case folder, as (name in the archive, WebP bytes)."""
    return [
        (f"{case.name}/{path.stem}.webp", webp(tifffile.imread(path), str(path))) for path in sorted(case.glob("*.tif"))
    ]


def pack(data: Path, out: Path, parts: int) -> None:
    cases = sorted(p for p in data.iterdir() if p.is_dir())
    entries = []
    for index, case in enumerate(cases, 1):
        entries.append(case_entries(case))
        print(f"{index}/{len(cases)} {case.name}", flush=True)
    sizes = [sum(len(blob) for _, blob in case) for case in entries]
    share, part, done = sum(sizes) / parts, 0, 0
    archives = []
    for k in range(parts):
        (out / f"p{k}").mkdir(parents=True, exist_ok=True)
        archives.append(tarfile.open(out / f"p{k}" / "data.tar", "w"))
    for case, size in zip(entries, sizes):
        if done + size / 2 > share * (part + 1) and part < parts - 1:
            part += 1
        for name, blob in case:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            archives[part].addfile(info, io.BytesIO(blob))
        done += size
    for archive in archives:
        archive.close()
    print(f"{len(cases)} cases, {sum(sizes) / 1e6:.1f} MB in {parts} parts under {out}")


def write_tiff(entry: tuple[str, bytes, str]) -> None:
    name, blob, dest = entry
    image = np.asarray(Image.open(io.BytesIO(blob)))
    flat = name.endswith(FLAT)
    path = Path(dest) / (name[: -len(".webp")] + ".tif")
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, image[..., 0] if flat else image, photometric="minisblack" if flat else "rgb")


def unpack(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        entries = [(m.name, tar.extractfile(m).read(), str(dest)) for m in tar.getmembers()]
    with ProcessPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(write_tiff, entries, chunksize=32))
    (dest.parent / f"done_{archive.parent.name}").touch()
    print(f"{archive}: {len(entries)} slices into {dest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    packing = verbs.add_parser("pack")
    packing.add_argument("data", type=Path)
    packing.add_argument("out", type=Path)
    packing.add_argument("--parts", type=int, default=4)
    unpacking = verbs.add_parser("unpack")
    unpacking.add_argument("archive", type=Path)
    unpacking.add_argument("dest", type=Path)
    args = parser.parse_args()
    if args.verb == "pack":
        pack(args.data, args.out, args.parts)
    else:
        unpack(args.archive, args.dest)


if __name__ == "__main__":
    main()
