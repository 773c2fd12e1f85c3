"""Out-of-fold Dice of a cross-validation's fold models under simulated scan preparations.

    python benchmarks/cv_conditions.py CV DATA [--out CV/report/conditions.md] [--compare MODEL] [--only K ...]
        [--tta]

CV is a folder made by ``flairseg cv`` (every fold trained); DATA the Kaggle tree it was
trained on, with the HD-BET ``_brain`` labels (``restore_lgg.py DIR --brain``). Every case
is predicted by the fold model that never saw it, as it would come from elsewhere:

- as trained: pre-contrast, FLAIR and post-contrast, with skull;
- FLAIR only: a one-channel FLAIR volume (the missing channels filled as ``predict`` fills them);
- skull-stripped: every channel zeroed outside the case's brain label;
- FLAIR only and skull-stripped: what most public tumour data and clinical pipelines give;
- the same, z-scored inside the brain with 0 outside (float, negative values), as many public
  datasets ship;
- resampled to 1 mm isotropic (linear, SimpleITK; the mask with it), with skull and three
  sequences, and FLAIR-only and skull-stripped as BraTS ships its volumes;
- on a 512 x 512 grid (0.47 mm pixels), as high-resolution clinical series come.

The Kaggle slices carry no spacing; resampling assumes 0.9375 mm pixels and
clip(170 mm / slices, 1, 7.5) mm between slices, the assumption the HD-BET labels were made with.
Dice of a resampled condition is measured on its own grid, against the resampled mask.

Each fold's cases are postprocessed with the rule cross-validation chose without them
(``cv.md``). Prints and writes a Markdown table (mean, median, min Dice, cases below 0.5).

``--tta`` predicts with flip test-time augmentation (``predict --tta``).

``--compare MODEL`` (a checkpoint or released name whose JSON records its split) adds, for the
cases MODEL never saw (its ``split.test``), MODEL's own Dice under each condition beside the
out-of-fold Dice of the cross-validation's models on the same cases: a like-for-like comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from flairseg.config import TrainConfig, from_dict
from flairseg.cv import fold_run, predict_held_out
from flairseg.cases import Case
from flairseg.io import read_case, read_label
from flairseg.metrics import dice_from_counts
from flairseg.postprocess import select_components
from flairseg.predict import Segmenter, load_model
from flairseg.preprocess import strip_skull


def flair_only(case: Case) -> Case:
    return dataclasses.replace(case, image=np.ascontiguousarray(case.image[..., 1:2]))


def skull_stripped(case: Case) -> Case:
    brain = read_label(case, "_brain")
    if brain is None:
        raise SystemExit(f"case {case.case_id} has no _brain labels; restore the data with --brain")
    return dataclasses.replace(case, image=strip_skull(case.image, brain))


def z_scored_in_brain(case: Case) -> Case:
    """Skull-stripped, then each channel z-scored over the brain with 0 outside, as many public datasets are
    prepared.
    """
    brain = read_label(case, "_brain")
    image = case.image.astype(np.float32)
    inside = image[brain]
    scored = (image - inside.mean(axis=0)) / np.maximum(inside.std(axis=0), 1e-6)
    return dataclasses.replace(case, image=np.where(brain[..., None], scored, 0.0).astype(np.float32))


ASSUMED_PIXEL_MM = 0.9375


def assumed_spacing(case: Case) -> tuple[float, float, float]:
    """(slice, row, column) millimetres of a Kaggle case, which stores none (see the docstring)."""
    return float(np.clip(170.0 / case.shape[0], 1.0, 7.5)), ASSUMED_PIXEL_MM, ASSUMED_PIXEL_MM


def resampled(case: Case, spacing: tuple[float | None, float, float]) -> Case:
    """``case`` on a grid of ``spacing`` mm (slice, row, column; None keeps the slices), grid edges aligned:
    every channel and the mask linearly interpolated with SimpleITK, the mask then thresholded at 0.5."""
    source = assumed_spacing(case)
    target = tuple(source[0] if s is None else s for s in spacing)
    size = [max(1, round(n * a / b)) for n, a, b in zip(case.shape, source, target)]

    def one(volume: np.ndarray) -> np.ndarray:
        image = sitk.GetImageFromArray(volume.astype(np.float32))  # SimpleITK's axes are (column, row, slice)
        image.SetSpacing(source[::-1])
        origin = [(b - a) / 2 for a, b in zip(source[::-1], target[::-1])]  # first voxel's centre; edges align
        out = sitk.Resample(image, size[::-1], sitk.Transform(), sitk.sitkLinear, origin, target[::-1])
        return sitk.GetArrayFromImage(out)

    image = np.stack([one(case.image[..., c]) for c in range(case.image.shape[3])], axis=-1)
    mask = one(case.mask) >= 0.5
    return dataclasses.replace(
        case, image=image, mask=mask, geometry=dataclasses.replace(case.geometry, spacing=target)
    )


CONDITIONS = {
    "as trained (3 sequences, with skull)": None,
    "FLAIR only": flair_only,
    "skull-stripped, 3 sequences": skull_stripped,
    "FLAIR only and skull-stripped": lambda case: flair_only(skull_stripped(case)),
    "FLAIR only, skull-stripped, z-scored in the brain (negative values, 0 outside)": lambda case: flair_only(
        z_scored_in_brain(case)
    ),
    "resampled to 1 mm isotropic (3 sequences, with skull)": lambda case: resampled(case, (1.0, 1.0, 1.0)),
    "FLAIR only, skull-stripped, 1 mm isotropic (as BraTS ships)": lambda case: resampled(
        flair_only(skull_stripped(case)), (1.0, 1.0, 1.0)
    ),
    "512 x 512 grid (3 sequences, with skull)": lambda case: resampled(case, (None, 0.46875, 0.46875)),
}


def chosen_conditions(parser: argparse.ArgumentParser, only: list[int] | None) -> dict:
    """The conditions numbered ``only`` (1-based, in the order above; all when None); other numbers end the
    command through ``parser``."""
    if only and not set(only) <= set(range(1, len(CONDITIONS) + 1)):
        parser.error(f"--only takes condition numbers 1-{len(CONDITIONS)}")
    return {name: change for k, (name, change) in enumerate(CONDITIONS.items(), 1) if not only or k in only}


def rules_by_fold(cv: Path) -> dict[int, tuple[str, float]]:
    """The rule ``flairseg cv`` postprocessed each fold with, chosen on the other folds (report/rules.json)."""
    record = json.loads((cv / "report" / "rules.json").read_text())
    return {int(fold): (rule["rule"], rule["value"]) for fold, rule in record.items()}


def own_test_dice(segmenter: Segmenter, data: Path, condition) -> dict[str, float]:
    """The segmenter's Dice on each case its JSON records as its test case (``split.test``), changed by
    ``condition`` (None: as given), predicted with its own settings and postprocessing.
    """
    dice = {}
    for case_id in segmenter.metadata["split"]["test"]:
        given = read_case(data / case_id, masks="required")
        given = condition(given) if condition else given
        mask = segmenter(given).mask
        dice[case_id] = dice_from_counts(int((mask & given.mask).sum()), int(mask.sum()), int(given.mask.sum()))
    return dice


def _compare(segmenter: Segmenter, data: Path, condition, oof: dict[str, float]) -> tuple[int, str, str]:
    """The compared model's Dice on its own test cases under ``condition``, and the out-of-fold Dice on the same
    cases."""
    own = own_test_dice(segmenter, data, condition)
    cv = [oof[c] for c in own]
    text = lambda v: f"{np.mean(v):.4f} / {np.median(v):.4f} / {np.min(v):.4f}"  # noqa: E731
    return len(own), text(list(own.values())), text(cv)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cv", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, help="Markdown table to write (default CV/report/conditions.md)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--compare", help="a model whose recorded test cases are scored too (see above)")
    parser.add_argument(
        "--only", type=int, nargs="+", help=f"run only these conditions (1-{len(CONDITIONS)}, in the order above)"
    )
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation, as predict --tta")
    args = parser.parse_args()
    chosen = chosen_conditions(parser, args.only)
    config = from_dict(TrainConfig, json.loads((fold_run(args.cv, 0) / "config.json").read_text()))
    rules = rules_by_fold(args.cv)
    lines = ["| input | cases | Dice mean | median | min | cases < 0.5 |", "|---|---|---|---|---|---|"]
    compared, compared_model = [], load_model(args.compare, threads=args.threads) if args.compare else None
    for name, condition in chosen.items():
        held = predict_held_out(config, args.data, args.cv, threads=args.threads, condition=condition, tta=args.tta)
        dice = {}
        for case in held:
            rule, value = rules[case.fold]
            mask, _ = select_components(case.binary, case.probability, rule, value)
            dice[case.case_id] = dice_from_counts(
                int((mask & case.truth).sum()), int(mask.sum()), int(case.truth.sum())
            )
        values = np.array(list(dice.values()))
        lines.append(
            f"| {name} | {len(values)} | {values.mean():.4f} | {np.median(values):.4f} | {values.min():.4f} | "
            f"{int((values < 0.5).sum())} |"
        )
        print(lines[-1], flush=True)
        if compared_model is not None:
            compared.append((name, *_compare(compared_model, args.data, condition, dice)))
    if compared:
        lines += [
            "",
            f"On the {compared[0][1]} cases {args.compare} never saw: its Dice and the cross-validation's out-of-fold "
            "Dice",
            "",
            "| input | cases | compared model: mean / median / min | cross-validation, out of fold: mean / median / "
            "min |",
            "|---|---|---|---|",
        ]
        lines += [f"| {name} | {n} | {a} | {b} |" for name, n, a, b in compared]
    out = args.out or args.cv / "report" / "conditions.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
