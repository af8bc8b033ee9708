"""Who a token is, as one process sees it: its id and role, revocations followed within
`REFRESH_S`, and too many unknown tokens from one address refused.

A token's id is what events (`actor`), idempotency scopes and the UI name: random for a stored
token (`tok_...`), an HMAC of the secret under a key derived from the master key for a token
of LEDGER_API_TOKENS (`env_...`). Neither can be turned back into the secret or checked against
a guess without that key.

Every process keeps the tokens it has found valid. Revoking one (`ledger tokens revoke`, or
`POST /v1/tokens/{id}/revoke` in any process) writes it in the events' database; each process
reads the set of revoked ids again at most `REFRESH_S` after its last look, on the next request
that needs a token, so that a revoked token stops working everywhere within about a second."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from api.limits import Windows
from api.token_store import TokenStore, secret_hash
from ledger.vault import derive_key

log = logging.getLogger(__name__)
REFRESH_S = 1.0  # a revocation reaches every process within about this long
USE_WRITE_S = 60.0  # a token's last use is written at most this often (per process)


@dataclass(frozen=True)
class Identity:
    token_id: str
    role: str


class TooManyFailures(Exception):
    """The client's address has sent more unknown tokens this minute than
    LEDGER_AUTH_FAILURES_PER_MINUTE allows: 429, and the token is not even looked up."""


def env_token_ids(master_key: str, env: Mapping[str, str]) -> dict[str, Identity]:
    """token -> identity for the tokens of LEDGER_API_TOKENS (`env`: token -> role)."""
    key = derive_key(master_key, "api-token-id")
    return {token: Identity("env_" + hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:16], role)
            for token, role in env.items()}


class Tokens:
    def __init__(self, store: TokenStore, env: dict[str, Identity], failures_per_minute: int) -> None:
        self.store = store
        self.env = env
        self.failures_per_minute = failures_per_minute
        self.failures = Windows()  # unknown tokens per client address
        self._found: dict[str, Identity] = {}  # SHA-256 of a stored token's secret -> its identity
        self._revoked: frozenset[str] = frozenset()
        self._checked = float("-inf")  # time.monotonic() of the last look at revocations
        self._used: dict[str, float] = {}  # token id -> last use (time.time())
        self._written: dict[str, float] = {}  # token id -> last use written
        self._lock = threading.Lock()

    @property
    def env_roles(self) -> dict[str, str]:
        """id -> role of the tokens of LEDGER_API_TOKENS."""
        return {identity.token_id: identity.role for identity in self.env.values()}

    def held(self, token: str) -> Identity | None:
        """The identity this process holds for `token` (found valid before), revoked or not."""
        return self.env.get(token) or self._found.get(secret_hash(token))

    def _valid(self, identity: Identity | None) -> Identity | None:
        if identity is None or identity.token_id in self._revoked:
            return None
        self._used[identity.token_id] = time.time()
        return identity

    def known(self, token: str) -> Identity | None:
        """No I/O: the token's identity if this process holds it valid and looked at revocations
        less than REFRESH_S ago; else None (then `authenticate` decides)."""
        if time.monotonic() - self._checked > REFRESH_S:
            return None
        return self._valid(self.held(token))

    def authenticate(self, token: str, client: str) -> Identity | None:
        """The token's identity, or None if it is unknown or revoked (counted against `client`).
        May query the store. TooManyFailures, without a look-up, when `client` has sent too many
        unknown tokens this minute, unless this process holds the token valid already."""
        limit = self.failures_per_minute
        if limit and self.failures.count(client) >= limit and self.held(token) is None:
            raise TooManyFailures(client)
        self._refresh()
        identity = self.held(token)
        if identity is None:
            digest = secret_hash(token)
            found = self.store.find(digest)
            if found is not None:
                identity = self._found[digest] = Identity(*found)
        valid = self._valid(identity)
        if valid is None and limit:
            self.failures.add(client)
        return valid

    def _refresh(self) -> None:
        """Read the revoked ids again if the last look is REFRESH_S old (one query per process
        and second at most, whatever the traffic), and write the last use of tokens used lately."""
        if time.monotonic() - self._checked <= REFRESH_S:
            return
        with self._lock:
            if time.monotonic() - self._checked <= REFRESH_S:
                return
            try:
                self._revoked = self.store.revoked()
            except Exception as error:  # the store is away: keep what was read last, try again later
                log.warning("could not read revoked tokens (%s); trying again in %s s", type(error).__name__,
                            REFRESH_S)
            try:
                self._write_uses()
            except Exception as error:  # only a convenience for `tokens list`
                log.warning("could not record tokens' last use (%s)", type(error).__name__)
            self._checked = time.monotonic()

    def _write_uses(self) -> None:
        now = time.time()
        due = [(token_id, at) for token_id, at in list(self._used.items())
               if at - self._written.get(token_id, float("-inf")) >= USE_WRITE_S]
        if due:
            self.store.record_use((token_id, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)))
                                  for token_id, at in due)
            self._written.update(due)
        if len(self._written) > 100_000:
            self._written = {k: v for k, v in self._written.items() if now - v < USE_WRITE_S}
