"""Cross-validation on synthetic phantoms: out-of-fold coverage, honest rule choice, the ensemble, dropped
components.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from synthetic import phantom, write_kaggle_case, write_phantom_tree
from flairseg import checkpoint
from flairseg.cli import main
from flairseg.config import PostprocessConfig, TrainConfig, model_preset, replace
from flairseg.cv import CANDIDATES, best_rule, cross_validate, fold_run
from flairseg.data import load_split
from flairseg.io import read_case
from flairseg.model import Ensemble, UNet
from flairseg.predict import Segmenter, predict_tree

CASES = 6


def _config() -> TrainConfig:
    base = TrainConfig(
        model=replace(model_preset("default"), features=8),
        epochs=3,
        steps_per_epoch=10,
        batch_size=8,
        lr=2e-3,
        folds=3,
        validation_cases=1,
    )
    return replace(base, preprocess={"size": 64})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantom_tree(tmp_path_factory.mktemp("cvdata") / "cases", "PH_", CASES, slices=10)


@pytest.fixture(scope="module")
def crossval(data: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("cv") / "cv"
    # a job training one fold never evaluates
    assert cross_validate(_config(), data, out, folds=[0], quiet=True) is None
    assert (fold_run(out, 0) / "best.json").is_file() and not (out / "report").exists()
    return cross_validate(_config(), data, out, quiet=True)


def test_every_case_is_predicted_once_by_the_model_that_never_saw_it(crossval) -> None:
    held_out = [c for f in range(3) for c in load_split(fold_run(crossval.out, f) / "split.json").test]
    assert sorted(held_out) == [f"PH_{i}" for i in range(CASES)]
    for fold, row in zip(crossval.folds, crossval.rows):
        split = load_split(fold_run(crossval.out, fold) / "split.json")
        assert row.case_id in split.test and row.case_id not in split.train + split.validation
    assert np.mean([r.dice for r in crossval.rows]) > 0.5  # the phantoms are easy; an untrained net scores about 0
    report = crossval.out / "report"
    with (report / "metrics.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == CASES
    with (report / "postprocessing.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(CANDIDATES)
    for name in ("summary.md", "summary.json", "dice_distribution.png", "worst_cases.csv", "cv.md"):
        assert (report / name).is_file(), name
    assert sorted(p.name for p in (crossval.out / "predictions").iterdir()) == [f"PH_{i}" for i in range(CASES)]


def test_a_condition_that_changes_the_grid_brings_its_own_truth(crossval, data: Path) -> None:
    from flairseg.cv import predict_held_out

    def every_other_slice(case):  # a coarser grid: the truth must follow it, not stay the case's own
        geometry = dataclasses.replace(case.geometry, spacing=(2.0, 1.0, 1.0))
        return dataclasses.replace(case, image=case.image[::2], mask=case.mask[::2], geometry=geometry)

    held = predict_held_out(_config(), data, crossval.out, quiet=True, condition=every_other_slice)
    assert len(held) == CASES
    for case in held:
        original = read_case(data / case.case_id, masks="required")
        assert case.binary.shape == case.truth.shape == original.mask[::2].shape
        assert np.array_equal(case.truth, original.mask[::2]) and case.spacing == (2.0, 1.0, 1.0)


def test_each_fold_is_postprocessed_with_a_rule_chosen_without_it(crossval) -> None:
    folds = np.array(crossval.folds)
    for fold, rule in crossval.rules_by_fold.items():
        assert rule == best_rule(crossval.comparison, folds != fold)
    assert crossval.rule == best_rule(crossval.comparison)


def test_ensemble_averages_the_folds_and_carries_the_rule(crossval, data: Path) -> None:
    meta = json.loads((crossval.out / "ensemble.json").read_text())
    assert meta["members"] == 3 and meta["postprocess"] == {"rule": crossval.rule.rule, "value": crossval.rule.value}
    ensemble, _ = checkpoint.load_model(crossval.out / "ensemble.json")
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == 3
    folds = [checkpoint.load_model(fold_run(crossval.out, f) / "best.json")[0] for f in range(3)]
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        mean = torch.stack([torch.sigmoid(m(x)) for m in folds]).mean(0)
        torch.testing.assert_close(torch.sigmoid(ensemble(x)), mean, atol=1e-5, rtol=1e-4)
    case = read_case(data / "PH_0")
    alone = Segmenter(fold_run(crossval.out, 0) / "best.json", precision="fp32")(case).mask
    np.testing.assert_array_equal(
        Segmenter(crossval.out / "ensemble.json", precision="fp32", folds=[0])(case).mask, alone
    )
    assert Segmenter(crossval.out / "ensemble.json").components == crossval.rule


def test_folds_option_is_checked(crossval, tmp_path: Path) -> None:
    assert (
        main(
            [
                "predict",
                "-i",
                str(crossval.out / "predictions" / "PH_0"),
                "-o",
                str(tmp_path / "a"),
                "--model",
                str(crossval.out / "ensemble.json"),
                "--folds",
                "3",
            ]
        )
        == 1
    )
    assert (
        main(
            [
                "predict",
                "-i",
                str(crossval.out / "predictions" / "PH_0"),
                "-o",
                str(tmp_path / "b"),
                "--model",
                str(fold_run(crossval.out, 0) / "best.json"),
                "--folds",
                "0",
            ]
        )
        == 1
    )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_removed_components_are_listed_in_the_report(crossval, tmp_path: Path) -> None:
    """A second bright blob, away from the labelled one, is found by the model and removed by 'largest'."""
    image, mask = phantom(slices=10, size=64, seed=11)
    image[3:7, 44:50, 14:20] = np.clip(image[3:7, 44:50, 14:20].astype(int) + 60, 0, 255).astype(np.uint8)
    write_kaggle_case(tmp_path / "in", "TWO", image, mask)
    model, meta = checkpoint.load_model(crossval.out / "ensemble.json")
    largest = checkpoint.save_model(
        model,
        _config().model,
        checkpoint.preprocess_config(meta),
        tmp_path / "largest",
        task="abnormality",
        members=3,
        postprocess={"rule": "largest", "value": 0.0},
    )
    result = predict_tree(tmp_path / "in", tmp_path / "out", Segmenter(largest), quiet=True)
    with (tmp_path / "out" / "report" / "components.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 2 and rows[0]["kept"] == "yes" and all(r["kept"] == "no" for r in rows[1:])
    assert result.removed_components == len(rows) - 1
    assert int(rows[0]["voxels"]) == read_case(tmp_path / "out" / "TWO", masks="only").mask.sum()
    assert all(r["volume_ml"] == "" for r in rows)  # Kaggle TIFFs carry no spacing: voxels only
    assert 0.5 <= float(rows[1]["peak_probability"]) <= 1.0


def test_a_changed_recipe_is_refused(crossval, data: Path) -> None:
    from flairseg.errors import InputError

    with pytest.raises(InputError, match="another recipe"):
        cross_validate(replace(_config(), lr=1e-3), data, crossval.out, quiet=True)


def test_ensemble_cannot_seed_fine_tuning(crossval, data: Path, tmp_path: Path) -> None:
    assert (
        main(
            [
                "train",
                "--data",
                str(data),
                "-o",
                str(tmp_path / "ft"),
                "--init",
                str(crossval.out / "ensemble.json"),
                "--size",
                "64",
                "--features",
                "8",
                "--epochs",
                "1",
                "--steps-per-epoch",
                "1",
                "--quiet",
            ]
        )
        == 1
    )
    assert not (tmp_path / "ft").exists()


def test_fold_k_is_fine_tuned_from_member_k_of_the_ensemble(crossval, data: Path, tmp_path: Path) -> None:
    from flairseg.errors import InputError

    ensemble, _ = checkpoint.load_model(crossval.out / "ensemble.json")
    # a whole-slice or patch phase after the first
    phase = replace(_config(), epochs=1, steps_per_epoch=1, lr=1e-9, patch=32)
    out = tmp_path / "phase"
    cross_validate(phase, data, out, folds=[1], quiet=True, init=crossval.out / "ensemble.json")
    tuned, _ = checkpoint.load_model(fold_run(out, 1) / "best.json")
    start, other = ensemble.members[1].state_dict(), ensemble.members[0].state_dict()
    weights = [k for k in start if k.endswith("weight")]
    assert all(torch.allclose(tuned.state_dict()[k], start[k], atol=1e-5) for k in weights)
    assert not all(torch.allclose(tuned.state_dict()[k], other[k], atol=1e-5) for k in weights)
    # members trained on other folds (another seed, so other test cases) would leak those cases: refused
    with pytest.raises(InputError, match="held-out cases differ"):
        cross_validate(
            replace(phase, seed=1), data, tmp_path / "leak", folds=[0], quiet=True, init=crossval.out / "ensemble.json"
        )
    with pytest.raises(InputError, match="not an ensemble of 3 fold models"):
        cross_validate(
            phase, data, tmp_path / "one", folds=[0], quiet=True, init=fold_run(crossval.out, 0) / "best.json"
        )
    assert not (tmp_path / "leak").exists() or not any((tmp_path / "leak").iterdir())


def test_init_is_read_as_every_checkpoint_is(crossval, data: Path, tmp_path: Path) -> None:
    """``--init`` names an ensemble as any checkpoint option does (NAME, NAME.json, NAME.safetensors); what is no
    checkpoint is refused by the checkpoint reader, naming the file and never advising to delete the input."""
    from flairseg.cv import check_init
    from flairseg.errors import WeightsError

    for given in ("ensemble", "ensemble.json", "ensemble.safetensors"):
        check_init(crossval.out / given, _config(), data)
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "list.safetensors").write_bytes(b"")
    refused = {
        crossval.out: f"checkpoint {crossval.out} needs both cv.safetensors and cv.json",
        tmp_path / "list.json": f"{tmp_path / 'list.json'} is not a flairseg checkpoint description (no sha256)",
    }
    for given, message in refused.items():
        with pytest.raises(WeightsError) as refusal:
            check_init(given, _config(), data)
        assert str(refusal.value) == message


def test_a_fold_started_from_other_weights_is_neither_kept_nor_resumed(crossval, data: Path, tmp_path: Path) -> None:
    """A fold's start.json is compared with the start asked for: folds trained from random weights are not kept as
    fine-tuned from an ensemble, nor fine-tuned ones as trained from random weights, nor ones fine-tuned from an
    ensemble saved over since (a start.json made before runs recorded the weights' sha256 is compared by path)."""
    from flairseg.errors import InputError

    ensemble = tmp_path / "e" / "ensemble.json"
    ensemble.parent.mkdir()
    for path in checkpoint.paths_of(crossval.out / "ensemble"):
        shutil.copy(path, ensemble.parent / path.name)
    shutil.copytree(fold_run(crossval.out, 0), fold_run(tmp_path / "random", 0))
    before = (fold_run(crossval.out, 0) / "best.safetensors").read_bytes()
    with pytest.raises(InputError, match=re.escape(f"started from random weights, not {ensemble} (member 0)")):
        cross_validate(_config(), data, tmp_path / "random", folds=[0], quiet=True, init=ensemble)
    assert (fold_run(tmp_path / "random", 0) / "best.safetensors").read_bytes() == before
    phase = replace(_config(), epochs=1, steps_per_epoch=1, lr=1e-9)
    out = tmp_path / "tuned"
    assert cross_validate(phase, data, out, folds=[0], quiet=True, init=ensemble) is None
    tuned = (fold_run(out, 0) / "best.safetensors").read_bytes()
    with pytest.raises(InputError, match=re.escape(f"({fold_run(out, 0)}) started from {ensemble} (member 0), not")):
        cross_validate(phase, data, out, folds=[0], quiet=True)
    tensors, record = checkpoint.read(ensemble)
    checkpoint.save({k: v / 2 if v.is_floating_point() else v for k, v in tensors.items()}, record, ensemble)
    with pytest.raises(InputError, match=re.escape(f"(weights sha256 {record['sha256'][:12]}...), which no longer")):
        cross_validate(phase, data, out, folds=[0], quiet=True, init=ensemble)
    start = json.loads((fold_run(out, 0) / "start.json").read_text())
    (fold_run(out, 0) / "start.json").write_text(json.dumps({k: start[k] for k in ("init", "member")}))
    assert cross_validate(phase, data, out, folds=[0], quiet=True, init=ensemble) is None
    assert (fold_run(out, 0) / "best.safetensors").read_bytes() == tuned  # kept: the same path


def test_single_unet_checkpoints_still_load(tmp_path: Path) -> None:
    small = replace(_config().model, features=4, depth=2)
    path = checkpoint.save_model(
        UNet(**dataclasses.asdict(small)), small, _config().preprocess, tmp_path / "one", task="abnormality"
    )
    assert checkpoint.postprocess_config(json.loads(path.read_text())) == PostprocessConfig("largest")


def test_ensemble_exports_to_onnx_with_its_rule(crossval, data: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from flairseg.export import export_onnx

    exported = export_onnx(crossval.out / "ensemble.json", tmp_path / "ensemble.onnx")
    case = read_case(data / "PH_1")
    onnx_segmenter = Segmenter(exported)
    assert onnx_segmenter.components == crossval.rule
    torch_mask = Segmenter(crossval.out / "ensemble.json", precision="fp32")(case).mask
    assert (onnx_segmenter(case).mask != torch_mask).sum() <= 2  # float32 either way: at most a border voxel apart


def test_cv_refuses_what_it_cannot_cross_validate(data: Path, tmp_path: Path) -> None:
    from flairseg.errors import InputError

    with pytest.raises(InputError, match="abnormality models"):
        cross_validate(replace(_config(), task="brain"), data, tmp_path / "a", quiet=True)
    with pytest.raises(InputError, match="folds=22"):
        cross_validate(replace(_config(), scheme="paper22"), data, tmp_path / "b", quiet=True)
    with pytest.raises(InputError, match="fold 7 does not exist"):
        cross_validate(_config(), data, tmp_path / "c", folds=[0, 7], quiet=True)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())  # refused before any training


class _Stopped(Exception):
    """Raised by a stand-in to end a command at the point a test looks at."""


def test_the_folds_data_are_checked_on_the_threads_cv_is_given(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check that prepares every fold's cases before the first trains runs on --threads, PyTorch's and the BLAS
    pools alike: five fold processes with pools as large as the machine took 30 s a case on 16 cores."""
    import threadpoolctl

    import flairseg.train
    from flairseg.inference import limit_threads

    seen = []

    def check_runs(*args: object) -> None:
        blas = {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}
        seen.append((torch.get_num_threads(), blas))
        raise _Stopped

    monkeypatch.setattr(flairseg.train, "check_runs", check_runs)
    before = torch.get_num_threads()
    limit_threads(2)
    try:
        with pytest.raises(_Stopped):
            cross_validate(_config(), data, tmp_path / "cv", folds=[0, 1], threads=1, quiet=True)
    finally:
        limit_threads(before)
    assert seen == [(1, {1})]


def test_a_job_of_one_fold_leaves_the_check_of_its_cases_to_its_training(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cv --fold K` prepares its cases once: its training reads and checks them before it trains, so a check of
    them before would only double the time to the first step."""
    import flairseg.train

    checked = []
    monkeypatch.setattr(flairseg.train, "check_runs", lambda *args: checked.append(args))
    monkeypatch.setattr(flairseg.train, "train", lambda *args, **kwargs: (_ for _ in ()).throw(_Stopped()))
    with pytest.raises(_Stopped):
        cross_validate(_config(), data, tmp_path / "cv", folds=[1], quiet=True)
    assert checked == []


@pytest.mark.parametrize(
    "link, target",
    [
        ("predictions/PH_0", "PH_0"),  # a case's out-of-fold mask folder is its input folder
        ("fold-1", "."),
        ("fold-0/log.csv", "PH_1/PH_1_1_mask.tif"),  # a resumed fold appends to its log
        ("report", "PH_2"),
        ("ensemble.safetensors", "PH_3/PH_3_1.tif"),
    ],
)
def test_no_path_cv_writes_leads_into_its_data(data: Path, tmp_path: Path, link: str, target: str) -> None:
    """A link in the cross-validation folder that would lead an output into the data is refused before any fold
    trains."""
    from flairseg.errors import InputError
    from synthetic import make_marked_folder

    from flairseg.outputs import MARKER

    out = tmp_path / "cv"
    make_marked_folder(out)
    (out / link).parent.mkdir(exist_ok=True)
    (out / link).symlink_to((data / target).resolve())
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match=re.escape(f"{out / link} overlaps the input {data} (through a link")):
        cross_validate(_config(), data, out, quiet=True)
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in out.iterdir()) == sorted({MARKER, Path(link).parts[0]})


def test_cv_writes_only_into_a_cross_validation_folder(crossval, data: Path, tmp_path: Path) -> None:
    """A folder flairseg did not make is refused, whatever it holds; one empty but for another job's lock, or one
    holding fold runs (an older flairseg marked no cross-validation folder) is a cross-validation folder."""
    from flairseg.cv import check_cv_folder
    from flairseg.errors import InputError
    from synthetic import make_marked_folder

    from flairseg.outputs import MARKER

    mine = tmp_path / "mine"
    (mine / "report").mkdir(parents=True)
    (mine / "ensemble.json").write_text("my own model")
    (mine / "report" / "cv.md").write_text("my notes")
    (mine / "fold-0").mkdir()  # not a run
    with pytest.raises(InputError, match=re.escape(f"output {mine} is a folder flairseg did not make")):
        cross_validate(_config(), data, mine, quiet=True)
    assert (mine / "ensemble.json").read_text() == "my own model"
    assert (mine / "report" / "cv.md").read_text() == "my notes"
    assert sorted(p.name for p in mine.iterdir()) == ["ensemble.json", "fold-0", "report"]
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / ".fold-0.lock").write_text("1\n")
    check_cv_folder(locked)
    make_marked_folder(locked / "fold-2")  # a fold of this flairseg in a folder that existed
    (locked / "notes.txt").write_text("the user's own")
    check_cv_folder(locked)
    older = tmp_path / "older"  # every fold finished by a flairseg that marked neither runs nor folders
    shutil.copytree(crossval.out, older, ignore=shutil.ignore_patterns(MARKER, "report", "ensemble.*"))
    assert not any(older.rglob(MARKER))
    assert cross_validate(_config(), data, older, quiet=True) is not None
    assert (older / "ensemble.json").is_file() and (older / "report" / "cv.md").is_file()
    assert not (older / MARKER).exists()  # only a folder cv makes gets the marker


def test_a_mask_changed_since_cv_wrote_it_is_never_replaced(crossval, data: Path, tmp_path: Path) -> None:
    """A rerun of a finished cross-validation refuses, before predicting, an out-of-fold mask file edited since it was
    written (a hand correction); one moved away is written again, and recorded."""
    from flairseg.cv import MASK_RECORD
    from flairseg.errors import InputError

    out = tmp_path / "cv"
    shutil.copytree(crossval.out, out)
    corrected = out / "predictions" / "PH_0" / "PH_0_2_mask.tif"
    written = corrected.read_bytes()
    edit = np.zeros((64, 64), np.uint8)
    edit[5:10, 5:10] = 255
    tifffile.imwrite(corrected, edit, photometric="minisblack")
    edited = corrected.read_bytes()
    with pytest.raises(InputError, match=re.escape(f"{corrected} changed since cv wrote it; move it away to keep it")):
        cross_validate(_config(), data, out, quiet=True)
    assert corrected.read_bytes() == edited
    corrected.rename(tmp_path / "kept.tif")
    assert cross_validate(_config(), data, out, quiet=True) is not None
    assert corrected.read_bytes() == written
    record = json.loads((out / MASK_RECORD).read_text())
    assert len(record) == len(list((out / "predictions").rglob("*_mask.tif"))) and "PH_0/PH_0_2_mask.tif" in record


def test_an_older_cvs_unmarked_folder_is_continued(tmp_path: Path) -> None:
    """A folder given empty to a cv from before cv recorded its masks (fold runs, its report with cv.md, predictions,
    no marker, no predictions.json) is cv's own: accepted; a user's own report folder beside fold runs is not."""
    from flairseg.cv import check_cv_folder
    from flairseg.errors import InputError

    for fold in ("fold-0", "fold-1"):
        (tmp_path / fold).mkdir()
        (tmp_path / fold / "config.json").write_text("{}")
        (tmp_path / fold / "split.json").write_text("{}")
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "A_mask.nii.gz").write_bytes(b"x")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "summary.md").write_text("my notes")
    with pytest.raises(InputError, match="is in the way of cross-validation's results"):
        check_cv_folder(tmp_path)
    (tmp_path / "report" / "cv.md").write_text("# cv")
    check_cv_folder(tmp_path)
