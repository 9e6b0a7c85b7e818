"""Issue 5 bench: the MDM core under a 10,000-device swarm, on SQLite and PostgreSQL.

    .venv/bin/python bench/mdm.py [--devices 10000] [--db sqlite|postgresql|both]

Prints one JSON line with, per database:
- enrollments/s of the simulator swarm through the real endpoints (profile, SCEP, Authenticate, TokenUpdate),
  with the load generator's CPU share (it is Python: its share says how far the figure is its own limit);
- check-in + command round trips/s on /connect (Idle -> command, Acknowledged -> next), driven by `wrk` with a
  Lua script cycling through every enrolled device, beside a bare ASGI app answering each PUT with a fixed command
  plist in the same run (target >= 1/20), and wrk's own CPU share. Devices identify themselves with the client
  certificate a TLS proxy forwards (setting client_cert_header): a CMS signature per request would make wrk
  impossible, and certificate checks happen either way;
- seconds to enqueue one command for 100,000 devices (target < 2 s), one bulk operation;
- queue-table rows after ten rounds of a command to every device (target: bounded, not 10x the fleet), and the
  history rows before and after compaction.
"""
from __future__ import annotations

import os

# The bare baseline: uvicorn imports this module by name in each worker, so nothing heavy is imported above it.
_BARE_PLIST: bytes | None = None


async def bare_app(scope, receive, send):
    """The floor under any framework: read the request body, answer a fixed command plist. No DB, no identity."""
    global _BARE_PLIST
    if scope["type"] != "http":
        return
    if _BARE_PLIST is None:
        with open(os.environ["BENCH_BARE_BODY"], "rb") as fh:
            _BARE_PLIST = fh.read()
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/xml"),
                            (b"content-length", str(len(_BARE_PLIST)).encode())]})
    await send({"type": "http.response.body", "body": _BARE_PLIST})


# --- the bench ------------------------------------------------------------------------------------------------

import argparse  # noqa: E402
import asyncio  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import BIN, database, ensure_wrk, free_port, log, server  # noqa: E402

TARGET_RATIO, TARGET_ENQUEUE_S = 1 / 20, 2.0
TENANT = "benchmdm"
CERT_HEADER = "X-Client-Cert"
QUERIES = ["DeviceName", "OSVersion", "BuildVersion", "SerialNumber", "ModelName", "WiFiMAC"]

# One wrk thread cycles through the devices: even request 2p is device p's Idle (the server hands out its next
# command), odd request 2p+1 the Acknowledged of the command handed out LAG pairs earlier. With no more than 2*LAG
# requests in flight (the connections), a device's Acknowledged goes out after the answer to its Idle came back, as a
# real device's does: one request at a time per device. Round r of device d comes after every device's round r-1,
# so the queue drains in order; `start` resumes the sequence where an earlier run stopped.
LUA = r'''
local devices, uuids, k, lag = {}, {}, 0, 32
local head = '<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>'
function init(args)
  for line in io.lines(args[1]) do
    local udid, cert = line:match("([^\t]+)\t([^\t]+)")
    devices[#devices + 1] = {udid, cert}
  end
  for line in io.lines(args[2]) do uuids[#uuids + 1] = line end
  k = tonumber(args[3] or "0")
  lag = tonumber(args[4] or "32")
end
function request()
  local pair = math.floor(k / 2)
  local ack = k % 2 == 1 and pair >= lag
  if ack then pair = pair - lag end
  local d = devices[(pair % #devices) + 1]
  local r = math.floor(pair / #devices) + 1
  local body
  if ack and r <= #uuids then
    body = head .. '<key>CommandUUID</key><string>' .. uuids[r] .. '</string><key>Status</key><string>Acknowledged'
      .. '</string><key>UDID</key><string>' .. d[1] .. '</string></dict></plist>'
  else
    body = head .. '<key>Status</key><string>Idle</string><key>UDID</key><string>' .. d[1] .. '</string></dict></plist>'
  end
  k = k + 1
  return wrk.format("PUT", wrk.path, {["X-Client-Cert"] = d[2], ["Content-Type"] = "application/x-apple-aspen-mdm"}, body)
end
'''


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_wrk(wrk: str, url: str, script: Path, args: list[str], *, duration: int, connections: int) -> dict:
    """One wrk run; its requests/s, requests done, non-2xx count, and its CPU share of the machine."""
    before, started = cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{duration}s", "-s", str(script), url, "--", *args],
                         capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    wall = time.perf_counter() - started
    share = (cpu_seconds(resource.RUSAGE_CHILDREN) - before) / (wall * (os.cpu_count() or 1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0, "cpu_share": round(share, 3)}


def prepare(data_dir: Path, database_url: str | None):
    """Migrate and create the tenant; the app's Database for the in-process service calls."""
    from bramley.config import Settings
    from bramley.db.engine import Database
    from bramley.db.migrate import upgrade
    from bramley.tenancy import service as tenants

    settings = Settings(data_dir=data_dir, database_url=database_url)
    upgrade(settings)
    db = Database(settings)
    with db.unit_of_work() as s:
        tenants.create(s, subdomain=TENANT, region="us")
    return db


def system_ctx(s, subdomain: str):
    from bramley.tenancy import service as tenants

    return tenants.system_context(tenants.get_by_subdomain(s, subdomain))


def enroll(url: str, devices: int, concurrency: int) -> tuple[dict, list]:
    """The swarm enrolls every device through the real endpoints; enrollments/s and our CPU share."""
    from bramley.simulator.swarm import Swarm, SwarmConfig

    async def go():
        # Shared RSA keys: generating 10,000 keys would take this process ~15 minutes of CPU and measure nothing.
        config = SwarmConfig(url=url, tenant=TENANT, devices=devices, concurrency=concurrency, seed=5, key_pool=64)
        async with Swarm(config) as swarm:
            swarm.make_devices()
            cpu0, t0 = time.process_time(), time.perf_counter()
            await swarm.enroll()
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            return swarm.enrolled, swarm.failures, wall, cpu

    enrolled, failures, wall, cpu = asyncio.run(go())
    if failures:
        log(f"{len(failures)} enrollments failed, e.g. {failures[0][1]}")
    return {"enrolled": len(enrolled), "failed": len(failures), "seconds": round(wall, 1),
            "per_s": round(len(enrolled) / wall, 1),
            "loadgen_cpu_share": round(cpu / (wall * (os.cpu_count() or 1)), 3)}, enrolled


def write_devices(path: Path, enrolled: list) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    with path.open("w") as fh:
        for device in enrolled:
            der = device.identity.cert.public_bytes(Encoding.DER)
            fh.write(f"{device.udid}\t:{base64.b64encode(der).decode()}:\n")  # RFC 9440 Client-Cert form


def enqueue_rounds(db, rounds: int) -> tuple[list[str], list[float]]:
    """`rounds` commands for every enrolled device, each one bulk enqueue (timed with its commit)."""
    from sqlalchemy import select

    from bramley.mdm import queue
    from bramley.mdm.models import Enrollment

    uuids, seconds = [], []
    with db.unit_of_work() as s:
        ctx = system_ctx(s, TENANT)
        targets = [queue.Target(e, d) for e, d in s.execute(select(Enrollment.id, Enrollment.device_id).where(
            Enrollment.tenant_id == ctx.tenant_id, Enrollment.type == "device", Enrollment.enabled.is_(True)))]
    for _ in range(rounds):
        started = time.perf_counter()
        with db.unit_of_work() as s:
            uuids.append(queue.enqueue(s, system_ctx(s, TENANT), targets, "DeviceInformation", {"Queries": QUERIES},
                                       action="updateinventory"))
        seconds.append(time.perf_counter() - started)
    return uuids, seconds


def settle(db) -> None:
    """On PostgreSQL, what the server does on its own a while after a bulk load, before the exchanges are timed:
    vacuum and statistics (autovacuum) for the rows the bench wrote and deleted, and a checkpoint, so the
    measured exchanges do not pay for writing out the setup's pages (nor the first-touch page images after it)."""
    if db.dialect != "postgresql":
        return
    from sqlalchemy import text

    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        conn.execute(text("CHECKPOINT"))


def enqueue_100k(db, count: int) -> float:
    """One command for `count` devices of a scratch tenant, one bulk operation; its rows are removed after."""
    from sqlalchemy import delete

    from bramley.mdm import queue
    from bramley.mdm.models import Command, CommandHistory, QueuedCommand
    from bramley.tenancy import service as tenants

    with db.unit_of_work() as s:
        tenants.create(s, subdomain="benchenqueue", region="us")
    targets = [queue.Target(f"enrollment-{i:06d}", f"device-{i:06d}") for i in range(count)]
    started = time.perf_counter()
    with db.unit_of_work() as s:
        queue.enqueue(s, system_ctx(s, "benchenqueue"), targets, "DeviceInformation", {"Queries": QUERIES})
    took = time.perf_counter() - started
    with db.unit_of_work() as s:
        tenant_id = system_ctx(s, "benchenqueue").tenant_id
        for table in (QueuedCommand, CommandHistory, Command):
            s.execute(delete(table).where(table.tenant_id == tenant_id))
    return took


def table_rows(db) -> dict[str, int]:
    from sqlalchemy import func, select

    from bramley.mdm.models import CommandHistory, QueuedCommand

    with db.unit_of_work(write=False) as s:
        tenant_id = system_ctx(s, TENANT).tenant_id
        return {name: s.scalar(select(func.count()).select_from(table).where(table.tenant_id == tenant_id))
                for name, table in (("queue", QueuedCommand), ("history", CommandHistory))}


def bench_one(kind: str, args, wrk: str) -> dict:
    from bramley.mdm.protocol import encode_command

    result: dict = {}
    with tempfile.TemporaryDirectory(prefix=f"bench-mdm-{kind}-") as tmp:
        data_dir = Path(tmp)
        with database(kind, data_dir) as database_url:
            db = prepare(data_dir, database_url)
            result["enqueue_100k_s"] = round(enqueue_100k(db, args.enqueue_devices), 2)
            log(f"{kind}: enqueue for {args.enqueue_devices} devices: {result['enqueue_100k_s']} s")
            env = dict(os.environ, BRAMLEY_DATA_DIR=str(data_dir), BRAMLEY_LOG_FORMAT="text",
                       BRAMLEY_OPEN_ENROLLMENT="true", BRAMLEY_CLIENT_CERT_HEADER=CERT_HEADER)
            env.pop("BRAMLEY_REDIS_URL", None)
            env.pop("BRAMLEY_DATABASE_URL", None)
            if database_url:
                env["BRAMLEY_DATABASE_URL"] = database_url
            port = free_port()
            argv = [str(BIN / "bramley"), "serve", "--port", str(port), "--workers", str(args.workers)]
            with server(argv, env, f"http://127.0.0.1:{port}", "/healthz") as url:
                result["enroll"], enrolled = enroll(url, args.devices, args.concurrency)
                log(f"{kind}: enrollments {result['enroll']}")
                devices_file, uuids_file, script = data_dir / "devices.tsv", data_dir / "uuids.txt", data_dir / "mdm.lua"
                write_devices(devices_file, enrolled)
                script.write_text(LUA)
                uuids, seconds = enqueue_rounds(db, args.rounds)
                settle(db)
                uuids_file.write_text("\n".join(uuids) + "\n")
                result["enqueue_fleet_s"] = {"devices": len(enrolled), "p50": round(statistics.median(seconds), 3),
                                             "max": round(max(seconds), 3)}
                (data_dir / "command.plist").write_bytes(
                    encode_command(uuids[0], "DeviceInformation", {"Queries": QUERIES}))

                bare_port = free_port()
                bare_argv = [str(BIN / "python"), "-m", "uvicorn", "mdm:bare_app", "--app-dir", str(HERE),
                             "--host", "127.0.0.1", "--port", str(bare_port), "--workers", str(args.workers),
                             "--log-level", "warning", "--no-access-log"]
                connect_url = f"{url}/mdm/t/{TENANT}/connect"
                done = 0
                # Served as `bramley serve` serves: one accept per wake-up (see cli.serve).
                bare_env = dict(os.environ, BENCH_BARE_BODY=str(data_dir / "command.plist"), UV_TCP_SINGLE_ACCEPT="1")
                with server(bare_argv, bare_env, f"http://127.0.0.1:{bare_port}", "/") as bare_url:
                    opts = {"duration": args.duration, "connections": args.connections}
                    bare, device = [], []
                    for _ in range(2):  # alternate, so drift on a noisy host hits both alike
                        bare.append(run_wrk(wrk, bare_url + "/", script, [str(devices_file), str(uuids_file), "0"],
                                            **opts))
                        device.append(run_wrk(wrk, connect_url, script,
                                              [str(devices_file), str(uuids_file), str(done)], **opts))
                        done += device[-1]["requests"]
                        log(f"{kind}: connect {device[-1]['rps']} req/s, bare {bare[-1]['rps']} req/s")
                bad = sum(d["non_2xx"] for d in device)
                if bad:
                    raise RuntimeError(f"{bad} check-ins were refused")
                bare_rps = statistics.mean(b["rps"] for b in bare)
                connect_rps = statistics.mean(d["rps"] for d in device)
                total = 2 * len(enrolled) * (args.rounds + 1)
                result["connect"] = {
                    "rps": round(connect_rps, 1), "round_trips_per_s": round(connect_rps / 2, 1),
                    "bare_rps": round(bare_rps, 1), "ratio": round(connect_rps / bare_rps, 4),
                    "ratio_as_1_over": round(bare_rps / connect_rps, 1),
                    "wrk_cpu_share": max(d["cpu_share"] for d in device + bare),
                    # Past the queued rounds every request is an Idle with nothing to hand out: a cheaper exchange
                    # than the round trip measured. A small fleet needs more --rounds to stay inside them.
                    "window_within_rounds": done <= total,
                }
                # The rest of the rounds, then what the tables hold.
                deadline = time.monotonic() + args.drain_timeout
                while done < total and time.monotonic() < deadline:
                    run = run_wrk(wrk, connect_url, script, [str(devices_file), str(uuids_file), str(done)],
                                  duration=10, connections=args.connections)
                    done += run["requests"]
                result["after_rounds"] = {"rounds": args.rounds, "fleet": len(enrolled), **table_rows(db),
                                          "requests_sent": done, "requests_planned": total}
            from bramley.mdm import queue

            with db.unit_of_work() as s:  # what the worker's hourly compaction does once history is past retention
                from datetime import timedelta

                queue.compact(s, retention=timedelta(0))
            result["after_rounds"]["history_after_compaction"] = table_rows(db)["history"]
            db.engine.dispose()
    result["targets"] = {
        "round_trips_ge_1_20_of_bare": result["connect"]["ratio"] >= TARGET_RATIO
        and result["connect"]["window_within_rounds"],
        "enqueue_100k_lt_2s": result["enqueue_100k_s"] < TARGET_ENQUEUE_S,
        "queue_bounded": result["after_rounds"]["queue"] <= result["after_rounds"]["fleet"],
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--concurrency", type=int, default=48, help="swarm enrollments in flight")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--enqueue-devices", type=int, default=100_000)
    parser.add_argument("--drain-timeout", type=int, default=900, help="seconds to finish the rounds")
    args = parser.parse_args()

    wrk = ensure_wrk()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    started = time.perf_counter()
    line: dict = {"bench": "mdm", "devices": args.devices, "workers": args.workers,
                  "wrk": {"threads": 1, "connections": args.connections, "duration_s": args.duration},
                  "targets": {"round_trips": ">= 1/20 of bare", "enqueue_100k_s": f"< {TARGET_ENQUEUE_S}",
                              "queue_rows_after_rounds": "<= fleet"}}
    for kind in kinds:
        line[kind] = bench_one(kind, args, wrk)
    line["met"] = all(all(line[k]["targets"].values()) for k in kinds)
    line["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(line, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
