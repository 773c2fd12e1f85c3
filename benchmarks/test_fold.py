"""Evaluate a model on its own untouched test cases, exactly as users would predict them.

    python benchmarks/test_fold.py MODEL DATA OUT [predict options, e.g. --tta --precision fp32]

MODEL is a checkpoint's JSON (RUN/best.json, or src/flairseg/models/NAME.json for a released
model); its recorded split names the test cases. They are linked from DATA (a Kaggle tree)
into OUT/cases, ``flairseg predict`` runs on them with MODEL (default settings plus the
options given) and the report's summary is printed (per-case 3-D Dice on the input grid,
per institution).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    args, predict_options = parser.parse_known_args()
    split = json.loads(args.model.read_text())["split"]
    cases = args.out / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    for case_id in split["test"]:
        link = cases / case_id
        if not link.exists():
            link.symlink_to((args.data / case_id).resolve(), target_is_directory=True)
    command = [
        "flairseg",
        "predict",
        "-i",
        str(cases),
        "-o",
        str(args.out / "predictions"),
        "--model",
        str(args.model),
        "--quiet",
    ]
    subprocess.run(command + predict_options, check=True)
    print((args.out / "predictions" / "report" / "summary.md").read_text())


if __name__ == "__main__":
    sys.exit(main())
