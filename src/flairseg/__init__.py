"""flairseg: skull stripping and FLAIR abnormality segmentation of brain MRI with U-Nets."""

import importlib

from flairseg.errors import ConfigError, FlairsegError, InputError, WeightsError
from flairseg.version import __version__

# imported when first used: the command line starts (and a Ctrl-C in its first moments is answered in one line)
# before numpy and the image libraries load
_LAZY = {
    "Case": "flairseg.cases",
    "Geometry": "flairseg.cases",
    "find_cases": "flairseg.io",
    "read_case": "flairseg.io",
    "write_mask": "flairseg.io",
}


def __getattr__(name: str):  # noqa: ANN202
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'flairseg' has no attribute {name!r}")


def load_model(name_or_path=None, task="abnormality", **options):  # noqa: ANN001, ANN201
    """A Segmenter for a checkpoint path, a released model's name or the task's default (see flairseg.predict)."""
    from flairseg.predict import load_model as _load_model

    return _load_model(name_or_path, task=task, **options)


def segment(case_or_array, model=None, **options):  # noqa: ANN001, ANN201
    """Segment a Case or a (slices, H, W, channels) array; the mask comes back on its grid (see flairseg.predict)."""
    from flairseg.predict import segment as _segment

    return _segment(case_or_array, model, **options)


__all__ = [
    "Case",
    "ConfigError",
    "FlairsegError",
    "Geometry",
    "InputError",
    "WeightsError",
    "read_case",
    "find_cases",
    "load_model",
    "segment",
    "write_mask",
    "__version__",
]
