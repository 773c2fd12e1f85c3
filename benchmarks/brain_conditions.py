"""A brain model on its own test cases, from raw scans and from scans already skull-stripped elsewhere.

    python benchmarks/brain_conditions.py MODEL DATA OUT [--threads 2]

MODEL is a brain checkpoint's JSON (RUN/best.json or a released model's; its recorded split names
the test cases); DATA the Kaggle tree with the HD-BET ``<CASE>_<k>_brain.tif`` labels. For each
condition the test cases are written to OUT/<condition>/cases (raw: as given; skull-stripped:
every channel zeroed outside the case's HD-BET label, as public tumour data come),
``flairseg predict --task brain`` runs on them, and each predicted brain is compared with the
label (``brain_checks.py``: Dice, volume error, tumour voxels left outside). Prints one summary
line per condition. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from brain_checks import brain_rows, summary

from flairseg.errors import FlairsegError
from flairseg.io import read_case, read_label, write_image, write_mask
from flairseg.preprocess import strip_skull

CONDITIONS = ("raw", "skull-stripped")


def write_condition(case_dir: Path, condition: str, out: Path) -> None:
    """The case under ``out`` as the condition gives it, with its tumour masks and brain labels."""
    case = read_case(case_dir, masks="optional")
    brain = read_label(case, "_brain")
    image = case.image if condition == "raw" else strip_skull(case.image, brain)
    write_image(case, image, out / case.case_id)
    write_mask(case, case.mask, out / case.case_id)
    write_mask(case, brain, out / case.case_id, suffix="_brain")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", default="2")
    args = parser.parse_args()
    try:
        test = json.loads(args.model.read_text())["split"]["test"]
    except (OSError, ValueError, KeyError, TypeError):
        print(f"brain_conditions: error: {args.model} is not a checkpoint JSON that records its split", file=sys.stderr)
        return 1
    for condition in CONDITIONS:
        cases, predictions = args.out / condition / "cases", args.out / condition / "predictions"
        print(f"{condition}: writing {len(test)} test cases to {cases}", file=sys.stderr, flush=True)
        try:
            for case_id in test:
                if not (cases / case_id).exists():
                    write_condition(args.data / case_id, condition, cases)
        except FlairsegError as exc:
            print(f"brain_conditions: error: {exc}", file=sys.stderr)
            return 1
        command = [sys.executable, "-m", "flairseg", "predict", "-i", str(cases), "-o", str(predictions)]
        command += ["--task", "brain", "--model", str(args.model), "--threads", args.threads]
        if subprocess.run(command).returncode != 0:  # predict has said why, in one line
            return 1
        print(f"{condition}: {summary(brain_rows(predictions, cases))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
