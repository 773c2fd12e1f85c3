"""Checkpoints: a record's architecture compared with its tensors before the network is built."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from flairseg import checkpoint
from flairseg.config import ModelConfig, PreprocessConfig
from flairseg.errors import WeightsError
from flairseg.model import UNet


def _declaring(tmp: Path, declared: ModelConfig, members: int = 0) -> Path:
    """A consistent checkpoint (sha256 and binding) of a U-Net of 2 features and depth 1 whose record declares the
    architecture ``declared`` (and ``members``), as a hand-made or re-saved file may."""
    tensors = UNet(features=2, depth=1, batch_norm=True).state_dict()
    record = {"model": dataclasses.asdict(declared), "preprocess": dataclasses.asdict(PreprocessConfig(size=16))}
    return checkpoint.save(
        tensors, {**record, "task": "abnormality", **({"members": members} if members else {})}, tmp / "m"
    )


@pytest.fixture
def built_on(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """(features, device) of every U-Net the checkpoint module builds."""
    built: list[tuple[int, str]] = []
    real = checkpoint.UNet

    def recording(**options: object) -> UNet:
        built.append((int(options["features"]), torch.empty(0).device.type))  # type: ignore[call-overload]
        return real(**options)  # type: ignore[arg-type]

    monkeypatch.setattr(checkpoint, "UNet", recording)
    return built


@pytest.mark.parametrize(
    "declared, message",
    [
        (
            ModelConfig(features=64, depth=3, batch_norm=True),
            "its weights lack 52 tensors of the network its record declares (e.g. dec2.0.weight, dec2.1.bias, "
            "dec2.1.num_batches_tracked)",
        ),
        (
            ModelConfig(features=8, depth=1, batch_norm=True),
            "its weights' enc1.0.weight has shape [2, 3, 3, 3], that of the network its record declares [8, 3, 3, 3]",
        ),
    ],
)
def test_a_declared_network_other_than_the_tensors_is_refused_before_it_is_allocated(
    tmp_path: Path, built_on: list[tuple[int, str]], declared: ModelConfig, message: str
) -> None:
    """A small file whose record declares a far larger (or wider) network: refused by its tensors' names and shapes,
    built on the meta device only (a real build would allocate the declared network whole before the mismatch
    shows)."""
    path = _declaring(tmp_path, declared)
    with pytest.raises(WeightsError) as refused:
        checkpoint.load_model(path)
    assert str(refused.value) == (
        f"checkpoint m.json does not match its architecture: {message}; the record and the weights are not of one model"
    )
    assert built_on == [(declared.features, "meta")]


def test_a_declared_ensemble_of_one_network_is_refused(tmp_path: Path, built_on: list[tuple[int, str]]) -> None:
    path = _declaring(tmp_path, ModelConfig(features=2, depth=1, batch_norm=True), members=3)
    with pytest.raises(
        WeightsError,
        match=r"its weights lack 120 tensors of the network .* members\.0\.bottleneck.* and hold 40 tensors not in",
    ):
        checkpoint.load_model(path)
    assert all(device == "meta" for _, device in built_on)


def test_a_matching_checkpoint_is_built_on_the_machine(tmp_path: Path, built_on: list[tuple[int, str]]) -> None:
    path = _declaring(tmp_path, ModelConfig(features=2, depth=1, batch_norm=True))
    model, _ = checkpoint.load_model(path)
    assert built_on == [(2, "meta"), (2, "cpu")]
    assert next(model.parameters()).device.type == "cpu" and not model.training


def test_every_command_that_loads_a_checkpoint_refuses_it_alike(
    tmp_path: Path, built_on: list[tuple[int, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """predict, export and train --init read a checkpoint through one load: the same line, nothing built for real."""
    from synthetic import phantom, write_kaggle_case

    from flairseg.cli import main

    model = str(_declaring(tmp_path / "model", ModelConfig(features=64, depth=3, batch_norm=True)))
    for index in range(4):
        image, mask = phantom(slices=3, size=32, seed=index)
        write_kaggle_case(tmp_path / "in", f"CASE_{index}", image, mask)
    train = ["train", "--data", str(tmp_path / "in"), "-o", str(tmp_path / "run"), "--folds", "2", "--quiet"]
    commands = [
        ["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", model, "--quiet"],
        ["export", "--onnx", "-o", str(tmp_path / "m.onnx"), "--model", model],
        [*train, "--validation-cases", "1", "--size", "16", "--init", model],
    ]
    for command in commands:
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.startswith("flairseg: error: checkpoint m.json does not match its architecture: its weights lack")
    assert all(device == "meta" for _, device in built_on)


@pytest.mark.parametrize("averaged", [0, 2])
def test_a_training_state_whose_tail_sum_is_not_what_it_counts_is_refused(averaged: int, tmp_path: Path) -> None:
    """A state counting tail epochs without their summed weights (or holding a sum while it counts none) would fail
    at the end of training, after the epochs left had trained; refused when it is loaded."""
    from flairseg.config import TrainConfig

    model = UNet(features=2, batch_norm=True)
    optimizer = torch.optim.Adam(model.parameters())
    recipe, split = dataclasses.asdict(TrainConfig()), {"train": [], "validation": [], "test": []}
    tail = {} if averaged else {k: v.double() for k, v in model.state_dict().items()}
    state = checkpoint.TrainingState(tail=tail, averaged=averaged)
    path = checkpoint.save_training_state(model, optimizer, state, recipe, split, tmp_path / "last")
    with pytest.raises(WeightsError, match=f"averaged {averaged} does not match its tail sum"):
        checkpoint.load_training_state(path, model, optimizer, "abnormality")


@pytest.mark.parametrize("dtype", [torch.complex64, torch.float8_e4m3fn])
def test_a_tensor_of_a_type_no_checkpoint_holds_is_refused_in_one_line(dtype: torch.dtype, tmp_path: Path) -> None:
    """A tensor re-typed to complex or float8 (its hashes made again) is refused by name, never a torch error from the
    check of its values."""
    tensors = {k: v for k, v in UNet(features=2, batch_norm=True).state_dict().items()}
    tensors["head.bias"] = tensors["head.bias"].to(dtype)
    config = dataclasses.asdict(ModelConfig(features=2, batch_norm=True))
    record = {"model": config, "preprocess": dataclasses.asdict(PreprocessConfig()), "task": "abnormality"}
    path = checkpoint.save(tensors, record, tmp_path / "m")
    with pytest.raises(WeightsError, match=f"stores head.bias as {str(dtype)[6:]}, a type no flairseg checkpoint"):
        checkpoint.load_model(path)


def test_a_checkpoint_without_a_task_is_an_abnormality_model_everywhere(tmp_path: Path) -> None:
    """Saved without a task, a checkpoint predicts as an abnormality model, and --task abnormality takes it too."""
    config = ModelConfig(features=2)
    path = checkpoint.save_model(UNet(**vars(config)), config, PreprocessConfig(), tmp_path / "m")
    _, metadata = checkpoint.load_model(path, task="abnormality")
    assert "task" not in metadata and checkpoint.task_of(metadata) == "abnormality"
    with pytest.raises(WeightsError, match="is a 'abnormality' model, not a 'brain' model"):
        checkpoint.load_model(path, task="brain")
