"""Where each read model stands: position, lag in events and in seconds, throughput
(`ledger project status`, `GET /v1/projections`). Computed by the read side's seam."""

from __future__ import annotations

from projections.queries import ProjectionStatus, projection_status

__all__ = ["ProjectionStatus", "projection_status"]
