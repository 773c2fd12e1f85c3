"""``flairseg demo``: the released abnormality model on the bundled sample case, offline.

Writes the predicted mask (TIFF slices named after the sample's), an outline GIF, a
tumour montage and the report (metrics.csv, summary.md) to the output folder, and
returns the case's Dice against its manual mask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from flairseg import figures
from flairseg.checkpoint import files_of
from flairseg.evaluate import write_report
from flairseg.html_report import write_html_report
from flairseg.io import read_case, sample_case_path, write_mask
from flairseg.metrics import case_metrics
from flairseg.outputs import ReportFolder, atomic_dir, check_output
from flairseg.predict import load_model
from flairseg.released_models import resolve


@dataclass(frozen=True)
class DemoResult:
    case_id: str
    dice: float
    out: Path
    model: str


def run_demo(
    out: str | os.PathLike, model: str | os.PathLike | None = None, overwrite: bool = False, threads: int | None = None
) -> DemoResult:
    """Segment the sample case with ``model`` (default: the released abnormality model) into ``out``."""
    sample = sample_case_path()
    model_path = resolve(model, task="abnormality")
    out_path = check_output(out, [sample, *files_of(model_path)], overwrite, kind="demo")
    segmenter = load_model(model_path, task="abnormality", threads=threads)
    case = read_case(sample, masks="required")
    mask = segmenter(case).mask
    metrics = case_metrics(case.case_id, mask, case.mask)
    flair = case.image[..., 1]
    with atomic_dir(out_path, mark="demo", replace=overwrite) as tmp:
        write_mask(case, mask, tmp / case.case_id)
        figures.outline_gif(flair, case.mask, mask, tmp / f"{case.case_id}.gif")
        figures.tumour_montage(flair, case.mask, mask, ReportFolder(tmp).montage(case.case_id))
        write_report([metrics], tmp, f"flairseg demo: {case.case_id}", figures=False)
        write_html_report(tmp, f"flairseg demo: {case.case_id}")
    return DemoResult(
        case.case_id, metrics.dice, out_path, str(segmenter.metadata.get("name", model or "released default"))
    )
