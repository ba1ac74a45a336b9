"""Which addresses the server may call: the one address policy for outbound HTTP.

reviewapp calls URLs that people type in (webhook endpoints, Label Studio servers). Without a
policy, such a URL makes the server call its own loopback services, the private network or a
cloud metadata endpoint (169.254.169.254) on the typist's behalf. `resolve_checked` resolves a
host and refuses it unless *every* address it resolves to is public; callers connect to one of
the addresses it returned, so DNS cannot answer differently between the check and the request.
`EndpointPolicy` and `CheckedTransport` apply it to a configured server that receives a secret
(Label Studio, LLM endpoints), checking each connection as it is opened.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx
from django.core.exceptions import ValidationError


class UnsafeTarget(ValidationError):
    """The URL is not allowed, or resolves to an address the server may not reach."""


class Unresolvable(UnsafeTarget):
    """The host name does not resolve (now): refused when saved, possibly transient when calling."""


def is_public_address(address: str) -> bool:
    """True for a globally routable address; an IPv4-mapped IPv6 address is judged as the IPv4
    address it carries (`::ffff:127.0.0.1` reaches loopback on a dual-stack host)."""
    ip = ipaddress.ip_address(address.split("%")[0])  # drop an IPv6 zone index (fe80::1%eth0)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global


def resolve_checked(host: str, port: int, *, allow_private: bool, how_to_allow: str) -> list[str]:
    """The addresses `host` resolves to, in resolver order; UnsafeTarget if it does not resolve or,
    unless `allow_private`, if any of them is private, loopback, link-local or otherwise not
    public. `how_to_allow` ends the refusal message (the setting an operator would change)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, ValueError) as error:
        raise Unresolvable(f"Cannot resolve {host!r}: {error}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        for address in addresses:
            if not is_public_address(address):
                raise UnsafeTarget(f"{host} resolves to {address}, a private or local address ({how_to_allow}).")
    return addresses


@dataclass(frozen=True)
class EndpointPolicy:
    """The address policy of a typed-in server URL that every request sends a secret to (a Label
    Studio server, an LLM endpoint): the webhook rules, plus https outside DEBUG so the secret never
    crosses the network in clear.

    `allowed_hosts` returns the operator's list (`host` or `host:port`) at call time, so a changed
    setting applies at once; a listed host is trusted as configured: any address, and plain http.
    `subject` names the URL in messages ("The Label Studio URL"), `carries` the secret ("API token").
    """

    subject: str
    carries: str
    allowed_hosts: Callable[[], Iterable[str]]
    how_to_allow: str

    def host_is_allowed(self, host: str, port: int) -> bool:
        """True when an operator listed this host (any port) or this host:port."""
        host = host.lower().strip("[]")
        for entry in self.allowed_hosts():
            allowed = urlsplit(f"//{entry.strip()}")
            try:
                allowed_port = allowed.port
            except ValueError:
                continue  # a malformed entry allows nothing
            if allowed.hostname == host and allowed_port in (None, port):
                return True
        return False

    def check_base_url(self, url: str, *, resolve: bool = True, debug: bool = False) -> None:
        """Raise UnsafeTarget unless the server may send its secret to `url`.

        `resolve=False` checks only what the URL says (scheme, credentials, allow-list); the
        addresses are then checked when connecting (`CheckedTransport`). `debug` lets plain http
        through for a public address (a developer's machine).
        """
        parts = urlsplit(url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise UnsafeTarget(f"{self.subject} has an invalid port.") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UnsafeTarget(f"{self.subject} must be https:// with a host name.")
        if parts.username or parts.password:
            raise UnsafeTarget(f"{self.subject} may not carry credentials; give the {self.carries} instead.")
        if self.host_is_allowed(parts.hostname, port):
            return
        if parts.scheme != "https" and not debug:
            raise UnsafeTarget(
                f"{self.subject} must use https:// so the {self.carries} is not sent in clear ({self.how_to_allow})."
            )
        if resolve:
            resolve_checked(parts.hostname, port, allow_private=False, how_to_allow=self.how_to_allow)

    def connect_address(self, host: str, port: int) -> str:
        """The address to open a connection to for `host`: checked now, at connection time."""
        if self.host_is_allowed(host, port):
            return host
        return resolve_checked(host, port, allow_private=False, how_to_allow=self.how_to_allow)[0]


class _CheckedNetwork(httpcore.SyncBackend):
    """Opens every TCP connection to an address the policy approved. TLS still verifies the
    certificate against the URL's host name (httpcore passes it as server_hostname)."""

    def __init__(self, policy: EndpointPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        address = self.policy.connect_address(host, port)
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


class CheckedTransport(httpx.HTTPTransport):
    """httpx's transport with an endpoint policy applied to each connection it opens. No proxy
    from the environment: a proxy would make the checked address the proxy's, not the server's."""

    def __init__(self, policy: EndpointPolicy) -> None:
        super().__init__(trust_env=False)
        # httpx takes no network backend, so its pool is rebuilt with ours (httpx's default limits).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_CheckedNetwork(policy),
        )
