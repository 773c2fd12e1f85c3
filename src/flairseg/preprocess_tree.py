"""Write preprocessed copies of a case tree: the paper's MATLAB step, as a command.

For every case: ``OUTPUT/<CASE>/<CASE>_<k>.tif`` (uint8 for the paper variants, float32
for the port variant), ``<CASE>_<k>_mask.tif`` (0/255) when the case has labels, and
``transform.json`` holding what is needed to map model-space masks back to the input grid.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flairseg.config import TASK_SPECS, PreprocessConfig
from flairseg.data import check_processing_memory, task_channels
from flairseg.errors import ConfigError, InputError
from flairseg.io import index_cases, input_files, read_case, read_label
from flairseg.outputs import atomic_dir, check_output
from flairseg.preprocess import preprocess_case


@dataclass(frozen=True)
class PrepareResult:
    """Counts of what :func:`preprocess_tree` wrote."""

    cases: int
    slices: int
    out: Path


def _transform_json(transform: object) -> str:
    def plain(value: object) -> object:
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, (np.integer, np.floating)):
            return value.item()
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    fields = {k: plain(v) for k, v in dataclasses.asdict(transform).items()}  # type: ignore[call-overload]
    return json.dumps(fields, indent=2)


def preprocess_tree(
    source: str | os.PathLike,
    out: str | os.PathLike,
    variant: str = "paper-abnormality",
    missing: str = "copy-flair",
    overwrite: bool = False,
    quiet: bool = False,
    peak_percentile: float = 100.0,
) -> PrepareResult:
    """Preprocess every case under ``source`` into TIFF slices under ``out`` (created atomically);
    ``peak_percentile`` as :class:`flairseg.config.PreprocessConfig` has it (the port variant only).
    """
    import tifffile
    from tqdm import tqdm

    try:
        config = PreprocessConfig(variant=variant, peak_percentile=peak_percentile)  # checks the pair
    except ConfigError:
        raise ConfigError(
            f"--peak-percentile takes 90-100 with the port variant, not {peak_percentile} with {variant}"
        ) from None
    source = Path(source)
    if not source.exists():
        raise InputError(f"input {source} does not exist")
    # a lone volume's labels are read too
    out_path = check_output(out, input_files(source), overwrite, kind="preprocessed cases")
    paths = list(index_cases(source).values())  # two cases of one id refused before any work
    label_suffix = TASK_SPECS["brain" if variant == "paper-brain" else "abnormality"].label_suffix
    total = 0
    with atomic_dir(out_path, mark="preprocessed cases", replace=overwrite) as tmp:
        for path in tqdm(paths, desc=f"preprocess ({variant})", unit="case", disable=quiet, file=sys.stderr):
            case = read_case(path, masks="optional", mask_suffix=label_suffix)
            brain = read_label(case, "_brain") if variant == "paper-abnormality" else None
            check_processing_memory(case.case_id, case.image.shape, variant, config.size)
            try:
                channels = task_channels(case, "brain" if variant == "paper-brain" else "abnormality", missing)
                result = preprocess_case(
                    channels, case.mask, variant=variant, size=config.size, brain=brain, peak_percentile=peak_percentile
                )
            except InputError as exc:
                raise InputError(f"case {case.case_id}: {exc}") from None
            folder = tmp / case.case_id
            folder.mkdir()
            photometric = "rgb" if result.image.shape[-1] == 3 and result.image.dtype == np.uint8 else "minisblack"
            for k, plane in enumerate(result.image, start=1):
                stem = folder / f"{case.case_id}_{k}"
                data = plane[..., 0] if plane.shape[-1] == 1 else plane
                # one page per slice, its channels as samples of each pixel (a slice file is one page)
                tifffile.imwrite(
                    f"{stem}.tif", np.ascontiguousarray(data), photometric=photometric, planarconfig="contig"
                )
                if result.mask is not None:
                    tifffile.imwrite(
                        f"{stem}_mask.tif", result.mask[k - 1].astype(np.uint8) * 255, photometric="minisblack"
                    )
            (folder / "transform.json").write_text(_transform_json(result.transform))
            total += result.image.shape[0]
    return PrepareResult(len(paths), total, out_path)
