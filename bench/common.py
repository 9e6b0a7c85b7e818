"""What every bench shares: logging, free ports, our server processes, wrk, fresh databases, percentiles."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("installing wrk (apt)")
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(argv: list[str], env: dict[str, str], url: str, ready_path: str):
    """A server process group of ours, stopped by its own id when the block ends."""
    import httpx

    # Its log goes to a file: a pipe nobody reads fills up and blocks the server mid-run.
    log_file = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True)
    try:
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited: {Path(log_file.name).read_text()[-2000:]}")
            try:
                if httpx.get(url + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"{argv} did not start")
            time.sleep(0.2)
        log(f"{Path(argv[0]).name} log: {log_file.name}")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def database(kind: str, data_dir: Path):
    """A fresh database URL (None = SQLite in data_dir); a PostgreSQL one is dropped afterwards."""
    if kind == "sqlite":
        yield None
        return
    import psycopg

    name = f"bench_api_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(data_dir: Path, database_url: str | None, devices: int) -> str:
    """Migrate, create a tenant with `devices` devices through the services, return an all-access token."""
    from sqlalchemy import text

    from bramley.auth import service as tokens
    from bramley.config import Settings
    from bramley.db.engine import Database
    from bramley.db.migrate import upgrade
    from bramley.demo.seed import seed as demo_seed
    from bramley.tenancy import service as tenants

    settings = Settings(data_dir=data_dir, database_url=database_url)
    upgrade(settings)
    db = Database(settings)
    with db.unit_of_work() as s:
        tenant = tenants.create(s, subdomain="bench", region="us")
        ctx = tenants.system_context(tenant)
        demo_seed(s, ctx, devices_count=devices, with_inventory=False, audited=False)
        value = tokens.create(s, ctx, description="bench", permissions=[], all_access=True).value
    if db.dialect == "postgresql":
        # What autovacuum does soon after a bulk load: planner statistics, and the visibility map that lets the
        # list's primary-key scan stay index-only.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    db.engine.dispose()
    return value
