"""Kill -9 at chosen events (a case just written, a checkpoint just saved): a rerun of `flairseg predict` ends with
exactly the outputs of an uninterrupted run and no partial output ever shows under a final name; a resumed
training ends with the same weights."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from synthetic import write_phantom_tree
from flairseg import checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same arithmetic in every process
TINY = [
    "--size",
    "64",
    "--features",
    "4",
    "--batch-size",
    "4",
    "--lr",
    "2e-3",
    "--validation-cases",
    "1",
    "--folds",
    "3",
    "--quiet",
]


def _flairseg(*argv: str) -> list[str]:
    return [sys.executable, "-m", "flairseg", *argv]


def _visible_files(root: Path) -> dict[str, str]:
    """sha256 of every file under root whose path has no hidden part (temporaries are hidden)."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            found[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _kill_when_more_cases(command: list[str], out: Path, pattern: str = "K_*") -> int | None:
    """Start ``command``; the moment one more entry matching ``pattern`` is in ``out``, kill -9: a case's mask
    folder just put in place (``K_*``, its record not written yet: the record comes last), or one being
    written under its temporary name (``.K_*.part``).

    Returns the number of finished cases the kill left, or None when the run ended before it.
    """
    before = len(list(out.glob(pattern))) if out.exists() else 0
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if out.exists() and len(list(out.glob(pattern))) > before:
            break
        time.sleep(0.005)  # polling for the event, not a delay the outcome depends on
    killed = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    return len(list(out.glob("K_*"))) if killed else None


@pytest.fixture(scope="module")
def cases_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = write_phantom_tree(tmp_path_factory.mktemp("tree") / "cases", "K_", 6)
    run = root.parent / "run"
    subprocess.run(
        _flairseg("train", "--data", str(root), "-o", str(run), "--epochs", "2", "--steps-per-epoch", "8", *TINY),
        env=ENV,
        check=True,
        timeout=300,
    )
    return root, run / "best.json"


def test_killed_predictions_finish_identically(cases_and_model: tuple[Path, Path], tmp_path: Path) -> None:
    cases, model = cases_and_model
    reference = tmp_path / "reference"
    subprocess.run(
        _flairseg("predict", "-i", str(cases), "-o", str(reference), "--model", str(model), "--quiet"),
        env=ENV,
        check=True,
        timeout=300,
    )
    expected = _visible_files(reference)
    assert len([name for name in expected if name.endswith("_mask.tif")]) == 6 * 8
    out = tmp_path / "killed"
    command = _flairseg("predict", "-i", str(cases), "-o", str(out), "--model", str(model), "--quiet")
    left = []
    # killed as a case's mask folder appears (cases 1 and 2 of 6), and while one is being written
    for pattern in ("K_*", ".K_*.part", "K_*"):
        left.append(_kill_when_more_cases(command, out, pattern))
        for name, digest in _visible_files(out).items():  # whatever is visible is complete, byte for byte
            if not name.startswith("report"):
                assert expected[name] == digest, name
    assert any(done is not None and 0 < done < 6 for done in left), left  # a kill landed mid-run
    subprocess.run(command, env=ENV, check=True, timeout=300)
    assert _visible_files(out) == expected


def test_killed_training_resumes_to_the_same_weights(cases_and_model: tuple[Path, Path], tmp_path: Path) -> None:
    cases, _ = cases_and_model
    train = ("train", "--data", str(cases), "--epochs", "4", "--steps-per-epoch", "6", *TINY)
    subprocess.run(_flairseg(*train, "-o", str(tmp_path / "whole")), env=ENV, check=True, timeout=300)
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        _flairseg(*train, "-o", str(killed)), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not (killed / "last.json").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # polling for the event: the first epoch's checkpoint
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)  # at once: in the second epoch, or still writing the first one's state
    process.wait()
    subprocess.run(_flairseg(*train, "-o", str(killed), "--resume"), env=ENV, check=True, timeout=300)
    a, meta_a = checkpoint.read(tmp_path / "whole" / "last")
    b, meta_b = checkpoint.read(killed / "last")
    assert meta_a["epoch"] == meta_b["epoch"] == 3
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_started_file_left_beside_a_record_goes_when_its_case_is_reused(
    cases_and_model: tuple[Path, Path], tmp_path: Path
) -> None:
    """A run killed between writing a case's record and removing its ``.started`` file leaves both; the next run
    reuses the case (its record is whole) and removes the leftover, so the folder ends as an uninterrupted run's."""
    from flairseg.cli import main

    cases, model = cases_and_model
    out = tmp_path / "out"
    command = ["predict", "-i", str(cases), "-o", str(out), "--model", str(model), "--quiet", "--threads", "1"]
    assert main(command) == 0
    expected = _visible_files(out)
    leftover = out / "report" / "records" / "K_1_mask.started"
    leftover.write_text("being predicted; its record replaces this file\n")
    assert main(command) == 0
    assert not leftover.exists() and _visible_files(out) == expected


def test_a_ctrl_c_while_the_command_loads_is_one_line() -> None:
    """Ctrl-C at moments from the start of `flairseg models` (while numpy, torch and the parser load, and later): one
    line on stderr and status 130, or the command had finished (0), never a traceback. The moments start after the
    time Python itself takes to start (a Ctrl-C before any of flairseg's code runs is Python's to report)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pathlib, runpy"], env=ENV, check=True)
    python = 2 * (time.perf_counter() - started)
    for delay in (python + extra for extra in (0.0, 0.1, 0.2, 0.35, 0.5, 0.8)):
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        process = subprocess.Popen(_flairseg("models"), env=ENV, text=True, **pipes)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        lines = err.strip().splitlines()
        # 130, or the signal's own status where it lands as the interpreter exits: the shell shows both as 130
        assert process.returncode in (0, 130, -signal.SIGINT) and len(lines) <= 1, (delay, process.returncode, lines)
        assert not lines or lines[0].startswith("flairseg: interrupted; ")


def _file_size_limit(size: int) -> Callable[[], None]:
    """For a child process: files it writes may grow to ``size`` bytes, a write beyond failing with EFBIG (as on a
    full disk, without a disk to fill)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of the signal ending the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def test_a_write_that_fails_names_the_output_in_one_line(cases_and_model: tuple[Path, Path], tmp_path: Path) -> None:
    """A checkpoint written by safetensors (whose writer raises its own error type) and a report file written by
    Python's file objects (whose errors name no path) fail as a full disk makes them: one line naming the output."""
    cases, model = cases_and_model
    commands = {  # output named: the command's largest file (limit 100 kB), a file of its report (6 kB)
        "run/best.safetensors": (
            100_000,
            "train",
            "--data",
            str(cases),
            "-o",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            *TINY,
        ),
        "pred/report/": (6000, "predict", "-i", str(cases), "-o", str(tmp_path / "pred"), "--model", str(model)),
    }
    for output, (size, *argv) in commands.items():
        done = subprocess.run(
            _flairseg(*argv, "--quiet"), env=ENV, capture_output=True, text=True, preexec_fn=_file_size_limit(size)
        )
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("flairseg: error: File too large (") and output in done.stderr, done.stderr
