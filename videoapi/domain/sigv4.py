"""Verifying AWS Signature Version 4 on a request as received, with botocore's own signer.

The expected signature is computed by botocore's `SigV4Auth` over the headers the client says it signed,
at the time it says it signed; refusals carry the codes and messages AWS's JSON services answer with.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from videoapi.domain.aws_keys import KeyPair
from videoapi.errors import SignatureRejected

MAX_SKEW = dt.timedelta(minutes=15)
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)


class _ReceivedRequestSigner(SigV4Auth):
    """botocore's SigV4 over exactly the headers the client listed in SignedHeaders."""

    def __init__(self, credentials: Credentials, service: str, region: str, signed_headers: list[str]):
        super().__init__(credentials, service, region)
        self._signed_headers = signed_headers

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name in self._signed_headers:
            for value in request.headers.get_all(name) or []:
                headers[name] = value
        return headers


def _timestamp(text: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, SIGV4_TIMESTAMP).replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise SignatureRejected(
            "IncompleteSignatureException", f"Date must be in ISO-8601 'basic format'. Got '{text}'."
        ) from exc


def verify_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup: Callable[[str], KeyPair | None],
    service: str,
    now: dt.datetime | None = None,
) -> KeyPair:
    """The key pair that signed this request; SignatureRejected as AWS words it otherwise.

    `url` is the request's URL as received (Host header, raw path and query).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    authorization = lowered.get("authorization")
    if not authorization:
        raise SignatureRejected("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTHORIZATION.match(authorization)
    if not match:
        raise SignatureRejected(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters "
            f"(AWS4-HMAC-SHA256). Authorization={authorization[:40]}",
        )
    parts = match["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureRejected("IncompleteSignatureException", f"Credential is malformed: {match['credential']}")
    access_key_id, scope_date, region, scoped_service, _ = parts
    if scoped_service != service:
        raise SignatureRejected(
            "InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'."
        )
    amz_date = lowered.get("x-amz-date", "")
    signed_at = _timestamp(amz_date)
    if scope_date != amz_date[:8]:
        raise SignatureRejected(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{scope_date}' != '{amz_date[:8]}'",
        )
    now = now or dt.datetime.now(dt.UTC)

    def stamp(t: dt.datetime) -> str:
        return t.strftime(SIGV4_TIMESTAMP)

    if signed_at < now - MAX_SKEW:
        raise SignatureRejected(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {stamp(now - MAX_SKEW)} ({stamp(now)} - 15 min.)",
        )
    if signed_at > now + MAX_SKEW:
        raise SignatureRejected(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than {stamp(now + MAX_SKEW)} "
            f"({stamp(now)} + 15 min.)",
        )
    pair = lookup(access_key_id)
    if pair is None:
        raise SignatureRejected("UnrecognizedClientException", "The security token included in the request is invalid.")
    claimed_hash = lowered.get("x-amz-content-sha256")
    if claimed_hash and claimed_hash != hashlib.sha256(body).hexdigest():
        raise SignatureRejected("InvalidSignatureException", _MISMATCH)
    signed_headers = match["signed"].split(";")
    if "host" not in signed_headers:
        raise SignatureRejected(
            "InvalidSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization."
        )
    signer = _ReceivedRequestSigner(
        Credentials(pair.access_key_id, pair.secret_access_key), service, region, signed_headers
    )
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    request.context["timestamp"] = amz_date
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureRejected("InvalidSignatureException", _MISMATCH)
    return pair
