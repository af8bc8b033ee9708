"""Signed messages: the relay signs each message it publishes with an Ed25519 key of its own
(LEDGER_KAFKA_SIGNING_KEY_FILE), and a read-model consumer given the matching public key
(LEDGER_KAFKA_VERIFY_KEY_FILE) refuses any message whose signature is missing or does not cover
exactly what it received: someone who may write to the topic, but does not hold the relay's key,
cannot add, alter or reorder an event the read models will take.

What is signed: the topic, the key, the value and every header but the signature itself, in
order, each preceded by its length (docs/kafka.md, "Signed messages")."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.config import Settings

SIGNATURE = "ledger_signature"
_CONTEXT = b"ledger.kafka.message.v1"
_LENGTH = struct.Struct(">Q")
Header = tuple[str, bytes]


def signed_bytes(topic: str, key: bytes | None, value: bytes, headers: Sequence[Header]) -> bytes:
    parts = [_CONTEXT, topic.encode(), key or b"", value]
    for name, data in headers:
        if name != SIGNATURE:
            parts += [name.encode(), data]
    return b"".join(_LENGTH.pack(len(part)) + part for part in parts)


def _pem(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValueError(f"{variable}: cannot read {path} ({error.strerror})") from None


class MessageSigner:
    def __init__(self, key: Ed25519PrivateKey, topic: str) -> None:
        self.key, self.topic = key, topic

    @classmethod
    def from_settings(cls, settings: Settings, topic: str) -> MessageSigner | None:
        path = settings.kafka_signing_key_file
        if path is None:
            return None
        key = serialization.load_pem_private_key(_pem(path, "LEDGER_KAFKA_SIGNING_KEY_FILE"), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"LEDGER_KAFKA_SIGNING_KEY_FILE: {path} is not an Ed25519 private key")
        return cls(key, topic)

    def signed(self, key: bytes, value: bytes, headers: list[Header]) -> list[Header]:
        """`headers` with the signature of the message appended."""
        return [*headers, (SIGNATURE, self.key.sign(signed_bytes(self.topic, key, value, headers)))]


class MessageVerifier:
    def __init__(self, key: Ed25519PublicKey) -> None:
        self.key = key

    @classmethod
    def from_settings(cls, settings: Settings) -> MessageVerifier | None:
        path = settings.kafka_verify_key_file
        if path is None:
            return None
        key = serialization.load_pem_public_key(_pem(path, "LEDGER_KAFKA_VERIFY_KEY_FILE"))
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"LEDGER_KAFKA_VERIFY_KEY_FILE: {path} is not an Ed25519 public key")
        return cls(key)

    def problem(self, topic: str, key: bytes | None, value: bytes, headers: Sequence[Header]) -> str | None:
        """Why the message is refused (no signature, or one that does not cover it), or None."""
        signatures = [data for name, data in headers if name == SIGNATURE]
        if len(signatures) != 1:
            return "unsigned" if not signatures else "more than one signature"
        try:
            self.key.verify(signatures[0], signed_bytes(topic, key, value, headers))
        except InvalidSignature:
            return "its signature does not match the relay's key"
        return None
