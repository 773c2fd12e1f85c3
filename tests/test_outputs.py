"""What flairseg may write over: never a file it reads, only folders it marked, temporaries within the name limit
and none left behind by a killed run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import make_marked_folder, phantom, write_kaggle_case  # noqa: E402
from flairseg.checkpoint import save_model  # noqa: E402
from flairseg.cli import main  # noqa: E402
from flairseg.config import ModelConfig, PreprocessConfig  # noqa: E402
from flairseg.model import UNet  # noqa: E402
from flairseg.errors import InputError  # noqa: E402
from flairseg.cases import Case, Geometry  # noqa: E402
from flairseg.config import TASK_SPECS  # noqa: E402
from flairseg.outputs import (  # noqa: E402
    LONGEST_CASE_ENDING,
    MARKER,
    PredictionFolder,
    ReportFolder,
    atomic_dir,
    atomic_file,
    check_case_id,
)

TINY = ["--size", "32", "--features", "4", "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "1", "--quiet"]


def _cases(tmp: Path, count: int = 4) -> Path:
    for index in range(count):
        image, mask = phantom(slices=3, size=32, seed=index)
        write_kaggle_case(tmp / "in", f"CASE_{index}", image, mask)
    return tmp / "in"


def _checkpoint(path: Path, task: str = "abnormality") -> Path:
    model = UNet(features=2, batch_norm=True)
    return save_model(model, ModelConfig(features=2, batch_norm=True), PreprocessConfig(size=32), path, task=task)


def test_demo_never_replaces_its_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "dm"
    make_marked_folder(folder)
    model = _checkpoint(folder / "best")
    assert main(["demo", "-o", str(folder), "--overwrite", "--model", str(model)]) == 1
    assert "overlaps the input" in capsys.readouterr().err and model.is_file()
    assert model.with_suffix(".safetensors").is_file()


def test_predict_and_cv_never_write_over_their_model_or_recipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = _cases(tmp_path, 1)
    for option in ("--model", "--brain-model"):
        model = _checkpoint(tmp_path / "out" / "m", "brain" if option == "--brain-model" else "abnormality")
        other = ["--model", str(_checkpoint(tmp_path / "abnormality"))] if option == "--brain-model" else []
        command = ["predict", "-i", str(cases), "-o", str(tmp_path / "out"), *other, option, str(model), "--overwrite"]
        assert main([*command, "--quiet"]) == 1
        assert "overlaps the input" in capsys.readouterr().err
    (tmp_path / "cv").mkdir()
    (tmp_path / "cv" / "recipe.json").write_text('{"epochs": 1}')
    command = ["cv", "--data", str(cases), "-o", str(tmp_path / "cv"), "--config", str(tmp_path / "cv" / "recipe.json")]
    assert main(command) == 1 and "overlaps the input" in capsys.readouterr().err


def test_a_symlink_in_the_output_never_leads_a_case_into_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = _cases(tmp_path, 1)
    model = str(_checkpoint(tmp_path / "m"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "CASE_0").symlink_to(cases / "CASE_0")  # the case's output folder is its input folder
    before = {p.name: p.read_bytes() for p in (cases / "CASE_0").iterdir()}
    command = ["predict", "-i", str(cases), "-o", str(tmp_path / "out"), "--model", model, "--overwrite", "--quiet"]
    assert main(command) == 1 and "overlaps the input" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (cases / "CASE_0").iterdir()} == before


def test_a_symlink_in_the_output_never_leads_a_case_into_another_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = _cases(tmp_path, 2)
    model = str(_checkpoint(tmp_path / "m"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "CASE_0").symlink_to(cases / "CASE_1")  # case 0's output folder is case 1's input folder
    before = {p.name: p.read_bytes() for p in (cases / "CASE_1").iterdir()}
    command = ["predict", "-i", str(cases), "-o", str(tmp_path / "out"), "--model", model, "--quiet"]
    for extra in ([], ["--overwrite"]):
        assert main([*command, *extra]) == 1 and "through a link: it is" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in (cases / "CASE_1").iterdir()} == before
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["CASE_0"]  # nothing written, not even a report


def test_a_symlink_in_the_output_never_leads_a_case_onto_its_nnunet_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The label of an nnU-Net case lies outside the tree of images given (labelsTr beside imagesTr)."""
    import nibabel as nib
    import numpy as np

    dataset = tmp_path / "Dataset001_X"
    (dataset / "labelsTr").mkdir(parents=True)
    (dataset / "dataset.json").write_text('{"channel_names": {"0": "FLAIR"}}')
    (dataset / "imagesTr").mkdir()
    data = np.random.default_rng(0).random((8, 8, 4), np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), dataset / "imagesTr" / "BR_001_0000.nii.gz")
    label = dataset / "labelsTr" / "BR_001.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 4), np.uint8), np.eye(4)), label)
    before = label.read_bytes()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stripped_brain").symlink_to(dataset / "labelsTr")  # where BR_001.nii.gz would be stripped
    brain = ["--model", str(_checkpoint(tmp_path / "b", "brain")), "--task", "brain", "--strip", "--overwrite"]
    command = ["predict", "-i", str(dataset / "imagesTr"), "-o", str(tmp_path / "out"), *brain, "--quiet"]
    assert main(command) == 1
    assert f"overlaps the input {label} (through a link" in capsys.readouterr().err and label.read_bytes() == before


def test_the_input_paths_an_output_may_not_touch() -> None:
    from flairseg.outputs import InputPaths

    inputs = InputPaths([Path("/data/tree"), None, Path("/models/m.json")])
    assert inputs.overlapped(Path("/data/tree/CASE")) == "/data/tree"  # lies in an input
    assert inputs.overlapped(Path("/data")) == "/data/tree"  # holds one
    assert inputs.overlapped(Path("/models/m.json")) == "/models/m.json"  # is one
    assert inputs.overlapped(Path("/data/tree2")) is None and inputs.overlapped(Path("/models/n.json")) is None


def test_the_files_an_input_folders_links_lead_to_are_inputs(tmp_path: Path) -> None:
    """A folder of links into a store, given itself or through a link: the store is an input; a link loop or a link
    in a hidden folder (.git) leads to none."""
    from flairseg.outputs import InputPaths

    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "a.nii.gz").write_bytes(b"x")
    (tmp_path / "elsewhere").mkdir()
    view = tmp_path / "view"
    (view / ".git").mkdir(parents=True)
    (view / "a.nii.gz").symlink_to(tmp_path / "store" / "a.nii.gz")
    (view / "loop").symlink_to("loop")
    (view / ".git" / "objects").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "linked").symlink_to(view)
    for given in (view, tmp_path / "linked"):
        inputs = InputPaths([given])
        assert inputs.overlapped(tmp_path / "store") is not None and inputs.overlapped(tmp_path / "elsewhere") is None


def test_the_links_inside_a_linked_folder_lead_to_inputs_too(tmp_path: Path) -> None:
    """A tree whose case is a link to a view's case folder of links into a store: the store is an input, however
    many levels of links lie between; a link in the view back up to the tree (a loop of folders) ends the walk."""
    from flairseg.outputs import InputPaths

    (tmp_path / "store" / "CASE").mkdir(parents=True)
    (tmp_path / "store" / "CASE" / "CASE_1.tif").write_bytes(b"x")
    (tmp_path / "view" / "CASE").mkdir(parents=True)
    (tmp_path / "view" / "CASE" / "CASE_1.tif").symlink_to(tmp_path / "store" / "CASE" / "CASE_1.tif")
    (tmp_path / "view" / "CASE" / "up").symlink_to(tmp_path / "tree")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "CASE").symlink_to(tmp_path / "view" / "CASE")
    (tmp_path / "tree" / "again").symlink_to(tmp_path / "view")
    inputs = InputPaths([tmp_path / "tree"])
    assert inputs.overlapped(tmp_path / "store") == (
        f"{tmp_path}/tree/CASE/CASE_1.tif (a link to {tmp_path}/store/CASE/CASE_1.tif)"
    )
    assert inputs.overlapped(tmp_path / "elsewhere") is None


def test_a_link_to_a_folder_above_the_input_walks_no_folder_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link inside the input to the folder above it (``data/in/up -> data``): the folder above is walked for the
    links it holds, the input inside it not again (a large tree would be walked twice, each of its links followed
    twice)."""
    import os

    from flairseg import outputs

    (tmp_path / "data" / "in" / "CASE" / "deep").mkdir(parents=True)
    (tmp_path / "data" / "other").mkdir()
    (tmp_path / "data" / "in" / "up").symlink_to(tmp_path / "data")
    walked: list[str] = []
    real_walk = os.walk

    def counted_walk(top: str | os.PathLike, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        for root, folders, files in real_walk(top, *args, **kwargs):  # type: ignore[arg-type]
            walked.append(os.path.realpath(root))
            yield root, folders, files

    monkeypatch.setattr(outputs.os, "walk", counted_walk)
    outputs.InputPaths([tmp_path / "data" / "in"])
    assert sorted(walked) == sorted(set(walked)) and str(tmp_path / "data" / "other") in walked


def test_a_case_named_as_the_other_tasks_output_of_a_recorded_case_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cases P (one tree, brain task) and P_brain (another tree, tumour task) into one folder: the second run would
    write P_brain's probability map and GIF over P's brain ones."""
    image, mask = phantom(slices=3, size=32)
    write_kaggle_case(tmp_path / "one", "P", image, mask)
    write_kaggle_case(tmp_path / "two", "P_brain", image, mask)
    out = tmp_path / "out"
    brain = ["--model", str(_checkpoint(tmp_path / "b", "brain")), "--task", "brain", "--probabilities", "--quiet"]
    assert main(["predict", "-i", str(tmp_path / "one"), "-o", str(out), *brain]) == 0
    written = (out / "probabilities" / "P_brain.tif").read_bytes()
    tumour = ["--model", str(_checkpoint(tmp_path / "t")), "--probabilities", "--quiet", "--overwrite"]
    assert main(["predict", "-i", str(tmp_path / "two"), "-o", str(out), *tumour]) == 1
    assert "the tumour outputs of case 'P_brain' would take the names of the brain outputs of case 'P'" in (
        capsys.readouterr().err
    )
    assert (out / "probabilities" / "P_brain.tif").read_bytes() == written and not (out / "P_brain").exists()


def test_strip_adds_to_a_folder_flairseg_did_not_make(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A Kaggle case's stripped slices go into a folder that exists, beside the files there; one of their names taken
    by a file flairseg did not write stops the run, --overwrite too."""
    cases = _cases(tmp_path, 1)
    folder = tmp_path / "out" / "stripped_brain" / "CASE_0"
    folder.mkdir(parents=True)
    (folder / "precious.txt").write_text("a user's notes")
    (folder / "CASE_0_1.tif").write_text("a user's slice")
    brain = ["--model", str(_checkpoint(tmp_path / "b", "brain")), "--task", "brain", "--strip", "--quiet"]
    command = ["predict", "-i", str(cases), "-o", str(tmp_path / "out"), *brain]
    for extra in ([], ["--overwrite"]):
        assert main([*command, *extra]) == 1 and "is in the way of case CASE_0's output" in capsys.readouterr().err
    (folder / "CASE_0_1.tif").unlink()
    assert main(command) == 0
    slices = sorted(p.name for p in (cases / "CASE_0").iterdir() if not p.name.endswith("_mask.tif"))
    assert sorted(p.name for p in folder.iterdir()) == sorted(["precious.txt", *slices])
    assert (folder / "precious.txt").read_text() == "a user's notes"


def test_train_overwrites_its_run_through_a_link(tmp_path: Path) -> None:
    cases = _cases(tmp_path)
    run, link = tmp_path / "run", tmp_path / "link"
    command = ["train", "--data", str(cases), "--folds", "2", "--validation-cases", "1", *TINY]
    assert main([*command, "-o", str(run)]) == 0
    link.symlink_to(run)
    (run / "extra.txt").write_text("replaced with the run")
    assert main([*command, "-o", str(link), "--overwrite"]) == 0
    assert link.is_symlink() and (run / MARKER).is_file() and not (run / "extra.txt").exists()


def test_runs_and_cross_validations_are_marked_and_replaceable(tmp_path: Path) -> None:
    cases = _cases(tmp_path)
    run = tmp_path / "run"
    command = ["train", "--data", str(cases), "-o", str(run), "--folds", "2", "--validation-cases", "1", *TINY]
    assert main(command) == 0 and (run / MARKER).is_file()
    (run / "extra.txt").write_text("replaced with the run")
    assert main([*command, "--overwrite"]) == 0 and not (run / "extra.txt").exists()
    cv = tmp_path / "cv"
    command = ["cv", "--data", str(cases), "-o", str(cv), "--folds", "2", "--fold", "0", "--validation-cases", "1"]
    assert main([*command, *TINY]) == 0
    assert (cv / MARKER).is_file() and (cv / "fold-0" / MARKER).is_file()


def test_overwrite_never_replaces_a_folder_that_holds_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An earlier marked output, worked in from a folder inside it: `-o ..` (or `-o .`) with --overwrite is refused
    and the folder and the user's notes stay."""
    data = _cases(tmp_path, 1)
    pred = shutil.copytree(data, tmp_path / "pred")
    results = tmp_path / "results"
    assert main(["evaluate", "--pred", str(pred), "--truth", str(data), "-o", str(results), "--quiet"]) == 0
    (results / "my_work").mkdir()
    (results / "my_work" / "notes.txt").write_text("mine")
    monkeypatch.chdir(results / "my_work")
    for out, held in (("..", "holds"), (".", "is")):
        command = ["evaluate", "--pred", str(pred), "--truth", str(data), "-o", out, "--overwrite", "--quiet"]
        assert main(command) == 1
        assert capsys.readouterr().err == (
            f"flairseg: error: output {out} {held} the current directory, which flairseg never replaces; give a new "
            "folder\n"
        )
    assert (results / "my_work" / "notes.txt").read_text() == "mine"


def test_a_deleted_current_directory_is_named(tmp_path: Path) -> None:
    """A command run from a folder deleted under it (the shell stays there) says so, not a path-less OS error."""
    data = _cases(tmp_path, 1)
    pred = shutil.copytree(data, tmp_path / "pred")
    gone = tmp_path / "gone"
    gone.mkdir()
    code = (
        "import os, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
        "from flairseg.cli import main; main(sys.argv[2:])"
    )
    command = [sys.executable, "-c", code, str(gone), "evaluate", "--pred", str(pred), "--truth", str(data), "-o", "ev"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run([*command, "--quiet"], capture_output=True, text=True, env=env)
    assert done.stderr == (
        "flairseg: error: the current directory no longer exists (it was deleted or moved); change to a folder that "
        "exists\n"
    )


def test_without_overwrite_an_output_that_appeared_meanwhile_stays(tmp_path: Path) -> None:
    """Two runs into one new output at once, neither with --overwrite: the one that finishes second is refused and
    the first one's output stays (with --overwrite the last one wins, as before)."""
    folder, table = tmp_path / "results", tmp_path / "features.csv"
    with pytest.raises(InputError, match="appeared while this command worked"):
        with atomic_dir(folder, mark="evaluation report", replace=False) as tmp:
            (tmp / "mine.txt").write_text("second")
            folder.mkdir()
            (folder / "theirs.txt").write_text("first")
    assert sorted(p.name for p in folder.iterdir()) == ["theirs.txt"]
    with pytest.raises(InputError, match="appeared while this command worked"):
        with atomic_file(table, replace=False) as tmp:
            tmp.write_text("second")
            table.write_text("first")
    assert table.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["features.csv", "results"]
    with atomic_dir(folder, replace=True) as tmp:
        (tmp / "mine.txt").write_text("second")
    assert sorted(p.name for p in folder.iterdir()) == ["mine.txt"]


def test_a_case_folder_made_by_a_run_of_the_other_task_meanwhile_gets_the_masks_added(tmp_path: Path) -> None:
    """A tumour run and a brain run write a Kaggle case's new mask folder at once: the one that finishes second
    adds its slices to the folder the first made, which keeps its own (never moved aside and deleted)."""
    folder = tmp_path / "out" / "CASE"
    with atomic_dir(folder, replace=False, join=True) as tmp:
        (tmp / "CASE_1_mask.tif").write_text("tumour")
        folder.mkdir(parents=True)
        (folder / "CASE_1_brain.tif").write_text("brain")
    assert {p.name: p.read_text() for p in folder.iterdir()} == {
        "CASE_1_brain.tif": "brain",
        "CASE_1_mask.tif": "tumour",
    }
    assert sorted(p.name for p in folder.parent.iterdir()) == ["CASE"]  # no temporary folder left


def test_a_long_output_name_within_the_limit_is_written(tmp_path: Path) -> None:
    out = tmp_path / "long" / f"{'y' * 246}.csv"
    assert main(["shape", "-i", str(_cases(tmp_path, 1)), "-o", str(out), "--quiet"]) == 0
    assert out.is_file() and os.listdir(out.parent) == [out.name]
    with atomic_file(tmp_path / "long" / ("z" * 255)) as tmp:
        assert len(os.fsencode(tmp.name)) <= 255 and tmp.name.startswith(".zzz")


ROOM = 255 - len(LONGEST_CASE_ENDING)  # the longest case id a file name's 255 bytes leave room for


def test_the_longest_case_id_allowed_names_every_file_of_its_outputs(tmp_path: Path) -> None:
    """Every name a case's outputs, records and figures take, of either task and in every layout, is within 255
    bytes for a case id of the length :func:`check_case_id` allows (counted in bytes), which refuses one byte more."""
    case_id = "é" * (ROOM // 2) + "x" * (ROOM % 2)
    report, paths = ReportFolder(tmp_path), []
    for task, spec in TASK_SPECS.items():
        key = case_id + spec.label_suffix
        paths += [*report.case_entries(case_id, task), report.record(key), report.started(key), report.lock(key)]
        for source in (tmp_path / case_id, tmp_path / f"{case_id}.nii.gz", tmp_path / "sub-01" / "anat" / "x.nii.gz"):
            case = Case(case_id, None, None, Geometry(source, "kaggle" if source.suffix == "" else "nifti"))
            bids = tmp_path if "sub-01" in source.parts else None
            paths += PredictionFolder(tmp_path, task, bids_root=bids).outputs(case)
    assert max(len(os.fsencode(path.name)) for path in paths) == 255
    with pytest.raises(InputError, match=f"rename the case to at most {ROOM} bytes$"):
        check_case_id(case_id + "x")


def test_a_case_with_the_longest_id_allowed_is_predicted_preprocessed_and_evaluated(tmp_path: Path) -> None:
    """Its longest output, the brain probability map, is written, as are preprocess's and evaluate's files."""
    volume = tmp_path / "in" / f"{'v' * ROOM}.nii.gz"
    volume.parent.mkdir()
    nib.save(nib.Nifti1Image(np.ones((32, 32, 3), np.float32), np.eye(4)), volume)
    brain = ["--model", str(_checkpoint(tmp_path / "m", "brain"))]
    assert main(["predict", "-i", str(volume), "-o", str(tmp_path / "out"), *brain, "--probabilities", "--quiet"]) == 0
    assert (tmp_path / "out" / f"{'v' * ROOM}{LONGEST_CASE_ENDING}").is_file()
    case = _cases(tmp_path / "k", 1).joinpath("CASE_0").rename(tmp_path / "k" / "in" / ("k" * ROOM))
    for path in case.iterdir():
        path.rename(case / path.name.replace("CASE_0", "k" * ROOM))
    assert main(["preprocess", "-i", str(case), "-o", str(tmp_path / "pre"), "--quiet"]) == 0
    assert (tmp_path / "pre" / case.name / f"{case.name}_3_mask.tif").is_file()
    pred = shutil.copytree(case, tmp_path / "pred" / case.name)
    assert main(["evaluate", "--pred", str(pred), "--truth", str(case), "-o", str(tmp_path / "ev"), "--quiet"]) == 0
    assert (tmp_path / "ev" / "gifs" / f"{case.name}.gif").is_file()


def test_a_case_id_too_long_for_the_output_file_system_is_refused_before_any_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file system of shorter names (eCryptfs: 143 bytes) leaves room for shorter ids, as it says."""
    real = os.pathconf
    monkeypatch.setattr(os, "pathconf", lambda path, name: 143 if name == "PC_NAME_MAX" else real(path, name))
    case = _cases(tmp_path, 1).joinpath("CASE_0").rename(tmp_path / "in" / ("k" * 130))
    argv = ["predict", "-i", str(case), "-o", str(tmp_path / "out"), "--model", str(_checkpoint(tmp_path / "m"))]
    assert main([*argv, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.endswith("would pass the limit of 143 bytes a file name; rename the case to at most 118 bytes\n")
    assert not (tmp_path / "out").exists()


_KILLED_WRITER = """
import os, signal, sys
from flairseg.outputs import atomic_dir, atomic_file
with atomic_dir(sys.argv[1] + "/report"), atomic_file(sys.argv[1] + "/table.csv"):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_next_run_removes_temporaries_of_a_killed_one(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), *sys.path])}
    killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], env=env, check=False)
    assert killed.returncode == -9
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and all(name.endswith(".part") for name in left)
    host = left[0].split(".")[-3]  # .<name>.<random>.<host>.<pid>.part
    dead = left[0].split(".")[-2]
    recent = tmp_path / f".table.csv.abcdefgh.{host}.{dead}.part"  # the dead process's, changed a moment ago: kept
    recent.write_text("")
    for name in left:  # untouched for two hours: abandoned
        os.utime(tmp_path / name, (time.time() - 7200, time.time() - 7200))
    mine = tmp_path / f".report.abcdefgh.{host}.{os.getpid()}.part"  # a running process's (this one's)
    mine.mkdir()
    (tmp_path / ".report.user.part").write_text("not flairseg's")
    cases = _cases(tmp_path / "cases", 1)
    pred = shutil.copytree(cases, tmp_path / "cases" / "pred")
    assert (
        main(["evaluate", "--pred", str(pred), "--truth", str(cases), "-o", str(tmp_path / "report"), "--no-figures"])
        == 0
    )
    expected = sorted([".report.user.part", mine.name, recent.name, "cases", "report"])
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    shutil.rmtree(mine)


def test_a_name_made_from_user_data_is_one_readable_file_name() -> None:
    from flairseg.outputs import NAME_CHARACTERS, safe_name

    assert safe_name("bevr_RNASeqCluster") == "bevr_RNASeqCluster" and safe_name("A b (1)") == "A b (1)"
    hostile = ["x/../../../../esc", "x\\..\\esc", "..", ".", "", ".hidden", "a\nb", "a\0b", "C:x", "Größe", "a" * 300]
    names = [safe_name(text) for text in hostile]
    for name in names:
        assert Path(name).name == name and name not in ("", ".", "..") and not name.startswith(".")
        assert name.isascii() and name.isprintable() and not any(c in name for c in '/\\<>:"|?*')
        assert len(name) <= NAME_CHARACTERS + 9
    assert names[0].startswith("x_.._.._.._.._esc-") and len(set(names)) == len(names)
    assert len({safe_name("a/b"), safe_name("a\\b"), safe_name("a:b"), safe_name("a_b")}) == 4


def test_names_that_would_share_a_file_are_refused() -> None:
    from flairseg.errors import InputError
    from flairseg.outputs import distinct_names, safe_name

    assert distinct_names(["a/b", "a_b", "a/b"], "plot") == {"a/b": safe_name("a/b"), "a_b": "a_b"}
    with pytest.raises(InputError, match="'Grade' and 'grade' would share the plot file name 'grade'"):
        distinct_names(["Grade", "grade"], "plot")
    with pytest.raises(InputError, match="would share"):  # a name chosen to look like another's changed name
        distinct_names(["a/b", safe_name("a/b")], "plot")


def test_a_write_stopped_short_is_named_a_full_device_holding_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """numpy's tofile (tifffile writes through it) reports a full disk as "N requested and M written", an OSError
    without errno or path: it becomes ENOSPC on the output the user gave, and the CLI's line says so."""
    import errno

    import tifffile

    with pytest.raises(OSError) as raised, atomic_file(tmp_path / "out.tif"):
        raise OSError("65536 requested and 7936 written")
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / "out.tif")
    assert list(tmp_path.iterdir()) == []

    def short_write(*args: object, **kwargs: object) -> None:
        raise OSError("65536 requested and 7936 written")

    source = _cases(tmp_path, 1) / "CASE_0"
    monkeypatch.setattr(tifffile, "imwrite", short_write)
    assert main(["predict", "-i", str(source), "-o", str(tmp_path / "out"), "--quiet"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"flairseg: error: No space left on device ({tmp_path / 'out' / 'CASE_0'}); free some space or write elsewhere"
    )


def test_an_existing_output_of_the_other_kind_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder-writing command given a file as its output, and a file-writing one a folder (flairseg's own), are
    refused when the output is checked, not once the work is done and the result cannot be renamed into place."""
    cases = _cases(tmp_path, 1)
    notes, folder = tmp_path / "notes.txt", tmp_path / "features.csv"
    notes.write_text("mine")
    make_marked_folder(folder)
    model = ["--model", str(_checkpoint(tmp_path / "m")), "--quiet"]
    to_a_file = [
        ["evaluate", "--pred", str(cases), "--truth", str(cases), "-o", str(notes), "--overwrite"],
        ["preprocess", "-i", str(cases), "-o", str(notes), "--overwrite"],
        ["train", "--data", str(cases), "-o", str(notes), "--overwrite", *TINY],
        ["cv", "--data", str(cases), "-o", str(notes), *TINY],
        ["predict", "-i", str(cases), "-o", str(notes), *model],
    ]
    for command in to_a_file:
        assert main(command) == 1
        assert capsys.readouterr().err == (
            f"flairseg: error: output {notes} is a file; this command writes a folder: give a new path\n"
        ), command
    assert main(["shape", "-i", str(cases), "-o", str(folder), "--overwrite", "--quiet"]) == 1
    message = f"flairseg: error: output {folder} is a folder; this command writes a file: give a new path\n"
    assert capsys.readouterr().err == message
    assert notes.read_text() == "mine" and [p.name for p in folder.iterdir()] == [MARKER]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.csv", "in", "m.json", "m.safetensors", "notes.txt"]


def test_file_outputs_replace_only_a_file_their_command_wrote(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """shape and export, which write one file, replace with --overwrite the file they wrote before (or an empty one),
    never another file: a training run's log.csv, a clinical table, an ONNX file flairseg did not export."""
    pytest.importorskip("onnx")
    cases = _cases(tmp_path, 1)
    model = _checkpoint(tmp_path / "m")
    features, exported = tmp_path / "features.csv", tmp_path / "model.onnx"
    for _ in range(2):
        assert main(["shape", "-i", str(cases), "-o", str(features), "--overwrite", "--quiet"]) == 0
        assert main(["export", "--onnx", "--model", str(model), "-o", str(exported), "--overwrite"]) == 0
    capsys.readouterr()
    log, clinical, foreign = tmp_path / "log.csv", tmp_path / "data.csv", tmp_path / "other.onnx"
    log.write_text("epoch,loss\n1,0.5\n")
    clinical.write_text("Patient,RNASeqCluster\nTCGA_CS_4941,2\n")
    import onnx
    from onnx import TensorProto, helper

    tensor = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [tensor], [tensor])
    foreign.write_bytes(helper.make_model(graph).SerializeToString())  # an ONNX model of another tool
    commands = [["shape", "-i", str(cases), "-o", str(path), "--overwrite", "--quiet"] for path in (log, clinical)]
    commands.append(["export", "--onnx", "--model", str(model), "-o", str(foreign), "--overwrite"])
    for command, path in zip(commands, (log, clinical, foreign)):
        before = path.read_bytes()
        assert main(command) == 1 and path.read_bytes() == before
        assert f"output {path} is a file this command did not write" in capsys.readouterr().err
    (tmp_path / "empty.csv").write_text("")
    assert main(["shape", "-i", str(cases), "-o", str(tmp_path / "empty.csv"), "--overwrite", "--quiet"]) == 0
    features.write_bytes(b"\xef\xbb\xbf" + features.read_bytes())  # saved again by a spreadsheet
    assert main(["shape", "-i", str(cases), "-o", str(features), "--overwrite", "--quiet"]) == 0
    assert onnx.load(str(foreign)).graph.node[0].op_type == "Identity"


def test_a_file_that_takes_a_file_outputs_place_meanwhile_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """shape's features table checked at the start, then replaced by a user's table while the masks are measured: the
    user's table stays and the run is refused."""
    from flairseg import radiogenomics

    cases, features = _cases(tmp_path, 1), tmp_path / "features.csv"
    assert main(["shape", "-i", str(cases), "-o", str(features), "--quiet"]) == 0
    measure = radiogenomics.shape_features

    def measured_while_replaced(*args: object, **kwargs: object) -> object:
        features.write_text("Patient,RNASeqCluster\n")
        return measure(*args, **kwargs)

    monkeypatch.setattr(radiogenomics, "shape_features", measured_while_replaced)
    assert main(["shape", "-i", str(cases), "-o", str(features), "--overwrite", "--quiet"]) == 1
    assert "is a file this command did not write" in capsys.readouterr().err
    assert features.read_text() == "Patient,RNASeqCluster\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "features.csv",
        "in",
    ]


def test_a_mask_file_written_beside_the_cases_is_no_case_of_their_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-o in/P0_pred.nii.gz` writes a mask beside the volumes (its report in in/P0_pred_flairseg), and `-o in/P1.nii`
    one named as the image P1.nii.gz (their report in in/P1_flairseg); predicting the folder afterwards reads the two
    volumes, not a mask as a third image, nor loses the image that shares its name with a mask."""
    (tmp_path / "in").mkdir()
    for name in ("P0", "P1"):
        nib.save(nib.Nifti1Image(np.ones((16, 16, 4), np.float32), np.eye(4)), tmp_path / "in" / f"{name}.nii.gz")
    model = ["--model", str(_checkpoint(tmp_path / "m")), "--quiet"]
    for case, mask in (("P0.nii.gz", "P0_pred.nii.gz"), ("P1.nii.gz", "P1.nii")):
        assert main(["predict", "-i", str(tmp_path / "in" / case), "-o", str(tmp_path / "in" / mask), *model]) == 0
    assert main(["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *model]) == 0
    assert "2 cases predicted" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz")) == ["P0_mask.nii.gz", "P1_mask.nii.gz"]


def test_folders_beside_a_flat_tree_that_hold_no_cases_of_it_are_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flat tree of volumes and a Kaggle case (holding its own bare-named seg.nii.gz) beside a folder of their masks
    named as the cases (masks/P0.nii.gz, masks/K/K_1.tif slices without a suffix), a Segmentations folder and an atlas
    folder: the volumes and the Kaggle case are the cases; only a folder holding a volume named as itself
    (caseB/caseB.nii.gz) is refused."""
    (tmp_path / "in" / "masks").mkdir(parents=True)
    (tmp_path / "in" / "atlas").mkdir()
    volume = nib.Nifti1Image(np.ones((16, 16, 4), np.float32), np.eye(4))
    image, mask = phantom(slices=3, size=32)
    write_kaggle_case(tmp_path / "in", "K", image, mask)
    write_kaggle_case(tmp_path / "in" / "masks", "K", mask.astype(np.uint8) * 255, None)
    write_kaggle_case(tmp_path / "in" / "Segmentations", "K", mask.astype(np.uint8) * 255, None)
    for path in ("P0.nii.gz", "P1.nii.gz", "masks/P0.nii.gz", "atlas/MNI152.nii.gz", "K/seg.nii.gz"):
        nib.save(volume, tmp_path / "in" / path)
    model = ["--model", str(_checkpoint(tmp_path / "m")), "--quiet"]
    assert main(["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *model]) == 0
    assert "3 cases predicted" in capsys.readouterr().out


def test_a_prediction_folder_is_read_back_as_its_masks_without_its_run_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``shape`` and ``evaluate --pred`` read a prediction folder made with ``--probabilities``: its
    ``probabilities`` folder (TIFFs, like a Kaggle case) is the run's, not a case."""
    cases = _cases(tmp_path, 2)
    out = tmp_path / "out"
    model = ["--model", str(_checkpoint(tmp_path / "m")), "--probabilities", "--quiet"]
    assert main(["predict", "-i", str(cases), "-o", str(out), *model]) == 0
    assert (out / "probabilities" / "CASE_0.tif").is_file()
    capsys.readouterr()
    assert main(["shape", "-i", str(out), "-o", str(tmp_path / "shape.csv"), "--quiet"]) == 0
    evaluate = ["evaluate", "--pred", str(out), "--truth", str(cases), "-o", str(tmp_path / "ev"), "--no-figures"]
    assert main(evaluate) == 0
    printed = capsys.readouterr()
    assert "2 cases:" in printed.out and "no truth" not in printed.err


@pytest.mark.parametrize("holder", ["atomic_dir", "atomic_file", "held_folder"])
def test_a_refused_output_leaves_none_of_the_folders_made_above_it(holder: str, tmp_path: Path) -> None:
    """An output in folders that do not exist yet (``-o new/sub/run``), refused while it is written (preprocess's
    unreadable case) or while its folder is held (train's --init that is not a checkpoint): the folders made for it
    go with it; the folders that were there, and one a user put something in meanwhile, stay."""
    from flairseg import outputs

    (tmp_path / "kept").mkdir()
    final = tmp_path / "kept" / "new" / "sub" / "run"
    opened = {
        "atomic_dir": lambda: outputs.atomic_dir(final),
        "atomic_file": lambda: outputs.atomic_file(final),
        "held_folder": lambda: outputs.held_folder(final, "trained"),
    }[holder]
    with pytest.raises(InputError), opened():
        raise InputError("refused")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"] and not any((tmp_path / "kept").iterdir())
    with pytest.raises(InputError), opened():
        (tmp_path / "kept" / "new" / "note.txt").write_text("a user's")
        raise InputError("refused")
    assert sorted(p.name for p in (tmp_path / "kept" / "new").iterdir()) == ["note.txt"]


def test_overwrite_never_replaces_a_folder_that_took_the_outputs_place_meanwhile(tmp_path: Path) -> None:
    """--overwrite of a flairseg folder while a user's folder took its place (removed, made again with their files):
    the user's folder stays and the command is refused, where it was moved aside and deleted."""
    folder = tmp_path / "results"
    make_marked_folder(folder, "evaluation report")
    with pytest.raises(InputError, match="appeared while this command worked"):
        with atomic_dir(folder, mark="evaluation report", replace=True) as tmp:
            (tmp / "mine.txt").write_text("the command's")
            shutil.rmtree(folder)
            folder.mkdir()
            (folder / "thesis.txt").write_text("my only copy")
    assert (folder / "thesis.txt").read_text() == "my only copy"
