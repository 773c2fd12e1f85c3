"""Prediction: a :class:`Segmenter` built once and applied to many cases; batch prediction of trees.

``flairseg predict -i INPUT -o OUTPUT --model M`` writes, per case, a mask the way the
input came (TIFF slices named after the input's, or a NIfTI with the input's header),
optionally a probability map, a record of how it was made (:mod:`flairseg.provenance`),
and, when truth masks are available, a report. A case whose output exists and whose record
matches the command is skipped, so an interrupted batch is finished by running the same
command again; a different command stops with the difference. Every output appears complete
or not at all. Runs into one folder at once share it case by case: one process at a time checks and
writes a case (:func:`~flairseg.outputs.held_case`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flairseg import checkpoint, provenance, qc
from flairseg.cases import Case, Geometry, check_same_grid, is_hidden
from flairseg.config import TASK_SPECS
from flairseg.data import Prepared, check_processing_memory, prepare_case, read_json
from flairseg.errors import InputError
from flairseg.inference import (
    InferenceOptions,
    OnnxModel,
    Segmentation,
    limit_threads,
    predict_probabilities,
    resolve_device,
    resolve_precision,
    segment_prepared,
)
from flairseg.io import (
    case_id_of,
    case_outline,
    check_case,
    declared_grid,
    index_cases,
    input_files,
    label_files,
    read_case,
    read_label,
    read_mask,
    refuse_case_file_name,
    write_image,
    write_mask,
)
from flairseg.metrics import CaseMetrics, case_metrics
from flairseg.model import Ensemble, folded
from flairseg.outputs import (
    RUN_NAMES,
    InputPaths,
    PredictionFolder,
    ReportFolder,
    atomic_file,
    check_output,
    name_key,
    held_case,
    mark_folder,
    refuse_links_below,
    refuse_marked_above,
    run_report,
)
from flairseg.postprocess import Component, select_components
from flairseg.preprocess import strip_skull
from flairseg.released_models import check_release_name, resolve
from flairseg.sequences import nnunet_labels


class Segmenter:
    """A loaded model with its preprocessing, ready to segment many cases.

    Args:
        model: path of a checkpoint (NAME, NAME.json or NAME.safetensors), or of an ONNX export
            (NAME.onnx, run by ONNX Runtime on the CPU).
        device: 'auto' (CUDA, then Apple's MPS, then the CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'.
        threads: CPU threads for PyTorch and the BLAS pools (None: the libraries' defaults).
        batch_size: slices per forward pass (None: 4 on a CPU, the fastest there; 32 on a GPU).
        tta: average with the prediction of left-right flipped slices.
        task: when given, refuse a checkpoint trained for another task.
        convex_hull: brain masks: the paper's per-slice convex hull instead of hole filling.
        precision: 'auto' (bfloat16 where the hardware has it natively, else float32), 'fp32'
            or 'bf16'; ONNX models always run in float32.
        folds: members of an ensemble checkpoint to use (None: all of them), e.g. [0] for the
            first fold's model alone.

    ``model`` (attribute) is the network as it runs: the chosen members with batch normalisation
    folded into their convolutions (:func:`flairseg.model.folded`), so its state dict is not the
    checkpoint's.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        device: str = "auto",
        threads: int | None = None,
        batch_size: int | None = None,
        tta: bool = False,
        task: str | None = None,
        convex_hull: bool = False,
        precision: str = "auto",
        folds: Sequence[int] | None = None,
    ) -> None:
        if (batch_size is not None and batch_size < 1) or (threads is not None and threads < 1):
            raise InputError(f"batch_size and threads must be at least 1, not {batch_size} and {threads}")
        onnx = str(model).lower().endswith(".onnx")
        self.device = resolve_device("cpu" if onnx and device == "auto" else device)  # ONNX Runtime runs on the CPU
        batch_size = batch_size or (4 if self.device.type == "cpu" else 32)
        self.autocast = resolve_precision(precision, self.device)
        limit_threads(threads)
        if onnx:
            if self.device.type != "cpu":
                raise InputError("ONNX models run on the CPU (ONNX Runtime); drop --device or use the checkpoint")
            if precision == "bf16":
                raise InputError("ONNX models run in float32; drop --precision bf16 or use the checkpoint")
            self.autocast = None
            self.model = OnnxModel(model, threads)
            self.metadata = self.model.metadata
            checkpoint.check_task(self.metadata, Path(model).name, task)
        else:
            self.model, self.metadata = checkpoint.load_model(model, task=task)
            self.model = folded(_members(self.model, folds, Path(model).name))
            self.model.to(self.device, memory_format=torch.channels_last)
        check_release_name(self.metadata, Path(model).name)
        if folds is not None and not isinstance(self.model, torch.nn.Module):
            raise InputError("--folds chooses members of an ensemble checkpoint; an ONNX export is one network")
        self.in_channels = int(self.metadata["model"]["in_channels"])
        self.task = checkpoint.task_of(self.metadata)
        self.preprocess = checkpoint.preprocess_config(self.metadata)
        self.components = checkpoint.postprocess_config(self.metadata)
        self.threshold = checkpoint.threshold_of(self.metadata)
        self.convex_hull = convex_hull
        self.source = Path(model)  # the file the model was read from: no output may hold it
        self.options = InferenceOptions(batch_size, self.device, tta, self.autocast)
        self.folds = None if folds is None else list(folds)

    def settings(self) -> dict[str, object]:
        """Everything about this segmenter that changes a mask: the provenance record's model part."""
        from flairseg.version import __version__

        return {
            "flairseg_version": __version__,
            "model": self.metadata.get("name", "unnamed checkpoint"),
            "weights_sha256": self.metadata.get("sha256"),
            "onnx_graph_sha256": self.model.graph_sha256 if isinstance(self.model, OnnxModel) else None,
            "task": self.task,
            "folds": self.folds,
            "preprocess": dataclasses.asdict(self.preprocess),
            "threshold": self.threshold,
            "postprocess": [self.components.rule, self.components.value],
            "convex_hull": self.convex_hull,
            "tta": self.options.tta,
            "precision": "bfloat16" if self.autocast is torch.bfloat16 else "float32",
        }

    def prepare(self, case: Case, brain: np.ndarray | None = None) -> Prepared:
        """The case as this model's input (its preprocessing), checked against the channels it expects."""
        prepared = prepare_case(case, self.task, self.preprocess, brain=brain, target=False)
        if prepared.inputs.shape[1] != self.in_channels:
            raise InputError(
                f"case {case.case_id} gives {prepared.inputs.shape[1]} input channels; the model expects "
                f"{self.in_channels}"
            )
        return prepared

    def probabilities(self, prepared: Prepared) -> np.ndarray:
        """(S', size, size) foreground probabilities in model space, before thresholding and postprocessing."""
        return predict_probabilities(self.model, prepared.inputs, self.options)

    def __call__(self, case: Case, brain: np.ndarray | None = None, with_probability: bool = False) -> Segmentation:
        """Mask (S, H, W) bool on the case's grid, the probability map when asked, and the components found."""
        return segment_prepared(
            self.model,
            self.prepare(case, brain),
            self.task,
            self.threshold,
            self.options,
            with_probability,
            self.convex_hull,
            self.components,
        )


def _members(model: torch.nn.Module, folds: Sequence[int] | None, name: str) -> torch.nn.Module:
    """The chosen members of an ensemble (all when ``folds`` is None), refusing indices it lacks."""
    if folds is None:
        return model
    count = len(model.members) if isinstance(model, Ensemble) else 0
    if not count:
        raise InputError(f"--folds chooses members of an ensemble, but {name} is a single model; drop --folds")
    wrong = [f for f in folds if not 0 <= f < count]
    if wrong or not folds or len(set(folds)) != len(folds):
        raise InputError(f"--folds must name distinct members 0..{count - 1} of {name}, not {list(folds)}")
    return model.subset(list(folds))


def segment_within_brain(
    segmenter: Segmenter, brain_segmenter: Segmenter, case: Case, with_probability: bool = False
) -> tuple[Segmentation, np.ndarray]:
    """The paper's two-stage pipeline: strip the skull, then segment the abnormality inside the brain.

    A model trained on skull-stripped input (the ``paper-abnormality`` variant) gets the predicted
    brain for its preprocessing; any model's thresholded prediction is then limited to the brain
    before the model's rule selects its components (a false positive outside the brain can never
    win over the tumour). Returns (segmentation, brain).
    """
    brain = brain_segmenter(case).mask
    stripped_input = segmenter.preprocess.variant == "paper-abnormality"
    found = segmenter(case, brain=brain if stripped_input else None, with_probability=True)
    mask, components = select_components(
        found.binary & brain, found.probability, segmenter.components.rule, segmenter.components.value
    )
    return Segmentation(mask, found.probability if with_probability else None, components), brain


def load_model(
    name_or_path: str | os.PathLike | None = None, task: str = "abnormality", **options: object
) -> Segmenter:
    """A :class:`Segmenter` for a checkpoint path, a released model's name, or the task's released default (None)."""
    return Segmenter(resolve(name_or_path, task=task), task=task, **options)  # type: ignore[arg-type]


def segment(
    case_or_array: Case | np.ndarray, model: str | os.PathLike | Segmenter | None = None, **options: object
) -> np.ndarray:
    """Segment one case (or a (S, H, W, C) array) and return the mask on its grid.

    ``model`` is a :class:`Segmenter` (build one with :func:`load_model` to segment many
    cases), a checkpoint path, a released model's name, or None for the released default.
    """
    segmenter = model if isinstance(model, Segmenter) else load_model(model, **options)  # type: ignore[arg-type]
    case = case_or_array
    if isinstance(case_or_array, np.ndarray):
        array = case_or_array[..., None] if case_or_array.ndim == 3 else case_or_array
        case = Case("array", array, None, Geometry(Path("."), "kaggle"))
    return segmenter(case).mask  # type: ignore[arg-type]


@dataclass(frozen=True)
class PredictResult:
    """What a batch prediction did."""

    predicted: int
    skipped: int
    out: Path
    metrics: list[CaseMetrics]
    removed_components: int = 0  # components postprocessing removed, over every case in the output's report
    substituted: int = 0  # cases whose pre- or post-contrast channel was a copy of the FLAIR (report/inputs.csv)
    flagged: int = 0  # cases with at least one QC flag (report/qc.csv)
    title: str = ""  # the report's title
    task: str = "abnormality"  # the task whose cases the metrics and counts cover


_OS_CLUTTER = ("Thumbs.db", "desktop.ini")  # files a file manager leaves in a folder it showed (macOS's are hidden)


def _checked_mask_file(mask_file: str | os.PathLike, inputs: InputPaths, source: Path, report_folder: Path) -> Path:
    """``-o NAME.nii.gz``, checked: never an input, nor named as a file of the case beside it (its truth), nor put in
    a folder of flairseg's of another kind (:func:`~flairseg.outputs.refuse_marked_above`); its ``report_folder``
    (``NAME_flairseg``) holds a report alone: a prediction of cases there (``-o NAME_flairseg``), or a user's files,
    is no mask file's report to replace, --overwrite or not."""
    checked = check_output(mask_file, inputs, overwrite=True, replaces=False, writes="file")
    held = report_folder.iterdir() if report_folder.is_dir() else ()
    if any(path.name not in ("report", *_OS_CLUTTER) and not is_hidden(path) for path in held):
        raise InputError(
            f"{report_folder}, where the report of mask file {checked} goes, holds more than a report (the prediction "
            "of a tree of cases?): give -o another name"
        )
    refuse_case_file_name(source, checked, "mask file")
    refuse_marked_above(checked.parent, "predict", itself=True)
    if run_report(checked.parent).is_flairsegs():  # a mask file there would replace a mask that run records
        raise InputError(
            f"mask file {checked} would lie in {checked.parent}, another prediction run's folder: choose another path"
        )
    return checked


def _check_headers(
    paths: Sequence[Path | Case],
    label: str,
    truth_index: dict[str, Path],
    segmenters: tuple[Segmenter, Segmenter | None],
    resample: bool = False,
) -> None:
    """Refuse the run, before anything is written, when a case's file names or headers fail their checks: its own and
    its mask's (the grids they declare included: a mask or, without ``resample``, a sequence off its FLAIR's grid;
    slices of another size), the memory its declared size needs in each model's preprocessing
    (:func:`_check_declared_memory`), those of the labels the model reads as its input (:func:`_suffixes_read`), and
    its truth's in ``truth_index``, whose grid must be the image's (:func:`_check_truth_grid`)."""
    failed = []
    for path in paths:
        case_id = _case_id(path)
        try:
            if isinstance(path, Path):
                shape = check_case(path, masks="optional", mask_suffix=label, resample=resample)
                _check_declared_memory(shape, case_id, segmenters)
            _check_label_headers(path, _suffixes_read(*segmenters))
            if case_id in truth_index:
                _refuse_image_as_truth(path, case_id, truth_index[case_id], label)
                check_case(truth_index[case_id], masks="only", mask_suffix=label)
                _check_truth_grid(path, case_id, truth_index[case_id], label)
        except InputError as exc:
            if len(paths) == 1:
                raise
            failed.append(f"{case_id}: {exc}")
    if failed:
        more = f"; and {len(failed) - 2} more" if len(failed) > 2 else ""
        raise InputError(
            f"{len(failed)} of {len(paths)} cases fail their header checks, so nothing was written: "
            f"{'; '.join(failed[:2])}{more}; fix or move them, then run again"
        )


def _check_declared_memory(
    shape: tuple[int, int, int, int] | None, case_id: str, segmenters: tuple[Segmenter, Segmenter | None]
) -> None:
    """The memory a case of the declared ``shape`` (slices, rows, columns, channels: :func:`~flairseg.io.check_case`)
    needs in each model's preprocessing and on its grid (:func:`~flairseg.data.check_processing_memory`), refused in
    the header pass: found only when the case is prepared, it would fail after the cases before it were written."""
    for segmenter in segmenters:
        if shape is not None and segmenter is not None:
            check_processing_memory(case_id, shape, segmenter.preprocess.variant, segmenter.preprocess.size)


def _case_id(path: Path | Case) -> str:
    """The id of a case to predict, read (a :class:`Case`) or not."""
    return path.case_id if isinstance(path, Case) else case_id_of(path)


def _refuse_image_as_truth(path: Path | Case, case_id: str, truth: Path, label: str) -> None:
    """Refuse a ``--truth`` that is the case's own image file (the input tree given as the truth, links followed): the
    image would be scored as its mask. A Kaggle folder holds its masks beside its images: its truth may be it. A case
    read from sequence files given by name has those files for its image."""
    images = [path] if isinstance(path, Path) else [Path(file) for _, file in path.sequences if Path(file).is_file()]
    if any(image.is_file() and os.path.samefile(image, truth) for image in images):
        raise InputError(
            f"the truth of case {case_id} ({truth}) is its image: --truth takes masks (<case>{label}.nii.gz), not the "
            "images predicted"
        )


def _check_label_headers(path: Path | Case, labels_read: Sequence[str]) -> None:
    """The headers of the label stacks beside a case that the model reads as its input (a Kaggle case's slices of
    each stack, a volume's label file): a broken one would otherwise fail its case after other cases were written."""
    case = path if isinstance(path, Case) else case_outline(path)
    for suffix in labels_read:
        files = label_files(case, suffix)
        if files:
            kaggle = case.geometry.format == "kaggle"
            check_case(case.geometry.source if kaggle else files[0], masks="only", mask_suffix=suffix)


def _check_truth_grid(path: Path | Case, case_id: str, truth: Path, label: str) -> None:
    """The ``--truth`` mask's grid against its image's as their headers declare them, by the rule ``evaluate``
    applies (:func:`~flairseg.cases.check_same_grid`), so that a truth off its image is refused before anything is
    written. A DICOM series' grid, and TIFF slices' shape against TIFF slices', are known once the case is read:
    :func:`_given_truth` checks them then."""
    image = path if isinstance(path, Case) else declared_grid(path)
    given = declared_grid(truth, masks="only", mask_suffix=label)
    if image is None or given is None or (image.geometry.affine is None and given.geometry.affine is None):
        return
    check_same_grid(case_id, image, given, "image")


def _truth_index(
    truth: str | os.PathLike | None, label: str, cases: Sequence[Path | Case], quiet: bool
) -> dict[str, Path]:
    """{case id: its ``--truth`` mask}. One case given one mask (a file, a Kaggle case folder) takes it whatever its
    name, as ``-o FILE`` names a lone case's mask; a tree's masks pair with its cases by id, and a truth that pairs
    with none of them (another dataset's, a mistyped folder) is refused before anything is written, where it would
    leave the run silently unscored; the cases some truth leaves without a mask are named in a note."""
    if truth is None:
        return {}
    index = index_cases(truth, masks="only", mask_suffix=label)
    ids = [_case_id(case) for case in cases]
    if len(ids) == 1 and list(index.values()) == [Path(truth)]:
        return {ids[0]: Path(truth)}
    _refuse_misspelt_truth(index, ids, label)
    missing = [case_id for case_id in ids if case_id not in index]
    shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
    if len(missing) == len(ids):
        which = f"case {shown}" if len(ids) == 1 else f"any of the {len(ids)} cases ({shown})"
        raise InputError(
            f"--truth {truth} has no mask for {which} (a case's truth is named after it: <case>{label}); "
            "give the truth of these images, or leave --truth out"
        )
    if missing and not quiet:
        print(
            f"note: --truth {truth} has no mask for {len(missing)} of {len(ids)} cases ({shown}); they are "
            "scored against a mask beside their image where they have one, else predicted unscored",
            file=sys.stderr,
        )
    return index


def _refuse_misspelt_truth(index: dict[str, Path], ids: Sequence[str], label: str) -> None:
    """Refuse a ``--truth`` mask named for a case id that differs from a case's only as a file system that ignores
    case or accent composition would not tell (``a_mask`` for case ``A``): it pairs with no case, and the case would
    go unscored without a word."""
    cases, given = {name_key(case_id): case_id for case_id in ids}, set(ids)
    for truth_id, path in index.items():
        case_id = cases.get(name_key(truth_id))
        if truth_id not in given and case_id is not None:
            raise InputError(
                f"--truth mask {path} is named for case {truth_id!r}, and the case is {case_id!r}: name it as the "
                f"case ({case_id}{label}) to score it"
            )


def predict_tree(
    source: str | os.PathLike | Case,
    out: str | os.PathLike,
    segmenter: Segmenter,
    truth: str | os.PathLike | None = None,
    probabilities: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    brain_segmenter: Segmenter | None = None,
    strip: bool = False,
    resample: bool = False,
    part: tuple[int, int] | None = None,
    mask_file: str | os.PathLike | None = None,
) -> PredictResult:
    """Segment every case under ``source`` into ``out`` (mirroring it), skipping cases already done.

    ``source`` is a path (a case, a tree of cases, a BIDS dataset) or one :class:`Case` already
    read (e.g. from separately named sequence files). A BIDS dataset's masks go to a BIDS
    derivatives layout in ``out`` (``sub-<s>/[ses-<x>/]anat/<case>_desc-tumour_mask.nii.gz``, with
    ``dataset_description.json``); ``out`` may then be the dataset's own ``derivatives/<name>``.

    With ``brain_segmenter`` (an abnormality ``segmenter`` only) the paper's two-stage pipeline
    runs: see :func:`segment_within_brain`. With ``strip`` the skull-stripped image (every
    channel zeroed outside the predicted brain) is written, named like the input, under ``out/stripped_brain``
    (a brain model) or ``out/stripped`` (the two-stage pipeline: see :class:`PredictionFolder`). With
    ``resample``, a case's sequences on another grid than its FLAIR's are resampled onto it.
    ``part`` = (K, N) predicts part K (0-based) of N parts balanced by size (:func:`split_parts`), for N jobs
    writing into one ``out``. ``mask_file`` (one case only) takes its mask, ``out`` then holding the report alone.
    """
    given = source if isinstance(source, Case) else None
    source = given.geometry.source if given is not None else Path(source)
    _check_request(source, segmenter, brain_segmenter, strip)
    bids_root = source if given is None and is_bids_root(source) else None
    cases = [given] if given is not None else _refuse_run_names(index_cases(source), bids_root)
    paths = cases if given is not None else _cases_of_part(cases, part, Path(out), segmenter.task, overwrite)
    label = TASK_SPECS[segmenter.task].label_suffix
    truth_index = _truth_index(truth, label, cases, quiet)
    _check_headers(paths, label, truth_index, (segmenter, brain_segmenter), resample)
    inputs = _run_inputs(
        source, out, bids_root is not None, cases, _files_read(given, truth, segmenter, brain_segmenter)
    )
    out_path = check_output(out, inputs, overwrite=True, replaces=False)
    refuse_marked_above(out_path, "predict", itself=True)
    mask_file = _checked_mask_file(mask_file, inputs, source, out_path) if mask_file is not None else None
    report = run_report(out_path)
    names = PredictionFolder(out_path, segmenter.task, bids_root=bids_root, mask_file=mask_file)
    _check_case_outputs(names, report, cases, inputs)
    _refuse_foreign_report(report)
    settings = _run_settings(segmenter, brain_segmenter, resample=resample, probabilities=probabilities, strip=strip)
    run = _Run(segmenter, brain_segmenter, names, report, truth_index, settings, overwrite, probabilities, strip)
    _check_settings(run, paths, cases, quiet)
    predicted, skipped, failures = _predict_cases(run, paths, resample, quiet)
    title = f"Prediction of {source.name} by {segmenter.metadata.get('name', 'the model')}"
    if part is None and len(paths) == 1 and failures:
        _fail_lone_case(report, title, segmenter.task, failures[0][1])
    if bids_root is not None:  # after the cases: a refused lone case leaves no folder that passes for a derivative
        write_derivative_description(out_path)
    _check_settings(run, paths, cases, quiet=True)  # again: a part started with this one may have written since
    failures, cases = _failures_of_run(report, part, predicted, skipped, paths, failures, names.task)
    merged = merge_run_report(out_path, title, segmenter.task)
    _report_failures(failures, cases, report, segmenter.task)
    return dataclasses.replace(merged, predicted=predicted, skipped=skipped)


def _run_settings(segmenter: Segmenter, brain_segmenter: Segmenter | None, **flags: bool) -> dict[str, object]:
    """The settings a case record keeps (the models' and the run's ``flags``), which a rerun and the folder's other
    cases must share."""
    return segmenter.settings() | {"brain_model": brain_segmenter.settings() if brain_segmenter else None} | flags


def _fail_lone_case(report: ReportFolder, title: str, task: str, reason: str) -> None:
    """A lone case's failure (the run's only case, not a part of a larger run) is the run's error, with its reason;
    its old rows leave a report there is (none is made)."""
    if report.path.is_dir():
        merge_run_report(report.path.parent, title, task)
    raise InputError(reason)


def _cases_of_part(
    paths: list[Path], part: tuple[int, int] | None, out: Path, task: str, overwrite: bool
) -> list[Path]:
    """The cases of a tree, or those of part K of N (:func:`split_parts`), refused (unless ``overwrite``, which runs
    every part again) where another part's record of ``task`` in the output folder ``out`` names other cases than the
    tree deals that part now: the tree changed between the parts, and a case could fall in none."""
    if part is None:
        return paths
    dealt, report = split_parts(paths, part[1]), run_report(out)
    for k in [] if overwrite else _recorded_parts(report, part[1], task):
        now = sorted(case_id_of(path) for path in dealt[k]) if k < len(dealt) else []
        if k != part[0] and sorted(_read_part_record(report.part_record(k, part[1], task))["cases"]) != now:
            raise InputError(
                f"{report.part_record(k, part[1], task)} names other cases than the input deals --part "
                f"{k}/{part[1]} now (cases added, removed or changed since): delete the part records in "
                f"{report.part_record(k, part[1], task).parent} and run every part again (the cases done are reused)"
            )
    return dealt[part[0]] if part[0] < len(dealt) else []  # more parts than cases: this one has none


def _run_inputs(
    source: Path, out: str | os.PathLike, bids: bool, cases: Sequence[Path | Case], read: list[Path]
) -> InputPaths:
    """Everything the run reads, which no output may be, hold or lie in: the input tree (a BIDS dataset's but its
    ``derivatives``, where ``out`` is one of them), a lone volume's files, the files of the tree's ``cases`` that lie
    outside it (an nnU-Net case's label), and the files ``read`` besides."""
    derivatives = (source / "derivatives").resolve()
    if bids and Path(out).resolve().is_relative_to(derivatives):
        tree = [path for path in source.iterdir() if path.resolve() != derivatives]
    else:
        tree = input_files(source)
    images = [case for case in cases if isinstance(case, Path)] + ([source] if source.is_file() else [])
    tree += [label for image in images for label in nnunet_labels(image)]
    return InputPaths([*tree, *read])


def _check_case_outputs(
    names: PredictionFolder, report: ReportFolder, cases: Sequence[Path | Case], inputs: InputPaths
) -> None:
    """Refuse, before anything is written, an output that leads into an input or out of the output folder (a link in
    the output folder: a case's output, the report folder or one of its folders) or that two cases would share,
    whichever task wrote it: both tasks may write into one folder, and case ``P_brain``'s tumour probability map is
    named as case ``P``'s brain one.
    """
    inputs.refuse_folder(report.path, "the report folder")
    refuse_links_below(report.path, names.path)
    owners: dict[str, tuple[str, str]] = {}
    recorded = _recorded_spellings(report)
    for case in (path if isinstance(path, Case) else case_outline(path) for path in cases):
        _refuse_recorded_namesake(names, report, case.case_id)
        spelled = recorded.get(name_key(case.case_id), case.case_id)
        if spelled != case.case_id:
            raise InputError(
                f"case {case.case_id!r} and case {spelled!r}, which {names.path} records, have one id (compared "
                "regardless of case and of how accents are encoded): they would share an output; rename one, or "
                "predict into another folder"
            )
        for task in TASK_SPECS:
            folder = dataclasses.replace(names, task=task)
            for output in (*folder.outputs(case), report.gif(case.case_id, task)):
                if task == names.task:
                    inputs.refuse(output, f"case {case.case_id}'s output")
                    refuse_links_below(output, names.path)
                other, other_task = owners.setdefault(name_key(str(output)), (case.case_id, task))
                if other != case.case_id:
                    raise InputError(
                        f"the {TASK_SPECS[other_task].label} output of case {other!r} and the {TASK_SPECS[task].label}"
                        f" output of case {case.case_id!r} would both be {output} (one folder holds both tasks' "
                        "outputs; names compared regardless of case); rename one of the cases"
                    )


def _refuse_foreign_report(report: ReportFolder) -> None:
    """Refuse a report folder holding files flairseg has no sign of writing (no marker, no case's record: a user's own
    report.html or metrics.csv, which the run's would replace), even with --overwrite: the report would mark it as
    flairseg's, and a later --overwrite would replace it whole. An empty folder holds nothing to replace."""
    path = report.path
    if not (path.exists() or path.is_symlink()) or report.is_flairsegs():
        return
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return
    raise InputError(
        f"{path} is in the way of the run's report and flairseg has no record of writing it; move it away (flairseg "
        "writes its report only into a folder of its own)"
    )


def _check_settings(run: _Run, paths: Sequence[Path | Case], tree: Sequence[Path | Case], quiet: bool) -> None:
    """Refuse a run whose settings (model, threshold, TTA, precision, ...) differ from those a case of its task that the
    folder records and the run may not replace was predicted with (another part's, an earlier run's): the merged report
    would score two models' masks as one model's. Without ``--overwrite`` the run replaces none of them; with it, the
    cases of its input ``tree`` are the ones its parts replace (``paths`` being this part's), so the other parts'
    cases, still of the old settings until their part runs, are only named in a note. Checked before the run, and again
    before its report: parts started together may each have found the folder empty. A mask file's folder holds one
    case, which ``--overwrite`` replaces whatever its settings."""
    if run.names.mask_file is not None:
        return
    covered = {_case_id(path) for path in (tree if run.overwrite else paths)}
    clash = _settings_clash(run.report, run.settings, covered)
    if clash is not None:
        raise InputError(
            f"{clash}; use the same model and settings for every part and run into one folder (--overwrite replaces "
            "the cases of this run's input alone), or another output folder"
        )
    pending = _settings_clash(run.report, run.settings, {_case_id(path) for path in paths})
    if pending is not None and not quiet:
        print(f"note: {pending}: its part has not run again with these settings yet", file=sys.stderr)
    if not run.overwrite:
        _refuse_cases_made_otherwise(run, paths)


def _refuse_cases_made_otherwise(run: _Run, paths: Sequence[Path | Case]) -> None:
    """Refuse a run without --overwrite over a case of it that the folder records with other settings, before any case
    is written: reaching the case, the run would refuse it (:func:`~flairseg.provenance.check_reusable`, in the same
    words) after the cases before it were written."""
    for path in paths:
        case_id = _case_id(path)
        found = provenance.read_record(run.report.record(ReportFolder.key(case_id, run.names.task)))
        if found:
            provenance.refuse_made_otherwise(found, {"case": case_id, **run.settings}, run.names.path)


def _settings_clash(report: ReportFolder, settings: dict[str, object], covered: set[str]) -> str | None:
    """The first case of the task the folder records, outside ``covered``, whose record's settings differ from
    ``settings``, and how; None where there is none."""
    records = report.path / "records"
    for path in sorted(records.glob("*.json")) if records.is_dir() else []:
        found = provenance.read_record(path)
        if found.get("task") != settings["task"] or found.get("case") in covered:
            continue
        differs = provenance.differing_setting(found, settings)
        if differs is not None:
            key, before, now = differs
            where = report.path.parent
            return f"case {found.get('case')} in {where} was predicted with another {key} ({before}; this run: {now})"
    return None


def _recorded_spellings(report: ReportFolder) -> dict[str, str]:
    """{:func:`~flairseg.outputs.name_key` of a case id: the id} of the cases the report folder records (a record or a
    started file), of either task: one id spelled two ways names one file on macOS and Windows."""
    records = report.path / "records"
    found = records.iterdir() if records.is_dir() else ()
    cases = {ReportFolder.case_of_key(path.stem)[0] for path in found if path.suffix in (".json", ".started")}
    return {name_key(case_id): case_id for case_id in cases}


def _refuse_recorded_namesake(names: PredictionFolder, report: ReportFolder, case_id: str) -> None:
    """Refuse a case whose outputs named with its task's ``output_suffix`` (probability map, outline GIF) are named as
    those of a case that the folder records for the other task: case ``P_brain``'s tumour outputs against case
    ``P``'s brain ones, predicted from another tree."""
    name = case_id + TASK_SPECS[names.task].output_suffix
    for task, spec in TASK_SPECS.items():
        other = name.removesuffix(spec.output_suffix)
        key = other + spec.label_suffix
        if task == names.task or not name.endswith(spec.output_suffix):
            continue
        if report.record(key).exists() or report.started(key).exists():
            raise InputError(
                f"the {TASK_SPECS[names.task].label} outputs of case {case_id!r} would take the names of the "
                f"{spec.label} outputs of case {other!r} in {names.path} (probability map and outline GIF {name}); "
                "rename the case, or predict into another folder"
            )


def _files_read(
    given: Case | None, truth: str | os.PathLike | None, segmenter: Segmenter, brain_segmenter: Segmenter | None
) -> list[Path]:
    """The files a prediction reads besides its input tree: a case's named sequences, the truth, the models."""
    files = [path for _, path in provenance.source_files(given)] if given is not None else []
    files += [Path(truth)] if truth is not None else []
    for model in (segmenter, brain_segmenter):
        files += checkpoint.files_of(model.source) if model is not None else []
    return files


def _failures_of_run(
    report: ReportFolder,
    part: tuple[int, int] | None,
    predicted: int,
    skipped: int,
    paths: Sequence[Path | Case],
    failures: Sequence[tuple[str, str]],
    task: str,
) -> tuple[list[tuple[str, str]], int]:
    """The failed cases (case, reason) and the number of cases the report covers: this run's, or, for part K of N,
    those of every part done so far (the folder's, as one process would list them), this part's record written first.
    """
    if part is None:
        return list(failures), len(paths)
    _write_part_record(report, (*part, task), predicted, skipped, paths, failures)
    return _failures_of_parts(report, part[1], task)


def _write_part_record(
    report: ReportFolder,
    part: tuple[int, int, str],
    predicted: int,
    skipped: int,
    paths: Sequence[Path | Case],
    failures: Sequence[tuple[str, str]],
) -> None:
    """What part K of N (of a task: ``part`` is K, N and the task) did, beside the other parts' records: the merge
    counts every part, and lists every part's failed cases, from them."""
    cases = [p.case_id if isinstance(p, Case) else case_id_of(p) for p in paths]
    record = {"part": part[0], "parts": part[1], "predicted": predicted, "skipped": skipped, "cases": cases}
    record["failures"] = [list(failure) for failure in failures]
    with atomic_file(report.part_record(*part)) as tmp:
        tmp.write_text(json.dumps(record, indent=2))


def _failures_of_parts(report: ReportFolder, parts: int, task: str) -> tuple[list[tuple[str, str]], int]:
    """The failed cases (case, reason) that the parts of an N-part run done so far recorded, and their cases: the
    records there are, found by name (N may be far more than the cases, and most parts have none). A failed case that
    has a record (under its key: case id and ``task``) was predicted since by another run (a failure removes the
    case's record: :func:`_leave_out`), so its part's failure is stale and left out."""
    failures, cases = [], 0
    for k in _recorded_parts(report, parts, task):
        record = _read_part_record(report.part_record(k, parts, task))
        listed = [tuple(failure) for failure in record.get("failures", [])]
        failures += [failure for failure in listed if not report.record(ReportFolder.key(failure[0], task)).exists()]
        cases += len(record["cases"])
    return failures, cases


def _recorded_parts(report: ReportFolder, parts: int, task: str) -> list[int]:
    """The parts K of an N-part run of ``task`` whose records are in the report, in order."""
    suffix = re.escape(TASK_SPECS[task].output_suffix)
    name = re.compile(rf"part-(0|[1-9]\d*)-of-{parts}{suffix}\.json")
    found = (name.fullmatch(path.name) for path in report.part_record(0, parts).parent.glob("part-*.json"))
    return sorted(k for k in (int(match[1]) for match in found if match) if k < parts)


def _read_part_record(path: Path) -> dict:
    """A part record as :func:`_write_part_record` wrote it (its cases ids, its failures (case, reason) pairs), or a
    one-line InputError naming it."""
    record = read_json(path)
    cases = record.get("cases") if isinstance(record, dict) else None
    failures = record.get("failures", []) if isinstance(record, dict) else None
    pairs = isinstance(failures, list) and all(
        isinstance(f, list) and len(f) == 2 and all(isinstance(v, str) for v in f) for f in failures
    )
    if not (isinstance(cases, list) and all(isinstance(c, str) for c in cases) and pairs):
        raise InputError(f"{path} is not a part record flairseg wrote; delete it and run that part again")
    return record


def _check_request(source: Path, segmenter: Segmenter, brain_segmenter: Segmenter | None, strip: bool) -> None:
    """Refuse a missing input and model combinations that cannot give what was asked."""
    if not source.exists():
        raise InputError(f"input {source} does not exist")
    if brain_segmenter is not None and (segmenter.task != "abnormality" or brain_segmenter.task != "brain"):
        raise InputError("the two-stage pipeline needs an abnormality model and a brain model (--brain-model)")
    if strip and segmenter.task != "brain" and brain_segmenter is None:
        raise InputError("--strip needs a brain mask: predict with a brain model (--task brain) or add --brain-model")


def _predict_cases(
    run: _Run, paths: Sequence[Path | Case], resample: bool, quiet: bool
) -> tuple[int, int, list[tuple[str, str]]]:
    """Read (ahead, on an accelerator) and predict every case: how many were predicted and reused, and which failed
    (to read or to preprocess: :func:`_leave_out` takes them out of the report) with their reasons; one failed case
    does not stop the others.
    """
    from tqdm import tqdm

    predicted = skipped = 0
    failures: list[tuple[str, str]] = []
    read = functools.partial(read_case, masks="optional", mask_suffix=run.names.label, resample=resample)
    cases = _read_ahead(paths, read, ahead=run.segmenter.device.type != "cpu")
    for path, case in tqdm(cases, total=len(paths), desc="predict", unit="case", disable=quiet, file=sys.stderr):
        try:
            if isinstance(case, InputError):
                raise _CaseFailure(str(case))
            if _predict_case(run, case):
                predicted += 1
            else:
                skipped += 1
        except _CaseFailure as failure:  # anything else (a changed record, a file in the way, a full disk) stops
            case_id = case_id_of(path) if not isinstance(path, Case) else path.case_id
            failures.append((case_id, str(failure) + _leave_out(run, case_id)))
    return predicted, skipped, failures


def _leave_out(run: _Run, case_id: str) -> str:
    """Take a case that failed out of the report: its rows and figures of an earlier run are removed and its record
    gives way to the started file, so that its earlier outputs (masks, probability maps) are an interrupted case's:
    in no table, and replaced by the next run. What was done, in words, for its reason ('' where nothing was there).
    """
    if not run.report.path.is_dir():
        return ""  # no report: nothing of the case's in one
    key = ReportFolder.key(case_id, run.names.task)
    record = run.report.record(key)
    with _holding(run, key):
        earlier = [path for path in [record, *run.report.case_entries(case_id, run.segmenter.task)] if path.exists()]
        if record.exists():
            with atomic_file(run.report.started(key)) as tmp:
                tmp.write_text(
                    "failed after an earlier run; its outputs are that run's, and the next run replaces them\n"
                )
        for path in earlier:  # the record first: a run killed on the way leaves an interrupted case, never a reused one
            path.unlink()
    return "; its earlier outputs are left out of the report, and the next run predicts it again" if earlier else ""


class _CaseFailure(InputError):
    """What is wrong with one case of a tree (it cannot be read or preprocessed): listed, and the others go on."""


# the lock name of a mask-file run's one case (:func:`_holding`); a case's key ends in its task's label
_MASK_FILE_CASE = "mask-file"


@dataclass(frozen=True)
class _Run:
    """What every case of one prediction run shares."""

    segmenter: Segmenter
    brain_segmenter: Segmenter | None
    names: PredictionFolder
    report: ReportFolder
    truth_index: dict[str, Path]
    settings: dict[str, object]
    overwrite: bool
    probabilities: bool
    strip: bool


def _predict_case(run: _Run, case: Case) -> bool:
    """Segment one case and write everything about it, its record last; False when its record lets it be reused.

    The case is held (:func:`held_case`) while it is checked and written, not while it is segmented: a run that finds
    another process holding it waits, then decides afresh (the other may have finished it, or made it otherwise).
    """
    truth_mask = _given_truth(run, case) if case.case_id in run.truth_index else case.mask
    expected = provenance.record(run.settings, case, _labels_read(run, case))
    key = ReportFolder.key(case.case_id, run.names.task)
    if _finished(run, key):  # no prediction spent on a case done already
        with _holding(run, key):
            if _reused(run, case, expected, truth_mask, key):
                return False
    _refuse_foreign_outputs(run, case, key)
    try:
        found, brain = _segment(run, case)
    except InputError as error:
        raise _CaseFailure(str(error)) from None
    with _holding(run, key):
        if _reused(run, case, expected, truth_mask, key):  # another run finished it meanwhile
            return False
        _refuse_foreign_outputs(run, case, key)
        _write_case(run, case, found, brain, truth_mask, expected, key)
    return True


def _holding(run: _Run, key: str) -> contextlib.AbstractContextManager:
    """Hold the case ``key`` (:func:`held_case`) or, in a mask-file run, the report folder's one case: two runs of
    two cases into one mask file then write one after the other, and the second finds the first's mask and record."""
    return held_case(run.report, key if run.names.mask_file is None else _MASK_FILE_CASE)


def _finished(run: _Run, key: str) -> bool:
    """Whether the case has a record and no --overwrite asks for it again: a case to reuse, or refuse
    (:func:`_reused`), whether or not its mask is where this run would write it."""
    return not run.overwrite and run.report.record(key).exists()


def _reused(run: _Run, case: Case, expected: dict, truth_mask: np.ndarray | None, key: str) -> bool:
    """Whether the case's outputs are reused (:func:`_finished`, its record equal to ``expected``, the outputs it names
    this run's and as written; a record that differs, or an output changed since, stops the run, and one gone, or
    a row of the report, has the case predicted again): its metrics and figures follow the truth given now
    (:func:`_rescore_reused_case`), and a started file left beside the record is removed."""
    if not _finished(run, key):
        return False
    record = run.report.record(key)
    provenance.check_reusable(record, expected, run.names.path)
    if not provenance.check_outputs(record, _case_outputs(run, case), run.names.path, case.case_id):
        return False
    if not all(path.is_file() for path in _case_rows(run, key)):
        return False  # rows gone (a partial copy of the folder): predicted again, never left out of the tables
    run.report.started(key).unlink(missing_ok=True)  # left by a run killed between the record and its removal
    _rescore_reused_case(run, case, truth_mask, key)
    return True


def _write_case(
    run: _Run,
    case: Case,
    found: Segmentation,
    brain: np.ndarray | None,
    truth_mask: np.ndarray | None,
    expected: dict,
    key: str,
) -> None:
    """The case's outputs, rows and record. The started file comes first and the old record goes before the outputs it
    names change: a run stopped on the way leaves an interrupted case, which the next run predicts again, never
    a record over a mix of two runs' outputs."""
    with atomic_file(run.report.started(key)) as tmp:  # from here on, the case's outputs are flairseg's
        tmp.write_text("being predicted; its record replaces this file\n")
    dropped = _dropped_outputs(run, case, key)
    if run.report.record(key).exists():  # the merged report describes the outputs about to be replaced
        _drop_merged_report(run.report, run.names.task)
    run.report.record(key).unlink(missing_ok=True)
    _remove_outputs(dropped, run.names.path)
    _forget_other_cases(run, key)
    if run.strip:
        # volumes: the FLAIR
        image = case.image if case.geometry.format == "kaggle" or case.image.shape[-1] == 1 else case.image[..., 1:2]
        write_image(case, strip_skull(image, brain), run.names.stripped(case))
    if found.probability is not None:
        _write_probability(case, found.probability, run.names.probability(case))
    _write_case_report(run, case, found, truth_mask, key)
    write_mask(case, found.mask, run.names.mask(case), suffix=run.names.label)
    # last: a case with a record has every output, and a rerun may reuse it while they are as written
    outputs = provenance.output_entries(run.names.path, _case_outputs(run, case))
    with atomic_file(run.report.record(key)) as tmp:
        tmp.write_text(json.dumps(expected | {"outputs": outputs}, indent=2))
    run.report.started(key).unlink(missing_ok=True)


_MERGED_TABLES = ("inputs", "qc", "components")  # the run's tables merged from its cases' own, both tasks' rows


def _drop_merged_report(report: ReportFolder, task: str) -> None:
    """Remove the run's merged tables, ``task``'s scores and report.html, which the end of the run merges again: a run
    stopped after it replaced a case leaves no report that describes the case's old outputs."""
    merged = [*report.all_scores(task), *(report.table(name) for name in _MERGED_TABLES), report.html]
    for path in merged:
        path.unlink(missing_ok=True)


def _given_truth(run: _Run, case: Case) -> np.ndarray:
    """The case's mask in the ``--truth`` tree, read before anything of the case is written and refused unless it lies
    on the image's voxels (:func:`~flairseg.cases.check_same_grid`, the rule ``evaluate`` applies): a mask of the
    image's shape on another grid, or TIFF slices against a volume, would be scored voxel by voxel all the same. Its
    headers, and the grid they declare, passed before the run (:func:`_check_headers`); checked again on what was
    read, where a DICOM series' grid and TIFF slices' shapes are first known. A truth that fails to read now (its
    voxels) is the case's failure, listed, and the other cases go on."""
    try:
        truth = read_mask(run.truth_index[case.case_id], run.names.label, "truth")
    except InputError as error:
        raise _CaseFailure(str(error)) from None
    check_same_grid(case.case_id, case, truth, "image")
    return truth.mask  # type: ignore[return-value]


def _dropped_outputs(run: _Run, case: Case, key: str) -> list[Path]:
    """The outputs the case's old record names that it writes no more (a Kaggle case's slices it has lost; a case of
    another layout, or on another mask file, that had its id), to remove so that the folder holds its new outputs and
    nothing older: those inside the output folder (a mask file beside it is the user's to remove)."""
    now = {path.resolve() for _, path in _case_outputs(run, case)}
    recorded = provenance.recorded_outputs(run.report.record(key))
    if recorded is None:  # an older flairseg's record: the outputs of the Kaggle slices it lists
        return [path for path in _slice_outputs(run, case, key) if path.resolve() not in now]
    inside = (Path(entry["file"]) for entry in recorded)
    paths = (run.names.path / file for file in inside if not file.is_absolute() and ".." not in file.parts)
    return [path for path in paths if path.resolve() not in now]


def _slice_outputs(run: _Run, case: Case, key: str) -> list[Path]:
    """The mask (and stripped) slices a Kaggle case's record written by an older flairseg was predicted into."""
    if case.geometry.format != "kaggle":
        return []
    names = sorted(provenance.recorded_slices(run.report.record(key)))
    masks = [run.names.mask(case) / f"{name.rsplit('.', 1)[0]}{run.names.label}.tif" for name in names]
    return masks + ([run.names.stripped(case) / name for name in names] if run.strip else [])


def _remove_outputs(paths: Sequence[Path], folder: Path) -> None:
    """Remove ``paths`` and then the folders under ``folder`` they leave empty (a Kaggle case's folder), so that no
    empty case folder is left to be read as a case."""
    for path in paths:
        path.unlink(missing_ok=True)
    for parent in sorted({path.parent for path in paths}, key=lambda p: len(p.parts), reverse=True):
        if parent != folder and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def _other_cases(run: _Run, key: str) -> list[str]:
    """The keys of the cases other than ``key`` with a record or started file in a mask-file run's report folder,
    which holds one case (its mask file's): none in a folder of cases."""
    if run.names.mask_file is None or not (run.report.path / "records").is_dir():
        return []
    found = {path.stem for path in (run.report.path / "records").iterdir() if path.suffix in (".json", ".started")}
    return sorted(found - {key})


def _forget_other_cases(run: _Run, key: str) -> None:
    """Remove, in a mask-file run, the record, started file and report entries of every other case (refused unless
    --overwrite where one has a record: :func:`_refuse_foreign_outputs`), so that no record outlives the mask it names
    and the report is the mask file's case alone."""
    for other in _other_cases(run, key):
        case_id, task = ReportFolder.case_of_key(other)
        for path in (run.report.record(other), run.report.started(other), *run.report.case_entries(case_id, task)):
            path.unlink(missing_ok=True)


def _refuse_foreign_outputs(run: _Run, case: Case, key: str) -> None:
    """Refuse to write over a file (or folder) where the case's outputs go (its mask, probability map and stripped
    image: each task's own names) that flairseg has no record of writing, --overwrite or not: one the case's record
    under ``key`` does not name (any, where there is no record or started file); and, in a mask-file run without
    --overwrite, over the report of another case that the folder records (its mask file's, or that of ``NAME.nii``
    where this is ``NAME.nii.gz``: they share ``NAME_flairseg``)."""
    recorded = [other for other in _other_cases(run, key) if run.report.record(other).exists()]
    if recorded and not run.overwrite:
        other = ReportFolder.case_of_key(recorded[0])[0]
        raise InputError(
            f"{run.names.path} holds the report of case {other}, which the report of case "
            f"{case.case_id} (mask {run.names.mask_file}) would replace; pass --overwrite to replace it, or give -o "
            "another name"
        )
    own = run.report.record(key).exists() and provenance.recorded_outputs(run.report.record(key)) is not None
    if not own and (run.report.record(key).exists() or run.report.started(key).exists()):
        return  # a run that began and did not finish, or an older flairseg's record, which names no outputs
    known = _outputs_recorded(run, [key]) if own else set()  # what the case's record says flairseg wrote
    known |= _outputs_recorded(run, recorded) if run.overwrite else set()  # a mask file another case's record names
    paths = [path for _, path in _case_outputs(run, case) if os.path.normpath(path) not in known]
    found = [path for path in paths if path.exists() or path.is_symlink()] + _files_as_folders(paths, run.names.path)
    if found:
        raise InputError(
            f"{found[0]} is in the way of case {case.case_id}'s output and flairseg has no record of writing it; "
            "move it away"
        )


def _files_as_folders(paths: Sequence[Path], out: Path) -> list[Path]:
    """What lies where a folder of ``paths`` in ``out`` goes (a Kaggle case's mask folder) and is no folder: a user's
    file named as the case."""
    folders = {folder for path in paths for folder in path.parents if folder.is_relative_to(out) and folder != out}
    return sorted(folder for folder in folders if (folder.exists() or folder.is_symlink()) and not folder.is_dir())


def _outputs_recorded(run: _Run, keys: Sequence[str]) -> set[str]:
    """The paths (normalised) of the outputs that the records of the cases ``keys`` name."""
    entries = (provenance.recorded_outputs(run.report.record(key)) or [] for key in keys)
    return {os.path.normpath(run.names.path / entry["file"]) for listed in entries for entry in listed}


def _case_rows(run: _Run, key: str) -> list[Path]:
    """The case's rows that every prediction writes, one each: its inputs and QC (its components and metrics have none
    where it has no component or no truth)."""
    return [run.report.case_table(table, key) for table in ("inputs", "qc")]


def _case_outputs(run: _Run, case: Case) -> list[tuple[str, Path]]:
    """Every file (role, path) the run writes for the case: its mask (a Kaggle case's slices), probability map and
    skull-stripped image (a Kaggle case's slices), as asked."""
    outputs = [("mask", path) for path in mask_files(case, run.names.mask(case), run.names.label)]
    outputs += [("probability", run.names.probability(case))] if run.probabilities else []
    if run.strip:
        stripped = run.names.stripped(case)
        slices = [stripped / name for name in case.geometry.slice_names] if case.geometry.format == "kaggle" else []
        outputs += [("stripped", path) for path in slices or [stripped]]
    return outputs


def _segment(run: _Run, case: Case) -> tuple[Segmentation, np.ndarray | None]:
    """The case's segmentation and its brain mask (None where neither the model nor the case gives one)."""
    segmenter = run.segmenter
    if run.brain_segmenter is not None:
        return segment_within_brain(segmenter, run.brain_segmenter, case, with_probability=run.probabilities)
    brain = read_label(case, "_brain") if _labels_read(run, case) else None
    found = segmenter(case, brain=brain, with_probability=run.probabilities)
    return found, found.mask if segmenter.task == "brain" else brain


def _labels_read(run: _Run, case: Case) -> list[tuple[str, Path]]:
    """The label files (role, path) the prediction of ``case`` reads as the model's input (:func:`_suffixes_read`)."""
    suffixes = _suffixes_read(run.segmenter, run.brain_segmenter)
    return [(suffix.strip("_"), path) for suffix in suffixes for path in label_files(case, suffix)]


def _suffixes_read(segmenter: Segmenter, brain_segmenter: Segmenter | None) -> tuple[str, ...]:
    """The label stacks beside a case that the model reads as its input: the case's own brain (``_brain``) for a
    model trained on skull-stripped input (``paper-abnormality``), unless a brain model predicts it."""
    if brain_segmenter is not None or segmenter.preprocess.variant != "paper-abnormality":
        return ()
    return ("_brain",)


def _write_case_report(run: _Run, case: Case, found: Segmentation, truth_mask: np.ndarray | None, key: str) -> None:
    """The case's rows (metrics, inputs, QC, components) and figures in the run's report folder."""
    from flairseg.evaluate import write_case_table

    report, task = run.report, run.segmenter.task
    _write_case_metrics(case, found.mask, truth_mask, key, report.path)
    _draw_case_figures(run, case, found.mask, truth_mask, key)
    inputs = input_rows(case, run.segmenter)
    write_case_table("inputs", key, inputs, report.path)
    flair_only = inputs[0].get("substituted") == "pre post"
    write_case_table("qc", key, [qc.row(case, found.mask, task, found.components, flair_only)], report.path)
    if TASK_SPECS[task].components:
        write_case_table("components", key, component_rows(case, found.components), report.path)


def _rescore_reused_case(run: _Run, case: Case, truth_mask: np.ndarray | None, key: str) -> None:
    """A reused case's metrics against the truth given now, and its figures redrawn where they outline another (the
    truth changed, came or went since they were drawn) or are gone: its mask and image are the recorded ones, its
    truth is not."""
    redraw = _drawn_truth(run.report, key) != _truth_digest(truth_mask)
    redraw = redraw or not _figures_there(run, case, truth_mask, key)
    reread = truth_mask is not None or redraw
    done = read_case(run.names.mask(case), masks="only", mask_suffix=run.names.label).mask if reread else None
    _write_case_metrics(case, done, truth_mask, key, run.report.path)
    if redraw:
        _draw_case_figures(run, case, done, truth_mask, key)


def _figures_there(run: _Run, case: Case, truth_mask: np.ndarray | None, key: str) -> bool:
    """Whether the case's montage, and its outline GIF where it has a truth, are in the report (a partial copy of the
    folder loses them: its page would show the case without an overlay)."""
    gif = run.report.gif(case.case_id, run.segmenter.task)
    return run.report.montage(key).is_file() and (truth_mask is None or gif.is_file())


def _draw_case_figures(run: _Run, case: Case, mask: np.ndarray | None, truth_mask: np.ndarray | None, key: str) -> None:
    """The case's outline GIF (none without a truth: an earlier one goes) and montage, then the digest of the truth
    they outline (:meth:`~flairseg.outputs.ReportFolder.drawn_truth`), last, so that a rerun tells what they show."""
    from flairseg import figures

    report, gif = run.report, run.report.gif(case.case_id, run.segmenter.task)
    if truth_mask is not None:
        figures.outline_gif(case.flair, truth_mask, mask, gif)
    else:
        gif.unlink(missing_ok=True)
    # processing layout: columns run patient right to left
    sides = ("R", "L") if case.geometry.affine is not None else None
    figures.tumour_montage(case.flair, truth_mask, mask, report.montage(key), sides=sides)
    with atomic_file(report.drawn_truth(key)) as tmp:
        tmp.write_text(_truth_digest(truth_mask) + "\n")


def _truth_digest(truth_mask: np.ndarray | None) -> str:
    """What tells one truth mask from another: the sha256 of its shape and voxels; 'none' without one."""
    if truth_mask is None:
        return "none"
    digest = hashlib.sha256(repr(truth_mask.shape).encode())
    digest.update(np.packbits(np.asarray(truth_mask, dtype=bool)).tobytes())
    return digest.hexdigest()


def _drawn_truth(report: ReportFolder, key: str) -> str | None:
    """The digest of the truth the case's figures outline; None where no run wrote it (figures of an older version:
    unknown, so redrawn)."""
    try:
        return report.drawn_truth(key).read_text().strip()
    except OSError:
        return None


def _read_ahead(
    paths: Sequence[Path | Case], read: Callable[[Path], Case], ahead: bool = True
) -> Iterator[tuple[Path | Case, Case | InputError]]:
    """Each path with its case, or the InputError reading it raised. With ``ahead``, the next case is read in a
    background thread while the caller works on this one, so decoding overlaps a GPU's work (two cases in memory
    at most); on a CPU the network's threads have the cores already (no gain measured: README, "Running at scale")."""

    def load(path: Path | Case) -> Case | InputError:
        if isinstance(path, Case):
            return path
        try:
            return read(path)
        except InputError as exc:
            return exc

    if not ahead:
        yield from ((path, load(path)) for path in paths)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flairseg-read") as pool:
        pending = pool.submit(load, paths[0]) if paths else None
        for index, path in enumerate(paths):
            case = pending.result()
            pending = pool.submit(load, paths[index + 1]) if index + 1 < len(paths) else None
            yield path, case


def _write_case_metrics(case: Case, mask: np.ndarray | None, truth: np.ndarray | None, key: str, report: Path) -> None:
    """The case's metrics row against its truth (none without truth), kept in ``report/metrics/`` until the report
    merges them.
    """
    from flairseg.evaluate import write_case_table

    rows = [case_metrics(case.case_id, mask, truth, case.geometry.spacing).as_row()] if truth is not None else []
    write_case_table("metrics", key, rows, report)


def _report_failures(failures: Sequence[tuple[str, str]], cases: int, report: ReportFolder, task: str) -> None:
    """``report/failures.csv`` (``failures_brain.csv`` for brain cases: case, reason), the run's failures and those
    listed before of cases still unfinished that it did not read (a run of some of the folder's cases, or of the
    other task, leaves them listed), and a one-line error naming the cases of this run that failed; none: no file."""
    import csv

    path = report.failures(task)
    failed = {case for case, _ in failures}
    kept = [
        (case, reason)
        for case, reason in _listed_failures(path)
        if case not in failed and not report.record(ReportFolder.key(case, task)).exists()
    ]
    if not failures and not kept:
        path.unlink(missing_ok=True)  # every case listed was predicted since: no stale list behind
        return
    with atomic_file(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "reason"])
        writer.writerows([*failures, *kept])
    if not failures:
        return
    names = ", ".join(case for case, _ in failures[:5]) + (", ..." if len(failures) > 5 else "")
    others = "the others were predicted; " if len(failures) < cases else ""
    raise InputError(
        f"{len(failures)} of {cases} cases could not be read or predicted ({names}); {others}the reasons are in {path}"
    )


def _listed_failures(path: Path) -> list[tuple[str, str]]:
    """The (case, reason) rows of a failures table an earlier run wrote; none where it is missing or unreadable."""
    import csv

    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return [(row[0], row[1]) for row in rows[1:] if len(row) == 2]


def mask_files(case: Case, target: Path, suffix: str) -> list[Path]:
    """The files of the case's mask at ``target``: the volume, or every slice's ``<slice><suffix>.tif``."""
    if case.geometry.format != "kaggle":
        return [target]
    return [target / f"{name.rsplit('.', 1)[0]}{suffix}.tif" for name in case.geometry.slice_names]


def merge_run_report(out: Path, title: str, task: str) -> PredictResult:
    """The run's tables, ``task``'s scores and report.html from every case's own rows in ``out/report``, whichever
    process or part wrote them; the result's counts of predicted and skipped cases are left at 0 for the caller.

    A folder may hold both tasks' predictions: the tables list both (each row with its task), while the scores
    (:meth:`ReportFolder.scores`) and the result's metrics and counts cover ``task``'s cases alone.
    """
    from flairseg.evaluate import merge_case_tables, read_case_tables, write_report
    from flairseg.html_report import write_html_report

    folder = run_report(out)
    report = folder.path
    mark_folder(report, "prediction report")  # the report's files are flairseg's: a later run writes over them
    rows = [CaseMetrics.from_row(row) for row in read_case_tables("metrics", report, TASK_SPECS[task].label_suffix)]
    tables = merge_case_tables(_MERGED_TABLES, report)
    inputs, qc = ([row for row in tables[name] if row["task"] == task] for name in ("inputs", "qc"))
    substituted = sum(row.get("substituted", "none") != "none" for row in inputs)
    flagged = sum(row["flags"] != "none" for row in qc)
    # the components table: the tumour task's alone
    removed = sum(row["kept"] == "no" for row in tables["components"]) if TASK_SPECS[task].components else 0
    if rows:
        write_report(rows, report, title, task=task)
    else:  # no case of the task is scored now: earlier scores would count cases that no longer are
        for path in folder.all_scores(task):
            path.unlink(missing_ok=True)
    write_html_report(report, title)
    return PredictResult(0, 0, out, rows, removed, substituted, flagged, title, task)


def split_parts(paths: Sequence[Path], parts: int) -> list[list[Path]]:
    """Cases dealt into ``parts`` lists of about equal work (largest first, each to the lightest part so far); only
    as many lists as there are cases (the parts after them would be empty), so a huge ``parts`` costs nothing.

    Deterministic: the same tree gives the same parts in every job.
    """
    from flairseg.io import case_size

    if parts < 1:
        raise InputError(f"the number of parts must be at least 1, not {parts}")
    sizes = {path: case_size(path) for path in paths}
    used = max(1, min(parts, len(sizes)))
    dealt: list[list[Path]] = [[] for _ in range(used)]
    load = [0] * used
    for path in sorted(paths, key=lambda p: (-sizes[p], case_id_of(p))):
        lightest = load.index(min(load))
        dealt[lightest].append(path)
        load[lightest] += sizes[path]
    return [sorted(group, key=case_id_of) for group in dealt]


def _refuse_run_names(cases: dict[str, Path], bids_root: Path | None) -> list[Path]:
    """The cases of a tree (case id -> path, ids unique: :func:`~flairseg.io.index_cases`), refusing an id the run's
    own files use (compared as a file system that ignores case does) and, in a BIDS dataset (``bids_root``), a case
    its derivatives layout cannot name (:func:`_refuse_bids_misfit`)."""
    for case_id, path in cases.items():
        if name_key(case_id) in RUN_NAMES:
            raise InputError(f"case {path} is named {case_id!r}, which the run's own outputs use; rename it")
        if bids_root is not None:
            _refuse_bids_misfit(path, bids_root)
    return list(cases.values())


def _refuse_bids_misfit(path: Path, root: Path) -> None:
    """Refuse a case of the BIDS dataset ``root`` whose mask the derivatives layout would misplace: a case folder
    (Kaggle slices, a DICOM series: its mask would be a folder named as a NIfTI file) and a volume in a folder named
    as one of the run's own (``report/``: its mask would land in the run's report)."""
    if path.is_dir():
        raise InputError(
            f"{path} is a case folder of slices inside the BIDS dataset {root}, whose derivatives name NIfTI masks; "
            "convert it to NIfTI (e.g. with dcm2niix) or give it as an input of its own"
        )
    taken = next((part for part in path.parent.relative_to(root).parts[:1] if name_key(part) in RUN_NAMES), None)
    if taken is not None:
        raise InputError(
            f"case {path} lies in a folder named {taken!r}, which the run's own outputs use; rename the folder"
        )


def is_bids_root(path: Path) -> bool:
    """A BIDS dataset: a folder with ``dataset_description.json`` and ``sub-*`` folders."""
    return path.is_dir() and (path / "dataset_description.json").is_file() and any(path.glob("sub-*"))


def write_derivative_description(out: Path) -> None:
    """The ``dataset_description.json`` that makes ``out`` a BIDS derivatives dataset."""
    from flairseg.version import __version__

    if (out / "dataset_description.json").exists():  # a derivatives folder shared with others keeps its own
        return
    record = {
        "Name": "flairseg segmentations",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "flairseg", "Version": __version__}],
    }
    with atomic_file(out / "dataset_description.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2))


def input_rows(case: Case, segmenter: Segmenter) -> list[dict[str, object]]:
    """The file behind each channel the model read, and which were substituted (an abnormality model's pre/post)."""
    record = {
        role: value
        if value == "copy of FLAIR"
        else Path(value.removesuffix(provenance.RESAMPLED)).name
        + (provenance.RESAMPLED if value.endswith(provenance.RESAMPLED) else "")
        for role, value in case.sequences
    }
    if not record and case.geometry.format == "kaggle":
        record = (
            {"pre": "TIFF channel 1", "flair": "TIFF channel 2", "post": "TIFF channel 3"}
            if case.image.shape[-1] == 3
            else {"flair": "TIFF"}
        )
    row = {"case": case.case_id, "task": segmenter.task, "flair": record.get("flair", case.geometry.source.name)}
    if segmenter.task == "abnormality":
        stand_in = "copy of FLAIR" if segmenter.preprocess.missing == "copy-flair" else segmenter.preprocess.missing
        row |= {"pre": record.get("pre", stand_in), "post": record.get("post", stand_in)}
        row["substituted"] = " ".join(k for k in ("pre", "post") if row[k] in (stand_in, "copy of FLAIR")) or "none"
    return [row]


def component_rows(case: Case, components: Sequence[Component]) -> list[dict[str, object]]:
    """One row per connected component (largest first): voxels, mL when the spacing is known, probabilities, kept."""
    voxel_ml = None if case.geometry.spacing is None else float(np.prod(case.geometry.spacing)) / 1000.0
    return [
        {
            "case": case.case_id,
            "component": index,
            "voxels": c.voxels,
            "volume_ml": "" if voxel_ml is None else f"{c.voxels * voxel_ml:.4g}",
            "peak_probability": f"{c.peak:.4f}",
            "summed_probability": f"{c.mass:.6g}",
            "kept": "yes" if c.kept else "no",
        }
        for index, c in enumerate(components, start=1)
    ]


def _write_probability(case: Case, probability: np.ndarray, path: Path) -> None:
    if case.geometry.format == "kaggle":
        import tifffile

        with atomic_file(path) as tmp:
            tifffile.imwrite(tmp, probability.astype(np.float32), photometric="minisblack")
    else:
        from flairseg.volumes import write_volume_mask

        write_volume_mask(case, probability, path, probability=True)
