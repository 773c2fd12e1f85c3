"""Medical volumes with exact geometry: NIfTI (nibabel) and DICOM series (SimpleITK).

Volumes are reoriented to the processing layout on read and restored on write:
slices inferior to superior, rows anterior to posterior, columns patient right to left
(nibabel axis codes L, P, S, transposed to z, y, x). Only axis permutations and flips
are applied (oblique volumes take their closest axes), so the round trip is exact and a
written mask lines up voxel for voxel with the input, under the input's own header.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from flairseg.errors import InputError
from flairseg.io import Case, Geometry
from flairseg.outputs import atomic_file

PROCESSING_AXES = ("L", "P", "S")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _squeeze_to_3d(data: np.ndarray, path: Path) -> np.ndarray:
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{path} is {data.ndim}-D (shape {data.shape}); flairseg needs one 3-D volume per file")
    if min(data.shape) == 0:
        raise InputError(f"{path} has an empty dimension (shape {data.shape})")
    return data


def _check_finite(data: np.ndarray, path: Path) -> None:
    if np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.complexfloating):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise InputError(f"{path} holds {bad} NaN or infinite voxels; fix the volume (e.g. set them to 0) and retry")


def _orientation(affine: np.ndarray, path: Path) -> np.ndarray:
    from nibabel import orientations

    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(f"{path} has a degenerate or non-finite affine; its header geometry is broken")
    source = orientations.io_orientation(affine)
    return orientations.ornt_transform(source, orientations.axcodes2ornt(PROCESSING_AXES))


def _to_processing(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    from nibabel import orientations

    return np.ascontiguousarray(orientations.apply_orientation(data, ornt).transpose(2, 1, 0))


def _inverse(ornt: np.ndarray) -> np.ndarray:
    """The orientation transform that undoes ``ornt`` (input axis i went to axis ornt[i, 0], flipped if -1)."""
    inverse = np.empty_like(ornt)
    targets = ornt[:, 0].astype(int)
    inverse[targets, 0] = np.arange(len(ornt))
    inverse[targets, 1] = ornt[:, 1]
    return inverse


def _from_processing(array: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    from nibabel import orientations

    return np.ascontiguousarray(orientations.apply_orientation(array.transpose(2, 1, 0), _inverse(ornt)))


def _spacing(zooms: tuple[float, ...], ornt: np.ndarray, path: Path) -> tuple[float, float, float]:
    zooms_in = np.asarray(zooms[:3], dtype=float)
    if zooms_in.size < 3 or not np.isfinite(zooms_in).all() or (zooms_in <= 0).any():
        raise InputError(f"{path} has voxel spacing {tuple(zooms_in)}; spacing must be three positive numbers")
    processed = np.empty(3)
    processed[ornt[:, 0].astype(int)] = zooms_in
    return (float(processed[2]), float(processed[1]), float(processed[0]))


def _load_nifti(path: Path):  # -> (nibabel image, data array)
    import nibabel as nib

    if not path.is_file():
        raise InputError(f"{path} does not exist")
    try:
        image = nib.load(str(path))
        if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
            raise InputError(f"{path} is not a NIfTI volume")
        data = np.asanyarray(image.dataobj)
    except InputError:
        raise
    except Exception as exc:  # nibabel, gzip and zlib raise many types for corrupt or truncated files
        raise InputError(f"cannot read {path}: not a valid NIfTI file or truncated ({type(exc).__name__})") from None
    return image, _squeeze_to_3d(data, path)


def read_nifti(path: str | os.PathLike, mask_path: str | os.PathLike | None = None, case_id: str | None = None) -> Case:
    """Read a 3-D NIfTI volume (and optionally its mask on the same grid) in the processing layout."""
    path = Path(path)
    image, data = _load_nifti(path)
    _check_finite(data, path)
    ornt = _orientation(image.affine, path)
    spacing = _spacing(tuple(np.linalg.norm(image.affine[:3, :3], axis=0)), ornt, path)
    mask = None
    if mask_path is not None:
        mask_path = Path(mask_path)
        mask_image, mask_data = _load_nifti(mask_path)
        if mask_data.shape != data.shape or not np.allclose(mask_image.affine, image.affine, atol=1e-4):
            raise InputError(f"mask {mask_path.name} is not on the grid of {path.name} (shape or affine differ); resample it first")
        _check_finite(mask_data, mask_path)
        mask = _to_processing(mask_data != 0, ornt)
    name = path.name
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else name[: -len(".nii")]
    geometry = Geometry(
        source=path,
        format="nifti",
        spacing=spacing,
        affine=image.affine.copy(),
        header=image.header.copy(),
        ornt=ornt,
        input_shape=tuple(data.shape),
    )
    volume = _to_processing(data, ornt).astype(np.float32)[..., None]
    return Case(case_id or stem, volume, mask, geometry)


@contextlib.contextmanager
def _quiet_simpleitk() -> Iterator[None]:
    import SimpleITK as sitk

    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def is_dicom_folder(folder: str | os.PathLike) -> bool:
    """Cheap check: the folder holds a ``.dcm`` file or a file with the DICOM preamble (first few looked at)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    files = [p for p in sorted(folder.iterdir()) if p.is_file()]
    if any(p.suffix.lower() == ".dcm" for p in files):
        return True
    for candidate in files[:5]:
        try:
            with candidate.open("rb") as handle:
                if handle.read(132)[128:132] == b"DICM":
                    return True
        except OSError:
            continue
    return False


def read_dicom_series(folder: str | os.PathLike, case_id: str | None = None) -> Case:
    """Read the one DICOM series in a folder (slices sorted by GDCM) in the processing layout."""
    import SimpleITK as sitk

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"DICOM folder {folder} does not exist")
    reader = sitk.ImageSeriesReader()
    with _quiet_simpleitk():
        series = reader.GetGDCMSeriesIDs(str(folder))
        if not series:
            raise InputError(f"{folder} holds no readable DICOM series")
        if len(series) > 1:
            raise InputError(f"{folder} holds {len(series)} DICOM series ({', '.join(series[:3])}); put each series in its own folder")
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
        try:
            image = reader.Execute()
        except RuntimeError as exc:
            raise InputError(f"cannot read the DICOM series in {folder}: {str(exc).strip().splitlines()[-1]}") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{folder}: expected one 3-D greyscale series, got {image.GetDimension()}-D with {image.GetNumberOfComponentsPerPixel()} components")
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing
    lps[:3, 3] = image.GetOrigin()
    affine = _LPS_TO_RAS @ lps
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (x, y, z) voxel axes, as the affine indexes them
    _check_finite(data, folder)
    ornt = _orientation(affine, folder)
    geometry = Geometry(
        source=folder,
        format="dicom",
        spacing=_spacing(tuple(spacing), ornt, folder),
        affine=affine,
        ornt=ornt,
        input_shape=tuple(data.shape),
    )
    volume = _to_processing(data, ornt).astype(np.float32)[..., None]
    return Case(case_id or folder.name, volume, None, geometry)


def write_volume_mask(case: Case, mask: np.ndarray, path: str | os.PathLike, probability: bool = False) -> None:
    """Write a processing-layout mask (or probability map) as NIfTI on the input's grid, atomically.

    NIfTI inputs: the input's header (qform, sform and their codes kept), uint8 0/1 data
    (float32 for probabilities), no scaling. DICOM inputs: the series' affine as qform and
    sform with code 1 (scanner).
    """
    import nibabel as nib

    geometry = case.geometry
    if geometry.format not in ("nifti", "dicom") or geometry.ornt is None or geometry.affine is None:
        raise InputError(f"case {case.case_id} did not come from a volume; write it with flairseg.io.write_mask")
    array = np.asarray(mask)
    if array.shape != case.shape:
        raise InputError(f"mask shape {array.shape} does not match case {case.case_id} grid {case.shape}")
    dtype = np.float32 if probability else np.uint8
    data = _from_processing(array.astype(dtype) if probability else (array != 0).astype(dtype), geometry.ornt)
    if geometry.format == "nifti":
        header = geometry.header.copy()
        header.set_data_dtype(dtype)
        image = nib.Nifti1Image(data, None, header=header) if isinstance(header, nib.Nifti1Header) else nib.Nifti2Image(data, None, header=header)
    else:
        image = nib.Nifti1Image(data, geometry.affine)
        image.set_qform(geometry.affine, code=1)
        image.set_sform(geometry.affine, code=1)
        image.header.set_xyzt_units("mm")
    image.header.set_slope_inter(1.0, 0.0)
    payload = image.to_bytes()
    target = Path(path)
    if target.name.lower().endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    with atomic_file(target) as tmp:
        tmp.write_bytes(payload)
