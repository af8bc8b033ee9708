"""Proofs from the audit log's Merkle tree (RFC 9162): that an event is in it, and that an
older tree head is a prefix of a newer one. Hashes are lowercase hex. See docs/audit.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from api.deps import MAX_POSITION, Caller, ServicesDep, require
from api.problems import NOT_FOUND
from api.routes.reads import invalid
from audit.proofs import ProofError, consistency, inclusion

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=NOT_FOUND)  # beyond the tree, no checkpoint
Finance = Annotated[Caller, Depends(require("finance"))]
Size = Annotated[int | None, Query(ge=1, le=MAX_POSITION,
                                   description="leaves in the tree (default: the whole tree now)")]


class InclusionOut(BaseModel):
    position: int = Field(description="the event's notification id")
    leaf_index: int = Field(description="its 0-based leaf index (positions can have gaps, leaves cannot)")
    tree_size: int
    leaf_hash: str = Field(description="SHA-256(0x00 || leaf bytes), hex")
    root_hash: str = Field(description="the root of the tree of tree_size leaves, hex")
    proof: list[str] = Field(description="RFC 9162 §2.1.3 audit path, leaf to root, hex")


class ConsistencyOut(BaseModel):
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str] = Field(description="RFC 9162 §2.1.4 consistency path, hex; empty when first == second")


class CheckpointOut(BaseModel):
    format: str
    origin: str
    tree_size: int
    root_hash: str
    last_position: int
    timestamp: str
    algorithm: str
    public_key: str = Field(description="raw Ed25519 public key, base64")
    signature: str = Field(description="Ed25519 over the checkpoint note (docs/audit.md), base64")


def _problem(error: ProofError) -> Exception:
    return HTTPException(404, error.message) if error.not_found else invalid(error.field, error.message)


@router.get("/proofs/inclusion", response_model=InclusionOut)
def inclusion_proof(
    svc: ServicesDep, caller: Finance,
    position: Annotated[int, Query(ge=1, le=MAX_POSITION, description="the event's position")],
    tree_size: Size = None,
) -> InclusionOut:
    """The audit path proving the event at `position` is leaf `leaf_index` of the tree of
    `tree_size` leaves; check it with `audit.offline_verifier.verify_inclusion` against a checkpoint."""
    try:
        found = inclusion(svc.audit(), position, tree_size)
    except ProofError as error:
        raise _problem(error) from None
    return InclusionOut.model_validate(found.to_json())


@router.get("/proofs/consistency", response_model=ConsistencyOut)
def consistency_proof(
    svc: ServicesDep, caller: Finance,
    first: Annotated[int, Query(ge=1, le=MAX_POSITION, description="the older tree size")],
    second: Size = None,
) -> ConsistencyOut:
    """The proof that the tree of `first` leaves is a prefix of the tree of `second`; check it
    with `audit.offline_verifier.verify_consistency`."""
    try:
        found = consistency(svc.audit(), first, second)
    except ProofError as error:
        raise _problem(error) from None
    return ConsistencyOut(first=found.first, second=found.second, first_root=found.first_root.hex(),
                          second_root=found.second_root.hex(), proof=[h.hex() for h in found.path])


@router.get("/checkpoints/latest", response_model=CheckpointOut)
def latest_checkpoint(svc: ServicesDep, caller: Finance) -> CheckpointOut:
    """The newest signed tree head, in the same JSON as `ledger audit checkpoint --out`."""
    found = svc.audit().latest_checkpoint(svc.audit_keys())
    if found is None:
        raise HTTPException(404, "no checkpoint has been signed yet")
    return CheckpointOut.model_validate(found.to_json())
