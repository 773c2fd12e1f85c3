"""A rerun reuses a predicted case only when the record of how it was made matches the command."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
import tifffile

from flairseg.cli import main


def test_rerun_skips_only_a_matching_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, model = tmp_path / "out", _empty_mask_checkpoint(tmp_path / "m", "abnormality")
    case = str(_volume(tmp_path / "in" / "v.nii.gz"))
    command = ["predict", "-i", case, "-o", str(out), "--model", str(model), "--quiet", "--precision", "fp32"]
    assert main(command) == 0
    record = json.loads((out / "report" / "records" / "v_mask.json").read_text())
    assert record["task"] == "abnormality" and record["weights_sha256"] and record["inputs"][0]["bytes"] > 0
    capsys.readouterr()
    assert main(command) == 0
    assert "0 cases predicted, 1 already done" in capsys.readouterr().out
    assert main(command[:-2] + ["--precision", "bf16"]) == 1  # another precision: not the same mask
    err = capsys.readouterr().err.strip()
    assert err.startswith("flairseg: error: case v") and "another precision" in err and "--overwrite" in err
    assert main(command + ["--tta"]) == 1 and "another tta" in capsys.readouterr().err
    # brain masks: their own names
    brain = str(_empty_mask_checkpoint(tmp_path / "b", "brain"))
    assert main(["predict", "-i", case, "-o", str(out), "--quiet", "--task", "brain", "--model", brain]) == 0
    assert main(command + ["--tta", "--overwrite"]) == 0
    assert json.loads((out / "report" / "records" / "v_mask.json").read_text())["tta"] is True


def test_a_case_without_record_is_predicted_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, model = tmp_path / "out", _empty_mask_checkpoint(tmp_path / "m", "abnormality")
    command = ["predict", "-i", str(_volume(tmp_path / "in" / "v.nii.gz")), "-o", str(out), "--model", str(model)]
    assert main([*command, "--quiet"]) == 0
    records = out / "report" / "records"
    (records / "v_mask.json").unlink()  # as if killed before the record: the started file is left
    (records / "v_mask.started").write_text("")
    capsys.readouterr()
    assert main([*command, "--quiet"]) == 0
    assert "1 cases predicted, 0 already done" in capsys.readouterr().out
    assert sorted(p.name for p in records.iterdir()) == ["v_mask.json"]


def test_a_case_whose_report_rows_are_gone_is_predicted_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished case whose QC and inputs rows were lost (a partial copy of the folder) is predicted again, never
    reused without them and left out of the merged tables and their counts."""
    out = tmp_path / "out"
    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality")
    command = ["predict", "-i", str(_volume(tmp_path / "in" / "v.nii.gz")), "-o", str(out), "--model", str(model)]
    assert main([*command, "--quiet"]) == 0
    for table in ("qc", "inputs"):
        (out / "report" / table / "v_mask.csv").unlink()
    capsys.readouterr()
    assert main([*command, "--quiet"]) == 0
    assert "1 cases predicted, 0 already done" in capsys.readouterr().out
    for table in ("qc", "inputs"):
        assert (out / "report" / f"{table}.csv").read_text().splitlines()[1].startswith("v,")


def test_a_reused_case_whose_figures_are_gone_is_drawn_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished case whose montage was lost (a partial copy of the folder) is reused, its montage drawn again, so
    that the report page shows it; a case without a component (no components rows) is reused too."""
    out = tmp_path / "out"
    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality")
    command = ["predict", "-i", str(_volume(tmp_path / "in" / "v.nii.gz")), "-o", str(out), "--model", str(model)]
    assert main([*command, "--quiet"]) == 0
    montage = out / "report" / "montages" / "v_mask.png"
    montage.unlink()
    capsys.readouterr()
    assert main([*command, "--quiet"]) == 0 and montage.is_file()
    assert "0 cases predicted, 1 already done" in capsys.readouterr().out


def test_a_run_of_some_cases_keeps_the_failures_of_the_others(tmp_path: Path) -> None:
    """A tree whose case b fails while it is decoded, then a run of case a alone into the same folder: b is still
    listed as failed (it has no mask), until a run predicts it."""
    import gzip

    out = tmp_path / "out"
    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality")
    first, second = _volume(tmp_path / "in" / "a.nii.gz"), _volume(tmp_path / "in" / "b.nii.gz", seed=1)
    intact = second.read_bytes()
    second.write_bytes(gzip.compress(gzip.decompress(intact)[:-500]))
    command = ["predict", "-o", str(out), "--model", str(model), "--quiet"]
    assert main(["predict", "-i", str(tmp_path / "in"), *command[1:]]) == 1
    assert main(["predict", "-i", str(first), *command[1:]]) == 0
    assert (out / "report" / "failures.csv").read_text().splitlines()[1].startswith("b,")
    second.write_bytes(intact)
    assert main(["predict", "-i", str(tmp_path / "in"), *command[1:]]) == 0
    assert not (out / "report" / "failures.csv").exists()


def test_masks_without_a_record_are_not_overwritten(
    sample_case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Masks flairseg has no record of writing (a user's manual ones) stop the run, --overwrite too: it replaces only
    what flairseg wrote. Once they are moved away, the case is predicted."""
    import shutil

    manual = tmp_path / "manual" / sample_case.name
    shutil.copytree(sample_case, manual)
    first = sorted(manual.glob("*_mask.tif"))[0]
    first.write_bytes(b"a manual mask")
    model = str(_empty_mask_checkpoint(tmp_path / "m", "abnormality"))
    command = ["predict", "-i", str(sample_case), "-o", str(tmp_path / "manual"), "--model", model, "--quiet"]
    assert main(command) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("flairseg: error: ") and "no record of writing it" in err and "\n" not in err
    assert first.read_bytes() == b"a manual mask"
    assert main(command + ["--overwrite"]) == 1 and first.read_bytes() == b"a manual mask"
    assert capsys.readouterr().err.strip().endswith("no record of writing it; move it away")
    for mask in manual.glob("*_mask.tif"):
        mask.unlink()
    assert main(command) == 0
    capsys.readouterr()
    assert main(command) == 0 and "0 cases predicted, 1 already done" in capsys.readouterr().out


def test_brain_and_tumour_masks_share_a_case_folder(sample_case: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = ["predict", "-i", str(sample_case), "-o", str(out), "--quiet"]
    assert main([*command, "--model", str(_empty_mask_checkpoint(tmp_path / "m", "abnormality"))]) == 0
    assert main([*command, "--task", "brain", "--model", str(_empty_mask_checkpoint(tmp_path / "b", "brain"))]) == 0
    folder = out / sample_case.name
    assert len(list(folder.glob("*_mask.tif"))) == len(list(folder.glob("*_brain.tif"))) == 20
    assert (out / "report" / "records" / "TCGA_CS_4942_19970222_brain.json").is_file()


def _empty_mask_checkpoint(path: Path, task: str, logit: float = -100.0) -> Path:
    """A tiny model whose every logit is ``logit``: masks always empty (its head's bias far below 0), or whole."""
    import torch

    from flairseg.checkpoint import save_model
    from flairseg.config import ModelConfig, PreprocessConfig
    from flairseg.model import UNet

    model = UNet(features=2, batch_norm=True)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(logit)
    return save_model(model, ModelConfig(features=2, batch_norm=True), PreprocessConfig(size=32), path, task=task)


@pytest.mark.parametrize("layout", ["kaggle", "nifti"])
def test_a_brain_run_keeps_its_probabilities_and_stripped_images_apart_from_a_tumour_run(
    tmp_path: Path, layout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The two-stage tumour pipeline (probability 1, the whole image its brain) and then a brain run (probability 0,
    no brain) with --probabilities --strip into one folder: the brain run's files have names of their own, and a
    file it has no record of writing stands in its way whatever the tumour run's records."""
    import hashlib

    import nibabel as nib
    import numpy as np

    from synthetic import phantom, write_kaggle_case

    image, tumour = phantom(slices=3, size=32)
    if layout == "kaggle":
        write_kaggle_case(tmp_path / "in", "CASE", image, tumour)
        brain_run = [*(f"CASE/CASE_{k}_brain.tif" for k in (1, 2, 3)), "probabilities/CASE_brain.tif"]
        brain_run += [f"stripped_brain/CASE/CASE_{k}.tif" for k in (1, 2, 3)]
    else:
        (tmp_path / "in").mkdir()
        volume = nib.Nifti1Image(image[..., 1].transpose(2, 1, 0).astype(np.int16), np.eye(4))
        nib.save(volume, tmp_path / "in" / "CASE.nii.gz")
        brain_run = ["CASE_brain.nii.gz", "CASE_brain_probability.nii.gz", "stripped_brain/CASE.nii.gz"]
    out = tmp_path / "out"
    command = ["predict", "-i", str(tmp_path / "in"), "-o", str(out), "--probabilities", "--strip", "--quiet"]
    tumour_model = _empty_mask_checkpoint(tmp_path / "tumour", "abnormality", 100.0)
    whole_brain = _empty_mask_checkpoint(tmp_path / "whole", "brain", 100.0)
    assert main([*command, "--model", str(tumour_model), "--brain-model", str(whole_brain)]) == 0

    def outputs() -> dict[str, str]:
        files = (p for p in sorted(out.rglob("*")) if p.is_file() and "report" not in p.parts)
        return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    tumour_run = outputs()
    brain = [*command, "--model", str(_empty_mask_checkpoint(tmp_path / "none", "brain")), "--task", "brain"]
    foreign = out / next(name for name in brain_run if "probabilit" in name)  # the brain run's probability map
    foreign.write_bytes(b"a user's file")
    assert main(brain) == 1 and "no record of writing it" in capsys.readouterr().err
    foreign.unlink()
    assert main(brain) == 0
    both = outputs()
    assert {name: both[name] for name in tumour_run} == tumour_run
    assert sorted(set(both) - set(tumour_run)) == sorted(brain_run)


def test_a_brain_run_beside_a_tumour_run_reports_its_own_cases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tumour and brain predictions in one output folder: each run's summary line, scores and GIFs are its own task's
    (empty masks score 0 against the tumour and 1 against an empty brain label), the tables and report.html list
    both, each with its own Dice."""
    import csv

    import numpy as np
    import tifffile

    from synthetic import phantom, write_kaggle_case

    image, tumour = phantom(slices=3, size=32)
    case = write_kaggle_case(tmp_path / "in", "CASE", image, tumour)
    for k in (1, 2, 3):
        tifffile.imwrite(case / f"CASE_{k}_brain.tif", np.zeros((32, 32), np.uint8))
    out, report = tmp_path / "out", tmp_path / "out" / "report"
    for task in ("abnormality", "brain"):
        model = _empty_mask_checkpoint(tmp_path / "models" / task, task)
        assert main(["predict", "-i", str(tmp_path / "in"), "-o", str(out), "--model", str(model), "--quiet"]) == 0
        line = capsys.readouterr().out
        dice = {"abnormality": "0.0000", "brain": "1.0000"}[task]
        assert f"Dice mean {dice}, median {dice} over 1 cases with truth" in line and "2 cases flagged" not in line
    for name, dice in (("metrics.csv", "0"), ("metrics_brain.csv", "1")):
        with (report / name).open() as handle:
            assert [(row["case_id"], row["dice"]) for row in csv.DictReader(handle)] == [("CASE", dice)]
    assert json.loads((report / "summary.json").read_text())["dice"]["mean"] == 0.0
    assert json.loads((report / "summary_brain.json").read_text())["dice"]["mean"] == 1.0
    assert sorted(p.name for p in (report / "gifs").iterdir()) == ["CASE.gif", "CASE_brain.gif"]
    with (report / "qc.csv").open() as handle:
        assert sorted(row["task"] for row in csv.DictReader(handle)) == ["abnormality", "brain"]
    from flairseg.html_report import case_rows

    assert sorted((row["task"], row["dice"]) for row in case_rows(report)) == [("abnormality", "0"), ("brain", "1")]


def test_qc_table_flags_cases_to_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A FLAIR-only, z-scored volume through the abnormality model: its flags say so; volumes in mL."""
    import csv

    import nibabel as nib
    import numpy as np

    from flairseg.io import read_case, sample_case_path

    case = read_case(sample_case_path())
    flair = case.image[..., 1].astype(np.float32)
    scored = (flair - flair.mean()) / flair.std()
    (tmp_path / "in").mkdir()
    nib.save(
        nib.Nifti1Image(scored.transpose(2, 1, 0)[::-1, ::-1].copy(), np.diag([1.0, 1.0, 5.0, 1.0])),
        tmp_path / "in" / "p.nii.gz",
    )
    assert main(["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert "1 cases flagged for review" in capsys.readouterr().out
    with (tmp_path / "out" / "report" / "qc.csv").open() as handle:
        [row] = list(csv.DictReader(handle))
    assert row["case"] == "p" and "flair-only" in row["flags"] and "shifted-intensities" in row["flags"]
    assert (
        float(row["volume_ml"]) == pytest.approx(int(row["voxels"]) * 5.0 / 1000.0, rel=1e-3) and int(row["voxels"]) > 0
    )


@pytest.fixture(scope="module")
def tree_and_single(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sample case and three synthetic cases, and their prediction by one process (the reference)."""
    import shutil

    from synthetic import phantom, write_kaggle_case
    from flairseg.io import sample_case_path

    root = tmp_path_factory.mktemp("tree")
    shutil.copytree(sample_case_path(), root / "in" / sample_case_path().name)
    for index, slices in enumerate((6, 5, 4)):
        image, mask = phantom(slices=slices, size=64, seed=index)
        write_kaggle_case(root / "in", f"C{index}", image, mask)
    assert main(["predict", "-i", str(root / "in"), "-o", str(root / "single"), "--quiet"]) == 0
    return root / "in", root / "single"


def _assert_same_outputs(single: Path, merged: Path) -> None:
    """Every file of the one-process run, byte for byte, and no other file but the part records."""

    def files(root: Path) -> set[Path]:
        return {
            p.relative_to(root) for p in root.rglob("*") if p.is_file() and "parts" not in p.relative_to(root).parts
        }

    assert files(merged) == files(single)
    assert [str(f) for f in sorted(files(single)) if (single / f).read_bytes() != (merged / f).read_bytes()] == []
    assert (single / "report" / "metrics.csv").is_file() and list((single / "report" / "montages").iterdir())


def test_parts_split_the_cases_and_merge_into_the_single_run(
    tree_and_single: tuple[Path, Path], tmp_path: Path
) -> None:
    """Two jobs with --part 0/2 and 1/2 predict disjoint cases that together are all; their merged masks,
    tables, metrics and report are byte-identical to one process's."""
    from flairseg.predict import split_parts

    tree, single = tree_and_single
    parts = split_parts(sorted(tree.iterdir()), 2)
    assert [[p.name for p in part] for part in parts] == [
        ["TCGA_CS_4942_19970222"],
        ["C0", "C1", "C2"],
    ]  # 20 slices | 6 + 5 + 4
    for k in (0, 1):
        assert main(["predict", "-i", str(tree), "-o", str(tmp_path / "out"), "--part", f"{k}/2", "--quiet"]) == 0
        record = json.loads((tmp_path / "out" / "report" / "parts" / f"part-{k}-of-2.json").read_text())
        assert record["cases"] == [p.name for p in parts[k]] and record["predicted"] == len(parts[k])
    _assert_same_outputs(single, tmp_path / "out")
    assert main(["predict", "-i", str(tree), "-o", str(tmp_path / "x"), "--part", "2/2"]) == 1


def test_more_parts_than_cases_cost_nothing(tree_and_single: tuple[Path, Path]) -> None:
    from flairseg.predict import split_parts

    tree, _ = tree_and_single
    cases = sorted(tree.iterdir())
    parts = split_parts(cases, 10**18)  # a list per part would not fit in any memory
    assert len(parts) == len(cases) and sorted(p for part in parts for p in part) == cases


def test_torchrun_ranks_merge_into_the_single_run(tree_and_single: tuple[Path, Path], tmp_path: Path) -> None:
    """The same predict command under torchrun (2 CPU ranks, gloo): each rank predicts its own part; rank 0
    merges and reports, and the folder is byte-identical to one process's."""
    import os
    import subprocess
    import sys

    tree, single = tree_and_single
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29531",
        "-m",
        "flairseg",
        "predict",
        "-i",
        str(tree),
        "-o",
        str(tmp_path / "out"),
        "--quiet",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # rank 0 reports for all
    assert result.stdout.count("4 cases predicted") == 1 and "over 4 cases with truth" in result.stdout
    parts = [json.loads(p.read_text()) for p in sorted((tmp_path / "out" / "report" / "parts").glob("*.json"))]
    assert sorted(c for p in parts for c in p["cases"]) == ["C0", "C1", "C2", "TCGA_CS_4942_19970222"] and [
        p["parts"] for p in parts
    ] == [2, 2]
    _assert_same_outputs(single, tmp_path / "out")


def test_cases_are_read_ahead_in_order_with_errors_in_place() -> None:
    """The next case is read in a background thread while the current one is worked on; order and errors are kept."""
    import threading

    from flairseg.errors import InputError
    from flairseg.predict import _read_ahead

    second_started = threading.Event()

    def read(path: Path) -> str:
        assert threading.current_thread().name.startswith("flairseg-read")
        if path.name == "b":
            second_started.set()
            raise InputError("b is broken")
        return path.name

    paths = [Path("a"), Path("b"), Path("c")]
    seen = []
    for path, case in _read_ahead(paths, read):
        if path.name == "a":
            assert second_started.wait(timeout=10)  # b is being read while a is still being worked on
        seen.append((path.name, str(case)))
    assert seen == [("a", "a"), ("b", "b is broken"), ("c", "c")]


def test_an_input_rewritten_with_its_size_and_time_is_not_reused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    import nibabel as nib
    import numpy as np

    from flairseg.io import read_case, sample_case_path

    flair = read_case(sample_case_path()).image[..., 1].astype(np.float32)
    volume = tmp_path / "in" / "p.nii"  # uncompressed: its last bytes are voxels
    volume.parent.mkdir()
    nib.save(nib.Nifti1Image(flair.transpose(2, 1, 0)[::-1, ::-1].copy(), np.diag([1.0, 1.0, 5.0, 1.0])), volume)
    command = ["predict", "-i", str(volume.parent), "-o", str(tmp_path / "out"), "--quiet", "--precision", "fp32"]
    assert main(command) == 0
    capsys.readouterr()
    stat, data = volume.stat(), bytearray(volume.read_bytes())
    data[-1] ^= 0x01  # a voxel changed: same size
    volume.write_bytes(bytes(data))
    os.utime(volume, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same time (touch -r)
    assert main(command) == 1
    err = capsys.readouterr().err.strip()
    assert "was made from other inputs (p.nii changed: sha256)" in err and "--overwrite" in err and "\n" not in err


def test_a_dicom_case_is_recorded_by_the_files_of_its_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A series folder's other files (a README, the file set's DICOMDIR) are not the case's inputs: changing them
    leaves the case reusable; changing a slice does not."""
    import numpy as np

    from test_volumes import _write_dicom_series

    series = tmp_path / "in" / "S"
    (tmp_path / "in").mkdir()
    _write_dicom_series(series, np.arange(3 * 16 * 16).reshape(3, 16, 16), (1.0, 1.0, 3.0), np.eye(3), (0.0,) * 3)
    (series / "README").write_text("exported by the scanner")
    (series / "DICOMDIR").write_bytes(bytes(128) + b"DICM" + bytes(64))
    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality")
    command = ["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model), "--quiet"]
    assert main(command) == 0
    record = json.loads((tmp_path / "out" / "report" / "records" / "S_mask.json").read_text())
    assert [(e["role"], e["file"]) for e in record["inputs"]] == [("series", f"slice00{k}.dcm") for k in range(3)]
    (series / "README").write_text("exported by the scanner, then annotated")
    (series / "DICOMDIR").write_bytes(bytes(128) + b"DICM" + bytes(80))
    capsys.readouterr()
    assert main(command) == 0 and "0 cases predicted, 1 already done" in capsys.readouterr().out
    (series / "slice001.dcm").write_bytes((series / "slice001.dcm").read_bytes()[:-2] + b"\x01\x00")
    assert main(command) == 1 and "made from other inputs (slice001.dcm changed: sha256)" in capsys.readouterr().err


def test_inputs_match_by_contents_and_older_records_by_time(tmp_path: Path) -> None:
    from flairseg.errors import InputError
    from flairseg.io import read_case, sample_case_path
    from flairseg.provenance import check_reusable, record

    expected = record({"model": "m"}, read_case(sample_case_path()))
    path = tmp_path / "record.json"

    def reusable(inputs: list[dict]) -> bool:
        path.write_text(json.dumps({**expected, "inputs": inputs}))
        try:
            check_reusable(path, expected, tmp_path)
        except InputError:
            return False
        return True

    inputs = expected["inputs"]
    assert reusable([{**e, "mtime_ns": 1} for e in inputs])  # copied with new times: the same contents
    assert not reusable([{**inputs[0], "sha256": "0" * 64}, *inputs[1:]])
    older = [{k: v for k, v in e.items() if k != "sha256"} for e in inputs]  # made before records held hashes
    assert reusable(older)
    assert not reusable([{**older[0], "mtime_ns": 1}, *older[1:]])


def test_a_changed_setting_is_named_down_to_its_own_key(tmp_path: Path) -> None:
    from flairseg.errors import InputError
    from flairseg.provenance import check_reusable

    expected = {"case": "C", "model": {"preprocess": {"std": 50.0, "size": 256}}, "inputs": []}
    record = tmp_path / "C_mask.json"
    record.write_text(json.dumps({**expected, "model": {"preprocess": {"std": 1.0, "size": 256}}}))
    with pytest.raises(InputError, match=r"another model\.preprocess\.std \(1\.0 -> 50\.0\)"):
        check_reusable(record, expected, Path("out"))


@pytest.mark.parametrize("content", ["{", "[]", "null", '"x"', "3"])
def test_a_record_that_is_not_a_json_object_is_unreadable(tmp_path: Path, content: str) -> None:
    """A case's record that does not parse or parses to no object is one unreadable record to every reader: a rerun
    refuses it in one line, and it names no outputs and no slices."""
    from flairseg.errors import InputError
    from flairseg.provenance import check_reusable, read_record, recorded_outputs, recorded_slices

    record = tmp_path / "C_mask.json"
    record.write_text(content)
    with pytest.raises(
        InputError, match=r"^case C in out has an unreadable record of how it was made \(C_mask\.json\); "
    ):
        check_reusable(record, {"case": "C", "inputs": []}, Path("out"))
    assert read_record(record) == {} and recorded_outputs(record) is None and recorded_slices(record) == set()


def test_a_changed_brain_label_read_by_the_model_is_not_reused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``paper-abnormality`` model reads the case's ``_brain`` labels: they are inputs of its record, so a rewritten
    label is a changed input (the mask it gives differs), named like any other."""
    import numpy as np
    import tifffile

    from flairseg.checkpoint import save_model
    from flairseg.config import ModelConfig, PreprocessConfig
    from flairseg.model import UNet
    from synthetic import phantom, write_kaggle_case

    image, tumour = phantom(slices=3, size=32)
    folder = write_kaggle_case(tmp_path / "in", "CASE", image, tumour)
    for k in (1, 2, 3):
        tifffile.imwrite(folder / f"CASE_{k}_brain.tif", np.full((32, 32), 255, np.uint8), photometric="minisblack")
    preprocess = PreprocessConfig(variant="paper-abnormality", size=32)
    model = save_model(UNet(features=2), ModelConfig(features=2), preprocess, tmp_path / "model", task="abnormality")
    command = ["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model), "--quiet"]
    assert main(command) == 0
    record = json.loads((tmp_path / "out" / "report" / "records" / "CASE_mask.json").read_text())
    assert [e["file"] for e in record["inputs"] if e["role"] == "brain"] == [f"CASE_{k}_brain.tif" for k in (1, 2, 3)]
    capsys.readouterr()
    assert main(command) == 0 and "0 cases predicted, 1 already done" in capsys.readouterr().out
    half = np.zeros((32, 32), np.uint8)
    half[:, :16] = 255
    tifffile.imwrite(folder / "CASE_2_brain.tif", half, photometric="minisblack")
    assert main(command) == 1
    err = capsys.readouterr().err.strip()
    assert "made from other inputs (CASE_2_brain.tif changed: sha256)" in err and "\n" not in err


@pytest.mark.parametrize(
    ("table", "content", "why"),
    [
        ("qc", b"a,b\n1,2,3,4\n", "no case column"),
        ("qc", b'{"a":', "no case column"),
        ("inputs", b"\xff\xfe", "not UTF-8 text"),
        ("components", b"case,component,kept\nCB,1,yes,extra\n", "a row whose values do not match the header"),
        ("components", b"case,component,kept\nCB,1,maybe\n", "a value of the wrong kind"),
        ("qc", b"case,task,flags\n", "no rows"),
    ],
)
def test_a_broken_case_table_stops_the_merge_before_it_writes(
    tmp_path: Path, table: str, content: bytes, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A case's own table in the report that flairseg did not write as it is (a reused case keeps its tables) is
    named in one line, and no merged table is written from the others (the old ones went when CA, whose row was
    lost, was predicted again: they described its old outputs)."""
    from synthetic import phantom, write_kaggle_case

    for index, name in enumerate(("CA", "CB")):
        write_kaggle_case(tmp_path / "in", name, *phantom(slices=3, size=32, seed=index))
    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality", 100.0)  # one component: the whole image
    command = ["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model), "--quiet"]
    assert main(command) == 0
    report = tmp_path / "out" / "report"
    merged = [report / f"{name}.csv" for name in ("inputs", "qc", "components")]
    assert all(path.is_file() for path in merged)
    (report / table / "CB_mask.csv").write_bytes(content)
    (report / "inputs" / "CA_mask.csv").unlink()  # a merge that went ahead would leave CA out of inputs.csv
    capsys.readouterr()
    assert main(command) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"flairseg: error: {report / table / 'CB_mask.csv'} is not a table flairseg wrote ({why}); pass --overwrite "
        "to predict its case again, or delete the file if that case is no longer among the inputs"
    )
    assert not any(path.exists() for path in merged)
    assert main([*command, "--overwrite"]) == 0 and (report / "inputs" / "CA_mask.csv").is_file()


@pytest.mark.parametrize(
    "record", [{"cases": [], "failures": [1]}, [["x"]], {"cases": [3]}, {"cases": [], "failures": [["CA"]]}]
)
def test_a_part_record_of_another_shape_is_refused(
    tmp_path: Path, record: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from synthetic import phantom, write_kaggle_case

    write_kaggle_case(tmp_path / "in", "CA", *phantom(slices=3, size=32))
    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality")
    command = ["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model), "--quiet"]
    assert main([*command, "--part", "1/2"]) == 0  # the part of no case: its part record alone
    parts = tmp_path / "out" / "report" / "parts"
    (parts / "part-1-of-2.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert main([*command, "--part", "0/2"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"flairseg: error: {parts / 'part-1-of-2.json'} is not a part record flairseg wrote; delete it and run that "
        "part again"
    )


def test_the_case_tables_are_the_ones_the_report_keeps() -> None:
    from flairseg.evaluate import CASE_TABLE_COLUMNS
    from flairseg.outputs import CASE_TABLES

    assert tuple(CASE_TABLE_COLUMNS) == CASE_TABLES


def _nan_pixel(slice_file: Path) -> None:
    from synthetic import with_nan_pixel

    with_nan_pixel(slice_file)


def test_a_case_that_fails_leaves_the_report_until_it_is_predicted_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A case that was predicted and then fails (its input changed into one it cannot read) leaves every table,
    score and figure of the report, failures.csv saying so; its earlier masks are an interrupted case's, which the
    next run replaces."""
    import shutil

    from synthetic import phantom, write_kaggle_case

    for index, name in enumerate(("CA", "CB")):
        write_kaggle_case(tmp_path / "in", name, *phantom(slices=3, size=32, seed=index))
    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality", 100.0)
    command = ["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model), "--quiet"]
    assert main(command) == 0
    report = tmp_path / "out" / "report"
    shutil.copytree(tmp_path / "in" / "CB", tmp_path / "CB")
    _nan_pixel(tmp_path / "in" / "CB" / "CB_2.tif")
    assert main(command) == 1
    reason = (report / "failures.csv").read_text().splitlines()[1]
    assert reason.startswith("CB,") and "its earlier outputs are left out of the report" in reason
    for table in ("metrics", "inputs", "qc", "components"):
        assert [line.split(",")[0] for line in (report / f"{table}.csv").read_text().splitlines()[1:]] == ["CA"]
    assert (
        json.loads((report / "summary.json").read_text())["cases"] == 1
        and "1 cases" in (report / "summary.md").read_text()
    )
    assert sorted(p.name for p in (report / "records").iterdir()) == ["CA_mask.json", "CB_mask.started"]
    assert [p.name for p in (report / "montages").iterdir()] == ["CA_mask.png"]
    page = (report / "report.html").read_text()
    assert "overlay of CA" in page and "overlay of CB" not in page
    shutil.rmtree(tmp_path / "in" / "CB")
    shutil.copytree(tmp_path / "CB", tmp_path / "in" / "CB")
    capsys.readouterr()
    assert main(command) == 0 and "1 cases predicted, 1 already done" in capsys.readouterr().out
    assert json.loads((report / "summary.json").read_text())["cases"] == 2


def test_a_lone_case_that_fails_takes_its_scores_with_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from synthetic import phantom, write_kaggle_case

    case = write_kaggle_case(tmp_path / "in", "CA", *phantom(slices=3, size=32))
    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality", 100.0)
    command = ["predict", "-i", str(case), "-o", str(tmp_path / "out"), "--model", str(model), "--quiet"]
    assert main(command) == 0
    report = tmp_path / "out" / "report"
    _nan_pixel(case / "CA_2.tif")
    capsys.readouterr()
    assert main(command) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("flairseg: error: ") and "NaN" in err and "left out of the report" in err
    assert sorted(p.name for p in report.iterdir() if p.is_file()) == [".flairseg", "report.html"]


@pytest.mark.parametrize("older_record", [False, True])
def test_a_case_predicted_again_with_fewer_slices_keeps_no_old_slice_outputs(
    tmp_path: Path, older_record: bool
) -> None:
    """--overwrite of a Kaggle case that lost its last slice: the mask and skull-stripped slice flairseg wrote for it
    go (the old record names it; an older flairseg's record, which names no outputs, by the image slice it lists), and
    a file of the user's own in the case's folders stays."""
    from synthetic import phantom, write_kaggle_case

    image, tumour = phantom(slices=4, size=32)
    case = write_kaggle_case(tmp_path / "in", "CASE", image, tumour)
    out = tmp_path / "out"
    command = ["predict", "-i", str(tmp_path / "in"), "-o", str(out), "--task", "brain", "--strip", "--quiet"]
    assert main(command) == 0
    assert (out / "CASE" / "CASE_4_brain.tif").is_file() and (out / "stripped_brain" / "CASE" / "CASE_4.tif").is_file()
    (out / "CASE" / "notes.txt").write_text("mine")
    if older_record:
        record = out / "report" / "records" / "CASE_brain.json"
        record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "outputs"}))
    for name in ("CASE_4.tif", "CASE_4_mask.tif"):
        (case / name).unlink()
    assert main([*command, "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "CASE").iterdir()) == [
        *(f"CASE_{k}_brain.tif" for k in (1, 2, 3)),
        "notes.txt",
    ]
    assert sorted(p.name for p in (out / "stripped_brain" / "CASE").iterdir()) == [f"CASE_{k}.tif" for k in (1, 2, 3)]


def _volume(path: Path, seed: int = 0) -> Path:
    """A small float NIfTI volume at ``path``."""
    import nibabel as nib
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.random.default_rng(seed).random((32, 32, 3), np.float32), np.eye(4)), path)
    return path


def _voxels(path: Path) -> int:
    import nibabel as nib
    import numpy as np

    return int(np.asarray(nib.load(path).dataobj).sum())


def test_an_output_changed_since_it_was_predicted_is_not_reused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The record names each output with its sha256: a mask edited since (a hand correction) stops a rerun instead of
    being reused, and scored, as the model's; --overwrite predicts it again, as a plain run does once it is removed. A
    record of an older flairseg, which names no output, is reused by no run: --overwrite predicts the case again."""
    import nibabel as nib
    import numpy as np

    _volume(tmp_path / "in" / "A.nii.gz")
    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality", 100.0)
    out = tmp_path / "out"
    command = ["predict", "-i", str(tmp_path / "in"), "-o", str(out), "--model", str(model), "--quiet"]
    command += ["--probabilities", "--threads", "1"]
    assert main(command) == 0
    record = out / "report" / "records" / "A_mask.json"
    outputs = json.loads(record.read_text())["outputs"]
    named = [("mask", "A_mask.nii.gz"), ("probability", "A_probability.nii.gz")]
    assert [(e["role"], e["file"]) for e in outputs] == named
    mask = out / "A_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 3), np.uint8), np.eye(4)), mask)
    capsys.readouterr()
    assert main(command) == 1 and _voxels(mask) == 0
    assert capsys.readouterr().err.strip() == (
        f"flairseg: error: {mask} changed since case A was predicted into it; pass --overwrite to predict the case "
        "again (the change is then replaced), or move the file away"
    )
    assert main([*command, "--overwrite"]) == 0 and _voxels(mask) > 0
    mask.unlink()
    capsys.readouterr()
    assert main(command) == 0 and "1 cases predicted, 0 already done" in capsys.readouterr().out
    assert main(command) == 0 and "0 cases predicted, 1 already done" in capsys.readouterr().out
    record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "outputs"}))
    assert main(command) == 1 and "has a record that names none of its outputs" in capsys.readouterr().err
    assert main([*command, "--overwrite"]) == 0 and "outputs" in json.loads(record.read_text())


def test_a_recorded_case_is_refused_whatever_its_mask_path_and_replaced_whole_with_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A case recorded in the folder and now of other inputs or settings is refused without --overwrite even where its
    mask would go elsewhere now (a Kaggle case that gained a slice; a volume of another tree with the id of a Kaggle
    case); --overwrite removes the outputs its record names that the new case does not write (no case's id is left
    twice in the folder)."""
    import shutil

    from synthetic import phantom, write_kaggle_case

    case = write_kaggle_case(tmp_path / "t1", "X", *phantom(slices=3, size=32))
    empty = _empty_mask_checkpoint(tmp_path / "empty", "abnormality")
    whole = _empty_mask_checkpoint(tmp_path / "whole", "abnormality", 100.0)
    out = tmp_path / "out"

    def predict(tree: str, model: Path, *extra: str) -> int:
        command = ["predict", "-i", str(tmp_path / tree), "-o", str(out), "--model", str(model), "--quiet"]
        return main([*command, "--threads", "1", *extra])

    assert predict("t1", empty) == 0
    for name in ("X_3.tif", "X_3_mask.tif"):
        shutil.copy(case / name, case / name.replace("3", "4"))
    capsys.readouterr()
    assert predict("t1", whole) == 1 and "case X in" in capsys.readouterr().err
    _volume(tmp_path / "t2" / "X.nii.gz")
    assert predict("t2", empty) == 1 and "made from other inputs (X.nii.gz is new)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["X", "report"]
    assert predict("t2", whole, "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["X_mask.nii.gz", "report"]
    record = json.loads((out / "report" / "records" / "X_mask.json").read_text())
    assert [e["file"] for e in record["outputs"]] == ["X_mask.nii.gz"]


def test_a_mask_file_holds_one_case_and_its_record_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``-o m.nii.gz``: its report folder ``m_flairseg`` holds one case. Another case written into the file takes the
    place of the first's record and rows (--overwrite); a rerun of the first is then refused, never reused over the
    other's mask; ``-o m.nii``, whose report shares the folder, is refused as a case recorded with other outputs."""
    empty = _empty_mask_checkpoint(tmp_path / "empty", "abnormality")
    whole = _empty_mask_checkpoint(tmp_path / "whole", "abnormality", 100.0)
    mask, report = tmp_path / "m.nii.gz", tmp_path / "m_flairseg" / "report"

    def predict(case: str, model: Path, target: Path = mask, *extra: str) -> int:
        source = _volume(tmp_path / "in" / f"{case}.nii.gz", seed=ord(case))
        return main(["predict", "-i", str(source), "-o", str(target), "--model", str(model), "--quiet", *extra])

    assert predict("A", empty) == 0 and predict("B", whole, mask, "--overwrite") == 0
    assert sorted(p.name for p in (report / "records").iterdir()) == ["B_mask.json"]
    assert [row.split(",")[0] for row in (report / "qc.csv").read_text().splitlines()[1:]] == ["B"]
    capsys.readouterr()
    assert predict("A", empty) == 1 and _voxels(mask) > 0  # B's mask, not taken for A's
    assert "m_flairseg holds the report of case B, which the report of case A" in capsys.readouterr().err
    assert predict("B", whole) == 0 and "0 cases predicted, 1 already done" in capsys.readouterr().out
    assert predict("B", whole, tmp_path / "m.nii") == 1 and not (tmp_path / "m.nii").exists()
    err = capsys.readouterr().err
    assert "its record names the mask ../m.nii.gz, this run writes the mask ../m.nii" in err


def test_two_cases_predicted_into_one_mask_file_at_once_are_written_one_after_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mask-file run holds its report folder's one case, not its own case id: a run of another case into the file
    meanwhile waits, then finds its mask and record (and is refused without --overwrite)."""
    import threading

    from flairseg import predict
    from flairseg.outputs import held_case, run_report

    model = _empty_mask_checkpoint(tmp_path / "empty", "abnormality")
    source, mask = _volume(tmp_path / "in" / "A.nii.gz"), tmp_path / "m.nii.gz"
    segmented, segment = threading.Event(), predict._segment
    monkeypatch.setattr(predict, "_segment", lambda *a: (segment(*a), segmented.set())[0])
    done: list[object] = []
    with held_case(run_report(tmp_path / "m_flairseg"), "mask-file"):  # as another run writing case B there
        worker = threading.Thread(
            target=lambda: done.append(
                predict.predict_tree(source, tmp_path / "m_flairseg", predict.Segmenter(model), mask_file=mask)
            )
        )
        worker.start()
        assert segmented.wait(timeout=120)
        worker.join(timeout=2.0)  # ample for a run that would not wait to write its case
        assert worker.is_alive() and not mask.exists()
    worker.join(timeout=120)
    assert done and mask.is_file()


def test_a_reused_case_is_scored_only_against_a_truth_on_its_grid(
    sample_case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --truth given to a rerun is checked against the image before the case is reused and scored: a NIfTI truth
    of a Kaggle case (TIFF slices have no place in the world) is refused, and the report stays as it was."""
    import nibabel as nib
    import numpy as np

    from flairseg.io import read_case

    out = tmp_path / "out"
    command = ["predict", "-i", str(sample_case), "-o", str(out), "--quiet"]
    assert main(command) == 0
    metrics = (out / "report" / "metrics.csv").read_text()
    mask = read_case(sample_case).mask.transpose(2, 1, 0).astype(np.uint8)
    truth = tmp_path / "truth" / f"{sample_case.name}_mask.nii.gz"
    truth.parent.mkdir()
    nib.save(nib.Nifti1Image(mask, np.eye(4)), truth)
    capsys.readouterr()
    assert main([*command, "--truth", str(truth.parent)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"flairseg: error: case {sample_case.name}: the image {sample_case} is Kaggle TIFF slices and its truth "
        f"{truth} a NIfTI volume, whose grids cannot be compared; predict from images in the truth's layout and "
        "score that"
    )
    assert (out / "report" / "metrics.csv").read_text() == metrics


def test_a_truth_that_fails_to_read_is_its_cases_listed_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --truth whose header passes but whose voxels cannot be read (a file cut short) fails its case alone: listed
    in failures.csv with its reason, nothing of the case written, the other case predicted and the report merged."""
    import csv

    import nibabel as nib
    import numpy as np

    for folder in ("in", "truth"):
        (tmp_path / folder).mkdir()
    for name in ("A", "B"):
        image = np.random.default_rng(0).random((32, 32, 3), np.float32)
        nib.save(nib.Nifti1Image(image, np.eye(4)), tmp_path / "in" / f"{name}.nii.gz")
        truth = np.random.default_rng(1).integers(0, 2, (32, 32, 3), np.uint8)  # the compressed stream ends in voxels
        nib.save(nib.Nifti1Image(truth, np.eye(4)), tmp_path / "truth" / f"{name}_mask.nii.gz")
    cut = tmp_path / "truth" / "B_mask.nii.gz"  # its header intact, the end of its voxels gone
    cut.write_bytes(cut.read_bytes()[:-100])
    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality", 100.0)
    out, report = tmp_path / "out", tmp_path / "out" / "report"
    command = ["predict", "-i", str(tmp_path / "in"), "-o", str(out), "--model", str(model), "--quiet"]
    assert main([*command, "--truth", str(tmp_path / "truth")]) == 1
    assert capsys.readouterr().err.strip() == (
        "flairseg: error: 1 of 2 cases could not be read or predicted (B); the others were predicted; the reasons are "
        f"in {report / 'failures.csv'}"
    )
    with (report / "failures.csv").open() as handle:
        (failure,) = csv.DictReader(handle)
    assert failure["case"] == "B" and failure["reason"].startswith(f"cannot read {cut}: not a valid NIfTI file")
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["A_mask.nii.gz"]
    assert [line.split(",")[0] for line in (report / "metrics.csv").read_text().splitlines()[1:]] == ["A"]
    assert (report / "report.html").is_file() and not (report / "records" / "B_mask.started").exists()


def test_a_partly_labelled_data_folder_is_the_truth_of_predict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`predict -i data --truth data`, images beside their masks and one image (B) without a mask: both cases are
    predicted, A alone is scored, and the summary counts the cases with truth."""
    import nibabel as nib
    import numpy as np

    data = tmp_path / "data"
    data.mkdir()
    for name in ("A", "B"):
        image = np.random.default_rng(0).random((32, 32, 3), np.float32)
        nib.save(nib.Nifti1Image(image, np.eye(4)), data / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((32, 32, 3), np.uint8), np.eye(4)), data / "A_mask.nii.gz")
    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality", 100.0)
    out = tmp_path / "out"
    command = ["predict", "-i", str(data), "-o", str(out), "--model", str(model), "--truth", str(data), "--quiet"]
    assert main(command) == 0, capsys.readouterr().err
    summary = capsys.readouterr().out
    assert summary.startswith("2 cases predicted") and "over 1 cases with truth" in summary
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["A_mask.nii.gz", "B_mask.nii.gz"]
    assert [line.split(",")[0] for line in (out / "report" / "metrics.csv").read_text().splitlines()[1:]] == ["A"]


def test_a_reused_case_is_drawn_with_the_truth_it_is_scored_against(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The figures of a reused case outline the truth given now, as those of a fresh run do: redrawn after its truth
    masks changed (kept as they are while it stays the same), and without a truth when it has none any more."""
    import numpy as np
    import tifffile
    from synthetic import phantom, write_kaggle_case

    case = write_kaggle_case(tmp_path / "in", "CASE", *phantom(slices=3, size=32))
    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality", 100.0)

    def predict(out: Path) -> tuple[bytes | None, bytes]:
        """The outline GIF (None: none) and montage of a run into ``out``, which must reuse the case there."""
        command = ["predict", "-i", str(tmp_path / "in"), "-o", str(out), "--model", str(model), "--quiet"]
        assert main(command) == 0
        report = out / "report"
        gif = report / "gifs" / "CASE.gif"
        return (gif.read_bytes() if gif.exists() else None), (report / "montages" / "CASE_mask.png").read_bytes()

    first = predict(tmp_path / "out")
    for path in case.glob("*_mask.tif"):  # the truth inverted
        tifffile.imwrite(path, np.where(tifffile.imread(path) > 0, 0, 255).astype(np.uint8), photometric="minisblack")
    capsys.readouterr()
    inverted = predict(tmp_path / "out")
    assert "0 cases predicted, 1 already done" in capsys.readouterr().out
    assert inverted == predict(tmp_path / "fresh") and inverted[0] != first[0] and inverted[1] != first[1]
    montage = tmp_path / "out" / "report" / "montages" / "CASE_mask.png"
    drawn = montage.stat().st_mtime_ns
    assert predict(tmp_path / "out") == inverted and montage.stat().st_mtime_ns == drawn  # the same truth: kept
    for path in case.glob("*_mask.tif"):
        path.unlink()
    without = predict(tmp_path / "out")
    assert without[0] is None and without == predict(tmp_path / "fresh-without")


def _weights_recorded(record: Path) -> str | None:
    """The weights sha256 a case's record names; None while it has none (not written yet, or given way)."""
    try:
        return json.loads(record.read_text())["weights_sha256"]
    except FileNotFoundError:
        return None


def test_a_case_another_process_holds_is_waited_for_then_predicted_afresh(tmp_path: Path) -> None:
    """Two --overwrite runs into one folder: a run reaching a case that another process holds (``held_case``, which
    the other run takes while it checks and writes the case) writes nothing of it until it is let go, then predicts
    it again, so that every case's mask and record are one run's, never a mix of two models' slices."""
    import subprocess
    import sys
    import time

    from synthetic import write_phantom_tree
    from flairseg.outputs import held_case, run_report

    cases = write_phantom_tree(tmp_path / "in", "C_", 3, slices=4, size=32)
    empty = _empty_mask_checkpoint(tmp_path / "empty", "abnormality")
    whole = _empty_mask_checkpoint(tmp_path / "whole", "abnormality", 100.0)
    command = ["predict", "-i", str(cases), "--quiet", "--threads", "1"]
    assert main([*command, "-o", str(tmp_path / "whole_run"), "--model", str(whole)]) == 0
    out = tmp_path / "out"
    assert main([*command, "-o", str(out), "--model", str(empty)]) == 0
    report, expected = run_report(out), run_report(tmp_path / "whole_run")

    def masks(folder: Path, case: str) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((folder / case).glob("*_mask.tif"))}

    before = masks(out, "C_1"), report.record("C_1_mask").read_bytes()
    with held_case(report, "C_1_mask"):
        other = subprocess.Popen(
            [sys.executable, "-m", "flairseg", *command, "-o", str(out), "--model", str(whole), "--overwrite"]
        )
        deadline = time.monotonic() + 120
        while _weights_recorded(report.record("C_0_mask")) != _weights_recorded(expected.record("C_0_mask")):
            assert other.poll() is None and time.monotonic() < deadline, "the run ended before the held case"
            time.sleep(0.02)  # polling for the event: the case before the held one written
        time.sleep(2.0)  # ample for a run that would not wait to write the held case
        assert other.poll() is None  # waiting for the held case
        assert (masks(out, "C_1"), report.record("C_1_mask").read_bytes()) == before
    assert other.wait(timeout=120) == 0
    for case in ("C_0", "C_1", "C_2"):
        assert masks(out, case) == masks(tmp_path / "whole_run", case)
        key = f"{case}_mask"
        assert _weights_recorded(report.record(key)) == _weights_recorded(expected.record(key))
    assert not list(out.rglob("*.lock"))


def test_an_overwrite_stopped_midway_is_predicted_again_by_a_plain_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--overwrite with another model stopped (Ctrl-C, SIGTERM) while it replaces a Kaggle case's mask slices one by
    one: the case's old record went before them, so the next run without --overwrite predicts the case again instead
    of reusing a mask of two models' slices under the first one's record."""
    import itertools

    from synthetic import phantom, write_kaggle_case
    from flairseg import kaggle

    image, truth = phantom(slices=6, size=32)
    write_kaggle_case(tmp_path / "in", "CASE", image, truth)
    empty = _empty_mask_checkpoint(tmp_path / "empty", "abnormality")
    whole = _empty_mask_checkpoint(tmp_path / "whole", "abnormality", 100.0)
    out = tmp_path / "out"
    command = ["predict", "-i", str(tmp_path / "in"), "-o", str(out), "--quiet", "--threads", "1"]
    assert main([*command, "--model", str(empty)]) == 0
    first = {p: p.read_bytes() for p in sorted((out / "CASE").glob("*_mask.tif"))}
    write_tiffs = kaggle._write_tiffs

    def stopped_midway(folder: Path, planes) -> None:
        write_tiffs(folder, itertools.islice(planes, 3))
        raise KeyboardInterrupt

    monkeypatch.setattr(kaggle, "_write_tiffs", stopped_midway)
    capsys.readouterr()
    assert main([*command, "--model", str(whole), "--overwrite"]) == 130
    stopped = "no file was left half-written, and nothing unfinished is taken for finished by a rerun"
    assert capsys.readouterr().err.strip() == f"flairseg: interrupted; {stopped}"
    assert 0 < sum(path.read_bytes() != old for path, old in first.items()) <= 3  # a mask of both models' slices
    records = out / "report" / "records"
    assert sorted(p.name for p in records.iterdir()) == ["CASE_mask.started"]
    monkeypatch.undo()
    assert main([*command, "--model", str(empty)]) == 0
    assert "1 cases predicted, 0 already done" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in first} == first and sorted(p.name for p in records.iterdir()) == [
        "CASE_mask.json"
    ]


def test_a_report_folder_flairseg_did_not_write_is_never_written_into(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user's own report folder where the run's goes (report.html, metrics.csv of their own) stops the run before
    anything is written, with --overwrite too (writing the report would mark the folder flairseg's, and a later
    --overwrite would replace it whole); a report of an older flairseg that did not mark its reports is flairseg's
    (its cases' records say whose it is)."""
    from synthetic import write_phantom_tree

    cases = write_phantom_tree(tmp_path / "in", "C_", 1, slices=3, size=32)
    study = tmp_path / "study"
    (study / "report").mkdir(parents=True)
    (study / "report" / "report.html").write_text("my own review")
    (study / "report" / "metrics.csv").write_text("case,score\nx,1\n")
    model = _empty_mask_checkpoint(tmp_path / "empty", "abnormality")
    command = ["predict", "-i", str(cases), "-o", str(study), "--model", str(model), "--quiet", "--threads", "1"]
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "report is in the way of the run's report and flairseg has no record of writing it" in err
    assert sorted(p.name for p in study.rglob("*")) == ["metrics.csv", "report", "report.html"]
    assert (study / "report" / "report.html").read_text() == "my own review"
    assert main([*command, "--overwrite"]) == 1
    assert (study / "report" / "report.html").read_text() == "my own review"
    assert not (study / "report" / ".flairseg").exists()
    shutil.rmtree(study / "report")
    assert main(command) == 0
    (study / "report" / ".flairseg").unlink()  # as an older flairseg left it: its records alone
    assert main(command) == 0
    assert (study / "report" / ".flairseg").is_file()


def _two_part_tree(tmp_path: Path) -> list[str]:
    """Kaggle cases A (4 slices: part 0 of 2) and B (3 slices: part 1) and a tiny model; the predict command."""
    from synthetic import phantom, write_kaggle_case

    write_kaggle_case(tmp_path / "in", "A", *phantom(slices=4, size=32))
    write_kaggle_case(tmp_path / "in", "B", *phantom(slices=3, size=32, seed=1))
    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality")
    return ["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model), "--quiet"]


def test_a_part_with_other_settings_than_the_folders_cases_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Part 1 of 2 with --tta after part 0 without: refused before it writes anything; with --overwrite each part
    replaces its own cases with the new settings, the other part's cases named in a note until that part has run."""
    command = _two_part_tree(tmp_path)
    out = tmp_path / "out"
    assert main([*command, "--part", "0/2"]) == 0
    capsys.readouterr()
    assert main([*command, "--part", "1/2", "--tta"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"flairseg: error: case A in {out} was predicted with another tta (false; this run: true); use the same model "
        "and settings for every part and run into one folder (--overwrite replaces the cases of this run's input "
        "alone), or another output folder"
    )
    assert not (out / "B").exists() and not (out / "report" / "records" / "B_mask.json").exists()
    assert main([*command, "--part", "1/2"]) == 0  # the same settings: merged
    capsys.readouterr()
    assert main([*command[:-1], "--part", "1/2", "--tta", "--overwrite"]) == 0
    assert capsys.readouterr().err.startswith(
        f"note: case A in {out} was predicted with another tta (false; this run: true): its part has not run again "
        "with these settings yet\n"
    )
    assert main([*command[:-1], "--part", "0/2", "--tta", "--overwrite"]) == 0
    assert "note:" not in capsys.readouterr().err
    records = [json.loads(p.read_text()) for p in sorted((out / "report" / "records").glob("*.json"))]
    assert [(r["case"], r["tta"]) for r in records] == [("A", True), ("B", True)]


def test_a_mask_file_takes_another_case_with_other_settings_under_overwrite(tmp_path: Path) -> None:
    """`-o lesion.nii.gz` holds one case: another case with other settings replaces it under --overwrite."""
    import nibabel as nib
    import numpy as np
    from synthetic import phantom

    for name, seed in (("A", 0), ("B", 1)):
        nib.save(
            nib.Nifti1Image(phantom(slices=3, size=32, seed=seed)[0][..., 0], np.eye(4)), tmp_path / f"{name}.nii.gz"
        )
    model = str(_empty_mask_checkpoint(tmp_path / "model", "abnormality"))
    options = ["-o", str(tmp_path / "lesion.nii.gz"), "--model", model, "--quiet"]
    assert main(["predict", "-i", str(tmp_path / "A.nii.gz"), *options]) == 0
    assert main(["predict", "-i", str(tmp_path / "B.nii.gz"), *options, "--tta", "--overwrite"]) == 0
    records = sorted((tmp_path / "lesion_flairseg" / "report" / "records").glob("*.json"))
    assert [(json.loads(p.read_text())["case"], json.loads(p.read_text())["tta"]) for p in records] == [("B", True)]


def test_a_part_that_finds_another_settings_part_beside_it_when_done_writes_no_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two parts started together, one with --tta: each found the folder empty, so the later to finish refuses to
    merge the mix into one report."""
    from flairseg import predict

    command = _two_part_tree(tmp_path)
    predict_cases = predict._predict_cases

    def with_the_other_part_beside(*args, **kwargs):
        monkeypatch.setattr(predict, "_predict_cases", predict_cases)
        assert main([*command, "--part", "1/2", "--tta"]) == 0  # runs while this part predicts
        return predict_cases(*args, **kwargs)

    monkeypatch.setattr(predict, "_predict_cases", with_the_other_part_beside)
    capsys.readouterr()
    assert main([*command, "--part", "0/2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"flairseg: error: case B in {tmp_path / 'out'} was predicted with another tta (true; this")
    assert not (tmp_path / "out" / "report" / "parts" / "part-0-of-2.json").exists()


def test_a_part_does_not_list_a_case_predicted_since_its_part_failed_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Part 1 fails B (a truncated slice); B is repaired and a plain run predicts it; part 0 run again then finds
    B's failure in part 1's record stale: exit 0, no failures.csv."""
    command = _two_part_tree(tmp_path)
    slice_file = tmp_path / "in" / "B" / "B_2.tif"
    tifffile.imwrite(slice_file, tifffile.imread(slice_file), photometric="rgb", compression="zlib")
    good = slice_file.read_bytes()
    with tifffile.TiffFile(slice_file) as tiff:
        middle = int(tiff.pages[0].dataoffsets[0]) + int(tiff.pages[0].databytecounts[0]) // 2
    broken = good[:middle] + bytes(16) + good[middle + 16 :]  # its headers pass; its pixels fail to decode
    slice_file.write_bytes(broken)
    assert main([*command, "--part", "0/2"]) == 0
    assert main([*command, "--part", "1/2"]) == 1
    failures = tmp_path / "out" / "report" / "failures.csv"
    assert failures.read_text().splitlines()[1].startswith("B,")
    slice_file.write_bytes(good)
    assert main(command) == 0 and not failures.exists()
    capsys.readouterr()
    assert main([*command, "--part", "0/2"]) == 0, capsys.readouterr().err
    assert not failures.exists()


def test_the_part_records_of_a_run_of_very_many_parts_are_found_by_name(tmp_path: Path) -> None:
    """A run split into 10^23 parts (more than its cases) reads the records there are, not every part's."""
    from flairseg.outputs import ReportFolder
    from flairseg.predict import _failures_of_parts

    report = ReportFolder(tmp_path / "report")
    parts = 10**23
    report.part_record(0, parts).parent.mkdir(parents=True)
    record = {"part": 0, "parts": parts, "predicted": 1, "skipped": 0, "cases": ["A"], "failures": [["A", "why"]]}
    report.part_record(0, parts).write_text(json.dumps(record))
    report.part_record(5, 8).write_text(json.dumps(record))  # another split's: not this run's
    found: list = []
    worker = threading.Thread(
        target=lambda: found.append(_failures_of_parts(report, parts, "abnormality")), daemon=True
    )
    worker.start()
    worker.join(timeout=30)  # probing every part would never end
    assert found == [([("A", "why")], 1)]


def test_the_parts_of_a_brain_run_and_a_tumour_run_into_one_folder_keep_their_own_records(tmp_path: Path) -> None:
    """Part 0 of 2 of a tumour run and part 0 of 2 of a brain run into one folder: each run's failures are its own
    parts' (one record name for both would let the later run's replace the earlier's)."""
    from flairseg.outputs import ReportFolder
    from flairseg.predict import _failures_of_parts, _write_part_record

    report = ReportFolder(tmp_path / "report")
    _write_part_record(report, (0, 2, "abnormality"), 0, 0, [], [("T", "tumour run's reason")])
    _write_part_record(report, (0, 2, "brain"), 0, 0, [], [("B", "brain run's reason")])
    assert _failures_of_parts(report, 2, "abnormality") == ([("T", "tumour run's reason")], 0)
    assert _failures_of_parts(report, 2, "brain") == ([("B", "brain run's reason")], 0)


def test_a_mask_file_whose_run_did_not_finish_is_never_read_as_a_mask(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-o m.nii.gz`` written, then the volume given a NaN and the run repeated (it fails the case, keeping the
    earlier mask): the mask file, its report in ``m_flairseg``, is refused by shape, whatever it is named."""
    import nibabel as nib
    import numpy as np

    model = _empty_mask_checkpoint(tmp_path / "model", "abnormality")
    volume, mask = _volume(tmp_path / "in" / "a.nii.gz"), tmp_path / "m.nii.gz"
    command = ["predict", "-i", str(volume), "-o", str(mask), "--model", str(model), "--quiet"]
    assert main(command) == 0
    data = np.asarray(nib.load(volume).dataobj).copy()
    data[5, 5, 1] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), volume)
    assert main(command) == 1
    capsys.readouterr()
    assert main(["shape", "-i", str(mask), "-o", str(tmp_path / "s.csv"), "--quiet"]) == 1
    assert "which its prediction run began and did not finish" in capsys.readouterr().err


def test_a_run_stopped_after_it_replaced_a_case_leaves_no_stale_merged_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two volumes predicted by one model, then again with --overwrite by another, the run stopped at the second case
    (a file of the user's in its way) after it replaced the first: no merged table or page still describes the first
    case's old mask; the next complete run merges them again."""
    out = tmp_path / "out"
    for seed, case in enumerate(("A", "B")):
        _volume(tmp_path / "in" / f"{case}.nii.gz", seed)
    command = ["predict", "-i", str(tmp_path / "in"), "-o", str(out), "--quiet"]
    assert main([*command, "--model", str(_empty_mask_checkpoint(tmp_path / "m1", "abnormality"))]) == 0
    assert (out / "report" / "qc.csv").is_file() and (out / "report" / "report.html").is_file()
    (out / "B_probability.nii.gz").write_text("the user's")
    other = ["--model", str(_empty_mask_checkpoint(tmp_path / "m2", "abnormality", 100.0)), "--overwrite"]
    assert main([*command, *other, "--probabilities"]) == 1
    assert "B_probability.nii.gz is in the way" in capsys.readouterr().err
    assert not (out / "report" / "qc.csv").exists() and not (out / "report" / "report.html").exists()
    (out / "B_probability.nii.gz").unlink()
    assert main([*command, *other, "--probabilities"]) == 0 and (out / "report" / "report.html").is_file()


def test_a_rerun_with_other_settings_is_refused_before_a_new_case_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Volumes A and B predicted, then A0 added (it comes first) and the folder predicted again with TTA, without
    --overwrite: refused for A's record, made without TTA, before A0 is predicted."""
    out, model = tmp_path / "out", _empty_mask_checkpoint(tmp_path / "m", "abnormality")
    for seed, case in enumerate(("A", "B")):
        _volume(tmp_path / "in" / f"{case}.nii.gz", seed)
    command = ["predict", "-i", str(tmp_path / "in"), "-o", str(out), "--model", str(model), "--quiet"]
    assert main(command) == 0
    _volume(tmp_path / "in" / "A0.nii.gz", 2)
    capsys.readouterr()
    assert main([*command, "--tta"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"flairseg: error: case A in {out} was made with another tta (false -> true); pass --overwrite to predict it "
        "again, or write elsewhere"
    )
    assert not (out / "A0_mask.nii.gz").exists() and not (out / "report" / "records" / "A0_mask.json").exists()
