"""Per-case segmentation metrics from confusion counts, and their summaries.

Conventions (stated once, here, and in the CSV header notes of reports):

- Dice is computed over all slices of a case at once (3-D), ``2|P∩G| / (|P| + |G|)``.
  Both masks empty: Dice = 1 (the prediction agrees there is no abnormality).
  One empty, the other not: Dice = 0.
- HD95 is the larger of the two directed 95th-percentile surface distances (as MONAI's
  ``compute_hausdorff_distance(percentile=95)`` and nnU-Net report it), in millimetres
  when the voxel spacing is known and in voxel units otherwise. Both empty: 0; one empty: NaN.
- Sensitivity = TP / |G| (NaN when the truth is empty); precision = TP / |P| (NaN when the
  prediction is empty).
- Volumes are in millilitres when the spacing is known, else in voxels.

Summaries ignore NaN values and report how many cases were left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class CaseMetrics:
    """Metrics of one case; units are "mm"/"ml" when spacing was known, else "voxel"."""

    case_id: str
    dice: float
    hd95: float
    pred_volume: float
    truth_volume: float
    sensitivity: float
    precision: float
    true_positives: int
    pred_voxels: int
    truth_voxels: int
    slices: int
    units: str

    def as_row(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, str]) -> CaseMetrics:
        """The metrics :meth:`as_row` wrote to a CSV row, read back exactly (floats round-trip through their repr)."""
        kinds = {"str": str, "float": float, "int": int}
        return cls(**{f.name: kinds[str(f.type)](row[f.name]) for f in fields(cls)})


def dice_from_counts(true_positives: int, pred_voxels: int, truth_voxels: int) -> float:
    """Dice from confusion counts; both empty -> 1.0, one empty -> 0.0."""
    total = pred_voxels + truth_voxels
    return 1.0 if total == 0 else 2.0 * true_positives / total


def surface(mask: np.ndarray, in_plane: bool = False) -> np.ndarray:
    """The mask's surface voxels: those with a face-neighbour outside it (the image border counts as outside).
    ``in_plane``: neighbours within the slice only, so every slice of a volume gets its own 2-D outline."""
    structure = (
        ndimage.generate_binary_structure(2, 1)[None] if in_plane else ndimage.generate_binary_structure(mask.ndim, 1)
    )
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """95th-percentile symmetric Hausdorff distance between mask surfaces (scipy distance transforms).

    Both empty -> 0.0; exactly one empty -> NaN. Units follow ``spacing`` (voxels when None).
    """
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if not pred.any() and not truth.any():
        return 0.0
    if not pred.any() or not truth.any():
        return math.nan
    # Distances between the two surfaces only involve voxels inside their joint bounding box.
    union = pred | truth
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(union))
    pred_surface, truth_surface = surface(np.pad(pred[box], 1)), surface(np.pad(truth[box], 1))
    sampling = None if spacing is None else tuple(float(s) for s in spacing)
    to_truth = ndimage.distance_transform_edt(~truth_surface, sampling=sampling)[pred_surface]
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=sampling)[truth_surface]
    return float(max(np.percentile(to_truth, 95), np.percentile(to_pred, 95)))


def case_metrics(
    case_id: str, pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float] | None = None
) -> CaseMetrics:
    """All per-case metrics of a binary prediction against the truth on the same grid."""
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    tp = int(np.count_nonzero(pred & truth))
    n_pred, n_truth = int(np.count_nonzero(pred)), int(np.count_nonzero(truth))
    voxel_ml = 1.0 if spacing is None else float(np.prod(spacing)) / 1000.0
    return CaseMetrics(
        case_id=case_id,
        dice=dice_from_counts(tp, n_pred, n_truth),
        hd95=hd95(pred, truth, spacing),
        pred_volume=n_pred * voxel_ml,
        truth_volume=n_truth * voxel_ml,
        sensitivity=tp / n_truth if n_truth else math.nan,
        precision=tp / n_pred if n_pred else math.nan,
        true_positives=tp,
        pred_voxels=n_pred,
        truth_voxels=n_truth,
        slices=int(pred.shape[0]),
        units="voxel" if spacing is None else "mm",
    )


@dataclass(frozen=True)
class Summary:
    """Distribution of one metric over cases (NaN values left out and counted)."""

    n: int
    undefined: int
    mean: float
    std: float
    median: float
    q1: float
    q3: float
    minimum: float
    maximum: float


def summarise(values: Sequence[float]) -> Summary:
    """Mean, standard deviation, median, IQR, min and max of the finite values."""
    array = np.asarray(values, dtype=float)
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        nan = math.nan
        return Summary(0, int(array.size), nan, nan, nan, nan, nan, nan, nan)
    q1, median, q3 = np.percentile(finite, [25, 50, 75])
    return Summary(
        n=int(finite.size),
        undefined=int(array.size - finite.size),
        mean=float(finite.mean()),
        std=float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
        median=float(median),
        q1=float(q1),
        q3=float(q3),
        minimum=float(finite.min()),
        maximum=float(finite.max()),
    )


SUMMARISED = ("dice", "hd95", "sensitivity", "precision", "pred_volume", "truth_volume")


def summarise_cases(rows: Sequence[CaseMetrics]) -> Mapping[str, Summary]:
    """Summaries of the main metrics over a list of cases."""
    return {name: summarise([getattr(row, name) for row in rows]) for name in SUMMARISED}
