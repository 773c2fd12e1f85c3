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
import time
from pathlib import Path

import torch

from flairseg.config import TrainConfig, from_dict
from flairseg.errors import FlairsegError
from flairseg.losses import loss_function
from flairseg.model import UNet
from flairseg.train import train_step

PREPARE_SECONDS = 90  # reading and preparing the training cases, per process, all at once
EVALUATE_SECONDS = 120  # out-of-fold prediction and report of one recipe (they run side by side)
SHARING = 1.5  # concurrent processes on one device get less done than the sum of their alone-timed steps


def step_seconds(config: TrainConfig, device: torch.device, steps: int = 20) -> float:
    """Wall time of one training step of ``config``'s network on ``device``, timed alone."""
    model = UNet(**vars(config.model)).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = loss_function(config.loss)
    side = config.patch or config.preprocess.size
    images = torch.randn(config.batch_size, config.model.in_channels, side, side, device=device).contiguous(memory_format=torch.channels_last)
    masks = (torch.rand(config.batch_size, 1, side, side, device=device) > 0.9).float()

    for _ in range(3):
        train_step(model, optimizer, loss_fn, images, masks, config.bfloat16)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, loss_fn, images, masks, config.bfloat16)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps


def plan_epochs(configs: dict[str, TrainConfig], seconds: dict[str, float], budget: float, min_epochs: int,
                max_epochs: int) -> tuple[int, list[str]]:
    """One epoch count for all kept recipes so that their folds' steps fit ``budget`` seconds of shared device time."""
    kept = list(configs)
    while kept:
        per_epoch = sum(configs[n].folds * configs[n].steps_per_epoch * seconds[n] for n in kept) * SHARING
        epochs = min(max_epochs, max(configs[n].epochs for n in kept), math.floor(budget / per_epoch))
        if epochs >= min_epochs:
            return epochs, kept
        kept.pop()
    return 0, []


def flairseg(*args: str) -> list[str]:
    return [sys.executable, "-m", "flairseg", *args]


def train_all(data: Path, out: Path, recipes: dict[str, Path], epochs: int, device: str, deadline: float) -> dict[str, bool]:
    """Start every fold of every recipe at once; stop what still runs at ``deadline``; which recipes finished."""
    threads = max(1, (os.cpu_count() or 1) // sum(json.loads(p.read_text()).get("folds", 5) for p in recipes.values()))
    jobs = []
    for name, recipe in recipes.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        for fold in range(json.loads(recipe.read_text()).get("folds", 5)):
            log = (out / name / f"fold-{fold}.log").open("w")
            command = flairseg("cv", "--config", str(recipe), "--data", str(data), "-o", str(out / name), "--fold", str(fold),
                               "--device", device, "--threads", str(threads), "--quiet", "--set", f"epochs={epochs}")
            jobs.append((name, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)))
    print(f"training {len(jobs)} folds of {len(recipes)} recipes, {epochs} epochs each, {threads} thread(s) per fold", flush=True)
    started, reported = time.time(), 0
    while any(job.poll() is None for _, job in jobs) and time.time() < deadline:
        time.sleep(5)
        done = sum(job.poll() is not None for _, job in jobs)
        if done != reported or int(time.time() - started) % 60 < 5:
            print(f"{done} of {len(jobs)} folds done after {time.time() - started:.0f} s", flush=True)
            reported = done
    for _, job in jobs:
        if job.poll() is None:
            job.terminate()
    for _, job in jobs:
        job.wait()
    return {name: all(job.returncode == 0 for n, job in jobs if n == name) for name in recipes}


def evaluate_all(data: Path, out: Path, recipes: dict[str, Path], epochs: int, device: str) -> None:
    """Out-of-fold prediction, report and ensemble of each recipe, side by side."""
    jobs = [subprocess.Popen(flairseg("cv", "--config", str(recipe), "--data", str(data), "-o", str(out / name), "--device", device,
                                      "--quiet", "--set", f"epochs={epochs}"),
                             stdout=(out / name / "evaluate.log").open("w"), stderr=subprocess.STDOUT)
            for name, recipe in recipes.items()]
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
        rows.append({"recipe": name, "status": "evaluated", "cases": len(dice), "dice_mean": round(metrics["dice_mean"], 4),
                     "dice_median": round(metrics["dice_median"], 4), "dice_min": round(metrics["dice_min"], 4),
                     "below_0.5": sum(d < 0.5 for d in dice), "fold_seconds_median": round(sorted(times)[len(times) // 2])})
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
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("recipes", nargs="+", help="recipe JSON files, most important first")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=540.0, help="wall time for everything (default 540)")
    parser.add_argument("--min-epochs", type=int, default=12)
    parser.add_argument("--max-epochs", type=int, default=40)
    args = parser.parse_args()
    started = time.time()
    data, out = Path(args.data), Path(args.out)
    recipes = {Path(r).stem: Path(r) for r in args.recipes}
    try:
        configs = {name: from_dict(TrainConfig, json.loads(path.read_text())) for name, path in recipes.items()}
    except (OSError, ValueError, FlairsegError) as exc:
        print(f"cv_compare: error: a recipe cannot be read: {exc}", file=sys.stderr)
        return 1
    device = torch.device(args.device)
    seconds = {name: step_seconds(config, device) for name, config in configs.items()}
    for name in configs:
        print(f"{name}: {seconds[name] * 1000:.1f} ms per training step alone on {args.device}", flush=True)
    deadline = started + args.seconds - EVALUATE_SECONDS
    budget = deadline - time.time() - PREPARE_SECONDS
    epochs, kept = plan_epochs(configs, seconds, budget, args.min_epochs, args.max_epochs)
    if not kept:
        print(f"no recipe fits {budget:.0f} s of training with {args.min_epochs} epochs; give more --seconds", file=sys.stderr)
        return 1
    recipes = {name: recipes[name] for name in kept}
    finished = train_all(data, out, recipes, epochs, args.device, deadline)
    print(f"training ended after {time.time() - started:.0f} s; finished: {', '.join(n for n, ok in finished.items() if ok) or 'none'}", flush=True)
    evaluate_all(data, out, {n: recipes[n] for n, ok in finished.items() if ok}, epochs, args.device)
    header = (f"Out-of-fold comparison on {args.device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), "
              f"{epochs} epochs per fold, {time.time() - started:.0f} s in all")
    write_comparison(comparison_rows(out, {n: configs[n] for n in recipes}), out, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
