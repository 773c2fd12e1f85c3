#!/usr/bin/env python3
"""Network time per slice of the released abnormality network's shape, float32 and bfloat16, on one device.

    python benchmarks/inference_speed.py --device cuda [--members 5] [--batch 32]

Times the U-Net alone (no reading, preprocessing or writing) on random 256 x 256 slices,
``--members`` networks in turn as the fold ensemble runs them; weights are random, which
does not change the time. Each precision is timed twice, batch by batch in turn: as trained
(batch normalisation as its own layer) and as ``flairseg predict`` runs it (``model.folded``:
batch normalisation folded into the convolutions). Prints the median of ``--repeats`` timed
batches, the median of the paired ratios folded / as trained, and the slices (and 36-slice
cases) per hour that the network alone would allow.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from flairseg.inference import resolve_device
from flairseg.model import UNet, folded

SLICES_PER_CASE = 36


def paired_seconds(
    variants: list[list[torch.nn.Module]], batch: torch.Tensor, bfloat16: bool, repeats: int
) -> list[list[float]]:
    """Wall time of one batch through every member, for each variant in turn, after warm-up; the order
    alternates (A B, B A, ...) so that neither variant always runs first."""

    def run(models: list[torch.nn.Module]) -> float:
        started = time.perf_counter()
        with torch.inference_mode(), torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=bfloat16):
            for model in models:
                torch.sigmoid(model(batch))
        if batch.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    for _ in range(3):
        for models in variants:
            run(models)
    times: list[list[float]] = [[] for _ in variants]
    for repeat in range(repeats):
        order = list(zip(variants, times))
        for models, recorded in order if repeat % 2 == 0 else reversed(order):
            recorded.append(run(models))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    device = resolve_device(args.device)
    models = [
        UNet(in_channels=3, features=args.features, depth=4, batch_norm=True)
        .to(device, memory_format=torch.channels_last)
        .eval()
        for _ in range(args.members)
    ]
    fast = [folded(model) for model in models]
    batch = torch.rand(args.batch, 3, 256, 256, device=device).contiguous(memory_format=torch.channels_last)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.members} x U-Net ({args.features} features), batch {args.batch}, {name}, torch {torch.__version__}")
    print("| precision | batch norm | ms per slice | folded / as trained | slices per hour | 36-slice cases per hour |")
    print("|---|---|---|---|---|---|")
    for label, bfloat16 in (("float32", False), ("bfloat16", True)):
        trained, folded_times = paired_seconds([models, fast], batch, bfloat16, args.repeats)
        ratio = statistics.median(b / a for a, b in zip(trained, folded_times))
        for kind, times, shown in (("as trained", trained, ""), ("folded", folded_times, f"{ratio:.2f}")):
            per_slice = statistics.median(times) / args.batch
            print(
                f"| {label} | {kind} | {per_slice * 1000:.3f} | {shown} | {3600 / per_slice:,.0f} | "
                f"{3600 / per_slice / SLICES_PER_CASE:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
