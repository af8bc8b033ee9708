"""Recipient accounts of upstream products, as every role but support sees them: masked."""

from __future__ import annotations


def mask(account: str) -> str:
    """Enough to recognise, not enough to use: `13812345678` -> `138****5678`,
    `ann@example.com` -> `ann****.com`; short accounts keep only their first and last character."""
    if len(account) >= 8:
        return f"{account[:3]}****{account[-4:]}"
    if len(account) >= 3:
        return f"{account[0]}****{account[-1]}"
    return "****"
