"""Fixtures for the active-learning core. Nothing here touches the database."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def toxic_spans_dir() -> Path:
    folder = SHARED_DATA / "toxic-spans"
    if not (folder / "data_comments.csv").is_file():
        pytest.skip(f"Toxic Spans data not found at {folder} (expected ../shared/data beside the repository)")
    return folder
