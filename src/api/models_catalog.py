"""Request and response bodies for products, batches, promotions and redemptions.

Money travels as decimal strings. No response here ever carries a card-key code."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from api.dates import IsoAwareDateTime
from api.models import NFC, TEXT_PATTERN, TEXT_RULE, Money, MoneyIn, Positioned, Priced, Sku, Strict, Text

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["USD"])]
Channel = Annotated[str, NFC, Field(min_length=1, max_length=64, json_schema_extra={"pattern": TEXT_PATTERN}),
                    TEXT_RULE]
Count = Annotated[int, Field(ge=1, le=1_000_000_000)]
ProductKindIn = Literal["card_key", "gift_card", "direct_recharge", "platform_grant", "digital_access"]

MAX_CODES = 100_000  # per batch; the request-size limit usually binds first
MAX_CODE_CHARS = 1024  # longer strings are refused here; the ledger refuses anything over 256 per line


# ---- products ----


class ProductIn(Strict):
    sku: Sku
    name: Text
    kind: ProductKindIn = "card_key"
    face_value: MoneyIn
    currency: Currency
    price: MoneyIn
    channel_prices: Annotated[dict[Channel, MoneyIn], Field(max_length=100)] | None = None
    validity_days: Annotated[int, Field(ge=0, le=36_500)] | None = None
    platform: Text | None = None
    per_customer_limit: Count | None = None
    low_stock_threshold: Annotated[int, Field(ge=0, le=1_000_000_000)] = 0
    reservation_timeout_s: Annotated[int, Field(ge=1, le=31_536_000)] | None = None
    # Upstream kinds (direct_recharge, platform_grant) only; other kinds ignore them.
    account_pattern: Text | None = Field(default=None, description="a regular expression the whole recipient "
                                         "account must match; default: a phone number (direct_recharge), an "
                                         "email address (platform_grant)")
    account_hint: Text | None = Field(default=None, description="what the account is, in words, for errors")
    fulfilment_deadline_s: Annotated[int, Field(ge=1, le=31_536_000)] | None = Field(
        default=None, description="how long after payment suppliers are tried before a refund; default "
                                  "LEDGER_FULFILMENT_DEADLINE_S")
    on_reversal: Literal["refund", "refulfil"] = Field(
        default="refund", description="a recharge the supplier takes back later: refund it, or fulfil it again")


class SkuOut(Positioned):
    sku: str


class FlashSaleWindow(BaseModel):
    sale_id: str
    starts_at: datetime
    ends_at: datetime


class ProductFields(Priced):
    sku: str
    name: str
    kind: str
    face_value: Money
    currency: str
    price: Money
    channel_prices: dict[str, Money]
    validity_days: int | None
    platform: str | None
    per_customer_limit: int | None
    low_stock_threshold: int
    reservation_timeout_s: int | None
    retired: bool
    flash_sales: list[FlashSaleWindow]


class ProductOut(ProductFields, Positioned):
    pass


class ProductsOut(Positioned):
    products: list[ProductFields]
    next_after: str | None = Field(default=None, description="pass as `after` for the next page; null on the last page")


# ---- batches ----


class BatchIn(Strict):
    supplier: Text
    unit_cost: MoneyIn
    codes: Annotated[list[Annotated[str, Field(max_length=MAX_CODE_CHARS)]], Field(min_length=1, max_length=MAX_CODES)]


class BatchFormIn(Strict):
    """The non-file fields of a multipart upload."""

    supplier: Text
    unit_cost: MoneyIn


class BatchOut(Positioned):
    batch_id: UUID
    keys: int


# ---- promotions ----


class CouponIn(Strict):
    type: Literal["coupon"]
    code: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    kind: Literal["amount", "percent"]
    value: MoneyIn
    currency: Currency
    starts_at: IsoAwareDateTime
    ends_at: IsoAwareDateTime
    min_spend: MoneyIn = "0"
    skus: Annotated[list[Sku], Field(max_length=1000)] = []
    total_cap: Count | None = None
    per_customer_cap: Count | None = None


class FlashSaleIn(Strict):
    type: Literal["flash_sale"]
    sale_id: Text
    sku: Sku
    starts_at: IsoAwareDateTime
    ends_at: IsoAwareDateTime
    price: MoneyIn
    total_quantity: Count
    per_customer_limit: Count | None = None


PromotionIn = Annotated[CouponIn | FlashSaleIn, Field(discriminator="type")]


class PromotionOut(Positioned):
    type: Literal["coupon", "flash_sale"]
    code: str | None = None
    sale_id: str | None = None


class CouponOut(Positioned, Priced):
    code: str
    kind: str
    value: Money
    currency: str
    min_spend: Money
    skus: list[str]
    starts_at: datetime
    ends_at: datetime
    total_cap: int | None
    per_customer_cap: int | None
    uses_left: int | None


# ---- redemptions ----


class RedemptionIn(Strict):
    code: Annotated[str, Field(min_length=1, max_length=256)]
    account_id: Text
    platform: Text | None = None


class RedemptionOut(Positioned):
    key_id: UUID
    sku: str
