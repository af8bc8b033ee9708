"""A command's context on its own: its time and the metadata every event carries."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ledger.domain.context import Context
from tests.unit.domain import NOW


def test_a_context_needs_an_aware_time_and_names_its_origin() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Context(now=datetime(2026, 3, 1, 12, 0))
    plain = Context(now=NOW, actor="psp")
    assert plain.meta() == {"actor": "psp", "correlation_id": plain.correlation_id,
                            "causation_id": plain.correlation_id}
    traced = Context(now=NOW, correlation_id="c1", causation_id="e9", client_ip="10.0.0.1", device_id="d1")
    assert traced.meta() == {"actor": "system", "correlation_id": "c1", "causation_id": "e9",
                             "client_ip": "10.0.0.1", "device_id": "d1"}
    assert traced.at(NOW + timedelta(minutes=1)).meta() == traced.meta()
