"""Lead pages of LLM reviewers: configure one through the form, start runs, watch a run; the API
key is write-only, hostile names are escaped, reviewers are kept out."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from labeling.llm.models import DEFAULT_TEMPLATE, LLMReviewer, LLMRun, RunStatus
from labeling.llm.services.reviewers import llm_reviewer_create
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent
from tests.factories import PolicyFactory, UserFactory
from tests.llm.runs_data import local_reviewer, make_gold_items

SECRET = "sk-test-d0-not-leak-7f3a9c"


@pytest.fixture
def lead_client(db) -> Client:  # type: ignore[no-untyped-def]
    lead = UserFactory(username="lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    client = Client()
    client.force_login(lead)
    return client


def form_data(policy, **overrides):  # type: ignore[no-untyped-def]
    data = {
        "name": "Gemma local",
        "policy": policy.pk,
        "backend": "local",
        "model_name": "gemma-3-270m",
        "prompt_template": DEFAULT_TEMPLATE.replace("\n", "\r\n"),
        "timeout_seconds": 30,
        "max_retries": 3,
        "requests_per_minute": 0,
        "cost_per_million_tokens": "0",
    }
    return {**data, **overrides}


def test_a_lead_creates_a_reviewer_with_a_machine_account_that_cannot_sign_in(lead_client) -> None:
    policy = PolicyFactory()

    response = lead_client.post(reverse("llm:reviewer-new"), form_data(policy))

    reviewer = LLMReviewer.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("llm:reviewer", args=[reviewer.pk])
    assert reviewer.policy_version == policy.current_version()
    assert reviewer.prompt_template == DEFAULT_TEMPLATE  # line ends as typed, not CRLF
    assert reviewer.account.username == "llm-gemma-local"
    assert not reviewer.account.is_active and not reviewer.account.has_usable_password()
    assert AuditEvent.objects.filter(action="llm_reviewer.create", object_id=str(reviewer.pk)).exists()
    page = lead_client.get(reverse("llm:reviewers")).content.decode()
    assert "Gemma local" in page and "never run" in page


def test_the_form_says_what_is_wrong_with_a_template_or_an_endpoint(lead_client) -> None:
    policy = PolicyFactory()

    bad_template = lead_client.post(reverse("llm:reviewer-new"), form_data(policy, prompt_template="Label: {content}"))
    no_url = lead_client.post(reverse("llm:reviewer-new"), form_data(policy, backend="openai"))
    bad_url = lead_client.post(reverse("llm:reviewer-new"), form_data(policy, backend="openai", base_url="ftp://x"))

    assert bad_template.status_code == 400 and "The template must contain {labels}." in bad_template.content.decode()
    assert no_url.status_code == 400 and "needs its base URL" in no_url.content.decode()
    assert bad_url.status_code == 400 and "must be https:// with a host name" in bad_url.content.decode()
    assert not LLMReviewer.objects.exists()


def test_the_api_key_is_stored_encrypted_and_never_rendered_back(lead_client, settings) -> None:
    settings.LLM_ALLOWED_HOSTS = ["llm.example.com"]  # an operator's endpoint inside the network
    policy = PolicyFactory()
    lead_client.post(
        reverse("llm:reviewer-new"),
        form_data(policy, backend="openai", base_url="https://llm.example.com/v1", api_key=SECRET),
    )
    reviewer = LLMReviewer.objects.get()
    assert reviewer.api_key == SECRET and SECRET not in reviewer.api_key_ciphertext

    edit = lead_client.get(reverse("llm:reviewer-edit", args=[reviewer.pk])).content.decode()
    detail = lead_client.get(reverse("llm:reviewer", args=[reviewer.pk])).content.decode()
    assert "A key is set; leave blank to keep it." in edit
    for page in (edit, detail):
        assert SECRET not in page and reviewer.api_key_ciphertext not in page

    data = form_data(policy, backend="openai", base_url="https://llm.example.com/v1", name="Renamed")
    data["policy_version"] = reviewer.policy_version_id
    data["is_active"] = "on"
    assert lead_client.post(reverse("llm:reviewer-edit", args=[reviewer.pk]), data).status_code == 302
    reviewer.refresh_from_db()
    assert reviewer.name == "Renamed" and reviewer.api_key == SECRET  # blank keeps the key
    events = AuditEvent.objects.filter(object_type="llm_reviewer").values_list("before", "after")
    assert SECRET not in str(list(events))


def test_hostile_names_are_escaped(lead_client) -> None:
    policy = PolicyFactory()
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    reviewer = llm_reviewer_create(name=hostile, policy=policy, backend="local", model_name=hostile, actor=SYSTEM)

    for url in (reverse("llm:reviewers"), reverse("llm:reviewer", args=[reviewer.pk])):
        page = lead_client.get(url).content.decode()
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert" in page


def test_a_lead_starts_a_gold_run_from_the_reviewer_page_and_watches_it(
    lead_client, django_capture_on_commit_callbacks
) -> None:
    policy, _queue, ids = make_gold_items(6)
    reviewer = local_reviewer(policy)

    with django_capture_on_commit_callbacks() as enqueued:
        response = lead_client.post(
            reverse("llm:run-start", args=[reviewer.pk]),
            {"kind": "gold_sample", "n": 4, "chunk_size": 2, "budget_items": 3},
        )

    run = LLMRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("llm:run", args=[run.pk])
    assert len(enqueued) == 1  # the first chunk, sent after commit
    assert (run.kind, len(run.item_ids), run.budget_items, run.status) == ("gold_sample", 4, 3, RunStatus.QUEUED)
    assert set(run.item_ids) <= set(ids)
    page = lead_client.get(reverse("llm:run", args=[run.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in page and "0/3 items" in page
    partial = lead_client.get(reverse("llm:run", args=[run.pk]), headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<div id="progress"')

    lead_client.post(reverse("llm:run-cancel", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert "every 2s" not in lead_client.get(reverse("llm:run", args=[run.pk])).content.decode()


def test_an_injection_check_asks_every_suffix_and_a_queue_run_needs_open_tasks(lead_client) -> None:
    policy, queue, _ids = make_gold_items(3)
    reviewer = local_reviewer(policy)
    url = reverse("llm:run-start", args=[reviewer.pk])

    lead_client.post(url, {"kind": "injection", "n": 3, "chunk_size": 10})
    lead_client.post(url, {"kind": "queue", "n": 10, "chunk_size": 5, "queue": queue.pk})
    empty = lead_client.post(url, {"kind": "gold_sample", "n": 5, "chunk_size": 5, "budget_items": 0})

    injection, queued = LLMRun.objects.order_by("pk")
    assert injection.variants[0] == "" and len(injection.variants) == 7
    assert queued.kind == "queue" and queued.queue == queue and len(queued.item_ids) == 3
    assert empty.status_code == 400 and LLMRun.objects.count() == 2


def test_reviewers_get_403_on_every_llm_page(db) -> None:
    policy, _queue, _ids = make_gold_items(2)
    reviewer = local_reviewer(policy)
    client = Client()
    client.force_login(UserFactory(username="reviewer"))

    for url in (reverse("llm:reviewers"), reverse("llm:reviewer-new"), reverse("llm:reviewer", args=[reviewer.pk])):
        assert client.get(url).status_code == 403
    assert client.post(reverse("llm:run-start", args=[reviewer.pk]), {"kind": "gold_sample", "n": 2}).status_code == 403
    assert not LLMRun.objects.exists()
