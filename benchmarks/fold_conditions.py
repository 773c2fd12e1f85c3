"""Screen training recipes on a few folds: each fold model's Dice on its own test cases under simulated preparations.

    python benchmarks/fold_conditions.py DATA RUN [RUN ...] [--folds 0 1] [--only 1 4 6 7] [--threads 2]

Each RUN is a folder made by ``flairseg cv --fold K`` (``RUN/fold-K/best.json`` for every K of
``--folds``); DATA the Kaggle tree it was trained on, with the HD-BET ``_brain`` labels. Every
fold model predicts the cases its split held out, with its own settings and postprocessing,
under each condition of ``cv_conditions.py`` chosen with ``--only`` (default: as trained,
FLAIR only and skull-stripped, 1 mm isotropic, and FLAIR only and skull-stripped at 1 mm). The
same cases for every RUN: a paired comparison of recipes. Prints a Markdown table (mean /
median / cases below 0.5 per RUN) and writes the per-case Dice to RUN_fold_conditions.json
beside each RUN.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from cv_conditions import chosen_conditions, own_test_dice

from flairseg.predict import load_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--only", type=int, nargs="+", default=[1, 4, 6, 7])
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    chosen = chosen_conditions(parser, args.only)
    missing = [
        model for run in args.runs for k in args.folds if not (model := run / f"fold-{k}" / "best.json").is_file()
    ]
    if missing:
        parser.error(f"no trained fold model at {missing[0]}; train it with flairseg cv --fold K first")
    results = {}
    for run in args.runs:
        per = {name: {} for name in chosen}
        for fold in args.folds:
            segmenter = load_model(run / f"fold-{fold}" / "best.json", threads=args.threads)
            for name, change in chosen.items():
                per[name].update(own_test_dice(segmenter, args.data, change))
            print(f"{run.name} fold {fold}: done", file=sys.stderr, flush=True)
        results[run] = per
        Path(f"{run}_fold_conditions.json").write_text(json.dumps(per, indent=1))
    print("| condition | " + " | ".join(f"{run.name}: mean / median / < 0.5" for run in args.runs) + " |")
    print("|---|" + "---|" * len(args.runs))
    for name in chosen:
        cells = []
        for run in args.runs:
            values = np.array(list(results[run][name].values()))
            cells.append(f"{values.mean():.4f} / {np.median(values):.4f} / {int((values < 0.5).sum())}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
