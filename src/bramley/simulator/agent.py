"""One simulated device on the wire (reference §11.2 steps 1-5): enrollment through the real endpoints,
signed check-ins, the connect loop, pushes or polling, and what lifecycle commands imply (erase drops the
enrollment without a CheckOut; restart and shutdown take the device offline).

Every request is signed with the device's SCEP identity (`Mdm-Signature`, scep_client.sign_body). The
httpx client may point at a live server or at the app in-process (`httpx.ASGITransport(app)`).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import plistlib
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from bramley.simulator import handlers, scep_client
from bramley.simulator.device import AGENT_APP, App, DeviceState, UserAccount

log = logging.getLogger("bramley.simulator")

CHECKIN_TYPE = "application/x-apple-aspen-mdm-checkin"
CONNECT_TYPE = "application/x-apple-aspen-mdm"
# After these are acknowledged the device goes away at once: the reply to the ack is not read.
LEAVING = {"EraseDevice", "RestartDevice", "ShutDownDevice"}


class Refused(Exception):
    """The server answered a check-in with something other than 200."""

    def __init__(self, message_type: str, status: int):
        super().__init__(f"{message_type} answered {status}")
        self.message_type, self.status = message_type, status


@dataclass
class Options:
    not_now_probability: float = 0.0
    not_now_retry: float | None = 2.0  # reconnect this long after a NotNow (None: only on the next wake-up)
    poll_interval: float | None = None  # check in on a timer as well as on pushes (None: pushes only)
    restart_seconds: float = 2.0
    shutdown_seconds: float | None = 10.0  # powered off this long (None: until power_on())
    lock_after_boot: bool = False  # iOS with a passcode says NotNow after a restart until "unlocked"
    boot_unlock_seconds: float = 1.0
    user_channel: bool = True  # macOS: TokenUpdate for the console user's channel
    retries: int = 4  # a 5xx or a dropped connection is retried (devices do), with jittered backoff
    retry_delay: float = 0.2
    agent: bool = True  # Macs install the Bramley agent once enrolled and run it (a check-in on every wake-up)


class SimulatedDevice:
    def __init__(self, state: DeviceState, client: httpx.AsyncClient, *, enroll_url: str, code: str | None = None,
                 apns=None, options: Options | None = None, rng: random.Random | None = None,
                 on_result: Callable[[str, str], None] | None = None, limiter: asyncio.Semaphore | None = None):
        self.limiter = limiter  # a swarm's bound on check-ins in flight
        self.key = None  # identity key to reuse (a swarm's key pool); None: a fresh RSA key per enrollment
        self.state, self.client, self.enroll_url, self.code, self.apns = state, client, enroll_url, code, apns
        self.options = options or Options()
        self.rng = rng or random.Random()
        self.ctx = handlers.Context(rng=self.rng, not_now_probability=self.options.not_now_probability)
        self.on_result = on_result
        self.identity: scep_client.Identity | None = None
        self.enrolled = False
        self.checkin_url = self.server_url = self.topic = ""
        self.token = os.urandom(32)
        self.push_magic = ""
        self.user_token = os.urandom(32)
        self.user_push_magic = ""
        self.stats: Counter = Counter()
        self.exchanges = 0
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return f"<SimulatedDevice {self.state.platform} {self.state.serial_number}>"

    @property
    def udid(self) -> str:
        return self.state.udid

    @property
    def console_user(self) -> UserAccount | None:
        return self.state.users[0] if self.state.is_mac and self.state.users else None

    # --- enrollment -------------------------------------------------------------------------------------

    async def enroll(self, *, code: str | None = None) -> None:
        """Profile → SCEP → Authenticate → TokenUpdate (+UnlockToken / SetBootstrapToken / user channel) →
        drain the queue (the server asks for inventory at once)."""
        await self.get_identity(code=code)
        await self.checkin(self.authenticate_message())
        await self.checkin(self.token_update_message())
        s = self.state
        if s.is_mac and s.bootstrap_token:
            await self.checkin({"MessageType": "SetBootstrapToken", "UDID": s.udid,
                                "BootstrapToken": s.bootstrap_token, "AwaitingConfiguration": False})
        self.enrolled = True
        if self.console_user and self.options.user_channel:
            await self.checkin(self.token_update_message(user=True))
        self.stats["enrolled"] += 1
        if self.options.agent and s.is_mac and not self.agent_installed:
            s.apps.append(App(*AGENT_APP, 48_000_000, managed=True))  # set up with the Mac, so inventory lists it
        await self.connect()
        if self.options.agent and s.is_mac:
            await self.agent_checkin()

    async def get_identity(self, *, code: str | None = None) -> scep_client.Identity:
        """Download the enrollment profile (one-time code) and run SCEP for the identity it describes."""
        if code is not None:
            self.code = code
        profile = await self._retrying(scep_client.fetch_profile, self.client, self.enroll_url, code=self.code)
        self.code = None  # one use
        cert, key, ca_cert = await self._retrying(
            scep_client.scep_enroll, self.client, scep_client.payload(profile, "com.apple.security.scep"),
            key=self.key)
        self.identity = scep_client.Identity(cert=cert, key=key, ca_cert=ca_cert, profile=profile)
        mdm = self.identity.mdm_payload
        self.checkin_url, self.server_url, self.topic = mdm["CheckInURL"], mdm["ServerURL"], mdm["Topic"]
        self.ctx.access_rights = int(mdm.get("AccessRights", 8191))
        s = self.state
        s.erased = False
        s.apply_profile(profile, managed=False)
        s.certificates = [(_common_name(cert), cert.public_bytes(serialization.Encoding.DER), True),
                          (_common_name(ca_cert), ca_cert.public_bytes(serialization.Encoding.DER), False)]
        if s.is_ios and s.unlock_token is None:
            s.unlock_token = os.urandom(48)
        self.push_magic = str(uuid.uuid4()).upper()
        self.user_push_magic = str(uuid.uuid4()).upper()
        return self.identity

    def authenticate_message(self) -> dict:
        s = self.state
        message = {"MessageType": "Authenticate", "Topic": self.topic, "UDID": s.udid, "DeviceName": s.device_name,
                   "Model": s.product_name, "ModelName": s.model_name, "ProductName": s.product_name,
                   "OSVersion": s.os_version, "BuildVersion": s.build_version, "SerialNumber": s.serial_number}
        if s.imei:
            message["IMEI"] = s.imei
        return message

    def ids(self, user: bool = False) -> dict:
        ids = {"UDID": self.state.udid}
        who = self.console_user
        if user and who is not None:
            ids.update({"UserID": who.guid, "UserShortName": who.short_name, "UserLongName": who.long_name})
        return ids

    def token_update_message(self, *, user: bool = False) -> dict:
        message = {"MessageType": "TokenUpdate", "Topic": self.topic, **self.ids(user),
                   "Token": self.user_token if user else self.token,
                   "PushMagic": self.user_push_magic if user else self.push_magic, "AwaitingConfiguration": False}
        if user:
            message["NotOnConsole"] = False
        elif self.state.unlock_token is not None:
            message["UnlockToken"] = self.state.unlock_token
        return message

    async def check_out(self) -> None:
        """The user removed the MDM profile (CheckOutWhenRemoved): say so, then stop talking."""
        await self.checkin({"MessageType": "CheckOut", "Topic": self.topic, "UDID": self.state.udid})
        mdm_id = (self.identity.profile.get("PayloadIdentifier") if self.identity else None)
        self.state.profiles = [p for p in self.state.profiles if p.identifier != mdm_id]
        self._unenroll()

    def _unenroll(self) -> None:
        self.enrolled = False
        self.identity = None

    # --- the Bramley agent (macOS) ----------------------------------------------------------------------

    @property
    def agent_installed(self) -> bool:
        return any(a.identifier == AGENT_APP[1] for a in self.state.apps)

    def _agent_url(self, what: str) -> str:
        return f"{self.checkin_url.replace('/mdm/t/', '/agent/t/', 1).rsplit('/', 1)[0]}/{what}"

    async def _agent_post(self, what: str, version: str) -> httpx.Response:
        """A report signed with the enrollment's identity, as MDM check-ins are."""
        body = json.dumps({"agent_version": version}).encode()
        headers = {"Content-Type": "application/json",
                   "Mdm-Signature": scep_client.sign_body(body, self.identity.cert, self.identity.key)}
        return await self._retrying(self.client.post, self._agent_url(what), content=body, headers=headers)

    async def agent_checkin(self) -> int:
        """The agent reports in (installed Macs only). Returns the HTTP status (0: nothing sent)."""
        if not (self.enrolled and self.agent_installed and self.identity) or self.state.powered_off:
            return 0
        version = next(a.version for a in self.state.apps if a.identifier == AGENT_APP[1])
        response = await self._agent_post("checkin", version)
        self.stats["agent_checkins" if response.status_code == 204 else f"agent_http_{response.status_code}"] += 1
        return response.status_code

    async def uninstall_agent(self, *, notify: bool = True) -> int:
        """Remove the agent; its uninstaller tells the server first (notify=False: it just disappears)."""
        if not self.agent_installed:
            return 0
        status = 0
        if notify and self.enrolled and self.identity:
            status = (await self._agent_post("uninstall", "")).status_code
        self.state.apps = [a for a in self.state.apps if a.identifier != AGENT_APP[1]]
        self.stats["agent_uninstalled"] += 1
        return status

    # --- the wire ---------------------------------------------------------------------------------------

    async def send(self, url: str, body: bytes, *, content_type: str, identity: scep_client.Identity | None = None,
                   signature: str | None = None) -> httpx.Response:
        """PUT a body signed with `identity` (default: our own). Tests pass others to forge requests."""
        ident = identity or self.identity
        headers = {"Content-Type": content_type}
        if signature is not None:
            headers["Mdm-Signature"] = signature
        elif ident is not None:
            headers["Mdm-Signature"] = scep_client.sign_body(body, ident.cert, ident.key)
        self.stats["requests"] += 1
        return await self.client.put(url, content=body, headers=headers)

    async def _retrying(self, fn, *args, **kwargs):
        """Call fn, again after a 5xx or a transport error (what devices do), up to `retries` more times."""
        for attempt in range(self.options.retries + 1):
            try:
                result = await fn(*args, **kwargs)
            except scep_client.EnrollmentFailed as exc:
                if exc.status is None or exc.status < 500 or attempt == self.options.retries:
                    raise
            except httpx.TransportError:
                if attempt == self.options.retries:
                    raise
            else:
                if not isinstance(result, httpx.Response) or result.status_code < 500 \
                        or attempt == self.options.retries:
                    return result
            self.stats["retries"] += 1
            await asyncio.sleep(self.options.retry_delay * 2 ** attempt * self.rng.uniform(0.5, 1.5))
        raise AssertionError("unreachable")

    async def checkin(self, message: dict) -> httpx.Response:
        response = await self._retrying(self.send, self.checkin_url, plistlib.dumps(message),
                                        content_type=CHECKIN_TYPE)
        if response.status_code != 200:
            self.stats["refused"] += 1
            raise Refused(message.get("MessageType", "?"), response.status_code)
        return response

    def _gone(self, response: httpx.Response) -> bool:
        """403 com.apple.unrecognized.device (or a 401): the server wants us gone; the device unenrolls."""
        if response.status_code == 401 or (response.status_code == 403 and b"unrecognized" in response.content):
            self._unenroll()
            return True
        return False

    # --- the connect loop -------------------------------------------------------------------------------

    async def connect(self, *, user: bool = False) -> int:
        """One exchange: Idle, then answer each command until the server's body is empty. Returns the number
        of commands answered."""
        if not self.enrolled or self.state.powered_off:
            return 0
        handled, not_now = 0, False
        ctx = self.ctx if not user else handlers.Context(rng=self.rng, access_rights=self.ctx.access_rights,
                                                         user_channel=True)
        async with self._lock:
            report = {**self.ids(user), "Status": "Idle"}
            leaving = ""
            while True:
                try:
                    response = await self._retrying(self.send, self.server_url, plistlib.dumps(report),
                                                    content_type=CONNECT_TYPE)
                except httpx.HTTPError as exc:
                    self.stats["transport_errors"] += 1
                    log.debug("%s: connect failed: %s", self, exc)
                    break
                if response.status_code != 200:
                    self.stats[f"http_{response.status_code}"] += 1
                    self._gone(response)
                    break
                if leaving or not response.content:
                    break  # after erase/restart/shutdown the reply is never read (a command in it is re-sent)
                try:
                    command = plistlib.loads(response.content)
                except Exception:
                    self.stats["bad_commands"] += 1
                    break
                result = handlers.respond(self.state, command, ctx)
                request_type = str((command.get("Command") or {}).get("RequestType", ""))
                status = result["Status"]
                handled += 1
                self.stats[status] += 1
                if self.on_result:
                    self.on_result(request_type, status)
                not_now = not_now or status == "NotNow"
                report = {**self.ids(user), "CommandUUID": str(command.get("CommandUUID", "")), **result}
                if status == "Acknowledged" and request_type in LEAVING:
                    leaving = request_type
            self.exchanges += 1
        if leaving:
            self._leave(leaving)
        elif not_now and self.options.not_now_retry is not None:
            self._spawn(self._later(self.options.not_now_retry, self.connect))
        async with self._changed:
            self._changed.notify_all()
        return handled

    def _leave(self, request_type: str) -> None:
        if request_type == "EraseDevice":
            self.state.wipe(self.rng)
            self._unenroll()
            self.token = os.urandom(32)  # a wiped device registers with APNs afresh
        elif request_type == "RestartDevice":
            self.state.powered_off = True
            self._spawn(self._boot(self.options.restart_seconds))
        elif request_type == "ShutDownDevice":
            self.state.powered_off = True
            if self.options.shutdown_seconds is not None:
                self._spawn(self._boot(self.options.shutdown_seconds))

    async def power_on(self) -> None:
        """Press the power button: boot, then check in (devices contact the server after booting)."""
        if self.state.powered_off:
            await self._boot(0)

    async def _boot(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self.state.powered_off:
            return
        self.state.powered_off = False
        if self.options.lock_after_boot and self.state.is_ios and self.state.passcode_present:
            self.state.locked_after_boot = True
            self._spawn(self._unlock_after(self.options.boot_unlock_seconds))
        await self.connect()
        self.stats["boots"] += 1
        async with self._changed:
            self._changed.notify_all()

    async def _unlock_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self.state.locked_after_boot = False
        await self.connect()  # conditions changed: the device reconnects by itself

    async def _later(self, delay: float, fn) -> None:
        await asyncio.sleep(delay)
        await fn()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def until(self, predicate: Callable[["SimulatedDevice"], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate(self)` holds (re-checked after every exchange)."""
        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self))
        await asyncio.wait_for(_wait(), timeout)

    # --- staying in touch -------------------------------------------------------------------------------

    async def _wake(self, stop: asyncio.Event) -> str | None:
        """Wait for our push (or the poll timer). "push", "poll", or None when stopping."""
        interval = self.options.poll_interval
        stopping = asyncio.ensure_future(stop.wait())
        if self.apns is not None:
            waiting = asyncio.ensure_future(self.apns.next_push(self.token.hex(), timeout=interval))
        else:
            waiting = asyncio.ensure_future(asyncio.sleep(interval if interval is not None else 3600 * 24))
        try:
            await asyncio.wait({stopping, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stopping, waiting):
                if not task.done():
                    task.cancel()
        if stop.is_set():
            return None
        if self.apns is None:
            return "poll"
        push = waiting.result() if not waiting.cancelled() else None
        if push is None:
            return "poll" if interval is not None else None
        self.stats["pushes"] += 1
        if push.push_magic != self.push_magic:
            self.stats["foreign_pushes"] += 1
            return None  # not for our current enrollment: a device ignores it
        return "push"

    async def run(self, stop: asyncio.Event, *, rounds: int | None = None) -> None:
        """Check in on every push (or poll) until `stop`, `rounds` wake-ups, or the enrollment ends."""
        done = 0
        if self.options.poll_interval:
            # Spread a swarm's polls instead of waking everyone at once.
            await _sleep_or_stop(stop, self.rng.uniform(0, self.options.poll_interval))
        while not stop.is_set() and self.enrolled and (rounds is None or done < rounds):
            woke = await self._wake(stop)
            if woke is None:
                continue
            if self.state.powered_off:
                continue  # powered off: it checks in when it boots, whatever was pushed meanwhile
            async with self.limiter or contextlib.nullcontext():
                await self.connect()
                if self.apns is not None and self.console_user and self.apns.take(self.user_token.hex()):
                    await self.connect(user=True)
                if self.options.agent:
                    with contextlib.suppress(httpx.HTTPError):
                        await self.agent_checkin()
            done += 1

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


def _common_name(cert) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""
