"""Where a Label Studio connection may send its token: the webhook address policy, for Label Studio.

A connection's `base_url` is typed by a policy lead, and every request to it carries the API
token, so it gets the same rules as webhook targets (`reviewapp.outbound`): only public
addresses, every resolved address checked, and the request connects to the address that was
checked (`CheckedTransport`), so DNS cannot point elsewhere between the check and the request.
Outside DEBUG the URL must be https, so the token never crosses the network in clear.

An operator lets a Label Studio server inside the network through by listing its host in
settings.LABEL_STUDIO_ALLOWED_HOSTS (REVIEWAPP_LABEL_STUDIO_ALLOWED_HOSTS: `host` or `host:port`,
comma-separated). A listed host is trusted as configured: any address, and plain http.
"""

from __future__ import annotations

from django.conf import settings

from reviewapp import outbound

POLICY = outbound.EndpointPolicy(
    subject="The Label Studio URL",
    carries="API token",
    allowed_hosts=lambda: settings.LABEL_STUDIO_ALLOWED_HOSTS,
    how_to_allow="an operator can allow it in REVIEWAPP_LABEL_STUDIO_ALLOWED_HOSTS",
)


def check_base_url(url: str, *, resolve: bool = True) -> None:
    """Raise UnsafeTarget unless reviewapp may send a Label Studio token to `url` (see
    `EndpointPolicy.check_base_url`)."""
    POLICY.check_base_url(url, resolve=resolve, debug=settings.DEBUG)


class CheckedTransport(outbound.CheckedTransport):
    """An httpx transport that connects only to addresses the Label Studio policy approves."""

    def __init__(self) -> None:
        super().__init__(POLICY)
