"""Multi-sequence input as the field names it: BraTS, BraTS 2023, nnU-Net and BIDS layouts, explicit files."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from flairseg.cli import main
from flairseg.errors import InputError
from flairseg.io import check_case, find_cases, read_case
from flairseg.sequences import name_of
from flairseg.volumes import read_sequences

AFFINE = np.diag([-1.0, -1.0, 2.0, 1.0])


def _volume(path: Path, value: float, shape: tuple[int, int, int] = (12, 10, 6), affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.full(shape, value, dtype=np.float32)
    data[0, 0, 0] = value + 1  # not constant: a real image
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def _label(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.zeros((12, 10, 6), dtype=np.uint8)
    data[3:6, 3:6, 2:4] = 2  # BraTS labels 1, 2, 4: nonzero is the whole tumour
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    return path


def _brats(folder: Path, case_id: str, t1ce: bool = True) -> Path:
    _volume(folder / f"{case_id}_flair.nii.gz", 10)
    _volume(folder / f"{case_id}_t1.nii.gz", 20)
    if t1ce:
        _volume(folder / f"{case_id}_t1ce.nii.gz", 30)
    _volume(folder / f"{case_id}_t2.nii.gz", 40)
    _label(folder / f"{case_id}_seg.nii.gz")
    return folder


def test_a_brats_folder_is_one_case_with_its_sequences_and_labels(tmp_path: Path) -> None:
    folder = _brats(tmp_path / "BraTS19_X_1", "BraTS19_X_1")
    assert find_cases(folder) == [folder / "BraTS19_X_1_flair.nii.gz"]
    case = read_case(find_cases(folder)[0])
    assert case.case_id == "BraTS19_X_1" and case.image.shape[-1] == 3
    assert [float(np.median(case.image[..., c])) for c in range(3)] == [
        20.0,
        10.0,
        30.0,
    ]  # pre (T1), FLAIR, post (T1ce)
    assert case.mask.sum() == 18  # the seg labels as the whole tumour
    assert {k: Path(v).name for k, v in case.sequences} == {
        "pre": "BraTS19_X_1_t1.nii.gz",
        "flair": "BraTS19_X_1_flair.nii.gz",
        "post": "BraTS19_X_1_t1ce.nii.gz",
    }


def test_a_brats_root_gives_one_case_per_folder_and_labels_are_never_images(tmp_path: Path) -> None:
    for case_id in ("BraTS19_A_1", "BraTS19_B_2"):
        _brats(tmp_path / "root" / case_id, case_id, t1ce=case_id.endswith("1"))
    cases = find_cases(tmp_path / "root")
    assert [p.name for p in cases] == ["BraTS19_A_1_flair.nii.gz", "BraTS19_B_2_flair.nii.gz"]
    second = read_case(cases[1])
    assert dict(second.sequences)["post"] == "copy of FLAIR"
    np.testing.assert_array_equal(second.image[..., 2], second.image[..., 1])
    for name in ("BraTS19_A_1_seg.nii.gz", "BraTS19_A_1_t1.nii.gz"):
        with pytest.raises(InputError, match="label volume|not a FLAIR"):
            read_case(tmp_path / "root" / "BraTS19_A_1" / name)


def test_brats_2023_naming(tmp_path: Path) -> None:
    folder = tmp_path / "BraTS-GLI-00001-000"
    for suffix, value in (("t2f", 10), ("t1n", 20), ("t1c", 30), ("t2w", 40)):
        _volume(folder / f"BraTS-GLI-00001-000-{suffix}.nii.gz", value)
    _label(folder / "BraTS-GLI-00001-000-seg.nii.gz")
    [flair] = find_cases(folder)
    case = read_case(flair)
    assert case.case_id == "BraTS-GLI-00001-000" and case.mask is not None
    assert [float(np.median(case.image[..., c])) for c in range(3)] == [20.0, 10.0, 30.0]


def test_nnunet_channels_are_named_by_dataset_json(tmp_path: Path) -> None:
    folder = tmp_path / "Dataset001_BrainTumour" / "imagesTs"
    (tmp_path / "Dataset001_BrainTumour").mkdir()
    (tmp_path / "Dataset001_BrainTumour" / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}})
    )
    for channel, value in ((0, 10), (1, 20), (2, 30), (3, 40)):
        _volume(folder / f"BRATS_001_{channel:04d}.nii.gz", value)
    [flair] = find_cases(folder)
    case = read_case(flair)
    assert case.case_id == "BRATS_001" and [float(np.median(case.image[..., c])) for c in range(3)] == [
        20.0,
        10.0,
        30.0,
    ]


def test_an_nnunet_label_in_its_labels_folder_is_a_file_of_the_case(tmp_path: Path) -> None:
    from flairseg.io import case_files
    from flairseg.sequences import LABEL, siblings

    dataset = tmp_path / "Dataset001_X"
    dataset.mkdir()
    (dataset / "dataset.json").write_text(json.dumps({"channel_names": {"0": "FLAIR"}}))
    flair = _volume(dataset / "imagesTr" / "BR_001_0000.nii.gz", 10)
    label = _label(dataset / "labelsTr" / "BR_001.nii.gz")
    _label(dataset / "labelsTr" / "BR_002.nii.gz")  # another case's
    assert siblings(flair) == {"flair": [flair], LABEL: [label]} and case_files(flair) == [flair, label]
    plain = _volume(tmp_path / "images" / "vol.nii.gz", 10)  # no convention: no label found by folder
    _label(tmp_path / "labels" / "vol.nii.gz")
    assert case_files(plain) == [plain]


def test_bids_dataset_gives_one_case_per_subject_and_session_and_derivatives(tmp_path: Path, sample_case: Path) -> None:
    root = tmp_path / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.9.0"}))
    anat = root / "sub-01" / "ses-01" / "anat"
    _volume(anat / "sub-01_ses-01_FLAIR.nii.gz", 10)
    _volume(anat / "sub-01_ses-01_T1w.nii.gz", 20)
    _volume(anat / "sub-01_ses-01_ce-gadolinium_T1w.nii.gz", 30)
    _label(anat / "sub-01_ses-01_dseg.nii.gz")
    _volume(root / "sub-02" / "anat" / "sub-02_FLAIR.nii.gz", 10)
    cases = find_cases(root)
    assert [read_case(p).case_id for p in cases] == ["sub-01_ses-01", "sub-02"]
    first = read_case(cases[0])
    assert [float(np.median(first.image[..., c])) for c in range(3)] == [20.0, 10.0, 30.0] and first.mask is None
    assert read_case(cases[1]).image.shape[-1] == 1
    out = root / "derivatives" / "flairseg"  # BIDS derivatives live inside the dataset
    assert main(["predict", "-i", str(root), "-o", str(out), "--quiet"]) == 0
    assert (out / "sub-01" / "ses-01" / "anat" / "sub-01_ses-01_desc-tumour_mask.nii.gz").is_file()
    assert (out / "sub-02" / "anat" / "sub-02_desc-tumour_mask.nii.gz").is_file()
    assert json.loads((out / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    inputs = (out / "report" / "inputs.csv").read_text().splitlines()
    assert inputs[0] == "case,task,flair,pre,post,substituted"
    assert inputs[2] == "sub-02,abnormality,sub-02_FLAIR.nii.gz,copy of FLAIR,copy of FLAIR,pre post"
    assert find_cases(root) == cases  # the derivatives folder is not read as input


def test_sequences_on_another_grid_are_refused(tmp_path: Path) -> None:
    flair = _volume(tmp_path / "P_flair.nii.gz", 10)
    other = _volume(tmp_path / "P_t1.nii.gz", 20, shape=(12, 10, 7))
    with pytest.raises(InputError, match="not on the grid of the FLAIR"):
        read_case(flair)
    shifted = _volume(tmp_path / "Q" / "t1.nii.gz", 20, affine=AFFINE + np.diag([0, 0, 0.5, 0]))
    with pytest.raises(InputError, match="not on the grid"):
        read_sequences(flair, pre=shifted)
    resampled = read_sequences(flair, pre=shifted, resample=True)  # world coordinates: 0.5 mm along z, linear
    assert dict(resampled.sequences)["pre"] == str(tmp_path / "Q" / "t1.nii.gz") + " (resampled onto the FLAIR)"
    assert resampled.image.shape[:3] == read_case(tmp_path / "Q" / "t1.nii.gz").image.shape[:3]
    assert np.isclose(np.median(resampled.image[..., 0]), 20.0)
    assert other.exists()


def test_explicit_sequence_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flair = _volume(tmp_path / "in" / "scan_flair_only.nii.gz", 10)
    t1c = _volume(tmp_path / "in" / "scan_post.nii.gz", 30)
    assert main(["predict", "--flair", str(flair), "--t1c", str(t1c), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert "1 cases lacked a pre- or post-contrast T1" in capsys.readouterr().out
    assert (tmp_path / "out" / "scan_flair_only_mask.nii.gz").is_file()
    assert "scan_post.nii.gz" in (tmp_path / "out" / "report" / "inputs.csv").read_text()
    assert main(["predict", "-i", str(flair), "--flair", str(flair), "-o", str(tmp_path / "x")]) == 1
    assert main(["predict", "--t1", str(t1c), "-o", str(tmp_path / "y")]) == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_names_of_the_conventions() -> None:
    assert name_of(Path("a_t1ce.nii.gz")).kind == "t1c" and name_of(Path("a_t1.nii")).kind == "t1"
    assert name_of(Path("sub-1_acq-3d_FLAIR.nii.gz")).case_id == "sub-1_acq-3d"
    assert name_of(Path("sub-1_ce-gd_T1w.nii.gz")).kind == "t1c"
    assert name_of(Path("scan_2019.nii.gz")) is None  # four digits without a dataset.json are not a channel
    assert name_of(Path("plain.nii.gz")) is None


def test_resampling_follows_world_coordinates(tmp_path: Path) -> None:
    """The same content stored with its x axis reversed (another affine) comes back voxel for voxel."""
    data = np.arange(12 * 10 * 6, dtype=np.float32).reshape(12, 10, 6)
    nib.save(nib.Nifti1Image(data, AFFINE), tmp_path / "P_flair.nii.gz")
    flipped = AFFINE.copy()
    # x reversed: voxel i of the copy sits where voxel 11 - i of the FLAIR sits
    flipped[0, 0], flipped[0, 3] = (
        1.0,
        -11.0,
    )
    nib.save(nib.Nifti1Image(data[::-1].copy(), flipped), tmp_path / "t1.nii.gz")
    case = read_sequences(tmp_path / "P_flair.nii.gz", pre=tmp_path / "t1.nii.gz", resample=True)
    np.testing.assert_allclose(case.image[..., 0], case.image[..., 1], atol=1e-3)


def _refusal(call, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        call(*args, **kwargs)
    return str(info.value)


def test_the_header_pass_refuses_the_grids_reading_refuses(tmp_path: Path) -> None:
    """check_case refuses from the headers alone what reading the case refuses, in the same words: a sequence off
    its FLAIR's grid (unless resampled), a BraTS segmentation off it (read only as a tumour mask)."""
    flair = _brats(tmp_path / "P", "P") / "P_flair.nii.gz"
    check_case(flair)
    _volume(tmp_path / "P" / "P_t1ce.nii.gz", 30, affine=AFFINE + np.diag([0, 0, 0.5, 0]))
    assert _refusal(check_case, flair) == _refusal(read_case, flair)
    assert "P_t1ce.nii.gz is not on the grid of the FLAIR P_flair.nii.gz" in _refusal(check_case, flair)
    check_case(flair, resample=True)
    shifted = AFFINE.copy()
    shifted[0, 3] = 40.0
    (tmp_path / "P" / "P_seg.nii.gz").unlink()
    nib.save(nib.Nifti1Image(np.zeros((12, 10, 6), np.uint8), shifted), tmp_path / "P" / "P_seg.nii.gz")
    refused = _refusal(check_case, flair, resample=True)
    assert refused == _refusal(read_case, flair, resample=True)
    assert refused.startswith("mask P_seg.nii.gz (shape (12, 10, 6)) is not on the grid of P_flair.nii.gz")
    check_case(flair, mask_suffix="_brain", resample=True)  # a brain mask asked for: the tumour labels are not read


def test_a_tree_of_sequences_off_their_flair_is_predicted_with_resample(tmp_path: Path) -> None:
    """The header pass lets through what ``--resample`` reads: sequences on another grid than their FLAIR."""
    for case_id in ("P", "Q"):
        _brats(tmp_path / "in" / case_id, case_id)
    _volume(tmp_path / "in" / "Q" / "Q_t1ce.nii.gz", 30, affine=AFFINE + np.diag([0, 0, 0.5, 0]))
    argv = ["predict", "-i", str(tmp_path / "in"), "--quiet", "--threads", "1"]
    assert main([*argv, "-o", str(tmp_path / "refused")]) == 1 and not (tmp_path / "refused").exists()
    assert main([*argv, "-o", str(tmp_path / "out"), "--resample"]) == 0
    assert (tmp_path / "out" / "Q_mask.nii.gz").is_file()
