"""Deterministic aggregate ids.

Natural keys (a SKU, a coupon code, a payment reference, the keyed hash of a card
code) map to one aggregate id, so "create it" doubles as "claim it": two writers
that race to create the same id cannot both commit.
"""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID, uuid5

NAMESPACE = UUID("6f1c2a6e-3b0e-4d8a-9a57-0c1b8f6d2e41")
CATALOG_ID = uuid5(NAMESPACE, "catalog")


# A few hundred SKUs and sales are asked for on every order: remembered (uuid5 is a SHA-1).
@lru_cache(maxsize=4096)
def product_id(sku: str) -> UUID:
    return uuid5(NAMESPACE, f"product:{sku}")


@lru_cache(maxsize=4096)
def stock_id(sku: str) -> UUID:
    return uuid5(NAMESPACE, f"stock:{sku}")


def key_id(code_hmac: str) -> UUID:
    return uuid5(NAMESPACE, f"key:{code_hmac}")


def coupon_id(code: str) -> UUID:
    return uuid5(NAMESPACE, f"coupon:{normalise_coupon_code(code)}")


@lru_cache(maxsize=4096)
def flash_sale_id(sale: str) -> UUID:
    return uuid5(NAMESPACE, f"flash-sale:{sale}")


def payment_id(reference: str) -> UUID:
    return uuid5(NAMESPACE, f"payment:{reference}")


def holder_id(kind: str, value: str) -> UUID:
    return uuid5(NAMESPACE, f"holder:{kind}:{value}")


def normalise_coupon_code(code: str) -> str:
    return code.strip().upper()
