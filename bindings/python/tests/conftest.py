"""Fixtures: a throwaway redis-server on a free loopback port (never 6379), with
no persistence, started by the tests themselves; $REDIS_SERVER names the binary."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

# Run against the checkout's package unless told otherwise (the install test
# imports the installed copy in its own interpreter).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

READY_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self, extra_args=()):
        program = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
        if not program:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.dir = tempfile.mkdtemp(prefix="redispool-py-")
        for _ in range(5):
            self.port = _free_port()
            assert self.port != 6379
            self.log = Path(self.dir) / f"redis-{self.port}.log"
            self.proc = subprocess.Popen(
                [program, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", self.dir,
                 "--logfile", str(self.log), *extra_args],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + READY_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _ping(self.port):
                    return
                time.sleep(0.02)
            self.stop()
        log = self.log.read_text() if self.log.exists() else ""
        pytest.fail(f"redis-server did not start; last log:\n{log}")

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def pool(redis_server):
    import redispool

    p = redispool.Pool(redis_server.addr, pool_size=4, pool_timeout_ms=2000)
    yield p
    p.close()
