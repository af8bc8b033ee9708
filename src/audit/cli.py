"""`ledger audit checkpoint|verify|follow` and `ledger bench audit`, joined to the `ledger`
command through the `ledger.cli` entry point. None of them needs the cipher key."""

from __future__ import annotations

import hashlib
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from audit.checkpoint import Checkpoint, Signer
from audit.log import AuditLog
from audit.rows import EventReader
from audit.settings import AuditSettings
from audit.store import AuditStore
from audit.verify import Verification, verify
from ledger.config import Settings
from projections.cli import _progress

audit = typer.Typer(help="Tamper evidence: the Merkle tree over the log, signed checkpoints, verification.",
                    no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _say(line: str, console: Console = out) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    _say(f"error: {message}", err)
    return typer.Exit(1)


def key_id(public_key: bytes) -> str:
    """A short fingerprint of a public key: the first 8 bytes of its SHA-256, in hex."""
    return hashlib.sha256(public_key).hexdigest()[:16]


@contextmanager
def _opened() -> Iterator[tuple[Settings, AuditSettings, AuditStore, EventReader]]:
    try:
        settings, audit_settings = Settings(), AuditSettings()
        store = AuditStore(settings)
        reader = EventReader(settings)
    except (ValidationError, ValueError, OSError) as error:
        raise _fail(str(error).splitlines()[0]) from None
    try:
        yield settings, audit_settings, store, reader
    finally:
        reader.close()
        store.close()


def describe(cp: Checkpoint) -> str:
    return (f"tree size {cp.tree_size}, root {cp.root_hash.hex()}, last position {cp.last_position}, "
            f"signed {cp.timestamp} by key {key_id(cp.public_key)}")


@audit.command("checkpoint")
def checkpoint_command(
    out_file: Annotated[Path | None, typer.Option("--out", help="also write the checkpoint to this JSON file")] = None,
) -> None:
    """Sign the tree head (size, root, time) and keep it; --out exports it for finance.

    The tree is first brought up to the log's head."""
    with _opened() as (settings, audit_settings, store, reader):
        try:
            signer, generated = Signer.load(audit_settings.signing_key_path(settings))
        except (ValueError, OSError) as error:
            raise _fail(str(error)) from None
        if generated:
            _say(f"note: generated a new audit signing key in {audit_settings.signing_key_path(settings).resolve()} "
                 "(mode 0600); keep it beside the cipher key", err)
        log = AuditLog(store, reader)
        cp = log.checkpoint(signer)
    _say(f"checkpoint: {describe(cp)}")
    if out_file is not None:
        try:
            cp.write(out_file)
        except OSError as error:
            raise _fail(f"cannot write {out_file}: {error}") from None
        _say(f"written to {out_file}")


@audit.command("verify")
def verify_command(
    from_checkpoint: Annotated[Path | None, typer.Option(
        "--from-checkpoint", help="a checkpoint file kept outside the database (default: the newest stored one "
        "signed by this deployment's key)")] = None,
) -> None:
    """Recompute the Merkle tree from the stored events; exit 1 on any mismatch.

    Hashes the events as stored (never decrypts), reports the first position whose content,
    order or presence differs from the stored tree, and whether the log was truncated or
    forked since the checkpoint."""
    with _opened() as (settings, audit_settings, store, reader):
        signed = store.checkpoints()
        checkpoint = _checkpoint(from_checkpoint, signed, audit_settings.signing_key_path(settings))
        with _progress("verifying") as update:
            result = verify(store, reader, checkpoint, signed, progress=update)
    report(result)
    if not result.ok:
        raise typer.Exit(1)


def _checkpoint(path: Path | None, signed: list[Checkpoint], key_path: Path) -> Checkpoint | None:
    if path is not None:
        try:
            return Checkpoint.read(path)
        except ValueError as error:
            raise _fail(str(error)) from None
    if not key_path.exists():
        return None
    try:
        public_key = Signer.load(key_path)[0].public_key
    except (ValueError, OSError) as error:
        raise _fail(str(error)) from None
    ours = [c for c in signed if c.public_key == public_key]
    return ours[-1] if ours else None


def report(result: Verification) -> None:
    _say(f"hashed {result.events} events in {result.seconds:.2f} s ({result.events_per_s:,.0f} events/s)")
    _say(f"stored tree: {result.tree_size} leaves" + (f"; recomputed root {result.root.hex()}" if result.root else "")
         + (f"; {result.not_in_tree} newer events not in the tree yet" if result.not_in_tree else ""))
    if result.first is None:
        _say("events: every event matches the stored tree")
    else:
        first = result.first
        where = f"position {first.position}" if first.position is not None else "the stored tree"
        _say(f"MISMATCH at {where} (leaf {first.leaf_index}): {first.kind}: {first.detail}")
    cp = result.checkpoint
    if cp is None:
        _say("checkpoint: none given and none stored; checked against the stored tree only")
        return
    verdicts = {
        "consistent": "the log still holds it as a prefix",
        "truncated": "TRUNCATED: the log holds fewer events than the checkpoint",
        "forked": "FORKED: the log's first leaves no longer hash to the checkpoint's root",
        "bad-signature": "BAD SIGNATURE: the checkpoint file was altered or is not signed by its key",
    }
    _say(f"checkpoint ({describe(cp)}): {verdicts[result.checkpoint_status or 'consistent']}")
    _say("verification " + ("passed" if result.ok else "FAILED"))


@audit.command("follow")
def follow_command(
    batch_size: Annotated[int, typer.Option(min=1, help="events per transaction")] = 10_000,
) -> None:
    """Keep the tree up to date until stopped (Ctrl-C / SIGTERM); `ledger serve` does it too."""
    with _opened() as (_settings, audit_settings, store, reader):
        log = AuditLog(store, reader, batch_size=batch_size)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        _say(f"following from {log.size} leaves (position {log.position}); Ctrl-C stops")
        log.run_forever(stop, audit_settings.audit_poll_interval_s)
        _say(f"stopped at {log.size} leaves (position {log.position})")


def bench_audit_command(
    events: Annotated[int, typer.Option(min=1, help="events in the throwaway store")] = 200_000,
    realistic: Annotated[int, typer.Option(min=1, help="of which written through the ledger (the rest are "
                                                      "copies of their rows)")] = 20_000,
) -> None:
    """`ledger audit verify` events/s against a raw read of the same rows, same run.

    On a throwaway store; LEDGER_DATABASE_URL picks SQLite or PostgreSQL."""
    from audit.bench import bench_audit

    try:
        result = bench_audit(Settings(), events=events, realistic=min(realistic, events), say=_say)
    except RuntimeError as error:
        raise _fail(str(error)) from None
    _say(f"store: {result.store} (dropped); {result.events} events, {result.mean_bytes:.0f} bytes of state on average")
    _say(f"tree built (follower): {result.build_rate:.0f} events/s")
    _say(f"raw read: {result.raw_rate:.0f} events/s")
    _say(f"verify: {result.verify_rate:.0f} events/s")
    _say(f"ratio verify/raw {result.verify_rate / result.raw_rate:.2f}")


def register(app: typer.Typer, groups: dict[str, Any]) -> None:
    """Entry point `ledger.cli`."""
    app.add_typer(audit, name="audit")
    groups["bench"].command("audit")(bench_audit_command)
