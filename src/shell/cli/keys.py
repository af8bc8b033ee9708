"""`ledger keys check | rotate`: the cipher key that opens the store (`ledger.storage.store_key`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shell.cli.common import describe_store, fail, load_settings, note_generated_key, say

keys = typer.Typer(help="The cipher key that opens the store: check it, rotate it.", no_args_is_help=True)


@keys.command("check")
def check() -> None:
    """Say whether the cipher key (LEDGER_CIPHER_KEY or DATA_DIR/cipher.key) opens the store, and its key id."""
    from ledger.storage.store_key import given_key, key_id, unlock_store

    settings = load_settings()
    try:
        unlocked = unlock_store(settings)
    except (ValueError, OSError) as error:
        raise fail(f"cannot open the store at {describe_store(settings)}: {error}") from None
    note_generated_key(unlocked.generated)
    given = given_key(settings)
    assert given is not None  # unlocked: given, or generated just now
    say(f"{given.source} opens the store at {describe_store(settings)} (key id {key_id(given.value)[:16]})")


@keys.command("rotate")
def rotate(
    new_key_file: Annotated[Path | None, typer.Option(
        help="where the new key is written (mode 0600; must not exist); default DATA_DIR/cipher.key.new")] = None,
) -> None:
    """Seal the store's key under a new cipher key; the old one no longer opens the store.

    The new key is written to its file first, then the store is sealed under it in one
    statement. Processes already running keep working; start every new one with the new key
    (replace DATA_DIR/cipher.key with the new file, or set LEDGER_CIPHER_KEY to its contents).
    Events are not rewritten."""
    from ledger.storage.store_key import rotate_cipher_key

    settings = load_settings()
    target = new_key_file or settings.data_dir / "cipher.key.new"
    try:
        new_id = rotate_cipher_key(settings, target)
    except FileExistsError:
        raise fail(f"{target} exists already: give --new-key-file a path that does not") from None
    except (ValueError, OSError) as error:
        raise fail(f"cannot rotate the key of the store at {describe_store(settings)}: {error}") from None
    say(f"the store at {describe_store(settings)} is now sealed under the key in {target.resolve()} "
        f"(key id {new_id[:16]}); the old key no longer opens it")
    say(f"next: replace {(settings.data_dir / 'cipher.key').resolve()} with it, or set LEDGER_CIPHER_KEY to its "
        "contents, for every process started from now on")
