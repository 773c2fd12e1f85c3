"""Quality-control flags of a predicted case, for checking a run without truth masks.

Each flag names something a reader should look at before trusting the case's numbers:

| flag | raised when |
|---|---|
| `empty` | the mask is empty |
| `brain-volume` | a brain mask outside the adult range (800-2000 mL; only when the spacing is known) |
| `flair-only` | an abnormality model read FLAIR alone (pre- and post-contrast T1 were copies of it) |
| `end-slice` | the mask touches the first or last slice: the scan may not cover the whole lesion or brain |
| `spacing` | the voxel spacing is far from the training scans' (in-plane 0.3-1.5 mm, slices up to 8 mm) |
| `shifted-intensities` | the scan has negative values (z-scored or shifted); it was moved to a zero background |
| `removed-components` | postprocessing removed a component with a peak probability of at least 0.9 |
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flairseg.cases import Case
from flairseg.postprocess import Component

BRAIN_ML = (800.0, 2000.0)  # adult brain volumes, generously
IN_PLANE_MM = (0.3, 1.5)
MAX_SLICE_MM = 8.0
CONFIDENT = 0.9  # a removed component this sure deserves a look


def flags(
    case: Case, mask: np.ndarray, task: str, components: Sequence[Component] = (), flair_only: bool = False
) -> list[str]:
    """The QC flags of one predicted case (see the table above), in a fixed order."""
    spacing = case.geometry.spacing
    raised = []
    if not mask.any():
        raised.append("empty")
    if task == "brain" and spacing is not None and mask.any():
        volume = float(np.count_nonzero(mask)) * float(np.prod(spacing)) / 1000.0
        if not BRAIN_ML[0] <= volume <= BRAIN_ML[1]:
            raised.append("brain-volume")
    if flair_only and task == "abnormality":
        raised.append("flair-only")
    if mask.shape[0] > 1 and (mask[0].any() or mask[-1].any()):
        raised.append("end-slice")
    if spacing is not None and (
        not all(IN_PLANE_MM[0] <= s <= IN_PLANE_MM[1] for s in spacing[1:]) or spacing[0] > MAX_SLICE_MM
    ):
        raised.append("spacing")
    if case.image is not None and case.image.dtype.kind in "if" and any(plane.min() < 0 for plane in case.image):
        raised.append("shifted-intensities")
    if any(not c.kept and c.peak >= CONFIDENT for c in components):
        raised.append("removed-components")
    return raised


def row(
    case: Case, mask: np.ndarray, task: str, components: Sequence[Component] = (), flair_only: bool = False
) -> dict[str, object]:
    """The case's QC row: volume (mL when the spacing is known, else voxels), components kept and removed, flags."""
    voxels = int(np.count_nonzero(mask))
    spacing = case.geometry.spacing
    return {
        "case": case.case_id,
        "task": task,
        "voxels": voxels,
        "volume_ml": "" if spacing is None else f"{voxels * float(np.prod(spacing)) / 1000.0:.4g}",
        "components_kept": sum(c.kept for c in components) if task == "abnormality" else "",
        "components_removed": sum(not c.kept for c in components) if task == "abnormality" else "",
        "flags": " ".join(flags(case, mask, task, components, flair_only)) or "none",
    }
