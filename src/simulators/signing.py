"""The protocol's signatures: `sha256=<hex HMAC-SHA256(secret, message)>` (docs/upstream.md).

A POST and a callback sign the raw body bytes; a GET signs its request target, the path and
query exactly as on the request line."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="
HEADER = "X-Signature"


def signature(secret: str, message: bytes) -> str:
    """The X-Signature value of `message` under `secret` (its UTF-8 bytes are the HMAC key)."""
    return PREFIX + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(secret: str, message: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of `message`; compared in constant time."""
    if header is None:
        return False
    return hmac.compare_digest(header.strip().lower().encode(), signature(secret, message).encode())


def request_target(raw_path: bytes, query_string: bytes) -> bytes:
    """What a GET signs: the path, then `?` and the query when there is one, as they were sent."""
    return raw_path + b"?" + query_string if query_string else raw_path
