"""Uploads: presigned PUT and POST to the bucket, or the body through the API; keys under the client's prefix."""

from __future__ import annotations

import time
import uuid
from typing import Any

from videoapi.adapters.storage import Storage
from videoapi.domain.validation import safe_filename
from videoapi.domain.views import iso
from videoapi.errors import InvalidRequest, TooLarge, UnsupportedMediaType
from videoapi.settings import Settings


def upload_prefix(client_id: str) -> str:
    """Where a client's uploads go (and the only keys of the service bucket it may submit)."""
    return f"uploads/{client_id}/"


class UploadService:
    """Presigned uploads and direct ones, checked against the settings' types and sizes."""

    def __init__(self, settings: Settings, storage: Storage):
        self.settings, self.storage = settings, storage

    def _check_upload(self, filename: str, content_type: str, size: int) -> str:
        safe_filename(filename)
        if content_type not in self.settings.allowed_content_types:
            allowed = ", ".join(self.settings.allowed_content_types)
            raise UnsupportedMediaType(
                "unsupported_content_type", f"{content_type!r} is not one of: {allowed}", "content_type"
            )
        if size <= 0:
            raise InvalidRequest("invalid_size", "size_bytes must be positive", "size_bytes")
        return filename

    def upload_key(self, client_id: str, filename: str) -> str:
        return f"{upload_prefix(client_id)}{uuid.uuid4().hex}/{filename}"

    def presign_upload(self, client_id: str, filename: str, content_type: str, size_bytes: int) -> dict[str, Any]:
        """A presigned PUT bound to this size and type, and a POST policy enforcing the size limit."""
        self._check_upload(filename, content_type, size_bytes)
        if size_bytes > self.settings.max_upload_bytes:
            raise TooLarge(
                "too_large", f"size_bytes exceeds the limit of {self.settings.max_upload_bytes}", "size_bytes"
            )
        key = self.upload_key(client_id, filename)
        expires = self.settings.presign_expiry_s
        put_url = self.storage.presigned_put(key, content_type, size_bytes, expires)
        post = self.storage.presigned_post(key, content_type, size_bytes, expires)
        return {
            "key": key,
            "method": "PUT",
            "url": put_url,
            "headers": {"Content-Type": content_type, "Content-Length": str(size_bytes)},
            "post": post,
            "max_bytes": size_bytes,
            "expires_in": expires,
            "expires_at": iso(time.time() + expires),
        }

    def direct_upload(self, client_id: str, filename: str, content_type: str, data: bytes) -> dict[str, Any]:
        self._check_upload(filename, content_type, len(data) or 1)
        if not data:
            raise InvalidRequest("empty_body", "the request body is empty", "body")
        key = self.upload_key(client_id, filename)
        self.storage.put_bytes(key, data, content_type)
        return {"key": key, "size_bytes": len(data)}
