"""The supplier simulator as a real process (`python -m simulators.cli simulate --port 0`),
driven over HTTP with signatures computed here from docs/upstream.md, not with its code."""

from __future__ import annotations

import hmac
import json
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.simulator_process import SECRET, Simulator, sign

ACCOUNT = "13812345678"


def new_id() -> str:
    return f"ord-{uuid.uuid4().hex[:12]}"


def order(request_id: str, amount: str = "30.00", **fields: Any) -> dict[str, Any]:
    return {"request_id": request_id, "product": "cmcc-30", "account": ACCOUNT, "amount": amount,
            "currency": "CNY", **fields}


class CallbackServer:
    """A tiny real HTTP server taking the simulator's callbacks: (signature, raw body) each."""

    def __init__(self) -> None:
        received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                received.put((self.headers.get("X-Signature", ""), raw))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/upstream"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout: float = 10) -> dict[str, Any]:
        """The next callback's body, once its signature is checked."""
        signature, raw = self.received.get(timeout=timeout)
        assert hmac.compare_digest(signature, sign(raw)), "a callback with a bad signature"
        body: dict[str, Any] = json.loads(raw)
        return body

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def start(*options: str) -> Simulator:
        simulator = Simulator(tmp_path / "simulator.log", *options).start()
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.kill()
    if started:
        started[-1].assert_no_errors()  # they share one log


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """A well-behaved supplier charging 97 % of the face value."""
    simulator = Simulator(tmp_path_factory.mktemp("sim") / "simulator.log", "--cost-rate", "0.97", "--seed", "7")
    yield simulator.start()
    simulator.kill()
    simulator.assert_no_errors()


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    server = CallbackServer()
    yield server
    server.close()


def test_a_success_is_answered_and_on_the_statement(sim: Simulator) -> None:
    request_id, before = new_id(), datetime.now(UTC) - timedelta(seconds=1)
    answer = sim.post(order(request_id))
    assert answer.status_code == 200
    body = answer.json()
    assert body["request_id"] == request_id and body["status"] == "succeeded" and body["charged"] == "29.10"
    assert body["supplier_ref"] and "reason" not in body and "retryable" not in body
    assert sim.get(f"/v1/recharges/{request_id}").json() == body

    window = {"from": before.isoformat(), "to": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()}
    statement = sim.get("/v1/statement", params=window)  # "+00:00" goes out as %2B00%3A00, signed as sent
    assert statement.status_code == 200 and statement.headers["content-type"].startswith("text/csv")
    lines = statement.text.splitlines()
    assert lines[0] == "request_id,status,charged,currency,completed_at"
    row = next(line.split(",") for line in lines[1:] if line.startswith(request_id + ","))
    assert row[1:4] == ["succeeded", "29.10", "CNY"]
    assert before <= datetime.fromisoformat(row[4]) < datetime.fromisoformat(window["to"])
    later = sim.get("/v1/statement", params={"from": window["to"]}).text
    assert request_id not in later
    assert sim.get("/v1/statement", params={"from": "yesterday"}).json()["reason"] == "invalid_query"


def test_the_same_request_id_twice_is_one_charge(sim: Simulator) -> None:
    request_id = new_id()
    first, second = sim.post(order(request_id)), sim.post(order(request_id, amount="30"))  # the same amount
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    [charge] = sim.charges_of(request_id)
    assert (charge["status"], charge["charged"], charge["account"]) == ("succeeded", "29.10", ACCOUNT)


def test_the_same_request_id_for_another_recharge_is_409(sim: Simulator) -> None:
    request_id = new_id()
    assert sim.post(order(request_id)).status_code == 200
    conflict = sim.post(order(request_id, amount="50.00"))
    assert conflict.status_code == 409
    assert conflict.json()["reason"] == "request_id_conflict" and "status" not in conflict.json()
    assert [c["amount"] for c in sim.charges_of(request_id)] == ["30.00"]


def test_a_bad_or_missing_signature_is_401_and_nothing_is_recorded(sim: Simulator) -> None:
    request_id = new_id()
    wrong = sim.post(order(request_id), signature=sign(b"something else"))
    assert (wrong.status_code, wrong.json()["reason"]) == (401, "signature_invalid")
    other_secret = sim.post(order(request_id), signature=sign(json.dumps(order(request_id)).encode(), "nope"))
    assert other_secret.status_code == 401
    raw = json.dumps(order(request_id)).encode()
    missing = httpx.post(f"{sim.url}/v1/recharges", content=raw, timeout=10)
    assert (missing.status_code, missing.json()["reason"]) == (401, "signature_missing")
    unsigned_get = httpx.get(f"{sim.url}/v1/recharges/{request_id}", headers={"X-Signature": sign(b"/")})
    assert unsigned_get.status_code == 401
    assert sim.get(f"/v1/recharges/{request_id}").status_code == 404
    assert sim.charges_of(request_id) == []


def test_a_malformed_body_is_400_and_nothing_is_recorded(sim: Simulator) -> None:
    garbage = sim.post(b"\x00{not json")
    assert (garbage.status_code, garbage.json()["reason"]) == (400, "malformed_json")
    request_id = new_id()
    for bad in ({k: v for k, v in order(request_id).items() if k != "account"}, order(request_id, amount=30.0),
                order(request_id, currency="yuan"), order(request_id, callback_url=7)):
        answer = sim.post(bad)
        assert (answer.status_code, answer.json()["reason"]) == (400, "invalid_request"), bad
    assert sim.charges_of(request_id) == []


def test_a_2_mb_body_is_refused(sim: Simulator) -> None:
    request_id = new_id()
    huge = json.dumps(order(request_id, padding="x" * 2_000_000)).encode()
    answer = sim.post(huge)
    assert (answer.status_code, answer.json()["reason"]) == (413, "body_too_large")
    assert sim.charges_of(request_id) == []


def test_a_caller_that_goes_away_mid_body_leaves_nothing_recorded_and_no_error(
    start: Callable[..., Simulator],
) -> None:
    """A caller killed while sending (the ledger SIGKILLed mid-request): nothing is recorded, the
    request was never received, and the simulator logs it as such, not as an internal error."""
    sim = start()
    request_id = new_id()
    body = json.dumps(order(request_id)).encode()
    host, port = sim.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"POST /v1/recharges HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n"
                     + f"X-Signature: {sign(body)}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body[: len(body) // 2])
        time.sleep(0.2)  # the simulator is waiting for the rest of the body
    deadline = time.monotonic() + 10
    while "caller went away" not in sim.output():
        assert time.monotonic() < deadline, sim.output()
        time.sleep(0.05)
    assert sim.get(f"/v1/recharges/{request_id}").status_code == 404
    assert sim.charges_of(request_id) == []  # the fixture checks the log has no error


def test_an_unknown_request_id_is_404(sim: Simulator) -> None:
    answer = sim.get(f"/v1/recharges/{new_id()}")
    assert (answer.status_code, answer.json()["reason"]) == (404, "not_found")


def test_the_log_masks_accounts_and_never_shows_the_secret(sim: Simulator) -> None:
    assert sim.post(order(new_id())).status_code == 200
    log = sim.output()
    assert "138****5678" in log and ACCOUNT not in log and SECRET not in log


def test_decisions_follow_products_accounts_and_balance(start: Callable[..., Simulator]) -> None:
    sim = start("--products", "cmcc-30,cmcc-50", "--balance", "40", "--cost-rate", "0.97")
    first = sim.post(order(new_id())).json()
    assert (first["status"], first["charged"]) == ("succeeded", "29.10")
    unknown = sim.post(order(new_id(), product="cmcc-99")).json()
    assert (unknown["status"], unknown["reason"], unknown["retryable"], unknown["charged"]) == (
        "failed", "product_unknown", False, "0.00")
    invalid = sim.post(order(new_id(), account="0000123")).json()
    assert (invalid["reason"], invalid["retryable"]) == ("account_invalid", False)
    broke = sim.post(order(new_id())).json()  # 29.10 + 29.10 > 40
    assert (broke["status"], broke["reason"], broke["retryable"]) == ("failed", "insufficient_balance", True)
    assert sim.post(order(new_id(), amount="10.00")).json()["status"] == "succeeded"  # 29.10 + 9.70 <= 40


def test_a_dropped_request_is_a_connection_error_then_404_then_can_be_sent_again(
    start: Callable[..., Simulator], tmp_path: Path
) -> None:
    record, request_id = tmp_path / "record.jsonl", new_id()
    dropping = start("--drop-rate", "1.0", "--record", str(record))
    with pytest.raises(httpx.TransportError) as error:
        dropping.post(order(request_id))
    assert not isinstance(error.value, httpx.TimeoutException)  # closed at once, not left hanging
    assert dropping.get(f"/v1/recharges/{request_id}").status_code == 404
    dropping.kill()

    sim = start("--record", str(record))  # the same record: the drop left nothing in it
    assert sim.get(f"/v1/recharges/{request_id}").status_code == 404
    again = sim.post(order(request_id))
    assert (again.status_code, again.json()["status"]) == (200, "succeeded")
    assert len(sim.charges_of(request_id)) == 1


def test_a_lost_answer_times_out_but_the_outcome_is_there(start: Callable[..., Simulator]) -> None:
    sim = start("--timeout-rate", "1.0", "--fail-rate", "1.0")
    request_id = new_id()
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        sim.post(order(request_id), timeout=1.0)
    assert time.monotonic() - started < 5
    state = sim.get(f"/v1/recharges/{request_id}").json()
    assert (state["status"], state["reason"], state["retryable"], state["charged"]) == (
        "failed", "supplier_error", True, "0.00")
    assert len(sim.charges_of(request_id)) == 1


def test_a_delayed_decision_is_202_then_a_signed_callback(
    start: Callable[..., Simulator], callbacks: CallbackServer
) -> None:
    sim = start("--callback-delay-ms", "300")
    request_id = new_id()
    answer = sim.post(order(request_id, callback_url=callbacks.url))
    assert answer.status_code == 202
    assert answer.json()["status"] == "pending" and "charged" not in answer.json()
    assert sim.get(f"/v1/recharges/{request_id}").json()["status"] == "pending"
    callback = callbacks.next()
    assert (callback["request_id"], callback["status"], callback["charged"]) == (request_id, "succeeded", "30.00")
    assert sim.get(f"/v1/recharges/{request_id}").json() == callback
    again = sim.post(order(request_id))
    assert (again.status_code, again.json()) == (200, callback)


def test_a_reversed_success_calls_back_and_charges_nothing(
    start: Callable[..., Simulator], callbacks: CallbackServer
) -> None:
    sim = start("--reverse-rate", "1.0", "--reverse-delay-ms", "300")
    request_id = new_id()
    answer = sim.post(order(request_id, callback_url=callbacks.url))
    assert (answer.status_code, answer.json()["status"], answer.json()["charged"]) == (200, "succeeded", "30.00")
    states = {(body := callbacks.next())["status"]: body for _ in range(2)}
    assert states.keys() == {"succeeded", "reversed"}
    reversed_ = states["reversed"]
    assert (reversed_["reason"], reversed_["charged"]) == ("supplier_reversed", "0.00")
    assert sim.get(f"/v1/recharges/{request_id}").json() == reversed_
    rows = [line.split(",") for line in sim.get("/v1/statement").text.splitlines()[1:]]
    assert [row[:4] for row in rows] == [[request_id, "reversed", "0.00", "CNY"]]


def test_the_record_survives_a_kill(start: Callable[..., Simulator], tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    options = ("--callback-delay-ms", "200", "--record", str(record))
    sim = start(*options)
    done, pending = new_id(), new_id()
    assert sim.post(order(done)).status_code == 202
    decided = sim.wait_for(done, "succeeded")
    assert sim.post(order(pending, account="13900001111")).status_code == 202
    sim.kill()  # SIGKILL: `pending` is received, not decided

    restarted = start(*options)
    assert restarted.get(f"/v1/recharges/{done}").json() == decided
    assert restarted.wait_for(pending, "succeeded")["charged"] == "30.00"
    assert restarted.post(order(done)).json() == decided  # still one charge
    charges = {c["request_id"]: c for c in restarted.charges()}
    assert charges.keys() == {done, pending}
    assert [charges[done]["charged"], charges[pending]["charged"]] == ["30.00", "30.00"]
    assert len({c["account"] for c in charges.values()}) == 2
