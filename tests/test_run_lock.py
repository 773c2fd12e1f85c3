"""A run folder is trained by one process at a time (cv folds side by side, each fold and the evaluation by one),
the lock dies with its process, and a run or fold is resumed or reused only on the data it was trained on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from synthetic import write_phantom_tree
from flairseg.cli import main
from flairseg.outputs import held_folder

TINY = ["--size", "32", "--features", "4", "--epochs", "1", "--steps-per-epoch", "1", "--validation-cases", "1"]
TINY += ["--folds", "2", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantom_tree(tmp_path_factory.mktemp("lock") / "cases", "C_", 4, slices=4, size=32)


def _train(data: Path, run: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "-o", str(run), *TINY, *extra]


def _cv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["cv", "--data", str(data), "-o", str(out), *TINY, *extra]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _refusal(folder: Path, work: str, pid: int) -> str:
    return (
        f"flairseg: error: {folder} is being {work} by another process (pid {pid}); wait for it to end, or use "
        "another folder\n"
    )


def test_a_run_held_by_another_process_is_neither_replaced_nor_resumed(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(_train(data, run)) == 0
    before = _files(run)
    capsys.readouterr()
    # a lock of this process's own stops a second taker in it too (flock): another holder for the test
    with held_folder(run, "trained"), held_folder(tmp_path / "new", "trained"):
        for extra in (("--overwrite", "--seed", "1"), ("--resume",)):
            assert main(_train(data, run, *extra)) == 1
            assert capsys.readouterr().err == _refusal(run, "trained", os.getpid())
        assert main(_train(data, tmp_path / "new")) == 1  # a run not made yet is held all the same
        assert capsys.readouterr().err == _refusal(tmp_path / "new", "trained", os.getpid())
        assert not (tmp_path / "new").exists()
    assert _files(run) == before
    assert main(_train(data, run, "--resume")) == 0  # given again, the run's own settings are no change
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the lock file goes with its holder


def test_a_lock_file_that_is_a_link_is_never_followed(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A link where a run's lock file goes (``.run.lock`` -> a slice of the data) is refused, not truncated through."""
    target = next((data / "C_0").glob("C_0_1.tif"))
    before = target.read_bytes()
    (tmp_path / ".run.lock").symlink_to(target)
    assert main(_train(data, tmp_path / "run")) == 1
    lock = tmp_path / ".run.lock"
    assert (
        capsys.readouterr().err
        == f"flairseg: error: the lock file {lock} is a symbolic link; remove it, then run again\n"
    )
    assert target.read_bytes() == before and not (tmp_path / "run").exists()
    lock.unlink()
    os.link(target, lock)  # a hard link: the same file under the lock's name
    assert main(_train(data, tmp_path / "run")) == 1
    assert capsys.readouterr().err == (
        f"flairseg: error: the lock file {lock} is not a file of its own (a hard link?); remove it, then run again\n"
    )
    assert target.read_bytes() == before and not (tmp_path / "run").exists()


def test_a_folder_that_appears_while_a_run_reads_its_data_stays(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --overwrite, a folder another tool makes at the run's path while the run reads its data stays, with
    the user's file, and the run is refused."""
    from flairseg import train

    run, reading = tmp_path / "run", train._training_cases

    def appears_meanwhile(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        run.mkdir()
        (run / "notes.txt").write_text("mine")
        return reading(*args, **kwargs)

    monkeypatch.setattr(train, "_training_cases", appears_meanwhile)
    assert main(_train(data, run)) == 1
    assert "appeared while this command worked" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_the_lock_dies_with_its_process(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    hold = (
        "import sys, time; from pathlib import Path; from flairseg.outputs import held_folder; "
        "lock = held_folder(Path(sys.argv[1]), 'trained'); lock.__enter__(); print('held', flush=True); time.sleep(300)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert main(_train(data, run)) == 1
        assert capsys.readouterr().err == _refusal(run, "trained", holder.pid)
    finally:
        holder.kill()  # SIGKILL: no clean-up of its own, the system releases the lock
        holder.wait()
    assert main(_train(data, run)) == 0 and (run / "best.json").is_file()


def test_cv_trains_two_folds_at_once_but_each_fold_and_the_evaluation_in_one_process(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cv"
    with held_folder(out / "fold-0", "trained"):
        assert main(_cv(data, out, "--fold", "0")) == 1
        assert capsys.readouterr().err == _refusal(out / "fold-0", "trained", os.getpid())
        assert main(_cv(data, out, "--fold", "1")) == 0  # another fold meanwhile
    assert not (out / "fold-0").exists() and (out / "fold-1" / "best.json").is_file()
    assert main(_cv(data, out, "--fold", "0")) == 0
    capsys.readouterr()
    with held_folder(out, "evaluated"):
        assert main(_cv(data, out)) == 1
        assert capsys.readouterr().err == _refusal(out, "evaluated", os.getpid())
    assert not (out / "report").exists() and not (out / "ensemble.json").exists()


def _rewrite_slice(path: Path) -> None:
    """The slice's pixels changed, its size kept."""
    tifffile.imwrite(path, np.flip(tifffile.imread(path), axis=1).copy(), photometric="rgb")


def test_a_fold_is_reused_only_on_the_data_it_was_trained_on(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases, out = tmp_path / "cases", tmp_path / "cv"
    shutil.copytree(data, cases)
    assert main(_cv(cases, out, "--fold", "0")) == 0 and main(_cv(cases, out, "--fold", "1")) == 0
    trained = json.loads((out / "fold-0" / "split.json").read_text())["train"][0]
    sliced = cases / trained / f"{trained}_2.tif"
    original = sliced.read_bytes()
    _rewrite_slice(sliced)
    assert sliced.stat().st_size == len(original)
    capsys.readouterr()
    changed = f"case {trained} changed since {out / 'fold-0'} was trained on it ({trained}_2.tif changed: sha256)"
    for argv in (_cv(cases, out, "--fold", "0"), _cv(cases, out)):  # reusing the finished fold, evaluating it
        assert main(argv) == 1
        assert capsys.readouterr().err.startswith(f"flairseg: error: {changed}; ")
    assert not (out / "report").exists()
    sliced.write_bytes(original)  # the same contents with a new modification time: the same data
    assert main(_cv(cases, out)) == 0 and (out / "ensemble.json").is_file()
