"""Released models: a registry of checkpoints shipped inside the package, pinned by sha256.

``models/registry.json`` lists each released model (name, task, checkpoint file, sha256
of its tensors, input channels, measured metrics, whether it is the task's default).
Weights load offline from the package; the hashes of both halves (tensors and JSON, so its
threshold and pre- and postprocessing too) are checked against the registry before use, on
top of the checkpoint's own check.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from flairseg.checkpoint import check_metadata, description_sha256, files_of, paths_of
from flairseg.config import parse_json
from flairseg.provenance import sha256_of
from flairseg.errors import WeightsError

CITATION = (
    "Buda M, Saha A, Mazurowski MA. Association of genomic subtypes of lower-grade gliomas with shape features "
    "automatically extracted by a deep learning algorithm. Computers in Biology and Medicine 109 (2019) 218-225. "
    "doi:10.1016/j.compbiomed.2019.05.002"
)
WEIGHTS_LICENCE = (
    "The released weights were trained on the LGG Segmentation Dataset (TCIA, TCGA-LGG; masks by Buda et al.) "
    "and are shared under its licence, CC BY-NC-SA 4.0: non-commercial research use, with attribution, "
    "derivatives under the same licence. The flairseg code itself is MIT-licensed (LICENSE)."
)


@dataclass(frozen=True)
class ReleasedModel:
    """One entry of the registry."""

    name: str
    task: str
    checkpoint: str  # file name of the JSON half, inside flairseg/models/
    sha256: str  # of the .safetensors half
    default: bool
    description: str
    metrics: dict[str, Any]
    json_sha256: str = ""  # of the JSON half: its threshold, preprocessing and postprocessing are pinned too

    @property
    def path(self) -> Path:
        return models_folder() / self.checkpoint


def models_folder() -> Path:
    return Path(str(files("flairseg") / "models"))


def registry() -> list[ReleasedModel]:
    """The released models, as listed in ``models/registry.json`` (empty if none is released)."""
    path = models_folder() / "registry.json"
    if not path.is_file():
        return []
    try:
        entries = parse_json(path.read_text())
    except (OSError, ValueError) as exc:
        raise _damaged(path, f"not readable JSON: {exc}") from None
    entries = entries.get("models") if isinstance(entries, dict) else None
    if not isinstance(entries, list):
        raise _damaged(path, "no list of models")
    return [_entry(path, entry) for entry in entries]


def _entry(path: Path, entry: object) -> ReleasedModel:
    """One registry entry, checked: its fields and their types, the checkpoint a file name in the models folder."""
    fields = {field.name: field for field in dataclasses.fields(ReleasedModel)}
    if not isinstance(entry, dict) or not set(entry) <= set(fields):
        raise _damaged(path, f"an entry is not an object of {', '.join(fields)}")
    kinds = {"default": bool, "metrics": dict}
    for name, field in fields.items():
        value = entry.get(name, field.default)
        if value is dataclasses.MISSING or not isinstance(value, kinds.get(name, str)):
            raise _damaged(path, f"an entry's {name} is missing or not a {kinds.get(name, str).__name__}")
    if Path(entry["checkpoint"]).name != entry["checkpoint"]:
        raise _damaged(path, f"checkpoint {entry['checkpoint']!r} is not a file name in the models folder")
    return ReleasedModel(**entry)


def _damaged(path: Path, reason: str) -> WeightsError:
    return WeightsError(f"the registry of released models {path} is damaged ({reason}); reinstall flairseg")


def resolve(name_or_path: str | os.PathLike | None, task: str = "abnormality") -> Path:
    """Path of a checkpoint: a released model's name, the task's default (None), or a file path.

    Released weights are verified against the registry's sha256 before they are used.
    """
    if name_or_path is not None and _names_local_checkpoint(str(name_or_path)):
        _check_released_copy(Path(name_or_path))
        return Path(name_or_path)
    released = registry()
    if name_or_path is None:
        defaults = [m for m in released if m.task == task and m.default]
        if not defaults:
            raise WeightsError(f"no released {task} model ships with this flairseg; pass --model PATH to a checkpoint")
        entry = defaults[0]
    else:
        by_name = {m.name: m for m in released}
        if str(name_or_path) not in by_name:
            close = difflib.get_close_matches(str(name_or_path), list(by_name), n=1)
            hint = (
                f"; did you mean {close[0]!r}?" if close else (f"; released: {', '.join(by_name)}" if by_name else "")
            )
            raise WeightsError(f"{name_or_path} is neither a checkpoint file nor a released model{hint}")
        entry = by_name[str(name_or_path)]
    tensors, description = paths_of(entry.path)
    if not tensors.is_file():
        raise WeightsError(
            f"released model {entry.name} is missing its weights file {tensors.name}; reinstall flairseg"
        )
    if sha256_of(tensors) != entry.sha256:
        raise WeightsError(f"released model {entry.name} does not match its registered sha256; reinstall flairseg")
    if entry.json_sha256 and sha256_of(description) != entry.json_sha256:
        raise WeightsError(
            f"released model {entry.name}: {description.name} was changed after release (its sha256 differs); "
            "reinstall flairseg"
        )
    return entry.path


def _names_local_checkpoint(name: str) -> bool:
    """Whether ``name`` names checkpoint files to use as given rather than a released model: a path that exists, or
    NAME.json. A released model's name that also names files in the current folder (a fine-tuned copy or a download
    kept under the release's name) is refused: which of the two was meant cannot be told, and running the other would
    go unnoticed; ``./NAME.json`` names the local file. The release's own files, found from inside the package's
    models folder, are the release."""
    entry = next((m for m in registry() if m.name == name), None)
    if entry is None:
        return Path(name).exists() or paths_of(name)[1].exists()
    released = [path for path in paths_of(entry.path) if path.is_file()]
    others = [
        path
        for path in dict.fromkeys(files_of(name))
        if path.is_file() and not any(os.path.samefile(path, mine) for mine in released)
    ]
    if others:
        raise WeightsError(
            f"{name} names both the released model {name} and {', '.join(map(str, others))} in the current folder; "
            f"give ./{paths_of(name)[1]} for the local checkpoint, or rename it to use the released model"
        )
    return False


def _check_released_copy(path: Path) -> None:
    """Refuse a copy of a released model's weights beside a JSON whose settings are not the release's (an edited
    threshold or preprocessing): the released tensor files carry no record of their JSON, so the registry is the
    record. A renamed copy passes; a checkpoint of other weights is left to its own checks."""
    tensors, description = paths_of(path)
    if not tensors.is_file() or not description.is_file():
        return  # checkpoint.read names what is missing
    size = tensors.stat().st_size
    for entry in registry():
        released_tensors, released_json = paths_of(entry.path)
        same_size = released_tensors.is_file() and released_tensors.stat().st_size == size
        if not (same_size and sha256_of(tensors) == entry.sha256):
            continue
        try:
            copy = parse_json(description.read_text())
        except ValueError:
            return  # checkpoint.read names an unreadable JSON
        check_metadata(copy, str(description))  # an impossible value is named as such, as checkpoint.check_bound does
        released = parse_json(released_json.read_text())
        if description_sha256(copy) != description_sha256(released):
            raise WeightsError(
                f"{description} holds the weights of the released model {entry.name} with settings other than the "
                f"release's (an edited threshold or preprocessing); use --model {entry.name}, or restore the file"
            )


def check_release_name(metadata: dict[str, Any], what: str) -> None:
    """Refuse a model named as a released model whose weights are not that release's (a fine-tuned copy or a JSON
    renamed by hand): its reports and records, which name the model, would credit the release with masks it did not
    make."""
    name = metadata.get("name")
    entry = next((m for m in registry() if m.name == name), None)
    if entry is not None and metadata.get("sha256") != entry.sha256:
        raise WeightsError(
            f"{what} is named {name}, the name of a released model, but holds other weights; give it a name of its "
            'own (the "name" field of its JSON)'
        )
