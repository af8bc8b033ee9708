"""`ledger audit checkpoint|verify|follow` and `ledger bench audit`: tamper evidence. None of them
needs the cipher key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ledger.collector import tune_for_serving
from ledger.config import Settings
from shell.cli.common import composed, err, fail, load_settings, progress_bar, say, stop_on_signals

if TYPE_CHECKING:
    from audit.checkpoint import Checkpoint, Signer
    from audit.rows import EventReader
    from audit.store import AuditStore
    from audit.verification import Verification

audit = typer.Typer(help="Tamper evidence: the Merkle tree over the log, signed checkpoints, verification.",
                    no_args_is_help=True)
@contextmanager
def _opened() -> Iterator[tuple[Settings, AuditStore, EventReader]]:
    """The tree's tables and a reader of the events as stored (no cipher key needed)."""
    with composed(load_settings(), build=lambda parts: parts.audit) as parts:
        try:
            reader = parts.event_reader()
        except (ValueError, OSError) as error:
            raise fail(str(error).splitlines()[0]) from None
        try:
            yield parts.settings, parts.audit, reader
        finally:
            reader.close()


def describe(cp: Checkpoint) -> str:
    return (f"tree size {cp.tree_size}, root {cp.root_hash.hex()}, last position {cp.last_position}, "
            f"signed {cp.timestamp} by key {cp.key_id}")


@audit.command("checkpoint")
def checkpoint_command(
    out_file: Annotated[Path | None, typer.Option("--out", help="also write the checkpoint to this JSON file")] = None,
) -> None:
    """Sign the tree head (size, root, time) and keep it; --out exports it for finance.

    The tree is first brought up to the log's head, and proven consistent with the last
    checkpoint signed (LEDGER_AUDIT_CHECKPOINT_DIR, and the database's): a tree that is not
    is refused, saying why, and nothing is signed."""
    from audit.archive import CheckpointArchive
    from audit.log import AuditLog, CheckpointRefused

    settings = load_settings()
    signer = _signer(settings)
    with _opened() as (settings, store, reader):
        log = AuditLog(store, reader)
        try:
            cp = log.checkpoint(signer, CheckpointArchive(settings.checkpoint_dir), _pinned(settings))
        except CheckpointRefused as refusal:
            raise fail(f"refused to sign: {refusal}") from None
    say(f"checkpoint: {describe(cp)}")
    if out_file is not None:
        try:
            cp.write(out_file)
        except OSError as error:
            raise fail(f"cannot write {out_file}: {error}") from None
        say(f"written to {out_file}")


@audit.command("public-key")
def public_key_command() -> None:
    """Print the signing key's public key (base64): pin it where checkpoints are verified
    (LEDGER_AUDIT_PUBLIC_KEYS, or a file for `ledger audit verify --public-key`)."""
    import base64

    signer = _signer(load_settings())
    say(base64.b64encode(signer.public_key).decode())


def _signer(settings: Settings) -> Signer:
    from audit.keys import RefusedKey, load_signer

    try:
        signer, generated = load_signer(settings)
    except (RefusedKey, OSError) as error:
        raise fail(str(error)) from None
    if generated:
        say(f"note: generated a new audit signing key in {settings.signing_key_path.resolve()} (mode 0600); keep "
            "it away from the data directory and the database", err)
    return signer


def _pinned(settings: Settings, files: list[Path] | None = None) -> list[bytes]:
    from audit.keys import RefusedKey, pinned_keys

    try:
        return pinned_keys(settings, files or [])
    except RefusedKey as error:
        raise fail(str(error)) from None


@audit.command("verify")
def verify_command(
    checkpoint_files: Annotated[list[Path] | None, typer.Option(
        "--checkpoint", "--from-checkpoint", help="a checkpoint file kept outside the database (repeatable); the "
        "database must still hold each one")] = None,
    checkpoint_dir: Annotated[Path | None, typer.Option(
        "--checkpoint-dir", help="also every checkpoint-*.json here (default: LEDGER_AUDIT_CHECKPOINT_DIR, "
        "DATA_DIR/audit-checkpoints)")] = None,
    public_keys: Annotated[list[Path] | None, typer.Option(
        "--public-key", help="a file of pinned public keys (base64, one a line; repeatable); default: "
        "LEDGER_AUDIT_PUBLIC_KEYS, else the signing key's own")] = None,
) -> None:
    """Recompute the Merkle tree from the stored events; hold it to every checkpoint; exit 1 on
    any mismatch, and when nothing signed was there to hold it to.

    Hashes the events as stored (never decrypts), reports the first position whose content,
    order or presence differs from the stored tree, and holds the log to every checkpoint it is
    given, finds in the checkpoint directory or finds in the database: each must be signed by a
    pinned key, still be a prefix of the log, and (for a file's) still be in the database."""
    from audit.verification import verify

    with _opened() as (settings, store, reader):
        keys = _pinned(settings, public_keys)
        files = _checkpoint_files(checkpoint_files or [], checkpoint_dir or settings.checkpoint_dir)
        with progress_bar("verifying") as update:
            result = verify(store, reader, files, keys, progress=update)
        store.add_verification(result.record())  # the outcome finance sees on /ui/finance
    report(result)
    if not result.ok:
        raise typer.Exit(1)


def _checkpoint_files(given: list[Path], folder: Path) -> list[tuple[str, Checkpoint]]:
    from audit.archive import CheckpointArchive
    from audit.checkpoint import Checkpoint

    try:
        found = [(str(path), Checkpoint.read(path)) for path in given]
        return found + [(str(path), cp) for path, cp in CheckpointArchive(folder).checkpoints()]
    except ValueError as error:
        raise fail(str(error)) from None


VERDICTS = {
    "consistent": "the log still holds it as a prefix",
    "truncated": "TRUNCATED: the log holds fewer events than the checkpoint",
    "forked": "FORKED: the log's first leaves no longer hash to the checkpoint's root",
    "bad-signature": "BAD SIGNATURE: it names a pinned key but is not signed by it (altered)",
    "unpinned-key": "UNPINNED KEY: not signed by a pinned key (forged, or pin the key that signed it)",
    "missing": "MISSING from audit_checkpoints: deleted from the database",
}


def report(result: Verification) -> None:
    say(f"hashed {result.events} events in {result.seconds:.2f} s ({result.events_per_s:,.0f} events/s)")
    say(f"stored tree: {result.tree_size} leaves" + (f"; recomputed root {result.root.hex()}" if result.root else "")
         + (f"; {result.not_in_tree} newer events not in the tree yet" if result.not_in_tree else ""))
    if result.first is None:
        say("events: every event matches the stored tree")
    else:
        first = result.first
        where = f"position {first.position}" if first.position is not None else "the stored tree"
        say(f"MISMATCH at {where} (leaf {first.leaf_index}): {first.kind}: {first.detail}")
    for held in result.held:
        also = f"; against the log: {VERDICTS[held.against_log]}" if held.status == "missing" and held.against_log \
            else ""
        say(f"checkpoint ({describe(held.checkpoint)}) from {held.source}: {VERDICTS[held.status]}{also}")
    if not result.pinned:
        say("NOT VERIFIED: no pinned public key (--public-key, LEDGER_AUDIT_PUBLIC_KEYS, or the signing key "
            "LEDGER_AUDIT_SIGNING_KEY_FILE): a checkpoint signed by any key would pass")
    elif not result.held:
        say("NOT VERIFIED: no signed checkpoint given or found; the stored tree alone proves nothing "
            "(whoever can write the database can rebuild it)")
    say("verification " + ("passed" if result.ok else "FAILED"))


@audit.command("follow")
def follow_command(
    batch_size: Annotated[int, typer.Option(min=1, help="events per transaction")] = 10_000,
) -> None:
    """Keep the tree up to date until stopped (Ctrl-C / SIGTERM); `ledger serve` does it too."""
    from audit.log import AuditLog

    with _opened() as (settings, store, reader):
        log = AuditLog(store, reader, batch_size=batch_size)
        stop = stop_on_signals()
        say(f"following from {log.size} leaves (position {log.position}); Ctrl-C stops")
        tune_for_serving()  # a long-running process (ledger.collector)
        log.run_forever(stop, settings.audit_poll_interval_s)
        say(f"stopped at {log.size} leaves (position {log.position})")


def bench_audit_command(
    events: Annotated[int, typer.Option(min=1, help="events in the throwaway store")] = 200_000,
    realistic: Annotated[int, typer.Option(min=1, help="of which written through the ledger (the rest are "
                                                      "copies of their rows)")] = 20_000,
) -> None:
    """`ledger audit verify` events/s against a raw read of the same rows, same run.

    On a throwaway store; LEDGER_DATABASE_URL picks SQLite or PostgreSQL."""
    from shell.bench.audit import bench_audit

    try:
        result = bench_audit(load_settings(), events=events, realistic=min(realistic, events), say=say)
    except RuntimeError as error:
        raise fail(str(error)) from None
    say(f"store: {result.store} (dropped); {result.events} events, {result.mean_bytes:.0f} bytes of state on average")
    say(f"tree built (follower): {result.build_rate:.0f} events/s")
    say(f"raw read: {result.raw_rate:.0f} events/s")
    say(f"verify: {result.verify_rate:.0f} events/s")
    say(f"ratio verify/raw {result.verify_rate / result.raw_rate:.2f}")
