"""`simulation.dashboard=true` serves Ray's dashboard on 127.0.0.1 while the simulation runs."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def poll_json(url: str, process: subprocess.Popen, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(1)
    raise AssertionError(f"no answer from {url} while the run was going")


@pytest.mark.simulation
def test_dashboard_answers_while_the_run_is_going(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fl_privacy.run", "simulation.num_clients=2", "strategy.num_rounds=6",
         "strategy.warmup.epochs=1", "partition=iid", "simulation.dashboard=true",
         f"simulation.dashboard_port={port}", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        version = poll_json(f"http://127.0.0.1:{port}/api/version", process)
        assert version["ray_version"]
    finally:
        output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    assert f"Ray dashboard: http://127.0.0.1:{port}" in output
