"""ONNX export of the released model and the ONNX Runtime path: same probabilities and masks as PyTorch."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from flairseg.cli import main
from flairseg.inference import predict_probabilities
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
        Segmenter(resolve(None), precision="fp32"),
        Segmenter(exported),
    )
    assert onnx_segmenter.metadata["sha256"] == torch_segmenter.metadata["sha256"]  # the export knows its source
    prepared = torch_segmenter.prepare(case)
    # one interface, two runtimes
    reference, probabilities = (
        torch_segmenter.probabilities(prepared),
        onnx_segmenter.probabilities(prepared),
    )
    assert np.abs(probabilities - reference).max() < 1e-4
    threshold = torch_segmenter.threshold
    torch_mask, onnx_mask = reference > threshold, probabilities > threshold
    assert torch_mask.sum() > 1000 and np.count_nonzero(torch_mask != onnx_mask) <= 2  # at most a voxel at 0.5 may flip
    most = np.argsort(torch_mask.sum(axis=(1, 2)))[-4:]  # flip TTA, on the four slices with most tumour
    flipped = [
        predict_probabilities(segmenter.model, prepared.inputs[most], dataclasses.replace(segmenter.options, tta=True))
        for segmenter in (torch_segmenter, onnx_segmenter)
    ]
    assert np.abs(flipped[1] - flipped[0]).max() < 1e-4 and np.abs(flipped[0] - reference[most]).max() > 1e-3


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
            "'flairseg' metadata was edited after export (its settings differ from those recorded with the graph)",
        ),
        (
            lambda meta: json.dumps({**meta, "postprocess": {"rule": "none"}}),
            "'flairseg' metadata was edited after export",
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
    [("size", 100000, "size 100000 is not in 16..1024"), ("mean", 1e308, "mean 1e+308 is not in [-1000, 1000]")],
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


def _metadata_of(model: onnx.ModelProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in model.metadata_props}


def test_the_export_records_the_sha256_of_its_graph(exported: Path, tmp_path: Path) -> None:
    from flairseg.inference import ONNX_BINDING_KEY, ONNX_GRAPH_KEY, onnx_graph_sha256

    model = onnx.load(str(exported))
    recorded = _metadata_of(model)[ONNX_GRAPH_KEY]
    bound = f"{recorded}\n{_metadata_of(model)['flairseg']}".encode()  # the graph's hash and the metadata's text
    assert hashlib.sha256(bound).hexdigest() == _metadata_of(model)[ONNX_BINDING_KEY]
    del model.metadata_props[:]
    assert hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest() == recorded
    assert onnx_graph_sha256(onnx.load(str(exported))) == recorded
    assert Segmenter(exported).settings()["onnx_graph_sha256"] == recorded  # what a case's record keeps
    assert Segmenter(resolve(None), precision="fp32").settings()["onnx_graph_sha256"] is None


def _head_bias_at(value: float) -> Callable[[onnx.ModelProto], None]:
    """Set the bias of the graph's last convolution (the head) to ``value``: every pixel background at -100."""

    def edit(model: onnx.ModelProto) -> None:
        bias = [node for node in model.graph.node if node.op_type == "Conv"][-1].input[2]
        tensor = next(t for t in model.graph.initializer if t.name == bias)
        tensor.CopyFrom(numpy_helper.from_array(np.full_like(numpy_helper.to_array(tensor), value), bias))

    return edit


def _without(key: str) -> Callable[[onnx.ModelProto], None]:
    """Drop the metadata property ``key``: an export made before flairseg recorded it, or one edited since."""

    def edit(model: onnx.ModelProto) -> None:
        onnx.helper.set_model_props(model, {e.key: e.value for e in model.metadata_props if e.key != key})

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_head_bias_at(-100.0), "released.onnx was changed after export (its graph is not the one whose sha256"),
        (_without("flairseg_graph_sha256"), "released.onnx records no sha256 of its graph"),
        (
            _without("flairseg_metadata_sha256"),
            "released.onnx records no sha256 of its 'flairseg' metadata (exported by an older flairseg, or edited); "
            "export the checkpoint again with `flairseg export --onnx`",
        ),
    ],
)
def test_an_onnx_file_changed_after_export_is_refused(
    exported: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: Callable[[onnx.ModelProto], None],
    message: str,
) -> None:
    model = onnx.load(str(exported))
    edit(model)
    (tmp_path / "edit").mkdir()
    onnx.save(model, str(tmp_path / "edit" / "released.onnx"))
    argv = ["predict", "-i", str(sample_case_path()), "-o", str(tmp_path / "p"), "--quiet"]
    assert main([*argv, "--model", str(tmp_path / "edit" / "released.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("flairseg: error:") and message in err and "\n" not in err
    assert not (tmp_path / "p").exists()


def _restamped(exported: Path, out: Path, edit: Callable[[onnx.ModelProto], None]) -> Path:
    """The export edited and stamped again as export stamps: its graph's hash matches, its shapes need not."""
    from flairseg.export import stamped

    model = onnx.load(str(exported))
    edit(model)
    out.write_bytes(stamped(model, json.loads(_metadata_of(model)["flairseg"])))
    return out


def _cast_logits_to(kind: int) -> Callable[[onnx.ModelProto], None]:
    """A Cast of the logits to another element type, as the graph's output (booleans would pass for logits of 0 and
    1: sigmoid 0.5 and 0.73, every slice's pixels over a threshold of 0.5)."""

    def edit(model: onnx.ModelProto) -> None:
        model.graph.node.append(helper.make_node("Cast", ["logits"], ["y"], to=kind))
        model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", kind, _LOGITS))

    return edit


def _fixed_batch(model: onnx.ModelProto) -> None:
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1


def _after_logits(nodes: list[onnx.NodeProto], constants: dict[str, list[int]], declared: list) -> Callable:
    """Append ``nodes`` (with int64 ``constants``) to the logits; the last one's output 'y', declared as ``declared``,
    becomes the graph's output."""

    def edit(model: onnx.ModelProto) -> None:
        model.graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), k) for k, v in constants.items())
        model.graph.node.extend(nodes)
        model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, declared))

    return edit


_LOGITS = ["batch", 1, 256, 256]  # the output the metadata asks for
_CROP = helper.make_node("Slice", ["logits", "starts", "ends", "axes"], ["y"])
# the same crop to 16x16, its size computed at run time (ONNX Runtime's shape inference keeps the declared size)
_RUNTIME_CROP = [
    helper.make_node("Shape", ["logits"], ["size"], start=2),
    helper.make_node("Div", ["size", "sixteen"], ["ends"]),
    _CROP,
]
# a reshape to a batch of one, found wrong only at run time
_BATCH_OF_ONE = [
    helper.make_node("Shape", ["logits"], ["size"], start=1),
    helper.make_node("Concat", ["one", "size"], ["shape"], axis=0),
    helper.make_node("Reshape", ["logits", "shape"], ["y"]),
]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_fixed_batch, "declares input [1, 3, 256, 256], a fixed batch size of 1; flairseg runs batches of any size"),
        (
            _after_logits([_CROP], {"starts": [0, 0], "ends": [16, 16], "axes": [2, 3]}, ["batch", 1, 16, 16]),
            "declares output ['batch', 1, 16, 16], but its metadata asks for a logit map of 256x256",
        ),
        (
            _after_logits(_RUNTIME_CROP, {"starts": [0, 0], "sixteen": [16, 16], "axes": [2, 3]}, _LOGITS),
            "m.onnx answered [4, 1, 16, 16] for a batch of [4, 3, 256, 256], not one logit map per slice",
        ),
        (_after_logits(_BATCH_OF_ONE, {"one": [1]}, _LOGITS), "m.onnx failed: [ONNXRuntimeError] : 1 : FAIL"),
        (_cast_logits_to(TensorProto.BOOL), "declares its output a tensor(bool), not a tensor(float) (float32)"),
        (_cast_logits_to(TensorProto.STRING), "declares its output a tensor(string), not a tensor(float) (float32)"),
    ],
)
def test_an_onnx_graph_off_its_metadata_is_refused_in_one_line(
    exported: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    edit: Callable[[onnx.ModelProto], None],
    message: str,
) -> None:
    model = _restamped(exported, tmp_path / "m.onnx", edit)
    for argv in (
        ["predict", "-i", str(sample_case_path()), "-o", str(tmp_path / "p"), "--model", str(model), "--quiet"],
        ["demo", "-o", str(tmp_path / "d"), "--model", str(model)],
    ):
        assert main(argv) == 1
        err = capfd.readouterr().err.strip()  # ONNX Runtime's own log too
        assert err.startswith("flairseg: error:") and message in err and "\n" not in err, err
    assert not (tmp_path / "p").exists() and not (tmp_path / "d").exists()
