"""The radiogenomics commands: `flairseg shape` on mask trees and `flairseg associate` on features + clinical data."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import stats

from synthetic import write_kaggle_case
from flairseg.cli import main
from flairseg.cases import patient_id
from flairseg.radiogenomics import PAPER_HYPOTHESES, Hypothesis, associate, parse_hypothesis, shape_tree
from flairseg.shape import bounding_ellipsoid_volume_ratio


def _ball(slices: int = 12, size: int = 40, radius: float = 5.0) -> np.ndarray:
    z, y, x = (
        np.mgrid[:slices, :size, :size]
        - np.array([(slices - 1) / 2, (size - 1) / 2, (size - 1) / 2])[:, None, None, None]
    )
    return np.sqrt(z**2 + y**2 + x**2) <= radius


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_shape_tree_on_kaggle_masks(tmp_path: Path) -> None:
    ball = _ball()
    image = np.zeros(ball.shape + (3,), dtype=np.uint8)
    write_kaggle_case(tmp_path / "masks", "TCGA_AA_0001_20000101", image, ball)
    write_kaggle_case(tmp_path / "masks", "TCGA_AA_0002_20000101", image, np.zeros_like(ball))
    result = shape_tree(tmp_path / "masks", tmp_path / "features.csv", quiet=True)
    rows = {r["case_id"]: r for r in _rows(tmp_path / "features.csv")}
    assert result.empty == ["TCGA_AA_0002_20000101"] and set(rows) == {"TCGA_AA_0001_20000101", "TCGA_AA_0002_20000101"}
    full = rows["TCGA_AA_0001_20000101"]
    assert float(full["volume"]) == ball.sum() and int(full["slice_index"]) == int(np.argmax(ball.sum(axis=(1, 2))))
    assert float(full["bevr"]) == pytest.approx(bounding_ellipsoid_volume_ratio(ball), rel=1e-6)
    assert float(full["asd"]) < 0.1 and float(full["mf"]) < 0.1
    assert rows["TCGA_AA_0002_20000101"]["bevr"] == "" and rows["TCGA_AA_0002_20000101"]["asd"] == ""


def test_shape_command_on_nifti_masks_uses_spacing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ball = _ball()
    folder = tmp_path / "nifti"
    folder.mkdir()
    affine = np.diag([0.5, 0.8, 2.0, 1.0])  # anisotropic voxels
    nib.save(nib.Nifti1Image(ball.transpose(2, 1, 0).astype(np.uint8), affine), folder / "p1_mask.nii.gz")
    out = tmp_path / "features.csv"
    assert main(["shape", "-i", str(folder), "-o", str(out), "--quiet"]) == 0
    assert "1 cases" in capsys.readouterr().out
    row = _rows(out)[0]
    assert row["case_id"] == "p1" and float(row["volume"]) == pytest.approx(ball.sum() * 0.5 * 0.8 * 2.0)
    # BEVR is a ratio of volumes under the same affine map: the grid's spacing does not change it
    assert float(row["bevr"]) == pytest.approx(bounding_ellipsoid_volume_ratio(ball), rel=1e-4)
    assert main(["shape", "-i", str(folder), "-o", str(out), "--quiet"]) == 1  # exists: not replaced
    assert capsys.readouterr().err.strip().startswith("flairseg: error: output")


@pytest.mark.parametrize("value", [-1, 0.3])
def test_shape_refuses_a_mask_that_is_not_labels(value: float, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A -1 or 0.3 mask is refused as evaluate refuses it, not measured as tumour."""
    folder = tmp_path / "nifti"
    folder.mkdir()
    nib.save(nib.Nifti1Image(np.where(_ball(), value, 0).astype(np.float32), np.eye(4)), folder / "p1_mask.nii.gz")
    assert main(["shape", "-i", str(folder), "-o", str(tmp_path / "features.csv"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("flairseg: error: case p1: the mask p1_mask.nii.gz holds the values") and err.count("\n") == 1
    assert not (tmp_path / "features.csv").exists()


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_associate_against_scipy_and_bonferroni(tmp_path: Path) -> None:
    # 12 cases: bevr separates cluster 1 (low) from 2 (high) perfectly; asd has no link; two labels missing
    cases = [f"TCGA_XX_{i:04d}_20000101" for i in range(12)]
    bevr = [0.1, 0.2, 0.15, 0.12, 0.18, 0.11, 0.6, 0.7, 0.65, 0.8, 0.75, 0.9]
    asd = [0.3, 0.1, 0.3, 0.1, 0.3, 0.1, 0.3, 0.1, 0.3, 0.1, 0.3, 0.1]
    features = _write(
        tmp_path / "features.csv",
        ["case_id", "asd", "mf", "bevr", "volume"],
        [[c, a, "", b, 100] for c, a, b in zip(cases, asd, bevr)],
    )
    labels = ["1"] * 6 + ["2"] * 6
    labels[0], labels[11] = "", "NA"
    clinical = _write(
        tmp_path / "data.csv", ["Patient", "RNASeqCluster"], [[patient_id(c), lab] for c, lab in zip(cases, labels)]
    )
    hypotheses = [Hypothesis("bevr", "RNASeqCluster"), Hypothesis("asd", "RNASeqCluster")]
    result = associate(features, clinical, tmp_path / "report", hypotheses=hypotheses)
    bevr_row, asd_row = result.rows
    assert result.matched == 12 and bevr_row.cases == 10 and bevr_row.levels == ("1", "2")
    assert bevr_row.low == (5, 0) and bevr_row.high == (0, 5)  # median over all 12, then unlabelled cases dropped
    assert bevr_row.p == pytest.approx(stats.fisher_exact([[5, 0], [0, 5]]).pvalue, rel=1e-9)
    assert bevr_row.p_bonferroni == pytest.approx(2 * bevr_row.p) and bevr_row.significant
    assert asd_row.p > 0.5 and not asd_row.significant
    assert (tmp_path / "report" / "boxplots" / "bevr_RNASeqCluster.png").stat().st_size > 1000
    table = (tmp_path / "report" / "associations.md").read_text()
    assert "| BEVR | RNASeqCluster | 10 |" in table and "p < 0.05 / 2 = 0.025" in table
    assert [r["significant"] for r in _rows(tmp_path / "report" / "associations.csv")] == ["True", "False"]


def test_associate_command_defaults_to_the_declared_ten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    columns = sorted({h.column for h in PAPER_HYPOTHESES})
    rng = np.random.default_rng(0)
    cases = [f"TCGA_XX_{i:04d}_20000101" for i in range(20)]
    features = _write(tmp_path / "f.csv", ["case_id", "asd", "mf", "bevr"], [[c, *rng.random(3)] for c in cases])
    clinical = _write(
        tmp_path / "c.csv",
        ["Patient", *columns],
        [[patient_id(c), *rng.integers(1, 4, len(columns))] for c in cases[:18]],
    )
    assert (
        main(
            [
                "associate",
                "--features",
                str(features),
                "--clinical",
                str(clinical),
                "-o",
                str(tmp_path / "out"),
                "--no-plots",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "10 hypotheses on 18 cases" in captured.out and "2 cases have no clinical row" in captured.err
    assert len(_rows(tmp_path / "out" / "associations.csv")) == 10 and not (tmp_path / "out" / "boxplots").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--hypothesis", "bevr"], "a hypothesis is FEATURE:COLUMN"),
        (["--hypothesis", "roundness:RNASeqCluster"], "unknown feature 'roundness'"),
        (["--hypothesis", "bevr:NoSuchCluster"], "has no column 'NoSuchCluster'"),
        (["--id-column", "case"], "has no 'case' column"),
        (["--alpha", "2"], "alpha must lie in (0, 1)"),
    ],
)
def test_associate_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    features = _write(tmp_path / "f.csv", ["case_id", "bevr"], [["TCGA_XX_0001_20000101", 0.5]])
    clinical = _write(tmp_path / "c.csv", ["Patient", "RNASeqCluster"], [["TCGA_XX_0001", 1]])
    out = tmp_path / "out"
    assert main(["associate", "--features", str(features), "--clinical", str(clinical), "-o", str(out), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("flairseg: error:") and message in err and "\n" not in err
    assert not out.exists()


def test_parse_hypothesis_and_patient_id() -> None:
    assert parse_hypothesis(" BEVR : RNASeqCluster ") == Hypothesis("bevr", "RNASeqCluster")
    assert patient_id("TCGA_CS_4941_19960909") == "TCGA_CS_4941" and patient_id("subject-7") == "subject-7"
    assert len(set(PAPER_HYPOTHESES)) == len(PAPER_HYPOTHESES) == 10


@pytest.mark.parametrize(
    ("features_rows", "clinical_rows", "message"),
    [
        (
            [["TCGA_XX_0001_20000101", 0.5]],
            [["TCGA_XX_0001", 1], ["TCGA_XX_0001", 2]],
            "lists Patient 'TCGA_XX_0001' on lines 2 and 3 with different values; keep one row per id",
        ),
        (
            [["TCGA_XX_0001_20000101", 0.5], ["TCGA_XX_0001_20000101", 0.7]],
            [["TCGA_XX_0001", 1]],
            "lists case_id 'TCGA_XX_0001_20000101' on lines 2 and 3 with different values",
        ),
        (
            [["TCGA_XX_0001_20000101", 0.5]],
            [["TCGA_XX_0001", 1, 3]],
            "line 2: 3 cells, more than the header's 2 columns",
        ),
    ],
)
def test_associate_refuses_ambiguous_or_overlong_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], features_rows: list, clinical_rows: list, message: str
) -> None:
    features = _write(tmp_path / "f.csv", ["case_id", "bevr"], features_rows)
    clinical = _write(tmp_path / "c.csv", ["Patient", "RNASeqCluster"], clinical_rows)
    out = tmp_path / "out"
    argv = ["associate", "--features", str(features), "--clinical", str(clinical), "-o", str(out)]
    assert main([*argv, "--hypothesis", "bevr:RNASeqCluster"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("flairseg: error:") and message in err and "\n" not in err
    assert not out.exists()


def test_a_column_name_never_leads_a_box_plot_out_of_the_report(tmp_path: Path) -> None:
    """A clinical column named like a path (x/../../../../esc) once wrote its box plot over deep/a/esc.png."""
    victim = tmp_path / "deep" / "a" / "esc.png"
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"someone's figure")
    cases = [f"P{i}" for i in range(6)]
    features = _write(tmp_path / "f.csv", ["case_id", "bevr"], [[c, i / 6] for i, c in enumerate(cases)])
    column = "x/../../../../esc"
    clinical = _write(tmp_path / "c.csv", ["Patient", column], [[c, i % 2] for i, c in enumerate(cases)])
    out = tmp_path / "deep" / "a" / "b" / "c" / "d" / "out"
    result = associate(features, clinical, out, hypotheses=[Hypothesis("bevr", column)])
    assert victim.read_bytes() == b"someone's figure" and result.rows[0].column == column
    (plot,) = (out / "boxplots").iterdir()
    assert set(tmp_path.rglob("*.png")) == {victim, plot} and plot.name.startswith("bevr_x_.._.._.._.._esc-")


def test_a_features_file_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    from flairseg.errors import InputError

    features = _write(tmp_path / "f.csv", ["case_id", "bevr", "bevr"], [["P0", 0.1, 0.9]])
    clinical = _write(tmp_path / "c.csv", ["Patient", "RNASeqCluster"], [["P0", 1]])
    with pytest.raises(InputError, match="features file .* names the column 'bevr' twice in its header"):
        associate(features, clinical, tmp_path / "out", hypotheses=[Hypothesis("bevr", "RNASeqCluster")])


def test_a_spreadsheet_s_missing_and_float_labels_are_read_as_written_by_hand(tmp_path: Path) -> None:
    """Excel writes a missing value as #N/A and a numeric column as 1.0: the same clusters as 1 and an empty cell."""
    cases = [f"TCGA_XX_{i:04d}_20000101" for i in range(12)]
    bevr = [0.1, 0.2, 0.15, 0.12, 0.18, 0.11, 0.6, 0.7, 0.65, 0.8, 0.75, 0.9]
    features = _write(
        tmp_path / "features.csv",
        ["case_id", "asd", "mf", "bevr", "volume"],
        [[c, 0.1, "", b, 100] for c, b in zip(cases, bevr)],
    )
    by_hand = ["", "1", "1", "1", "1", "1", "2", "2", "2", "2", "2", ""]
    exported = ["#N/A", "1", "1.0", "1", "1.0", "1", "2.0", "2", "2.0", "2", "2", "#N/A"]
    results = []
    for name, labels in (("hand", by_hand), ("excel", exported)):
        rows = [[patient_id(c), label] for c, label in zip(cases, labels)]
        clinical = _write(tmp_path / f"{name}.csv", ["Patient", "RNASeqCluster"], rows)
        hypotheses = [Hypothesis("bevr", "RNASeqCluster")]
        results.append(associate(features, clinical, tmp_path / name, hypotheses=hypotheses).rows[0])
    assert results[1].levels == results[0].levels == ("1", "2") and results[1].cases == results[0].cases == 10
    assert results[1].p == results[0].p
