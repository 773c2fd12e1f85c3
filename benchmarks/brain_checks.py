"""Checks of predicted brain masks against the HD-BET labels and the tumour masks.

    python benchmarks/brain_checks.py PREDICTIONS DATA

PREDICTIONS holds predicted brain masks (e.g. OUT/predictions of
``benchmarks/test_fold.py RUN/best.json DATA OUT`` for a brain model); DATA is the Kaggle tree
with the ``<CASE>_<k>_brain.tif`` labels and ``<CASE>_<k>_mask.tif`` tumour masks. Per case:
Dice against the brain label, brain volume error (predicted / label - 1), and tumour voxels
left outside the predicted brain (and outside the label, for comparison). Prints a Markdown
table and a summary line. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from flairseg.io import index_mask_cases, read_case
from flairseg.metrics import case_metrics


def brain_rows(predictions: Path, data: Path) -> list[tuple[str, float, float, int, int, int]]:
    """Per case: Dice against the label, volume error, tumour voxels outside the predicted brain and outside the
    label, tumour voxels."""
    rows = []
    for case_id, path in sorted(index_mask_cases(predictions, mask_suffix="_brain").items()):
        brain = read_case(path, masks="only", mask_suffix="_brain").mask
        label = read_case(data / case_id, masks="only", mask_suffix="_brain").mask
        tumour = read_case(data / case_id, masks="only").mask
        outside, outside_label = int((tumour & ~brain).sum()), int((tumour & ~label).sum())
        error = brain.sum() / label.sum() - 1
        dice = case_metrics(case_id, brain, label).dice
        rows.append((case_id, dice, error, outside, outside_label, int(tumour.sum())))
    return rows


def summary(rows: list[tuple[str, float, float, int, int, int]]) -> str:
    dice = np.array([r[1] for r in rows])
    error = np.array([r[2] for r in rows])
    outside = np.array([r[3] for r in rows])
    return (
        f"{len(rows)} cases: Dice mean {dice.mean():.4f}, median {np.median(dice):.4f}, min {dice.min():.4f}; "
        f"volume error median {100 * np.median(error):+.1f} %, "
        f"{100 * error.min():+.1f} % to {100 * error.max():+.1f} % "
        f"({int((abs(error) <= 0.03).sum())} within 3 %); "
        f"{int((outside > 0).sum())} cases leave tumour voxels outside the brain ({int(outside.sum())} voxels in all)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", type=Path)
    parser.add_argument("data", type=Path)
    args = parser.parse_args()
    rows = brain_rows(args.predictions, args.data)
    print(
        "| case | Dice | volume error | tumour voxels outside predicted brain | outside label brain | tumour voxels |"
    )
    print("|---|---|---|---|---|---|")
    for case_id, dice, error, outside, outside_label, tumour in rows:
        print(f"| {case_id} | {dice:.4f} | {100 * error:+.1f} % | {outside} | {outside_label} | {tumour} |")
    print("\n" + summary(rows))


if __name__ == "__main__":
    sys.exit(main())
