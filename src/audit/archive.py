"""The checkpoints this deployment signed, kept outside the database (LEDGER_AUDIT_CHECKPOINT_DIR,
by default DATA_DIR/audit-checkpoints): one `checkpoint-<size>.json` each, the newest being
what the next checkpoint must extend. Also where the signer says that it refused to sign
(`refused.txt`), so that every worker's /readyz and /metrics can tell."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from audit.checkpoint import Checkpoint

_NAME = re.compile(r"^checkpoint-(\d+)\.json$")
REFUSED = "refused.txt"


class CheckpointArchive:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def files(self) -> list[Path]:
        """The checkpoint files, smallest tree first."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def checkpoints(self) -> list[tuple[Path, Checkpoint]]:
        """Every kept checkpoint; ValueError naming the file when one is not a checkpoint."""
        return [(path, Checkpoint.read(path)) for path in self.files()]

    def keep(self, cp: Checkpoint) -> Path:
        """Write `cp` as checkpoint-<size>.json, whole or not at all."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"checkpoint-{cp.tree_size:012d}.json"
        fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".checkpoint-")
        os.close(fd)
        try:
            cp.write(Path(temporary))
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        return path

    def clear(self) -> None:
        """Forget every kept checkpoint and refusal: only for a store deleted and begun again
        (`ledger demo --reset`), whose old checkpoints describe a history that is gone."""
        for path in self.files():
            path.unlink()
        self.clear_refusal()

    # ---- the signer's refusal ----

    def refuse(self, reason: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / REFUSED).write_text(reason + "\n")

    def clear_refusal(self) -> None:
        (self.folder / REFUSED).unlink(missing_ok=True)

    def refusal(self) -> str | None:
        """Why the last attempt to sign was refused (None: it was not)."""
        try:
            return (self.folder / REFUSED).read_text().strip() or None
        except OSError:
            return None
