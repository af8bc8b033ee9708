"""The event payload cipher: the library's AES-GCM, byte for byte, with its key set up once.

`eventsourcing.cryptography.AESCipher` builds a new `AESGCM` (and so the key schedule) for every
event it encrypts or decrypts, which cost more than decoding the event itself. This subclass
keeps one, and draws its nonces from `ledger.entropy` (the OS's random bytes, a block at a time).
The stored form is unchanged (12-byte nonce | 16-byte tag | ciphertext), so events
written by either class are read by the other.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.cryptography import AESCipher
from eventsourcing.utils import Environment

from ledger.entropy import random_bytes

NONCE, TAG = 12, 16


class KeptKeyAESCipher(AESCipher):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._aesgcm = AESGCM(self.key)  # immutable: safe to share between threads

    def encrypt(self, plaintext: bytes, associated_data: bytes | None = None) -> bytes:
        """Sealed; with `associated_data` (bound to, not stored in, the ciphertext), it opens only
        when given the same again (ledger.encoding.snapshots)."""
        nonce = random_bytes(NONCE)
        sealed = self._aesgcm.encrypt(nonce, plaintext, associated_data)
        return nonce + sealed[-TAG:] + sealed[:-TAG]

    def decrypt(self, ciphertext: bytes, associated_data: bytes | None = None) -> bytes:
        if len(ciphertext) < NONCE + TAG:
            raise ValueError("Damaged cipher text: shorter than nonce and tag")
        try:
            nonce, tag, sealed = ciphertext[:NONCE], ciphertext[NONCE : NONCE + TAG], ciphertext[NONCE + TAG :]
            return self._aesgcm.decrypt(nonce, sealed + tag, associated_data)
        except InvalidTag as error:
            raise ValueError("Invalid cipher tag") from error
