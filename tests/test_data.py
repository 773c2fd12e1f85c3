"""Splits, slice sampling, augmentation and losses."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from synthetic import phantom, write_kaggle_case
from flairseg import augment
from flairseg.data import (
    DATA_FILE,
    Split,
    check_data,
    data_record,
    epoch_items,
    make_split,
    neighbour_slices,
    save_split,
)
from flairseg.errors import ConfigError, InputError
from flairseg.losses import dice_bce_loss, dice_focal_loss, soft_dice_loss

IDS = [f"TCGA_{inst}_{i:04d}_20000101" for inst in ("CS", "DU", "EZ", "FG", "HT") for i in range(22)]


def test_kfold_split_is_patient_level_seeded_and_spread() -> None:
    splits = [make_split(IDS, folds=5, fold=f, validation_cases=10, seed=3) for f in range(5)]
    tests = [set(s.test) for s in splits]
    assert set().union(*tests) == set(IDS) and sum(len(t) for t in tests) == len(IDS)
    for split in splits:
        assert len(split.validation) == 10
        assert not set(split.test) & (set(split.train) | set(split.validation))
        assert {c.split("_")[1] for c in split.test} == {"CS", "DU", "EZ", "FG", "HT"}
    assert make_split(IDS, seed=3) == make_split(IDS, seed=3) != make_split(IDS, seed=4)


def test_the_scans_of_one_patient_share_a_fold_and_a_role() -> None:
    """Two TCGA cases of one patient (two scan dates) are never split between training, validation and test."""
    twice = ["TCGA_CS_4941_19960909", "TCGA_CS_4941_20010101"]
    ids = twice + [f"TCGA_CS_{5000 + i}_19990101" for i in range(6)]
    for seed in range(8):
        for fold in range(2):
            split = make_split(ids, folds=2, fold=fold, validation_cases=1, seed=seed)
            roles = {case: role for role in ("train", "validation", "test") for case in getattr(split, role)}
            assert sorted(roles) == sorted(ids) and roles[twice[0]] == roles[twice[1]]
    with pytest.raises(InputError, match="2 patients cannot make 3 folds"):
        make_split(twice + ["TCGA_CS_5000_19990101"], folds=3)


def test_paper22_scheme() -> None:
    split = make_split(IDS, scheme="paper22", fold=21)
    assert split.folds == 22 and len(split.test) == 5
    with pytest.raises(InputError, match="cannot make 5 folds"):
        make_split(IDS[:4])
    with pytest.raises(ConfigError):
        make_split(IDS, scheme="leave-one-out")


def test_sampling_modes() -> None:
    rng = np.random.default_rng(0)
    areas = [np.array([0, 0, 10, 100, 0]), np.array([0, 5, 0])]
    uniform = epoch_items(rng, areas, "uniform")
    assert sorted(map(tuple, uniform)) == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1), (1, 2)]
    over = epoch_items(rng, areas, "oversample")
    assert len(over) == 8 + 2 * 3 and sum(1 for c, s in over if (c, s) == (0, 3)) == 3
    area = epoch_items(np.random.default_rng(1), areas, "area", count=20000)
    in_case0 = area[area[:, 0] == 0, 1]
    share = np.bincount(in_case0, minlength=5) / len(in_case0)
    expected = (areas[0] + 110 * 0.1 / 5) / (110 * 1.1)
    np.testing.assert_allclose(share, expected, atol=0.02)


def test_neighbour_slices() -> None:
    volume = np.arange(3, dtype=np.float32)[:, None, None] * np.ones((3, 2, 2), np.float32)
    stacked = neighbour_slices(volume, fill=-1)
    assert stacked.shape == (3, 3, 2, 2)
    assert stacked[0, :, 0, 0].tolist() == [-1, 0, 1] and stacked[2, :, 0, 0].tolist() == [1, 2, -1]


def test_neighbour_slices_reach_further() -> None:
    volume = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 1, 1), np.float32)
    stacked = neighbour_slices(volume, fill=-1, reach=2)
    assert stacked[:, :, 0, 0].tolist() == [[-1, -1, 0, 1, 2], [-1, 0, 1, 2, 3], [0, 1, 2, 3, -1], [1, 2, 3, -1, -1]]


def test_a_two_and_a_half_d_input_adds_the_neighbouring_flair_slices() -> None:
    from flairseg.config import PreprocessConfig
    from flairseg.data import prepare_case
    from flairseg.io import read_case, sample_case_path

    case = read_case(sample_case_path())
    flat = prepare_case(case, "abnormality", PreprocessConfig(size=64)).inputs
    deep = prepare_case(case, "abnormality", PreprocessConfig(size=64, flair_neighbours=2)).inputs
    assert deep.shape == (len(flat), 7, 64, 64) and np.array_equal(deep[:, :3], flat)
    middle = 10
    for channel, offset in zip(range(3, 7), (-2, -1, 1, 2)):
        assert np.array_equal(deep[middle, channel], flat[middle + offset, 1])
    assert (deep[0, 3:5] == flat.min()).all()  # past the first slice: the background
    flair_only = augment.flair_only(deep[middle])
    assert np.array_equal(flair_only[0], deep[middle, 1]) and np.array_equal(flair_only[3:], deep[middle, 3:])


def test_input_channels_must_match_the_task_and_its_neighbours() -> None:
    from flairseg.config import ModelConfig, PreprocessConfig, TrainConfig

    deep = PreprocessConfig(flair_neighbours=1)
    assert TrainConfig(preprocess=deep, model=ModelConfig(in_channels=5)).model.in_channels == 5
    with pytest.raises(ConfigError, match="does not match the 5 channels"):
        TrainConfig(preprocess=deep)
    with pytest.raises(ConfigError, match="abnormality setting"):
        TrainConfig(task="brain", preprocess=deep, model=ModelConfig(in_channels=5))
    with pytest.raises(ConfigError, match="flair_neighbours 4 is not in 0..3"):
        PreprocessConfig(flair_neighbours=4)


def test_augmentation_keeps_image_and_mask_aligned() -> None:
    import torch

    image = np.zeros((2, 33, 33), np.float32)
    mask = np.zeros((33, 33), np.float32)
    image[:, 5:12, 20:28] = 1
    mask[5:12, 20:28] = 1
    images, masks = torch.from_numpy(image[None]), torch.from_numpy(mask[None])
    flipped_image, flipped_mask = augment.apply(images, masks, [augment.Augmentation(0, 1, True, 1)])
    assert flipped_mask[0, 5:12, 5:13].all() and flipped_image[0, 0, 8, 8] == 1
    rng = np.random.default_rng(0)
    draws = [augment.draw(rng, rotation=15, scale=0.05, flip=0.5, intensity=0) for _ in range(5)]
    out_images, out_masks = augment.apply(images.expand(5, -1, -1, -1), masks.expand(5, -1, -1), draws)
    for out_image, out_mask in zip(out_images.numpy(), out_masks.numpy()):
        assert abs(int(out_mask.sum()) - int(mask.sum())) < 0.2 * mask.sum()
        assert ((out_image[0] > 0.5) == (out_mask > 0.5)).mean() > 0.97
    np.testing.assert_array_equal(mask[5:12, 20:28], 1)  # input untouched


def test_augmentation_is_the_affine_map_scipy_applies() -> None:
    """The batch transform on torch equals ``scipy.ndimage.affine_transform`` (linear, outside = channel minimum)."""
    import torch
    from scipy import ndimage

    rng = np.random.default_rng(1)
    image = ndimage.gaussian_filter(rng.normal(size=(3, 40, 48)), 3).astype(np.float32)
    aug = augment.Augmentation(angle=11.0, scale=1.04, flip=True, gain=1.2)
    out, _ = augment.apply(torch.from_numpy(image[None]), torch.zeros(1, 40, 48), [aug])
    theta = np.radians(aug.angle)
    inverse = (
        np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]]) / aug.scale @ np.diag([1.0, -1.0])
    )
    centre = np.array([39 / 2, 47 / 2])
    expected = (
        np.stack(
            [
                ndimage.affine_transform(
                    c, inverse, centre - inverse @ centre, order=1, mode="constant", cval=float(c.min())
                )
                for c in image
            ]
        )
        * aug.gain
    )
    inside = np.zeros((40, 48), bool)
    inside[4:-4, 4:-4] = True  # the outermost pixels mix with the outside differently
    np.testing.assert_allclose(out[0].numpy()[:, inside], expected[:, inside], atol=1e-4)


def test_flair_only_slice_is_what_a_flair_only_input_gives() -> None:
    from flairseg.config import PreprocessConfig
    from flairseg.data import prepare_case
    from flairseg.io import read_case, sample_case_path

    case = read_case(sample_case_path())
    three = prepare_case(case, "abnormality", PreprocessConfig(size=64))
    flair = prepare_case(
        case.__class__(case.case_id, case.image[..., 1:2], case.mask, case.geometry),
        "abnormality",
        PreprocessConfig(size=64),
    )
    slice_ = augment.flair_only(three.inputs[5])
    assert slice_.shape == three.inputs[5].shape and (slice_[0] == slice_[1]).all() and (slice_[2] == slice_[1]).all()
    # the FLAIR-only case's own channels are equal too; the two differ only by the crop, set by all channels
    assert (flair.inputs[5][0] == flair.inputs[5][1]).all()


def test_prediction_inputs_leave_the_labels_on_the_case_grid() -> None:
    from flairseg.config import PreprocessConfig
    from flairseg.data import prepare_case
    from flairseg.io import read_case, sample_case_path
    from flairseg.predict import load_model

    case = read_case(sample_case_path())
    for_training = prepare_case(case, "abnormality", PreprocessConfig(size=64))
    for_prediction = prepare_case(case, "abnormality", PreprocessConfig(size=64), target=False)
    assert for_training.target is not None and for_training.target.any() and for_prediction.target is None
    assert (for_prediction.inputs == for_training.inputs).all() and (for_prediction.truth == case.mask).all()
    assert load_model().prepare(case).target is None  # what predict runs: no resized labels


def test_skull_strip_augmentation_takes_the_same_input_slice() -> None:
    from flairseg.config import PreprocessConfig
    from flairseg.data import prepare_case
    from flairseg.io import read_case, read_label, sample_case_path
    from flairseg.train import _same_slice

    case = read_case(sample_case_path())
    raw = prepare_case(case, "abnormality", PreprocessConfig(size=64))
    stripped = prepare_case(case, "abnormality", PreprocessConfig(size=64), brain=read_label(case, "_brain"))
    for index in range(len(raw.inputs)):
        source, at = _same_slice(raw, stripped, index)
        source_slice = index + raw.transform.slices[0]
        if stripped.transform.slices[0] <= source_slice < stripped.transform.slices[1]:
            assert source is stripped and at == source_slice - stripped.transform.slices[0]
        else:
            assert (source, at) == (raw, index)  # no brain on that slice: the slice as it was


def test_slice_mix_blends_a_neighbour_and_keeps_the_mask() -> None:
    from flairseg.config import PreprocessConfig, TrainConfig
    from flairseg.data import prepare_case
    from flairseg.io import read_case, sample_case_path
    from flairseg.train import _mixed_with_neighbour, training_batch

    prepared = prepare_case(read_case(sample_case_path()), "abnormality", PreprocessConfig(size=64))
    inputs = prepared.inputs
    for seed in range(20):
        index = 1 + seed % (len(inputs) - 2)
        mixed = _mixed_with_neighbour(prepared, index, np.random.default_rng(seed))
        pairs = [(inputs[index], inputs[n]) for n in (index - 1, index + 1)]
        # mixed = (1 - w) * own + w * neighbour for one neighbour and one w in [0, 0.5]
        weights = [np.sum((mixed - a) * (b - a)) / max(np.sum((b - a) ** 2), 1e-12) for a, b in pairs]
        fits = [
            np.allclose(mixed, (1 - w) * a + w * b, atol=1e-5) and -1e-6 <= w <= 0.5
            for w, (a, b) in zip(weights, pairs)
        ]
        assert any(fits)
    last = len(inputs) - 1
    edge = [_mixed_with_neighbour(prepared, last, np.random.default_rng(s)) for s in range(8)]
    assert any(np.array_equal(e, inputs[last]) for e in edge)  # no slice above the last one: the slice as it was
    items = np.array([[0, i] for i in range(len(inputs))])
    plain = TrainConfig(rotation=0.0, scale=0.0, flip=0.0, preprocess=PreprocessConfig(size=64))
    images, masks = training_batch([prepared], None, items, plain, 0, 0, torch.device("cpu"))
    mixed_images, mixed_masks = training_batch(
        [prepared], None, items, replace(plain, slice_mix=1.0), 0, 0, torch.device("cpu")
    )
    torch.testing.assert_close(mixed_masks, masks)
    assert not torch.allclose(mixed_images, images)


def test_scanner_transforms_are_monai_seeded_and_keep_the_background() -> None:
    assert augment.scanner_transforms(0.0, 0.0, 0.0, 0.0) is None
    rng = np.random.default_rng(0)
    images = torch.full((4, 3, 32, 32), -0.7)  # a standardised slice's background sits below zero
    images[:, :, 8:24, 8:24] += torch.from_numpy(rng.random((4, 3, 16, 16), dtype=np.float32)) + 0.5
    every = augment.scanner_transforms(1.0, 1.0, 0.0, 0.0)  # gamma and bias field on every slice
    first, again = augment.apply_scanner(images, every, 7), augment.apply_scanner(images, every, 7)
    assert torch.equal(first, again) and not torch.equal(first, augment.apply_scanner(images, every, 8))
    assert first.shape == images.shape and type(first) is torch.Tensor  # plain tensors, no MONAI metadata
    outside = images == -0.7
    assert torch.equal(first[outside], images[outside])  # both act above the floor: background stays
    assert not torch.allclose(first[~outside], images[~outside])
    blurred = augment.apply_scanner(images, augment.scanner_transforms(0.0, 0.0, 0.0, 1.0), 7)
    assert blurred[:, :, 16, 16].std() < images[:, :, 16, 16].std()  # smoothing evens out the texture


def test_training_batch_applies_scanner_transforms_reproducibly() -> None:
    from types import SimpleNamespace

    from flairseg.config import TrainConfig
    from flairseg.train import training_batch

    rng = np.random.default_rng(1)
    target = np.zeros((6, 32, 32), dtype=bool)
    target[:, 10:20, 10:20] = True
    cases = [SimpleNamespace(inputs=rng.random((6, 3, 32, 32), dtype=np.float32), target=target)]
    items = np.array([(0, s) for s in range(6)])
    plain = TrainConfig(rotation=0, scale=0, flip=0)
    scanner = TrainConfig(rotation=0, scale=0, flip=0, gamma=1.0, bias_field=1.0)
    base, masks = training_batch(cases, None, items, plain, 0, 0, torch.device("cpu"))
    one, masks_one = training_batch(cases, None, items, scanner, 0, 0, torch.device("cpu"))
    two, _ = training_batch(cases, None, items, scanner, 0, 0, torch.device("cpu"))
    assert torch.equal(one, two) and not torch.allclose(one, base) and torch.equal(masks_one, masks)
    noisy_flair = TrainConfig(rotation=0, scale=0, flip=0, flair_only=1.0, noise=1.0)
    images, _ = training_batch(cases, None, items, noisy_flair, 0, 0, torch.device("cpu"))
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 2], images[:, 1])
    cases[0].inputs = rng.random((6, 5, 32, 32), dtype=np.float32)  # with two FLAIR neighbours: they stay
    images, _ = training_batch(cases, None, items, noisy_flair, 0, 0, torch.device("cpu"))
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 2], images[:, 1])
    assert not torch.allclose(images[:, 3], images[:, 1]) and not torch.allclose(images[:, 4], images[:, 3])
    with pytest.raises(ConfigError, match="gamma must be in"):
        TrainConfig(gamma=1.5)


def test_losses() -> None:
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    perfect = target * 40 - 20
    assert soft_dice_loss(perfect, target) < 1e-3
    assert soft_dice_loss(-perfect, target) > 0.99
    assert dice_bce_loss(perfect, target) < 1e-3 < dice_bce_loss(torch.zeros_like(target), target)
    assert dice_focal_loss(perfect, target) < 1e-3
    unsure = torch.zeros_like(target)
    # the focal term weighs an unsure pixel (p = 0.5) by 0.25 and a confidently wrong one almost fully
    assert torch.isclose(
        dice_focal_loss(unsure, target) - soft_dice_loss(unsure, target),
        0.25 * dice_bce_loss(unsure, target) - 0.25 * soft_dice_loss(unsure, target),
    )
    assert dice_focal_loss(-perfect, target) - soft_dice_loss(-perfect, target) > 0.9 * (
        dice_bce_loss(-perfect, target) - soft_dice_loss(-perfect, target)
    )


def test_learning_rate_schedules() -> None:
    from flairseg.config import TrainConfig
    from flairseg.train import learning_rate

    constant = TrainConfig(lr=1e-3)
    assert learning_rate(constant, 50, 100) == 1e-3
    cosine = TrainConfig(lr=1e-3, schedule="cosine", warmup_steps=10)
    rates = [learning_rate(cosine, s, 100) for s in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:])) and rates[-1] == pytest.approx(1e-5, rel=0.05)


def test_a_training_file_rewritten_with_its_size_and_time_kept_is_a_change(tmp_path: Path) -> None:
    """What a resumed run (``train --resume``) and a kept cv fold rest on is compared by contents, not by size and
    time, which ``cp -p`` and ``rsync -t`` keep."""
    image, mask = phantom(slices=3, size=32)
    case = write_kaggle_case(tmp_path / "in", "CASE", image, mask)
    paths = {"CASE": case}
    (tmp_path / "run").mkdir()
    save_split(Split("kfold", 2, 0, 0, ("CASE",), (), ("OTHER",)), tmp_path / "run" / "split.json")
    (tmp_path / "run" / DATA_FILE).write_text(json.dumps(data_record(paths)))
    check_data(tmp_path / "run", paths)  # as recorded
    label = case / "CASE_2_mask.tif"
    before = label.stat()
    tifffile.imwrite(label, np.where(tifffile.imread(label) > 0, 0, 255).astype(np.uint8), photometric="minisblack")
    os.utime(label, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (label.stat().st_size, label.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(InputError, match=r"case CASE changed since .* \(CASE_2_mask.tif changed: sha256\)"):
        check_data(tmp_path / "run", paths)


@pytest.mark.parametrize("kept", [[], ["A"], ["A", "B", "C"]])
def test_a_data_record_without_the_split_s_cases_is_refused(tmp_path: Path, kept: list[str]) -> None:
    """Only the cases a run's data.json lists are compared: a record that lost some (or all) of the split's training
    and validation cases, or lists another, would let those change unchecked under a resumed run or a kept cv fold."""
    image, mask = phantom(slices=3, size=32)
    paths = {c: write_kaggle_case(tmp_path / "in", c, image, mask) for c in ("A", "B", "C")}
    (tmp_path / "run").mkdir()
    save_split(Split("kfold", 2, 0, 0, ("A",), ("B",), ("C",)), tmp_path / "run" / "split.json")
    (tmp_path / "run" / DATA_FILE).write_text(json.dumps(data_record({c: paths[c] for c in ("A", "B")})))
    check_data(tmp_path / "run", paths)  # as recorded
    (tmp_path / "run" / DATA_FILE).write_text(json.dumps(data_record({c: paths[c] for c in kept})))
    with pytest.raises(InputError, match=r"data.json is not the record of the run's data \(the 2 training and"):
        check_data(tmp_path / "run", paths)


def test_a_case_of_tiny_slices_is_budgeted_on_the_model_s_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    """400 slices of 4 x 4 voxels (38 KB to process as read) become 400 slices of 256 x 256 in model space (600 MB
    by the same rule): refused before the model-space arrays are made; a 32-pixel model's grid (9 MB) fits."""
    from flairseg.cases import Case, Geometry
    from flairseg.config import PreprocessConfig
    from flairseg.data import prepare_case

    case = Case("thin", np.ones((400, 4, 4, 1), np.float32), None, Geometry(Path("."), "kaggle"))
    monkeypatch.setenv("FLAIRSEG_MAX_MEMORY", "100M")
    assert prepare_case(case, "abnormality", PreprocessConfig(size=32), target=False).inputs.shape[1:] == (3, 32, 32)
    resampled = []
    monkeypatch.setattr("flairseg.data.preprocess_case", lambda *args, **kwargs: resampled.append(args))
    with pytest.raises(
        InputError,
        match=r"case thin declares 6,400 voxels x 1 channel\(s\), 26,214,400 on the model's "
        r"256 x 256 grid \(400 slices\), about 600 MB to process, more than the memory budget of 100 MB",
    ):
        prepare_case(case, "abnormality", PreprocessConfig(size=256), target=False)
    assert resampled == []
