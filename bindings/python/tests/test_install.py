"""`pip install` of bindings/python into a fresh venv, and the installed package
finding the library by its SONAME (no REDISPOOL_LIB) and running a command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redispool

PROJECT = Path(__file__).resolve().parent.parent


def test_pip_install_into_a_venv_and_load_by_soname(tmp_path, redis_server):
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        check=True, timeout=120,
    )
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-deps", "--no-build-isolation",
         "--no-index", str(PROJECT)],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr

    # The library this run uses, under its SONAME in a directory of its own, as
    # an installed one would be; found through the loader's path, not REDISPOOL_LIB.
    lib_dir = tmp_path / "lib"
    lib_dir.mkdir()
    (lib_dir / "libredispool.so.0").symlink_to(Path(redispool.library_path()).resolve())
    env = {k: v for k, v in os.environ.items() if k not in ("REDISPOOL_LIB", "PYTHONPATH")}
    env["LD_LIBRARY_PATH"] = str(lib_dir)
    script = (
        "import redispool, sys\n"
        "print(redispool.__file__)\n"
        "print(redispool.library_path())\n"
        f"pool = redispool.Pool.from_url({redis_server.url!r})\n"
        "with pool.get() as conn:\n"
        "    print(conn.execute('PING').decode())\n"
    )
    run = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    module_file, library, pong = run.stdout.split()
    assert Path(module_file).is_relative_to(venv), module_file
    assert library == "libredispool.so.0"
    assert pong == "PONG"
