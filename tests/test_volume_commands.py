"""The commands on NIfTI folders: evaluate two volume trees, preprocess a FLAIR-only volume, one-line errors."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from synthetic import phantom
from flairseg.cli import main
from flairseg.io import read_case


def _nifti_tree(root: Path, shift: int = 0, with_images: bool = True) -> Path:
    root.mkdir(parents=True)
    affine = np.diag([-0.9, -0.9, 3.0, 1.0])  # LPS voxel axes: already the processing layout, transposed
    for index in range(2):
        image, mask = phantom(slices=8, size=48, seed=index)
        to_xyz = lambda a: np.ascontiguousarray(a.transpose(2, 1, 0))  # noqa: E731
        if with_images:
            nib.save(
                nib.Nifti1Image(to_xyz(image[..., 1]).astype(np.float32), affine), str(root / f"vol{index}.nii.gz")
            )
        moved = np.roll(mask, shift, axis=2)
        nib.save(nib.Nifti1Image(to_xyz(moved).astype(np.uint8), affine), str(root / f"vol{index}_mask.nii.gz"))
    return root


def test_evaluate_volume_folders_in_mm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = _nifti_tree(tmp_path / "truth")
    pred = _nifti_tree(tmp_path / "pred", shift=2, with_images=False)
    out = tmp_path / "report"
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "-o", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["case_id"] for r in rows] == ["vol0", "vol1"]
    assert all(r["units"] == "mm" for r in rows)
    assert 0.9 <= float(rows[0]["hd95"]) <= 2 * 0.9 + 1e-6  # a 2-voxel shift of 0.9 mm columns
    assert float(rows[0]["truth_volume"]) == pytest.approx(int(rows[0]["truth_voxels"]) * 0.9 * 0.9 * 3.0 / 1000)
    assert (out / "gifs" / "vol0.gif").is_file()


def test_preprocess_flair_only_volume_copies_flair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = _nifti_tree(tmp_path / "in")
    out = tmp_path / "prep"
    assert main(["preprocess", "-i", str(truth / "vol0.nii.gz"), "-o", str(out), "--variant", "port", "--quiet"]) == 0
    case = read_case(out / "vol0", masks="required")
    assert case.image.shape[-1] == 3
    np.testing.assert_array_equal(case.image[..., 0], case.image[..., 2])
    assert (
        main(
            [
                "preprocess",
                "-i",
                str(truth / "vol0.nii.gz"),
                "-o",
                str(tmp_path / "p2"),
                "--variant",
                "port",
                "--missing",
                "error",
            ]
        )
        == 1
    )
    assert "flairseg: error:" in capsys.readouterr().err and not (tmp_path / "p2").exists()


def test_four_d_volume_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 2), np.float32), np.eye(4)), str(tmp_path / "dwi.nii.gz"))
    out = tmp_path / "out"
    assert main(["preprocess", "-i", str(tmp_path / "dwi.nii.gz"), "-o", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("flairseg: error:") and "4-D" in err and err.count("\n") == 1 and not out.exists()


def _tiny_model(tmp_path: Path) -> Path:
    from flairseg.checkpoint import save_model
    from flairseg.config import ModelConfig, PreprocessConfig
    from flairseg.model import UNet

    config = ModelConfig(features=2, batch_norm=True)
    return save_model(UNet(features=2, batch_norm=True), config, PreprocessConfig(size=32), tmp_path / "m")


def _predict_with_truth(tmp_path: Path, source: Path, truth: Path, out: str = "out") -> list[str]:
    """predict's arguments for ``source`` scored against ``truth``, by one tiny model made on the first call."""
    model = tmp_path / "m.json"
    if not model.exists():
        model = _tiny_model(tmp_path)
    return ["predict", "-i", str(source), "--truth", str(truth), "-o", str(tmp_path / out), "--model", str(model)]


def _scored(report: Path) -> list[str]:
    return [row["case_id"] for row in csv.DictReader((report / "metrics.csv").open())]


def test_predict_takes_a_lone_volumes_truth_file_whatever_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--truth gt.nii.gz`` for one volume is its truth, as ``-o FILE`` names its mask; never silently unscored."""
    _nifti_tree(tmp_path / "in")
    (tmp_path / "in" / "vol0_mask.nii.gz").rename(tmp_path / "gt.nii.gz")
    assert (
        main([*_predict_with_truth(tmp_path, tmp_path / "in" / "vol0.nii.gz", tmp_path / "gt.nii.gz"), "--quiet"]) == 0
    )
    assert _scored(tmp_path / "out" / "report") == ["vol0"]


def test_predict_names_the_cases_its_truth_has_no_mask_for(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A truth tree that pairs with some of the cases: the others are predicted unscored, and a note says which."""
    _nifti_tree(tmp_path / "in")
    (tmp_path / "truth").mkdir()
    (tmp_path / "in" / "vol1_mask.nii.gz").rename(tmp_path / "truth" / "vol1_mask.nii.gz")
    (tmp_path / "in" / "vol0_mask.nii.gz").unlink()
    assert main(_predict_with_truth(tmp_path, tmp_path / "in", tmp_path / "truth")) == 0
    err = capsys.readouterr().err
    note = f"note: --truth {tmp_path / 'truth'} has no mask for 1 of 2 cases (vol0); they are scored against a mask "
    assert note + "beside their image where they have one, else predicted unscored" in err
    assert _scored(tmp_path / "out" / "report") == ["vol1"]


def test_predict_scores_a_truth_stored_in_another_voxel_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A truth on its image's grid stored with the x axis reversed (the affine to match) passes the header pass and
    the case's own check, and is scored voxel for voxel."""
    _nifti_tree(tmp_path / "in")
    (tmp_path / "truth").mkdir()
    for name in ("vol0", "vol1"):
        stored = nib.load(tmp_path / "in" / f"{name}_mask.nii.gz")
        flipped = stored.affine @ np.array([[-1, 0, 0, 47], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
        data = np.asarray(stored.dataobj)[::-1].copy()
        nib.save(nib.Nifti1Image(data, flipped), tmp_path / "truth" / f"{name}_mask.nii.gz")
    shutil.copytree(tmp_path / "in", tmp_path / "same")
    assert main([*_predict_with_truth(tmp_path, tmp_path / "in", tmp_path / "truth"), "--quiet"]) == 0
    assert main([*_predict_with_truth(tmp_path, tmp_path / "same", tmp_path / "same", "out2"), "--quiet"]) == 0
    flipped_rows = (tmp_path / "out" / "report" / "metrics.csv").read_text()
    assert flipped_rows == (tmp_path / "out2" / "report" / "metrics.csv").read_text()
