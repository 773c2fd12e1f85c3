"""NIfTI and DICOM volumes: axial processing layout, exact round trips of grid and header, bad inputs."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from flairseg.errors import InputError
from flairseg.io import find_cases, read_case, write_mask
from flairseg.volumes import read_dicom_series, read_nifti, write_volume_mask


def _volume(shape: tuple[int, int, int] = (12, 10, 7), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(100, 30, size=shape).astype(np.float32)


def _rotation(ax: float, ay: float) -> np.ndarray:
    cx, sx, cy, sy = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return rx @ ry


def _save(data: np.ndarray, affine: np.ndarray, path: Path, qform_code: int = 1, sform_code: int = 2) -> Path:
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=qform_code)
    image.set_sform(affine, code=sform_code)
    image.header["descrip"] = b"flairseg test"
    nib.save(image, str(path))
    return path


# Expected processing arrays, worked out by hand: processing = (S, P, L) axes, i.e. [z_IS, y_AP, x_RL].
def _expect_ras(data: np.ndarray) -> np.ndarray:  # voxel axes R, A, S (increasing toward R, A, S)
    return data[::-1, ::-1, :].transpose(2, 1, 0)


def _expect_sagittal(data: np.ndarray) -> np.ndarray:  # voxel axes increasing toward A, S, R
    # x(R->L) is axis 2 reversed, y(A->P) is axis 0 reversed, z(I->S) is axis 1.
    return data[::-1, :, ::-1].transpose(1, 0, 2)


CASES = {
    "ras": (np.diag([0.9, 0.8, 5.0, 1.0]), _expect_ras),
    "lps": (np.diag([-0.9, -0.8, 5.0, 1.0]), lambda d: d.transpose(2, 1, 0)),
    "sagittal": (np.array([[0, 0, 1.2, 0], [0.9, 0, 0, 0], [0, 0.8, 0, 0], [0, 0, 0, 1.0]]), _expect_sagittal),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_reorientation_and_exact_round_trip(tmp_path: Path, name: str, suffix: str) -> None:
    affine, expect = CASES[name]
    affine = affine.copy()
    affine[:3, 3] = [10.0, -20.0, 30.0]
    data = _volume()
    path = _save(data, affine, tmp_path / f"vol{suffix}")
    before = path.read_bytes()
    case = read_nifti(path)
    np.testing.assert_array_equal(case.image[..., 0], expect(data))
    threshold = 110.0
    out = tmp_path / "out_mask.nii.gz"
    write_volume_mask(case, case.image[..., 0] > threshold, out)
    written = nib.load(str(out))
    np.testing.assert_array_equal(np.asarray(written.dataobj), (data > threshold).astype(np.uint8))
    assert written.shape == data.shape and written.get_data_dtype() == np.uint8
    np.testing.assert_allclose(written.affine, affine, atol=1e-6)
    np.testing.assert_allclose(written.header.get_zooms(), nib.load(str(path)).header.get_zooms())
    assert int(written.header["qform_code"]) == 1 and int(written.header["sform_code"]) == 2
    assert written.header["descrip"].tobytes().rstrip(b"\0") == b"flairseg test"
    assert path.read_bytes() == before


def test_spacing_follows_orientation(tmp_path: Path) -> None:
    affine, _ = CASES["sagittal"]
    case = read_nifti(_save(_volume(), affine, tmp_path / "s.nii.gz"))
    # processing axes: slices along S (voxel axis 1, 0.8 mm), rows along A/P (axis 0, 0.9), columns along R/L (axis 2, 1.2)
    assert case.geometry.spacing == pytest.approx((0.8, 0.9, 1.2))


def test_oblique_affine_round_trip(tmp_path: Path) -> None:
    affine = np.eye(4)
    affine[:3, :3] = _rotation(np.radians(20), np.radians(20)) @ np.diag([0.9, 0.9, 5.0])
    affine[:3, 3] = [-90, 120, -60]
    data = _volume((16, 14, 6))
    path = _save(data, affine, tmp_path / "oblique.nii.gz")
    case = read_nifti(path)
    assert case.shape == (6, 14, 16)  # closest axes: slices along the 5 mm axis
    assert case.geometry.spacing == pytest.approx((5.0, 0.9, 0.9))
    out = tmp_path / "mask.nii"
    write_volume_mask(case, case.image[..., 0] > 100, out)
    written = nib.load(str(out))
    np.testing.assert_array_equal(np.asarray(written.dataobj), data > 100)
    np.testing.assert_allclose(written.affine, affine, atol=1e-5)


def test_probability_map_and_io_dispatch(tmp_path: Path) -> None:
    data = _volume()
    path = _save(data, CASES["ras"][0], tmp_path / "case1.nii.gz")
    _save((data > 120).astype(np.uint8), CASES["ras"][0], tmp_path / "case1_mask.nii.gz")
    assert find_cases(tmp_path) == [path]
    case = read_case(path, masks="required")
    np.testing.assert_array_equal(case.mask, _expect_ras(data > 120))
    written = write_mask(case, case.mask, tmp_path / "out" / "case1_mask.nii.gz")
    np.testing.assert_array_equal(np.asarray(nib.load(str(written)).dataobj), data > 120)
    write_volume_mask(case, case.image[..., 0] / 1000, tmp_path / "prob.nii.gz", probability=True)
    np.testing.assert_allclose(np.asarray(nib.load(str(tmp_path / "prob.nii.gz")).dataobj), data / 1000, rtol=1e-6)


def _write_dicom_series(folder: Path, data: np.ndarray, spacing: tuple[float, float, float], direction: np.ndarray, origin: tuple[float, float, float]) -> None:
    """A DICOM series from a (z, y, x) array, one file per slice, positions along the slice direction."""
    import SimpleITK as sitk

    folder.mkdir()
    volume = sitk.GetImageFromArray(data.astype(np.int16))
    volume.SetSpacing(spacing)
    volume.SetDirection(direction.ravel().tolist())
    volume.SetOrigin(origin)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    orientation = "\\".join(f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1]))
    for k in range(data.shape[0]):
        plane = volume[:, :, k]
        position = volume.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in {
            "0008|0060": "MR",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": "1.2.826.0.1.3680043.2.1125.1.2",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in position),
            "0020|0037": orientation,
            "0028|0030": f"{spacing[1]:.6f}\\{spacing[0]:.6f}",
            "0018|0050": f"{spacing[2]:.6f}",
        }.items():
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(plane)


@pytest.mark.parametrize("flip", [False, True])
def test_dicom_series(tmp_path: Path, flip: bool) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 1000, size=(5, 12, 10))  # (z, y, x) in LPS index space
    direction = np.diag([1.0, 1.0, 1.0]) if not flip else np.diag([-1.0, 1.0, -1.0])
    _write_dicom_series(tmp_path / "series", data, (0.9, 0.8, 4.0), direction, (5.0, -7.0, 11.0))
    case = read_dicom_series(tmp_path / "series")
    expected = data if not flip else data[::-1, :, ::-1]  # flip x (R/L) and z (I/S) back to L, P, S
    np.testing.assert_array_equal(case.image[..., 0], expected)
    assert case.geometry.spacing == pytest.approx((4.0, 0.8, 0.9))
    out = tmp_path / "mask.nii.gz"
    write_volume_mask(case, case.image[..., 0] > 500, out)
    written = nib.load(str(out))
    np.testing.assert_array_equal(np.asarray(written.dataobj), (data > 500).transpose(2, 1, 0))
    # voxel (i, j, k) of the written mask sits where the DICOM series puts it (LPS -> RAS)
    lps = np.array([5.0, -7.0, 11.0]) + direction @ (np.array([2, 3, 4]) * np.array([0.9, 0.8, 4.0]))
    np.testing.assert_allclose(written.affine @ [2, 3, 4, 1], [-lps[0], -lps[1], lps[2], 1], atol=1e-4)


# ---- bad inputs -----------------------------------------------------------------------------


def _message(call, *args) -> str:
    with pytest.raises(InputError) as info:
        call(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_bad_nifti_inputs(tmp_path: Path) -> None:
    eye = np.eye(4)
    assert "2-D" in _message(read_nifti, _save(np.zeros((8, 8), np.float32), eye, tmp_path / "flat.nii.gz"))
    assert "4-D" in _message(read_nifti, _save(np.zeros((8, 8, 4, 3), np.float32), eye, tmp_path / "four.nii.gz"))
    assert read_nifti(_save(np.zeros((8, 8, 4, 1), np.float32), eye, tmp_path / "single.nii.gz")).shape == (4, 8, 8)
    nan = _volume()
    nan[1, 2, 3] = np.nan
    assert "1 NaN or infinite" in _message(read_nifti, _save(nan, eye, tmp_path / "nan.nii.gz"))
    inf = _volume()
    inf[0, 0, :2] = np.inf
    assert "2 NaN or infinite" in _message(read_nifti, _save(inf, eye, tmp_path / "inf.nii.gz"))
    good = _save(_volume(), eye, tmp_path / "good.nii.gz")
    (tmp_path / "cut.nii.gz").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    assert "truncated" in _message(read_nifti, tmp_path / "cut.nii.gz")
    (tmp_path / "note.nii.gz").write_text("not a volume")
    assert "not a valid NIfTI" in _message(read_nifti, tmp_path / "note.nii.gz")
    zero = nib.Nifti1Image(_volume(), None)
    zero.set_sform(np.diag([0.0, 1.0, 1.0, 1.0]), code=2)
    zero.set_qform(None, code=0)
    nib.save(zero, str(tmp_path / "zero.nii"))
    assert "degenerate" in _message(read_nifti, tmp_path / "zero.nii")
    other = _save(np.zeros((5, 5, 5), np.uint8), eye, tmp_path / "other_mask.nii.gz")
    assert "not on the grid" in _message(read_nifti, good, other)


def test_bad_dicom_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.dcm").write_bytes(b"\0" * 200)
    assert "no readable DICOM series" in _message(read_dicom_series, tmp_path / "empty")
    data = np.zeros((3, 6, 6))
    _write_dicom_series(tmp_path / "two", data, (1.0, 1.0, 1.0), np.eye(3), (0.0, 0.0, 0.0))
    _write_dicom_series(tmp_path / "b", data, (1.0, 1.0, 1.0), np.eye(3), (0.0, 0.0, 50.0))
    import SimpleITK as sitk

    for path in sorted((tmp_path / "b").iterdir()):
        image = sitk.ReadImage(str(path))
        image.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.9.9")
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(tmp_path / "two" / f"b_{path.name}"))
        writer.Execute(image)
    assert "2 DICOM series" in _message(read_dicom_series, tmp_path / "two")


def test_gzip_output_is_deterministic(tmp_path: Path) -> None:
    case = read_nifti(_save(_volume(), np.eye(4), tmp_path / "v.nii.gz"))
    write_volume_mask(case, case.image[..., 0] > 100, tmp_path / "a.nii.gz")
    write_volume_mask(case, case.image[..., 0] > 100, tmp_path / "b.nii.gz")
    assert (tmp_path / "a.nii.gz").read_bytes() == (tmp_path / "b.nii.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.nii.gz").read_bytes())[:4] == (348).to_bytes(4, "little")
