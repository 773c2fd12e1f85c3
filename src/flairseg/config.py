"""Configuration as frozen dataclasses; presets are plain data.

``ModelConfig`` and ``PreprocessConfig`` travel inside every checkpoint (they are what a
model needs to be rebuilt and fed); ``TrainConfig`` is written to the run folder.
Overrides from the command line or JSON are type-checked and unknown keys refused.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from flairseg.errors import ConfigError

_MAX_DIGITS = 4300  # Python's own limit on converting digits to an integer
MAX_THREADS = 1024  # past any machine's cores; PyTorch crashes on pools of 100,000 threads

# Every option vocabulary of the package, defined once: a Literal type for the dataclass fields (checked
# when a config is parsed, see _coerce) and its values as a tuple for command-line choices and messages.
Task = Literal["abnormality", "brain"]
Variant = Literal["paper-abnormality", "paper-brain", "port"]  # flairseg.preprocess
MissingPolicy = Literal["copy-flair", "zeros", "error"]  # what stands in for a missing pre/post-contrast channel
Loss = Literal["dice", "dice+bce", "dice+focal"]  # flairseg.losses
Sampling = Literal["area", "oversample", "uniform"]  # flairseg.data.epoch_items
Scheme = Literal["kfold", "paper22"]  # flairseg.data.make_split
Schedule = Literal["constant", "cosine"]  # flairseg.train.learning_rate
PostprocessRule = Literal[
    "none", "largest", "relative-volume", "largest-mass", "peak"
]  # flairseg.postprocess.select_components
Precision = Literal["auto", "fp32", "bf16"]  # flairseg.inference.resolve_precision

TASKS: tuple[str, ...] = typing.get_args(Task)
VARIANTS: tuple[str, ...] = typing.get_args(Variant)
MISSING_POLICIES: tuple[str, ...] = typing.get_args(MissingPolicy)
LOSSES: tuple[str, ...] = typing.get_args(Loss)
SAMPLINGS: tuple[str, ...] = typing.get_args(Sampling)
SCHEMES: tuple[str, ...] = typing.get_args(Scheme)
SCHEDULES: tuple[str, ...] = typing.get_args(Schedule)
POSTPROCESS_RULES: tuple[str, ...] = typing.get_args(PostprocessRule)
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)


@dataclass(frozen=True)
class TaskSpec:
    """What differs between the two tasks, in one place."""

    # the masks' file suffix (<CASE>_<k><suffix>.tif, <case><suffix>.nii.gz): brain and tumour masks never share a name
    label_suffix: str
    label: str  # what the masks outline, in messages
    # postprocessing chooses connected components, listed per case (abnormality); brain masks are filled instead
    components: bool
    # what the task's scores and outline GIFs in a prediction run's report, its probability maps and the folder of its
    # skull-stripped images add to their names (metrics_brain.csv, gifs/<case>_brain.gif,
    # <case>_brain_probability.nii.gz, stripped_brain/), so that one output folder keeps both tasks' apart: none for
    # the tumour task, whose names evaluate and cv write too
    output_suffix: str


MAX_SIZE = 1024  # the largest model grid a recipe or checkpoint may ask for (memory grows with its square)
MIN_SIZE = 16

TASK_SPECS: dict[str, TaskSpec] = {
    "abnormality": TaskSpec(label_suffix="_mask", label="tumour", components=True, output_suffix=""),
    "brain": TaskSpec(label_suffix="_brain", label="brain", components=False, output_suffix="_brain"),
}


MAX_IN_CHANNELS = 64  # input channels (sequences, neighbour slices) a model may take
MAX_FEATURES = 1024  # base features of a U-Net: memory grows with their square at every level
MAX_FLAIR_NEIGHBOURS = 3  # slices above and below a 2.5-D abnormality model sees


@dataclass(frozen=True)
class ModelConfig:
    """The U-Net's architecture."""

    in_channels: int = 3  # what input_channels gives for the task and preprocessing
    features: int = 32  # channels of the first level; doubled at every level
    depth: int = 4  # encoder levels below the full resolution
    batch_norm: bool = False  # after every convolution (the port) or none (the paper)

    def __post_init__(self) -> None:
        """Refuse channels, features or depth that are not whole numbers in their ranges, whichever way they came
        (recipe, --set, a checkpoint's record)."""
        for name, high in (("in_channels", MAX_IN_CHANNELS), ("features", MAX_FEATURES), ("depth", None)):
            value = getattr(self, name)
            if not is_whole_number(value) or not 1 <= value <= (high or value):
                bound = ">= 1" if high is None else f"in 1..{high}"
                raise ConfigError(f"model.{name} {value!r} is not a whole number {bound}")


def is_whole_number(value: Any) -> bool:
    """Whether a recorded value (a recipe's or a checkpoint's JSON) is an integer, a boolean not counting as one."""
    return isinstance(value, int) and not isinstance(value, bool)


MODEL_PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(features=32, batch_norm=False),  # Buda et al. 2019, Keras
    "port": ModelConfig(features=32, batch_norm=True),  # the PyTorch port
    "default": ModelConfig(features=16, batch_norm=True),  # flairseg's own: a quarter of the FLOPs
}


@dataclass(frozen=True)
class PreprocessConfig:
    """How a case becomes model input: the preprocessing variant, its size and the standardisation."""

    variant: Variant = "port"
    size: int = 256  # in-plane size of the model's input
    mean: float = 0.0  # one scalar standardisation over all channels: (x - mean) / std
    std: float = 1.0
    missing: MissingPolicy = "copy-flair"
    # port: values below 10 % of this percentile of the volume are background (100: the maximum, as the PyTorch
    # port; a lower one keeps a dim FLAIR whose scan has a few very bright voxels)
    peak_percentile: float = 100.0
    # abnormality (2.5-D): the FLAIR of this many slices above and below as channels after pre/FLAIR/post
    flair_neighbours: int = 0

    def __post_init__(self) -> None:
        """Refuse a size outside 16..MAX_SIZE, a mean or std (positive, normal) that is not a finite float32, a
        ``peak_percentile`` outside 90-100, or one set for a variant that has no such cut, and more than
        MAX_FLAIR_NEIGHBOURS neighbours."""
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise ConfigError(f"preprocess.size {self.size} is not in {MIN_SIZE}..{MAX_SIZE}")
        if not 0 <= self.flair_neighbours <= MAX_FLAIR_NEIGHBOURS:
            raise ConfigError(
                f"preprocess.flair_neighbours {self.flair_neighbours} is not in 0..{MAX_FLAIR_NEIGHBOURS}"
            )
        problems = _standardisation_problems(self.mean, self.std)
        if problems:
            raise ConfigError("; ".join(problems))
        if not 90 <= self.peak_percentile <= 100:
            raise ConfigError(f"peak_percentile {self.peak_percentile!r} is not in [90, 100]")
        if self.peak_percentile != 100 and self.variant != "port":
            raise ConfigError(
                f"preprocess.peak_percentile is a setting of the port variant, not of {self.variant}; leave it at 100"
            )


# the range of the mean and std that standardise the model's inputs (at most 0..255 before): beyond it a standardised
# input passes 1e6, and the network's activations and batch-norm variances overflow float32 in training
STANDARDISATION_RANGE = 1e3


def _standardisation_problems(mean: float, std: float) -> list[str]:
    """What is wrong with the mean and std that standardise the model's float32 inputs (none: an empty list)."""
    problems = []
    if not (math.isfinite(std) and 1 / STANDARDISATION_RANGE <= std <= STANDARDISATION_RANGE):
        problems.append(f"std {std!r} is not in [{1 / STANDARDISATION_RANGE:g}, {STANDARDISATION_RANGE:g}]")
    if not (math.isfinite(mean) and abs(mean) <= STANDARDISATION_RANGE):
        problems.append(f"mean {mean!r} is not in [{-STANDARDISATION_RANGE:g}, {STANDARDISATION_RANGE:g}]")
    return problems


@dataclass(frozen=True)
class PostprocessConfig:
    """Which connected components of an abnormality prediction are kept; travels inside checkpoints.

    Checkpoints without it keep the largest component, as the paper does.
    """

    rule: PostprocessRule = "largest"
    value: float = 0.0  # relative-volume: share of the largest component; peak: probability threshold


@dataclass(frozen=True)
class TrainConfig:
    """A training run's recipe; written to ``config.json`` in the run folder."""

    task: Task = "abnormality"
    model: ModelConfig = field(default_factory=lambda: MODEL_PRESETS["default"])
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    scheme: Scheme = "kfold"  # "kfold" (``folds`` folds) or "paper22" (22 folds of 5 patients)
    folds: int = 5
    fold: int = 0  # which fold is the test fold (never seen in training or selection)
    validation_cases: int = 10  # fixed subset of the training cases used for model selection
    seed: int = 0
    epochs: int = 10
    steps_per_epoch: int = 0  # 0: as many as there are training slices / batch size
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.0
    schedule: Schedule = "constant"  # "constant" or "cosine" (per step, to 1 % of lr, after a linear warm-up)
    warmup_steps: int = 0
    loss: Loss = "dice"  # "dice" (1 - soft Dice over the batch, smoothing 1), "dice+bce" or "dice+focal"
    sampling: Sampling = "area"  # "area" (the port), "oversample" (the paper: tumour slices x3) or "uniform"
    patch: int = 0  # train on patch x patch crops of the model-space slices (0: whole slices); inference stays whole
    patch_tumour: float = 0.5  # share of crops centred on a random foreground pixel (the rest anywhere)
    rotation: float = 15.0  # degrees, uniform in [-rotation, rotation]
    scale: float = 0.05  # uniform in [1 - scale, 1 + scale]
    flip: float = 0.5  # probability of a left-right flip
    intensity: float = 0.0  # std of a random multiplicative intensity jitter (0: off)
    # abnormality: probability a slice's pre/post-contrast channels are replaced by its FLAIR (a FLAIR-only input)
    flair_only: float = 0.0
    # probability a slice is taken from its case skull-stripped with the case's _brain labels (needs them)
    skull_strip: float = 0.0
    # probability a slice is blended with a neighbour (weight up to 0.5; its own mask kept), as a volume
    # interpolated to thinner slices gives it
    slice_mix: float = 0.0
    # probabilities of MONAI's scanner-like intensity transforms on a training slice (augment.scanner_transforms)
    gamma: float = 0.0
    bias_field: float = 0.0
    noise: float = 0.0
    blur: float = 0.0
    threshold: float = 0.5
    # also average the weights of the last N epochs; best = the better-validating of that and the best epoch
    average_last: int = 0
    # the network's forward and backward in bfloat16 autocast (losses in float32): faster where bf16 is native
    bfloat16: bool = False
    # processes that build the batches (augmentation included, on the CPU) ahead of the training steps, so a GPU
    # need not wait for them; 0: each batch is built by the training process on its device, step by step
    batch_workers: int = 0
    deterministic: bool = False  # GPU: deterministic kernels only (set CUBLAS_WORKSPACE_CONFIG=:4096:8); slower
    tensorboard: bool = False

    def __post_init__(self) -> None:
        """Refuse values no run can use, whichever way they came (command line, recipe, --set)."""
        for name, low, high in TRAIN_RANGES:
            value = _lookup(self, name)
            finite = not isinstance(value, float) or math.isfinite(value)  # a huge int is finite, not a float's
            if not finite or not (low is None or value >= low) or not (high is None or value <= high):
                allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise ConfigError(f"{name} must be {allowed}, not {value}")
        if not 0 < self.lr <= 1 or not 0 < self.threshold < 1:  # Adam's steps are about lr: above 1 it only diverges
            raise ConfigError(
                f"lr must be in (0, 1] and threshold in (0, 1), not lr={self.lr}, threshold={self.threshold}"
            )
        if self.average_last > self.epochs:
            raise ConfigError(f"average_last ({self.average_last}) cannot exceed epochs ({self.epochs})")
        check_grid(self.model, self.preprocess)
        if self.patch % 2**self.model.depth:
            raise ConfigError(
                f"patch {self.patch} is not a multiple of 2**model.depth = {2**self.model.depth}; the U-Net halves "
                "its crops at every level"
            )
        check_channels(self.task, self.model, self.preprocess)


def input_channels(task: Task, preprocess: PreprocessConfig) -> int:
    """The channels a task's model input has: brain, the FLAIR of the slice and its two neighbours; abnormality,
    pre-contrast, FLAIR and post-contrast, then the FLAIR of ``flair_neighbours`` slices above and below."""
    return 3 + 2 * preprocess.flair_neighbours if task == "abnormality" else 3


def check_channels(task: Task, model: ModelConfig, preprocess: PreprocessConfig) -> None:
    """Refuse neighbours on a brain model (it has its own) and a model whose input channels differ from what the
    preprocessing gives."""
    if task == "brain" and preprocess.flair_neighbours:
        raise ConfigError(
            "preprocess.flair_neighbours is an abnormality setting; the brain model's 3 channels are "
            "already the slice and its two neighbours"
        )
    expected = input_channels(task, preprocess)
    if model.in_channels != expected:
        raise ConfigError(
            f"model.in_channels {model.in_channels} does not match the {expected} channels the {task} input has"
            + (f" with flair_neighbours {preprocess.flair_neighbours}" if task == "abnormality" else "")
        )


def check_grid(model: ModelConfig, preprocess: PreprocessConfig) -> None:
    """Refuse a model input the U-Net cannot halve ``depth`` times: its size must be a multiple of 2**depth."""
    if model.depth >= preprocess.size.bit_length():
        raise ConfigError(f"model.depth {model.depth} would halve the {preprocess.size}-pixel input below one pixel")
    if preprocess.size % 2**model.depth:
        raise ConfigError(
            f"preprocess.size {preprocess.size} is not a multiple of 2**model.depth = {2**model.depth}; the U-Net "
            "halves it at every level"
        )


# (setting, lowest, highest allowed); None: unbounded
TRAIN_RANGES: tuple[tuple[str, float | None, float | None], ...] = (
    ("epochs", 1, 100_000),
    ("batch_size", 1, 4096),
    ("folds", 2, 1000),
    ("fold", 0, None),
    ("seed", 0, 2**63 - 1),  # numpy and torch seeds
    ("validation_cases", 0, 1_000_000),
    ("steps_per_epoch", 0, 10_000_000),
    ("warmup_steps", 0, 1_000_000_000),
    ("weight_decay", 0, 1),  # a share of each weight taken off per step
    ("patch", 0, None),
    ("patch_tumour", 0, 1),
    ("rotation", 0, 180),
    ("scale", 0, 0.9),
    ("flip", 0, 1),
    ("intensity", 0, 1),  # the spread of the log gain
    ("flair_only", 0, 1),
    ("skull_strip", 0, 1),
    ("slice_mix", 0, 1),
    ("gamma", 0, 1),
    ("bias_field", 0, 1),
    ("noise", 0, 1),
    ("blur", 0, 1),
    ("average_last", 0, None),
    ("batch_workers", 0, 64),  # processes that prepare batches
)


def _lookup(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def parse_json(text: str) -> Any:
    """The JSON value of ``text``; a ValueError for anything that is not one, nesting too deep to parse, integers
    longer than Python converts and a key given twice in one object (the last would win without a word) included, so
    that every reader of a JSON file names it in one line."""
    try:
        return json.loads(text, parse_int=_json_integer, object_pairs_hook=_object_of_unique_keys)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _object_of_unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key!r} given twice in one object")
        found[key] = value
    return found


def _json_integer(text: str) -> int:
    if len(text) > _MAX_DIGITS:  # int() would say so, advising a Python setting
        raise ValueError(f"a number of {len(text.lstrip('-'))} digits")
    return int(text)


def _coerce(value: Any, kind: Any, name: str) -> Any:
    if dataclasses.is_dataclass(kind):
        if isinstance(value, kind):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping of {kind.__name__} fields")
        return from_dict(kind, value, prefix=f"{name}.")
    origin = typing.get_origin(kind)
    if origin is Literal:
        if value not in typing.get_args(kind):
            raise ConfigError(f"{name} must be one of {typing.get_args(kind)}, not {value!r}")
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    if kind in (int, float, str):
        if isinstance(value, bool):  # JSON true/false for a number or a name: a slip (true would be 1)
            raise ConfigError(f"{name} must be {kind.__name__}, not {str(value).lower()}")
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{name} must be an integer, not {value!r}")
        try:
            return kind(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{name} must be {kind.__name__}, not {shown_value(value)}") from None
    return value


def from_dict(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Build a config dataclass from a mapping, refusing unknown keys (with a suggestion)."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown setting {prefix}{key}{hint}")
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def replace(config: Any, **changes: Any) -> Any:
    """A copy of a config with type-checked changes (nested ones as dicts)."""
    merged = dataclasses.asdict(config)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return from_dict(type(config), merged)


def first_difference(a: Any, b: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first setting (in field order, nested ones dotted: ``model.features``) in which two configs of one type
    differ, with its value in each; None when they are equal."""
    for name in (f.name for f in dataclasses.fields(a)):
        left, right = getattr(a, name), getattr(b, name)
        if dataclasses.is_dataclass(left):
            found = first_difference(left, right, f"{prefix}{name}.")
            if found is not None:
                return found
        elif left != right:
            return f"{prefix}{name}", left, right
    return None


def model_preset(name: str) -> ModelConfig:
    """A named model preset ('paper', 'port', 'default')."""
    if name not in MODEL_PRESETS:
        close = difflib.get_close_matches(name, MODEL_PRESETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown model preset {name!r}; choose one of {', '.join(MODEL_PRESETS)}{hint}")
    return MODEL_PRESETS[name]


def shown_value(value: Any) -> str:
    """A value for a message, cut short: a 400-digit number is named by its first digits."""
    if isinstance(value, int) and abs(value) >= 10**30:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
