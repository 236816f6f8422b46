"""S3-compatible object storage: videos in, results out, streamed through temporary files."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from videoapi.errors import ObjectNotFound, StorageError
from videoapi.settings import Settings

T = TypeVar("T")


class S3Client(Protocol):
    """The calls made on a boto3 S3 client (boto3 ships no types)."""

    def head_object(self, **kwargs: Any) -> dict[str, Any]: ...
    def get_object(self, **kwargs: Any) -> dict[str, Any]: ...
    def put_object(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_object(self, **kwargs: Any) -> dict[str, Any]: ...
    def head_bucket(self, **kwargs: Any) -> dict[str, Any]: ...
    def create_bucket(self, **kwargs: Any) -> dict[str, Any]: ...
    def download_file(self, Bucket: str, Key: str, Filename: str, ExtraArgs: dict[str, Any] | None = None) -> None: ...
    def upload_file(self, Filename: str, Bucket: str, Key: str, ExtraArgs: dict[str, Any] | None = None) -> None: ...
    def upload_fileobj(
        self, Fileobj: BinaryIO, Bucket: str, Key: str, ExtraArgs: dict[str, Any] | None = None
    ) -> None: ...
    def generate_presigned_url(
        self, ClientMethod: str, Params: dict[str, Any] | None = None, ExpiresIn: int = 3600
    ) -> str: ...
    def generate_presigned_post(
        self,
        Bucket: str,
        Key: str,
        Fields: dict[str, Any] | None = None,
        Conditions: list[Any] | None = None,
        ExpiresIn: int = 3600,
    ) -> dict[str, Any]: ...
    def get_paginator(self, operation_name: str) -> Any: ...


SINGLE_GET_BYTES = 8 * 2**20  # boto3's multipart threshold: an object under it is fetched in one GET


@dataclass
class Storage:
    """One bucket, through boto3 (retries in botocore's standard mode)."""

    client: S3Client
    bucket: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        config = Config(
            retries={"max_attempts": settings.s3_max_attempts, "mode": "standard"},
            connect_timeout=settings.s3_connect_timeout_s,
            read_timeout=settings.s3_read_timeout_s,
            tcp_keepalive=True,
            signature_version="s3v4",
        )
        client = boto3.client(
            "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region, config=config
        )
        return cls(client=client, bucket=settings.bucket)

    def _guard(self, what: str, key: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                raise ObjectNotFound(f"s3://{self.bucket}/{key} does not exist") from exc
            error = StorageError(f"{what} s3://{self.bucket}/{key} failed: {code or exc}")
            error.transient = code in ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "503")
            raise error from exc
        except (EndpointConnectionError, BotoCoreError) as exc:
            raise StorageError(f"{what} s3://{self.bucket}/{key} failed: {exc}") from exc

    def for_bucket(self, bucket: str) -> Storage:
        """The same client on another bucket."""
        return self if bucket == self.bucket else Storage(client=self.client, bucket=bucket)

    def presigned_get(self, key: str, expires_s: int, download_as: str | None = None) -> str:
        """A URL that GETs the object for `expires_s`; with `download_as`, browsers save it under that name."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if download_as:
            params["ResponseContentDisposition"] = f'attachment; filename="{download_as}"'
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s)

    def presigned_put(self, key: str, content_type: str, size_bytes: int, expires_s: int) -> str:
        """A URL that PUTs exactly this type and size to `key` for `expires_s`."""
        params = {"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": size_bytes}
        return self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_s)

    def presigned_post(self, key: str, content_type: str, max_bytes: int, expires_s: int) -> dict[str, Any]:
        """A browser form upload (url and fields) to `key`, its type fixed and its size at most `max_bytes`."""
        conditions: list[Any] = [{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]]
        post = self.client.generate_presigned_post(
            self.bucket, key, Fields={"Content-Type": content_type}, Conditions=conditions, ExpiresIn=expires_s
        )
        return {"url": post["url"], "fields": post["fields"]}

    def size(self, key: str, version_id: str | None = None) -> int:
        version = {"VersionId": version_id} if version_id else {}
        head = self._guard("head", key, self.client.head_object, Bucket=self.bucket, Key=key, **version)
        return int(head["ContentLength"])

    def download(
        self, key: str, path: Path, version_id: str | None = None, check_size: Callable[[int], None] | None = None
    ) -> Path:
        """Stream an object (a given version of it) to a local file (multipart, chunked: never whole in memory).

        With `check_size`, the object is asked for at once and `check_size` gets its length before any of it is
        read (it raises to refuse it): one request instead of a HEAD and a GET. One under boto3's multipart
        threshold is then read from that GET (the transfer manager would add a HEAD and a thread pool, most of a
        short video's fetch: bench/batch.py's own work per item); a larger one goes through the transfer manager.
        """
        if check_size is not None:
            version = {"VersionId": version_id} if version_id else {}
            response = self._guard("download", key, self.client.get_object, Bucket=self.bucket, Key=key, **version)
            body, length = response["Body"], int(response["ContentLength"])
            try:
                check_size(length)
                if length < SINGLE_GET_BYTES:
                    self._guard("download", key, self._save, body, path)
                    return path
            finally:
                body.close()  # unread (refused, or large): the connection is dropped, not drained
        extra = {"ExtraArgs": {"VersionId": version_id}} if version_id else {}
        self._guard("download", key, self.client.download_file, self.bucket, key, str(path), **extra)
        return path

    @staticmethod
    def _save(body: Any, path: Path) -> None:
        with path.open("wb") as file:
            for chunk in body.iter_chunks(1 << 20):
                file.write(chunk)

    def upload_file(self, path: Path, key: str, content_type: str) -> None:
        self._guard(
            "upload", key, self.client.upload_file, str(path), self.bucket, key, ExtraArgs={"ContentType": content_type}
        )

    def upload_fileobj(self, fileobj: BinaryIO, key: str, content_type: str) -> None:
        """Stream an open binary file (from its start) to an object."""
        fileobj.seek(0)
        self._guard(
            "upload",
            key,
            self.client.upload_fileobj,
            fileobj,
            self.bucket,
            key,
            ExtraArgs={"ContentType": content_type},
        )

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self._guard(
            "put", key, self.client.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
        )

    def put_json(self, key: str, document: dict[str, Any]) -> None:
        self.put_bytes(key, json.dumps(document, separators=(",", ":")).encode(), "application/json")

    def get_bytes(self, key: str) -> bytes:
        body = self._guard("get", key, self.client.get_object, Bucket=self.bucket, Key=key)["Body"]
        data: bytes = body.read()
        return data

    def get_json(self, key: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.get_bytes(key))
        return document

    def iter_lines(self, key: str) -> Iterator[bytes]:
        """The object's lines, streamed (never whole in memory)."""
        body = self._guard("get", key, self.client.get_object, Bucket=self.bucket, Key=key)["Body"]
        try:
            yield from body.iter_lines(chunk_size=1 << 16)  # botocore reads 1 KiB at a time by default
        except (EndpointConnectionError, BotoCoreError) as exc:
            raise StorageError(f"read s3://{self.bucket}/{key} failed: {exc}") from exc

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix` in key order, a page (1,000) at a time."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    yield item["Key"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                raise ObjectNotFound(f"s3://{self.bucket} does not exist") from exc
            raise StorageError(f"list s3://{self.bucket}/{prefix} failed: {code or exc}") from exc
        except (EndpointConnectionError, BotoCoreError) as exc:
            raise StorageError(f"list s3://{self.bucket}/{prefix} failed: {exc}") from exc

    def delete(self, key: str) -> None:
        self._guard("delete", key, self.client.delete_object, Bucket=self.bucket, Key=key)

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._guard("create bucket", "", self.client.create_bucket, Bucket=self.bucket)
