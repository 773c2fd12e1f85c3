#!/usr/bin/env python3
"""Cross-validate several training recipes at once on one machine and compare them out of fold.

    python benchmarks/cv_compare.py DATA OUT RECIPE [RECIPE ...] --device cuda --seconds 540

Every fold of every recipe trains as its own `flairseg cv --fold K` process, all at the same
time (they share the GPU, or the CPU cores); then each recipe is evaluated out of fold by
`flairseg cv` and a table compares them (OUT/comparison.md, OUT/comparison.csv).

``--seconds`` is the wall time the whole comparison may take. The script first times one
training step of each recipe on the device, then gives every recipe the same number of
epochs (at most ``--max-epochs``; the recipe's own when it fits) so that training ends in
time; recipes that would get fewer than ``--min-epochs`` are dropped, the last given first.
Folds still training at the deadline are stopped (they resume with the same command) and
their recipe is not evaluated. Runs are ordinary cross-validation folders (OUT/<recipe>),
so everything continues with `flairseg cv` alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import torch

from flairseg.config import TrainConfig, from_dict
from flairseg.errors import FlairsegError
from flairseg.losses import loss_function
from flairseg.model import UNet
from flairseg.inference import limit_threads, resolve_device
from flairseg.distributed import World
from flairseg.train import epoch_batches, train_step

PREPARE_SECONDS = 60  # reading and preparing the training cases, per process, all at once
EVALUATE_SECONDS = 120  # out-of-fold prediction and report of one recipe (they run side by side)
MARGIN = 1.2  # validation after each epoch, checkpoints, and what the timing window misses
TIMING_SECONDS = 10  # the window in which every fold's stand-in counts its steps


def synthetic_cases(config: TrainConfig, cases: int = 4, slices: int = 20) -> list[SimpleNamespace]:
    """Stand-ins for prepared training cases: random inputs, a blob of tumour on every slice."""
    rng = np.random.default_rng(0)
    size = config.preprocess.size
    target = np.zeros((slices, size, size), dtype=bool)
    target[:, size // 3 : size // 2, size // 3 : size // 2] = True
    return [
        SimpleNamespace(
            inputs=rng.random((slices, config.model.in_channels, size, size), dtype=np.float32), target=target
        )
        for _ in range(cases)
    ]


def time_steps(recipe: Path, device_name: str, start: float, seconds: float, threads: int) -> float:
    """Seconds per real training step (batches built and augmented as in training, by its batch workers when the
    recipe has them, then one optimisation step) of ``recipe`` on ``threads`` CPU threads, counted from wall time
    ``start`` (or the first step after it) to ``start + seconds``, while the other folds do the same."""
    limit_threads(threads)
    config = from_dict(TrainConfig, json.loads(recipe.read_text()))
    device = resolve_device(device_name)
    model = UNet(**vars(config.model)).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = loss_function(config.loss)
    cases = synthetic_cases(config)
    stand_in = SimpleNamespace(train=cases, stripped=None, areas=[case.target.sum(axis=(1, 2)) for case in cases])
    batches = epoch_batches(stand_in, replace(config, skull_strip=0.0), 0, 5000, World(0, 1, 0), device)
    train_step(model, optimizer, loss_fn, *next(batches), config.bfloat16)  # warm-up: kernels, lazy imports
    while time.time() < start:  # warm up until every fold is ready
        train_step(model, optimizer, loss_fn, *next(batches), config.bfloat16)
    began, counted = time.time(), 0
    while counted < 3 or time.time() < start + seconds:
        train_step(model, optimizer, loss_fn, *next(batches), config.bfloat16)
        counted += 1
    return (time.time() - began) / counted


def concurrent_step_seconds(
    recipes: dict[str, Path], configs: dict[str, TrainConfig], folds: dict[str, int], device: str
) -> dict[str, float]:
    """Seconds per training step of each recipe while all its folds and the other recipes' run at once."""
    start = time.time() + 20 + sum(folds.values())  # time for every process to start and reach the device
    threads = str(fold_threads(folds, configs))
    jobs = [
        (
            name,
            subprocess.Popen(
                [sys.executable, __file__, "--time-step", str(path), "--device", device, "--start", str(start)]
                + ["--threads", threads],
                stdout=subprocess.PIPE,
                text=True,
            ),
        )
        for name, path in recipes.items()
        for _ in range(folds[name])
    ]
    seconds: dict[str, list[float]] = {name: [] for name in recipes}
    for name, job in jobs:
        out, _ = job.communicate()
        if job.returncode != 0:
            raise FlairsegError(f"timing the steps of {name} failed (exit {job.returncode})")
        seconds[name].append(float(out.split()[-1]))
    return {name: max(values) for name, values in seconds.items()}


def fold_threads(folds: dict[str, int], configs: dict[str, TrainConfig]) -> int:
    """CPU threads of each fold process: an equal share of the cores, its batch workers counted."""
    processes = sum(count * (1 + configs[name].batch_workers) for name, count in folds.items())
    return max(1, (os.cpu_count() or 1) // processes)


def plan_epochs(
    configs: dict[str, TrainConfig], seconds: dict[str, float], budget: float, min_epochs: int, max_epochs: int
) -> int:
    """The most epochs (at most each recipe's own and ``max_epochs``) that the slowest recipe's folds finish in
    ``budget`` seconds.
    """
    per_epoch = max(configs[n].steps_per_epoch * seconds[n] for n in configs) * MARGIN
    epochs = min(max_epochs, max(c.epochs for c in configs.values()), math.floor(budget / per_epoch))
    return epochs if epochs >= min_epochs else 0


def flairseg(*args: str) -> list[str]:
    return [sys.executable, "-m", "flairseg", *args]


def cv_command(recipe: Path, data: Path, run: Path, device: str, epochs: int, *extra: str) -> list[str]:
    """`flairseg cv` of ``recipe`` on ``data`` into ``run`` with ``epochs`` epochs, plus ``extra`` options."""
    common = ("--config", str(recipe), "--data", str(data), "-o", str(run), "--device", device)
    return flairseg("cv", *common, "--set", f"epochs={epochs}", *extra)


def epochs_done(run: Path) -> int:
    log = run / "log.csv"
    return max(0, len(log.read_text().splitlines()) - 1) if log.is_file() else 0


def train_all(
    data: Path,
    out: Path,
    recipes: dict[str, Path],
    folds: dict[str, int],
    epochs: int,
    device: str,
    deadline: float,
    threads: int,
) -> dict[str, bool]:
    """Start every fold of every recipe at once, each on ``threads`` CPU threads; stop what still runs at
    ``deadline``; which recipes finished."""
    jobs = []
    out.mkdir(parents=True, exist_ok=True)
    for name, recipe in recipes.items():
        for fold in range(folds[name]):  # the folds make their cross-validation folder themselves (it is marked)
            log = (out / f"{name}-fold-{fold}.log").open("w")
            command = cv_command(
                recipe, data, out / name, device, epochs, "--fold", str(fold), "--threads", str(threads)
            )
            jobs.append((name, fold, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)))
    print(
        f"training {len(jobs)} folds of {len(recipes)} recipes, {epochs} epochs each, {threads} thread(s) per fold",
        flush=True,
    )
    started, last_report = time.time(), 0.0
    while any(job.poll() is None for *_, job in jobs) and time.time() < deadline:
        time.sleep(2)
        if time.time() - last_report >= 30:
            last_report = time.time()
            done = " ".join(
                f"{name[-5:]}/{fold}:{epochs_done(out / name / f'fold-{fold}')}"
                + ("" if job.poll() is None else f"(exit {job.returncode})")
                for name, fold, job in jobs
            )
            print(f"{time.time() - started:4.0f} s, epochs done: {done}", flush=True)
    for *_, job in jobs:
        if job.poll() is None:
            job.terminate()
    for *_, job in jobs:
        job.wait()
    return {name: all(job.returncode == 0 for n, _, job in jobs if n == name) for name in recipes}


def keep_weights(run: Path, folds: int, keep: Path) -> None:
    """Each fold of cross-validation ``run`` as keep/fold-<k>.tar: its run files and selected weights, enough
    for `flairseg cv` to evaluate it elsewhere (tail-average weights and training state left out: five folds of
    two 7.8 MB networks would not fit a 64 MB return)."""
    keep.mkdir(parents=True, exist_ok=True)
    for fold in range(folds):
        with tarfile.open(keep / f"fold-{fold}.tar", "w") as tar:
            for part in sorted((run / f"fold-{fold}").glob("*.*")):
                if part.suffix != ".safetensors" or part.name == "best.safetensors":
                    tar.add(part, arcname=f"{run.name}/fold-{fold}/{part.name}")
    print(f"kept the fold checkpoints of {run.name} in {keep}", flush=True)


def evaluate_all(data: Path, out: Path, recipes: dict[str, Path], epochs: int, device: str) -> None:
    """Out-of-fold prediction, report and ensemble of each recipe, side by side."""
    jobs = [
        subprocess.Popen(
            cv_command(recipe, data, out / name, device, epochs, "--quiet"),
            stdout=(out / name / "evaluate.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for name, recipe in recipes.items()
    ]
    for job in jobs:
        job.wait()


def fold_seconds(run: Path) -> float:
    """Training wall time of one fold, from its log (seconds per epoch, validation included)."""
    with (run / "log.csv").open() as handle:
        return sum(float(row["seconds"]) for row in csv.DictReader(handle))


def comparison_rows(out: Path, configs: dict[str, TrainConfig]) -> list[dict[str, object]]:
    rows = []
    for name, config in configs.items():
        summary_path = out / name / "ensemble.json"
        if not summary_path.is_file():
            rows.append({"recipe": name, "status": "not finished"})
            continue
        metrics = json.loads(summary_path.read_text())["metrics"]
        with (out / name / "report" / "metrics.csv").open() as handle:
            dice = [float(r["dice"]) for r in csv.DictReader(handle)]
        times = [fold_seconds(out / name / f"fold-{k}") for k in range(config.folds)]
        rows.append(
            {
                "recipe": name,
                "status": "evaluated",
                "cases": len(dice),
                "dice_mean": round(metrics["dice_mean"], 4),
                "dice_median": round(metrics["dice_median"], 4),
                "dice_min": round(metrics["dice_min"], 4),
                "below_0.5": sum(d < 0.5 for d in dice),
                "fold_seconds_median": round(sorted(times)[len(times) // 2]),
            }
        )
    return rows


def write_comparison(rows: list[dict[str, object]], out: Path, header: str) -> None:
    fields = ["recipe", "status", "cases", "dice_mean", "dice_median", "dice_min", "below_0.5", "fold_seconds_median"]
    with (out / "comparison.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerows(rows)
    lines = [header, "", "| " + " | ".join(fields) + " |", "|" + " --- |" * len(fields)]
    lines += ["| " + " | ".join(str(r.get(f, "")) for f in fields) + " |" for r in rows]
    (out / "comparison.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?")
    parser.add_argument("out", nargs="?")
    parser.add_argument("recipes", nargs="*", help="recipe JSON files, most important first")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=540.0, help="wall time for everything (default 540)")
    parser.add_argument("--min-epochs", type=int, default=12)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument(
        "--keep",
        type=Path,
        help="folder for the fold checkpoints of the first recipe once trained, "
        "replaced by the best recipe's once evaluated",
    )
    parser.add_argument(
        "--wait-for",
        type=Path,
        nargs="*",
        default=[],
        help="files that must exist before training starts (data still being unpacked while the steps are timed)",
    )
    parser.add_argument(
        "--evaluate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="evaluate each recipe out of fold here (--no-evaluate: train only)",
    )
    # one fold's stand-in of concurrent_step_seconds
    parser.add_argument("--time-step", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_step:
        print(time_steps(args.time_step, args.device, args.start, TIMING_SECONDS, args.threads))
        return 0
    if not args.recipes:
        parser.error("give DATA, OUT and at least one RECIPE")
    started = time.time()
    data, out = Path(args.data), Path(args.out)
    recipes = {Path(r).stem: Path(r) for r in args.recipes}
    try:
        configs = {name: from_dict(TrainConfig, json.loads(path.read_text())) for name, path in recipes.items()}
        folds = {name: config.folds for name, config in configs.items()}
        seconds = concurrent_step_seconds(recipes, configs, folds, args.device)
    except (OSError, ValueError, FlairsegError) as exc:
        print(f"cv_compare: error: {exc}", file=sys.stderr)
        return 1
    for name in configs:
        print(
            f"{name}: {seconds[name] * 1000:.1f} ms per training step with all {sum(folds.values())} folds at once on "
            f"{args.device}",
            flush=True,
        )
    for needed in args.wait_for:
        while not needed.exists():
            time.sleep(1)
    deadline = started + args.seconds - (EVALUATE_SECONDS if args.evaluate else 0)
    budget = deadline - time.time() - PREPARE_SECONDS
    epochs = plan_epochs(configs, seconds, budget, args.min_epochs, args.max_epochs)
    if not epochs:
        print(
            f"cv_compare: error: {args.min_epochs} epochs do not fit {budget:.0f} s of training; give more --seconds",
            file=sys.stderr,
        )
        return 1
    finished = train_all(data, out, recipes, folds, epochs, args.device, deadline, fold_threads(folds, configs))
    print(
        f"training ended after {time.time() - started:.0f} s; finished: "
        f"{', '.join(n for n, ok in finished.items() if ok) or 'none'}",
        flush=True,
    )
    first = next(iter(recipes))
    if args.keep:  # unfinished folds too: their best epoch so far is better than nothing
        keep_weights(out / first, folds[first], args.keep)
    if not args.evaluate:
        return 0 if all(finished.values()) else 1
    evaluate_all(data, out, {n: recipes[n] for n, ok in finished.items() if ok}, epochs, args.device)
    header = (
        f"Out-of-fold comparison on {args.device} "
        f"({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'}), "
        f"{epochs} epochs per fold, {time.time() - started:.0f} s in all"
    )
    rows = comparison_rows(out, configs)
    write_comparison(rows, out, header)
    evaluated = [r for r in rows if r["status"] == "evaluated"]
    if args.keep and evaluated:
        best = max(evaluated, key=lambda r: float(r["dice_mean"]))["recipe"]
        if best != first or not finished[first]:
            keep_weights(out / best, folds[best], args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
