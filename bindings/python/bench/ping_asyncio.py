#!/usr/bin/env python3
"""PING from N asyncio coroutines on one event loop: redispool's Python binding
(``await pool.aget()``, ``await conn.aexecute("PING")``, ``conn.put()``, which wait
only in the loop: on the pool's notify fd and on the conn's socket, no thread)
against redis-py's asyncio client (``await Redis.ping()`` on a
``BlockingConnectionPool``, with the hiredis parser when installed), in the same
run, against one redis-server this script starts on a free loopback port
(--save '' --appendonly no). Not a test: it prints figures.

    python3 -m venv /tmp/bench && /tmp/bench/bin/pip install redis hiredis
    REDISPOOL_LIB=target/release/libredispool.so \\
        /tmp/bench/bin/python bindings/python/bench/ping_asyncio.py \\
        [--shapes 8x8,8x64,8x256,64x64] [--seconds 2] [--rounds 3]

A shape is POOLxCOROUTINES: both clients get a pool of POOL conns, and
COROUTINES tasks each loop get + PING + put (redis-py: one ``ping()``, which
checks a conn out of its pool and gives it back), so with more coroutines than
conns most of them wait for a conn. The variants run in --rounds interleaved
rounds of --seconds each (the order rotates every round); the table has the
median time per PING per coroutine, the median of the per-round ratios
(redis-py's time / the binding's: above 1 the binding is faster), and the most
OS threads the process had (the binding's library threads included).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
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
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp,
         "--maxclients", "10000"],
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


def os_threads() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


async def run_tasks(tasks: int, seconds: float, body) -> tuple[float, int]:
    """Runs `tasks` coroutines looping `body` for `seconds`: (PINGs per second, the
    most OS threads seen)."""
    stop = False
    counts = [0] * tasks
    most_threads = os_threads()

    async def worker(i):
        n = 0
        while not stop:
            await body()
            n += 1
        counts[i] = n

    began = time.perf_counter()
    workers = [asyncio.ensure_future(worker(i)) for i in range(tasks)]
    end = began + seconds
    while time.perf_counter() < end:
        await asyncio.sleep(min(0.1, max(0.0, end - time.perf_counter())))
        most_threads = max(most_threads, os_threads())
    stop = True
    await asyncio.gather(*workers)
    return sum(counts) / (time.perf_counter() - began), most_threads


async def bench(args, port: int) -> list[str]:
    import redis
    import redis.asyncio
    from redis.utils import HIREDIS_AVAILABLE

    parser = "hiredis" if HIREDIS_AVAILABLE else "pure-Python parser"
    shapes = []
    for shape in args.shapes.split(","):
        pool_size, tasks = (int(x) for x in shape.lower().split("x"))
        shapes.append((pool_size, tasks))

    rows = []
    for pool_size, tasks in shapes:
        rp = redispool.Pool(f"127.0.0.1:{port}", pool_size=pool_size)

        async def redispool_ping(rp=rp):
            c = await rp.aget()
            try:
                await c.aexecute("PING")
            finally:
                c.put()

        bp = redis.asyncio.BlockingConnectionPool(
            host="127.0.0.1", port=port, max_connections=pool_size, timeout=10)
        client = redis.asyncio.Redis(connection_pool=bp)

        async def redispy_ping(client=client):
            await client.ping()

        variants = {"redis-py": redispy_ping, "redispool": redispool_ping}
        for body in variants.values():  # warm up: dial every conn
            await run_tasks(tasks, 0.3, body)
        results = {name: [] for name in variants}
        threads = {name: 0 for name in variants}
        names = list(variants)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                ops, most = await run_tasks(tasks, args.seconds, variants[name])
                results[name].append(ops)
                threads[name] = max(threads[name], most)
        # Time per PING as one coroutine sees it: tasks / (PINGs per second).
        per = {name: [tasks / x * 1e6 for x in xs] for name, xs in results.items()}
        ratios = [p / b for p, b in zip(per["redis-py"], per["redispool"])]
        rows.append(
            f"| {pool_size} x {tasks} "
            f"| {statistics.median(per['redis-py']):.1f} µs "
            f"| {statistics.median(per['redispool']):.1f} µs "
            f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
            f"| {statistics.median(results['redis-py']):.0f} "
            f"| {statistics.median(results['redispool']):.0f} "
            f"| {threads['redis-py']} / {threads['redispool']} |"
        )
        await client.aclose() if hasattr(client, "aclose") else await client.close()
        await bp.disconnect()
        rp.close()

    head = [
        f"PING from asyncio coroutines on one loop, {args.rounds} interleaved rounds of "
        f"{args.seconds}s, medians; Python {sys.version.split()[0]}, redis-py "
        f"{redis.__version__} ({parser}), libredispool {redispool.library_version()} "
        f"from {redispool.library_path()}, {os.cpu_count()} CPUs",
        "",
        "| pool x coroutines | redis-py asyncio `ping()` | redispool `aget` + `aexecute` + `put` "
        "| ratio (rounds) | redis-py PING/s | redispool PING/s | OS threads (redis-py / redispool) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    return head + rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="8x8,8x64,8x256,64x64",
                    help="comma-separated POOLxCOROUTINES")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        sys.exit("redis-py not installed: pip install redis hiredis (in a venv)")

    proc, port, tmp = start_redis()
    try:
        for line in asyncio.run(bench(args, port)):
            print(line)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
