"""Cases in memory and on disk: Kaggle LGG TIFF folders, NIfTI files, DICOM series.

A case is read into one :class:`Case`: the image as a numpy array shaped
(slices, height, width, channels), the mask (or None) as a bool array shaped
(slices, height, width), and the :class:`Geometry` needed to write results back
exactly where they came from. Volumes are reoriented to the processing layout
(slices inferior to superior, rows anterior to posterior, columns patient right to
left, as the Kaggle slices are shown) and restored on write; see ``volumes.py``.
"""

from __future__ import annotations

import os
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from flairseg.errors import InputError

MaskPolicy = Literal["ignore", "optional", "required", "only"]
MASK_POLICIES = ("ignore", "optional", "required", "only")
NIFTI_SUFFIXES = (".nii.gz", ".nii")
TIFF_SUFFIXES = (".tif", ".tiff")
_SLICE_NAME = re.compile(r"^(?P<stem>.+)_(?P<k>\d+)(?P<suffix>_[A-Za-z]+)?\.tiff?$", re.IGNORECASE)


@dataclass(frozen=True)
class Geometry:
    """Where a case came from and how to write results back onto its grid.

    Attributes:
        source: the case folder (Kaggle, DICOM) or volume file (NIfTI) that was read.
        format: ``"kaggle"``, ``"nifti"`` or ``"dicom"``.
        slice_names: Kaggle only: the input slice file names, in slice order.
        spacing: millimetres along (slice, row, column) of the processing array, or None
            when unknown (Kaggle TIFFs carry no spacing).
        affine: volumes only: the input's voxel-to-world (RAS) 4x4 affine, in the input's
            own axis order.
        header: NIfTI only: the input's nibabel header, reused when writing.
        ornt: volumes only: the nibabel orientation transform from the input's axes to the
            processing layout (applied on read, inverted on write).
        input_shape: volumes only: the input array's shape in its own axis order.
    """

    source: Path
    format: Literal["kaggle", "nifti", "dicom"]
    slice_names: tuple[str, ...] = ()
    spacing: tuple[float, float, float] | None = None
    affine: np.ndarray | None = None
    header: Any = None
    ornt: np.ndarray | None = None
    input_shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class Case:
    """One case in memory.

    Attributes:
        case_id: the case's name (Kaggle folder name, or volume file name without extension).
        image: (slices, height, width, channels) array as read (uint8 for Kaggle TIFFs,
            float32 for volumes), or None when only masks were read.
        mask: (slices, height, width) bool array, or None.
        geometry: how to write results back onto the input grid.
    """

    case_id: str
    image: np.ndarray | None
    mask: np.ndarray | None
    geometry: Geometry = field(repr=False)
    sequences: tuple[tuple[str, str], ...] = ()  # volumes: (channel, source file's path or "copy of FLAIR") per channel read

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, height, width) of the case's grid."""
        array = self.image if self.image is not None else self.mask
        return tuple(array.shape[:3])  # type: ignore[union-attr,return-value]


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _nifti_stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _has_tiffs(folder: Path) -> bool:
    return any(p.suffix.lower() in TIFF_SUFFIXES for p in folder.iterdir() if p.is_file())


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        array = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for corrupt, truncated or non-TIFF files
        raise InputError(f"cannot read {path}: not a valid TIFF image or truncated ({type(exc).__name__})") from None
    if array.ndim not in (2, 3) or array.size == 0:
        raise InputError(f"{path} has shape {array.shape}; expected one 2-D slice (H, W) or (H, W, channels)")
    if not np.isfinite(array).all():
        raise InputError(f"{path} holds {np.count_nonzero(~np.isfinite(array))} NaN or infinite pixels; fix or drop the slice")
    return array


def _check_declared_size(folder: Path, files: Sequence[Path]) -> None:
    """Every slice's TIFF header readable, and the case's size as they declare it within the memory budget."""
    import tifffile

    from flairseg.memory import check

    largest, channels = 0, 1
    for path in files:
        try:
            with tifffile.TiffFile(path) as tiff:
                shape = tiff.pages[0].shape
        except Exception as exc:  # tifffile raises many types for corrupt, truncated or non-TIFF files
            raise InputError(f"cannot read {path}: not a valid TIFF image or truncated ({type(exc).__name__})") from None
        largest = max(largest, int(np.prod(shape[:2], dtype=np.int64)))
        channels = max(channels, int(shape[2]) if len(shape) == 3 else 1)
    check(largest * len(files), channels, f"case {folder}")


def _slice_files(folder: Path, suffix: str) -> dict[int, Path]:
    """Map slice number k -> file for ``<CASE>_<k><suffix>.tif`` in a Kaggle case folder."""
    files: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        match = _SLICE_NAME.match(path.name)
        if not path.is_file() or match is None or (match["suffix"] or "") != suffix:
            continue
        k = int(match["k"])
        if k in files:
            raise InputError(f"{folder}: slice number {k} appears twice ({files[k].name}, {path.name}); keep one file per slice")
        files[k] = path
    return files


def _check_numbering(folder: Path, numbers: list[int], what: str) -> None:
    expected = list(range(1, len(numbers) + 1))
    if numbers != expected:
        missing = sorted(set(expected) - set(numbers))[:5]
        raise InputError(
            f"{folder}: {what} slice numbers must run 1..{len(numbers)} without gaps "
            f"(found {numbers[0]}..{numbers[-1]}, missing e.g. {missing}); rename or restore the missing slices"
        )


def _stack_labels(folder: Path, files: dict[int, Path], numbers: list[int], plane: tuple[int, int] | None) -> np.ndarray:
    slices = []
    for k in numbers:
        label = _read_tiff(files[k])
        if label.ndim == 3:
            label = label.max(axis=2)
        if plane is not None and label.shape != plane:
            raise InputError(f"{files[k]} is {label.shape[0]}x{label.shape[1]} but the images are {plane[0]}x{plane[1]}")
        if plane is None:
            plane = label.shape
        elif label.shape != plane:
            raise InputError(f"{folder}: mixed slice sizes ({plane} and {label.shape} in {files[k].name})")
        slices.append(label != 0)
    return np.stack(slices)


def _kaggle_files(folder: Path, masks: MaskPolicy, mask_suffix: str) -> tuple[list[int], dict[int, Path], dict[int, Path]]:
    """A Kaggle case folder's slice numbers, image files and mask files, checked by name and header, nothing decoded."""
    if not folder.is_dir():
        raise InputError(f"case folder {folder} does not exist")
    image_files = _slice_files(folder, "") if masks != "only" else {}
    mask_files = _slice_files(folder, mask_suffix) if masks != "ignore" else {}
    if masks == "only":
        if not mask_files:
            raise InputError(f"{folder} holds no <CASE>_<k>{mask_suffix}.tif files")
        numbers = sorted(mask_files)
        _check_numbering(folder, numbers, "mask")
        _check_declared_size(folder, [mask_files[k] for k in numbers])
        return numbers, image_files, mask_files
    if not image_files:
        raise InputError(f"{folder} holds no <CASE>_<k>.tif slices; point flairseg at a Kaggle-layout case folder")
    numbers = sorted(image_files)
    _check_numbering(folder, numbers, "image")
    if masks == "required" and not mask_files:
        raise InputError(f"{folder} has images but no {mask_suffix}.tif masks, and masks are required here")
    if mask_files and sorted(mask_files) != numbers:
        raise InputError(
            f"{folder}: {len(mask_files)} masks for {len(numbers)} image slices; every slice needs exactly one mask "
            f"(slices without a mask: {sorted(set(numbers) - set(mask_files))[:5]})"
        )
    _check_declared_size(folder, [image_files[k] for k in numbers])
    return numbers, image_files, mask_files


def read_kaggle_case(folder: str | os.PathLike, masks: MaskPolicy = "optional", mask_suffix: str = "_mask") -> Case:
    """Read a Kaggle LGG case folder of ``<CASE>_<k>.tif`` slices (and ``<CASE>_<k>_mask.tif``).

    Slices are ordered by the number k. Images may be 1-channel (H, W) or multi-channel
    (H, W, C); masks are nonzero = True.

    Args:
        folder: the case folder.
        masks: "ignore" (do not read masks), "optional" (read them if present: all or none),
            "required" (every slice needs one) or "only" (read masks, no images).
        mask_suffix: the label files' suffix (``_mask`` for tumour, ``_brain`` for brain masks).
    """
    folder = Path(folder)
    numbers, image_files, mask_files = _kaggle_files(folder, masks, mask_suffix)
    if masks == "only":
        names = tuple(mask_files[k].name.replace(mask_suffix + ".", ".", 1) for k in numbers)
        mask = _stack_labels(folder, mask_files, numbers, None)
        return Case(folder.resolve().name, None, mask, Geometry(folder, "kaggle", slice_names=names))
    slices = []
    for k in numbers:
        array = _read_tiff(image_files[k])
        array = array[..., None] if array.ndim == 2 else array
        if slices and array.shape != slices[0].shape:
            raise InputError(
                f"{folder}: mixed slice sizes or channel counts ({slices[0].shape} and {array.shape} in {image_files[k].name})"
            )
        slices.append(array)
    image = np.stack(slices)
    mask = _stack_labels(folder, mask_files, numbers, image.shape[1:3]) if mask_files else None
    names = tuple(image_files[k].name for k in numbers)
    # the resolved name: "." or "cases/.." would otherwise become case ids that escape the output folder
    return Case(folder.resolve().name, image, mask, Geometry(folder, "kaggle", slice_names=names))


def read_label(case: Case, suffix: str) -> np.ndarray | None:
    """Read the extra label stack stored beside a case (e.g. ``_brain``), or None if it has none.

    Kaggle: ``<CASE>_<k><suffix>.tif`` in the case folder; NIfTI: ``<case><suffix>.nii[.gz]``
    beside the volume.
    """
    geometry = case.geometry
    if geometry.format == "kaggle":
        if not _slice_files(geometry.source, suffix):
            return None
        return read_kaggle_case(geometry.source, masks="only", mask_suffix=suffix).mask
    if geometry.format == "nifti":
        sibling = _sibling_label(geometry.source, suffix)
        if sibling is None:
            return None
        from flairseg.volumes import read_nifti

        return read_nifti(geometry.source, mask_path=sibling).mask
    return None


def _sibling_label(path: Path, suffix: str) -> Path | None:
    stem = _nifti_stem(path)
    for ext in NIFTI_SUFFIXES:
        candidate = path.with_name(stem + suffix + ext)
        if candidate.is_file():
            return candidate
    return None


def _read_volume_case(path: Path, masks: MaskPolicy, mask_suffix: str, resample: bool = False) -> Case:
    from flairseg.volumes import read_nifti

    stem = _nifti_stem(path)
    if masks == "only":
        label = read_nifti(path, case_id=stem.removesuffix(mask_suffix))
        return Case(label.case_id, None, label.image[..., 0] != 0, label.geometry)
    from flairseg.sequences import LABEL, is_label_name, name_of
    from flairseg.volumes import read_named_sequences

    named = name_of(path)
    if (named is not None and named.kind == LABEL) or (named is None and is_label_name(path)):
        raise InputError(f"{path.name} is named like a label volume (segmentation or mask), not an image; give the case's FLAIR")
    if named is not None and named.kind != "flair":
        raise InputError(f"{path.name} is the {named.kind} volume of case {named.case_id} ({named.convention} naming), not a FLAIR; "
                         "give the case's FLAIR file or its folder")
    mask_path = _sibling_label(path, mask_suffix) if masks != "ignore" else None
    if named is not None:
        return read_named_sequences(path, masks, mask_path, resample, tumour_labels=mask_suffix == "_mask")
    if masks == "required" and mask_path is None:
        raise InputError(f"{path} has no mask beside it ({stem}{mask_suffix}.nii.gz), and masks are required here")
    return dataclasses.replace(read_nifti(path, mask_path=mask_path, case_id=stem), sequences=(("flair", str(path.resolve())),))


def find_cases(path: str | os.PathLike, masks: MaskPolicy = "optional", mask_suffix: str = "_mask") -> list[Path]:
    """List the cases under ``path``: itself if it is one case, else its case folders and volume files.

    A case is a Kaggle folder of TIFF slices, a DICOM series folder, or a NIfTI file. With
    masks="only" a folder's NIfTI cases are its ``*<mask_suffix>.nii[.gz]`` files (or all of
    them when none has the suffix); otherwise NIfTI files ending in the suffix are labels, not cases.
    """
    from flairseg.volumes import is_dicom_folder

    root = Path(path)
    if not root.exists():
        raise InputError(f"{root} does not exist")
    if root.is_file():
        if not _is_nifti(root):
            raise InputError(f"{root} is not a case: give a Kaggle case folder, a DICOM series folder or a .nii/.nii.gz file")
        return [root]
    if _has_tiffs(root) or is_dicom_folder(root):
        return [root]
    children = sorted(root.iterdir())
    volumes = [p for p in children if p.is_file() and _is_nifti(p)]
    labelled = [p for p in volumes if _nifti_stem(p).endswith(mask_suffix)]
    if masks == "only":
        volumes = labelled or volumes
    else:
        volumes = [p for p in volumes if p not in labelled and _is_image_volume(p)]
    subfolders = [p for p in children if p.is_dir() and not p.name.startswith(".") and p.name != "derivatives"]
    folders = [p for p in subfolders if _has_tiffs(p) or is_dicom_folder(p)]
    if masks != "only":
        volumes += [flair for folder in subfolders if folder not in folders for flair in _named_flairs(folder)]
    cases = folders + volumes
    if not cases:
        raise InputError(f"{root} holds no cases (Kaggle TIFF folders, DICOM series folders, NIfTI files, "
                         "BraTS / nnU-Net case folders or a BIDS dataset with FLAIR images)")
    return cases


def _is_image_volume(path: Path) -> bool:
    """A NIfTI file that can be a case: a FLAIR by its name, or a file no naming convention claims."""
    from flairseg.sequences import is_label_name, name_of

    named = name_of(path)
    return named.kind == "flair" if named is not None else not is_label_name(path)


def _named_flairs(folder: Path) -> list[Path]:
    """The FLAIR files named by a convention in a case folder (BraTS, nnU-Net) or a BIDS subject folder below it."""
    from flairseg.sequences import name_of

    candidates = [p for p in sorted(folder.iterdir()) if p.is_file() and _is_nifti(p)]
    candidates += sorted(folder.glob("anat/*.nii*"))  # BIDS: a subject's or a session's anat folder
    if folder.name.startswith("sub-"):  # BIDS: sub-<s>/ses-<x>/anat
        candidates += sorted(folder.glob("ses-*/anat/*.nii*"))
    return [p for p in candidates if (named := name_of(p)) is not None and named.kind == "flair"]


def case_size(path: Path) -> int:
    """A cheap measure of a case's work, without reading its pixels: slice files of a folder, voxels of a volume."""
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file()]
        slices = [p for p in files if (match := _SLICE_NAME.match(p.name)) is not None and not match["suffix"]]
        return len(slices) or len(files)  # Kaggle slices, else (DICOM) every file
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
    stem = _nifti_stem(path)
    if masks == "only":
        return stem.removesuffix(mask_suffix)
    named = name_of(path)
    return named.case_id if named is not None else stem


def index_mask_cases(root: str | os.PathLike, mask_suffix: str = "_mask") -> dict[str, Path]:
    """{case id: path} of the mask cases under ``root`` (see :func:`find_cases` with masks="only"); ids must be unique."""
    index: dict[str, Path] = {}
    for path in find_cases(root, masks="only", mask_suffix=mask_suffix):
        case_id = case_id_of(path, masks="only", mask_suffix=mask_suffix)
        if case_id in index:
            raise InputError(f"{root}: case id {case_id} appears twice ({index[case_id].name}, {path.name})")
        index[case_id] = path
    return index


def _case_format(path: Path) -> str:
    """What a case path is: "nifti" (a volume file), "kaggle" (a folder of TIFF slices) or "dicom" (a series folder)."""
    from flairseg.volumes import is_dicom_folder

    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_file():
        if not _is_nifti(path):
            raise InputError(f"{path} is not a .nii/.nii.gz volume nor a case folder")
        return "nifti"
    if _has_tiffs(path):
        return "kaggle"
    if is_dicom_folder(path):
        return "dicom"
    if not any(path.iterdir()):
        raise InputError(f"{path} is empty")
    raise InputError(f"{path} holds no TIFF slices and no DICOM series; is it a folder of cases?")


def read_case(path: str | os.PathLike, masks: MaskPolicy = "optional", mask_suffix: str = "_mask", resample: bool = False) -> Case:
    """Read one case: a Kaggle TIFF folder, a DICOM series folder or a NIfTI file.

    For NIfTI, the mask is the file ``<name><mask_suffix>.nii[.gz]`` beside the volume. A FLAIR
    named by a convention of :mod:`flairseg.sequences` brings its case's other sequences (with
    ``resample``, those on another grid are resampled onto the FLAIR's). DICOM series carry no masks.
    """
    from flairseg.volumes import read_dicom_series

    if masks not in MASK_POLICIES:
        raise ValueError(f"masks must be one of {MASK_POLICIES}, not {masks!r}")
    path = Path(path)
    kind = _case_format(path)
    if kind == "nifti":
        return _read_volume_case(path, masks, mask_suffix, resample)
    if kind == "kaggle":
        return read_kaggle_case(path, masks=masks, mask_suffix=mask_suffix)
    if masks in ("required", "only"):
        raise InputError(f"{path} is a DICOM series, which carries no masks; give masks as NIfTI or TIFF")
    return read_dicom_series(path)


def check_case(path: str | os.PathLike, masks: MaskPolicy = "optional", mask_suffix: str = "_mask") -> None:
    """Check what a case's file names and headers declare, as :func:`read_case` would, without decoding pixels."""
    from flairseg.volumes import check_headers

    path = Path(path)
    if _case_format(path) == "kaggle":
        _kaggle_files(path, masks, mask_suffix)
    else:
        check_headers(path)


def mask_output_name(case: Case, suffix: str = "_mask") -> str:
    """File or folder name under which a case's mask is written: the case folder, or ``<case><suffix>.nii.gz``.

    Raises InputError for a case id that could leave the output folder ("", ".", "..", separators).
    """
    if case.case_id in ("", ".", "..") or any(c in case.case_id for c in ("/", "\\", "\0")):
        raise InputError(f"case id {case.case_id!r} cannot name an output; give the case a plain name (no '..' or separators)")
    if case.geometry.format == "kaggle":
        return case.case_id
    return f"{case.case_id}{suffix}.nii.gz"


def write_mask(case: Case, mask: np.ndarray, path: str | os.PathLike, suffix: str = "_mask") -> Path:
    """Write a mask on the case's grid the way the case came, atomically, and return the path written.

    Kaggle: a folder ``path`` of ``<CASE>_<k><suffix>.tif`` (uint8 0/255), named after the
    input slices (added file by file to a folder that exists). Volumes: a NIfTI file ``path``
    with the input's header and geometry.
    """
    from flairseg.outputs import atomic_dir

    mask = np.asarray(mask)
    if mask.shape != case.shape:
        raise InputError(f"mask shape {mask.shape} does not match case {case.case_id} grid {case.shape}")
    out = Path(path)
    if case.geometry.format != "kaggle":
        from flairseg.volumes import write_volume_mask

        write_volume_mask(case, mask.astype(bool), out)
        return out
    import tifffile

    from flairseg.outputs import atomic_file

    if out.is_dir():  # the case's folder holds other outputs (the other task's masks): add the files one by one
        for name, plane in zip(case.geometry.slice_names, mask):
            with atomic_file(out / f"{name.rsplit('.', 1)[0]}{suffix}.tif") as tmp:
                tifffile.imwrite(tmp, (plane != 0).astype(np.uint8) * 255, photometric="minisblack")
        return out
    with atomic_dir(out) as tmp:
        for name, plane in zip(case.geometry.slice_names, mask):
            stem = name.rsplit(".", 1)[0]
            tifffile.imwrite(tmp / f"{stem}{suffix}.tif", (plane != 0).astype(np.uint8) * 255, photometric="minisblack")
    return out


def write_image(case: Case, image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an image on the case's grid the way the case came, atomically (e.g. a skull-stripped case).

    Kaggle: a folder ``path`` of TIFF slices named exactly like the input's, in the input's
    dtype. Volumes: a float32 NIfTI file ``path`` (first channel) with the input's header.
    """
    from flairseg.outputs import atomic_dir

    image = np.asarray(image)
    if image.shape[:3] != case.shape:
        raise InputError(f"image shape {image.shape} does not match case {case.case_id} grid {case.shape}")
    out = Path(path)
    if case.geometry.format != "kaggle":
        from flairseg.volumes import write_volume_image

        write_volume_image(case, image[..., 0] if image.ndim == 4 else image, out)
        return out
    import tifffile

    with atomic_dir(out) as tmp:
        for name, plane in zip(case.geometry.slice_names, image):
            rgb = plane.ndim == 3 and plane.shape[-1] == 3
            tifffile.imwrite(tmp / name, plane if plane.ndim == 2 or rgb else plane[..., 0], photometric="rgb" if rgb else "minisblack")
    return out

def sample_case_path() -> Path:
    """Folder of the bundled sample case (TCGA_CS_4942_19970222, Kaggle layout; see its README)."""
    from importlib.resources import files

    return Path(str(files("flairseg") / "sample" / "TCGA_CS_4942_19970222"))
