"""``flairseg export --onnx``: a checkpoint as an ONNX model that ONNX Runtime can run without PyTorch's autograd.

The ONNX file holds the network (batch size free, the preprocessing's input size fixed) and,
in its metadata property ``flairseg``, the checkpoint's JSON (task, preprocessing, threshold,
architecture, sha256 of the source weights), so ``flairseg predict --model NAME.onnx``
preprocesses and postprocesses exactly as with the checkpoint; in ``flairseg_graph_sha256``, the
sha256 of the rest of the file (the graph with its weights), and in ``flairseg_metadata_sha256`` that of
the graph's sha256 with the metadata's text, so that a file whose graph or metadata changed after export
is refused. The exporter is PyTorch's TorchScript-based one (``dynamo=False``): one self-contained file,
seconds to write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from flairseg import checkpoint
from flairseg.errors import InputError
from flairseg.inference import (
    ONNX_BINDING_KEY,
    ONNX_GRAPH_KEY,
    ONNX_METADATA_KEY,
    onnx_graph_sha256,
    onnx_metadata_sha256,
)
from flairseg.outputs import atomic_file, check_output

if TYPE_CHECKING:
    import onnx

OPSET = 17


def export_onnx(
    model: str | os.PathLike, out: str | os.PathLike, task: str | None = None, overwrite: bool = False
) -> Path:
    """Export the checkpoint ``model`` (a path; resolve released names with :func:`flairseg.released_models.resolve`) to
    ``out``.
    """
    try:
        import onnx
    except ImportError:
        raise InputError("ONNX export needs the onnx package: pip install 'flairseg[onnx]'") from None
    out_path = Path(out)
    if out_path.suffix.lower() != ".onnx":
        raise InputError(f"the ONNX file must end in .onnx, not {out_path.name!r}")
    out_path = check_output(out_path, checkpoint.files_of(model), overwrite, writes="file", is_own_file=_is_exported)
    network, metadata = checkpoint.load_model(model, task=task)
    size = checkpoint.preprocess_config(metadata).size
    example = torch.zeros(1, checkpoint.model_config(metadata).in_channels, size, size)
    with atomic_file(out_path, overwrite, _is_exported) as tmp:
        torch.onnx.export(
            network,
            (example,),
            str(tmp),
            dynamo=False,
            opset_version=OPSET,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        )
        tmp.write_bytes(stamped(onnx.load(str(tmp)), metadata))
    return out_path


# the metadata property flairseg stamps as serialized (key field, its length, the key, then the value's field): ONNX
# writes the properties after the graph, so they lie in a file's last bytes
_STAMP = b"\n" + bytes([len(ONNX_METADATA_KEY)]) + ONNX_METADATA_KEY.encode() + b"\x12"
_STAMP_TAIL = 1 << 20  # bytes read from a file's end: the checkpoint's JSON and the two digests, with room to spare


def _is_exported(path: Path) -> bool:
    """Whether the file ``path`` is an ONNX model flairseg exported (it carries the checkpoint's JSON), from its last
    bytes alone: a large file of another tool is not read whole to be refused."""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - _STAMP_TAIL))
        return _STAMP in handle.read()


def stamped(model: onnx.ModelProto, metadata: dict[str, Any]) -> bytes:
    """``model`` serialized with three metadata properties: the checkpoint's JSON, the sha256 of everything else in
    the file (:func:`flairseg.inference.onnx_graph_sha256`) and the one binding the two
    (:func:`flairseg.inference.onnx_metadata_sha256`), which loading checks. Any earlier properties go.
    """
    import onnx

    text, digest = json.dumps(metadata), onnx_graph_sha256(model)
    properties = {ONNX_METADATA_KEY: text, ONNX_GRAPH_KEY: digest, ONNX_BINDING_KEY: onnx_metadata_sha256(digest, text)}
    onnx.helper.set_model_props(model, properties)
    return model.SerializeToString(deterministic=True)
