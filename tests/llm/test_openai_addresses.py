"""An LLM reviewer's endpoint gets the webhook address policy: no loopback or private address
unless an operator lists the host, no credentials in the URL, https outside DEBUG; the check
happens again at each connection, so a refused address gets no request (and no API key)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User

from activelearning.llm.base import BackendUnavailable
from activelearning.llm.weights import MODEL_ID
from labeling.llm.addresses import check_base_url
from labeling.llm.backends import backend_for
from labeling.llm.models import BackendKind, LLMReviewer
from labeling.models import Policy
from reviewapp.outbound import UnsafeTarget
from tests.factories import PolicyFactory, UserFactory
from tests.llm.conftest import PROTOCOL_SERVER_KEY
from tests.llm.proxy import chat_answer, scripted_server
from tests.llm.samples import SAMPLE_TEXTS, two_label_prompt


@pytest.fixture(autouse=True)
def _production_allow_list(settings):  # type: ignore[no-untyped-def]
    settings.LLM_ALLOWED_HOSTS = []


def _reviewer(base_url: str, key: str = PROTOCOL_SERVER_KEY) -> LLMReviewer:
    policy: Policy = PolicyFactory()
    account: User = UserFactory(username="llm-endpoint")
    reviewer = LLMReviewer(
        name="endpoint",
        policy=policy,
        policy_version=policy.versions.get(number=1),
        backend=BackendKind.OPENAI,
        model_name=MODEL_ID,
        base_url=base_url,
        account=account,
        max_retries=0,
    )
    reviewer.set_api_key(key)
    reviewer.save()
    return reviewer


@pytest.mark.parametrize(
    ("url", "listed"),
    [
        ("https://127.0.0.1:8089/v1", "127.0.0.1"),
        ("https://localhost/v1", "localhost"),
        ("https://10.0.0.5/v1", "10.0.0.5"),
        ("https://169.254.169.254/v1", "169.254.169.254"),
        ("https://[::1]:8443/v1", "[::1]"),
    ],
)
def test_local_and_private_endpoints_are_refused_unless_listed(settings, url, listed):  # type: ignore[no-untyped-def]
    with pytest.raises(UnsafeTarget, match=r"private or local address.*REVIEWAPP_LLM_ALLOWED_HOSTS"):
        check_base_url(url)
    settings.LLM_ALLOWED_HOSTS = [listed]
    check_base_url(url)


def test_a_listed_host_with_a_port_allows_only_that_port(settings):  # type: ignore[no-untyped-def]
    settings.LLM_ALLOWED_HOSTS = ["127.0.0.1:8089"]
    check_base_url("http://127.0.0.1:8089/v1")
    with pytest.raises(UnsafeTarget):
        check_base_url("http://127.0.0.1:8090/v1")


def test_credentials_in_the_url_are_refused_even_for_a_listed_host(settings):  # type: ignore[no-untyped-def]
    settings.LLM_ALLOWED_HOSTS = ["127.0.0.1"]
    with pytest.raises(UnsafeTarget, match="may not carry credentials; give the API key"):
        check_base_url("http://user:secret@127.0.0.1/v1")


@pytest.mark.parametrize("url", ["ftp://llm.example.com/v1", "https:///v1", "https://llm.example.com:99999/v1"])
def test_urls_that_are_not_https_endpoints_are_refused(url):  # type: ignore[no-untyped-def]
    with pytest.raises(UnsafeTarget):
        check_base_url(url, resolve=False)


def test_plain_http_is_refused_outside_debug_unless_listed(settings):  # type: ignore[no-untyped-def]
    settings.DEBUG = False
    with pytest.raises(UnsafeTarget, match="must use https://"):
        check_base_url("http://llm.example.com/v1", resolve=False)
    check_base_url("https://llm.example.com/v1", resolve=False)
    settings.LLM_ALLOWED_HOSTS = ["llm.internal:8000"]
    check_base_url("http://llm.internal:8000/v1", resolve=False)


@pytest.mark.django_db
def test_a_refused_address_gets_no_request_and_the_run_sees_the_backend_unavailable(settings):  # type: ignore[no-untyped-def]
    settings.DEBUG = True  # plain http passes the URL check: the address is refused when connecting
    with scripted_server([chat_answer('{"label": "violating"}')]) as endpoint:
        backend = backend_for(_reviewer(endpoint.url))
        with pytest.raises(BackendUnavailable, match="private or local address") as refused:
            backend.judge(two_label_prompt(), [SAMPLE_TEXTS[0]])
    assert endpoint.requests == []
    assert PROTOCOL_SERVER_KEY not in str(refused.value)


@pytest.mark.django_db
def test_a_listed_endpoint_gets_the_decrypted_key_through_the_checked_transport(settings):  # type: ignore[no-untyped-def]
    with scripted_server([chat_answer('{"label": "not_violating"}')]) as endpoint:
        settings.LLM_ALLOWED_HOSTS = [urlsplit(endpoint.url).netloc]
        backend = backend_for(_reviewer(endpoint.url))
        (judgement,) = backend.judge(two_label_prompt(), [SAMPLE_TEXTS[1]])
    assert judgement.label == "not_violating"
    assert [r["authorization"] for r in endpoint.requests] == [f"Bearer {PROTOCOL_SERVER_KEY}"]
    assert PROTOCOL_SERVER_KEY not in repr(backend)


@pytest.mark.slow
@pytest.mark.django_db
def test_a_reviewer_on_the_real_protocol_server_gets_real_answers(llm_endpoint_allowed):  # type: ignore[no-untyped-def]
    backend = backend_for(_reviewer(llm_endpoint_allowed))
    (judgement,) = backend.judge(two_label_prompt(), [SAMPLE_TEXTS[0]])
    assert judgement.label in two_label_prompt().label_values and judgement.scores


@pytest.mark.django_db
def test_a_reviewer_with_a_refused_url_gets_no_backend(settings):  # type: ignore[no-untyped-def]
    settings.DEBUG = False
    with pytest.raises(UnsafeTarget):
        backend_for(_reviewer("http://llm.example.com/v1"))
