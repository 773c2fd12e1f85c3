"""Skull stripping on synthetic heads (an ellipsoid brain inside a bright shell) and the sample case:
the brain task's postprocessing, `--strip` outputs, and the paper's two-stage pipeline."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile

from synthetic import write_kaggle_case
from flairseg.cli import main
from flairseg.io import read_case, sample_case_path
from flairseg.metrics import case_metrics
from flairseg.postprocess import postprocess

TINY = [
    "--size",
    "64",
    "--features",
    "8",
    "--batch-size",
    "8",
    "--lr",
    "2e-3",
    "--validation-cases",
    "1",
    "--folds",
    "5",
    "--quiet",
]


def head(slices: int = 8, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S, H, W, 3) uint8 image, brain and tumour masks: a bright skull shell around an ellipsoid brain with a blob."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:slices, :size, :size].astype(float)
    c, zc = (size - 1) / 2, (slices - 1) / 2
    radius = np.sqrt(((y - c) / (0.30 * size)) ** 2 + ((x - c) / (0.25 * size)) ** 2 + ((z - zc) / (0.7 * slices)) ** 2)
    brain = radius <= 1.0
    shell = (radius > 1.12) & (radius <= 1.35)
    tumour = brain & (
        ((y - c - 0.08 * size) ** 2 + (x - c + 0.06 * size) ** 2) / (0.09 * size) ** 2
        + ((z - zc) / (0.35 * slices)) ** 2
        <= 1
    )
    flair = rng.normal(8, 3, size=brain.shape)
    flair[shell] = rng.normal(190, 10, size=int(shell.sum()))
    flair[brain] = rng.normal(100, 8, size=int(brain.sum()))
    flair[tumour] += 60
    image = np.stack([flair * 0.8, flair, flair * 0.9], axis=-1)
    return np.clip(image, 0, 255).astype(np.uint8), brain, tumour


@pytest.fixture(scope="module")
def heads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("heads") / "cases"
    for index in range(6):
        image, brain, tumour = head(seed=index)
        folder = write_kaggle_case(root, f"HEAD_{index}", image, tumour)
        for k, plane in enumerate(brain, start=1):
            tifffile.imwrite(folder / f"HEAD_{index}_{k}_brain.tif", plane.astype(np.uint8) * 255)
    return root


@pytest.fixture(scope="module")
def runs(heads: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("runs")
    for task in ("brain", "abnormality"):
        assert (
            main(
                [
                    "train",
                    "--task",
                    task,
                    "--data",
                    str(heads),
                    "-o",
                    str(folder / task),
                    "--epochs",
                    "3",
                    "--steps-per-epoch",
                    "15",
                    *TINY,
                ]
            )
            == 0
        )
    return {task: folder / task / "best.json" for task in ("brain", "abnormality")}


def _strip(source: Path, out: Path, brain_model: Path) -> int:
    """`flairseg predict --task brain --strip` of ``source`` into ``out``; its exit status."""
    options = ["--model", str(brain_model), "--task", "brain", "--strip", "--quiet"]
    return main(["predict", "-i", str(source), "-o", str(out), *options])


def test_brain_postprocessing_keeps_one_hole_free_component() -> None:
    _, brain, _ = head()
    noisy = brain.copy()
    noisy[:, 30:34, 30:34] = False  # a hole inside the brain
    noisy[:, 28:36, 26] = False  # a notch cut into one side
    noisy[2, 2:5, 2:5] = True  # an island outside the head
    out = postprocess(noisy, "brain")
    assert not out[2, 2:5, 2:5].any() and out[:, 30:34, 30:34][brain[:, 30:34, 30:34]].all()
    assert case_metrics("head", out, brain).dice > 0.99
    assert not np.array_equal(noisy, out) and noisy[2, 3, 3]  # the input is left alone


def test_strip_writes_brain_only_images_named_like_the_input(
    heads: Path, runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "strip"
    assert _strip(heads, out, runs["brain"]) == 0
    assert "Dice mean" in capsys.readouterr().out
    source = read_case(heads / "HEAD_0", masks="ignore")
    predicted = read_case(out / "HEAD_0", masks="only", mask_suffix="_brain").mask
    _, brain, _ = head(seed=0)
    assert case_metrics("HEAD_0", predicted, brain).dice > 0.85
    stripped_folder = out / "stripped_brain" / "HEAD_0"
    assert sorted(p.name for p in stripped_folder.iterdir()) == sorted(source.geometry.slice_names)
    stripped = read_case(stripped_folder, masks="ignore").image
    assert stripped.dtype == source.image.dtype and stripped.shape == source.image.shape
    assert (stripped[~predicted] == 0).all() and np.array_equal(stripped[predicted], source.image[predicted])


def test_two_stage_pipeline_keeps_the_abnormality_inside_the_brain(
    heads: Path, runs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "two-stage"
    assert (
        main(
            [
                "predict",
                "-i",
                str(heads),
                "-o",
                str(out),
                "--model",
                str(runs["abnormality"]),
                "--brain-model",
                str(runs["brain"]),
                "--strip",
                "--quiet",
            ]
        )
        == 0
    )
    for index in range(6):
        tumour = read_case(out / f"HEAD_{index}", masks="only").mask
        brain = read_case(out / "stripped" / f"HEAD_{index}", masks="ignore").image[..., 1] > 0
        assert tumour.any() and not (tumour & ~brain).any()


def test_strip_and_two_stage_refuse_what_cannot_work(
    heads: Path, runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["--model", str(runs["abnormality"]), "--strip"], "--strip needs a brain mask"),
        (
            ["--model", str(runs["brain"]), "--task", "brain", "--brain-model", str(runs["brain"])],
            "drop it for --task brain",
        ),
        (["--model", str(runs["abnormality"]), "--brain-model", str(runs["abnormality"])], "not a 'brain' model"),
    ]
    for extra, message in cases:
        out = tmp_path / "refused"
        assert main(["predict", "-i", str(heads), "-o", str(out), *extra, "--quiet"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("flairseg: error:") and message in err and "\n" not in err
        assert not (out / "HEAD_0").exists()


def test_strip_a_nifti_volume_keeps_its_header(runs: dict[str, Path], tmp_path: Path) -> None:
    image, _, _ = head(seed=3)
    # not in the processing order
    affine = np.array([[0, 0, -0.9, 60], [-0.9, 0, 0, 70], [0, 3.0, 0, -20], [0, 0, 0, 1]])
    volume = image[..., 1].transpose(2, 0, 1).astype(np.int16)
    folder = tmp_path / "nifti"
    folder.mkdir()
    nib.save(nib.Nifti1Image(volume, affine), folder / "head.nii.gz")
    out = tmp_path / "out"
    assert _strip(folder, out, runs["brain"]) == 0
    stripped, mask = nib.load(out / "stripped_brain" / "head.nii.gz"), nib.load(out / "head_brain.nii.gz")
    assert stripped.shape == volume.shape and np.allclose(stripped.affine, affine)
    data, brain = np.asarray(stripped.dataobj), np.asarray(mask.dataobj).astype(bool)
    assert brain.any() and (data[~brain] == 0).all() and np.array_equal(data[brain], volume[brain].astype(np.float32))


def test_strip_the_sample_case_on_its_grid(runs: dict[str, Path], tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    shutil.copytree(sample_case_path(), cases / sample_case_path().name)
    out = tmp_path / "out"
    assert _strip(cases, out, runs["brain"]) == 0
    sample = read_case(cases / sample_case_path().name, masks="ignore")
    stripped = read_case(out / "stripped_brain" / sample.case_id, masks="ignore").image
    predicted = read_case(out / sample.case_id, masks="only", mask_suffix="_brain").mask
    assert stripped.shape == sample.image.shape == (*predicted.shape, 3) and stripped.dtype == np.uint8
    assert (stripped[~predicted] == 0).all() and np.array_equal(stripped[predicted], sample.image[predicted])


def test_released_brain_model_on_the_sample_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default brain model against the sample case's HD-BET label; its tumour stays inside the brain."""
    sample = sample_case_path()
    out = tmp_path / "brain"
    assert main(["predict", "-i", str(sample), "-o", str(out), "--task", "brain", "--quiet"]) == 0
    assert "Dice mean" in capsys.readouterr().out  # the _brain labels are the truth of the brain task
    predicted = read_case(out / sample.name, masks="only", mask_suffix="_brain").mask
    label = read_case(sample, masks="only", mask_suffix="_brain").mask
    tumour = read_case(sample, masks="only").mask
    assert case_metrics(sample.name, predicted, label).dice > 0.97
    assert abs(predicted.sum() / label.sum() - 1) < 0.03
    assert not (tumour & ~predicted).any()


def test_released_brain_model_keeps_an_already_stripped_brain_whole(tmp_path: Path) -> None:
    """A scan skull-stripped elsewhere (every channel zeroed outside the HD-BET label) comes back as its brain."""
    sample = read_case(sample_case_path(), masks="required")
    label = read_case(sample_case_path(), masks="only", mask_suffix="_brain").mask
    stripped = np.where(label[..., None], sample.image, 0).astype(sample.image.dtype)
    write_kaggle_case(tmp_path / "in", sample.case_id, stripped, sample.mask)
    out = tmp_path / "brain"
    assert (
        main(["predict", "-i", str(tmp_path / "in" / sample.case_id), "-o", str(out), "--task", "brain", "--quiet"])
        == 0
    )
    predicted = read_case(out / sample.case_id, masks="only", mask_suffix="_brain").mask
    assert case_metrics(sample.case_id, predicted, label).dice > 0.98
    assert abs(predicted.sum() / label.sum() - 1) < 0.03  # the replaced model cut stripped brains by a quarter


def test_released_two_stage_pipeline_on_the_sample_case(tmp_path: Path) -> None:
    sample = sample_case_path()
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["predict", "-i", str(sample), "-o", str(one), "--quiet"]) == 0
    assert main(["predict", "-i", str(sample), "-o", str(two), "--brain-model", "brain-lgg", "--quiet"]) == 0
    tumour = read_case(sample, masks="only").mask
    alone, staged = (read_case(folder / sample.name, masks="only").mask for folder in (one, two))
    assert (staged <= alone).all()  # the second stage only removes what lies outside the brain
    assert case_metrics(sample.name, staged, tumour).dice > 0.90
