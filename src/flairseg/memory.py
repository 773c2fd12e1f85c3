"""The memory budget: a case whose declared size would need more memory than the budget is refused before decoding.

Readers call :func:`check` with the bytes the pipeline will need for a case, computed from
the sizes its headers declare (TIFF pages, NIfTI and DICOM dimensions), before a voxel is
decoded: a 152-byte TIFF that declares 16000 x 16000 pixels ends in one line, not in a
``MemoryError`` half-way. A case is checked again before it is resampled to a model's grid,
which may hold far more voxels than the case (many tiny slices). The budget is half of the
machine's memory unless set, on the command line with ``--max-memory 8G`` or in the
environment as ``FLAIRSEG_MAX_MEMORY``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from flairseg.errors import ConfigError, InputError

ENVIRONMENT = "FLAIRSEG_MAX_MEMORY"
# where the kernel says which control groups the process is in, and where their limits are
PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# a prediction's peak grows by about 17 bytes per voxel of a one-channel volume (benchmarks/peak_memory.py: the
# decoded float32 volume, its model-space copy, the probability map and masks; the mapping back to the input grid
# runs in slabs of slices), with room to spare
BYTES_PER_VOXEL = 24
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str, source: str = "memory budget") -> int:
    """'8G', '512M', '1.5G' or a number of bytes, as bytes; ``source`` names where the text came from."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:].isalpha() else ""
    try:
        size = float(value.removesuffix(unit)) * _UNITS[unit]
    except (ValueError, KeyError):
        raise ConfigError(f"{source} {text!r} is not a size; write e.g. 8G, 512M or a number of bytes") from None
    if size == math.inf:
        raise ConfigError(f"{source} {text!r} is too large to be a size; give e.g. 8G")
    if not size >= 2**20:
        raise ConfigError(f"{source} {text!r} is below 1 MB; give e.g. 8G")
    return int(size)


def usable_memory() -> int:
    """The memory this process may use, in bytes: the machine's physical memory (16 GiB where it cannot be read), or
    less where a container, a batch job or a shell limits it (:func:`_limits`): beyond that limit the kernel kills
    the process without a word, where the budget's refusal would have been one line."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 16 * 2**30
    return min([physical, *_limits()])


def _limits() -> list[int]:
    """The memory limits on this process: its control groups' (cgroup v2 ``memory.max``, v1
    ``memory.limit_in_bytes``, each folder from its own up to the hierarchy's root, as the kernel applies them) and its
    address space's (``ulimit -v``)."""
    found = _address_space_limit()
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            places = [(CGROUP_ROOT, "memory.max"), (CGROUP_ROOT / "unified", "memory.max")]
        elif "memory" in controllers.split(","):
            places = [(CGROUP_ROOT / "memory", "memory.limit_in_bytes")]
        else:
            continue
        for root, name in places:
            folder = root / path.strip().lstrip("/")
            for level in [folder, *folder.parents]:
                if not level.is_relative_to(root):
                    break
                found += _limit_in(level / name)
    return found


def _address_space_limit() -> list[int]:
    """The limit ``ulimit -v`` puts on the process's address space ([] where none, or off POSIX)."""
    try:
        import resource
    except ImportError:
        return []
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return [] if limit == resource.RLIM_INFINITY else [limit]


def _limit_in(path: Path) -> list[int]:
    """The limit a cgroup file holds ([] where it holds none: "max", v1's near-2**63, a file not there)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return []
    return [int(text)] if text.isdigit() and int(text) < 2**60 else []


def budget() -> int:
    """The budget in bytes: ``FLAIRSEG_MAX_MEMORY`` when set, else half of the memory the process may use
    (:func:`usable_memory`)."""
    given = os.environ.get(ENVIRONMENT)
    return parse_size(given) if given else usable_memory() // 2


def _shown(size: float) -> str:
    return f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.0f} MB"


def check(
    voxels: int, channels: int, what: str, slices: int = 0, size: int = 0, resized: tuple[int, int] = (0, 0)
) -> None:
    """Refuse a case of ``voxels`` x ``channels`` declared values whose processing would exceed the budget.

    A case resampled to a model's ``size`` x ``size`` grid (its ``slices`` slices) counts the largest of its own
    voxels, the grid's and those of the ``resized`` (rows, columns) plane its preprocessing resizes each slice on
    before cropping (the paper's short side scaled to ``size``; the port's square of the longer side): the model-space
    inputs, probabilities and masks grow with slices x size², so a volume of tiny slices (4 x 4 x 20,000 voxels)
    needs as much as one of full ones, and a thin slice of 4 x 8,000 pixels far more than its own (8,000 x 8,000 in
    the port, 256 x 512,000 in the paper variants).
    """
    grids = [
        (int(slices) * int(size) ** 2, f"the model's {size} x {size} grid"),
        (int(slices) * resized[0] * resized[1], f"the {resized[0]} x {resized[1]} plane it is resized on"),
    ]
    processed, grid = max(grids)
    processed = max(processed, int(voxels))
    needed = processed * max(1, int(channels)) * BYTES_PER_VOXEL
    allowed = budget()
    if needed > allowed:
        shown = f", {processed:,} on {grid} ({slices:,} slices)" if processed > voxels else ""
        raise InputError(
            f"{what} declares {int(voxels):,} voxels x {channels} channel(s){shown}, about {_shown(needed)} to "
            f"process, more than the memory budget of {_shown(allowed)}; check its header, or raise the budget with "
            "--max-memory (e.g. --max-memory 32G)"
        )
