"""The ``flairseg`` command: argparse subcommands, each one parse, one API call, one summary.

Heavy imports happen inside the command functions so ``flairseg --help`` is instant.
Errors the user can fix print ``flairseg: error: <one line>`` and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from flairseg import __version__
from flairseg.errors import FlairsegError

PREPROCESS_VARIANTS = ("paper-abnormality", "paper-brain", "port")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from flairseg.evaluate import evaluate

    result = evaluate(args.pred, args.truth, args.output, overwrite=args.overwrite, figures=not args.no_figures, quiet=args.quiet)
    dice = result.summary["dice"]
    print(
        f"{len(result.rows)} cases: Dice mean {dice.mean:.4f}, median {dice.median:.4f} "
        f"(IQR {dice.q1:.4f}-{dice.q3:.4f}); report in {result.out}"
    )
    if result.extra_predictions:
        print(f"note: {len(result.extra_predictions)} predicted cases have no truth and were skipped", file=sys.stderr)
    return 0


def _cmd_preprocess(args: argparse.Namespace) -> int:
    from flairseg.prepare import preprocess_tree

    result = preprocess_tree(
        args.input, args.output, variant=args.variant, missing=args.missing, overwrite=args.overwrite, quiet=args.quiet
    )
    print(f"{result.cases} cases, {result.slices} slices preprocessed ({args.variant}) into {result.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``flairseg`` command."""
    parser = argparse.ArgumentParser(
        prog="flairseg",
        description="Skull stripping and FLAIR abnormality segmentation of brain MRI with U-Nets.",
    )
    parser.add_argument("--version", action="version", version=f"flairseg {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    evaluate = commands.add_parser(
        "evaluate",
        help="per-case metrics, summary and figures of predicted masks against the truth",
        description="Compare two trees of masks (Kaggle case folders or NIfTI folders) case by case and write "
        "metrics.csv, summary.md, summary.json, dice_distribution.png, gifs/ and montages/ to OUTPUT.",
    )
    evaluate.add_argument("--pred", required=True, metavar="PRED", help="predicted masks (a case or a tree of cases)")
    evaluate.add_argument("--truth", required=True, metavar="TRUTH", help="true masks in the same layout")
    evaluate.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="report folder to create")
    evaluate.add_argument("--no-figures", action="store_true", help="only the CSV and summaries")
    _add_common(evaluate)
    evaluate.set_defaults(run=_cmd_evaluate)

    preprocess = commands.add_parser(
        "preprocess",
        help="write preprocessed TIFF slices of a case tree (the paper's or the PyTorch port's variant)",
        description="Preprocess every case under INPUT and write <CASE>_<k>.tif and <CASE>_<k>_mask.tif "
        "under OUTPUT/<CASE>/, with transform.json to map masks back to the input grid. "
        "paper-abnormality uses the <CASE>_<k>_brain.tif brain masks when present (the paper strips the skull first); "
        "paper-brain writes the FLAIR channel with the brain masks as labels.",
    )
    preprocess.add_argument("-i", "--input", required=True, metavar="INPUT", help="a case or a tree of cases")
    preprocess.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="output tree to create")
    preprocess.add_argument("--variant", choices=PREPROCESS_VARIANTS, default="paper-abnormality")
    preprocess.add_argument(
        "--missing",
        choices=("copy-flair", "zeros", "error"),
        default="copy-flair",
        help="what stands in for a missing pre- or post-contrast channel of a single-channel volume (default: copy FLAIR, as the dataset does)",
    )
    _add_common(preprocess)
    preprocess.set_defaults(run=_cmd_preprocess)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flairseg`` console command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except FlairsegError as exc:
        print(f"flairseg: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("flairseg: interrupted; nothing was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
