"""Tamper evidence for the event log: an RFC 9162 Merkle tree, signed checkpoints, verification."""
