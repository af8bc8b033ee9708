"""A payment provider's signed callback: the only way, besides the `payments` role, that a
payment is confirmed. Checked in this order, nothing written until the last step:

size (64 KB), the provider (registered, 404 otherwise), its signature and age by the provider's
adapter (`api.payment_providers`; 401 `signature-invalid`), the body (400), and then one
`CapturePayment` under the message's id as its idempotency key: a second delivery of the same
`webhook-id` is answered as the first was (`Idempotent-Replayed: true`) and changes nothing; the
same id with another payment is a 409. The provider's secret is unsealed per request and never
logged or shown."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.deps import Caller, idempotency, respond
from api.models import PaymentOut
from api.payment_providers import BadPayload, BadSignature, adapter
from api.problems import problem
from api.services import Services
from api.upstream_callbacks import limited_body
from ledger import commands as c
from ledger.domain.context import Context
from ledger.domain.ids import payment_provider_id
from ledger.domain.payment_providers import PaymentProvider

LIMIT = 64 * 1024


def route_of(name: str) -> str:
    return f"POST /v1/payment-providers/{name}/webhooks"


async def receive(request: Request, svc: Services, name: str) -> Response:
    body = await limited_body(request, LIMIT)
    if body is None:
        return problem(413, "request-too-large", "Request too large", f"a callback is at most {LIMIT} bytes")
    headers = {k.lower(): v for k, v in request.headers.items()}
    return await run_in_threadpool(_apply, svc, name, headers, body)


def _apply(svc: Services, name: str, headers: dict[str, str], body: bytes) -> Response:
    provider = svc.ledger.reads.find(PaymentProvider, payment_provider_id(name))
    if provider is None:
        return problem(404, "unknown-payment-provider", "NotFound", f"no payment provider {name}")
    secret = svc.ledger.vault.provider_secrets.unseal(provider.secret_sealed)
    try:
        message = adapter(provider.scheme, secret).read(headers, body)
    except BadSignature as error:
        return problem(401, "signature-invalid", "Unauthorized", f"not signed by payment provider {name}: {error}")
    except BadPayload as error:
        return problem(400, "bad-request", "Bad request", str(error)[:200])
    notice = message.notice
    if notice is None:
        return Response(status_code=202)  # signed, but confirms no payment: nothing changes
    ctx = Context(now=svc.ledger.clock(), actor=f"provider:{name}", correlation_id=message.message_id[:100])
    command = c.CapturePayment(ctx=ctx, order_id=notice.order_id, payment_reference=notice.payment_reference,
                               amount=notice.amount, provider=name)
    fields = {"order_id": str(notice.order_id), "payment_reference": notice.payment_reference,
              "amount": notice.amount}
    key = idempotency(Caller("provider", name), message.message_id, route_of(name), fields)
    return respond(svc.ledger.execute(command, key),
                   lambda result: JSONResponse(PaymentOut.of(result).model_dump(mode="json")))
