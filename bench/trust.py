"""Issue 8 bench: a full `bramley trust sync` of a large fleet next to a raw httpx loop over the same pages, and
`trust check` latency over the local snapshot.

    .venv/bin/python bench/trust.py [--devices 100000] [--rounds 2] [--checks 20000]

Seeds a SQLite server with `bramley demo seed`, serves it with `bramley serve`, and prints one JSON line.
The raw loop is the floor under any sync: the same GETs (limit=300, offset stepping), each page parsed, nothing
stored. Runs alternate (raw, sync, raw, sync, ...) so drift on a noisy host hits both alike; read the ratio.
Targets (issue 8): full sync < 15 s on SQLite, check p95 < 1 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, free_port, log, pct, server  # noqa: E402
TARGET_SYNC_S, TARGET_CHECK_P95_MS = 15.0, 1.0
DETAILS = "GET /api/v1/devices/{device_id}/details"


def bramley(env: dict, *args: str) -> str:
    return subprocess.run([str(BIN / "bramley"), *args], env=env, check=True, capture_output=True, text=True).stdout


@contextmanager
def bramley_server(env: dict):
    """`bramley serve` of ours on a free port (bench/common.py stops it by its process group)."""
    port = free_port()
    with server([str(BIN / "bramley"), "serve", "--port", str(port), "--no-worker"], env,
                f"http://127.0.0.1:{port}", "/healthz") as url:
        yield url


def raw_loop(url: str, token: str) -> tuple[float, int]:
    """The same pages a sync reads, with nothing around them: one client, GET, parse, next offset."""
    import httpx
    import orjson

    seen = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        start = time.perf_counter()
        offset = 0
        while True:
            r = client.get("/api/v1/devices", params={"limit": 300, "offset": offset})
            r.raise_for_status()
            page = orjson.loads(r.content)
            seen += len(page)
            if len(page) < 300:
                break
            offset += len(page)
        return time.perf_counter() - start, seen


def full_sync(url: str, token: str, state_dir: Path):
    from bramley.trust import sync as trust_sync

    config = trust_sync.SyncConfig(url=url, token=token, state_dir=state_dir)
    start = time.perf_counter()
    result = trust_sync.sync_once(config)
    elapsed = time.perf_counter() - start
    if not result.ok:
        raise RuntimeError(f"sync failed: {result.error}")
    return elapsed, result


def check_latency(state_dir: Path, checks: int) -> dict:
    """`trust check` as a long-running caller (a zero-trust gateway) makes it: the snapshot open, one serial at a
    time, the verdict evaluated at the time of asking. Nine in ten serials are known; one in ten is not."""
    from bramley.trust import sync as trust_sync
    from bramley.trust.snapshot import Snapshot

    with Snapshot(state_dir) as snap:
        serials = [r.serial_number for r in snap.rows()]
        rng = random.Random(8)
        asked = [rng.choice(serials) if rng.random() < 0.9 else f"UNKNOWN{i:05d}" for i in range(checks + 200)]
        times, verified = [], 0
        for i, serial in enumerate(asked):
            start = time.perf_counter()
            verdict = trust_sync.check(snap, serial)
            elapsed = (time.perf_counter() - start) * 1000
            if i >= 200:  # warm caches first
                times.append(elapsed)
                verified += verdict["verified"]
    return {"n": checks, "p50_ms": round(pct(times, 0.5), 4), "p95_ms": round(pct(times, 0.95), 4),
            "p99_ms": round(pct(times, 0.99), 4), "verified_share": round(verified / checks, 3)}


def cli_check_ms(env: dict, state_dir: Path, serial: str) -> float:
    """One `bramley trust check` process, start to exit (what a shell script pays, interpreter start included)."""
    start = time.perf_counter()
    subprocess.run([str(BIN / "bramley"), "trust", "check", serial, "--state-dir", str(state_dir)], env=env,
                   capture_output=True)
    return round((time.perf_counter() - start) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2, help="raw/sync pairs")
    parser.add_argument("--checks", type=int, default=20_000)
    args = parser.parse_args()

    line: dict = {"bench": "trust", "db": "sqlite", "devices": args.devices,
                  "targets": {"full_sync_s": f"< {TARGET_SYNC_S}", "check_p95_ms": f"< {TARGET_CHECK_P95_MS}"}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-trust-") as tmp:
        data = Path(tmp)
        env = dict(os.environ, BRAMLEY_DATA_DIR=str(data / "server"), BRAMLEY_LOG_FORMAT="text",
                   # Lifted, not disabled: the limiter's cost is part of what is measured.
                   BRAMLEY_RATE_LIMIT_PER_SECOND="1000000000", BRAMLEY_RATE_LIMIT_PER_HOUR="1000000000")
        for name in ("BRAMLEY_DATABASE_URL", "BRAMLEY_REDIS_URL", "BRAMLEY_TRUST_DIR"):
            env.pop(name, None)
        bramley(env, "tenant", "create", "bench")
        start = time.perf_counter()
        bramley(env, "demo", "seed", "--tenant", "bench", "--devices", str(args.devices))
        line["seed_s"] = round(time.perf_counter() - start, 1)
        log(f"seeded {args.devices} devices in {line['seed_s']} s")
        token = json.loads(bramley(env, "token", "create", "--tenant", "bench", "--description", "zero trust",
                                   "--permission", "GET /api/v1/devices", "--permission", DETAILS, "--json"))["token"]
        with bramley_server(env) as url:
            raw_loop(url, token)  # warm the server (page cache, connections)
            raws, syncs, result = [], [], None
            for i in range(args.rounds):
                raw_s, seen = raw_loop(url, token)
                if seen != args.devices:
                    raise RuntimeError(f"raw loop saw {seen} devices")
                raws.append(raw_s)
                sync_s, result = full_sync(url, token, data / f"state{i}")
                if result.devices != args.devices:
                    raise RuntimeError(f"sync kept {result.devices} devices")
                syncs.append(sync_s)
                log(f"round {i + 1}: raw {raw_s:.2f} s, full sync {sync_s:.2f} s")
            again_s, again = full_sync(url, token, data / "state0")  # onto an existing snapshot
        line["pages"] = result.pages
        line["raw_httpx_s"] = {"runs": [round(x, 2) for x in raws], "median": round(statistics.median(raws), 2)}
        line["full_sync_s"] = {"runs": [round(x, 2) for x in syncs], "median": round(statistics.median(syncs), 2)}
        line["sync_over_raw"] = round(statistics.median(syncs) / statistics.median(raws), 2)
        line["resync_s"] = round(again_s, 2)
        line["verified"] = result.verified
        line["details_read"] = {"first_sync": result.details, "resync": again.details}
        line["check"] = check_latency(data / "state0", args.checks)
        log(f"check {line['check']}")
        some_serial = json.loads(subprocess.run(
            [str(BIN / "python"), "-c", "import sqlite3,sys,json;print(json.dumps(sqlite3.connect(sys.argv[1])"
             ".execute('select serial_number from devices limit 1').fetchone()[0]))",
             str(data / "state0" / "trust.sqlite3")], capture_output=True, text=True, check=True).stdout)
        line["cli_check_process_ms"] = cli_check_ms(env, data / "state0", some_serial)
    line["met"] = {"full_sync_lt_15s": line["full_sync_s"]["median"] < TARGET_SYNC_S,
                   "check_p95_lt_1ms": line["check"]["p95_ms"] < TARGET_CHECK_P95_MS}
    line["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(line, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
