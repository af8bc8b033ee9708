"""Helper processes end with the process that started them, whenever it is killed with SIGKILL:
even in the moment before the helper's interpreter has started (the relay's encoder outlived a
relay killed then, and held its queue open forever)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PARENT = """
import time
from ledger.helper_processes import helper_pool

pool = helper_pool(1, print, ("helper ready",))
pool.submit(print, "work")  # spawns the helper
time.sleep(600)
"""


def _children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("wait_for_start", [False, True], ids=["while-it-starts", "once-started"])
def test_helpers_end_when_their_parent_is_killed(wait_for_start: bool) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (helpers := _children(parent.pid)):
            assert time.monotonic() < deadline, "no helper started"
            time.sleep(0.001)
        if wait_for_start:
            assert parent.stdout is not None and parent.stdout.readline().strip() == "helper ready"
        else:
            time.sleep(0.01)  # the parent has handed the helper what it needs; its interpreter still starts
        parent.send_signal(signal.SIGKILL)
        assert parent.wait() == -signal.SIGKILL
    finally:
        parent.kill()
    deadline = time.monotonic() + 10
    while alive := [pid for pid in helpers if _alive(pid)]:
        if time.monotonic() > deadline:
            for pid in alive:
                subprocess.run(["kill", "-9", str(pid)], check=False)
            raise AssertionError(f"helpers {alive} outlived their parent by 10 s")
        time.sleep(0.05)
