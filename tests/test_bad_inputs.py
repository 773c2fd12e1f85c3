"""The catalogue of bad inputs: each one ends in exactly the documented one-line message, exit 1 (2 for a command
line the parser cannot take), nothing written.

docs/bad-inputs.md is made from this catalogue (``python tests/test_bad_inputs.py > docs/bad-inputs.md``)
and a test checks that it is current. ``TMP`` in a message stands for the folder the input lies in.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import make_marked_folder, phantom, with_nan_pixel, write_kaggle_case  # noqa: E402
from flairseg.cli import main  # noqa: E402
from flairseg.checkpoint import save_model  # noqa: E402
from flairseg.config import ModelConfig, PreprocessConfig  # noqa: E402
from flairseg.model import UNet  # noqa: E402


@dataclass(frozen=True)
class BadInput:
    name: str
    what: str  # the mistake, in a user's words
    make: Callable[[Path], list[str]]  # builds the input under TMP and returns the command's arguments
    message: str  # the exact message after "<prog>: error: ", TMP for the folder
    prog: str = "flairseg"  # who speaks: "flairseg", or "flairseg <command>" for a command line it cannot parse
    status: int = 1  # the exit status: 2 for a command line it cannot parse

    @property
    def line(self) -> str:
        return f"{self.prog}: error: {self.message}"


def _case(tmp: Path, name: str = "CASE", slices: int = 3, masks: bool = True) -> Path:
    image, mask = phantom(slices=slices, size=32)
    return write_kaggle_case(tmp / "in", name, image, mask if masks else None)


def _predict(tmp: Path, source: Path | str, *extra: str) -> list[str]:
    return ["predict", "-i", str(source), "-o", str(tmp / "out"), "--quiet", *extra]


def _truncated_tiff(tmp: Path) -> list[str]:
    case = _case(tmp)
    (case / "CASE_2.tif").write_bytes((case / "CASE_2.tif").read_bytes()[:100])
    return _predict(tmp, case)


def _text_as_tiff(tmp: Path) -> list[str]:
    case = _case(tmp)
    (case / "CASE_2.tif").write_text("not an image")
    return _predict(tmp, case)


def _mixed_sizes(tmp: Path) -> list[str]:
    case = _case(tmp)
    tifffile.imwrite(case / "CASE_2.tif", np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    return _predict(tmp, case)


def _slice_gap(tmp: Path) -> list[str]:
    case = _case(tmp)
    (case / "CASE_2.tif").unlink()
    (case / "CASE_2_mask.tif").unlink()
    return _predict(tmp, case)


def _duplicate_number(tmp: Path) -> list[str]:
    case = _case(tmp)
    shutil.copy(case / "CASE_2.tif", case / "CASE_02.tif")
    return _predict(tmp, case)


def _nan_pixels(tmp: Path) -> list[str]:
    case = _case(tmp, masks=False)
    with_nan_pixel(case / "CASE_2.tif")
    return _predict(tmp, case)


def _missing_masks(tmp: Path) -> list[str]:
    case = _case(tmp)
    (case / "CASE_3_mask.tif").unlink()
    return _predict(tmp, case)


def _mask_size(tmp: Path) -> list[str]:
    case = _case(tmp)
    tifffile.imwrite(case / "CASE_2_mask.tif", np.zeros((16, 16), np.uint8))
    return _predict(tmp, case)


def _nifti(tmp: Path, data: np.ndarray, affine: np.ndarray | None = None, name: str = "vol.nii.gz") -> Path:
    (tmp / "in").mkdir(exist_ok=True)
    path = tmp / "in" / name
    nib.save(nib.Nifti1Image(data, np.diag([0.9, 0.9, 3.0, 1.0]) if affine is None else affine), path)
    return path


def _four_d(tmp: Path) -> list[str]:
    return _predict(tmp, _nifti(tmp, np.zeros((8, 8, 4, 2), np.float32)))


def _edit_header(path: Path, offset: int, value: bytes) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + len(value)] = value
    path.write_bytes(bytes(data))


def _zero_spacing(tmp: Path) -> list[str]:
    path = _nifti(tmp, np.ones((8, 8, 4), np.float32), name="vol.nii")
    _edit_header(path, 88, np.float32(0).tobytes())  # pixdim[3]
    _edit_header(path, 252, np.int16(0).tobytes() * 2)  # qform_code, sform_code: the spacing comes from pixdim alone
    return _predict(tmp, path)


def _nan_voxels(tmp: Path) -> list[str]:
    data = np.ones((8, 8, 4), np.float32)
    data[1, 2, 3] = np.nan
    return _predict(tmp, _nifti(tmp, data))


def _singular_affine(tmp: Path) -> list[str]:
    path = _nifti(tmp, np.ones((8, 8, 4), np.float32), name="vol.nii")
    data = path.read_bytes()
    _edit_header(path, 312, data[296:312])  # srow_z = srow_y: the sform maps two voxel axes onto one
    _edit_header(path, 252, np.int16(0).tobytes() + np.int16(1).tobytes())  # no qform, the sform in use
    return _predict(tmp, path)


def _text_as_nifti(tmp: Path) -> list[str]:
    (tmp / "in").mkdir()
    (tmp / "in" / "vol.nii").write_text("hello")
    return _predict(tmp, tmp / "in" / "vol.nii")


def _truncated_gzip(tmp: Path) -> list[str]:
    path = _nifti(tmp, np.ones((32, 32, 8), np.float32))
    path.write_bytes(path.read_bytes()[:200])
    return _predict(tmp, path)


def _huge_dimensions(tmp: Path) -> list[str]:
    path = _nifti(tmp, np.ones((8, 8, 4), np.uint8), name="vol.nii")
    header = bytearray(path.read_bytes())
    # dim[1..3] = 30000 each: 27 T voxels in a file of a few hundred bytes
    header[42:48] = (30000).to_bytes(2, "little") * 3
    path.write_bytes(bytes(header))
    return _predict(tmp, path)


def _short_nifti(tmp: Path) -> list[str]:
    path = _nifti(tmp, np.ones((32, 32, 8), np.float32), name="vol.nii")
    path.write_bytes(path.read_bytes()[:5000])
    return _predict(tmp, path)


def _wrong_dtype(tmp: Path) -> list[str]:
    return _predict(tmp, _nifti(tmp, np.zeros((8, 8, 4), np.complex64)))


def _file_not_a_case(tmp: Path) -> list[str]:
    (tmp / "in").mkdir()
    (tmp / "in" / "notes.txt").write_text("x")
    return _predict(tmp, tmp / "in" / "notes.txt")


def _empty_folder(tmp: Path) -> list[str]:
    (tmp / "in").mkdir()
    return _predict(tmp, tmp / "in")


def _folder_without_cases(tmp: Path) -> list[str]:
    (tmp / "in" / "sub").mkdir(parents=True)
    (tmp / "in" / "readme.txt").write_text("x")
    return _predict(tmp, tmp / "in")


def _output_exists(tmp: Path) -> list[str]:
    case = _case(tmp)
    (tmp / "report").mkdir()
    return ["evaluate", "--pred", str(case), "--truth", str(case), "-o", str(tmp / "report")]


def _output_inside_input(tmp: Path) -> list[str]:
    case = _case(tmp)
    return ["preprocess", "-i", str(tmp / "in"), "-o", str(case / "prep"), "--quiet"]


def _no_prediction(tmp: Path) -> list[str]:
    _case(tmp, "CASE_A")
    _case(tmp, "CASE_B")
    pred = tmp / "pred"
    shutil.copytree(tmp / "in" / "CASE_A", pred / "CASE_A")
    return ["evaluate", "--pred", str(pred), "--truth", str(tmp / "in"), "-o", str(tmp / "out")]


def _zero_checkpoint(tmp: Path) -> Path:
    """A small checkpoint with all-zero weights: its bytes, hence its sha256, never change."""
    model = UNet(features=2, batch_norm=True)
    for parameter in model.parameters():
        torch.nn.init.zeros_(parameter)
    return save_model(
        model, ModelConfig(features=2, batch_norm=True), PreprocessConfig(), tmp / "model" / "m", task="abnormality"
    )


def _unknown_model(tmp: Path) -> list[str]:
    return _predict(tmp, _case(tmp), "--model", "abnormality-lgg-cp")


def _corrupt_weights(tmp: Path) -> list[str]:
    model = _zero_checkpoint(tmp)
    tensors = model.with_suffix(".safetensors")
    data = bytearray(tensors.read_bytes())
    data[-10] ^= 0xFF
    tensors.write_bytes(bytes(data))
    return _predict(tmp, _case(tmp), "--model", str(model))


def _pickle_weights(tmp: Path) -> list[str]:
    model = _zero_checkpoint(tmp)
    model.with_suffix(".safetensors").write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    return _predict(tmp, _case(tmp), "--model", str(model))


def _wrong_task(tmp: Path) -> list[str]:
    return _predict(tmp, _case(tmp), "--model", str(_zero_checkpoint(tmp)), "--task", "brain")


def _no_cuda(tmp: Path) -> list[str]:
    return _predict(tmp, _case(tmp), "--device", "cuda")


def _strip_without_brain(tmp: Path) -> list[str]:
    return _predict(tmp, _case(tmp), "--strip")


def _train(tmp: Path, *extra: str) -> list[str]:
    for index in range(3):
        _case(tmp, f"CASE_{index}", slices=4)
    return [
        "train",
        "--data",
        str(tmp / "in"),
        "-o",
        str(tmp / "run"),
        "--size",
        "32",
        "--features",
        "4",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "1",
        "--folds",
        "3",
        "--validation-cases",
        "1",
        "--quiet",
        *extra,
    ]


def _unknown_setting(tmp: Path) -> list[str]:
    return _train(tmp, "--set", "warmup=100")


def _run_exists(tmp: Path) -> list[str]:
    argv = _train(tmp)
    (tmp / "run").mkdir()
    return argv


def _patch_too_large(tmp: Path) -> list[str]:
    return _train(tmp, "--set", "patch=64")


def _no_tumour(tmp: Path) -> list[str]:
    argv = _train(tmp)
    for mask in (tmp / "in").rglob("*_mask.tif"):
        tifffile.imwrite(mask, np.zeros((32, 32), np.uint8))
    return argv


def _shape_not_csv(tmp: Path) -> list[str]:
    return ["shape", "-i", str(_case(tmp)), "-o", str(tmp / "features.txt")]


def _unknown_feature(tmp: Path) -> list[str]:
    (tmp / "f.csv").write_text("case_id,bevr\nTCGA_XX_0001_20000101,0.5\n")
    (tmp / "c.csv").write_text("Patient,RNASeqCluster\nTCGA_XX_0001,1\n")
    return [
        "associate",
        "--features",
        str(tmp / "f.csv"),
        "--clinical",
        str(tmp / "c.csv"),
        "-o",
        str(tmp / "out"),
        "--hypothesis",
        "sphericity:RNASeqCluster",
    ]


def _clinical_without_ids(tmp: Path) -> list[str]:
    (tmp / "f.csv").write_text("case_id,bevr\nTCGA_XX_0001_20000101,0.5\n")
    (tmp / "c.csv").write_text("ID,RNASeqCluster\nTCGA_XX_0001,1\n")
    argv = ["associate", "--features", str(tmp / "f.csv"), "--clinical", str(tmp / "c.csv"), "-o", str(tmp / "out")]
    return [*argv, "--hypothesis", "bevr:RNASeqCluster"]


def _export_name(tmp: Path) -> list[str]:
    return ["export", "--onnx", "-o", str(tmp / "model.pt")]


def _gzip_not_nifti(tmp: Path) -> list[str]:
    (tmp / "in").mkdir()
    (tmp / "in" / "vol.nii.gz").write_bytes(gzip.compress(b"not a nifti header" * 30))
    return _predict(tmp, tmp / "in" / "vol.nii.gz")


def _train_over_its_data(tmp: Path) -> list[str]:
    image, mask = phantom(slices=3, size=32)
    write_kaggle_case(tmp / "project" / "data", "CASE", image, mask)
    return ["train", "--data", str(tmp / "project" / "data"), "-o", str(tmp / "project"), "--overwrite", "--quiet"]


def _train_over_its_init(tmp: Path) -> list[str]:
    _case(tmp)
    config = ModelConfig(features=4, depth=2, batch_norm=True)
    save_model(
        UNet(features=4, depth=2, batch_norm=True),
        config,
        PreprocessConfig(size=32),
        tmp / "old" / "best",
        task="abnormality",
    )
    return [
        "train",
        "--data",
        str(tmp / "in"),
        "-o",
        str(tmp / "old"),
        "--init",
        str(tmp / "old" / "best.json"),
        "--overwrite",
        "--quiet",
    ]


def _empty_output(tmp: Path) -> list[str]:
    _case(tmp)
    return ["evaluate", "--pred", str(tmp / "in"), "--truth", str(tmp / "in"), "-o", "", "--overwrite", "--quiet"]


def _train_over_its_config(tmp: Path) -> list[str]:
    _case(tmp)
    (tmp / "oldrun").mkdir()
    (tmp / "oldrun" / ".flairseg").write_text("")
    (tmp / "oldrun" / "recipe.json").write_text('{"epochs": 1}')
    return [
        "train",
        "--data",
        str(tmp / "in"),
        "-o",
        str(tmp / "oldrun"),
        "--config",
        str(tmp / "oldrun" / "recipe.json"),
        "--overwrite",
        "--quiet",
    ]


def _unmarked_run_folder(tmp: Path) -> list[str]:
    _case(tmp)
    (tmp / "myproj").mkdir()
    for name, text in (("config.json", "{}"), ("split.json", "{}"), ("thesis.tex", "years of work")):
        (tmp / "myproj" / name).write_text(text)
    return ["evaluate", "--pred", str(tmp / "in"), "--truth", str(tmp / "in"), "-o", str(tmp / "myproj"), "--overwrite"]


def _predict_over_manual_masks(tmp: Path) -> list[str]:
    case = _case(tmp)
    (tmp / "manual").mkdir()
    shutil.copytree(case, tmp / "manual" / "CASE")
    return [
        "predict",
        "-i",
        str(case),
        "-o",
        str(tmp / "manual"),
        "--model",
        str(_zero_checkpoint(tmp)),
        "--quiet",
        "--overwrite",
    ]


def _output_name_too_long(tmp: Path) -> list[str]:
    return ["shape", "-i", str(_case(tmp)), "-o", str(tmp / f"{'y' * 252}.csv"), "--quiet"]


def _foreign_folder(tmp: Path) -> list[str]:
    _case(tmp)
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.tex").write_text("years of work")
    return [
        "evaluate",
        "--pred",
        str(tmp / "in"),
        "--truth",
        str(tmp / "in"),
        "-o",
        str(tmp / "mine"),
        "--overwrite",
        "--quiet",
    ]


def _brats_case(tmp: Path, t1_shape: tuple[int, int, int] = (8, 8, 4)) -> Path:
    folder = tmp / "in" / "BraTS_1"
    folder.mkdir(parents=True)
    for name, shape in (("flair", (8, 8, 4)), ("t1", t1_shape), ("seg", (8, 8, 4))):
        data = np.zeros(shape, np.float32) if name == "seg" else np.random.default_rng(0).random(shape, np.float32)
        nib.save(nib.Nifti1Image(data, np.eye(4)), folder / f"BraTS_1_{name}.nii.gz")
    return folder


def _duplicate_ids(tmp: Path) -> list[str]:
    (tmp / "in").mkdir()
    data = np.random.default_rng(0).random((8, 8, 4), np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp / "in" / "vol.nii")
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp / "in" / "vol.nii.gz")
    return _predict(tmp, tmp / "in")


def _train_with(tmp: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(_case(tmp).parent), "-o", str(tmp / "run"), "--folds", "2", "--quiet", *extra]


def _resume_other_epochs(tmp: Path) -> list[str]:
    (tmp / "old").mkdir()
    (tmp / "old" / "config.json").write_text('{"epochs": 3}')
    return ["train", "--data", str(_case(tmp).parent), "-o", str(tmp / "old"), "--resume", "--epochs", "5", "--quiet"]


def _resume_from_another_init(tmp: Path) -> list[str]:
    import dataclasses
    import json

    from flairseg.config import TrainConfig
    from flairseg.data import Split, save_split

    data = _case(tmp).parent
    (tmp / "old").mkdir()
    (tmp / "old" / "config.json").write_text(json.dumps(dataclasses.asdict(TrainConfig())))
    save_split(Split("kfold", 5, 0, 0, ("CASE",), (), ()), tmp / "old" / "split.json")
    (tmp / "old" / "start.json").write_text(json.dumps({"init": str(tmp / "a" / "best.json"), "member": None}))
    save_model(UNet(), ModelConfig(), PreprocessConfig(), tmp / "b" / "best", task="abnormality")
    return ["train", "--data", str(data), "-o", str(tmp / "old"), "--resume", "--init", str(tmp / "b" / "best.json")]


def _prediction_off_its_truth(tmp: Path) -> list[str]:
    mask = np.zeros((8, 8, 4), np.uint8)
    mask[2:5, 2:5, 1:3] = 1
    for folder, shift in (("truth", 0.0), ("pred", 40.0)):
        (tmp / folder).mkdir()
        affine = np.diag([0.9, 0.9, 3.0, 1.0])
        affine[0, 3] = shift
        nib.save(nib.Nifti1Image(mask, affine), tmp / folder / "P01_mask.nii.gz")
    return ["evaluate", "--pred", str(tmp / "pred"), "--truth", str(tmp / "truth"), "-o", str(tmp / "out"), "--quiet"]


def _tiffs_declaring_a_huge_case(tmp: Path) -> list[str]:
    """Three tiny TIFFs whose headers declare 16000 x 16000 x 3 pixels each."""
    folder = tmp / "in" / "CASE"
    folder.mkdir(parents=True)
    for k in (1, 2, 3):
        path = folder / f"CASE_{k}.tif"
        tifffile.imwrite(path, np.zeros((8, 8, 3), np.uint8), photometric="rgb")
        with tifffile.TiffFile(path, mode="r+b") as tiff:
            tiff.pages[0].tags["ImageWidth"].overwrite(16000)
            tiff.pages[0].tags["ImageLength"].overwrite(16000)
    return _predict(tmp, folder, "--max-memory", "1G")


def _nifti_declaring_a_huge_volume(tmp: Path) -> list[str]:
    """A 1 kB .nii.gz whose header declares 600 x 600 x 600 voxels (within the voxel cap, far over the memory
    budget).
    """
    header = nib.Nifti1Header()
    header.set_data_shape((600, 600, 600))
    header.set_data_dtype(np.uint8)
    header.set_qform(np.diag([1.0, 1.0, 1.0, 1.0]), code=1)
    (tmp / "in").mkdir()
    with gzip.open(tmp / "in" / "big.nii.gz", "wb") as handle:
        handle.write(header.binaryblock + b"\0" * 4 + b"\0" * 1000)
    return _predict(tmp, tmp / "in" / "big.nii.gz", "--max-memory", "1G")


def _paper_brain_checkpoint(tmp: Path) -> Path:
    """A small brain-extraction checkpoint that windows its inputs the paper's way (paper-brain)."""
    config = ModelConfig(features=2, batch_norm=True)
    preprocess = PreprocessConfig(variant="paper-brain", size=32)
    return save_model(UNet(features=2, batch_norm=True), config, preprocess, tmp / "model" / "paperb", task="brain")


def _nifti_beyond_the_histogram(tmp: Path) -> list[str]:
    """A float NIfTI head scaled to 1e28: the paper window's 2-unit bins cannot count that range exactly."""
    head = phantom(slices=4, size=32)[0][..., 1].astype(np.float32) * np.float32(1e28)
    (tmp / "in").mkdir()
    nib.save(nib.Nifti1Image(head.transpose(2, 1, 0).copy(), np.eye(4)), tmp / "in" / "bright.nii.gz")
    return _predict(tmp, tmp / "in" / "bright.nii.gz", "--model", str(_paper_brain_checkpoint(tmp)))


def _multi_page_slices(tmp: Path) -> list[str]:
    """Slices of 300 compressed pages each (a few kB on disk, 20 MB each decoded)."""
    folder = tmp / "in" / "CASE"
    folder.mkdir(parents=True)
    for k in (1, 2, 3):
        tifffile.imwrite(folder / f"CASE_{k}.tif", np.zeros((300, 256, 256), np.uint8), compression="zlib")
    return _predict(tmp, folder)


def _standardisation_beyond_float32(tmp: Path) -> list[str]:
    """A checkpoint standardising with a mean of 1e308 and a std of 1e-320: finite doubles, not float32 numbers."""
    import dataclasses

    # written into the JSON: no PreprocessConfig takes these values
    preprocess = {**dataclasses.asdict(PreprocessConfig()), "mean": 1e308, "std": 1e-320}
    return _predict(tmp, _case(tmp), "--model", str(_tampered_checkpoint(tmp, "preprocess", preprocess)))


def _nan_weight(tmp: Path) -> list[str]:
    """A checkpoint with one NaN weight, saved with its own sha256 (the file is consistent, the model is not)."""
    model = UNet(features=2, batch_norm=True)
    with torch.no_grad():
        model.head.weight[0, 0, 0, 0] = float("nan")
    config = ModelConfig(features=2, batch_norm=True)
    path = save_model(model, config, PreprocessConfig(), tmp / "model" / "m", task="abnormality")
    return _predict(tmp, _case(tmp), "--model", str(path))


def _one_bad_case_of_three(tmp: Path) -> list[str]:
    """A slice whose header is sound but whose pixels are not: found only while decoding."""
    for name in ("CASE_A", "CASE_B", "CASE_C"):
        _case(tmp, name)
    with_nan_pixel(tmp / "in" / "CASE_B" / "CASE_B_2.tif")
    return _predict(tmp, tmp / "in", "--model", str(_zero_checkpoint(tmp)))


def _one_thin_case_of_three(tmp: Path) -> list[str]:
    """A case that reads but cannot be preprocessed (two slices; the port variant drops the end slices)."""
    for name, slices in (("CASE_A", 3), ("CASE_B", 2), ("CASE_C", 3)):
        _case(tmp, name, slices=slices)
    return _predict(tmp, tmp / "in", "--model", str(_zero_checkpoint(tmp)))


def _one_bad_header_of_three(tmp: Path) -> list[str]:
    for name in ("CASE_A", "CASE_B", "CASE_C"):
        _case(tmp, name)
    (tmp / "in" / "CASE_B" / "CASE_B_2.tif").write_bytes(b"II*\0" + b"\0" * 20)
    return _predict(tmp, tmp / "in", "--model", str(_zero_checkpoint(tmp)))


def _tampered_checkpoint(tmp: Path, key: str, value: object) -> Path:
    import json

    model = _zero_checkpoint(tmp)
    meta = json.loads(model.read_text())
    meta[key] = value
    model.write_text(json.dumps(meta))
    return model


def _onnx_off_its_graph(tmp: Path) -> list[str]:
    """An export whose metadata was given another size and stamped again (its record matches, its graph does not)."""
    import json

    import onnx

    from flairseg.export import export_onnx, stamped

    export_onnx(_zero_checkpoint(tmp), tmp / "m.onnx")
    exported = onnx.load(str(tmp / "m.onnx"))
    metadata = json.loads(exported.metadata_props[0].value)
    (tmp / "m.onnx").write_bytes(stamped(exported, {**metadata, "preprocess": {**metadata["preprocess"], "size": 64}}))
    return _predict(tmp, _case(tmp), "--model", str(tmp / "m.onnx"))


def _resume_leaking_split(tmp: Path) -> list[str]:
    import dataclasses
    import json

    from flairseg.config import TrainConfig
    from flairseg.data import Split, save_split

    data = _case(tmp).parent
    (tmp / "old").mkdir()
    (tmp / "old" / "config.json").write_text(json.dumps(dataclasses.asdict(TrainConfig())))
    save_split(Split("kfold", 5, 0, 0, ("CASE",), ("CASE",), ()), tmp / "old" / "split.json")
    return ["train", "--data", str(data), "-o", str(tmp / "old"), "--resume", "--quiet"]


def _dicom_series(tmp: Path, slices: int = 5) -> Path:
    from test_volumes import _write_dicom_series

    (tmp / "in").mkdir()
    _write_dicom_series(tmp / "in" / "S", np.zeros((slices, 6, 6)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    return tmp / "in" / "S"


def _edit_dicom(paths: list[Path], edit: Callable[[object], None]) -> None:
    import pydicom

    for path in paths:
        ds = pydicom.dcmread(path)
        edit(ds)
        ds.save_as(path)


def _dicom_zero_pixel_spacing(tmp: Path) -> list[str]:
    series = _dicom_series(tmp)
    _edit_dicom(sorted(series.iterdir()), lambda ds: setattr(ds, "PixelSpacing", [0, 0]))
    return _predict(tmp, series)


def _dicom_sagittal_slice(tmp: Path) -> list[str]:
    series = _dicom_series(tmp)
    _edit_dicom([series / "slice004.dcm"], lambda ds: setattr(ds, "ImageOrientationPatient", [0, 1, 0, 0, 0, 1]))
    return _predict(tmp, series)


def _dicom_other_pixel_spacing(tmp: Path) -> list[str]:
    series = _dicom_series(tmp)
    _edit_dicom([series / "slice004.dcm"], lambda ds: setattr(ds, "PixelSpacing", [2, 2]))
    return _predict(tmp, series)


def _dicom_slice_without_position_beside_a_good_case(tmp: Path) -> list[str]:
    series = _dicom_series(tmp)
    shutil.copytree(series, tmp / "in" / "A")
    _edit_dicom([series / "slice002.dcm"], lambda ds: delattr(ds, "ImagePositionPatient"))
    return _predict(tmp, tmp / "in")


def _raw_truncated_end_slice(tmp: Path) -> list[str]:
    """The last slice of a series written without the Part 10 preamble, under a name without .dcm, and truncated."""
    import pydicom

    series = _dicom_series(tmp)
    ds = pydicom.dcmread(series / "slice004.dcm")
    del ds.file_meta
    ds.preamble = None
    ds.save_as(series / "IM4", enforce_file_format=False, implicit_vr=True, little_endian=True)
    (series / "slice004.dcm").unlink()
    (series / "IM4").write_bytes((series / "IM4").read_bytes()[:-30])
    return _predict(tmp, series)


def _dicom_sheared_orientation(tmp: Path) -> list[str]:
    series = _dicom_series(tmp)
    sheared = [1, 0, 0, 0.5, 0.8660254, 0]  # the column direction 30 degrees off orthogonal to the row's
    _edit_dicom(sorted(series.iterdir()), lambda ds: setattr(ds, "ImageOrientationPatient", sheared))
    return _predict(tmp, series)


def _micrometre_voxels_beside_a_good_case(tmp: Path) -> list[str]:
    volume = np.ones((8, 8, 4), np.float32)
    _nifti(tmp, volume, name="good.nii.gz")
    _nifti(tmp, volume, np.diag([1e-6, 1e-6, 1e-6, 1.0]), name="tiny.nii.gz")
    return _predict(tmp, tmp / "in")


def _ids_differing_in_accent_composition(tmp: Path) -> list[str]:
    _case(tmp, "cafe\u0301")  # e and a combining acute accent, as macOS writes it
    _case(tmp, "caf\u00e9")  # the composed é
    return _predict(tmp, tmp / "in")


def _ids_differing_in_case(tmp: Path) -> list[str]:
    _case(tmp, "CASE_A")
    _case(tmp, "case_a")
    return _predict(tmp, tmp / "in")


def _volume_with_truth(tmp: Path) -> Path:
    """TMP/in/vol.nii.gz with its truth TMP/in/vol_mask.nii.gz beside it."""
    volume = _nifti(tmp, np.ones((16, 16, 4), np.float32))
    _nifti(tmp, np.ones((16, 16, 4), np.uint8), name="vol_mask.nii.gz")
    return volume


def _checkpoint_json_edited(tmp: Path) -> list[str]:
    """A user's checkpoint whose JSON threshold was changed by hand to a valid 0.999."""
    import json

    model = _zero_checkpoint(tmp)
    record = json.loads(model.read_text())
    record["recipe"] = {"threshold": 0.999}
    model.write_text(json.dumps(record))
    return _predict(tmp, _case(tmp), "--model", str(model))


def _mask_file_over_its_t1(tmp: Path) -> list[str]:
    """``--flair`` alone names a BraTS case's FLAIR; its T1 beside it is not read, but it is the case's."""
    flair = _brats_case(tmp) / "BraTS_1_flair.nii.gz"
    out = str(flair.with_name("BraTS_1_t1.nii.gz"))
    return ["predict", "--flair", str(flair), "-o", out, "--overwrite", "--model", str(_zero_checkpoint(tmp))]


def _mask_file_over_its_truth(tmp: Path) -> list[str]:
    volume = _volume_with_truth(tmp)
    model = str(_zero_checkpoint(tmp))
    return ["predict", "-i", str(volume), "-o", str(tmp / "in" / "vol_mask.nii.gz"), "--overwrite", "--model", model]


def _mask_file_linked_to_its_truth(tmp: Path) -> list[str]:
    volume = _volume_with_truth(tmp)
    (tmp / "lm.nii.gz").symlink_to(tmp / "in" / "vol_mask.nii.gz")
    return [
        "predict",
        "-i",
        str(volume),
        "-o",
        str(tmp / "lm.nii.gz"),
        "--overwrite",
        "--model",
        str(_zero_checkpoint(tmp)),
    ]


def _dicom_short_pixel_data(tmp: Path) -> list[str]:
    """A slice whose Pixel Data holds 40 of the 6 x 6 x 16-bit = 72 bytes its header declares."""
    series = _dicom_series(tmp)
    _edit_dicom([series / "slice002.dcm"], lambda ds: setattr(ds, "PixelData", ds.PixelData[:40]))
    return _predict(tmp, series)


def _dicom_declaring_huge_slices(tmp: Path) -> list[str]:
    """Three 1 kB slices whose headers declare 8000 x 8000 pixels (within the default memory budget of a large
    machine)."""
    series = _dicom_series(tmp, slices=3)
    _edit_dicom(sorted(series.iterdir()), lambda ds: setattr(ds, "Rows", 8000) or setattr(ds, "Columns", 8000))
    return _predict(tmp, series, "--max-memory", "64G")


def _dicom_last_slice_cut(tmp: Path, keep: slice) -> list[str]:
    """A series whose last slice file keeps only ``keep`` of its bytes (GDCM would leave it out of the series)."""
    series = _dicom_series(tmp)
    last = series / "slice004.dcm"
    last.write_bytes(last.read_bytes()[keep])
    return _predict(tmp, series)


def _dicom_jpeg_larger_than_its_header(tmp: Path) -> list[str]:
    """Three 1 kB JPEG slices whose headers declare 32 x 32 pixels and whose JPEG frame headers 40000 x 40000 (1.6 GB
    each to decode)."""
    from test_volumes import _encapsulated_series, _jpeg_frame

    (tmp / "in").mkdir()
    _encapsulated_series(tmp / "in" / "S", "1.2.840.10008.1.2.4.50", [_jpeg_frame(40000, 40000)])
    return _predict(tmp, tmp / "in" / "S", "--max-memory", "200M")


def _dicom_deflated_beyond_its_header(tmp: Path) -> list[str]:
    """Three deflated slices of a few kB whose headers declare 6 x 6 16-bit pixels (72 bytes) and whose Pixel Data
    inflates to 1 MB."""
    from test_volumes import _deflated_series

    (tmp / "in").mkdir()
    _deflated_series(tmp / "in" / "S", PixelData=bytes(1 << 20))
    return _predict(tmp, tmp / "in" / "S", "--max-memory", "200M")


def _clinical_patient_twice(tmp: Path) -> list[str]:
    (tmp / "f.csv").write_text("case_id,bevr\nTCGA_XX_0001_20000101,0.5\n")
    (tmp / "c.csv").write_text("Patient,RNASeqCluster\nTCGA_XX_0001,1\nTCGA_XX_0001,2\n")
    argv = ["associate", "--features", str(tmp / "f.csv"), "--clinical", str(tmp / "c.csv"), "-o", str(tmp / "out")]
    return [*argv, "--hypothesis", "bevr:RNASeqCluster"]


def _associate_with(tmp: Path, clinical: str, *hypotheses: str, cases: int = 4) -> list[str]:
    """associate of ``cases`` cases P0, P1, ... (a BEVR each) against the clinical CSV text ``clinical``."""
    (tmp / "f.csv").write_text("case_id,bevr\n" + "".join(f"P{i},{i / cases}\n" for i in range(cases)))
    (tmp / "c.csv").write_text(clinical)
    argv = ["associate", "--features", str(tmp / "f.csv"), "--clinical", str(tmp / "c.csv"), "-o", str(tmp / "out")]
    return [*argv, *(arg for h in hypotheses for arg in ("--hypothesis", h))]


def _clinical_column_of_ids(tmp: Path) -> list[str]:
    """A clinical column with one value per patient, 1000 of them: far too many tables to enumerate."""
    rows = "".join(f"P{i},{i}\n" for i in range(1000))
    return _associate_with(tmp, "Patient,Id\n" + rows, "bevr:Id", cases=1000)


def _mask_volume(folder: Path, values: np.ndarray) -> Path:
    mask = np.zeros((8, 8, 4), np.float32)
    mask[2:5, 2:5, 1:3] = values
    folder.mkdir()
    nib.save(nib.Nifti1Image(mask, np.eye(4)), folder / "P01_mask.nii.gz")
    return folder


def _negative_truth(tmp: Path) -> list[str]:
    pred, truth = _mask_volume(tmp / "pred", np.ones(1)), _mask_volume(tmp / "truth", -np.ones(1))
    return ["evaluate", "--pred", str(pred), "--truth", str(truth), "-o", str(tmp / "out"), "--quiet"]


def _probability_as_prediction(tmp: Path) -> list[str]:
    mask = np.zeros((8, 8, 4), np.float32)
    mask[2:5, 2:5, 1:3] = 1
    for folder, values in (("truth", mask), ("pred", mask * 0.3)):
        (tmp / folder).mkdir()
        nib.save(nib.Nifti1Image(values, np.eye(4)), tmp / folder / "P01_mask.nii.gz")
    return ["evaluate", "--pred", str(tmp / "pred"), "--truth", str(tmp / "truth"), "-o", str(tmp / "out"), "--quiet"]


def _input_rewritten_in_place(tmp: Path) -> list[str]:
    import os

    (tmp / "in").mkdir()
    volume = tmp / "in" / "vol.nii"  # uncompressed: its last bytes are voxels
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((8, 8, 4), np.float32), np.eye(4)), volume)
    argv = ["predict", "-i", str(tmp / "in"), "-o", str(tmp / "pred"), "--quiet", "--model", str(_zero_checkpoint(tmp))]
    assert main(argv) == 0
    stat, data = volume.stat(), bytearray(volume.read_bytes())
    data[-1] ^= 0x01
    volume.write_bytes(bytes(data))
    os.utime(volume, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return argv


def _made_onnx(tmp: Path, bias: float = -1.0, batch: str | int = "batch") -> Path:
    """TMP/m.onnx in the form flairseg exports (stamped with its graph's sha256, the zero checkpoint's record), but
    made by hand: one 1x1 convolution whose bytes, hence hash, depend on no exporter's version."""
    import json

    from onnx import TensorProto, helper, numpy_helper

    from flairseg.export import stamped

    weights = [numpy_helper.from_array(np.zeros((1, 3, 1, 1), np.float32), "w")]
    weights.append(numpy_helper.from_array(np.full(1, bias, np.float32), "b"))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["logits"])],
        "flairseg",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, 256, 256])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 1, 256, 256])],
        weights,
    )
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)], producer_name="test")
    (tmp / "m.onnx").write_bytes(stamped(model, json.loads(_zero_checkpoint(tmp).read_text())))
    return tmp / "m.onnx"


def _onnx_edited_after_export(tmp: Path) -> list[str]:
    import onnx

    model = onnx.load(str(_made_onnx(tmp)))
    model.graph.initializer[1].float_data[:] = [-100.0]  # the bias: every pixel background
    onnx.save(model, str(tmp / "m.onnx"))
    return _predict(tmp, _case(tmp), "--model", str(tmp / "m.onnx"))


def _onnx_replaced_between_runs(tmp: Path) -> list[str]:
    argv = ["predict", "-i", str(_case(tmp)), "-o", str(tmp / "pred"), "--quiet", "--model", str(_made_onnx(tmp))]
    assert main(argv) == 0
    _made_onnx(tmp, bias=1.0)
    return argv


def _resume_other_settings(tmp: Path) -> list[str]:
    import dataclasses
    import json

    from flairseg.config import TrainConfig

    data = _case(tmp).parent
    (tmp / "old").mkdir()
    (tmp / "old" / "config.json").write_text(json.dumps(dataclasses.asdict(TrainConfig())))
    settings = ("--lr", "0.9", "--set", "rotation=0", "--loss", "dice+bce")
    return ["train", "--data", str(data), "-o", str(tmp / "old"), "--resume", *settings, "--quiet"]


def _trained_run(tmp: Path) -> list[str]:
    """A tiny run trained into TMP/old (three cases under TMP/in); the command that resumes it."""
    argv = _train(tmp)
    argv[argv.index(str(tmp / "run"))] = str(tmp / "old")
    assert main(argv) == 0
    return ["train", "--data", str(tmp / "in"), "-o", str(tmp / "old"), "--resume", "--quiet"]


def _resume_without_best(tmp: Path) -> list[str]:
    argv = _trained_run(tmp)
    (tmp / "old" / "best.json").unlink()
    return argv


def _resume_edited_config(tmp: Path) -> list[str]:
    argv = _trained_run(tmp)
    recipe = tmp / "old" / "config.json"
    recipe.write_text(recipe.read_text().replace('"lr": 0.0001', '"lr": 0.9'))
    return argv


def _cv_fold_on_changed_data(tmp: Path) -> list[str]:
    """Fold 0 of a cross-validation trained, then a slice of its training case rewritten."""
    import json

    argv = ["cv", *_train(tmp)[1:], "--fold", "0"]
    argv[argv.index(str(tmp / "run"))] = str(tmp / "cv")
    assert main(argv) == 0
    case = json.loads((tmp / "cv" / "fold-0" / "split.json").read_text())["train"][0]
    image = tmp / "in" / case / f"{case}_2.tif"
    tifffile.imwrite(image, 255 - tifffile.imread(image), photometric="rgb")
    return argv


def _onnx_threshold_edited(tmp: Path) -> list[str]:
    """An export whose metadata's threshold was set to 0.999 afterwards, its graph (and the graph's hash) untouched."""
    import json

    import onnx

    model = onnx.load(str(_made_onnx(tmp)))
    entry = next(e for e in model.metadata_props if e.key == "flairseg")
    entry.value = json.dumps({**json.loads(entry.value), "recipe": {"threshold": 0.999}})
    onnx.save(model, str(tmp / "m.onnx"))
    return _predict(tmp, _case(tmp), "--model", str(tmp / "m.onnx"))


def _negative_variance(tmp: Path) -> list[str]:
    """A checkpoint whose batch normalisations' running variances are all negative, saved with its own sha256 and
    binding (the files are consistent, the model is not)."""
    model = UNet(features=2, batch_norm=True)
    for name, buffer in model.named_buffers():
        if name.endswith("running_var"):
            buffer.fill_(-1.0)
    config = ModelConfig(features=2, batch_norm=True)
    path = save_model(model, config, PreprocessConfig(), tmp / "model" / "m", task="abnormality")
    return _predict(tmp, _case(tmp), "--model", str(path))


def _init_from_an_ensemble(tmp: Path) -> list[str]:
    from flairseg.model import Ensemble

    config = ModelConfig(features=2)
    ensemble = Ensemble([UNet(features=2), UNet(features=2)])
    save_model(ensemble, config, PreprocessConfig(), tmp / "e" / "m", task="abnormality", members=2)
    return _train(tmp, "--init", str(tmp / "e" / "m.json"))


def _resume_from_a_nan_state(tmp: Path) -> list[str]:
    """A trained run whose last checkpoint was written again (sha256 and binding kept) with a NaN weight."""
    from flairseg import checkpoint

    argv = _trained_run(tmp)
    tensors, record = checkpoint.read(tmp / "old" / "last")
    tensors["model.head.weight"] = torch.full_like(tensors["model.head.weight"], float("nan"))
    checkpoint.save(tensors, record, tmp / "old" / "last")
    return argv


def _resume_with_a_broken_best(tmp: Path) -> list[str]:
    argv = _trained_run(tmp)
    (tmp / "old" / "best.json").write_text('{"a":')
    return argv


def _output_linked_to_another_case(tmp: Path) -> list[str]:
    """Case A's output folder is a link to case B's input folder (another case of the same tree)."""
    _case(tmp, "CASE_A")
    _case(tmp, "CASE_B")
    (tmp / "o").mkdir()
    (tmp / "o" / "CASE_A").symlink_to(tmp / "in" / "CASE_B")
    return ["predict", "-i", str(tmp / "in"), "-o", str(tmp / "o"), "--model", str(_zero_checkpoint(tmp)), "--quiet"]


def _mask_file_over_its_nnunet_label(tmp: Path, described: bool = True, option: str = "-i") -> list[str]:
    """An nnU-Net dataset's image given alone (``option`` -i or --flair), its mask asked for in place of its label in
    labelsTr; the dataset with its dataset.json or (not ``described``) without."""
    dataset = tmp / "Dataset001_X"
    for folder in ("imagesTr", "labelsTr"):
        (dataset / folder).mkdir(parents=True)
    if described:
        dataset.joinpath("dataset.json").write_text('{"channel_names": {"0": "FLAIR"}, "labels": {"background": 0}}')
    data = np.random.default_rng(0).random((8, 8, 4), np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), dataset / "imagesTr" / "BR_001_0000.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.uint8), np.eye(4)), dataset / "labelsTr" / "BR_001.nii.gz")
    image, label = dataset / "imagesTr" / "BR_001_0000.nii.gz", dataset / "labelsTr" / "BR_001.nii.gz"
    return ["predict", option, str(image), "-o", str(label), "--overwrite", "--model", str(_zero_checkpoint(tmp))]


def _cases_named_with_the_brain_suffix(tmp: Path) -> list[str]:
    """A tree of cases P and P_brain: P's brain probability map would be named as P_brain's tumour one."""
    _case(tmp, "P")
    _case(tmp, "P_brain")
    return _predict(tmp, tmp / "in", "--model", str(_zero_checkpoint(tmp)), "--probabilities")


def _folder_named_like_a_volumes_mask(tmp: Path) -> list[str]:
    """A volume a.nii.gz beside a Kaggle case folder named a_mask.nii.gz: the volume's mask file."""
    _nifti(tmp, np.random.default_rng(0).random((16, 16, 4), np.float32), name="a.nii.gz")
    _case(tmp, "a_mask.nii.gz")
    return _predict(tmp, tmp / "in", "--model", str(_zero_checkpoint(tmp)))


def _predicted_then(tmp: Path, name: str, content: bytes, *extra: str) -> list[str]:
    """A case predicted into TMP/pred, then the file ``name`` of its report replaced by ``content``; the command."""
    argv = ["predict", "-i", str(_case(tmp).parent), "-o", str(tmp / "pred"), "--quiet", *extra]
    assert main(argv) == 0
    (tmp / "pred" / "report" / name).parent.mkdir(exist_ok=True)
    (tmp / "pred" / "report" / name).write_bytes(content)
    return argv


def _ragged_qc_table(tmp: Path) -> list[str]:
    return _predicted_then(tmp, "qc/CASE_mask.csv", b"a,b\n1,2,3,4\n")


def _inputs_table_not_utf8(tmp: Path) -> list[str]:
    return _predicted_then(tmp, "inputs/CASE_mask.csv", b"\xff\xfe")


def _part_record_with_a_number_for_a_failure(tmp: Path) -> list[str]:
    return _predicted_then(tmp, "parts/part-1-of-2.json", b'{"cases": [], "failures": [1]}', "--part", "0/2")


def _volume_beside(folder: Path, mask: np.ndarray | None, name: str = "v") -> Path:
    """An 8 x 8 x 4 volume ``folder/<name>.nii.gz``, and its ``_mask`` beside it when given."""
    folder.mkdir(parents=True)
    volume = folder / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((8, 8, 4), np.float32), np.eye(4)), volume)
    if mask is not None:
        nib.save(nib.Nifti1Image(mask, np.eye(4)), folder / f"{name}_mask.nii.gz")
    return volume


def _probability_mask_beside_its_volume(tmp: Path) -> list[str]:
    mask = np.full((8, 8, 4), 0.02, np.float32)
    mask[2:5, 2:5, 1:3] = 0.8
    return _predict(tmp, _volume_beside(tmp / "in", mask).parent)


def _mask_scaled_to_fractions(tmp: Path) -> list[str]:
    """A uint8 0/1 mask whose header scales its values (scl_slope 10, scl_inter 10.5) into 10.5 and 20.5."""
    mask = np.zeros((8, 8, 4), np.uint8)
    mask[2:5, 2:5, 1:3] = 1
    _volume_beside(tmp / "in", None)
    image = nib.Nifti1Image(mask, np.eye(4))
    image.header.set_slope_inter(10, 10.5)
    nib.save(image, tmp / "in" / "v_mask.nii.gz")
    return _predict(tmp, tmp / "in")


def _fractional_kaggle_masks(tmp: Path) -> list[str]:
    case = _case(tmp)
    for path in case.glob("*_mask.tif"):
        tifffile.imwrite(path, (tifffile.imread(path) > 0).astype(np.float32) * 0.5, photometric="minisblack")
    return _predict(tmp, case)


def _probability_truth_tree(tmp: Path) -> list[str]:
    _volume_beside(tmp / "in", None)
    truth = np.zeros((8, 8, 4), np.float32)
    truth[2:5, 2:5, 1:3] = 0.3
    (tmp / "truth").mkdir()
    nib.save(nib.Nifti1Image(truth, np.eye(4)), tmp / "truth" / "v_mask.nii.gz")
    return _predict(tmp, tmp / "in", "--truth", str(tmp / "truth"))


def _prediction_stretched_off_its_truth(tmp: Path) -> list[str]:
    """Spacings 0.9099 x 0.9099 x 5.0099 mm against the truth's 0.9 x 0.9 x 5: every affine entry within 0.01, the far
    corner 0.90 mm away."""
    mask = np.zeros((64, 64, 20), np.uint8)
    mask[20:30, 20:30, 5:9] = 1
    for folder, spacing in (("truth", (0.9, 0.9, 5.0)), ("pred", (0.9099, 0.9099, 5.0099))):
        (tmp / folder).mkdir()
        nib.save(nib.Nifti1Image(mask, np.diag([*spacing, 1.0])), tmp / folder / "P01_mask.nii.gz")
    return ["evaluate", "--pred", str(tmp / "pred"), "--truth", str(tmp / "truth"), "-o", str(tmp / "out"), "--quiet"]


def _brats_case_over_the_budget(tmp: Path) -> list[str]:
    """A BraTS case of three 64^3 volumes: each within a 10 MB budget (6 MB), the case's three channels not (18 MB)."""
    folder = tmp / "in" / "BraTS_1"
    folder.mkdir(parents=True)
    for name in ("flair", "t1", "t1ce"):
        data = np.random.default_rng(0).integers(0, 255, (64, 64, 64), np.uint8)
        nib.save(nib.Nifti1Image(data, np.eye(4)), folder / f"BraTS_1_{name}.nii.gz")
    return _predict(tmp, tmp / "in", "--max-memory", "10M")


def _checkpoint_json_with_a_huge_number(tmp: Path) -> list[str]:
    """A checkpoint JSON that holds a 5001-digit number: JSON, but more digits than Python converts to an integer."""
    model = _zero_checkpoint(tmp)
    text = model.read_text()
    model.write_text(text.replace('"format_version": ', '"format_version": ' + "9" * 5001 + ', "x": ', 1))
    return _predict(tmp, _case(tmp), "--model", str(model))


def _training_config_with_a_huge_lr(tmp: Path) -> list[str]:
    _case(tmp)
    (tmp / "recipe.json").write_text('{"lr": 1' + "0" * 400 + "}")
    return ["train", "--data", str(tmp / "in"), "-o", str(tmp / "run"), "--config", str(tmp / "recipe.json"), "--quiet"]


def _training_config_nested_too_deeply(tmp: Path) -> list[str]:
    _case(tmp)
    (tmp / "recipe.json").write_text("[" * 100000)
    return ["train", "--data", str(tmp / "in"), "-o", str(tmp / "run"), "--config", str(tmp / "recipe.json"), "--quiet"]


def _released_copy_edited(tmp: Path) -> list[str]:
    """A copy of the released brain model (its tensor file carries no record of its JSON) with the threshold edited."""
    import json
    import shutil

    from flairseg.released_models import models_folder

    (tmp / "copy").mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(models_folder() / f"brain-lgg{suffix}", tmp / "copy" / f"brain-lgg{suffix}")
    record = json.loads((tmp / "copy" / "brain-lgg.json").read_text())
    record["recipe"]["threshold"] = 0.999
    (tmp / "copy" / "brain-lgg.json").write_text(json.dumps(record))
    return _predict(tmp, _case(tmp), "--model", str(tmp / "copy" / "brain-lgg.json"), "--task", "brain")


def _two_scans_of_one_patient(tmp: Path) -> list[str]:
    """Two cases (two scan dates) of one TCGA patient in the features file, one clinical row for the patient."""
    (tmp / "f.csv").write_text("case_id,bevr\nTCGA_XX_0001_20000101,0.5\nTCGA_XX_0001_20010101,0.6\n")
    (tmp / "c.csv").write_text("Patient,RNASeqCluster\nTCGA_XX_0001,1\n")
    argv = ["associate", "--features", str(tmp / "f.csv"), "--clinical", str(tmp / "c.csv"), "-o", str(tmp / "out")]
    return [*argv, "--hypothesis", "bevr:RNASeqCluster"]


def _truth_off_its_image(tmp: Path) -> list[str]:
    """TMP/in/v.nii.gz and its truth TMP/truth/v_mask.nii.gz given to predict: the same shape, the origin 40 mm away."""
    _volume_beside(tmp / "in", None)
    (tmp / "truth").mkdir()
    affine = np.eye(4)
    affine[0, 3] = 40.0
    nib.save(nib.Nifti1Image(np.ones((8, 8, 4), np.uint8), affine), tmp / "truth" / "v_mask.nii.gz")
    return _predict(tmp, tmp / "in", "--truth", str(tmp / "truth"))


def _volume_prediction_of_a_kaggle_truth(tmp: Path) -> list[str]:
    """A Kaggle truth case TMP/in/CASE and a NIfTI prediction TMP/pred/CASE_mask.nii.gz of its shape."""
    _case(tmp)
    (tmp / "pred").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 3), np.uint8), np.eye(4)), tmp / "pred" / "CASE_mask.nii.gz")
    return ["evaluate", "--pred", str(tmp / "pred"), "--truth", str(tmp / "in"), "-o", str(tmp / "out"), "--quiet"]


def _kaggle_truth_of_a_volume(tmp: Path) -> list[str]:
    """TMP/in/v.nii.gz given to predict with a Kaggle truth case TMP/truth/v."""
    _volume_beside(tmp / "in", None)
    image, mask = phantom(slices=4, size=32)
    write_kaggle_case(tmp / "truth", "v", image, mask)
    return _predict(tmp, tmp / "in", "--truth", str(tmp / "truth"))


def _output_through_a_link_loop(tmp: Path) -> list[str]:
    (tmp / "loop").symlink_to("loop")
    case = str(_case(tmp))
    return ["evaluate", "--pred", case, "--truth", case, "-o", str(tmp / "loop"), "--quiet"]


def _volume_beside_its_namesake_folder(tmp: Path, name: str = "CASE_0") -> None:
    """TMP/in/<name>.nii.gz (with its mask) beside the Kaggle case folder TMP/in/<name>: two cases of one id."""
    image, mask = phantom(slices=4, size=32)
    _nifti(tmp, image[..., 1].transpose(1, 2, 0).astype(np.float32), name=f"{name}.nii.gz")
    _nifti(tmp, mask.transpose(1, 2, 0).astype(np.uint8), name=f"{name}_mask.nii.gz")


def _train_on_two_cases_of_one_id(tmp: Path) -> list[str]:
    argv = _train(tmp)
    _volume_beside_its_namesake_folder(tmp)
    return argv


def _cv_on_two_cases_of_one_id(tmp: Path) -> list[str]:
    argv = ["cv", *_train(tmp)[1:]]
    argv[argv.index(str(tmp / "run"))] = str(tmp / "out")
    _volume_beside_its_namesake_folder(tmp)
    return argv


def _preprocess_two_cases_of_one_id(tmp: Path) -> list[str]:
    _case(tmp, "CASE_0")
    _volume_beside_its_namesake_folder(tmp)
    return ["preprocess", "-i", str(tmp / "in"), "-o", str(tmp / "out"), "--quiet"]


def _cv_fold_on_data_rewritten_in_place(tmp: Path) -> list[str]:
    """Fold 0 of a cross-validation trained, then a slice of its training case rewritten with its size and
    modification time kept (as ``cp -p`` or ``rsync -t`` do)."""
    import json
    import os

    argv = ["cv", *_train(tmp)[1:], "--fold", "0"]
    argv[argv.index(str(tmp / "run"))] = str(tmp / "cv")
    assert main(argv) == 0
    case = json.loads((tmp / "cv" / "fold-0" / "split.json").read_text())["train"][0]
    image = tmp / "in" / case / f"{case}_2.tif"
    before = image.stat()
    tifffile.imwrite(image, 255 - tifffile.imread(image), photometric="rgb")
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert image.stat().st_size == before.st_size and image.stat().st_mtime_ns == before.st_mtime_ns
    return argv


def _cv_predictions_link_into_data(tmp: Path) -> list[str]:
    """A cross-validation folder whose predictions/CASE_0, where case CASE_0's out-of-fold mask goes, links to the
    case's own folder in the data."""

    argv = ["cv", *_train(tmp)[1:]]
    argv[argv.index(str(tmp / "run"))] = str(tmp / "cv")
    make_marked_folder(tmp / "cv")
    (tmp / "cv" / "predictions").mkdir()
    (tmp / "cv" / "predictions" / "CASE_0").symlink_to(tmp / "in" / "CASE_0")
    return argv


def _cv_into_a_foreign_folder(tmp: Path) -> list[str]:
    """A folder of the user's own (their ensemble.json and report/cv.md) given as the cross-validation folder."""
    argv = ["cv", *_train(tmp)[1:]]
    argv[argv.index(str(tmp / "run"))] = str(tmp / "myproject")
    (tmp / "myproject" / "report").mkdir(parents=True)
    (tmp / "myproject" / "ensemble.json").write_text("my own model")
    (tmp / "myproject" / "report" / "cv.md").write_text("my notes")
    return argv


def _localizer_above_case_folders(tmp: Path) -> list[str]:
    """Kaggle case folders TMP/in/CASE with a DICOM localizer slice TMP/in/localizer.dcm saved at the top."""
    from test_volumes import _write_dicom_series

    _case(tmp)
    _write_dicom_series(tmp / "loc", np.zeros((3, 6, 6)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    shutil.move(tmp / "loc" / "slice001.dcm", tmp / "in" / "localizer.dcm")
    return _predict(tmp, tmp / "in")


def _figure_above_case_folders(tmp: Path) -> list[str]:
    """Kaggle case folders TMP/in/CASE with a figure TMP/in/overview.tif saved at the top, given to train."""
    _case(tmp)
    tifffile.imwrite(tmp / "in" / "overview.tif", np.zeros((8, 8), np.uint8))
    return ["train", "--data", str(tmp / "in"), "-o", str(tmp / "run"), "--quiet"]


def _dicom_media_folder_nested(tmp: Path) -> list[str]:
    """A DICOM media folder TMP/in: DICOMDIR at the top, its series two levels down (DICOM/S)."""
    series = _dicom_series(tmp)
    (tmp / "in" / "DICOM").mkdir()
    shutil.move(series, tmp / "in" / "DICOM" / "S")
    (tmp / "in" / "DICOMDIR").write_bytes(bytes(128) + b"DICM" + bytes(64))
    return _predict(tmp, tmp / "in")


def _masks_one_without_suffix(tmp: Path, unsuffixed: str) -> list[str]:
    """TMP/truth and TMP/pred of cases A and C: A_mask.nii.gz, C_mask.nii.gz, but in ``unsuffixed`` C.nii.gz."""
    for folder in ("truth", "pred"):
        (tmp / folder).mkdir()
        for case in ("A", "C"):
            name = case if folder == unsuffixed and case == "C" else f"{case}_mask"
            nib.save(nib.Nifti1Image(np.ones((8, 8, 4), np.uint8), np.eye(4)), tmp / folder / f"{name}.nii.gz")
    return ["evaluate", "--pred", str(tmp / "pred"), "--truth", str(tmp / "truth"), "-o", str(tmp / "out"), "--quiet"]


def _output_onto_the_store_of_linked_slices(tmp: Path) -> list[str]:
    """A case folder of links to the slices and masks of a data store; the store given as the output."""
    store = _case(tmp).parent.rename(tmp / "store")
    (tmp / "view" / "CASE").mkdir(parents=True)
    for path in sorted((store / "CASE").iterdir()):
        (tmp / "view" / "CASE" / path.name).symlink_to(path)
    return ["predict", "-i", str(tmp / "view"), "-o", str(store), "--overwrite", "--quiet"]


def _cv_on_no_tumour(tmp: Path) -> list[str]:
    """The training data of ``_no_tumour`` given to cv: refused before its folder is made."""
    argv = ["cv", *_no_tumour(tmp)[1:]]
    argv[argv.index(str(tmp / "run"))] = str(tmp / "out")
    return argv


def _two_volumes_one_mask_not_a_nifti(tmp: Path, masks: Path) -> None:
    """TMP/in/{good,v}.nii.gz with their masks in ``masks``: good_mask.nii.gz, and v_mask.nii.gz a text file."""
    volume = np.random.default_rng(0).random((8, 8, 4), np.float32)
    for folder in (tmp / "in", masks):
        folder.mkdir(exist_ok=True)
    for name in ("good", "v"):
        nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp / "in" / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((8, 8, 4), np.uint8), np.eye(4)), masks / "good_mask.nii.gz")
    (masks / "v_mask.nii.gz").write_text("not a nifti\n")


def _truth_tree_with_one_not_a_nifti(tmp: Path) -> list[str]:
    _two_volumes_one_mask_not_a_nifti(tmp, tmp / "truth")
    return _predict(tmp, tmp / "in", "--truth", str(tmp / "truth"))


def _mask_beside_a_volume_not_a_nifti(tmp: Path) -> list[str]:
    _two_volumes_one_mask_not_a_nifti(tmp, tmp / "in")
    return _predict(tmp, tmp / "in")


def _resume_edited_split(tmp: Path) -> list[str]:
    """A trained run whose split.json then moved its test case into training."""
    import json

    argv = _trained_run(tmp)
    split_file = tmp / "old" / "split.json"
    split = json.loads(split_file.read_text())
    split_file.write_text(json.dumps(split | {"train": split["train"] + split["test"], "test": []}))
    return argv


def _resume_without_last(tmp: Path) -> list[str]:
    """A trained run (one epoch logged) whose last checkpoint was deleted."""
    argv = _trained_run(tmp)
    for name in ("last.json", "last.safetensors"):
        (tmp / "old" / name).unlink()
    return argv


def _predict_into_a_users_report(tmp: Path) -> list[str]:
    case = _case(tmp)
    (tmp / "study" / "report").mkdir(parents=True)
    (tmp / "study" / "report" / "report.html").write_text("my own review of the cases")
    (tmp / "study" / "report" / "metrics.csv").write_text("case,my_score\nCASE,1\n")
    return ["predict", "-i", str(case), "-o", str(tmp / "study"), "--model", str(_zero_checkpoint(tmp)), "--quiet"]


def _training_state(tmp: Path) -> Path:
    """TMP/old/last.json: a run's training state (model, optimizer and RNG, what train --resume continues from)."""
    import dataclasses

    from flairseg.checkpoint import TrainingState, save_training_state
    from flairseg.config import TrainConfig

    model = UNet(features=2, batch_norm=True)
    optimizer = torch.optim.Adam(model.parameters())
    recipe, split = dataclasses.asdict(TrainConfig()), {"train": [], "validation": [], "test": []}
    return save_training_state(model, optimizer, TrainingState(), recipe, split, tmp / "old" / "last")


def _nifti_scaled_beyond_float32(tmp: Path) -> list[str]:
    """A uint8 volume whose header scales its values by scl_slope 3e38: up to 7.7e40, more than float32 holds."""
    image = nib.Nifti1Image(np.full((16, 16, 4), 255, np.uint8), np.diag([0.9, 0.9, 3.0, 1.0]))
    image.header.set_slope_inter(3e38, 0.0)
    (tmp / "in").mkdir()
    nib.save(image, tmp / "in" / "vol.nii")
    return _predict(tmp, tmp / "in" / "vol.nii")


def _three_clusters_over_20000_patients(tmp: Path) -> list[str]:
    """A column of 3 clusters over 20,000 patients: the exact test's tables grow with the patients too."""
    rows = "".join(f"P{i},{i % 3 + 1}\n" for i in range(20000))
    return _associate_with(tmp, "Patient,RNASeqCluster\n" + rows, "bevr:RNASeqCluster", cases=20000)


def _resume_without_record(tmp: Path, name: str) -> list[str]:
    """A trained run whose record ``name`` (data.json, start.json) was deleted."""
    argv = _trained_run(tmp)
    (tmp / "old" / name).unlink()
    return argv


def _preprocess_a_case_named_dot_dot(tmp: Path) -> list[str]:
    """A volume named ``...nii.gz`` (case id '..', whose folder would be the output's parent), given by name (in a
    tree it is a hidden file, skipped)."""
    _case(tmp)
    nib.save(nib.Nifti1Image(np.ones((8, 8, 4), np.float32), np.eye(4)), tmp / "in" / "...nii.gz")
    return ["preprocess", "-i", str(tmp / "in" / "...nii.gz"), "-o", str(tmp / "out"), "--quiet"]


def _bids_lone_case_with_nan(tmp: Path) -> list[str]:
    """A BIDS dataset of one subject whose FLAIR holds a NaN voxel (found only while it is decoded)."""
    anat = tmp / "bids" / "sub-01" / "anat"
    anat.mkdir(parents=True)
    (tmp / "bids" / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.8.0"}')
    volume = np.ones((16, 16, 4), np.float32)
    volume[3, 3, 1] = np.nan
    nib.save(nib.Nifti1Image(volume, np.eye(4)), anat / "sub-01_FLAIR.nii.gz")
    return _predict(tmp, tmp / "bids", "--model", str(_zero_checkpoint(tmp)))


def _cv_fold_with_split_edited(tmp: Path) -> list[str]:
    """Fold 0 of a cross-validation trained, then its split.json edited to move its test cases into training."""
    import json

    argv = ["cv", *_train(tmp)[1:], "--fold", "0"]
    argv[argv.index(str(tmp / "run"))] = str(tmp / "cv")
    assert main(argv) == 0
    split_file = tmp / "cv" / "fold-0" / "split.json"
    split = json.loads(split_file.read_text())
    split_file.write_text(json.dumps(split | {"train": sorted(split["train"] + split["test"]), "test": []}))
    return argv


def _tiff_tile_bomb(tmp: Path) -> list[str]:
    """A 32 x 32 slice stored as one 4096 x 4096 zlib tile (a tile is inflated whole), within a 100 MB budget."""
    case = _case(tmp)
    plane = np.zeros((32, 32, 3), np.uint8)
    (case / "CASE_2.tif").unlink()
    tifffile.imwrite(case / "CASE_2.tif", plane, photometric="rgb", tile=(4096, 4096), compression="zlib")
    return _predict(tmp, case, "--max-memory", "100M")


def _associate_no_labelled_case(tmp: Path) -> list[str]:
    """A clinical column that is NA for every patient of the features file."""
    return _associate_with(tmp, "Patient,IDH\n" + "".join(f"P{i},NA\n" for i in range(4)), "bevr:IDH")


def _predict_edited_dicom_series(tmp: Path, value: int, tag: str, text: str, slices: slice) -> list[str]:
    """Predict TMP/in/S, a DICOM series of 3 slices of pixels ``value``, the ``slices`` of which have ``tag`` set to
    ``text``."""
    from test_volumes import _write_dicom_series

    (tmp / "in").mkdir()
    series = tmp / "in" / "S"
    _write_dicom_series(series, np.full((3, 6, 6), value), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    _edit_dicom(sorted(series.iterdir())[slices], lambda ds: setattr(ds, tag, text))
    return _predict(tmp, series)


def _dicom_rescaled_beyond_float32(tmp: Path) -> list[str]:
    """A DICOM series of pixels 255 whose slices' Rescale Slope 3e38 takes them to 7.65e40, more than float32 holds."""
    return _predict_edited_dicom_series(tmp, 255, "RescaleSlope", "3e38", slice(None))


def _cv_fold_from_random_given_an_init(tmp: Path) -> list[str]:
    """Fold 0 of a cross-validation trained from random weights, then `cv --fold 0 --init` an ensemble."""
    from flairseg.model import Ensemble

    argv = ["cv", *_train(tmp)[1:], "--fold", "0"]
    argv[argv.index(str(tmp / "run"))] = str(tmp / "cv")
    assert main(argv) == 0
    ensemble = Ensemble([UNet(features=4) for _ in range(3)])
    save_model(ensemble, ModelConfig(features=4), PreprocessConfig(size=32), tmp / "ens", task="abnormality", members=3)
    return [*argv, "--init", str(tmp / "ens.json")]


def _cv_fine_tuned_fold_rerun_without_init(tmp: Path) -> list[str]:
    """Fold 0 of a cross-validation whose start.json records member 0 of an ensemble; `cv --fold 0` without --init."""
    import json

    argv = ["cv", *_train(tmp)[1:], "--fold", "0"]
    argv[argv.index(str(tmp / "run"))] = str(tmp / "cv")
    assert main(argv) == 0
    start = {"init": str(tmp / "ens.json"), "member": 0, "sha256": "0" * 64}
    (tmp / "cv" / "fold-0" / "start.json").write_text(json.dumps(start))
    return argv


def _resume_after_its_init_was_replaced(tmp: Path) -> list[str]:
    """A fine-tuning run stopped before its first checkpoint, whose --init checkpoint was saved over since."""
    argv = _resume_from_another_init(tmp)
    start = tmp / "old" / "start.json"
    start.write_text(start.read_text().replace('"member": null', '"member": null, "sha256": "' + "0" * 64 + '"'))
    save_model(UNet(), ModelConfig(), PreprocessConfig(), tmp / "a" / "best", task="abnormality")
    return argv[: argv.index("--init")]


def _resume_through_a_link_into_the_data(tmp: Path) -> list[str]:
    """A trained run whose log.csv, which a resumed run appends to, was replaced by a link to a slice of the data."""
    argv = _trained_run(tmp)
    (tmp / "old" / "log.csv").unlink()
    (tmp / "old" / "log.csv").symlink_to(tmp / "in" / "CASE_0" / "CASE_0_1.tif")
    return argv


def _truth_of_other_cases(tmp: Path) -> list[str]:
    """Volumes TMP/in/P1.nii.gz and P2.nii.gz given to predict with --truth TMP/gts holding Q1_mask and Q2_mask (the
    truth of other images)."""
    shutil.copy(_volume_beside(tmp / "in", None, "P1"), tmp / "in" / "P2.nii.gz")
    (tmp / "gts").mkdir()
    for name in ("Q1", "Q2"):
        nib.save(nib.Nifti1Image(np.ones((8, 8, 4), np.uint8), np.eye(4)), tmp / "gts" / f"{name}_mask.nii.gz")
    return _predict(tmp, tmp / "in", "--truth", str(tmp / "gts"), "--model", str(_zero_checkpoint(tmp)))


def _second_truth_off_its_image(tmp: Path) -> list[str]:
    """Volumes TMP/in/v and w given to predict with --truth TMP/truth: v's truth on its grid, w's 40 mm away."""
    shutil.copy(_volume_beside(tmp / "in", None, "v"), tmp / "in" / "w.nii.gz")
    (tmp / "truth").mkdir()
    for name, x in (("v", 0.0), ("w", 40.0)):
        affine = np.eye(4)
        affine[0, 3] = x
        nib.save(nib.Nifti1Image(np.ones((8, 8, 4), np.uint8), affine), tmp / "truth" / f"{name}_mask.nii.gz")
    return _predict(tmp, tmp / "in", "--truth", str(tmp / "truth"), "--model", str(_zero_checkpoint(tmp)))


def _brain_label_not_a_tiff(tmp: Path) -> list[str]:
    """Kaggle cases CASE_A and CASE_B, each with its _brain slices, for a paper-abnormality model (which reads them
    as its input); CASE_B_2_brain.tif holds text."""
    for name in ("CASE_A", "CASE_B"):
        case = _case(tmp, name)
        for mask in case.glob("*_mask.tif"):
            shutil.copy(mask, case / mask.name.replace("_mask.tif", "_brain.tif"))
    (tmp / "in" / "CASE_B" / "CASE_B_2_brain.tif").write_text("not an image")
    preprocess = PreprocessConfig(variant="paper-abnormality", size=32)
    model = save_model(
        UNet(features=2, batch_norm=True),
        ModelConfig(features=2, batch_norm=True),
        preprocess,
        tmp / "model" / "paper",
        task="abnormality",
    )
    return _predict(tmp, tmp / "in", "--model", str(model))


def _mask_file_of_another_case(tmp: Path) -> list[str]:
    """Case A predicted into ``-o m.nii.gz``, then case B into the same file without --overwrite."""
    model = str(_zero_checkpoint(tmp))
    for name in ("A", "B"):
        _nifti(tmp, np.ones((16, 16, 4), np.float32), name=f"{name}.nii.gz")
    options = ["-o", str(tmp / "m.nii.gz"), "--model", model, "--quiet"]
    assert main(["predict", "-i", str(tmp / "in" / "A.nii.gz"), *options]) == 0
    return ["predict", "-i", str(tmp / "in" / "B.nii.gz"), *options]


def _mask_file_of_the_other_extension(tmp: Path) -> list[str]:
    """Case A predicted into ``-o m.nii.gz``, then into ``-o m.nii`` (one report folder, ``m_flairseg``)."""
    model = str(_zero_checkpoint(tmp))
    volume = str(_nifti(tmp, np.ones((16, 16, 4), np.float32), name="A.nii.gz"))
    assert main(["predict", "-i", volume, "-o", str(tmp / "m.nii.gz"), "--model", model, "--quiet"]) == 0
    return ["predict", "-i", volume, "-o", str(tmp / "m.nii"), "--model", model, "--quiet"]


def _predicted_mask_edited(tmp: Path) -> list[str]:
    """A case's mask rewritten (a hand correction) after the run, then the run again."""
    argv = ["predict", "-i", str(_nifti(tmp, np.ones((16, 16, 4), np.float32))), "-o", str(tmp / "pred")]
    argv += ["--model", str(_zero_checkpoint(tmp)), "--quiet"]
    assert main(argv) == 0
    nib.save(nib.Nifti1Image(np.ones((16, 16, 4), np.uint8), np.eye(4)), tmp / "pred" / "vol_mask.nii.gz")
    return argv


def _recorded_case_of_another_layout(tmp: Path) -> list[str]:
    """Kaggle case CASE predicted into a folder, then a volume CASE.nii.gz of another tree into it."""
    model = str(_zero_checkpoint(tmp))
    assert main(["predict", "-i", str(_case(tmp)), "-o", str(tmp / "pred"), "--model", model, "--quiet"]) == 0
    (tmp / "in2").mkdir()
    nib.save(nib.Nifti1Image(np.ones((16, 16, 4), np.float32), np.eye(4)), tmp / "in2" / "CASE.nii.gz")
    return ["predict", "-i", str(tmp / "in2"), "-o", str(tmp / "pred"), "--model", model, "--quiet"]


def _part_with_other_settings(tmp: Path) -> list[str]:
    """Part 0 of 2 (CASE_A) predicted into TMP/pred; part 1 (CASE_B) then run with --tta."""
    _case(tmp, "CASE_A")
    _case(tmp, "CASE_B")
    argv = ["predict", "-i", str(tmp / "in"), "-o", str(tmp / "pred"), "--model", str(_zero_checkpoint(tmp)), "--quiet"]
    assert main([*argv, "--part", "0/2"]) == 0
    return [*argv, "--part", "1/2", "--tta"]


def _folder_command_over_a_file(tmp: Path) -> list[str]:
    """evaluate (which writes a folder) given ``-o`` a user's file, with --overwrite."""
    case = _case(tmp)
    (tmp / "notes.txt").write_text("my notes")
    return ["evaluate", "--pred", str(case), "--truth", str(case), "-o", str(tmp / "notes.txt"), "--overwrite"]


def _file_command_over_a_folder(tmp: Path) -> list[str]:
    """shape (which writes a CSV file) given ``-o`` a folder flairseg made, with --overwrite."""
    make_marked_folder(tmp / "features.csv")
    return ["shape", "-i", str(_case(tmp)), "-o", str(tmp / "features.csv"), "--overwrite", "--quiet"]


def _preprocess_over_its_volumes_label(tmp: Path) -> list[str]:
    """preprocess of a lone volume into its own label beside it (which it reads as the case's mask), --overwrite."""
    volume = _volume_with_truth(tmp)
    return ["preprocess", "-i", str(volume), "-o", str(tmp / "in" / "vol_mask.nii.gz"), "--overwrite", "--quiet"]


def _preprocess_a_case_named_as_the_marker(tmp: Path) -> list[str]:
    """A volume named ``.flairseg.nii.gz`` (case id '.flairseg', the name of the marker of a folder flairseg made),
    given by name (in a tree it is a hidden file, skipped)."""
    volume = _nifti(tmp, np.ones((16, 16, 4), np.float32), name=".flairseg.nii.gz")
    return ["preprocess", "-i", str(volume), "-o", str(tmp / "out"), "--quiet"]


def _evaluate_against_itself(tmp: Path) -> list[str]:
    """One folder given as both --pred and --truth (a slip of the shell history)."""
    _case(tmp)
    return ["evaluate", "--pred", str(tmp / "in"), "--truth", str(tmp / "in"), "-o", str(tmp / "out"), "--quiet"]


def _evaluate_prediction_a_case_of_truth(tmp: Path) -> list[str]:
    """A case folder of the truth tree given as the prediction."""
    case = _case(tmp)
    return ["evaluate", "--pred", str(case), "--truth", str(tmp / "in"), "-o", str(tmp / "out")]


def _evaluate_prediction_linked_to_truth(tmp: Path) -> list[str]:
    """A prediction folder whose case is a link to the truth's case."""
    case = _case(tmp)
    (tmp / "pred").mkdir()
    (tmp / "pred" / "CASE").symlink_to(case)
    return ["evaluate", "--pred", str(tmp / "pred"), "--truth", str(tmp / "in"), "-o", str(tmp / "out"), "--quiet"]


def _checkpoint_declaring_a_larger_network(tmp: Path) -> list[str]:
    """A consistent checkpoint of a U-Net of 2 features and depth 1 whose record declares 128 features and depth 3:
    refused by its tensors' names before the declared network is allocated."""
    model = UNet(features=2, depth=1, batch_norm=True)
    declared = ModelConfig(features=128, depth=3, batch_norm=True)
    path = save_model(model, declared, PreprocessConfig(), tmp / "model" / "m", task="abnormality")
    return _predict(tmp, _case(tmp), "--model", str(path))


def _onnx_model_a_fifo(tmp: Path) -> list[str]:
    """A named pipe given as the ONNX model: reading it would wait for a writer forever."""
    os.mkfifo(tmp / "m.onnx")
    return _predict(tmp, _case(tmp), "--model", str(tmp / "m.onnx"))


def _train_config_a_fifo(tmp: Path) -> list[str]:
    """A named pipe given as the training recipe."""
    os.mkfifo(tmp / "recipe.json")
    return [*_train(tmp), "--config", str(tmp / "recipe.json")]


def _case_id_too_long_for_its_outputs(tmp: Path) -> list[str]:
    """A tree of a short case and one named with 250 bytes (its slices X_<k>.tif: every input name is legal), whose
    brain probability map (<case>_brain_probability.nii.gz) and records (<case>_mask.json) could not be named."""
    _case(tmp, "CASE_A")
    case = _case(tmp, "CASE_B").rename(tmp / "in" / ("L" * 250))
    for path in case.iterdir():
        path.rename(case / path.name.replace("CASE_B", "X"))
    return ["predict", "-i", str(tmp / "in"), "-o", str(tmp / "out"), "--model", str(_zero_checkpoint(tmp)), "--quiet"]


def _cv_with_a_nan_in_a_later_fold(tmp: Path) -> list[str]:
    """A NaN pixel in the case fold 0 holds out, which the later folds train on."""
    from flairseg.config import TrainConfig
    from flairseg.data import make_split

    argv = ["cv", *_train(tmp)[1:]]
    argv[argv.index(str(tmp / "run"))] = str(tmp / "out")
    (case,) = make_split([f"CASE_{i}" for i in range(3)], "kfold", 3, 0, 1, TrainConfig().seed).test
    with_nan_pixel(tmp / "in" / case / f"{case}_2.tif")
    return argv


def _selection_of_linked_views(tmp: Path, store: Path) -> Path:
    """A selection tree whose case CASE is a link to a view's case folder, itself a folder of links to the files of
    ``store``'s case CASE: two levels of links between the tree and the files it reads."""
    (tmp / "view" / "CASE").mkdir(parents=True)
    for path in sorted((store / "CASE").iterdir()):
        (tmp / "view" / "CASE" / path.name).symlink_to(path)
    (tmp / "tree").mkdir()
    (tmp / "tree" / "CASE").symlink_to(tmp / "view" / "CASE")
    return tmp / "tree"


def _predict_onto_the_store_of_a_linked_view(tmp: Path) -> list[str]:
    """The store behind a selection of linked views given as the output: its truth masks would be replaced."""
    store = _case(tmp).parent.rename(tmp / "store")
    tree = _selection_of_linked_views(tmp, store)
    return ["predict", "-i", str(tree), "-o", str(store), "--overwrite", "--quiet"]


def _preprocess_onto_the_store_of_a_linked_view(tmp: Path) -> list[str]:
    """A flairseg-made store behind a selection of linked views given as preprocess's output: replacing it would
    delete the slices being read."""
    from flairseg.outputs import write_marker

    store = _case(tmp).parent.rename(tmp / "store")
    write_marker(store, "preprocessed cases")
    tree = _selection_of_linked_views(tmp, store)
    return ["preprocess", "-i", str(tree), "-o", str(store), "--overwrite", "--quiet"]


def _evaluate_prediction_slices_linked_to_truth(tmp: Path) -> list[str]:
    """A prediction case folder of its own whose mask slices are links to the truth's slices."""
    case = _case(tmp)
    (tmp / "pred" / "CASE").mkdir(parents=True)
    for path in sorted(case.glob("*_mask.tif")):
        (tmp / "pred" / "CASE" / path.name).symlink_to(path)
    return ["evaluate", "--pred", str(tmp / "pred"), "--truth", str(tmp / "in"), "-o", str(tmp / "out"), "--quiet"]


def _resume_with_an_emptied_data_record(tmp: Path) -> list[str]:
    """A trained run whose data.json was reduced to ``{}``, then a slice of its training case rewritten."""
    import json

    argv = _trained_run(tmp)
    (tmp / "old" / "data.json").write_text("{}")
    case = json.loads((tmp / "old" / "split.json").read_text())["train"][0]
    image = tmp / "in" / case / f"{case}_2.tif"
    tifffile.imwrite(image, 255 - tifffile.imread(image), photometric="rgb")
    return argv


def _cv_fold_with_a_data_record_lacking_a_case(tmp: Path) -> list[str]:
    """Fold 0 of a cross-validation trained, its data.json stripped of the training case, then that case rewritten."""
    import json

    argv = _cv_fold_on_changed_data(tmp)
    record = tmp / "cv" / "fold-0" / "data.json"
    case = json.loads((tmp / "cv" / "fold-0" / "split.json").read_text())["train"][0]
    record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != case}))
    return argv


def _thin_volume_over_the_budget(tmp: Path) -> list[str]:
    """A NIfTI FLAIR of 40 slices of 4 x 4 voxels: tiny itself, but each slice is resampled to the model's grid."""
    (tmp / "in").mkdir()
    nib.save(nib.Nifti1Image(np.ones((4, 4, 40), np.float32), np.eye(4)), tmp / "in" / "thin.nii.gz")
    return _predict(tmp, tmp / "in" / "thin.nii.gz", "--max-memory", "8M")


def _second_mask_off_its_volume(tmp: Path) -> list[str]:
    """Volumes TMP/in/v and w, each with its mask beside it: v's on its grid, w's of its shape 40 mm away."""
    _volume_beside(tmp / "in", np.zeros((8, 8, 4), np.uint8))
    shutil.copy(tmp / "in" / "v.nii.gz", tmp / "in" / "w.nii.gz")
    affine = np.eye(4)
    affine[0, 3] = 40.0
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.uint8), affine), tmp / "in" / "w_mask.nii.gz")
    return _predict(tmp, tmp / "in")


def _second_brats_t1ce_off_its_flair(tmp: Path) -> list[str]:
    """BraTS cases TMP/in/BraTS_1 and BraTS_2 (FLAIR, T1, T1c): BraTS_2's T1c of its FLAIR's shape 40 mm away."""
    for case in ("BraTS_1", "BraTS_2"):
        (tmp / "in" / case).mkdir(parents=True)
        for name in ("flair", "t1", "t1ce"):
            affine = np.eye(4)
            affine[0, 3] = 40.0 if (case, name) == ("BraTS_2", "t1ce") else 0.0
            data = np.random.default_rng(0).random((8, 8, 4), np.float32)
            nib.save(nib.Nifti1Image(data, affine), tmp / "in" / case / f"{case}_{name}.nii.gz")
    return _predict(tmp, tmp / "in")


def _second_kaggle_case_with_a_mask_of_another_size(tmp: Path) -> list[str]:
    _case(tmp, "CASE_A")
    tifffile.imwrite(_case(tmp, "CASE_B") / "CASE_B_2_mask.tif", np.zeros((16, 16), np.uint8))
    return _predict(tmp, tmp / "in")


def _second_kaggle_case_with_a_slice_of_another_size(tmp: Path) -> list[str]:
    _case(tmp, "CASE_A")
    tifffile.imwrite(_case(tmp, "CASE_B") / "CASE_B_2.tif", np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    return _predict(tmp, tmp / "in")


def _dicom_slice_of_another_size_beside_a_good_series(tmp: Path) -> list[str]:
    """DICOM series TMP/in/A and S of 5 slices of 6 x 6 pixels; S's slice002.dcm replaced by one of 4 x 4 pixels
    at its place, of its series."""
    from test_volumes import _write_dicom_series

    series = _dicom_series(tmp)
    shutil.copytree(series, tmp / "in" / "A")
    _write_dicom_series(tmp / "small", np.zeros((5, 4, 4)), (1.0, 1.0, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    shutil.copy(tmp / "small" / "slice002.dcm", series / "slice002.dcm")
    return _predict(tmp, tmp / "in")


def _cv_with_init(tmp: Path, init: Path) -> list[str]:
    """`cv` into TMP/cv of three cases, fine-tuning from ``init``."""
    argv = ["cv", *_train(tmp)[1:], "--init", str(init)]
    argv[argv.index(str(tmp / "run"))] = str(tmp / "cv")
    return argv


def _cv_init_not_a_checkpoint_record(tmp: Path) -> list[str]:
    """`cv --init list.json`, a JSON list beside a tensor file of the same name."""
    (tmp / "list.json").write_text("[]")
    (tmp / "list.safetensors").write_bytes(b"")
    return _cv_with_init(tmp, tmp / "list.json")


def _cv_init_a_folder(tmp: Path) -> list[str]:
    """`cv --init` a folder (a previous cross-validation run) rather than its ensemble."""
    (tmp / "previous").mkdir()
    return _cv_with_init(tmp, tmp / "previous")


def _cv_fold_record_replaced(tmp: Path, name: str, edit: Callable[[dict], object]) -> list[str]:
    """Fold 0 of a cross-validation trained, then its record ``name`` replaced by ``edit`` of it; `cv --fold 0`."""
    argv = ["cv", *_train(tmp)[1:], "--fold", "0"]
    argv[argv.index(str(tmp / "run"))] = str(tmp / "cv")
    assert main(argv) == 0
    _edit_json(tmp / "cv" / "fold-0" / name, edit)
    return argv


def _cv_fold_state_not_an_object(tmp: Path) -> list[str]:
    return _cv_fold_record_replaced(tmp, "last.json", lambda state: [])


def _cv_fold_state_epoch_not_a_number(tmp: Path) -> list[str]:
    return _cv_fold_record_replaced(tmp, "last.json", lambda state: {**state, "epoch": "x"})


def _cv_fold_recipe_not_an_object(tmp: Path) -> list[str]:
    return _cv_fold_record_replaced(tmp, "config.json", lambda recipe: None)


def _predicted_case_record_not_an_object(tmp: Path) -> list[str]:
    return _predicted_then(tmp, "records/CASE_mask.json", b"[]")


def _associate_hypothesis_twice(tmp: Path) -> list[str]:
    """One hypothesis given twice, once in capitals (features are named case-insensitively)."""
    clinical = "Patient,Cluster\n" + "".join(f"P{i},{'ab'[i % 2]}\n" for i in range(4))
    return _associate_with(tmp, clinical, "bevr:Cluster", "BEVR:Cluster")


def _associate_feature_all_infinite(tmp: Path) -> list[str]:
    """A features file whose bevr column is infinite for every case (another tool's, or hand-edited)."""
    argv = _associate_with(
        tmp, "Patient,Cluster\n" + "".join(f"P{i},{'ab'[i % 2]}\n" for i in range(4)), "bevr:Cluster"
    )
    (tmp / "f.csv").write_text("case_id,bevr\n" + "".join(f"P{i},inf\n" for i in range(4)))
    return argv


def _tiff_header_off_its_strips(tmp: Path) -> list[str]:
    """A zlib slice whose ImageWidth and ImageLength were patched to 60000 (a damaged header): tifffile logs the
    strip table's mismatch while the header is read."""
    import struct

    case = _case(tmp)
    path = case / "CASE_2.tif"
    tifffile.imwrite(path, tifffile.imread(path), compression="zlib", photometric="rgb")
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tiff:
        for tag in tiff.pages[0].tags.values():
            if tag.code in (256, 257):
                form = "<H" if tag.dtype == 3 else "<I"
                data[tag.valueoffset : tag.valueoffset + struct.calcsize(form)] = struct.pack(form, 60000)
    path.write_bytes(data)
    return _predict(tmp, case, "--max-memory", "1G")


def _evaluate_prediction_slice_linked_to_another_truth(tmp: Path) -> list[str]:
    """Two cases whose predictions are copies of their truths, but one slice of CASE's a link to OTHER's truth."""
    import shutil

    for name in ("CASE", "OTHER"):
        shutil.copytree(_case(tmp, name), tmp / "pred" / name)
    slice_1 = tmp / "pred" / "CASE" / "CASE_1_mask.tif"
    slice_1.unlink()
    slice_1.symlink_to(tmp / "in" / "OTHER" / "OTHER_1_mask.tif")
    return ["evaluate", "--pred", str(tmp / "pred"), "--truth", str(tmp / "in"), "-o", str(tmp / "out"), "--quiet"]


def _kaggle_slice_names_too_long_for_their_masks(tmp: Path) -> list[str]:
    """A tree of a short case and one whose slices are named with 245 bytes and their number (legal names), whose
    mask slices (<stem>_mask.tif, <stem>_brain.tif) could not be named."""
    _case(tmp, "CASE_A")
    case = _case(tmp, "CASE_B", masks=False)
    for path in case.iterdir():
        path.rename(case / path.name.replace("CASE_B", "S" * 245))
    return ["predict", "-i", str(tmp / "in"), "-o", str(tmp / "out"), "--model", str(_zero_checkpoint(tmp)), "--quiet"]


def _shape_of_a_case_its_run_did_not_finish(tmp: Path) -> list[str]:
    """Two volumes predicted, then one's voxel data cut short (its header intact) and the run repeated with
    --overwrite (it fails that case and keeps its earlier mask), then the masks measured."""
    import contextlib
    import gzip
    import io

    model = str(_zero_checkpoint(tmp))
    for name in ("a.nii.gz", "b.nii.gz"):
        _nifti(tmp, np.ones((16, 16, 4), np.float32), name=name)
    argv = ["predict", "-i", str(tmp / "in"), "-o", str(tmp / "pred"), "--model", model, "--quiet"]
    assert main(argv) == 0
    raw = gzip.decompress((tmp / "in" / "b.nii.gz").read_bytes())
    (tmp / "in" / "b.nii.gz").write_bytes(gzip.compress(raw[:-500]))
    with contextlib.redirect_stderr(io.StringIO()):  # its own one-line error, not the one documented
        assert main([*argv, "--overwrite"]) == 1
    return ["shape", "-i", str(tmp / "pred"), "-o", str(tmp / "shape.csv"), "--quiet"]


def _predict_truth_its_own_image(tmp: Path) -> list[str]:
    """A volume given as the image and as its truth (a slip between -i and --truth)."""
    image = np.arange(16 * 16 * 4, dtype=np.int16).reshape(16, 16, 4) % 200
    volume = _nifti(tmp, image)
    return [*_predict(tmp, volume), "--truth", str(volume), "--model", str(_zero_checkpoint(tmp))]


def _shape_of_images(tmp: Path) -> list[str]:
    """A tree of int16 FLAIR volumes (no masks) measured as masks: every voxel of the head would be foreground."""
    _nifti(tmp, np.arange(16 * 16 * 4, dtype=np.int16).reshape(16, 16, 4))
    return ["shape", "-i", str(tmp / "in"), "-o", str(tmp / "features.csv"), "--quiet"]


def _patch_not_a_multiple_of_the_depth(tmp: Path) -> list[str]:
    return _train(tmp, "--set", "patch=17")


def _onnx_answering_booleans(tmp: Path) -> list[str]:
    """An export whose logits are cast to booleans at the end of its graph, stamped again (its record matches)."""
    import json

    import onnx
    from onnx import TensorProto, helper

    from flairseg.export import export_onnx, stamped

    export_onnx(_zero_checkpoint(tmp), tmp / "m.onnx")
    exported = onnx.load(str(tmp / "m.onnx"))
    output = exported.graph.output[0]
    dims = [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim]
    exported.graph.node.append(helper.make_node("Cast", [output.name], ["y"], to=TensorProto.BOOL))
    output.CopyFrom(helper.make_tensor_value_info("y", TensorProto.BOOL, dims))
    (tmp / "m.onnx").write_bytes(stamped(exported, json.loads(exported.metadata_props[0].value)))
    return _predict(tmp, _case(tmp), "--model", str(tmp / "m.onnx"))


def _resume_with_edited_optimizer_settings(tmp: Path) -> list[str]:
    """A trained run whose training state was set back to its first epoch and given maximize=True (gradient ascent),
    saved again as flairseg saves one (its hashes match)."""
    from flairseg import checkpoint

    argv = _trained_run(tmp)
    tensors, meta = checkpoint.read(tmp / "old" / "last")
    for key in ("format_version", "flairseg_version", "weights", "sha256"):
        meta.pop(key)
    meta["epoch"] = meta["best_epoch"] = 0
    meta["optimizer_groups"][0]["maximize"] = True
    checkpoint.save(tensors, meta, tmp / "old" / "last")
    return argv


def _checkpoint_postprocess_value_nan(tmp: Path) -> list[str]:
    """A checkpoint whose postprocessing setting holds a NaN value (for a rule that does not use it)."""
    model = UNet(features=2, batch_norm=True)
    config = ModelConfig(features=2, batch_norm=True)
    postprocess = {"rule": "largest", "value": float("nan")}
    path = save_model(
        model, config, PreprocessConfig(), tmp / "model" / "m", task="abnormality", postprocess=postprocess
    )
    return _predict(tmp, _case(tmp), "--model", str(path))


def _checkpoint_of_float64_weights(tmp: Path) -> list[str]:
    """A checkpoint whose weights are stored as float64 (loading would cast them: beyond float32's range, infinite)."""
    model = UNet(features=2, batch_norm=True).double()
    path = save_model(
        model, ModelConfig(features=2, batch_norm=True), PreprocessConfig(), tmp / "m", task="abnormality"
    )
    return _predict(tmp, _case(tmp), "--model", str(path))


def _thin_long_slices(tmp: Path, variant: str) -> list[str]:
    """A Kaggle case of 3 RGB slices of 4 x 1000 pixels (36 KB of pixels) preprocessed under a 50 MB budget: the paper
    variants scale the short side to 256 (a 256 x 64000 plane), the port pads to a 1000 x 1000 square."""
    image = np.zeros((3, 4, 1000, 3), np.uint8)
    image[:, 1:3, 100:900] = 100
    write_kaggle_case(tmp / "in", "CASE", image, None)
    argv = ["preprocess", "-i", str(tmp / "in"), "-o", str(tmp / "out"), "--variant", variant]
    return [*argv, "--max-memory", "50M", "--quiet"]


def _thin_long_slices_paper(tmp: Path) -> list[str]:
    return _thin_long_slices(tmp, "paper-brain")


def _thin_long_slices_port(tmp: Path) -> list[str]:
    return _thin_long_slices(tmp, "port")


def _dicom_rescale_slope_nan(tmp: Path) -> list[str]:
    """A DICOM series whose second slice's Rescale Slope is NaN (GDCM would leave its values unscaled)."""
    return _predict_edited_dicom_series(tmp, 255, "RescaleSlope", "NaN", slice(1, 2))


def _thin_volume_second_in_a_tree(tmp: Path) -> list[str]:
    """A tree of a small volume and one of 40 slices of 4 x 4 voxels, under an 8 MB budget: the second's model grid
    is over it, found from its header before the first is written."""
    (tmp / "in").mkdir()
    nib.save(nib.Nifti1Image(np.ones((16, 16, 3), np.float32), np.eye(4)), tmp / "in" / "a.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 40), np.float32), np.eye(4)), tmp / "in" / "thin.nii.gz")
    return _predict(tmp, tmp / "in", "--max-memory", "8M", "--model", str(_zero_checkpoint(tmp)))


def _shape_of_the_mask_file_of_a_case_its_run_did_not_finish(tmp: Path) -> list[str]:
    """As ``shape-of-a-case-its-run-did-not-finish``, the failed case's mask file named itself."""
    _shape_of_a_case_its_run_did_not_finish(tmp)
    return ["shape", "-i", str(tmp / "pred" / "b_mask.nii.gz"), "-o", str(tmp / "shape.csv"), "--quiet"]


def _shape_of_brain_masks(tmp: Path) -> list[str]:
    """A folder of brain masks (``<case>_brain.nii.gz``, a brain run's output) measured as tumour masks."""
    (tmp / "in").mkdir()
    for name in ("C0", "C1"):
        nib.save(nib.Nifti1Image(np.ones((8, 8, 3), np.uint8), np.eye(4)), tmp / "in" / f"{name}_brain.nii.gz")
    return ["shape", "-i", str(tmp / "in"), "-o", str(tmp / "features.csv"), "--quiet"]


def _cv_over_a_users_report(tmp: Path) -> list[str]:
    """A user's project folder (no marker) holding their own report/summary.md and a fold run they trained with
    `train -o proj/fold-0 --fold 0`; then cv into the project folder."""
    argv = _train(tmp)
    argv[argv.index(str(tmp / "run"))] = str(tmp / "proj" / "fold-0")
    (tmp / "proj" / "report").mkdir(parents=True)
    (tmp / "proj" / "report" / "summary.md").write_text("my own notes on the cases")
    assert main([*argv, "--fold", "0"]) == 0
    argv[argv.index(str(tmp / "proj" / "fold-0"))] = str(tmp / "proj")
    return ["cv", *argv[1:]]


def _predict_into_a_users_report_with_records(tmp: Path) -> list[str]:
    """A user's own report folder that holds a records/ folder of their notes (``records/CASE.json``)."""
    argv = _predict_into_a_users_report(tmp)
    (tmp / "study" / "report" / "records").mkdir()
    (tmp / "study" / "report" / "records" / "CASE.json").write_text('{"reviewed": true}')
    return argv


def _cv_fold_holding_another_folds_model(tmp: Path) -> list[str]:
    """Both folds of a cross-validation trained, then fold 1's best model copied over fold 0's (a mixed-up restore),
    then cv to evaluate them."""
    argv = ["cv", *_train(tmp)[1:]]
    argv[argv.index(str(tmp / "run"))] = str(tmp / "cv")
    for fold in ("0", "1"):
        assert main([*argv, "--fold", fold]) == 0
    for name in ("best.json", "best.safetensors"):
        shutil.copy(tmp / "cv" / "fold-1" / name, tmp / "cv" / "fold-0" / name)
    return argv


def _mask_file_named_as_the_truth(tmp: Path) -> list[str]:
    """One volume without a mask, predicted into the file flairseg reads as its truth (``vol_mask.nii.gz`` beside)."""
    volume = _nifti(tmp, np.ones((16, 16, 4), np.float32))
    return [*_predict(tmp, volume), "-o", str(tmp / "in" / "vol_mask.nii.gz"), "--model", str(_zero_checkpoint(tmp))]


def _resume_with_another_runs_best_model(tmp: Path) -> list[str]:
    """A finished run resumed after its best model was replaced by that of another run on another split."""
    argv = _train(tmp)
    for run, extra in (("old", []), ("other", ["--fold", "1"])):
        assert main([*(str(tmp / run) if arg == str(tmp / "run") else arg for arg in argv), *extra]) == 0
    for name in ("best.json", "best.safetensors"):
        shutil.copy(tmp / "other" / name, tmp / "old" / name)
    return ["train", "--data", str(tmp / "in"), "-o", str(tmp / "old"), "--resume", "--quiet"]


def _recipe_with_true_for_a_number(tmp: Path) -> list[str]:
    """A recipe file (JSON) whose fold is true: it would train fold 1."""
    (tmp / "recipe.json").write_text('{"fold": true}')
    return _train(tmp, "--config", str(tmp / "recipe.json"))


def _jpeg_strip_larger_than_its_slice(tmp: Path) -> list[str]:
    """A Kaggle case of JPEG-compressed 32 x 32 slices, slice 2's one strip replaced by a 4000 x 4000 JPEG (its header
    still declares 32 x 32): decoded whole before it is cropped."""
    import struct

    import imagecodecs

    case = tmp / "in" / "CASE"
    case.mkdir(parents=True)
    for k in range(1, 4):
        tifffile.imwrite(case / f"CASE_{k}.tif", np.full((32, 32), 100, np.uint8), compression="jpeg", rowsperstrip=32)
    raw = bytearray((case / "CASE_2.tif").read_bytes())
    big = imagecodecs.jpeg8_encode(np.zeros((4000, 4000), np.uint8), level=10)
    with tifffile.TiffFile(case / "CASE_2.tif") as tiff:
        offsets, counts = tiff.pages[0].tags["StripOffsets"], tiff.pages[0].tags["StripByteCounts"]
        for tag, value in ((offsets, len(raw)), (counts, len(big))):
            struct.pack_into("<I" if int(tag.dtype) == 4 else "<H", raw, tag.valueoffset, value)
    (case / "CASE_2.tif").write_bytes(bytes(raw + big))
    return _predict(tmp, case, "--max-memory", "50M", "--model", str(_zero_checkpoint(tmp)))


def _case_id_of_another_spelling_into_one_folder(tmp: Path) -> list[str]:
    """Volume CaseA predicted into a folder, then volume casea of another tree into it (one file on macOS)."""
    model = str(_zero_checkpoint(tmp))
    for tree, name in (("in", "CaseA"), ("in2", "casea")):
        (tmp / tree).mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(np.ones((16, 16, 4), np.float32), np.eye(4)), tmp / tree / f"{name}.nii.gz")
    assert main(["predict", "-i", str(tmp / "in"), "-o", str(tmp / "pred"), "--model", model, "--quiet"]) == 0
    return ["predict", "-i", str(tmp / "in2"), "-o", str(tmp / "pred"), "--model", model, "--quiet"]


def _evaluate_over_a_training_run(tmp: Path) -> list[str]:
    """A trained run (its weights), then `evaluate -o` it with --overwrite (a mistyped output)."""
    _trained_run(tmp)
    return ["evaluate", "--pred", str(tmp / "in"), "--truth", str(tmp / "in"), "-o", str(tmp / "old"), "--overwrite"]


def _associate_clinical_a_folder(tmp: Path) -> list[str]:
    """`associate --clinical` given a folder (the folder of the clinical files, not the CSV)."""
    (tmp / "features.csv").write_text("case_id,asd\nP1,1.0\n")
    (tmp / "clinical").mkdir()
    return [
        "associate",
        "--features",
        str(tmp / "features.csv"),
        "--clinical",
        str(tmp / "clinical"),
        "-o",
        str(tmp / "out"),
    ]


def _predict_into_preprocessed_cases(tmp: Path) -> list[str]:
    """A folder `preprocess` made (its masks the training labels), given as predict's output with --overwrite."""
    case = _case(tmp)
    assert main(["preprocess", "-i", str(tmp / "in"), "-o", str(tmp / "pp"), "--quiet"]) == 0
    return ["predict", "-i", str(case), "-o", str(tmp / "pp"), "--model", str(_zero_checkpoint(tmp)), "--overwrite"]


def _dicom_monochrome1(tmp: Path) -> list[str]:
    """A DICOM series whose second slice is stored as MONOCHROME1 (GDCM reads it inverted, into negative values)."""
    return _predict_edited_dicom_series(tmp, 100, "PhotometricInterpretation", "MONOCHROME1", slice(1, 2))


def _kaggle_slices_of_two_bit_depths(tmp: Path) -> list[str]:
    """A Kaggle case whose second slice is saved as 16-bit among 8-bit slices."""
    case = _case(tmp)
    path = case / "CASE_2.tif"
    tifffile.imwrite(path, tifffile.imread(path).astype(np.uint16) * 257, photometric="rgb")
    return _predict(tmp, case, "--model", str(_zero_checkpoint(tmp)))


def _recipe_with_a_key_twice(tmp: Path) -> list[str]:
    (tmp / "recipe.json").write_text('{"epochs": 1, "epochs": 2}')
    return _train(tmp, "--config", str(tmp / "recipe.json"))


def _volume_of_negative_values(tmp: Path) -> list[str]:
    """A NIfTI FLAIR whose values are all negative (a slope of -1 applied by a converter)."""
    volume = _nifti(tmp, -np.arange(1, 16 * 16 * 4 + 1, dtype=np.float32).reshape(16, 16, 4))
    return _predict(tmp, volume, "--model", str(_zero_checkpoint(tmp)))


def _shape_over_a_clinical_table(tmp: Path) -> list[str]:
    """A clinical table TMP/data.csv given as shape's output, with --overwrite."""
    (tmp / "data.csv").write_text("Patient,RNASeqCluster\nTCGA_CS_4941,2\n")
    return ["shape", "-i", str(_case(tmp)), "-o", str(tmp / "data.csv"), "--overwrite", "--quiet"]


def _export_over_an_onnx_file_of_another_tool(tmp: Path) -> list[str]:
    """TMP/model.onnx, a file flairseg did not export, given as export's output, with --overwrite."""
    (tmp / "model.onnx").write_bytes(b"\x08\x07another tool's model")
    return ["export", "--onnx", "--model", str(_zero_checkpoint(tmp)), "-o", str(tmp / "model.onnx"), "--overwrite"]


def _mask_file_over_another_scan(tmp: Path) -> list[str]:
    """Two patients' volumes side by side; one predicted into a mask file named as the other's scan, --overwrite."""
    first = _nifti(tmp, np.ones((16, 16, 4), np.float32), name="a.nii.gz")
    _nifti(tmp, np.ones((16, 16, 4), np.float32), name="b.nii.gz")
    model = str(_zero_checkpoint(tmp))
    return ["predict", "-i", str(first), "-o", str(tmp / "in" / "b.nii.gz"), "--model", model, "--overwrite", "--quiet"]


def _mask_file_report_over_a_tree_prediction(tmp: Path) -> list[str]:
    """A tree predicted into TMP/study_flairseg; then one volume into the mask file TMP/study.nii.gz (whose report
    folder is study_flairseg), --overwrite."""
    volume = _nifti(tmp, np.ones((16, 16, 4), np.float32))
    model = str(_zero_checkpoint(tmp))
    assert main(["predict", "-i", str(tmp / "in"), "-o", str(tmp / "study_flairseg"), "--model", model, "--quiet"]) == 0
    return ["predict", "-i", str(volume), "-o", str(tmp / "study.nii.gz"), "--model", model, "--overwrite", "--quiet"]


def _flair_option_given_a_label(tmp: Path) -> list[str]:
    """A volume's mask beside it given as --flair."""
    _nifti(tmp, np.ones((16, 16, 4), np.float32), name="v.nii.gz")
    mask = _nifti(tmp, np.zeros((16, 16, 4), np.uint8), name="v_mask.nii.gz")
    return ["predict", "--flair", str(mask), "-o", str(tmp / "out"), "--model", str(_zero_checkpoint(tmp)), "--quiet"]


def _t1_option_given_the_flair(tmp: Path) -> list[str]:
    """One file given as --flair and as --t1."""
    volume = _nifti(tmp, np.ones((16, 16, 4), np.float32))
    model = str(_zero_checkpoint(tmp))
    return ["predict", "--flair", str(volume), "--t1", str(volume), "-o", str(tmp / "out"), "--model", model, "--quiet"]


def _truth_option_given_the_flair_file(tmp: Path) -> list[str]:
    """A volume given as --flair and as its --truth."""
    volume = _nifti(tmp, np.arange(16 * 16 * 4, dtype=np.int16).reshape(16, 16, 4) % 200)
    model = str(_zero_checkpoint(tmp))
    return ["predict", "--flair", str(volume), "--truth", str(volume), "-o", str(tmp / "out"), "--model", model]


def _predict_into_a_cross_validations_masks(tmp: Path) -> list[str]:
    """A cross-validation folder TMP/cv (its marker); predict into its out-of-fold masks' folder, --overwrite."""
    make_marked_folder(tmp / "cv", "cross-validation")
    (tmp / "cv" / "predictions").mkdir()
    case, model, out = str(_case(tmp)), str(_zero_checkpoint(tmp)), str(tmp / "cv" / "predictions")
    return ["predict", "-i", case, "-o", out, "--model", model, "--overwrite", "--quiet"]


def _output_that_is_a_pipe(tmp: Path) -> list[str]:
    """A named pipe TMP/features.csv given as shape's output, with --overwrite."""
    os.mkfifo(tmp / "features.csv")
    return ["shape", "-i", str(_case(tmp)), "-o", str(tmp / "features.csv"), "--overwrite", "--quiet"]


def _input_that_is_a_pipe(tmp: Path) -> list[str]:
    """A named pipe given as the input volume (``-i <(zcat v.nii.gz)`` makes one)."""
    os.mkfifo(tmp / "v.nii.gz")
    return _predict(tmp, tmp / "v.nii.gz")


def _tree_with_a_volume_in_a_plain_folder(tmp: Path) -> list[str]:
    """TMP/in/a.nii.gz beside TMP/in/b/b.nii.gz: a folder no naming convention makes a case folder."""
    _nifti(tmp, np.ones((16, 16, 4), np.float32), name="a.nii.gz")
    (tmp / "in" / "b").mkdir()
    nib.save(nib.Nifti1Image(np.ones((16, 16, 4), np.float32), np.eye(4)), tmp / "in" / "b" / "b.nii.gz")
    return _predict(tmp, tmp / "in", "--model", str(_zero_checkpoint(tmp)))


def _truth_file_of_another_task(tmp: Path) -> list[str]:
    """A volume predicted with --truth its brain mask (``v_brain.nii.gz``), a brain run's output."""
    volume = _nifti(tmp, np.ones((16, 16, 4), np.float32), name="v.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((16, 16, 4), np.uint8), np.eye(4)), tmp / "v_brain.nii.gz")
    return _predict(tmp, volume, "--truth", str(tmp / "v_brain.nii.gz"), "--model", str(_zero_checkpoint(tmp)))


def _kaggle_slice_stored_white_at_zero(tmp: Path) -> list[str]:
    """A Kaggle case whose slice 2 is stored MinIsWhite (grey levels inverted; TIFF's form of MONOCHROME1)."""
    case = _case(tmp)
    grey = tifffile.imread(case / "CASE_2.tif")[..., 1]
    tifffile.imwrite(case / "CASE_2.tif", 255 - grey, photometric="miniswhite")
    return _predict(tmp, case, "--model", str(_zero_checkpoint(tmp)))


def _kaggle_mask_stored_bottom_up(tmp: Path) -> list[str]:
    """A Kaggle case whose mask slice 1 is stored bottom-up (TIFF Orientation 4: displayed right, read flipped)."""
    case = _case(tmp)
    shutil.copytree(case, tmp / "pred" / "CASE")
    mask = tifffile.imread(case / "CASE_1_mask.tif")
    tifffile.imwrite(case / "CASE_1_mask.tif", mask[::-1].copy(), extratags=[(274, 3, 1, 4, True)])
    return ["evaluate", "--pred", str(tmp / "pred"), "--truth", str(tmp / "in"), "-o", str(tmp / "report"), "--quiet"]


def _case_named_in_another_encoding(tmp: Path) -> list[str]:
    """A Kaggle case whose folder name holds the byte 0xFF (a Latin-1 name copied from an old share)."""
    image, mask = phantom(slices=3, size=32)
    write_kaggle_case(tmp / "in", os.fsdecode(b"Q\xff"), image, mask)
    return ["shape", "-i", str(tmp / "in"), "-o", str(tmp / "f.csv"), "--quiet"]


def _run_folder_as_the_model(tmp: Path) -> list[str]:
    """A training run's folder given as --model (its model is RUN/best.json)."""
    _trained_run(tmp)
    return _predict(tmp, _case(tmp, "OTHER"), "--model", str(tmp / "old"))


def _lock_path_taken_by_the_recipe(tmp: Path) -> list[str]:
    """The recipe kept as TMP/.run.lock, the name of the lock flairseg keeps beside the run folder TMP/run."""
    (tmp / ".run.lock").write_text('{"epochs": 1}')
    return _train(tmp, "--config", str(tmp / ".run.lock"))


def _kaggle_slice_compressed_as_png(tmp: Path) -> list[str]:
    """A Kaggle case whose slice 2 is a PNG-compressed TIFF (each strip a PNG of any size, decoded whole)."""
    case = _case(tmp)
    tifffile.imwrite(case / "CASE_2.tif", tifffile.imread(case / "CASE_2.tif"), photometric="rgb", compression="png")
    return _predict(tmp, case, "--model", str(_zero_checkpoint(tmp)))


def _nifti_with_a_huge_header_extension(tmp: Path) -> list[str]:
    """A small .nii.gz whose header carries a 4 MB extension (zeros, a few kB compressed), under a 2 MB budget."""
    image = nib.Nifti1Image(np.ones((16, 16, 4), np.float32), np.eye(4))
    image.header.extensions.append(nib.nifti1.Nifti1Extension(4, b"\0" * (4 * 2**20 - 8)))
    (tmp / "in").mkdir()
    nib.save(image, tmp / "in" / "vol.nii.gz")
    return _predict(tmp, tmp / "in" / "vol.nii.gz", "--max-memory", "2M")


def _tree_with_a_case_in_a_site_folder(tmp: Path) -> list[str]:
    """Kaggle cases TMP/in/CASE_A and TMP/in/site2/CASE_B (a per-site folder one level down)."""
    _case(tmp, "CASE_A")
    image, mask = phantom(slices=3, size=32)
    write_kaggle_case(tmp / "in" / "site2", "CASE_B", image, mask)
    return _predict(tmp, tmp / "in", "--model", str(_zero_checkpoint(tmp)))


def _kaggle_case_with_slices_in_a_subfolder(tmp: Path) -> list[str]:
    """A Kaggle case of a tree whose last slice and its mask lie in a subfolder of the case (TMP/in/CASE/more)."""
    case = _case(tmp, slices=4)
    (case / "more").mkdir()
    for name in ("CASE_4.tif", "CASE_4_mask.tif"):
        (case / name).rename(case / "more" / name)
    return _predict(tmp, tmp / "in", "--model", str(_zero_checkpoint(tmp)))


def _kaggle_slice_stored_as_a_volume(tmp: Path) -> list[str]:
    """A Kaggle case whose slice 2 is a volumetric TIFF page (ImageDepth 32, 32 rows, 3 columns)."""
    case = _case(tmp)
    volume = np.zeros((32, 32, 3), np.uint8)
    tifffile.imwrite(case / "CASE_2.tif", volume, volumetric=True, tile=(16, 16), photometric="minisblack")
    return _predict(tmp, case, "--model", str(_zero_checkpoint(tmp)))


def _kaggle_jpeg_strip_sized_past_its_head(tmp: Path) -> list[str]:
    """A Kaggle case whose slice 2 is a JPEG-compressed TIFF whose strip puts 128 kB of APP1 segments before its frame
    header (the size is found only past the first 64 kB)."""
    case = _case(tmp)
    tifffile.imwrite(case / "CASE_2.tif", tifffile.imread(case / "CASE_2.tif"), photometric="rgb", compression="jpeg")
    with tifffile.TiffFile(case / "CASE_2.tif") as tiff:
        offset, count = tiff.pages[0].dataoffsets[0], tiff.pages[0].databytecounts[0]
    data = (case / "CASE_2.tif").read_bytes()
    app1 = b"\xff\xe1" + (65533).to_bytes(2, "big") + bytes(65531)
    strip = data[offset : offset + 2] + app1 * 2 + data[offset + 2 : offset + count]
    image = tifffile.imread(case / "CASE_1.tif")
    tifffile.imwrite(
        case / "CASE_2.tif",
        iter([strip]),
        shape=image.shape,
        dtype=np.uint8,
        photometric="rgb",
        compression="jpeg",
        rowsperstrip=image.shape[0],
    )
    return _predict(tmp, case, "--model", str(_zero_checkpoint(tmp)))


def _part_dealt_from_another_tree(tmp: Path) -> list[str]:
    """Part 0/2 of a tree of three cases predicted, then a case added to the tree, then part 1/2: the cases would be
    dealt anew, and one could fall in neither part."""
    for name in ("CASE_0", "CASE_1", "CASE_2"):
        _case(tmp, name)
    model, out = str(_zero_checkpoint(tmp)), str(tmp / "parts")
    argv = ["predict", "-i", str(tmp / "in"), "-o", out, "--model", model, "--quiet", "--part"]
    assert main([*argv, "0/2"]) == 0
    _case(tmp, "CASE_00")
    return [*argv, "1/2"]


def _checkpoint_named_across_lines(tmp: Path) -> list[str]:
    """A checkpoint whose JSON name holds a line break and a markdown heading (it titles the report)."""
    config = ModelConfig(features=2, batch_norm=True)
    path = save_model(UNet(**vars(config)), config, PreprocessConfig(), tmp / "model" / "m", name="m\n# Released")
    return _predict(tmp, _case(tmp), "--model", str(path))


def _kaggle_case_holding_a_nifti(tmp: Path) -> list[str]:
    """A tree of Kaggle cases CASE_A and CASE_B, CASE_B's folder also holding a NIfTI volume P0.nii.gz."""
    _case(tmp, "CASE_A")
    nib.save(nib.Nifti1Image(np.ones((32, 32, 3), np.float32), np.eye(4)), _case(tmp, "CASE_B") / "P0.nii.gz")
    return _predict(tmp, tmp / "in", "--model", str(_zero_checkpoint(tmp)))


def _dicom_series_holding_tiff_slices(tmp: Path) -> list[str]:
    """A DICOM series folder that also holds a Kaggle case's TIFF slices (S_1.tif..S_3.tif)."""
    series = _dicom_series(tmp)
    for k, plane in enumerate(phantom(slices=3, size=32)[0], start=1):
        tifffile.imwrite(series / f"S_{k}.tif", plane, photometric="rgb")
    return _predict(tmp, series, "--model", str(_zero_checkpoint(tmp)))


def _bids_dataset(tmp: Path, *folders: str) -> Path:
    """A BIDS dataset TMP/bids whose subjects sub-01, sub-02, ... lie in ``folders`` (relative to its root)."""
    root = tmp / "bids"
    for k, folder in enumerate(folders, start=1):
        (root / folder).mkdir(parents=True)
        volume = nib.Nifti1Image(np.ones((16, 16, 4), np.float32), np.eye(4))
        nib.save(volume, root / folder / f"sub-{k:02d}_FLAIR.nii.gz")
    (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.8.0"}')
    return root


def _bids_subject_in_a_report_folder(tmp: Path) -> list[str]:
    """A BIDS dataset whose second subject's FLAIR lies in a folder named report (its mask would go to the run's)."""
    return _predict(tmp, _bids_dataset(tmp, "sub-01/anat", "report"), "--model", str(_zero_checkpoint(tmp)))


def _kaggle_case_in_a_bids_dataset(tmp: Path) -> list[str]:
    """A BIDS dataset that also holds a Kaggle case folder CASE (its masks would go to a folder named as a NIfTI)."""
    root = _bids_dataset(tmp, "sub-01/anat")
    image, mask = phantom(slices=3, size=32)
    write_kaggle_case(root, "CASE", image, mask)
    return _predict(tmp, root, "--model", str(_zero_checkpoint(tmp)))


def _checkpoint_named_as_a_release(tmp: Path) -> list[str]:
    """A checkpoint of the user's own weights whose JSON gives it the released default's name."""
    config = ModelConfig(features=2, batch_norm=True)
    path = save_model(
        UNet(**vars(config)), config, PreprocessConfig(), tmp / "model" / "m", name="abnormality-lgg-cv5-v3"
    )
    return _predict(tmp, _case(tmp), "--model", str(path))


def _thin_dicom_series_over_the_budget_in_a_tree(tmp: Path) -> list[str]:
    """A tree of a Kaggle case CASE_A (3 slices of 32 x 32) and a DICOM series S of 40 slices of 6 x 6 pixels under a
    20 MB budget: S is tiny itself, but each slice is resampled to the model's 256 x 256 grid."""
    series = _dicom_series(tmp, slices=40)
    _case(tmp, "CASE_A")
    return _predict(tmp, series.parent, "--max-memory", "20M", "--model", str(_zero_checkpoint(tmp)))


def _brats_case_over_the_budget_on_the_model_grid(tmp: Path) -> list[str]:
    """A tree of a Kaggle case and a BraTS case of a FLAIR and a T1 of 10 slices of 16 x 16 under a 20 MB budget: its
    FLAIR alone fits on the model's 256 x 256 grid (16 MB), the three channels read with its T1 do not."""
    folder = tmp / "in" / "BraTS_1"
    folder.mkdir(parents=True)
    for name in ("flair", "t1"):
        data = np.random.default_rng(0).integers(1, 255, (16, 16, 10), np.uint8)
        nib.save(nib.Nifti1Image(data, np.eye(4)), folder / f"BraTS_1_{name}.nii.gz")
    _case(tmp, "CASE_A")
    return _predict(tmp, tmp / "in", "--max-memory", "20M", "--model", str(_zero_checkpoint(tmp)))


def _resumed_run_with_a_linked_log(tmp: Path) -> list[str]:
    """A training run copied with links (``cp -rs``): its log.csv, which a resumed run appends to, a link to a file
    outside it."""
    data = _case(tmp).parent
    make_marked_folder(tmp / "old", "training run")
    (tmp / "notes.txt").write_text("mine\n")
    (tmp / "old" / "log.csv").symlink_to(tmp / "notes.txt")
    return ["train", "--data", str(data), "-o", str(tmp / "old"), "--resume", "--quiet"]


def _unrecorded_probability_map_of_a_recorded_case(tmp: Path) -> list[str]:
    """A volume predicted into TMP/pred (its record names its mask alone), then a file of the user's put where its
    probability map goes, then predicted again with --probabilities --overwrite."""
    (tmp / "in").mkdir()
    image = np.random.default_rng(0).integers(1, 255, (32, 32, 4)).astype(np.float32)
    nib.save(nib.Nifti1Image(image, np.eye(4)), tmp / "in" / "vol.nii.gz")
    argv = ["predict", "-i", str(tmp / "in"), "-o", str(tmp / "pred"), "--model", str(_zero_checkpoint(tmp)), "--quiet"]
    assert main(argv) == 0
    (tmp / "pred" / "vol_probability.nii.gz").write_text("another tool's map")
    return [*argv, "--probabilities", "--overwrite"]


def _tree_with_a_case_in_a_folder_named_for_labels(tmp: Path) -> list[str]:
    """Kaggle cases TMP/in/CASE_A and TMP/in/seguimiento/CASE_B (a follow-up folder whose name starts as a label
    folder's, seg*)."""
    _case(tmp, "CASE_A")
    image, mask = phantom(slices=3, size=32)
    write_kaggle_case(tmp / "in" / "seguimiento", "CASE_B", image, mask)
    return _predict(tmp, tmp / "in", "--model", str(_zero_checkpoint(tmp)))


def _kaggle_slice_cut_inside_its_strip(tmp: Path) -> list[str]:
    """A tree of Kaggle cases CASE_0 and CASE_1, CASE_1's slice 2 cut 200 bytes short inside its one uncompressed strip
    (its header intact)."""
    _case(tmp, "CASE_0")
    cut = _case(tmp, "CASE_1") / "CASE_1_2.tif"
    cut.write_bytes(cut.read_bytes()[:-200])
    return _predict(tmp, tmp / "in", "--model", str(_zero_checkpoint(tmp)))


def _nifti_cut_by_less_than_its_header(tmp: Path) -> list[str]:
    """Two uncompressed int16 volumes P0.nii and P1.nii of 32 x 32 x 4 voxels (8,192 bytes after 352 of header), P1
    cut 300 bytes short: the file still holds more bytes than its voxels take."""
    (tmp / "in").mkdir()
    for name in ("P0", "P1"):
        volume = np.random.default_rng(0).integers(1, 255, (32, 32, 4)).astype(np.int16)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp / "in" / f"{name}.nii")
    cut = tmp / "in" / "P1.nii"
    cut.write_bytes(cut.read_bytes()[:-300])
    return _predict(tmp, tmp / "in", "--model", str(_zero_checkpoint(tmp)))


def _train_into_a_cross_validations_fold(tmp: Path) -> list[str]:
    """`train -o CV/fold-0 --overwrite`, CV a cross-validation (its fold-0 a training run it made)."""
    make_marked_folder(tmp / "cv", "cross-validation")
    make_marked_folder(tmp / "cv" / "fold-0", "training run")
    return ["train", "--data", str(_case(tmp).parent), "-o", str(tmp / "cv" / "fold-0"), "--overwrite", "--quiet"]


def _preprocess_into_a_training_run(tmp: Path) -> list[str]:
    """`preprocess -o RUN/pp`, RUN a training run (which `train --overwrite` would replace with it)."""
    make_marked_folder(tmp / "old", "training run")
    return ["preprocess", "-i", str(_case(tmp)), "-o", str(tmp / "old" / "pp")]


def _file_named_as_a_kaggle_cases_output_folder(tmp: Path) -> list[str]:
    """A user's file TMP/pred/CASE where the Kaggle case CASE's mask folder goes."""
    (tmp / "pred").mkdir()
    (tmp / "pred" / "CASE").write_text("my notes")
    model = str(_zero_checkpoint(tmp))
    return ["predict", "-i", str(_case(tmp).parent), "-o", str(tmp / "pred"), "--model", model, "--quiet"]


def _resumed_run_with_a_pipe_as_its_log(tmp: Path) -> list[str]:
    """A training run whose log.csv, which a resumed run reads and appends to, is a named pipe."""
    data = _case(tmp).parent
    make_marked_folder(tmp / "old", "training run")
    os.mkfifo(tmp / "old" / "log.csv")
    return ["train", "--data", str(data), "-o", str(tmp / "old"), "--resume", "--quiet"]


def _t1c_option_given_another_cases_flair(tmp: Path) -> list[str]:
    """`--flair A_flair.nii.gz --t1c B_flair.nii.gz`: BraTS-named FLAIRs of two cases, the second given as the T1c."""
    flair, other = (_nifti(tmp, np.ones((16, 16, 4), np.float32), name=f"{case}_flair.nii.gz") for case in "AB")
    model = str(_zero_checkpoint(tmp))
    return ["predict", "--flair", str(flair), "--t1c", str(other), "-o", str(tmp / "out"), "--model", model, "--quiet"]


def _t1_option_given_another_cases_t1(tmp: Path) -> list[str]:
    """`--flair A_flair.nii.gz --t1 B_t1.nii.gz`: BraTS-named volumes of two cases."""
    flair = _nifti(tmp, np.ones((16, 16, 4), np.float32), name="A_flair.nii.gz")
    other = _nifti(tmp, np.ones((16, 16, 4), np.float32), name="B_t1.nii.gz")
    model = str(_zero_checkpoint(tmp))
    return ["predict", "--flair", str(flair), "--t1", str(other), "-o", str(tmp / "out"), "--model", model, "--quiet"]


def _truth_named_for_a_case_in_other_letters(tmp: Path) -> list[str]:
    """Volumes A and B, their --truth masks a_mask.nii.gz (A's, in lower case) and B_mask.nii.gz."""
    for name, folder in (("A", "in"), ("B", "in"), ("a_mask", "truth"), ("B_mask", "truth")):
        (tmp / folder).mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(np.ones((16, 16, 4), np.uint8), np.eye(4)), tmp / folder / f"{name}.nii.gz")
    model = str(_zero_checkpoint(tmp))
    return _predict(tmp, tmp / "in", "--truth", str(tmp / "truth"), "--model", model)


def _mask_file_named_as_its_flair_in_other_letters(tmp: Path) -> list[str]:
    """`predict -i in/P1_flair.nii.gz -o in/p1_flair.nii.gz`: the mask named as the case's FLAIR in other letter case
    (a second FLAIR of the case where case is ignored, another case's where it is not)."""
    flair = _nifti(tmp, np.ones((16, 16, 4), np.float32), name="P1_flair.nii.gz")
    model = str(_zero_checkpoint(tmp))
    return ["predict", "-i", str(flair), "-o", str(flair.with_name("p1_flair.nii.gz")), "--model", model, "--quiet"]


def _case_output_folder_linked_outside(tmp: Path) -> list[str]:
    """An output folder whose CASE entry (where the Kaggle case CASE's masks go) is a link to a user's folder of that
    case's slices, outside the output and no input of the run."""
    case = _case(tmp)
    shutil.copytree(case, tmp / "user" / "CASE")
    (tmp / "pred").mkdir()
    (tmp / "pred" / "CASE").symlink_to(tmp / "user" / "CASE")
    model = str(_zero_checkpoint(tmp))
    return ["predict", "-i", str(case.parent), "-o", str(tmp / "pred"), "--model", model, "--quiet"]


def _kaggle_slices_of_two_bit_depths_in_a_tree(tmp: Path) -> list[str]:
    """A tree of Kaggle cases CASE_A and CASE_B, CASE_B's slice 2 saved as uint16 (the others uint8)."""
    _case(tmp, "CASE_A")
    case = _case(tmp, "CASE_B")
    tifffile.imwrite(case / "CASE_B_2.tif", tifffile.imread(case / "CASE_B_2.tif").astype(np.uint16), photometric="rgb")
    return _predict(tmp, tmp / "in", "--model", str(_zero_checkpoint(tmp)))


def _record_nested_too_deeply(tmp: Path) -> list[str]:
    """An output folder whose report/records/CASE_mask.json holds a JSON array nested 5,000 deep."""
    (tmp / "pred" / "report" / "records").mkdir(parents=True)
    (tmp / "pred" / "report" / "records" / "CASE_mask.json").write_text("[" * 5000 + "]" * 5000)
    model = str(_zero_checkpoint(tmp))
    return ["predict", "-i", str(_case(tmp)), "-o", str(tmp / "pred"), "--model", model, "--quiet"]


def _dicom_slice_stored_in_colour(tmp: Path) -> list[str]:
    """A DICOM series one of whose slices is stored as RGB (3 samples per pixel)."""
    import pydicom

    series = _dicom_series(tmp)
    path = sorted(series.iterdir())[2]
    ds = pydicom.dcmread(path)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = bytes(ds.PixelData) * 3
    ds.save_as(path)
    return _predict(tmp, series, "--model", str(_zero_checkpoint(tmp)))


CATALOGUE = [
    BadInput(
        "missing-input",
        "the input path does not exist",
        lambda t: _predict(t, t / "nowhere"),
        "input TMP/nowhere does not exist",
    ),
    BadInput(
        "file-not-a-case",
        "a file that is neither a volume nor a case folder",
        _file_not_a_case,
        "TMP/in/notes.txt is not a case: give a Kaggle case folder, a DICOM series folder or a .nii/.nii.gz file",
    ),
    BadInput(
        "empty-folder",
        "an empty folder",
        _empty_folder,
        (
            "TMP/in holds no cases (Kaggle TIFF folders, DICOM series folders, NIfTI files, "
            "BraTS / nnU-Net case folders or a BIDS dataset with FLAIR images)"
        ),
    ),
    BadInput(
        "folder-without-cases",
        "a folder with no case inside",
        _folder_without_cases,
        (
            "TMP/in holds no cases (Kaggle TIFF folders, DICOM series folders, NIfTI files, "
            "BraTS / nnU-Net case folders or a BIDS dataset with FLAIR images)"
        ),
    ),
    BadInput(
        "truncated-tiff",
        "a truncated TIFF slice",
        _truncated_tiff,
        "cannot read TMP/in/CASE/CASE_2.tif: not a valid TIFF image or truncated (TiffFileError)",
    ),
    BadInput(
        "text-as-tiff",
        "a text file named like a slice",
        _text_as_tiff,
        "cannot read TMP/in/CASE/CASE_2.tif: not a valid TIFF image or truncated (TiffFileError)",
    ),
    BadInput(
        "mixed-slice-sizes",
        "slices of different sizes in one case",
        _mixed_sizes,
        "TMP/in/CASE: mixed slice sizes or channel counts ((32, 32, 3) and (16, 16, 3) in CASE_2.tif)",
    ),
    BadInput(
        "slice-gap",
        "a slice number missing from the sequence",
        _slice_gap,
        "TMP/in/CASE: image slice numbers must run 1..2 without gaps (found 1..3, missing e.g. [2]); rename or "
        "restore the missing slices",
    ),
    BadInput(
        "duplicate-slice-number",
        "two files with the same slice number",
        _duplicate_number,
        "TMP/in/CASE: slice number 2 appears twice (CASE_02.tif, CASE_2.tif); keep one file per slice",
    ),
    BadInput(
        "nan-pixels",
        "a float TIFF slice with NaN pixels",
        _nan_pixels,
        "TMP/in/CASE/CASE_2.tif holds 1 NaN or infinite pixels; fix or drop the slice",
    ),
    BadInput(
        "missing-masks",
        "masks for some slices but not all",
        _missing_masks,
        "TMP/in/CASE: 2 masks for 3 image slices; every slice needs exactly one mask (slices without a mask: [3])",
    ),
    BadInput(
        "mask-size",
        "a mask of another size than its slice",
        _mask_size,
        "TMP/in/CASE/CASE_2_mask.tif is 16x16 but the images are 32x32",
    ),
    BadInput(
        "four-d-volume",
        "a 4-D NIfTI (e.g. diffusion) instead of a 3-D volume",
        _four_d,
        "TMP/in/vol.nii.gz is 4-D (shape (8, 8, 4, 2)); flairseg needs one 3-D volume per file",
    ),
    BadInput(
        "zero-spacing",
        "a NIfTI with zero voxel spacing",
        _zero_spacing,
        "TMP/in/vol.nii has voxel spacing (0.9, 0.9, 0.0); spacing must be positive and finite: fix the header or "
        "re-export",
    ),
    BadInput(
        "nan-voxels",
        "a NIfTI with NaN voxels",
        _nan_voxels,
        "TMP/in/vol.nii.gz holds 1 NaN or infinite voxels; fix the volume (e.g. set them to 0) and retry",
    ),
    BadInput(
        "singular-affine",
        "a NIfTI whose affine is singular",
        _singular_affine,
        "TMP/in/vol.nii has a degenerate or non-finite affine; fix its header geometry (qform/sform)",
    ),
    BadInput(
        "text-as-nifti",
        "a text file named .nii",
        _text_as_nifti,
        "cannot read TMP/in/vol.nii: not a valid NIfTI file, or truncated (ImageFileError); re-export it",
    ),
    BadInput(
        "truncated-gzip",
        "a truncated .nii.gz",
        _truncated_gzip,
        "cannot read TMP/in/vol.nii.gz: not a valid NIfTI file, or truncated (EOFError); re-export it",
    ),
    BadInput(
        "gzip-not-nifti",
        "a gzip file that holds no NIfTI",
        _gzip_not_nifti,
        "cannot read TMP/in/vol.nii.gz: not a valid NIfTI file, or truncated (ImageFileError); re-export it",
    ),
    BadInput(
        "huge-dimensions",
        "a NIfTI header claiming 30000^3 voxels in a tiny file",
        _huge_dimensions,
        "TMP/in/vol.nii claims 30000 x 30000 x 30000 = 27,000,000,000,000 voxels, more than flairseg reads "
        "(268,435,456); check the dimensions in its header",
    ),
    BadInput(
        "short-nifti",
        "an uncompressed NIfTI cut short",
        _short_nifti,
        "TMP/in/vol.nii holds 5,000 bytes but its header describes 33,120: the file is truncated or its dimensions "
        "are wrong",
    ),
    BadInput(
        "complex-dtype",
        "a NIfTI of complex numbers",
        _wrong_dtype,
        "TMP/in/vol.nii.gz holds complex64 voxels; flairseg needs one real-valued (grey-level) channel",
    ),
    BadInput(
        "output-exists",
        "the output exists and --overwrite is not given",
        _output_exists,
        "output TMP/report already exists; pass --overwrite to replace it or choose another path",
    ),
    BadInput(
        "output-inside-input",
        "the output folder inside the input",
        _output_inside_input,
        "output TMP/in/CASE/prep overlaps the input TMP/in; choose an output path outside the inputs",
    ),
    BadInput(
        "missing-prediction",
        "a truth case without a prediction",
        _no_prediction,
        "no prediction for 1 of 2 truth cases (e.g. CASE_B)",
    ),
    BadInput(
        "unknown-model",
        "a misspelt released model name",
        _unknown_model,
        "abnormality-lgg-cp is neither a checkpoint file nor a released model; did you mean 'abnormality-lgg-cv5-v3'?",
    ),
    BadInput(
        "corrupt-weights",
        "weights that do not match their recorded sha256",
        _corrupt_weights,
        "TMP/model/m.safetensors has sha256 be6706c6eddf..., but its JSON records d431cde27652...: the file is "
        "corrupt or was replaced",
    ),
    BadInput(
        "pickle-weights",
        "a pickle file in place of safetensors",
        _pickle_weights,
        "TMP/model/m.safetensors is a pickle file, not safetensors; flairseg never unpickles",
    ),
    BadInput(
        "wrong-task-model",
        "an abnormality model where a brain model is asked for",
        _wrong_task,
        "checkpoint m.json is a 'abnormality' model, not a 'brain' model",
    ),
    BadInput(
        "no-cuda",
        "--device cuda on a machine without CUDA",
        _no_cuda,
        "device 'cuda' requested but CUDA is not available here; use --device cpu",
    ),
    BadInput(
        "strip-without-brain",
        "--strip with an abnormality model alone",
        _strip_without_brain,
        "--strip needs a brain mask: predict with a brain model (--task brain) or add --brain-model",
    ),
    BadInput(
        "unknown-setting",
        "a misspelt training setting",
        _unknown_setting,
        "unknown setting warmup; did you mean 'warmup_steps'?",
    ),
    BadInput(
        "run-exists",
        "a training run folder that exists",
        _run_exists,
        "run folder TMP/run exists; pass --resume to continue it or --overwrite to start again",
    ),
    BadInput(
        "patch-too-large",
        "a training patch larger than the model input",
        _patch_too_large,
        "patch 64 is larger than the model input 32x32",
    ),
    BadInput(
        "no-tumour",
        "training masks that are all empty",
        _no_tumour,
        "no tumour voxel in any training case under TMP/in; check the masks",
    ),
    BadInput(
        "features-not-csv",
        "a features file name without .csv",
        _shape_not_csv,
        "the features file must end in .csv, not 'features.txt'",
    ),
    BadInput(
        "unknown-feature",
        "an association hypothesis with an unknown feature",
        _unknown_feature,
        "unknown feature 'sphericity' in hypothesis 'sphericity:RNASeqCluster'; choose one of asd, mf, bevr, volume",
    ),
    BadInput(
        "clinical-without-ids",
        "a clinical table without the patient id column",
        _clinical_without_ids,
        "clinical file TMP/c.csv has no 'Patient' column (columns: ID, RNASeqCluster); pass --id-column",
    ),
    BadInput(
        "export-name",
        "an ONNX export file name without .onnx",
        _export_name,
        "the ONNX file must end in .onnx, not 'model.pt'",
    ),
    BadInput(
        "train-over-its-data",
        "a training run folder that holds the training data, with --overwrite",
        _train_over_its_data,
        "output TMP/project overlaps the input TMP/project/data; choose an output path outside the inputs",
    ),
    BadInput(
        "train-over-its-init",
        "a training run folder that holds the --init checkpoint, with --overwrite",
        _train_over_its_init,
        "output TMP/old overlaps the input TMP/old/best.safetensors; choose an output path outside the inputs",
    ),
    BadInput(
        "train-over-its-config",
        "a training run folder that holds the --config file, with --overwrite",
        _train_over_its_config,
        "output TMP/oldrun overlaps the input TMP/oldrun/recipe.json; choose an output path outside the inputs",
    ),
    BadInput(
        "unmarked-run-folder",
        "--overwrite on a folder that holds a config.json and a split.json but no .flairseg marker",
        _unmarked_run_folder,
        "output TMP/myproj looks like a training run of an older flairseg (no .flairseg marker), which flairseg does "
        "not replace on that evidence alone: delete it yourself if you no longer need it, or choose another path",
    ),
    BadInput(
        "predict-over-manual-masks",
        "predicting into a folder that holds masks flairseg did not write (a user's manual ones), with --overwrite",
        _predict_over_manual_masks,
        "TMP/manual/CASE/CASE_1_mask.tif is in the way of case CASE's output and flairseg has no record of writing "
        "it; move it away",
    ),
    BadInput(
        "output-name-too-long",
        "an output file name longer than the file system allows (255 bytes)",
        _output_name_too_long,
        f"File name too long (TMP/{'y' * 252}.csv); use a shorter path",
    ),
    BadInput(
        "resume-from-another-init",
        "resuming a fine-tuning run with another --init checkpoint",
        _resume_from_another_init,
        "run TMP/old started from TMP/a/best.json, not TMP/b/best.json; resume it with that --init or none",
    ),
    BadInput(
        "empty-output",
        "an empty output path (an unset shell variable)",
        _empty_output,
        "the output path is empty (an unset shell variable?); give the folder or file to write",
    ),
    BadInput(
        "foreign-folder",
        "--overwrite on a folder flairseg did not make",
        _foreign_folder,
        "output TMP/mine is a folder flairseg did not make (no .flairseg marker); flairseg replaces only its own "
        "outputs: "
        "move it away or choose another path",
    ),
    BadInput(
        "label-as-image",
        "a segmentation volume given as the image",
        lambda t: _predict(t, _brats_case(t) / "BraTS_1_seg.nii.gz"),
        "BraTS_1_seg.nii.gz is named like a label volume (segmentation or mask), not an image; give the case's FLAIR",
    ),
    BadInput(
        "t1-as-case",
        "a case's T1 given as the image",
        lambda t: _predict(t, _brats_case(t) / "BraTS_1_t1.nii.gz"),
        "BraTS_1_t1.nii.gz is the t1 volume of case BraTS_1 (brats naming), not a FLAIR; give the case's FLAIR file "
        "or its folder",
    ),
    BadInput(
        "duplicate-case-id",
        "two inputs with one case id",
        _duplicate_ids,
        "two inputs have the case id 'vol' (TMP/in/vol.nii and TMP/in/vol.nii.gz, ids compared regardless of case "
        "and of how accents are encoded); rename one, they would share an output",
    ),
    BadInput(
        "case-ids-differing-in-accent-composition",
        "two case folders named café, one with a composed é and one with e and a combining accent",
        _ids_differing_in_accent_composition,
        "two inputs have the case id 'caf\u00e9' (TMP/in/cafe\u0301 and TMP/in/caf\u00e9, ids compared regardless "
        "of case and of how accents are encoded); rename one, they would share an output",
    ),
    BadInput(
        "case-ids-differing-in-case",
        "two case folders whose names differ only in upper and lower case (one output folder on macOS and Windows)",
        _ids_differing_in_case,
        "two inputs have the case id 'case_a' (TMP/in/CASE_A and TMP/in/case_a, ids compared regardless of case "
        "and of how accents are encoded); rename one, they would share an output",
    ),
    BadInput(
        "case-named-report",
        "a case named like the run's own report",
        lambda t: _predict(t, _case(t, "report").parent),
        "case TMP/in/report is named 'report', which the run's own outputs use; rename it",
    ),
    BadInput(
        "sequence-off-grid",
        "a case's T1 on another grid than its FLAIR",
        lambda t: _predict(t, _brats_case(t, (8, 8, 5))),
        "BraTS_1_t1.nii.gz is not on the grid of the FLAIR BraTS_1_flair.nii.gz (shape or affine differ); "
        "pass --resample to resample it onto the FLAIR, or resample it yourself",
    ),
    BadInput(
        "negative-learning-rate",
        "a negative learning rate",
        lambda t: _train_with(t, "--lr", "-1"),
        "lr must be in (0, 1] and threshold in (0, 1), not lr=-1.0, threshold=0.5",
    ),
    BadInput(
        "probability-above-one",
        "an augmentation probability above 1",
        lambda t: _train_with(t, "--set", "flair_only=2"),
        "flair_only must be in [0, 1], not 2.0",
    ),
    BadInput(
        "tail-longer-than-run",
        "averaging more epochs than the run has",
        lambda t: _train_with(t, "--epochs", "2", "--set", "average_last=3"),
        "average_last (3) cannot exceed epochs (2)",
    ),
    BadInput(
        "prediction-off-its-truth",
        "a NIfTI prediction 40 mm away from its truth (same shape, other affine)",
        _prediction_off_its_truth,
        "case P01: the prediction TMP/pred/P01_mask.nii.gz lies up to 40.00 mm away from its truth "
        "TMP/truth/P01_mask.nii.gz (their affines differ); resample it onto the truth's grid before scoring it",
    ),
    BadInput(
        "tiff-declaring-a-huge-case",
        "three 1 kB TIFFs declaring 16000 x 16000 x 3 pixels each",
        _tiffs_declaring_a_huge_case,
        "case TMP/in/CASE declares 768,000,000 voxels x 3 channel(s), about 51.5 GB to process, more than the memory "
        "budget "
        "of 1.0 GB; check its header, or raise the budget with --max-memory (e.g. --max-memory 32G)",
    ),
    BadInput(
        "nifti-declaring-a-huge-volume",
        "a 1 kB .nii.gz declaring 600 x 600 x 600 voxels",
        _nifti_declaring_a_huge_volume,
        "TMP/in/big.nii.gz declares 216,000,000 voxels x 1 channel(s), about 4.8 GB to process, more than the memory "
        "budget "
        "of 1.0 GB; check its header, or raise the budget with --max-memory (e.g. --max-memory 32G)",
    ),
    BadInput(
        "nifti-beyond-the-paper-histogram",
        "a float NIfTI head scaled by 1e28 for a model with the paper's histogram window",
        _nifti_beyond_the_histogram,
        "case bright: channel 0: intensities reach 1.76e+30, beyond what the paper's 2-unit histogram counts exactly "
        "(9.01e+15); rescale the volume to scanner intensities",
    ),
    BadInput(
        "multi-page-tiff-slice",
        "Kaggle slices that are 300-page TIFF stacks (refused from the header, before decoding)",
        _multi_page_slices,
        "TMP/in/CASE/CASE_1.tif holds 300 pages (images); a slice is one page, (H, W) or (H, W, channels): split the "
        "stack into <CASE>_<k>.tif files",
    ),
    BadInput(
        "memory-budget-too-large",
        "a memory budget too large to be a number (1e400)",
        lambda t: _predict(t, _case(t), "--max-memory", "1e400"),
        "memory budget '1e400' is too large to be a size; give e.g. 8G",
    ),
    BadInput(
        "standardisation-beyond-float32",
        "a checkpoint whose mean (1e308) and std (1e-320) are finite but not float32 numbers",
        _standardisation_beyond_float32,
        "the checkpoint's preprocessing record is invalid: std 1e-320 is not in [0.001, 1000]; mean 1e+308 is not in "
        "[-1000, 1000]",
    ),
    BadInput(
        "nan-weight",
        "a checkpoint with a NaN weight (and a matching sha256)",
        _nan_weight,
        "checkpoint m.json holds NaN or infinite values in head.weight; the file is damaged or its training diverged",
    ),
    BadInput(
        "memory-budget-not-a-size",
        "a memory budget that is not a size",
        lambda t: _predict(t, _case(t), "--max-memory", "lots"),
        "memory budget 'lots' is not a size; write e.g. 8G, 512M or a number of bytes",
    ),
    BadInput(
        "one-case-of-three-unreadable",
        "a tree of three cases, one with a slice of NaN pixels (found while decoding)",
        _one_bad_case_of_three,
        "1 of 3 cases could not be read or predicted (CASE_B); the others were predicted; the reasons are in "
        "TMP/out/report/failures.csv",
    ),
    BadInput(
        "one-case-of-three-too-thin",
        "a tree of three cases, one with two slices (found while preprocessing)",
        _one_thin_case_of_three,
        "1 of 3 cases could not be read or predicted (CASE_B); the others were predicted; the reasons are in "
        "TMP/out/report/failures.csv",
    ),
    BadInput(
        "one-header-of-three-unreadable",
        "a tree of three cases, one with a truncated slice header",
        _one_bad_header_of_three,
        "1 of 3 cases fail their header checks, so nothing was written: CASE_B: cannot read "
        "TMP/in/CASE_B/CASE_B_2.tif: "
        "not a valid TIFF image or truncated (IndexError); fix or move them, then run again",
    ),
    BadInput(
        "resume-other-epochs",
        "resuming a run with another number of epochs",
        _resume_other_epochs,
        "TMP/old was planned for 3 epochs and resumes to that; to train longer, start a new run from its weights: "
        "flairseg train ... --init TMP/old/best.json",
    ),
    BadInput(
        "checkpoint-unknown-task",
        "a checkpoint whose JSON was edited to an unknown task",
        lambda t: _predict(t, _case(t), "--model", str(_tampered_checkpoint(t, "task", "foo"))),
        "checkpoint m.json is for task 'foo'; flairseg knows abnormality, brain",
    ),
    BadInput(
        "onnx-size-off-its-graph",
        "an ONNX export whose metadata asks for another input size than its graph takes",
        _onnx_off_its_graph,
        "TMP/m.onnx declares input ['batch', 3, 256, 256], but its metadata asks for 3 channels of 64x64; export "
        "the checkpoint again",
    ),
    BadInput(
        "train-size-off-the-grid",
        "a model input size the U-Net cannot halve at each of its levels",
        lambda t: _train_with(t, "--set", "preprocess.size=40"),
        "preprocess.size 40 is not a multiple of 2**model.depth = 16; the U-Net halves it at every level",
    ),
    BadInput(
        "resume-split-leak",
        "resuming a run whose split.json lists a validation case among the training cases",
        _resume_leaking_split,
        "TMP/old/split.json lists case 'CASE' twice (each case belongs to one of train, validation, test)",
    ),
    BadInput(
        "dicom-slice-in-another-plane",
        "a DICOM series with one slice in another plane (Image Orientation) than the others",
        _dicom_sagittal_slice,
        "TMP/in/S: slice 5 (slice004.dcm) has another Image Orientation (Patient) than slice 1 (0, 1, 0, 0, 0, 1 "
        "against 1, 0, 0, 0, 1, 0); a volume needs one for every slice: give each series its own folder",
    ),
    BadInput(
        "dicom-slice-of-another-pixel-size",
        "a DICOM series with one slice of another Pixel Spacing than the others",
        _dicom_other_pixel_spacing,
        "TMP/in/S: slice 5 (slice004.dcm) has another Pixel Spacing than slice 1 (2, 2 against 1, 1); a volume needs "
        "one for every slice: give each series its own folder",
    ),
    BadInput(
        "mask-file-over-its-truth",
        "`predict -i vol.nii.gz -o vol_mask.nii.gz --overwrite`: the output mask file is the input's truth mask",
        _mask_file_over_its_truth,
        "output TMP/in/vol_mask.nii.gz overlaps the input TMP/in/vol_mask.nii.gz; choose an output path outside the "
        "inputs",
    ),
    BadInput(
        "checkpoint-json-edited",
        "a checkpoint whose JSON was edited by hand after training (a threshold of 0.999, a valid value)",
        _checkpoint_json_edited,
        "TMP/model/m.json was edited after m.safetensors was written (its settings differ from those recorded with "
        "the weights); restore it, or train or export again",
    ),
    BadInput(
        "mask-file-over-its-t1",
        "`predict --flair CASE_flair.nii.gz -o CASE_t1.nii.gz --overwrite` in a BraTS case folder: the output is the "
        "case's T1",
        _mask_file_over_its_t1,
        "output TMP/in/BraTS_1/BraTS_1_t1.nii.gz overlaps the input TMP/in/BraTS_1/BraTS_1_t1.nii.gz; choose an "
        "output path outside the inputs",
    ),
    BadInput(
        "mask-file-linked-to-its-truth",
        "an output mask file that is a symbolic link to the input's truth mask, with --overwrite",
        _mask_file_linked_to_its_truth,
        "output TMP/lm.nii.gz overlaps the input TMP/in/vol_mask.nii.gz; choose an output path outside the inputs",
    ),
    BadInput(
        "dicom-zero-pixel-spacing",
        "a DICOM series whose Pixel Spacing is 0\\0",
        _dicom_zero_pixel_spacing,
        "TMP/in/S: slice 1 (slice000.dcm) has Pixel Spacing '0.0\\0.0'; it must be two positive finite millimetre "
        "values (a reader would guess 1 mm); repair the series",
    ),
    BadInput(
        "clinical-patient-twice",
        "a clinical CSV that gives one patient two rows with different labels",
        _clinical_patient_twice,
        "clinical file TMP/c.csv lists Patient 'TCGA_XX_0001' on lines 2 and 3 with different values; keep one row "
        "per id",
    ),
    BadInput(
        "prediction-not-binary",
        "a probability map (0 and 0.3) given as the prediction to evaluate",
        _probability_as_prediction,
        "case P01: the prediction P01_mask.nii.gz holds the values 0, 0.3, not 0 and positive whole-number labels; "
        "threshold it into a binary mask first",
    ),
    BadInput(
        "input-rewritten-in-place",
        "rerunning a prediction after an input was rewritten with its size and modification time kept",
        _input_rewritten_in_place,
        "case vol in TMP/pred was made from other inputs (vol.nii changed: sha256); pass --overwrite to predict it "
        "again, or write elsewhere",
    ),
    BadInput(
        "predict-without-output",
        "predict without the required -o",
        lambda t: ["predict", "-i", str(_case(t))],
        "the following arguments are required: -o/--output (see flairseg predict --help)",
        prog="flairseg predict",
        status=2,
    ),
    BadInput(
        "misspelt-option",
        "a misspelt option (--treshold)",
        lambda t: _predict(t, _case(t), "--treshold", "0.4"),
        "unrecognized arguments: --treshold 0.4 (see flairseg predict --help)",
        prog="flairseg predict",
        status=2,
    ),
    BadInput(
        "dicom-short-pixel-data",
        "a DICOM slice whose pixel data is shorter than its header declares",
        _dicom_short_pixel_data,
        "TMP/in/S/slice002.dcm holds 40 bytes of pixel data but its header describes 72: the file is truncated or its "
        "dimensions are wrong",
    ),
    BadInput(
        "dicom-declaring-huge-slices",
        "three 1 kB DICOM slices declaring 8000 x 8000 pixels each",
        _dicom_declaring_huge_slices,
        "TMP/in/S/slice000.dcm holds 72 bytes of pixel data but its header describes 128,000,000: the file is "
        "truncated or its dimensions are wrong",
    ),
    BadInput(
        "dicom-last-slice-truncated",
        "a DICOM series whose last slice file is cut short inside its pixel data",
        lambda t: _dicom_last_slice_cut(t, slice(-30)),
        "TMP/in/S/slice004.dcm holds 42 bytes of pixel data but its header describes 72: the file is truncated or its "
        "dimensions are wrong",
    ),
    BadInput(
        "dicom-last-slice-unparseable",
        "a DICOM series whose last slice file is cut short inside its header",
        lambda t: _dicom_last_slice_cut(t, slice(300)),
        "TMP/in/S/slice004.dcm looks like a DICOM file but is not part of the series in its folder: it is damaged, "
        "truncated or holds no image; repair it or move it out of the folder",
    ),
    BadInput(
        "dicom-jpeg-frame-larger-than-header",
        "three 1 kB JPEG DICOM slices declaring 32 x 32 pixels whose JPEG frame header says 40000 x 40000",
        _dicom_jpeg_larger_than_its_header,
        "TMP/in/S/slice000.dcm: JPEG frame 1 is 40,000 x 40,000 x 1 (rows x columns x components) by its codestream "
        "but 32 x 32 x 1 by its header: the file is damaged or invalid; re-export the series",
    ),
    BadInput(
        "dicom-deflated-pixel-data-longer-than-declared",
        "deflated DICOM slices declaring 6 x 6 16-bit pixels whose Pixel Data inflates to 1 MB",
        _dicom_deflated_beyond_its_header,
        "TMP/in/S/slice000.dcm has a Pixel Data element of 1,048,576 bytes but its header describes 72: the file is "
        "damaged or its dimensions are wrong",
    ),
    BadInput(
        "clinical-column-twice",
        "a clinical CSV whose header names one column twice",
        lambda t: _associate_with(t, "Patient,RNASeqCluster,RNASeqCluster\nP0,1,2\nP1,2,1\n", "bevr:RNASeqCluster"),
        "clinical file TMP/c.csv names the column 'RNASeqCluster' twice in its header; keep one",
    ),
    BadInput(
        "box-plots-named-alike",
        "two hypotheses on clinical columns whose names differ only in case (one box plot file on macOS or Windows)",
        lambda t: _associate_with(t, "Patient,Grade,grade\nP0,1,1\nP1,2,2\n", "bevr:Grade", "bevr:grade"),
        "'bevr_Grade' and 'bevr_grade' would share the box plot file name 'bevr_grade' (names differing only in case "
        "or in characters a file name cannot hold); rename one",
    ),
    BadInput(
        "clinical-column-of-ids",
        "a clinical column with a distinct value for each of 1000 patients given as the clusters of a hypothesis",
        _clinical_column_of_ids,
        "the exact test of hypothesis bevr:Id (1,000 patients in 1000 clusters) would enumerate more than 5,000,000 "
        "tables, a number that grows with the patients and the clusters; a column of 1000 distinct values cannot be "
        "tested exactly with more than 24 patients: use a column of genomic clusters, a few values each shared by "
        "many patients",
    ),
    BadInput(
        "truth-negative-labels",
        "a truth mask holding -1 where the tumour is, given to evaluate",
        _negative_truth,
        "case P01: the truth P01_mask.nii.gz holds the values -1, 0, not 0 and positive whole-number labels; "
        "threshold it into a binary mask first",
    ),
    BadInput(
        "shape-of-a-probability-map",
        "a probability map (0 and 0.3) given to shape as a mask",
        lambda t: ["shape", "-i", str(_mask_volume(t / "in", np.full(1, 0.3))), "-o", str(t / "out.csv"), "--quiet"],
        "case P01: the mask P01_mask.nii.gz holds the values 0, 0.3, not 0 and positive whole-number labels; "
        "threshold it into a binary mask first",
    ),
    BadInput(
        "onnx-edited-after-export",
        "an ONNX export whose graph was edited afterwards (its head's bias set to -100)",
        _onnx_edited_after_export,
        "TMP/m.onnx was changed after export (its graph is not the one whose sha256 it records); export the "
        "checkpoint again",
    ),
    BadInput(
        "onnx-replaced-between-runs",
        "a rerun into a prediction folder after the ONNX file it was made with was replaced by another",
        _onnx_replaced_between_runs,
        'case CASE in TMP/pred was made with another onnx_graph_sha256 ("26b9ecd45b60bc464348ee39e8210e74762bc0845'
        '4797c836ca93bdadb64dca8" -> "74c56fea2136ccd095e83c71cbfd2fc26b17e2b07386fa2a83995a6a371a6d37"); pass '
        "--overwrite to predict it again, or write elsewhere",
    ),
    BadInput(
        "onnx-fixed-batch",
        "an ONNX model whose graph takes batches of one slice only",
        lambda t: _predict(t, _case(t), "--model", str(_made_onnx(t, batch=1))),
        "TMP/m.onnx declares input [1, 3, 256, 256], a fixed batch size of 1; flairseg runs batches of any size: "
        "export the checkpoint again",
    ),
    BadInput(
        "resume-other-settings",
        "resuming a run with settings other than its own (`--resume --lr 0.9 --set rotation=0 --loss dice+bce`)",
        _resume_other_settings,
        "TMP/old was trained with lr 0.0001, not 0.9; resume it with the settings of its config.json (or none), or "
        "start a new run",
    ),
    BadInput(
        "resume-without-best",
        "resuming a run whose best.json was deleted",
        _resume_without_best,
        "TMP/old lacks best.json, the model of its best epoch (1); restore it, or train the run again with --overwrite",
    ),
    BadInput(
        "resume-edited-config",
        "resuming a run whose config.json was edited (another lr) after its last checkpoint",
        _resume_edited_config,
        "TMP/old/config.json was edited after the run's last checkpoint (lr 0.0001 -> 0.9); restore it, or start a "
        "new run",
    ),
    BadInput(
        "cv-fold-on-changed-data",
        "`cv --fold 0` again after a slice of one of fold 0's training cases was replaced",
        _cv_fold_on_changed_data,
        "case CASE_1 changed since TMP/cv/fold-0 was trained on it (CASE_1_2.tif changed: sha256); restore the data "
        "it was trained on, or train again into a new folder",
    ),
    BadInput(
        "dicom-slice-without-position-in-a-tree",
        "a tree of two DICOM series, one slice of one of them without Image Position (Patient): a header fault, "
        "found before the good series is predicted",
        _dicom_slice_without_position_beside_a_good_case,
        "1 of 2 cases fail their header checks, so nothing was written: S: TMP/in/S: slice 3 of 5 (slice002.dcm) has "
        "no Image Position (Patient) tag, so its geometry is unknown (a reader would guess it); repair the series or "
        "drop that slice; fix or move them, then run again",
    ),
    BadInput(
        "micrometre-voxels-in-a-tree",
        "a tree of two NIfTI volumes, one with 0.000001 mm voxels (an affine of almost no volume): a header fault, "
        "found before the good volume is predicted",
        _micrometre_voxels_beside_a_good_case,
        "1 of 2 cases fail their header checks, so nothing was written: tiny: TMP/in/tiny.nii.gz has a degenerate or "
        "non-finite affine; fix its header geometry (qform/sform); fix or move them, then run again",
    ),
    BadInput(
        "dicom-raw-truncated-end-slice",
        "a DICOM series whose last slice was written without the Part 10 preamble, under a name without .dcm (IM4), "
        "and truncated: GDCM leaves it out of the series",
        _raw_truncated_end_slice,
        "TMP/in/S/IM4 holds 42 bytes of pixel data but its header describes 72: the file is truncated or its "
        "dimensions are wrong",
    ),
    BadInput(
        "dicom-sheared-orientation",
        "a DICOM series whose Image Orientation (Patient) gives row and column directions 60 degrees apart",
        _dicom_sheared_orientation,
        "TMP/in/S: slice 1 (slice000.dcm) has Image Orientation (Patient) '1.0\\0.0\\0.0\\0.5\\0.8660254\\0.0', "
        "not two orthogonal unit directions (a reader would put the image in another place); repair the series",
    ),
    BadInput(
        "onnx-metadata-edited-after-export",
        "an ONNX export whose metadata was edited afterwards (its threshold set to 0.999), its graph untouched",
        _onnx_threshold_edited,
        "TMP/m.onnx: its 'flairseg' metadata was edited after export (its settings differ from those recorded with the "
        "graph); export the checkpoint again",
    ),
    BadInput(
        "negative-batchnorm-variance",
        "a checkpoint whose batch normalisations' running variances are negative (sha256 and binding consistent)",
        _negative_variance,
        "checkpoint m.json holds a negative batch-normalisation variance in bottleneck.1.running_var; the file is "
        "damaged or was edited",
    ),
    BadInput(
        "train-init-from-an-ensemble",
        "`train --init` with an ensemble checkpoint (no run folder is made)",
        _init_from_an_ensemble,
        "cannot fine-tune from TMP/e/m.json: it is an ensemble of 2 models; start from one of its folds' checkpoints",
    ),
    BadInput(
        "resume-from-a-nan-state",
        "resuming a run whose last checkpoint holds a NaN weight (sha256 and binding consistent)",
        _resume_from_a_nan_state,
        "TMP/old/last.json holds NaN or infinite values in model.head.weight; the file is damaged or its training "
        "diverged",
    ),
    BadInput(
        "resume-with-a-broken-best",
        "resuming a finished run whose best.json is not valid JSON",
        _resume_with_a_broken_best,
        "the best model of TMP/old does not load (TMP/old/best.json is not valid JSON); restore it, or train the run "
        "again with --overwrite",
    ),
    BadInput(
        "output-linked-to-another-case",
        "a link in the output folder where case A's output goes, to case B's input folder",
        _output_linked_to_another_case,
        "case CASE_A's output TMP/o/CASE_A overlaps the input TMP/in (through a link: it is TMP/in/CASE_B); remove "
        "the link, or choose an output folder outside the inputs",
    ),
    BadInput(
        "mask-file-over-its-nnunet-label",
        "`predict -i imagesTr/BR_001_0000.nii.gz -o labelsTr/BR_001.nii.gz --overwrite` in an nnU-Net dataset: the "
        "output mask file is the case's label",
        _mask_file_over_its_nnunet_label,
        "output TMP/Dataset001_X/labelsTr/BR_001.nii.gz overlaps the input TMP/Dataset001_X/labelsTr/BR_001.nii.gz; "
        "choose an output path outside the inputs",
    ),
    BadInput(
        "cases-named-with-the-brain-suffix",
        "a tree of Kaggle cases P and P_brain: the brain task's outputs of P would be named as the tumour task's of "
        "P_brain",
        _cases_named_with_the_brain_suffix,
        "the brain output of case 'P' and the tumour output of case 'P_brain' would both be "
        "TMP/out/probabilities/P_brain.tif (one folder holds both tasks' outputs; names compared regardless of case); "
        "rename one of the cases",
    ),
    BadInput(
        "folder-named-like-a-volumes-mask",
        "a volume a.nii.gz and, beside it, a Kaggle case folder named a_mask.nii.gz (the volume's mask file)",
        _folder_named_like_a_volumes_mask,
        "the tumour output of case 'a_mask.nii.gz' and the tumour output of case 'a' would both be "
        "TMP/out/a_mask.nii.gz (one folder holds both tasks' outputs; names compared regardless of case); rename one "
        "of the cases",
    ),
    BadInput(
        "broken-case-table",
        "a rerun after a case's row of the QC table (report/qc/CASE_mask.csv) was replaced by a table of other "
        "columns, one row longer than its header",
        _ragged_qc_table,
        "TMP/pred/report/qc/CASE_mask.csv is not a table flairseg wrote (no case column); pass --overwrite to predict "
        "its case again, or delete the file if that case is no longer among the inputs",
    ),
    BadInput(
        "case-table-not-utf8",
        "a rerun after a case's row of the inputs table (report/inputs/CASE_mask.csv) was replaced by bytes that are "
        "not UTF-8",
        _inputs_table_not_utf8,
        "TMP/pred/report/inputs/CASE_mask.csv is not a table flairseg wrote (not UTF-8 text); pass --overwrite to "
        "predict its case again, or delete the file if that case is no longer among the inputs",
    ),
    BadInput(
        "part-record-of-another-shape",
        "`--part 0/2` after the other part's record (report/parts/part-1-of-2.json) was replaced by one whose failures "
        "are numbers",
        _part_record_with_a_number_for_a_failure,
        "TMP/pred/report/parts/part-1-of-2.json is not a part record flairseg wrote; delete it and run that part again",
    ),
    BadInput(
        "mask-beside-a-volume-not-binary",
        "a probability map (0.02, 0.8 in the tumour) as the mask beside a NIfTI volume given to predict",
        _probability_mask_beside_its_volume,
        "case v: the mask v_mask.nii.gz holds the values 0.02, 0.8, not 0 and positive whole-number labels; "
        "threshold it into a binary mask first",
    ),
    BadInput(
        "mask-scaled-to-fractions",
        "a 0/1 mask beside a NIfTI volume whose header scales it (scl_slope 10, scl_inter 10.5) to 10.5 and 20.5",
        _mask_scaled_to_fractions,
        "case v: the mask v_mask.nii.gz holds the values 10.5, 20.5, not 0 and positive whole-number labels; "
        "threshold it into a binary mask first",
    ),
    BadInput(
        "kaggle-masks-not-binary",
        "Kaggle _mask.tif slices holding 0 and 0.5",
        _fractional_kaggle_masks,
        "case CASE: the mask CASE/*_mask.tif holds the values 0, 0.5, not 0 and positive whole-number labels; "
        "threshold it into a binary mask first",
    ),
    BadInput(
        "predict-truth-not-binary",
        "a probability map (0 and 0.3) given to predict as --truth",
        _probability_truth_tree,
        "case v: the truth v_mask.nii.gz holds the values 0, 0.3, not 0 and positive whole-number labels; "
        "threshold it into a binary mask first",
    ),
    BadInput(
        "prediction-stretched-off-its-truth",
        "a NIfTI prediction with spacings 0.9099 x 0.9099 x 5.0099 mm against its truth's 0.9 x 0.9 x 5 (same shape)",
        _prediction_stretched_off_its_truth,
        "case P01: the prediction TMP/pred/P01_mask.nii.gz lies up to 0.90 mm away from its truth "
        "TMP/truth/P01_mask.nii.gz (their affines differ); resample it onto the truth's grid before scoring it",
    ),
    BadInput(
        "sequences-over-the-budget",
        "a BraTS case of three 64^3 volumes, each within a 10 MB memory budget but not the three together",
        _brats_case_over_the_budget,
        "case TMP/in/BraTS_1/BraTS_1_flair.nii.gz (with its other sequences) declares 262,144 voxels x 3 channel(s), "
        "about 18 MB to process, more than the memory budget of 10 MB; check its header, or raise the budget with "
        "--max-memory (e.g. --max-memory 32G)",
    ),
    BadInput(
        "checkpoint-json-huge-number",
        "a checkpoint JSON holding a number of 5001 digits",
        _checkpoint_json_with_a_huge_number,
        "TMP/model/m.json is not valid JSON",
    ),
    BadInput(
        "config-huge-number",
        "a training config whose lr is a number of 401 digits",
        _training_config_with_a_huge_lr,
        "lr must be float, not an integer of about 401 digits",
    ),
    BadInput(
        "config-nested-too-deeply",
        "a training config of 100,000 nested brackets",
        _training_config_nested_too_deeply,
        "cannot read config TMP/recipe.json: nested too deeply",
    ),
    BadInput(
        "released-copy-json-edited",
        "a copy of a released model whose JSON threshold was edited (0.999)",
        _released_copy_edited,
        "TMP/copy/brain-lgg.json holds the weights of the released model brain-lgg with settings other than the "
        "release's (an edited threshold or preprocessing); use --model brain-lgg, or restore the file",
    ),
    BadInput(
        "shape-points-unbounded",
        "shape features asked for on 10^23 boundary points",
        lambda t: ["shape", "-i", str(_case(t)), "-o", str(t / "f.csv"), "--points", "1" + "0" * 23, "--quiet"],
        "need 8 <= points <= 100,000, 1 <= sectors <= points / 2 (two boundary points a sector) and 0 < smoothing < 1 "
        "(got points 100000000000000000000000, sectors 10, smoothing 0.1)",
    ),
    BadInput(
        "threads-beyond-any-machine",
        "a thread count of 100,000 (PyTorch crashes on such a pool)",
        lambda t: _predict(t, _case(t), "--threads", "100000"),
        "argument --threads: must be at most 1024, not 100000 (see flairseg predict --help)",
        prog="flairseg predict",
        status=2,
    ),
    BadInput(
        "associate-patient-twice-in-features",
        "two scans of one patient in the features file, one clinical row for the patient",
        _two_scans_of_one_patient,
        "cases TCGA_XX_0001_20000101 and TCGA_XX_0001_20010101 of TMP/f.csv both take the row of TCGA_XX_0001 in "
        "TMP/c.csv: one patient would count twice in the test; keep one case per patient in the features file",
    ),
    BadInput(
        "mask-file-over-an-undescribed-nnunet-label",
        "`predict --flair imagesTr/BR_001_0000.nii.gz -o labelsTr/BR_001.nii.gz --overwrite` in an nnU-Net dataset "
        "without its dataset.json: the output mask file is the case's label",
        lambda t: _mask_file_over_its_nnunet_label(t, described=False, option="--flair"),
        "output TMP/Dataset001_X/labelsTr/BR_001.nii.gz overlaps the input TMP/Dataset001_X/labelsTr/BR_001.nii.gz; "
        "choose an output path outside the inputs",
    ),
    BadInput(
        "training-weight-decay-beyond-float",
        "a training weight decay of 1e300 (beyond what Adam's float32 state holds)",
        lambda t: ["train", "--data", str(_case(t).parent), "-o", str(t / "run"), "--set", "weight_decay=1e300"],
        "weight_decay must be in [0, 1], not 1e+300",
    ),
    BadInput(
        "training-batch-of-10-to-the-23",
        "a training batch size of 10^23 slices",
        lambda t: ["train", "--data", str(_case(t).parent), "-o", str(t / "run"), "--batch-size", "1" + "0" * 23],
        "batch_size must be in [1, 4096], not 100000000000000000000000",
    ),
    BadInput(
        "predict-truth-off-its-image",
        "a truth given to predict (--truth) of the image's shape whose origin lies 40 mm away",
        _truth_off_its_image,
        "case v: the image TMP/in/v.nii.gz lies up to 40.00 mm away from its truth TMP/truth/v_mask.nii.gz (their "
        "affines differ); resample it onto the truth's grid before scoring it",
    ),
    BadInput(
        "evaluate-volume-against-kaggle-truth",
        "a NIfTI prediction evaluated against a Kaggle (TIFF) truth case",
        _volume_prediction_of_a_kaggle_truth,
        "case CASE: the prediction TMP/pred/CASE_mask.nii.gz is a NIfTI volume and its truth TMP/in/CASE Kaggle TIFF "
        "slices, whose grids cannot be compared; predict from images in the truth's layout and score that",
    ),
    BadInput(
        "predict-kaggle-truth-of-a-volume",
        "a Kaggle (TIFF) truth case given to predict (--truth) for a NIfTI image",
        _kaggle_truth_of_a_volume,
        "case v: the image TMP/in/v.nii.gz is a NIfTI volume and its truth TMP/truth/v Kaggle TIFF slices, whose grids "
        "cannot be compared; predict from images in the truth's layout and score that",
    ),
    BadInput(
        "empty-truth-path",
        "--truth given an empty path (an unset shell variable)",
        lambda t: _predict(t, _case(t), "--truth", ""),
        "--truth is an empty path (an unset shell variable?); give the file or folder to read",
    ),
    BadInput(
        "empty-model-path",
        "--model given an empty path (an unset shell variable)",
        lambda t: _predict(t, _case(t), "--model", ""),
        "--model is an empty path (an unset shell variable?); give the file or folder to read",
    ),
    BadInput(
        "output-through-a-link-loop",
        "an output path that is a symbolic link to itself",
        _output_through_a_link_loop,
        "Symlink loop from 'TMP/loop'; a symbolic link on the way leads back to itself: fix the link or give another "
        "path",
    ),
    BadInput(
        "train-on-two-cases-of-one-id",
        "`train` on a tree holding the Kaggle case folder CASE_0 and the volume CASE_0.nii.gz",
        _train_on_two_cases_of_one_id,
        "two inputs have the case id 'CASE_0' (TMP/in/CASE_0 and TMP/in/CASE_0.nii.gz, ids compared regardless of "
        "case and of how accents are encoded); rename one, they would share an output",
    ),
    BadInput(
        "cv-on-two-cases-of-one-id",
        "`cv` on a tree holding the Kaggle case folder CASE_0 and the volume CASE_0.nii.gz",
        _cv_on_two_cases_of_one_id,
        "two inputs have the case id 'CASE_0' (TMP/in/CASE_0 and TMP/in/CASE_0.nii.gz, ids compared regardless of "
        "case and of how accents are encoded); rename one, they would share an output",
    ),
    BadInput(
        "preprocess-two-cases-of-one-id",
        "`preprocess` of a tree holding the Kaggle case folder CASE_0 and the volume CASE_0.nii.gz",
        _preprocess_two_cases_of_one_id,
        "two inputs have the case id 'CASE_0' (TMP/in/CASE_0 and TMP/in/CASE_0.nii.gz, ids compared regardless of "
        "case and of how accents are encoded); rename one, they would share an output",
    ),
    BadInput(
        "cv-fold-on-data-rewritten-in-place",
        "`cv --fold 0` again after a slice of one of fold 0's training cases was rewritten with its size and "
        "modification time kept",
        _cv_fold_on_data_rewritten_in_place,
        "case CASE_1 changed since TMP/cv/fold-0 was trained on it (CASE_1_2.tif changed: sha256); restore the data "
        "it was trained on, or train again into a new folder",
    ),
    BadInput(
        "cv-predictions-link-into-data",
        "`cv` into its own folder where predictions/CASE_0 links to the data's CASE_0",
        _cv_predictions_link_into_data,
        "case CASE_0's out-of-fold mask TMP/cv/predictions/CASE_0 overlaps the input TMP/in (through a link: it is "
        "TMP/in/CASE_0); remove the link, or choose an output folder outside the inputs",
    ),
    BadInput(
        "cv-into-a-foreign-folder",
        "`cv -o` a folder of the user's own holding their ensemble.json and report/cv.md",
        _cv_into_a_foreign_folder,
        "output TMP/myproject is a folder flairseg did not make (no .flairseg marker) and holds no cross-validation "
        "folds; flairseg cv writes only into its own folders: move it away or choose another path",
    ),
    BadInput(
        "dicom-localizer-above-case-folders",
        "a DICOM localizer slice left at the top of a folder of case folders",
        _localizer_above_case_folders,
        "TMP/in holds both image slices (localizer.dcm) and case folders (CASE/), so it is neither one case nor a "
        "folder of cases; move the stray slices out of it, or point flairseg at one case folder",
    ),
    BadInput(
        "tiff-figure-above-case-folders",
        "a TIFF figure saved at the top of a folder of Kaggle case folders, given to train",
        _figure_above_case_folders,
        "TMP/in holds both image slices (overview.tif) and case folders (CASE/), so it is neither one case nor a "
        "folder of cases; move the stray slices out of it, or point flairseg at one case folder",
    ),
    BadInput(
        "dicom-media-folder-series-nested",
        "a DICOM media folder (DICOMDIR at its top) whose series lie two levels down",
        _dicom_media_folder_nested,
        "TMP/in is a DICOM media folder (DICOMDIR) with no series folder directly below it; point flairseg at the "
        "folder that holds one series' slices",
    ),
    BadInput(
        "evaluate-truth-mask-without-suffix",
        "a truth folder of <case>_mask.nii.gz masks with one mask saved as C.nii.gz",
        lambda t: _masks_one_without_suffix(t, "truth"),
        "TMP/truth holds masks named <case>_mask (A_mask.nii.gz) and C.nii.gz without the suffix, which would be "
        "left out; rename it C_mask.nii.gz if it is a mask, or move it out of the folder if it is an image "
        "without a mask",
    ),
    BadInput(
        "evaluate-prediction-mask-without-suffix",
        "a prediction folder of <case>_mask.nii.gz masks with one mask saved as C.nii.gz",
        lambda t: _masks_one_without_suffix(t, "pred"),
        "TMP/pred holds masks named <case>_mask (A_mask.nii.gz) and C.nii.gz without the suffix, which would be "
        "left out; rename it C_mask.nii.gz if it is a mask, or move it out of the folder if it is an image "
        "without a mask",
    ),
    BadInput(
        "output-onto-the-store-of-linked-slices",
        "`predict --overwrite` of a case folder of links into a data store, with the store as the output",
        _output_onto_the_store_of_linked_slices,
        "output TMP/store overlaps the input TMP/view/CASE/CASE_1.tif (a link to TMP/store/CASE/CASE_1.tif); choose "
        "an output path outside the inputs",
    ),
    BadInput(
        "cv-no-tumour",
        "cross-validation on training masks that are all empty",
        _cv_on_no_tumour,
        "no tumour voxel in any training case under TMP/in; check the masks",
    ),
    BadInput(
        "predict-truth-not-a-nifti-beside-a-good-case",
        "a tree of two volumes given to predict with a --truth tree, the truth of one a text file named .nii.gz: a "
        "header fault, found before the good volume is predicted",
        _truth_tree_with_one_not_a_nifti,
        "1 of 2 cases fail their header checks, so nothing was written: v: cannot read TMP/truth/v_mask.nii.gz: not a "
        "valid NIfTI file, or truncated (ImageFileError); re-export it; fix or move them, then run again",
    ),
    BadInput(
        "predict-mask-not-a-nifti-beside-a-good-case",
        "a tree of two volumes with masks beside them, one mask a text file named .nii.gz: a header fault, found "
        "before the good volume is predicted",
        _mask_beside_a_volume_not_a_nifti,
        "1 of 2 cases fail their header checks, so nothing was written: v: cannot read TMP/in/v_mask.nii.gz: not a "
        "valid NIfTI file, or truncated (ImageFileError); re-export it; fix or move them, then run again",
    ),
    BadInput(
        "resume-edited-split",
        "resuming a run whose split.json was edited (its test case moved into training) after its last checkpoint",
        _resume_edited_split,
        "TMP/old/split.json was edited after the run's last checkpoint (train now lists CASE_2); restore it, or "
        "start a new run",
    ),
    BadInput(
        "resume-without-last",
        "resuming a run that logged an epoch but whose last.json and last.safetensors were deleted",
        _resume_without_last,
        "TMP/old lacks last.json, the state of its epoch 1; restore it, or start again with --overwrite",
    ),
    BadInput(
        "predict-into-a-users-report",
        "predicting into a folder whose report/ holds the user's own report.html and metrics.csv",
        _predict_into_a_users_report,
        "TMP/study/report is in the way of the run's report and flairseg has no record of writing it; move it away "
        "(flairseg writes its report only into a folder of its own)",
    ),
    BadInput(
        "predict-model-training-state",
        "a run's training state RUN/last.json given to predict as the model",
        lambda t: _predict(t, _case(t), "--model", str(_training_state(t))),
        "TMP/old/last.json is a training state (the run's last epoch with its optimizer, for train --resume), not a "
        "model; use the run's model TMP/old/best.json",
    ),
    BadInput(
        "train-init-training-state",
        "a run's training state RUN/last.json given to train --init as the starting weights",
        lambda t: _train(t, "--init", str(_training_state(t))),
        "TMP/old/last.json is a training state (the run's last epoch with its optimizer, for train --resume), not a "
        "model; use the run's model TMP/old/best.json",
    ),
    BadInput(
        "nifti-scaled-beyond-float32",
        "a uint8 NIfTI volume whose header's scl_slope 3e38 scales its values beyond float32",
        _nifti_scaled_beyond_float32,
        "TMP/in/vol.nii: its header's scaling (scl_slope 3e+38, scl_inter 0) takes the stored values to 7.65e+40, "
        "beyond float32 (at most 3.4e+38 in size); fix scl_slope and scl_inter in the header",
    ),
    BadInput(
        "associate-three-clusters-over-20000-patients",
        "a column of 3 genomic clusters over 20,000 patients (too many tables to enumerate exactly)",
        _three_clusters_over_20000_patients,
        "the exact test of hypothesis bevr:RNASeqCluster (20,000 patients in 3 clusters) would enumerate more than "
        "5,000,000 tables, a number that grows with the patients and the clusters; with 3 clusters it stays within "
        "that up to about 7,742 patients: test a random subset of them, or a column of fewer clusters",
    ),
    BadInput(
        "resume-without-data-record",
        "resuming a run whose data.json (the record of its training data) was deleted",
        lambda t: _resume_without_record(t, "data.json"),
        "TMP/old lacks data.json, the record of the data it was trained on; restore it, or train the run again with "
        "--overwrite",
    ),
    BadInput(
        "resume-without-start-record",
        "resuming a run whose start.json (the record of its starting weights) was deleted",
        lambda t: _resume_without_record(t, "start.json"),
        "TMP/old lacks start.json, the record of the weights it started from; restore it, or train the run again "
        "with --overwrite",
    ),
    BadInput(
        "preprocess-case-named-dot-dot",
        "preprocess of a volume named ...nii.gz (case id '..')",
        _preprocess_a_case_named_dot_dot,
        "case id '..' cannot name an output; give the case a plain name (no '..' or separators)",
    ),
    BadInput(
        "bids-lone-case-with-nan",
        "a BIDS dataset whose one FLAIR holds a NaN voxel: no derivatives folder is left",
        _bids_lone_case_with_nan,
        "TMP/bids/sub-01/anat/sub-01_FLAIR.nii.gz holds 1 NaN or infinite voxels; fix the volume (e.g. set them to 0) "
        "and retry",
    ),
    BadInput(
        "cv-fold-with-split-edited",
        "`cv --fold 0` again after fold 0's split.json moved its test cases into training",
        _cv_fold_with_split_edited,
        "TMP/cv/fold-0/split.json was edited after the run's last checkpoint (train now lists CASE_2); restore it, "
        "or start a new run",
    ),
    BadInput(
        "tiff-tile-bomb",
        "a 32 x 32 TIFF slice stored as one 4096 x 4096 compressed tile, under a 100 MB memory budget",
        _tiff_tile_bomb,
        "case TMP/in/CASE declares 50,331,648 voxels x 3 channel(s), about 3.4 GB to process, more than the memory "
        "budget of 100 MB; check its header, or raise the budget with --max-memory (e.g. --max-memory 32G)",
    ),
    BadInput(
        "associate-no-labelled-case",
        "a hypothesis whose clinical column is NA for every patient",
        _associate_no_labelled_case,
        "hypothesis bevr:IDH has no case with both a bevr value and a IDH label (empty masks give no features, "
        "missing labels no level); drop it, or give cases that have both",
    ),
    BadInput(
        "dicom-rescaled-beyond-float32",
        "a DICOM series whose Rescale Slope 3e38 scales its pixel values beyond float32",
        _dicom_rescaled_beyond_float32,
        "TMP/in/S: slice 1 (slice000.dcm) has Rescale Slope '3e38' and Rescale Intercept '0', which take its stored "
        "values to 7.65e+40, beyond float32 (at most 3.4e+38 in size); fix them in the slices' headers",
    ),
    BadInput(
        "cv-init-over-folds-from-random-weights",
        "`cv --init ENSEMBLE` into a cross-validation folder whose fold 0 trained from random weights",
        _cv_fold_from_random_given_an_init,
        "fold 0 (TMP/cv/fold-0) started from random weights, not TMP/ens.json (member 0); give cv the --init its "
        "folds started from (or none), or use a new output folder",
    ),
    BadInput(
        "cv-without-init-over-fine-tuned-folds",
        "`cv` without --init into a cross-validation folder whose fold 0 was fine-tuned from an ensemble",
        _cv_fine_tuned_fold_rerun_without_init,
        "fold 0 (TMP/cv/fold-0) started from TMP/ens.json (member 0), not random weights; give cv the --init its "
        "folds started from (or none), or use a new output folder",
    ),
    BadInput(
        "resume-after-init-replaced",
        "resuming a fine-tuning run stopped before its first checkpoint, its --init checkpoint saved over since",
        _resume_after_its_init_was_replaced,
        "run TMP/old started from TMP/a/best.json (weights sha256 000000000000...), which no longer holds them; "
        "restore that checkpoint, or train the run again with --overwrite",
    ),
    BadInput(
        "resume-through-a-link-into-the-data",
        "resuming a run whose log.csv is a link to a file of the data",
        _resume_through_a_link_into_the_data,
        "a file of the run TMP/old/log.csv overlaps the input TMP/in (through a link: it is "
        "TMP/in/CASE_0/CASE_0_1.tif); remove the link, or choose an output folder outside the inputs",
    ),
    BadInput(
        "predict-truth-of-other-cases",
        "predict's --truth a tree whose masks pair with none of the cases (another dataset's truth, a mistyped folder)",
        _truth_of_other_cases,
        "--truth TMP/gts has no mask for any of the 2 cases (P1, P2) (a case's truth is named after it: <case>_mask); "
        "give the truth of these images, or leave --truth out",
    ),
    BadInput(
        "predict-second-truth-off-its-image",
        "a tree of two volumes given to predict with --truth, the second case's truth 40 mm off its image",
        _second_truth_off_its_image,
        "1 of 2 cases fail their header checks, so nothing was written: w: case w: the image TMP/in/w.nii.gz lies up "
        "to 40.00 mm away from its truth TMP/truth/w_mask.nii.gz (their affines differ); resample it onto the truth's "
        "grid before scoring it; fix or move them, then run again",
    ),
    BadInput(
        "predict-brain-label-read-as-input-not-a-tiff",
        "a paper-abnormality model (which reads each case's _brain slices) on two cases, one _brain slice a text file",
        _brain_label_not_a_tiff,
        "1 of 2 cases fail their header checks, so nothing was written: CASE_B: cannot read "
        "TMP/in/CASE_B/CASE_B_2_brain.tif: not a valid TIFF image or truncated (TiffFileError); fix or move them, then "
        "run again",
    ),
    BadInput(
        "mask-file-of-another-case",
        "`-o m.nii.gz` for one case, then for another case without --overwrite",
        _mask_file_of_another_case,
        "TMP/m_flairseg holds the report of case A, which the report of case B (mask TMP/m.nii.gz) would replace; "
        "pass --overwrite to replace it, or give -o another name",
    ),
    BadInput(
        "mask-file-of-the-other-extension",
        "`-o m.nii.gz` for a case, then `-o m.nii` for it (both reported in m_flairseg)",
        _mask_file_of_the_other_extension,
        "case A in TMP/m_flairseg was recorded with other outputs (its record names the mask ../m.nii.gz, this run "
        "writes the mask ../m.nii); pass --overwrite to predict it again, or write elsewhere",
    ),
    BadInput(
        "predicted-mask-edited",
        "a predicted mask edited by hand, then the prediction run again",
        _predicted_mask_edited,
        "TMP/pred/vol_mask.nii.gz changed since case vol was predicted into it; pass --overwrite to predict the case "
        "again (the change is then replaced), or move the file away",
    ),
    BadInput(
        "recorded-case-of-another-layout",
        "a volume CASE.nii.gz predicted into a folder that holds Kaggle case CASE's masks",
        _recorded_case_of_another_layout,
        "case CASE in TMP/pred was made from other inputs (CASE.nii.gz is new); pass --overwrite to predict it "
        "again, or write elsewhere",
    ),
    BadInput(
        "part-with-other-settings",
        "`--part 1/2 --tta` into a folder where part 0/2 was predicted without --tta",
        _part_with_other_settings,
        "case CASE_A in TMP/pred was predicted with another tta (false; this run: true); use the same model and "
        "settings for every part and run into one folder (--overwrite replaces the cases of this run's input alone), "
        "or another output folder",
    ),
    BadInput(
        "folder-command-over-a-file",
        "evaluate, which writes a folder, given -o an existing file and --overwrite",
        _folder_command_over_a_file,
        "output TMP/notes.txt is a file; this command writes a folder: give a new path",
    ),
    BadInput(
        "file-command-over-a-folder",
        "shape, which writes a CSV file, given -o a folder flairseg made and --overwrite",
        _file_command_over_a_folder,
        "output TMP/features.csv is a folder; this command writes a file: give a new path",
    ),
    BadInput(
        "preprocess-over-its-volumes-label",
        "preprocess of a lone volume with -o its own label beside it (read as the case's mask) and --overwrite",
        _preprocess_over_its_volumes_label,
        "output TMP/in/vol_mask.nii.gz overlaps the input TMP/in/vol_mask.nii.gz; choose an output path outside the "
        "inputs",
    ),
    BadInput(
        "preprocess-a-case-named-as-the-marker",
        "preprocess of a volume named .flairseg.nii.gz (case id '.flairseg', the name of flairseg's folder marker)",
        _preprocess_a_case_named_as_the_marker,
        "case id '.flairseg' is a hidden name, as flairseg's own files in an output folder are (.flairseg, locks, "
        "temporaries); rename the case without the leading '.'",
    ),
    BadInput(
        "evaluate-against-itself",
        "one folder given as both the prediction and the truth",
        _evaluate_against_itself,
        "--pred TMP/in and --truth TMP/in are the same folder: every case would score Dice 1 against itself; give "
        "the predicted masks as --pred and the true masks as --truth",
    ),
    BadInput(
        "evaluate-prediction-a-case-of-truth",
        "a case folder of the truth tree given as the prediction",
        _evaluate_prediction_a_case_of_truth,
        "case CASE of --pred (TMP/in/CASE) is or lies in case CASE of --truth (TMP/in/CASE): the masks of one would "
        "be read as the other's; keep the predictions and the truth in separate folders",
    ),
    BadInput(
        "evaluate-prediction-linked-to-truth",
        "a prediction folder whose case is a link to the truth's case",
        _evaluate_prediction_linked_to_truth,
        "the prediction of case CASE (TMP/pred/CASE) is its truth TMP/in/CASE (a link?): a truth mask would be "
        "scored as a prediction; give the predicted masks as --pred",
    ),
    BadInput(
        "checkpoint-declaring-a-larger-network",
        "a small checkpoint whose record declares a far larger network than its weights hold",
        _checkpoint_declaring_a_larger_network,
        "checkpoint m.json does not match its architecture: its weights lack 52 tensors of the network its record "
        "declares (e.g. dec2.0.weight, dec2.1.bias, dec2.1.num_batches_tracked); the record and the weights are not "
        "of one model",
    ),
    BadInput(
        "onnx-model-a-fifo",
        "a named pipe given as `--model m.onnx`",
        _onnx_model_a_fifo,
        "ONNX model TMP/m.onnx is not a file; give the .onnx file flairseg export wrote",
    ),
    BadInput(
        "train-config-a-fifo",
        "a named pipe given as `train --config`",
        _train_config_a_fifo,
        "config TMP/recipe.json is not a file; give the JSON file of the recipe",
    ),
    BadInput(
        "case-id-too-long-for-its-outputs",
        "a tree whose second case is named with 250 bytes: its outputs' names would pass a file name's 255 bytes",
        _case_id_too_long_for_its_outputs,
        f"case id '{'L' * 250}' (250 bytes) is too long: the names of its outputs (up to "
        "<case>_brain_probability.nii.gz) would pass the limit of 255 bytes a file name; rename the case to at most "
        "230 bytes",
    ),
    BadInput(
        "cv-with-a-bad-case-of-a-later-fold",
        "cv on data whose one bad case (a NaN pixel) is held out by fold 0 and trained on by the later folds",
        _cv_with_a_nan_in_a_later_fold,
        "TMP/in/CASE_2/CASE_2_2.tif holds 1 NaN or infinite pixels; fix or drop the slice",
    ),
    BadInput(
        "predict-onto-the-store-of-a-linked-view",
        "a selection tree of links to case folders of links into a data store, with that store as the output",
        _predict_onto_the_store_of_a_linked_view,
        "output TMP/store overlaps the input TMP/tree/CASE/CASE_1.tif (a link to TMP/store/CASE/CASE_1.tif); choose "
        "an output path outside the inputs",
    ),
    BadInput(
        "preprocess-onto-the-store-of-a-linked-view",
        "preprocess of a selection tree of links to case folders of links into a flairseg-made store, into that store",
        _preprocess_onto_the_store_of_a_linked_view,
        "output TMP/store overlaps the input TMP/tree/CASE/CASE_1.tif (a link to TMP/store/CASE/CASE_1.tif); choose "
        "an output path outside the inputs",
    ),
    BadInput(
        "evaluate-prediction-slices-linked-to-truth",
        "a prediction case folder whose mask slices are links to the truth's slices",
        _evaluate_prediction_slices_linked_to_truth,
        "the prediction of case CASE (TMP/pred/CASE/CASE_1_mask.tif) is its truth TMP/in/CASE/CASE_1_mask.tif (a "
        "link?): a truth mask would be scored as a prediction; give the predicted masks as --pred",
    ),
    BadInput(
        "resume-with-an-emptied-data-record",
        "resuming a run whose data.json (the record of its training data) was reduced to {} and a training case "
        "changed",
        _resume_with_an_emptied_data_record,
        "TMP/old/data.json is not the record of the run's data (the 2 training and validation cases of its "
        "split.json); restore it, or train again into a new folder",
    ),
    BadInput(
        "cv-fold-with-a-data-record-lacking-a-case",
        "rerunning cv over a finished fold whose data.json lost its training case, which then changed",
        _cv_fold_with_a_data_record_lacking_a_case,
        "TMP/cv/fold-0/data.json is not the record of the run's data (the 2 training and validation cases of its "
        "split.json); restore it, or train again into a new folder",
    ),
    BadInput(
        "thin-volume-over-the-budget-on-the-model-grid",
        "a NIfTI FLAIR of 40 slices of 4 x 4 voxels under an 8 MB memory budget: within it as read, not once each "
        "slice is resampled to the model's 256 x 256 input",
        _thin_volume_over_the_budget,
        "case thin declares 640 voxels x 1 channel(s), 2,621,440 on the model's 256 x 256 grid (40 slices), about "
        "60 MB to process, more than the memory budget of 8 MB; check its header, or raise the budget with "
        "--max-memory (e.g. --max-memory 32G)",
    ),
    BadInput(
        "second-mask-off-its-volume",
        "in a tree, a mask beside its volume whose header puts it 40 mm away (refused before any case is written)",
        _second_mask_off_its_volume,
        "1 of 2 cases fail their header checks, so nothing was written: w: mask w_mask.nii.gz (shape (8, 8, 4)) is "
        "not on the grid of w.nii.gz (shape (8, 8, 4)): shape or affine differ; resample the mask onto the image; "
        "fix or move them, then run again",
    ),
    BadInput(
        "second-brats-t1ce-off-its-flair",
        "in a tree, a BraTS case's T1c whose header puts it off its FLAIR's grid (refused before any case is written)",
        _second_brats_t1ce_off_its_flair,
        "1 of 2 cases fail their header checks, so nothing was written: BraTS_2: BraTS_2_t1ce.nii.gz is not on the "
        "grid of the FLAIR BraTS_2_flair.nii.gz (shape or affine differ); pass --resample to resample it onto the "
        "FLAIR, or resample it yourself; fix or move them, then run again",
    ),
    BadInput(
        "second-kaggle-mask-of-another-size",
        "in a tree, a Kaggle case's mask slice of another size than its images (refused before any case is written)",
        _second_kaggle_case_with_a_mask_of_another_size,
        "1 of 2 cases fail their header checks, so nothing was written: CASE_B: TMP/in/CASE_B/CASE_B_2_mask.tif is "
        "16x16 but the images are 32x32; fix or move them, then run again",
    ),
    BadInput(
        "second-kaggle-slice-of-another-size",
        "in a tree, a Kaggle case's slice of another size than its others (refused before any case is written)",
        _second_kaggle_case_with_a_slice_of_another_size,
        "1 of 2 cases fail their header checks, so nothing was written: CASE_B: TMP/in/CASE_B: mixed slice sizes or "
        "channel counts ((32, 32, 3) and (16, 16, 3) in CASE_B_2.tif); fix or move them, then run again",
    ),
    BadInput(
        "dicom-slice-of-another-size",
        "in a tree, a DICOM series with one slice of other Rows and Columns (refused before any case is written)",
        _dicom_slice_of_another_size_beside_a_good_series,
        "1 of 2 cases fail their header checks, so nothing was written: S: TMP/in/S: slice 3 (slice002.dcm) is 4 x 4 "
        "pixels (rows x columns) but slice 1 is 6 x 6; a volume needs one size for every slice: give each series its "
        "own folder; fix or move them, then run again",
    ),
    BadInput(
        "cv-init-not-a-checkpoint-record",
        "`cv --init list.json`, a JSON list (not a checkpoint's record) beside list.safetensors",
        _cv_init_not_a_checkpoint_record,
        "TMP/list.json is not a flairseg checkpoint description (no sha256)",
    ),
    BadInput(
        "cv-init-a-folder",
        "`cv --init` a folder (a previous cross-validation run) instead of its ensemble",
        _cv_init_a_folder,
        "checkpoint TMP/previous needs both previous.safetensors and previous.json",
    ),
    BadInput(
        "cv-fold-state-not-an-object",
        "`cv --fold 0` again after fold 0's last.json was replaced by a JSON list",
        _cv_fold_state_not_an_object,
        "TMP/cv/fold-0/last.json is not a training-state record (a JSON object)",
    ),
    BadInput(
        "cv-fold-state-epoch-not-a-number",
        '`cv --fold 0` again after fold 0\'s last.json got the epoch "x"',
        _cv_fold_state_epoch_not_a_number,
        "TMP/cv/fold-0/last.json: epoch 'x' is not a whole number >= -1",
    ),
    BadInput(
        "cv-fold-recipe-not-an-object",
        "`cv --fold 0` again after fold 0's config.json was replaced by null",
        _cv_fold_recipe_not_an_object,
        "TMP/cv/fold-0/config.json is not a training recipe (a JSON object of settings)",
    ),
    BadInput(
        "predicted-case-record-not-an-object",
        "a prediction rerun after a case's record (report/records/CASE_mask.json) was replaced by a JSON list",
        _predicted_case_record_not_an_object,
        "case CASE in TMP/pred has an unreadable record of how it was made (CASE_mask.json); pass --overwrite to "
        "predict it again",
    ),
    BadInput(
        "associate-hypothesis-twice",
        "`associate --hypothesis bevr:Cluster --hypothesis BEVR:Cluster`",
        _associate_hypothesis_twice,
        "hypothesis bevr:Cluster is given twice; give each hypothesis once",
    ),
    BadInput(
        "associate-feature-all-infinite",
        "a features file whose bevr column is infinite for every case",
        _associate_feature_all_infinite,
        "hypothesis bevr:Cluster has no case with both a bevr value and a Cluster label (empty masks give no "
        "features, missing labels no level); drop it, or give cases that have both",
    ),
    BadInput(
        "tiff-header-off-its-strips",
        "a slice whose header declares 60000 x 60000 pixels, which its strip table does not hold",
        _tiff_header_off_its_strips,
        "case TMP/in/CASE declares 10,800,000,000 voxels x 3 channel(s), about 724.2 GB to process, more than the "
        "memory budget of 1.0 GB; check its header, or raise the budget with --max-memory (e.g. --max-memory 32G)",
    ),
    BadInput(
        "evaluate-prediction-slice-linked-to-another-truth",
        "a predicted mask slice that is a link to another case's truth slice",
        _evaluate_prediction_slice_linked_to_another_truth,
        "the prediction of case CASE (TMP/pred/CASE/CASE_1_mask.tif) is the truth of case OTHER "
        "TMP/in/OTHER/OTHER_1_mask.tif (a link?): a truth mask would be scored as a prediction; give the predicted "
        "masks as --pred",
    ),
    BadInput(
        "kaggle-slice-names-too-long-for-their-masks",
        "a tree whose second case's slices are named with 250 bytes: their mask slices' names would pass 255 bytes",
        _kaggle_slice_names_too_long_for_their_masks,
        f"1 of 2 cases fail their header checks, so nothing was written: CASE_B: TMP/in/CASE_B/{'S' * 245}_1.tif: "
        "the name of its mask slice (257 bytes with _brain.tif) would pass the limit of 255 bytes a file name; "
        "rename the case's slices; fix or move them, then run again",
    ),
    BadInput(
        "shape-of-a-case-its-run-did-not-finish",
        "a prediction folder whose case failed when the run was repeated (its earlier mask kept), measured by shape",
        _shape_of_a_case_its_run_did_not_finish,
        "TMP/pred/b_mask.nii.gz is the mask of case b, which its prediction run began and did not finish (it failed "
        "or was stopped; its mask is not the prediction of its input now): predict the case again, or move its mask "
        "out of the folder",
    ),
    BadInput(
        "predict-truth-its-own-image",
        "`predict -i vol.nii.gz --truth vol.nii.gz`: the image given as its own truth",
        _predict_truth_its_own_image,
        "the truth of case vol (TMP/in/vol.nii.gz) is its image: --truth takes masks (<case>_mask.nii.gz), not the "
        "images predicted",
    ),
    BadInput(
        "shape-of-images",
        "`shape` of a tree of int16 FLAIR volumes without masks: images read as label maps",
        _shape_of_images,
        "case vol: the mask vol.nii.gz holds 1,023 different labels, more than the 255 of a label map: an image, not "
        "a mask? give its mask (0 background, positive labels)",
    ),
    BadInput(
        "patch-not-a-multiple-of-the-depth",
        "a training patch the U-Net cannot halve at every level (17 pixels, depth 4)",
        _patch_not_a_multiple_of_the_depth,
        "patch 17 is not a multiple of 2**model.depth = 16; the U-Net halves its crops at every level",
    ),
    BadInput(
        "onnx-answering-booleans",
        "an ONNX export whose logits are cast to booleans (stamped again): sigmoid(1) would pass every pixel",
        _onnx_answering_booleans,
        "TMP/m.onnx declares its output a tensor(bool), not a tensor(float) (float32) of a logit map; export the "
        "checkpoint again",
    ),
    BadInput(
        "resume-with-edited-optimizer-settings",
        "`train --resume` of a training state whose optimizer settings were edited (maximize: gradient ascent) and "
        "saved again with matching hashes",
        _resume_with_edited_optimizer_settings,
        "TMP/old/last.json: the optimizer setting maximize True is not the False the run's recipe makes; restore the "
        "file, or start a new run",
    ),
    BadInput(
        "checkpoint-postprocess-value-nan",
        "a checkpoint whose postprocessing value is NaN, for a rule that does not use it (written into every record)",
        _checkpoint_postprocess_value_nan,
        "the checkpoint's postprocessing setting is invalid: postprocessing rule 'largest' needs a finite value, not "
        "nan",
    ),
    BadInput(
        "checkpoint-of-float64-weights",
        "a checkpoint whose weights are float64 (1e300 would load as infinity, after the check for infinite values)",
        _checkpoint_of_float64_weights,
        "checkpoint m.json stores enc1.0.weight as float64, not the network's float32; the file was edited or is not "
        "flairseg's",
    ),
    BadInput(
        "thin-long-slices-over-the-budget-when-resized",
        "a case of 4 x 1000-pixel slices preprocessed with a paper variant under a 50 MB budget: small as read, "
        "a 256 x 64000 plane once its short side is scaled to 256",
        _thin_long_slices_paper,
        "case CASE declares 12,000 voxels x 3 channel(s), 49,152,000 on the 256 x 64000 plane it is resized on (3 "
        "slices), about 3.3 GB to process, more than the memory budget of 50 MB; check its header, or raise the "
        "budget with --max-memory (e.g. --max-memory 32G)",
    ),
    BadInput(
        "thin-long-slices-over-the-budget-in-the-port-square",
        "a case of 4 x 1000-pixel slices preprocessed with the port variant under a 50 MB budget: its slices are "
        "padded to a 1000 x 1000 square (and resized by a matrix of that square)",
        _thin_long_slices_port,
        "case CASE declares 12,000 voxels x 3 channel(s), 3,000,000 on the 1000 x 1000 plane it is resized on (3 "
        "slices), about 206 MB to process, more than the memory budget of 50 MB; check its header, or raise the "
        "budget with --max-memory (e.g. --max-memory 32G)",
    ),
    BadInput(
        "dicom-rescale-slope-nan",
        "a DICOM slice whose Rescale Slope is NaN: GDCM leaves its values unscaled without a word",
        _dicom_rescale_slope_nan,
        "TMP/in/S: slice 2 (slice001.dcm) has Rescale Slope 'NaN'; it must be one finite number; repair the series",
    ),
    BadInput(
        "thin-volume-second-in-a-tree",
        "a tree whose second volume's model grid is over the budget (40 slices of 4 x 4 voxels, 8 MB): refused from "
        "its header, before the first case is written",
        _thin_volume_second_in_a_tree,
        "1 of 2 cases fail their header checks, so nothing was written: thin: case thin declares 640 voxels x 1 "
        "channel(s), 2,621,440 on the model's 256 x 256 grid (40 slices), about 60 MB to process, more than the "
        "memory budget of 8 MB; check its header, or raise the budget with --max-memory (e.g. --max-memory 32G); fix "
        "or move them, then run again",
    ),
    BadInput(
        "shape-of-the-mask-file-of-a-case-its-run-did-not-finish",
        "the mask file of a case whose run failed it (its earlier mask kept), given to shape by its own path",
        _shape_of_the_mask_file_of_a_case_its_run_did_not_finish,
        "TMP/pred/b_mask.nii.gz is the mask of case b, which its prediction run began and did not finish (it failed "
        "or was stopped; its mask is not the prediction of its input now): predict the case again, or move its mask "
        "out of the folder",
    ),
    BadInput(
        "shape-of-brain-masks",
        "`shape` of a folder of brain masks (`<case>_brain.nii.gz`): the whole brain would be measured as a tumour",
        _shape_of_brain_masks,
        "TMP/in holds no masks named <case>_mask.nii.gz: C0_brain.nii.gz is named as another task's mask or a "
        "probability map; give a folder of this task's masks",
    ),
    BadInput(
        "cv-over-a-users-report",
        "cv into a user's project folder (no marker) holding fold runs they trained and their own report/ folder",
        _cv_over_a_users_report,
        "TMP/proj/report is in the way of cross-validation's results and flairseg has no record of writing it; move "
        "it away (flairseg cv writes its report and predictions only where it made them)",
    ),
    BadInput(
        "predict-into-a-users-report-with-records",
        "`predict -o PROJ` where PROJ/report is a user's own folder holding records/CASE.json, their notes",
        _predict_into_a_users_report_with_records,
        "TMP/study/report is in the way of the run's report and flairseg has no record of writing it; move it away "
        "(flairseg writes its report only into a folder of its own)",
    ),
    BadInput(
        "cv-fold-holding-another-folds-model",
        "a cross-validation whose fold 0 holds fold 1's best model (trained on fold 0's test cases), evaluated",
        _cv_fold_holding_another_folds_model,
        "TMP/cv/fold-0/best.json records another split than TMP/cv/fold-0/split.json (another run's model?): it may "
        "have trained on this run's held-out cases; restore the run's own model, or train it again",
    ),
    BadInput(
        "mask-file-named-as-the-truth",
        "`predict -i in/vol.nii.gz -o in/vol_mask.nii.gz`: the prediction where every later run reads the truth",
        _mask_file_named_as_the_truth,
        "mask file TMP/in/vol_mask.nii.gz is named as a file of case vol beside it (its truth, a label or a "
        "sequence), which every later run would read as such; give the mask another name (e.g. vol_pred.nii.gz) or "
        "write it elsewhere",
    ),
    BadInput(
        "resume-with-another-runs-best-model",
        "`train --resume` of a finished run whose best model was replaced by another run's (fold 1's)",
        _resume_with_another_runs_best_model,
        "TMP/old/best.json records another split than TMP/old/split.json (another run's model?): it may have trained "
        "on this run's held-out cases; restore the run's own model, or train it again",
    ),
    BadInput(
        "recipe-with-true-for-a-number",
        "a recipe whose `fold` is JSON `true` (taken as 1, another fold than meant)",
        _recipe_with_true_for_a_number,
        "fold must be int, not true",
    ),
    BadInput(
        "jpeg-strip-larger-than-its-slice",
        "a JPEG-compressed slice of 32 x 32 pixels whose one strip holds a 4000 x 4000 JPEG, under a 50 MB budget",
        _jpeg_strip_larger_than_its_slice,
        "case TMP/in/CASE declares 48,000,000 voxels x 1 channel(s), about 1.1 GB to process, more than the memory "
        "budget of 50 MB; check its header, or raise the budget with --max-memory (e.g. --max-memory 32G)",
    ),
    BadInput(
        "case-id-of-another-spelling-into-one-folder",
        "case casea predicted into a folder that records case CaseA (one file name on macOS and Windows)",
        _case_id_of_another_spelling_into_one_folder,
        "case 'casea' and case 'CaseA', which TMP/pred records, have one id (compared regardless of case and of how "
        "accents are encoded): they would share an output; rename one, or predict into another folder",
    ),
    BadInput(
        "evaluate-over-a-training-run",
        "`evaluate -o RUN --overwrite` where RUN is a trained run (its weights would be replaced by a report)",
        _evaluate_over_a_training_run,
        "output TMP/old holds flairseg's training run; this command writes its evaluation report only over a folder "
        "of that kind: choose another path",
    ),
    BadInput(
        "associate-clinical-a-folder",
        "`associate --clinical` given a folder instead of the CSV file",
        _associate_clinical_a_folder,
        "clinical file TMP/clinical is not a file (a folder or a pipe?); give the CSV file",
    ),
    BadInput(
        "predict-into-preprocessed-cases",
        "`predict -o PP --overwrite` where PP is a folder `preprocess` made (its training labels would be replaced)",
        _predict_into_preprocessed_cases,
        "output TMP/pp holds flairseg's preprocessed cases, which predict never writes into: choose another path",
    ),
    BadInput(
        "dicom-monochrome1",
        "a DICOM slice stored as MONOCHROME1 (inverted grey levels) in a series of MONOCHROME2 ones",
        _dicom_monochrome1,
        "TMP/in/S: slice 2 (slice001.dcm) has Photometric Interpretation MONOCHROME1 (inverted grey levels), which "
        "flairseg does not read; convert the series to MONOCHROME2",
    ),
    BadInput(
        "kaggle-slices-of-two-bit-depths",
        "a Kaggle case whose second slice is 16-bit among 8-bit ones (stacked, it would darken all the others)",
        _kaggle_slices_of_two_bit_depths,
        "TMP/in/CASE: mixed slice types (uint8 and uint16 in CASE_2.tif); save every slice of a case with one bit "
        "depth",
    ),
    BadInput(
        "recipe-with-a-key-twice",
        "a recipe file giving `epochs` twice (the last would win without a word)",
        _recipe_with_a_key_twice,
        "cannot read config TMP/recipe.json: the key 'epochs' given twice in one object",
    ),
    BadInput(
        "volume-of-negative-values",
        "a NIfTI FLAIR whose values are all negative (inverted or scaled by a negative slope)",
        _volume_of_negative_values,
        "case vol: image holds no positive value, only zero and below (inverted, or scaled by a negative slope?); "
        "check its header's scaling",
    ),
    BadInput(
        "shape-over-a-clinical-table",
        "`shape -o data.csv --overwrite` where data.csv is a clinical table (or a training run's log.csv)",
        _shape_over_a_clinical_table,
        "output TMP/data.csv is a file this command did not write; --overwrite replaces only a file it wrote: "
        "choose another path",
    ),
    BadInput(
        "export-over-an-onnx-file-of-another-tool",
        "`export -o model.onnx --overwrite` where model.onnx is a file flairseg did not export",
        _export_over_an_onnx_file_of_another_tool,
        "output TMP/model.onnx is a file this command did not write; --overwrite replaces only a file it wrote: "
        "choose another path",
    ),
    BadInput(
        "mask-file-over-another-scan",
        "`predict -i a.nii.gz -o b.nii.gz --overwrite` where b.nii.gz is another patient's scan",
        _mask_file_over_another_scan,
        "TMP/in/b.nii.gz is in the way of case a's output and flairseg has no record of writing it; move it away",
    ),
    BadInput(
        "mask-file-report-over-a-tree-prediction",
        "`predict -o study.nii.gz --overwrite` where study_flairseg (the mask file's report folder) holds the "
        "prediction of a tree of cases",
        _mask_file_report_over_a_tree_prediction,
        "TMP/study_flairseg, where the report of mask file TMP/study.nii.gz goes, holds more than a report (the "
        "prediction of a tree of cases?): give -o another name",
    ),
    BadInput(
        "flair-option-given-a-label",
        "`predict --flair v_mask.nii.gz` (a label volume given by name as the FLAIR)",
        _flair_option_given_a_label,
        "--flair TMP/in/v_mask.nii.gz is named like a label volume (segmentation or mask), not an image",
    ),
    BadInput(
        "t1-option-given-the-flair",
        "`predict --flair v.nii.gz --t1 v.nii.gz` (the FLAIR given again as the T1)",
        _t1_option_given_the_flair,
        "--t1 TMP/in/vol.nii.gz is the FLAIR itself; leave it out, and a copy of the FLAIR stands in",
    ),
    BadInput(
        "truth-option-given-the-flair-file",
        "`predict --flair v.nii.gz --truth v.nii.gz` (the image given as its own truth)",
        _truth_option_given_the_flair_file,
        "the truth of case vol (TMP/in/vol.nii.gz) is its image: --truth takes masks (<case>_mask.nii.gz), not the "
        "images predicted",
    ),
    BadInput(
        "predict-into-a-cross-validations-masks",
        "`predict -o cv/predictions --overwrite`, a folder inside the one `cv` made",
        _predict_into_a_cross_validations_masks,
        "output TMP/cv/predictions lies in TMP/cv, flairseg's cross-validation, which predict never writes into: "
        "choose another path",
    ),
    BadInput(
        "output-that-is-a-pipe",
        "`shape -o features.csv --overwrite` where features.csv is a named pipe",
        _output_that_is_a_pipe,
        "output TMP/features.csv is neither a file nor a folder (a pipe or a device): give a new path",
    ),
    BadInput(
        "input-that-is-a-pipe",
        "a named pipe given as the input (`-i <(zcat v.nii.gz)`)",
        _input_that_is_a_pipe,
        "TMP/v.nii.gz is neither a file nor a folder (a pipe or a device); give a NIfTI file or a folder",
    ),
    BadInput(
        "tree-with-a-volume-in-a-plain-folder",
        "a tree holding a.nii.gz and b/b.nii.gz (a folder no naming convention makes a case folder)",
        _tree_with_a_volume_in_a_plain_folder,
        "TMP/in/b/b.nii.gz lies in TMP/in/b, a folder flairseg reads as no case (the cases of a tree lie side by "
        "side, a case's volumes in a case folder named by BraTS, nnU-Net or BIDS): move it up beside the other cases, "
        "or give the folder as an input of its own",
    ),
    BadInput(
        "truth-file-of-another-task",
        "`predict --truth v_brain.nii.gz` (a brain mask given as the tumour truth)",
        _truth_file_of_another_task,
        "TMP/v_brain.nii.gz is named as another task's mask or a probability map; give this task's mask "
        "(<case>_mask.nii.gz)",
    ),
    BadInput(
        "kaggle-slice-stored-white-at-zero",
        "a Kaggle slice stored MinIsWhite (its grey levels inverted, as DICOM's MONOCHROME1)",
        _kaggle_slice_stored_white_at_zero,
        "TMP/in/CASE/CASE_2.tif stores its pixels as MINISWHITE (TIFF photometric interpretation); flairseg reads "
        "grey (black at 0) or RGB slices: convert it",
    ),
    BadInput(
        "kaggle-mask-stored-bottom-up",
        "a Kaggle mask slice stored bottom-up (TIFF Orientation 4: a viewer shows it right, its rows come reversed)",
        _kaggle_mask_stored_bottom_up,
        "TMP/in/CASE/CASE_1_mask.tif stores its rows or columns in another order (TIFF Orientation 4, not 1: top "
        "left); convert it",
    ),
    BadInput(
        "case-named-in-another-encoding",
        "a case folder whose name is not UTF-8 (byte 0xFF)",
        _case_named_in_another_encoding,
        "case id b'Q\\xff' is not UTF-8 (a name from another encoding?); rename the case",
    ),
    BadInput(
        "run-folder-as-the-model",
        "`predict --model RUN` (a training run's folder, not its RUN/best.json)",
        _run_folder_as_the_model,
        "TMP/old is a run folder, not a checkpoint; give its model, TMP/old/best.json",
    ),
    BadInput(
        "lock-path-taken-by-the-recipe",
        "the recipe kept as `.run.lock`, the name of the lock flairseg keeps beside the run folder `run`",
        _lock_path_taken_by_the_recipe,
        "TMP/.run.lock lies where flairseg keeps a lock and is no lock of its (a file of yours?); move it away",
    ),
    BadInput(
        "kaggle-slice-compressed-as-png",
        "a Kaggle slice compressed as PNG inside its TIFF (each strip an image decoded whole, whatever its size)",
        _kaggle_slice_compressed_as_png,
        "TMP/in/CASE/CASE_2.tif is compressed as PNG, an image codec whose decoded size flairseg cannot check before "
        "decoding; store the slices uncompressed, or compressed as LZW, Deflate or JPEG",
    ),
    BadInput(
        "nifti-with-a-huge-header-extension",
        "a small .nii.gz whose header carries an extension larger than the memory budget",
        _nifti_with_a_huge_header_extension,
        "TMP/in/vol.nii.gz declares header extensions of 4 MB, more than the memory budget of 2 MB (--max-memory); "
        "re-export it without them",
    ),
    BadInput(
        "tree-with-a-case-in-a-site-folder",
        "a tree holding CASE_A and site2/CASE_B (a case folder one level down)",
        _tree_with_a_case_in_a_site_folder,
        "TMP/in/site2/CASE_B lies in TMP/in/site2, a folder flairseg reads as no case (the cases of a tree lie side by "
        "side, a case's volumes in a case folder named by BraTS, nnU-Net or BIDS): move it up beside the other cases, "
        "or give the folder as an input of its own",
    ),
    BadInput(
        "kaggle-case-with-slices-in-a-subfolder",
        "a Kaggle case of a tree with some of its slices in a subfolder of its own",
        _kaggle_case_with_slices_in_a_subfolder,
        "TMP/in/CASE holds both image slices (CASE_1.tif) and case folders (more/), so it is neither one case nor a "
        "folder of cases; move the stray slices out of it, or point flairseg at one case folder",
    ),
    BadInput(
        "kaggle-slice-stored-as-a-volume",
        "a Kaggle slice that is a volumetric TIFF page (its depth would be read as the rows)",
        _kaggle_slice_stored_as_a_volume,
        "TMP/in/CASE/CASE_2.tif is a volume of 32 planes (TIFF ImageDepth); a slice is one plane: split it into "
        "<CASE>_<k>.tif files",
    ),
    BadInput(
        "kaggle-jpeg-strip-sized-past-its-head",
        "a JPEG-compressed Kaggle slice whose strip declares its frame size only after 128 kB of metadata",
        _kaggle_jpeg_strip_sized_past_its_head,
        "TMP/in/CASE/CASE_2.tif: a JPEG strip or tile declares no frame size in its first 64 kB; save the slice "
        "again (uncompressed, or as a plain JPEG-compressed TIFF)",
    ),
    BadInput(
        "part-dealt-from-another-tree",
        "`--part 1/2` run after a case was added to the tree that `--part 0/2` was dealt from",
        _part_dealt_from_another_tree,
        "TMP/parts/report/parts/part-0-of-2.json names other cases than the input deals --part 0/2 now (cases added, "
        "removed or changed since): delete the part records in TMP/parts/report/parts and run every part again (the "
        "cases done are reused)",
    ),
    BadInput(
        "checkpoint-named-across-lines",
        "a checkpoint whose name holds a line break (it titles the report and the records)",
        _checkpoint_named_across_lines,
        "checkpoint m.json is named 'm\\n# Released'; a model's name is one line of text",
    ),
    BadInput(
        "kaggle-case-holding-a-nifti",
        "a Kaggle case folder of a tree that also holds a NIfTI volume (another case's scan)",
        _kaggle_case_holding_a_nifti,
        "1 of 2 cases fail their header checks, so nothing was written: CASE_B: TMP/in/CASE_B holds Kaggle TIFF "
        "slices and also P0.nii.gz, an image of another format; a case folder holds one case in one format: move "
        "P0.nii.gz out of it; fix or move them, then run again",
    ),
    BadInput(
        "dicom-series-holding-tiff-slices",
        "a DICOM series folder that also holds a Kaggle case's TIFF slices",
        _dicom_series_holding_tiff_slices,
        "TMP/in/S holds Kaggle TIFF slices and also slice000.dcm, an image of another format; a case folder holds "
        "one case in one format: move slice000.dcm out of it",
    ),
    BadInput(
        "bids-subject-in-a-report-folder",
        "a BIDS dataset with a subject's FLAIR in a folder named report (the run's own report folder)",
        _bids_subject_in_a_report_folder,
        "case TMP/bids/report/sub-02_FLAIR.nii.gz lies in a folder named 'report', which the run's own outputs use; "
        "rename the folder",
    ),
    BadInput(
        "kaggle-case-in-a-bids-dataset",
        "a Kaggle case folder inside a BIDS dataset",
        _kaggle_case_in_a_bids_dataset,
        "TMP/bids/CASE is a case folder of slices inside the BIDS dataset TMP/bids, whose derivatives name NIfTI "
        "masks; convert it to NIfTI (e.g. with dcm2niix) or give it as an input of its own",
    ),
    BadInput(
        "checkpoint-named-as-a-release",
        "a checkpoint of other weights named as a released model (its reports would name the release)",
        _checkpoint_named_as_a_release,
        "m.json is named abnormality-lgg-cv5-v3, the name of a released model, but holds other weights; give it a "
        'name of its own (the "name" field of its JSON)',
    ),
    BadInput(
        "thin-dicom-series-over-the-budget-in-a-tree",
        "in a tree, a DICOM series of 40 slices of 6 x 6 pixels under a 20 MB budget: within it as read, not once "
        "each slice is resampled to the model's grid (refused before any case is written)",
        _thin_dicom_series_over_the_budget_in_a_tree,
        "1 of 2 cases fail their header checks, so nothing was written: S: case S declares 1,440 voxels x 1 "
        "channel(s), 2,621,440 on the model's 256 x 256 grid (40 slices), about 60 MB to process, more than the memory "
        "budget of 20 MB; check its header, or raise the budget with --max-memory (e.g. --max-memory 32G); fix or move "
        "them, then run again",
    ),
    BadInput(
        "brats-case-over-the-budget-on-the-model-grid",
        "in a tree, a BraTS case whose FLAIR fits the budget on the model's grid, but not with the channels its T1 "
        "adds (refused before any case is written)",
        _brats_case_over_the_budget_on_the_model_grid,
        "1 of 2 cases fail their header checks, so nothing was written: BraTS_1: case BraTS_1 declares 2,560 voxels "
        "x 3 channel(s), 655,360 on the model's 256 x 256 grid (10 slices), about 45 MB to process, more than the "
        "memory budget of 20 MB; check its header, or raise the budget with --max-memory (e.g. --max-memory 32G); fix "
        "or move them, then run again",
    ),
    BadInput(
        "resumed-run-with-a-linked-log",
        "`train --resume` of a run folder whose log.csv is a link to a file outside it (a run copied with cp -rs)",
        _resumed_run_with_a_linked_log,
        "TMP/old/log.csv is a link (to TMP/notes.txt), which flairseg never makes in a folder it writes into: writing "
        "there would change the file it leads to; replace it with a copy of that file",
    ),
    BadInput(
        "unrecorded-probability-map-of-a-recorded-case",
        "`predict --probabilities --overwrite` where a file of the user's lies at a predicted case's probability "
        "map, which its record does not name",
        _unrecorded_probability_map_of_a_recorded_case,
        "TMP/pred/vol_probability.nii.gz is in the way of case vol's output and flairseg has no record of writing it; "
        "move it away",
    ),
    BadInput(
        "tree-with-a-case-in-a-folder-named-for-labels",
        "a tree holding CASE_A and seguimiento/CASE_B (a case folder of images in a folder named like a label "
        "folder, seg*)",
        _tree_with_a_case_in_a_folder_named_for_labels,
        "TMP/in/seguimiento/CASE_B lies in TMP/in/seguimiento, a folder flairseg reads as no case (the cases of a tree "
        "lie side by side, a case's volumes in a case folder named by BraTS, nnU-Net or BIDS): move it up beside the "
        "other cases, or give the folder as an input of its own",
    ),
    BadInput(
        "kaggle-slice-cut-inside-its-strip",
        "in a tree, a Kaggle slice cut short inside its image data, its header intact (refused before any case is "
        "written)",
        _kaggle_slice_cut_inside_its_strip,
        "1 of 2 cases fail their header checks, so nothing was written: CASE_1: TMP/in/CASE_1/CASE_1_2.tif holds "
        "3,144 bytes but its header places image data up to byte 3,344: the file is truncated; copy it again; fix or "
        "move them, then run again",
    ),
    BadInput(
        "nifti-cut-by-less-than-its-header",
        "in a tree, an uncompressed NIfTI cut short by fewer bytes than its header takes (refused before any case is "
        "written)",
        _nifti_cut_by_less_than_its_header,
        "1 of 2 cases fail their header checks, so nothing was written: P1: TMP/in/P1.nii holds 8,244 bytes but its "
        "header describes 8,544: the file is truncated or its dimensions are wrong; fix or move them, then run again",
    ),
    BadInput(
        "train-into-a-cross-validations-fold",
        "`train -o CV/fold-0 --overwrite` into a fold of a cross-validation (its folds are cv's to train)",
        _train_into_a_cross_validations_fold,
        "output TMP/cv/fold-0 lies in TMP/cv, flairseg's cross-validation, which train never writes into: choose "
        "another path",
    ),
    BadInput(
        "preprocess-into-a-training-run",
        "`preprocess -o RUN/pp` inside a training run's folder",
        _preprocess_into_a_training_run,
        "output TMP/old/pp lies in TMP/old, flairseg's training run, which preprocess never writes into: choose "
        "another path",
    ),
    BadInput(
        "file-named-as-a-kaggle-cases-output-folder",
        "a file of the user's in the output folder, named as a Kaggle case whose mask folder goes there",
        _file_named_as_a_kaggle_cases_output_folder,
        "TMP/pred/CASE is in the way of case CASE's output and flairseg has no record of writing it; move it away",
    ),
    BadInput(
        "resumed-run-with-a-pipe-as-its-log",
        "`train --resume` of a run folder whose log.csv is a named pipe (reading it would wait for ever)",
        _resumed_run_with_a_pipe_as_its_log,
        "TMP/old/log.csv is neither a file nor a folder (a pipe or a device): move it away",
    ),
    BadInput(
        "t1c-option-given-another-cases-flair",
        "`predict --flair A_flair.nii.gz --t1c B_flair.nii.gz` (another case's FLAIR, by its name, given as the T1c)",
        _t1c_option_given_another_cases_flair,
        "--t1c TMP/in/B_flair.nii.gz is the flair volume of case B, not a t1c",
    ),
    BadInput(
        "t1-option-given-another-cases-t1",
        "`predict --flair A_flair.nii.gz --t1 B_t1.nii.gz` (another case's T1, by its name)",
        _t1_option_given_another_cases_t1,
        "--t1 TMP/in/B_t1.nii.gz is a volume of case B, and --flair TMP/in/A_flair.nii.gz of case A: give the "
        "sequences of one case",
    ),
    BadInput(
        "truth-named-for-a-case-in-other-letters",
        "a --truth mask a_mask.nii.gz for case A (the id in other letter case)",
        _truth_named_for_a_case_in_other_letters,
        "--truth mask TMP/truth/a_mask.nii.gz is named for case 'a', and the case is 'A': name it as the case "
        "(A_mask) to score it",
    ),
    BadInput(
        "mask-file-named-as-its-flair-in-other-letters",
        "`-o in/p1_flair.nii.gz` for the case in/P1_flair.nii.gz (its own FLAIR's name in other letter case)",
        _mask_file_named_as_its_flair_in_other_letters,
        "mask file TMP/in/p1_flair.nii.gz is named as a file of case P1 beside it (its truth, a label or a sequence), "
        "which every later run would read as such; give the mask another name (e.g. P1_pred.nii.gz) or write it "
        "elsewhere",
    ),
    BadInput(
        "case-output-folder-linked-outside",
        "a link in the output folder, where a Kaggle case's mask folder goes, to a user's folder outside it",
        _case_output_folder_linked_outside,
        "TMP/pred/CASE is a link (to TMP/user/CASE), which flairseg never makes in a folder it writes into: writing "
        "there would change the file it leads to; replace it with a copy of that file",
    ),
    BadInput(
        "kaggle-slices-of-two-bit-depths-in-a-tree",
        "in a tree, a Kaggle case one of whose slices is 16-bit, the others 8-bit (refused before any case is written)",
        _kaggle_slices_of_two_bit_depths_in_a_tree,
        "1 of 2 cases fail their header checks, so nothing was written: CASE_B: TMP/in/CASE_B: mixed slice types "
        "(uint8 and uint16 in CASE_B_2.tif); save every slice of a case with one bit depth; fix or move them, then run "
        "again",
    ),
    BadInput(
        "record-nested-too-deeply",
        "a case record in the output's report folder that is a JSON array nested 5,000 deep",
        _record_nested_too_deeply,
        "TMP/pred/report is in the way of the run's report and flairseg has no record of writing it; move it away "
        "(flairseg writes its report only into a folder of its own)",
    ),
    BadInput(
        "dicom-slice-stored-in-colour",
        "a DICOM series one of whose slices is stored as RGB (read into grey values otherwise)",
        _dicom_slice_stored_in_colour,
        "TMP/in/S: slice 3 (slice002.dcm) holds 3 samples per pixel (a colour image); a FLAIR series is greyscale: "
        "export it as MONOCHROME2",
    ),
]


def run(entry: BadInput, tmp: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    argv = entry.make(tmp)
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's exit, for a command line it cannot parse
        code = stop.code
    err = capsys.readouterr().err.strip()
    return code, err.replace(str(tmp), "TMP")


PARTIAL = {"one-case-of-three-unreadable", "one-case-of-three-too-thin"}  # the good cases written, the others listed


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda e: e.name)
def test_bad_input_gives_its_documented_message(
    entry: BadInput, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(entry, tmp_path, capsys)
    assert code == entry.status and "\n" not in err and err == entry.line
    if entry.name in PARTIAL:
        out = tmp_path / "out"
        assert sorted(p.name for p in out.iterdir() if p.name.startswith("CASE")) == ["CASE_A", "CASE_C"]
        assert (out / "report" / "failures.csv").read_text().splitlines()[1].startswith("CASE_B,")
        return
    for output in ("out", "run", "report", "features.txt", "model.pt"):
        created = tmp_path / output
        assert not created.exists() or output in ("report", "run") and not any(created.iterdir())


def test_a_refused_mask_file_leaves_the_truth_and_writes_no_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = tmp_path / "in" / "vol_mask.nii.gz"
    for make in (_mask_file_over_its_truth, _mask_file_linked_to_its_truth):
        shutil.rmtree(tmp_path / "in", ignore_errors=True)
        argv = make(tmp_path)
        before = truth.read_bytes()
        assert main(argv) == 1
        assert truth.read_bytes() == before and not truth.is_symlink()
        assert not any(p.name.endswith("_flairseg") for p in [*tmp_path.iterdir(), *(tmp_path / "in").iterdir()])
        (tmp_path / "lm.nii.gz").unlink(missing_ok=True)
    capsys.readouterr()


def test_the_catalogue_is_long_and_documented() -> None:
    assert len(CATALOGUE) >= 30 and len({e.name for e in CATALOGUE}) == len(CATALOGUE)
    assert (Path(__file__).parents[1] / "docs" / "bad-inputs.md").read_text(encoding="utf-8") == markdown()


def markdown() -> str:
    lines = [
        "# Bad inputs and what flairseg says",
        "",
        "Every entry is a test (`tests/test_bad_inputs.py`): the command exits with status 1 (2 for a command line",
        "it cannot parse), prints exactly this one line on stderr and writes nothing. TMP stands for the folder the",
        "input lies in. Regenerate this page with `python tests/test_bad_inputs.py > docs/bad-inputs.md`.",
        "",
        "| # | input | message |",
        "|---|---|---|",
    ]
    for number, entry in enumerate(CATALOGUE, start=1):
        line = entry.line.replace("|", "\\|")
        lines.append(f"| {number} | {entry.what} | `{line}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "-i", "IN", "-o", "OUT", "--batch-size", "0"],
        ["predict", "-i", "IN", "-o", "OUT", "--batch-size", "-3"],
        ["predict", "-i", "IN", "-o", "OUT", "--threads", "0"],
        ["train", "--data", "IN", "-o", "OUT", "--epochs", "0"],
        ["demo", "-o", "OUT", "--threads", "-1"],
        ["shape", "-i", "IN", "-o", "OUT", "--points", "x"],
    ],
)
def test_numeric_options_are_range_checked_where_parsed(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(tmp_path / a) if a in ("IN", "OUT") else a for a in argv]
    _case(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        stop.value.code == 2 and "error: argument" in err[-1] and ("at least 1" in err[-1] or "whole number" in err[-1])
    )
    assert not (tmp_path / "OUT").exists()


def _commands() -> list[str]:
    """The names of flairseg's commands, as its parser knows them."""
    import argparse

    from flairseg.cli import build_parser

    return list(next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices)


@pytest.mark.parametrize("command", [[], *([name] for name in _commands())], ids=lambda c: " ".join(c) or "flairseg")
def test_every_parser_says_what_it_cannot_parse_in_one_line(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The top-level parser and each command's: one line on stderr and status 2 for a command line they cannot take,
    the whole usage and option list for --help."""
    prog = " ".join(["flairseg", *command])
    for argv in ([*command, "--no-such-option"], [*command, "--no-such-option=1", "--quiet", "x"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"{prog}: error: ") and err.endswith(f" (see {prog} --help)\n"), err
    with pytest.raises(SystemExit) as stop:
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and out.startswith(f"usage: {prog} ") and "options:" in out and "--help" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "-i", "x", "-o", "y", "--task", "tumour"], "argument --task: invalid choice: 'tumour'"),
        (["evaluate", "--pred", "x"], "the following arguments are required: --truth, -o/--output"),
        (["predcit", "-i", "x"], "argument COMMAND: invalid choice: 'predcit'"),
        (["predict", "-i", "x", "-o", "y", "--precision", "fp1\n6"], "invalid choice: 'fp1\\n6'"),
    ],
)
def test_parser_errors_name_the_mistake(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("preprocess.size=8", "preprocess.size 8 is not in 16..1024"),
        ("preprocess.size=2048", "preprocess.size 2048 is not in 16..1024"),
        ("seed=-1", "seed must be in [0, 9223372036854775807], not -1"),
        ("lr=inf", "lr must be in (0, 1] and threshold in (0, 1), not lr=inf"),
        ("lr=1e38", "lr must be in (0, 1] and threshold in (0, 1), not lr=1e+38"),
        ("weight_decay=nan", "weight_decay must be in [0, 1], not nan"),
        ("batch_workers=100000", "batch_workers must be in [0, 64], not 100000"),
        ("preprocess.std=0", "std 0.0 is not in [0.001, 1000]"),
        ("preprocess.mean=1e308", "mean 1e+308 is not in [-1000, 1000]"),
        ("preprocess.mean=-1e20", "mean -1e+20 is not in [-1000, 1000]"),
    ],
)
def test_train_settings_are_range_checked_before_anything_is_written(
    setting: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_train_with(tmp_path, "--set", setting)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("flairseg: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch run of a tiny U-Net on four cases: config.json, split.json, last.json and the rest."""
    tmp = tmp_path_factory.mktemp("finished")
    for index in range(4):
        image, mask = phantom(slices=3, size=32, seed=index)
        write_kaggle_case(tmp / "in", f"C{index}", image, mask)
    tiny = ("model.features=2", "model.depth=1", "preprocess.size=16", "validation_cases=1")
    argv = ["train", "--data", str(tmp / "in"), "-o", str(tmp / "run"), "--folds", "2", "--epochs", "1", "--quiet"]
    assert main(argv + [a for setting in tiny for a in ("--set", setting)]) == 0
    return tmp


def _edit_json(path: Path, edit: Callable[[dict], object]) -> None:
    import json

    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _without(values: dict, key: str) -> dict:
    return {k: v for k, v in values.items() if k != key}


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("config.json", "{", "TMP/run/config.json is not valid JSON"),
        ("config.json", [], "TMP/run/config.json is not a training recipe (a JSON object of settings)"),
        ("config.json", lambda c: {**c, "epochs": "x"}, "TMP/run/config.json: epochs must be int, not 'x'"),
        (
            "config.json",
            lambda c: {**c, "task": "brain"},
            "TMP/run/last.json is the state of a 'abnormality' run, but the run's config is for 'brain'",
        ),
        ("split.json", "nope", "TMP/run/split.json is not valid JSON"),
        ("split.json", {}, "TMP/run/split.json is not a split record"),
        ("split.json", {"train": "P1"}, "TMP/run/split.json is not a split record"),
        ("split.json", lambda s: {**s, "train": "C3"}, "TMP/run/split.json: train is not a list of case ids"),
        ("split.json", lambda s: {**s, "train": s["train"] + s["validation"]}, "split.json lists case 'C0' twice"),
        ("split.json", lambda s: {**s, "train": s["train"] * 2}, "split.json lists case 'C3' twice"),
        ("last.json", lambda m: _without(m, "epoch"), "TMP/run/last.json: epoch None is not a whole number >= -1"),
        ("last.json", lambda m: {**m, "epoch": "0"}, "TMP/run/last.json: epoch '0' is not a whole number >= -1"),
        ("last.json", lambda m: {**m, "epoch": -5}, "TMP/run/last.json: epoch -5 is not a whole number >= -1"),
        (
            "last.json",
            lambda m: {**m, "optimizer_groups": []},
            "TMP/run/last.json: optimizer_groups is not the 1 parameter group(s) of the run's optimizer",
        ),
        (
            "last.json",
            lambda m: {**m, "optimizer_groups": [_without(m["optimizer_groups"][0], "betas")]},
            "TMP/run/last.json: optimizer_groups lacks betas; restore the file, or start a new run",
        ),
        ("last.json", lambda m: {**m, "best_dice": 5.0}, "TMP/run/last.json: best_epoch 0 or best_dice 5.0 is invalid"),
    ],
)
def test_broken_run_files_are_refused_on_resume(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, edit: object, message: str
) -> None:
    shutil.copytree(finished_run / "run", tmp_path / "run")
    path = tmp_path / "run" / name
    if callable(edit):
        _edit_json(path, edit)
    else:
        path.write_text(edit if isinstance(edit, str) else repr(edit).replace("'", '"'))
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    assert main(["train", "--data", str(finished_run / "in"), "-o", str(tmp_path / "run"), "--resume", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().replace(str(tmp_path), "TMP")
    assert err.startswith("flairseg: error: ") and message in err and "\n" not in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before


def test_operating_system_errors_end_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An output under a file (ENOTDIR) and an unwritable folder (EACCES, when not root) give one line, no traceback."""
    _case(tmp_path)
    shutil.copytree(tmp_path / "in", tmp_path / "pred")
    (tmp_path / "afile").write_text("x")
    code = main(
        [
            "evaluate",
            "--pred",
            str(tmp_path / "pred"),
            "--truth",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "afile" / "out"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and str(tmp_path / "afile") in err and err.endswith("give another path")


def test_library_warnings_and_logs_stay_off_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging
    import warnings

    from flairseg import released_models

    def noisy() -> list:
        warnings.warn("invalid value encountered in divide", RuntimeWarning)
        logging.getLogger("nibabel.global").warning("pixdim[0] (qfac) should be 1 (default) or -1")
        return []

    monkeypatch.setattr(released_models, "registry", noisy)
    assert main(["models"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.startswith("no released models")


def test_sigterm_leaves_no_temporary_files(tmp_path: Path) -> None:
    """A scheduler's cancel (SIGTERM) mid-run: exit 143, one line, no .part file or folder left behind."""
    import signal
    import subprocess
    import time

    for index in range(150):
        image, mask = phantom(slices=12, size=64, seed=index)
        write_kaggle_case(tmp_path / "cases", f"CASE_{index:03d}", image, mask)
    shutil.copytree(tmp_path / "cases", tmp_path / "pred")
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "flairseg",
        "evaluate",
        "--pred",
        str(tmp_path / "pred"),
        "--truth",
        str(tmp_path / "cases"),
        "-o",
        str(out),
        "--quiet",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".out.*.part")) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)  # until the run is writing its temporary folder
    assert process.poll() is None, "the run ended before it could be interrupted; give it more cases"
    process.send_signal(signal.SIGTERM)
    err = process.communicate(timeout=60)[1].strip()
    stopped = "no file was left half-written, and nothing unfinished is taken for finished by a rerun"
    assert process.returncode == 143 and err == f"flairseg: terminated; {stopped}"
    assert not list(tmp_path.rglob("*.part")) and not out.exists()


def test_sigterm_to_a_training_and_its_batch_workers_is_one_line(tmp_path: Path) -> None:
    """A scheduler's cancel reaches the whole process group, batch workers too: torch's complaint that a worker died
    is no traceback over the run's one line."""
    import signal
    import subprocess
    import time

    argv = _train(tmp_path, "--set", "batch_workers=2")
    argv[argv.index("--steps-per-epoch") + 1] = "100000"
    argv.remove("--quiet")  # the progress bar says when the epoch has begun
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        command = [sys.executable, "-m", "flairseg", *argv]
        process = subprocess.Popen(command, stderr=stderr, start_new_session=True)
        try:  # bytes: the progress bar's block characters may be half written when read
            deadline = time.time() + 120
            while b"epoch 1/1" not in log.read_bytes() and process.poll() is None and time.time() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)  # steps under way, the workers building batches
            assert process.poll() is None, log.read_text(errors="replace")
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    err = log.read_text(errors="replace")
    stopped = "no file was left half-written, and nothing unfinished is taken for finished by a rerun"
    assert "Traceback" not in err, err
    assert process.returncode == 143 and err.strip().splitlines()[-1] == f"flairseg: terminated; {stopped}"


def test_a_memory_budget_set_in_the_environment_is_named_when_it_is_no_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """FLAIRSEG_MAX_MEMORY that is no size: the line says the environment set it (the command line has no
    --max-memory to look at)."""
    monkeypatch.setenv("FLAIRSEG_MAX_MEMORY", "abc")
    assert main(["shape", "-i", str(_case(tmp_path)), "-o", str(tmp_path / "f.csv"), "--quiet"]) == 1
    assert capsys.readouterr().err == (
        "flairseg: error: memory budget FLAIRSEG_MAX_MEMORY (set in the environment) 'abc' is not a size; write e.g. "
        "8G, 512M or a number of bytes\n"
    )
    assert not (tmp_path / "f.csv").exists()


def test_output_to_a_pipe_no_one_reads_ends_without_a_line() -> None:
    """`flairseg models | head -0`: the reader is gone before the command writes; the command ends as a closed pipe
    ends one (status 141), with nothing on stderr (it said "Broken pipe; check the path and the disk", exit 1)."""
    import subprocess

    process = subprocess.Popen(
        [sys.executable, "-m", "flairseg", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # before the command has imported anything, let alone written
    err = process.communicate(timeout=120)[1]
    assert (process.returncode, err) == (141, b"")


def test_three_overwriting_predictions_into_one_folder_all_succeed(tmp_path: Path) -> None:
    """Concurrent runs with --overwrite into one output: every run ends well, every case is whole, nothing is left
    aside.
    """
    import subprocess

    for index in range(4):
        _case(tmp_path, f"CASE_{index}", slices=6)
    model = _zero_checkpoint(tmp_path)
    command = [
        sys.executable,
        "-m",
        "flairseg",
        "predict",
        "-i",
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(model),
        "--overwrite",
        "--quiet",
        "--threads",
        "1",
    ]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    assert all(code == 0 for code, _ in results), results
    for index in range(4):
        assert len(list((tmp_path / "out" / f"CASE_{index}").glob("*_mask.tif"))) == 6
    assert not list((tmp_path / "out").rglob("*.part")) and not list((tmp_path / "out").rglob("*.old"))


def _replace_many_times(args: tuple[str, int]) -> int:
    from flairseg.outputs import atomic_dir

    target, worker = args
    for round_ in range(40):
        with atomic_dir(target) as tmp:
            (tmp / "who.txt").write_text(f"{worker} {round_}")
    return worker


def test_concurrent_replacements_of_one_folder_never_fail(tmp_path: Path) -> None:
    """The folder-replacing step itself under contention: each writer's folder goes in whole, none crashes."""
    import multiprocessing

    target = tmp_path / "CASE"
    with multiprocessing.get_context("fork").Pool(3) as pool:
        assert sorted(pool.map(_replace_many_times, [(str(target), w) for w in range(3)])) == [0, 1, 2]
    assert (target / "who.txt").read_text().endswith(" 39") and sorted(p.name for p in tmp_path.iterdir()) == ["CASE"]


def test_memory_budget_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    from flairseg import memory
    from flairseg.errors import ConfigError

    assert memory.parse_size("8G") == memory.parse_size("8GiB") == 8 * 2**30 and memory.parse_size("1.5g") == int(
        1.5 * 2**30
    )
    assert memory.parse_size("512M") == 512 * 2**20 and memory.parse_size(str(2**21)) == 2**21
    for bad in ("lots", "-2G", "100", "", "1e400", "1e300T"):
        with pytest.raises(ConfigError):
            memory.parse_size(bad)
    monkeypatch.delenv(memory.ENVIRONMENT, raising=False)
    assert memory.budget() == memory.usable_memory() // 2
    monkeypatch.setenv(memory.ENVIRONMENT, "2G")
    assert memory.budget() == 2 * 2**30


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_default_budget_is_half_of_a_control_groups_memory_limit(
    version: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a container or batch job limited to 600 MB (a cgroup's limit, on its own folder or on one above it), the
    default budget is 300 MB: half of the physical memory would let a case pass that the kernel then kills without a
    word. An unlimited group ("max", or v1's 2**63 - 4096) leaves the physical memory."""
    from flairseg import memory

    proc = tmp_path / "cgroup"
    if version == "v2":
        proc.write_text("0::/job/step\n")
        (tmp_path / "sys" / "job" / "step").mkdir(parents=True)
        (tmp_path / "sys" / "job" / "step" / "memory.max").write_text("max\n")
        (tmp_path / "sys" / "job" / "memory.max").write_text(f"{600 * 2**20}\n")
    else:
        proc.write_text("5:cpu:/\n4:memory:/job\n")
        (tmp_path / "sys" / "memory" / "job").mkdir(parents=True)
        (tmp_path / "sys" / "memory" / "job" / "memory.limit_in_bytes").write_text(f"{600 * 2**20}\n")
        (tmp_path / "sys" / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    monkeypatch.delenv(memory.ENVIRONMENT, raising=False)
    monkeypatch.setattr(memory, "PROC_CGROUP", proc)
    monkeypatch.setattr(memory, "CGROUP_ROOT", tmp_path / "sys")
    assert memory.budget() == 300 * 2**20
    (tmp_path / "sys" / ("job/memory.max" if version == "v2" else "memory/job/memory.limit_in_bytes")).unlink()
    assert memory.budget() == memory.usable_memory() // 2 > 300 * 2**20


def test_a_line_break_in_a_file_name_keeps_the_error_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = _case(tmp_path, "CA\nSE")
    (case / "CA\nSE_2.tif").write_bytes(b"not a TIFF")
    assert main(_predict(tmp_path, case)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("flairseg: error: ") and "CA\\nSE" in err


def test_a_failed_case_stays_listed_when_parts_predict_into_one_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Jobs with --part K/N leave the folder as one process would: the failed case (part 1's only one) listed, and
    the part that fails and every later one exit 1."""
    argv = _one_bad_case_of_three(tmp_path)
    codes = [main([*argv, "--part", f"{k}/2"]) for k in (1, 0)]
    failures = (tmp_path / "out" / "report" / "failures.csv").read_text().splitlines()
    assert codes == [1, 1] and len(failures) == 2 and failures[1].startswith("CASE_B,")
    assert "1 of 3 cases could not be read" in capsys.readouterr().err.strip().splitlines()[-1]


def test_names_from_user_data_keep_the_markdown_summaries_whole() -> None:
    """A case id or clinical column with a line break or a pipe (a file name may hold both) stays inside its table
    cell or line: the tables keep one row per case and hypothesis, and every name reads as it was given."""
    from flairseg.evaluate import _summary_markdown
    from flairseg.metrics import case_metrics, summarise_cases
    from flairseg.radiogenomics import AssociationRow, _markdown

    truth = np.zeros((2, 4, 4), bool)
    truth[0, :2] = True
    names = ["TCGA_A|B_0001", "CA\nSE", "TCGA_CS_0002"]
    rows = [case_metrics(name, truth, truth) for name in names]
    summary = _summary_markdown(rows, dict(summarise_cases(rows)), "t").splitlines()
    assert len(summary) == 22 and not any(line == "SE" or line.startswith("SE ") for line in summary)
    assert "| A\\|B | 1 | 1.0000 | 1.0000 |" in summary and "CA\\\\nSE (1.0000)" in summary[-1]
    association = AssociationRow("asd", "sub|type\nx", 9, ("1|2", "3"), (1, 2), (3, 3), 0.5, 1.0, False)
    table = _markdown([association], 0.05, 9, []).splitlines()
    assert table[-1].count("|") - table[-1].count("\\|") == 10 and "sub\\|type\\\\nx" in table[-1]


@pytest.mark.parametrize("entry", [e for e in CATALOGUE if e.name == "prediction-off-its-truth"], ids=lambda e: e.name)
def test_without_quiet_the_error_still_stands_alone_on_the_last_line(
    entry: BadInput, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Progress bars on stderr (no --quiet) end their line before the error: the error is the whole last line."""
    argv = entry.make(tmp_path)
    argv.remove("--quiet")
    assert main(argv) == 1
    err = capsys.readouterr().err.replace(str(tmp_path), "TMP")
    assert "evaluate:" in err and err.endswith("\n") and err.split("\n")[-2] == entry.line


def test_the_error_line_survives_a_decoder_silencing_descriptor_2_in_another_thread(tmp_path: Path) -> None:
    """C libraries' output is silenced by pointing descriptor 2 at the null device while they decode (a reading
    thread); the command's own error, printed meanwhile by the main thread, still reaches the user."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, threading\n"
        "from flairseg import evaluate, volumes\n"
        "from flairseg.cli import main\n"
        "from flairseg.errors import InputError\n"
        "done = threading.Event()\n"
        "def hold(held):\n"
        "    with volumes._stderr_discarded():\n"
        "        held.set()\n"
        "        done.wait()\n"
        "def fails(*args, **kwargs):\n"
        "    held = threading.Event()\n"
        "    threading.Thread(target=hold, args=(held,)).start()\n"
        "    held.wait()\n"
        "    raise InputError('a case failed while another was being decoded')\n"
        "evaluate.evaluate = fails\n"
        "try:\n"
        "    code = main(['evaluate', '--pred', 'p', '--truth', 't', '-o', 'o'])\n"
        "finally:\n"
        "    done.set()\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1 and done.stderr == "flairseg: error: a case failed while another was being decoded\n"


_ALLOCATOR_FAILURE = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate "
    "16777216 bytes. Error code 12 (Cannot allocate memory)"
)


@pytest.mark.parametrize(
    "target, failure",
    [
        ("torch.nn.functional.conv2d", RuntimeError(_ALLOCATOR_FAILURE)),
        ("safetensors.torch.load_file", MemoryError("Cannot allocate memory (os error 12)")),
        ("safetensors.torch.load_file", RuntimeError("unable to mmap 38966068 bytes from <m>: Cannot allocate memory")),
    ],
    ids=["torch-allocator", "model-read", "model-mmap"],
)
def test_memory_running_out_ends_in_the_out_of_memory_line_not_a_traceback_or_a_blamed_file(
    target: str, failure: Exception, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(target, fail)
    code = main(_predict(tmp_path, _case(tmp_path)))
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == (
        "flairseg: error: out of memory; process fewer or smaller cases at a time, or use a machine with more memory"
    )


def test_other_runtime_errors_are_not_taken_for_memory_running_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("torch.nn.functional.conv2d", fail)
    with pytest.raises(RuntimeError, match="a bug"):
        main(_predict(tmp_path, _case(tmp_path)))


def _unreadable_slice(tmp: Path) -> tuple[list[str], Path]:
    case = _case(tmp)
    (case / "CASE_2.tif").chmod(0)
    return _predict(tmp, case), case / "CASE_2.tif"


def _unreadable_volume(tmp: Path) -> tuple[list[str], Path]:
    volume = _volume_beside(tmp / "in", None)
    volume.chmod(0)
    return _predict(tmp, volume), volume


def _unreadable_case_folder(tmp: Path) -> tuple[list[str], Path]:
    case = _case(tmp)
    case.chmod(0)
    return _predict(tmp, case), case


def _as_a_user_denied(argv: list[str], tmp: Path) -> str:
    """The last line a command prints when run by a user whom permissions bind: this one, or root without its
    capability to override them (setpriv, when it may drop them; else the test is skipped)."""
    import os

    if os.geteuid() != 0:
        main(argv)
        return ""
    setpriv = shutil.which("setpriv")
    dropped = [setpriv or "setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    if setpriv is None or subprocess.run([*dropped, "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root without setpriv to drop the capability to override permissions")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run([*dropped, sys.executable, "-m", "flairseg", *argv], capture_output=True, text=True, env=env)
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("make", [_unreadable_slice, _unreadable_volume, _unreadable_case_folder])
def test_permission_denied_is_said_naming_what_the_user_can_fix(
    make: Callable[[Path], tuple[list[str], Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A slice or a volume the user may not read is not called corrupt; a folder that may not be searched is named,
    not the first file flairseg looked for inside it."""
    argv, culprit = make(tmp_path)
    try:
        err = _as_a_user_denied(argv, tmp_path) or capsys.readouterr().err.strip()
    finally:
        culprit.chmod(0o755)
    if culprit.is_dir():
        fix = "make it accessible to this user (chmod), or write elsewhere if it is where output goes"
        assert err == f"flairseg: error: Permission denied ({culprit}); {fix}"
    else:
        assert err == (
            f"flairseg: error: permission denied: cannot read {culprit}; make it readable for this user (chmod) and "
            "run again"
        )
    assert not (tmp_path / "out").exists()


def test_a_slice_the_system_refuses_to_open_is_not_called_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same, without needing a user whom permissions bind: tifffile's open refused."""
    import errno

    argv = _predict(tmp_path, _case(tmp_path))

    def refused(path: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(tifffile, "TiffFile", refused)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().replace(str(tmp_path), "TMP")
    assert err.startswith("flairseg: error: permission denied: cannot read TMP/in/CASE/CASE_1.tif;"), err


def test_cv_refuses_a_kept_folds_changed_data_before_another_fold_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cv --fold 1 --fold 0` where fold 0 finished and its training data changed since: refused before fold 1
    trains (its turn would come only after fold 1's hours of training)."""
    argv = _cv_fold_on_data_rewritten_in_place(tmp_path)
    argv[argv.index("--fold") + 1] = "1"
    capsys.readouterr()
    assert main([*argv, "--fold", "0"]) == 1
    assert "changed since" in capsys.readouterr().err
    assert not (tmp_path / "cv" / "fold-1").exists()


def test_a_library_log_line_never_joins_the_one_line_error(tmp_path: Path) -> None:
    """tifffile logs a damaged header at ERROR while it reads it: in a process of its own (where no test captures
    the log) stderr still holds the one flairseg line."""
    import os

    argv = _tiff_header_off_its_strips(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "flairseg", *argv], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 1 and done.stderr.startswith("flairseg: error: case ") and done.stderr.count("\n") == 1


def test_an_optimizer_state_other_than_adams_is_refused_on_resume(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A training state whose optimizer moments are of another shape than their parameter's, or lack one, saved
    consistently (its record bound to its tensors): torch would load it and fail at the first step."""
    from flairseg import checkpoint

    for edit in ("shape", "missing"):
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        shutil.copytree(finished_run / "run", tmp_path / "run")
        tensors, metadata = checkpoint.read(tmp_path / "run" / "last")
        if edit == "shape":
            tensors["optim.0.exp_avg"] = torch.zeros(3)
        else:
            del tensors["optim.0.exp_avg_sq"]
        record = {key: value for key, value in metadata.items() if key not in ("sha256", "weights")}
        checkpoint.save(tensors, record, tmp_path / "run" / "last")
        argv = ["train", "--data", str(finished_run / "in"), "-o", str(tmp_path / "run"), "--resume", "--quiet"]
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("flairseg: error: ") and "parameter 0" in err and "\n" not in err, err
