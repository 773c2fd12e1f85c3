"""Does torch.compile pay for inference on this CPU? Eager vs compiled, float32 and bfloat16.

    python benchmarks/compile_speed.py [--threads 2] [--batch 8] [--repeats 10]

Times the released abnormality network on a batch of 256 x 256 slices (channels-last,
inference mode), eager and after ``torch.compile`` (inductor, default mode), in float32 and
under bfloat16 autocast, and reports the median ms per slice and the one-off compile time.
Compiling needs a C++ compiler; it is measured here, not used by `flairseg predict`.
Prints a Markdown table and writes benchmarks/results/compile_speed.json. Not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from flairseg import checkpoint
from flairseg.released_models import resolve


def median_ms_per_slice(
    model: torch.nn.Module, batch: torch.Tensor, dtype: torch.dtype | None, repeats: int
) -> tuple[float, float]:
    """(first call in s, median ms per slice over the following calls)."""
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        start = time.perf_counter()
        model(batch)
        first = time.perf_counter() - start
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(batch)
            samples.append(time.perf_counter() - start)
    return first, 1000 * statistics.median(samples) / batch.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "compile_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = torch.randn(args.batch, 3, 256, 256).contiguous(memory_format=torch.channels_last)
    rows = []
    for name, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
        for compiled in (False, True):
            model, _ = checkpoint.load_model(resolve(None))
            model = model.eval().to(memory_format=torch.channels_last)
            if compiled:
                torch._dynamo.reset()
                model = torch.compile(model)
            first, ms = median_ms_per_slice(model, batch, dtype, args.repeats)
            rows.append({"dtype": name, "compiled": compiled, "first_call_s": first, "ms_per_slice": ms})
    lines = [
        f"{platform.machine()}, {args.threads} threads, batch {args.batch} of 256 x 256, released abnormality network",
        "",
        "| dtype | torch.compile | ms/slice | first call (s) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['dtype']} | {'yes' if r['compiled'] else 'no'} | {r['ms_per_slice']:.1f} | {r['first_call_s']:.1f} |"
        for r in rows
    ]
    print("\n".join(lines))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {"machine": platform.platform(), "threads": args.threads, "batch": args.batch, "rows": rows}, indent=2
        )
    )


if __name__ == "__main__":
    main()
