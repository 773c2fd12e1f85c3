"""Evaluate a training run on its own untouched test cases, exactly as users would predict them.

    python benchmarks/test_fold.py RUN DATA OUT [--tta]

Reads RUN/split.json, links the test cases of DATA (a Kaggle tree) into OUT/cases, runs
``flairseg predict`` with RUN/best.json on them (default settings unless --tta) and
prints the report's summary (per-case 3-D Dice on the input grid, per institution).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--tta", action="store_true")
    args = parser.parse_args()
    split = json.loads((args.run / "split.json").read_text())
    cases = args.out / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    for case_id in split["test"]:
        link = cases / case_id
        if not link.exists():
            link.symlink_to((args.data / case_id).resolve(), target_is_directory=True)
    command = ["flairseg", "predict", "-i", str(cases), "-o", str(args.out / "predictions"), "--model", str(args.run / "best.json"), "--quiet"]
    subprocess.run(command + (["--tta"] if args.tta else []), check=True)
    print((args.out / "predictions" / "report" / "summary.md").read_text())


if __name__ == "__main__":
    sys.exit(main())
