"""Training-step and inference speed of U-Net variants on this machine (CPU), per slice.

    python benchmarks/training_speed.py [--sizes 128 256] [--features 8 16 32] [--batch 16] [--repeats 5]

Prints a Markdown table (median of the timed repeats after one warm-up) and writes
benchmarks/results/training_speed.json. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from flairseg.losses import soft_dice_loss
from flairseg.model import UNet


def _time(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(size: int, features: int, batch: int, batch_norm: bool, channels_last: bool, repeats: int) -> dict:
    torch.manual_seed(0)
    model = UNet(features=features, batch_norm=batch_norm)
    x = torch.randn(batch, 3, size, size)
    y = (torch.rand(batch, 1, size, size) > 0.9).float()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        soft_dice_loss(model(x), y).backward()
        optimizer.step()

    def infer() -> None:
        with torch.inference_mode():
            model.eval()
            model(x)
            model.train()

    return {
        "size": size,
        "features": features,
        "batch": batch,
        "batch_norm": batch_norm,
        "channels_last": channels_last,
        "train_ms_per_slice": 1000 * _time(step, repeats) / batch,
        "infer_ms_per_slice": 1000 * _time(infer, repeats) / batch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--features", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--channels-last", choices=("both", "on", "off"), default="both")
    args = parser.parse_args()
    layouts = {"both": (False, True), "on": (True,), "off": (False,)}[args.channels_last]
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print("| size | features | channels-last | train ms/slice | inference ms/slice |\n|---|---|---|---|---|")
    for size in args.sizes:
        for features in args.features:
            for layout in layouts:
                row = measure(size, features, args.batch, True, layout, args.repeats)
                rows.append(row)
                print(
                    f"| {size} | {features} | {layout} | {row['train_ms_per_slice']:.1f} | "
                    f"{row['infer_ms_per_slice']:.1f} |",
                    flush=True,
                )
    out = Path(__file__).parent / "results" / "training_speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
