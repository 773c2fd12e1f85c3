"""Which MRI sequence a NIfTI file holds, from the naming conventions of the field.

A multi-sequence case is found through its FLAIR file; the other sequences of the same
case are its siblings under the same convention. Recognised (file names, case-insensitive):

| convention | FLAIR | T1 (pre-contrast) | T1 post-contrast | T2 | labels (never images) |
|---|---|---|---|---|---|
| BraTS 2018-2021 | `<id>_flair` | `<id>_t1` | `<id>_t1ce` | `<id>_t2` | `<id>_seg` |
| BraTS 2023 | `<id>-t2f` | `<id>-t1n` | `<id>-t1c` | `<id>-t2w` | `<id>-seg` |
| BIDS | `sub-<s>[_ses-<x>]..._FLAIR` | `..._T1w` | `..._ce-<agent>..._T1w` | `..._T2w` | `_dseg`, `_probseg`, `_mask` |
| nnU-Net | `<id>_<XXXX>`, named in `dataset.json` | T1 / T1w / t1n | T1c / T1ce / T1gd / ce | T2 / T2w | `labelsTr` |

Any file ending `_seg`, `-seg`, `_dseg`, `_probseg`, `_mask`, `_brain`, `_label` or `_labels`
is a label. The model reads pre-contrast T1, FLAIR and post-contrast T1 (T2 is recognised, so
it is never taken for a FLAIR, but not used).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from flairseg.cases import NIFTI_SUFFIXES, nifti_stem
from flairseg.config import parse_json

SEQUENCES = ("flair", "t1", "t1c", "t2")
LABEL = "label"
LABEL_ENDINGS = ("_seg", "-seg", "_dseg", "_probseg", "_mask", "_brain", "_label", "_labels")
# the names a label volume goes by without a case id (a series' segmentation kept in its case folder)
BARE_LABEL_NAMES = ("seg", "segmentation", "mask", "label", "labels", "roi")

_BRATS = re.compile(r"^(?P<id>.+)_(?P<kind>flair|t1ce|t1|t2|seg)$", re.IGNORECASE)
_BRATS_2023 = re.compile(r"^(?P<id>.+)-(?P<kind>t2f|t1n|t1c|t2w|seg)$", re.IGNORECASE)
_BIDS = re.compile(r"^(?P<entities>sub-[A-Za-z0-9]+(?:_[A-Za-z]+-[A-Za-z0-9]+)*)_(?P<suffix>[A-Za-z0-9]+)$")
_NNUNET = re.compile(r"^(?P<id>.+)_(?P<channel>\d{4})$")
_BRATS_KINDS = {
    "flair": "flair",
    "t1": "t1",
    "t1ce": "t1c",
    "t2": "t2",
    "seg": LABEL,
    "t2f": "flair",
    "t1n": "t1",
    "t1c": "t1c",
    "t2w": "t2",
}
_BIDS_KINDS = {"FLAIR": "flair", "T1w": "t1", "T2w": "t2", "dseg": LABEL, "probseg": LABEL, "mask": LABEL}


@dataclass(frozen=True)
class Named:
    """What a file's name says: the case it belongs to, the sequence (or label) and the convention."""

    case_id: str
    kind: str  # one of SEQUENCES, or LABEL
    convention: str  # "brats", "brats2023", "bids" or "nnunet"
    key: str  # what siblings of the same case share (the id; BIDS: subject and session)


def is_label_name(path: Path) -> bool:
    """Whether a file's name marks it as a label volume (segmentation, mask), never an image."""
    stem = nifti_stem(path).lower()
    return stem in BARE_LABEL_NAMES or stem.endswith(LABEL_ENDINGS)


def _channel_kind(name: str) -> str | None:
    lowered = name.lower().replace("-", "").replace("_", "")
    if "flair" in lowered or lowered == "t2f":
        return "flair"
    if lowered.startswith("t1") and any(word in lowered for word in ("pre", "non", "native")):
        return "t1"
    if (
        lowered in ("t1c", "t1ce", "t1gd", "ce", "t1post", "t1contrast")
        or "gd" in lowered
        or "contrast" in lowered
        or "post" in lowered
    ):
        return "t1c"
    if lowered in ("t1", "t1w", "t1n"):
        return "t1"
    if lowered in ("t2", "t2w"):
        return "t2"
    return None


def _nnunet_channels(folder: Path) -> dict[int, str]:
    """Channel index -> sequence, from the ``dataset.json`` of an nnU-Net dataset at or above ``folder``."""
    for candidate in (folder, *list(folder.parents)[:2]):
        path = candidate / "dataset.json"
        if path.is_file():
            try:
                record = parse_json(path.read_text())
            except (OSError, ValueError):
                return {}
            names = record.get("channel_names") or record.get("modality") or {} if isinstance(record, dict) else {}
            if not isinstance(names, dict):
                return {}
            kinds = {int(k): _channel_kind(str(v)) for k, v in names.items() if str(k).isdigit()}
            return {k: v for k, v in kinds.items() if v is not None}
    return {}


def name_of(path: Path) -> Named | None:
    """What the file's name says under the conventions above, or None when it follows none of them."""
    stem = nifti_stem(path)
    match = _BIDS.match(stem)
    if match:
        entities = dict(part.split("-", 1) for part in match["entities"].split("_"))
        kind = _BIDS_KINDS.get(match["suffix"])
        if kind is None:
            return None
        if kind == "t1" and "ce" in entities:
            kind = "t1c"
        session = f"_ses-{entities['ses']}" if "ses" in entities else ""
        key = f"sub-{entities['sub']}{session}"
        case_id = "_".join(f"{k}-{v}" for k, v in entities.items() if k != "ce")
        return Named(case_id, kind, "bids", key)
    for pattern, convention in ((_BRATS, "brats"), (_BRATS_2023, "brats2023")):
        match = pattern.match(stem)
        if match:
            return Named(match["id"], _BRATS_KINDS[match["kind"].lower()], convention, match["id"])
    match = _NNUNET.match(stem)
    if match:
        kind = _nnunet_channels(path.parent).get(int(match["channel"]))
        if kind is not None:
            return Named(match["id"], kind, "nnunet", match["id"])
    return None


def is_label_file(path: Path) -> bool:
    """Whether a NIfTI file is a label volume by its name: a convention's label file, or, where no convention names it,
    a label ending (:func:`is_label_name`)."""
    named = name_of(path)
    return named.kind == LABEL if named is not None else is_label_name(path)


def siblings(flair: Path) -> dict[str, list[Path]]:
    """The files of the FLAIR's case by sequence or label (FLAIR itself included): same folder and convention, and
    an nnU-Net case's label in the dataset's ``labels*`` folder."""
    named = name_of(flair)
    if named is None or named.kind != "flair":
        return {"flair": [flair]}
    found: dict[str, list[Path]] = {}
    for path in sorted(flair.parent.iterdir()):
        other = name_of(path) if path.is_file() and path.name.lower().endswith(NIFTI_SUFFIXES) else None
        if other is not None and other.convention == named.convention and other.key == named.key:
            found.setdefault(other.kind, []).append(path)
    found["flair"] = [flair]
    if labels := nnunet_labels(flair):
        found.setdefault(LABEL, []).extend(labels)
    return found


def nnunet_labels(image: Path) -> list[Path]:
    """The label of the nnU-Net case whose image is ``image``: ``labelsTr/<id>.nii.gz`` for the images in
    ``imagesTr`` (``labelsTs`` for ``imagesTs``); none for another file. Its name follows no convention of its own,
    so only its folder tells that it is the case's, and it lies outside the folder of the case's images. The image's
    name and folder alone make it an nnU-Net case here, with or without the dataset's ``dataset.json``: a label is
    protected even in a split handed over without it."""
    match = _NNUNET.match(nifti_stem(image))
    folder = image.parent
    if match is None or not folder.name.startswith("images"):
        return []
    case_id = match["id"]
    labels = folder.with_name("labels" + folder.name.removeprefix("images"))
    return [labels / f"{case_id}{ext}" for ext in NIFTI_SUFFIXES if (labels / f"{case_id}{ext}").is_file()]
