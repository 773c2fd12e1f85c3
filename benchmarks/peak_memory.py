"""Peak resident memory of `flairseg predict` (the released default model) on the largest cases it meets.

    python benchmarks/peak_memory.py DATA [--threads 2] [--slices 200 ...]

Runs `flairseg predict` in a child process, once per input, and reads the child's peak
resident set size (``getrusage(RUSAGE_CHILDREN)``, one fresh child per measurement):

- the LGG case under DATA with the most slices (88 in the 88 restored cases);
- a synthetic 512 x 512 x 200 float32 NIfTI head (an ellipsoid brain in a skull shell), as a
  large clinical FLAIR volume would be; ``--slices 100 200 400`` measures heads of those slice
  counts instead, and the table then gives how much the peak grows per slice;
- with ``--thin 400``, a NIfTI FLAIR of 400 slices of 4 x 4 voxels (each slice resampled to the
  model's 256 x 256 grid) against one of 3 such slices (the model's own memory), beside what the
  memory budget (``--max-memory``) counts for it.

Prints a Markdown table and writes benchmarks/results/peak_memory.json. Not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_head(path: Path, shape: tuple[int, int, int] = (512, 512, 200)) -> None:
    import nibabel as nib

    x, y, z = (np.linspace(-1, 1, n, dtype=np.float32) for n in shape)
    radius = np.sqrt(x[:, None, None] ** 2 / 0.55**2 + y[None, :, None] ** 2 / 0.7**2 + z[None, None, :] ** 2 / 0.8**2)
    volume = np.where(radius <= 1.0, 400.0, 5.0).astype(np.float32)
    volume[(radius > 1.05) & (radius <= 1.2)] = 900.0
    volume[(radius < 0.25)] += 250.0  # a bright lesion
    volume += np.random.default_rng(0).normal(0, 10, size=shape).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.diag([0.45, 0.45, 0.9, 1.0])), path)


def thin_volume(path: Path, slices: int) -> None:
    import nibabel as nib

    volume = np.random.default_rng(0).uniform(100, 400, size=(4, 4, slices)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), path)


def thin_rows(folder: Path, slices: int, threads: int) -> list[dict]:
    """The peak of a thin volume of ``slices`` slices and of one of 3, and the budget's count for the first."""
    from flairseg.memory import BYTES_PER_VOXEL

    rows = []
    for count in (3, slices):
        volume = folder / f"thin_4x4x{count}.nii.gz"
        thin_volume(volume, count)
        print(f"predicting a 4 x 4 x {count} volume", file=sys.stderr, flush=True)
        rows.append({**measure(volume, folder / f"thin{count}", threads), "shape": f"4 x 4 x {count}"})
    rows[-1]["counted_mb"] = slices * 256**2 * BYTES_PER_VOXEL / 2**20
    return rows


def measure(source: Path, out: Path, threads: int) -> dict:
    """Run one `flairseg predict` in a fresh child interpreter and return its peak RSS and wall time."""
    code = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = [
        sys.executable,
        "-c",
        code,
        sys.executable,
        "-m",
        "flairseg",
        "predict",
        "-i",
        str(source),
        "-o",
        str(out),
        "--threads",
        str(threads),
        "--quiet",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return {"input": source.name, "peak_rss_mb": int(done.stdout.strip().splitlines()[-1]) / 1024, "seconds": seconds}


def print_table(rows: list[dict], thin: list[dict], threads: int, slices: list[int]) -> None:
    print(f"{platform.machine()}, {threads} threads, `flairseg predict` with the released default model\n")
    print("| input | grid | peak RSS MB | wall s |\n|---|---|---|---|")
    for row in rows + thin:
        print(f"| {row['input']} | {row['shape']} | {row['peak_rss_mb']:.0f} | {row['seconds']:.1f} |")
    heads = rows[1:]
    if slices[-1] != slices[0]:
        growth = (heads[-1]["peak_rss_mb"] - heads[0]["peak_rss_mb"]) / (slices[-1] - slices[0])
        print(f"\npeak grows {growth:.2f} MB per 512 x 512 slice ({growth * 2**20 / 512**2:.1f} bytes per voxel)")
    if thin:
        above, counted = thin[1]["peak_rss_mb"] - thin[0]["peak_rss_mb"], thin[1]["counted_mb"]
        print(f"\n{thin[1]['shape']}: {above:.0f} MB above the peak of 4 x 4 x 3; the budget counts {counted:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "peak_memory.json")
    parser.add_argument("--slices", type=int, nargs="+", default=[200], help="slice counts of the synthetic heads")
    parser.add_argument("--thin", type=int, default=0, help="slices of a thin 4 x 4 volume to measure (0: none)")
    args = parser.parse_args()
    if min(args.slices) < 3:
        parser.error("--slices takes slice counts of at least 3")
    largest = max((p for p in args.data.iterdir() if p.is_dir()), key=lambda p: len(list(p.glob("*_mask.tif"))))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"predicting {largest.name}", file=sys.stderr, flush=True)
        rows.append(
            {
                **measure(largest, folder / "lgg", args.threads),
                "shape": f"{len(list(largest.glob('*_mask.tif')))} x 256 x 256",
            }
        )
        for slices in args.slices:
            print(f"predicting a synthetic 512 x 512 x {slices} head", file=sys.stderr, flush=True)
            volume = folder / f"head_512x512x{slices}.nii.gz"
            synthetic_head(volume, (512, 512, slices))
            rows.append({**measure(volume, folder / f"nifti{slices}", args.threads), "shape": f"512 x 512 x {slices}"})
            volume.unlink()
        thin = thin_rows(folder, args.thin, args.threads) if args.thin else []
    print_table(rows, thin, args.threads, args.slices)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": platform.platform(), "threads": args.threads, "rows": rows + thin}
    args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
