"""How each predicted case was made, and whether a rerun may reuse it.

``predict`` writes ``report/records/<case>_mask.json`` (``_brain`` for brain masks) with each case's mask: the
flairseg version, the model (name, sha256 of its weights and, for an ONNX export, of the graph that ran; task,
members used), every setting that changes the mask (threshold, postprocessing rule, precision, TTA, two-stage brain
model, resampling) and the input files, the labels a model reads as input included (a ``paper-abnormality``
model's ``_brain`` labels): their names, sizes, modification times and sha256 of their contents, so that a
file rewritten with the same size and time is not mistaken for the one predicted. A rerun skips a case only when
its record equals the one the current command would write (whether or not its mask is still there); any difference
stops the run with a one-line error naming it, and ``--overwrite`` predicts the case again. The record also names the
outputs it describes (mask, probability map, stripped image: each file's path in the output folder, ``../NAME.nii.gz``
for a mask file beside it, and its sha256): a case is reused only while they are the ones it would write now, each as
written (an output changed since stops the run, one missing has the case predicted again; a record of an older
flairseg names none and stops the run too). The record is written last (and a case predicted again loses its
old one before its outputs change), so a case without one (an interrupted run) is predicted again; outputs of a case
with neither a record nor the ``.started`` file written before them are not flairseg's, and only ``--overwrite``
replaces them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flairseg.cases import Case
from flairseg.config import parse_json
from flairseg.errors import InputError


RESAMPLED = " (resampled onto the FLAIR)"


def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 of a file's contents, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_files(case: Case) -> list[tuple[str, Path]]:
    """(role, path) of every file the case was read from: its sequences, slices, series or image (a folder's other
    files are none of the case's)."""
    source = case.geometry.source
    if case.sequences:
        return [(role, Path(name.removesuffix(RESAMPLED))) for role, name in case.sequences if name != "copy of FLAIR"]
    if source.is_dir():
        role = "slice" if case.geometry.format == "kaggle" else "series"
        return [(role, source / name) for name in sorted(set(case.geometry.slice_names))]
    return [("image", source)]


def input_files(case: Case, labels: Sequence[tuple[str, Path]] = ()) -> list[dict[str, Any]]:
    """Role, name, size, modification time and sha256 of every file the case was read from, and of ``labels`` (role,
    path: the label files read with it as the model's input)."""
    return [file_entry(role, p) for role, p in [*source_files(case), *labels] if p.is_file()]


def file_entry(role: str, path: Path) -> dict[str, Any]:
    """A file's role, name, size, modification time and sha256 (its contents read: a file rewritten with its size and
    time kept is told apart)."""
    status = path.stat()
    return {
        "role": role,
        "file": path.name,
        "bytes": status.st_size,
        "mtime_ns": status.st_mtime_ns,
        "sha256": sha256_of(path),
    }


def changed_file(recorded: Any, entries: list[dict[str, Any]]) -> str | None:
    """The first file whose recorded entry differs from its entry now (its size or contents; or, recorded without a
    sha256, its time), in words; None when they all match."""
    if not _inputs_differ(recorded, entries):
        return None
    return _changed_input(recorded if isinstance(recorded, list) else [], entries)


def record(settings: dict[str, Any], case: Case, labels: Sequence[tuple[str, Path]] = ()) -> dict[str, Any]:
    """The record of one case: the run's settings and the case's inputs, ``labels`` (role, path) the label files the
    prediction read (a changed brain label changes the mask as a changed image does)."""
    return {"case": case.case_id, **settings, "inputs": input_files(case, labels)}


def output_entries(folder: Path, outputs: Sequence[tuple[str, Path]]) -> list[dict[str, Any]]:
    """Role, path (relative to the output ``folder``, in which a case's record names its outputs) and sha256 of each
    of a case's ``outputs`` (role, path), as it wrote them."""
    return [{"role": role, "file": _relative(path, folder), "sha256": sha256_of(path)} for role, path in outputs]


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path, folder)).as_posix()


def recorded_outputs(path: Path) -> list[dict[str, Any]] | None:
    """The outputs (role, file, sha256) a record at ``path`` names; None where it names none (an older flairseg's,
    or a record unreadable or of another shape)."""
    outputs = read_record(path).get("outputs")
    fields = ("role", "file", "sha256")
    entries = outputs if isinstance(outputs, list) else []
    if not entries or not all(isinstance(e, dict) and all(isinstance(e.get(k), str) for k in fields) for e in entries):
        return None
    return entries


def recorded_slices(path: Path) -> set[str]:
    """The image slices (plain file names) a record at ``path`` lists as its case's inputs: the outputs an older
    flairseg's record, which names none (:func:`recorded_outputs`), was written for; none where it cannot be read."""
    inputs = read_record(path).get("inputs")
    entries = inputs if isinstance(inputs, list) else []
    names = {entry.get("file") for entry in entries if isinstance(entry, dict) and entry.get("role") == "slice"}
    return {name for name in names if isinstance(name, str) and name and Path(name).name == name}


def check_outputs(path: Path, outputs: Sequence[tuple[str, Path]], out: Path, case_id: str) -> bool:
    """Whether the outputs the record at ``path`` names, which must be the case's ``outputs`` (role, path) now, are all
    there as written (True: the case may be reused) or some are gone (False: predicted again; what is left is
    flairseg's, unchanged). A record naming none (an older flairseg's) or others, or an output changed since it was
    written (a hand correction, another tool's file), is a one-line InputError: neither reused nor silently replaced."""
    recorded = recorded_outputs(path)
    if recorded is None:
        raise InputError(
            f"case {case_id} in {out} has a record that names none of its outputs (an older flairseg's); pass "
            "--overwrite to predict it again"
        )
    now = [(role, _relative(file, out)) for role, file in outputs]
    named = [(entry["role"], entry["file"]) for entry in recorded]
    if named != now:
        differs = [f"its record names the {r} {f}" for r, f in named if (r, f) not in now][:1]
        differs += [f"this run writes the {r} {f}" for r, f in now if (r, f) not in named][:1]
        raise InputError(
            f"case {case_id} in {out} was recorded with other outputs ({', '.join(differs)}); pass --overwrite to "
            "predict it again, or write elsewhere"
        )
    return all([_unchanged(entry, out, case_id) for entry in recorded])  # each checked: a gone mask hides no change


def _unchanged(entry: dict[str, Any], out: Path, case_id: str) -> bool:
    """Whether a recorded output is there as written; False where it is gone, a one-line InputError where it changed."""
    path = out / entry["file"]
    if not (path.exists() or path.is_symlink()):
        return False
    if not path.is_file() or sha256_of(path) != entry["sha256"]:
        raise InputError(
            f"{os.path.normpath(path)} changed since case {case_id} was predicted into it; pass --overwrite to predict "
            "the case again (the change is then replaced), or move the file away"
        )
    return True


def check_reusable(path: Path, expected: dict[str, Any], out: Path) -> None:
    """Allow skipping a finished case only when its record at ``path`` matches ``expected``; else a one-line
    InputError.
    """
    found = _parsed_record(path)
    if found is None:
        raise InputError(
            f"case {expected['case']} in {out} has an unreadable record of how it was made ({path.name}); "
            "pass --overwrite to predict it again"
        )
    refuse_made_otherwise(found, {key: value for key, value in expected.items() if key != "inputs"}, out)
    if _inputs_differ(found.get("inputs"), expected["inputs"]):
        raise InputError(
            f"case {expected['case']} in {out} was made from other inputs "
            f"({changed_file(found.get('inputs'), expected['inputs'])}); pass --overwrite to predict it again, or "
            "write elsewhere"
        )


def refuse_made_otherwise(found: dict[str, Any], settings: dict[str, Any], out: Path) -> None:
    """Refuse to reuse the case whose record ``found`` (in the output folder ``out``) holds one of ``settings`` (its
    ``case`` among them) otherwise: the case was made with another model, TTA, precision, ..."""
    differs = differing_setting(found, settings)
    if differs is not None:
        key, before, now = differs
        raise InputError(
            f"case {settings['case']} in {out} was made with another {key} ({before} -> {now}); pass --overwrite to "
            "predict it again, or write elsewhere"
        )


def read_record(path: Path) -> dict[str, Any]:
    """The record at ``path``; empty where it cannot be read (a rerun of its case refuses it, in check_reusable)."""
    found = _parsed_record(path)
    return {} if found is None else found


def _parsed_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, the one reader of records; None where it cannot be read or is not a JSON object (no
    record: a rerun of its case refuses it, in check_reusable)."""
    try:
        found = parse_json(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def differing_setting(found: dict[str, Any], settings: dict[str, Any]) -> tuple[str, str, str] | None:
    """The first of a run's ``settings`` that a record ``found`` holds otherwise (the innermost: ``preprocess.std``),
    with the record's value and the run's in short words; None where they agree."""
    changed = [key for key in settings if found.get(key) != settings[key]]
    if not changed:
        return None
    key, before, now = _first_difference(changed[0], found.get(changed[0]), settings[changed[0]])
    return key, _short(before), _short(now)


def _first_difference(key: str, before: Any, now: Any) -> tuple[str, Any, Any]:
    """The innermost setting that differs between two recorded values (``preprocess.std``, not the whole
    ``preprocess`` record), with its two values."""
    if isinstance(before, dict) and isinstance(now, dict):
        for name in sorted(set(before) | set(now)):
            if before.get(name) != now.get(name):
                return _first_difference(f"{key}.{name}", before.get(name), now.get(name))
    return key, before, now


def _compared(old: dict[str, Any]) -> tuple[str, ...]:
    """What shows a recorded input unchanged: its size and contents (a record made before records held hashes:
    its size and modification time). A copy of the files with new times is the same input."""
    return ("role", "bytes", "sha256") if "sha256" in old else ("role", "bytes", "mtime_ns")


def _inputs_differ(recorded: Any, inputs: list[dict[str, Any]]) -> bool:
    if not isinstance(recorded, list) or len(recorded) != len(inputs):
        return True
    return any(
        not isinstance(old, dict) or old.get("file") != new["file"] or any(old.get(k) != new[k] for k in _compared(old))
        for old, new in zip(recorded, inputs)
    )


def _changed_input(recorded: list[Any], entries: list[dict[str, Any]]) -> str:
    """The first input file whose record differs, and what differs (its contents, size or time), in words."""
    before = {entry.get("file"): entry for entry in recorded if isinstance(entry, dict)}
    for entry in entries:
        old = before.get(entry["file"])
        if old is None:
            return f"{entry['file']} is new"
        differs = [name for name in _compared(old) if old.get(name) != entry[name]]
        if differs:
            return f"{entry['file']} changed: {', '.join(differs)}"
    gone = [name for name in before if name not in {entry["file"] for entry in entries}]
    return f"{gone[0]} was removed" if gone else "a file was removed"


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."
