"""Bounded fuzzing of every reader: truncated and bit-flipped TIFF, NIfTI and DICOM files must end in the
project's one-line error (or read fine), never another exception, a hang or an unbounded allocation."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthetic import phantom, write_kaggle_case
from flairseg.errors import FlairsegError
from flairseg.io import read_case
from test_volumes import _write_dicom_series

SECONDS_PER_READ = 10
EXAMPLES = int(os.environ.get("FLAIRSEG_FUZZ_EXAMPLES", "40"))  # a longer run: FLAIRSEG_FUZZ_EXAMPLES=2000 (README)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    """At most ``seconds`` of processor time for the reader (the work it does, however loaded the machine), and ten
    times that of wall time for one that waits without working."""

    def _hang(signum: int, frame: object) -> None:
        raise TimeoutError(f"the reader ran longer than {seconds} s")

    previous = {number: signal.signal(number, _hang) for number in (signal.SIGPROF, signal.SIGALRM)}
    signal.setitimer(signal.ITIMER_PROF, seconds)
    signal.setitimer(signal.ITIMER_REAL, 10 * seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        for number, handler in previous.items():
            signal.signal(number, handler)


def _read_or_one_line_error(path: Path) -> None:
    """The reader either succeeds or raises a FlairsegError with a one-line message."""
    with _time_limit(SECONDS_PER_READ):
        try:
            case = read_case(path, masks="optional")
        except FlairsegError as exc:
            message = str(exc)
            assert message and "\n" not in message, f"not a one-line message: {message!r}"
            return
    assert case.image is not None and case.image.ndim == 4 and min(case.image.shape) > 0


def _mutations() -> st.SearchStrategy:
    """A list of edits: ('truncate', fraction), ('flip', fraction, bit) or ('byte', fraction, value)."""
    fraction = st.floats(0.0, 0.999)
    edit = st.one_of(
        st.tuples(st.just("truncate"), fraction),
        st.tuples(st.just("flip"), fraction, st.integers(0, 7)),
        st.tuples(st.just("byte"), fraction, st.sampled_from([0x00, 0xFF, 0x7F, 0x80])),
    )
    return st.lists(edit, min_size=1, max_size=4)


def _mutate(data: bytes, edits: list[tuple], header: int | None = None) -> bytes:
    """Apply edits; positions are fractions of the file (of its first ``header`` bytes when given)."""
    buffer = bytearray(data)
    for edit in edits:
        span = min(header or len(buffer), len(buffer))
        if not span:
            break
        position = int(edit[1] * span)
        if edit[0] == "truncate":
            del buffer[max(position, 1) :]
        elif edit[0] == "flip":
            buffer[position] ^= 1 << edit[2]
        else:
            buffer[position] = edit[2]
    return bytes(buffer)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    image, mask = phantom(slices=4, size=32)
    write_kaggle_case(root / "kaggle", "CASE", image, mask)
    affine = np.diag([0.9, 0.9, 3.0, 1.0])
    nib.save(nib.Nifti1Image(image[..., 1].transpose(2, 1, 0).astype(np.int16), affine), root / "vol.nii")
    _write_dicom_series(root / "dicom", image[..., 1].astype(np.int16), (0.9, 0.9, 3.0), np.eye(3), (0.0, 0.0, 0.0))
    return root


@FUZZ
@given(edits=_mutations(), which=st.sampled_from(["image", "mask"]))
def test_fuzzed_tiff_slice(
    corpus: Path, tmp_path_factory: pytest.TempPathFactory, edits: list[tuple], which: str
) -> None:
    case = tmp_path_factory.mktemp("tiff") / "CASE"
    shutil.copytree(corpus / "kaggle" / "CASE", case)
    target = case / ("CASE_2.tif" if which == "image" else "CASE_2_mask.tif")
    target.write_bytes(_mutate(target.read_bytes(), edits))
    _read_or_one_line_error(case)


@FUZZ
@given(edits=_mutations(), in_header=st.booleans(), compressed=st.booleans())
def test_fuzzed_nifti(
    corpus: Path, tmp_path_factory: pytest.TempPathFactory, edits: list[tuple], in_header: bool, compressed: bool
) -> None:
    data = _mutate((corpus / "vol.nii").read_bytes(), edits, header=352 if in_header else None)
    folder = tmp_path_factory.mktemp("nifti")
    path = folder / ("vol.nii.gz" if compressed else "vol.nii")
    path.write_bytes(gzip.compress(data) if compressed else data)
    _read_or_one_line_error(path)


@FUZZ
@given(edits=_mutations(), slice_index=st.integers(0, 3))
def test_fuzzed_dicom_slice(
    corpus: Path, tmp_path_factory: pytest.TempPathFactory, edits: list[tuple], slice_index: int
) -> None:
    folder = tmp_path_factory.mktemp("dicom") / "series"
    shutil.copytree(corpus / "dicom", folder)
    target = sorted(folder.iterdir())[slice_index]
    target.write_bytes(_mutate(target.read_bytes(), edits))
    _read_or_one_line_error(folder)


@FUZZ
@given(edits=_mutations())
def test_fuzzed_gzip_stream(corpus: Path, tmp_path_factory: pytest.TempPathFactory, edits: list[tuple]) -> None:
    path = tmp_path_factory.mktemp("gz") / "vol.nii.gz"
    path.write_bytes(_mutate(gzip.compress((corpus / "vol.nii").read_bytes()), edits))
    _read_or_one_line_error(path)
