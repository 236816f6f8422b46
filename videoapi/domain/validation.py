"""Checks on what clients send: file names, object keys, callback URLs (resolved, so no private address)."""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from urllib.parse import urlparse

from videoapi.errors import InvalidRequest

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_filename(name: str, field: str = "filename") -> str:
    """A file name fit to be the last part of a key: no separators, no dot-dot, no control characters."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or ".." in name or _CONTROL.search(name):
        raise InvalidRequest(
            "invalid_filename", "file names may not contain '/', '\\', '..' or control characters", field
        )
    # any printable Unicode is fine (S3 keys are UTF-8); invisible characters could disguise a name
    if any(unicodedata.category(c)[0] == "C" for c in name) or len(name.encode()) > 255 or name != name.strip():
        raise InvalidRequest(
            "invalid_filename", "file names must be printable, without edge spaces, at most 255 bytes", field
        )
    return name


def check_key(key: str, field: str = "source") -> str:
    if (
        not key
        or len(key) > 1024
        or key[0] == "/"
        or "//" in key
        # a "." or ".." part starts the key or follows a "/": only such keys are split (a manifest's submission
        # checks 100,000 keys, most without one)
        or ((key[0] == "." or "/." in key) and any(part in (".", "..") for part in key.split("/")))
        or _CONTROL.search(key)
    ):
        raise InvalidRequest("invalid_key", "object keys may not be empty, absolute, or hold '.', '..' or '//'", field)
    return key


def check_callback_url(url: str, allow_private: bool) -> str:
    malformed = InvalidRequest("invalid_callback_url", "callback_url must be an http(s) URL", "callback_url")
    try:
        parsed = urlparse(url)
        port = parsed.port  # ValueError for a port out of 0-65535 or not a number
    except ValueError:  # and for a malformed IPv6 host ("https://[::1/")
        raise malformed from None
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise malformed
    if allow_private:
        return url
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(parsed.hostname, port or 443)}
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode (an empty label, 64+)
        raise InvalidRequest("invalid_callback_url", f"cannot resolve {parsed.hostname}", "callback_url") from exc
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise InvalidRequest(
                "callback_url_not_allowed",
                f"callbacks to private or loopback addresses ({ip}) are refused",
                "callback_url",
            )
    return url
