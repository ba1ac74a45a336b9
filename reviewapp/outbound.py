"""Which addresses the server may call: the one address policy for outbound HTTP.

reviewapp calls URLs that people type in (webhook endpoints, Label Studio servers). Without a
policy, such a URL makes the server call its own loopback services, the private network or a
cloud metadata endpoint (169.254.169.254) on the typist's behalf. `resolve_checked` resolves a
host and refuses it unless *every* address it resolves to is public; callers connect to one of
the addresses it returned, so DNS cannot answer differently between the check and the request.
"""

from __future__ import annotations

import ipaddress
import socket

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
