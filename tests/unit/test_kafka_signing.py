"""Signed Kafka messages: what the relay signs verifies under its public key, and a message that
was altered in any part (value, key, a header, the topic), carries no signature, or was signed by
another key is refused, saying why."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.config import Settings
from projections.kafka.signing import SIGNATURE, MessageSigner, MessageVerifier
from tests.kafka_keys import key_pair

TOPIC = "ledger.events"
KEY, VALUE = b"0d9f6a4c-3b4e-4f4e-9d6c-2f0e8a3b1c55", b'{"amount": "9.00"}'
HEADERS = [("ce_type", b"ledger.Order.Paid"), ("ledger_position", b"42"), ("ledger_prev_position", b"41")]


def pair(tmp_path: Path, name: str = "relay") -> tuple[MessageSigner, MessageVerifier]:
    private, public = key_pair(tmp_path, name)
    signer = MessageSigner.from_settings(Settings(kafka_signing_key_file=private), TOPIC)
    verifier = MessageVerifier.from_settings(Settings(kafka_verify_key_file=public))
    assert signer is not None and verifier is not None
    return signer, verifier


def test_a_signed_message_verifies(tmp_path: Path) -> None:
    signer, verifier = pair(tmp_path)
    signed = signer.signed(KEY, VALUE, HEADERS)
    assert signed[:-1] == HEADERS and signed[-1][0] == SIGNATURE
    assert verifier.problem(TOPIC, KEY, VALUE, signed) is None


@pytest.mark.parametrize(("change", "why"), [
    (lambda t, k, v, h: (t, k, b'{"amount": "0.01"}', h), "does not match"),
    (lambda t, k, v, h: (t, b"another-order", v, h), "does not match"),
    (lambda t, k, v, h: (t, k, v, [("ledger_position", b"43") if n == "ledger_position" else (n, d) for n, d in h]),
     "does not match"),
    (lambda t, k, v, h: (t, k, v, [("ledger_extra", b"x"), *h]), "does not match"),
    (lambda t, k, v, h: ("other.events", k, v, h), "does not match"),
    (lambda t, k, v, h: (t, k, v, [x for x in h if x[0] != SIGNATURE]), "unsigned"),
    (lambda t, k, v, h: (t, k, v, [*h, h[-1]]), "more than one"),
])
def test_an_altered_or_unsigned_message_is_refused(tmp_path: Path, change: object, why: str) -> None:
    signer, verifier = pair(tmp_path)
    topic, key, value, headers = change(TOPIC, KEY, VALUE, signer.signed(KEY, VALUE, HEADERS))  # type: ignore[operator]
    problem = verifier.problem(topic, key, value, headers)
    assert problem is not None and why in problem


def test_a_message_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    _, verifier = pair(tmp_path)
    forger, _ = pair(tmp_path, "forger")
    assert "does not match" in (verifier.problem(TOPIC, KEY, VALUE, forger.signed(KEY, VALUE, HEADERS)) or "")


def test_keys_that_cannot_be_used_name_their_variable(tmp_path: Path) -> None:
    other = tmp_path / "ec.pem"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ValueError, match="LEDGER_KAFKA_SIGNING_KEY_FILE"):
        MessageSigner.from_settings(Settings(kafka_signing_key_file=other), TOPIC)
    with pytest.raises(ValueError, match="LEDGER_KAFKA_VERIFY_KEY_FILE"):
        MessageVerifier.from_settings(Settings(kafka_verify_key_file=tmp_path / "missing.pem"))
    assert MessageSigner.from_settings(Settings(), TOPIC) is None and MessageVerifier.from_settings(Settings()) is None
