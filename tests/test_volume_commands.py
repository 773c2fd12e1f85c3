"""The commands on NIfTI folders: evaluate two volume trees, preprocess a FLAIR-only volume, one-line errors."""

from __future__ import annotations

import csv
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
