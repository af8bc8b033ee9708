"""Fraud signals: rules that score customers, IPs and devices from the order stream.

Every rule keeps a monotone count per (rule, subject) and raises one alert when the count
first crosses its threshold, then one more each time it grows by another threshold's worth.
State lives in tables and is fetched on demand, so one batch, many small batches or a
restart in between all give the same rows. Rules and defaults: docs/fraud.md.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.domain.orders import Order
from ledger.domain.supply import Key, Redeemer
from projections.engine.base import INT, TEXT, Projection, Row, Table, ident
from projections.engine.events import handles
from projections.engine.store import ViewStore
from projections.models.facts import Facts

VELOCITY = "velocity"
MANY_CUSTOMERS = "many-customers"
EXPIRED_HOLDS = "expired-holds"
COUPON_NEW_CUSTOMERS = "coupon-new-customers"
REFUND_AFTER_REDEEM = "refund-after-redeem"
RESALE = "resale"
PAYMENT_REJECTED = "payment-rejected"
RECHARGE_ACCOUNTS = "recharge-accounts"
CODE_GUESSING = "code-guessing"
RULES = (VELOCITY, MANY_CUSTOMERS, EXPIRED_HOLDS, COUPON_NEW_CUSTOMERS, REFUND_AFTER_REDEEM, RESALE, PAYMENT_REJECTED,
         RECHARGE_ACCOUNTS, CODE_GUESSING)

CUSTOMER, IP, DEVICE, ACCOUNT = "customer", "ip", "device", "account"  # account: a redeeming platform account
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CACHE_LIMIT = 200_000  # rows per table kept in memory after a flush


class FraudRules(BaseSettings):
    """Thresholds and scores; from LEDGER_FRAUD_* or passed in. A limit N fires above N."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_FRAUD_", extra="ignore")

    velocity_max_orders: int = Field(default=5, ge=1, description="orders per subject allowed inside the window")
    velocity_window_s: int = Field(default=600, gt=0, description="sliding window, seconds of event time")
    velocity_score: int = Field(default=10, ge=0)

    max_customers_per_device: int = Field(default=3, ge=1)
    max_customers_per_ip: int = Field(default=10, ge=1)
    many_customers_score: int = Field(default=20, ge=0)

    max_expired_holds: int = Field(default=3, ge=1, description="expired unpaid reservations per subject")
    expired_holds_score: int = Field(default=10, ge=0)

    max_coupon_new_customers: int = Field(default=2, ge=1, description="new customers using a coupon, per device")
    coupon_new_customers_score: int = Field(default=25, ge=0)

    max_refunds_after_redeem: int = Field(default=1, ge=1, description="redeemed keys revoked by refunds, per customer")
    refund_after_redeem_score: int = Field(default=30, ge=0)

    max_redeeming_accounts: int = Field(default=3, ge=1, description="accounts redeeming one customer's keys")
    resale_score: int = Field(default=30, ge=0)

    max_payment_rejections: int = Field(default=3, ge=1, description="rejected payment callbacks per customer")
    payment_rejected_score: int = Field(default=10, ge=0)

    max_recharge_accounts: int = Field(default=3, ge=1, description="distinct accounts one customer orders "
                                       "recharges or grants for inside the window")
    recharge_accounts_window_s: int = Field(default=86_400, gt=0, description="sliding window, seconds of event time")
    recharge_accounts_score: int = Field(default=20, ge=0)

    max_unknown_codes: int = Field(default=5, ge=1, description="codes that match no key, tried by one redeeming "
                                   "account or IP inside the window")
    code_guessing_window_s: int = Field(default=3_600, gt=0, description="sliding window, seconds of event time")
    code_guessing_score: int = Field(default=25, ge=0)

    def score(self, rule: str) -> int:
        return int(getattr(self, rule.replace("-", "_") + "_score"))


# The counters keep their lists as compact JSON text, read and rewritten on nearly every order:
# msgspec writes the same text as `json.dumps(separators=(",", ":"))` (ints, ASCII rule names,
# insertion order) and reads it back, each in an eighth of the json module's time.
_ENCODE = msgspec.json.Encoder().encode
_loads = msgspec.json.Decoder().decode
_MICROSECOND = timedelta(microseconds=1)


def _json(value: Any) -> str:
    return _ENCODE(value).decode()


def _micros(moment: datetime) -> int:
    """Event time as whole microseconds since the epoch: exact, unlike a float."""
    return (moment - _EPOCH) // _MICROSECOND


def account_digest(account_hmac: str) -> str:
    """What this read model keeps of a recipient account: a digest of its keyed hash. Enough to
    tell accounts apart; neither the account nor the hash support finds it by (a secret field
    that never leaves the event store) is written to its tables."""
    return hashlib.sha256(f"fraud:{account_hmac}".encode()).hexdigest()[:32]


class Fraud(Projection):
    name = "fraud"
    tables = (
        Table(
            "alerts",
            (),
            (
                ("rule", TEXT), ("subject_kind", TEXT), ("subject_id", TEXT), ("score", INT), ("count", INT),
                ("positions", TEXT), ("position", INT), ("occurred_at", TEXT),
            ),
            # The newest alerts (overall, of a rule, of a subject) are read with LIMIT: each an index.
            indexes=(("position",), ("rule", "position"), ("subject_kind", "subject_id", "position")),
        ),
        Table(
            "subjects",
            ("subject_kind", "subject_id"),
            (
                ("subject_kind", TEXT), ("subject_id", TEXT), ("score", INT), ("alerts", INT), ("top_rule", TEXT),
                ("rule_scores", TEXT), ("last_position", INT), ("updated_at", TEXT),
            ),
        ),
        # Per (rule, subject): the count, how many alerts it raised, positions since the last one.
        Table(
            "counters",
            ("rule", "subject_kind", "subject_id"),
            (
                ("rule", TEXT), ("subject_kind", TEXT), ("subject_id", TEXT), ("count", INT), ("level", INT),
                ("pending", TEXT),
            ),
        ),
        # Per (rule, subject): the [event time in microseconds, position] pairs still inside the window
        # (recharge-accounts: [event time, position, account digest], the latest order per account).
        Table(
            "windows",
            ("rule", "subject_kind", "subject_id"),
            (("rule", TEXT), ("subject_kind", TEXT), ("subject_id", TEXT), ("entries", TEXT)),
        ),
        # Distinct members (customers, accounts) seen per (rule, subject), with the first position.
        Table(
            "members",
            ("rule", "subject_kind", "subject_id", "member"),
            (("rule", TEXT), ("subject_kind", TEXT), ("subject_id", TEXT), ("member", TEXT), ("position", INT)),
        ),
        # Each customer's first order: tells a new customer from a returning one.
        Table(
            "customers",
            ("customer_id",),
            (("customer_id", TEXT), ("first_order_id", TEXT), ("first_position", INT)),
        ),
        # Which redeeming account each `Redeemer` aggregate is (its refusals name only the aggregate).
        Table("redeemers", ("redeemer_id",), (("redeemer_id", TEXT), ("account_id", TEXT))),
    )

    def __init__(
        self, store: ViewStore, facts: Facts, version: int | None = None, rules: FraudRules | None = None
    ) -> None:
        self.facts = facts
        self.rules = rules or FraudRules()
        super().__init__(store, version)

    # ---- storage: keyed rows are fetched on demand, never all at start ----

    def create_tables(self, cursor: Any) -> None:
        super().create_tables(cursor)
        alerts = self.table("alerts")
        index = f"CREATE INDEX IF NOT EXISTS {alerts}_subject ON {alerts} (subject_kind, subject_id)"
        self.store.execute(cursor, index)

    def load(self) -> None:
        """Nothing up front: rows come from the store the first time an event needs them."""
        self.check_complete()

    def _find(self, table: str, key: tuple[Any, ...]) -> Row | None:
        return self.fetch(table, key)


    def trim(self) -> None:
        for table in self._oversized():
            self.evict(table)  # all committed with this transaction; refetched on demand

    @property
    def wants_trim(self) -> bool:
        return bool(self._oversized())

    def _oversized(self) -> list[str]:
        return [t.name for t in self.tables if t.key and len(self.rows[t.name]) > _CACHE_LIMIT]

    # ---- the counting core ----

    def _alert(
        self, rule: str, kind: str, subject: str, count: int, positions: list[int], e: Any, position: int
    ) -> None:
        score = self.rules.score(rule)
        self.append("alerts", {
            "rule": rule, "subject_kind": kind, "subject_id": subject, "score": score, "count": count,
            "positions": _json(positions), "position": position, "occurred_at": e.timestamp.isoformat(),
        })
        row = self.row("subjects", (kind, subject), {"top_rule": None, "rule_scores": "{}"})
        scores: dict[str, int] = _loads(row["rule_scores"] or "{}")
        scores[rule] = scores.get(rule, 0) + score
        row["rule_scores"] = _json(dict(sorted(scores.items())))
        row["score"] += score
        row["alerts"] += 1
        top = row["top_rule"]
        if top is None or scores[rule] >= scores.get(top, 0):
            row["top_rule"] = rule
        row["last_position"] = position
        row["updated_at"] = e.timestamp.isoformat()

    def _count(
        self, rule: str, kind: str, subject: str, limit: int, e: Any, position: int, *, first_at: int | None = None,
        proof: list[int] | None = None,
    ) -> None:
        """Add one to the count; alert at `first_at` (default: above `limit`) and every `limit` more.

        The alert's positions are `proof` if given, else the events counted since the last alert.
        """
        row = self.row("counters", (rule, kind, subject), {"pending": "[]"})
        row["count"] += 1
        pending: list[int] = _loads(row["pending"] or "[]")
        pending.append(position)
        first = limit + 1 if first_at is None else first_at
        if row["count"] >= first + row["level"] * limit:
            row["level"] += 1
            self._alert(rule, kind, subject, row["count"], proof if proof is not None else pending, e, position)
            pending = []
        row["pending"] = _json(pending)

    def _member(self, rule: str, kind: str, subject: str, member: str, limit: int, e: Any, position: int) -> None:
        """Count `member` once per (rule, subject): a count of distinct members."""
        if self._find("members", (rule, kind, subject, member)) is not None:
            return
        self.row("members", (rule, kind, subject, member), {"position": position})
        self._count(rule, kind, subject, limit, e, position)

    def _velocity(self, kind: str, subject: str, e: Any, position: int) -> None:
        """Sliding window of event time; the count is the orders that arrived over the limit."""
        limit = self.rules.velocity_max_orders
        now = _micros(e.timestamp)
        horizon = now - self.rules.velocity_window_s * 1_000_000
        row = self.row("windows", (VELOCITY, kind, subject), {"entries": "[]"})
        entries = [pair for pair in _loads(row["entries"] or "[]") if pair[0] > horizon]
        entries.append([now, position])
        row["entries"] = _json(entries)
        if len(entries) > limit:
            self._count(VELOCITY, kind, subject, limit, e, position, first_at=1, proof=[p for _, p in entries])

    # ---- handlers ----

    @handles(Order.Placed)
    def on_Order_Placed(self, e: Order.Placed, position: int) -> None:
        customer = str(e.customer_id)
        subjects = [(CUSTOMER, customer), (IP, e.client_ip), (DEVICE, e.device_id)]
        for kind, value in subjects:
            if value:
                self._velocity(kind, str(value), e, position)
        if e.device_id:
            self._member(MANY_CUSTOMERS, DEVICE, str(e.device_id), customer, self.rules.max_customers_per_device,
                         e, position)
        if e.client_ip:
            self._member(MANY_CUSTOMERS, IP, str(e.client_ip), customer, self.rules.max_customers_per_ip, e, position)
        new_customer = self._find("customers", (customer,)) is None
        if new_customer:
            self.row("customers", (customer,), {"first_order_id": ident(e.originator_id), "first_position": position})
        # A rejected order is placed with zero prices: a positive discount means the coupon applied.
        if new_customer and e.coupon_code and e.discount > 0 and e.device_id:
            self._member(COUPON_NEW_CUSTOMERS, DEVICE, str(e.device_id), customer,
                         self.rules.max_coupon_new_customers, e, position)

    @handles(Order.RecipientGiven)
    def on_Order_RecipientGiven(self, e: Order.RecipientGiven, position: int) -> None:
        """One customer ordering recharges (or grants) for many distinct accounts inside a window
        of event time: the count is the orders that brought the window's distinct accounts over
        the limit (the first alert at the first such order, the next after `limit` more), and
        the alert's proof is the latest order of each account in the window.

        Events read from Kafka carry no `account_hmac` (secret fields are not published): a
        read model built from Kafka cannot tell accounts apart and does not count this rule."""
        order = self.facts.order(e.originator_id)
        if order is None or not e.account_hmac:
            return
        customer = str(order["customer_id"])
        limit = self.rules.max_recharge_accounts
        now = _micros(e.timestamp)
        horizon = now - self.rules.recharge_accounts_window_s * 1_000_000
        digest = account_digest(e.account_hmac)
        row = self.row("windows", (RECHARGE_ACCOUNTS, CUSTOMER, customer), {"entries": "[]"})
        # [event time in µs, position, account digest]: the latest order of each account in the window
        entries = [entry for entry in _loads(row["entries"] or "[]") if entry[0] > horizon]
        new_account = all(entry[2] != digest for entry in entries)
        entries = [entry for entry in entries if entry[2] != digest]
        entries.append([now, position, digest])
        row["entries"] = _json(entries)
        if new_account and len(entries) > limit:
            self._count(RECHARGE_ACCOUNTS, CUSTOMER, customer, limit, e, position, first_at=1,
                        proof=[entry[1] for entry in entries])

    @handles(Redeemer.Refused)
    def on_Redeemer_Refused(self, e: Redeemer.Refused, position: int) -> None:
        """Code guessing: redemptions of codes that match no key, by one redeeming account or one IP,
        inside a sliding window of event time (other refusals, of real keys, are not guesses)."""
        if e.rule != "unknown-code":
            return
        redeemer = self._find("redeemers", (ident(e.originator_id),))
        subjects = [(ACCOUNT, redeemer["account_id"] if redeemer else None), (IP, e.meta.get("client_ip"))]
        limit = self.rules.max_unknown_codes
        now = _micros(e.timestamp)
        horizon = now - self.rules.code_guessing_window_s * 1_000_000
        for kind, subject in subjects:
            if not subject:
                continue
            row = self.row("windows", (CODE_GUESSING, kind, str(subject)), {"entries": "[]"})
            entries = [pair for pair in _loads(row["entries"] or "[]") if pair[0] > horizon]
            entries.append([now, position])
            row["entries"] = _json(entries)
            if len(entries) > limit:
                self._count(CODE_GUESSING, kind, str(subject), limit, e, position, first_at=1,
                            proof=[p for _, p in entries])

    @handles(Redeemer.Opened)
    def on_Redeemer_Opened(self, e: Redeemer.Opened, position: int) -> None:
        self.row("redeemers", (ident(e.originator_id),), {"account_id": e.account_id})

    @handles(Order.Expired)
    def on_Order_Expired(self, e: Order.Expired, position: int) -> None:
        order = self.facts.order(e.originator_id)
        if order is None:
            return
        for kind, value in ((CUSTOMER, order["customer_id"]), (IP, order["client_ip"]), (DEVICE, order["device_id"])):
            if value:
                self._count(EXPIRED_HOLDS, kind, str(value), self.rules.max_expired_holds, e, position)

    @handles(Order.PaymentRejected)
    def on_Order_PaymentRejected(self, e: Order.PaymentRejected, position: int) -> None:
        order = self.facts.order(e.originator_id)
        if order is not None:
            self._count(PAYMENT_REJECTED, CUSTOMER, str(order["customer_id"]), self.rules.max_payment_rejections,
                        e, position)

    @handles(Key.Revoked)
    def on_Key_Revoked(self, e: Key.Revoked, position: int) -> None:
        if not e.was_redeemed:
            return
        order = self.facts.order(e.order_id)
        if order is not None:
            self._count(REFUND_AFTER_REDEEM, CUSTOMER, str(order["customer_id"]), self.rules.max_refunds_after_redeem,
                        e, position)

    @handles(Key.Redeemed)
    def on_Key_Redeemed(self, e: Key.Redeemed, position: int) -> None:
        key = self.facts.key(e.originator_id)
        order = self.facts.order(key["order_id"]) if key is not None and key["order_id"] else None
        if order is not None:
            self._member(RESALE, CUSTOMER, str(order["customer_id"]), str(e.account_id),
                         self.rules.max_redeeming_accounts, e, position)


# ---- queries ----


def _fraud(store: ViewStore, projection: Fraud | None) -> Fraud:
    if projection is not None:
        return projection
    return Fraud(store, Facts(store), rules=FraudRules.model_construct())


def _alert_row(values: tuple[Any, ...]) -> Row:
    row = Fraud.tables[0].decode(values)
    row["positions"] = _loads(row["positions"])
    return row


def alerts(
    store: ViewStore, projection: Fraud | None = None, *, rule: str | None = None, subject_kind: str | None = None,
    subject_id: str | None = None, since: int = 0, until: int | None = None, limit: int | None = None,
) -> list[Row]:
    """Alerts at positions after `since` (and at most `until`) in log order (the active version
    unless a projection is given), filtered."""
    fraud = _fraud(store, projection)
    spec = fraud.tables[0]
    where, params = ["position > ?"], [since]
    if until is not None:
        where.append("position <= ?")
        params.append(until)
    for column, value in (("rule", rule), ("subject_kind", subject_kind), ("subject_id", subject_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)  # type: ignore[arg-type]
    query = (
        f"SELECT {', '.join(spec.all_columns)} FROM {fraud.table('alerts')} WHERE {' AND '.join(where)} "
        f"ORDER BY position, rule, subject_kind, subject_id"
    )
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    return [_alert_row(values) for values in store.query(query, params)]


def latest_alerts(
    store: ViewStore, projection: Fraud | None = None, *, rule: str | None = None, subject_kind: str | None = None,
    subject_id: str | None = None, until: int | None = None, limit: int = 10,
) -> list[Row]:
    """The newest `limit` alerts at positions up to `until`, newest first, filtered: one query
    with LIMIT, whatever the number of alerts (the overview and risk pages, a subject's page)."""
    fraud = _fraud(store, projection)
    spec = fraud.tables[0]
    where: list[str] = ["position <= ?"] if until is not None else []
    params: list[Any] = [until] if until is not None else []
    for column, value in (("rule", rule), ("subject_kind", subject_kind), ("subject_id", subject_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    query = (f"SELECT {', '.join(spec.all_columns)} FROM {fraud.table('alerts')}"
             f"{' WHERE ' + ' AND '.join(where) if where else ''} "
             f"ORDER BY position DESC, rule DESC, subject_kind DESC, subject_id DESC LIMIT {int(limit)}")
    return [_alert_row(values) for values in store.query(query, params)]


def alert_counts(store: ViewStore, projection: Fraud | None = None, *,
                 until: int | None = None) -> dict[str, tuple[int, int]]:
    """Per rule: alerts raised up to `until`, and distinct subjects alerted (counted by the database)."""
    fraud = _fraud(store, projection)
    where, params = ("WHERE position <= ? ", (until,)) if until is not None else ("", ())
    rows = store.query(f"SELECT rule, COUNT(*), COUNT(DISTINCT subject_kind || ':' || subject_id) "
                       f"FROM {fraud.table('alerts')} {where}GROUP BY rule", params)
    return {str(rule): (int(count), int(subjects)) for rule, count, subjects in rows}


def subject(store: ViewStore, projection: Fraud | None, kind: str, ident: str) -> Row | None:
    """One subject's total score, alert count, top rule and score per rule; None if never alerted."""
    fraud = _fraud(store, projection)
    spec = fraud._spec("subjects")
    rows = store.query(
        f"SELECT {', '.join(spec.all_columns)} FROM {fraud.table('subjects')} "
        "WHERE subject_kind = ? AND subject_id = ?",
        (kind, ident),
    )
    if not rows:
        return None
    row = spec.decode(rows[0])
    row["rule_scores"] = _loads(row["rule_scores"] or "{}")
    return row
