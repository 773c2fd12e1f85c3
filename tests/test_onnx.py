"""ONNX export of the released model and the ONNX Runtime path: same probabilities and masks as PyTorch."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from flairseg.cli import main
from flairseg.io import read_case, sample_case_path
from flairseg.predict import Segmenter
from flairseg.released_models import resolve


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "released.onnx"
    assert main(["export", "--onnx", "-o", str(out)]) == 0
    return out


def test_onnx_runtime_matches_pytorch_on_the_sample_case(exported: Path) -> None:
    case = read_case(sample_case_path(), masks="required")
    torch_segmenter, onnx_segmenter = (
        Segmenter(resolve(None), precision="fp32", tta=True),
        Segmenter(exported, tta=True),
    )
    assert onnx_segmenter.metadata["sha256"] == torch_segmenter.metadata["sha256"]  # the export knows its source
    prepared = torch_segmenter.prepare(case)
    # one interface, two runtimes
    reference, probabilities = (
        torch_segmenter.probabilities(prepared),
        onnx_segmenter.probabilities(prepared),
    )
    assert np.abs(probabilities - reference).max() < 1e-4
    torch_mask, onnx_mask = torch_segmenter(case)[0], onnx_segmenter(case)[0]
    assert torch_mask.sum() > 1000 and np.count_nonzero(torch_mask != onnx_mask) <= 2  # at most a voxel at 0.5 may flip


def test_predict_command_runs_the_onnx_file(exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pred"
    assert main(["predict", "-i", str(sample_case_path()), "-o", str(out), "--model", str(exported), "--quiet"]) == 0
    assert "1 cases predicted" in capsys.readouterr().out
    assert read_case(out / sample_case_path().name, masks="only").mask.any()


def test_export_and_onnx_input_errors_are_one_line(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "identity.onnx"
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    onnx.save(helper.make_model(graph), foreign)
    cases = [
        (["export", "--onnx", "-o", str(tmp_path / "model.pt")], "must end in .onnx"),
        (["export", "--onnx", "-o", str(exported)], "already exists"),
        (
            ["export", "--onnx", "-o", str(tmp_path / "b.onnx"), "--model", "brain-lgg-gpu"],
            "did you mean 'brain-lgg'?",
        ),
        (
            ["predict", "-i", str(sample_case_path()), "-o", str(tmp_path / "p1"), "--model", str(foreign)],
            "not exported by flairseg",
        ),
        (
            [
                "predict",
                "-i",
                str(sample_case_path()),
                "-o",
                str(tmp_path / "p2"),
                "--model",
                str(exported),
                "--task",
                "brain",
            ],
            "not a 'brain' model",
        ),
        (
            [
                "predict",
                "-i",
                str(sample_case_path()),
                "-o",
                str(tmp_path / "p3"),
                "--model",
                str(exported),
                "--precision",
                "bf16",
            ],
            "run in float32",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("flairseg: error:") and message in err and "\n" not in err
    assert not (tmp_path / "p1").exists() and not (tmp_path / "model.pt").exists()


def _with_metadata(exported: Path, out: Path, text: str) -> Path:
    model = onnx.load(str(exported))
    for entry in model.metadata_props:
        if entry.key == "flairseg":
            entry.value = text
    onnx.save(model, str(out))
    return out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda meta: '{"model":', "'flairseg' metadata is not valid JSON"),
        (lambda meta: json.dumps({k: v for k, v in meta.items() if k != "model"}), "model must be a mapping"),
        (lambda meta: "[1]", "holds no model description"),
        (
            lambda meta: json.dumps({**meta, "preprocess": {**meta["preprocess"], "size": 64}}),
            "declares input ['batch', 3, 256, 256], but its metadata asks for 3 channels of 64x64",
        ),
    ],
)
def test_edited_onnx_metadata_is_refused_in_one_line(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Callable[[dict], str], message: str
) -> None:
    meta = json.loads(onnx.load(str(exported)).metadata_props[0].value)
    edited = _with_metadata(exported, tmp_path / "edited.onnx", edit(meta))
    assert main(["predict", "-i", str(sample_case_path()), "-o", str(tmp_path / "p"), "--model", str(edited)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("flairseg: error:") and message in err and "\n" not in err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("size", 100000, "size 100000 is not in 16..1024"), ("mean", 1e308, "mean 1e+308 is beyond float32")],
)
def test_export_checks_the_checkpoint_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: float, message: str
) -> None:
    source = resolve(None)
    for suffix in (".json", ".safetensors"):
        shutil.copy(source.with_suffix(suffix), tmp_path / f"m{suffix}")
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["preprocess"][key] = value
    (tmp_path / "m.json").write_text(json.dumps(meta))
    assert main(["export", "--onnx", "--model", str(tmp_path / "m.json"), "-o", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and not (tmp_path / "m.onnx").exists()
