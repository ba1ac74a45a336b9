"""Where an LLM reviewer may send its API key: the webhook address policy, for LLM endpoints.

An OpenAI-compatible endpoint's `base_url` is typed by a policy lead and every request to it
carries the reviewer's API key and the content being judged, so it gets the Label Studio rules
(`reviewapp.outbound.EndpointPolicy`): only public addresses, every resolved address checked, each
connection opened to the address that was checked (`CheckedTransport`), https outside DEBUG, never
credentials in the URL.

An operator lets an endpoint inside the network through (a vLLM or Ollama box, the bundled
model's server on loopback: `python -m activelearning.llm.server`) by listing its host in
settings.LLM_ALLOWED_HOSTS (REVIEWAPP_LLM_ALLOWED_HOSTS: `host` or `host:port`, comma-separated).
A listed host is trusted as configured: any address, and plain http.
"""

from __future__ import annotations

import httpx
from django.conf import settings

from activelearning.llm.openai import EndpointRefused
from reviewapp import outbound

POLICY = outbound.EndpointPolicy(
    subject="The LLM endpoint URL",
    carries="API key",
    allowed_hosts=lambda: settings.LLM_ALLOWED_HOSTS,
    how_to_allow="an operator can allow it in REVIEWAPP_LLM_ALLOWED_HOSTS",
)


def check_base_url(url: str, *, resolve: bool = True) -> None:
    """Raise UnsafeTarget unless reviewapp may send an LLM reviewer's key and content to `url`."""
    POLICY.check_base_url(url, resolve=resolve, debug=settings.DEBUG)


class CheckedTransport(outbound.CheckedTransport):
    """An httpx transport that connects only to addresses the LLM endpoint policy approves; a
    refusal reaches the backend as `EndpointRefused` (not retried: the address will not change)."""

    def __init__(self) -> None:
        super().__init__(POLICY)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except outbound.UnsafeTarget as error:
            raise EndpointRefused(" ".join(error.messages), request=request) from None


def checked_transport() -> CheckedTransport:
    return CheckedTransport()
