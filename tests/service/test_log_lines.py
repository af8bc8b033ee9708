"""No traceback in any log line at the default level: a request that fails unexpectedly is
answered 500 (a problem) and logged as one line naming the exception's type, never its message
(it could hold a code); the ledger's own `log.exception` and a thread that dies say one line too.
A real uvicorn server with `ledger serve`'s logging, in a process of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SECRET = "CODE-SECRET-7Q4X"

SERVER = textwrap.dedent(f"""
    import logging, sys, threading, time
    from pathlib import Path
    import httpx, uvicorn
    from api.app import create_app
    from shell import logs
    from tests.api_fixtures import open_services, auth

    level = sys.argv[2]
    tmp = Path(sys.argv[1])
    services = open_services(f"sqlite:///{{tmp / 'ledger.sqlite'}}", tmp)
    app = create_app(services)

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("{SECRET}")

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level=level, log_config=logs.uvicorn_config(level))
    server = uvicorn.Server(config)
    if level != "debug":
        logs.quiet_thread_deaths()
    thread = threading.Thread(target=server.run)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    answer = httpx.get(f"http://127.0.0.1:{{port}}/v1/boom")
    print("STATUS", answer.status_code, answer.headers["content-type"], flush=True)
    try:
        raise ValueError("{SECRET}")
    except ValueError:
        logging.getLogger("ledger.writer.writer").exception("the writer failed a batch")

    def dies() -> None:
        raise KeyError("{SECRET}")

    doomed = threading.Thread(target=dies, name="sweeper")
    doomed.start()
    doomed.join()
    server.should_exit = True
    thread.join()
    services.close()
""")


def serve_and_fail(tmp_path: Path, level: str) -> str:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", SERVER, str(tmp_path), level], capture_output=True, text=True,
                          timeout=120, cwd=root, env={"PYTHONPATH": f"{root / 'src'}:{root}", "PATH": "/usr/bin:/bin"})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_no_traceback_and_no_message_at_the_default_level(tmp_path: Path) -> None:
    output = serve_and_fail(tmp_path, "info")
    assert "STATUS 500 application/problem+json" in output
    assert "Traceback" not in output, output
    assert SECRET not in output, output
    assert "unexpected RuntimeError while serving a request" in output
    assert "the writer failed a batch (ValueError)" in output
    assert "thread sweeper stopped on KeyError" in output
    assert "Exception in ASGI application" not in output


def test_the_debug_level_keeps_tracebacks(tmp_path: Path) -> None:
    output = serve_and_fail(tmp_path, "debug")
    assert "Traceback" in output and "the writer failed a batch" in output
