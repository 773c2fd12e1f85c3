"""Training and inference engine on small synthetic phantoms: learning, save/load, resume, torchrun, predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from synthetic import phantom, write_kaggle_case, write_phantom_tree
from flairseg import checkpoint
from flairseg.cli import main
from flairseg.config import TrainConfig, model_preset, replace
from flairseg.io import read_case
from flairseg.predict import Segmenter, segment
from flairseg.train import train
from flairseg.released_models import resolve

TINY = ["--size", "64", "--features", "8", "--batch-size", "8", "--lr", "2e-3", "--validation-cases", "2", "--quiet"]


def _config(**changes: object) -> TrainConfig:
    base = TrainConfig(
        model=replace(model_preset("default"), features=8),
        epochs=2,
        steps_per_epoch=6,
        batch_size=8,
        lr=2e-3,
        validation_cases=2,
    )
    base = replace(base, preprocess={"size": 64})
    return replace(base, **changes) if changes else base


def _train(data: Path, run: Path, epochs: int, steps: int, *options: str) -> int:
    """`flairseg train` on ``data`` into ``run`` for ``epochs`` x ``steps``; its exit status."""
    command = ["train", "--data", str(data), "-o", str(run), "--epochs", str(epochs), "--steps-per-epoch", str(steps)]
    return main([*command, *options])


def _planned(run: Path, **settings: object) -> None:
    """Change settings in a run's config.json and in the recipe its last checkpoint records alike: the run as if it
    had been planned with them (a recipe edited in config.json alone is refused on resume; the last checkpoint is
    written again, as an edited JSON beside its tensors is refused too)."""
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config | settings))
    tensors, record = checkpoint.read(run / "last")
    record["recipe"].update(settings)
    checkpoint.save(tensors, record, run / "last")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantom_tree(tmp_path_factory.mktemp("phantoms") / "cases", "PH_", 8, slices=10)


@pytest.fixture(scope="module")
def trained(phantoms: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    assert _train(phantoms, run, 3, 20, *TINY) == 0
    return run


def test_training_learns(trained: Path) -> None:
    log = (trained / "log.csv").read_text().splitlines()
    assert len(log) == 4
    best = json.loads((trained / "best.json").read_text())
    # trivial baselines: empty mask -> Dice 0; whole head -> about 0.1 (tumour / head volume)
    assert best["metrics"]["val_dice_mean"] > 0.7
    split = json.loads((trained / "split.json").read_text())
    assert not set(split["test"]) & (set(split["train"]) | set(split["validation"]))
    assert best["task"] == "abnormality" and best["split"]["test"] == split["test"]


def test_reloaded_model_predicts_identically(trained: Path, phantoms: Path) -> None:
    case = read_case(phantoms / "PH_0")
    first = segment(case, trained / "best.json")
    again = Segmenter(trained / "best.safetensors")(case)[0]
    np.testing.assert_array_equal(first, again)
    assert Segmenter(trained / "best.json", device="cpu").options.batch_size == 4  # the CPU's fastest; 32 on a GPU
    code = (
        "import sys, numpy as np; from flairseg import read_case; from flairseg.predict import segment;"
        f"m = segment(read_case({str(phantoms / 'PH_0')!r}), {str(trained / 'best.json')!r});"
        "np.save(sys.argv[1], m)"
    )
    subprocess.run([sys.executable, "-c", code, str(trained / "fresh.npy")], check=True)
    np.testing.assert_array_equal(np.load(trained / "fresh.npy"), first)
    assert first.any()


def test_resume_continues_the_same_run(phantoms: Path, tmp_path: Path) -> None:
    whole = train(_config(epochs=2), phantoms, tmp_path / "whole", quiet=True)
    train(_config(epochs=1), phantoms, tmp_path / "killed", quiet=True)
    _planned(tmp_path / "killed", epochs=2)  # as if the run had been killed after its first epoch
    (tmp_path / "snapshot").mkdir()  # a copy of the run that shares its files (cp -al, rsync --link-dest)
    for path in (tmp_path / "killed").iterdir():
        if path.is_file():
            os.link(path, tmp_path / "snapshot" / path.name)
    logged = (tmp_path / "snapshot" / "log.csv").read_text()
    resumed = train(_config(epochs=99), phantoms, tmp_path / "killed", resume=True, quiet=True)
    assert resumed.epochs == 2 and (tmp_path / "snapshot" / "log.csv").read_text() == logged
    assert (tmp_path / "killed" / "log.csv").read_text().splitlines()[1:] != logged.splitlines()[1:]
    a, _ = checkpoint.read(whole.run / "last")
    b, _ = checkpoint.read(resumed.run / "last")
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_run_stopped_before_its_first_last_checkpoint_starts_again(phantoms: Path, tmp_path: Path) -> None:
    """Killed after its first epoch's best model was saved but before its last checkpoint and log row: the run starts
    again from its first epoch, which it logs once."""
    whole = train(_config(epochs=1), phantoms, tmp_path / "whole", quiet=True)
    killed = train(_config(epochs=1), phantoms, tmp_path / "killed", quiet=True).run
    for name in ("last.json", "last.safetensors"):
        (killed / name).unlink()
    (killed / "log.csv").write_text((killed / "log.csv").read_text().splitlines()[0] + "\n")
    train(_config(epochs=99), phantoms, killed, resume=True, quiet=True)
    assert [row.split(",")[0] for row in (killed / "log.csv").read_text().splitlines()[1:]] == ["0"]
    a, _ = checkpoint.read(whole.run / "last")
    b, _ = checkpoint.read(killed / "last")
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_a_run_without_its_last_checkpoint_that_trained_epochs_is_refused(tmp_path: Path) -> None:
    """Its log's rows, or a best model of a later epoch than the first, show that a last checkpoint was saved."""
    from flairseg.errors import InputError
    from flairseg.train import LOG_FIELDS, _check_never_checkpointed

    (tmp_path / "log.csv").write_text(",".join(LOG_FIELDS) + "\n")
    for best_epoch in (None, 0):  # stopped in its first epoch, before or after its best model was saved
        if best_epoch is not None:
            (tmp_path / "best.json").write_text(json.dumps({"metrics": {"epoch": best_epoch}}))
        _check_never_checkpointed(tmp_path)
    (tmp_path / "best.json").write_text(json.dumps({"metrics": {"epoch": 2}}))
    with pytest.raises(InputError, match="lacks last.json, the state of its epoch 2;"):
        _check_never_checkpointed(tmp_path)
    (tmp_path / "log.csv").write_text(",".join(LOG_FIELDS) + "\n" + "0,1,0,0,0,1\n" * 3)
    with pytest.raises(InputError, match="lacks last.json, the state of its epoch 3;"):
        _check_never_checkpointed(tmp_path)


def test_a_split_edited_after_the_last_checkpoint_is_named(tmp_path: Path) -> None:
    """The first change is named; a state saved before states recorded their split resumes as before."""
    import dataclasses

    from flairseg.data import Split
    from flairseg.errors import InputError
    from flairseg.train import check_recorded_split

    split = Split("kfold", 3, 1, 0, ("A", "B"), ("C",), ("D",))
    recorded = json.loads(json.dumps(dataclasses.asdict(split)))
    check_recorded_split(tmp_path, split, {"split": recorded})
    check_recorded_split(tmp_path, split, {})  # an older flairseg's state: accepted
    for before, change in (
        ({"fold": 0}, "fold 0 -> 1"),
        ({"train": ["A"], "validation": ["B", "C"]}, "train now lists B"),
        ({"test": ["D", "E"]}, "test no longer lists E"),
        ({"train": ["B", "A"]}, "train lists its cases in another order"),
    ):
        with pytest.raises(InputError, match=rf"split.json was edited after the run's last checkpoint \({change}\);"):
            check_recorded_split(tmp_path, split, {"split": recorded | before})


def test_batch_workers_build_the_same_batches(phantoms: Path, tmp_path: Path) -> None:
    here = train(_config(epochs=2), phantoms, tmp_path / "here", quiet=True)
    ahead = train(replace(_config(epochs=2), batch_workers=2), phantoms, tmp_path / "ahead", quiet=True)
    a, _ = checkpoint.read(here.run / "last")
    b, _ = checkpoint.read(ahead.run / "last")
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_torchrun_two_processes(phantoms: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        "-m",
        "flairseg",
        "train",
        "--data",
        str(phantoms),
        "-o",
        str(run),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "3",
        *TINY,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run / "best.json").is_file() and len((run / "log.csv").read_text().splitlines()) == 2
    assert result.stdout.count("trained 1 epochs") == 1  # rank 0 reports; the other rank is quiet
    checkpoint.load_model(run / "best.json")


def test_fine_tune_from_checkpoint(trained: Path, phantoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "tuned"
    assert _train(phantoms, out, 1, 1, "--init", str(trained / "best.json"), *TINY) == 0
    before, _ = checkpoint.read(trained / "best")
    after, meta = checkpoint.read(out / "best")
    assert meta["metrics"]["val_dice_mean"] > 0.5  # starts from trained weights, not from scratch
    assert not all(torch.equal(before[k], after[k]) for k in before)


def test_fine_tune_stopped_before_its_first_checkpoint_resumes_from_its_init(
    trained: Path, phantoms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init = ("--init", str(trained / "best.json"))
    assert _train(phantoms, tmp_path / "whole", 1, 2, *init, *TINY) == 0
    stopped = tmp_path / "stopped"
    assert _train(phantoms, stopped, 1, 2, *init, *TINY) == 0
    for path in stopped.iterdir():  # what a run killed in its first epoch holds
        if path.name not in ("config.json", "split.json", "start.json", "log.csv"):
            path.unlink()
    (stopped / "log.csv").write_text((stopped / "log.csv").read_text().splitlines()[0] + "\n")
    assert json.loads((stopped / "start.json").read_text())["init"] == str((trained / "best.json").resolve())
    capsys.readouterr()
    assert _train(phantoms, stopped, 1, 2, "--init", str(stopped / "../whole/best.json"), "--resume", *TINY) == 1
    assert "started from" in capsys.readouterr().err  # another --init may not replace the run's own
    assert _train(phantoms, stopped, 1, 2, "--resume", *TINY) == 0  # no --init: the recorded one
    whole, _ = checkpoint.read(tmp_path / "whole" / "best")
    resumed, meta = checkpoint.read(stopped / "best")
    assert meta["metrics"]["val_dice_mean"] > 0.5  # from the trained weights, not from scratch
    assert all(torch.allclose(whole[k].float(), resumed[k].float(), atol=1e-6) for k in whole)


def test_a_fine_tune_whose_init_was_saved_over_is_not_resumed_from_it(
    trained: Path, phantoms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run stopped before its first checkpoint starts again from its --init, read again by path: another checkpoint
    saved at that path since is not its start (start.json records the weights' sha256), with --init or without."""
    init = tmp_path / "init"
    init.mkdir()
    for path in checkpoint.paths_of(trained / "best"):
        (init / path.name).write_bytes(path.read_bytes())
    stopped = tmp_path / "stopped"
    assert _train(phantoms, stopped, 1, 1, "--init", str(init / "best.json"), *TINY) == 0
    for path in stopped.iterdir():  # what a run killed in its first epoch holds
        if path.name not in ("config.json", "split.json", "start.json", "data.json", ".flairseg"):
            path.unlink()
    tensors, record = checkpoint.read(init / "best")
    checkpoint.save({k: v / 2 if v.is_floating_point() else v for k, v in tensors.items()}, record, init / "best")
    capsys.readouterr()
    for again in ((), ("--init", str(init / "best.json"))):
        assert _train(phantoms, stopped, 1, 1, "--resume", *again, *TINY) == 1
        started = f"run {stopped} started from {init / 'best.json'} (weights sha256 {record['sha256'][:12]}...)"
        assert f"{started}, which no longer holds them" in capsys.readouterr().err
    assert not (stopped / "best.json").exists()
    start = json.loads((stopped / "start.json").read_text())
    del start["sha256"]  # a run made before runs recorded it: compared by path
    (stopped / "start.json").write_text(json.dumps(start))
    assert _train(phantoms, stopped, 1, 1, "--resume", *TINY) == 0
    (stopped / "start.json").write_text(json.dumps(start | {"sha256": record["sha256"]}))
    capsys.readouterr()
    assert _train(phantoms, stopped, 1, 1, "--resume", "--init", str(init / "best.json"), *TINY) == 1
    assert capsys.readouterr().err.strip().endswith("restore that checkpoint, or resume it without --init")


def test_a_two_d_model_fine_tuned_into_a_two_and_a_half_d_one_starts_where_it_was(
    trained: Path, phantoms: Path, tmp_path: Path
) -> None:
    from flairseg.train import _initial_model

    deep = _config(
        preprocess={"size": 64, "flair_neighbours": 1},
        model=replace(model_preset("default"), features=8, in_channels=5),
    )
    widened = _initial_model(deep, trained / "best.json", None).eval()
    flat, _ = checkpoint.load_model(trained / "best.json")
    inputs = torch.rand(2, 5, 64, 64)
    with torch.no_grad():
        assert torch.allclose(widened(inputs), flat.eval()(inputs[:, :3]), atol=1e-5)
    out = tmp_path / "deep"
    options = ("--set", "preprocess.flair_neighbours=1", "--set", "model.in_channels=5")
    assert _train(phantoms, out, 1, 2, "--init", str(trained / "best.json"), *options, *TINY) == 0
    result = Segmenter(out / "best.json")(read_case(phantoms / "PH_0"))
    assert result.mask.shape == read_case(phantoms / "PH_0").shape and result.mask.any()
    assert _train(phantoms, tmp_path / "narrowed", 1, 1, "--init", str(out / "best.json"), *TINY) == 1
    further = ("--set", "preprocess.flair_neighbours=2", "--set", "model.in_channels=7")  # the neighbours would move
    assert _train(phantoms, tmp_path / "further", 1, 1, "--init", str(out / "best.json"), *further, *TINY) == 1


def test_fine_tune_the_abnormality_task_from_the_released_brain_model(phantoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "from-brain"
    assert (
        _train(
            phantoms,
            out,
            1,
            1,
            *"--init brain-lgg --size 64 --features 16 --batch-size 2 --validation-cases 2 --quiet".split(),
        )
        == 0
    )
    brain, _ = checkpoint.read(resolve("brain-lgg"))
    tuned, meta = checkpoint.read(out / "best")
    assert meta["task"] == "abnormality" and meta["model"]["features"] == 16
    assert all(brain[k].shape == tuned[k].shape for k in brain) and not all(
        torch.equal(brain[k], tuned[k]) for k in brain
    )


def test_predict_nifti_keeps_grid_and_header(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, mask = phantom(slices=10, size=64, seed=3)
    affine = np.array([[0, 0, -3.0, 40], [-0.9, 0, 0, 20], [0, 0.9, 0, -10], [0, 0, 0, 1]])  # not axial-ordered
    volume = np.ascontiguousarray(image[..., 1].transpose(1, 2, 0)[:, ::-1, :]).astype(np.int16)
    source = tmp_path / "in" / "head.nii.gz"
    source.parent.mkdir()
    nib.save(nib.Nifti1Image(volume, affine), str(source))
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                "-i",
                str(source),
                "-o",
                str(out),
                "--model",
                str(trained / "best.json"),
                "--probabilities",
                "--quiet",
            ]
        )
        == 0
    )
    written = nib.load(str(out / "head_mask.nii.gz"))
    assert written.shape == volume.shape and np.allclose(written.affine, affine)
    assert written.get_data_dtype() == np.uint8 and set(np.unique(np.asarray(written.dataobj))) <= {0, 1}
    assert (out / "head_probability.nii.gz").is_file()
    assert "1 cases predicted" in capsys.readouterr().out
    page = (out / "report" / "report.html").read_text()  # no truth: still a page to check by eye, with a volume in mL
    assert "head" in page and "volume (mL)" in page and "Dice" not in page and page.count("data:image/png;base64,") == 1


def test_output_named_like_a_volume_is_the_mask_file(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, _ = phantom(slices=10, size=64, seed=4)
    source = tmp_path / "scan.nii.gz"
    nib.save(
        nib.Nifti1Image(
            np.ascontiguousarray(image[..., 1].transpose(1, 2, 0)).astype(np.int16), np.diag([0.9, 0.9, 3, 1])
        ),
        str(source),
    )
    model = ["--model", str(trained / "best.json"), "--quiet"]
    assert main(["predict", "-i", str(source), "-o", str(tmp_path / "lesion.nii.gz"), *model]) == 0
    assert nib.load(str(tmp_path / "lesion.nii.gz")).shape == (64, 64, 10)  # the file itself, not a folder of that name
    assert (tmp_path / "lesion_flairseg" / "report" / "report.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lesion.nii.gz", "lesion_flairseg", "scan.nii.gz"]
    assert main(["predict", "-i", str(source), "-o", str(tmp_path / "lesion.nii.gz"), *model]) == 0  # a rerun reuses it
    assert "0 cases predicted, 1 already done" in capsys.readouterr().out
    # a folder: one file cannot hold it
    assert main(["predict", "-i", str(tmp_path), "-o", str(tmp_path / "many.nii.gz"), *model]) == 1
    assert (
        "names a mask file, which fits one volume" in capsys.readouterr().err
        and not (tmp_path / "many_flairseg").exists()
    )


def _error(args: list[str], capsys: pytest.CaptureFixture[str], fragment: str) -> None:
    assert main(args) == 1
    err = capsys.readouterr().err.rstrip("\n").split("\n")[-1]
    assert err.startswith("flairseg: error:") and fragment in err, err


def test_bad_checkpoints(trained: Path, phantoms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "o")
    broken = tmp_path / "broken"
    broken.mkdir()
    for suffix in (".json", ".safetensors"):
        (broken / f"m{suffix}").write_bytes((trained / f"best{suffix}").read_bytes())
    data = bytearray((broken / "m.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (broken / "m.safetensors").write_bytes(bytes(data))
    _error(["predict", "-i", str(phantoms), "-o", out, "--model", str(broken / "m.json")], capsys, "sha256")
    torch.save({"w": torch.zeros(1)}, tmp_path / "model.pt")
    _error(["predict", "-i", str(phantoms), "-o", out, "--model", str(tmp_path / "model.pt")], capsys, "pickle")
    _error(
        ["predict", "-i", str(phantoms), "-o", out, "--model", str(trained / "best.json"), "--task", "brain"],
        capsys,
        "not a 'brain' model",
    )
    grey = tmp_path / "grey"
    image, mask = phantom(slices=4, size=64)
    write_kaggle_case(grey, "G", np.stack([image[..., 1]] * 2, axis=-1), mask)
    _error(["predict", "-i", str(grey), "-o", out, "--model", str(trained / "best.json")], capsys, "channels")
    if not torch.cuda.is_available():  # on a machine with CUDA the request is valid
        _error(
            ["predict", "-i", str(phantoms), "-o", out, "--model", str(trained / "best.json"), "--device", "cuda"],
            capsys,
            "CUDA",
        )


def test_bad_training_inputs(phantoms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "clean"
    for index in range(3):
        image, mask = phantom(slices=4, size=64, seed=index)
        write_kaggle_case(empty, f"N_{index}", image, np.zeros_like(mask))
    _error(
        [
            "train",
            "--data",
            str(empty),
            "-o",
            str(tmp_path / "r1"),
            "--folds",
            "3",
            "--validation-cases",
            "0",
            "--size",
            "64",
        ],
        capsys,
        "no tumour voxel",
    )
    _error(["train", "--data", str(empty), "-o", str(tmp_path / "r2"), "--folds", "5"], capsys, "cannot make 5 folds")
    existing = tmp_path / "r3"
    existing.mkdir()
    _error(["train", "--data", str(phantoms), "-o", str(existing)], capsys, "--resume")
    _error(
        ["train", "--data", str(phantoms), "-o", str(tmp_path / "r4"), "--set", "epoch=3"],
        capsys,
        "did you mean 'epochs'",
    )


def test_a_diverging_run_stops_with_one_line_and_saves_no_nan_model(
    phantoms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flairseg import train

    def diverging(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (logits * float("nan")).mean()  # what a run whose weights overflowed computes

    monkeypatch.setattr(train, "loss_function", lambda name: diverging)
    run = tmp_path / "run"
    assert _train(phantoms, run, 2, 2, *TINY) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"flairseg: error: training {run} diverged in epoch 1 (loss nan) and stopped; no checkpoint was saved: train "
        "again with a lower lr"
    )
    assert not checkpoint.paths_of(run / "last")[1].exists() and not (run / "best.json").exists()
    assert (run / "log.csv").read_text().splitlines()[1:] == []


def test_brain_task_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tifffile

    root = tmp_path / "heads"
    for index in range(5):
        image, mask = phantom(slices=6, size=64, seed=index)
        folder = write_kaggle_case(root, f"H_{index}", image, mask)
        for k, plane in enumerate(image[..., 1] > 50, start=1):  # the head as the brain label
            tifffile.imwrite(folder / f"H_{index}_{k}_brain.tif", plane.astype(np.uint8) * 255)
    run = tmp_path / "brain"
    assert (
        _train(root, run, 2, 10, "--task", "brain", "--folds", "5", *TINY[:-3], "--validation-cases", "1", "--quiet")
        == 0
    )
    meta = json.loads((run / "best.json").read_text())
    assert meta["task"] == "brain" and meta["metrics"]["val_dice_mean"] > 0.6
    out = tmp_path / "pred"
    assert (
        main(
            [
                "predict",
                "-i",
                str(root),
                "-o",
                str(out),
                "--model",
                str(run / "best.json"),
                "--task",
                "brain",
                "--quiet",
            ]
        )
        == 0
    )
    assert "Dice mean" in capsys.readouterr().out  # brain labels in the input: a report against them
    assert read_case(out / "H_0", masks="only", mask_suffix="_brain").mask.shape == (6, 64, 64)
    assert not list((out / "H_0").glob("*_mask.tif"))  # brain masks never look like tumour masks


def test_patch_training_predicts_whole_slices(phantoms: Path, tmp_path: Path) -> None:
    run = tmp_path / "patch"
    assert _train(phantoms, run, 2, 15, "--set", "patch=32", *TINY) == 0
    meta = json.loads((run / "best.json").read_text())
    assert meta["recipe"]["patch"] == 32 and meta["metrics"]["val_dice_mean"] > 0.5
    mask = segment(read_case(phantoms / "PH_0"), run / "best.json")
    assert mask.shape == (10, 64, 64)


def test_bfloat16_focal_training_learns(phantoms: Path, tmp_path: Path) -> None:
    run = tmp_path / "bf16"
    assert (
        _train(phantoms, run, 2, 15, "--loss", "dice+focal", "--set", "bfloat16=true", "--set", "patch=32", *TINY) == 0
    )
    meta = json.loads((run / "best.json").read_text())
    assert (
        meta["recipe"]["bfloat16"] and meta["recipe"]["loss"] == "dice+focal" and meta["metrics"]["val_dice_mean"] > 0.5
    )
    # autocast computes, the weights stay float32
    assert checkpoint.read(run / "best")[0]["head.weight"].dtype == torch.float32


def test_demo_on_the_sample_case(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--model", str(trained / "best.json")]) == 0
    assert "TCGA_CS_4942_19970222: Dice" in capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert "TCGA_CS_4942_19970222" in names and "TCGA_CS_4942_19970222.gif" in names and "metrics.csv" in names
    assert "report.html" in names and (out / "montages" / "TCGA_CS_4942_19970222.png").is_file()
    assert len(list((out / "TCGA_CS_4942_19970222").glob("*_mask.tif"))) == 20


def test_tail_average_of_the_last_epochs_survives_resume(phantoms: Path, tmp_path: Path) -> None:
    two = train(_config(epochs=2), phantoms, tmp_path / "two", quiet=True)  # constant schedule: B's first two epochs
    whole = train(_config(epochs=3, average_last=2), phantoms, tmp_path / "whole", quiet=True)
    w1 = {k[6:]: v for k, v in checkpoint.read(two.run / "last")[0].items() if k.startswith("model.")}
    w2 = {k[6:]: v for k, v in checkpoint.read(whole.run / "last")[0].items() if k.startswith("model.")}
    average, meta = checkpoint.read(whole.run / "average")
    assert meta["metrics"]["averaged_epochs"] == 2 and whole.average_dice == meta["metrics"]["val_dice_mean"]
    for key, value in average.items():
        expected = ((w1[key].double() + w2[key].double()) / 2).to(value.dtype) if value.is_floating_point() else w2[key]
        assert torch.equal(value, expected), key
    best = json.loads((whole.run / "best.json").read_text())
    assert (best["metrics"].get("averaged_epochs") == 2) == whole.best_is_average
    # killed after its second epoch (inside the averaged tail) and resumed: the same average
    # averages epoch 2 alone, as 3/2 would
    train(_config(epochs=2, average_last=1), phantoms, tmp_path / "killed", quiet=True)
    _planned(tmp_path / "killed", epochs=3, average_last=2)
    train(_config(epochs=99), phantoms, tmp_path / "killed", resume=True, quiet=True)
    resumed, _ = checkpoint.read(tmp_path / "killed" / "average")
    assert all(torch.equal(resumed[k], average[k]) for k in average)


def test_threads_bound_pytorch_and_the_blas_pools() -> None:
    """--threads N caps PyTorch and NumPy's BLAS alike (unbounded pools slow processes that share a machine)."""
    probe = (
        "import threadpoolctl, torch; from flairseg.inference import limit_threads; limit_threads(1); "
        "blas = {p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas'}; "
        "print(torch.get_num_threads(), sorted(blas))"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split(maxsplit=1) == ["1", "[1]\n"]


def test_tensorboard_without_its_package_is_refused_before_anything_is_written(
    phantoms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train and cv refuse tensorboard=true where the package is missing before they make a folder: a run folder made
    first would block its path (a rerun without the setting finds it there, a resume is refused its other recipe)."""
    from flairseg.cv import cross_validate
    from flairseg.errors import InputError

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as where the package is missing
    config = _config(tensorboard=True, folds=3)
    for run in (train, cross_validate):
        with pytest.raises(InputError, match="tensorboard logging needs the tensorboard package"):
            run(config, phantoms, tmp_path / run.__name__, quiet=True)
        assert not (tmp_path / run.__name__).exists()
