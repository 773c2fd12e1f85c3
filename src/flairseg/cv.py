"""Cross-validation: k patient-level folds, every case predicted by the one model that never saw it.

``cross_validate(config, data, out)`` trains the folds that are not finished into
``out/fold-<k>`` (each an ordinary training run, resumable, its model chosen on an inner
validation subset of its own training cases), then predicts every case with the model of
the fold that held it out. On those out-of-fold probabilities it compares the component
rules of :func:`flairseg.postprocess.select_components` and picks the one with the best
mean Dice. The figure it reports is honest: each fold's cases are postprocessed with the
rule chosen on the *other* folds' cases. The rule chosen on all cases goes, with the k
fold models, into ``out/ensemble.safetensors/.json``, a checkpoint that averages them.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flairseg.cases import Case
from flairseg.config import PostprocessConfig, TrainConfig, parse_json, replace
from flairseg.errors import InputError
from flairseg.metrics import CaseMetrics, case_metrics, dice_from_counts
from flairseg.postprocess import select_components

if TYPE_CHECKING:
    from flairseg.outputs import InputPaths

# The rules compared, in order of preference on a tie (simplest first).
CANDIDATES: tuple[PostprocessConfig, ...] = (
    PostprocessConfig("none"),
    PostprocessConfig("largest"),
    *(PostprocessConfig("relative-volume", v) for v in (0.05, 0.1, 0.2, 0.3, 0.5)),
    PostprocessConfig("largest-mass"),
    *(PostprocessConfig("peak", v) for v in (0.6, 0.7, 0.8, 0.9, 0.95)),
)
DELETED_RAW, DELETED_FINAL = 0.5, 0.3  # a tumour found (raw Dice > 0.5) but removed (final Dice < 0.3)
MASK_RECORD = "predictions.json"  # beside ``predictions``: each out-of-fold mask file written there -> its sha256


@dataclass(frozen=True)
class HeldOut:
    """One case as predicted by the fold model that never saw it, on the case's own grid."""

    case_id: str
    fold: int
    binary: np.ndarray  # (S, H, W) bool: thresholded, before postprocessing
    probability: np.ndarray  # (S, H, W) float16
    truth: np.ndarray  # (S, H, W) bool
    spacing: tuple[float, float, float] | None


def fold_run(out: Path, fold: int) -> Path:
    return out / f"fold-{fold}"


def is_finished(run: Path, config: TrainConfig) -> bool:
    """Whether a fold's run has trained every epoch (and made its tail average, when asked), by its training-state
    record read as ``train --resume`` reads it."""
    from flairseg.train import state_record

    if not (run / "last.json").is_file():
        return False
    done = state_record(run, config.task)["epoch"] >= config.epochs - 1 and (
        not config.average_last or (run / "average.json").is_file()
    )
    if done and not (run / "best.json").is_file():
        raise InputError(
            f"{run} trained every epoch but never validated a model (best.json); check its log.csv, then delete it "
            "and run again"
        )
    return done


def _check_recipe(run: Path, config: TrainConfig) -> None:
    """Refuse a fold's run without its recipe and split, or with another recipe than ``config`` (its config.json read
    as ``train --resume`` reads it)."""
    from flairseg.train import recorded_recipe

    if not (run / "config.json").is_file() or not (run / "split.json").is_file():
        raise InputError(f"{run} is an incomplete fold (no config.json or split.json); delete it and run again")
    if recorded_recipe(run) != config:
        raise InputError(
            f"{run} was trained with another recipe than the one given; use a new output folder or the same recipe"
        )


def check_recipe(config: TrainConfig) -> None:
    """What cross-validation supports: k-fold abnormality recipes."""
    if config.task != "abnormality":
        raise InputError(
            "flairseg cv cross-validates abnormality models (its component rules are the tumour's); train brain "
            "models with flairseg train"
        )
    if config.scheme != "kfold":
        raise InputError(
            f"flairseg cv uses k-fold splits; for the paper's 22 folds set folds=22 instead of scheme={config.scheme}"
        )


_FOLD_RUN = re.compile(r"fold-[0-9]+")  # the name of a fold's run (:func:`fold_run`)


def check_cv_folder(out: Path) -> None:
    """Refuse an existing folder ``out`` that is not a cross-validation folder, which cv would write its folds, report
    and ensemble into, replacing a user's files of the same names. A cross-validation folder is one flairseg made as
    one (its marker; another kind of flairseg's folder, such as an evaluation report, is refused), one holding fold
    runs (made by a flairseg before these folders were marked, or in a folder given empty), or one empty but for
    flairseg's working files (the lock of another job's fold).
    """
    from flairseg.outputs import MARKER, is_training_run, is_working_file, made_as, made_by_flairseg, marker_kind

    if not out.is_dir() or made_as(out, "cross-validation"):
        return
    if made_by_flairseg(out):
        raise InputError(
            f"output {out} holds flairseg's {marker_kind(out)}, not a cross-validation: flairseg cv writes only into "
            "its own folders: choose another path"
        )
    entries = [path for path in out.iterdir() if not is_working_file(path.name)]
    if entries and not any(_FOLD_RUN.fullmatch(path.name) and is_training_run(path) for path in entries):
        raise InputError(
            f"output {out} is a folder flairseg did not make (no {MARKER} marker) and holds no cross-validation "
            "folds; flairseg cv writes only into its own folders: move it away or choose another path"
        )
    _refuse_foreign_results(out)


def _refuse_foreign_results(out: Path) -> None:
    """In a folder of fold runs flairseg did not mark (the user's project folder), refuse a report folder flairseg has
    no sign of writing (its marker), or out-of-fold predictions without cv's record of them, which cv would write
    over: the user's own files of those names would be lost."""
    from flairseg.outputs import ReportFolder, made_as

    report = ReportFolder(out / "report")
    # cv.md: the report of a cv that did not mark it
    ours = made_as(report.path, "cross-validation report") or (report.path / "cv.md").is_file()
    foreign = [report.path] if report.path.exists() and not ours else []
    masks_ours = (out / MASK_RECORD).is_file() or (report.path / "cv.md").is_file()  # an older cv's: no record
    foreign += [out / "predictions"] if (out / "predictions").exists() and not masks_ours else []
    if foreign:
        raise InputError(
            f"{foreign[0]} is in the way of cross-validation's results and flairseg has no record of writing it; move "
            "it away (flairseg cv writes its report and predictions only where it made them)"
        )


def check_outputs(config: TrainConfig, data: Path, out: Path, inputs: InputPaths) -> None:
    """Refuse, before any fold trains, a path cross-validation writes that leads into an input (a link in ``out``):
    each fold's run and the files in it, the report and its files, the ensemble, and each case's out-of-fold mask
    under ``predictions``.
    """
    from flairseg.checkpoint import paths_of
    from flairseg.io import case_outline, find_cases
    from flairseg.outputs import PredictionFolder

    for fold in range(config.folds):
        inputs.refuse_folder(fold_run(out, fold), f"fold {fold}'s run")
    inputs.refuse_folder(out / "report", "the report folder")
    for path in paths_of(out / "ensemble"):
        inputs.refuse(path, "the ensemble")
    predictions = PredictionFolder(out / "predictions")
    inputs.refuse(predictions.path, "the out-of-fold predictions folder")
    inputs.refuse(out / MASK_RECORD, "the record of the out-of-fold masks")
    for case in map(case_outline, find_cases(data)):
        inputs.refuse(predictions.mask(case), f"case {case.case_id}'s out-of-fold mask")


def check_init(init: Path, config: TrainConfig, data: Path) -> None:
    """Refuse an ``--init`` that is not a checkpoint (read as every checkpoint is: NAME, NAME.json or
    NAME.safetensors), or an ensemble whose member k did not hold out exactly fold k's test cases (that would leak
    them).
    """
    from flairseg.checkpoint import load_model
    from flairseg.data import make_split
    from flairseg.io import index_cases

    _, meta = load_model(init, config.task)
    folds = meta.get("test_folds")
    if (
        meta.get("members") != config.folds
        or not isinstance(folds, list)
        or len(folds) != config.folds
        or not all(isinstance(held, list) for held in folds)
    ):
        raise InputError(
            f"{init} is not an ensemble of {config.folds} fold models made by flairseg cv; "
            "fine-tune each fold from its own fold model"
        )
    case_ids = sorted(index_cases(data))
    for fold, held in enumerate(folds):
        test = make_split(case_ids, config.scheme, config.folds, fold, config.validation_cases, config.seed).test
        if sorted(held) != sorted(test):
            raise InputError(
                f"member {fold} of {init} was not trained on fold {fold}'s training cases of this data and recipe "
                "(its held-out cases differ); fine-tuning it would test on cases it saw"
            )


def _check_started_folds(
    config: TrainConfig, out: Path, chosen: Sequence[int], unfinished: Sequence[int], paths: dict[str, Path]
) -> None:
    """Refuse, before any fold trains, a started fold of ``chosen`` whose data changed since it trained on them (a
    finished fold is kept, a started one resumed, only while they are as it recorded them), or a finished one whose
    split.json is not the one its last checkpoint records, or whose model records another split."""
    from flairseg.data import check_data, load_split
    from flairseg.train import check_models_of_split, check_recorded_split, state_record

    for fold in chosen:
        run = fold_run(out, fold)
        if fold not in unfinished:
            split = load_split(run / "split.json")
            check_recorded_split(run, split, state_record(run, config.task))
            check_models_of_split(run, split)
        if run.exists() and (run / "split.json").is_file():
            check_data(run, paths)


def train_folds(
    config: TrainConfig,
    data: Path,
    out: Path,
    folds: Sequence[int] | None = None,
    device: str = "auto",
    threads: int | None = None,
    quiet: bool = False,
    init: Path | None = None,
) -> list[int]:
    """Train (or resume) the given folds (default: all) that are not finished; returns the folds trained now.

    ``init``: an ensemble made by :func:`cross_validate` over the same folds; fold k starts from its member k.
    """
    from flairseg.inference import limit_threads
    from flairseg.io import index_cases
    from flairseg.train import train

    limit_threads(threads)  # before the data check prepares cases: folds share a machine's cores
    chosen = list(range(config.folds)) if folds is None else list(folds)
    wrong = [f for f in chosen if not 0 <= f < config.folds]
    if wrong:
        raise InputError(f"fold {wrong[0]} does not exist; the recipe has folds 0..{config.folds - 1}")
    for fold in range(config.folds):  # every fold started so far (not only those asked for): same recipe, same start
        if fold_run(out, fold).exists():
            _check_recipe(fold_run(out, fold), replace(config, fold=fold))
            _check_start(fold_run(out, fold), fold, init)
    if init is not None:
        check_init(init, config, data)
    trained, paths = [], index_cases(data)
    unfinished = [f for f in chosen if not is_finished(fold_run(out, f), replace(config, fold=f))]
    _check_started_folds(config, out, chosen, unfinished, paths)
    _check_folds_data(config, data, out, paths, unfinished, quiet)
    for fold in unfinished:
        fold_config, run = replace(config, fold=fold), fold_run(out, fold)
        started = run.exists()
        if not quiet:
            print(f"fold {fold + 1} of {config.folds}: {'resuming' if started else 'training'} {run}", file=sys.stderr)
        with _new_folder_marked(out):
            train(
                fold_config,
                data,
                run,
                resume=started,
                init_from=init,
                init_member=fold if init else None,
                device=device,
                threads=threads,
                quiet=quiet,
                fold_of_cv=True,
            )
        trained.append(fold)
    return trained


def _check_folds_data(
    config: TrainConfig, data: Path, out: Path, paths: dict[str, Path], folds: Sequence[int], quiet: bool
) -> None:
    """Refuse, before the first of ``folds`` trains, what the training of any of them would refuse in its data (a
    case unreadable, with NaN pixels, ...), each case read once: a fault in fold k's cases would otherwise be found
    once folds 0..k-1 had trained. A started fold's split is its own, a new one's made as train makes it. One fold
    left to train (a job of ``--fold K``, or the last unfinished one) is left to its training, which prepares and
    checks its cases before it writes or trains."""
    from flairseg.data import load_split, make_split
    from flairseg.train import check_runs

    if len(folds) < 2:
        return
    splits = [
        load_split(fold_run(out, fold) / "split.json")
        if fold_run(out, fold).exists()
        else make_split(sorted(paths), config.scheme, config.folds, fold, config.validation_cases, config.seed)
        for fold in folds
    ]
    check_runs(config, data, paths, splits, quiet)


def _check_start(run: Path, fold: int, init: Path | None) -> None:
    """Refuse a fold started from other weights than this command's: random ones without ``init``, else member
    ``fold`` of the ensemble ``init`` as it is now. A finished fold would be kept, an unfinished one resumed, as if
    trained from them. A fold made before runs recorded their start passes (one whose record was lost does not);
    one made before runs recorded the weights' sha256 is compared by path."""
    from flairseg.data import refuse_lost_record
    from flairseg.train import START_FILE, check_start

    if not (run / START_FILE).is_file():
        refuse_lost_record(run, START_FILE, "split", "the record of the weights it started from")
        return
    check_start(
        run,
        f"fold {fold} ({run})",
        init,
        fold if init is not None else None,
        "give cv the --init its folds started from (or none), or use a new output folder",
        "use a new output folder",
    )


@contextlib.contextmanager
def _new_folder_marked(out: Path) -> Iterator[None]:
    """A cross-validation folder the block makes (the first fold's run, once its inputs pass) is marked as
    flairseg's; one it leaves empty (a refused first fold: only its lock was there) is removed; an existing folder
    stays as it was."""
    from flairseg.outputs import made_by_flairseg, write_marker

    new = not out.exists()
    try:
        yield
    finally:
        if new and out.is_dir():
            if not any(out.iterdir()):
                out.rmdir()
            elif not made_by_flairseg(out):
                write_marker(out, "cross-validation")


def _held_out_jobs(config: TrainConfig, out: Path, paths: dict[str, Path], data: Path) -> list[tuple[int, str]]:
    """(fold, case id) of every fold's test case, once every fold is trained on the data as they are and the folds
    cover the data (case id -> path) exactly."""
    from flairseg.data import check_data, load_split
    from flairseg.train import check_models_of_split

    jobs = []
    for fold in range(config.folds):
        run = fold_run(out, fold)
        _check_recipe(run, replace(config, fold=fold))
        if not is_finished(run, replace(config, fold=fold)):
            raise InputError(f"fold {fold} is not trained yet ({run}); run the folds first")
        check_data(run, paths)
        split = load_split(run / "split.json")
        check_models_of_split(run, split)
        jobs += [(fold, case_id) for case_id in split.test]
    held_out = [c for _, c in jobs]
    if len(set(held_out)) != len(held_out) or set(held_out) != set(paths):
        raise InputError(
            f"the folds' test cases do not cover the {len(paths)} cases under {data} exactly once "
            "(the data changed since the folds were made); use the same data or a new output folder"
        )
    return jobs


def predict_held_out(
    config: TrainConfig,
    data: Path,
    out: Path,
    device: str = "auto",
    threads: int | None = None,
    quiet: bool = False,
    condition: Callable[[Case], Case] | None = None,
    tta: bool = False,
) -> list[HeldOut]:
    """Every test case of every fold, predicted by its fold's selected model (``best``).

    ``condition`` changes each case before prediction (e.g. to simulate a FLAIR-only or a
    skull-stripped scan); the truth is the changed case's (a resampled case brings its resampled mask).
    ``tta``: with flip test-time augmentation, as ``predict --tta``.
    """
    from tqdm import tqdm

    from flairseg.io import index_cases, read_case, read_label
    from flairseg.predict import Segmenter
    from flairseg.preprocess import invert_mask, invert_probability

    paths = index_cases(data)
    jobs = _held_out_jobs(config, out, paths, data)
    held, loaded = [], None
    for fold, case_id in tqdm(jobs, desc="out-of-fold prediction", unit="case", disable=quiet, file=sys.stderr):
        if loaded is None or loaded[0] != fold:
            loaded = (fold, Segmenter(fold_run(out, fold) / "best.json", device=device, threads=threads, tta=tta))
        segmenter = loaded[1]
        case = read_case(paths[case_id], masks="required")
        # as training had it
        brain = read_label(case, "_brain") if segmenter.preprocess.variant == "paper-abnormality" else None
        given = condition(case) if condition else case
        if brain is not None and brain.shape != given.shape:
            raise InputError(
                "a condition that changes the grid cannot be used with a paper-abnormality model (its brain label "
                "stays on the case's own grid)"
            )
        prepared = segmenter.prepare(given, brain=brain)
        prob = segmenter.probabilities(prepared)
        held.append(
            HeldOut(
                case_id,
                fold,
                invert_mask(prob >= segmenter.threshold, prepared.transform),
                invert_probability(prob, prepared.transform).astype(np.float16),
                given.mask,
                given.geometry.spacing,
            )
        )
    return held


def _dice(case: HeldOut, rule: PostprocessConfig) -> float:
    mask, _ = select_components(case.binary, case.probability, rule.rule, rule.value)
    return dice_from_counts(
        int(np.count_nonzero(mask & case.truth)), int(np.count_nonzero(mask)), int(np.count_nonzero(case.truth))
    )


def compare_rules(held: Sequence[HeldOut]) -> dict[PostprocessConfig, np.ndarray]:
    """Per-case Dice of every candidate rule, in the order of ``held``."""
    return {rule: np.array([_dice(case, rule) for case in held]) for rule in CANDIDATES}


def best_rule(dice: dict[PostprocessConfig, np.ndarray], chosen: np.ndarray | None = None) -> PostprocessConfig:
    """The rule with the highest mean Dice over the ``chosen`` cases (all by default); the first on a tie."""
    means = [float(np.mean(values if chosen is None else values[chosen])) for values in dice.values()]
    return list(dice)[int(np.argmax(means))]


@dataclass(frozen=True)
class CrossValidation:
    """What a cross-validation found."""

    rows: list[CaseMetrics]  # out of fold, each fold postprocessed by the rule chosen on the other folds
    folds: list[int]  # the fold of each row
    rule: PostprocessConfig  # chosen on every case: the ensemble's rule
    rules_by_fold: dict[int, PostprocessConfig]
    comparison: dict[PostprocessConfig, np.ndarray]
    raw_dice: np.ndarray  # without postprocessing
    deleted: list[str]  # tumours found by the network but removed by postprocessing
    out: Path


def evaluate_held_out(held: Sequence[HeldOut], out: Path) -> CrossValidation:
    """Choose the rule, score every case honestly and collect the deleted-tumour cases."""
    comparison = compare_rules(held)
    folds = np.array([case.fold for case in held])
    rules_by_fold = {int(f): best_rule(comparison, folds != f) for f in np.unique(folds)}
    rows = []
    for case in held:
        mask, _ = select_components(
            case.binary, case.probability, rules_by_fold[case.fold].rule, rules_by_fold[case.fold].value
        )
        rows.append(case_metrics(case.case_id, mask, case.truth, case.spacing))
    raw = comparison[PostprocessConfig("none")]
    deleted = [c.case_id for c, r, row in zip(held, raw, rows) if r > DELETED_RAW and row.dice < DELETED_FINAL]
    return CrossValidation(rows, folds.tolist(), best_rule(comparison), rules_by_fold, comparison, raw, deleted, out)


def rule_name(rule: PostprocessConfig) -> str:
    return rule.rule if rule.rule in ("none", "largest", "largest-mass") else f"{rule.rule} {rule.value:g}"


def _comparison_rows(result: CrossValidation) -> list[dict[str, object]]:
    rows = []
    for rule, dice in result.comparison.items():
        deleted = int(np.sum((result.raw_dice > DELETED_RAW) & (dice < DELETED_FINAL)))
        rows.append(
            {
                "rule": rule.rule,
                "value": rule.value,
                "dice_mean": float(dice.mean()),
                "dice_median": float(np.median(dice)),
                "dice_min": float(dice.min()),
                "cases_below_0.5": int(np.sum(dice < 0.5)),
                "tumours_deleted": deleted,
                "chosen": rule == result.rule,
            }
        )
    return rows


def write_report(result: CrossValidation, held: Sequence[HeldOut], config: TrainConfig) -> None:
    """``out/report``: metrics.csv, summary.md/.json, the Dice figure, postprocessing.csv, worst_cases.csv, cv.md,
    rules.json (the rule each fold's cases were postprocessed with)."""
    from flairseg import evaluate
    from flairseg.outputs import atomic_file, mark_folder, markdown_text

    report = result.out / "report"
    mark_folder(report, "cross-validation report")  # a later run writes into it again (:func:`_refuse_foreign_results`)
    summary = evaluate.write_report(
        result.rows, report, f"Out-of-fold prediction of {len(result.rows)} cases ({config.folds} folds)"
    )
    comparison = _comparison_rows(result)
    with atomic_file(report / "postprocessing.csv") as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(comparison[0]))
        writer.writeheader()
        writer.writerows(comparison)
    _write_worst_cases(result, held, report / "worst_cases.csv")
    lines = [
        f"# Cross-validation: {len(result.rows)} cases, {config.folds} patient-level folds",
        "",
        f"Out of fold: Dice mean {summary['dice'].mean:.4f}, median {summary['dice'].median:.4f} "
        f"(IQR {summary['dice'].q1:.4f}-{summary['dice'].q3:.4f}), minimum {summary['dice'].minimum:.4f}; "
        f"{sum(r.dice < 0.5 for r in result.rows)} cases below 0.5.",
        "Each fold's cases are postprocessed with the rule chosen on the other folds' cases: "
        + ", ".join(f"fold {f}: {rule_name(r)}" for f, r in result.rules_by_fold.items())
        + ".",
        f"Chosen on all cases (the ensemble's rule): {rule_name(result.rule)}.",
        f"Tumours found by the network (Dice > {DELETED_RAW} before postprocessing) and removed by it (< "
        f"{DELETED_FINAL}): " + (", ".join(map(markdown_text, result.deleted)) if result.deleted else "none") + ".",
        "",
        "| postprocessing (all cases) | Dice mean | median | min | cases < 0.5 | tumours deleted |",
        "|---|---|---|---|---|---|",
    ]
    for row, rule in zip(comparison, result.comparison):
        mark = " (chosen)" if row["chosen"] else ""
        lines.append(
            f"| {rule_name(rule)}{mark} | {row['dice_mean']:.4f} | {row['dice_median']:.4f} | {row['dice_min']:.4f} | "
            f"{row['cases_below_0.5']} | {row['tumours_deleted']} |"
        )
    with atomic_file(report / "cv.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_file(report / "rules.json") as tmp:
        tmp.write_text(json.dumps({str(f): dataclasses.asdict(r) for f, r in result.rules_by_fold.items()}, indent=2))


def _write_worst_cases(result: CrossValidation, held: Sequence[HeldOut], path: Path, count: int = 10) -> None:
    """The ``count`` lowest-scoring cases: Dice before and after postprocessing, predicted and true volumes."""
    from flairseg.outputs import atomic_file

    header = ["case", "fold", "dice", "dice_before_postprocessing", "pred_voxels", "truth_voxels", "volume_ratio"]
    order = sorted(range(len(result.rows)), key=lambda i: result.rows[i].dice)
    with atomic_file(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in order[:count]:
            row = result.rows[i]
            ratio = row.pred_voxels / row.truth_voxels if row.truth_voxels else float("nan")
            dice, raw = f"{row.dice:.4f}", f"{result.raw_dice[i]:.4f}"
            writer.writerow([row.case_id, held[i].fold, dice, raw, row.pred_voxels, row.truth_voxels, f"{ratio:.2f}"])


def write_masks(result: CrossValidation, held: Sequence[HeldOut], data: Path) -> None:
    """The out-of-fold masks (as scored) under ``out/predictions``, in the layout of the input, each file's sha256
    recorded (:func:`check_masks_unchanged`). A case's files leave the record before they are written and enter it
    after: a run killed in between leaves no record of them, not a record of other contents."""
    from flairseg.io import index_cases, read_case, write_mask
    from flairseg.outputs import PredictionFolder
    from flairseg.predict import mask_files
    from flairseg.provenance import sha256_of

    paths, predictions = index_cases(data), PredictionFolder(result.out / "predictions")
    written = _written_masks(result.out)
    for case, fold in zip(held, result.folds):
        rule = result.rules_by_fold[fold]
        mask, _ = select_components(case.binary, case.probability, rule.rule, rule.value)
        source = read_case(paths[case.case_id], masks="ignore")
        files = mask_files(source, predictions.mask(source), predictions.label)
        names = [path.relative_to(predictions.path).as_posix() for path in files]
        written = {name: digest for name, digest in written.items() if name not in names}
        _save_written_masks(result.out, written)
        write_mask(source, mask, predictions.mask(source), predictions.label)
        written |= {name: sha256_of(path) for name, path in zip(names, files)}
        _save_written_masks(result.out, written)


def _written_masks(out: Path) -> dict[str, str]:
    """The out-of-fold mask files cv wrote under ``out/predictions`` (path there -> sha256), as its record holds them;
    none without a record (no masks written yet, or written by a flairseg that recorded none)."""
    path = out / MASK_RECORD
    if not path.exists():
        return {}
    try:
        written = parse_json(path.read_text())
    except (OSError, ValueError):
        written = None
    if not isinstance(written, dict) or not all(isinstance(v, str) for v in written.values()):
        raise InputError(
            f"{path} is not the record of the out-of-fold masks cv wrote; move it and {out / 'predictions'} away, then "
            "run again"
        )
    return written


def _save_written_masks(out: Path, written: dict[str, str]) -> None:
    from flairseg.outputs import atomic_file

    with atomic_file(out / MASK_RECORD) as tmp:
        tmp.write_text(json.dumps(written, indent=1, sort_keys=True))


def check_masks_unchanged(out: Path) -> None:
    """Refuse, before any case is predicted out of fold, an out-of-fold mask file changed since cv wrote it (a hand
    correction): the run would replace it, and cv has no --overwrite. One gone is written again."""
    from flairseg.provenance import sha256_of

    for name, digest in _written_masks(out).items():
        path = out / "predictions" / name
        if (path.exists() or path.is_symlink()) and (not path.is_file() or sha256_of(path) != digest):
            raise InputError(
                f"{path} changed since cv wrote it; move it away to keep it (cv then writes the case's mask again), "
                "or delete it"
            )


def make_ensemble(result: CrossValidation, config: TrainConfig) -> Path:
    """``out/ensemble.safetensors/.json``: the folds' selected models averaged, with the chosen rule."""
    from flairseg import checkpoint
    from flairseg.data import load_split
    from flairseg.metrics import summarise_cases
    from flairseg.model import Ensemble

    members, splits = [], []
    for fold in range(config.folds):
        model, _ = checkpoint.load_model(fold_run(result.out, fold) / "best.json", task=config.task)
        members.append(model)
        splits.append(list(load_split(fold_run(result.out, fold) / "split.json").test))
    dice = summarise_cases(result.rows)["dice"]
    metrics = {
        "out_of_fold_cases": len(result.rows),
        "dice_mean": dice.mean,
        "dice_median": dice.median,
        "dice_q1": dice.q1,
        "dice_q3": dice.q3,
        "dice_min": dice.minimum,
    }
    return checkpoint.save_model(
        Ensemble(members),
        config.model,
        config.preprocess,
        result.out / "ensemble",
        task=config.task,
        members=len(members),
        postprocess=dataclasses.asdict(result.rule),
        recipe=dataclasses.asdict(config),
        test_folds=splits,
        metrics=metrics,
    )


def cross_validate(
    config: TrainConfig,
    data: str | os.PathLike,
    out: str | os.PathLike,
    folds: Sequence[int] | None = None,
    device: str = "auto",
    threads: int | None = None,
    quiet: bool = False,
    init: str | os.PathLike | None = None,
    config_file: str | os.PathLike | None = None,
) -> CrossValidation | None:
    """Train the unfinished folds; once every fold is trained, evaluate out of fold and make the ensemble.

    With ``folds`` (jobs that each train some folds) only those are trained and None is returned:
    the evaluation is the job of a run without ``folds``, once every fold is finished. ``config_file``: the file
    ``config`` was read from (``--config``), which ``out`` may not hold, nor the ``init`` ensemble.
    """
    from flairseg.checkpoint import files_of
    from flairseg.outputs import InputPaths, check_output, held_folder

    data, out = Path(data), Path(out)
    if not data.is_dir():
        raise InputError(f"data folder {data} does not exist")
    inputs = InputPaths([data, config_file, *(files_of(init) if init is not None else ())])
    # a cross-validation folder is continued, never replaced
    check_output(out, inputs, overwrite=True, replaces=False, kind="cross-validation")
    check_cv_folder(out)
    check_recipe(config)
    check_outputs(config, data, out, inputs)
    check_masks_unchanged(out)  # before the folds train too: hours before the masks are written
    train_folds(config, data, out, folds, device, threads, quiet, Path(init) if init is not None else None)
    if folds is not None:
        return None
    with held_folder(out, "evaluated"):  # one process at a time writes the report, the masks and the ensemble
        check_masks_unchanged(out)
        held = predict_held_out(config, data, out, device, threads, quiet)
        result = evaluate_held_out(held, out)
        write_report(result, held, config)
        write_masks(result, held, data)
        make_ensemble(result, config)
    return result
