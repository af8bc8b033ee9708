"""Every router the app serves."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import orders

ROUTERS: list[APIRouter] = [orders.router]
