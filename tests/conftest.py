"""Shared fixtures: small synthetic phantoms written in the Kaggle layout, and the bundled sample case."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic import write_phantom_tree

from flairseg.io import sample_case_path


@pytest.fixture
def kaggle_tree(tmp_path: Path) -> Path:
    """A root folder with three small synthetic cases (images and masks)."""
    return write_phantom_tree(tmp_path / "truth", "CASE_", 3)


@pytest.fixture
def sample_case() -> Path:
    return sample_case_path()
