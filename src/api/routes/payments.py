"""Payment providers' signed callbacks: a payment confirmed by the provider itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from api import payment_webhooks
from api.deps import ServicesDep, rate_limited
from api.models import PaymentOut
from api.problems import problem_responses

router = APIRouter(prefix="/v1/payment-providers", tags=["payments"])
NamePath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]

_HEADERS = [
    ("webhook-id", "the message's unique id: a second delivery of it changes nothing"),
    ("webhook-timestamp", "Unix seconds when it was sent; more than 5 minutes away from now is refused"),
    ("webhook-signature", "`v1,` and the base64 HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>` keyed "
                          "with the provider's secret (Standard Webhooks); several may be sent, space-separated"),
]
_DOC = {
    "parameters": [{"name": name, "in": "header", "required": True, "description": text,
                    "schema": {"type": "string"}} for name, text in _HEADERS],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["type"], "properties": {
            "type": {"type": "string", "examples": ["payment.succeeded"],
                     "description": "only `payment.succeeded` confirms a payment; any other is acknowledged"},
            "timestamp": {"type": "string"},
            "data": {"type": "object", "required": ["order_id", "payment_reference", "amount"], "properties": {
                "order_id": {"type": "string", "format": "uuid"},
                "payment_reference": {"type": "string"},
                "amount": {"type": "string", "examples": ["19.99"]},
            }},
        }}}}},
}


@router.post(
    "/{provider}/webhooks", response_model=PaymentOut, openapi_extra=_DOC, dependencies=[Depends(rate_limited)],
    responses={
        200: {"description": "the payment is captured (or was: `Idempotent-Replayed: true` for a webhook-id "
                             "delivered before)"},
        202: {"description": "signed, but not a payment confirmation: nothing changes"},
        **problem_responses(400, 401, 404, 409, 413),
    },
)
async def provider_webhook(provider: NamePath, request: Request, svc: ServicesDep) -> Response:
    """A payment provider's callback, signed with its secret by the scheme it was registered with
    (`ledger payments provider-set`; the generic one is Standard Webhooks, docs/api.md). No bearer token:
    the signature is the credential. 401 a bad, missing, too old or too new signature; 404 an unknown
    provider; 400 not the scheme's body; 413 over 64 KB; then as POST /v1/orders/{order_id}/payments.
    Nothing is written unless the signature holds and the webhook-id is new."""
    return await payment_webhooks.receive(request, svc, provider)
