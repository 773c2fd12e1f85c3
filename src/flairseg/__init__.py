"""flairseg: skull stripping and FLAIR abnormality segmentation of brain MRI with U-Nets."""

from flairseg.errors import ConfigError, FlairsegError, InputError, WeightsError
from flairseg.io import Case, Geometry, find_cases, read_case, write_mask

__version__ = "0.1.0"

__all__ = [
    "Case",
    "ConfigError",
    "FlairsegError",
    "Geometry",
    "InputError",
    "WeightsError",
    "read_case",
    "find_cases",
    "write_mask",
    "__version__",
]
