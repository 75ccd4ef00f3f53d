"""`sync-platform receiver --workers 2`, as deploy/compose.yaml and the systemd unit run it:
both worker processes start, answer, and keep the header deadline from the environment."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sync_platform.settings import RECEIVER_HEADER_TIMEOUT_ENV, WAREHOUSE_URL_ENV
from sync_platform_simulator.background_server import free_port


@pytest.mark.parametrize("warehouse_url", ["sqlite"], indirect=True)
def test_two_workers_serve_and_close_silent_connections(warehouse_url, tmp_path):
    port = free_port()
    cli = Path(sys.executable).parent / "sync-platform"
    assert shutil.which(str(cli)), cli
    log = (tmp_path / "receiver.log").open("w")
    process = subprocess.Popen(
        [str(cli), "receiver", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env={**os.environ, WAREHOUSE_URL_ENV: warehouse_url, RECEIVER_HEADER_TIMEOUT_ENV: "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        output = (tmp_path / "receiver.log").read_text()
        assert health is not None, f"the receiver did not answer:\n{output[-3000:]}"
        assert health.status_code == 200, health.text
        # the first worker up answers while the second may still be starting
        while output.count("Started server process") < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
            output = (tmp_path / "receiver.log").read_text()
        assert "Started parent process" in output and output.count("Started server process") == 2
        # a connection that sends nothing is closed at the deadline, in whichever worker
        for _ in range(4):
            silent = socket.create_connection(("127.0.0.1", port))
            silent.settimeout(5)
            started = time.monotonic()
            assert silent.recv(1) == b""
            assert 0.8 <= time.monotonic() - started < 4
            silent.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
