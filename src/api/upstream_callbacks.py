"""A supplier's callback (docs/upstream.md): checked in the protocol's order, applied once.

Size first (64 KB, before anything is read past it), then the supplier, its signature over the
raw body (the supplier's sealed secret, compared in constant time), the body, the request id
(an attempt the ledger sent to *this* supplier), and only then one `RecordAttempt`. Every
answer is counted by supplier and result; none but `applied` changes anything."""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.problems import domain_problem, problem
from api.services import Services
from ledger import commands as c
from ledger.domain.context import Context
from ledger.domain.errors import AttemptConflict, DomainError, InvalidInput, NotFound
from ledger.domain.fulfilment import Fulfilment
from ledger.domain.ids import supplier_id
from ledger.domain.suppliers import Supplier
from ledger.fulfilment.connector import MAX_ANSWER_BYTES, Answer, parse_answer, signed

LIMIT = MAX_ANSWER_BYTES  # 64 KB, as the protocol's own bodies
# What the ledger sends as a request id: `<fulfilment id>-<attempt number>`.
_REQUEST_ID = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-[1-9][0-9]{0,5}$")
UNKNOWN = "unknown"  # the metric's supplier label for a name no supplier has: the label set stays bounded


@dataclass(frozen=True)
class Outcome:
    result: str  # the metric's label: applied, pending, replayed, conflict, bad_signature, ...
    response: Response


def _problem(status: int, code: str, title: str, detail: str) -> Response:
    return problem(status, code, title, detail)


async def limited_body(request: Request, limit: int = LIMIT) -> bytes | None:
    """The raw body, or None once it is known to be over `limit` bytes (never buffered past it)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def receive(request: Request, svc: Services, name: str) -> Response:
    body = await limited_body(request)
    if body is None:
        known = await run_in_threadpool(svc.ledger.reads.find, Supplier, supplier_id(name))
        outcome = Outcome("too_large", _problem(413, "request-too-large", "Request too large",
                                                f"a callback is at most {LIMIT} bytes"))
        label = name if known is not None else UNKNOWN
    else:
        label, outcome = await run_in_threadpool(_apply, svc, name, body, request.headers.get("x-signature"),
                                                 request.headers.get("x-correlation-id", "")[:100])
    request.app.state.metrics.callbacks.labels(label, outcome.result).inc()
    return outcome.response


def _apply(svc: Services, name: str, body: bytes, signature: str | None, correlation: str) -> tuple[str, Outcome]:
    """(the metric's supplier label, the outcome)."""
    supplier = svc.ledger.reads.find(Supplier, supplier_id(name))
    if supplier is None:
        return UNKNOWN, Outcome("unknown_supplier", _problem(404, "unknown-supplier", "UnknownSupplier",
                                                             f"no supplier {name}"))
    secret = svc.ledger.vault.supplier_secrets.unseal(supplier.secret_sealed)
    # hmac.compare_digest takes only ASCII text: any other header is simply not the signature.
    if signature is None or not signature.isascii() or not signed(secret, body, signature):
        return name, Outcome("bad_signature", _problem(401, "signature-invalid", "Unauthorized",
                                                       "X-Signature is missing or not the signature of this body"))
    try:
        answer = parse_answer(body)
    except (ValueError, RecursionError) as error:  # JSON, UTF-8, shape: all ValueErrors; nesting too deep
        detail = "not a JSON object" if isinstance(error, RecursionError) else str(error)[:200]
        return name, Outcome("malformed", _problem(400, "bad-request", "Bad request", detail))
    fulfilment = _attempt_of(svc, name, answer.request_id)
    if fulfilment is None:
        return name, Outcome("unknown_request", _problem(404, "unknown-request", "NotFound",
                                                         f"{name} was sent no request {answer.request_id}"))
    if answer.status == "pending":
        return name, Outcome("pending", Response(status_code=202))
    ctx = Context(now=svc.ledger.clock(), actor=f"supplier:{name}", correlation_id=correlation)
    done = svc.ledger.execute(_record(ctx, name, fulfilment, answer))
    if done.error is None:
        if done.value.changed:
            return name, Outcome("applied", Response(status_code=204))
        return name, Outcome("replayed", _problem(409, "callback-replayed", "Conflict",
                                                  f"{answer.request_id} is already {answer.status}: nothing changed"))
    return name, _refused(done.error)


def _attempt_of(svc: Services, name: str, request_id: str) -> UUID | None:
    """The fulfilment of an attempt the ledger sent to supplier `name` under `request_id`, if any."""
    match = _REQUEST_ID.match(request_id)
    if match is None:
        return None
    fulfilment = svc.ledger.reads.find(Fulfilment, UUID(match.group(1)))
    if fulfilment is None:
        return None
    attempt = fulfilment.attempts.get(request_id)
    return fulfilment.id if attempt is not None and attempt["supplier"] == name else None


def _record(ctx: Context, name: str, fulfilment_id: UUID, answer: Answer) -> c.RecordAttempt:
    return c.RecordAttempt(
        ctx=ctx, fulfilment_id=fulfilment_id, attempt_id=answer.request_id, outcome=answer.status, supplier=name,
        supplier_ref=answer.supplier_ref, reason=answer.reason, retryable=answer.retryable,
        charged=str(answer.charged) if answer.charged is not None else None,
    )


def _refused(error: DomainError) -> Outcome:
    if isinstance(error, AttemptConflict):  # a contradiction (a success over a failure), or another supplier's
        return Outcome("conflict", domain_problem(error))
    if isinstance(error, NotFound):
        return Outcome("unknown_request", domain_problem(error))
    if isinstance(error, InvalidInput):  # e.g. `charged` with more decimals than the currency has
        return Outcome("malformed", _problem(400, "bad-request", "Bad request", f"{error.field}: {error.message}"))
    return Outcome(error.code, domain_problem(error))  # contention (503): nothing written; the supplier retries
