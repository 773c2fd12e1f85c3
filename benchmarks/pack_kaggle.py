"""Carry a Kaggle tree to a training machine in parts of bounded size, losslessly.

    python benchmarks/pack_kaggle.py pack DATA/kaggle_3m PACKED --parts 4    # PACKED/p0/data.tar ... p3
    python benchmarks/pack_kaggle.py unpack PACKED/p0/data.tar DEST/kaggle_3m   # on the training machine, per part

Each slice (RGB), mask and brain label (one channel) of every case folder is stored as lossless WebP (Pillow and
tifffile are all the unpacking needs), whole cases to a part, the parts about equal in size: the 88 LGG cases (1.1 GB
of TIFFs) take 193 MB in four parts; files beside the case folders (data.csv) are not carried. Packing checks every
slice decodes to its exact pixels. Unpacking writes the TIFFs back, says whether their bytes are the originals' (the
same pixels always; the same bytes where its tifffile writes as the one that wrote them: cross-validation folds
record the sha256 of the files they trained on, so folds trained on a tree whose bytes differ are evaluated on that
tree) and, once the part is whole, leaves an empty file ``DEST/../done_<part folder>``, so that a training can wait
for every part (``cv_compare.py --wait-for``) while later parts are still being copied.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

FLAT = ("_mask.webp", "_brain.webp")  # one-channel labels: WebP holds RGB, the first channel is the label
SUMS = "SHA256SUMS"  # each part's member listing the sha256 of its original TIFFs


def webp(image: np.ndarray, name: str) -> bytes:
    """``image`` (the TIFF ``name``, an RGB slice or a one-channel label) as lossless WebP, checked to decode to the
    same pixels."""
    if image.ndim != (2 if name.endswith(("_mask.tif", "_brain.tif")) else 3):
        raise SystemExit(f"pack_kaggle: {name} is not what its name says (a one-channel label or an RGB slice)")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "WEBP", lossless=True, quality=100, method=2)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
    if image.dtype != np.uint8 or not np.array_equal(decoded[..., 0] if image.ndim == 2 else decoded, image):
        raise SystemExit(f"pack_kaggle: {name} does not survive lossless WebP (not 8-bit?)")
    return buffer.getvalue()


def case_entries(case: Path) -> list[tuple[str, bytes, str]]:
    """Every TIFF of one case folder, as (name in the archive, WebP bytes, sha256 of the TIFF)."""
    return [
        (f"{case.name}/{path.stem}.webp", webp(tifffile.imread(path), str(path)), sha256(path.read_bytes()))
        for path in sorted(case.glob("*.tif"))
    ]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def pack(data: Path, out: Path, parts: int) -> None:
    """Every case folder under ``data`` into ``parts`` archives ``out/p<k>/data.tar`` of about equal size."""
    cases = sorted(p for p in data.iterdir() if p.is_dir())
    entries = []
    for index, case in enumerate(cases, 1):
        entries.append(case_entries(case))
        print(f"{index}/{len(cases)} {case.name}", flush=True)
    sizes = [sum(len(blob) for _, blob, _ in case) for case in entries]
    share, part, done = sum(sizes) / parts, 0, 0
    sums: list[list[str]] = [[] for _ in range(parts)]
    archives = []
    for k in range(parts):
        (out / f"p{k}").mkdir(parents=True, exist_ok=True)
        archives.append(tarfile.open(out / f"p{k}" / "data.tar", "w"))
    for case, size in zip(entries, sizes):
        if done + size / 2 > share * (part + 1) and part < parts - 1:
            part += 1
        for name, blob, digest in case:
            add(archives[part], name, blob)
            sums[part].append(f"{digest}  {name[: -len('.webp')]}.tif")
        done += size
    for archive, listed in zip(archives, sums):
        add(archive, SUMS, "\n".join(listed).encode())
        archive.close()
    print(f"{len(cases)} cases, {sum(sizes) / 1e6:.1f} MB in {parts} parts under {out}")


def write_tiff(entry: tuple[str, bytes, str]) -> None:
    """One archive member (name, WebP bytes, destination folder) written back as its TIFF."""
    name, blob, dest = entry
    image = np.asarray(Image.open(io.BytesIO(blob)))
    flat = name.endswith(FLAT)
    path = Path(dest) / (name[: -len(".webp")] + ".tif")
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, image[..., 0] if flat else image, photometric="minisblack" if flat else "rgb")


def unpack(archive: Path, dest: Path) -> None:
    """The TIFFs of the part ``archive`` written back under ``dest``, their bytes compared with the originals'."""
    with tarfile.open(archive) as tar:
        entries = [(m.name, tar.extractfile(m).read(), str(dest)) for m in tar.getmembers() if m.name != SUMS]
        listed = tar.extractfile(SUMS).read().decode().splitlines()
    with ProcessPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(write_tiff, entries, chunksize=32))
    same = sum(sha256((dest / name).read_bytes()) == digest for digest, name in (line.split("  ") for line in listed))
    (dest.parent / f"done_{archive.parent.name}").touch()
    print(f"{archive}: {len(entries)} slices into {dest}, {same} of them byte for byte the originals")
    if same < len(listed):
        print("the pixels are the originals', the bytes not all: evaluate folds trained on this tree on this tree")


def main() -> None:
    """pack or unpack, as the command line says."""
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
    try:
        if args.verb == "pack":
            pack(args.data, args.out, args.parts)
        else:
            unpack(args.archive, args.dest)
    except (OSError, KeyError, tarfile.TarError) as exc:  # a missing folder, a part not packed by pack_kaggle.py
        raise SystemExit(f"pack_kaggle: {type(exc).__name__}: {' '.join(str(exc).split())}") from None


if __name__ == "__main__":
    main()
