"""Deterministic aggregate ids.

Natural keys (a SKU, a coupon code, a payment reference, the keyed hash of a card
code) map to one aggregate id, so "create it" doubles as "claim it": two writers
that race to create the same id cannot both commit.
"""

from __future__ import annotations

import hashlib
from datetime import date
from functools import lru_cache
from uuid import UUID, SafeUUID

NAMESPACE = UUID("6f1c2a6e-3b0e-4d8a-9a57-0c1b8f6d2e41")
_PREFIX = NAMESPACE.bytes
# What `UUID(bytes=..., version=5)` does to the hash: the variant and version bits.
_KEEP = ~(0xC000 << 48) & ~(0xF000 << 64) & ((1 << 128) - 1)
_SET = (0x8000 << 48) | (5 << 76)


# Looked up once: `SafeUUID.unknown` goes through enum's descriptor on every access (a tenth of
# this function's time).
_UNKNOWN, _sha1, _new, _set = SafeUUID.unknown, hashlib.sha1, object.__new__, object.__setattr__


def uuid5(namespace_name: str) -> UUID:
    """`uuid.uuid5(NAMESPACE, namespace_name)`, built without `UUID.__init__`'s checks: half the time
    (~9 -> ~4 us here), and an import asks for one per code."""
    digest = _sha1(_PREFIX + namespace_name.encode()).digest()
    made = _new(UUID)
    _set(made, "int", int.from_bytes(digest[:16]) & _KEEP | _SET)
    _set(made, "is_safe", _UNKNOWN)
    return made


CATALOG_ID = uuid5("catalog")


# A few hundred SKUs and sales are asked for on every order: remembered (uuid5 is a SHA-1).
@lru_cache(maxsize=4096)
def product_id(sku: str) -> UUID:
    return uuid5(f"product:{sku}")


@lru_cache(maxsize=4096)
def stock_id(sku: str) -> UUID:
    return uuid5(f"stock:{sku}")


def key_id(code_hmac: str) -> UUID:
    return uuid5(f"key:{code_hmac}")


def coupon_id(code: str) -> UUID:
    return uuid5(f"coupon:{normalise_coupon_code(code)}")


@lru_cache(maxsize=4096)
def flash_sale_id(sale: str) -> UUID:
    return uuid5(f"flash-sale:{sale}")


def payment_id(reference: str) -> UUID:
    return uuid5(f"payment:{reference}")


def holder_id(kind: str, value: str) -> UUID:
    return uuid5(f"holder:{kind}:{value}")


def redeemer_id(account_id: str) -> UUID:
    return uuid5(f"redeemer:{account_id}")


def supplier_id(name: str) -> UUID:
    return uuid5(f"supplier:{name}")


def payment_provider_id(name: str) -> UUID:
    return uuid5(f"payment-provider:{name}")


def fulfilment_id(order_id: UUID) -> UUID:
    """An order's one fulfilment: paying twice can never start two."""
    return uuid5(f"fulfilment:{order_id}")


OPEN_FULFILMENTS_ID = uuid5("open-fulfilments")


def grant_id(sku: str, account_hmac: str) -> UUID:
    """One account's term of one platform product: renewals extend it."""
    return uuid5(f"grant:{sku}:{account_hmac}")


SUPPLIER_LIST_ID = uuid5("suppliers")


def recipient_id(account_hmac: str) -> UUID:
    """The orders placed for one recipient account, by the account's keyed hash."""
    return uuid5(f"recipient:{account_hmac}")


def settlement_id(reference: str) -> UUID:
    """A settlement with a supplier, by its payment reference: recorded once."""
    return uuid5(f"settlement:{reference}")


def normalise_coupon_code(code: str) -> str:
    return code.strip().upper()


def validity_day_id(day: date) -> UUID:
    """The book of what stops being valid on one UTC day."""
    return uuid5(f"validity-day:{day.isoformat()}")


VALIDITY_CURSOR_ID = uuid5("validity-cursor")
