"""Issue 4 bench: the device list beside a bare ASGI app serving the same bytes, on SQLite and PostgreSQL.

    .venv/bin/python bench/api.py [--devices 100000] [--db sqlite|postgresql|both]

Prints one JSON line. Throughput comes from `wrk` (a Python client on 2 cores would measure itself); every
figure is taken beside its baseline in the same run, because this machine is noisy: read the ratios.
Targets (issue 4): device page >= 1/8 of the bare app's req/s, full walk < 5 s, filtered p95 < 20 ms.
"""
from __future__ import annotations

import os

# The bare baseline: uvicorn imports this module by name in each worker, so nothing heavy is imported above it.
_BARE_BODY: bytes | None = None


async def bare_app(scope, receive, send):
    """The floor under any framework: the same 300-device JSON bytes from memory, no routing, no DB, no auth."""
    global _BARE_BODY
    if scope["type"] != "http":
        return
    if _BARE_BODY is None:
        with open(os.environ["BENCH_BARE_BODY"], "rb") as fh:
            _BARE_BODY = fh.read()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(_BARE_BODY)).encode())]})
    await send({"type": "http.response.body", "body": _BARE_BODY})


# --- the bench ------------------------------------------------------------------------------------------------

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, HERE, database, ensure_wrk, free_port, log, pct, seed, server  # noqa: E402
TARGET_RATIO, TARGET_WALK_S, TARGET_P95_MS = 1 / 8, 5.0, 20.0


def run_wrk(wrk: str, url: str, headers: dict[str, str], *, duration: int, connections: int, threads: int) -> float:
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors on {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


# --- one database -------------------------------------------------------------------------------------------


def walk(url: str, auth: dict[str, str]) -> tuple[float, list[dict]]:
    """Every device, page by page, one client, as a sync script would."""
    import httpx
    import orjson

    seen: list[dict] = []
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        start = time.perf_counter()
        offset = 0
        while True:
            r = client.get("/api/v1/devices", params={"limit": 300, "offset": offset})
            r.raise_for_status()
            page = orjson.loads(r.content)
            if not page:
                break
            seen += page
            offset += len(page)
        return time.perf_counter() - start, seen


def filtered(url: str, auth: dict[str, str], devices: list[dict], rounds: int) -> dict:
    """Latency of single filtered list requests (default page size), values taken from real devices."""
    import httpx

    rng = random.Random(4)
    with_user = [d for d in devices if d["user"]]
    queries = {
        "serial_number": lambda: {"serial_number": rng.choice(devices)["serial_number"][2:8]},
        "user_email": lambda: {"user_email": rng.choice(with_user)["user"]["email"].split("@")[0]},
        "platform": lambda: {"platform": rng.choice(["Mac", "iPhone", "iPad", "AppleTV"])},
    }
    out: dict = {}
    every: list[float] = []
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        for name, params in queries.items():
            times = []
            for i in range(rounds + 5):
                start = time.perf_counter()
                r = client.get("/api/v1/devices", params=params())
                elapsed = (time.perf_counter() - start) * 1000
                r.raise_for_status()
                if i >= 5:  # the first few warm connections and caches
                    times.append(elapsed)
            every += times
            out[name] = {"p50_ms": round(pct(times, 0.5), 2), "p95_ms": round(pct(times, 0.95), 2)}
    out["all"] = {"p50_ms": round(pct(every, 0.5), 2), "p95_ms": round(pct(every, 0.95), 2)}
    return out


def bench_one(kind: str, args, wrk: str) -> dict:
    import httpx

    result: dict = {}
    with tempfile.TemporaryDirectory(prefix=f"bench-api-{kind}-") as tmp:
        data_dir = Path(tmp)
        with database(kind, data_dir) as database_url:
            start = time.perf_counter()
            token = seed(data_dir, database_url, args.devices)
            result["seed_s"] = round(time.perf_counter() - start, 1)
            log(f"{kind}: seeded {args.devices} devices in {result['seed_s']} s")
            auth = {"Authorization": f"Bearer {token}"}
            env = dict(os.environ, BRAMLEY_DATA_DIR=str(data_dir), BRAMLEY_LOG_FORMAT="text",
                       # Lifted, not disabled: the limiter's cost is part of what is measured.
                       BRAMLEY_RATE_LIMIT_PER_SECOND="1000000000", BRAMLEY_RATE_LIMIT_PER_HOUR="1000000000")
            env.pop("BRAMLEY_REDIS_URL", None)
            if database_url:
                env["BRAMLEY_DATABASE_URL"] = database_url
            else:
                env.pop("BRAMLEY_DATABASE_URL", None)
            port = free_port()
            app_argv = [str(BIN / "bramley"), "serve", "--port", str(port), "--workers", str(args.workers)]
            with server(app_argv, env, f"http://127.0.0.1:{port}", "/healthz") as app_url:
                page = httpx.get(f"{app_url}/api/v1/devices?limit=300", headers=auth, timeout=30)
                page.raise_for_status()
                body_file = data_dir / "page.json"
                body_file.write_bytes(page.content)
                result["page_bytes"] = len(page.content)

                walk_s, seen = walk(app_url, auth)
                if len({d["device_id"] for d in seen}) != args.devices:
                    raise RuntimeError(f"walk saw {len(seen)} devices, expected {args.devices}")
                result["walk_s"] = round(walk_s, 2)
                result["walk_pages"] = -(-args.devices // 300) + 1
                log(f"{kind}: walk {result['walk_s']} s")
                result["filtered"] = filtered(app_url, auth, seen, args.rounds)
                log(f"{kind}: filtered {result['filtered']['all']}")

                bare_port = free_port()
                bare_argv = [str(BIN / "python"), "-m", "uvicorn", "api:bare_app", "--app-dir", str(HERE),
                             "--host", "127.0.0.1", "--port", str(bare_port), "--workers", str(args.workers),
                             "--log-level", "warning", "--no-access-log"]
                # Served as `bramley serve` serves: one accept per wake-up (see cli.serve).
                bare_env = dict(os.environ, BENCH_BARE_BODY=str(body_file), UV_TCP_SINGLE_ACCEPT="1")
                with server(bare_argv, bare_env, f"http://127.0.0.1:{bare_port}", "/") as bare_url:
                    wrk_opts = {"duration": args.duration, "connections": args.connections, "threads": 1}
                    offsets = sorted({0, args.devices // 2, max(0, args.devices - 300)})
                    # Warm both, then alternate bare and device runs so drift on a noisy host hits both alike.
                    run_wrk(wrk, bare_url + "/", {}, **dict(wrk_opts, duration=1))
                    run_wrk(wrk, f"{app_url}/api/v1/devices?limit=300", auth, **dict(wrk_opts, duration=1))
                    bare, device = [], {}
                    for offset in offsets:
                        bare.append(run_wrk(wrk, bare_url + "/", {}, **wrk_opts))
                        device[str(offset)] = round(run_wrk(
                            wrk, f"{app_url}/api/v1/devices?limit=300&offset={offset}", auth, **wrk_opts), 1)
                        log(f"{kind}: offset {offset}: {device[str(offset)]} req/s, bare {bare[-1]:.0f} req/s")
                    bare.append(run_wrk(wrk, bare_url + "/", {}, **wrk_opts))
            bare_rps = statistics.mean(bare)
            result["bare_rps"] = round(bare_rps, 1)
            result["bare_rps_runs"] = [round(b, 1) for b in bare]
            result["device_rps"] = device
            result["ratio"] = {k: round(v / bare_rps, 4) for k, v in device.items()}
            result["ratio_min_as_1_over"] = round(bare_rps / min(device.values()), 2)
    result["targets"] = {
        "page_ratio_ge_1_8": {offset: ratio >= TARGET_RATIO for offset, ratio in result["ratio"].items()},
        "walk_lt_5s": result["walk_s"] < TARGET_WALK_S,
        "filtered_p95_lt_20ms": all(v["p95_ms"] < TARGET_P95_MS for v in result["filtered"].values()),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    # One uvicorn worker per core, for Bramley and the baseline alike.
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=100, help="requests per filter")
    args = parser.parse_args()

    wrk = ensure_wrk()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    started = time.perf_counter()
    line: dict = {"bench": "api", "devices": args.devices, "workers": args.workers,
                  "wrk": {"threads": 1, "connections": args.connections, "duration_s": args.duration},
                  "targets": {"page_ratio": ">= 1/8 of bare", "walk_s": f"< {TARGET_WALK_S}",
                              "filtered_p95_ms": f"< {TARGET_P95_MS}"}}
    for kind in kinds:
        line[kind] = bench_one(kind, args, wrk)
    line["met"] = all(all(v if isinstance(v, bool) else all(v.values()) for v in line[k]["targets"].values())
                      for k in kinds)
    line["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(line, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
