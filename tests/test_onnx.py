"""ONNX export of the released model and the ONNX Runtime path: same probabilities and masks as PyTorch."""

from __future__ import annotations

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
