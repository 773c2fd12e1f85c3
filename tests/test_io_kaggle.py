"""Kaggle TIFF case folders: reading, slice order, writing back, and every bad input."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from synthetic import phantom, write_kaggle_case
from flairseg.errors import InputError
from flairseg.io import case_id_of, check_case, find_cases, index_cases, read_case, read_label, write_mask
from flairseg.outputs import PredictionFolder
from flairseg.kaggle import read_kaggle_case


def test_reads_slices_in_numeric_order(tmp_path: Path) -> None:
    image, mask = phantom(slices=12)
    image[:, 0, 0, 0] = np.arange(12)  # slice index stamped into a pixel
    folder = write_kaggle_case(tmp_path, "CASE", image, mask)
    case = read_case(folder)
    assert case.case_id == "CASE"
    assert case.image.shape == (12, 64, 64, 3) and case.image.dtype == np.uint8
    np.testing.assert_array_equal(case.image[:, 0, 0, 0], np.arange(12))  # 1, 2, ..., 10, 11, 12, not 1, 10, 11, 12, 2
    np.testing.assert_array_equal(case.mask, mask)
    assert case.geometry.slice_names[9] == "CASE_10.tif"
    assert case.geometry.spacing is None


def test_single_channel_slices(tmp_path: Path) -> None:
    image, mask = phantom(slices=4)
    folder = write_kaggle_case(tmp_path, "GREY", image[..., 1], mask)
    case = read_case(folder)
    assert case.image.shape == (4, 64, 64, 1)


def test_slices_stored_plane_by_plane_read_as_those_stored_pixel_by_pixel(tmp_path: Path) -> None:
    """A TIFF whose channels are stored as planes (PlanarConfiguration "separate") decodes as (channels, H, W); read
    as it is, its 3 planes would be the rows and its rows the channels."""
    image, mask = phantom(slices=3)
    image, mask = image[:, :48], mask[:, :48]  # 48 rows of 64 columns: a transposed read would show
    pixel_by_pixel = write_kaggle_case(tmp_path / "contig", "CASE", image, mask)
    plane_by_plane = tmp_path / "planar" / "CASE"
    plane_by_plane.mkdir(parents=True)
    for k in range(3):
        label = np.stack([mask[k].astype(np.uint8) * 255] * 3)  # an RGB mask, also plane by plane
        for name, planes in ((f"CASE_{k + 1}.tif", np.moveaxis(image[k], -1, 0)), (f"CASE_{k + 1}_mask.tif", label)):
            tifffile.imwrite(plane_by_plane / name, planes, planarconfig="separate", photometric="rgb")
    expected, case = read_case(pixel_by_pixel), read_case(plane_by_plane)
    assert case.image.shape == (3, 48, 64, 3)
    np.testing.assert_array_equal(case.image, expected.image)
    np.testing.assert_array_equal(case.mask, expected.mask)


def test_sample_case_is_real_and_complete(sample_case: Path) -> None:
    case = read_case(sample_case, masks="required")
    assert case.image.shape == (20, 256, 256, 3)
    assert case.mask.sum() == 7112
    brain = read_label(case, "_brain")
    assert brain is not None and brain.shape == (20, 256, 256) and brain.any()
    assert not (case.mask & ~brain).sum() > 0.05 * case.mask.sum()  # tumour lies (almost all) inside the brain


def test_write_mask_mirrors_input_names(tmp_path: Path) -> None:
    image, mask = phantom(slices=3)
    case = read_case(write_kaggle_case(tmp_path / "in", "CASE", image, mask))
    written = write_mask(case, mask, tmp_path / "out" / "CASE")
    assert sorted(p.name for p in written.iterdir()) == ["CASE_1_mask.tif", "CASE_2_mask.tif", "CASE_3_mask.tif"]
    again = read_case(written, masks="only")
    np.testing.assert_array_equal(again.mask, mask)
    assert set(np.unique(tifffile.imread(written / "CASE_1_mask.tif"))) <= {0, 255}
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_find_cases_in_tree(kaggle_tree: Path) -> None:
    assert [p.name for p in find_cases(kaggle_tree)] == ["CASE_0", "CASE_1", "CASE_2"]
    assert find_cases(kaggle_tree / "CASE_1") == [kaggle_tree / "CASE_1"]


def test_a_stray_slice_above_case_folders_is_refused_not_taken_for_the_whole_tree(kaggle_tree: Path) -> None:
    """A figure saved at the top of a tree would make the tree one case and hide its case folders; a case folder
    with a folder of notes beside its slices is still one case."""
    (kaggle_tree / "CASE_1" / "notes").mkdir()
    assert find_cases(kaggle_tree / "CASE_1") == [kaggle_tree / "CASE_1"]
    tifffile.imwrite(kaggle_tree / "overview.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError) as info:
        find_cases(kaggle_tree)
    assert str(info.value) == (
        f"{kaggle_tree} holds both image slices (overview.tif) and case folders (CASE_0/), so it is neither one case "
        "nor a folder of cases; move the stray slices out of it, or point flairseg at one case folder"
    )


# ---- bad inputs: each a one-line InputError -------------------------------------------------


def _case(tmp_path: Path, slices: int = 4) -> Path:
    image, mask = phantom(slices=slices)
    return write_kaggle_case(tmp_path, "CASE", image, mask)


def _error(path: Path, **kwargs: object) -> str:
    with pytest.raises(InputError) as info:
        read_case(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_folder(tmp_path: Path) -> None:
    assert "does not exist" in _error(tmp_path / "nope")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "empty" in _error(tmp_path / "empty")
    with pytest.raises(InputError, match="holds no cases"):
        find_cases(tmp_path / "empty")


def test_images_without_required_masks(tmp_path: Path) -> None:
    image, _ = phantom(slices=3)
    folder = write_kaggle_case(tmp_path, "CASE", image, None)
    assert "no _mask.tif masks" in _error(folder, masks="required")
    assert read_case(folder).mask is None  # optional: fine


def test_mask_count_mismatch(tmp_path: Path) -> None:
    folder = _case(tmp_path)
    (folder / "CASE_3_mask.tif").unlink()
    assert "3 masks for 4 image slices" in _error(folder)


def test_mask_size_mismatch(tmp_path: Path) -> None:
    folder = _case(tmp_path)
    tifffile.imwrite(folder / "CASE_2_mask.tif", np.zeros((32, 32), np.uint8))
    assert "32x32 but the images are 64x64" in _error(folder)


def test_truncated_tiff(tmp_path: Path) -> None:
    folder = _case(tmp_path)
    data = (folder / "CASE_2.tif").read_bytes()
    (folder / "CASE_2.tif").write_bytes(data[: len(data) // 3])  # its header intact, most of its pixels gone
    assert "but its header places image data up to byte" in _error(folder)


def test_non_image_named_tif(tmp_path: Path) -> None:
    folder = _case(tmp_path)
    (folder / "CASE_3.tif").write_text("this is a note, not an image\n")
    assert "CASE_3.tif" in _error(folder)


def test_mixed_slice_sizes(tmp_path: Path) -> None:
    folder = _case(tmp_path)
    tifffile.imwrite(folder / "CASE_4.tif", np.zeros((48, 48, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(folder / "CASE_4_mask.tif", np.zeros((48, 48), np.uint8))
    assert "mixed slice sizes" in _error(folder)


def test_slice_number_gap(tmp_path: Path) -> None:
    folder = _case(tmp_path)
    for suffix in ("", "_mask"):
        (folder / f"CASE_2{suffix}.tif").rename(folder / f"CASE_7{suffix}.tif")
    assert "without gaps" in _error(folder)


def test_duplicate_slice_number(tmp_path: Path) -> None:
    folder = _case(tmp_path)
    shutil.copy(folder / "CASE_2.tif", folder / "CASE_02.tif")
    assert "appears twice" in _error(folder)


def test_nan_pixels_in_float_tiff(tmp_path: Path) -> None:
    folder = tmp_path / "FLOAT"
    folder.mkdir()
    for k in (1, 2):
        plane = np.ones((16, 16), np.float32)
        plane[3, 3] = np.nan if k == 2 else 1
        tifffile.imwrite(folder / f"FLOAT_{k}.tif", plane)
    assert "NaN or infinite" in _error(folder)


def test_multi_page_masks_are_refused_from_their_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image, mask = phantom(slices=3)
    folder = write_kaggle_case(tmp_path, "CASE", image, mask)
    tifffile.imwrite(folder / "CASE_2_mask.tif", np.zeros((50, 64, 64), np.uint8), compression="zlib")
    monkeypatch.setattr(tifffile, "imread", None)  # nothing may be decoded
    with pytest.raises(InputError, match=r"CASE_2_mask.tif holds 50 pages \(images\); a slice is one page"):
        read_kaggle_case(folder, masks="required")


def test_read_kaggle_case_only_masks(tmp_path: Path) -> None:
    folder = _case(tmp_path)
    case = read_kaggle_case(folder, masks="only")
    assert case.image is None and case.mask.shape == (4, 64, 64)
    assert case.geometry.slice_names[0] == "CASE_1.tif"


def test_outputs_get_usual_permissions(tmp_path: Path) -> None:
    import os

    image, mask = phantom(slices=2)
    case = read_case(write_kaggle_case(tmp_path / "in", "CASE", image, mask))
    written = write_mask(case, mask, tmp_path / "out" / "CASE")
    umask = os.umask(0)
    os.umask(umask)
    assert (written.stat().st_mode & 0o777) == 0o777 & ~umask
    assert ((written / "CASE_1_mask.tif").stat().st_mode & 0o777) == 0o666 & ~umask


def test_case_ids_are_resolved_names(kaggle_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # "." or "x/.." as the input must not give an empty or ".." case id, which would escape the output folder
    monkeypatch.chdir(kaggle_tree / "CASE_1")
    assert read_case(Path(".")).case_id == "CASE_1" and case_id_of(Path(".")) == "CASE_1"
    assert read_case(Path("../CASE_1/../CASE_1"), masks="only").case_id == "CASE_1"


@pytest.mark.parametrize("case_id", ["", ".", "..", "../evil", "a/b", "a\\b"])
def test_case_ids_that_could_escape_the_output_are_refused(kaggle_tree: Path, case_id: str) -> None:
    case = read_case(kaggle_tree / "CASE_0")
    with pytest.raises(InputError, match="cannot name an output"):
        PredictionFolder(kaggle_tree / "out").mask(dataclasses.replace(case, case_id=case_id))


def test_two_mask_cases_of_one_id_are_refused_naming_both(tmp_path: Path) -> None:
    """A mask tree (shape, evaluate) holding a Kaggle case folder and a ``_mask`` volume of the same case, refused by
    the rule every tree command uses (:func:`index_cases`)."""
    import nibabel as nib

    image, mask = phantom(slices=3, size=32)
    folder = write_kaggle_case(tmp_path / "masks", "CASE_A", image, mask)
    volume = tmp_path / "masks" / "CASE_A_mask.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), np.eye(4)), volume)
    with pytest.raises(InputError, match="two inputs have the case id 'CASE_A'") as refused:
        index_cases(tmp_path / "masks", masks="only")
    assert f"({folder} and {volume}," in str(refused.value)
    volume.unlink()
    assert index_cases(tmp_path / "masks", masks="only") == {"CASE_A": folder}


def test_a_prediction_runs_own_folders_are_not_mask_cases(tmp_path: Path) -> None:
    """A mask tree that is a prediction run (its report is flairseg's) is its masks: ``probabilities`` (TIFFs, like a
    case folder) and ``stripped`` are the run's folders, which predict never lets a case take; in another mask tree
    a case folder of that name is a case."""
    from synthetic import make_marked_folder

    image, mask = phantom(slices=3, size=32)
    out = tmp_path / "out"
    case = write_kaggle_case(out, "CASE_A", image, mask)
    write_kaggle_case(out / "stripped", "CASE_A", image, None)
    (out / "probabilities").mkdir()
    tifffile.imwrite(out / "probabilities" / "CASE_A.tif", mask[0].astype(np.uint8))
    write_kaggle_case(tmp_path / "masks", "probabilities", image, mask)
    make_marked_folder(out / "report")
    assert index_cases(out, masks="only") == {"CASE_A": case}
    assert list(index_cases(tmp_path / "masks", masks="only")) == ["probabilities"]


def test_hidden_files_and_folders_are_never_cases(tmp_path: Path) -> None:
    """Hidden volumes (``.x.nii.gz``, macOS's ``._`` copies) are skipped as hidden folders are, in every kind of
    tree: a case named so would take the name of flairseg's own files (its marker, locks, temporaries)."""
    import nibabel as nib

    image, mask = phantom(slices=3, size=32)
    case = write_kaggle_case(tmp_path / "in", "CASE_A", image, mask)
    write_kaggle_case(tmp_path / "in", ".CASE_B", image, mask)
    for name in (".flairseg.nii.gz", "._CASE_C.nii.gz", "._CASE_C_mask.nii.gz", "CASE_C.nii.gz"):
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), np.eye(4)), tmp_path / "in" / name)
    volume = tmp_path / "in" / "CASE_C.nii.gz"
    assert index_cases(tmp_path / "in") == {"CASE_A": case, "CASE_C": volume}
    assert index_cases(tmp_path / "in", masks="only") == {"CASE_A": case, "CASE_C": volume}
    with pytest.raises(InputError, match="case id '.flairseg' is a hidden name"):
        index_cases(tmp_path / "in" / ".flairseg.nii.gz")


def test_hidden_slices_of_a_kaggle_case_are_never_read(tmp_path: Path) -> None:
    """macOS's ``._`` copies of a case's slices (AppleDouble files named ``._<CASE>_<k>.tif``) are no slices: the
    case reads as its own slices, not as slices numbered twice."""
    image, mask = phantom(slices=3, size=32)
    case = write_kaggle_case(tmp_path / "in", "CASE_A", image, mask)
    for path in sorted(case.iterdir()):
        (case / f"._{path.name}").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    read = read_case(case)
    assert read.image.shape[0] == 3 and read.mask.sum() == (mask != 0).sum()
    assert read.geometry.slice_names == ("CASE_A_1.tif", "CASE_A_2.tif", "CASE_A_3.tif")


def test_slice_sizes_are_checked_from_the_headers_in_the_words_reading_uses(tmp_path: Path) -> None:
    """check_case refuses a mask or an image slice of another size than the case's images before any slice is
    decoded, as reading it does; a mask case (masks="only") of mixed sizes too."""
    folder = _case(tmp_path)
    tifffile.imwrite(folder / "CASE_2_mask.tif", np.zeros((32, 32), np.uint8))
    with pytest.raises(InputError) as info:
        check_case(folder)
    assert str(info.value) == _error(folder) == f"{folder / 'CASE_2_mask.tif'} is 32x32 but the images are 64x64"
    with pytest.raises(InputError) as info:
        check_case(folder, masks="only")
    expected = f"{folder}: mixed slice sizes ((64, 64) and (32, 32) in CASE_2_mask.tif)"
    assert str(info.value) == _error(folder, masks="only") == expected
    tifffile.imwrite(folder / "CASE_3.tif", np.zeros((48, 48, 3), np.uint8), photometric="rgb")
    with pytest.raises(InputError) as info:
        check_case(folder, masks="ignore")
    expected = f"{folder}: mixed slice sizes or channel counts ((64, 64, 3) and (48, 48, 3) in CASE_3.tif)"
    assert str(info.value) == _error(folder, masks="ignore") == expected
