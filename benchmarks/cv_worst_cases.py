"""Figures of the worst out-of-fold cases of a cross-validation (not committed: they show dataset images).

    python benchmarks/cv_worst_cases.py CV DATA OUT [--cases 5]

CV is a folder made by ``flairseg cv``; DATA the Kaggle tree it was trained on. For the
``--cases`` lowest-Dice cases of ``CV/report/worst_cases.csv`` this draws, into OUT, a
montage of the slices with tumour in the truth or the prediction and an outline GIF
through every slice (FLAIR grey, manual outline blue, out-of-fold prediction red), and
prints one line per case.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from flairseg import figures
from flairseg.io import read_case


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cv", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--cases", type=int, default=5)
    args = parser.parse_args()
    with (args.cv / "report" / "worst_cases.csv").open(newline="") as handle:
        worst = list(csv.DictReader(handle))[: args.cases]
    args.out.mkdir(parents=True, exist_ok=True)
    for row in worst:
        case = read_case(args.data / row["case"], masks="required")
        predicted = read_case(args.cv / "predictions" / row["case"], masks="only").mask
        flair = case.image[..., 1]
        figures.tumour_montage(flair, case.mask, predicted, args.out / f"{row['case']}_montage.png")
        figures.outline_gif(flair, case.mask, predicted, args.out / f"{row['case']}.gif")
        print(
            f"{row['case']} (fold {row['fold']}): Dice {row['dice']} (before postprocessing "
            f"{row['dice_before_postprocessing']}), "
            f"predicted {row['pred_voxels']} voxels vs {row['truth_voxels']} true (x{row['volume_ratio']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
