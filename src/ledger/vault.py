"""Secrets at rest: card-key codes and recipient accounts sealed with AES-GCM and looked up by
a keyed hash (HMAC); suppliers' API secrets and payment providers' signing secrets sealed;
requests fingerprinted by a keyed hash; the keyed pseudonyms analysts see customers by.

Every key is derived from the one store key (`ledger.storage.store_key`; "master" below) for
its own purpose, so the event cipher, each seal and each keyed hash never share key material.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eventsourcing.utils import Environment

from ledger.encoding.cipher import KeptKeyAESCipher


def derive_key(master_b64: str, purpose: str) -> bytes:
    master = base64.b64decode(master_b64)
    if len(master) not in (16, 24, 32):
        raise ValueError("LEDGER_CIPHER_KEY must be base64 of 16, 24 or 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"ledger", info=purpose.encode()).derive(master)


def derive_key_b64(master_b64: str, purpose: str) -> str:
    return base64.b64encode(derive_key(master_b64, purpose)).decode()


class Seal:
    """AES-GCM under a key derived for one purpose; sealed text is base64."""

    def __init__(self, master_b64: str, purpose: str) -> None:
        self._cipher = KeptKeyAESCipher(Environment(env={"CIPHER_KEY": derive_key_b64(master_b64, purpose)}))

    def seal(self, plain: str) -> str:
        return base64.b64encode(self._cipher.encrypt(plain.encode())).decode()

    def unseal(self, sealed: str) -> str:
        return self._cipher.decrypt(base64.b64decode(sealed)).decode()


class CodeVault:
    def __init__(self, master_b64: str) -> None:
        self._hmac_key = derive_key(master_b64, "card-code-hmac")
        self._codes = Seal(master_b64, "card-code-seal")
        self._account_hmac_key = derive_key(master_b64, "recipient-account-hmac")
        self.accounts = Seal(master_b64, "recipient-account-seal")
        self.supplier_secrets = Seal(master_b64, "supplier-secret-seal")
        self.provider_secrets = Seal(master_b64, "payment-provider-secret-seal")
        self._pseudonym_key = derive_key(master_b64, "analyst-pseudonym-hmac")
        self._request_hmac_key = derive_key(master_b64, "request-fingerprint-hmac")

    def fingerprint(self, code: str) -> str:
        return hmac.new(self._hmac_key, code.encode(), hashlib.sha256).hexdigest()

    def seal(self, code: str) -> str:
        return self._codes.seal(code)

    def unseal(self, sealed: str) -> str:
        return self._codes.unseal(sealed)

    def account_fingerprint(self, account: str) -> str:
        """The keyed hash support finds a recipient account by, without the account in clear."""
        return hmac.new(self._account_hmac_key, account.encode(), hashlib.sha256).hexdigest()

    def pseudonym(self, kind: str, value: str) -> str:
        """A stable keyed hash (hex) of a person's identifier (a customer, an account) for analysts: the
        same value always gives the same one, and nothing without the key leads back to the value."""
        return hmac.new(self._pseudonym_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def request_fingerprint(self, digest: str) -> str:
        """The keyed form of a request's digest, as an idempotency answer keeps it: a body (a
        redeemed code, a batch of codes) cannot be guessed and checked against it without the key."""
        return hmac.new(self._request_hmac_key, digest.encode(), hashlib.sha256).hexdigest()
