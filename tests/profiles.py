"""Hypothesis profiles for the random tests.

In CI (no profile named) the random tests run a modest, mostly derandomized budget: the same
examples every run, so a red build is never a fluke. Before a release, run the `deep` profile:
many more examples, freshly randomized each run, failures kept in `.hypothesis/` and printed
with a blob to reproduce them (see docs/testing.md):

    HYPOTHESIS_PROFILE=deep .venv/bin/python -m pytest tests/service -k "random or equals or stateful"
    .venv/bin/python -m pytest --hypothesis-profile=deep ...        # the same, as a pytest option

`LEDGER_DEEP_FACTOR` (default 10) scales the example counts the random tests ask for.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

DEEP = "deep"
DEEP_FACTOR = int(os.environ.get("LEDGER_DEEP_FACTOR", "10"))

settings.register_profile(
    DEEP,
    max_examples=1000,  # for property tests that do not name their own count
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


def deep() -> bool:
    """Whether this run is the deep, randomized one."""
    return settings.get_current_profile_name() == DEEP


def examples(ci: int) -> int:
    """The example count for a random test: `ci` in CI, DEEP_FACTOR times as many when deep."""
    return ci * DEEP_FACTOR if deep() else ci


def deep_steps(ci: int) -> int:
    """The steps of a stateful test's runs: twice as many when deep."""
    return ci * 2 if deep() else ci
