"""Applying a model to prepared cases: batched slices, optional flip TTA, back to the input grid.

Used by training (validation on the input grid) and prediction alike, so the numbers a
run selects its model on are computed exactly as users will get them.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import threadpoolctl
import torch
from torch import nn

from flairseg import checkpoint
from flairseg.config import MAX_THREADS, PRECISIONS, PostprocessConfig, parse_json
from flairseg.data import Prepared
from flairseg.errors import ConfigError, InputError, WeightsError
from flairseg.postprocess import Component, postprocess, select_components
from flairseg.preprocess import invert_mask, invert_probability


def limit_threads(threads: int | None) -> None:
    """Use at most ``threads`` CPU threads (None: the libraries' defaults): PyTorch's pool and the
    BLAS/OpenMP pools under NumPy and SciPy.

    Processes that share a machine (cross-validation folds, ``--part`` jobs, torchrun ranks) each get
    a share of the cores; a BLAS pool as large as the machine in each of them made case preparation
    about 20 times slower (5 processes on 16 cores; README, "Running at scale").
    """
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise InputError(f"threads must lie between 1 and {MAX_THREADS}, not {threads}")
    if threads:
        torch.set_num_threads(threads)
        threadpoolctl.threadpool_limits(threads)


def resolve_device(name: str) -> torch.device:
    """A torch device from 'auto' (CUDA, then Apple's MPS, then the CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
    if name == "mps" and not mps:
        raise ConfigError("device 'mps' requested but Apple's MPS is not available here; use --device cpu")
    cuda = re.fullmatch(r"cuda(?::(\d+))?", name)
    if name not in ("cpu", "mps") and cuda is None:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if cuda is not None and cuda[1] is not None and int(cuda[1]) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        devices = "1 CUDA device (cuda:0)" if count == 1 else f"{count} CUDA devices (cuda:0 .. cuda:{count - 1})"
        raise ConfigError(f"device {name!r} requested but this machine has {devices}")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype inference runs in: None (float32 throughout) or torch.bfloat16.

    ``auto`` picks bfloat16 where the hardware computes it natively (CPUs with AVX512-BF16 or
    AMX, CUDA GPUs with bf16) and float32 elsewhere; ``fp32`` and ``bf16`` force one. Inputs,
    probabilities and the sigmoid stay float32 either way.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.bfloat16 if native else None


ONNX_METADATA_KEY = "flairseg"  # the ONNX metadata property holding the checkpoint's JSON
ONNX_GRAPH_KEY = "flairseg_graph_sha256"  # the one holding onnx_graph_sha256 of the file at export
ONNX_BINDING_KEY = "flairseg_metadata_sha256"  # the one holding onnx_metadata_sha256 of the file at export


def onnx_graph_sha256(model: Any) -> str:
    """The sha256 of an ONNX ``ModelProto`` without its metadata properties (its graph with the weights, its opsets
    and every other field), serialized deterministically: what export records and loading checks."""
    copy = type(model)()
    copy.CopyFrom(model)
    del copy.metadata_props[:]
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def onnx_metadata_sha256(graph_sha256: str, text: str) -> str:
    """The sha256 of an export's graph hash and the exact text of its ``flairseg`` metadata: what export records and
    loading checks, so that metadata edited after export (a threshold, a task, a mean) or moved onto another graph is
    refused as an edited graph is."""
    return hashlib.sha256(f"{graph_sha256}\n{text}".encode()).hexdigest()


def _onnx_metadata(properties: dict[str, str], path: str | os.PathLike) -> dict[str, Any]:
    """An ONNX export's ``flairseg`` metadata, parsed and checked as a checkpoint's JSON is."""
    text = properties.get(ONNX_METADATA_KEY)
    if text is None:
        raise WeightsError(
            f"{path} was not exported by flairseg (no {ONNX_METADATA_KEY!r} metadata); export it with `flairseg "
            "export --onnx`"
        )
    try:
        metadata = parse_json(text)
    except ValueError:
        raise WeightsError(f"{path}: its {ONNX_METADATA_KEY!r} metadata is not valid JSON") from None
    return checkpoint.check_metadata(metadata, str(path))


def _checked_graph_sha256(model: Any, properties: dict[str, str], path: str | os.PathLike) -> str:
    """The sha256 of the model's graph, refused unless it is the one recorded at export. The record sits in the file
    itself: it catches a file changed by accident or by an editor, not one whose maker wrote a new hash too."""
    recorded = properties.get(ONNX_GRAPH_KEY)
    if recorded is None:
        raise WeightsError(
            f"{path} records no sha256 of its graph (exported by an older flairseg, or edited); export the checkpoint "
            "again with `flairseg export --onnx`"
        )
    actual = onnx_graph_sha256(model)
    if actual != recorded:
        raise WeightsError(
            f"{path} was changed after export (its graph is not the one whose sha256 it records); export the "
            "checkpoint again"
        )
    return actual


def _check_metadata_bound(properties: dict[str, str], graph_sha256: str, path: str | os.PathLike) -> None:
    """Refuse metadata that is not the one recorded with the graph at export (:func:`onnx_metadata_sha256`). Checked
    after the metadata's range checks, so that an impossible value is named as such."""
    recorded = properties.get(ONNX_BINDING_KEY)
    if recorded is None:
        raise WeightsError(
            f"{path} records no sha256 of its {ONNX_METADATA_KEY!r} metadata (exported by an older flairseg, or "
            "edited); export the checkpoint again with `flairseg export --onnx`"
        )
    if recorded != onnx_metadata_sha256(graph_sha256, properties[ONNX_METADATA_KEY]):
        raise WeightsError(
            f"{path}: its {ONNX_METADATA_KEY!r} metadata was edited after export (its settings differ from those "
            "recorded with the graph); export the checkpoint again"
        )


def _onnxruntime_errors(onnxruntime: Any) -> tuple[type[Exception], ...]:
    """ONNX Runtime's own exception types (Fail, InvalidArgument, RuntimeException...), none of them Python's."""
    state = vars(onnxruntime.capi.onnxruntime_pybind11_state).values()
    return tuple(kind for kind in state if isinstance(kind, type) and issubclass(kind, Exception))


class OnnxModel:
    """A network exported by ``flairseg export --onnx``, run by ONNX Runtime on the CPU.

    The file is read once: its graph's hash, and that of the graph's hash with the metadata, are checked against the
    ones recorded at export before the same bytes go to ONNX Runtime, so the model that runs, and the settings it runs
    with, are the ones checked.

    Attributes:
        metadata: the source checkpoint's JSON (task, preprocessing, architecture, recipe).
        in_channels: input channels the network expects.
        graph_sha256: the sha256 of the graph that runs (:func:`onnx_graph_sha256`).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        try:
            import onnx
            import onnxruntime
        except ImportError:
            raise WeightsError(
                "running an ONNX model needs onnx and onnxruntime: pip install 'flairseg[onnx]'"
            ) from None
        if not Path(path).is_file():  # a folder, a FIFO that would never end
            raise WeightsError(f"ONNX model {path} is not a file; give the .onnx file flairseg export wrote")
        data = Path(path).read_bytes()
        try:
            model = onnx.load_model_from_string(data)
        except Exception as exc:  # protobuf's DecodeError and onnx's own errors for bytes that are no ONNX model
            raise WeightsError(
                f"cannot load ONNX model {path}: {str(exc).splitlines()[0] if str(exc) else exc!r}"
            ) from None
        properties = {prop.key: prop.value for prop in model.metadata_props}
        self.metadata: dict[str, Any] = _onnx_metadata(properties, path)
        self.graph_sha256 = _checked_graph_sha256(model, properties, path)  # before ONNX Runtime sees the graph
        _check_metadata_bound(properties, self.graph_sha256, path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.log_severity_level = 4  # fatal only: a failure is raised as one line, not logged too
        try:
            self.session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own error types for invalid graphs
            raise WeightsError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0]}") from None
        self.in_channels = checkpoint.model_config(self.metadata).in_channels
        self._check_shapes(path, checkpoint.preprocess_config(self.metadata).size)
        self._input = self.session.get_inputs()[0].name
        self._path = path
        self._errors = _onnxruntime_errors(onnxruntime)

    def _check_shapes(self, path: str | os.PathLike, size: int) -> None:
        """Refuse a graph that does not take (any batch, channels, size, size) or answer (any batch, 1, size, size)
        float32 tensors: a boolean or integer answer would pass for logits of 0 and 1, every slice's pixels tumour."""
        expected = [
            ("input", self.session.get_inputs()[0], [self.in_channels, size, size], f"{self.in_channels} channels"),
            ("output", self.session.get_outputs()[0], [1, size, size], "a logit map"),
        ]
        for what, node, dims, content in expected:
            if node.type != "tensor(float)":
                raise WeightsError(
                    f"{path} declares its {what} a {node.type}, not a tensor(float) (float32) of {content}; export "
                    "the checkpoint again"
                )
            shape = list(node.shape)
            if shape[1:] != dims:
                raise WeightsError(
                    f"{path} declares {what} {shape}, but its metadata asks for {content} of {size}x{size}; export the "
                    "checkpoint again"
                )
            if isinstance(shape[0], int):
                raise WeightsError(
                    f"{path} declares {what} {shape}, a fixed batch size of {shape[0]}; flairseg runs batches of any "
                    "size: export the checkpoint again"
                )

    # The torch network's interface, so that inference takes either (as MONAI's inferers take any network).
    training = False

    def eval(self) -> OnnxModel:
        return self

    def train(self, mode: bool = True) -> OnnxModel:
        return self

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float32 -> (N, 1, H, W) float32 logits, like the torch network's forward."""
        try:
            logits = self.session.run(None, {self._input: np.ascontiguousarray(batch.float().numpy())})[0]
        except self._errors as exc:
            raise WeightsError(f"ONNX model {self._path} failed: {str(exc).splitlines()[0]}") from None
        if logits.shape != (batch.shape[0], 1, *batch.shape[2:]):
            raise WeightsError(
                f"ONNX model {self._path} answered {list(logits.shape)} for a batch of {list(batch.shape)}, not one "
                "logit map per slice; export the checkpoint again"
            )
        return torch.from_numpy(logits)


@dataclass(frozen=True)
class InferenceOptions:
    """How a network is run over a case's slices.

    Attributes:
        batch_size: slices per forward pass.
        device: where the network and the batches are (an ONNX model: the CPU).
        tta: also predict the left-right flipped slices and average the probabilities.
        autocast: the network's compute dtype (see :func:`resolve_precision`); None is float32.
    """

    batch_size: int = 4
    device: torch.device = torch.device("cpu")
    tta: bool = False
    autocast: torch.dtype | None = None


@torch.inference_mode()
def predict_probabilities(
    model: nn.Module | OnnxModel, inputs: np.ndarray, options: InferenceOptions = InferenceOptions()
) -> np.ndarray:
    """(S, C, H, W) model inputs -> (S, H, W) float32 foreground probabilities, a batch of slices at a time.

    ``model`` is a PyTorch network or an :class:`OnnxModel`: anything called on a (N, C, H, W) batch
    that returns (N, 1, H, W) logits.
    """
    device, autocast = options.device, options.autocast
    was_training = model.training
    model.eval()
    out = np.empty((inputs.shape[0], *inputs.shape[2:]), dtype=np.float32)
    for start in range(0, inputs.shape[0], options.batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(inputs[start : start + options.batch_size])).to(
            device, memory_format=torch.channels_last
        )
        with torch.autocast(device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            logits = model(batch)
            flipped = model(batch.flip(-1)).flip(-1) if options.tta else None
        prob = torch.sigmoid(logits.float())
        if flipped is not None:
            prob = (prob + torch.sigmoid(flipped.float())) / 2
        if not bool(torch.isfinite(prob).all()):  # NaN is above no threshold: the masks would be silently empty
            raise WeightsError(
                "the model answers NaN probabilities (its weights overflow: damaged, or trained to diverge); use "
                "another checkpoint"
            )
        out[start : start + batch.shape[0]] = prob[:, 0].float().cpu().numpy()
    model.train(was_training)
    return out


class Segmentation(NamedTuple):
    """A case's segmentation on its own grid.

    Attributes:
        mask: (S, H, W) bool, postprocessed.
        probability: (S, H, W) float32 foreground probability, when it was asked for.
        components: abnormality: every connected component of the thresholded prediction, kept
            or removed by postprocessing (largest first); brain: empty.
        binary: abnormality: the thresholded prediction before postprocessing (None for brain).
    """

    mask: np.ndarray
    probability: np.ndarray | None
    components: list[Component]
    binary: np.ndarray | None = None


def segment_prepared(
    model: nn.Module | OnnxModel,
    prepared: Prepared,
    task: str,
    threshold: float = 0.5,
    options: InferenceOptions = InferenceOptions(),
    with_probability: bool = False,
    convex_hull: bool = False,
    components: PostprocessConfig = PostprocessConfig(),
) -> Segmentation:
    """Mask (and optionally probability) on the case's own grid, postprocessed for the task.

    Abnormality masks keep the components that ``components`` selects; brain masks the largest
    component with holes filled (or the convex hull).
    """
    prob = predict_probabilities(model, prepared.inputs, options)
    return segmentation_from_probabilities(prob, prepared, task, threshold, with_probability, convex_hull, components)


def segmentation_from_probabilities(
    prob: np.ndarray,
    prepared: Prepared,
    task: str,
    threshold: float = 0.5,
    with_probability: bool = False,
    convex_hull: bool = False,
    components: PostprocessConfig = PostprocessConfig(),
) -> Segmentation:
    """Model-space probabilities -> the case's segmentation on its own grid (see :func:`segment_prepared`)."""
    binary = invert_mask(prob >= threshold, prepared.transform)
    if task == "brain":
        probability = invert_probability(prob, prepared.transform) if with_probability else None
        return Segmentation(postprocess(binary, task, convex_hull=convex_hull), probability, [])
    probability = invert_probability(prob, prepared.transform)
    mask, found = select_components(binary, probability, components.rule, components.value)
    return Segmentation(mask, probability if with_probability else None, found, binary)
