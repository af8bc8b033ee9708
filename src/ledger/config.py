"""The one settings object, from the environment (prefix LEDGER_) or passed in by tests.

Every part of the product reads its settings here: the store, the writer, the business
rules, the HTTP API, the audit tree, Kafka and order-time risk. `shell.composition` builds
a process from one `Settings`."""

from __future__ import annotations

import base64
import itertools
import os
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("data")
# Of API tokens. `payments`: a trusted back end that confirms payments (the storefront cannot).
ROLES = ("admin", "storefront", "finance", "risk", "analyst", "partner", "support", "payments")


MIN_TOKEN_LENGTH = 32  # of a token in LEDGER_API_TOKENS
MIN_TOKEN_DISTINCT = 8  # different characters in it at least


def token_weakness(token: str) -> str | None:
    """Why `token` is too weak to be a secret, or None. Random tokens of 32 characters or more
    (hex, base64, `secrets.token_urlsafe`, a UUID's hex) pass; short ones, repeated characters,
    few distinct characters, repeated pieces and runs like `abcd...` do not."""
    if len(token) < MIN_TOKEN_LENGTH:
        return f"has {len(token)} characters, fewer than {MIN_TOKEN_LENGTH}"
    if len(set(token)) < MIN_TOKEN_DISTINCT:
        return f"has only {len(set(token))} different characters (at least {MIN_TOKEN_DISTINCT}): not random"
    triples = [token[i:i + 3] for i in range(len(token) - 2)]
    if len(set(triples)) * 4 < len(triples) * 3:
        return "repeats pieces of itself (a quarter of its 3-character pieces are repeats): not random"
    steps = sum(abs(ord(a) - ord(b)) <= 1 for a, b in itertools.pairwise(token))
    if steps * 3 > len(token) * 2:
        return "runs through neighbouring characters (abcd..., 1234...) for two thirds of its length: not random"
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    # ---- store ----
    database_url: str = Field(
        default="",
        description="sqlite:///PATH or postgresql://USER@HOST:PORT/DB; empty: SQLite under data_dir",
    )
    views_database_url: str = Field(default="", description="read models elsewhere; empty: beside the events")
    data_dir: Path = DEFAULT_DATA_DIR
    cipher_key: str = Field(default="", description="base64 of 32 bytes, the key that opens the store "
                            "(ledger.storage.store_key); empty: DATA_DIR/cipher.key, generated for an empty store")
    postgres_pool_size: int = Field(default=10, gt=0)
    aggregate_cache_size: int = Field(default=20_000, ge=0, description="the read cache of queries")

    # ---- rules ----
    reservation_timeout_s: int = Field(default=900, gt=0)
    max_unpaid_per_customer: int = Field(default=3, gt=0)
    max_unpaid_per_ip: int = Field(default=10, gt=0)
    max_unpaid_per_device: int = Field(default=5, gt=0)
    max_quantity_per_order: int = Field(default=100, gt=0)
    command_attempts: int = Field(default=40, gt=0, description="retries on version conflicts")

    # ---- writer ----
    writer_memory: int = Field(default=200_000, gt=0, description="aggregates the writer keeps in memory")
    writer_max_batch: int = Field(default=500, gt=0, description="commands committed together at most")
    writer_address: str = Field(default="", description="set by `ledger serve`: its workers' way to the writer")
    writer_authkey: str = Field(default="", description="set by `ledger serve`: the writer socket's shared secret")

    # ---- api (`ledger serve`) ----
    api_tokens: str = Field(default="", description="role=token,role=token,...; each token at least "
                            f"{MIN_TOKEN_LENGTH} random-looking characters")
    max_request_bytes: int = Field(default=1_048_576, gt=0, description="larger bodies get 413")
    rate_limit_per_minute: int = Field(
        default=3000, ge=0, description="requests a minute per token (else per client address) on orders, "
        "redemptions and suppliers' callbacks, per process; 0 = off")
    auth_failures_per_minute: int = Field(
        default=10, ge=0, description="unknown tokens and failed UI sign-ins a minute per client address, per "
        "process; past it the address gets 429 for any token the process does not already hold valid; 0 = off")
    live_read_max_age_ms: int = Field(
        default=50, ge=0, le=10_000,
        description="a live read (no as_of) may answer from what the read models showed this long ago: "
                    "its position, and the hottest reads' answers (api.fresh); 0 = always ask them")
    read_wait_s: float = Field(default=2.0, gt=0, description="how long a read waits for min_position")
    ready_max_lag_events: int = Field(default=10_000, ge=0, description="readyz fails beyond this lag")
    sweep_interval_s: float = Field(default=5.0, gt=0)
    as_of_cached_events: int = Field(default=50_000, ge=0, description="decoded events the reconciliation job "
                                     "keeps (~2 KB each); events past them are decoded again per run")
    as_of_checkpoint_events: int = Field(default=5_000, gt=0, description="positions between two checkpoints of "
                                         "the read models: an as_of read folds at most twice this many events")
    reconcile_interval_s: float = Field(default=300, ge=0, description="ledger serve reconciles when the read "
                                        "models moved and this long passed since the last run; 0 = never")
    serve_projections: bool = Field(default=True, description="run the projection runner in `serve`")
    serve_relay: bool = Field(default=False, description="run the Kafka relay beside the API (`serve --relay`)")
    ui_secure_cookie: bool = Field(
        default=True, description="the UI's cookies carry `Secure` (sent over HTTPS only); false only for a UI "
        "served over plain HTTP, such as a local demo (docs/ui.md)")

    # ---- audit ----
    audit_signing_key_file: Path | None = Field(
        default=None, description="Ed25519 key that signs checkpoints, mode 0600, never inside DATA_DIR; empty: "
        "$XDG_CONFIG_HOME/ledger/audit-signing.key (~/.config/ledger/...), generated on first use")
    audit_public_keys: str = Field(
        default="", description="the pinned Ed25519 public keys (base64, comma-separated) checkpoints must be "
        "signed by; empty: the signing key's own (when this process can read it)")
    audit_checkpoint_interval_s: float = Field(default=3600, ge=0, description="ledger serve signs one; 0 = never")
    audit_checkpoint_dir: Path | None = Field(
        default=None, description="each checkpoint signed is kept here as JSON, and the next must extend the newest;"
        " empty: DATA_DIR/audit-checkpoints")
    audit_poll_interval_s: float = Field(default=0.5, gt=0, description="how often the tree follower polls")

    # ---- kafka ----
    kafka_bootstrap: str = Field(default="", description="host:port[,host:port...] of a Kafka cluster; empty: none")
    kafka_topic_prefix: str = Field(default="ledger.", pattern=r"^[A-Za-z0-9._-]*$",
                                    description="topics are <prefix>events and <prefix>views-lanes")
    kafka_partitions: int = Field(default=6, gt=0, description="partitions of a topic the relay creates")
    kafka_replication: int = Field(default=1, gt=0, description="replication factor of a topic the relay creates")
    kafka_source: str = Field(default="urn:ledger", min_length=1, description="the CloudEvents `source` of events")
    kafka_group: str = Field(default="ledger-views", min_length=1, description="consumer group of read models")
    kafka_delivery_timeout_ms: int = Field(default=30_000, ge=1000,
                                           description="a send not acknowledged in this time fails: an outage")
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000, description="consumer group session timeout")
    kafka_max_message_bytes: int = Field(
        default=1_048_576, ge=1024, description="the largest message the relay sends (the producer's "
        "max_request_size); above Kafka's default, the topic's max.message.bytes must be at least this (docs/kafka.md)")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="how every Kafka client reaches the brokers: SSL (TLS), SASL_SSL (TLS and "
        "a user), SASL_PLAINTEXT (a user, no TLS: a trusted network only) or PLAINTEXT (docs/kafka.md)")
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA certificates (PEM) the brokers' certificates "
                                          "are checked against; empty: the system's")
    kafka_ssl_certfile: Path | None = Field(default=None, description="a client certificate (PEM), for brokers "
                                            "that authenticate clients by TLS; with LEDGER_KAFKA_SSL_KEYFILE")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="the client certificate's private key (PEM)")
    kafka_ssl_check_hostname: bool = Field(default=True, description="the broker's certificate must name its host")
    kafka_sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="", description="SASL mechanism with a SASL_* protocol")
    kafka_sasl_username: str = Field(default="", description="the SASL user")
    kafka_sasl_password: SecretStr = Field(default=SecretStr(""), description="the SASL user's password; never logged")
    kafka_signing_key_file: Path | None = Field(
        default=None, description="Ed25519 private key (PEM) the relay signs every message with; empty: unsigned")
    kafka_verify_key_file: Path | None = Field(
        default=None, description="the relay's Ed25519 public key (PEM): `project run --from-kafka` then refuses every "
        "message without a valid signature; empty: every message is taken")

    # ---- upstream fulfilment (direct recharge, platform grants) ----
    fulfilment_deadline_s: int = Field(default=900, gt=0, description="how long after payment an upstream "
                                       "product is tried before it is refunded (a product may set its own)")
    fulfilment_poll_s: float = Field(default=0.5, gt=0, description="how often the worker looks for work, and "
                                     "asks about an outstanding attempt at most")
    fulfilment_breaker_failures: int = Field(default=5, gt=0, description="consecutive failures or lost "
                                             "answers after which a supplier's breaker opens")
    fulfilment_breaker_open_s: float = Field(default=30, gt=0, description="how long an open breaker waits "
                                             "before it lets one probe through")
    serve_fulfilment: bool = Field(default=True, description="run the fulfilment worker in `serve`")
    public_url: str = Field(default="", description="this server's URL as suppliers reach it, for their "
                            "callbacks (POST {public_url}/v1/upstreams/{supplier}/callbacks); empty: no callbacks")

    # ---- risk ----
    fraud_reject_score: int = Field(
        default=0, ge=0, description="order-time rejection when the fraud read model scores a subject this high; "
        "0 turns it off (the rules themselves: LEDGER_FRAUD_* of projections.models.fraud.FraudRules)")

    @field_validator("database_url", "views_database_url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if url and urlparse(url).scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return url

    @field_validator("audit_public_keys")
    @classmethod
    def _public_keys(cls, keys: str) -> str:
        for part in filter(None, (p.strip() for p in keys.split(","))):
            try:
                raw = base64.b64decode(part, validate=True)
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise ValueError(f"{part[:60]!r} is not a base64 Ed25519 public key (32 bytes)")
        return keys

    def token_roles(self) -> dict[str, str]:
        """token -> role from LEDGER_API_TOKENS; ValueError naming the variable and the role (never
        the token) for a malformed entry or a token too short or too regular to be a secret."""
        found: dict[str, str] = {}
        for number, part in enumerate(filter(None, (p.strip() for p in self.api_tokens.split(","))), 1):
            role, _, token = part.partition("=")
            if role not in ROLES or not token:
                raise ValueError(f"LEDGER_API_TOKENS: {part.split('=')[0]!r} is not role=token with a role in {ROLES}")
            weakness = token_weakness(token)
            if weakness:
                raise ValueError(f"LEDGER_API_TOKENS: the {role} token (entry {number}) {weakness}; "
                                 "make one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
            found[token] = role
        return found

    @property
    def signing_key_path(self) -> Path:
        """The audit checkpoints' signing key: outside the data directory by default."""
        if self.audit_signing_key_file is not None:
            return self.audit_signing_key_file
        config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(config_home) / "ledger" / "audit-signing.key"

    @property
    def checkpoint_dir(self) -> Path:
        """Where the checkpoints this deployment signed are kept, outside the database."""
        return self.audit_checkpoint_dir or self.data_dir / "audit-checkpoints"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'ledger.sqlite'}"

    @property
    def is_postgres(self) -> bool:
        return urlparse(self.effective_database_url).scheme in ("postgresql", "postgres")

    def eventsourcing_env(self) -> dict[str, str]:
        """Translate the database URL into the eventsourcing library's settings."""
        url = urlparse(self.effective_database_url)
        if not self.is_postgres:
            path = unquote(url.path[1:] if url.path.startswith("/") and url.netloc == "" else url.path)
            path = path or str(self.data_dir / "ledger.sqlite")
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path, "SQLITE_LOCK_TIMEOUT": "30"}
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            # The library's recorder, writing events by binary COPY (ledger.storage.recorders).
            "APPLICATION_RECORDER_TOPIC": "ledger.storage.recorders:CopyingPostgresRecorder",
            "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_POOL_SIZE": str(self.postgres_pool_size),
            "POSTGRES_MAX_OVERFLOW": str(self.postgres_pool_size),
            # The library retries a pool timeout ten times; keep each wait short.
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
        }


def write_new_secret(path: Path, text: str) -> None:
    """Create `path` (mode 0600) holding `text`; FileExistsError if it is already there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
