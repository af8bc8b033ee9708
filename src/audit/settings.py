"""Audit settings, from the environment (prefix LEDGER_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.config import Settings


class AuditSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    audit_signing_key_file: Path | None = Field(
        default=None, description="Ed25519 key that signs checkpoints; empty: DATA_DIR/audit-signing.key, generated")
    audit_checkpoint_interval_s: float = Field(default=3600, ge=0, description="ledger serve signs one; 0 = never")
    audit_checkpoint_dir: Path | None = Field(
        default=None, description="ledger serve also writes each checkpoint it signs here as JSON")
    audit_poll_interval_s: float = Field(default=0.5, gt=0, description="how often the tree follower polls")

    def signing_key_path(self, settings: Settings) -> Path:
        return self.audit_signing_key_file or settings.data_dir / "audit-signing.key"
