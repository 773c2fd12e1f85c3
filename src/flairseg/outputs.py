"""Safe outputs: refuse to overwrite inputs, write to a temporary name, rename into place.

Nothing flairseg writes is ever visible half-written under its final name, and an
existing output is replaced only when the caller says so (``--overwrite``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from flairseg.errors import InputError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike], overwrite: bool) -> Path:
    """Validate an output path before any work starts and return it resolved.

    Raises InputError when the output is, contains or lies inside an input, or when it
    exists and ``overwrite`` is False.
    """
    out_path = Path(out).resolve()
    for given in inputs:
        in_path = Path(given).resolve()
        if _overlaps(out_path, in_path):
            raise InputError(f"output {out} overlaps the input {given}; choose an output path outside the inputs")
    if out_path.exists() and not overwrite:
        raise InputError(f"output {out} already exists; pass --overwrite to replace it or choose another path")
    return out_path


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path``, else it is deleted."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
