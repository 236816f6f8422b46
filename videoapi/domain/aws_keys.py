"""AWS-style key pairs (access key id and secret) issued per client, for SigV4-signed requests.

SigV4 is an HMAC keyed by the secret, so the service must be able to recover it: a hash cannot verify a
signature. The secret is therefore stored encrypted (Fernet) under the server key `aws_secret_key` when one
is set, and in plain text in Redis otherwise (fine for the local stack; set the key in production).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import time
from dataclasses import dataclass

import redis

from videoapi.domain import redis_keys

_ID_ALPHABET = string.ascii_uppercase + "234567"


@dataclass(frozen=True)
class KeyPair:
    access_key_id: str
    secret_access_key: str
    client_id: str


class KeyPairs:
    """Key pairs in one Redis hash: access key id -> {client, secret (encrypted when a server key is set)}."""

    def __init__(self, client: redis.Redis, server_key: str = ""):
        self.redis = client
        self._fernet = None
        if server_key:
            from cryptography.fernet import Fernet

            # any passphrase becomes a Fernet key: 32 bytes from its SHA-256, urlsafe base64
            self._fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(server_key.encode()).digest()))

    def create(self, client_id: str) -> KeyPair:
        """A new pair for client_id; the secret is shown to the caller once."""
        pair = KeyPair(
            access_key_id="AKIA" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16)),
            secret_access_key=secrets.token_urlsafe(30)[:40],
            client_id=client_id,
        )
        secret = pair.secret_access_key
        record = {
            "client_id": client_id,
            "created_at": time.time(),
            "encrypted": self._fernet is not None,
            "secret": self._fernet.encrypt(secret.encode()).decode() if self._fernet else secret,
        }
        self.redis.hset(redis_keys.AWS_KEY_PAIRS, pair.access_key_id, json.dumps(record))
        return pair

    def lookup(self, access_key_id: str) -> KeyPair | None:
        """The pair with this id, its secret decrypted; None when unknown (or undecryptable)."""
        raw = self.redis.hget(redis_keys.AWS_KEY_PAIRS, access_key_id) if access_key_id else None
        if raw is None:
            return None
        record = json.loads(raw)
        secret = record["secret"]
        if record.get("encrypted"):
            if self._fernet is None:
                return None
            from cryptography.fernet import InvalidToken

            try:
                secret = self._fernet.decrypt(secret.encode()).decode()
            except InvalidToken:  # encrypted under another server key
                return None
        return KeyPair(access_key_id, secret, record["client_id"])

    def rotate(self, access_key_id: str) -> KeyPair | None:
        """A new pair for the same client; the old one is revoked. None when the id is unknown."""
        old = self.lookup(access_key_id)
        if old is None:
            return None
        pair = self.create(old.client_id)
        self.revoke(access_key_id)
        return pair

    def revoke(self, access_key_id: str) -> bool:
        return bool(self.redis.hdel(redis_keys.AWS_KEY_PAIRS, access_key_id))
