#!/usr/bin/env python3
"""How `flairseg predict` grows with the number of cases: wall time and peak memory, first run and rerun.

    python benchmarks/predict_scaling.py WORK [--cases 1 10 100 1000] [--slices 4] [--size 64] [--folds 0]

Writes ``--cases`` synthetic Kaggle cases (``--slices`` slices of ``--size`` px with a phantom
tumour and its mask) under WORK, predicts them in a fresh process (the released model,
``--folds 0``: its first member, since the network's cost per case does not depend on how many
cases there are), then predicts again into the same folder (every case already done: listing,
header checks, record checks and the report merge alone). Peak memory is the child process's
maximum resident set. Also times the bare start of the CLI (``flairseg --version``). Prints a
markdown table; growth should be linear in cases (constant seconds per case).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile


def write_cases(root: Path, count: int, slices: int, size: int) -> None:
    """``count`` Kaggle case folders of ``slices`` 3-channel slices with a bright blob and its mask."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    blob = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 6) ** 2
    head = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 2.2) ** 2
    for index in range(count):
        case = root / f"CASE{index:05d}"
        case.mkdir(parents=True)
        for k in range(1, slices + 1):
            image = (head[..., None] * rng.integers(60, 120, size=(size, size, 3)) + blob[..., None] * 100).astype(
                np.uint8
            )
            tifffile.imwrite(case / f"CASE{index:05d}_{k}.tif", image, photometric="rgb")
            tifffile.imwrite(case / f"CASE{index:05d}_{k}_mask.tif", (blob * 255).astype(np.uint8))


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one child process; exits on its failure."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"predict_scaling: {' '.join(command)} failed: {process.stderr.read().decode()[-500:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path, help="an empty or new folder for the cases and the outputs")
    parser.add_argument("--cases", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--folds", default="0", help="members of the released ensemble to run (predict --folds)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.work.exists() and any(args.work.iterdir()):
        sys.exit(f"predict_scaling: {args.work} is not empty; give a new folder")
    flairseg = [sys.executable, "-m", "flairseg"]
    start = min(timed(flairseg + ["--version"])[0] for _ in range(3))
    print(f"CLI start (flairseg --version, best of 3): {start:.2f} s", flush=True)
    print(
        f"{args.slices} slices of {args.size} px per case, model: released, --folds {args.folds}, {args.threads} "
        "threads"
    )
    print("| cases | first run s | s per case | peak MB | rerun (all done) s | rerun s per case | rerun peak MB |")
    print("|---|---|---|---|---|---|---|")
    for count in args.cases:
        data, out = args.work / f"in-{count}", args.work / f"out-{count}"
        write_cases(data, count, args.slices, args.size)
        command = flairseg + [
            "predict",
            "-i",
            str(data),
            "-o",
            str(out),
            "--folds",
            args.folds,
            "--threads",
            str(args.threads),
            "--quiet",
        ]
        first, first_mb = timed(command)
        rerun, rerun_mb = timed(command)
        print(
            f"| {count} | {first:.1f} | {first / count:.3f} | {first_mb:.0f} | {rerun:.1f} | {rerun / count:.3f} | "
            f"{rerun_mb:.0f} |",
            flush=True,
        )
        shutil.rmtree(data)
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
