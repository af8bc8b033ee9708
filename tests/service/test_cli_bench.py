"""The `ledger bench` commands, tiny: write (with and without --alone), api and replay."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from shell.cli import app
from tests.cli_helpers import env

__all__ = ["env"]  # the fixture


def test_bench_write_tiny(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["bench", "write", "--workers", "2", "--purchases", "10", "--skus", "2"], env=env)
    assert result.exit_code == 0, result.output
    assert re.search(r"^ledger: \d+ purchases/s$", result.output, re.M)
    assert re.search(r"^baseline: \d+ purchases/s$", result.output, re.M)
    assert re.search(r"^ratio \d+\.\d+$", result.output, re.M)
    assert "writer alone" not in result.output


def test_bench_api_tiny_sells_exactly_the_stock(env: dict[str, str]) -> None:
    """Both servers really served: the sale sold the 3 keys and refused the rest, and every
    phase printed its rate and percentiles."""
    result = CliRunner().invoke(
        app, ["bench", "api", "--clients", "3", "--keys", "3", "--attempts", "12", "--reads", "9"], env=env)
    assert result.exit_code == 0, result.output
    assert "outcomes: order 409 out-of-stock: 9, paid delivered: 3" in result.output
    assert len(re.findall(r": (?:12|9) attempts in [\d.]+ s, [\d,]+ attempts/s, p50 [\d.]+ ms, p99 [\d.]+ ms$",
                          result.output, re.M)) == 4, result.output
    assert len(re.findall(r"^  ratio \d+\.\d+ ", result.output, re.M)) == 2
    assert "want 3 sold, 0 available): OK" in result.output


def test_bench_write_alone_reports_the_writers_own_capacity(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        app, ["bench", "write", "--workers", "2", "--purchases", "10", "--skus", "2", "--alone"], env=env)
    assert result.exit_code == 0, result.output
    assert re.search(r"^ledger: \d+ purchases/s$", result.output, re.M)
    assert re.search(r"^writer alone: \d+ purchases/s, [\d,]+ us of this process's CPU per purchase$",
                     result.output, re.M)


def test_bench_replay_tiny_prints_every_rate_and_names_what_it_rebuilt(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["bench", "replay", "--events", "400", "--lag-seconds", "0"], env=env)
    assert result.exit_code == 0, result.output
    for line in (r"read models: \d+ events/s", r"raw read: \d+ events/s",
                 r"read and decode, no read model: \d+ events/s \(\d+\.\d+ of the raw read\)", r"ratio \d+\.\d+"):
        assert re.search(f"^{line}$", result.output, re.M), (line, result.output)
    some = CliRunner().invoke(app, ["bench", "replay", "--events", "400", "--read-models", "journal,facts"], env=env)
    assert some.exit_code == 0, some.output
    assert re.search(r"^read models \(journal, facts\): \d+ events/s$", some.output, re.M), some.output
    assert "lag under" not in some.output


def test_bench_replay_refuses_an_unknown_read_model_before_seeding(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["bench", "replay", "--read-models", "facts,ledgers"], env=env)
    assert result.exit_code == 1
    assert "--read-models: unknown ledgers; known: facts, inventory, fraud, journal, sales, profit" in result.output
    assert "store:" not in result.output


def test_bench_scale_tiny_times_every_read_route_on_both_stores(env: dict[str, str]) -> None:
    """Both servers answered every read route and UI page (no 5xx), and each has its p99 line."""
    from shell.bench.scale import GOAL

    result = CliRunner().invoke(app, ["bench", "scale", "--small", "1000", "--large", "2000", "--requests", "10",
                                      "--rounds", "1"], env=env)
    assert result.exit_code == 0, result.output
    lines = re.findall(r"^  (\S+): p99 [\d.]+ ms vs [\d.]+ ms, ratio [\d.]+ \(p50 [\d.]+ vs [\d.]+ ms; ([^)]*)\)$",
                       result.output, re.M)
    routes = {route for route, _ in lines}
    assert {"/v1/reconciliation", "/v1/inventory/{sku}?as_of=N", "/ui/risk", "/ui/events?aggregate={id}"} <= routes
    assert len(lines) >= 30, result.output
    for route, statuses in lines:
        assert all(code in ("200", "404") for code in re.findall(r"(\d{3}):", statuses)), (route, statuses)
    assert re.search(rf"worst p99 ratio [\d.]+ \(\S+\); goal at most {GOAL}: (met|MISSED)$", result.output, re.M)
