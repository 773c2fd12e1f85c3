"""End-to-end prediction speed on this machine, per case and per stage, against the compute floor.

    python benchmarks/pipeline_speed.py DATA [--cases 10] [--models released released:fp32 port:fp32] \
        [--threads 2] [--near-slices 36]

DATA is a Kaggle tree (e.g. the restored LGG cases). For every model, in a process of its
own (so that peak resident memory is the model's own), the first N cases (sorted by id)
are read, preprocessed, inferred, postprocessed and written to a temporary folder through
the same functions `flairseg predict` uses, after one untimed warm-up case (``--near-slices
N``: the cases whose slice count is nearest N instead, e.g. 36, the LGG average). A model is
``released`` (the default abnormality model), ``released-onnx`` (the same, exported to ONNX and
run by ONNX Runtime), ``port`` (the PyTorch port's U-Net, 32 base
features with batch norm and its preprocessing, random weights: speed does not depend
on them) or a checkpoint path, optionally followed by ``:PRECISION`` (auto, fp32 or bf16,
as `predict --precision`; default auto, what `flairseg predict` does). The last model is
the reference the others' speed-ups are given against: by default ``port:fp32``, the port
as its own pipeline runs it.

Also measured: the FLOPs of one slice (torch's FLOP counter), float32 and bfloat16 GEMM
rates on the same threads (2048 x 2048 products), hence achieved GFLOP/s and the compute
floor (FLOPs / GEMM rate of the precision the network ran in). Prints a Markdown table
(medians over the cases) and writes benchmarks/results/pipeline_speed.json. Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("read", "preprocess", "infer", "postprocess", "write")


def gemm_gflops(threads: int, dtype: str = "float32", size: int = 2048, repeats: int = 10) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size, dtype=getattr(torch, dtype)), torch.randn(size, size, dtype=getattr(torch, dtype))
    torch.mm(a, b)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        samples.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(samples) / 1e9


def _checkpoint(model: str, folder: Path) -> Path:
    if model == "released-onnx":
        from flairseg.export import export_onnx
        from flairseg.released_models import resolve

        return export_onnx(resolve(None, task="abnormality"), folder / "released.onnx")
    if model != "port":
        from flairseg.released_models import resolve

        return resolve(None if model == "released" else model, task="abnormality")
    import torch

    from flairseg.checkpoint import save_model
    from flairseg.config import MODEL_PRESETS, PreprocessConfig
    from flairseg.model import UNet

    torch.manual_seed(0)
    config = MODEL_PRESETS["port"]
    return save_model(
        UNet(**config.__dict__).eval(), config, PreprocessConfig(variant="port"), folder / "port", task="abnormality"
    )


def _slice_count(case: Path) -> int:
    return sum(1 for p in case.iterdir() if p.suffix == ".tif" and p.stem.rsplit("_", 1)[-1].isdigit())


def run_model(spec: str, data: Path, cases: int, threads: int, near: int = 0) -> dict:
    """Time every stage of every case for one model (run in a process of its own)."""
    model, _, precision = spec.partition(":")
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from flairseg import checkpoint
    from flairseg import figures
    from flairseg.io import find_cases, read_case, write_mask
    from flairseg.inference import segmentation_from_probabilities
    from flairseg.predict import Segmenter

    with tempfile.TemporaryDirectory() as tmp:
        segmenter = Segmenter(_checkpoint(model, Path(tmp)), threads=threads, precision=precision or "auto")
        size = segmenter.preprocess.size
        network, _ = checkpoint.load_model(_checkpoint(model.removesuffix("-onnx"), Path(tmp)))
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            network(torch.zeros(1, segmenter.in_channels, size, size))
        flops = counter.get_total_flops()
        parameters = sum(p.numel() for p in network.parameters())
        paths = sorted(find_cases(data), key=lambda p: p.name)
        if near:  # the cases whose slice count is nearest ``near`` (ties by name)
            paths = sorted(paths, key=lambda p: abs(_slice_count(p) - near))
        paths = paths[: cases + 1]
        rows = []
        for index, path in enumerate(paths):
            times = [time.perf_counter()]
            case = read_case(path, masks="ignore")
            times.append(time.perf_counter())
            prepared = segmenter.prepare(case)
            times.append(time.perf_counter())
            prob = segmenter.probabilities(prepared)
            times.append(time.perf_counter())
            mask = segmentation_from_probabilities(
                prob, prepared, segmenter.task, segmenter.threshold, components=segmenter.components
            ).mask
            times.append(time.perf_counter())
            write_mask(case, mask, Path(tmp) / "out" / case.case_id)
            flair = case.image[..., 1] if case.image.shape[-1] == 3 else case.image[..., 0]
            # report.html's overlay
            figures.tumour_montage(flair, None, mask, Path(tmp) / "out" / "montages" / f"{case.case_id}.png")
            times.append(time.perf_counter())
            if index == 0:
                continue  # warm-up
            stage = {name: times[i + 1] - times[i] for i, name in enumerate(STAGES)}
            rows.append({"case": case.case_id, "slices": case.shape[0], "total": times[-1] - times[0], **stage})
    dtype = "bfloat16" if segmenter.autocast is torch.bfloat16 else "float32"
    return {
        "model": spec,
        "dtype": dtype,
        "parameters": parameters,
        "gflop_per_slice": flops / 1e9,
        "size": size,
        "cases": rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def summarise(result: dict, gemm: dict[str, float]) -> dict:
    rows = result["cases"]
    slices = sum(r["slices"] for r in rows)
    infer = sum(r["infer"] for r in rows)
    achieved = result["gflop_per_slice"] * slices / infer
    return {
        "model": result["model"],
        "dtype": result["dtype"],
        "parameters": result["parameters"],
        "gflop_per_slice": result["gflop_per_slice"],
        "cases": len(rows),
        "median_slices": statistics.median(r["slices"] for r in rows),
        "s_per_case": statistics.median(r["total"] for r in rows),
        "ms_per_slice": 1000 * sum(r["total"] for r in rows) / slices,
        **{f"{s}_ms_per_case": 1000 * statistics.median(r[s] for r in rows) for s in STAGES},
        "infer_gflops": achieved,
        "floor_ratio": gemm[result["dtype"]] / achieved,  # inference time over FLOPs / GEMM rate in the network's dtype
        "floor_ratio_fp32": gemm["float32"] / achieved,  # the same against the float32 GEMM rate
        "peak_rss_mb": result["peak_rss_mb"],
    }


def markdown(summaries: list[dict], gemm: dict[str, float], threads: int) -> str:
    lines = [
        f"{platform.machine()}, {threads} threads, GEMM float32 {gemm['float32']:.1f} / bfloat16 "
        f"{gemm['bfloat16']:.1f} GFLOP/s; medians over "
        f"{summaries[0]['cases']} cases (median {summaries[0]['median_slices']:.0f} slices)",
        "",
        "| model | dtype | GFLOP/slice | s/case | ms/slice | read | preprocess | infer | postprocess | write | infer "
        "GFLOP/s | x floor | x fp32 floor | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        stages = " | ".join(f"{s[f'{name}_ms_per_case']:.0f} ms" for name in STAGES)
        lines.append(
            f"| {s['model']} | {s['dtype']} | {s['gflop_per_slice']:.2f} | {s['s_per_case']:.2f} | "
            f"{s['ms_per_slice']:.1f} | {stages} | "
            f"{s['infer_gflops']:.1f} | {s['floor_ratio']:.2f} | {s['floor_ratio_fp32']:.2f} | {s['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=["released", "released:fp32", "released-onnx", "port:fp32"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--near-slices", type=int, default=0, help="time the cases whose slice count is nearest this (Kaggle trees)"
    )
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "pipeline_speed.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_model(args.worker, args.data, args.cases, args.threads, args.near_slices)))
        return
    gemm = {dtype: gemm_gflops(args.threads, dtype) for dtype in ("float32", "bfloat16")}
    summaries, raw = [], []
    for model in args.models:
        print(f"timing {model} on {args.cases} cases ...", file=sys.stderr)
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                str(args.data),
                "--cases",
                str(args.cases),
                "--threads",
                str(args.threads),
                "--near-slices",
                str(args.near_slices),
                "--worker",
                model,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        raw.append(json.loads(done.stdout))
        summaries.append(summarise(raw[-1], gemm))
    table = markdown(summaries, gemm, args.threads)
    if len(summaries) > 1:
        table += "\n\n" + "; ".join(
            f"{s['model']} is {summaries[-1]['s_per_case'] / s['s_per_case']:.1f}x faster than {summaries[-1]['model']}"
            for s in summaries[:-1]
        )
    print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "threads": args.threads,
                "gemm_gflops": gemm,
                "summaries": summaries,
                "raw": raw,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
