"""Medical volumes with exact geometry: NIfTI (nibabel) and DICOM series (SimpleITK).

Volumes are reoriented to the processing layout on read and restored on write:
slices inferior to superior, rows anterior to posterior, columns patient right to left
(nibabel axis codes L, P, S, transposed to z, y, x). Only axis permutations and flips
are applied (oblique volumes take their closest axes, as ``io_orientation`` picks them),
so the round trip is exact and a written mask lines up voxel for voxel with the input,
under the input's own header.

Three choices worth knowing:

- The spacing is the length of the affine's columns (the affine nibabel uses: sform when
  its code is set, else qform, else pixdim). It equals the header zooms in consistent
  files and stays right in files whose pixdim disagrees with their sform, where the
  NIfTI standard says the sform wins. The stored pixdim must still be positive and
  finite: nibabel's loader would silently turn a zero into 1 mm.
- A DICOM series must sit on a regular grid: SimpleITK averages the slice distance and
  only warns, so a missing slice, uneven spacing or a tilted gantry would misplace the
  mask. Each slice's position must lie within a tenth of a voxel of its grid position.
- GDCM leaves out of a series every file it cannot parse, so a truncated end slice would vanish from the
  volume: a file of the folder that looks like DICOM (named ``.dcm``, or a Part 10 file) and is not in the
  series is refused, by name; other files (a README, ``.DS_Store``, a NIfTI mask) are ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import logging
import math
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from flairseg.cases import NIFTI_SUFFIXES, Case, Geometry, check_mask_values, nifti_stem
from flairseg.dicom_pixels import ELEMENTS_ROOM, PixelBytes, looks_like_dicom, pixel_bytes
from flairseg.errors import InputError, read_denied
from flairseg.outputs import atomic_file


PROCESSING_AXES = ("L", "P", "S")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_POSITION_TOLERANCE = 0.1  # how far a DICOM slice may sit off its grid position, in units of the smallest voxel size
_ORIENTATION_TOLERANCE = 1e-4  # direction cosines of one series' slices agree to this (about 0.006 degrees)
_ORTHONORMAL_TOLERANCE = 1e-3  # how far the two direction cosines may be from unit length and from orthogonal
_DICOM_SUFFIX = ".dcm"
DICOM_DIRECTORY = "DICOMDIR"  # the index of a DICOM file set, always so named (PS3.10): no image
_STDERR_LOCK = threading.Lock()  # file descriptor 2 is the process's: one redirection at a time
MAX_VOXELS = 2**28  # 268 M voxels (e.g. 1024 x 1024 x 256): far above any brain MRI, a bound on memory


@contextlib.contextmanager
def _quiet_nibabel() -> Iterator[None]:
    """Silence nibabel's header-fix messages on stderr (its LoggingOutputSuppressor drops the handler for good)."""
    logger = logging.getLogger("nibabel.global")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _quiet_simpleitk() -> Iterator[None]:
    """Silence ITK's warnings and what its codecs (libjpeg, OpenJPEG) print on stderr; the checks here report
    problems as InputError instead."""
    import SimpleITK as sitk

    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        with _stderr_discarded():
            yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


@contextlib.contextmanager
def _stderr_discarded() -> Iterator[None]:
    """Point file descriptor 2, where C libraries print, at the null device (one thread at a time); the command line
    prints through a descriptor of its own meanwhile (``cli``), so its messages are never taken along."""
    with _STDERR_LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _volume_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int, int]:
    """The 3-D shape of a volume, trailing singleton dimensions dropped."""
    squeezed = tuple(shape)
    while len(squeezed) > 3 and squeezed[-1] == 1:
        squeezed = squeezed[:-1]
    if len(squeezed) != 3:
        raise InputError(f"{path} is {len(shape)}-D (shape {tuple(shape)}); flairseg needs one 3-D volume per file")
    if 0 in squeezed:
        raise InputError(f"{path} has an empty dimension (shape {tuple(shape)}); re-export the volume")
    return squeezed  # type: ignore[return-value]


def _check_spacing(spacing: Any, where: Path) -> None:
    values = np.asarray(spacing, dtype=float)
    if not np.isfinite(values).all() or (values <= 0).any():
        shown = tuple(float(v) for v in values.round(4))
        raise InputError(
            f"{where} has voxel spacing {shown}; spacing must be positive and finite: fix the header or re-export"
        )


def _check_finite(data: np.ndarray, where: Path) -> None:
    if data.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise InputError(
                f"{where} holds {bad} NaN or infinite voxels; fix the volume (e.g. set them to 0) and retry"
            )


def _beyond_float32(data: np.ndarray) -> float | None:
    """The value of ``data`` furthest beyond what float32, the type flairseg computes in, holds (it would become
    infinite); None when float32 holds them all."""
    if data.dtype.kind != "f" or data.dtype.itemsize <= 4:
        return None
    low, high, limit = float(data.min()), float(data.max()), float(np.finfo(np.float32).max)
    if max(-low, high) <= limit:
        return None
    return high if high > limit else low


def _check_float32_range(data: np.ndarray, stored: Any, path: Path) -> None:
    """Refuse finite values that float32 cannot hold (:func:`_beyond_float32`), naming their source: the header's
    scaling (``scl_slope``, ``scl_inter``, which nibabel's ``stored`` array proxy applies to the stored values) or
    the values themselves."""
    extreme, limit = _beyond_float32(data), float(np.finfo(np.float32).max)
    if extreme is None:
        return
    slope, inter = float(stored.slope), float(stored.inter)
    if (slope, inter) != (1.0, 0.0):
        raise InputError(
            f"{path}: its header's scaling (scl_slope {slope:.6g}, scl_inter {inter:.6g}) takes the stored values "
            f"to {extreme:.3g}, beyond float32 (at most {limit:.3g} in size); fix scl_slope and scl_inter in the header"
        )
    raise InputError(
        f"{path} holds the value {extreme:.3g}, beyond float32 (at most {limit:.3g} in size); rescale the volume"
    )


def _check_size(image: Any, shape: tuple[int, int, int], path: Path) -> None:
    """Refuse absurd dimensions before any voxel is read: above MAX_VOXELS, or more bytes than the file holds."""
    from flairseg.memory import check

    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > MAX_VOXELS:
        raise InputError(
            f"{path} claims {' x '.join(map(str, shape))} = {voxels:,} voxels, more than flairseg reads "
            f"({MAX_VOXELS:,}); check the dimensions in its header"
        )
    check(voxels, 1, str(path))
    if not path.name.lower().endswith(".gz"):
        # where the data begin, as the file says (nibabel's loaded header says 0; its proxy keeps the offset)
        offset = getattr(image.dataobj, "offset", image.header.get_data_offset())
        needed = int(offset) + voxels * image.header.get_data_dtype().itemsize
        _check_holds(path, path.stat().st_size, needed, "bytes")


def _check_holds(path: Path, held: int, described: int, what: str) -> None:
    """Refuse a file that holds fewer bytes than its header describes: a reader would make up the rest."""
    if held < described:
        raise InputError(
            f"{path} holds {held:,} {what} but its header describes {described:,}: "
            "the file is truncated or its dimensions are wrong"
        )


# NIfTI-1 and NIfTI-2 headers by their size: where vox_offset lies and its type, and where extensions begin
_HEADERS = {348: (108, "f4", 352), 540: (168, "i8", 544)}


def _check_extensions(path: Path) -> None:
    """Refuse a NIfTI file whose header extensions nibabel would read into memory beyond the budget (a 641 kB .nii.gz
    declaring a 600 MB one) or without end (an extension of no size): it reads them whole before anything else. The
    chain is walked as nibabel walks it, over ``vox_offset`` minus the header, its contents skipped, not kept."""
    import zlib

    try:
        _walk_extensions(path)
    except (OSError, EOFError, zlib.error):  # no gzip, or cut short: nibabel names the fault as it reads the header
        return


def _walk_extensions(path: Path) -> None:
    """:func:`_check_extensions`' walk, which reading faults end."""
    from nibabel.openers import ImageOpener

    from flairseg import memory

    with ImageOpener(path) as handle:
        head = handle.read(544)
        order = next((o for o in "<>" if len(head) >= 4 and np.frombuffer(head[:4], o + "i4")[0] in _HEADERS), None)
        if order is None:
            return  # no NIfTI header: nibabel says so
        at, kind, start = _HEADERS[int(np.frombuffer(head[:4], order + "i4")[0])]
        if len(head) < start or head[start - 4] == 0:
            return  # the flag that says no extension follows
        left, total = float(np.frombuffer(head[at : at + int(kind[1])], order + kind)[0]) - start, 0
        budget = memory.budget()
        handle.seek(start)
        while left >= 16:
            declared = handle.read(8)
            if len(declared) < 8:
                return  # the file ends: nibabel names the fault
            size = int(np.frombuffer(declared[:4], order + "i4")[0])
            if size < 16:
                raise InputError(f"{path} declares a header extension of {size} bytes (at least 16); re-export it")
            total += size
            if total > budget:
                raise InputError(
                    f"{path} declares header extensions of {total / 2**20:,.0f} MB, more than the memory budget of "
                    f"{budget / 2**20:,.0f} MB (--max-memory); re-export it without them"
                )
            handle.seek(size - 8, os.SEEK_CUR)
            left -= size


def _nifti_header(path: Path) -> tuple[Any, tuple[int, int, int]]:
    """A NIfTI file's nibabel image (no voxel read yet) and 3-D shape, its header checked; every failure is an
    InputError.
    """
    import nibabel as nib
    from nibabel.openers import ImageOpener

    if not path.is_file():
        raise InputError(f"{path} does not exist")
    try:
        path.open("rb").close()  # nibabel reports a file it may not open as no NIfTI file
    except PermissionError:
        raise read_denied(path) from None
    try:
        _check_extensions(path)
        with _quiet_nibabel():
            image = nib.load(path, mmap=False)
        if not isinstance(image, nib.Nifti1Image):  # Nifti2Image derives from it; .img/.hdr pairs do not
            raise InputError(
                f"{path} is a {type(image).__name__}, not a single-file NIfTI volume; convert it to .nii.gz"
            )
        shape = _volume_shape(image.shape, path)
        _check_size(image, shape, path)
        with ImageOpener(path) as handle:  # the header as stored, before nibabel's fixes
            _check_spacing(type(image.header).from_fileobj(handle, check=False)["pixdim"][1:4], path)
        _orientation(image.affine, path)  # a degenerate affine is a header fault, found before any voxel is read
    except InputError:
        raise
    except Exception as exc:  # nibabel, gzip and zlib raise many types for corrupt or truncated files
        raise InputError(
            f"cannot read {path}: not a valid NIfTI file, or truncated ({type(exc).__name__}); re-export it"
        ) from None
    return image, shape


def _load_nifti(path: Path) -> tuple[Any, np.ndarray]:
    """A NIfTI file's nibabel image and its 3-D data, checked; every failure is an InputError."""
    image, shape = _nifti_header(path)
    try:
        data = np.asanyarray(image.dataobj).reshape(shape)
    except Exception as exc:  # nibabel, gzip and zlib raise many types for corrupt or truncated files
        raise InputError(
            f"cannot read {path}: not a valid NIfTI file, or truncated ({type(exc).__name__}); re-export it"
        ) from None
    if data.dtype.kind not in "biuf":
        raise InputError(f"{path} holds {data.dtype} voxels; flairseg needs one real-valued (grey-level) channel")
    _check_finite(data, path)
    _check_float32_range(data, image.dataobj, path)
    return image, data


def _orientation(affine: np.ndarray, where: Path) -> np.ndarray:
    """The nibabel orientation transform from the affine's voxel axes to the processing axes (L, P, S)."""
    from nibabel import orientations

    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(f"{where} has a degenerate or non-finite affine; fix its header geometry (qform/sform)")
    source = orientations.io_orientation(affine)
    if np.isnan(source).any():
        raise InputError(
            f"{where} has a degenerate affine (a voxel axis of almost zero length); fix its header geometry"
        )
    return orientations.ornt_transform(source, orientations.axcodes2ornt(PROCESSING_AXES))


def _spacing(affine: np.ndarray, ornt: np.ndarray) -> tuple[float, float, float]:
    """Millimetres along (slice, row, column) of the processing array."""
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    processed = np.empty(3)
    processed[ornt[:, 0].astype(int)] = zooms  # input axis i becomes L/P/S axis ornt[i, 0]
    return (float(processed[2]), float(processed[1]), float(processed[0]))


def _to_processing(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    from nibabel import orientations

    return np.ascontiguousarray(orientations.apply_orientation(data, ornt).transpose(2, 1, 0))


def _float32_processing(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """The volume in processing layout as a float32 array of its own (never a view of a memory-mapped file), made
    with one copy of the volume, not two.
    """
    return np.require(_to_processing(data, ornt), np.float32, ["C", "O"])


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


def read_nifti(path: str | os.PathLike, mask_path: str | os.PathLike | None = None, case_id: str | None = None) -> Case:
    """Read a 3-D NIfTI volume (and optionally its mask on the same grid) in the processing layout.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file holding one 3-D volume (trailing singleton
            dimensions are dropped).
        mask_path: optional mask on the same grid (same shape and affine), 0 and positive whole-number labels
            (:func:`~flairseg.cases.check_mask_values`); nonzero = True.
        case_id: the case's name; default the file name without ``.nii``/``.nii.gz``.
    """
    path = Path(path)
    image, data = _load_nifti(path)
    ornt = _orientation(image.affine, path)
    stem = nifti_stem(path)
    mask = None
    if mask_path is not None:
        mask_path = Path(mask_path)
        mask_image, mask_data = _load_nifti(mask_path)
        _check_mask_grid(mask_path, (mask_image.affine, mask_data.shape), path, (image.affine, data.shape))
        check_mask_values(mask_data, case_id or stem, mask_path.name)
        mask = _to_processing(mask_data != 0, ornt)
    geometry = Geometry(
        source=path,
        format="nifti",
        spacing=_spacing(image.affine, ornt),
        affine=image.affine.copy(),
        header=image.header.copy(),
        ornt=ornt,
        input_shape=tuple(data.shape),
    )
    volume = _float32_processing(data, ornt)[..., None]
    return Case(case_id or stem, volume, mask, geometry)


def check_named_sequences(flair: Path, pre: Path | None, post: Path | None) -> None:
    """Refuse sequence files given by name (``--flair``, ``--t1``, ``--t1c``) that are no such image: a file named like
    a label volume, one a naming convention names as another sequence (a FLAIR as a T1) or as a volume of another
    case than the FLAIR's, or a T1 or T1c that is the FLAIR file itself."""
    from flairseg.sequences import is_label_file, name_of

    given = [(option, path) for option, path in (("--flair", flair), ("--t1", pre), ("--t1c", post)) if path]
    for option, path in given:
        if is_label_file(path):
            raise InputError(f"{option} {path} is named like a label volume (segmentation or mask), not an image")
        if option != "--flair" and os.path.samefile(path, flair):
            raise InputError(f"{option} {path} is the FLAIR itself; leave it out, and a copy of the FLAIR stands in")
    case = name_of(flair)
    kinds = {"--flair": "flair", "--t1": "t1", "--t1c": "t1c"}
    for option, path in given:
        named, kind = name_of(path), kinds[option]
        if named is not None and named.kind != kind:
            raise InputError(f"{option} {path} is the {named.kind} volume of case {named.case_id}, not a {kind}")
        if named is not None and case is not None and named.key != case.key:
            raise InputError(
                f"{option} {path} is a volume of case {named.case_id}, and --flair {flair} of case {case.case_id}: "
                "give the sequences of one case"
            )


def read_sequences(
    flair: str | os.PathLike,
    pre: str | os.PathLike | None = None,
    post: str | os.PathLike | None = None,
    mask_path: str | os.PathLike | None = None,
    case_id: str | None = None,
    resample: bool = False,
) -> Case:
    """One case from separate NIfTI sequences on the FLAIR's grid: channels (pre-contrast T1, FLAIR, post-contrast T1).

    A missing T1 or T1c is filled with a copy of the FLAIR (what the model does for a FLAIR-only
    input); with neither, the case has the FLAIR alone. ``Case.sequences`` records the file behind
    each channel. Sequences on another grid (shape or affine) are refused, or with ``resample``
    resampled onto the FLAIR's grid in world coordinates (SimpleITK, linear; 0 outside).
    """
    from flairseg.sequences import name_of

    named = name_of(Path(flair))
    _check_case_memory(Path(flair), pre, post)
    flair_case = read_nifti(
        flair, mask_path=mask_path, case_id=case_id or (named.case_id if named is not None else None)
    )
    if pre is None and post is None:
        return dataclasses.replace(flair_case, sequences=(("flair", str(Path(flair).resolve())),))
    image = flair_case.image[..., 0]
    channels, record = [], []
    for role, path in (("pre", pre), ("flair", None), ("post", post)):
        if role == "flair":
            channels.append(image)
            record.append(("flair", str(Path(flair).resolve())))
            continue
        if path is None:
            channels.append(image)
            record.append((role, "copy of FLAIR"))  # the stand-in the released model is trained for
            continue
        other = read_nifti(path)
        same_grid = _same_grid(_grid_of(other), _grid_of(flair_case))
        if not same_grid and not resample:
            raise _off_flair_grid(Path(path), Path(flair))
        channels.append(
            other.image[..., 0] if same_grid else _resampled_onto(Path(path), Path(flair), flair_case.geometry.ornt)
        )
        record.append((role, str(Path(path).resolve()) + ("" if same_grid else " (resampled onto the FLAIR)")))
    return dataclasses.replace(flair_case, image=np.stack(channels, axis=-1), sequences=tuple(record))


_Grid = tuple[np.ndarray, tuple[int, ...]]  # a volume's affine and its stored 3-D shape


def _grid_of(case: Case) -> _Grid:
    return case.geometry.affine, case.geometry.input_shape  # type: ignore[return-value]


def _same_grid(grid: _Grid, reference: _Grid) -> bool:
    """The rule for the files of one case read voxel for voxel together (a mask beside its image, a sequence beside
    its FLAIR): one stored shape, and affines equal to 1e-4. The headers declare both, so the header pass
    (:func:`check_headers`) applies it before any case is read, as reading does."""
    return tuple(grid[1]) == tuple(reference[1]) and bool(np.allclose(grid[0], reference[0], atol=1e-4))


def _check_mask_grid(mask: Path, grid: _Grid, image: Path, reference: _Grid) -> None:
    if not _same_grid(grid, reference):
        raise InputError(
            f"mask {mask.name} (shape {tuple(grid[1])}) is not on the grid of {image.name} (shape "
            f"{tuple(reference[1])}): shape or affine differ; resample the mask onto the image"
        )


def _off_flair_grid(path: Path, flair: Path) -> InputError:
    return InputError(
        f"{path.name} is not on the grid of the FLAIR {flair.name} (shape or affine differ); "
        "pass --resample to resample it onto the FLAIR, or resample it yourself"
    )


def _check_case_memory(flair: Path, pre: str | os.PathLike | None, post: str | os.PathLike | None) -> None:
    """A case of several files against the memory budget before any is decoded: its FLAIR's voxels times the channels
    :func:`read_sequences` makes of them (each file alone passes its own check)."""
    from flairseg.memory import check

    channels = 1 if pre is None and post is None else 3
    if channels > 1:
        _, shape = _nifti_header(flair)
        check(int(np.prod(shape, dtype=np.int64)), channels, f"case {flair} (with its other sequences)")


def _resampled_onto(path: Path, reference: Path, ornt: np.ndarray) -> np.ndarray:
    """The volume ``path`` resampled onto the grid of ``reference`` (world coordinates, linear), in the processing
    layout.
    """
    import SimpleITK as sitk

    with _quiet_simpleitk():
        try:
            moving, fixed = sitk.ReadImage(str(path), sitk.sitkFloat32), sitk.ReadImage(str(reference))
        except RuntimeError as exc:
            raise InputError(f"cannot read {path.name} to resample it: {str(exc).splitlines()[0]}") from None
        resampled = sitk.Resample(moving, fixed, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    data = sitk.GetArrayFromImage(resampled).transpose(2, 1, 0)  # SimpleITK (k, j, i) -> nibabel's (i, j, k)
    return _float32_processing(data, ornt)


def read_named_sequences(
    flair: Path,
    masks: str = "optional",
    mask_path: Path | None = None,
    resample: bool = False,
    tumour_labels: bool = True,
) -> Case:
    """A case found through its FLAIR file named by a convention of :mod:`flairseg.sequences`.

    The mask is ``mask_path`` when given, else (``tumour_labels``: the mask asked for is a tumour
    mask) BraTS ``seg`` labels (nonzero = the whole tumour), unless ``masks`` is "ignore".
    """
    from flairseg.sequences import name_of, siblings

    named = name_of(flair)
    found = siblings(flair)
    for kind in ("t1", "t1c"):
        if len(found.get(kind, [])) > 1:
            names = ", ".join(p.name for p in found[kind])
            raise InputError(
                f"case {named.case_id if named else flair.name}: more than one {kind} volume ({names}); "
                "keep one, or name the files with flairseg predict --flair/--t1/--t1c"
            )
    label = _case_label(flair, found, masks, mask_path, tumour_labels)
    if masks in ("required", "only") and label is None:
        raise InputError(f"{flair} has no segmentation beside it, and masks are required here")
    pre, post = _pre_and_post(found)
    return read_sequences(
        flair, pre, post, mask_path=label, case_id=named.case_id if named else None, resample=resample
    )


def _case_label(
    flair: Path, found: dict[str, list[Path]], masks: str, mask_path: Path | None, tumour_labels: bool
) -> Path | None:
    """The label file a FLAIR's case is read with: ``mask_path`` when given, else (``tumour_labels``: the mask asked
    for is a tumour mask) a BraTS case's ``seg`` labels among its :func:`~flairseg.sequences.siblings` ``found``;
    none where ``masks`` is "ignore"."""
    from flairseg.sequences import LABEL, name_of

    if masks == "ignore":
        return None
    if mask_path is not None:
        return mask_path
    named = name_of(flair)
    brats = named is not None and named.convention.startswith("brats")
    return found.get(LABEL, [None])[0] if brats and tumour_labels else None


def _pre_and_post(found: dict[str, list[Path]]) -> tuple[Path | None, Path | None]:
    """The T1 and T1c files a named FLAIR's case is read with, from its :func:`~flairseg.sequences.siblings`."""
    return found.get("t1", [None])[0], found.get("t1c", [None])[0]


def _visible_files(folder: Path) -> list[Path]:
    """The files of a folder, by name, hidden ones (``.DS_Store``, macOS's ``._`` copies) left out."""
    return [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]


def _named_dicom(path: Path) -> bool:
    return path.suffix.lower() == _DICOM_SUFFIX


def is_dicom_folder(folder: str | os.PathLike) -> bool:
    """Cheap check: the folder holds a DICOM slice (:func:`first_dicom_file`)."""
    folder = Path(folder)
    return folder.is_dir() and first_dicom_file(folder) is not None


def first_dicom_file(folder: Path) -> Path | None:
    """A ``.dcm`` file of the folder, else one of its first files that is DICOM by its first bytes (None: neither).

    A DICOMDIR is left out: it indexes a file set whose series lie in subfolders, so a media folder holding it is a
    folder of series, not one."""
    return first_dicom_of(_visible_files(folder))


def first_dicom_of(files: Sequence[Path]) -> Path | None:
    """Of a folder's visible ``files`` (by name), a ``.dcm`` one, else one of the first five that is DICOM by its
    first bytes (None: neither); a DICOMDIR left out (:func:`first_dicom_file`)."""
    files = [path for path in files if path.name != DICOM_DIRECTORY]
    return next(filter(_named_dicom, files), None) or next(filter(looks_like_dicom, files[:5]), None)


class _SliceHeaders(NamedTuple):
    """The geometry tags of each file of a DICOM series, in the series' order, read from its element structure
    without a pixel (:attr:`PixelBytes.geometry`): a tag the file lacks is absent from its dictionary."""

    names: tuple[str, ...]
    tags: tuple[dict[str, str], ...]

    def first_without(self, tag: str) -> int | None:
        """The index of the first slice whose header lacks ``tag``; None when all have it."""
        return next((k for k, tags in enumerate(self.tags) if tag not in tags), None)


def _slice_numbers(headers: _SliceHeaders, tag: str, count: int, what: str, folder: Path) -> np.ndarray:
    """(slices, count) numbers of a backslash-separated tag in every slice of the series; a slice that lacks the tag
    or holds anything but ``count`` finite numbers in it ends the read, named."""
    missing = headers.first_without(tag)
    if missing is not None:
        raise InputError(
            f"{folder}: slice {missing + 1} of {len(headers.names)} ({headers.names[missing]}) has no {what} tag, so "
            "its geometry is unknown (a reader would guess it); repair the series or drop that slice"
        )
    rows = []
    for k, tags in enumerate(headers.tags):
        text = tags[tag].strip()
        try:
            values = np.array(text.split("\\"), dtype=float)
        except ValueError:
            values = np.empty(0)
        if values.shape != (count,) or not np.isfinite(values).all():
            raise InputError(
                f"{folder}: slice {k + 1} ({headers.names[k]}) has {what} '{text}'; it must be {count} finite "
                "numbers; repair the series"
            )
        rows.append(values)
    return np.array(rows)


def _check_slices_agree(values: np.ndarray, tolerance: float, what: str, headers: _SliceHeaders, folder: Path) -> None:
    """Raise when a slice's ``values`` differ from the first slice's by more than ``tolerance``: the volume takes
    the first slice's, so another slice's would be silently misplaced."""
    differs = np.flatnonzero(np.abs(values - values[0]).max(axis=1) > tolerance)
    if differs.size:
        k = int(differs[0])
        raise InputError(
            f"{folder}: slice {k + 1} ({headers.names[k]}) has another {what} than slice 1 "
            f"({', '.join(f'{v:g}' for v in values[k])} against {', '.join(f'{v:g}' for v in values[0])}); a volume "
            "needs one for every slice: give each series its own folder"
        )


def _pixel_spacing(headers: _SliceHeaders, folder: Path) -> np.ndarray:
    """The series' (row, column) Pixel Spacing; refused when a slice lacks it, gives one that is not two positive
    finite numbers (a reader would put it at 1 mm) or another one than the first slice."""
    spacing = _slice_numbers(headers, "pixel_spacing", 2, "Pixel Spacing", folder)
    bad = np.flatnonzero((spacing <= 0).any(axis=1))
    if bad.size:
        k = int(bad[0])
        text = headers.tags[k]["pixel_spacing"].strip()
        raise InputError(
            f"{folder}: slice {k + 1} ({headers.names[k]}) has Pixel Spacing '{text}'; it must be two positive finite "
            "millimetre values (a reader would guess 1 mm); repair the series"
        )
    _check_slices_agree(spacing, 1e-4 * spacing[0].min(), "Pixel Spacing", headers, folder)
    return spacing[0]


def _slice_axes(headers: _SliceHeaders, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The row and column directions of the series' slices and their unit normal; refused when a slice lacks Image
    Orientation (Patient), lies in another plane than the first slice, or its row and column directions are not two
    orthogonal unit vectors."""
    orientation = _slice_numbers(headers, "orientation", 6, "Image Orientation (Patient)", folder)
    _check_slices_agree(orientation, _ORIENTATION_TOLERANCE, "Image Orientation (Patient)", headers, folder)
    row, column = orientation[0, :3], orientation[0, 3:]
    lengths = np.linalg.norm([row, column], axis=1)
    if np.abs(lengths - 1).max() > _ORTHONORMAL_TOLERANCE or abs(np.dot(row, column)) > _ORTHONORMAL_TOLERANCE:
        raise InputError(
            f"{folder}: slice 1 ({headers.names[0]}) has Image Orientation (Patient) "
            f"'{headers.tags[0]['orientation'].strip()}', not two orthogonal unit directions (a reader would put "
            "the image in another place); repair the series"
        )
    normal = np.cross(row, column)
    return row, column, normal / np.linalg.norm(normal)


def _check_positions(headers: _SliceHeaders, normal: np.ndarray, pixel_spacing: np.ndarray, folder: Path) -> float:
    """Raise when a slice lacks its position or the slices are off one regular grid along ``normal`` (missing slices,
    uneven spacing, tilt, two slices in one place); returns the step from slice to slice along it (1 for one slice)."""
    count = len(headers.names)
    if count < 2:
        return 1.0
    positions = _slice_numbers(headers, "position", 3, "Image Position (Patient)", folder)
    along = positions @ normal
    step = (along[-1] - along[0]) / (count - 1)  # the grid through the end slices, as the volume is built
    tolerance = _POSITION_TOLERANCE * min(float(pixel_spacing.min()), abs(step))
    gaps = np.abs(np.diff(along))
    if gaps.min() <= tolerance:
        k = int(np.argmin(gaps))
        raise InputError(
            f"{folder}: slices {k + 1} and {k + 2} ({headers.names[k]}, {headers.names[k + 1]}) lie in one place; "
            "give each slice once, or each series its own folder"
        )
    expected = positions[0] + np.outer(np.arange(count) * step, normal)
    offsets = np.linalg.norm(positions - expected, axis=1)
    worst = int(np.argmax(offsets))
    if offsets[worst] > tolerance:
        raise InputError(
            f"{folder}: slice {worst + 1} of {count} lies {offsets[worst]:.2f} mm off a regular grid "
            "(missing slices, uneven spacing or gantry tilt); give a complete, evenly spaced series"
        )
    return float(step)


def _check_slice_sizes(headers: _SliceHeaders, slices: Sequence[PixelBytes], folder: Path) -> None:
    """Refuse a slice whose Rows and Columns differ from the first slice's: a volume has one size (a reader fails on
    it with a fragment of its own message, or worse)."""
    first = (slices[0].rows, slices[0].columns)
    for k, pixels in enumerate(slices):
        if (pixels.rows, pixels.columns) != first:
            raise InputError(
                f"{folder}: slice {k + 1} ({headers.names[k]}) is {pixels.rows} x {pixels.columns} pixels (rows x "
                f"columns) but slice 1 is {first[0]} x {first[1]}; a volume needs one size for every slice: give each "
                "series its own folder"
            )


def _refuse_colour(headers: _SliceHeaders, slices: Sequence[PixelBytes], folder: Path) -> None:
    """Refuse a slice of more than one sample per pixel (RGB): GDCM reads it into grey values, a mix of its colours,
    without a word."""
    for k, pixels in enumerate(slices):
        if pixels.samples != 1:
            raise InputError(
                f"{folder}: slice {k + 1} ({headers.names[k]}) holds {pixels.samples} samples per pixel (a colour "
                "image); a FLAIR series is greyscale: export it as MONOCHROME2"
            )


def _check_rescale_tags(headers: _SliceHeaders, folder: Path) -> None:
    """Refuse a Rescale Slope or Intercept that is there but not one finite number: GDCM would leave the slice's
    values unscaled (a NaN slope) without a word."""
    for k, tags in enumerate(headers.tags):
        for tag, what in (("rescale_slope", "Rescale Slope"), ("rescale_intercept", "Rescale Intercept")):
            text = tags.get(tag, "1").strip() or "1"
            try:
                finite = math.isfinite(float(text))
            except ValueError:
                finite = False
            if not finite:
                raise InputError(
                    f"{folder}: slice {k + 1} ({headers.names[k]}) has {what} '{text}'; it must be one finite "
                    "number; repair the series"
                )


def _refuse_inverted_grey(headers: _SliceHeaders, folder: Path) -> None:
    """Refuse a slice stored as MONOCHROME1 (low values shown bright): GDCM reads it inverted, into negative values,
    so its contrast would be the reverse of a FLAIR's (and of the series' other slices)."""
    for k, tags in enumerate(headers.tags):
        if tags.get("photometric", "").strip().upper() == "MONOCHROME1":
            raise InputError(
                f"{folder}: slice {k + 1} ({headers.names[k]}) has Photometric Interpretation MONOCHROME1 (inverted "
                "grey levels), which flairseg does not read; convert the series to MONOCHROME2"
            )


def _checked_geometry(files: Sequence[str], slices: Sequence[PixelBytes], folder: Path) -> Geometry:
    """The series' geometry from its files' headers (``slices``, in the order of ``files``), before a pixel is
    decoded: every slice of one size, with one positive Pixel Spacing, one plane and a place on one regular grid.
    Returns the grid they declare (as GDCM builds it: voxel axes columns, rows, slices)."""
    headers = _SliceHeaders(tuple(Path(name).name for name in files), tuple(pixels.geometry for pixels in slices))
    _check_slice_sizes(headers, slices, folder)
    _refuse_colour(headers, slices, folder)
    _check_rescale_tags(headers, folder)
    _refuse_inverted_grey(headers, folder)
    pixel_spacing = _pixel_spacing(headers, folder)
    row, column, normal = _slice_axes(headers, folder)
    step = _check_positions(headers, normal, pixel_spacing, folder)
    lps = np.eye(4)
    lps[:3, :3] = np.column_stack([row * pixel_spacing[1], column * pixel_spacing[0], normal * step])
    affine = _LPS_TO_RAS @ lps
    ornt = _orientation(affine, folder)
    shape = (slices[0].columns, slices[0].rows, len(files))
    return Geometry(folder, "dicom", spacing=_spacing(affine, ornt), affine=affine, ornt=ornt, input_shape=shape)


def read_dicom_series(folder: str | os.PathLike, case_id: str | None = None) -> Case:
    """Read the one DICOM series in a folder (slices sorted by GDCM) in the processing layout.

    Args:
        folder: a folder holding exactly one series, and no other DICOM file than its DICOMDIR (files that are
            not DICOM are ignored).
        case_id: the case's name; default the folder name.
    """
    import SimpleITK as sitk

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"DICOM folder {folder} does not exist")
    files, _ = _dicom_series_files(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetOutputPixelType(sitk.sitkFloat64)  # each slice's own rescale, which the first slice's type may not hold
    with _quiet_simpleitk():
        reader.SetFileNames(files)
        try:
            image = reader.Execute()
        except RuntimeError as exc:
            raise InputError(f"cannot read the DICOM series in {folder}: {_itk_reason(exc)}") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{folder}: expected one 3-D greyscale series, got {image.GetDimension()}-D "
            f"with {image.GetNumberOfComponentsPerPixel()} components per voxel"
        )
    _check_spacing(image.GetSpacing(), folder)
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3) * np.asarray(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    affine = _LPS_TO_RAS @ lps
    data = sitk.GetArrayViewFromImage(image).transpose(2, 1, 0)  # (x, y, z) voxel axes; a view: one float64 copy
    _check_finite(data, folder)
    _check_rescale_range(data, files, folder)
    ornt = _orientation(affine, folder)
    geometry = Geometry(
        source=folder,
        format="dicom",
        slice_names=tuple(Path(name).name for name in files),
        spacing=_spacing(affine, ornt),
        affine=affine,
        ornt=ornt,
        input_shape=tuple(data.shape),
    )
    volume = _float32_processing(data, ornt)[..., None]
    return Case(case_id or folder.resolve().name, volume, None, geometry)


def _check_rescale_range(data: np.ndarray, files: Sequence[str], folder: Path) -> None:
    """Refuse a series whose Rescale Slope and Intercept take a slice's stored values (whole numbers, which float32
    holds) beyond float32 (:func:`_beyond_float32`), naming the slice of the value furthest beyond it."""
    import SimpleITK as sitk

    extreme, limit = _beyond_float32(data), float(np.finfo(np.float32).max)
    if extreme is None:
        return
    index = int(np.argwhere(data == extreme)[0][2])  # data's third axis: the slices in the order of ``files``
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[index])
    with _quiet_simpleitk():
        reader.ReadImageInformation()  # the header alone
    slope, intercept = (
        reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else default
        for tag, default in (("0028|1053", "1"), ("0028|1052", "0"))
    )
    raise InputError(
        f"{folder}: slice {index + 1} ({Path(files[index]).name}) has Rescale Slope {slope!r} and Rescale Intercept "
        f"{intercept!r}, which take its stored values to {extreme:.3g}, beyond float32 (at most {limit:.3g} in "
        "size); fix them in the slices' headers"
    )


def _dicom_series_files(folder: Path) -> tuple[Sequence[str], Geometry]:
    """The files of the one DICOM series in ``folder``, in GDCM's order, each holding the pixel data its header
    declares (every file of the folder that looks like DICOM checked before GDCM reads one), and their declared size
    within the memory budget; and the grid their headers declare (:func:`_checked_geometry`)."""
    screened = {path.name: _checked_pixels(path) for path in _dicom_like_files(folder)}  # before GDCM reads a file
    files = _gdcm_series_files(folder)
    slices = [screened.get(Path(name).name) or _checked_pixels(Path(name)) for name in files]
    _check_dicom_memory(slices, folder)
    _check_nothing_left_out(files, screened, folder)
    return files, _checked_geometry(files, slices, folder)


def _gdcm_series_files(folder: Path) -> Sequence[str]:
    """The files of the one DICOM series GDCM finds in ``folder``, in its order."""
    import SimpleITK as sitk

    with _quiet_simpleitk():
        try:
            series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0]) if series else []
        except RuntimeError as exc:  # a codec's header GDCM cannot parse
            raise InputError(f"cannot read the DICOM series in {folder}: {_itk_reason(exc)}") from None
    if not series:
        raise InputError(f"{folder} holds no readable DICOM series; point flairseg at a folder of DICOM slices")
    if len(series) > 1:
        raise InputError(
            f"{folder} holds {len(series)} DICOM series ({', '.join(series)}); put each series in its own folder"
        )
    return files


def _itk_reason(exc: RuntimeError) -> str:
    """The last line of an ITK exception's message, the one that says what went wrong."""
    return (str(exc).strip().splitlines() or ["unknown error"])[-1]


def _dicom_like_files(folder: Path) -> list[Path]:
    """The files of a folder that look like DICOM (named ``.dcm``, a Part 10 file or a data set without the preamble),
    a file set's DICOMDIR index (no image) left out."""
    return [
        path
        for path in _visible_files(folder)
        if path.name != DICOM_DIRECTORY and (_named_dicom(path) or looks_like_dicom(path))
    ]


def _check_nothing_left_out(files: Sequence[str], screened: Iterable[str], folder: Path) -> None:
    """Refuse a file of the folder that looks like DICOM (``screened``: their names) but is not one of the series'
    ``files``: GDCM leaves out the files it cannot parse, so a truncated end slice would vanish from the volume (a
    middle one would leave a gap)."""
    kept = {Path(name).name for name in files}
    for name in screened:
        if name not in kept:
            raise InputError(
                f"{folder / name} looks like a DICOM file but is not part of the series in its folder: it is damaged, "
                "truncated or holds no image; repair it or move it out of the folder"
            )


def check_headers(
    path: Path,
    masks: str = "optional",
    mask_path: Path | None = None,
    resample: bool = False,
    tumour_labels: bool = True,
) -> tuple[int, int, int, int]:
    """What a NIfTI case (with the sequences and labels named beside it, its mask ``mask_path``) or a DICOM series
    declares in its headers, checked as reading it would (:func:`read_named_sequences`, same arguments), without
    decoding any voxel: the grids its mask and (without ``resample``) its other sequences declare included, so that a
    case off its own grid is refused before any case of a tree is written. Returns the (slices, rows, columns,
    channels) it will be read into."""
    if path.is_dir():
        return (*Case(path.name, None, None, _dicom_series_files(path)[1]).shape, 1)
    from flairseg.sequences import siblings

    found = siblings(path)
    grids = {other: _header_grid(other) for files in found.values() for other in files}  # the FLAIR among them
    pre, post = _pre_and_post(found)
    _check_case_memory(path, pre, post)
    label = _case_label(path, found, masks, mask_path, tumour_labels)
    if label is not None:
        _check_mask_grid(label, grids.get(label) or _header_grid(label), path, grids[path])
    for other in () if resample else (pre, post):
        if other is not None and not _same_grid(grids[other], grids[path]):
            raise _off_flair_grid(other, path)
    affine, shape = grids[path]
    geometry = Geometry(path, "nifti", affine=affine, ornt=_orientation(affine, path), input_shape=shape)
    return (*Case(path.name, None, None, geometry).shape, 1 if pre is None and post is None else 3)


def _header_grid(path: Path) -> _Grid:
    """A NIfTI file's grid as its header declares it, the header checked (:func:`_nifti_header`)."""
    image, shape = _nifti_header(path)
    return image.affine, shape


def nifti_grid(path: Path) -> Geometry:
    """A NIfTI file's grid as its header declares it (affine, orientation to the processing layout, shape), checked
    as reading it would, without decoding any voxel."""
    image, shape = _nifti_header(path)
    ornt = _orientation(image.affine, path)
    spacing = _spacing(image.affine, ornt)
    return Geometry(path, "nifti", spacing=spacing, affine=image.affine.copy(), ornt=ornt, input_shape=shape)


def check_label_header(path: Path) -> None:
    """What a label volume (the mask beside a case, a truth mask) declares in its header, checked as reading it would,
    without decoding any voxel."""
    _nifti_header(path)


def _check_dicom_memory(slices: Sequence[PixelBytes], folder: Path) -> None:
    """The series' declared size against the memory budget, before GDCM decodes a pixel."""
    from flairseg.memory import check

    voxels = sum(pixels.rows * pixels.columns * pixels.frames for pixels in slices)
    check(voxels, max(pixels.samples for pixels in slices), f"DICOM series {folder}")


def _checked_pixels(path: Path) -> PixelBytes:
    """A DICOM file's pixel data, checked against what its header declares before GDCM parses the file (it inflates a
    deflated one whole) or decodes a pixel (it would make up missing pixels from whatever memory follows them).

    Stored as they are (implicit or explicit VR, little or big endian, deflated once inflated), the pixels must
    fill Rows x Columns x Samples per Pixel x Bits Allocated / 8 x Number of Frames bytes, no more (but the padding
    byte of an odd length); a deflated file may inflate to those and ELEMENTS_ROOM of other elements. Compressed pixels
    (JPEG, JPEG-LS, JPEG 2000, RLE) are legitimately far fewer, and no ratio tells a damaged stream from a good one
    (a blank slice in JPEG 2000 or JPEG-LS takes a few hundred bytes at any size): their fragments must be there,
    non-empty and whole, each JPEG, JPEG-LS or JPEG 2000 frame must declare the header's Rows, Columns and Samples
    per Pixel in its codestream (the size it decodes to), and the codec reports the rest; the memory budget bounds
    what decoding them can take. Other compressed syntaxes are refused.
    """

    pixels = pixel_bytes(path)
    if pixels.length > pixels.declared + pixels.declared % 2:  # one byte pads an odd length
        raise InputError(
            f"{path} has a Pixel Data element of {pixels.length:,} bytes but its header describes {pixels.declared:,}"
            ": the file is damaged or its dimensions are wrong"
        )
    if pixels.inflates_beyond:
        raise InputError(
            f"{path} inflates to more than its declared {pixels.declared:,} bytes of pixel data and "
            f"{ELEMENTS_ROOM >> 20} MB of other elements: the file is damaged or its dimensions are wrong"
        )
    if pixels.compressed:
        _check_compressed_pixels(path, pixels)
        return pixels
    _check_holds(path, pixels.present, pixels.declared, "bytes of pixel data")
    return pixels


def _check_compressed_pixels(path: Path, pixels: PixelBytes) -> None:
    """Refuse compressed pixels of a syntax GDCM does not decode, without whole, non-empty fragments, or with a
    frame whose codestream declares another size than the header (it would decode to that size)."""
    if pixels.codec is None:
        raise InputError(
            f"{path} is stored in an unsupported transfer syntax ({pixels.syntax}); flairseg reads uncompressed, "
            "deflated, JPEG, JPEG-LS, JPEG 2000 and RLE DICOM: convert the series to one of them"
        )
    if pixels.length or not pixels.complete or not pixels.present:  # a stated length: no fragments
        raise InputError(
            f"{path} holds {pixels.present:,} bytes of compressed pixel data (transfer syntax {pixels.syntax}) in "
            "fragments that are missing or cut short: the file is damaged or truncated; re-export the series"
        )
    if pixels.codec != "RLE" and len(pixels.frame_sizes) != pixels.frames:  # RLE frames are not measured
        raise InputError(
            f"{path} holds {len(pixels.frame_sizes)} {pixels.codec} frames but its header declares {pixels.frames}: "
            "the file is damaged or truncated; re-export the series"
        )
    header = (pixels.rows, pixels.columns, pixels.samples)
    for frame, size in enumerate(pixels.frame_sizes, start=1):
        if size is None:
            raise InputError(
                f"{path}: {pixels.codec} frame {frame} declares no size in its codestream: the file is damaged; "
                "re-export the series"
            )
        if size != header:
            raise InputError(
                f"{path}: {pixels.codec} frame {frame} is {_dimensions(size)} (rows x columns x components) by its "
                f"codestream but {_dimensions(header)} by its header: the file is damaged or invalid; re-export the "
                "series"
            )


def _dimensions(size: tuple[int, ...]) -> str:
    return " x ".join(f"{n:,}" for n in size)


def _checked_mask(case: Case, mask: np.ndarray, probability: bool) -> np.ndarray:
    """The mask as uint8 0/1 (or float32 probabilities), after checking its shape and values."""
    array = np.asarray(mask)
    if array.shape != case.shape:
        raise InputError(f"mask shape {array.shape} does not match case {case.case_id} grid {case.shape}")
    if probability:
        if array.dtype.kind not in "biuf" or not np.isfinite(array).all():
            raise InputError(f"the probability map of case {case.case_id} holds NaN, infinite or non-numeric values")
        return array.astype(np.float32)
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        raise InputError(
            f"the mask of case {case.case_id} holds values other than 0 and 1; pass a bool mask or probability=True"
        )
    return array.astype(np.uint8)


def write_volume_mask(case: Case, mask: np.ndarray, path: str | os.PathLike, probability: bool = False) -> None:
    """Write a processing-layout mask (or probability map) as NIfTI on the input's grid, atomically.

    NIfTI inputs: the input's header (qform, sform and their codes kept; NIfTI-2 stays
    NIfTI-2), uint8 0/1 data (float32 for probabilities), no scaling, display range 0..1,
    no intent. DICOM inputs: the series' affine as qform and sform with code 1 (scanner).
    Gzipped output carries no timestamp, so the same mask gives the same bytes.

    Args:
        case: the case the mask belongs to (read by :func:`read_nifti` or :func:`read_dicom_series`).
        mask: (slices, rows, cols) bool mask, or probabilities when ``probability`` is True.
        path: the output file, ending in ``.nii`` or ``.nii.gz``.
        probability: write float32 values instead of a 0/1 mask.
    """
    _write_volume(case, _checked_mask(case, mask, probability), path, (0.0, 1.0))


def write_volume_image(case: Case, image: np.ndarray, path: str | os.PathLike) -> None:
    """Write a processing-layout (slices, rows, cols) image as float32 NIfTI on the input's grid, atomically.

    Used for skull-stripped volumes: the input's header and geometry as in :func:`write_volume_mask`,
    the display range set to the image's own range.
    """
    array = np.asarray(image)
    if array.shape != case.shape:
        raise InputError(f"image shape {array.shape} does not match case {case.case_id} grid {case.shape}")
    values = array.astype(np.float32)
    if not np.isfinite(values).all():
        raise InputError(f"the image of case {case.case_id} holds NaN or infinite values")
    _write_volume(case, values, path, (float(values.min()), float(values.max())) if values.size else (0.0, 0.0))


def _write_volume(case: Case, values: np.ndarray, path: str | os.PathLike, display: tuple[float, float]) -> None:
    """Write processing-layout ``values`` under the input's header (NIfTI) or the series' affine (DICOM)."""
    import nibabel as nib

    geometry = case.geometry
    if geometry.format not in ("nifti", "dicom") or geometry.ornt is None or geometry.affine is None:
        raise InputError(f"case {case.case_id} did not come from a volume; write it with flairseg.io.write_mask")
    target = Path(path)
    if not target.name.lower().endswith(NIFTI_SUFFIXES):
        raise InputError(f"output {target} must end in .nii or .nii.gz")
    data = _from_processing(values, geometry.ornt)
    if geometry.format == "nifti":
        header = geometry.header.copy()
        header.set_data_dtype(data.dtype)
        header.set_intent("none")
        header["cal_min"], header["cal_max"] = display
        image_class = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        # no affine: the header's qform/sform stay as stored; scaling is reset
        image = image_class(data, None, header=header)
    else:
        image = nib.Nifti1Image(data, geometry.affine)
        image.set_qform(geometry.affine, code=1)
        image.set_sform(geometry.affine, code=1)
        image.header.set_xyzt_units("mm")
    payload = image.to_bytes()
    if target.name.lower().endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    with atomic_file(target) as tmp:
        tmp.write_bytes(payload)
