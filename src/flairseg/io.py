"""Cases on disk, whatever their format: find them in a tree, tell their format, check their headers,
read them into a :class:`~flairseg.cases.Case` and write results back the way they came. The
formats themselves live in ``kaggle.py`` (TIFF slice folders) and ``volumes.py`` (NIfTI, DICOM).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from flairseg.cases import (
    MASK_POLICIES,
    NIFTI_SUFFIXES,
    TIFF_SUFFIXES,
    Case,
    Geometry,
    MaskPolicy,
    check_mask_values,
    is_hidden,
    is_nifti,
    nifti_stem,
)
from flairseg.config import TASK_SPECS
from flairseg.errors import InputError
from flairseg.kaggle import (
    first_tiff,
    has_tiffs,
    kaggle_files,
    kaggle_shape,
    read_kaggle_case,
    read_kaggle_labels,
    slice_count,
    slice_files,
    write_kaggle_image,
    write_kaggle_mask,
)
from flairseg.outputs import (
    PROBABILITY_SUFFIX,
    RUN_NAMES,
    ReportFolder,
    check_case_id,
    made_by_flairseg,
    mask_file_folder,
    name_key,
    run_report,
)
from flairseg.volumes import (
    DICOM_DIRECTORY,
    check_headers,
    check_label_header,
    first_dicom_file,
    first_dicom_of,
    is_dicom_folder,
    nifti_grid,
    read_dicom_series,
    read_named_sequences,
    read_nifti,
    write_volume_image,
    write_volume_mask,
)


def read_label(case: Case, suffix: str) -> np.ndarray | None:
    """Read the extra label stack stored beside a case (e.g. ``_brain``), or None if it has none.

    Kaggle: ``<CASE>_<k><suffix>.tif`` in the case folder; NIfTI: ``<case><suffix>.nii[.gz]``
    beside the volume; either holding 0 and positive whole-number labels (:func:`read_mask`).
    """
    files = label_files(case, suffix)
    if not files:
        return None
    if case.geometry.format == "kaggle":
        return read_mask(case.geometry.source, suffix, f"{suffix.strip('_')} label").mask
    return read_nifti(case.geometry.source, mask_path=files[0]).mask


def label_files(case: Case, suffix: str) -> list[Path]:
    """The files :func:`read_label` reads for the label stack ``suffix`` of a case (none: it has none), so that
    what a prediction read from them is recorded with its other inputs."""
    geometry = case.geometry
    if geometry.format == "kaggle":
        return [path for _, path in sorted(slice_files(geometry.source, suffix).items())]
    sibling = _sibling_label(geometry.source, suffix) if geometry.format == "nifti" else None
    return [] if sibling is None else [sibling]


def case_files(path: Path) -> list[Path]:
    """The files a case found by :func:`find_cases` is read from, its labels included, found by their names without
    reading them: a case folder's visible files; a volume, itself, every task's label beside it (``<name>_mask``,
    ``<name>_brain``) and, for a FLAIR named by a convention (BraTS, nnU-Net, BIDS), its other sequences and labels,
    read or not. Outputs must never replace any of them."""
    from flairseg.sequences import siblings

    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not is_hidden(p))
    if not (is_nifti(path) and path.is_file()):
        return [path]
    labels = [_sibling_label(path, spec.label_suffix) for spec in TASK_SPECS.values()]
    named = [p for found in siblings(path).values() for p in found]
    return sorted({path, *named, *(label for label in labels if label is not None)})


def refuse_case_file_name(volume: Path, path: Path, what: str) -> None:
    """Refuse ``path`` (an output file) where reading the case ``volume`` would take it as one of the case's files, not
    there yet: a label beside it (``<name>_mask``, ``<name>_brain``) or a sequence or label its naming convention
    gives it (BraTS ``<id>_seg``, ``<id>_t1``): a prediction written there would be read back as the case's truth."""
    from flairseg.sequences import name_of

    if not is_nifti(path) or not is_nifti(volume) or os.path.realpath(path.parent) != os.path.realpath(volume.parent):
        return
    # compared as a file system that ignores case would: `P1/p1_flair.nii.gz` is read as a file of case P1 there
    labels = {name_key(nifti_stem(volume) + spec.label_suffix) for spec in TASK_SPECS.values()}
    labelled = name_key(nifti_stem(path)) in labels
    named, given = name_of(path), name_of(volume)
    sibling = named is not None and given is not None and named.convention == given.convention
    sibling = sibling and name_key(named.key) == name_key(given.key)
    if labelled or sibling:
        case_id = case_id_of(volume)
        raise InputError(
            f"{what} {path} is named as a file of case {case_id} beside it (its truth, a label or a sequence), which "
            f"every later run would read as such; give the mask another name (e.g. {case_id}_pred.nii.gz) or write "
            "it elsewhere"
        )


def input_files(source: Path) -> list[Path]:
    """The paths a command given the input ``source`` reads, which no output may be, hold or lie in: a tree or a case
    folder itself; a lone volume and its case's other files (:func:`case_files`: its labels and sequences)."""
    return [source, *(case_files(source) if source.is_file() else [])]


def _sibling_label(path: Path, suffix: str) -> Path | None:
    stem = nifti_stem(path)
    for ext in NIFTI_SUFFIXES:
        candidate = path.with_name(stem + suffix + ext)
        _refuse_special_file(candidate)
        if candidate.is_file():
            return candidate
    return None


def _refuse_special_file(path: Path) -> None:
    """Refuse a path that exists as neither a file nor a folder (a pipe, a device: ``-i <(zcat v.nii.gz)``), which
    would otherwise be skipped without a word or fail as some other fault."""
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise InputError(f"{path} is neither a file nor a folder (a pipe or a device); give a NIfTI file or a folder")


def _read_volume_case(path: Path, masks: MaskPolicy, mask_suffix: str, resample: bool = False) -> Case:
    stem = nifti_stem(path)
    from flairseg.sequences import is_label_file, name_of

    named = name_of(path)
    if is_label_file(path):
        raise InputError(
            f"{path.name} is named like a label volume (segmentation or mask), not an image; give the case's FLAIR"
        )
    if named is not None and named.kind != "flair":
        raise InputError(
            f"{path.name} is the {named.kind} volume of case {named.case_id} ({named.convention} naming), not a FLAIR; "
            "give the case's FLAIR file or its folder"
        )
    mask_path = _sibling_label(path, mask_suffix) if masks != "ignore" else None
    if named is not None:
        return read_named_sequences(path, masks, mask_path, resample, tumour_labels=mask_suffix == "_mask")
    if masks == "required" and mask_path is None:
        raise InputError(f"{path} has no mask beside it ({stem}{mask_suffix}.nii.gz), and masks are required here")
    return dataclasses.replace(
        read_nifti(path, mask_path=mask_path, case_id=stem), sequences=(("flair", str(path.resolve())),)
    )


def find_cases(path: str | os.PathLike, masks: MaskPolicy = "optional", mask_suffix: str = "_mask") -> list[Path]:
    """List the cases under ``path``: itself if it is one case, else its case folders and volume files.

    A case is a Kaggle folder of TIFF slices, a DICOM series folder, or a NIfTI file. A folder holding both slices
    and case folders is refused: either reading would leave cases out. With masks="only" a folder's NIfTI cases are
    its ``*<mask_suffix>.nii[.gz]`` files (or all of them when none has the suffix; images beside them skipped, a
    mask saved without the suffix refused: see :func:`_mask_volumes`) and a prediction run's own folders are
    skipped (:func:`_run_folders`); otherwise NIfTI files ending in the suffix are labels, not cases. Hidden files
    and folders (``.git``, macOS's ``._`` copies) are never cases.
    """
    root = Path(path)
    if not root.exists():
        raise InputError(f"{root} does not exist")
    _refuse_special_file(root)
    if root.is_file():
        if not is_nifti(root):
            raise InputError(
                f"{root} is not a case: give a Kaggle case folder, a DICOM series folder or a .nii/.nii.gz file"
            )
        if masks == "only":
            _refuse_other_kind_of_mask(root, mask_suffix)
        return [root]
    children = [p for p in sorted(root.iterdir()) if not is_hidden(p)]
    for child in children:
        if is_nifti(child):
            _refuse_special_file(child)
    not_cases = {"derivatives", *(_run_folders(root) if masks == "only" else ())}
    subfolders = [p for p in children if p.is_dir() and p.name not in not_cases]
    slice_file = _case_slice(root)
    if slice_file is not None:
        _refuse_cases_below(root, slice_file, subfolders)
        return [root]
    volumes = [p for p in children if p.is_file() and is_nifti(p)]
    if masks == "only":
        volumes = _mask_volumes(root, volumes, mask_suffix)
    else:
        volumes = [p for p in volumes if not nifti_stem(p).endswith(mask_suffix) and _is_image_volume(p)]
        volumes = [p for p in volumes if not _is_recorded_mask_file(p)]
    sliced = {folder: _case_slice(folder) for folder in subfolders}
    folders = [folder for folder, slice_file in sliced.items() if slice_file is not None]
    for folder in folders:  # slices in a case folder's own subfolder would be left out of it
        _refuse_cases_below(folder, sliced[folder], _folders_in(folder))
    others = [folder for folder in subfolders if folder not in folders]
    named = {folder: _named_flairs(folder) if masks != "only" else [] for folder in others}
    cases = folders + volumes + [flair for found in named.values() for flair in found]
    if not cases:
        raise _no_cases(root)
    _refuse_unread_folders([folder for folder, found in named.items() if not found], masks)
    return cases


def _is_recorded_mask_file(path: Path) -> bool:
    """Whether ``path`` is the mask a ``predict -o NAME.nii.gz`` run wrote: a record of the report in ``NAME_flairseg``
    beside it names it (an image sharing the name in another extension, ``NAME.nii`` beside it, is no mask), or no
    record there names any output."""
    from flairseg.provenance import recorded_outputs

    report = run_report(mask_file_folder(path))
    records = report.path / "records"
    if not (records.is_dir() and report.is_flairsegs()):
        return False
    named = [entry["file"] for record in records.glob("*.json") for entry in recorded_outputs(record) or []]
    if not named:  # a run killed before its record, or an older flairseg's record: its mask by the folder's name
        return True
    return any(os.path.normpath(report.path.parent / name) == os.path.normpath(path) for name in named)


def _run_folders(root: Path) -> tuple[str, ...]:
    """The folders a prediction run keeps beside its masks (:data:`~flairseg.outputs.RUN_NAMES`: probability maps,
    skull-stripped images, the report) when ``root`` is one (its report is flairseg's): never cases, since predict
    refuses a case of those names; a run with ``--probabilities`` or ``--strip`` is read back as its masks."""
    return RUN_NAMES if run_report(root).is_flairsegs() else ()


def _case_slice(folder: Path) -> Path | None:
    """A file that makes ``folder`` one case: a TIFF slice (Kaggle) or a DICOM slice; None when it holds neither."""
    return first_tiff(folder) or first_dicom_file(folder)


def _folders_in(folder: Path) -> list[Path]:
    """The visible folders in ``folder``, told apart by the directory listing (no file's status read: a case folder
    holds hundreds of slices)."""
    with os.scandir(folder) as entries:
        return [Path(entry.path) for entry in entries if entry.is_dir() and not is_hidden(Path(entry.path))]


def _refuse_cases_below(root: Path, slice_file: Path, subfolders: list[Path]) -> None:
    """Refuse a folder of slices that also holds case folders: read as one case, the cases below would vanish
    without a word (a stray localizer or figure at the top of a tree); read as a tree, the slices would."""
    hidden = next((p for p in subfolders if _case_slice(p) is not None or _named_flairs(p)), None)
    if hidden is not None:
        raise InputError(
            f"{root} holds both image slices ({slice_file.name}) and case folders ({hidden.name}/), so it is neither "
            "one case nor a folder of cases; move the stray slices out of it, or point flairseg at one case folder"
        )


def _other_names(mask_suffix: str) -> tuple[str, ...]:
    """The endings of what a folder of ``mask_suffix`` masks may hold that is no such mask: another task's labels and
    probability maps."""
    return (
        PROBABILITY_SUFFIX,
        *(spec.label_suffix for spec in TASK_SPECS.values() if spec.label_suffix != mask_suffix),
    )


def _refuse_other_kind_of_mask(path: Path, mask_suffix: str) -> None:
    """Refuse a mask file named as another task's label or a probability map (``case_brain.nii.gz`` read as a tumour
    mask), as a folder of them is refused (:func:`_mask_volumes`)."""
    if nifti_stem(path).endswith(_other_names(mask_suffix)):
        raise InputError(
            f"{path} is named as another task's mask or a probability map; give this task's mask "
            f"(<case>{mask_suffix}.nii.gz)"
        )


def _mask_volumes(root: Path, volumes: list[Path], mask_suffix: str) -> list[Path]:
    """The mask cases among a folder's NIfTI files: those named with ``mask_suffix``, or, when none is, all but those
    named as another task's label or a probability map (a brain run's ``<case>_brain`` masks are no tumour masks).

    In a folder of images beside their masks (at least one ``X`` with its ``X<mask_suffix>``: a data folder given as
    the truth) a file without the suffix is an image, one without a mask being left out as the summaries count
    (cases with truth, predictions without truth). Elsewhere a file without the suffix beside suffixed masks is
    refused unless its name tells what else it is (another task's label, a probability map): it may be a mask
    saved without the suffix, whose case would drop out of a score without a word."""
    labelled = [p for p in volumes if nifti_stem(p).endswith(mask_suffix)]
    others = _other_names(mask_suffix)
    if not labelled:
        plain = [p for p in volumes if not nifti_stem(p).endswith(others)]
        if volumes and not plain:
            raise InputError(
                f"{root} holds no masks named <case>{mask_suffix}.nii.gz: {volumes[0].name} is named as another "
                "task's mask or a probability map; give a folder of this task's masks"
            )
        return plain
    masked = {nifti_stem(p).removesuffix(mask_suffix) for p in labelled}
    unsuffixed = [p for p in volumes if p not in labelled]
    if any(nifti_stem(p) in masked for p in unsuffixed):
        return labelled
    for path in unsuffixed:
        stem = nifti_stem(path)
        if not stem.endswith(others):
            raise InputError(
                f"{root} holds masks named <case>{mask_suffix} ({labelled[0].name}) and {path.name} without the "
                f"suffix, which would be left out; rename it {stem}{mask_suffix}.nii.gz if it is a mask, "
                "or move it out of the folder if it is an image without a mask"
            )
    return labelled


def _no_cases(root: Path) -> InputError:
    """The error for a folder without cases; a DICOM media folder (DICOMDIR, series nested deeper) told what to do."""
    if (root / DICOM_DIRECTORY).is_file():
        return InputError(
            f"{root} is a DICOM media folder (DICOMDIR) with no series folder directly below it; point flairseg "
            "at the folder that holds one series' slices"
        )
    return InputError(
        f"{root} holds no cases (Kaggle TIFF folders, DICOM series folders, NIfTI files, "
        "BraTS / nnU-Net case folders or a BIDS dataset with FLAIR images)"
    )


def _is_image_volume(path: Path) -> bool:
    """A NIfTI file that can be a case: a FLAIR by its name, or a file no naming convention claims."""
    from flairseg.sequences import is_label_name, name_of

    named = name_of(path)
    return named.kind == "flair" if named is not None else not is_label_name(path)


def _refuse_unread_folders(folders: list[Path], masks: MaskPolicy) -> None:
    """Refuse a folder in a tree that holds cases no reading of the tree takes: case folders one level down
    (``tree/site2/CASE_2``) and, in a tree of images, image volumes (``tree/caseB/caseB.nii.gz``): they would be left
    out without a word. An nnU-Net dataset's labels folders hold labels, a prediction run's folder its masks and
    probability maps."""
    for folder in folders:
        if _holds_no_cases(folder):
            continue
        below = (p for p in sorted(folder.iterdir()) if not is_hidden(p))
        unread = next((p for p in below if _is_unread_case(p, masks)), None)
        if unread is not None:
            raise InputError(
                f"{unread} lies in {folder}, a folder flairseg reads as no case (the cases of a tree lie side by side, "
                "a case's volumes in a case folder named by BraTS, nnU-Net or BIDS): move it up beside the other "
                "cases, or give the folder as an input of its own"
            )


# folders of a tree that hold what is no case of it: BIDS's reserved folders (raw DICOM in sourcedata), nnU-Net's and
# a user's label folders, by their names (``labels*``: nnU-Net's labelsTr and labelsTs); a folder whose name only
# begins like one (``seguimiento``) is none
_NOT_CASES = ("sourcedata", "code", "phenotype", "stimuli", "derivatives", "masks", "truth", "gt")
_NOT_CASES += ("seg", "segs", "segmentation", "segmentations", "ground_truth", "groundtruth")


def _holds_no_cases(folder: Path) -> bool:
    """Whether a folder of a tree holds no cases by its name (:data:`_NOT_CASES`, ``labels*``) or by being flairseg's
    (a prediction run, a folder it marked)."""
    name = folder.name.lower()
    if name in _NOT_CASES or name.startswith("labels"):
        return True
    return made_by_flairseg(folder) or run_report(folder).is_flairsegs()


def _is_unread_case(path: Path, masks: MaskPolicy) -> bool:
    """Whether ``path``, one level below a folder of a tree that is no case, is a case folder or (in a tree of images)
    a volume named as the folder (``caseB/caseB.nii.gz``): a case the tree's reading would leave out."""
    if path.is_dir():
        return _case_slice(path) is not None
    volume = path.is_file() and is_nifti(path) and masks != "only"
    return volume and nifti_stem(path) == path.parent.name and _is_image_volume(path)


def _named_flairs(folder: Path) -> list[Path]:
    """The FLAIR files named by a convention in a case folder (BraTS, nnU-Net) or a BIDS subject folder below it."""
    from flairseg.sequences import name_of

    candidates = [p for p in sorted(folder.iterdir()) if p.is_file() and is_nifti(p)]
    candidates += sorted(folder.glob("anat/*.nii*"))  # BIDS: a subject's or a session's anat folder
    if folder.name.startswith("sub-"):  # BIDS: sub-<s>/ses-<x>/anat
        candidates += sorted(folder.glob("ses-*/anat/*.nii*"))
    visible = [p for p in candidates if not is_hidden(p)]
    return [p for p in visible if (named := name_of(p)) is not None and named.kind == "flair"]


def case_size(path: Path) -> int:
    """A cheap measure of a case's work, without reading its pixels: slice files of a folder, voxels of a volume."""
    if path.is_dir():
        return slice_count(path) or sum(p.is_file() for p in path.iterdir())  # Kaggle slices, else (DICOM) every file
    import nibabel as nib

    try:
        return int(np.prod(nib.load(path).shape))
    except Exception:  # an unreadable file: its size in bytes; reading it later gives the real error
        return path.stat().st_size


def case_id_of(path: Path, masks: MaskPolicy = "optional", mask_suffix: str = "_mask") -> str:
    """The case id a path found by :func:`find_cases` will have once read."""
    from flairseg.sequences import name_of

    if path.is_dir():
        return path.resolve().name
    stem = nifti_stem(path)
    if masks == "only":
        return stem.removesuffix(mask_suffix)
    named = name_of(path)
    return named.case_id if named is not None else stem


def case_outline(path: Path) -> Case:
    """A case found by :func:`find_cases` as far as its name and format tell, without reading it (no image, no
    geometry but its source): enough to name its outputs before any case is read."""
    return Case(case_id_of(path), None, None, Geometry(path, _case_format(path)))  # type: ignore[arg-type]


def declared_grid(path: str | os.PathLike, masks: MaskPolicy = "optional", mask_suffix: str = "_mask") -> Case | None:
    """A case with no voxel read, holding the grid its headers declare, for
    :func:`~flairseg.cases.check_same_grid` before anything is read: a NIfTI volume's affine, orientation and shape;
    TIFF slices' outline (no place in the world, no shape yet); None for a DICOM series, whose grid is known once
    its slices are sorted."""
    path = Path(path)
    kind = _case_format(path)
    if kind == "nifti":
        return Case(case_id_of(path, masks, mask_suffix), None, None, nifti_grid(path))
    return case_outline(path) if kind == "kaggle" else None


def index_cases(root: str | os.PathLike, masks: MaskPolicy = "optional", mask_suffix: str = "_mask") -> dict[str, Path]:
    """{case id: path} of the cases under ``root`` (see :func:`find_cases`), in its order, refusing two cases with one
    id: every command keys a case's outputs and records by its id, so one of them (the Kaggle folder ``CASE_A`` beside
    the volume ``CASE_A.nii.gz``) would be lost or overwritten. Ids differing only in case, or in how Unicode composes
    their accents, are one (they name one file on macOS and Windows)."""
    index: dict[str, Path] = {}
    keys: dict[str, Path] = {}
    for path in find_cases(root, masks=masks, mask_suffix=mask_suffix):
        case_id = check_case_id(case_id_of(path, masks=masks, mask_suffix=mask_suffix))
        other = keys.setdefault(name_key(case_id), path)
        if other != path:
            raise InputError(
                f"two inputs have the case id {case_id!r} ({other} and {path}, ids compared regardless of case "
                "and of how accents are encoded); rename one, they would share an output"
            )
        index[case_id] = path
    if masks == "only":
        _refuse_unfinished_cases(Path(root), index, mask_suffix)
    return index


# the folders a run's report may lie above a mask read from it: the run's folder, a case folder in it, a mask file
# in a BIDS derivative's sub-<s>/ses-<x>/anat
_RUN_DEPTH = 5


def _refuse_unfinished_cases(root: Path, index: dict[str, Path], mask_suffix: str) -> None:
    """Refuse a mask that a prediction run began and did not finish (a started file in its report, no record: it
    failed or was stopped): it is an earlier run's, or half of this one's, and would be scored or measured as the
    prediction of the input the run failed on. The run's report is looked for where ``root`` is the run's folder or
    lies in it (a case folder, a mask file, a BIDS derivative's subject folder), and beside a mask file a run wrote
    alone (``-o NAME.nii.gz``: its report, of that one case, in ``NAME_flairseg``)."""
    task = next((task for task, spec in TASK_SPECS.items() if spec.label_suffix == mask_suffix), None)
    root = root.absolute()
    if task is None:
        return
    if root.is_file() and _unfinished(run_report(mask_file_folder(root)), task):
        raise _unfinished_mask(root, nifti_stem(root))
    folders = [root, *root.parents][:_RUN_DEPTH]
    report = next((run_report(folder) for folder in folders if run_report(folder).is_flairsegs()), None)
    bids = f"_desc-{TASK_SPECS[task].label}"  # a BIDS derivative's mask: <case>_desc-<label>_mask
    for case_id, path in index.items() if report is not None else ():
        if _unfinished(report, task, case_id.removesuffix(bids)):
            raise _unfinished_mask(path, case_id)


def _unfinished(report: ReportFolder, task: str, case_id: str | None = None) -> bool:
    """Whether the report holds a case of ``task`` (``case_id``, or any) begun and not finished: a started file, no
    record."""
    records = report.path / "records"
    if case_id is not None:
        key = ReportFolder.key(case_id, task)
        return report.started(key).exists() and not report.record(key).exists()
    started = records.glob(f"*{TASK_SPECS[task].label_suffix}.started") if records.is_dir() else ()
    return any(not report.record(path.stem).exists() for path in started)


def _unfinished_mask(path: Path, case_id: str) -> InputError:
    return InputError(
        f"{path} is the mask of case {case_id}, which its prediction run began and did not finish (it failed or was "
        "stopped; its mask is not the prediction of its input now): predict the case again, or move its mask out of "
        "the folder"
    )


def _case_format(path: Path) -> str:
    """What a case path is: "nifti" (a volume file), "kaggle" (a folder of TIFF slices) or "dicom" (a series folder)."""
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_file():
        if not is_nifti(path):
            raise InputError(f"{path} is not a .nii/.nii.gz volume nor a case folder")
        return "nifti"
    if has_tiffs(path):
        _refuse_mixed_case(path, kaggle=True)
        return "kaggle"
    if is_dicom_folder(path):
        _refuse_mixed_case(path, kaggle=False)
        return "dicom"
    if not any(path.iterdir()):
        raise InputError(f"{path} is empty")
    raise InputError(f"{path} holds no TIFF slices and no DICOM series; is it a folder of cases?")


def _refuse_mixed_case(folder: Path, kaggle: bool) -> None:
    """Refuse a case folder of Kaggle slices (``kaggle``) or of a DICOM series that also holds the images of another
    format (a DICOM file among the slices; a NIfTI image volume, such as one dcm2niix wrote beside its series): read
    as one case, the other images would be left out without a word. One listing; a Kaggle case's TIFFs are not
    opened."""
    visible = [p for p in sorted(folder.iterdir()) if not is_hidden(p)]
    others = [p for p in visible if p.suffix.lower() not in TIFF_SUFFIXES] if kaggle else visible
    other = next((p for p in others if _is_nifti_image(p)), None)
    if other is None and kaggle:
        other = first_dicom_of([p for p in others if p.is_file()])
    if other is not None:
        kind = "Kaggle TIFF slices" if kaggle else "a DICOM series"
        raise InputError(
            f"{folder} holds {kind} and also {other.name}, an image of another format; a case folder holds one case "
            f"in one format: move {other.name} out of it"
        )


def _is_nifti_image(path: Path) -> bool:
    """A NIfTI image volume in a case folder: no label by its name (``CASE_seg``, or a bare ``seg``, ``mask``)."""
    return is_nifti(path) and not is_hidden(path) and path.is_file() and _is_image_volume(path)


def read_case(
    path: str | os.PathLike, masks: MaskPolicy = "optional", mask_suffix: str = "_mask", resample: bool = False
) -> Case:
    """Read one case: a Kaggle TIFF folder, a DICOM series folder or a NIfTI file.

    For NIfTI, the mask is the file ``<name><mask_suffix>.nii[.gz]`` beside the volume. A FLAIR
    named by a convention of :mod:`flairseg.sequences` brings its case's other sequences (with
    ``resample``, those on another grid are resampled onto the FLAIR's). DICOM series carry no masks.
    """
    if masks not in MASK_POLICIES:
        raise ValueError(f"masks must be one of {MASK_POLICIES}, not {masks!r}")
    if masks == "only":
        return read_labels(path, mask_suffix)[0]
    path = Path(path)
    kind = _case_format(path)
    if kind == "nifti":
        return _read_volume_case(path, masks, mask_suffix, resample)
    if kind == "kaggle":
        return read_kaggle_case(path, masks=masks, mask_suffix=mask_suffix)
    if masks == "required":
        raise _dicom_without_masks(path)
    return read_dicom_series(path)


def read_labels(path: str | os.PathLike, mask_suffix: str = "_mask") -> tuple[Case, np.ndarray]:
    """A mask case (a NIfTI label file, or a Kaggle folder's ``<mask_suffix>`` slices; nonzero = True) and the label
    values its files store, (slices, rows, columns) in the processing layout: one read, for a caller that checks the
    values too."""
    path = Path(path)
    kind = _case_format(path)
    if kind == "kaggle":
        return read_kaggle_labels(path, mask_suffix)
    if kind == "dicom":
        raise _dicom_without_masks(path)
    label = read_nifti(path, case_id=nifti_stem(path).removesuffix(mask_suffix))
    values = label.image[..., 0]
    return Case(label.case_id, None, values != 0, label.geometry), values


def read_mask(path: str | os.PathLike, mask_suffix: str = "_mask", what: str = "mask") -> Case:
    """A mask case read by :func:`read_labels`, its stored values checked by the one rule every mask that is scored
    or measured follows (:func:`~flairseg.cases.check_mask_values`), naming the file as the ``what`` of its case."""
    case, values = read_labels(path, mask_suffix)
    check_mask_values(values, case.case_id, Path(path).name, what)
    return case


def _dicom_without_masks(path: Path) -> InputError:
    return InputError(f"{path} is a DICOM series, which carries no masks; give masks as NIfTI or TIFF")


def check_case(
    path: str | os.PathLike, masks: MaskPolicy = "optional", mask_suffix: str = "_mask", resample: bool = False
) -> tuple[int, int, int, int] | None:
    """Check what a case's file names and headers declare, its mask's included, as :func:`read_case` would (a mask
    case with masks="only"), without decoding pixels: the grids its files declare too, its mask's and (without
    ``resample``) its other sequences' against its image's, and its slices' sizes. Returns the (slices, rows, columns,
    channels) its image will be read into (a Kaggle case's from its first slice; None for a mask case)."""
    path = Path(path)
    kind = _case_format(path)
    if kind == "kaggle":
        kaggle_files(path, masks, mask_suffix)
        return None if masks == "only" else kaggle_shape(path)
    if masks == "only":
        if kind == "dicom":
            raise _dicom_without_masks(path)
        check_label_header(path)
        return None
    mask = _sibling_label(path, mask_suffix) if kind == "nifti" and masks != "ignore" else None
    return check_headers(path, masks, mask, resample, tumour_labels=mask_suffix == "_mask")


def write_mask(case: Case, mask: np.ndarray, path: str | os.PathLike, suffix: str = "_mask") -> Path:
    """Write a mask on the case's grid the way the case came, atomically, and return the path written.

    Kaggle: a folder ``path`` of ``<CASE>_<k><suffix>.tif`` (uint8 0/255), named after the
    input slices (added file by file to a folder that exists). Volumes: a NIfTI file ``path``
    with the input's header and geometry.
    """
    mask = np.asarray(mask)
    if mask.shape != case.shape:
        raise InputError(f"mask shape {mask.shape} does not match case {case.case_id} grid {case.shape}")
    out = Path(path)
    if case.geometry.format == "kaggle":
        write_kaggle_mask(case, mask, out, suffix)
    else:
        write_volume_mask(case, mask.astype(bool), out)
    return out


def write_image(case: Case, image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an image on the case's grid the way the case came, atomically (e.g. a skull-stripped case).

    Kaggle: a folder ``path`` of TIFF slices named exactly like the input's, in the input's
    dtype. Volumes: a float32 NIfTI file ``path`` (first channel) with the input's header.
    """
    image = np.asarray(image)
    if image.shape[:3] != case.shape:
        raise InputError(f"image shape {image.shape} does not match case {case.case_id} grid {case.shape}")
    out = Path(path)
    if case.geometry.format == "kaggle":
        write_kaggle_image(case, image, out)
    else:
        write_volume_image(case, image[..., 0] if image.ndim == 4 else image, out)
    return out


def sample_case_path() -> Path:
    """Folder of the bundled sample case (TCGA_CS_4942_19970222, Kaggle layout; see its README)."""
    from importlib.resources import files

    return Path(str(files("flairseg") / "sample" / "TCGA_CS_4942_19970222"))
