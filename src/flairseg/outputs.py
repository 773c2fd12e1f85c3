"""Safe outputs: refuse to overwrite inputs, write to a temporary name, rename into place.

Nothing flairseg writes is ever visible half-written under its final name, and an
existing output is replaced only when the caller says so (``--overwrite``). Even then an
output is never an input, never holds one, and is never an empty path, the current or home
directory or a filesystem root; a folder is replaced only when flairseg made it (its
``.flairseg`` marker).

Temporary names carry this machine's tag and the writing process's id (:func:`_temporary_affixes`), so a
later run removes those that a killed process (SIGKILL, a power cut) left behind (:func:`_remove_stale`),
and they stay within the file system's name limit however long the output's name.

A folder that one process at a time may work on (a training run) is held with :func:`held_folder`, a case of a
prediction run with :func:`held_case`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
import shutil
import socket
import stat
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flairseg.cases import Case
from flairseg.config import TASK_SPECS, parse_json
from flairseg.errors import InputError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _links_inside(folder: Path) -> list[tuple[Path, str]]:
    """Every symbolic link inside the input folder ``folder`` and, at every level, inside the folders those links
    lead to (hidden folders such as ``.git`` skipped), as (link, its name): the files and folders they lead to are
    read too (a selection of linked case folders, each a folder of links into a data store), wherever they lie. Each
    folder is walked once, by resolved path, so that links that lead back up end (a link to a folder above one
    walked skips it); a link that leads nowhere (a loop) leads to no input."""
    found: list[tuple[Path, str]] = []
    walked: set[Path] = set()
    pending = [folder]
    for top in pending:  # grows as links to folders are found: breadth first, so that a file is named nearest the input
        try:
            resolved = top.resolve()
        except (RuntimeError, OSError):  # a loop: Python 3.11 and 3.12 raise RuntimeError, later ones OSError
            continue
        if not top.is_dir() or any(path in walked for path in (resolved, *resolved.parents)):
            continue
        walked.add(resolved)
        for link, target in _links_in_walk(top, walked):
            found.append((link, f"{link} (a link to {target})"))
            pending.append(link)
    return found


def _links_in_walk(folder: Path, walked: set[Path]) -> Iterator[tuple[Path, Path]]:
    """The symbolic links in ``folder`` and its subfolders (not followed into; hidden folders and those in
    ``walked``, by resolved path, skipped), each with where it leads; a loop is left out."""
    for root, folders, files in os.walk(folder):
        folders[:] = [
            name for name in folders if not name.startswith(".") and (Path(root) / name).resolve() not in walked
        ]
        for name in sorted((*folders, *files)):
            path = Path(root) / name
            if path.is_symlink():
                try:
                    target = path.resolve()
                except (RuntimeError, OSError):  # a loop: Python 3.11 and 3.12 raise RuntimeError, later ones OSError
                    continue
                yield path, target


class InputPaths:
    """The paths a run reads (files and folders, links followed), against which every output is checked: an output
    may be none of them, lie in none and hold none. Built once, so that each of a large tree's outputs is checked in
    the time of its own depth, not the number of inputs.
    """

    def __init__(self, inputs: Iterable[str | os.PathLike | None]) -> None:
        self._inputs: dict[Path, str] = {}  # resolved -> as given, for messages
        self._holders: dict[Path, str] = {}  # every folder above an input -> the first input it holds
        for given in inputs:
            if given is not None:
                for path, named in ((Path(given), str(given)), *_links_inside(Path(given))):
                    resolved = path.resolve()  # a link in the tree resolved above; the given path as check_output does
                    self._inputs.setdefault(resolved, named)
                    for folder in resolved.parents:
                        self._holders.setdefault(folder, named)

    def overlapped(self, out: Path) -> str | None:
        """The input (as given) that the resolved path ``out`` is, lies in or holds; None when there is none."""
        for path in (out, *out.parents):
            if path in self._inputs:
                return self._inputs[path]
        return self._holders.get(out)

    def refuse(self, output: Path, what: str) -> None:
        """Refuse ``output`` (``what`` it is) when, links followed, it is, holds or lies in an input: a link inside an
        output folder that passed :func:`check_output` may still lead one of its outputs into the inputs.
        """
        resolved = output.resolve()
        given = self.overlapped(resolved)
        if given is not None:
            raise InputError(
                f"{what} {output} overlaps the input {given} (through a link: it is {resolved}); remove the link, or "
                "choose an output folder outside the inputs"
            )

    def refuse_folder(self, folder: Path, what: str) -> None:
        """:meth:`refuse` the output folder ``folder`` and everything already in it, which a run writes into or
        appends to (a training run's ``log.csv``); a link among them refused wherever it leads: flairseg makes none,
        and writing through one (a run copied with ``cp -rs``) would change a file outside the folder; so is a pipe,
        which reading would wait on for ever."""
        for path in (folder, *(folder.iterdir() if folder.is_dir() else ())):
            self.refuse(path, what)
            if path != folder and not is_working_file(path.name):  # another process's temporary may go meanwhile
                _refuse_link_or_pipe(path)


def refuse_links_below(path: Path, top: Path) -> None:
    """Refuse an output ``path`` below the output folder ``top`` (itself may be a link: the user's choice) that is a
    link, or lies in a folder below ``top`` that is one: flairseg makes none, and writing through one would write
    outside the output (a user's folder of hand-drawn masks linked as a case's)."""
    for part in (path, *path.parents):
        if part == top or not part.is_relative_to(top):
            return
        if part.is_symlink():
            raise InputError(_link_message(part))


def _link_message(path: Path) -> str:
    return (
        f"{path} is a link (to {os.readlink(path)}), which flairseg never makes in a folder it writes into: writing "
        "there would change the file it leads to; replace it with a copy of that file"
    )


def _refuse_link_or_pipe(path: Path) -> None:
    """Refuse a link (wherever it leads) or a pipe or device in a folder a run writes into: writing through the link
    would change the file it leads to, and reading the pipe would wait for ever; an entry gone meanwhile is none."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise InputError(_link_message(path))
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InputError(f"{path} is neither a file nor a folder (a pipe or a device): move it away")


MARKER = ".flairseg"  # the file that marks a folder flairseg made (and may replace with --overwrite)
# what a marked folder is, which its marker names: a command's --overwrite replaces only a folder of its own kind
FolderKind = Literal[
    "training run",
    "cross-validation",
    "cross-validation report",
    "prediction report",
    "evaluation report",
    "preprocessed cases",
    "association report",
    "demo",
]
_MADE_BY: dict[str, str] = {  # the command that makes each kind of folder
    "training run": "train",
    "cross-validation": "cv",
    "cross-validation report": "cv",
    "prediction report": "predict",
    "evaluation report": "evaluate",
    "preprocessed cases": "preprocess",
    "association report": "associate",
    "demo": "demo",
}
_KIND = re.compile(r"made by flairseg \((?P<kind>[a-z -]+)\)")


def made_by_flairseg(folder: Path) -> bool:
    """Whether ``folder`` is an output of flairseg: its marker (any folder may hold other files of the same names)."""
    return (folder / MARKER).is_file()


def write_marker(folder: Path, kind: FolderKind) -> None:
    """Leave the :data:`MARKER` file in ``folder``, naming its ``kind``, so that a later ``--overwrite`` of a command
    that makes that kind may replace it."""
    (folder / MARKER).write_text(f"made by flairseg ({kind}); `--overwrite` may replace this folder\n")


def marker_kind(folder: Path) -> str | None:
    """The kind of folder its marker names; None for a folder without one, or one an older flairseg marked (any)."""
    try:
        found = _KIND.search((folder / MARKER).read_text(errors="replace"))
    except OSError:
        return None
    return found["kind"] if found else None


def refuse_marked_above(out: Path, writer: str, within: FolderKind | None = None, itself: bool = False) -> None:
    """Refuse an output that lies in a folder flairseg made as a kind of folder (a training run, a cross-validation,
    preprocessed cases, a report: its marker names the kind) other than ``within`` (a cross-validation's folds lie in
    it): the nearest marker above ``out`` (or at it, ``itself``, where the command writes into the folder, as
    ``predict`` does) says. The folder it lies in would be replaced whole, or read as that kind's, with it in.
    ``writer`` names the command."""
    for folder in (out, *out.parents) if itself else out.parents:
        kind = marker_kind(folder)
        if kind is not None and kind != within:
            where = "holds" if folder == out else f"lies in {folder},"
            raise InputError(
                f"output {out} {where} flairseg's {kind}, which {writer} never writes into: choose another path"
            )
        if made_by_flairseg(folder):  # the nearest marker decides (an older flairseg's names no kind: any)
            return


def made_as(folder: Path, kind: FolderKind) -> bool:
    """Whether flairseg made ``folder`` as a folder of ``kind`` (an older flairseg's marker names none: any kind)."""
    return made_by_flairseg(folder) and marker_kind(folder) in (None, kind)


def is_training_run(folder: Path) -> bool:
    """Whether ``folder`` is a training run of flairseg: its marker, or (:func:`_unmarked_run`) made before runs
    were marked."""
    return made_by_flairseg(folder) or _unmarked_run(folder)


def _unmarked_run(folder: Path) -> bool:
    """Whether ``folder`` looks like a training run of a flairseg that did not mark its runs: config.json and
    split.json, which a run folder appears with."""
    return (folder / "config.json").is_file() and (folder / "split.json").is_file()


def mark_folder(path: Path, kind: FolderKind) -> None:
    """Make the folder ``path`` where it is missing and leave the marker of ``kind`` in it: one that flairseg writes
    into."""
    path.mkdir(parents=True, exist_ok=True)
    if not made_by_flairseg(path):
        write_marker(path, kind)


def _foreign_folder_reason(out: str | os.PathLike, folder: Path) -> str:
    """Why the existing folder ``out`` is not replaced, and what to do; an unmarked training run (made by a
    flairseg before runs were marked) is named as such.
    """
    if _unmarked_run(folder):
        return (
            f"output {out} looks like a training run of an older flairseg (no {MARKER} marker), which flairseg does "
            "not replace on that evidence alone: delete it yourself if you no longer need it, or choose another path"
        )
    return (
        f"output {out} is a folder flairseg did not make (no {MARKER} marker); "
        "flairseg replaces only its own outputs: move it away or choose another path"
    )


def check_output(
    out: str | os.PathLike,
    inputs: InputPaths | Iterable[str | os.PathLike | None],
    overwrite: bool,
    replaces: bool = True,
    writes: Literal["folder", "file"] = "folder",
    kind: FolderKind | None = None,
    is_own_file: Callable[[Path], bool] | None = None,
    within: FolderKind | None = None,
) -> Path:
    """Validate an output path before any work starts and return it resolved.

    Raises InputError when the output is empty, is, contains or lies inside an input, is not what the command
    ``writes`` (a file where it writes a folder, or the reverse), or when it exists and ``overwrite`` is False. An
    output that ``replaces`` what is there (every command but ``predict``, which adds to its folder) must also not be
    or hold the current or home directory, nor be a filesystem root, and an existing folder must be one flairseg made
    (:func:`made_by_flairseg`) as a folder of the command's ``kind`` (a training run is no evaluation report), and an
    existing file one the command wrote (``is_own_file`` says so; an empty file holds nothing to lose). A folder
    output of a ``kind`` may not lie in a folder flairseg marked, but one of ``within``'s kind
    (:func:`refuse_marked_above`).
    """
    if not str(out).strip():
        raise InputError("the output path is empty (an unset shell variable?); give the folder or file to write")
    out_path = Path(out).resolve()
    given = (inputs if isinstance(inputs, InputPaths) else InputPaths(inputs)).overlapped(out_path)
    if given is not None:
        raise InputError(f"output {out} overlaps the input {given}; choose an output path outside the inputs")
    if replaces:
        _refuse_special_folder(out, out_path)
    _refuse_other_kind(out, out_path, writes)
    if writes == "folder" and kind is not None:
        refuse_marked_above(out_path, _MADE_BY[kind], within)
    if out_path.exists() and not overwrite:
        raise InputError(f"output {out} already exists; pass --overwrite to replace it or choose another path")
    if replaces and out_path.is_dir() and not made_by_flairseg(out_path):
        raise InputError(_foreign_folder_reason(out, out_path))
    if replaces:
        _refuse_foreign_file(out, out_path, is_own_file)
    if replaces and out_path.is_dir() and kind is not None and not made_as(out_path, kind):
        raise InputError(
            f"output {out} holds flairseg's {marker_kind(out_path)}; this command writes its {kind} only over a "
            "folder of that kind: choose another path"
        )
    return out_path


def _refuse_foreign_file(out: str | os.PathLike, out_path: Path, is_own_file: Callable[[Path], bool] | None) -> None:
    """Refuse an existing file at the output that the command did not write (``is_own_file`` says which it did; an empty
    file holds nothing to lose)."""
    if out_path.is_file() and out_path.stat().st_size and not (is_own_file and is_own_file(out_path)):
        raise InputError(
            f"output {out} is a file this command did not write; --overwrite replaces only a file it wrote: choose "
            "another path"
        )


def _refuse_other_kind(out: str | os.PathLike, out_path: Path, writes: Literal["folder", "file"]) -> None:
    """Refuse an existing output that is not what the command writes: found only when the result is renamed into
    place, after all the work (a folder is never renamed over a file, nor a file over a folder); nor a pipe or a
    device, which a rename would replace."""
    there = "file" if writes == "folder" else "folder"
    if out_path.exists() and not (out_path.is_file() or out_path.is_dir()):
        raise InputError(f"output {out} is neither a file nor a folder (a pipe or a device): give a new path")
    if out_path.exists() and out_path.is_dir() == (writes == "file"):
        raise InputError(f"output {out} is a {there}; this command writes a {writes}: give a new path")


def _refuse_special_folder(out: str | os.PathLike, out_path: Path) -> None:
    """Refuse an output that is or holds the current directory or the home directory, or is a filesystem root:
    replacing it would delete where the user works (``-o ..`` from a folder inside an earlier output)."""
    try:
        current = Path.cwd().resolve()
    except OSError:  # the current directory was deleted: there is nothing of it to keep
        current = None
    try:
        home = Path.home().resolve()
    except (RuntimeError, KeyError):  # no HOME and no account entry (a container run under an arbitrary uid)
        home = None
    for folder, name in ((current, "the current directory"), (home, "your home directory")):
        if folder is not None and (folder == out_path or out_path in folder.parents):
            held = "is" if folder == out_path else "holds"
            raise InputError(f"output {out} {held} {name}, which flairseg never replaces; give a new folder")
    if out_path == Path(out_path.anchor):
        raise InputError(f"output {out} is a filesystem root, which flairseg never replaces; give a new folder")


_LOCK_SUFFIX = ".lock"  # of the file ``.<name>.lock`` that holds the folder ``<name>`` (:func:`held_folder`)


@contextlib.contextmanager
def held_folder(folder: Path, work: str) -> Iterator[None]:
    """Hold ``folder`` for this process while the block runs: one process at a time does its ``work`` ("trained",
    "evaluated") there.

    The lock is an exclusive ``flock`` on ``.<name>.lock`` beside the folder (so that it outlives a replacement of
    the folder itself); a second process is refused with an InputError naming the holder.
    """
    where = folder.resolve()  # one lock, whichever path (a link, a relative one) names the folder

    def refusal(holder: str) -> InputError:
        return InputError(
            f"{folder} is being {work} by another process (pid {holder}); wait for it to end, or use another folder"
        )

    with _held(where.parent / f".{where.name}{_LOCK_SUFFIX}", refusal):
        yield


@contextlib.contextmanager
def held_case(report: ReportFolder, key: str) -> Iterator[None]:
    """Hold the case ``key`` of the prediction run whose report is ``report`` while the block checks and writes its
    outputs and record, waiting first for any other process that holds it: a case's outputs and record are then one
    run's, while runs into one folder (``--part`` jobs, torchrun ranks, a run beside another) share its other cases.

    Marks the report folder (made where missing) as flairseg's (:meth:`ReportFolder.is_flairsegs`).
    """
    mark_folder(report.path, "prediction report")
    with _held(report.lock(key), None):
        yield


@contextlib.contextmanager
def _held(path: Path, refusal: Callable[[str], InputError] | None) -> Iterator[None]:
    """An exclusive ``flock`` on the file ``path`` (holding the holder's process id) while the block runs; another
    holder (a second hold by this process too) is waited for, or, with ``refusal``, is the error it makes of the
    holder's pid.

    The operating system releases the lock when the process ends, however it ends; the file goes with its holder,
    and so do the folders above it that were made for it and are still empty (a refused command leaves none).
    """
    with _parents_made(path):
        handle = _locked(path, refusal)
        if not _is_lock_file(handle):
            os.close(handle)
            raise InputError(
                f"{path} lies where flairseg keeps a lock and is no lock of its (a file of yours?); move it away"
            )
        try:
            os.ftruncate(handle, 0)
            os.write(handle, f"{os.getpid()}\n".encode())
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):  # while still held: a process that opened it finds it gone
                os.unlink(path)
            os.close(handle)


@contextlib.contextmanager
def _parents_made(path: Path) -> Iterator[None]:
    """Make the missing folders above ``path`` for the block; afterwards remove those of them left empty, deepest
    first (an output refused, or whose temporary was deleted, leaves no trace), never one that holds anything."""
    missing = list(_absent_parents(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield
    finally:
        for folder in missing:
            try:
                folder.rmdir()
            except OSError:  # holds the output, or another process's files: kept, and so are the folders above
                break


def _absent_parents(path: Path) -> Iterator[Path]:
    """The folders above ``path`` that do not exist, nearest first."""
    for folder in path.parents:
        if folder.exists():
            return
        yield folder


def _locked(path: Path, refusal: Callable[[str], InputError] | None) -> int:
    """An open descriptor of the lock file ``path``, exclusively locked; the file may be removed by its last holder
    between opening and locking, in which case the one now at ``path`` is locked instead."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)  # again each time: a refused run may remove a folder it made
        try:  # never through a link: the lock file is truncated, and a link could lead to an input
            handle = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise InputError(f"the lock file {path} is a symbolic link; remove it, then run again") from None
        status = os.fstat(handle)
        if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:  # a hard link: another file's contents
            os.close(handle)
            raise InputError(f"the lock file {path} is not a file of its own (a hard link?); remove it, then run again")
        try:
            _lock(handle, refusal)
        except BaseException:  # refused, or a signal (SIGTERM) while waiting
            os.close(handle)
            raise
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(handle).st_ino:
                return handle
        os.close(handle)


def _is_lock_file(handle: int) -> bool:
    """Whether the open file ``handle`` is a lock as flairseg leaves one: empty, or a process id (a user's file of the
    lock's name, an input too, would be truncated and removed)."""
    return os.fstat(handle).st_size <= 32 and re.fullmatch(rb"\d*\n?", os.pread(handle, 32, 0)) is not None


def _lock(handle: int, refusal: Callable[[str], InputError] | None) -> None:
    """Lock the open file ``handle`` exclusively: wait for its holder, or, with ``refusal``, raise what it makes of the
    holder's process id (written in the file)."""
    import fcntl  # POSIX: imported here so that the package imports where it is missing

    if refusal is None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as exc:  # a file system without locks (Lustre without flock, NFS without lockd): unheld
            if exc.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise refusal(os.read(handle, 32).decode(errors="replace").strip() or "unknown") from None


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike, replace: bool = True, is_own_file: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it. Not ``replace`` (a
    command without ``--overwrite``): a file that appeared at ``path`` meanwhile stays and this one is refused. With
    ``is_own_file`` (:func:`check_output`'s), a file at ``path`` is replaced only while it is one the command wrote."""
    final = Path(path)
    with _parents_made(final):
        prefix, suffix = _temporary_affixes(final, "part")
        with _naming_the_output(final):
            fd, tmp_name = tempfile.mkstemp(suffix=suffix, prefix=prefix, dir=final.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            with _write_errors_named(final, tmp):
                yield tmp
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
            if replace and is_own_file is not None:  # again: another file may have taken its place meanwhile
                _refuse_foreign_file(final, final, is_own_file)
            with _naming_the_output(final):
                os.replace(tmp, final) if replace else _link_in(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike, mark: FolderKind | None = None, replace: bool = True, join: bool = False
) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path``, else it is deleted.

    ``mark``: leave the :data:`MARKER` file naming that kind of folder in it, so that a later ``--overwrite`` of the
    same kind may replace it; a folder at ``path`` is then replaced only while it is one (one that took its place
    while the block ran, a user's, is kept and the command refused). Not ``replace`` (a command without
    ``--overwrite``): a folder that appeared at ``path`` while the block ran (another run's) stays, and this one is
    refused in one line, or with ``join`` gets the temporary folder's files one by one.
    """
    final = Path(path)
    with _parents_made(final):
        prefix, suffix = _temporary_affixes(final, "part")
        with _naming_the_output(final):
            tmp = Path(tempfile.mkdtemp(suffix=suffix, prefix=prefix, dir=final.parent))
        try:
            if mark is not None:
                write_marker(tmp, mark)
            with _write_errors_named(final, tmp):
                yield tmp
            os.chmod(tmp, 0o777 & ~_umask())
            if replace and mark is not None and final.is_dir() and not made_as(final, mark):
                raise _appeared(final)  # what took the output's place while the command worked is not its to replace
            with _naming_the_output(final):
                _swap_in(tmp, final) if replace else _move_in(tmp, final, join)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)


def _move_in(tmp: Path, final: Path, join: bool = False) -> None:
    """Put the folder ``tmp`` at ``final`` unless a folder with contents is there (the system refuses to rename onto
    one): it appeared after the command checked its output, and it is not this command's to replace; with ``join``,
    ``tmp``'s files are renamed into it one by one (another run's case folder, holding the other task's masks)."""
    try:
        os.rename(tmp, final)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):  # ENOTDIR: a file appeared there
            raise
        if not (join and final.is_dir() and not final.is_symlink()):
            raise _appeared(final) from None
        for entry in sorted(tmp.iterdir()):
            os.replace(entry, final / entry.name)


def _link_in(tmp: Path, final: Path) -> None:
    """Give the file ``tmp`` the name ``final`` unless something has it (a hard link is never made over a name; on a
    file system without hard links, a look before the rename)."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise _appeared(final) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS):
            raise
        if final.exists() or final.is_symlink():
            raise _appeared(final) from None
        os.replace(tmp, final)


def _appeared(final: Path) -> InputError:
    return InputError(
        f"output {final} appeared while this command worked (another run into the same place?); pass --overwrite to "
        "replace it or choose another path"
    )


def _swap_in(tmp: Path, final: Path) -> None:
    """Put the folder ``tmp`` at ``final``, moving any folder there aside under a name of this process's own.

    Several processes may finish the same folder at once (``--overwrite`` runs into one output): each
    retries until its folder is in place; the last one wins, none fails.
    """
    prefix, suffix = _temporary_affixes(final, "old")
    aside = Path(tempfile.mkdtemp(suffix=suffix, prefix=prefix, dir=final.parent))
    try:
        for _ in range(100):
            shutil.rmtree(aside)
            aside.mkdir()
            with contextlib.suppress(FileNotFoundError):
                os.replace(final, aside)  # onto an empty folder: allowed
            try:
                os.replace(tmp, final)
                return
            except OSError as exc:  # another process put its folder at ``final`` in between
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        raise OSError(errno.EBUSY, "other processes keep replacing this folder", str(final))
    finally:
        shutil.rmtree(aside, ignore_errors=True)


NAME_MAX = 255  # bytes in one file name on most file systems, where the system does not say
_RANDOM = 8  # the characters tempfile puts between a temporary name's prefix and suffix
# a name of _temporary_affixes: .<name>.<tempfile's random part>.<host>.<pid>.<kind>
_TEMPORARY = re.compile(r"\..*\.[a-z0-9_]{8}\.(?P<host>[0-9a-f]{6})\.(?P<pid>[0-9]+)\.(?:part|old)", re.DOTALL)


@functools.cache
def _host_tag() -> str:
    """Six hex digits naming this machine: a process id proves nothing about another machine's processes."""
    return hashlib.blake2s(socket.gethostname().encode(), digest_size=3).hexdigest()


def _temporary_affixes(final: Path, kind: str) -> tuple[str, str]:
    """(prefix, suffix) of a temporary name beside ``final``: ``.<name>.<random>.<host>.<pid>.<kind>``, the name cut
    so that the whole stays within the file system's name limit; :func:`_remove_stale` removes those of dead
    processes first.
    """
    _remove_stale(final.parent.resolve())
    suffix = f".{_host_tag()}.{os.getpid()}.{kind}"
    limit = _name_limit(final.parent)
    name = os.fsencode(final.name)
    if len(name) > limit:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(final))
    room = limit - len(suffix) - _RANDOM - 2  # the prefix's two dots
    return f".{os.fsdecode(name[:room])}.", suffix


def _name_limit(folder: Path) -> int:
    """The bytes a file name in ``folder`` may take, as its file system says (asked of the nearest folder there is,
    ``folder`` being one an output will make), else :data:`NAME_MAX`."""
    existing = next((path for path in (folder, *folder.parents) if path.is_dir()), None)
    try:
        return os.pathconf(existing, "PC_NAME_MAX") if existing is not None else NAME_MAX
    except (OSError, ValueError):
        return NAME_MAX


@contextlib.contextmanager
def _naming_the_output(final: Path) -> Iterator[None]:
    """An operating-system error in making a temporary name or renaming it into place names ``final``, the path the
    user gave, not the temporary one.
    """
    try:
        yield
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(final)) from None


_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # a write's failures that a file object names no path for
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


@contextlib.contextmanager
def _write_errors_named(final: Path, tmp: Path) -> Iterator[None]:
    """A write into the temporary ``tmp`` that failed, named as the output ``final`` (``tmp`` is gone once the command
    ends): one that stopped short, as numpy's ``tofile`` reports it (tifffile writes through it), named as what it
    is, the device holding ``final`` full (or the user's quota on it reached): numpy's ``OSError`` carries neither an
    errno nor a path; a full disk or quota as a file object's write or close reports it, without a path; one naming a
    file in ``tmp``."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None and _SHORT_WRITE.fullmatch(str(exc)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(final)) from None
        named = str(exc.filename) if exc.filename else ""
        unnamed_write = not named and exc.errno in _WRITE_ERRORS  # a read of an input names its path
        if unnamed_write or (named and (Path(named) == tmp or Path(named).is_relative_to(tmp))):
            inside = Path(named).relative_to(tmp) if named and Path(named) != tmp else None
            raise OSError(exc.errno, exc.strerror, str(final / inside if inside else final)) from None
        raise


@functools.cache
def _remove_stale(folder: Path) -> None:
    """Remove the temporaries in ``folder`` of this machine's processes that no longer run (killed outright), once
    per folder and process: a process's own and a running process's temporaries are in use.
    """
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            found = _TEMPORARY.fullmatch(entry.name)
            if found is not None and found["host"] == _host_tag() and _abandoned(entry, int(found["pid"])):
                with contextlib.suppress(OSError):
                    shutil.rmtree(entry.path) if entry.is_dir(follow_symlinks=False) else os.unlink(entry.path)


STALE_AFTER = 3600.0  # seconds untouched before a dead process's temporary is removed


def _abandoned(entry: os.DirEntry, pid: int) -> bool:
    """A temporary whose process no longer runs and that has not changed for :data:`STALE_AFTER`: the age guards
    against a process id this machine's tag cannot tell apart (another PID namespace, a hostname shared)."""
    try:
        untouched = time.time() - entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return False
    return untouched > STALE_AFTER and not _running(pid)


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (one of another user counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def is_working_file(name: str) -> bool:
    """Whether ``name`` is one of the files flairseg keeps in a folder while it works there: a held folder's lock
    (:func:`held_folder`) or a temporary (:func:`_temporary_affixes`). A folder holding nothing else is as good as
    empty: another flairseg process has only begun its work there."""
    held = name.startswith(".") and name.endswith(_LOCK_SUFFIX) and len(name) > 1 + len(_LOCK_SUFFIX)
    return held or _TEMPORARY.fullmatch(name) is not None


def one_line(text: str) -> str:
    """``text`` (a message, a file or case name) as one line: line breaks and other control characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def markdown_text(text: str) -> str:
    """``text`` from user data (a case id, a clinical column or value) as it may stand in a Markdown table or line:
    on one line (:func:`one_line`), its pipes and backslashes escaped."""
    return one_line(text).replace("\\", "\\\\").replace("|", "\\|")


_UNSAFE_CHARACTER = re.compile(r'[^ -~]|[/\\<>:"|?*]')  # not printable ASCII, a separator, or refused by Windows
NAME_CHARACTERS = 60  # the readable part of a name made from user data (at most 60 bytes, far below any name limit)


def name_key(name: str) -> str:
    """What a name is on a file system that ignores case or how Unicode composes accents (macOS, Windows): two names
    with one key name one file there."""
    return unicodedata.normalize("NFC", name).casefold()


def safe_name(text: str) -> str:
    """``text`` (a clinical column name) as a single file name, readable and never a path.

    Characters outside printable ASCII (control characters among them), path separators and those Windows refuses
    become ``_``, as does a leading dot (no ``.``, ``..`` or hidden file), and the name is cut to
    :data:`NAME_CHARACTERS`. A name so changed ends in ``-`` and eight hex digits of ``text``'s hash, so that texts
    that read alike keep apart; a caller writing several such names still checks them against each other
    (:func:`distinct_names`), since a text may also be chosen to look like another's changed name.
    """
    name = _UNSAFE_CHARACTER.sub("_", text)
    name = ("_" + name[1:] if name.startswith(".") else name)[:NAME_CHARACTERS]
    if name == text and name:
        return name
    digest = hashlib.blake2s(text.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    return f"{name}-{digest}"


def distinct_names(texts: Iterable[str], what: str) -> dict[str, str]:
    """{text: :func:`safe_name` of it} for the distinct ``texts``; two that would share a file name on a file system
    that ignores case are refused, naming both (``what`` says what the names are of, e.g. "box plot")."""
    names: dict[str, str] = {}
    taken: dict[str, str] = {}
    for text in dict.fromkeys(texts):
        names[text] = safe_name(text)
        other = taken.setdefault(names[text].casefold(), text)
        if other != text:
            raise InputError(
                f"{other!r} and {text!r} would share the {what} file name {names[text]!r} (names differing only in "
                "case or in characters a file name cannot hold); rename one"
            )
    return names


# the tables a prediction run keeps one file per case of (``report/<table>/<key>.csv``) and merges
CASE_TABLES = ("metrics", "inputs", "qc", "components")


@dataclass(frozen=True)
class ReportFolder:
    """The name of everything a run keeps in its report folder, made in this one place: ``OUTPUT/report``
    for ``predict`` (:func:`run_report`), the output folder itself for ``evaluate`` and ``demo``.

    ``key`` names a case and its task (``<case>_mask``, ``<case>_brain``); per-case tables are merged into
    the run's tables (``table``) from ``case_table`` files, whichever process or part wrote them. A task's scores
    (``scores``) and outline GIFs carry its ``output_suffix``, so that both tasks' can share the folder.
    """

    path: Path

    def case_table(self, table: str, key: str) -> Path:
        return self.path / table / f"{key}.csv"

    @staticmethod
    def key(case_id: str, task: str) -> str:
        """What names a case of ``task`` here (``<case><task's label>``): a case's tumour and brain runs keep
        separate records and rows."""
        return f"{case_id}{TASK_SPECS[task].label_suffix}"

    @staticmethod
    def case_of_key(key: str) -> tuple[str, str]:
        """The case id and task that :meth:`key` made ``key`` of."""
        task = next((task for task, spec in TASK_SPECS.items() if key.endswith(spec.label_suffix)), "abnormality")
        return key.removesuffix(TASK_SPECS[task].label_suffix), task

    def case_entries(self, case_id: str, task: str) -> list[Path]:
        """Everything the report keeps of one case of ``task`` besides its record: its rows of every per-case table
        (:data:`CASE_TABLES`), its montage, its outline GIF and the truth they outline."""
        key = self.key(case_id, task)
        figures = [self.montage(key), self.gif(case_id, task), self.drawn_truth(key)]
        return [*(self.case_table(t, key) for t in CASE_TABLES), *figures]

    def case_tables(self, table: str, key_suffix: str = "") -> list[Path]:
        """The case tables of ``table`` whose keys end in ``key_suffix`` (a task's label: that task's cases)."""
        return sorted((self.path / table).glob(f"*{key_suffix}.csv"))

    def scores(self, name: str, task: str = "abnormality") -> Path:
        """``metrics.csv``, ``summary.md``, ``summary.json`` or ``dice_distribution.png`` of ``task``'s cases."""
        stem, extension = name.split(".")
        return self.path / f"{stem}{TASK_SPECS[task].output_suffix}.{extension}"

    def all_scores(self, task: str = "abnormality") -> list[Path]:
        """Every file of ``task``'s scores (:meth:`scores`)."""
        names = ("metrics.csv", "summary.md", "summary.json", "dice_distribution.png")
        return [self.scores(name, task) for name in names]

    def table(self, table: str) -> Path:
        return self.path / f"{table}.csv"

    def record(self, key: str) -> Path:
        return self.path / "records" / f"{key}.json"

    def started(self, key: str) -> Path:
        """Written before a case's outputs, removed once its record is: the outputs of an interrupted case are
        flairseg's too."""
        return self.path / "records" / f"{key}.started"

    def lock(self, key: str) -> Path:
        """Held while a process checks and writes the case (:func:`held_case`)."""
        return self.path / "records" / f"{key}.lock"

    def is_flairsegs(self) -> bool:
        """Whether a prediction run wrote this folder: its marker, or (a report of a flairseg that did not mark its
        reports yet) a case's record or started file (:func:`_is_case_record`)."""
        records = self.path / "records"
        found = records.iterdir() if records.is_dir() else ()
        return made_as(self.path, "prediction report") or any(_is_case_record(path) for path in found)

    def montage(self, key: str) -> Path:
        return self.path / "montages" / f"{key}.png"

    def gif(self, case_id: str, task: str = "abnormality") -> Path:
        return self.path / "gifs" / f"{case_id}{TASK_SPECS[task].output_suffix}.gif"

    def drawn_truth(self, key: str) -> Path:
        """The digest of the truth a case's montage and outline GIF outline ('none' without one), written after them:
        a rerun that reuses the case redraws them when its truth is another."""
        return self.path / "figures" / f"{key}.truth"

    def part_record(self, part: int, parts: int, task: str = "abnormality") -> Path:
        """What part K of an N-part run of ``task`` did (``part-K-of-N.json``, ``part-K-of-N_brain.json``): parts of
        both tasks' runs may share the folder."""
        return self.path / "parts" / f"part-{part}-of-{parts}{TASK_SPECS[task].output_suffix}.json"

    def failures(self, task: str = "abnormality") -> Path:
        """The cases of ``task`` that could not be read or predicted, with their reasons (``failures.csv``,
        ``failures_brain.csv``)."""
        return self.table(f"failures{TASK_SPECS[task].output_suffix}")

    @property
    def html(self) -> Path:
        return self.path / "report.html"


# the endings of a case's record key (:meth:`ReportFolder.key`)
LABEL_SUFFIXES = tuple(spec.label_suffix for spec in TASK_SPECS.values())


def _is_case_record(path: Path) -> bool:
    """Whether ``path`` is a prediction run's record of a case (``<case><task's label>.json``, a JSON object naming
    the case's inputs) or its started file: not a user's own notes that a records folder holds."""
    if path.suffix not in (".json", ".started") or not path.stem.endswith(LABEL_SUFFIXES):
        return False
    if path.suffix == ".started":
        return True
    try:
        record = parse_json(path.read_text())
    except (OSError, ValueError):  # parse_json's ValueError: not JSON, nested too deeply, ...
        return False
    return isinstance(record, dict) and "inputs" in record


def mask_file_folder(mask_file: Path) -> Path:
    """The folder of a run that writes one case's mask to ``mask_file`` (``-o NAME.nii.gz``): ``NAME_flairseg`` beside
    it, which holds the run's report (``NAME.nii`` shares it)."""
    name = mask_file.name
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else Path(name).stem
    return mask_file.with_name(f"{stem}_flairseg")


def run_report(out: Path) -> ReportFolder:
    """The report folder of a prediction run in ``out``."""
    return ReportFolder(Path(out) / "report")


def _stripped_folder(task: str) -> str:
    """The folder of a task's skull-stripped images: ``stripped`` (the two-stage pipeline's) or ``stripped_brain``."""
    return f"stripped{TASK_SPECS[task].output_suffix}"


# the name ending of a volume's probability map (``<case><task's output suffix>_probability.nii.gz``), never a mask
PROBABILITY_SUFFIX = "_probability"

# a prediction run's own outputs
RUN_NAMES = ("report", "probabilities", *map(_stripped_folder, TASK_SPECS), "dataset_description")


@dataclass(frozen=True)
class PredictionFolder:
    """The name of every file a prediction run writes for a case, made in this one place.

    Masks mirror the input (a Kaggle case folder of ``<CASE>_<k><suffix>.tif``, or
    ``<case><suffix>.nii.gz`` with the task's suffix), or follow a BIDS derivatives layout when
    ``bids_root`` is the dataset they come from (``<its folder>/<case>_desc-tumour_mask.nii.gz``), or
    go to ``mask_file`` (one case only). Probability maps and skull-stripped images have their own
    folders (named in :data:`RUN_NAMES`, so that no case can take them) or suffixes, and carry the task's
    ``output_suffix`` (``<case>_brain_probability.nii.gz``, ``probabilities/<case>_brain.tif``,
    ``stripped_brain/``), so that a tumour run and a brain run into one folder never write over each other.
    """

    path: Path
    task: str = "abnormality"
    bids_root: Path | None = None
    mask_file: Path | None = None

    @property
    def label(self) -> str:
        """The task's mask suffix, which also keys a case's records and report rows (``<case><label>``)."""
        return TASK_SPECS[self.task].label_suffix

    def mask(self, case: Case) -> Path:
        if self.mask_file is not None:
            return self.mask_file
        case_id = check_case_id(case.case_id, self.path)
        if self.bids_root is not None:
            folder = case.geometry.source.parent.relative_to(self.bids_root)
            return self.path / folder / f"{case_id}_desc-{TASK_SPECS[self.task].label}_mask.nii.gz"
        return self.path / (case_id if case.geometry.format == "kaggle" else f"{case_id}{self.label}.nii.gz")

    def outputs(self, case: Case) -> tuple[Path, Path, Path]:
        """Every path the case's outputs may take in this folder: its mask, probability map and stripped image."""
        return self.mask(case), self.probability(case), self.stripped(case)

    def probability(self, case: Case) -> Path:
        name = check_case_id(case.case_id, self.path) + TASK_SPECS[self.task].output_suffix
        return (
            self.path / "probabilities" / f"{name}.tif"
            if case.geometry.format == "kaggle"
            else self.path / f"{name}{PROBABILITY_SUFFIX}.nii.gz"
        )

    def stripped(self, case: Case) -> Path:
        """The skull-stripped image, named like the input (a Kaggle case folder, ``<case>.nii.gz``)."""
        case_id = check_case_id(case.case_id, self.path)
        folder = self.path / _stripped_folder(self.task)
        return folder / (case_id if case.geometry.format == "kaggle" else f"{case_id}.nii.gz")


# the longest ending a command adds to a case id to name one of its files: the brain probability map
# (<case>_brain_probability.nii.gz); the others end in fewer bytes (<case>_desc-tumour_mask.nii.gz of a BIDS
# derivative, <case>_brain.started of a record, preprocess's slices <case>_<k>_mask.tif), and temporary names are
# cut to the limit (_temporary_affixes)
LONGEST_CASE_ENDING = max((f"{spec.output_suffix}{PROBABILITY_SUFFIX}.nii.gz" for spec in TASK_SPECS.values()), key=len)


def check_case_id(case_id: str, folder: Path | None = None) -> str:
    """The case id, refused when it could leave the output folder ("", ".", "..", separators), is hidden (its
    outputs would take the names of flairseg's own files, the :data:`MARKER` among them, and trees skip them as
    hidden, as they skip a hidden case), is not UTF-8, or is too long for the names of its outputs (with
    :data:`LONGEST_CASE_ENDING`, within the name limit of ``folder``'s file system, or of most where none is given):
    every command names a case's outputs by it, so a case found on the way would stop a run half-written."""
    if case_id in ("", ".", "..") or any(c in case_id for c in ("/", "\\", "\0")):
        raise InputError(
            f"case id {case_id!r} cannot name an output; give the case a plain name (no '..' or separators)"
        )
    try:
        case_id.encode("utf-8")
    except UnicodeEncodeError:  # bytes of another encoding in a file name, which no record or table can hold
        raise InputError(
            f"case id {os.fsencode(case_id)!r} is not UTF-8 (a name from another encoding?); rename the case"
        ) from None
    if case_id.startswith("."):
        raise InputError(
            f"case id {case_id!r} is a hidden name, as flairseg's own files in an output folder are ({MARKER}, locks, "
            "temporaries); rename the case without the leading '.'"
        )
    _check_case_id_length(case_id, NAME_MAX if folder is None else _name_limit(folder))
    return case_id


def _check_case_id_length(case_id: str, limit: int) -> None:
    """Refuse a case id that, with :data:`LONGEST_CASE_ENDING`, exceeds ``limit`` bytes (a file name's limit)."""
    size, room = len(os.fsencode(case_id)), limit - len(os.fsencode(LONGEST_CASE_ENDING))
    if size > room:
        raise InputError(
            f"case id {case_id!r} ({size} bytes) is too long: the names of its outputs (up to "
            f"<case>{LONGEST_CASE_ENDING}) would pass the limit of {limit} bytes a file name; rename the case to at "
            f"most {room} bytes"
        )
