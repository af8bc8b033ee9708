"""Rewrite docs/events.md from the code."""

from pathlib import Path

from ledger.encoding.event_catalogue import render

Path(__file__).resolve().parent.parent.joinpath("docs", "events.md").write_text(render())
