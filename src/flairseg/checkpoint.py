"""Self-describing checkpoints: ``NAME.safetensors`` (tensors) + ``NAME.json`` (everything else).

The JSON holds the format version, the flairseg version, the task, the model and
preprocessing configs, the recipe, the split, the metrics and the sha256 of the tensor
file. Loading verifies the hash first and never unpickles anything. Training state for
resuming (optimizer moments, RNG states) uses the same two-file format.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flairseg.config import ModelConfig, PostprocessConfig, PreprocessConfig, from_dict
from flairseg.errors import ConfigError, WeightsError
from flairseg.model import Ensemble, UNet
from flairseg.outputs import atomic_file
from flairseg.version import __version__

FORMAT_VERSION = 1
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def paths_of(path: str | os.PathLike) -> tuple[Path, Path]:
    """(tensor file, JSON file) of a checkpoint given as NAME, NAME.json or NAME.safetensors."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def files_of(path: str | os.PathLike) -> list[Path]:
    """Every file a model given as ``path`` may be read from: the path itself (e.g. an ONNX export) and a
    checkpoint's two halves; an output may hold none of them.
    """
    return [*paths_of(path), Path(path)]


def save(tensors: dict[str, torch.Tensor], metadata: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write tensors and metadata atomically (tensors first, JSON with their hash last); returns the JSON path."""
    from safetensors.torch import save_file

    tensor_path, json_path = paths_of(path)
    with atomic_file(tensor_path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        digest = sha256_of(tmp)
    record = {
        "format_version": FORMAT_VERSION,
        "flairseg_version": __version__,
        **metadata,
        "weights": tensor_path.name,
        "sha256": digest,
    }
    with atomic_file(json_path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=False))
    return json_path


def save_model(
    model: nn.Module, model_config: ModelConfig, preprocess: PreprocessConfig, path: str | os.PathLike, **metadata: Any
) -> Path:
    """Save a model's weights with its architecture, preprocessing and any metadata (task, recipe, split, metrics)."""
    weights = unwrap(model).state_dict()
    return save(
        weights,
        {"model": dataclasses.asdict(model_config), "preprocess": dataclasses.asdict(preprocess), **metadata},
        path,
    )


def read(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a checkpoint, after checking the file kinds and the sha256."""
    from safetensors.torch import load_file

    given = Path(path)
    if given.is_file() and given.suffix not in (".json", ".safetensors"):
        with given.open("rb") as handle:
            head = handle.read(4)
        if head.startswith(_PICKLE_MAGIC):
            raise WeightsError(
                f"{given} is a pickle/PyTorch file; flairseg loads only safetensors + JSON checkpoints (never "
                "unpickles)"
            )
        raise WeightsError(f"{given} is not a flairseg checkpoint (NAME.safetensors + NAME.json)")
    tensor_path, json_path = paths_of(given)
    if not json_path.is_file() or not tensor_path.is_file():
        raise WeightsError(f"checkpoint {given} needs both {tensor_path.name} and {json_path.name}")
    try:
        metadata = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise WeightsError(f"{json_path} is not valid JSON") from None
    if not isinstance(metadata, dict) or "sha256" not in metadata:
        raise WeightsError(f"{json_path} is not a flairseg checkpoint description (no sha256)")
    if metadata.get("format_version", 0) > FORMAT_VERSION:
        raise WeightsError(f"{json_path} has format version {metadata['format_version']}; upgrade flairseg to read it")
    with tensor_path.open("rb") as handle:
        if handle.read(4).startswith(_PICKLE_MAGIC):
            raise WeightsError(f"{tensor_path} is a pickle file, not safetensors; flairseg never unpickles")
    actual = sha256_of(tensor_path)
    if actual != metadata["sha256"]:
        raise WeightsError(
            f"{tensor_path} has sha256 {actual[:12]}..., but its JSON records {str(metadata['sha256'])[:12]}...: the "
            "file is corrupt or was replaced"
        )
    try:
        tensors = load_file(str(tensor_path))
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise WeightsError(f"cannot read {tensor_path}: {exc}") from None
    return tensors, metadata


@dataclass
class TrainingState:
    """Where a training run stands between epochs (saved in ``RUN/last`` with the model and optimizer)."""

    epoch: int = -1  # the last finished epoch
    best_epoch: int = -1
    best_dice: float = -math.inf
    # running sum of the last epochs' weights (average_last)
    tail: dict[str, torch.Tensor] = field(default_factory=dict)
    averaged: int = 0  # how many epochs ``tail`` sums


def save_training_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: TrainingState, task: str, path: str | os.PathLike
) -> Path:
    """Model, optimizer, RNG and ``state`` as one checkpoint (tensors under key prefixes ``model.``, ``optim.<i>.``,
    ``avg.``, ``rng.``), written atomically like every checkpoint."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    for index, values in optim["state"].items():
        tensors.update({f"optim.{index}.{name}": value for name, value in values.items() if torch.is_tensor(value)})
    tensors["rng.torch"] = torch.get_rng_state()
    tensors.update({f"avg.{k}": v for k, v in state.tail.items()})
    return save(
        tensors,
        {
            "task": task,
            "epoch": state.epoch,
            "best_epoch": state.best_epoch,
            "best_dice": state.best_dice,
            "averaged": state.averaged,
            "optimizer_groups": optim["param_groups"],
        },
        path,
    )


def load_training_state(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer) -> TrainingState:
    """Restore what :func:`save_training_state` wrote into ``model``, ``optimizer`` and the torch RNG; return the
    state.
    """
    tensors, meta = read(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optimizer_state: dict[str, Any] = {"state": {}, "param_groups": meta["optimizer_groups"]}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            optimizer_state["state"].setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(optimizer_state)
    torch.set_rng_state(tensors["rng.torch"])
    return TrainingState(
        meta["epoch"],
        meta["best_epoch"],
        meta["best_dice"],
        {k[4:]: v for k, v in tensors.items() if k.startswith("avg.")},
        int(meta.get("averaged", 0)),
    )


def check_task(metadata: dict[str, Any], what: str, task: str | None) -> None:
    """Refuse a model trained for another task than ``task`` (None: any task)."""
    if task is not None and metadata.get("task") != task:
        raise WeightsError(f"{what} is a {metadata.get('task')!r} model, not a {task!r} model")


def load_model(path: str | os.PathLike, task: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint (in eval mode) and return it with its metadata.

    A checkpoint whose JSON has ``members: N`` holds an :class:`~flairseg.model.Ensemble` of N
    U-Nets (tensors ``members.<i>.*``). Raises WeightsError for a wrong hash, a pickle file, or
    a model of another ``task``.
    """
    tensors, metadata = read(path)
    check_task(metadata, f"checkpoint {Path(path).name}", task)
    _check_finite(tensors, f"checkpoint {Path(path).name}")
    try:
        config = from_dict(ModelConfig, metadata["model"])
        members = int(metadata.get("members", 0))
        unet = lambda: UNet(**dataclasses.asdict(config))  # noqa: E731
        model: nn.Module = Ensemble([unet() for _ in range(members)]) if members else unet()
        model.load_state_dict(tensors, strict=True)
    except (KeyError, ValueError, TypeError, ConfigError, RuntimeError) as exc:
        raise WeightsError(
            f"checkpoint {Path(path).name} does not match its architecture: {str(exc).splitlines()[0]}"
        ) from None
    model.eval()
    return model, metadata


def _check_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Refuse weights with a NaN or infinite value: the model would answer NaN probabilities, hence empty masks."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsError(
                f"{what} holds NaN or infinite values in {name}; the file is damaged or its training diverged"
            )


MAX_SIZE = 1024  # the largest model grid a checkpoint may ask for (memory grows with its square)


def preprocess_config(metadata: dict[str, Any]) -> PreprocessConfig:
    """A checkpoint's preprocessing, range-checked: a known variant and missing-channel policy and a peak
    percentile the variant takes (checked as the record is parsed), a mean and a positive std that are finite
    float32 numbers (std a normal one: the inputs are standardised in float32) and a size of 16..MAX_SIZE."""
    try:
        config = from_dict(PreprocessConfig, metadata["preprocess"])
    except (KeyError, TypeError, AttributeError, ConfigError) as exc:
        raise WeightsError(f"the checkpoint's preprocessing record is invalid: {exc}") from None
    problems = [
        *_standardisation_problems(config.mean, config.std),
        f"size {config.size} is not in 16..{MAX_SIZE}" if not 16 <= config.size <= MAX_SIZE else "",
    ]
    problems = [p for p in problems if p]
    if problems:
        raise WeightsError(f"the checkpoint's preprocessing record is invalid: {'; '.join(problems)}")
    return config


def _standardisation_problems(mean: float, std: float) -> list[str]:
    """What is wrong with the mean and std that standardise the model's float32 inputs (none: an empty list)."""
    tiny, largest = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)
    problems = []
    if not (math.isfinite(std) and std > 0):
        problems.append(f"std {std!r} is not positive and finite")
    elif not tiny <= std <= largest:
        problems.append(f"std {std!r} is not a normal float32 ({tiny:.3g}..{largest:.3g})")
    if not math.isfinite(mean):
        problems.append(f"mean {mean!r} is not finite")
    elif abs(mean) > largest:
        problems.append(f"mean {mean!r} is beyond float32 (+-{largest:.3g})")
    return problems


def threshold_of(metadata: dict[str, Any]) -> float:
    """The probability threshold a checkpoint was trained with (0.5 when it names none), checked to lie in (0, 1)."""
    recipe = metadata.get("recipe") or {}
    value = recipe.get("threshold", 0.5) if isinstance(recipe, dict) else 0.5
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 < float(value) < 1.0:
        raise WeightsError(f"the checkpoint's threshold {value!r} is not a probability in (0, 1)")
    return float(value)


def postprocess_config(metadata: dict[str, Any]) -> PostprocessConfig:
    """The component rule a checkpoint was released with (the largest component when it names none)."""
    from flairseg.postprocess import check_rule

    try:
        config = from_dict(PostprocessConfig, metadata.get("postprocess") or {})
        check_rule(config.rule, config.value)
    except (ConfigError, TypeError, AttributeError) as exc:
        raise WeightsError(f"the checkpoint's postprocessing setting is invalid: {exc}") from None
    return config
