"""The checkpoint signing key, and the public keys a checkpoint must be signed by.

The signing key lives outside LEDGER_DATA_DIR (a database writer or a copy of the data
directory never holds it), readable by its owner only; anything else is refused at start.
The verifying keys are pinned: given in LEDGER_AUDIT_PUBLIC_KEYS or a file, or derived from
the signing key where this process holds it; never taken from a checkpoint or the database."""

from __future__ import annotations

import base64
import binascii
import stat
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.checkpoint import Signer
from ledger.config import Settings


class RefusedKey(ValueError):
    """A signing or public key that is refused, with the setting to change."""


def load_signer(settings: Settings) -> tuple[Signer, bool]:
    """The signing key (generated, mode 0600, when absent) and whether it was generated now;
    RefusedKey when it sits inside the data directory or others may read it."""
    path = settings.signing_key_path
    data_dir = settings.data_dir.resolve()
    where = path.expanduser().resolve()
    if where == data_dir or data_dir in where.parents:
        raise RefusedKey(f"LEDGER_AUDIT_SIGNING_KEY_FILE ({path}) is inside LEDGER_DATA_DIR ({settings.data_dir}): "
                        "whoever copies or writes the data directory could sign a rewritten history; move the key "
                        "elsewhere (default: ~/.config/ledger/audit-signing.key) and set the variable")
    if not where.exists():
        where.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        signer, generated = Signer.load(where)
    except ValueError as error:
        raise RefusedKey(f"LEDGER_AUDIT_SIGNING_KEY_FILE: {error}") from None
    mode = stat.S_IMODE(where.stat().st_mode)
    if mode & 0o077:
        raise RefusedKey(f"LEDGER_AUDIT_SIGNING_KEY_FILE ({path}) has mode {mode:04o}: group or others may read or "
                        f"change it; chmod 600 {path}")
    return signer, generated


def parse_public_key(text: str, source: str) -> bytes:
    """A base64 Ed25519 public key (32 bytes); RefusedKey naming `source` otherwise."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise RefusedKey(f"{source}: {text.strip()[:60]!r} is not a base64 Ed25519 public key (32 bytes)") from None
    return raw


def read_public_keys(path: Path) -> list[bytes]:
    """The keys in a file: one base64 public key per line (blank lines and # comments skipped)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise RefusedKey(f"{path}: cannot read: {error}") from None
    keys = [parse_public_key(line, f"{path}:{n}") for n, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise RefusedKey(f"{path}: no public key in it")
    return keys


def pinned_keys(settings: Settings, files: Iterable[Path] = ()) -> list[bytes]:
    """The public keys checkpoints must be signed by: those of `files` and LEDGER_AUDIT_PUBLIC_KEYS;
    when neither names one, the signing key's own if this process can read it; else none."""
    keys = [k for path in files for k in read_public_keys(path)]
    keys += [parse_public_key(part, "LEDGER_AUDIT_PUBLIC_KEYS")
             for part in settings.audit_public_keys.split(",") if part.strip()]
    if not keys and settings.signing_key_path.is_file():
        try:
            keys.append(Signer.load(settings.signing_key_path)[0].public_key)
        except (ValueError, OSError):
            pass
    return list(dict.fromkeys(keys))
