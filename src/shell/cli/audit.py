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
    from audit.checkpoint import Checkpoint
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

    The tree is first brought up to the log's head."""
    from audit.checkpoint import Signer
    from audit.log import AuditLog

    with _opened() as (settings, store, reader):
        try:
            signer, generated = Signer.load(settings.signing_key_path)
        except (ValueError, OSError) as error:
            raise fail(str(error)) from None
        if generated:
            say(f"note: generated a new audit signing key in {settings.signing_key_path.resolve()} "
                 "(mode 0600); keep it beside the cipher key", err)
        log = AuditLog(store, reader)
        cp = log.checkpoint(signer)
    say(f"checkpoint: {describe(cp)}")
    if out_file is not None:
        try:
            cp.write(out_file)
        except OSError as error:
            raise fail(f"cannot write {out_file}: {error}") from None
        say(f"written to {out_file}")


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
    from audit.verification import verify

    with _opened() as (settings, store, reader):
        signed = store.checkpoints()
        checkpoint = _checkpoint(from_checkpoint, signed, settings.signing_key_path)
        with progress_bar("verifying") as update:
            result = verify(store, reader, checkpoint, signed, progress=update)
        store.add_verification(result.record())  # the outcome finance sees on /ui/finance
    report(result)
    if not result.ok:
        raise typer.Exit(1)


def _checkpoint(path: Path | None, signed: list[Checkpoint], key_path: Path) -> Checkpoint | None:
    from audit.checkpoint import Checkpoint, Signer

    if path is not None:
        try:
            return Checkpoint.read(path)
        except ValueError as error:
            raise fail(str(error)) from None
    if not key_path.exists():
        return None
    try:
        public_key = Signer.load(key_path)[0].public_key
    except (ValueError, OSError) as error:
        raise fail(str(error)) from None
    ours = [c for c in signed if c.public_key == public_key]
    return ours[-1] if ours else None


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
    cp = result.checkpoint
    if cp is None:
        say("checkpoint: none given and none stored; checked against the stored tree only")
        return
    verdicts = {
        "consistent": "the log still holds it as a prefix",
        "truncated": "TRUNCATED: the log holds fewer events than the checkpoint",
        "forked": "FORKED: the log's first leaves no longer hash to the checkpoint's root",
        "bad-signature": "BAD SIGNATURE: the checkpoint file was altered or is not signed by its key",
    }
    say(f"checkpoint ({describe(cp)}): {verdicts[result.checkpoint_status or 'consistent']}")
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
