"""The Kaggle LGG layout: a case folder of ``<CASE>_<k>.tif`` slices, ``<CASE>_<k>_mask.tif`` masks
(and other ``<CASE>_<k><suffix>.tif`` label stacks such as ``_brain``), read and written slice by slice."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tifffile

from flairseg.cases import TIFF_SUFFIXES, Case, Geometry, MaskPolicy, check_mask_values, is_hidden
from flairseg.config import TASK_SPECS
from flairseg.dicom_pixels import jpeg_size
from flairseg.errors import InputError, read_denied
from flairseg.memory import check
from flairseg.outputs import NAME_MAX, atomic_dir, atomic_file

SLICE_NAME = re.compile(r"^(?P<stem>.+)_(?P<k>\d+)(?P<suffix>_[A-Za-z]+)?\.tiff?$", re.IGNORECASE)
# the longest suffix a mask slice written for an image slice takes (``<CASE>_<k>_brain.tif``)
LONGEST_LABEL_SUFFIX = max((spec.label_suffix for spec in TASK_SPECS.values()), key=len)


def has_tiffs(folder: Path) -> bool:
    return first_tiff(folder) is not None


def first_tiff(folder: Path) -> Path | None:
    """The first TIFF file of a folder by name (None: it holds none); one makes the folder a Kaggle case."""
    return next(
        (p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES and not is_hidden(p)),
        None,
    )


_JPEG = (6, 7)  # the TIFF compressions of JPEG (old-style, new-style): the one image codec sized before decoding


def _channels_last(page: tifffile.TiffPage, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The order of a slice's axes that puts its channels last: a page stored plane by plane (PlanarConfiguration
    "separate", axes SYX) comes as (channels, H, W), which read as it is would make its planes the rows and its
    columns the channels."""
    return (1, 2, 0) if page.axes.startswith("S") and len(shape) == 3 else tuple(range(len(shape)))


def _read_tiff(path: Path) -> np.ndarray:
    """A slice file's one page (its header checked first, :func:`_declared_page`) as (H, W) or (H, W, channels)."""
    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            array = page.asarray()
            array = array.transpose(_channels_last(page, array.shape))
    except PermissionError:
        raise read_denied(path) from None
    except Exception as exc:  # tifffile raises many types for corrupt, truncated or non-TIFF files
        raise InputError(f"cannot read {path}: not a valid TIFF image or truncated ({type(exc).__name__})") from None
    if array.ndim not in (2, 3) or array.size == 0:
        raise InputError(f"{path} has shape {array.shape}; expected one 2-D slice (H, W) or (H, W, channels)")
    if not np.isfinite(array).all():
        raise InputError(
            f"{path} holds {np.count_nonzero(~np.isfinite(array))} NaN or infinite pixels; fix or drop the slice"
        )
    return array


class _Page(NamedTuple):
    """What a slice file's header declares: its shape (channels last), the pixels decoding it takes, its dtype."""

    shape: tuple[int, ...]
    pixels: int
    dtype: str


def _declared_page(path: Path) -> _Page:
    """The shape a slice file's header declares for its one page, channels last (every page would be decoded: a slice
    is one), its dtype, and the pixels decoding it takes: a page stored in tiles larger than itself takes its tile (a
    tile is inflated whole before it is cropped)."""
    try:
        with tifffile.TiffFile(path) as tiff:
            page, pages = tiff.pages[0], len(tiff.pages)
            shape = tuple(int(page.shape[axis]) for axis in _channels_last(page, page.shape))
            plane = (max(shape[0], page.tilelength), max(shape[1], page.tilewidth)) if page.is_tiled else shape[:2]
            pixels = max(int(np.prod(plane, dtype=np.int64)), _jpeg_pixels(tiff, page, path))
    except PermissionError:
        raise read_denied(path) from None
    except InputError:
        raise
    except Exception as exc:  # tifffile raises many types for corrupt, truncated or non-TIFF files
        raise InputError(f"cannot read {path}: not a valid TIFF image or truncated ({type(exc).__name__})") from None
    if pages != 1:
        raise InputError(
            f"{path} holds {pages:,} pages (images); a slice is one page, (H, W) or (H, W, channels): "
            "split the stack into <CASE>_<k>.tif files"
        )
    if page.imagedepth > 1:  # its depth would be read as the rows, its rows as the columns
        raise InputError(
            f"{path} is a volume of {page.imagedepth} planes (TIFF ImageDepth); a slice is one plane: split it into "
            "<CASE>_<k>.tif files"
        )
    _check_stored_as_read(path, page)
    _check_codec_sized(path, page)
    _check_strips_held(path, page)
    return _Page(shape, pixels, str(page.dtype))


def _check_strips_held(path: Path, page: tifffile.TiffPage) -> None:
    """Refuse a slice whose strips (or tiles) end past the end of its file: cut short, it would fail only once it is
    decoded, after a tree's earlier cases were written."""
    ends = [int(offset) + int(count) for offset, count in zip(page.dataoffsets, page.databytecounts)]
    held = path.stat().st_size
    if ends and max(ends) > held:
        raise InputError(
            f"{path} holds {held:,} bytes but its header places image data up to byte {max(ends):,}: the file is "
            "truncated; copy it again"
        )


def _check_codec_sized(path: Path, page: tifffile.TiffPage) -> None:
    """Refuse a slice compressed by an image codec other than JPEG (PNG, JPEG 2000, WebP, JPEG XL, ...): each strip is
    an image of its own, decoded whole at whatever size it declares before it is cropped to the page, and only JPEG's
    is sized first (:func:`_jpeg_pixels`)."""
    if page.compression in tifffile.TIFF.IMAGE_COMPRESSIONS and page.compression not in _JPEG:
        name = tifffile.COMPRESSION(page.compression).name if page.compression in tifffile.COMPRESSION else "an image"
        raise InputError(
            f"{path} is compressed as {name}, an image codec whose decoded size flairseg cannot check before "
            "decoding; store the slices uncompressed, or compressed as LZW, Deflate or JPEG"
        )


# how a page's pixels may be stored to be read as they are: grey with black at 0, RGB, or JPEG's YCbCr (its decoder
# gives RGB); row 0 at the top, column 0 at the left
_PHOTOMETRIC_READ = {tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB}
_LABEL_ENDINGS = ("_mask", "_brain")  # label slices, whose palette indices are their labels


def _check_stored_as_read(path: Path, page: tifffile.TiffPage) -> None:
    """Refuse a slice whose stored numbers are not its pixels as flairseg reads them: white at 0 (MinIsWhite, the TIFF
    form of DICOM's MONOCHROME1), a palette, another colour space (CIELab, YCbCr outside JPEG), or rows or columns
    stored in another order (the Orientation tag): the image would be read inverted, as indices or flipped."""
    photometric = page.tags.valueof("PhotometricInterpretation", tifffile.PHOTOMETRIC.MINISBLACK)
    ycbcr_jpeg = photometric == tifffile.PHOTOMETRIC.YCBCR and page.compression in _JPEG
    label_indices = photometric == tifffile.PHOTOMETRIC.PALETTE and path.stem.endswith(_LABEL_ENDINGS)
    if photometric not in _PHOTOMETRIC_READ and not (ycbcr_jpeg or label_indices):
        try:
            name = tifffile.PHOTOMETRIC(photometric).name
        except ValueError:  # a value no TIFF version defines
            name = str(photometric)
        raise InputError(
            f"{path} stores its pixels as {name} (TIFF photometric interpretation); flairseg reads grey "
            "(black at 0) or RGB slices: convert it"
        )
    orientation = page.tags.valueof("Orientation", 1)
    if orientation != 1:
        raise InputError(
            f"{path} stores its rows or columns in another order (TIFF Orientation {orientation}, not 1: top left); "
            "convert it"
        )


# the bytes of a JPEG strip or tile searched for the frame size its codestream declares
_JPEG_HEAD = 1 << 16


def _jpeg_pixels(tiff: tifffile.TiffFile, page: tifffile.TiffPage, path: Path) -> int:
    """The most pixels a JPEG-compressed page's strip or tile decodes to, as its codestream's frame header declares
    them (0 for other compressions): a strip may hold a JPEG far larger than the page, which is decoded whole before
    it is cropped."""
    if page.compression not in _JPEG:
        return 0
    largest = 0
    for offset, count in zip(page.dataoffsets, page.databytecounts):
        tiff.filehandle.seek(offset)
        size = jpeg_size(tiff.filehandle.read(min(int(count), _JPEG_HEAD)))
        if size is None and count:  # not sized, it would be decoded at whatever size it declares further on
            raise InputError(
                f"{path}: a JPEG strip or tile declares no frame size in its first "
                f"{_JPEG_HEAD // 1024} kB; save the slice again (uncompressed, or as a plain JPEG-compressed TIFF)"
            )
        largest = max(largest, size[0] * size[1] if size else 0)
    return largest


def kaggle_shape(folder: Path) -> tuple[int, int, int, int]:
    """(slices, rows, columns, channels) of a Kaggle case as its first slice's header declares them (its slices were
    checked to be of one size: :func:`kaggle_files`)."""
    files = slice_files(folder, "")
    shape = _declared_page(files[min(files)]).shape
    return len(files), shape[0], shape[1], shape[2] if len(shape) == 3 else 1


def _declared_pages(folder: Path, files: Sequence[Path]) -> list[_Page]:
    """What every slice's TIFF header declares (readable, of one page), the case's size as they declare it checked
    against the memory budget."""
    pages = [_declared_page(path) for path in files]
    channels = max([page.shape[2] if len(page.shape) == 3 else 1 for page in pages], default=1)
    check(max([page.pixels for page in pages], default=0) * len(files), channels, f"case {folder}")
    return pages


def _mixed_types(folder: Path, first: object, dtype: object, name: str) -> InputError:
    return InputError(
        f"{folder}: mixed slice types ({first} and {dtype} in {name}); save every slice of a case with one bit depth"
    )


def _mixed_images(folder: Path, first: tuple[int, ...], shape: tuple[int, ...], name: str) -> InputError:
    return InputError(f"{folder}: mixed slice sizes or channel counts ({first} and {shape} in {name})")


def _label_off_images(path: Path, label: tuple[int, ...], plane: tuple[int, ...]) -> InputError:
    return InputError(f"{path} is {label[0]}x{label[1]} but the images are {plane[0]}x{plane[1]}")


def _mixed_labels(folder: Path, plane: tuple[int, ...], label: tuple[int, ...], name: str) -> InputError:
    return InputError(f"{folder}: mixed slice sizes ({plane} and {label[:2]} in {name})")


def _check_declared_sizes(folder: Path, images: Sequence[Path], labels: Sequence[Path]) -> None:
    """One size (and channel count) for every image slice, and the images' size for every label slice, as their TIFF
    headers declare them, checked before any slice is decoded (by the rules reading them applies: the same
    messages), so that a case of slices of other sizes is refused before any case of a tree is written."""
    pages = _declared_pages(folder, images)
    shapes = [(*page.shape, 1) if len(page.shape) == 2 else page.shape for page in pages]
    for path, shape, page in zip(images, shapes, pages):
        if shape != shapes[0]:
            raise _mixed_images(folder, shapes[0], shape, path.name)
        if page.dtype != pages[0].dtype:
            raise _mixed_types(folder, pages[0].dtype, page.dtype, path.name)
    plane = shapes[0][:2] if shapes else None
    for path, shape in zip(labels, [page.shape for page in _declared_pages(folder, labels)] if labels else []):
        if plane is not None and shape[:2] != plane:
            raise _label_off_images(path, shape, plane) if images else _mixed_labels(folder, plane, shape, path.name)
        plane = shape[:2]


def slice_files(folder: Path, suffix: str) -> dict[int, Path]:
    """Map slice number k -> file for ``<CASE>_<k><suffix>.tif`` in a Kaggle case folder (hidden files left out)."""
    files: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        match = SLICE_NAME.match(path.name)
        if not path.is_file() or match is None or is_hidden(path) or (match["suffix"] or "") != suffix:
            continue
        k = int(match["k"])
        if k in files:
            raise InputError(
                f"{folder}: slice number {k} appears twice ({files[k].name}, {path.name}); keep one file per slice"
            )
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


def _check_mask_names(image_files: Iterable[Path]) -> None:
    """Refuse an image slice whose mask slice's name (``<its stem>_brain.tif``) would pass a file name's limit: the
    case would fail while its masks are written, after other cases were."""
    for path in image_files:
        name = f"{path.name.rsplit('.', 1)[0]}{LONGEST_LABEL_SUFFIX}.tif"
        if len(os.fsencode(name)) > NAME_MAX:
            raise InputError(
                f"{path}: the name of its mask slice ({len(os.fsencode(name))} bytes with {LONGEST_LABEL_SUFFIX}.tif) "
                f"would pass the limit of {NAME_MAX} bytes a file name; rename the case's slices"
            )


def _stack_labels(
    folder: Path, files: dict[int, Path], numbers: list[int], plane: tuple[int, int] | None
) -> np.ndarray:
    """The label slices' values as stored, (slices, rows, columns); a slice with channels gives their maximum."""
    slices = []
    for k in numbers:
        label = _read_tiff(files[k])
        if label.ndim == 3:
            label = label.max(axis=2)
        if plane is not None and label.shape != plane:
            raise _label_off_images(files[k], label.shape, plane)
        if plane is None:
            plane = label.shape
        elif label.shape != plane:
            raise _mixed_labels(folder, plane, label.shape, files[k].name)
        slices.append(label)
    return np.stack(slices)


def kaggle_files(
    folder: Path, masks: MaskPolicy, mask_suffix: str
) -> tuple[list[int], dict[int, Path], dict[int, Path]]:
    """A Kaggle case folder's slice numbers, image files and mask files, checked by name and header, nothing decoded."""
    if not folder.is_dir():
        raise InputError(f"case folder {folder} does not exist")
    image_files = slice_files(folder, "") if masks != "only" else {}
    mask_files = slice_files(folder, mask_suffix) if masks != "ignore" else {}
    if masks == "only":
        if not mask_files:
            raise InputError(f"{folder} holds no <CASE>_<k>{mask_suffix}.tif files")
        numbers = sorted(mask_files)
        _check_numbering(folder, numbers, "mask")
        _check_declared_sizes(folder, [], [mask_files[k] for k in numbers])
        return numbers, image_files, mask_files
    if not image_files:
        raise InputError(f"{folder} holds no <CASE>_<k>.tif slices; point flairseg at a Kaggle-layout case folder")
    numbers = sorted(image_files)
    _check_numbering(folder, numbers, "image")
    _check_mask_names(image_files.values())
    if masks == "required" and not mask_files:
        raise InputError(f"{folder} has images but no {mask_suffix}.tif masks, and masks are required here")
    if mask_files and sorted(mask_files) != numbers:
        raise InputError(
            f"{folder}: {len(mask_files)} masks for {len(numbers)} image slices; every slice needs exactly one mask "
            f"(slices without a mask: {sorted(set(numbers) - set(mask_files))[:5]})"
        )
    _check_declared_sizes(folder, [image_files[k] for k in numbers], [mask_files[k] for k in sorted(mask_files)])
    return numbers, image_files, mask_files


def read_kaggle_labels(folder: str | os.PathLike, mask_suffix: str = "_mask") -> tuple[Case, np.ndarray]:
    """A Kaggle case's ``<CASE>_<k><mask_suffix>.tif`` slices alone: the mask case (nonzero = True) and the label
    values as stored, (slices, rows, columns), read once."""
    folder = Path(folder)
    numbers, _, mask_files = kaggle_files(folder, "only", mask_suffix)
    names = tuple(mask_files[k].name.replace(mask_suffix + ".", ".", 1) for k in numbers)
    labels = _stack_labels(folder, mask_files, numbers, None)
    return Case(folder.resolve().name, None, labels != 0, Geometry(folder, "kaggle", slice_names=names)), labels


def read_kaggle_case(folder: str | os.PathLike, masks: MaskPolicy = "optional", mask_suffix: str = "_mask") -> Case:
    """Read a Kaggle LGG case folder of ``<CASE>_<k>.tif`` slices (and ``<CASE>_<k>_mask.tif``).

    Slices are ordered by the number k. Images may be 1-channel (H, W) or multi-channel
    (H, W, C); masks are 0 and positive whole-number labels, nonzero = True.

    Args:
        folder: the case folder.
        masks: "ignore" (do not read masks), "optional" (read them if present: all or none),
            "required" (every slice needs one) or "only" (read masks, no images).
        mask_suffix: the label files' suffix (``_mask`` for tumour, ``_brain`` for brain masks).
    """
    if masks == "only":
        return read_kaggle_labels(folder, mask_suffix)[0]
    folder = Path(folder)
    numbers, image_files, mask_files = kaggle_files(folder, masks, mask_suffix)
    slices = []
    for k in numbers:
        array = _read_tiff(image_files[k])
        array = array[..., None] if array.ndim == 2 else array
        if slices and array.shape != slices[0].shape:
            raise _mixed_images(folder, slices[0].shape, array.shape, image_files[k].name)
        if slices and array.dtype != slices[0].dtype:  # stacked, one 16-bit slice would darken all the others
            raise _mixed_types(folder, slices[0].dtype, array.dtype, image_files[k].name)
        slices.append(array)
    image = np.stack(slices)
    # the resolved name: "." or "cases/.." would otherwise become case ids that escape the output folder
    case_id = folder.resolve().name
    mask = None
    if mask_files:
        labels = _stack_labels(folder, mask_files, numbers, image.shape[1:3])
        check_mask_values(labels, case_id, f"{folder.name}/*{mask_suffix}.tif")
        mask = labels != 0
    names = tuple(image_files[k].name for k in numbers)
    return Case(case_id, image, mask, Geometry(folder, "kaggle", slice_names=names))


def write_kaggle_mask(case: Case, mask: np.ndarray, out: Path, suffix: str) -> None:
    """A folder ``out`` of ``<CASE>_<k><suffix>.tif`` (uint8 0/255) named after the input slices (see
    :func:`_write_tiffs`: the case's folder may hold the other task's masks)."""
    planes = ((plane != 0).astype(np.uint8) * 255 for plane in mask)
    names = (f"{name.rsplit('.', 1)[0]}{suffix}.tif" for name in case.geometry.slice_names)
    _write_tiffs(out, ((name, plane, "minisblack") for name, plane in zip(names, planes)))


def write_kaggle_image(case: Case, image: np.ndarray, out: Path) -> None:
    """A folder ``out`` of TIFF slices named exactly like the input's, in the image's dtype (see
    :func:`_write_tiffs`: a skull-stripped case goes into a folder that may hold a user's files)."""
    planes = []
    for name, plane in zip(case.geometry.slice_names, image):
        rgb = plane.ndim == 3 and plane.shape[-1] == 3
        planes.append((name, plane if plane.ndim == 2 or rgb else plane[..., 0], "rgb" if rgb else "minisblack"))
    _write_tiffs(out, planes)


def _write_tiffs(out: Path, planes: Iterable[tuple[str, np.ndarray, str]]) -> None:
    """TIFF files (name, plane, photometric) in the folder ``out``: a new folder appears with all of them or not at
    all; one that exists (or appears meanwhile: a run of the other task on the case) is added to file by file, each
    file atomically, and never replaced whole, since it may hold files that are not flairseg's (the other task's
    masks, a user's own)."""
    if out.is_dir():
        for name, plane, photometric in planes:
            with atomic_file(out / name) as tmp:
                tifffile.imwrite(tmp, plane, photometric=photometric)
        return
    with atomic_dir(out, replace=False, join=True) as tmp:
        for name, plane, photometric in planes:
            tifffile.imwrite(tmp / name, plane, photometric=photometric)


def slice_count(folder: Path) -> int:
    """The number of image slices of a Kaggle case folder, from the file names alone."""
    return sum(
        (match := SLICE_NAME.match(p.name)) is not None and not match["suffix"]
        for p in folder.iterdir()
        if p.is_file() and not is_hidden(p)
    )
