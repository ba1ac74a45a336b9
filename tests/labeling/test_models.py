"""Policy versions: validated label schemas, immutability, the version in force."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import ProgrammingError, transaction
from django.utils import timezone

from labeling.models import PolicyVersion, check_label_schema
from tests.factories import BINARY_SCHEMA, PolicyFactory, PolicyVersionFactory


def test_policy_version_rows_cannot_be_updated(db) -> None:
    version = PolicyFactory().versions.get()
    version.guideline = "rewritten history"
    with pytest.raises(ProgrammingError, match="append-only"), transaction.atomic():
        version.save()
    assert PolicyVersion.objects.get(pk=version.pk).guideline == "Version text."


def test_current_version_is_newest_already_effective(db) -> None:
    policy = PolicyFactory()
    v2 = PolicyVersionFactory(policy=policy, number=2, effective_at=timezone.now() - timedelta(minutes=1))
    PolicyVersionFactory(policy=policy, number=3, effective_at=timezone.now() + timedelta(days=1))
    assert policy.current_version() == v2


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([], "must be an object"),
        ({"labels": [{"value": "a"}]}, "at least two"),
        ({"labels": [{"value": "a"}, {"value": "a"}]}, "appears twice"),
        ({"labels": [{"value": "a b"}, {"value": "c"}]}, "must be a slug"),
        ({"labels": [{"value": "a"}, {"value": "b"}], "colour": "red"}, "unknown label schema keys: colour"),
        ({"labels": [{"value": "a"}, {"value": "b"}], "severity_levels": "high"}, "list of strings"),
    ],
)
def test_bad_label_schemas_are_refused_with_reason(schema: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check_label_schema(schema)


def test_binary_schema_is_valid() -> None:
    check_label_schema(BINARY_SCHEMA)
