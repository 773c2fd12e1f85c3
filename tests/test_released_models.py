"""The released-model registry: names, defaults, hash pinning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from flairseg import released_models
from flairseg.checkpoint import load_model, save_model, sha256_of
from flairseg.config import ModelConfig, PreprocessConfig
from flairseg.errors import WeightsError
from flairseg.model import UNet


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    config = ModelConfig(features=4, depth=2, batch_norm=True)
    torch.manual_seed(0)
    save_model(
        UNet(features=4, depth=2, batch_norm=True),
        config,
        PreprocessConfig(size=64),
        folder / "tiny",
        task="abnormality",
    )
    entry = {
        "name": "tiny-abnormality",
        "task": "abnormality",
        "checkpoint": "tiny.json",
        "sha256": sha256_of(folder / "tiny.safetensors"),
        "default": True,
        "description": "test",
        "metrics": {},
    }
    (folder / "registry.json").write_text(json.dumps({"models": [entry]}))
    monkeypatch.setattr(released_models, "models_folder", lambda: folder)
    return folder


def test_resolve_default_name_and_path(fake_package: Path) -> None:
    assert released_models.resolve(None) == fake_package / "tiny.json"
    assert released_models.resolve("tiny-abnormality") == fake_package / "tiny.json"
    assert released_models.resolve(fake_package / "tiny.json") == fake_package / "tiny.json"
    with pytest.raises(WeightsError, match="did you mean 'tiny-abnormality'"):
        released_models.resolve("tiny-abnormalty")
    with pytest.raises(WeightsError, match="no released brain model"):
        released_models.resolve(None, task="brain")


def test_resolve_refuses_tampered_weights(fake_package: Path) -> None:
    data = bytearray((fake_package / "tiny.safetensors").read_bytes())
    data[-1] ^= 1
    (fake_package / "tiny.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="registered sha256"):
        released_models.resolve("tiny-abnormality")


def test_resolve_refuses_an_edited_description(fake_package: Path) -> None:
    registry = json.loads((fake_package / "registry.json").read_text())
    registry["models"][0]["json_sha256"] = sha256_of(fake_package / "tiny.json")
    (fake_package / "registry.json").write_text(json.dumps(registry))
    assert released_models.resolve("tiny-abnormality") == fake_package / "tiny.json"
    meta = json.loads((fake_package / "tiny.json").read_text())
    meta["recipe"] = {"threshold": 0.99}  # a valid value, but not the released one
    (fake_package / "tiny.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="changed after release"):
        released_models.resolve("tiny-abnormality")


def test_a_renamed_copy_of_a_released_model_passes_and_an_edited_one_does_not(
    fake_package: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(fake_package / "tiny.safetensors", copy / "mine.safetensors")
    meta = json.loads((fake_package / "tiny.json").read_text()) | {"name": "mine", "weights": "mine.safetensors"}
    (copy / "mine.json").write_text(json.dumps(meta))
    assert released_models.resolve(copy / "mine.json") == copy / "mine.json"
    (copy / "mine.json").write_text(json.dumps(meta | {"recipe": {"threshold": 0.9}}))
    with pytest.raises(WeightsError, match="weights of the released model tiny-abnormality with settings other"):
        released_models.resolve(copy / "mine.json")


def test_a_released_name_that_also_names_local_files_is_refused(
    fake_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files in the current folder named like a released model (a fine-tuned copy kept under its name) never replace
    it silently: the bare name is refused, ./NAME.json names the local file; a folder of that name is no checkpoint."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "tiny-abnormality").mkdir()
    assert released_models.resolve("tiny-abnormality") == fake_package / "tiny.json"
    save_model(
        UNet(features=2, depth=1), ModelConfig(features=2, depth=1), PreprocessConfig(), work / "tiny-abnormality"
    )
    with pytest.raises(WeightsError) as refused:
        released_models.resolve("tiny-abnormality")
    assert str(refused.value) == (
        "tiny-abnormality names both the released model tiny-abnormality and tiny-abnormality.safetensors, "
        "tiny-abnormality.json in the current folder; give ./tiny-abnormality.json for the local checkpoint, or "
        "rename it to use the released model"
    )
    for local in ("./tiny-abnormality.json", "tiny-abnormality.json", str(work / "tiny-abnormality")):
        assert released_models.resolve(local) == Path(local)


def test_a_released_name_run_from_its_own_folder_is_the_release(
    fake_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = json.loads((fake_package / "registry.json").read_text())
    registry["models"][0]["name"] = "tiny"  # named as its files are
    (fake_package / "registry.json").write_text(json.dumps(registry))
    monkeypatch.chdir(fake_package)
    assert released_models.resolve("tiny") == fake_package / "tiny.json"


def test_shipped_default_model_verifies_and_loads() -> None:
    from flairseg.checkpoint import load_model

    path = released_models.resolve(None, task="abnormality")
    model, meta = load_model(path, task="abnormality")
    assert meta["name"] == "abnormality-lgg-cv5-v3" and meta["members"] == 5 and len(model.members) == 5
    assert sum("TCGA_CS_4942_19970222" in fold for fold in meta["test_folds"]) == 1  # held out by exactly one fold
    assert sum(len(fold) for fold in meta["test_folds"]) == 88


def test_paths_inside_checkpoint_metadata_are_ignored(tmp_path: Path) -> None:
    source = released_models.resolve(None)
    for suffix in (".json", ".safetensors"):
        shutil.copy(source.with_suffix(suffix), tmp_path / f"m{suffix}")
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["weights"] = "../../../etc/passwd"  # a hostile path: the tensors are always NAME.safetensors beside NAME.json
    (tmp_path / "m.json").write_text(json.dumps(meta))
    model, loaded = load_model(tmp_path / "m.json")
    assert loaded["sha256"] == meta["sha256"] and sum(p.numel() for p in model.parameters()) > 1e6


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("preprocess", "std", 0.0, "std 0.0 is not in \\[0.001, 1000\\]"),
        ("preprocess", "size", 100000, "size 100000 is not in 16..1024"),
        ("preprocess", "peak_percentile", 5.0, r"peak_percentile 5.0 is not in \[90, 100\]"),
        (
            "preprocess",
            "variant",
            "fancy",
            r"variant must be one of \('paper-abnormality', 'paper-brain', 'port'\), not 'fancy'",
        ),
        ("preprocess", "missing", "guess", r"missing must be one of \('copy-flair', 'zeros', 'error'\), not 'guess'"),
        ("recipe", "threshold", float("nan"), "threshold nan is not a probability"),
        ("recipe", "threshold", 1.5, "threshold 1.5 is not a probability"),
        ("postprocess", "rule", "smallest", "postprocessing setting is invalid"),
    ],
)
def test_out_of_range_checkpoint_values_are_refused(
    fake_package: Path, section: str, key: str, value: object, message: str
) -> None:
    from flairseg.predict import Segmenter

    path = fake_package / "tiny.json"
    meta = json.loads(path.read_text())
    meta.setdefault(section, {})[key] = value
    path.write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match=message):
        Segmenter(path)


def test_models_command_names_the_licence_and_the_citation(capsys: pytest.CaptureFixture[str]) -> None:
    from flairseg.cli import main
    from flairseg.version import __version__

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "abnormality-lgg-cv5-v3" in out and "CC BY-NC-SA 4.0" in out and "10.1016/j.compbiomed.2019.05.002" in out
    root = Path(__file__).parents[1]
    citation = (root / "CITATION.cff").read_text()
    assert f"version: {__version__}\n" in citation and "10.1016/j.compbiomed.2019.05.002" in citation
    assert (root / "LICENSE").read_text().startswith("MIT License")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("format_version", "2", "format version '2'; a checkpoint's format version is a whole number"),
        ("format_version", None, "format version None"),
        ("task", "foo", "is for task 'foo'; flairseg knows abnormality, brain"),
        ("task", None, "is for task None"),
        ("model", [1, 2], r"model must be a mapping of ModelConfig fields, not \[1, 2\]"),
        ("model", {"depth": -1}, "model.depth -1 is not a whole number >= 1"),
        ("model", {"depth": 7}, "model.depth 7 would halve the 64-pixel input below one pixel"),
        ("model", {"depth": 3, "features": 10**6}, "model.features 1000000 is not a whole number in 1..1024"),
        ("members", "five", "members 'five'"),
        ("members", 10**9, "members 1000000000; an ensemble size is a whole number in 0..64"),
    ],
)
def test_tampered_checkpoint_records_are_refused(fake_package: Path, key: str, value: object, message: str) -> None:
    from flairseg.predict import Segmenter

    path = fake_package / "tiny.json"
    meta = json.loads(path.read_text())
    meta[key] = {**meta[key], **value} if isinstance(value, dict) else value
    path.write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match=message):
        Segmenter(path)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "not readable JSON"),
        ("{}", "no list of models"),
        ('{"models": [1]}', "an entry is not an object of"),
        ('{"models": [{"name": "m"}]}', "an entry's task is missing or not a str"),
        (
            '{"models": [{"name": "m", "task": "brain", "checkpoint": 7, "sha256": "", "default": true, '
            '"description": "", "metrics": {}}]}',
            "an entry's checkpoint is missing or not a str",
        ),
        (
            '{"models": [{"name": "m", "task": "brain", "checkpoint": "../m.json", "sha256": "", "default": true, '
            '"description": "", "metrics": {}}]}',
            "checkpoint '../m.json' is not a file name in the models folder",
        ),
    ],
)
def test_a_damaged_registry_is_one_line_naming_it(
    text: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry.json damaged or edited by hand (a broken install) is refused in one line, never a traceback."""
    (tmp_path / "registry.json").write_text(text)
    monkeypatch.setattr(released_models, "models_folder", lambda: tmp_path)
    with pytest.raises(WeightsError, match=f"registry of released models .* is damaged \\({reason}"):
        released_models.registry()
