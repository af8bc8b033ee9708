"""Signed tree heads: the signing key (never in the database, see `audit.keys`), and the JSON
file finance keeps."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.offline_verifier import CHECKPOINT_ORIGIN, checkpoint_message
from ledger.config import write_new_secret

FILE_FORMAT = "ledger-audit-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    tree_size: int
    root_hash: bytes
    last_position: int
    timestamp: str
    signature: bytes
    public_key: bytes

    @property
    def key_id(self) -> str:
        """A short fingerprint of the signing key: the first 8 bytes of its SHA-256, in hex."""
        return hashlib.sha256(self.public_key).hexdigest()[:16]

    def message(self) -> bytes:
        return checkpoint_message(self.tree_size, self.root_hash, self.timestamp, self.last_position)

    def signed_by(self, keys: Collection[bytes]) -> bool:
        """Is the signature valid under one of `keys` (the pinned ones)? The key the checkpoint
        names itself proves nothing: anyone can make a key and sign with it."""
        return self.key_status(keys) == "valid"

    def key_status(self, keys: Collection[bytes]) -> str:
        """valid (signed by one of `keys`), unpinned-key (it names a key not among them), or
        bad-signature (it names a pinned key, but the signature does not verify)."""
        if self.public_key not in keys:
            return "unpinned-key"
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(self.signature, self.message())
        except (InvalidSignature, ValueError):
            return "bad-signature"
        return "valid"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FILE_FORMAT,
            "origin": CHECKPOINT_ORIGIN,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "last_position": self.last_position,
            "timestamp": self.timestamp,
            "algorithm": "Ed25519",
            "public_key": base64.b64encode(self.public_key).decode(),
            "signature": base64.b64encode(self.signature).decode(),
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> Checkpoint:
        """A checkpoint file; ValueError naming the file and the field when it is not one."""
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: cannot read: {error}") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{error.lineno}: not JSON: {error.msg}") from None
        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            raise ValueError(f"{path}: not a checkpoint file (format must be {FILE_FORMAT!r})")

        def field(name: str, kind: type) -> Any:
            value = data.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"{path}: field {name!r} must be a {kind.__name__}")
            return value

        try:
            checkpoint = cls(
                tree_size=field("tree_size", int), root_hash=bytes.fromhex(field("root_hash", str)),
                last_position=field("last_position", int), timestamp=field("timestamp", str),
                signature=base64.b64decode(field("signature", str), validate=True),
                public_key=base64.b64decode(field("public_key", str), validate=True),
            )
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None
        if checkpoint.tree_size < 0 or len(checkpoint.root_hash) != 32:
            raise ValueError(f"{path}: field 'tree_size' must be >= 0 and 'root_hash' 32 bytes of hex")
        return checkpoint


class Signer:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.public_key = key.public_key().public_bytes_raw()

    @classmethod
    def load(cls, path: Path) -> tuple[Signer, bool]:
        """The key in `path` (base64 of the 32-byte private key), generated (mode 0600) if
        absent; and whether it was generated just now."""
        generated = False
        if not path.exists():
            try:
                write_new_secret(path, base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode())
                generated = True
            except FileExistsError:
                pass  # another process made it first: use theirs
        try:
            raw = base64.b64decode(path.read_text().strip(), validate=True)
            return cls(Ed25519PrivateKey.from_private_bytes(raw)), generated
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"{path}: not a base64 Ed25519 private key ({error})") from None

    def sign(self, tree_size: int, root: bytes, last_position: int, now: datetime | None = None) -> Checkpoint:
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        timestamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        message = checkpoint_message(tree_size, root, timestamp, last_position)
        return Checkpoint(tree_size, root, last_position, timestamp, self.key.sign(message), self.public_key)
