#!/usr/bin/env python3
"""Case preparation in several processes at once, with and without the BLAS pools bounded.

    python benchmarks/prepare_contention.py DATA [--processes 5] [--threads 3] [--cases 2]

Starts ``--processes`` processes at the same time, as cross-validation folds, ``--part`` jobs or
torchrun ranks share a machine; each reads and prepares the first ``--cases`` cases of DATA
(the released recipe's port preprocessing) with ``--threads`` threads. Once with PyTorch's
threads alone set (NumPy's and SciPy's BLAS pools as large as the machine) and once with
:func:`flairseg.inference.limit_threads`, which bounds both. Prints the median seconds per case.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def worker(data: Path, cases: int, threads: int, bounded: bool) -> None:
    """One process: prepare ``cases`` cases, print the seconds of each."""
    import torch

    from flairseg.config import PreprocessConfig
    from flairseg.data import prepare_case
    from flairseg.inference import limit_threads
    from flairseg.io import read_case

    if bounded:
        limit_threads(threads)
    else:
        torch.set_num_threads(threads)
    for path in sorted(data.glob("TCGA_*"))[:cases]:
        started = time.perf_counter()
        prepare_case(
            read_case(path, masks="required", mask_suffix="_mask"),
            "abnormality",
            PreprocessConfig(variant="port", size=256),
        )
        print(time.perf_counter() - started, flush=True)


def run(data: Path, processes: int, cases: int, threads: int, bounded: bool) -> float:
    """Median seconds per case over all processes started at once."""
    command = [sys.executable, __file__, str(data), "--worker", "--cases", str(cases), "--threads", str(threads)]
    jobs = [
        subprocess.Popen(command + (["--bounded"] if bounded else []), stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    seconds = [float(line) for job in jobs for line in job.communicate()[0].split()]
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="a kaggle_3m folder")
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--cases", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bounded", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.data, args.cases, args.threads, args.bounded)
        return
    alone = run(args.data, 1, args.cases, args.threads, bounded=True)
    print(f"1 process: {alone:.2f} s per case", flush=True)
    for bounded in (False, True):
        label = "PyTorch and BLAS threads bounded" if bounded else "PyTorch threads only"
        print(
            f"{args.processes} processes, {args.threads} threads each, {label}: "
            f"{run(args.data, args.processes, args.cases, args.threads, bounded):.2f} s per case",
            flush=True,
        )


if __name__ == "__main__":
    main()
