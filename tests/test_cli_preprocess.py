"""`flairseg preprocess`: writes the paper-variant TIFFs of a case tree, and maps back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from synthetic import phantom, write_kaggle_case, write_phantom_tree
from flairseg.cli import main
from flairseg.io import read_case
from flairseg.preprocess import SpatialTransform, invert_mask


def test_preprocess_sample_paper_abnormality_uses_brain_masks(
    sample_case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "prep"
    assert main(["preprocess", "-i", str(sample_case), "-o", str(out), "--quiet"]) == 0
    assert "1 cases, 20 slices preprocessed" in capsys.readouterr().out
    case_out = out / sample_case.name
    image = tifffile.imread(case_out / f"{sample_case.name}_7.tif")
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    prepared = read_case(case_out, masks="required")
    original = read_case(sample_case)
    np.testing.assert_array_equal(prepared.mask, original.mask)  # 256 x 256 input: no resizing, masks unchanged
    flair = prepared.image[..., 1][original.mask | (prepared.image[..., 1] > 0)]
    assert 80 <= np.median(flair) <= 130  # tissue peak near 100, as the paper intends
    transform = SpatialTransform(
        **{
            k: tuple(v) if isinstance(v, list) else v
            for k, v in json.loads((case_out / "transform.json").read_text()).items()
        }
    )
    np.testing.assert_array_equal(invert_mask(prepared.mask, transform), original.mask)


def test_preprocess_paper_brain_writes_flair_and_brain_labels(sample_case: Path, tmp_path: Path) -> None:
    out = tmp_path / "prep"
    assert main(["preprocess", "-i", str(sample_case), "-o", str(out), "--variant", "paper-brain", "--quiet"]) == 0
    case = read_case(out / sample_case.name, masks="required")
    assert case.image.shape == (20, 256, 256, 1)
    brain = read_case(sample_case, mask_suffix="_brain").mask
    np.testing.assert_array_equal(case.mask, brain | (case.mask & ~brain))  # holes filled at most
    assert case.mask.sum() >= brain.sum()


def test_preprocess_port_variant_tree(tmp_path: Path) -> None:
    root = write_phantom_tree(tmp_path / "in", "C", 2, slices=6, size=80)
    out = tmp_path / "out"
    assert main(["preprocess", "-i", str(root), "-o", str(out), "--variant", "port", "--quiet"]) == 0
    case = read_case(out / "C1", masks="required")
    assert case.image.dtype == np.float32 and case.image.shape[1:] == (256, 256, 3)


def test_preprocess_raw_volume_abnormality_without_brain_is_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, mask = phantom(slices=6, size=256)  # the Kaggle grid: no resizing smooths the background noise
    background = image < 10
    # noise fills the fullest bin
    image[background] = np.random.default_rng(0).integers(2, 4, size=int(background.sum()))
    write_kaggle_case(tmp_path / "in", "RAW", image, mask)
    out = tmp_path / "out"
    assert main(["preprocess", "-i", str(tmp_path / "in"), "-o", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("flairseg: error: case RAW:") and err.count("\n") == 1
    assert not out.exists()


def test_preprocess_port_with_a_percentile_peak_and_its_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flairseg.preprocess import preprocess_case

    image, mask = phantom(slices=6, size=80, seed=0)
    write_kaggle_case(tmp_path / "in", "C0", image, mask)
    out = tmp_path / "out"
    command = ["preprocess", "-i", str(tmp_path / "in"), "-o", str(out), "--variant", "port", "--quiet"]
    assert main([*command, "--peak-percentile", "99.9"]) == 0
    written = read_case(out / "C0").image
    expected = preprocess_case(read_case(tmp_path / "in" / "C0").image, variant="port", peak_percentile=99.9).image
    np.testing.assert_allclose(written, expected)
    for variant, value in (("port", "80"), ("paper-brain", "99")):
        bad = ["preprocess", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "bad"), "--variant", variant]
        assert main([*bad, "--peak-percentile", value, "--quiet"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("flairseg: error: --peak-percentile takes 90-100") and err.count("\n") == 1
        assert not (tmp_path / "bad").exists()


def _volume(path: Path, seed: int = 0) -> Path:
    """A phantom FLAIR saved as the NIfTI ``path`` (and its tumour label as ``<stem>_mask.nii.gz`` beside it)."""
    import nibabel as nib

    image, mask = phantom(slices=4, size=32, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(image[..., 1].transpose(2, 1, 0).astype(np.float32), np.eye(4)), path)
    label = path.with_name(path.name.removesuffix(".nii.gz") + "_mask.nii.gz")
    nib.save(nib.Nifti1Image(mask.transpose(2, 1, 0).astype(np.uint8), np.eye(4)), label)
    return path


def test_hidden_volumes_are_not_cases_and_a_hidden_case_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hidden volume in a tree (``.flairseg.nii.gz``, macOS's ``._B.nii.gz`` copy) is skipped as a hidden folder is,
    so that no case takes the name of the output's marker; one given by name is refused before any work."""
    for name, seed in ((".flairseg.nii.gz", 1), ("._B.nii.gz", 2), ("B.nii.gz", 3)):
        _volume(tmp_path / "in" / name, seed)
    out = tmp_path / "out"
    assert main(["preprocess", "-i", str(tmp_path / "in"), "-o", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".flairseg", "B"] and (out / ".flairseg").is_file()
    command = ["preprocess", "-i", str(tmp_path / "in" / ".flairseg.nii.gz"), "-o", str(tmp_path / "lone"), "--quiet"]
    assert main(command) == 1
    err = capsys.readouterr().err
    assert err.startswith("flairseg: error: case id '.flairseg' is a hidden name") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]


def test_a_lone_volumes_labels_are_inputs_that_no_output_replaces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """preprocess reads a lone volume's label beside it: ``-o`` that label is refused as an input, before any work
    (not once the case is preprocessed, as a file where a folder is written)."""
    volume = _volume(tmp_path / "c" / "caseA.nii.gz")
    label = tmp_path / "c" / "caseA_mask.nii.gz"
    before = label.read_bytes()
    assert main(["preprocess", "-i", str(volume), "-o", str(label), "--overwrite", "--quiet"]) == 1
    assert capsys.readouterr().err == (
        f"flairseg: error: output {label} overlaps the input {label}; choose an output path outside the inputs\n"
    )
    assert label.read_bytes() == before and sorted(p.name for p in label.parent.iterdir()) == [volume.name, label.name]
