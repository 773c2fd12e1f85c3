"""Self-describing checkpoints: ``NAME.safetensors`` (tensors) + ``NAME.json`` (everything else).

The JSON holds the format version, the flairseg version, the task, the model and
preprocessing configs, the recipe, the split, the metrics and the sha256 of the tensor
file. Loading verifies the hash first and never unpickles anything. Training state for
resuming (optimizer moments, RNG states) uses the same two-file format.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flairseg.config import (
    parse_json,
    shown_value,
    TASKS,
    ModelConfig,
    PostprocessConfig,
    PreprocessConfig,
    check_channels,
    check_grid,
    from_dict,
    is_whole_number,
)
from flairseg.errors import ConfigError, WeightsError, out_of_memory
from flairseg.model import Ensemble, UNet
from flairseg.outputs import atomic_file
from flairseg.provenance import sha256_of
from flairseg.version import __version__

FORMAT_VERSION = 1
MAX_MEMBERS = 64  # networks in one ensemble checkpoint
MAX_NAME = 200  # characters of a model's name
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


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


_JSON_DIGEST_KEY = "flairseg_json_sha256"  # in the tensor file's header: the sha256 of the JSON it was written with
_UNBOUND_KEYS = ("sha256", "weights", "name")  # the tensors' own hash and what a release renames


def description_sha256(metadata: dict[str, Any]) -> str:
    """The sha256 of a checkpoint's JSON description, its keys sorted, without the fields a renamed copy changes
    (``_UNBOUND_KEYS``): what the tensor file's header records, so that an edited JSON is found."""
    kept = {key: value for key, value in metadata.items() if key not in _UNBOUND_KEYS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save(tensors: dict[str, torch.Tensor], metadata: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write tensors and metadata atomically (tensors first, with the JSON's hash in their header; the JSON with the
    tensors' hash last); returns the JSON path."""
    tensor_path, json_path = paths_of(path)
    record = {"format_version": FORMAT_VERSION, "flairseg_version": __version__, **metadata}
    bound = {_JSON_DIGEST_KEY: description_sha256(record)}
    with atomic_file(tensor_path) as tmp:
        _write_tensors(tensors, tmp, bound)
        digest = sha256_of(tmp)
    record |= {"weights": tensor_path.name, "sha256": digest}
    with atomic_file(json_path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=False))
    return json_path


_OS_ERROR = re.compile(r"os error (\d+)")  # how safetensors' writer (Rust) quotes the system's error


def _write_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """The tensors in a safetensors file at ``path``; the writer's failures (a full disk), which it raises as its own
    error type, raised as the system's error they quote, which the command names with its output's path."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    except SafetensorError as exc:
        quoted = _OS_ERROR.search(str(exc))
        code = int(quoted[1]) if quoted else errno.EIO
        raise OSError(code, os.strerror(code)) from None


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
    if given.is_dir() and (given / "best.json").is_file():
        raise WeightsError(f"{given} is a run folder, not a checkpoint; give its model, {given / 'best.json'}")
    tensor_path, json_path = paths_of(given)
    if not json_path.is_file() or not tensor_path.is_file():
        raise WeightsError(f"checkpoint {given} needs both {tensor_path.name} and {json_path.name}")
    try:
        metadata = parse_json(json_path.read_text())
    except ValueError:  # UnicodeDecodeError is one
        raise WeightsError(f"{json_path} is not valid JSON") from None
    if not isinstance(metadata, dict) or "sha256" not in metadata:
        raise WeightsError(f"{json_path} is not a flairseg checkpoint description (no sha256)")
    check_format_version(metadata, str(json_path))
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
        raise _unreadable(tensor_path, exc) from None
    return tensors, metadata


def _unreadable(tensor_path: Path, exc: Exception) -> Exception:
    """What a failed read of a tensor file is: memory running out (safetensors raises MemoryError or, for its mmap, a
    RuntimeError), which the CLI reports as such, else a fault of the file."""
    if out_of_memory(exc):
        return exc
    return WeightsError(f"cannot read {tensor_path}: {exc}")


def check_bound(path: str | os.PathLike, metadata: dict[str, Any]) -> None:
    """Refuse a checkpoint whose JSON was edited after its tensors were written: their header records the JSON's
    :func:`description_sha256` (checkpoints written before it did record none). Called once the JSON's values have
    passed their range checks, so that an impossible value is named as such."""
    from safetensors import safe_open

    tensor_path, json_path = paths_of(path)
    try:
        with safe_open(str(tensor_path), "pt") as handle:
            recorded = (handle.metadata() or {}).get(_JSON_DIGEST_KEY)
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise _unreadable(tensor_path, exc) from None
    if recorded is not None and recorded != description_sha256(metadata):
        raise WeightsError(
            f"{json_path} was edited after {tensor_path.name} was written (its settings differ from those recorded "
            "with the weights); restore it, or train or export again"
        )


def check_format_version(metadata: dict[str, Any], what: str) -> None:
    """Refuse a format version that is not a whole number from 1, or one newer than this flairseg reads (a record
    without one predates versioning)."""
    version = metadata.get("format_version", FORMAT_VERSION)
    if not is_whole_number(version) or version < 1:
        raise WeightsError(f"{what} has format version {version!r}; a checkpoint's format version is a whole number")
    if version > FORMAT_VERSION:
        raise WeightsError(f"{what} has format version {version}; upgrade flairseg to read it")


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
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainingState,
    recipe: dict[str, Any],
    split: dict[str, Any],
    path: str | os.PathLike,
) -> Path:
    """Model, optimizer, RNG and ``state`` as one checkpoint (tensors under key prefixes ``model.``, ``optim.<i>.``,
    ``avg.``, ``rng.``), written atomically like every checkpoint; its record names the ``recipe`` (a TrainConfig
    as a dict) and the ``split`` (a Split as a dict) the state was trained with, so that a run resumed under an
    edited recipe, or with test cases moved into training, is refused."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    for index, values in optim["state"].items():
        tensors.update({f"optim.{index}.{name}": value for name, value in values.items() if torch.is_tensor(value)})
    tensors["rng.torch"] = torch.get_rng_state()
    tensors.update({f"avg.{k}": v for k, v in state.tail.items()})
    return save(
        tensors,
        {
            "task": recipe["task"],
            "recipe": recipe,
            "split": split,
            "epoch": state.epoch,
            "best_epoch": state.best_epoch,
            "best_dice": state.best_dice,
            "averaged": state.averaged,
            "optimizer_groups": optim["param_groups"],
        },
        path,
    )


def load_training_state(
    path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, task: str
) -> TrainingState:
    """Restore what :func:`save_training_state` wrote into ``model``, ``optimizer`` and the torch RNG; return the
    state. Its record is checked first (:func:`check_state_record`), and its tensors as a model's are (no NaN, no
    negative variance): a run resumed from them would train on NaN.
    """
    tensors, meta = read(path)
    what = str(paths_of(path)[1])
    check_state_record(meta, what, task)
    _check_values(tensors, what)
    _check_optimizer_groups(meta.get("optimizer_groups"), optimizer, what)
    _check_tail(tensors, meta, model, what)
    _check_dtypes({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, model.state_dict(), what)
    optimizer_state: dict[str, Any] = {"state": {}, "param_groups": meta["optimizer_groups"]}
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                optimizer_state["state"].setdefault(int(index), {})[name] = value
        _check_adam_state(optimizer_state["state"], optimizer, what)
        optimizer.load_state_dict(optimizer_state)
        torch.set_rng_state(tensors["rng.torch"])
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        if out_of_memory(exc):
            raise
        reason = str(exc).splitlines()[0]
        raise WeightsError(f"{paths_of(path)[1]} does not match the run it resumes: {reason}") from None
    check_bound(path, meta)
    tail = {k[4:]: v for k, v in tensors.items() if k.startswith("avg.")}
    return TrainingState(meta["epoch"], meta["best_epoch"], float(meta["best_dice"]), tail, meta.get("averaged", 0))


def _check_optimizer_groups(groups: object, optimizer: torch.optim.Optimizer, what: str) -> None:
    """Refuse optimizer settings other than those the run's recipe makes (``optimizer``, made from it): a state whose
    betas, epsilon, weight decay or flags (amsgrad, maximize) were edited would resume with them, or fail inside torch.
    The learning rate is the schedule's, set before every step: any number."""
    made = json.loads(json.dumps(optimizer.state_dict()["param_groups"]))  # as the record holds them: lists, not tuples
    if not isinstance(groups, list) or len(groups) != len(made) or not all(isinstance(g, dict) for g in groups):
        raise WeightsError(f"{what}: optimizer_groups is not the {len(made)} parameter group(s) of the run's optimizer")
    for saved, fresh in zip(groups, made):
        missing = [key for key in fresh if key not in saved]
        if missing:
            raise WeightsError(f"{what}: optimizer_groups lacks {missing[0]}; restore the file, or start a new run")
        differs = [key for key in saved if key != "lr" and key in fresh and saved[key] != fresh[key]]
        if differs:
            key = differs[0]
            raise WeightsError(
                f"{what}: the optimizer setting {key} {saved[key]!r} is not the {fresh.get(key)!r} the run's recipe "
                "makes; restore the file, or start a new run"
            )
        lr = saved.get("lr")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr):
            raise WeightsError(f"{what}: the optimizer's lr {lr!r} is not a number")


def _check_adam_state(state: dict[int, dict[str, torch.Tensor]], optimizer: torch.optim.Optimizer, what: str) -> None:
    """Refuse Adam's saved per-parameter state (``state``: parameter index -> its tensors) other than Adam keeps for
    the run's parameters: its step, and first and second moments of each parameter's shape, the second never below 0
    (torch loads any, and fails or diverges at the first step)."""
    params = [param for group in optimizer.param_groups for param in group["params"]]
    amsgrad = any(group.get("amsgrad") for group in optimizer.param_groups)
    kept = {"step", "exp_avg", "exp_avg_sq", *(("max_exp_avg_sq",) if amsgrad else ())}
    for index, tensors in state.items():
        if not 0 <= index < len(params) or set(tensors) != kept:
            raise WeightsError(
                f"{what}: the optimizer state of parameter {index} is not Adam's; restore the file, or start a new run"
            )
        moments = [tensors[name] for name in sorted(kept - {"step"})]
        if any(moment.shape != params[index].shape for moment in moments) or (tensors["exp_avg_sq"] < 0).any():
            raise WeightsError(
                f"{what}: the optimizer moments of parameter {index} are not of its shape, or a second "
                "moment is below 0; restore the file, or start a new run"
            )


def _check_tail(tensors: dict[str, torch.Tensor], meta: dict[str, Any], model: nn.Module, what: str) -> None:
    """Refuse a tail sum (``avg.*``: the weights of the epochs ``averaged`` counts) that is not one of every tensor of
    the model where the record counts epochs, or that is there where it counts none."""
    tail = {key[4:] for key in tensors if key.startswith("avg.")}
    expected = set(model.state_dict()) if meta.get("averaged", 0) else set()
    if tail != expected:
        raise WeightsError(
            f"{what}: averaged {meta.get('averaged', 0)} does not match its tail sum ({len(tail)} of the model's "
            f"{len(model.state_dict())} tensors); restore the file, or start a new run"
        )


def check_state_record(meta: dict[str, Any], what: str, task: str) -> None:
    """Refuse a training-state record of another task than the run's, or with epochs or counts no run writes."""
    if meta.get("task") != task:
        raise WeightsError(f"{what} is the state of a {meta.get('task')!r} run, but the run's config is for {task!r}")
    for name, low in (("epoch", -1), ("best_epoch", -1), ("averaged", 0)):
        value = meta.get(name, 0 if name == "averaged" else None)
        if not is_whole_number(value) or value < low:
            raise WeightsError(f"{what}: {name} {value!r} is not a whole number >= {low}")
    best = meta.get("best_dice")
    number = isinstance(best, (int, float)) and not isinstance(best, bool)
    none_yet = number and best == -math.inf and meta["best_epoch"] == -1  # before the first validation
    if meta["best_epoch"] > meta["epoch"] or not (none_yet or (number and 0 <= best <= 1)):
        raise WeightsError(f"{what}: best_epoch {meta['best_epoch']} or best_dice {best!r} is invalid")


def _refuse_training_state(path: str | os.PathLike, metadata: dict[str, Any]) -> None:
    """Refuse a training state (``RUN/last``, what :func:`save_training_state` writes: its record holds the
    optimizer's settings and no architecture) given where a model is wanted, naming the run's model beside it: its
    record would otherwise be refused as a model's with an architecture missing."""
    if "optimizer_groups" in metadata and "model" not in metadata:
        json_path = paths_of(path)[1]
        raise WeightsError(
            f"{json_path} is a training state (the run's last epoch with its optimizer, for train --resume), not a "
            f"model; use the run's model {json_path.with_name('best.json')}"
        )


def task_of(metadata: dict[str, Any]) -> str:
    """A model record's task: abnormality where it names none (a checkpoint saved without one)."""
    return metadata.get("task", "abnormality")


def check_task(metadata: dict[str, Any], what: str, task: str | None) -> None:
    """Refuse a model trained for another task than ``task`` (None: any task)."""
    if task is not None and task_of(metadata) != task:
        raise WeightsError(f"{what} is a {task_of(metadata)!r} model, not a {task!r} model")


def load_model(path: str | os.PathLike, task: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint (in eval mode) and return it with its metadata.

    A checkpoint whose JSON has ``members: N`` holds an :class:`~flairseg.model.Ensemble` of N
    U-Nets (tensors ``members.<i>.*``). Raises WeightsError for a wrong hash, a pickle file, or
    a model of another ``task``.
    """
    tensors, metadata = read(path)
    _refuse_training_state(path, metadata)
    check_metadata(metadata, f"checkpoint {Path(path).name}")
    check_task(metadata, f"checkpoint {Path(path).name}", task)
    _check_values(tensors, f"checkpoint {Path(path).name}")
    check_bound(path, metadata)
    config, members = model_config(metadata), metadata.get("members", 0)
    _check_architecture(tensors, config, members, f"checkpoint {Path(path).name}")
    try:
        model = _network(config, members)
        model.load_state_dict(tensors, strict=True)
    except (ValueError, RuntimeError) as exc:
        if out_of_memory(exc):
            raise
        raise WeightsError(
            f"checkpoint {Path(path).name} does not match its architecture: {str(exc).splitlines()[0]}"
        ) from None
    model.eval()
    return model, metadata


def _network(config: ModelConfig, members: int) -> nn.Module:
    """The network a checkpoint's record declares: one U-Net, or an ensemble of ``members`` U-Nets."""
    unet = lambda: UNet(**dataclasses.asdict(config))  # noqa: E731
    return Ensemble([unet() for _ in range(members)]) if members else unet()


def _check_architecture(tensors: dict[str, torch.Tensor], config: ModelConfig, members: int, what: str) -> None:
    """Refuse tensors whose names or shapes are not those of the architecture the record declares, built first on
    torch's meta device (shapes, no memory): a record declaring a far larger network than its tensors hold would
    otherwise be allocated whole (gigabytes from a file of kilobytes) before the mismatch shows."""
    with torch.device("meta"):
        network = _network(config, members).state_dict()
    expected = {name: tuple(value.shape) for name, value in network.items()}
    found = {name: tuple(value.shape) for name, value in tensors.items()}
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    wrong = [name for name in expected if name in found and found[name] != expected[name]]
    differences = [
        f"{verb} {len(names)} tensors {where} the network its record declares (e.g. {', '.join(names[:3])})"
        for verb, where, names in (("lack", "of", missing), ("hold", "not in", unexpected))
        if names
    ]
    if differences:
        raise WeightsError(
            f"{what} does not match its architecture: its weights {' and '.join(differences)}; the record and the "
            "weights are not of one model"
        )
    if wrong:
        name = wrong[0]
        raise WeightsError(
            f"{what} does not match its architecture: its weights' {name} has shape {list(found[name])}, that of the "
            f"network its record declares {list(expected[name])}; the record and the weights are not of one model"
        )
    _check_dtypes(tensors, network, what)


def _check_dtypes(tensors: dict[str, torch.Tensor], network: dict[str, torch.Tensor], what: str) -> None:
    """Refuse a tensor stored in another type than the network's (loading would cast it: float64 weights beyond
    float32's range become infinite after the check for infinite values)."""
    for name, value in network.items():
        if name in tensors and tensors[name].dtype != value.dtype:
            raise WeightsError(
                f"{what} stores {name} as {_shown(tensors[name].dtype)}, not the network's {_shown(value.dtype)}; the "
                "file was edited or is not flairseg's"
            )


def _shown(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# what checkpoints store: float32 weights and optimizer moments, int64 batch counts, float64 tail sums (``avg.``),
# the uint8 RNG state
_STORED_DTYPES = (torch.float32, torch.float64, torch.int64, torch.uint8)


def _check_values(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Refuse tensors no training writes, for which the model would answer NaN probabilities, hence empty masks: a
    NaN or infinite value, or a negative batch-normalisation running variance (whose square root is NaN; zero is a
    channel that never varied, normalised by the layer's epsilon). Model weights and training states alike."""
    for name, tensor in tensors.items():
        if tensor.dtype not in _STORED_DTYPES:
            raise WeightsError(
                f"{what} stores {name} as {_shown(tensor.dtype)}, a type no flairseg checkpoint holds; the file was "
                "edited or is not flairseg's"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsError(
                f"{what} holds NaN or infinite values in {name}; the file is damaged or its training diverged"
            )
        if name.endswith("running_var") and bool((tensor < 0).any()):
            raise WeightsError(
                f"{what} holds a negative batch-normalisation variance in {name}; the file is damaged or was edited"
            )


def check_metadata(metadata: Any, what: str) -> dict[str, Any]:
    """A model's record (a checkpoint's JSON or an ONNX export's metadata), checked field by field before anything
    uses it: the format version, a known task, its name (one line of text), the architecture, the preprocessing (and
    that the U-Net can halve its input ``depth`` times), the ensemble size, the threshold and the component rule.
    Returns it."""
    if not isinstance(metadata, dict):
        raise WeightsError(f"{what} holds no model description (a JSON object)")
    check_format_version(metadata, what)
    task = task_of(metadata)
    if task not in TASKS:
        raise WeightsError(f"{what} is for task {task!r}; flairseg knows {', '.join(TASKS)}")
    name = metadata.get("name") or ""
    if not (isinstance(name, str) and name.isprintable() and len(name) <= MAX_NAME):  # it titles reports and records
        raise WeightsError(f"{what} is named {repr(name)[:80]}; a model's name is one line of text")
    members = metadata.get("members", 0)
    if not is_whole_number(members) or not 0 <= members <= MAX_MEMBERS:
        raise WeightsError(f"{what} has members {members!r}; an ensemble size is a whole number in 0..{MAX_MEMBERS}")
    try:
        architecture, preprocess = model_config(metadata), preprocess_config(metadata)
        check_grid(architecture, preprocess)
        check_channels(task, architecture, preprocess)
    except ConfigError as exc:
        raise WeightsError(f"{what} has an invalid record: {exc}") from None
    threshold_of(metadata)
    postprocess_config(metadata)
    return metadata


def model_config(metadata: dict[str, Any]) -> ModelConfig:
    """A checkpoint's architecture: known keys, in the ranges :class:`~flairseg.config.ModelConfig` allows."""
    record = metadata.get("model")
    try:
        if not isinstance(record, dict):
            raise ConfigError(f"model must be a mapping of ModelConfig fields, not {record!r}")
        return from_dict(ModelConfig, record, prefix="model.")
    except ConfigError as exc:
        raise WeightsError(f"the checkpoint's architecture record is invalid: {exc}") from None


def preprocess_config(metadata: dict[str, Any]) -> PreprocessConfig:
    """A checkpoint's preprocessing, range-checked as any recipe's is (:class:`~flairseg.config.PreprocessConfig`):
    a known variant and missing-channel policy, a peak percentile the variant takes, a finite mean, a positive finite
    std and a size of 16..MAX_SIZE."""
    record = metadata.get("preprocess")
    try:
        if not isinstance(record, dict):
            raise ConfigError(f"preprocess must be a mapping of PreprocessConfig fields, not {record!r}")
        return from_dict(PreprocessConfig, record)
    except ConfigError as exc:
        raise WeightsError(f"the checkpoint's preprocessing record is invalid: {exc}") from None


def threshold_of(metadata: dict[str, Any]) -> float:
    """The probability threshold a checkpoint was trained with (0.5 when it names none), checked to lie in (0, 1)."""
    recipe = metadata.get("recipe") or {}
    value = recipe.get("threshold", 0.5) if isinstance(recipe, dict) else 0.5
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 < value < 1.0:
        raise WeightsError(f"the checkpoint's threshold {shown_value(value)} is not a probability in (0, 1)")
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
