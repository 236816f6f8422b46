"""Videos given by URL: downloaded by the worker under SSRF rules, a size cap and timeouts.

Every host is resolved and checked (no private, loopback, link-local or otherwise non-global address unless
allowed), the connection goes to the address that was checked (the Host header and TLS name stay the
host's, so DNS rebinding cannot send it elsewhere), and every redirect is checked again.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from videoapi.errors import SourceError


@dataclass(frozen=True)
class SourceRules:
    """What a download may do."""

    max_bytes: int
    allow_http: bool = False
    allow_private: bool = False  # private and link-local networks (never on a shared deployment)
    allow_loopback: bool = False  # this machine (tests, a local stack)
    timeout_s: float = 30.0
    max_redirects: int = 5


def is_url(source: str) -> bool:
    """True for an http(s) URL source (object keys and s3:// sources are not)."""
    return source.startswith(("https://", "http://"))


def checked_address(url: str, rules: SourceRules) -> str:
    """The address to connect to for `url`, after checking its scheme and every address its host resolves to."""
    parts = urlsplit(url)
    if parts.scheme not in (("https", "http") if rules.allow_http else ("https",)) or not parts.hostname:
        raise SourceError("source_not_allowed", f"only {'http(s)' if rules.allow_http else 'https'} URLs are fetched")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        # an IPv4 or IPv6 sockaddr's host is a str (typeshed also allows the int of a build without IPv6)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        addresses = [cast(str, info[4][0]) for info in infos]
    except socket.gaierror as exc:
        raise SourceError("source_unreachable", f"cannot resolve {parts.hostname}: {exc}") from exc
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        allowed = rules.allow_private or (rules.allow_loopback and ip.is_loopback)
        if not ip.is_global and not allowed:
            raise SourceError("source_not_allowed", f"{parts.hostname} is a private, loopback or link-local address")
    return addresses[0]


def _pinned(url: str, address: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The URL aimed at `address`, with the Host header and TLS name of the original host."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = host + (f":{parts.port}" if parts.port else "")
    headers = {"Host": parts.netloc.rpartition("@")[2]}
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), headers, extensions


def download(url: str, destination: Path, rules: SourceRules) -> Path:
    """Fetch `url` into `destination` under `rules`; raises SourceError with a code for each failure."""
    timeout = httpx.Timeout(rules.timeout_s)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(rules.max_redirects + 1):
            address = checked_address(url, rules)
            target, headers, extensions = _pinned(url, address)
            try:
                with client.stream("GET", target, headers=headers, extensions=extensions) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        continue
                    if response.status_code != 200:
                        raise SourceError(
                            "source_unreachable", f"{urlsplit(url).hostname} answered {response.status_code}"
                        )
                    declared = int(response.headers.get("content-length") or 0)
                    if declared > rules.max_bytes:
                        raise SourceError(
                            "source_too_large", f"{declared} bytes exceeds the limit of {rules.max_bytes}"
                        )
                    received = 0
                    with open(destination, "wb") as out:
                        for chunk in response.iter_bytes(1 << 20):
                            received += len(chunk)
                            if received > rules.max_bytes:
                                raise SourceError("source_too_large", f"over the limit of {rules.max_bytes} bytes")
                            out.write(chunk)
                    return destination
            except httpx.HTTPError as exc:
                raise SourceError("source_unreachable", f"{urlsplit(url).hostname}: {exc}") from exc
    raise SourceError("source_unreachable", f"more than {rules.max_redirects} redirects")
