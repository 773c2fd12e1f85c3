"""The project's exception family: errors a user can fix, each with a one-line message.

The CLI turns any of these into ``flairseg: error: <message>`` and a non-zero exit.
"""

import os
from pathlib import Path


class FlairsegError(Exception):
    """Base of every error the user can fix; the message is one line saying what and how."""


class InputError(FlairsegError):
    """A file, folder or array given to flairseg is missing, malformed or inconsistent."""


class ConfigError(FlairsegError):
    """An option or configuration value is invalid."""


class WeightsError(FlairsegError):
    """A checkpoint or released model is missing, corrupt or incompatible."""


# what allocators say when memory runs out: torch's CPU allocator ("can't allocate memory"), its CUDA and MPS ones
# ("out of memory"), and an mmap or read the system refuses (ENOMEM, "Cannot allocate memory")
_OUT_OF_MEMORY = ("can't allocate memory", "cannot allocate memory", "out of memory")


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is memory running out: a MemoryError, or the RuntimeError torch (and safetensors' mmap) raise
    instead, which must not read as a fault of the file or the model being processed."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(words in str(exc).lower() for words in _OUT_OF_MEMORY)


def denied_part(path: str | os.PathLike) -> Path:
    """The part of ``path`` whose permissions stop flairseg, the one a user can fix: the first folder on the way that
    may not be searched (what lies inside it cannot even be looked at, so the error names a file the user never
    named), else ``path`` itself."""
    path = Path(path)
    for part in [*reversed(path.parents), path]:
        try:
            os.stat(part)
        except PermissionError:
            return part.parent
        except OSError:  # a missing part: the rest is not there to be denied
            break
    return path


def read_denied(path: str | os.PathLike) -> InputError:
    """The error for an input the system does not let flairseg read: its permissions, never its contents, are at
    fault (a reader would otherwise call it corrupt)."""
    return InputError(
        f"permission denied: cannot read {denied_part(path)}; make it readable for this user (chmod) and run again"
    )
