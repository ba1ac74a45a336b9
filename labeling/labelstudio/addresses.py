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

from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

from reviewapp.outbound import UnsafeTarget, resolve_checked

HOW_TO_ALLOW = "an operator can allow it in REVIEWAPP_LABEL_STUDIO_ALLOWED_HOSTS"


def host_is_allowed(host: str, port: int) -> bool:
    """True when an operator listed this host (any port) or this host:port."""
    host = host.lower().strip("[]")
    for entry in settings.LABEL_STUDIO_ALLOWED_HOSTS:
        allowed = urlsplit(f"//{entry.strip()}")
        try:
            allowed_port = allowed.port
        except ValueError:
            continue  # a malformed entry allows nothing
        if allowed.hostname == host and allowed_port in (None, port):
            return True
    return False


def check_base_url(url: str, *, resolve: bool = True) -> None:
    """Raise UnsafeTarget unless reviewapp may send a Label Studio token to `url`.

    `resolve=False` checks only what the URL says (scheme, credentials, allow-list); the
    addresses are then checked when connecting (`CheckedTransport`).
    """
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeTarget("The Label Studio URL has an invalid port.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("The Label Studio URL must be https:// with a host name.")
    if parts.username or parts.password:
        raise UnsafeTarget("The Label Studio URL may not carry credentials; give the API token instead.")
    if host_is_allowed(parts.hostname, port):
        return
    if parts.scheme != "https" and not settings.DEBUG:
        raise UnsafeTarget(
            f"The Label Studio URL must use https:// so the API token is not sent in clear ({HOW_TO_ALLOW})."
        )
    if resolve:
        resolve_checked(parts.hostname, port, allow_private=False, how_to_allow=HOW_TO_ALLOW)


def connect_address(host: str, port: int) -> str:
    """The address to open a connection to for `host`: checked now, at connection time."""
    if host_is_allowed(host, port):
        return host
    return resolve_checked(host, port, allow_private=False, how_to_allow=HOW_TO_ALLOW)[0]


class _CheckedBackend(httpcore.SyncBackend):
    """Opens every TCP connection to an address `connect_address` approved. TLS still verifies
    the certificate against the URL's host name (httpcore passes it as server_hostname)."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        address = connect_address(host, port)
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


class CheckedTransport(httpx.HTTPTransport):
    """httpx's transport with the address policy applied to each connection it opens. No proxy
    from the environment: a proxy would make the checked address the proxy's, not Label Studio's."""

    def __init__(self) -> None:
        super().__init__(trust_env=False)
        # httpx takes no network backend, so its pool is rebuilt with ours (httpx's default limits).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_CheckedBackend(),
        )
