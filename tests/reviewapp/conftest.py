"""Fixtures for the reviewapp tests: the shared public datasets, when they are present."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from labeling.models import Policy

# CI clones the repository with `shared/` beside it; the data is never copied into the repo.
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _dataset(name: str, marker_file: str) -> Path:
    folder = SHARED_DATA / name
    if not (folder / marker_file).is_file():
        pytest.skip(f"{name} data not found at {folder} (expected ../shared/data beside the repository)")
    return folder


@pytest.fixture
def toxic_spans_dir() -> Path:
    return _dataset("toxic-spans", "data_comments.csv")


@pytest.fixture
def convabuse_dir() -> Path:
    return _dataset("convabuse", "ConvAbuseEMNLPfull.csv")


@pytest.fixture
def current_labels(db) -> Callable[[str], list[str]]:  # type: ignore[no-untyped-def]
    """current_labels(policy_key): the label values of the policy's version in force."""

    def labels(policy_key: str) -> list[str]:
        version = Policy.objects.get(key=policy_key).current_version()
        assert version is not None, f"policy {policy_key} has no version in force"
        return version.label_values

    return labels
