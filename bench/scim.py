"""SCIM provisioning benchmark (issue 6). Prints one JSON line.

Provisions --users users and --groups groups (--users memberships, spread evenly) over HTTP into `bramley serve`
(SQLite, or BRAMLEY_DATABASE_URL), and the same POST /Users load into the reference `scim2-server` (in memory)
started side by side in the same run. Then fills Bramley to --lookup-users directory users and times
`userName eq` lookups over HTTP.

    python bench/scim.py                       # 10,000 users, 100 groups, lookups at 100,000 users
    python bench/scim.py --users 2000 --lookup-users 20000     # a quicker run

Targets: Bramley's POST /Users rate at least 2x scim2-server's; lookup p95 under 10 ms.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, free_port  # noqa: E402
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def wait_ready(url: str, proc: subprocess.Popen, headers: dict | None = None) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read().decode() if proc.stdout else ''}")
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def user_body(i: int, run: str) -> dict:
    name = f"user{i:06d}.{run}@bench.example"
    return {"schemas": [USER_SCHEMA], "userName": name, "externalId": f"00u{i:08d}",
            "name": {"givenName": f"Given{i}", "familyName": f"Family{i}"}, "displayName": f"Given{i} Family{i}",
            "emails": [{"value": name, "type": "work", "primary": True}], "active": True}


async def post_users(base: str, token: str, numbers: range, concurrency: int, run: str) -> tuple[float, list[str]]:
    """POST the users numbered `numbers` with `concurrency` requests in flight; (seconds taken, their ids)."""
    count = len(numbers)
    ids: list[str] = [""] * count
    queue = iter(range(count))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}) as client:
        async def worker():
            for i in queue:
                r = await client.post("/Users", json=user_body(numbers[i], run))
                if r.status_code != 201:
                    raise RuntimeError(f"POST /Users answered {r.status_code}: {r.text[:200]}")
                ids[i] = r.json()["id"]
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, ids


def provision_side_by_side(ours: tuple[str, str], theirs: tuple[str, str], users: int, concurrency: int,
                           run: str, rounds: int = 10) -> tuple[float, float, list[str]]:
    """The same POST /Users load on both servers, in alternating rounds so that a busy moment of the machine
    weighs on both alike; (our rate, their rate, our user ids)."""
    ours_seconds = theirs_seconds = 0.0
    ids: list[str] = []
    step = max(1, -(-users // rounds))
    for start in range(0, users, step):
        numbers = range(start, min(users, start + step))
        took, _ = asyncio.run(post_users(*theirs, numbers, concurrency, run))
        theirs_seconds += took
        took, made = asyncio.run(post_users(*ours, numbers, concurrency, run))
        ours_seconds += took
        ids += made
    return users / ours_seconds, users / theirs_seconds, ids


async def post_groups(base: str, token: str, groups: int, user_ids: list[str], concurrency: int) -> float:
    """POST `groups` groups whose members together are every user once; seconds taken."""
    per = max(1, len(user_ids) // groups)
    queue = iter(range(groups))
    async with httpx.AsyncClient(base_url=base, timeout=120, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}) as client:
        async def worker():
            for g in queue:
                members = [{"value": uid} for uid in user_ids[g * per:(g + 1) * per]]
                r = await client.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": f"Group {g:03d}",
                                                       "members": members})
                if r.status_code != 201:
                    raise RuntimeError(f"POST /Groups answered {r.status_code}: {r.text[:200]}")
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def fill_users(env: dict, subdomain: str, total: int) -> int:
    """Top the tenant up to `total` directory users straight through the users service (seeding 90,000 users
    over HTTP would only measure the POST path again)."""
    code = f"""
import sys
from bramley.config import Settings
from bramley.db.engine import Database
from bramley.tenancy import service as tenants
from bramley.users import service as users
from bramley.users.models import User
from sqlalchemy import func, select
db = Database(Settings())
with db.unit_of_work() as s:
    ctx = tenants.system_context(tenants.get_by_subdomain(s, {subdomain!r}))
    have = s.scalar(select(func.count()).select_from(User).where(User.tenant_id == ctx.tenant_id))
made = 0
while have + made < {total}:
    n = min(5000, {total} - have - made)
    with db.unit_of_work() as s:
        ctx = tenants.system_context(tenants.get_by_subdomain(s, {subdomain!r}))
        users.create_many(s, ctx, [users.NewUser(name=f"Filler {{made + i}}",
                                                 email=f"filler{{made + i:07d}}@bench.example")
                                   for i in range(n)], audited=False)
    made += n
print(have + made)
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def lookups(base: str, token: str, names: list[str]) -> list[float]:
    """Sequential `userName eq` lookups (case changed, as IdPs may send it); milliseconds each."""
    times = []
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        for name in names:
            started = time.perf_counter()
            r = client.get("/Users", params={"filter": f'userName eq "{name.upper()}"', "startIndex": 1,
                                             "count": 100})
            times.append((time.perf_counter() - started) * 1000)
            body = r.json()
            if r.status_code != 200 or body["totalResults"] != 1:
                raise RuntimeError(f"lookup of {name} answered {r.status_code}: {r.text[:200]}")
    return times


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--lookup-users", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bramley-scim-bench-"))
    env = dict(os.environ, BRAMLEY_DATA_DIR=str(work), BRAMLEY_LOG_FORMAT="text")
    bramley = str(BIN / "bramley")
    subprocess.run([bramley, "tenant", "create", "bench"], env=env, check=True, capture_output=True)
    token = json.loads(subprocess.run([bramley, "scim-token", "create", "--tenant", "bench", "--json"], env=env,
                                      check=True, capture_output=True, text=True).stdout)["token"]
    ours_port, theirs_port = free_port(), free_port()
    reference_token = secrets.token_urlsafe(24)
    ours = subprocess.Popen([bramley, "serve", "--port", str(ours_port), "--no-worker"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # `--bearer-token=…` in one word: a token_urlsafe value may start with "-", which argparse would take for an option.
    theirs = subprocess.Popen([str(BIN / "scim2-server"), "--hostname", "127.0.0.1", "--port", str(theirs_port),
                               f"--bearer-token={reference_token}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ours_base = f"http://127.0.0.1:{ours_port}/api/v1/scim"
    theirs_base = f"http://127.0.0.1:{theirs_port}/v2"
    try:
        wait_ready(f"http://127.0.0.1:{ours_port}/healthz", ours)
        wait_ready(f"{theirs_base}/ServiceProviderConfig", theirs, {"Authorization": f"Bearer {reference_token}"})
        run = secrets.token_hex(3)
        ours_rate, theirs_rate, ids = provision_side_by_side((ours_base, token), (theirs_base, reference_token),
                                                             args.users, args.concurrency, run)
        groups_seconds = asyncio.run(post_groups(ours_base, token, args.groups, ids, args.concurrency))
        total = fill_users(env, "bench", args.lookup_users)
        step = max(1, args.users // args.lookups)
        names = [user_body(i, run)["userName"] for i in range(0, args.users, step)][:args.lookups]
        times = lookups(ours_base, token, names)
    finally:
        for proc in (ours, theirs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(json.dumps({
        "bench": "scim",
        "database": "postgresql" if os.environ.get("BRAMLEY_DATABASE_URL") else "sqlite",
        "users": args.users, "groups": args.groups, "memberships": len(ids) // args.groups * args.groups,
        "concurrency": args.concurrency,
        "post_users_per_s": round(ours_rate, 1),
        "scim2_server_post_users_per_s": round(theirs_rate, 1),
        "ratio_vs_scim2_server": round(ours_rate / theirs_rate, 2),
        "groups_seconds": round(groups_seconds, 2),
        "lookup_users": total, "lookups": len(times),
        "lookup_p50_ms": round(statistics.median(times), 2), "lookup_p95_ms": round(percentile(times, 95), 2),
        "targets_met": ours_rate >= 2 * theirs_rate and percentile(times, 95) < 10,
    }))


if __name__ == "__main__":
    main()
