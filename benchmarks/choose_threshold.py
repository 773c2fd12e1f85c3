"""Mean per-case Dice of a run's best model on its validation cases at several probability thresholds.

    python benchmarks/choose_threshold.py RUN DATA [--thresholds 0.3 0.4 0.5 0.6 0.7] [--tta]

One forward pass per validation case (RUN/split.json), then each threshold's mask on the
input grid after postprocessing, exactly as `flairseg predict` makes it. Prints a Markdown
table; choose the threshold here, never on the test cases.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from flairseg.io import read_case
from flairseg.metrics import case_metrics
from flairseg.postprocess import postprocess
from flairseg.predict import Segmenter
from flairseg.preprocess import invert_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7])
    parser.add_argument("--tta", action="store_true")
    args = parser.parse_args()
    segmenter = Segmenter(args.run / "best.json", tta=args.tta)
    validation = json.loads((args.run / "split.json").read_text())["validation"]
    dice = {t: [] for t in args.thresholds}
    for case_id in validation:
        case = read_case(args.data / case_id, masks="required")
        prepared = segmenter.prepare(case)
        prob = segmenter.probabilities(prepared)
        for t in args.thresholds:
            mask = postprocess(invert_mask(prob >= t, prepared.transform), segmenter.task)
            dice[t].append(case_metrics(case_id, mask, case.mask).dice)
    print(f"{len(validation)} validation cases of {args.run}{' (flip TTA)' if args.tta else ''}\n")
    print("| threshold | Dice mean | Dice median |\n|---|---|---|")
    for t, values in dice.items():
        print(f"| {t:.2f} | {np.mean(values):.4f} | {np.median(values):.4f} |")


if __name__ == "__main__":
    main()
