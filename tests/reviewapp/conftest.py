"""Fixtures for the reviewapp tests (the public datasets' fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labeling.models import Policy


@pytest.fixture
def current_labels(db) -> Callable[[str], list[str]]:  # type: ignore[no-untyped-def]
    """current_labels(policy_key): the label values of the policy's version in force."""

    def labels(policy_key: str) -> list[str]:
        version = Policy.objects.get(key=policy_key).current_version()
        assert version is not None, f"policy {policy_key} has no version in force"
        return version.label_values

    return labels
