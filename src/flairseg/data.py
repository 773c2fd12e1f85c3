"""Training and inference data: patient-level splits, cases turned into model inputs, slice sampling.

A case becomes model input in one place, :func:`prepare_case`, used by training,
validation and prediction alike: channels for the task, the preprocessing variant,
the scalar standardisation, and (skull stripping) neighbouring slices as channels.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from flairseg.cases import Case, patient_id
from flairseg.config import SAMPLINGS, SCHEMES, PreprocessConfig, parse_json
from flairseg.errors import ConfigError, InputError
from flairseg.io import case_files
from flairseg.preprocess import SpatialTransform, preprocess_case, resized_plane, substitute_missing
from flairseg.provenance import changed_file, file_entry

DATA_FILE = "data.json"  # in a run folder: the files of the cases it trains and validates on, as it found them


@dataclass(frozen=True)
class Split:
    """Patient-level split: the test fold is never used for training or model selection."""

    scheme: str
    folds: int
    fold: int
    seed: int
    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]


def institution(case_id: str) -> str:
    """The acquiring institution of a TCGA case id (``TCGA_CS_4941_19960909`` -> ``CS``), else ``""``."""
    parts = case_id.split("_")
    return parts[1] if len(parts) > 2 and parts[0] == "TCGA" else ""


def make_split(
    case_ids: Sequence[str],
    scheme: str = "kfold",
    folds: int = 5,
    fold: int = 0,
    validation_cases: int = 10,
    seed: int = 0,
) -> Split:
    """Seeded patient-level folds, spread over institutions; validation drawn from the training folds. A patient's
    cases (TCGA ids of one patient, scanned on several dates) fall in one fold and one role, so that no test patient
    is seen in training; other ids are each their own patient. ``validation_cases`` counts patients (with all their
    cases): one case each but for TCGA patients scanned more than once.

    ``paper22`` is the paper's scheme: 22 folds (of 5 patients with 110 cases).
    """
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown split scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    folds = 22 if scheme == "paper22" else folds
    ids = sorted(set(case_ids))
    if len(ids) != len(case_ids):
        raise InputError("case ids must be unique")
    if folds < 2 or len(ids) < folds:
        raise InputError(f"{len(ids)} cases cannot make {folds} folds; use fewer folds or more cases")
    if not 0 <= fold < folds:
        raise ConfigError(f"fold must be in 0..{folds - 1}, not {fold}")
    scans: dict[str, list[str]] = defaultdict(list)  # a patient's cases (TCGA: one per scan date) stay together
    for case_id in ids:
        scans[patient_id(case_id)].append(case_id)
    if len(scans) < folds:
        raise InputError(f"{len(scans)} patients cannot make {folds} folds; use fewer folds or more cases")
    dealt = _dealt_patients(sorted(scans), seed)
    assignment = {patient: index % folds for index, patient in enumerate(dealt)}
    test = tuple(sorted(c for c in ids if assignment[patient_id(c)] == fold))
    rest = [patient for patient in dealt if assignment[patient] != fold]
    if not 0 <= validation_cases < len(rest):
        raise InputError(
            f"cannot keep {validation_cases} validation patients (validation_cases) out of {len(rest)} training "
            "patients; ask for fewer"
        )
    chosen = rest[:: max(1, len(rest) // validation_cases)][:validation_cases] if validation_cases else []
    validation = tuple(sorted(c for patient in chosen for c in scans[patient]))
    train = tuple(sorted(c for patient in rest for c in scans[patient] if c not in validation))
    return Split(scheme, folds, fold, seed, train, validation, test)


def _dealt_patients(patients: Sequence[str], seed: int) -> list[str]:
    """The patients in the order folds are dealt: institution by institution, shuffled within each (seeded)."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = defaultdict(list)
    for patient in patients:
        groups[institution(patient)].append(patient)
    dealt: list[str] = []
    for name in sorted(groups):
        members = list(groups[name])
        rng.shuffle(members)
        dealt.extend(members)
    return dealt


def save_split(split: Split, path: str | os.PathLike) -> None:
    Path(path).write_text(json.dumps(asdict(split), indent=2))


def load_split(path: str | os.PathLike) -> Split:
    """A split written by :func:`save_split`, checked: every field, lists of case ids, at least one training case,
    none listed twice or in two parts (a validation or test case trained on would leak)."""
    values = read_json(path)
    names = list(Split.__dataclass_fields__)
    if not isinstance(values, dict) or sorted(values) != sorted(names):
        raise InputError(f"{path} is not a split record (a JSON object of {', '.join(names)})")
    for part in ("train", "validation", "test"):
        if not isinstance(values[part], list) or not all(isinstance(c, str) for c in values[part]):
            raise InputError(f"{path}: {part} is not a list of case ids")
    listed = values["train"] + values["validation"] + values["test"]
    twice = sorted({c for c in listed if listed.count(c) > 1})
    if twice:
        raise InputError(f"{path} lists case {twice[0]!r} twice (each case belongs to one of train, validation, test)")
    if not values["train"]:
        raise InputError(f"{path} has no training case")
    return Split(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def read_json(path: str | os.PathLike) -> object:
    """The JSON value in ``path``, or an InputError naming the file."""
    try:
        return parse_json(Path(path).read_text())
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{path} is not valid JSON") from None


def data_record(paths: Mapping[str, Path]) -> dict[str, list[dict]]:
    """Each case's files (name, size, modification time, sha256) by case id: what a run records of its data."""
    return {case_id: [file_entry("file", p) for p in case_files(paths[case_id])] for case_id in sorted(paths)}


def refuse_lost_record(run: Path, name: str, since: str, what: str) -> None:
    """Refuse a run without its record ``name`` (``what`` it records) whose last checkpoint records ``since``: every
    run has written both since checkpoints began recording ``since``, so the record was lost, and what it guards
    (the data, the starting weights) would go unchecked from now on. Older runs, without either, pass."""
    last = run / "last.json"
    record = read_json(last) if last.is_file() and not (run / name).is_file() else None
    if isinstance(record, dict) and since in record:
        raise InputError(f"{run} lacks {name}, {what}; restore it, or train the run again with --overwrite")


def check_data(run: Path, paths: Mapping[str, Path]) -> None:
    """Refuse when a case that ``run`` trained or validated on (its :data:`DATA_FILE`) is missing from ``paths``
    (case id -> path) or changed since: a model resumed or reused would rest on data that are no longer there. Files
    are compared by their contents (sha256), as predict's records are: a file rewritten with its size and time kept
    (``cp -p``, ``rsync -t``) is a change. Every file is read again each time, a cost small beside the training it
    guards (a run reads each case once per epoch); a run made before runs recorded their data passes.
    """
    if not (run / DATA_FILE).is_file():
        refuse_lost_record(run, DATA_FILE, "recipe", "the record of the data it was trained on")
        return
    recorded = read_json(run / DATA_FILE)
    if not isinstance(recorded, dict):
        raise InputError(f"{run / DATA_FILE} is not a record of the run's data (a JSON object of cases)")
    _check_recorded_cases(run, recorded)
    for case_id, entries in recorded.items():
        if case_id not in paths:
            raise InputError(
                f"case {case_id}, which {run} was trained on, is not in the data; restore it, or train "
                "again into a new folder"
            )
        change = changed_file(entries, [file_entry("file", p) for p in case_files(paths[case_id])])
        if change is not None:
            raise InputError(
                f"case {case_id} changed since {run} was trained on it ({change}); restore the data it was trained "
                "on, or train again into a new folder"
            )


def _check_recorded_cases(run: Path, recorded: Mapping[str, object]) -> None:
    """Refuse a data record whose cases are not exactly those ``run`` trains and validates on (its split.json): only
    the cases it lists are compared, so one that lost some (or all, ``{}``) would let those change unchecked."""
    split = load_split(run / "split.json")
    if set(recorded) != set(split.train + split.validation):
        raise InputError(
            f"{run / DATA_FILE} is not the record of the run's data (the {len(split.train + split.validation)} "
            "training and validation cases of its split.json); restore it, or train again into a new folder"
        )


@dataclass(frozen=True)
class Prepared:
    """A case as the model sees it, and what is needed to map its predictions back.

    Attributes:
        inputs: (S', C_in, size, size) float32 model inputs.
        target: (S', size, size) bool labels in model space, or None.
        transform: maps model-space masks back to the case's grid.
        truth: (S, H, W) bool labels on the case's own grid, or None.
    """

    case_id: str
    inputs: np.ndarray
    target: np.ndarray | None
    transform: SpatialTransform
    truth: np.ndarray | None


def task_channels(case: Case, task: str, missing: str = "copy-flair") -> np.ndarray:
    """The channels a task reads: FLAIR alone (brain) or pre/FLAIR/post (abnormality)."""
    image = case.image
    if image is None:
        raise InputError(f"case {case.case_id} has no image")
    channels = image.shape[-1]
    if channels not in (1, 3):
        raise InputError(f"case {case.case_id} has {channels} channels; expected 1 (FLAIR) or 3 (pre, FLAIR, post)")
    flair = case.flair
    if task == "brain":
        return flair[..., None]
    if channels == 3:
        return image
    return substitute_missing({"pre": None, "flair": flair, "post": None}, policy=missing)


def neighbour_slices(volume: np.ndarray, fill: float, reach: int = 1) -> np.ndarray:
    """(S, H, W) -> (S, 2 * reach + 1, H, W): the slices from ``reach`` below to ``reach`` above each slice (the
    slice itself in the middle), ``fill`` past the ends."""
    edge = np.full((reach, *volume.shape[1:]), fill, dtype=volume.dtype)
    padded = np.concatenate([edge, volume, edge])
    count = len(volume)
    return np.stack([padded[k : k + count] for k in range(2 * reach + 1)], axis=1)


def model_inputs(image: np.ndarray, task: str, preprocess: PreprocessConfig, fill: float) -> np.ndarray:
    """Preprocessed (S, H, W, C) channels -> the model's (S, C', H, W) inputs (``config.input_channels``): brain,
    the FLAIR's neighbour slices; abnormality, the sequences and, for a 2.5-D model, the FLAIR of
    ``flair_neighbours`` slices above and below."""
    if task == "brain":
        return neighbour_slices(image[..., 0], fill)
    sequences = np.ascontiguousarray(image.transpose(0, 3, 1, 2))
    reach = preprocess.flair_neighbours
    if not reach:
        return sequences
    around = neighbour_slices(image[..., 1], fill, reach)
    return np.concatenate([sequences, around[:, :reach], around[:, reach + 1 :]], axis=1)


def check_processing_memory(case_id: str, shape: tuple[int, ...], variant: str, size: int) -> None:
    """Refuse a case of ``shape`` (slices, rows, columns, channels) whose preprocessing (its slices resized on
    :func:`~flairseg.preprocess.resized_plane`) or model-space arrays (each slice ``size`` x ``size``) would exceed the
    memory budget, before they are made: its reader checked only its own voxels, which a volume of many tiny slices,
    or of thin long ones, keeps small."""
    from flairseg.memory import check

    slices, height, width, channels = shape
    resized = resized_plane(height, width, variant, size)
    check(slices * height * width, channels, f"case {case_id}", slices, size, resized)


def prepare_case(
    case: Case, task: str, preprocess: PreprocessConfig, brain: np.ndarray | None = None, target: bool = True
) -> Prepared:
    """Turn a case into standardised model inputs (and labels), keeping the inverse transform.

    ``target=False`` keeps the labels on the case's own grid only (``truth``): prediction has no use for them in
    model space, so they are not resized.
    """
    if case.image is not None:
        check_processing_memory(case.case_id, case.image.shape, preprocess.variant, preprocess.size)
    channels = task_channels(case, task, preprocess.missing)
    try:
        result = preprocess_case(
            channels,
            case.mask if target else None,
            variant=preprocess.variant,
            size=preprocess.size,
            brain=brain,
            peak_percentile=preprocess.peak_percentile,
        )
    except InputError as exc:
        raise InputError(f"case {case.case_id}: {exc}") from None
    image = result.image.astype(np.float32, copy=False)  # a new array (uint8 variants) or the port's own float32 one
    if preprocess.mean != 0.0 or preprocess.std != 1.0:
        image -= np.float32(preprocess.mean)  # in place: one case-sized array, not three
        image /= np.float32(preprocess.std)
    fill = (0.0 - preprocess.mean) / preprocess.std if result.image.dtype == np.uint8 else float(image.min())
    inputs = model_inputs(image, task, preprocess, fill)
    return Prepared(case.case_id, inputs.astype(np.float32, copy=False), result.mask, result.transform, case.mask)


def epoch_items(rng: np.random.Generator, areas: Sequence[np.ndarray], sampling: str, count: int = 0) -> np.ndarray:
    """(N, 2) array of (case index, slice index) to visit in one epoch.

    area: the port's sampling: a uniformly random case, then a slice with probability
    proportional to its tumour area plus a 10 % uniform share (``count`` draws).
    oversample: the paper's: every slice once and every slice with tumour twice more, shuffled.
    uniform: every slice once, shuffled. ``count`` > 0 truncates or repeats the list to that length.
    """
    if sampling not in SAMPLINGS:
        raise ConfigError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLINGS)}")
    everything = np.array([(c, s) for c, area in enumerate(areas) for s in range(len(area))], dtype=np.int64)
    if sampling == "area":
        count = count or len(everything)
        chosen_cases = rng.integers(0, len(areas), size=count)
        slices = np.empty(count, dtype=np.int64)
        for c in np.unique(chosen_cases):
            area = np.asarray(areas[c], dtype=float)
            total = area.sum()
            p = (area + total * 0.1 / len(area)) / (total * 1.1) if total > 0 else np.full(len(area), 1 / len(area))
            where = np.flatnonzero(chosen_cases == c)
            slices[where] = rng.choice(len(area), size=where.size, p=p)
        return np.stack([chosen_cases, slices], axis=1)
    items = everything
    if sampling == "oversample":
        tumour = np.array([areas[c][s] > 0 for c, s in everything], dtype=bool)
        items = np.concatenate([everything, everything[tumour], everything[tumour]])
    items = items[rng.permutation(len(items))]
    if count:
        items = np.resize(items, (count, 2))
    return items
