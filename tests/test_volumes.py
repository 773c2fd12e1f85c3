"""NIfTI and DICOM volumes: axial processing layout, exact round trips of grid and header, bad inputs."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flairseg.errors import InputError
from flairseg.io import check_case, find_cases, read_case, write_mask
from flairseg.volumes import is_dicom_folder, read_dicom_series, read_nifti, read_sequences, write_volume_mask

GEOMETRY_FIELDS = (
    "qform_code",
    "sform_code",
    "quatern_b",
    "quatern_c",
    "quatern_d",
    "qoffset_x",
    "qoffset_y",
    "qoffset_z",
    "srow_x",
    "srow_y",
    "srow_z",
)


def _volume(shape: tuple[int, int, int] = (12, 10, 7), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(100, 30, size=shape).astype(np.float32)


def _rotation(ax: float, ay: float, az: float = 0.0) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ rx @ ry


def _save(data: np.ndarray, affine: np.ndarray, path: Path, qform_code: int = 1, sform_code: int = 2) -> Path:
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=qform_code)
    image.set_sform(affine, code=sform_code)
    image.header["descrip"] = b"flairseg test"
    nib.save(image, str(path))
    return path


def _assert_same_grid(written: nib.Nifti1Image, original: nib.Nifti1Image) -> None:
    """Shape, affine, zooms and the stored qform/sform (codes and parameters) are exactly the input's."""
    assert written.shape == original.shape
    np.testing.assert_array_equal(written.affine, original.affine)
    assert written.header.get_zooms() == original.header.get_zooms()
    for name in GEOMETRY_FIELDS:
        np.testing.assert_array_equal(written.header[name], original.header[name], err_msg=name)


# Expected processing arrays, worked out by hand: processing axes = [z I->S, y A->P, x R->L].
def _expect_ras(data: np.ndarray) -> np.ndarray:  # voxel axes increase toward R, A, S: flip x and y
    return data[::-1, ::-1, :].transpose(2, 1, 0)


def _expect_sagittal(data: np.ndarray) -> np.ndarray:  # voxel axes increase toward A, S, R
    # slices = axis 1 as is (toward S); rows = axis 0 reversed (toward P); columns = axis 2 reversed (toward L)
    return data.transpose(1, 0, 2)[:, ::-1, ::-1]


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
    assert case.case_id == "vol" and case.image.dtype == np.float32 and case.mask is None
    np.testing.assert_array_equal(case.image[..., 0], expect(data))
    mask = case.image[..., 0] > 110.0
    kept = mask.copy()
    out = tmp_path / f"out_mask{suffix}"
    write_volume_mask(case, mask, out)
    written = nib.load(str(out))
    _assert_same_grid(written, nib.load(str(path)))
    assert (
        written.get_data_dtype() == np.uint8 and written.header["descrip"].tobytes().rstrip(b"\0") == b"flairseg test"
    )
    np.testing.assert_array_equal(np.asarray(written.dataobj), (data > 110.0).astype(np.uint8))
    assert path.read_bytes() == before and np.array_equal(mask, kept)


def test_spacing_follows_orientation(tmp_path: Path) -> None:
    affine, _ = CASES["sagittal"]
    case = read_nifti(_save(_volume(), affine, tmp_path / "s.nii.gz"))
    # slices along S (voxel axis 1, 0.8 mm), rows along A/P (axis 0, 0.9 mm), columns along R/L (axis 2, 1.2 mm)
    assert case.geometry.spacing == pytest.approx((0.8, 0.9, 1.2))
    assert case.geometry.input_shape == (12, 10, 7) and case.shape == (10, 12, 7)
    assert case.geometry.format == "nifti" and case.geometry.source == tmp_path / "s.nii.gz"


def test_oblique_affine_round_trip(tmp_path: Path) -> None:
    affine = np.eye(4)
    affine[:3, :3] = _rotation(np.radians(20), np.radians(20)) @ np.diag([0.9, 0.9, 5.0])
    affine[:3, 3] = [-90, 120, -60]
    data = _volume((16, 14, 6))
    path = _save(data, affine, tmp_path / "oblique.nii.gz")
    case = read_nifti(path)
    np.testing.assert_array_equal(case.image[..., 0], _expect_ras(data))  # 20 degrees: the closest axes are R, A, S
    assert case.geometry.spacing == pytest.approx((5.0, 0.9, 0.9))
    out = tmp_path / "mask.nii"
    write_volume_mask(case, case.image[..., 0] > 100, out)
    written = nib.load(str(out))
    _assert_same_grid(written, nib.load(str(path)))
    np.testing.assert_array_equal(np.asarray(written.dataobj), data > 100)


@settings(max_examples=25, deadline=None)
@given(
    order=st.permutations([0, 1, 2]),
    signs=st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3),
    angles=st.tuples(*[st.floats(-30, 30)] * 3),
    zooms=st.tuples(*[st.floats(0.5, 5.0)] * 3),
)
def test_any_orientation_gives_lps_axes_and_round_trips(
    order: list[int], signs: tuple, angles: tuple, zooms: tuple
) -> None:
    affine = np.eye(4)
    affine[:3, :3] = _rotation(*np.radians(angles)) @ np.eye(3)[:, order] @ np.diag(np.multiply(signs, zooms))
    affine[:3, 3] = [3.0, -4.0, 5.0]
    shape = (5, 6, 7)
    world = nib.affines.apply_affine(affine, np.moveaxis(np.indices(shape), 0, -1))  # RAS mm of every voxel
    with tempfile.TemporaryDirectory() as folder:
        cases = [
            read_nifti(_save(world[..., a].astype(np.float32), affine, Path(folder) / f"{a}.nii")) for a in range(3)
        ]
        x, y, z = (c.image[..., 0] for c in cases)
        assert (np.diff(x, axis=2) < 0).all() and (np.diff(y, axis=1) < 0).all() and (np.diff(z, axis=0) > 0).all()
        steps = [
            np.linalg.norm(np.diff(np.stack([x, y, z], -1), axis=a)[0, 0, 0]) for a in range(3)
        ]  # mm per voxel step
        np.testing.assert_allclose(cases[0].geometry.spacing, steps, rtol=1e-4)
        write_volume_mask(cases[0], x > 3.0, Path(folder) / "out.nii")
        np.testing.assert_array_equal(
            np.asarray(nib.load(Path(folder) / "out.nii").dataobj), world[..., 0].astype(np.float32) > 3.0
        )


@pytest.mark.parametrize("codes", [(1, 2), (2, 0), (0, 1), (0, 0)])
def test_qform_sform_codes_kept(tmp_path: Path, codes: tuple[int, int]) -> None:
    affine = np.diag([-1.1, 0.9, 3.0, 1.0])
    affine[:3, 3] = [7, 8, 9]
    path = _save(_volume(), affine, tmp_path / "v.nii.gz", *codes)
    case = read_nifti(path)
    write_volume_mask(case, case.image[..., 0] > 100, tmp_path / "m.nii.gz")
    _assert_same_grid(nib.load(tmp_path / "m.nii.gz"), nib.load(path))


def test_scaled_input_and_header_resets(tmp_path: Path) -> None:
    data = np.random.default_rng(2).integers(0, 200, size=(6, 5, 4)).astype(np.int16)
    image = nib.Nifti1Image(data, np.eye(4))
    image.header.set_slope_inter(2.0, 10.0)
    image.header["cal_max"] = 1000.0
    image.header.set_intent("t test", (12,))
    nib.save(image, tmp_path / "scaled.nii.gz")
    case = read_nifti(tmp_path / "scaled.nii.gz")
    np.testing.assert_array_equal(case.image[..., 0], _expect_ras(data * 2.0 + 10.0))
    write_volume_mask(case, case.image[..., 0] > 200, tmp_path / "m.nii.gz")
    written = nib.load(tmp_path / "m.nii.gz")
    assert written.dataobj.slope == 1.0 and written.dataobj.inter == 0.0
    assert written.header.get_intent()[0] == "none" and float(written.header["cal_max"]) == 1.0
    np.testing.assert_array_equal(written.dataobj.get_unscaled(), (data * 2 + 10 > 200).astype(np.uint8))


def test_nifti2_stays_nifti2(tmp_path: Path) -> None:
    data = _volume()
    nib.save(nib.Nifti2Image(data, np.diag([-1.0, -1.0, 2.0, 1.0])), tmp_path / "v2.nii")
    case = read_nifti(tmp_path / "v2.nii")
    write_volume_mask(case, case.image[..., 0] > 90, tmp_path / "m2.nii")
    written = nib.load(tmp_path / "m2.nii")
    assert isinstance(written, nib.Nifti2Image) and int(written.header["sizeof_hdr"]) == 540
    np.testing.assert_array_equal(np.asarray(written.dataobj), data > 90)


def test_probability_map_mask_file_and_io_dispatch(tmp_path: Path) -> None:
    data = _volume()
    path = _save(data, CASES["ras"][0], tmp_path / "case1.nii.gz")
    _save((data > 120).astype(np.uint8), CASES["ras"][0], tmp_path / "case1_mask.nii.gz")
    assert find_cases(tmp_path) == [path]
    case = read_case(path, masks="required")
    np.testing.assert_array_equal(case.mask, _expect_ras(data > 120))
    written = write_mask(case, case.mask, tmp_path / "out" / "case1_mask.nii.gz")
    np.testing.assert_array_equal(np.asarray(nib.load(str(written)).dataobj), data > 120)
    write_volume_mask(case, case.image[..., 0] / 1000, tmp_path / "prob.nii.gz", probability=True)
    probability = nib.load(str(tmp_path / "prob.nii.gz"))
    assert probability.get_data_dtype() == np.float32
    np.testing.assert_allclose(np.asarray(probability.dataobj), data / 1000, rtol=1e-6)


def test_a_case_of_three_files_is_budgeted_as_three_channels_before_any_is_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each 64^3 file (6 MB to process) fits a 10 MB budget; the FLAIR read with its T1 and T1c (18 MB) does not."""
    files = [_save(np.ones((64, 64, 64), np.uint8), np.eye(4), tmp_path / f"{name}.nii.gz") for name in "abc"]
    monkeypatch.setenv("FLAIRSEG_MAX_MEMORY", "10M")
    assert read_sequences(files[0]).image.shape == (64, 64, 64, 1)
    decoded = []
    monkeypatch.setattr("flairseg.volumes._load_nifti", lambda path: decoded.append(path))
    with pytest.raises(InputError, match=r"a.nii.gz \(with its other sequences\) declares 262,144 voxels x 3 channel"):
        read_sequences(files[0], pre=files[1], post=files[2])
    assert decoded == []


def test_gzip_output_is_deterministic(tmp_path: Path) -> None:
    case = read_nifti(_save(_volume(), np.eye(4), tmp_path / "v.nii.gz"))
    write_volume_mask(case, case.image[..., 0] > 100, tmp_path / "a.nii.gz")
    write_volume_mask(case, case.image[..., 0] > 100, tmp_path / "b.nii.gz")
    assert (tmp_path / "a.nii.gz").read_bytes() == (tmp_path / "b.nii.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.nii.gz").read_bytes())[:4] == (348).to_bytes(4, "little")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nii.gz", "b.nii.gz", "v.nii.gz"]  # no temporary left


# ---- DICOM ----------------------------------------------------------------------------------

SAGITTAL = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # columns toward P, I, R (LPS)
DIRECTIONS = {
    "axial": (np.eye(3), lambda d: d),
    "flipped": (np.diag([-1.0, 1.0, -1.0]), lambda d: d[::-1, :, ::-1]),  # x toward R, slices toward I
    # index (k, j, i) -> slices along j reversed (toward S), rows along i (toward P),
    # columns along k reversed (toward L)
    "sagittal": (SAGITTAL, lambda d: d.transpose(1, 2, 0)[::-1, :, ::-1]),
}


def _write_dicom_series(
    folder: Path,
    data: np.ndarray,
    spacing: tuple[float, float, float],
    direction: np.ndarray,
    origin: tuple[float, float, float],
    series_uid: str = "1.2.826.0.1.3680043.2.1125.1.2",
    prefix: str = "slice",
    compressor: str | None = None,
) -> None:
    """A DICOM series from a (z, y, x) array, one file per slice, positions along the slice direction; its pixels
    compressed by GDCM where ``compressor`` names how ("JPEG": lossless JPEG, "JPEG2000": lossless JPEG 2000)."""
    import SimpleITK as sitk

    folder.mkdir(exist_ok=True)
    volume = sitk.GetImageFromArray(data.astype(np.int16))
    volume.SetSpacing(spacing)
    volume.SetDirection(direction.ravel().tolist())
    volume.SetOrigin(origin)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # else every file gets a fresh series UID, i.e. one series per slice
    if compressor:
        writer.SetImageIO("GDCMImageIO")
        writer.UseCompressionOn()
        writer.SetCompressor(compressor)
    orientation = "\\".join(f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1]))
    for k in range(data.shape[0]):
        plane = volume[:, :, k]
        position = volume.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in {
            "0008|0060": "MR",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in position),
            "0020|0037": orientation,
            "0028|0030": f"{spacing[1]:.6f}\\{spacing[0]:.6f}",
            "0018|0050": f"{spacing[2]:.6f}",
        }.items():
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{prefix}{k:03d}.dcm"))
        writer.Execute(plane)


def _digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.iterdir()))).hexdigest()


@pytest.mark.parametrize("name", DIRECTIONS)
def test_dicom_series(tmp_path: Path, name: str) -> None:
    import pydicom

    direction, expect = DIRECTIONS[name]
    data = np.random.default_rng(1).integers(0, 1000, size=(5, 12, 10))  # (k, j, i) in DICOM index space
    folder = tmp_path / "series"
    _write_dicom_series(folder, data, (0.9, 0.8, 4.0), direction, (5.0, -7.0, 11.0))
    before = _digest(folder)
    assert is_dicom_folder(folder)
    case = read_dicom_series(folder)
    assert case.case_id == "series" and case.geometry.format == "dicom" and case.geometry.header is None
    np.testing.assert_array_equal(case.image[..., 0], expect(data))
    assert check_case(folder) == case.image.shape  # the grid its headers declare, checked before a pixel is read
    spacing = {"axial": (4.0, 0.8, 0.9), "flipped": (4.0, 0.8, 0.9), "sagittal": (0.8, 0.9, 4.0)}[name]
    assert case.geometry.spacing == pytest.approx(spacing)
    out = tmp_path / "mask.nii.gz"
    write_volume_mask(case, case.image[..., 0] > 500, out)
    written = nib.load(str(out))
    assert (
        written.shape == (10, 12, 5)
        and int(written.header["qform_code"]) == 1
        and int(written.header["sform_code"]) == 1
    )
    assert written.header.get_zooms() == pytest.approx((0.9, 0.8, 4.0))
    np.testing.assert_allclose(written.get_qform(), written.get_sform(), atol=1e-5)
    mask = np.asarray(written.dataobj)
    for path in folder.iterdir():  # every slice file, read independently of SimpleITK
        ds = pydicom.dcmread(path)
        k = int(ds.InstanceNumber) - 1
        row, col = np.array(ds.ImageOrientationPatient[:3], float), np.array(ds.ImageOrientationPatient[3:], float)
        i, j = ds.Columns - 1, ds.Rows - 1  # the far corner pins the whole affine
        corner = (
            np.array(ds.ImagePositionPatient, float)
            + i * float(ds.PixelSpacing[1]) * row
            + j * float(ds.PixelSpacing[0]) * col
        )
        for voxel, lps in (((0, 0, k), np.array(ds.ImagePositionPatient, float)), ((i, j, k), corner)):
            np.testing.assert_allclose(written.affine @ [*voxel, 1], [-lps[0], -lps[1], lps[2], 1], atol=1e-4)
        np.testing.assert_array_equal(mask[:, :, k], (ds.pixel_array > 500).T)
    assert _digest(folder) == before


def test_dicom_without_extension_is_found(tmp_path: Path) -> None:
    folder = tmp_path / "noext"
    _write_dicom_series(folder, np.zeros((3, 4, 4)), (1.0, 1.0, 2.0), np.eye(3), (0.0, 0.0, 0.0))
    for path in folder.iterdir():
        path.rename(path.with_suffix(""))
    (folder / ".DS_Store").write_bytes(b"junk")
    assert is_dicom_folder(folder) and read_dicom_series(folder).shape == (3, 4, 4)
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("hello")
    assert not is_dicom_folder(tmp_path / "text") and not is_dicom_folder(tmp_path / "missing")


# ---- bad inputs -----------------------------------------------------------------------------


def _message(call, *args) -> str:
    with pytest.raises(InputError) as info:
        call(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


def _with_pixdim(path: Path, index: int, value: float) -> Path:
    image = nib.Nifti1Image(_volume(), np.diag([1.0, 1.0, 2.0, 1.0]))
    image.header["pixdim"][index] = value
    nib.save(image, str(path))
    return path


def test_bad_nifti_inputs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    eye = np.eye(4)
    assert "is 2-D" in _message(read_nifti, _save(np.zeros((8, 8), np.float32), eye, tmp_path / "flat.nii.gz"))
    four = _message(read_nifti, _save(np.zeros((8, 8, 4, 3), np.float32), eye, tmp_path / "four.nii.gz"))
    assert "is 4-D (shape (8, 8, 4, 3)); flairseg needs one 3-D volume per file" in four
    assert read_nifti(_save(np.zeros((8, 8, 4, 1), np.float32), eye, tmp_path / "single.nii.gz")).shape == (4, 8, 8)
    nan = _volume()
    nan[1, 2, 3] = np.nan
    assert "holds 1 NaN or infinite" in _message(read_nifti, _save(nan, eye, tmp_path / "nan.nii.gz"))
    inf = _volume()
    inf[0, 0, :2] = np.inf
    assert "holds 2 NaN or infinite" in _message(read_nifti, _save(inf, eye, tmp_path / "inf.nii.gz"))
    for suffix in (".nii.gz", ".nii"):
        good = _save(_volume(), eye, tmp_path / f"good{suffix}")
        (tmp_path / f"cut{suffix}").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
        assert "truncated" in _message(read_nifti, tmp_path / f"cut{suffix}")
    (tmp_path / "note.nii.gz").write_text("not a volume")
    assert "not a valid NIfTI" in _message(read_nifti, tmp_path / "note.nii.gz")
    assert "does not exist" in _message(read_nifti, tmp_path / "absent.nii.gz")
    assert "voxel spacing (0.0, 1.0, 2.0)" in _message(read_nifti, _with_pixdim(tmp_path / "zero.nii", 1, 0.0))
    assert "spacing" in _message(read_nifti, _with_pixdim(tmp_path / "neg.nii.gz", 3, -2.0))
    assert "spacing" in _message(read_nifti, _with_pixdim(tmp_path / "nan_zoom.nii.gz", 2, np.nan))
    flat = nib.Nifti1Image(_volume(), None)
    flat.set_sform(np.diag([0.0, 1.0, 1.0, 1.0]), code=2)
    nib.save(flat, str(tmp_path / "flat_affine.nii"))
    assert "degenerate" in _message(read_nifti, tmp_path / "flat_affine.nii")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.complex64), eye), str(tmp_path / "complex.nii"))
    assert "real-valued" in _message(read_nifti, tmp_path / "complex.nii")
    other = _save(np.zeros((5, 5, 5), np.uint8), eye, tmp_path / "other_mask.nii.gz")
    assert "not on the grid" in _message(read_nifti, tmp_path / "good.nii.gz", other)
    moved = _save(np.zeros((12, 10, 7), np.uint8), np.diag([2.0, 1.0, 1.0, 1.0]), tmp_path / "moved_mask.nii.gz")
    assert "not on the grid" in _message(read_nifti, tmp_path / "good.nii.gz", moved)
    assert not [r for r in caplog.records if r.name.startswith("nibabel")]  # nibabel's header-fix chatter stays quiet


def test_values_beyond_float32_are_refused_naming_their_source(tmp_path: Path) -> None:
    """flairseg computes in float32: a volume's values beyond its range (they would become infinite) are refused,
    blamed on the header's scaling where it has one, on the values otherwise; scaled values within it are read."""
    eye = np.eye(4)
    scaled = nib.Nifti1Image(np.full((8, 8, 4), 2, np.int16), eye)
    scaled.header.set_slope_inter(-1e38, -2e38)
    nib.save(scaled, tmp_path / "scaled.nii")
    assert _message(read_nifti, tmp_path / "scaled.nii").endswith(
        "scaled.nii: its header's scaling (scl_slope -1e+38, scl_inter -2e+38) takes the stored values to -4e+38, "
        "beyond float32 (at most 3.4e+38 in size); fix scl_slope and scl_inter in the header"
    )
    large = _save(np.full((8, 8, 4), 1e39), eye, tmp_path / "large.nii.gz")
    assert _message(read_nifti, large).endswith(
        "large.nii.gz holds the value 1e+39, beyond float32 (at most 3.4e+38 in size); rescale the volume"
    )
    fits = nib.Nifti1Image(np.full((8, 8, 4), 2, np.uint8), eye)
    fits.header.set_slope_inter(1e38, 0.0)
    nib.save(fits, tmp_path / "fits.nii")
    assert read_nifti(tmp_path / "fits.nii").image.max() == np.float32(2e38)


def test_bad_masks_to_write(tmp_path: Path) -> None:
    case = read_nifti(_save(_volume(), np.eye(4), tmp_path / "v.nii.gz"))
    assert "does not match" in _message(write_volume_mask, case, np.zeros((7, 10, 11), bool), tmp_path / "m.nii.gz")
    assert "other than 0 and 1" in _message(write_volume_mask, case, case.image[..., 0], tmp_path / "m.nii.gz")
    assert "must end in .nii" in _message(write_volume_mask, case, case.image[..., 0] > 0, tmp_path / "m.img")
    nan = case.image[..., 0].copy()
    nan[0, 0, 0] = np.nan
    assert "NaN" in _message(lambda: write_volume_mask(case, nan, tmp_path / "p.nii.gz", probability=True))
    assert not (tmp_path / "m.nii.gz").exists() and not (tmp_path / "p.nii.gz").exists()


def test_bad_dicom_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.dcm").write_bytes(b"\0" * 200)
    assert "no readable DICOM series" in _message(read_dicom_series, tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("hello")
    assert "no readable DICOM series" in _message(read_dicom_series, tmp_path / "text")
    assert "does not exist" in _message(read_dicom_series, tmp_path / "missing")
    data = np.zeros((3, 6, 6))
    _write_dicom_series(tmp_path / "two", data, (1.0, 1.0, 1.0), np.eye(3), (0.0, 0.0, 0.0), series_uid="1.2.3.1")
    _write_dicom_series(
        tmp_path / "two", data, (1.0, 1.0, 1.0), np.eye(3), (0.0, 0.0, 50.0), series_uid="1.2.3.2", prefix="b"
    )
    message = _message(read_dicom_series, tmp_path / "two")
    assert "2 DICOM series" in message and "1.2.3.1" in message and "1.2.3.2" in message
    _write_dicom_series(tmp_path / "gap", np.zeros((5, 6, 6)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    (tmp_path / "gap" / "slice002.dcm").unlink()
    assert "off a regular grid" in _message(read_dicom_series, tmp_path / "gap")
    import pydicom

    for tag, words in (
        ((0x0020, 0x0032), "slice 3 of 4 (slice002.dcm) has no Image Position (Patient) tag"),
        ((0x0028, 0x0030), "slice 3 of 4 (slice002.dcm) has no Pixel Spacing tag"),
    ):
        folder = tmp_path / f"no-{tag[1]:04x}"
        _write_dicom_series(folder, np.zeros((4, 6, 6)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
        ds = pydicom.dcmread(folder / "slice002.dcm")
        del ds[tag]
        ds.save_as(folder / "slice002.dcm")
        assert words in _message(read_dicom_series, folder)


@pytest.mark.parametrize(
    ("cut", "words"),
    [
        (lambda data: data[:-30], "slice004.dcm holds 42 bytes of pixel data but its header describes 72"),
        (lambda data: data[:300], "slice004.dcm looks like a DICOM file but is not part of the series in its folder"),
        (lambda data: b"", "slice004.dcm looks like a DICOM file but is not part of the series in its folder"),
    ],
    ids=["pixels-cut", "header-cut", "empty"],
)
def test_a_damaged_end_slice_is_refused_not_left_out(tmp_path: Path, cut, words: str) -> None:
    """GDCM leaves a file it cannot parse out of the series: the volume would lose its last slice without a word."""
    folder = tmp_path / "s"
    _write_dicom_series(folder, np.ones((5, 6, 6)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    last = folder / "slice004.dcm"
    last.write_bytes(cut(last.read_bytes()))
    assert words in _message(read_dicom_series, folder)


def test_files_that_are_not_dicom_slices_are_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    _write_dicom_series(folder, np.ones((3, 6, 6)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    (folder / "README").write_text("exported by the scanner")
    (folder / ".DS_Store").write_bytes(bytes(200))
    (folder / "._slice000.dcm").write_bytes(bytes(200))  # macOS's resource fork of a copied file
    (folder / "DICOMDIR").write_bytes(bytes(128) + b"DICM" + bytes(64))  # the file set's index, no image
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2)), np.eye(4)), folder / "mask.nii.gz")
    assert read_dicom_series(folder).shape == (3, 6, 6)


def _series_in(folder: Path, uid: str = "1.2.3.1") -> Path:
    _write_dicom_series(folder, np.ones((3, 6, 6)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0), series_uid=uid)
    return folder


def test_a_dicom_media_folder_is_a_folder_of_series(tmp_path: Path) -> None:
    """A DICOMDIR indexes a file set whose series lie below it: alone, it does not make its folder a series."""
    media = tmp_path / "cd"
    media.mkdir()
    series = [_series_in(media / "SER1", "1.2.3.1"), _series_in(media / "SER2", "1.2.3.2")]
    (media / "DICOMDIR").write_bytes(bytes(128) + b"DICM" + bytes(64))
    assert not is_dicom_folder(media) and find_cases(media) == series
    nested = tmp_path / "nested"
    (nested / "DICOM").mkdir(parents=True)
    shutil.move(media / "SER1", nested / "DICOM" / "SER1")
    shutil.copy(media / "DICOMDIR", nested / "DICOMDIR")
    assert _message(find_cases, nested) == (
        f"{nested} is a DICOM media folder (DICOMDIR) with no series folder directly below it; point flairseg at "
        "the folder that holds one series' slices"
    )


def test_a_stray_dicom_series_above_series_folders_is_refused(tmp_path: Path) -> None:
    """A localizer left at the top of a tree of series would make the tree one case and hide the series below."""
    tree = tmp_path / "tree"
    tree.mkdir()
    _series_in(tree / "A")
    _series_in(tmp_path / "localizer", "1.2.3.9")
    shutil.move(tmp_path / "localizer" / "slice000.dcm", tree / "localizer.dcm")
    assert _message(find_cases, tree) == (
        f"{tree} holds both image slices (localizer.dcm) and case folders (A/), so it is neither one case nor a "
        "folder of cases; move the stray slices out of it, or point flairseg at one case folder"
    )


def test_a_mask_folder_refuses_a_mask_named_without_the_suffix(tmp_path: Path) -> None:
    """Beside ``_mask`` files without their images, a file without the suffix is another label or a probability map
    by its name, or else refused: a mask saved without the suffix would drop its case out of a score without a word."""
    mask = (_volume() > 120).astype(np.uint8)
    for name in ("a_mask", "a_brain", "a_probability", "a_brain_probability", "b_mask"):
        _save(mask, np.eye(4), tmp_path / f"{name}.nii.gz")
    assert find_cases(tmp_path, masks="only") == [tmp_path / "a_mask.nii.gz", tmp_path / "b_mask.nii.gz"]
    assert [p.name for p in find_cases(tmp_path, masks="only", mask_suffix="_brain")] == ["a_brain.nii.gz"]
    _save(mask, np.eye(4), tmp_path / "c.nii.gz")
    assert _message(lambda: find_cases(tmp_path, masks="only")) == (
        f"{tmp_path} holds masks named <case>_mask (a_mask.nii.gz) and c.nii.gz without the suffix, which would be "
        "left out; rename it c_mask.nii.gz if it is a mask, or move it out of the folder if it is an image "
        "without a mask"
    )


def test_a_partly_labelled_data_folder_is_read_as_its_masks(tmp_path: Path) -> None:
    """A data folder of images beside their masks (given as the truth) with one image without a mask: its masks are
    the cases and the image without a mask is left out, since an image with its mask beside it tells the folder's
    unsuffixed files are images."""
    mask = (_volume() > 120).astype(np.uint8)
    for name in ("a", "a_mask", "b", "c_mask"):
        _save(mask, np.eye(4), tmp_path / f"{name}.nii.gz")
    assert find_cases(tmp_path, masks="only") == [tmp_path / "a_mask.nii.gz", tmp_path / "c_mask.nii.gz"]
    assert find_cases(tmp_path) == [tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"]


@pytest.mark.parametrize(
    ("tag", "value", "words"),
    [
        ((0x0028, 0x0030), [0, 0], "slice 1 (slice000.dcm) has Pixel Spacing '0.0\\0.0'; it must be two positive"),
        ((0x0028, 0x0030), [-1, 1], "slice 1 (slice000.dcm) has Pixel Spacing '-1"),
        ((0x0020, 0x0032), ["nan", 0, 6], "slice 3 (slice002.dcm) has Image Position (Patient) 'nan"),
    ],
)
def test_dicom_geometry_that_is_not_positive_and_finite_is_refused(
    tmp_path: Path, tag: tuple[int, int], value: list, words: str
) -> None:
    import pydicom

    _write_dicom_series(tmp_path / "s", np.zeros((5, 6, 6)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    for path in sorted((tmp_path / "s").iterdir()) if tag[1] == 0x0030 else [tmp_path / "s" / "slice002.dcm"]:
        ds = pydicom.dcmread(path)
        ds[tag].value = value
        ds.save_as(path)
    assert words in _message(read_dicom_series, tmp_path / "s")


@pytest.mark.parametrize(
    ("slope", "intercept", "words"),
    [("2", "-10", None), ("3e38", "0", "to 7.65e+40"), ("1", "-1e300", "to -1e+300")],
)
def test_a_dicom_rescale_beyond_float32_is_refused(
    tmp_path: Path, slope: str, intercept: str, words: str | None
) -> None:
    """Rescale Slope and Intercept that take the stored values beyond float32 are refused, naming them and a slice
    (they would become infinite voxels); an ordinary rescale is applied."""
    import pydicom

    _write_dicom_series(tmp_path / "s", np.full((3, 6, 6), 255), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    for path in sorted((tmp_path / "s").iterdir()):
        ds = pydicom.dcmread(path)
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.save_as(path)
    if words is None:
        assert np.all(read_dicom_series(tmp_path / "s").image == 500.0)
        return
    assert _message(read_dicom_series, tmp_path / "s") == (
        f"{tmp_path / 's'}: slice 1 (slice000.dcm) has Rescale Slope {slope!r} and Rescale Intercept {intercept!r}, "
        f"which take its stored values {words}, beyond float32 (at most 3.4e+38 in size); fix them in the slices' "
        "headers"
    )


@pytest.mark.parametrize("slope, intercept", [("200", "0"), ("0.5", "0"), ("1", "-40000")])
def test_each_dicom_slice_keeps_its_own_rescale(tmp_path: Path, slope: str, intercept: str) -> None:
    """A slice whose Rescale Slope or Intercept differs from the first slice's keeps its own values: read in the first
    slice's pixel type, 255 x 200 wrapped around int16 and 255 x 0.5 lost its half."""
    import pydicom

    _write_dicom_series(tmp_path / "s", np.full((4, 6, 6), 255), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    third = sorted((tmp_path / "s").iterdir())[2]
    ds = pydicom.dcmread(third)
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.save_as(third)
    volume = read_dicom_series(tmp_path / "s").image[..., 0]
    expected = 255 * float(slope) + float(intercept)
    assert sorted(np.unique(volume).tolist()) == sorted({255.0, expected})
    assert np.count_nonzero(volume == expected) == 36


def _reencode(folder: Path, syntax: str, nested: bool = True) -> None:
    """Write every slice of a series again in another transfer syntax, with an undefined-length sequence (nested, a
    thumbnail's own Rows and Pixel Data inside) before its pixels."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import UID, ExplicitVRBigEndian, ImplicitVRLittleEndian

    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        if nested:
            icon = Dataset()
            icon.Rows, icon.Columns, icon.BitsAllocated, icon.SamplesPerPixel = 2, 2, 8, 1
            icon.PixelData = bytes(4)
            icon.ConceptNameCodeSequence = Sequence([Dataset()])
            icon.ConceptNameCodeSequence[0].CodeValue = "X"
            icon.ConceptNameCodeSequence.is_undefined_length = True
            ds.IconImageSequence = Sequence([icon])
            ds.IconImageSequence.is_undefined_length = True
        if UID(syntax) == ExplicitVRBigEndian:
            ds.PixelData = ds.pixel_array.astype(">i2").tobytes()
            ds.file_meta.TransferSyntaxUID = syntax
            pydicom.dcmwrite(path, ds, little_endian=False, implicit_vr=False, force_encoding=True)
        elif UID(syntax).is_encapsulated:
            ds.compress(syntax)
            ds.save_as(path)
        else:
            ds.file_meta.TransferSyntaxUID = syntax
            ds.save_as(path, implicit_vr=UID(syntax) == ImplicitVRLittleEndian)


NATIVE = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"]
RLE = "1.2.840.10008.1.2.5"


@pytest.mark.parametrize("syntax", NATIVE, ids=["implicit", "explicit", "big-endian", "deflated"])
def test_dicom_pixel_data_is_counted_in_every_native_transfer_syntax(tmp_path: Path, syntax: str) -> None:
    """A whole series reads in each syntax; a slice whose Pixel Data is 40 of the 72 bytes its header declares is
    refused (GDCM would make up the rest), and one of 74 bytes; a file cut short inside its pixels is counted short."""
    import pydicom

    from flairseg.dicom_pixels import pixel_bytes

    data = np.arange(4 * 6 * 6).reshape(4, 6, 6) * 7 + 100
    _write_dicom_series(tmp_path / "s", data, (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    _reencode(tmp_path / "s", syntax)
    pixels = pixel_bytes(tmp_path / "s" / "slice002.dcm")
    assert (pixels.syntax, pixels.declared, pixels.present, pixels.complete) == (syntax, 72, 72, True)
    assert read_dicom_series(tmp_path / "s").image[..., 0].max() == data.max()
    target = tmp_path / "s" / "slice002.dcm"
    whole = target.read_bytes()
    target.write_bytes(whole[:-30])  # the file ends inside its pixels (a deflated one: inside its stream)
    cut = pixel_bytes(target)
    assert cut.present < 72 and not cut.complete  # GDCM leaves such a file out of the series: the reader names it
    target.write_bytes(whole)
    ds = pydicom.dcmread(target)
    ds.PixelData = ds.PixelData[:40]
    ds.save_as(target)
    assert _message(read_dicom_series, tmp_path / "s") == (
        f"{target} holds 40 bytes of pixel data but its header describes 72: the file is truncated or its dimensions "
        "are wrong"
    )
    ds.PixelData = bytes(74)
    ds.save_as(target)
    assert _message(read_dicom_series, tmp_path / "s") == (
        f"{target} has a Pixel Data element of 74 bytes but its header describes 72: the file is damaged or its "
        "dimensions are wrong"
    )


def test_compressed_dicom_pixels_need_fragments_not_the_declared_size(tmp_path: Path) -> None:
    """RLE fragments hold fewer bytes than the header declares, rightly; Pixel Data without a fragment is refused."""
    import pydicom

    from flairseg.dicom_pixels import pixel_bytes
    from flairseg.volumes import check_headers

    _write_dicom_series(tmp_path / "s", np.zeros((4, 32, 32)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    _reencode(tmp_path / "s", RLE)
    target = tmp_path / "s" / "slice002.dcm"
    pixels = pixel_bytes(target)
    assert pixels.compressed and pixels.complete and 0 < pixels.present < pixels.declared // 10 == 204
    check_headers(tmp_path / "s")
    ds = pydicom.dcmread(target)
    ds.PixelData = b"\xfe\xff\x00\xe0" + bytes(4)  # the (empty) offset table and no fragment
    ds.save_as(target)
    assert _message(check_headers, tmp_path / "s") == (
        f"{target} holds 0 bytes of compressed pixel data (transfer syntax {RLE}) in fragments that are missing or "
        "cut short: the file is damaged or truncated; re-export the series"
    )
    target.write_bytes(target.read_bytes()[:-4])  # the sequence delimiter cut off
    assert pixel_bytes(target).complete is False


def test_pixel_data_longer_than_declared_is_refused_but_for_the_padding_byte(tmp_path: Path) -> None:
    """7 x 7 8-bit pixels are 49 bytes, written as 50 (a value's length is even): read; 52 bytes are refused."""
    from flairseg.volumes import check_headers

    _write_dicom_series(tmp_path / "s", np.zeros((3, 7, 7)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    for path in sorted((tmp_path / "s").iterdir()):
        _edit_slice(path, BitsAllocated=8, BitsStored=8, HighBit=7, PixelData=bytes(49))
    check_headers(tmp_path / "s")
    target = tmp_path / "s" / "slice001.dcm"
    _edit_slice(target, PixelData=bytes(52))
    assert _message(check_headers, tmp_path / "s") == (
        f"{target} has a Pixel Data element of 52 bytes but its header describes 49: the file is damaged or its "
        "dimensions are wrong"
    )


def _edit_slice(path: Path, **values) -> None:
    import pydicom

    ds = pydicom.dcmread(path)
    for name, value in values.items():
        setattr(ds, name, value)
    ds.save_as(path)


def _deflated_series(folder: Path, **extra: bytes) -> None:
    """A 3-slice series of 6 x 6 16-bit pixels in the deflated syntax, each slice given the ``extra`` elements (by
    keyword: PixelData in place of its own, DataSetTrailingPadding after it)."""
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    _write_dicom_series(folder, np.zeros((3, 6, 6)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        for keyword, value in extra.items():
            setattr(ds, keyword, value)
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.save_as(path)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"PixelData": bytes(24 << 20)}, "has a Pixel Data element of 25,165,824 bytes but its header describes 72"),
        (
            {"DataSetTrailingPadding": bytes(24 << 20)},
            "inflates to more than its declared 72 bytes of pixel data and 16 MB of other elements",
        ),
    ],
    ids=["pixel-data", "trailing-padding"],
)
def test_a_deflated_slice_inflating_beyond_its_declared_size_is_refused_without_inflating_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: dict[str, bytes], words: str
) -> None:
    """GDCM inflates a deflated data set whole, to read its series tags: a 24 kB file inflating to 24 MB of Pixel
    Data (or of padding after it) is refused before GDCM reads it, and counting stops past 72 bytes + 16 MB."""
    from flairseg import dicom_pixels
    from flairseg.volumes import check_headers

    inflaters = []

    class Counted(dicom_pixels._Inflating):
        def __init__(self, *args) -> None:
            super().__init__(*args)
            inflaters.append(self)

    monkeypatch.setattr(dicom_pixels, "_Inflating", Counted)
    _deflated_series(tmp_path / "s", **extra)
    assert _message(check_headers, tmp_path / "s") == (
        f"{tmp_path / 's' / 'slice000.dcm'} {words}: the file is damaged or its dimensions are wrong"
    )
    assert inflaters and max(inflater.inflated for inflater in inflaters) <= dicom_pixels.ELEMENTS_ROOM + 74


def _jpeg_frame(rows: int, columns: int, marker: int = 0xC0) -> bytes:
    """The head of a JPEG codestream (frame header SOF0) or a JPEG-LS one (SOF55, 0xF7): SOI, an APP0 segment, a
    frame header declaring ``rows`` x ``columns`` x 1 component, EOI; no scan."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0" + bytes(9)
    frame = bytes([0xFF, marker]) + struct.pack(">HBHHB", 11, 8, rows, columns, 1) + bytes([1, 0x11, 0])
    return b"\xff\xd8" + app0 + frame + b"\xff\xd9"


def _j2k_frame(rows: int, columns: int, jp2: bool = False) -> bytes:
    """The head of a JPEG 2000 codestream: SOC, then SIZ declaring ``rows`` x ``columns`` x 1 component (on a grid
    offset by 4 rows and 8 columns); wrapped in a JP2 file's boxes where ``jp2``."""
    grid = (columns + 8, rows + 4, 8, 4, columns, rows, 0, 0)
    codestream = b"\xff\x4f\xff\x51" + struct.pack(">HH8IH", 41, 0, *grid, 1) + bytes([7, 1, 1]) + b"\xff\xd9"
    if not jp2:
        return codestream
    signature = struct.pack(">I4sI", 12, b"jP  ", 0x0D0A870A)
    file_type = struct.pack(">I4s4sI4s", 20, b"ftyp", b"jp2 ", 0, b"jp2 ")
    return signature + file_type + struct.pack(">I4s", 8 + len(codestream), b"jp2c") + codestream


def _encapsulated_series(folder: Path, syntax: str, frames: list[bytes], fragments: int = 1) -> None:
    """A 3-slice series of 32 x 32 8-bit pixels whose every slice holds ``frames`` encapsulated in ``syntax``, each
    in ``fragments`` fragments (nothing is encoded: the frames are given)."""
    import pydicom
    from pydicom.encaps import encapsulate

    _write_dicom_series(folder, np.zeros((3, 32, 32)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.NumberOfFrames = len(frames)
        ds.PixelData = encapsulate(frames, fragments_per_frame=fragments)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(path, enforce_file_format=True)


CODESTREAMS = {  # codec: (transfer syntax, frame of rows x columns)
    "JPEG": ("1.2.840.10008.1.2.4.50", _jpeg_frame),
    "JPEG-LS": ("1.2.840.10008.1.2.4.80", lambda rows, columns: _jpeg_frame(rows, columns, 0xF7)),
    "JPEG 2000": ("1.2.840.10008.1.2.4.90", _j2k_frame),
    "JP2": ("1.2.840.10008.1.2.4.91", lambda rows, columns: _j2k_frame(rows, columns, jp2=True)),
}


@pytest.mark.parametrize("codec", CODESTREAMS)
def test_a_compressed_frame_must_declare_the_header_s_size_in_its_codestream(tmp_path: Path, codec: str) -> None:
    """A 1 kB JPEG slice whose header says 32 x 32 but whose frame header says 40000 x 40000 would decode to 1.6 GB:
    refused before decoding. The frame's head is found across fragments; each frame of a multi-frame slice counts."""
    from flairseg.dicom_pixels import pixel_bytes
    from flairseg.volumes import check_headers

    syntax, frame = CODESTREAMS[codec]
    _encapsulated_series(tmp_path / "good", syntax, [frame(32, 32)])
    check_headers(tmp_path / "good")
    _encapsulated_series(tmp_path / "bomb", syntax, [frame(40000, 40000)])
    shown = "JPEG 2000" if codec == "JP2" else codec
    assert _message(check_headers, tmp_path / "bomb") == (
        f"{tmp_path / 'bomb' / 'slice000.dcm'}: {shown} frame 1 is 40,000 x 40,000 x 1 (rows x columns x components) "
        "by its codestream but 32 x 32 x 1 by its header: the file is damaged or invalid; re-export the series"
    )
    _encapsulated_series(tmp_path / "two", syntax, [frame(32, 32), frame(32, 40000)], fragments=2)
    assert pixel_bytes(tmp_path / "two" / "slice000.dcm").frame_sizes == ((32, 32, 1), (32, 40000, 1))
    _encapsulated_series(tmp_path / "none", syntax, [bytes(64)])
    assert _message(check_headers, tmp_path / "none") == (
        f"{tmp_path / 'none' / 'slice000.dcm'}: {shown} frame 1 declares no size in its codestream: the file is "
        "damaged; re-export the series"
    )


def test_a_jpeg_header_gdcm_cannot_parse_while_sorting_the_series_is_refused_in_one_line(tmp_path: Path) -> None:
    """GDCM reads a JPEG frame's precision from its first fragment to sort the series, and throws where the frame
    header is in the second."""
    from flairseg.volumes import check_headers

    _encapsulated_series(tmp_path / "s", CODESTREAMS["JPEG"][0], [_jpeg_frame(32, 32)], fragments=2)
    assert _message(check_headers, tmp_path / "s").startswith(f"cannot read the DICOM series in {tmp_path / 's'}: ")


def test_a_compressed_syntax_gdcm_does_not_decode_is_refused(tmp_path: Path) -> None:
    from flairseg.volumes import check_headers

    mpeg2 = "1.2.840.10008.1.2.4.100"
    _encapsulated_series(tmp_path / "s", mpeg2, [_jpeg_frame(32, 32)])
    assert _message(check_headers, tmp_path / "s") == (
        f"{tmp_path / 's' / 'slice000.dcm'} is stored in an unsupported transfer syntax ({mpeg2}); flairseg reads "
        "uncompressed, deflated, JPEG, JPEG-LS, JPEG 2000 and RLE DICOM: convert the series to one of them"
    )


@pytest.mark.parametrize("compressor", ["JPEG", "JPEG2000"])
def test_compressed_series_read_and_codec_messages_stay_off_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], compressor: str
) -> None:
    """Lossless JPEG and JPEG 2000 slices written by GDCM read back exactly; a slice whose codestream is cut in half
    (its fragment whole) is refused in one line, and what the codec prints about it (OpenJPEG: "Tile part length
    size inconsistent with stream length") never reaches stderr."""
    import pydicom
    from pydicom.encaps import encapsulate, generate_frames

    data = np.random.default_rng(0).integers(-50, 1000, size=(3, 32, 32))
    _write_dicom_series(tmp_path / "s", data, (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0), compressor=compressor)
    np.testing.assert_array_equal(read_dicom_series(tmp_path / "s").image[..., 0], data)
    target = tmp_path / "s" / "slice001.dcm"
    ds = pydicom.dcmread(target)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[: len(frame) // 2]])
    ds.save_as(target)
    assert "cannot read the DICOM series" in _message(read_dicom_series, tmp_path / "s")
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_a_read_volume_is_its_own_writable_float32_array_never_the_file_s_memory(tmp_path: Path, dtype) -> None:
    data = np.arange(4 * 5 * 6, dtype=dtype).reshape(4, 5, 6)
    path = tmp_path / "flair.nii"  # uncompressed: nibabel maps the file into memory
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    mapped = np.asanyarray(nib.load(path).dataobj)
    case = read_case(path)
    assert case.image.dtype == np.float32 and case.image.flags.writeable
    assert not np.shares_memory(case.image, mapped)
    case.image[...] = 0  # writing to it leaves the file as it was
    np.testing.assert_array_equal(np.asanyarray(nib.load(path).dataobj), data)


@pytest.mark.parametrize(
    ("tag", "value", "words"),
    [
        ((0x0020, 0x0037), [0, 1, 0, 0, 0, 1], "slice 5 (slice004.dcm) has another Image Orientation (Patient)"),
        ((0x0028, 0x0030), [2, 2], "slice 5 (slice004.dcm) has another Pixel Spacing than slice 1 (2, 2 against 1, 1)"),
        ((0x0020, 0x0037), None, "slice 5 of 5 (slice004.dcm) has no Image Orientation (Patient) tag"),
    ],
    ids=["sagittal-slice", "other-pixel-spacing", "no-orientation"],
)
def test_a_slice_in_another_plane_or_of_another_pixel_size_is_refused(
    tmp_path: Path, tag: tuple[int, int], value: list | None, words: str
) -> None:
    """The volume takes the first slice's plane and pixel size: a slice with its own would be silently misplaced."""
    import pydicom

    _write_dicom_series(tmp_path / "s", np.ones((5, 6, 6)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    last = tmp_path / "s" / "slice004.dcm"
    ds = pydicom.dcmread(last)
    if value is None:
        del ds[tag]
    else:
        ds[tag].value = value
    ds.save_as(last)
    assert words in _message(read_dicom_series, tmp_path / "s")


def test_a_compressed_slice_with_fewer_frames_than_it_declares_is_refused(tmp_path: Path) -> None:
    """GDCM would make up the missing frame's pixels."""
    import pydicom

    from flairseg.volumes import check_headers

    syntax, frame = CODESTREAMS["JPEG"]
    _encapsulated_series(tmp_path / "s", syntax, [frame(32, 32)])
    first = tmp_path / "s" / "slice000.dcm"
    ds = pydicom.dcmread(first)
    ds.NumberOfFrames = 2
    ds.save_as(first, enforce_file_format=True)
    assert _message(check_headers, tmp_path / "s") == (
        f"{first} holds 1 JPEG frames but its header declares 2: the file is damaged or truncated; re-export the series"
    )


def test_a_series_written_without_the_part10_preamble_reads_whole(tmp_path: Path) -> None:
    """Data sets without the 128-byte preamble, under names without .dcm (as old scanners and PACS exports write
    them), are DICOM too: found, checked and read, every slice of them."""
    import pydicom

    data = np.arange(5 * 6 * 6, dtype=np.int16).reshape(5, 6, 6)
    _write_dicom_series(tmp_path / "s", data, (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    for path in sorted((tmp_path / "s").iterdir()):
        ds = pydicom.dcmread(path)
        del ds.file_meta
        ds.preamble = None
        ds.save_as(path.with_name(path.stem.upper()), enforce_file_format=False, implicit_vr=True, little_endian=True)
        path.unlink()
    assert is_dicom_folder(tmp_path / "s")
    case = read_dicom_series(tmp_path / "s")
    assert case.shape == (5, 6, 6) and sorted(np.unique(case.image)) == sorted(np.unique(data))


@pytest.mark.parametrize(
    "orientation",
    [[1, 0, 0, 0, 0, 0], [1, 0, 0, 1, 0, 0], [1, 0, 0, 0.5, 0.8660254, 0], [2, 0, 0, 0, 0.5, 0]],
    ids=["zero-column", "parallel", "sheared", "not-unit"],
)
def test_a_degenerate_slice_orientation_is_refused(tmp_path: Path, orientation: list[float]) -> None:
    """GDCM would replace direction cosines that are not two orthogonal unit vectors by the identity: the volume would
    silently lie in another place."""
    import pydicom

    _write_dicom_series(tmp_path / "s", np.ones((3, 6, 6)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    for path in sorted((tmp_path / "s").iterdir()):
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = orientation
        ds.save_as(path)
    assert "not two orthogonal unit directions" in _message(read_dicom_series, tmp_path / "s")


@pytest.mark.parametrize("oblique", [False, True], ids=["axial", "oblique"])
def test_long_series_with_rounded_positions_stay_on_their_grid(oblique: bool) -> None:
    """Scanners write positions to a few decimals: 200 slices 2/3 mm apart, rounded to 0.01 mm, lie on the grid
    through their end slices (a grid stepped from the first two slices would drift 0.6 mm by the last), and a
    missing slice among them is still found."""
    from flairseg.volumes import _check_positions, _SliceHeaders, _slice_axes

    angle = np.radians(12.0 if oblique else 0.0)
    row, column = np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(angle), np.sin(angle)])
    normal = np.cross(row, column)
    positions = np.array([10.0, -20.0, 30.0]) + np.outer(np.arange(200) * (2 / 3), normal)

    def headers(rows: np.ndarray) -> _SliceHeaders:
        orientation = "\\".join(f"{v:.6f}" for v in (*row, *column))
        tags = [
            {"position": "\\".join(f"{v:.2f}" for v in p), "orientation": orientation, "pixel_spacing": "0.5\\0.5"}
            for p in rows
        ]
        return _SliceHeaders(tuple(f"IM{k}" for k in range(len(rows))), tuple(tags))

    series = headers(positions)
    _check_positions(series, _slice_axes(series, Path("S"))[2], np.array([0.5, 0.5]), Path("S"))
    gap = headers(np.delete(positions, 100, axis=0))
    with pytest.raises(InputError, match="off a regular grid"):
        _check_positions(gap, _slice_axes(gap, Path("S"))[2], np.array([0.5, 0.5]), Path("S"))


def test_a_slice_of_other_rows_and_columns_is_refused_from_the_headers_naming_it(tmp_path: Path) -> None:
    """A volume has one size for every slice; the slice of another is named before any pixel is decoded (GDCM
    fails on it with a fragment of its own message)."""
    from flairseg.volumes import check_headers

    _write_dicom_series(tmp_path / "s", np.ones((5, 6, 6)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    _write_dicom_series(tmp_path / "small", np.ones((5, 4, 4)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    shutil.copy(tmp_path / "small" / "slice002.dcm", tmp_path / "s" / "slice002.dcm")
    expected = (
        f"{tmp_path / 's'}: slice 3 (slice002.dcm) is 4 x 4 pixels (rows x columns) but slice 1 is 6 x 6; a volume "
        "needs one size for every slice: give each series its own folder"
    )
    assert _message(check_headers, tmp_path / "s") == _message(read_dicom_series, tmp_path / "s") == expected
