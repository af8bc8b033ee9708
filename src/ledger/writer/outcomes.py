"""How an answer is kept under an idempotency key and given again.

A result is stored as its type and fields, a refusal as its error type, message and
details exactly as the caller saw them, so a retry gets the same answer. Positions are
not stored: they are known only after the commit, and a replay gives the position of the
stored answer, which is the last event its command wrote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import TypeAdapter

from ledger import results
from ledger.domain.answers import Answer, answer_id
from ledger.domain.context import Context
from ledger.domain.errors import DomainError, ImportRejected, InvalidInput, LineError, OrderRejected
from ledger.results import Result

_RESULTS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (results.Written, results.Placed, results.PaymentResult, results.OrderChange, results.Imported,
                results.Recalled, results.Redeemed, results.AttemptPlan, results.FulfilmentState)
}
_ADAPTERS = {name: TypeAdapter(cls) for name, cls in _RESULTS.items()}
R = TypeVar("R")


def _error_classes(base: type[DomainError]) -> dict[str, type[DomainError]]:
    found = {base.__name__: base}
    for sub in base.__subclasses__():
        found.update(_error_classes(sub))
    return found


_ERRORS = _error_classes(DomainError)


KEYED = "hmac-sha256:"  # the mark of a keyed request fingerprint, as `Answer.request` keeps it


@dataclass(frozen=True)
class Idempotency:
    """A caller's idempotency key, and a fingerprint of the request it names: handed to the
    writer beside the command (`Writer.execute(command, idempotency)`), never inside it.

    The API hands a plain digest of the route and body; the writer keys it (`keyed`) before
    it is stored or compared, so a stored answer tells nothing about a body (a redeemed code)
    to whoever lacks the store's key. `unkeyed` keeps the plain digest, in memory only, for
    answers stored before fingerprints were keyed."""

    scope: str
    key: str
    request: str
    unkeyed: str = ""

    def keyed(self, fingerprint: Callable[[str], str]) -> Idempotency:
        """This key with its request fingerprinted by `fingerprint` (an HMAC under the store's key)."""
        if self.request.startswith(KEYED):
            return self
        return Idempotency(self.scope, self.key, KEYED + fingerprint(self.request), unkeyed=self.request)

    @property
    def answer_id(self) -> UUID:
        """The id of the `Answer` kept under this key."""
        return answer_id(self.scope, self.key)


class IdempotencyKeyReused(DomainError):
    code = "conflict"
    status = 409


@dataclass(frozen=True)
class Done(Generic[R]):
    """A command's answer: its result, or the rule that refused it (and `value` is None);
    `replayed` when it was given before under the same idempotency key."""

    value: R
    error: DomainError | None = None
    replayed: bool = False

    def get(self) -> R:
        if self.error is not None:
            raise self.error
        return self.value


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool | None) else str(value)


def encode(value: Result, error: DomainError | None) -> dict[str, Any]:
    if error is None:
        if value is None:
            return {"result": None}
        name = type(value).__name__
        return {"result": name, "data": _ADAPTERS[name].dump_python(value, mode="json")}
    stored: dict[str, Any] = {
        "error": type(error).__name__,
        "message": error.message,
        "details": {k: _plain(v) for k, v in error.details.items() if k != "position"},
        "positioned": "position" in error.details or isinstance(error, OrderRejected),
    }
    if isinstance(error, InvalidInput):
        stored["field"] = error.field
    if isinstance(error, ImportRejected):
        stored["lines"] = [[e.line, e.reason] for e in error.errors]
    if isinstance(error, OrderRejected) and error.order_id is not None:
        stored["order_id"] = str(error.order_id)
    return stored


def answer_for(ctx: Context, idempotency: Idempotency, value: Result, error: DomainError | None) -> Answer:
    """The `Answer` that keeps this outcome under the caller's key."""
    return Answer.give(ctx, idempotency.scope, idempotency.key, idempotency.request, encode(value, error))


def decode(outcome: dict[str, Any], position: int) -> Done[Result]:
    if "error" not in outcome:
        name = outcome["result"]
        if name is None:
            return Done(None, replayed=True)
        value = _ADAPTERS[name].validate_python(outcome["data"])
        return Done(dataclasses.replace(value, position=position), replayed=True)
    cls = _ERRORS.get(outcome["error"], DomainError)
    error = cls.__new__(cls)
    Exception.__init__(error, outcome["message"])
    error.message = outcome["message"]
    error.details = dict(outcome["details"])
    if outcome.get("positioned"):
        error.details["position"] = position
    if "field" in outcome:
        error.field = outcome["field"]  # type: ignore[attr-defined]
    if "lines" in outcome:
        error.errors = [LineError(line, reason) for line, reason in outcome["lines"]]  # type: ignore[attr-defined]
    if isinstance(error, OrderRejected):
        order_id = outcome.get("order_id")
        error.order_id = UUID(order_id) if order_id else None
    return Done(None, error, replayed=True)


def replay(answer: Answer, idempotency: Idempotency, position: int) -> Done[Result]:
    # An answer stored before fingerprints were keyed holds the plain digest: compared with it.
    expected = idempotency.request if answer.request.startswith(KEYED) else idempotency.unkeyed
    if not expected or answer.request != expected:
        raise IdempotencyKeyReused("this Idempotency-Key was used with another request")
    return decode(answer.outcome, position)
