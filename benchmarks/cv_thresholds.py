"""Out-of-fold Dice of a cross-validation's fold models at several probability thresholds.

    python benchmarks/cv_thresholds.py CV DATA [--thresholds 0.3 0.4 0.5 0.6 0.7] [--threads 2]

CV is a folder made by ``flairseg cv`` (every fold trained), DATA the Kaggle tree it was
trained on. Every case is predicted once by the fold model that never saw it; each threshold's
mask is then made as ``predict`` makes it (thresholded on the model grid, mapped back to the
input grid) and postprocessed with the rule chosen on the other folds' cases, as ``flairseg cv``
does at the recipe's threshold. Last, threshold and rule are chosen together on the other folds
(nested), the honest figure of choosing the threshold by cross-validation. Prints a Markdown
table. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from flairseg import cv
from flairseg.config import TrainConfig, from_dict
from flairseg.data import load_split
from flairseg.errors import FlairsegError
from flairseg.io import case_id_of, find_cases, read_case
from flairseg.predict import Segmenter
from flairseg.preprocess import invert_mask, invert_probability


def held_out(run: Path, data: Path, thresholds: list[float], threads: int) -> dict[float, list[cv.HeldOut]]:
    """Every case predicted by its fold's model once, thresholded at each threshold."""
    config = from_dict(TrainConfig, json.loads((run / "fold-0" / "config.json").read_text()))
    paths = {case_id_of(p): p for p in find_cases(data)}
    held: dict[float, list[cv.HeldOut]] = {t: [] for t in thresholds}
    for fold in range(config.folds):
        segmenter = Segmenter(cv.fold_run(run, fold) / "best.json", device="cpu", threads=threads)
        for case_id in load_split(cv.fold_run(run, fold) / "split.json").test:
            case = read_case(paths[case_id], masks="required")
            prepared = segmenter.prepare(case)
            prob = segmenter.probabilities(prepared)
            on_grid = invert_probability(prob, prepared.transform).astype(np.float16)
            for t in thresholds:
                binary = invert_mask(prob >= t, prepared.transform)
                held[t].append(cv.HeldOut(case_id, fold, binary, on_grid, case.mask, case.geometry.spacing))
        print(f"fold {fold} predicted", file=sys.stderr, flush=True)
    return held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cv", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (args.cv / "fold-0" / "config.json").is_file():
        print(f"cv_thresholds: error: {args.cv} is not a cross-validation folder made by flairseg cv", file=sys.stderr)
        return 1
    try:
        held = held_out(args.cv, args.data, args.thresholds, args.threads)
    except FlairsegError as exc:
        print(f"cv_thresholds: error: {exc}", file=sys.stderr)
        return 1
    comparisons = {t: cv.compare_rules(cases) for t, cases in held.items()}
    folds = np.array([case.fold for case in held[args.thresholds[0]]])
    print("| threshold | rule (each fold's, chosen on the others) | mean | median | cases < 0.5 |")
    print("|---|---|---|---|---|")
    for t, cases in held.items():
        result = cv.evaluate_held_out(cases, args.cv)
        dice = np.array([row.dice for row in result.rows])
        rules = ", ".join(sorted({cv.rule_name(rule) for rule in result.rules_by_fold.values()}))
        print(f"| {t:g} | {rules} | {dice.mean():.4f} | {np.median(dice):.4f} | {int((dice < 0.5).sum())} |")
    nested, chosen = np.zeros(len(folds)), []
    for fold in np.unique(folds):
        others = folds != fold
        candidates = [(t, rule) for t in comparisons for rule in comparisons[t]]
        t, rule = max(candidates, key=lambda c: comparisons[c[0]][c[1]][others].mean())
        nested[folds == fold] = comparisons[t][rule][folds == fold]
        chosen.append(f"fold {fold}: {t:g}, {cv.rule_name(rule)}")
    print(
        f"| chosen on the other folds ({'; '.join(chosen)}) | | {nested.mean():.4f} | {np.median(nested):.4f} | "
        f"{int((nested < 0.5).sum())} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
