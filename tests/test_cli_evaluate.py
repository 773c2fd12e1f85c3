"""`flairseg evaluate` end to end on Kaggle trees, and the CLI's one-line errors that write nothing."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from flairseg.cli import main
from flairseg.io import read_case


def _shifted_predictions(truth: Path, root: Path, shift: int = 3) -> Path:
    """A prediction tree: each truth mask shifted by ``shift`` pixels (masks only, as predict writes them)."""
    for folder in sorted(truth.iterdir()):
        case = read_case(folder)
        out = root / folder.name
        out.mkdir(parents=True)
        for k, plane in enumerate(np.roll(case.mask, shift, axis=2), start=1):
            tifffile.imwrite(out / f"{folder.name}_{k}_mask.tif", plane.astype(np.uint8) * 255)
    return root


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_evaluate_shifted_masks(kaggle_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = _shifted_predictions(kaggle_tree, tmp_path / "pred")
    out = tmp_path / "report"
    code, stdout, _ = _run(
        ["evaluate", "--pred", str(pred), "--truth", str(kaggle_tree), "-o", str(out), "--quiet"], capsys
    )
    assert code == 0 and "3 cases: Dice mean" in stdout
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["case_id"] for r in rows] == ["CASE_0", "CASE_1", "CASE_2"]
    for row in rows:
        truth = read_case(kaggle_tree / row["case_id"]).mask
        shifted = np.roll(truth, 3, axis=2)
        expected = 2 * (truth & shifted).sum() / (truth.sum() + shifted.sum())
        assert float(row["dice"]) == pytest.approx(expected, rel=1e-5)
        assert 0.8 < float(row["hd95"]) <= 3.0 + 1e-6 and row["units"] == "voxel"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == 3 and 0 < summary["dice"]["mean"] < 1
    assert "median case" in (out / "summary.md").read_text()
    assert Image.open(out / "dice_distribution.png").format == "PNG"
    gif = Image.open(out / "gifs" / "CASE_1.gif")
    assert gif.n_frames == 8
    assert (out / "montages" / "CASE_1.png").is_file()


def test_evaluate_against_a_copy_is_perfect(
    sample_case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = shutil.copytree(sample_case, tmp_path / "pred" / sample_case.name)
    code, stdout, _ = _run(
        ["evaluate", "--pred", str(copy), "--truth", str(sample_case), "-o", str(tmp_path / "r"), "--quiet"], capsys
    )
    assert code == 0 and "Dice mean 1.0000" in stdout


def _assert_error(
    args: list[str], capsys: pytest.CaptureFixture[str], fragment: str, nothing_at: Path | None = None
) -> None:
    code, stdout, stderr = _run(args, capsys)
    assert code == 1 and stdout == ""
    last = stderr.rstrip("\n").split("\n")[-1]  # progress bars, if any, come before it
    assert last.startswith("flairseg: error: ") and "Traceback" not in stderr, stderr
    assert fragment in last
    if nothing_at is not None:
        assert not nothing_at.exists()
        assert not [p for p in nothing_at.parent.iterdir() if p.name.startswith(".")]


def test_evaluate_missing_prediction(kaggle_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = _shifted_predictions(kaggle_tree, tmp_path / "pred")
    shutil.rmtree(pred / "CASE_1")
    out = tmp_path / "report"
    _assert_error(
        ["evaluate", "--pred", str(pred), "--truth", str(kaggle_tree), "-o", str(out)],
        capsys,
        "no prediction for 1 of 3",
        out,
    )


def test_evaluate_grid_mismatch(kaggle_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = _shifted_predictions(kaggle_tree, tmp_path / "pred")
    (pred / "CASE_2" / "CASE_2_8_mask.tif").unlink()
    out = tmp_path / "report"
    _assert_error(
        ["evaluate", "--pred", str(pred), "--truth", str(kaggle_tree), "-o", str(out)],
        capsys,
        "differs from truth grid",
        out,
    )


def test_evaluate_missing_and_empty_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    _assert_error(
        ["evaluate", "--pred", str(tmp_path / "no"), "--truth", str(tmp_path), "-o", str(out)],
        capsys,
        "does not exist",
        out,
    )
    for name in ("empty", "empty_too"):
        (tmp_path / name).mkdir()
    _assert_error(
        ["evaluate", "--pred", str(tmp_path / "empty"), "--truth", str(tmp_path / "empty_too"), "-o", str(out)],
        capsys,
        "holds no cases",
        out,
    )


def test_output_equal_to_input(kaggle_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in kaggle_tree.rglob("*"))
    _assert_error(
        ["evaluate", "--pred", str(kaggle_tree), "--truth", str(kaggle_tree), "-o", str(kaggle_tree)],
        capsys,
        "overlaps the input",
    )
    _assert_error(
        ["preprocess", "-i", str(kaggle_tree), "-o", str(kaggle_tree / "CASE_0"), "--overwrite"],
        capsys,
        "overlaps the input",
    )
    assert sorted(p.name for p in kaggle_tree.rglob("*")) == before


def test_existing_output_needs_overwrite(kaggle_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = _shifted_predictions(kaggle_tree, tmp_path / "pred")
    out = tmp_path / "report"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    _assert_error(["evaluate", "--pred", str(pred), "--truth", str(kaggle_tree), "-o", str(out)], capsys, "--overwrite")
    assert (out / "keep.txt").read_text() == "mine"
    # a folder of the user's is never replaced
    _assert_error(
        ["evaluate", "--pred", str(pred), "--truth", str(kaggle_tree), "-o", str(out), "--overwrite"],
        capsys,
        "did not make",
    )
    assert (out / "keep.txt").read_text() == "mine"
    ours = tmp_path / "ours"
    for _ in range(2):  # a report flairseg made is replaced with --overwrite
        code, _, _ = _run(
            [
                "evaluate",
                "--pred",
                str(pred),
                "--truth",
                str(kaggle_tree),
                "-o",
                str(ours),
                "--overwrite",
                "--quiet",
            ],
            capsys,
        )
        assert code == 0 and (ours / "metrics.csv").exists() and (ours / ".flairseg").exists()


def test_one_tree_for_both_is_refused(kaggle_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tree, a case or a file given as both the prediction and the truth (also through a link), or one inside the
    other, is refused: it would score Dice 1 against itself."""
    out = tmp_path / "report"
    case = kaggle_tree / "CASE_0"
    mask = case / "CASE_0_1_mask.tif"
    (tmp_path / "link").symlink_to(kaggle_tree)
    for pred, truth in ((kaggle_tree, kaggle_tree), (case, case), (mask, mask), (tmp_path / "link", kaggle_tree)):
        _assert_error(
            ["evaluate", "--pred", str(pred), "--truth", str(truth), "-o", str(out)], capsys, "are the same", out
        )
    for pred, truth in ((case, kaggle_tree), (kaggle_tree, case)):
        _assert_error(
            ["evaluate", "--pred", str(pred), "--truth", str(truth), "-o", str(out)],
            capsys,
            f"case CASE_0 of --pred ({case}) is or lies in case CASE_0 of --truth ({case})",
            out,
        )


def test_predictions_kept_beside_the_truth_cases_in_their_folder_are_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A prediction folder kept inside the truth's folder, beside its cases (no case of the truth tree): scored."""
    import nibabel as nib

    mask = np.zeros((8, 8, 4), np.uint8)
    mask[2:6, 2:6, 1:3] = 1
    (tmp_path / "data" / "pred").mkdir(parents=True)
    for name in ("data/A", "data/A_mask", "data/pred/A_mask"):
        nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / f"{name}.nii.gz")
    args = ["--pred", str(tmp_path / "data" / "pred"), "--truth", str(tmp_path / "data"), "-o", str(tmp_path / "r")]
    code, out, err = _run(["evaluate", *args, "--quiet", "--no-figures"], capsys)
    assert code == 0, err
    assert out.startswith("1 cases: Dice mean 1.0000")


def test_a_prediction_linked_to_its_truth_is_refused(
    kaggle_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A prediction tree whose case is a link to the truth's case scores that case against itself: refused."""
    pred = _shifted_predictions(kaggle_tree, tmp_path / "pred")
    shutil.rmtree(pred / "CASE_1")
    (pred / "CASE_1").symlink_to(kaggle_tree / "CASE_1")
    out = tmp_path / "report"
    _assert_error(
        ["evaluate", "--pred", str(pred), "--truth", str(kaggle_tree), "-o", str(out)],
        capsys,
        f"the prediction of case CASE_1 ({pred / 'CASE_1'}) is its truth {kaggle_tree / 'CASE_1'}",
        out,
    )


@pytest.mark.parametrize("layout", ["hard link", "linked folder of links"])
def test_a_prediction_whose_mask_slice_is_its_truths_is_refused(
    layout: str, kaggle_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A predicted case folder whose second mask slice is the truth's own file (a hard link in a folder of its own, or
    a link in a folder of links that the prediction tree links to): that slice would score against itself."""
    pred = _shifted_predictions(kaggle_tree, tmp_path / "pred")
    slice_2 = pred / "CASE_1" / "CASE_1_2_mask.tif"
    slice_2.unlink()
    if layout == "hard link":
        slice_2.hardlink_to(kaggle_tree / "CASE_1" / "CASE_1_2_mask.tif")
    else:
        slice_2.symlink_to(kaggle_tree / "CASE_1" / "CASE_1_2_mask.tif")
        (tmp_path / "view").mkdir()
        (pred / "CASE_1").rename(tmp_path / "view" / "CASE_1")
        (pred / "CASE_1").symlink_to(tmp_path / "view" / "CASE_1")
    out = tmp_path / "report"
    _assert_error(
        ["evaluate", "--pred", str(pred), "--truth", str(kaggle_tree), "-o", str(out)],
        capsys,
        f"the prediction of case CASE_1 ({slice_2}) is its truth {kaggle_tree / 'CASE_1' / 'CASE_1_2_mask.tif'} (a "
        "link?)",
        out,
    )


def test_a_prediction_slice_linked_to_another_cases_truth_is_refused(
    kaggle_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A predicted mask slice that is a link to another case's truth slice would score that truth as a prediction
    (a copy script's off-by-one): refused, naming whose truth it is."""
    pred = _shifted_predictions(kaggle_tree, tmp_path / "pred")
    slice_2 = pred / "CASE_1" / "CASE_1_2_mask.tif"
    slice_2.unlink()
    slice_2.symlink_to(kaggle_tree / "CASE_2" / "CASE_2_2_mask.tif")
    out = tmp_path / "report"
    _assert_error(
        ["evaluate", "--pred", str(pred), "--truth", str(kaggle_tree), "-o", str(out)],
        capsys,
        f"the prediction of case CASE_1 ({slice_2}) is the truth of case CASE_2 "
        f"{kaggle_tree / 'CASE_2' / 'CASE_2_2_mask.tif'} (a link?)",
        out,
    )


def test_corrupt_case_writes_nothing(kaggle_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = _shifted_predictions(kaggle_tree, tmp_path / "pred")
    (pred / "CASE_2" / "CASE_2_3_mask.tif").write_bytes(b"II*\x00garbage")
    out = tmp_path / "report"
    _assert_error(
        ["evaluate", "--pred", str(pred), "--truth", str(kaggle_tree), "-o", str(out)], capsys, "CASE_2_3_mask.tif", out
    )


def test_console_script_help_and_error() -> None:
    exe = [sys.executable, "-m", "flairseg.cli"]
    help_run = subprocess.run([*exe, "--help"], capture_output=True, text=True, check=False)
    assert help_run.returncode == 0 and "evaluate" in help_run.stdout and "preprocess" in help_run.stdout
    bad = subprocess.run(
        [*exe, "evaluate", "--pred", "/nonexistent", "--truth", "/nonexistent", "-o", "/tmp/x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("flairseg: error:") and "Traceback" not in bad.stderr


def test_label_map_predictions_count_every_label_as_foreground(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import nibabel as nib

    truth = np.zeros((8, 8, 4), np.uint8)
    truth[2:6, 2:6, 1:3] = 1
    labels = truth.copy()
    labels[2:4, 2:6, 1:3] = 4  # BraTS-like labels 1 and 4: whole tumour as the truth's nonzero voxels are
    for folder, volume in (("truth", truth), ("pred", labels)):
        (tmp_path / folder).mkdir()
        nib.save(nib.Nifti1Image(volume, np.diag([0.9, 0.9, 3.0, 1.0])), tmp_path / folder / "P01_mask.nii.gz")
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"), "-o", str(tmp_path / "r")]
    code, _, err = _run([*args, "--quiet"], capsys)
    assert code == 0, err
    row = next(csv.DictReader((tmp_path / "r" / "metrics.csv").open()))
    assert float(row["dice"]) == 1.0


@pytest.mark.parametrize("value", [-1.0, 0.3, 2.5])
def test_a_truth_mask_follows_the_rule_of_a_prediction(
    value: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Negative or fractional truth values are refused as they are in a prediction, not scored as foreground."""
    import nibabel as nib

    mask = np.zeros((8, 8, 4), np.float32)
    mask[2:6, 2:6, 1:3] = 1
    for folder, volume in (("truth", np.where(mask > 0, value, 0).astype(np.float32)), ("pred", mask)):
        (tmp_path / folder).mkdir()
        nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / folder / "P01_mask.nii.gz")
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"), "-o", str(tmp_path / "r")]
    code, _, err = _run([*args, "--quiet"], capsys)
    shown = ", ".join(f"{v:g}" for v in sorted([0, value]))
    expected = f"flairseg: error: case P01: the truth P01_mask.nii.gz holds the values {shown}, not 0 and positive"
    assert code == 1 and err.startswith(expected) and not (tmp_path / "r").exists()


def _nifti_predictions(root: Path) -> tuple[Path, Path]:
    """A truth tree and a prediction tree of one NIfTI mask each."""
    import nibabel as nib

    truth = np.zeros((8, 8, 4), np.uint8)
    truth[2:6, 2:6, 1:3] = 1
    for folder in ("truth", "pred"):
        (root / folder).mkdir(parents=True)
        nib.save(nib.Nifti1Image(truth, np.eye(4)), root / folder / "P01_mask.nii.gz")
    return root / "truth", root / "pred"


@pytest.mark.parametrize("layout", ["kaggle", "nifti"])
def test_each_prediction_file_is_read_once(
    kaggle_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    """The values that refuse a probability map come from the read that scores the prediction."""
    from collections import Counter

    from flairseg import kaggle, volumes

    if layout == "kaggle":
        truth, pred = kaggle_tree, _shifted_predictions(kaggle_tree, tmp_path / "pred")
    else:
        truth, pred = _nifti_predictions(tmp_path / "nifti")
    module, name = (kaggle, "_read_tiff") if layout == "kaggle" else (volumes, "_load_nifti")
    reads: Counter[Path] = Counter()
    reader = getattr(module, name)

    def counted(path: Path) -> object:
        reads[Path(path)] += 1
        return reader(path)

    monkeypatch.setattr(module, name, counted)
    code, _, err = _run(["evaluate", "--pred", str(pred), "--truth", str(truth), "-o", str(tmp_path / "r")], capsys)
    assert code == 0, err
    predictions = [path for path in reads if pred in path.parents]
    assert predictions and all(reads[path] == 1 for path in predictions)


def test_a_kaggle_prediction_is_not_scored_against_a_volume_truth(
    kaggle_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """TIFF slices have no place in the world: against a NIfTI truth of their shape, their voxels would pair by array
    index whatever the volume's orientation, so the pair is refused."""
    import nibabel as nib

    pred = _shifted_predictions(kaggle_tree, tmp_path / "pred")
    truth = read_case(kaggle_tree / "CASE_1")
    (tmp_path / "volumes").mkdir()
    volume = truth.mask.transpose(2, 1, 0).astype(np.uint8)  # the TIFFs' shape in NIfTI's axis order
    nib.save(nib.Nifti1Image(volume, np.diag([-1.0, 1.0, 3.0, 1.0])), tmp_path / "volumes" / "CASE_1_mask.nii.gz")
    shutil.rmtree(pred / "CASE_0")
    shutil.rmtree(pred / "CASE_2")
    out = tmp_path / "report"
    _assert_error(
        ["evaluate", "--pred", str(pred), "--truth", str(tmp_path / "volumes"), "-o", str(out)],
        capsys,
        f"case CASE_1: the prediction {pred / 'CASE_1'} is Kaggle TIFF slices and its truth "
        f"{tmp_path / 'volumes' / 'CASE_1_mask.nii.gz'} a NIfTI volume, whose grids cannot be compared; predict from "
        "images in the truth's layout and score that",
        out,
    )


def test_a_partly_labelled_data_folder_is_the_truth_of_its_labelled_cases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--truth data` with the data folder itself, images beside their masks and one image (B) without a mask: A is
    scored, and B's prediction is noted as having no truth."""
    import nibabel as nib

    mask = np.zeros((8, 8, 4), np.uint8)
    mask[2:6, 2:6, 1:3] = 1
    for folder, names in (("data", ("A", "A_mask", "B")), ("pred", ("A_mask", "B_mask"))):
        (tmp_path / folder).mkdir()
        for name in names:
            nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / folder / f"{name}.nii.gz")
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "data"), "-o", str(tmp_path / "r")]
    code, out, err = _run([*args, "--quiet", "--no-figures"], capsys)
    assert code == 0, err
    assert [row["case_id"] for row in csv.DictReader((tmp_path / "r" / "metrics.csv").open())] == ["A"]
    assert out.startswith("1 cases: Dice mean 1.0000")
    assert err == "note: 1 predicted cases have no truth and were skipped\n"


def test_a_prediction_stored_in_another_voxel_order_is_scored_on_its_truth_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A prediction holding the truth's voxels stored right to left (its x axis reversed, the affine to match: the
    same grid in the world, as FSL or ITK tools may write it) is the truth's grid: its corners compare where reading
    puts them, not in stored order; a real shift is still refused."""
    import nibabel as nib

    mask = np.zeros((32, 32, 4), np.uint8)
    mask[4:12, 10:20, 1:3] = 1
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    reversed_x = affine.copy()
    reversed_x[0] = [-1.0, 0.0, 0.0, 31.0]
    for folder, data, grid in (("truth", mask, affine), ("pred", mask[::-1].copy(), reversed_x)):
        (tmp_path / folder).mkdir()
        nib.save(nib.Nifti1Image(data, grid), tmp_path / folder / "A_mask.nii.gz")
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"), "--quiet"]
    code, _, err = _run([*args, "-o", str(tmp_path / "r")], capsys)
    assert code == 0, err
    assert float(next(csv.DictReader((tmp_path / "r" / "metrics.csv").open()))["dice"]) == 1.0
    reversed_x[0, 3] = 30.0  # one voxel off
    nib.save(nib.Nifti1Image(mask[::-1].copy(), reversed_x), tmp_path / "pred" / "A_mask.nii.gz")
    _assert_error(
        [*args, "-o", str(tmp_path / "r2")], capsys, "lies up to 1.00 mm away from its truth", tmp_path / "r2"
    )
