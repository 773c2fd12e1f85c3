"""The case types every module shares: a case in memory (:class:`Case`), where it came from
(:class:`Geometry`), and the vocabulary of case files (mask policies, NIfTI and TIFF suffixes).

A case is read into one :class:`Case`: the image as a numpy array shaped
(slices, height, width, channels), the mask (or None) as a bool array shaped
(slices, height, width), and the :class:`Geometry` needed to write results back
exactly where they came from. Volumes are reoriented to the processing layout
(slices inferior to superior, rows anterior to posterior, columns patient right to
left, as the Kaggle slices are shown) and restored on write; see ``volumes.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from flairseg.errors import InputError

MaskPolicy = Literal["ignore", "optional", "required", "only"]
MASK_POLICIES = ("ignore", "optional", "required", "only")
NIFTI_SUFFIXES = (".nii.gz", ".nii")
TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class Geometry:
    """Where a case came from and how to write results back onto its grid.

    Attributes:
        source: the case folder (Kaggle, DICOM) or volume file (NIfTI) that was read.
        format: ``"kaggle"``, ``"nifti"`` or ``"dicom"``.
        slice_names: Kaggle and DICOM: the input slice file names, in slice order (a DICOM series: the files of
            the folder the series was read from).
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
    sequences: tuple[
        tuple[str, str], ...
    ] = ()  # volumes: (channel, source file's path or "copy of FLAIR") per channel read

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, height, width) of the case's grid; a volume's read from its header alone (no array): the grid its
        header declares, reoriented as reading it would."""
        array = self.image if self.image is not None else self.mask
        if array is None:
            return _declared_shape(self.geometry)
        return tuple(array.shape[:3])  # type: ignore[union-attr,return-value]

    @property
    def flair(self) -> np.ndarray:
        """(slices, height, width) FLAIR image: the middle of three channels (Kaggle order pre-contrast, FLAIR,
        post-contrast), else the first."""
        return self.image[..., 1] if self.image.shape[-1] == 3 else self.image[..., 0]  # type: ignore[index]


def _declared_shape(geometry: Geometry) -> tuple[int, int, int]:
    """The processing grid (slices, rows, columns) of a volume's input shape: input axis i becomes the processing
    (L, P, S) axis ``ornt[i, 0]``, and (L, P, S) is held as (S, P, L)."""
    shape = [0, 0, 0]
    for size, target in zip(geometry.input_shape[:3], geometry.ornt[:, 0].astype(int)):  # type: ignore[index]
        shape[target] = int(size)
    return (shape[2], shape[1], shape[0])


def is_hidden(path: Path) -> bool:
    """A hidden file or folder (``.git``, macOS's ``._`` copies, flairseg's own marker and locks): never a case, a
    slice or a volume of one."""
    return path.name.startswith(".")


def is_nifti(path: Path) -> bool:
    """A .nii or .nii.gz file name."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: Path) -> str:
    """The file name without .nii or .nii.gz."""
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


# the most labels a mask may hold (0 aside): masks are binary or hold a few labels (BraTS' three, a lesion map's
# instances), an image hundreds of grey levels
MAX_LABELS = 255


def check_mask_values(values: np.ndarray, case_id: str, name: str, what: str = "mask") -> None:
    """The one rule for the values of a mask that is scored, measured or trained on (a prediction, a truth beside its
    image or in a tree of its own, a mask of ``shape``): 0 and positive whole-number labels, each label foreground. A
    probability map, a negative or fractional value (or a scaled one: stored values times a header's slope, plus its
    intercept) would otherwise count as foreground; it is refused, naming the file ``name`` as the ``what`` of its
    case. So is one of more than :data:`MAX_LABELS` labels: an image (an integer FLAIR given as the truth) passes for
    labels, every voxel of the head foreground."""
    if not _whole_labels(values):
        levels = np.unique(values) + 0.0  # + 0.0: -0 shows as 0
        shown = ", ".join(f"{v:g}" for v in levels[:4]) + (", ..." if levels.size > 4 else "")
        raise InputError(
            f"case {case_id}: the {what} {name} holds the values {shown}, not 0 and positive whole-number labels; "
            "threshold it into a binary mask first"
        )
    one_byte = values.dtype.kind == "b" or (values.dtype.kind == "u" and values.dtype.itemsize == 1)
    if not one_byte and values.size and values.max() > MAX_LABELS:  # else at most MAX_LABELS labels: none to count
        labels = int(np.count_nonzero(np.unique(values)))
        if labels > MAX_LABELS:
            raise InputError(
                f"case {case_id}: the {what} {name} holds {labels:,} different labels, more than the {MAX_LABELS} of "
                "a label map: an image, not a mask? give its mask (0 background, positive labels)"
            )


def _whole_labels(values: np.ndarray) -> bool:
    """Whether every value is 0 or a positive whole number (so is every unsigned one: the common case costs nothing)."""
    if values.dtype.kind in "bu":
        return True
    if values.dtype.kind == "i":
        return not (values < 0).any()
    return bool(np.all(np.isfinite(values) & (values >= 0) & (values == np.floor(values))))


# how far (mm) a scored mask's voxels may lie from its truth's: far above the rounding of affines stored as float32,
# far below a voxel
SAME_SPACE_MM = 0.01

_LAYOUT_NAMES = {"kaggle": "Kaggle TIFF slices", "nifti": "a NIfTI volume", "dicom": "a DICOM series"}


def check_same_grid(case_id: str, scored: Case, truth: Case, what: str) -> None:
    """The one rule for a mask scored against its truth (``evaluate``'s prediction, ``predict --truth``'s image):
    the same voxels in the world. A volume against TIFF slices, which have no place in the world, is refused (their
    voxels would pair by array index whatever the volume's orientation and position); so are grids of other shapes,
    and volumes whose grid's 8 corner voxels lie more than SAME_SPACE_MM apart under the two affines (an affine's
    entries may differ by little while its far corner lies millimetres away), each corner taken where reading puts it
    (:func:`_world_corners`): one grid stored in two voxel orders is the same grid. ``what`` names the scored case;
    either case may be read from its headers alone (no array: the grid they declare)."""
    a, b = scored.geometry, truth.geometry
    if (a.affine is None) != (b.affine is None):
        raise InputError(
            f"case {case_id}: the {what} {a.source} is {_LAYOUT_NAMES[a.format]} and its truth {b.source} "
            f"{_LAYOUT_NAMES[b.format]}, whose grids cannot be compared; predict from images in the truth's layout "
            "and score that"
        )
    if scored.shape != truth.shape:
        raise InputError(f"case {case_id}: {what} grid {scored.shape} differs from truth grid {truth.shape}")
    if a.affine is None or b.affine is None:
        return
    offset = float(np.linalg.norm(_world_corners(a) - _world_corners(b), axis=0).max())
    if offset > SAME_SPACE_MM:
        raise InputError(
            f"case {case_id}: the {what} {a.source} lies up to {offset:.2f} mm away from its truth {b.source} (their "
            "affines differ); resample it onto the truth's grid before scoring it"
        )


def _world_corners(geometry: Geometry) -> np.ndarray:
    """The world points (3 x 8) of a volume's 8 corner voxels in the order of the processing layout's corners: each
    input axis i goes to processing axis ``ornt[i, 0]``, reversed where ``ornt[i, 1]`` is -1, as reading reorients
    the voxels. Listed in the volume's stored order instead, the corners of a grid stored right to left would be
    compared with those of the same grid stored left to right, corner against opposite corner."""
    last = np.array(geometry.input_shape[:3], dtype=float) - 1
    targets = geometry.ornt[:, 0].astype(int)  # type: ignore[index]
    reversed_axes = geometry.ornt[:, 1] < 0  # type: ignore[index]
    corners = []
    for bits in np.ndindex(2, 2, 2):  # a corner of the processing grid, one bit per processing axis
        ends = np.array([bits[target] for target in targets], dtype=float)
        corners.append([*(np.where(reversed_axes, 1 - ends, ends) * last), 1.0])
    return (geometry.affine @ np.array(corners).T)[:3]  # type: ignore[operator]


def patient_id(case_id: str) -> str:
    """The patient part of a TCGA case id (``TCGA_CS_4941_19960909`` -> ``TCGA_CS_4941``): a patient's scans share
    it; other ids unchanged (each case its own patient)."""
    parts = case_id.split("_")
    return "_".join(parts[:3]) if len(parts) == 4 and parts[0] == "TCGA" else case_id
