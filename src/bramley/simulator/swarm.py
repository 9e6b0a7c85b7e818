"""An asyncio swarm of simulated devices: enroll N through the real endpoints with bounded concurrency, keep
them checking in (woken by the mock APNs when the server pushes through it, else on a poll timer), show
progress with Rich, and report what happened. `bramley simulate` and the end-to-end tests drive it.
"""
from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from bramley.simulator import scep_client
from bramley.simulator.agent import Options, Refused, SimulatedDevice
from bramley.simulator.device import MIXED_WEIGHTS, new_device, platform_name


@dataclass
class SwarmConfig:
    url: str  # the server's base URL (http://127.0.0.1:8000, or http://testserver in-process)
    tenant: str  # subdomain
    devices: int = 10
    platform: str = "mixed"  # mac | iphone | ipad | tv | mixed
    codes: Sequence[str] = ()  # one-time enrollment codes, one per device (the rest enroll without one)
    concurrency: int = 20  # enrollments and check-ins in flight at once
    seed: int | None = None
    supervised: bool | None = None  # None: a realistic share per platform
    duration: float | None = None  # stop after this many seconds...
    rounds: int | None = None  # ...or after each device woke this many times (None, None: until cancelled)
    device: Options = field(default_factory=Options)
    # Load runs: share this many RSA keys across the swarm (2048-bit key generation is ~0.1 s of CPU each).
    # 0: every device makes its own, as real devices do.
    key_pool: int = 0

    @property
    def enroll_url(self) -> str:
        return f"{self.url.rstrip('/')}/mdm/t/{self.tenant}/enroll"


def plan_platforms(platform: str, count: int, rng: random.Random) -> list[str]:
    """The platform of each device: all the same, or a mixed fleet (every platform once it is big enough)."""
    if platform.lower() != "mixed":
        return [platform_name(platform)] * count
    names = [name for name, _ in MIXED_WEIGHTS]
    weights = [weight for _, weight in MIXED_WEIGHTS]
    chosen = names[:count] if count <= len(names) else names + rng.choices(names, weights, k=count - len(names))
    rng.shuffle(chosen)
    return chosen


class Swarm:
    def __init__(self, config: SwarmConfig, *, client: httpx.AsyncClient | None = None, apns=None,
                 console=None, progress: bool = False, verify: bool | str = True):
        self.config = config
        self.apns = apns
        self.rng = random.Random(config.seed)
        self.console = console
        self.show_progress = progress
        self._client = client
        self._own_client = client is None
        self._verify = verify
        self.limiter = asyncio.Semaphore(config.concurrency)
        self.devices: list[SimulatedDevice] = []
        self.failures: list[tuple[SimulatedDevice, str]] = []
        self.results: Counter = Counter()  # (RequestType, Status) answered
        self.started_at = time.monotonic()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._progress = None
        self._bars: dict[str, int] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=60, verify=self._verify,
                                             limits=httpx.Limits(max_connections=self.config.concurrency * 2))
        return self._client

    async def __aenter__(self) -> "Swarm":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def _record(self, request_type: str, status: str) -> None:
        self.results[(request_type, status)] += 1

    def make_devices(self) -> list[SimulatedDevice]:
        cfg = self.config
        codes = list(cfg.codes)
        keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(cfg.key_pool)]
        for index, platform in enumerate(plan_platforms(cfg.platform, cfg.devices, self.rng)):
            rng = random.Random(self.rng.getrandbits(64))
            state = new_device(platform, rng, supervised=cfg.supervised)
            self.devices.append(SimulatedDevice(
                state, self.client, enroll_url=cfg.enroll_url, code=codes[index] if index < len(codes) else None,
                apns=self.apns, options=cfg.device, rng=rng, on_result=self._record, limiter=self.limiter))
            if keys:
                self.devices[-1].key = keys[index % len(keys)]
        return self.devices

    # --- phases -----------------------------------------------------------------------------------------

    async def enroll(self) -> list[SimulatedDevice]:
        """Enroll every device (bounded concurrency). Failures are kept in `failures`, not raised."""
        if not self.devices:
            self.make_devices()

        async def one(device: SimulatedDevice) -> None:
            async with self.limiter:
                try:
                    await device.enroll()
                except (scep_client.EnrollmentFailed, Refused, httpx.HTTPError, KeyError, ValueError) as exc:
                    self.failures.append((device, _reason(exc)))
            self._advance("enroll")

        await asyncio.gather(*(one(d) for d in self.devices))
        return self.enrolled

    @property
    def enrolled(self) -> list[SimulatedDevice]:
        return [d for d in self.devices if d.enrolled]

    async def uninstall_agent(self, count: int, *, notify: bool = True) -> list[SimulatedDevice]:
        """Uninstall the agent from up to `count` enrolled Macs that run it; the Macs it was removed from."""
        chosen = [d for d in self.enrolled if d.agent_installed][:count]
        for device in chosen:
            await device.uninstall_agent(notify=notify)
        return chosen

    def start(self) -> None:
        """Keep every enrolled device checking in (background tasks) until stop()."""
        self._stop.clear()
        for device in self.enrolled:
            self._tasks.append(asyncio.ensure_future(device.run(self._stop, rounds=self.config.rounds)))

    async def wait(self) -> None:
        """Until the duration passes or every device finished its rounds (or forever when neither is set)."""
        cfg = self.config
        running = asyncio.gather(*self._tasks, return_exceptions=True) if self._tasks else None
        if cfg.duration is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(running) if running else asyncio.sleep(cfg.duration),
                                       cfg.duration)
        elif running is not None:
            await running

    async def stop(self) -> None:
        self._stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
        await asyncio.gather(*(d.aclose() for d in self.devices), return_exceptions=True)

    async def run(self) -> dict:
        """Enroll, keep checking in for the configured duration/rounds, stop; the summary."""
        with self._progress_bars():
            await self.enroll()
            self.start()
            refresher = asyncio.ensure_future(self._refresh()) if self._progress else None
            try:
                await self.wait()
            finally:
                await self.stop()
                if refresher:
                    refresher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await refresher
                self._update_running()
        return self.summary()

    async def aclose(self) -> None:
        await self.stop()
        if self._own_client and self._client is not None:
            await self._client.aclose()

    # --- reporting ----------------------------------------------------------------------------------------

    def summary(self) -> dict:
        statuses: Counter = Counter()
        by_type: Counter = Counter()
        for (request_type, status), n in self.results.items():
            statuses[status] += n
            by_type[request_type] += n
        totals: Counter = Counter()
        for device in self.devices:
            totals.update(device.stats)
        return {
            "devices": len(self.devices),
            "enrolled": sum(1 for d in self.devices if d.stats["enrolled"]),
            "still_enrolled": len(self.enrolled),
            "failed": len(self.failures),
            "failures": sorted(Counter(reason for _, reason in self.failures).items()),
            "platforms": dict(Counter(d.state.platform for d in self.devices)),
            "commands": dict(statuses),
            "request_types": dict(by_type),
            "exchanges": sum(d.exchanges for d in self.devices),
            "pushes": totals["pushes"],
            "requests": totals["requests"],
            "retries": totals["retries"],
            "http_errors": {k: v for k, v in totals.items() if k.startswith("http_") or k == "transport_errors"},
            "elapsed_seconds": round(time.monotonic() - self.started_at, 2),
        }

    @contextlib.contextmanager
    def _progress_bars(self):
        if not self.show_progress:
            yield
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=self.console,
                            transient=False)
        self._progress = progress
        self._bars["enroll"] = progress.add_task("enrolling", total=self.config.devices, info="")
        self._bars["run"] = progress.add_task("checking in", total=None, info="")
        with progress:
            yield
        self._progress = None

    def _advance(self, bar: str) -> None:
        if self._progress is not None:
            failed = f"[red]{len(self.failures)} failed[/red]" if self.failures else ""
            self._progress.update(self._bars[bar], advance=1, info=failed)

    def _update_running(self) -> None:
        if self._progress is None:
            return
        s = self.summary()
        info = (f"{s['still_enrolled']} enrolled · {s['exchanges']} check-ins · {s['pushes']} pushes · "
                + " ".join(f"{k} {v}" for k, v in sorted(s["commands"].items())))
        self._progress.update(self._bars["run"], completed=s["exchanges"], info=info)

    async def _refresh(self) -> None:
        while True:
            self._update_running()
            await asyncio.sleep(0.5)


def _reason(exc: Exception) -> str:
    if isinstance(exc, scep_client.EnrollmentFailed) and exc.status == 403:
        return "profile refused (403): enrollment code missing, used or expired"
    if isinstance(exc, scep_client.EnrollmentFailed) and exc.status == 404:
        return "profile refused (404): unknown tenant"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return str(exc) or type(exc).__name__


async def simulate(config: SwarmConfig, *, mock_apns: str | None = None, console=None, progress: bool = True,
                   verify: bool | str = True, announce=print) -> dict:
    """What `bramley simulate` runs: optionally a mock APNs on HOST:PORT (the server must push to it:
    BRAMLEY_APNS_URL=http://HOST:PORT), then the swarm. Returns the summary."""
    if mock_apns is None:
        async with Swarm(config, console=console, progress=progress, verify=verify) as swarm:
            return await swarm.run()
    import uvicorn

    from bramley.simulator.mock_apns import MockAPNs

    host, _, port = mock_apns.rpartition(":")
    mock = MockAPNs()
    server = uvicorn.Server(uvicorn.Config(mock.app, host=host or "127.0.0.1", port=int(port), lifespan="off",
                                           log_level="warning", access_log=False))
    serving = asyncio.ensure_future(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # raises the bind error
            raise RuntimeError(f"mock APNs could not listen on {mock_apns}")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()
    apns_url = f"http://{bound[0]}:{bound[1]}"
    announce(f"mock APNs listening on {apns_url} (start the server with BRAMLEY_APNS_URL={apns_url})")
    try:
        async with Swarm(config, apns=mock, console=console, progress=progress, verify=verify) as swarm:
            return await swarm.run()
    finally:
        server.should_exit = True
        await serving
