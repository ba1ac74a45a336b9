"""The one API exception handler turns service refusals into statuses: views catch nothing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from reviewapp.api.errors import error_body
from reviewapp.errors import Conflict, Invalid

ROOT = Path(__file__).resolve().parents[2]


class Taken(Conflict):
    pass


class Moved(Conflict):
    def __init__(self, where: str) -> None:
        super().__init__("it moved")
        self.where = where


@error_body(Moved)
def moved_body(error: Moved) -> dict[str, str]:
    return {"where": error.where}


class Raises(APIView):
    """Raises whatever the test hands it, through DRF and the configured exception handler."""

    authentication_classes: list = []
    permission_classes: list = []
    error: Exception = RuntimeError("no error given")

    def get(self, request: Request) -> Response:
        raise self.error


def answer(error: Exception) -> tuple[int, bytes]:
    response = Raises.as_view(error=error)(APIRequestFactory().get("/api/v1/x"))
    response.render()
    return response.status_code, response.content


def test_a_conflict_is_a_409_with_its_detail_and_extra_keys_in_order() -> None:
    status, body = answer(Taken("Someone else took it.", holder=7, since="now"))
    assert (status, body) == (409, b'{"detail":"Someone else took it.","holder":7,"since":"now"}')


def test_an_invalid_request_is_a_400() -> None:
    assert answer(Invalid("Say why.")) == (400, b'{"detail":"Say why."}')


def test_a_django_validation_error_is_a_400_with_its_messages_joined() -> None:
    assert answer(ValidationError(["Bad label.", "Bad severity."])) == (400, b'{"detail":"Bad label. Bad severity."}')


def test_a_registered_body_replaces_the_default_one_and_keeps_the_family_status() -> None:
    assert answer(Moved("over there")) == (409, b'{"where":"over there"}')


def test_the_message_stays_the_exception_text_for_pages() -> None:
    assert str(Taken("Someone else took it.", holder=7)) == "Someone else took it."


def test_other_exceptions_are_left_to_django() -> None:
    with pytest.raises(RuntimeError):
        answer(RuntimeError("boom"))


API_MODULES = sorted(
    [
        *ROOT.glob("reviewapp/api/*.py"),
        *ROOT.glob("labeling/**/api/*.py"),
        *ROOT.glob("activelearning/api.py"),
        *ROOT.glob("activelearning/api/*.py"),
    ]
)
MAPPED = {"Conflict", "Invalid", "ValidationError", "DjangoValidationError", "ClaimError", "SubmissionRejected"}
MAPPED |= {"LeaseLost", "ProposalClosed", "RoundAlreadyActive", "InvalidRound", "NoValidRows", "AdjudicationClosed"}


@pytest.mark.parametrize("path", API_MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_api_views_leave_service_refusals_to_the_handler(path: Path) -> None:
    caught = [
        ast.unparse(handler.type)
        for handler in ast.walk(ast.parse(path.read_text()))
        if isinstance(handler, ast.ExceptHandler) and handler.type is not None
    ]
    names = {name.strip("() ") for names in caught for name in names.split(",")}
    assert not names & MAPPED
