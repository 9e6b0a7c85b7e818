"""SCIM provisioning benchmark (issue 6). Prints one JSON line.

Provisions at least --users users over HTTP into `bramley serve` (SQLite, or BRAMLEY_DATABASE_URL), and the same
POST /Users load into the reference `scim2-server` (in memory) started side by side in the same run: wrk drives both
(--concurrency connections, alternating rounds of a few seconds until each has made --users users), as a Python
client on 2 cores would be the bottleneck itself. Then --groups groups take every user Bramley made as members
(spread evenly), Bramley is filled to --lookup-users directory users, and `userName eq` lookups are timed over HTTP.

    python bench/scim.py                       # 10,000 users, 100 groups, lookups at 100,000 users
    python bench/scim.py --users 2000 --lookup-users 20000     # a quicker run

Targets: Bramley's POST /Users rate at least 2x scim2-server's; lookup p95 under 10 ms.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
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
from common import BIN, ensure_wrk, free_port  # noqa: E402
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def wait_ready(url: str, proc: subprocess.Popen, output: Path, headers: dict | None = None) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {output.read_text(errors='replace')}")
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


# wrk's script: POST /Users bodies (what Okta sends: names, a work email, externalId), numbered from FIRST. When
# a round's time is up a few requests may still be in flight: their users may be made but are not counted, and the
# next round numbers its users far from this one's.
POST_USERS_LUA = r'''
local first, run, sent = tonumber(os.getenv("FIRST")), os.getenv("RUN"), 0
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/scim+json"
request = function()
  local i = first + sent
  sent = sent + 1
  local name = string.format("user%07d.%s@bench.example", i, run)
  local body = string.format('{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s",'
    .. '"externalId":"00u%08d","name":{"givenName":"Given%d","familyName":"Family%d"},'
    .. '"displayName":"Given%d Family%d","emails":[{"value":"%s","type":"work","primary":true}],"active":true}',
    name, i, i, i, i, i, name)
  return wrk.format(nil, os.getenv("USERS_PATH"), nil, body)
end
'''
ROUND_SPAN = 1_000_000  # user numbers per round: a round's in-flight extras never collide with the next round's


def wrk_post_users(wrk: str, script: Path, base: str, token: str, first: int, seconds: int, connections: int,
                   run: str) -> tuple[int, float]:
    """POST /Users from wrk for `seconds` with `connections` in flight: (users made, seconds taken)."""
    url = httpx.URL(base)
    env = dict(os.environ, FIRST=str(first), RUN=run, TOKEN=token, USERS_PATH=f"{url.path}/Users")
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
                          f"{url.scheme}://{url.netloc.decode()}"],
                         capture_output=True, text=True, env=env, timeout=seconds + 60, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors on {base}:\n{out}")
    done = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    return int(done.group(1)), float(done.group(2)) * {"ms": 0.001, "s": 1, "m": 60}[done.group(3)]


def provision_side_by_side(wrk: str, script: Path, ours: tuple[str, str], theirs: tuple[str, str], users: int,
                           connections: int, run: str, seconds: int = 2) -> dict[str, tuple[int, float]]:
    """The same POST /Users load from wrk on both servers (a Python client on 2 cores measures itself) until each
    has made at least `users` users, in alternating rounds of `seconds` so that a busy moment of the machine weighs
    on both alike; for each side, (users made, their rate)."""
    made = {"ours": [0, 0.0], "theirs": [0, 0.0]}
    sides = {"theirs": theirs, "ours": ours}
    round_number = 0
    while any(made[side][0] < users for side in sides):
        for side, (base, token) in sides.items():
            if made[side][0] < users:
                count, took = wrk_post_users(wrk, script, base, token, round_number * ROUND_SPAN, seconds,
                                             connections, run)
                made[side][0] += count
                made[side][1] += took
        round_number += 1
    return {side: (count, count / took) for side, (count, took) in made.items()}


def user_ids(base: str, token: str) -> tuple[list[str], list[str]]:
    """Every directory user's id and userName, page by page."""
    ids, names, start = [], [], 1
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        while True:
            page = client.get("/Users", params={"startIndex": start, "count": 500, "attributes": "userName"}).json()
            ids += [u["id"] for u in page["Resources"]]
            names += [u["userName"] for u in page["Resources"]]
            start += len(page["Resources"])
            if not page["Resources"] or start > page["totalResults"]:
                return ids, names


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
    wrk = ensure_wrk()

    work = Path(tempfile.mkdtemp(prefix="bramley-scim-bench-"))
    env = dict(os.environ, BRAMLEY_DATA_DIR=str(work), BRAMLEY_LOG_FORMAT="text")
    bramley = str(BIN / "bramley")
    subprocess.run([bramley, "tenant", "create", "bench"], env=env, check=True, capture_output=True)
    token = json.loads(subprocess.run([bramley, "scim-token", "create", "--tenant", "bench", "--json"], env=env,
                                      check=True, capture_output=True, text=True).stdout)["token"]
    ours_port, theirs_port = free_port(), free_port()
    reference_token = secrets.token_urlsafe(24)
    # Their output goes to files: a pipe nobody reads fills up and blocks a server mid-run.
    ours_output, theirs_output = work / "bramley.log", work / "scim2-server.log"
    with ours_output.open("wb") as out:
        ours = subprocess.Popen([bramley, "serve", "--port", str(ours_port), "--no-worker"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    # `--bearer-token=…` in one word: a token_urlsafe value may start with "-", which argparse would take for an option.
    with theirs_output.open("wb") as out:
        theirs = subprocess.Popen([str(BIN / "scim2-server"), "--hostname", "127.0.0.1", "--port", str(theirs_port),
                                   f"--bearer-token={reference_token}"], stdout=out, stderr=subprocess.STDOUT)
    ours_base = f"http://127.0.0.1:{ours_port}/api/v1/scim"
    theirs_base = f"http://127.0.0.1:{theirs_port}/v2"
    try:
        wait_ready(f"http://127.0.0.1:{ours_port}/healthz", ours, ours_output)
        wait_ready(f"{theirs_base}/ServiceProviderConfig", theirs, theirs_output,
                   {"Authorization": f"Bearer {reference_token}"})
        run = secrets.token_hex(3)
        script = work / "post_users.lua"
        script.write_text(POST_USERS_LUA)
        provisioned = provision_side_by_side(wrk, script, (ours_base, token), (theirs_base, reference_token),
                                             args.users, args.concurrency, run)
        (ours_made, ours_rate), (theirs_made, theirs_rate) = provisioned["ours"], provisioned["theirs"]
        ids, names = user_ids(ours_base, token)
        groups_seconds = asyncio.run(post_groups(ours_base, token, args.groups, ids, args.concurrency))
        total = fill_users(env, "bench", args.lookup_users)
        names = names[::max(1, len(names) // args.lookups)][:args.lookups]
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
        "concurrency": args.concurrency, "load": "wrk",
        "users_made": ours_made, "scim2_server_users_made": theirs_made,
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
