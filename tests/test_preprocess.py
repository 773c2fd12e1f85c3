"""Contract tests of flairseg.preprocess on small synthetic heads (no dataset needed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage.transform import resize

from flairseg.errors import ConfigError, InputError
from flairseg.preprocess import (
    VARIANTS,
    _histogram,
    _nearest_index,
    _resize_inplane,
    _resize_weights,
    _spline_resize_matrix,
    invert_mask,
    invert_probability,
    paper_window,
    preprocess_case,
    substitute_missing,
)

TISSUE = 121.0  # the centre of the histogram bin [120, 122): its left edge is the peak
# Kaggle-like background noise: values 1..6, rarely 1, so the 2nd percentile of the non-zero voxels is 2.
NOISE_VALUES, NOISE_P = np.arange(1, 7), [0.01, 0.3, 0.3, 0.2, 0.1, 0.09]


def head(slices: int = 5, height: int = 256, width: int = 256, seed: int = 0) -> tuple[np.ndarray, ...]:
    """A raw (not skull-stripped) noisy head: (S, H, W, 3) uint8 image, tumour mask, brain mask."""
    rng = np.random.default_rng(seed)
    _, y, x = np.mgrid[:slices, :height, :width].astype(float)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    radius = ((y - cy) / (0.40 * height)) ** 2 + ((x - cx) / (0.35 * width)) ** 2
    brain, scalp = radius <= 0.75, radius <= 1
    tumour = ((y - cy + 0.08 * height) / (0.1 * height)) ** 2 + ((x - cx - 0.05 * width) / (0.1 * width)) ** 2 <= 1
    flair = rng.choice(NOISE_VALUES, p=NOISE_P, size=y.shape).astype(float)
    flair[scalp & ~brain] = rng.normal(60, 12, size=int((scalp & ~brain).sum()))
    flair[brain] = rng.normal(TISSUE, 12, size=int(brain.sum()))
    flair[tumour] += 70
    image = np.stack([flair * 0.8, flair, flair * 1.1], axis=-1)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), tumour, brain


def boundary_band(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Voxels within ``width`` pixels (in-plane, chessboard distance) of the mask boundary."""
    plane = np.zeros((3, 3, 3), dtype=bool)
    plane[1] = True
    return ndimage.binary_dilation(mask, plane, width) & ~ndimage.binary_erosion(mask, plane, width)


def keys(x: float) -> float:
    """Keys cubic kernel, a = -0.5, written out."""
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    if x <= 2:
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
    return 0.0


# --- names and validation --------------------------------------------------------------------


def test_variant_names() -> None:
    assert VARIANTS == ("paper-abnormality", "paper-brain", "port")


def test_bad_variant_lists_choices() -> None:
    image, _, _ = head(slices=3)
    with pytest.raises(ConfigError, match="paper-abnormality, paper-brain, port.*did you mean 'paper-brain'"):
        preprocess_case(image, variant="paper_brain")
    with pytest.raises(ConfigError, match="port"):
        paper_window(image[..., 1], "port")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": np.zeros((3, 8, 8))}, "channel axis"),
        ({"image": np.full((3, 8, 8, 1), np.nan)}, "NaN"),
        ({"image": np.ones((3, 8, 8, 1)), "mask": np.ones((3, 8, 9))}, "mask has shape"),
        ({"image": np.ones((3, 8, 8, 1)), "brain": np.ones((2, 8, 8))}, "brain has shape"),
        ({"image": np.ones((3, 8, 8, 1)), "size": 0}, "positive integer"),
    ],
)
def test_bad_input_raises(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        preprocess_case(**kwargs)


@pytest.mark.parametrize("variant", VARIANTS)
def test_inputs_are_not_modified(variant: str) -> None:
    image, mask, brain = head(slices=4, height=200, width=240)
    copies = image.copy(), mask.copy(), brain.copy()
    result = preprocess_case(image, mask.astype(np.uint8) * 255, variant, brain=brain)
    prob = result.mask.astype(np.float32)
    prob_copy = prob.copy()
    invert_mask(result.mask, result.transform)
    invert_probability(prob, result.transform)
    for array, copy in zip((image, mask, brain, prob), (*copies, prob_copy)):
        np.testing.assert_array_equal(array, copy)


# --- MATLAB-style resizing -------------------------------------------------------------------


def test_bicubic_upscale_matches_keys_kernel() -> None:
    weights = _resize_weights(5, 10, 2.0, "cubic")
    u = np.arange(1, 11) / 2 + 0.25  # MATLAB's 1-based source coordinate of each output pixel
    expected = [keys(v - 3) for v in u]  # the single 1 sits at 1-based index 3
    np.testing.assert_allclose(weights @ np.array([0, 0, 1, 0, 0.0]), expected, atol=1e-12)
    np.testing.assert_allclose(expected[3:7], [0.2265625, 0.8671875, 0.8671875, 0.2265625])
    for row, v in zip(weights[3:7], u[3:7]):  # interior rows: the kernel itself at the four neighbours
        left = int(np.floor(v))
        np.testing.assert_allclose(row[left - 2 : left + 2], [keys(v - k) for k in range(left - 1, left + 3)])


@pytest.mark.parametrize(
    ("in_len", "out_len", "scale"), [(5, 10, 2.0), (300, 256, 256 / 300), (512, 256, 0.5), (200, 256, 1.28)]
)
@pytest.mark.parametrize("method", ["cubic", "linear"])
def test_resize_weights_preserve_constants(in_len: int, out_len: int, scale: float, method: str) -> None:
    weights = _resize_weights(in_len, out_len, scale, method)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    stack = np.full((2, in_len, in_len + 3, 2), 37.5)
    out = _resize_inplane(stack, (out_len, int(np.ceil(scale * (in_len + 3) - 1e-6))), scale, method)
    np.testing.assert_allclose(out, 37.5)


def test_bicubic_shrink_is_antialiased() -> None:
    weights = _resize_weights(10, 5, 0.5, "cubic")
    np.testing.assert_allclose(weights[2, 1:9], [0.5 * keys(0.5 * d) for d in np.arange(-3.5, 4.5)])
    assert np.count_nonzero(weights[2]) == 8  # the kernel is twice as wide as when enlarging


def test_integer_images_are_resized_in_floating_point() -> None:
    """The paper variants give an integer image of another size exactly what its float copy gives (no rounding per
    pass).
    """
    rng = np.random.default_rng(0)
    image = rng.integers(0, 200, size=(3, 200, 230, 3)).astype(np.uint8)
    as_int = preprocess_case(image, variant="paper-abnormality").image
    as_float = preprocess_case(image.astype(np.float64), variant="paper-abnormality").image
    np.testing.assert_array_equal(as_int, as_float)


@settings(max_examples=40, deadline=None)
@given(st.integers(8, 60), st.floats(1.0, 3.0))
def test_nearest_upscale_then_back_is_exact(in_len: int, scale: float) -> None:
    out_len = int(np.ceil(scale * in_len - 1e-6))
    forward = _nearest_index(in_len, out_len, scale)
    back = _nearest_index(out_len, in_len, 1 / scale)
    np.testing.assert_array_equal(forward[back], np.arange(in_len))


# --- paper variants: geometry ----------------------------------------------------------------


@pytest.mark.parametrize("variant", ["paper-abnormality", "paper-brain"])
@pytest.mark.parametrize("width", [256, 258, 300])
def test_paper_roundtrip_exact_without_scaling(variant: str, width: int) -> None:
    image, mask, brain = head(slices=3, width=width)
    result = preprocess_case(image, mask, variant, brain=brain if variant == "paper-abnormality" else None)
    assert result.image.shape == (3, 256, 256, 3) and result.image.dtype == np.uint8
    assert result.transform.scale == 1.0
    np.testing.assert_array_equal(invert_mask(result.mask, result.transform), mask)
    np.testing.assert_array_equal(invert_probability(result.mask.astype(float), result.transform), mask)


@pytest.mark.parametrize(("width", "start"), [(256, 0), (257, 0), (258, 0), (260, 1), (300, 21)])
def test_paper_crop_start_is_one_pixel_off_centre(width: int, start: int) -> None:
    image, _, _ = head(slices=3, width=width)
    marker = np.zeros((3, 256, width), dtype=bool)
    marker[:, 100, start] = True  # MATLAB's first kept column: max(1, floor((width - 256) / 2)), 1-based
    result = preprocess_case(image, marker, "paper-brain")
    assert result.transform.scale == 1.0 and result.transform.crop == (0, start)
    assert result.mask[:, 100, 0].all() and result.mask.sum() == 3
    cropped_first = preprocess_case(image[:, :, start : start + 256], None, "paper-brain")
    np.testing.assert_array_equal(result.image, cropped_first.image)


@pytest.mark.parametrize("shape", [(300, 320), (200, 240), (512, 512), (180, 400), (420, 270)])
def test_paper_roundtrip_with_scaling_within_one_pixel(shape: tuple[int, int]) -> None:
    image, mask, _ = head(slices=3, height=shape[0], width=shape[1])
    result = preprocess_case(image, mask, "paper-brain")
    t = result.transform
    assert min(t.scaled_shape) == 256 and t.scale == pytest.approx(256 / min(shape))
    back = invert_mask(result.mask, t)
    assert back.shape == mask.shape and back.any()
    assert not ((back ^ mask) & ~boundary_band(mask)).any()
    prob = invert_probability(result.mask.astype(np.float32), t)
    assert prob.dtype == np.float32 and prob.shape == mask.shape
    assert not (((prob >= 0.5) ^ mask) & ~boundary_band(mask)).any()
    far = ~boundary_band(mask, 2)  # linear interpolation reaches two pixels when the forward pass shrank
    assert np.all(prob[mask & far] > 0.99) and np.all(prob[~mask & far] < 0.01)


def test_paper_brain_fills_mask_holes() -> None:
    image, _, brain = head(slices=2)
    ring = np.zeros((2, 256, 256), dtype=bool)
    ring[:, 100:140, 100:140] = True
    ring[:, 110:130, 110:130] = False
    assert preprocess_case(image, ring, "paper-brain").mask[:, 100:140, 100:140].all()
    assert not preprocess_case(image, ring, "paper-abnormality", brain=brain).mask[:, 115, 115].any()


def test_invert_rejects_wrong_shape() -> None:
    image, mask, _ = head(slices=3)
    result = preprocess_case(image, mask, "paper-brain")
    with pytest.raises(InputError, match="expects"):
        invert_mask(result.mask[:2], result.transform)


# --- paper variants: intensity window --------------------------------------------------------


def test_abnormality_window_on_skull_stripped_volume() -> None:
    values = np.arange(150, 251)
    tissue = np.repeat(values, 60 - np.abs(values - 200)).astype(float)  # one clear mode at 200
    volume = np.concatenate([tissue, np.zeros(6000 - tissue.size)]).reshape(6, 25, 40)
    low = np.percentile(tissue, 2, method="hazen")
    out = paper_window(volume, "paper-abnormality")
    assert out.dtype == np.uint8 and out.shape == volume.shape
    assert out[volume == 200].min() == out[volume == 200].max() == 100  # 255 / 2.55: the peak lands at 100
    assert out[volume <= low].max() == 0 and out[volume > low].min() > 0
    expected = np.floor(np.clip((volume - low) / (2.55 * (200 - low)), 0, 1) * 255 + 0.5)
    np.testing.assert_array_equal(out, expected)


def test_abnormality_window_collapses_on_raw_head() -> None:
    image, _, _ = head(slices=3)
    with pytest.raises(InputError, match="skull-stripped.*brain="):
        paper_window(image[..., 1], "paper-abnormality")
    with pytest.raises(InputError, match="channel 0"):
        preprocess_case(image, variant="paper-abnormality")


def test_brain_window_finds_tissue_peak_on_raw_head() -> None:
    image, _, brain = head(slices=4)
    out = paper_window(image[..., 1].astype(float), "paper-brain")
    assert abs(np.median(out[brain]) - 100) <= 8  # the tissue peak, not the background lobe near 0
    assert np.median(out[~brain]) < 50


def test_brain_window_without_rising_bins_raises() -> None:
    volume = np.zeros((2, 8, 8))
    volume[1] = 100.0
    with pytest.raises(InputError, match="cannot find the tissue peak"):
        paper_window(volume, "paper-brain")


def test_brain_option_enables_abnormality_variant_on_raw_head() -> None:
    image, mask, brain = head(slices=4)
    result = preprocess_case(image, mask, "paper-abnormality", brain=brain)
    flair = result.image[..., 1]
    assert flair[~brain].max() == 0
    assert abs(np.median(flair[brain & ~mask]) - 100) <= 8
    assert np.median(flair[mask]) == 255  # the bright tumour saturates the window


# --- port variant ----------------------------------------------------------------------------


def test_port_output_contract() -> None:
    image, mask, _ = head(slices=7, height=240, width=300)
    result = preprocess_case(image, mask, "port")
    t = result.transform
    assert t.slices == (1, 6)  # the first and last input slice are dropped, then the box is cut
    assert result.image.shape == (5, 256, 256, 3) and result.image.dtype == np.float32
    np.testing.assert_allclose(result.image.mean(axis=(0, 1, 2), dtype=np.float64), 0, atol=1e-5)
    np.testing.assert_allclose(result.image.std(axis=(0, 1, 2), dtype=np.float64), 1, atol=1e-5)
    assert result.mask.shape == (5, 256, 256) and result.mask.dtype == bool


def test_port_roundtrip_exact_for_crop_and_pad() -> None:
    rng = np.random.default_rng(2)
    image = np.zeros((6, 300, 320, 2), dtype=np.float32)
    image[2:5, 20:220, 30:286] = rng.uniform(50, 100, size=(3, 200, 256, 2))  # box 200 x 256: pad only
    mask = np.zeros((6, 300, 320), dtype=bool)
    mask[2:5, 60:150, 40:200] = True
    result = preprocess_case(image, mask, "port")
    t = result.transform
    assert (t.slices, t.box, t.pad, t.scale) == ((2, 5), (20, 220, 30, 286), (28, 0), 1.0)
    np.testing.assert_array_equal(invert_mask(result.mask, t), mask)
    np.testing.assert_array_equal(invert_probability(result.mask.astype(float), t), mask)


@pytest.mark.parametrize("shape", [(300, 320), (200, 240), (512, 512), (180, 400)])
def test_port_roundtrip_with_resize_within_one_pixel(shape: tuple[int, int]) -> None:
    image, mask, _ = head(slices=4, height=shape[0], width=shape[1])
    mask[[0, -1]] = False  # the port never sees the end slices
    result = preprocess_case(image, mask, "port")
    back = invert_mask(result.mask, result.transform)
    assert back.any() and not ((back ^ mask) & ~boundary_band(mask)).any()


def _port_reference(image: np.ndarray) -> np.ndarray:
    """The port's preprocessing written out plainly in float64: threshold, crop, pad, one 4-D resize, window,
    z-score.
    """
    volume = image[1:-1].astype(np.float64)
    volume[volume < 0.1 * volume.max()] = 0
    z, r, c = (np.flatnonzero((volume != 0).any(axis=3).any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    region = volume[z[0] : z[-1] + 1, r[0] : r[-1] + 1, c[0] : c[-1] + 1]
    side = max(region.shape[1:3])
    padded = np.zeros((region.shape[0], side, side, volume.shape[3]))
    top, left = (side - region.shape[1]) // 2, (side - region.shape[2]) // 2
    padded[:, top : top + region.shape[1], left : left + region.shape[2]] = region
    resized = resize(
        padded,
        (padded.shape[0], 64, 64, padded.shape[3]),
        order=2,
        mode="constant",
        cval=0,
        anti_aliasing=False,
        preserve_range=True,
    )
    p10, p99 = np.percentile(resized, [10, 99])
    unit = (np.clip(resized, p10, p99) - p10) / (p99 - p10)
    return (unit - unit.mean(axis=(0, 1, 2))) / unit.std(axis=(0, 1, 2))


@pytest.mark.parametrize("shape", [(90, 70), (48, 100), (64, 64)])
def test_port_separable_resize_equals_the_plain_definition(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 100, size=(5, *shape, 3))
    image[:, :9] = rng.uniform(0, 5, size=(5, 9, shape[1], 3))  # background below the 10 % threshold
    result = preprocess_case(image, variant="port", size=64)
    assert result.image.dtype == np.float32
    np.testing.assert_allclose(result.image, _port_reference(image), atol=2e-4)


def test_port_resize_of_a_lone_pixel_makes_no_subnormal_values() -> None:
    # the row pass spreads a pixel into the spline's far tails, the column pass multiplies tail by tail: kept
    # down to 1e-38, those products underflow to subnormal floats, which x86 multiplies many times slower
    matrix = _spline_resize_matrix(226, 256)
    plane = np.zeros((226, 226), dtype=np.float32)
    plane[0, 0] = 1.0
    resized = matrix @ plane @ matrix.T
    assert np.abs(resized[resized != 0]).min() >= np.finfo(np.float32).tiny


def test_port_rejects_empty_or_thin_volumes() -> None:
    with pytest.raises(InputError, match="no positive intensities"):
        preprocess_case(np.zeros((5, 32, 32, 3)), variant="port")
    with pytest.raises(InputError, match="at least 3 slices"):
        preprocess_case(np.ones((2, 32, 32, 3)), variant="port")


# --- missing modalities ----------------------------------------------------------------------


def test_substitute_missing_policies() -> None:
    flair, post = np.full((2, 4, 4), 7, np.uint8), np.full((2, 4, 4), 9, np.uint8)
    copied = substitute_missing({"pre": None, "flair": flair, "post": post})
    assert copied.shape == (2, 4, 4, 3) and copied.dtype == np.uint8
    np.testing.assert_array_equal(copied[..., 0], flair)
    np.testing.assert_array_equal(copied[..., 2], post)
    zeros = substitute_missing({"flair": flair, "post": post}, policy="zeros")
    assert not zeros[..., 0].any() and (zeros[..., 1] == 7).all()
    with pytest.raises(InputError, match="pre modality is missing"):
        substitute_missing({"pre": None, "flair": flair, "post": post}, policy="error")
    copied[..., 1] = 0
    assert (flair == 7).all()  # a new array, never a view of the input


@pytest.mark.parametrize(
    ("channels", "policy", "error", "message"),
    [
        ({"pre": np.zeros((2, 4, 4)), "flair": None}, "zeros", InputError, "FLAIR"),
        ({"flair": np.zeros((2, 4, 4)), "post": np.zeros((2, 4, 5))}, "copy-flair", InputError, "post has shape"),
        ({"flair": np.zeros((2, 4, 4)), "t1": np.zeros((2, 4, 4))}, "copy-flair", InputError, "unknown modality"),
        ({"flair": np.zeros((2, 4, 4))}, "copy", ConfigError, "copy-flair, zeros, error"),
    ],
)
def test_substitute_missing_rejects(channels: dict, policy: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        substitute_missing(channels, policy)


def test_z_scored_volumes_give_the_raw_volume_s_model_input(sample_case) -> None:
    """A scan z-scored over the whole volume (negative background) preprocesses exactly as the raw scan."""
    from flairseg.io import read_case, read_label
    from flairseg.preprocess import background_to_zero

    case = read_case(sample_case)
    raw = case.image.astype(np.float32)
    z = (raw - raw.mean()) / raw.std()  # one scaling for all channels: the port thresholds them jointly
    expected = preprocess_case(raw, variant="port").image
    np.testing.assert_allclose(preprocess_case(z, variant="port").image, expected, atol=2e-3)
    brain = read_label(case, "_brain")
    inside = np.where(brain[..., None], (raw - 50.0) / 20.0, 0.0).astype(np.float32)  # z-scored in the brain, 0 outside
    shifted = background_to_zero(inside)
    assert (shifted[~brain] == 0).all() and (shifted[brain] >= 0).all()
    assert background_to_zero(raw) is raw  # raw scans are untouched


def test_a_lone_negative_padding_value_becomes_background() -> None:
    from flairseg.preprocess import background_to_zero

    image = np.full((2, 6, 6, 1), 100.0, np.float32)
    image[:, :2] = -32768.0  # padding outside the field of view
    out = background_to_zero(image)
    assert (out[:, :2] == 0).all() and (out[:, 2:] == 100).all()


def test_a_flair_seen_as_three_channels_is_shifted_once_and_stays_a_view() -> None:
    from flairseg.preprocess import background_to_zero

    flair = np.random.default_rng(0).normal(0.0, 1.0, (4, 8, 8, 1)).astype(np.float32)  # z-scored: negative values
    three = np.broadcast_to(flair, (4, 8, 8, 3))  # what a FLAIR-only input gives the abnormality model
    out = background_to_zero(three)
    assert out.strides[-1] == 0  # one channel's worth of memory, not three
    np.testing.assert_array_equal(out, background_to_zero(np.ascontiguousarray(three)))


def test_mapping_back_in_slabs_gives_the_whole_volume_s_values(monkeypatch) -> None:
    from flairseg import preprocess

    rng = np.random.default_rng(1)
    image = rng.random((2 * preprocess.SLAB_SLICES + 5, 70, 90, 1)).astype(np.float32) + 1.0
    transform = preprocess_case(image, variant="port", size=32).transform
    prob = rng.random((transform.slices[1] - transform.slices[0], 32, 32)).astype(np.float32)
    slabs = preprocess.invert_probability(prob, transform), preprocess.invert_mask(prob > 0.5, transform)
    monkeypatch.setattr(preprocess, "SLAB_SLICES", 10**6)  # the whole volume at once
    whole = preprocess.invert_probability(prob, transform), preprocess.invert_mask(prob > 0.5, transform)
    for a, b in zip(slabs, whole):
        np.testing.assert_array_equal(a, b)


def test_a_percentile_peak_keeps_a_dim_flair_that_a_few_bright_voxels_would_cut() -> None:
    image = np.zeros((6, 40, 40, 1), dtype=np.float32)
    image[:, 8:32, 8:32] = 20.0  # a dim FLAIR's brain
    image[:, 18:22, 18:22] = 28.0  # its lesion
    image[2:4, 12, 12] = 255.0  # a few very bright voxels (fat, an artefact)
    by_maximum = preprocess_case(image, variant="port", size=16)  # cut at 25.5: the brain is background
    by_percentile = preprocess_case(image, variant="port", size=16, peak_percentile=99.0)  # cut near 2.8
    assert by_maximum.transform.box == (12, 22, 12, 22)  # the lesion and the bright voxels alone
    assert by_percentile.transform.box == (8, 32, 8, 32)  # the whole brain


@pytest.mark.parametrize("value", [50.0, 100.5, float("nan")])
def test_peak_percentile_outside_90_to_100_is_refused(value: float) -> None:
    from flairseg.config import PreprocessConfig, TrainConfig
    from flairseg.errors import ConfigError

    with pytest.raises(ConfigError, match="peak_percentile"):
        TrainConfig(preprocess=PreprocessConfig(peak_percentile=value))


def test_peak_percentile_belongs_to_the_port_variant_and_never_cuts_at_zero() -> None:
    from flairseg.config import PreprocessConfig, TrainConfig
    from flairseg.errors import ConfigError

    with pytest.raises(ConfigError, match="port variant"):
        TrainConfig(preprocess=PreprocessConfig(variant="paper-brain", peak_percentile=99.0))
    image = np.zeros((20, 100, 100, 1), dtype=np.float32)
    image[5:15, 40:60, 40:60] = 50.0  # a brain in 4 % of the voxels: the 90th percentile is 0
    by_percentile = preprocess_case(image, variant="port", size=16, peak_percentile=90.0)
    assert by_percentile.transform.box == preprocess_case(image, variant="port", size=16).transform.box


def test_the_histogram_holds_only_occupied_bins_with_the_counts_of_every_bin() -> None:
    x = np.array([0.0, 1.0, 3.0, 3.5, 7.0, 7.9, 40001.0])  # 20001 two-unit bins for 7 voxels
    left, nbins, occupied, counts = _histogram(x)
    every_bin = np.bincount(np.minimum((x // 2).astype(int), nbins - 1), minlength=nbins)
    assert (left, nbins) == (0.0, 20001)
    assert occupied.tolist() == np.flatnonzero(every_bin).tolist() == [0, 1, 3, 20000]
    assert counts.tolist() == every_bin[every_bin > 0].tolist() == [2, 2, 2, 1]


def test_the_paper_window_needs_memory_for_the_voxels_not_for_the_intensity_range() -> None:
    """Intensities scaled to ~4e7 span 2e7 two-unit bins: a count per bin alone would be 160 MB."""
    import tracemalloc

    head = np.round(np.random.default_rng(0).gamma(4.0, 25.0, (4, 32, 32))) * 1e5
    tracemalloc.start()
    try:
        windows = [paper_window(head, variant) for variant in ("paper-abnormality", "paper-brain")]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20 and all(window.dtype == np.uint8 and window.max() == 255 for window in windows)
