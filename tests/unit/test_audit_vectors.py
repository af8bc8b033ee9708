"""Every RFC 9162 inclusion and consistency test vector of the reference implementation
(transparency-dev/merkle, used by Certificate Transparency logs) through our verifiers:
valid cases verify, tampered ones are rejected. The vectors are in the repository
(tests/vectors/rfc9162/, with their licence), so a clone on its own runs them all."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from audit.offline_verifier import verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc9162"


def _cases(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    if not files:  # a failure, never a skip: the vectors are part of the repository
        return [pytest.param(None, id=f"{kind}-vectors-missing")]
    return [pytest.param(path, id=str(path.relative_to(VECTORS / kind))) for path in files]


def _load(path: Path | None) -> dict[str, Any]:
    assert path is not None, f"the RFC 9162 test vectors are missing from {VECTORS}"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _b(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


@pytest.mark.parametrize("path", _cases("inclusion"))
def test_inclusion_vector(path: Path | None) -> None:
    case = _load(path)
    ok = verify_inclusion(case["leafIdx"], case["treeSize"], _b(case["leafHash"]),
                          [_b(p) for p in case["proof"] or []], _b(case["root"]))
    assert ok is not case["wantErr"], case["desc"]


@pytest.mark.parametrize("path", _cases("consistency"))
def test_consistency_vector(path: Path | None) -> None:
    case = _load(path)
    ok = verify_consistency(case["size1"], case["size2"], _b(case["root1"]), _b(case["root2"]),
                            [_b(p) for p in case["proof"] or []])
    assert ok is not case["wantErr"], case["desc"]


def test_the_vectors_are_all_there() -> None:
    """A partial copy would let most of the reference cases go untested."""
    inclusion = list((VECTORS / "inclusion").rglob("*.json"))
    consistency = list((VECTORS / "consistency").rglob("*.json"))
    assert len(inclusion) >= 90 and len(consistency) >= 90, (len(inclusion), len(consistency))
    assert any(json.loads(p.read_text())["wantErr"] is False for p in inclusion + consistency)
