"""Preprocessing of one case into the network's grid, and the way back onto the input grid.

Three variants:

- ``"paper-abnormality"`` and ``"paper-brain"``: the original MATLAB preprocessing of Buda et al.
  (2019) for the FLAIR-abnormality and the skull-stripping network: MATLAB-style bicubic scaling of
  the shorter in-plane side to ``size``, a (one pixel off-centre) centre crop, and a histogram
  window per modality that puts the tissue peak near 100 in uint8. All slices are kept.
Before any variant, a channel with negative values (a z-scored or shifted scan) is moved so that
its background is 0 (:func:`background_to_zero`); raw scans are untouched.

- ``"port"``: the PyTorch port: drop the first and last slice (as its dataset does on reading),
  threshold at 10 % of the maximum (or of a percentile: ``peak_percentile``), crop to the bounding
  box of what remains (slices too), pad to
  a square, quadratic resize, [p10, p99] rescale and per-channel z-score, float32.

Every result carries a :class:`SpatialTransform` with which :func:`invert_mask` and
:func:`invert_probability` put model-space outputs back onto the input grid.
"""

from __future__ import annotations

import bisect
import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from skimage.transform import resize

from flairseg.config import MISSING_POLICIES, VARIANTS
from flairseg.errors import ConfigError, InputError
from flairseg.postprocess import fill_holes_per_slice

MODALITIES = ("pre", "flair", "post")

_BIN_WIDTH = 2.0
_MAX_BINS = 2**52  # 2-unit bins up to 9e15: past it the edges are no longer exact in float64
_PEAK_GAIN = 2.55  # high = low + 2.55 * (peak - low): the tissue peak lands at 255 / 2.55 = 100
_RISING_BINS = 5  # paper-brain: the peak search starts after the 5th rising bin above the median
_EPS = 1e-6
# input-grid slices resized (paper variants) or mapped back at a time: no whole-volume temporaries
SLAB_SLICES = 16
SPLINE_TAIL = 1e-12  # resize weights below this are dropped (see _spline_resize_matrix)


@dataclass(frozen=True)
class SpatialTransform:
    """Everything needed to map a model-space (S', size, size) array back onto the input grid.

    The forward path is: keep input slices ``slices``, cut the in-plane ``box``, pad it to
    ``padded_shape`` (``pad`` zeros before rows and columns), scale it by ``scale`` to
    ``scaled_shape``, cut the ``size`` x ``size`` window starting at ``crop``.

    Attributes:
        variant: the preprocessing variant that made it.
        input_shape: (slices, height, width) of the input.
        size: side of the model grid.
        slices: [start, stop) of the input slices present in model space.
        box: (row_start, row_stop, col_start, col_stop) of the input region that was kept.
        pad: zeros added before the rows and before the columns of the box.
        padded_shape: in-plane shape of the box after padding (the grid that was scaled).
        scale: in-plane scale factor from the padded grid to the scaled grid (1.0: none).
        scaled_shape: in-plane shape after scaling.
        crop: 0-based (row, col) start of the size x size window in the scaled grid.
    """

    variant: str
    input_shape: tuple[int, int, int]
    size: int
    slices: tuple[int, int]
    box: tuple[int, int, int, int]
    pad: tuple[int, int]
    padded_shape: tuple[int, int]
    scale: float
    scaled_shape: tuple[int, int]
    crop: tuple[int, int]


@dataclass(frozen=True)
class Preprocessed:
    """One preprocessed case.

    Attributes:
        image: (S', size, size, C); uint8 for the paper variants, float32 for the port.
        mask: (S', size, size) bool, or None when no mask was given.
        transform: how to map model-space outputs back onto the input grid.
    """

    image: np.ndarray
    mask: np.ndarray | None
    transform: SpatialTransform


def preprocess_case(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    variant: str = "paper-abnormality",
    size: int = 256,
    brain: np.ndarray | None = None,
    peak_percentile: float = 100.0,
) -> Preprocessed:
    """Preprocess one case; the inputs are never modified.

    Args:
        image: (S, H, W, C) array of any real dtype.
        mask: optional (S, H, W) label; nonzero is foreground.
        variant: one of :data:`VARIANTS`.
        size: side of the square model grid.
        brain: optional (S, H, W) brain mask; voxels outside it are set to 0 first (the
            paper-abnormality variant expects skull-stripped volumes).
        peak_percentile: the port variant: values below 10 % of this percentile of the volume are
            background (100: the maximum).

    Returns:
        The preprocessed image, mask and the transform back to the input grid.
    """
    _check_variant(variant)
    image = np.asarray(image)
    if image.ndim != 4 or min(image.shape) < 1:
        raise InputError(
            f"image has shape {image.shape}; expected (slices, height, width, channels), "
            "add a channel axis with image[..., None] for one modality"
        )
    if image.dtype.kind not in "iuf":
        raise InputError(f"image has dtype {image.dtype}; give real numbers (integer or float)")
    if image.dtype.kind == "f" and not all(np.isfinite(plane).all() for plane in image):  # a slice at a time
        raise InputError("image holds NaN or infinite values; replace them (e.g. np.nan_to_num) first")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise InputError(f"size must be a positive integer, got {size!r}")
    mask = None if mask is None else _as_label(mask, image.shape[:3], "mask")
    if all(plane.max() <= 0 for plane in image) and any(plane.min() < 0 for plane in image):
        raise InputError(
            "image holds no positive value, only zero and below (inverted, or scaled by a negative slope?); check "
            "its header's scaling"
        )
    image = background_to_zero(image)
    if brain is not None:
        image = strip_skull(image, brain)
    if variant == "port":
        return _port(image, mask, int(size), peak_percentile)
    return _paper(image, mask, variant, int(size))


def resized_plane(height: int, width: int, variant: str, size: int) -> tuple[int, int]:
    """The largest (rows, columns) plane ``variant`` resizes a slice of ``height`` x ``width`` on before it crops:
    the paper variants scale the short side to ``size`` (a thin slice grows long), the port pads the foreground's box
    to a square of its longer side (its resize matrix is that square too)."""
    if variant == "port":
        return max(height, width), max(height, width)
    scale = size / min(height, width)
    return int(np.ceil(scale * height - _EPS)), int(np.ceil(scale * width - _EPS))


BACKGROUND_SHARE = 0.2  # a value held by this share of a channel's voxels is its background


def background_to_zero(image: np.ndarray) -> np.ndarray:
    """Channels with negative values (z-scored or shifted scans) moved so that their background is 0.

    Every variant reads 0 as "nothing here" (the port: below 10 % of the maximum or of
    ``peak_percentile``). A channel
    whose negative values are all one value (padding outside the field of view, e.g. -1024) has
    them set to 0, the background of a raw scan. Otherwise (a z-scored scan) it is shifted by its
    minimum; when 0 itself is its background (at least :data:`BACKGROUND_SHARE` of the voxels, as
    in scans z-scored inside the brain and zero outside), those voxels stay 0. Channels without
    negative values, e.g. every raw scan, are returned unchanged (the same array when no channel
    changes); a FLAIR seen as three channels (a read-only broadcast view) comes back as such a view.
    """
    # a slice at a time: no full-size temporary
    if image.dtype.kind not in "if" or not any(plane.min() < 0 for plane in image):
        return image
    if image.shape[-1] > 1 and image.strides[-1] == 0:  # one channel seen several times (FLAIR only): shift it once
        return np.broadcast_to(background_to_zero(image[..., :1]), image.shape)
    out = image.astype(np.float32)
    for channel in range(out.shape[-1]):
        values = out[..., channel]
        low = float(values.min())
        if low >= 0:
            continue
        negative = values < 0
        if (values[negative] == low).all():  # one padding value: the background of a raw scan
            values[negative] = 0.0
            continue
        zero_background = np.count_nonzero(values == 0) >= BACKGROUND_SHARE * values.size
        background = values == 0 if zero_background else None
        values -= np.float32(low)
        if background is not None:
            values[background] = 0.0
    return out


def strip_skull(image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """A (S, H, W, C) image with every channel set to 0 outside the (S, H, W) brain label, in the image's dtype."""
    return image * _as_label(brain, image.shape[:3], "brain")[..., None]


def invert_mask(mask: np.ndarray, transform: SpatialTransform) -> np.ndarray:
    """Map a model-space (S', size, size) mask back onto the input grid (nearest neighbour).

    Returns:
        (S, H, W) bool mask on the input grid; False wherever the model saw nothing.
    """
    return _to_input_grid(np.asarray(mask) != 0, transform, "nearest")


def invert_probability(prob: np.ndarray, transform: SpatialTransform) -> np.ndarray:
    """Map a model-space (S', size, size) float map back onto the input grid (linear, 0 outside).

    Returns:
        (S, H, W) float32 map on the input grid.
    """
    prob = np.asarray(prob)
    if prob.dtype.kind not in "iuf":
        raise InputError(f"probability map has dtype {prob.dtype}; give real numbers")
    # float32 in and out: a float64 copy of the whole map on the input grid was one more array of 8 bytes a voxel
    return _to_input_grid(prob.astype(np.float32), transform, "linear")


def substitute_missing(channels: dict[str, np.ndarray | None], policy: str = "copy-flair") -> np.ndarray:
    """Stack the modalities as (S, H, W, 3) in the order pre, flair, post, filling missing ones.

    Args:
        channels: keys ``"pre"``, ``"flair"``, ``"post"``; each an (S, H, W) array or None (missing).
        policy: ``"copy-flair"`` (a copy of FLAIR, as the Kaggle dataset does), ``"zeros"`` or
            ``"error"``.

    Returns:
        A new (S, H, W, 3) array; a read-only view of FLAIR when FLAIR is the only modality
        and the policy is ``"copy-flair"`` (a large volume is then not held three times).
    """
    if policy not in MISSING_POLICIES:
        raise ConfigError(_unknown(policy, "missing-modality policy", MISSING_POLICIES))
    unknown = sorted(set(channels) - set(MODALITIES))
    if unknown:
        raise InputError(f"unknown modality keys {unknown}; use {list(MODALITIES)}")
    given = {name: np.asarray(array) for name, array in channels.items() if array is not None}
    if "flair" not in given:
        raise InputError("the FLAIR volume is missing; FLAIR is required by every network")
    flair = given["flair"]
    if flair.ndim != 3:
        raise InputError(f"flair has shape {flair.shape}; expected (slices, height, width)")
    for name, array in given.items():
        if array.shape != flair.shape:
            raise InputError(f"{name} has shape {array.shape} but flair has {flair.shape}; resample to one grid")
    missing = [name for name in MODALITIES if name not in given]
    if missing and policy == "error":
        raise InputError(f"the {missing[0]} modality is missing; provide it or choose policy 'copy-flair' or 'zeros'")
    if missing and policy == "copy-flair" and len(given) == 1:  # FLAIR alone: three views of it, no copy
        return np.broadcast_to(flair[..., None], (*flair.shape, len(MODALITIES)))
    dtype = np.result_type(*given.values())
    filler = flair if policy == "copy-flair" else np.zeros(flair.shape, dtype)
    return np.stack([given.get(name, filler) for name in MODALITIES], axis=-1)


def paper_window(volume: np.ndarray, variant: str) -> np.ndarray:
    """The paper's histogram window of one modality (steps 4-5): (S, H, W) float -> uint8.

    Negatives are set to 0; then ``[low, low + 2.55 (peak - low)]`` maps to [0, 255], so the
    tissue peak lands near 100.
    """
    _check_variant(variant)
    if variant == "port":
        raise ConfigError("paper_window needs 'paper-abnormality' or 'paper-brain', not 'port'")
    x = np.maximum(np.asarray(volume, dtype=np.float64), 0.0)
    if x.size == 0 or not np.isfinite(x).all():
        raise InputError("the volume is empty or holds NaN/infinite values; give finite intensities")
    low, _, high = _window_levels(x.ravel(), variant)
    unit = (np.clip(x, low, high) - low) / (high - low)
    return np.floor(unit * 255.0 + 0.5).astype(np.uint8)


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ConfigError(_unknown(variant, "preprocessing variant", VARIANTS))


def _unknown(value: object, what: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {value!r}; choose one of {', '.join(choices)}{hint}"


def _as_label(label: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    label = np.asarray(label)
    if label.shape != tuple(shape):
        raise InputError(
            f"{name} has shape {label.shape} but the image grid is {tuple(shape)}; give one label per voxel"
        )
    return label != 0


def _histogram(x: np.ndarray) -> tuple[float, int, np.ndarray, np.ndarray]:
    """The paper's histogram of ``x`` (``histcounts`` with 2-unit bins from an even left edge) as its occupied bins:
    (left edge, number of bins, the occupied bins' indices in increasing order, their counts).

    Only occupied bins are held, so memory follows the voxels, not the intensity range (a scan scaled to 1e9 would
    otherwise need a count for each of 5e8 bins); the levels are the same either way.
    """
    left = _BIN_WIDTH * np.floor(x.min() / _BIN_WIDTH)
    nbins = max(1, int(np.ceil((x.max() - left) / _BIN_WIDTH)))
    if nbins > _MAX_BINS:
        raise InputError(
            f"intensities reach {x.max():.3g}, beyond what the paper's 2-unit histogram counts exactly "
            f"({_BIN_WIDTH * _MAX_BINS:.3g}); rescale the volume to scanner intensities"
        )
    bins = np.minimum(((x - left) // _BIN_WIDTH).astype(np.intp), nbins - 1)
    if nbins <= bins.size:  # a count per bin is no larger than the voxels, and quicker than sorting them
        counts = np.bincount(bins, minlength=nbins)
        occupied = np.flatnonzero(counts)
        return float(left), nbins, occupied, counts[occupied]
    occupied, counts = np.unique(bins, return_counts=True)
    return float(left), nbins, occupied, counts


def _first_edge(left: float, nbins: int, value: float, strictly: bool = False) -> int:
    """Index of the first bin edge ``left + 2 i`` (0 <= i <= nbins) at or above ``value`` (above, ``strictly``);
    nbins + 1 when there is none. A binary search over the edges, none of them stored."""
    search = bisect.bisect_right if strictly else bisect.bisect_left
    return search(range(nbins + 1), value, key=lambda i: left + _BIN_WIDTH * i)


def _brain_start(x: np.ndarray, left: float, nbins: int, occupied: np.ndarray, counts: np.ndarray) -> tuple[float, int]:
    """paper-brain: the window's low level and the bin the peak search starts at (one after the fifth rising bin at
    or above the median)."""
    p2, p50 = np.percentile(x, [2, 50], method="hazen")
    above = _first_edge(left, nbins, p2, strictly=True)
    if above > nbins:
        raise InputError("the volume is constant; the paper-brain window needs a range of intensities")
    # N[i] / N[i-1] > 1, with k/0 > 1 and 0/0 not: a bin rises above its left neighbour (an empty one counts 0)
    previous = np.zeros_like(counts)
    adjacent = np.diff(occupied) == 1
    previous[1:][adjacent] = counts[:-1][adjacent]
    rising = (counts > previous) & (occupied > 0)
    found = occupied[rising & (occupied >= _first_edge(left, nbins, p50))]
    if found.size < _RISING_BINS:
        raise InputError(
            "cannot find the tissue peak above the background in the histogram; "
            "check that the volume is a head MRI in scanner intensities, or use the port variant"
        )
    return left + _BIN_WIDTH * above, int(found[_RISING_BINS - 1]) + 1


def _window_levels(x: np.ndarray, variant: str) -> tuple[float, float, float]:
    """(low, peak, high) of the paper window for the flat, non-negative float64 intensities ``x``."""
    left, nbins, occupied, counts = _histogram(x)
    if variant == "paper-abnormality":
        nonzero = x[x != 0]
        if nonzero.size == 0:
            raise InputError(
                "the volume is all zero; give a modality with signal (a channel filled with zeros cannot be windowed)"
            )
        low = float(np.percentile(nonzero, 2, method="hazen"))
        start = _first_edge(left, nbins, low)
    else:
        low, start = _brain_start(x, left, nbins, occupied, counts)
    if start >= nbins:
        raise InputError("cannot find the tissue peak in the histogram; the volume has almost no intensity range")
    later = occupied >= start  # never empty: the last bin holds the maximum
    peak = left + _BIN_WIDTH * int(occupied[later][np.argmax(counts[later])])
    high = low + _PEAK_GAIN * (peak - low)
    if high <= low:
        if variant == "paper-abnormality":
            raise InputError(
                "the intensity window collapsed (background fills the fullest histogram bin): "
                "paper-abnormality needs a skull-stripped volume; give a brain mask (brain=, or <CASE>_<k>_brain.tif "
                "slices / <case>_brain.nii.gz beside the input) or use paper-brain or port"
            )
        raise InputError("the intensity window collapsed; give scanner-range intensities (not rescaled to [0, 1])")
    return low, peak, high


def _paper(image: np.ndarray, mask: np.ndarray | None, variant: str, size: int) -> Preprocessed:
    slices, height, width, channels = image.shape
    scale, scaled = 1.0, (height, width)
    if min(height, width) != size:
        scale = size / min(height, width)
        scaled = (int(np.ceil(scale * height - _EPS)), int(np.ceil(scale * width - _EPS)))
        if mask is not None:
            mask = _resize_inplane(mask, scaled, scale, "nearest")
    crop = (max(1, (scaled[0] - size) // 2) - 1, max(1, (scaled[1] - size) // 2) - 1)
    window = (slice(None), slice(crop[0], crop[0] + size), slice(crop[1], crop[1] + size))
    if mask is not None:
        mask = mask[window]
        if variant == "paper-brain":
            mask = fill_holes_per_slice(mask)
    windowed = np.empty((slices, size, size, channels), dtype=np.uint8)
    shared = channels > 1 and image.strides[-1] == 0  # one channel seen several times (FLAIR only): window it once
    for c in range(1 if shared else channels):  # a channel at a time: one channel's float64 copy, not all
        channel = image[..., c]
        if scale != 1.0:
            channel = _resize_in_slabs(channel, scaled, scale)
        try:
            windowed[..., c] = paper_window(channel[window], variant)
        except InputError as error:
            raise InputError(f"channel {c}: {error}") from None
    if shared:
        windowed[..., 1:] = windowed[..., :1]
    transform = SpatialTransform(
        variant=variant,
        input_shape=(slices, height, width),
        size=size,
        slices=(0, slices),
        box=(0, height, 0, width),
        pad=(0, 0),
        padded_shape=(height, width),
        scale=scale,
        scaled_shape=scaled,
        crop=crop,
    )
    return Preprocessed(windowed, None if mask is None else np.array(mask, dtype=bool), transform)


def _resize_in_slabs(channel: np.ndarray, shape: tuple[int, int], scale: float) -> np.ndarray:
    """(S, H, W) -> (S, *shape) float64, cubic: in floating point, as the MATLAB code converts first, converted and
    resized ``SLAB_SLICES`` slices at a time (no float64 copy of the whole input).
    """
    out = np.empty((len(channel), *shape))
    for start in range(0, len(channel), SLAB_SLICES):
        slab = channel[start : start + SLAB_SLICES].astype(np.float64)
        out[start : start + SLAB_SLICES] = _resize_inplane(slab, shape, scale, "cubic")
    return out


def _port(image: np.ndarray, mask: np.ndarray | None, size: int, peak_percentile: float = 100.0) -> Preprocessed:
    slices, height, width, _ = image.shape
    if slices < 3:
        raise InputError(f"the port variant drops the first and last slice and needs at least 3 slices, got {slices}")
    inner = image[1:-1]  # a view: the input is never copied whole
    peak = float(inner.max())
    if peak <= 0:
        raise InputError("the volume has no positive intensities (all zero after dropping the end slices)")
    cut = np.float32(0.1 * _robust_peak(inner, peak, peak_percentile))  # below it: background (set to 0)
    occupied = np.zeros(inner.shape[:3], dtype=bool)
    for channel in range(inner.shape[3]):
        occupied |= inner[..., channel] >= cut
    z0, z1 = _extent(occupied.any(axis=(1, 2)))
    r0, r1 = _extent(occupied.any(axis=(0, 2)))
    c0, c1 = _extent(occupied.any(axis=(0, 1)))
    side = max(r1 - r0, c1 - c0)
    pad = ((side - (r1 - r0)) // 2, (side - (c1 - c0)) // 2)
    # The square padding and the resize are one linear map per axis: the resize matrix's columns
    # for the rows and columns the box occupies inside the zero-padded square.
    matrix = _spline_resize_matrix(side, size)
    rows = matrix[:, pad[0] : pad[0] + r1 - r0]
    cols = matrix[:, pad[1] : pad[1] + c1 - c0]
    channel_first = np.empty((image.shape[3], z1 - z0, size, size), dtype=np.float32)
    for z in range(z0, z1):  # a plane at a time, the same way for every channel: equal channels stay equal
        for channel in range(image.shape[3]):
            plane = inner[z, r0:r1, c0:c1, channel].astype(np.float32)
            plane[plane < cut] = 0.0
            channel_first[channel, z - z0] = rows @ plane @ cols.T
    resized = np.moveaxis(channel_first, 0, -1)
    np.clip(resized, 0.0, peak, out=resized)  # the spline's overshoot, clipped to the volume's range
    p10, p99 = np.percentile(resized, [10, 99])
    if p99 > p10:
        np.clip(resized, p10, p99, out=resized)
        resized -= np.float32(p10)
        resized /= np.float32(p99 - p10)
    else:
        resized[:] = 0.0
    # a channel at a time: the float64 temporaries of one channel, not of all
    mean = np.array([channel.mean(dtype=np.float64) for channel in channel_first])
    std = np.array([channel.std(dtype=np.float64) for channel in channel_first])
    resized -= mean.astype(np.float32)
    resized /= np.where(std > 0, std, 1.0).astype(np.float32)
    resized[..., std == 0] = 0.0
    if mask is not None:
        square = np.zeros((z1 - z0, side, side), dtype=bool)
        square[:, pad[0] : pad[0] + r1 - r0, pad[1] : pad[1] + c1 - c0] = mask[1:-1][z0:z1, r0:r1, c0:c1]
        mask = resize(square, (z1 - z0, size, size), order=0, mode="constant", cval=0, anti_aliasing=False) > 0.5
    transform = SpatialTransform(
        variant="port",
        input_shape=(slices, height, width),
        size=size,
        slices=(z0 + 1, z1 + 1),
        box=(r0, r1, c0, c1),
        pad=pad,
        padded_shape=(side, side),
        scale=size / side,
        scaled_shape=(size, size),
        crop=(0, 0),
    )
    return Preprocessed(resized, mask, transform)


def _robust_peak(inner: np.ndarray, peak: float, percentile: float) -> float:
    """``percentile`` of the volume's values (estimated on every second row and column, so no whole-volume copy is
    made); ``peak``, the maximum, at 100 or where the percentile is not positive (a volume almost all background).
    """
    robust = float(np.percentile(inner[:, ::2, ::2], percentile)) if percentile < 100 else peak
    return robust if robust > 0 else peak


@functools.lru_cache(maxsize=32)
def _spline_resize_matrix(in_len: int, out_len: int) -> np.ndarray:
    """(out_len, in_len) float32 matrix M with M @ x equal to skimage's 1-D quadratic-spline resize of x.

    skimage ``resize(order=2, mode="constant", cval=0, anti_aliasing=False)`` is a tensor-product
    spline interpolation, so resizing a plane is ``M_rows @ plane @ M_cols.T``: two matrix
    products instead of a spline evaluation per pixel. The matrix is the resize of the identity.
    """
    identity = np.eye(in_len)
    matrix = resize(
        identity,
        (out_len, in_len),
        order=2,
        mode="constant",
        cval=0,
        anti_aliasing=False,
        preserve_range=True,
        clip=False,
    ).astype(np.float32)
    # The spline's far tails fall to 1e-38 and below, and a product of two tails (row pass, then column pass)
    # underflows to subnormal floats, which x86 multiplies many times slower: the resize of a case took 2-10x
    # longer. Weights below 1e-12 move no output by more than float32 rounding, so they become exact zeros.
    matrix[np.abs(matrix) < SPLINE_TAIL] = 0.0
    matrix.setflags(write=False)  # shared by every caller through the cache
    return matrix


def _extent(occupied: np.ndarray) -> tuple[int, int]:
    index = np.flatnonzero(occupied)
    return int(index[0]), int(index[-1]) + 1


def _to_input_grid(volume: np.ndarray, transform: SpatialTransform, method: str) -> np.ndarray:
    t = transform
    expected = (t.slices[1] - t.slices[0], t.size, t.size)
    if volume.shape != expected:
        raise InputError(
            f"model-space array has shape {volume.shape} but this transform expects {expected}; "
            "pass the output for the same preprocessed case"
        )
    r0, r1, c0, c1 = t.box
    rows, cols = slice(t.pad[0], t.pad[0] + r1 - r0), slice(t.pad[1], t.pad[1] + c1 - c0)
    output = np.zeros(t.input_shape, dtype=volume.dtype)
    for start in range(0, expected[0], SLAB_SLICES):  # each slice on its own: slabs give the same values
        part = volume[start : start + SLAB_SLICES]
        scaled = np.zeros((len(part), *t.scaled_shape), dtype=volume.dtype)
        scaled[:, t.crop[0] : t.crop[0] + t.size, t.crop[1] : t.crop[1] + t.size] = part
        padded = scaled
        if t.scaled_shape != t.padded_shape:
            padded = _resize_inplane(scaled, t.padded_shape, 1.0 / t.scale, method)
        first = t.slices[0] + start
        output[first : first + len(part), r0:r1, c0:c1] = padded[:, rows, cols]
    return output


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's bicubic)."""
    ax = np.abs(x)
    near = (1.5 * ax**3 - 2.5 * ax**2 + 1.0) * (ax <= 1)
    return near + (-0.5 * ax**3 + 2.5 * ax**2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.maximum(1.0 - np.abs(x), 0.0)


_KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {  # kernel and its support width
    "cubic": (_cubic, 4.0),
    "linear": (_triangle, 2.0),
}


def _source_coordinates(out_len: int, scale: float) -> np.ndarray:
    """1-based input coordinate of every output pixel centre (MATLAB imresize mapping)."""
    x = np.arange(1, out_len + 1, dtype=np.float64)
    return x / scale + 0.5 * (1.0 - 1.0 / scale)


def _resize_weights(in_len: int, out_len: int, scale: float, method: str) -> np.ndarray:
    """(out_len, in_len) interpolation matrix of MATLAB imresize for ``method`` "cubic" or "linear".

    When shrinking, the kernel is widened by 1 / scale (antialiasing); weights are normalised to
    sum 1 and indices past the border are mirrored (symmetric padding).
    """
    kernel, width = _KERNELS[method]
    stretch = min(scale, 1.0)  # < 1: antialiasing, the kernel is widened by 1 / scale
    u = _source_coordinates(out_len, scale)
    index = np.floor(u - width / stretch / 2)[:, None] + np.arange(int(np.ceil(width / stretch)) + 2)
    weights = kernel(stretch * (u[:, None] - index))
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    index = mirror[(index.astype(np.intp) - 1) % (2 * in_len)]
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), index.shape[1]), index.ravel()), weights.ravel())
    return matrix


def _nearest_index(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """0-based source index of every output pixel for MATLAB's nearest-neighbour imresize."""
    u = _source_coordinates(out_len, scale)
    return np.clip(np.floor(u + 0.5).astype(np.intp), 1, in_len) - 1


def _resize_inplane(volume: np.ndarray, shape: tuple[int, int], scale: float, method: str) -> np.ndarray:
    """Resize axes 1 and 2 of ``volume`` to ``shape`` like MATLAB ``imresize(volume, scale, method)``.

    Rows are resized first, then columns. Images are resized in floating point (callers convert
    them first); ``method`` is "cubic", "linear" or "nearest" (labels).
    """
    out = volume
    for axis, out_len in ((1, shape[0]), (2, shape[1])):
        in_len = out.shape[axis]
        if method == "nearest":
            out = np.take(out, _nearest_index(in_len, out_len, scale), axis=axis)
        else:
            weights = _resize_weights(in_len, out_len, scale, method)
            out = np.moveaxis(np.tensordot(out, weights, axes=([axis], [1])), -1, axis)
    return out
