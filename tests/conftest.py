"""Shared fixtures: small synthetic phantoms written in the Kaggle layout, and the bundled sample case."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic import phantom, write_kaggle_case

from flairseg.io import sample_case_path


@pytest.fixture
def kaggle_tree(tmp_path: Path) -> Path:
    """A root folder with three small synthetic cases (images and masks)."""
    root = tmp_path / "truth"
    for index in range(3):
        image, mask = phantom(seed=index)
        write_kaggle_case(root, f"CASE_{index}", image, mask)
    return root


@pytest.fixture
def sample_case() -> Path:
    return sample_case_path()
