"""Issue 7 bench: stream a whole fleet through the connector beside a raw httpx loop over the same pages.

    .venv/bin/python bench/connector.py [--devices 100000] [--db sqlite|postgresql] [--rounds 3]

Seeds a tenant, runs `bramley serve`, then alternates the two sides, each in its own process so each reports its
own peak RSS: the raw side is `httpx.Client.get(limit=300, offset=N)` + `response.json()` until an empty page;
the connector side is `for device in kandji.list_devices("stream")` (DeviceRecords: Device's typed fields read
from the JSON when asked for, one page fetched ahead), both reading each device's id.
Prints one JSON line. Targets (issue 7): connector devices/s >= 0.8 of raw, peak RSS < 100 MB whatever the size.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from common import BIN, database, free_port, log, seed, server  # noqa: E402
TARGET_RATIO, TARGET_RSS_MB = 0.8, 100.0


def rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the parent across exec)."""
    with open("/proc/self/status") as fh:
        for row in fh:
            if row.startswith("VmHWM:"):
                return round(int(row.split()[1]) / 1024, 1)  # kB
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- one side, in its own process ------------------------------------------------------------------------------------

def side_raw(url: str, token: str, expected: int) -> dict:
    import httpx

    count, offset, at_tenth = 0, 0, None
    start = time.perf_counter()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                      timeout=60) as client:
        while True:
            response = client.get("/api/v1/devices", params={"limit": 300, "offset": offset})
            response.raise_for_status()
            page = response.json()
            if not page:
                break
            for device in page:
                count += 1
                if device["device_id"] and at_tenth is None and count >= expected // 10:
                    at_tenth = rss_mb()
            offset += len(page)
    return {"devices": count, "seconds": time.perf_counter() - start, "cpu_s": cpu_s(), "peak_rss_mb": rss_mb(),
            "rss_at_10pct_mb": at_tenth}


def side_connector(url: str, token: str, expected: int) -> dict:
    from bramley.connector import connect

    count, at_tenth = 0, None
    start = time.perf_counter()
    with connect(url, token, timeout=60) as kandji:
        for device in kandji.list_devices("stream"):
            count += 1
            if device.device_id and at_tenth is None and count >= expected // 10:
                at_tenth = rss_mb()
    return {"devices": count, "seconds": time.perf_counter() - start, "cpu_s": cpu_s(), "peak_rss_mb": rss_mb(),
            "rss_at_10pct_mb": at_tenth}


def run_side(side: str, url: str, token_file: Path, expected: int) -> dict:
    out = subprocess.run([sys.executable, str(HERE), "--side", side, "--url", url, "--token-file", str(token_file),
                          "--devices", str(expected)], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{side} side failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    if result["devices"] != expected:
        raise RuntimeError(f"{side} side saw {result['devices']} devices, expected {expected}")
    return result


# --- the server ------------------------------------------------------------------------------------------------------

@contextmanager
def serve(data_dir: Path, database_url: str | None):
    """`bramley serve` on a free port, limits lifted (their cost is still measured), no job worker."""
    port = free_port()
    env = dict(os.environ, BRAMLEY_DATA_DIR=str(data_dir), BRAMLEY_RATE_LIMIT_PER_SECOND="1000000000",
               BRAMLEY_RATE_LIMIT_PER_HOUR="1000000000", BRAMLEY_LOG_FORMAT="text")
    env.pop("BRAMLEY_REDIS_URL", None)
    env.pop("BRAMLEY_DATABASE_URL", None)
    if database_url:
        env["BRAMLEY_DATABASE_URL"] = database_url
    with server([str(BIN / "bramley"), "serve", "--port", str(port), "--no-worker"], env,
                f"http://127.0.0.1:{port}", "/healthz") as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, alternated")
    parser.add_argument("--side", choices=["raw", "connector"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        token = Path(args.token_file).read_text().strip()
        fn = side_raw if args.side == "raw" else side_connector
        print(json.dumps(fn(args.url, token, args.devices)))
        return

    started = time.perf_counter()
    line: dict = {"bench": "connector", "devices": args.devices, "db": args.db, "rounds": args.rounds,
                  "targets": {"ratio": f">= {TARGET_RATIO} of raw devices/s", "peak_rss_mb": f"< {TARGET_RSS_MB:g}"}}
    with tempfile.TemporaryDirectory(prefix="bench-connector-") as tmp, database(args.db, Path(tmp)) as database_url:
        data_dir = Path(tmp)
        start = time.perf_counter()
        token = seed(data_dir, database_url, args.devices)
        line["seed_s"] = round(time.perf_counter() - start, 1)
        log(f"seeded {args.devices} devices in {line['seed_s']} s")
        token_file = data_dir / "token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        with serve(data_dir, database_url) as url:
            run_side("raw", url, token_file, args.devices)  # warm the server's caches and the OS page cache
            raw, conn = [], []
            for n in range(args.rounds):
                for side, results in (("raw", raw), ("connector", conn)) if n % 2 == 0 else (("connector", conn),
                                                                                             ("raw", raw)):
                    result = run_side(side, url, token_file, args.devices)
                    results.append(result)
                    log(f"{side}: {args.devices / result['seconds']:,.0f} devices/s, "
                        f"client CPU {result['cpu_s']:.2f} s, peak RSS {result['peak_rss_mb']} MB")
    raw_rate = statistics.median(args.devices / r["seconds"] for r in raw)
    conn_rate = statistics.median(args.devices / r["seconds"] for r in conn)
    line["raw_devices_per_s"] = round(raw_rate)
    line["connector_devices_per_s"] = round(conn_rate)
    line["raw_runs"] = [round(args.devices / r["seconds"]) for r in raw]
    line["connector_runs"] = [round(args.devices / r["seconds"]) for r in conn]
    line["ratio"] = round(conn_rate / raw_rate, 3)
    line["connector_peak_rss_mb"] = max(r["peak_rss_mb"] for r in conn)
    line["connector_rss_at_10pct_mb"] = max(r["rss_at_10pct_mb"] for r in conn)
    line["raw_peak_rss_mb"] = max(r["peak_rss_mb"] for r in raw)
    # The client's own CPU (user + sys, process start included): what the typed models cost over json.loads.
    line["raw_client_cpu_s"] = round(statistics.median(r["cpu_s"] for r in raw), 2)
    line["connector_client_cpu_s"] = round(statistics.median(r["cpu_s"] for r in conn), 2)
    line["met"] = {"ratio_ge_0_8": line["ratio"] >= TARGET_RATIO,
                   "peak_rss_lt_100mb": line["connector_peak_rss_mb"] < TARGET_RSS_MB}
    line["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(line, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
