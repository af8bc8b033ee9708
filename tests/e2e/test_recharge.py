"""Direct recharge against real suppliers: the simulator as processes, over the documented
HTTP protocol, driven by the fulfilment worker. Every paid order ends delivered or refunded,
and no account is ever recharged twice, by the simulators' own records."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ledger import commands as c
from ledger.domain.fulfilment import Fulfilment
from ledger.domain.ids import fulfilment_id
from ledger.fulfilment.worker import FulfilmentWorker
from ledger.results import Placed
from ledger.service.ledger import Ledger
from tests.helpers import pay, place
from tests.simulator_process import SECRET, Simulator


@pytest.fixture
def simulators(tmp_path: Path) -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def start(name: str, *options: str) -> Simulator:
        sim = Simulator(tmp_path / f"{name}.log", "--seed", "7", *options).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.kill()


def supplier(ledger: Ledger, name: str, sim: Simulator, cost: str, *, timeout_ms: int = 2000) -> None:
    """The supplier `name` at the simulator, funded, offering TOPUP-10 (defined on first use) at `cost`."""
    ctx = ledger.context("admin")
    if "TOPUP-10" not in [p.sku for p in ledger.reads.products()]:
        ledger.execute(c.DefineProduct(ctx=ctx, sku="TOPUP-10", name="Top-up 10", kind="direct_recharge",
                                       face_value="10.00", currency="USD", price="10.50",
                                       fulfilment_deadline_s=3600)).get()
    ledger.execute(c.SetSupplier(ctx=ctx, name=name, base_url=sim.url, secret=SECRET, currency="USD",
                                 timeout_ms=timeout_ms, concurrency=8)).get()
    ledger.execute(c.FundSupplier(ctx=ctx, name=name, amount="100000.00", reference=f"wire-{name}")).get()
    ledger.execute(c.SetOffer(ctx=ctx, sku="TOPUP-10", supplier=name, supplier_product=f"{name}-10",
                              cost=cost)).get()


def paid_orders(ledger: Ledger, n: int) -> list[Placed]:
    orders = []
    for i in range(n):
        placed = place(ledger, f"customer-{i}", "TOPUP-10", recipient_account=f"1380000{i:04d}")
        assert pay(ledger, placed, f"pay-{i}").outcome == "accepted"
        orders.append(placed)
    return orders


def run_until_settled(worker: FulfilmentWorker, ledger: Ledger, orders: list[Placed], timeout: float = 60) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(str(ledger.reads.order(o.order_id).status) in ("delivered", "refunded") for o in orders):
                return
            time.sleep(0.05)
        pending = Counter(str(ledger.reads.order(o.order_id).status) for o in orders)
        raise AssertionError(f"not settled in {timeout} s: {pending}")
    finally:
        stop.set()
        thread.join()
        worker.close()


def test_recharges_through_a_flaky_and_a_steady_supplier_end_delivered_once_each(
    ledger: Ledger, simulators: Callable[..., Simulator]
) -> None:
    flaky = simulators("flaky", "--fail-rate", "0.3", "--timeout-rate", "0.1", "--drop-rate", "0.05")
    steady = simulators("steady", "--latency-ms", "5")
    ledger_settings = ledger.settings.model_copy(update={"fulfilment_poll_s": 0.05})
    supplier(ledger, "flaky", flaky, "9.50", timeout_ms=500)  # the cheaper: tried first
    supplier(ledger, "steady", steady, "9.70")
    orders = paid_orders(ledger, 40)
    run_until_settled(FulfilmentWorker(ledger, ledger_settings), ledger, orders)

    charges = [ch for sim in (flaky, steady) for ch in sim.charges() if ch["status"] == "succeeded"]
    by_account = Counter(ch["account"] for ch in charges)
    assert max(by_account.values()) == 1, "an account was recharged twice"
    delivered = {o.order_id for o in orders if str(ledger.reads.order(o.order_id).status) == "delivered"}
    assert len(by_account) == len(delivered) == len(orders)  # the steady supplier takes what flaky failed
    for placed in orders:
        fulfilment = ledger.reads.find(Fulfilment, fulfilment_id(placed.order_id))
        assert fulfilment is not None and fulfilment.succeeded is not None
        attempt_id, attempt = fulfilment.succeeded
        (charge,) = [ch for ch in charges if ch["request_id"] == attempt_id]
        assert Decimal(charge["charged"]) == attempt["charged"] == ledger.reads.order(placed.order_id).cost
    for sim in (flaky, steady):
        sim.assert_no_errors()


def test_when_every_supplier_refuses_the_order_is_refunded(
    ledger: Ledger, simulators: Callable[..., Simulator]
) -> None:
    refusing = simulators("refusing", "--fail-rate", "1")
    supplier(ledger, "refusing", refusing, "9.50")
    orders = paid_orders(ledger, 3)
    run_until_settled(FulfilmentWorker(ledger, ledger.settings.model_copy(update={"fulfilment_poll_s": 0.05})),
                      ledger, orders)
    for placed in orders:
        order = ledger.reads.order(placed.order_id)
        assert (str(order.status), order.amount_refunded) == ("refunded", Decimal("10.50"))
    assert [ch for ch in refusing.charges() if ch["status"] == "succeeded"] == []


def test_a_wrong_secret_charges_nothing_and_the_order_is_refunded(
    ledger: Ledger, simulators: Callable[..., Simulator]
) -> None:
    sim = simulators("strict")
    supplier(ledger, "strict", sim, "9.50")
    ledger.execute(c.SetSupplier(ctx=ledger.context("admin"), name="strict", base_url=sim.url,
                                 secret="not-the-shared-secret", currency="USD")).get()
    orders = paid_orders(ledger, 1)
    run_until_settled(FulfilmentWorker(ledger, ledger.settings.model_copy(update={"fulfilment_poll_s": 0.05})),
                      ledger, orders)
    assert str(ledger.reads.order(orders[0].order_id).status) == "refunded"
    assert sim.charges() == []


def test_a_suppliers_statement_reconciles_with_no_difference_and_a_tampered_one_names_each(
    ledger: Ledger, simulators: Callable[..., Simulator], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from projections.models.supplier_statement import attempts_with, differences, read_statement
    from shell.cli import app as cli

    flaky = simulators("flaky", "--fail-rate", "0.3")
    steady = simulators("steady")
    supplier(ledger, "flaky", flaky, "9.50")
    supplier(ledger, "steady", steady, "9.70")
    orders = paid_orders(ledger, 12)
    run_until_settled(FulfilmentWorker(ledger, ledger.settings.model_copy(update={"fulfilment_poll_s": 0.05})),
                      ledger, orders)
    env = {"LEDGER_DATABASE_URL": ledger.settings.database_url, "LEDGER_DATA_DIR": str(ledger.settings.data_dir),
           "LEDGER_CIPHER_KEY": ledger.settings.cipher_key}
    for name in ("flaky", "steady"):
        result = CliRunner().invoke(cli, ["reconcile", "supplier", name, "--fetch"], env=env)
        assert result.exit_code == 0, result.output
        assert "no differences" in result.output

    text = flaky.get("/v1/statement").text
    ours = attempts_with(ledger.app, "flaky")
    succeeded = [a for a in ours.values() if a.status == "succeeded"]
    failed = [a for a in ours.values() if a.status == "failed"]
    assert succeeded and failed
    rows = text.strip().splitlines()
    header, first = rows[0], rows[1].split(",")
    tampered = [header, ",".join([first[0], first[1], "9.99", *first[3:]])]  # a charge that differs
    tampered += [",".join([failed[0].attempt_id, "succeeded", "9.50", "USD", first[4]])]  # charged for a failure
    tampered += [",".join(["never-sent-1", "succeeded", "9.50", "USD", first[4]])]  # for nothing we sent
    statement = tmp_path / "statement.csv"
    statement.write_text("\n".join(tampered) + "\n")  # and every other success left off: claims
    found = differences(ours, read_statement(statement.read_text(), str(statement)))
    kinds = [d.kind for d in found]
    charged_for_failure = "money_lost" if failed[0].order_refunded else "charged_not_succeeded"
    assert kinds[:3] == ["amount_differs", charged_for_failure, "unknown_request"]
    assert kinds.count("claim") == len(succeeded) - 1
    assert all(d.positions for d in found if d.kind != "unknown_request")
    result = CliRunner().invoke(cli, ["reconcile", "supplier", "flaky", "--statement", str(statement)], env=env)
    assert result.exit_code == 1 and charged_for_failure in result.output

    statement.write_text("request_id,status\nx,succeeded\n")
    result = CliRunner().invoke(cli, ["reconcile", "supplier", "flaky", "--statement", str(statement)], env=env)
    assert result.exit_code == 1 and f"{statement}:1:" in result.output


def test_reversals_whose_callbacks_were_lost_are_found_on_the_statement_and_applied(
    ledger: Ledger, simulators: Callable[..., Simulator]
) -> None:
    """No callback reaches the ledger (it gives no callback URL): the supplier's reversals show on
    its statement, and `--apply-reversals` records them as the callback would have."""
    from typer.testing import CliRunner

    from shell.cli import app as cli

    reversing = simulators("reversing", "--reverse-rate", "1", "--reverse-delay-ms", "100")
    supplier(ledger, "reversing", reversing, "9.50")
    orders = paid_orders(ledger, 3)
    run_until_settled(FulfilmentWorker(ledger, ledger.settings.model_copy(update={"fulfilment_poll_s": 0.05})),
                      ledger, orders)
    assert [str(ledger.reads.order(o.order_id).status) for o in orders] == ["delivered"] * 3
    deadline = time.monotonic() + 10
    while reversing.get("/v1/statement").text.count(",reversed,") < 3:
        assert time.monotonic() < deadline, reversing.get("/v1/statement").text
        time.sleep(0.05)
    env = {"LEDGER_DATABASE_URL": ledger.settings.database_url, "LEDGER_DATA_DIR": str(ledger.settings.data_dir),
           "LEDGER_CIPHER_KEY": ledger.settings.cipher_key}
    result = CliRunner().invoke(cli, ["reconcile", "supplier", "reversing", "--fetch"], env=env)
    assert result.exit_code == 1 and result.output.count("reversed_there_succeeded_here") == 3, result.output
    assert [str(ledger.reads.order(o.order_id).status) for o in orders] == ["delivered"] * 3  # a report changes nothing
    result = CliRunner().invoke(cli, ["reconcile", "supplier", "reversing", "--fetch", "--apply-reversals"], env=env)
    assert result.exit_code == 0 and "3 reversal(s) recorded" in result.output, result.output
    for placed in orders:
        order = ledger.reads.order(placed.order_id)
        assert (str(order.status), order.amount_refunded) == ("refunded", Decimal("10.50"))
    result = CliRunner().invoke(cli, ["reconcile", "supplier", "reversing", "--fetch", "--apply-reversals"], env=env)
    assert result.exit_code == 0 and "0 reversal(s) recorded" in result.output and "no differences" in result.output
