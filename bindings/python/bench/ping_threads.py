#!/usr/bin/env python3
"""PING per second from N Python threads (default 8): redispool's Python binding
against redis-py's ConnectionPool (with the hiredis parser when installed), in
the same run, against one redis-server this script starts on a free loopback
port (--save '' --appendonly no). Not a test: it prints figures.

    python3 -m venv /tmp/bench && /tmp/bench/bin/pip install redis hiredis
    REDISPOOL_LIB=target/release/libredispool.so \\
        /tmp/bench/bin/python bindings/python/bench/ping_threads.py [--threads 8] [--seconds 3]

Each variant runs for --seconds in --rounds alternating rounds; a thread does
get, PING, put (redispool: ``with pool.get() as c: c.execute("PING")``;
redis-py: ``pool.get_connection()``, ``send_command("PING")``,
``read_response()``, ``pool.release()``, i.e. what ``Redis.ping()`` does without
its response callback). "health_check_bypass_ms=500" skips the per-get
MSG_PEEK for a conn given back less than 500 ms ago. The pools hold as many conns as threads. Reports the
median ops/s over rounds and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redispool  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis():
    tmp = tempfile.mkdtemp(prefix="redispool-bench-")
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(7).startswith(b"+PONG"):
                    return proc, port, tmp
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


def run_threads(threads: int, seconds: float, body) -> float:
    stop = threading.Event()
    counts = [0] * threads
    start = threading.Barrier(threads + 1)

    def worker(i):
        start.wait()
        n = 0
        while not stop.is_set():
            for _ in range(50):
                body()
            n += 50
        counts[i] = n

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - began)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    proc, port, tmp = start_redis()
    try:
        variants = {}
        rp = redispool.Pool(f"127.0.0.1:{port}", pool_size=args.threads)

        def redispool_ping():
            with rp.get() as c:
                c.execute("PING")

        variants["redispool (ctypes)"] = redispool_ping
        hot = redispool.Pool(f"127.0.0.1:{port}", pool_size=args.threads,
                             health_check_bypass_ms=500)

        def redispool_hot_ping():
            with hot.get() as c:
                c.execute("PING")

        variants["redispool, health_check_bypass_ms=500"] = redispool_hot_ping
        try:
            import redis
            from redis.utils import HIREDIS_AVAILABLE

            parser = "hiredis" if HIREDIS_AVAILABLE else "pure-Python parser"
            pp = redis.ConnectionPool(host="127.0.0.1", port=port, max_connections=args.threads)

            def redispy_ping():
                c = pp.get_connection("PING") if redis.VERSION < (5, 3) else pp.get_connection()
                try:
                    c.send_command("PING")
                    c.read_response()
                finally:
                    pp.release(c)

            variants[f"redis-py {redis.__version__} ConnectionPool ({parser})"] = redispy_ping
        except ImportError:
            print("redis-py not installed: pip install redis hiredis (in a venv)")

        for body in variants.values():  # warm up: dial every conn
            run_threads(args.threads, 0.2, body)
        results = {name: [] for name in variants}
        names = list(variants)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                results[name].append(run_threads(args.threads, args.seconds, variants[name]))

        print(f"PING/s from {args.threads} Python threads, {args.rounds} rounds of "
              f"{args.seconds}s, median (min-max); Python {sys.version.split()[0]}, "
              f"libredispool {redispool.library_version()} from {redispool.library_path()}, "
              f"{os.cpu_count()} CPUs")
        # The machine's speed drifts between rounds: compare within each round.
        base = results[names[0]]
        for name in names:
            xs = results[name]
            ratios = [x / b for x, b in zip(xs, base)]
            print(f"  {name:50s} {statistics.median(xs):8.0f}/s  ({min(xs):.0f}-{max(xs):.0f}) "
                  f" {statistics.median(ratios):.2f}x of redispool "
                  f"(rounds {min(ratios):.2f}-{max(ratios):.2f})")
        rp.close()
        hot.close()
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
