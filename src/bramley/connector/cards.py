"""One call per Okta Workflows Kandji card, with the card's inputs and outputs (`models.py`).

    from bramley.connector import connect
    with connect("acme.api.kandji.io", token) as kandji:          # validates domain and token
        pin = kandji.lock_device("6f1c…").pin                     # Lock Device → PIN, Status Code
        for device in kandji.list_devices("stream", platform="Mac"):   # Stream Matching Records
            ...

A card whose call the API refuses raises an ApiError naming the card, the device and the status (a 403 names the
missing permission too): "Clear Passcode (device 6f1c…): 400 Command is not allowed for current device".
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import orjson
from pydantic import TypeAdapter

from bramley.connector import models as m
from bramley.connector.catalog import RESULT_SETS, ResultSet, device_query
from bramley.connector.client import Connection, _json
from bramley.connector.errors import ApiError, InvalidInput, NotFound, message_of
from bramley.connector.paging import DEVICE_PAGE, Helper, Stream, fetch_ahead, next_page_query

_DEVICES = TypeAdapter(list[m.Device])
_NOTES = TypeAdapter(list[m.Note])


class Connector:
    """The cards, over one Connection."""

    def __init__(self, connection: Connection):
        self.connection = connection

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc) -> None:
        self.connection.close()

    def close(self) -> None:
        self.connection.close()

    def __repr__(self) -> str:
        return f"Connector({self.connection!r})"

    # --- plumbing -------------------------------------------------------------------------------------------

    def _get(self, path: str, card: str, device_id: str | None = None, **params) -> Any:
        return self.connection.get_json(path, params=params or None, card=card, device_id=device_id)

    def _device_path(self, card: str, device_id: str, suffix: str = "") -> str:
        return f"/devices/{_path_id(card, 'Device ID', device_id)}{suffix}"

    def _action(self, card: str, device_id: str, name: str, body: dict | None = None):
        path = self._device_path(card, device_id, f"/action/{name}")
        response = self.connection.request("POST", path, json=body or {}, card=card, device_id=device_id)
        return response, _json(response)

    def _status(self, card: str, device_id: str, name: str, body: dict | None = None) -> m.StatusOutput:
        response, _ = self._action(card, device_id, name, body)
        return m.StatusOutput(status_code=response.status_code)

    # --- devices --------------------------------------------------------------------------------------------

    def list_devices(self, result_set: ResultSet = "first-200", *, helper: Helper | None = None,
                     context: Any = None, **filters) -> m.Device | None | list[m.Device] | Stream:
        """List Devices. `first` → the first matching Device (None if none), `first-200` → up to 200 Devices,
        `stream` → a lazy Stream over every match, yielding DeviceRecords (Device's fields, read from the JSON as
        it arrived: a fleet streams at JSON speed) and calling helper(device, context) for each.
        Filters: DEVICE_FILTERS."""
        card = "List Devices"
        query = device_query(filters)
        if result_set == "first":
            page = self._device_page(query, 1, 0)
            return page[0] if page else None
        if result_set == "first-200":
            return self._device_page(query, 200, 0)
        if result_set == "stream":
            stream = Stream(lambda: self._device_pages(query, stream), helper, context)
            return stream
        raise InvalidInput(card, f"Result Set must be one of {', '.join(RESULT_SETS)}, not {result_set!r}")

    def stream_devices(self, *, helper: Helper | None = None, context: Any = None, **filters) -> Stream:
        """List Devices with Stream Matching Records."""
        return self.list_devices("stream", helper=helper, context=context, **filters)

    def _device_page(self, query: dict, limit: int, offset: int) -> list[m.Device]:
        response = self.connection.request("GET", "/devices", params={**query, "limit": limit, "offset": offset},
                                           card="List Devices")
        return _DEVICES.validate_json(response.content or b"[]")

    def _device_pages(self, query: dict, stream: Stream) -> Iterator[list[m.DeviceRecord]]:
        """Pages of the device list. The offset steps by what arrived, until an empty page: a server that hands
        out a short page while more remain loses nothing (reference §2.4). The next page is requested as soon as
        this one's bytes are in, guessing it was full, so the server works while this page is parsed and used;
        a short page corrects the guess."""
        def fetch(offset: int) -> bytes:
            response = self.connection.request("GET", "/devices", card="List Devices",
                                               params={**query, "limit": DEVICE_PAGE, "offset": offset})
            if stream.total is None and response.headers.get("X-Total-Count", "").isdigit():
                stream.total = int(response.headers["X-Total-Count"])
            return response.content

        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bramley-connector-page")
        try:
            offset, previous_first = 0, None
            future = executor.submit(fetch, offset)
            while future is not None:
                content = future.result()
                guess = offset + DEVICE_PAGE
                future = executor.submit(fetch, guess) if content.strip() not in (b"", b"[]") else None
                try:
                    rows = orjson.loads(content or b"[]")
                except orjson.JSONDecodeError:
                    rows = None
                if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
                    raise ApiError(card="List Devices", device_id=None, status_code=200, method="GET",
                                   path="/devices", body="the device list is not a JSON array of devices")
                page = [m.DeviceRecord(row) for row in rows]
                if not page:
                    return
                if offset and page[0].device_id == previous_first:
                    raise ApiError(card="List Devices", device_id=None, status_code=200, method="GET",
                                   path="/devices",
                                   body="the server ignored `offset` (the same page came back twice); stopped")
                previous_first = page[0].device_id
                offset += len(page)
                if offset != guess:  # a short page: ask for what follows what arrived
                    future = executor.submit(fetch, offset)
                yield page
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    def get_device(self, device_id: str, details: Literal["basic", "full"] = "basic"
                   ) -> m.Device | m.DeviceDetails:
        """Get Device: Basic details (the device record) or Full details (every section)."""
        card = "Get Device"
        details = str(details).lower()
        if details == "basic":
            return m.Device.model_validate(self._get(self._device_path(card, device_id), card, device_id))
        if details == "full":
            body = self._get(self._device_path(card, device_id, "/details"), card, device_id)
            return m.DeviceDetails.model_validate(body)
        raise InvalidInput(card, f"Details must be basic or full, not {details!r}")

    def update_device(self, device_id: str, *, blueprint_id: str | None = None,
                      kandji_user_id: str | int | None = None, asset_tag: str | None = None) -> m.UpdatedDevice:
        """Update Device: assign a Blueprint, a user and/or an asset tag (at least one of the three)."""
        card = "Update Device"
        path = self._device_path(card, device_id)
        body: dict[str, Any] = {}
        if blueprint_id not in (None, ""):
            body["blueprint_id"] = blueprint_id
        if kandji_user_id not in (None, ""):
            body["user"] = kandji_user_id
        if asset_tag is not None:
            body["asset_tag"] = asset_tag
        if not body:
            raise InvalidInput(card, "give at least one of Blueprint ID, Kandji User ID or Asset tag")
        response = self.connection.request("PATCH", path, json=body, card=card, device_id=device_id)
        return m.UpdatedDevice.model_validate({**(_json(response) or {}), "status": response.status_code})

    # --- device actions -------------------------------------------------------------------------------------

    def clear_passcode(self, device_id: str) -> m.StatusOutput:
        """Clear Passcode (iPhone, iPad; any other device answers 400, raised as ApiError)."""
        return self._status("Clear Passcode", device_id, "clearpasscode")

    def erase_device(self, device_id: str, *, pin: str | int | None = None, preserve_data_plan: bool | None = None,
                     disallow_proximity_setup: bool | None = None) -> m.PinOutput:
        """Erase Device. A Mac needs `pin`, exactly 6 digits (the unlock PIN after the erase); iPhone and iPad
        take PreserveDataPlan and DisallowProximitySetup. Without a PIN the device is read first, so a Mac is
        refused before anything is sent, as the card refuses it."""
        card = "Erase Device"
        body: dict[str, Any] = {}
        if pin is not None and pin != "":
            pin = _six_digits(card, pin)
            body["PIN"] = pin
        else:
            pin = None
            device = self._get(self._device_path(card, device_id), card, device_id) or {}
            if device.get("platform") == "Mac":
                raise InvalidInput(card, f"device {device_id} is a Mac: give its PIN, exactly 6 digits")
        if preserve_data_plan is not None:
            body["PreserveDataPlan"] = bool(preserve_data_plan)
        if disallow_proximity_setup is not None:
            body["DisallowProximitySetup"] = bool(disallow_proximity_setup)
        response, _ = self._action(card, device_id, "erase", body)
        return m.PinOutput(status_code=response.status_code, pin=pin)

    def lock_device(self, device_id: str, *, message: str | None = None, phone_number: str | None = None
                    ) -> m.PinOutput:
        """Lock Device. A Mac's lock returns its 6-digit PIN."""
        body = {k: v for k, v in (("Message", message), ("PhoneNumber", phone_number)) if v}
        response, reply = self._action("Lock Device", device_id, "lock", body)
        pin = reply.get("PIN") if isinstance(reply, dict) else None
        return m.PinOutput(status_code=response.status_code, pin=None if pin is None else str(pin))

    def manage_apple_remote_desktop(self, device_id: str, manage_remote_desktop: bool | str) -> m.RemoteDesktopOutput:
        """Manage Apple Remote Desktop: turn Remote Management on (Observe and Control for all users) or off."""
        card = "Manage Apple Remote Desktop"
        enable = _on_off(card, manage_remote_desktop)
        response, reply = self._action(card, device_id, "remotedesktop", {"EnableRemoteDesktop": enable})
        return m.RemoteDesktopOutput(status_code=response.status_code, body=_text(reply))

    def reinstall_kandji_agent(self, device_id: str) -> m.StatusOutput:
        return self._status("Reinstall Kandji Agent", device_id, "reinstallagent")

    def restart_device(self, device_id: str, *, rebuild_kernel_cache: bool = False, notify_user: bool = False
                       ) -> m.StatusOutput:
        return self._status("Restart Device", device_id, "restart",
                            {"RebuildKernelCache": rebuild_kernel_cache, "NotifyUser": notify_user})

    def send_mdm_blank_push(self, device_id: str) -> m.StatusOutput:
        return self._status("Send MDM Blank Push", device_id, "blankpush")

    def set_device_name(self, device_id: str, device_name: str) -> m.StatusOutput:
        card = "Set Device Name"
        return self._status(card, device_id, "setname", {"DeviceName": _required(card, "Device Name", device_name)})

    def shutdown_device(self, device_id: str) -> m.StatusOutput:
        return self._status("Shutdown Device", device_id, "shutdown")

    def unlock_user_account(self, device_id: str, username: str) -> m.StatusOutput:
        card = "Unlock (Local) User Account"
        return self._status(card, device_id, "unlockaccount", {"UserName": _required(card, "Username", username)})

    def update_inventory(self, device_id: str) -> m.StatusOutput:
        return self._status("Update Inventory", device_id, "updateinventory")

    def turn_on_lost_mode(self, device_id: str, *, lock_message: str | None = None, phone_number: str | None = None,
                          footnote: str | None = None) -> m.LostModeOutput:
        """Turn On Lost Mode (supervised iPhone or iPad). Needs a Lock Message or a Phone Number."""
        card = "Turn On Lost Mode"
        if not lock_message and not phone_number:
            raise InvalidInput(card, "give at least a Lock Message or a Phone Number")
        body = {k: v for k, v in (("Message", lock_message), ("PhoneNumber", phone_number), ("Footnote", footnote))
                if v}
        return self._lost_mode(card, device_id, "enablelostmode", body, message=lock_message or phone_number)

    def turn_off_lost_mode(self, device_id: str) -> m.LostModeOutput:
        return self._lost_mode("Turn Off Lost Mode", device_id, "disablelostmode")

    def play_lost_mode_sound(self, device_id: str) -> m.LostModeOutput:
        """Play Lost Mode Sound (an iPhone or iPad in Lost Mode; plays for up to two minutes)."""
        return self._lost_mode("Play Lost Mode Sound", device_id, "playlostmodesound")

    def update_lost_mode_location(self, device_id: str) -> m.LostModeOutput:
        return self._lost_mode("Update Lost Mode Location", device_id, "updatelocation")

    def _lost_mode(self, card: str, device_id: str, name: str, body: dict | None = None,
                   message: str | None = None) -> m.LostModeOutput:
        # The card's outputs describe the device; it is read first, so a token that cannot read it changes nothing.
        device = m.Device.model_validate(self._get(self._device_path(card, device_id), card, device_id))
        response, reply = self._action(card, device_id, name, body)
        return m.LostModeOutput(device_id=device.device_id, device_name=device.device_name,
                                serial_number=device.serial_number, platform=device.platform,
                                user_email=device.user.email if device.user else None,
                                status_code=response.status_code, message=_text(reply) or message)

    # --- notes, apps, library items, secrets ----------------------------------------------------------------

    def create_note(self, device_id: str, note: str) -> m.NoteOutput:
        card = "Create Note"
        path = self._device_path(card, device_id, "/notes")
        response = self.connection.request("POST", path, json={"content": _required(card, "Note", note)},
                                           card=card, device_id=device_id)
        return m.NoteOutput(status_code=response.status_code, note=m.Note.model_validate(_json(response) or {}))

    def list_device_notes(self, device_id: str) -> m.NotesOutput:
        card = "List Device Notes"
        body = self._get(self._device_path(card, device_id, "/notes"), card, device_id)
        if isinstance(body, dict):  # tolerate an envelope
            body = body.get("notes", body.get("results", []))
        return m.NotesOutput(notes=_NOTES.validate_python(body or []))

    def list_device_apps(self, device_id: str) -> m.AppsOutput:
        card = "List Device Apps"
        body = self._get(self._device_path(card, device_id, "/apps"), card, device_id) or {}
        return m.AppsOutput(apps=body.get("apps", []))

    def list_device_library_items(self, device_id: str) -> m.LibraryItemsOutput:
        card = "List Device Library Items"
        body = self._get(self._device_path(card, device_id, "/library-items"), card, device_id) or {}
        return m.LibraryItemsOutput(items_list=body.get("library_items", []))

    def get_activation_lock_bypass_codes(self, device_id: str) -> m.BypassCodes:
        card = "Get Activation Lock Bypass Codes"
        return m.BypassCodes.model_validate(
            self._get(self._device_path(card, device_id, "/secrets/bypasscode"), card, device_id) or {})

    def get_filevault_recovery_key(self, device_id: str) -> m.FileVaultKey:
        card = "Get FileVault Recovery Key"
        return m.FileVaultKey.model_validate(
            self._get(self._device_path(card, device_id, "/secrets/filevaultkey"), card, device_id) or {})

    def get_unlock_pin(self, device_id: str) -> m.UnlockPin:
        card = "Get (Mac) Unlock PIN"
        return m.UnlockPin.model_validate(
            self._get(self._device_path(card, device_id, "/secrets/unlockpin"), card, device_id) or {})

    # --- blueprints -----------------------------------------------------------------------------------------

    def get_blueprint(self, blueprint_id: str | None = None, blueprint_name: str | None = None) -> m.Blueprint:
        """Get Blueprint by ID, by exact name, or both (then the name must match the ID's Blueprint)."""
        card = "Get Blueprint"
        if not blueprint_id and not blueprint_name:
            raise InvalidInput(card, "give a Blueprint ID or a Blueprint Name")
        if blueprint_id:
            blueprint_id = _path_id(card, "Blueprint ID", blueprint_id)
            response = self.connection.request("GET", f"/blueprints/{blueprint_id}", card=card)
            found = m.Blueprint.model_validate({**(_json(response) or {}), "status_code": response.status_code})
            if blueprint_name and found.name != blueprint_name:
                raise NotFound(card=card, device_id=None, status_code=404, method="GET",
                               path=f"/blueprints/{blueprint_id}",
                               body={"detail": f"Blueprint {blueprint_id} is named {found.name!r}, "
                                               f"not {blueprint_name!r}."})
            return found
        for record in self._blueprint_pages(card, {"name": blueprint_name}):
            if record.get("name") == blueprint_name:
                return m.Blueprint.model_validate({**record, "status_code": 200})
        raise NotFound(card=card, device_id=None, status_code=404, method="GET", path="/blueprints",
                       body={"detail": f"No Blueprint is named {blueprint_name!r}."})

    def list_blueprints(self, result_set: Literal["first-200", "stream"] = "first-200", *,
                        helper: Helper | None = None, context: Any = None) -> m.ListResult | Stream:
        """List Blueprints: First 200 Records (Results) or Stream All Records (a Stream; run() → Record Count)."""
        card = "List Blueprints"
        if result_set == "first-200":
            body = self._get("/blueprints", card, limit=200, offset=0) or {}
            return m.ListResult(results=body.get("results", [])[:200])
        if result_set == "stream":
            stream = Stream(lambda: self._page_lists(self._blueprint_pages(card, {}, stream)), helper, context)
            return stream
        raise InvalidInput(card, f"Result Set must be first-200 or stream, not {result_set!r}")

    def _blueprint_pages(self, card: str, query: dict, stream: Stream | None = None) -> Iterator[dict]:
        def fetch(offset: int):
            body = self._get("/blueprints", card, **query, limit=DEVICE_PAGE, offset=offset) or {}
            if stream is not None and isinstance(body.get("count"), int):
                stream.total = body["count"]
            return offset, body

        def next_offset(result) -> int | None:
            offset, body = result
            results = body.get("results") or []
            return offset + len(results) if results and body.get("next") else None

        for _, body in fetch_ahead(fetch, 0, next_offset):
            yield from body.get("results") or []

    @staticmethod
    def _page_lists(records: Iterator[Any], size: int = DEVICE_PAGE) -> Iterator[list]:
        batch: list = []
        for record in records:
            batch.append(record)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def create_blueprint(self, name: str, enrollment_code_is_active: bool, *, enrollment_code: str | None = None,
                         color: str | None = None, description: str | None = None, icon: str | None = None
                         ) -> m.CreatedBlueprint:
        """Create Blueprint (the name must be unique; without an enrollment code the API makes one)."""
        card = "Create Blueprint"
        # Form fields with dotted keys, as Iru documents the create call (reference §2.2).
        form = {"name": _required(card, "Name", name),
                "enrollment_code.is_active": "true" if enrollment_code_is_active else "false"}
        for key, value in (("enrollment_code.code", enrollment_code), ("color", color),
                           ("description", description), ("icon", icon)):
            if value not in (None, ""):
                form[key] = value
        response = self.connection.request("POST", "/blueprints", data=form, card=card)
        return m.CreatedBlueprint(status_code=response.status_code, blueprint=_json(response) or {})

    # --- Automated Device Enrollment --------------------------------------------------------------------------

    def get_ade_integration(self, ade_token_id: str) -> m.AdeIntegration:
        card = "Get ADE Integration"
        ade_token_id = _path_id(card, "ADE Token ID", ade_token_id)
        return m.AdeIntegration.model_validate(self._get(f"/integrations/apple/ade/{ade_token_id}", card) or {})

    def list_ade_integrations(self, result_set: Literal["first-200", "stream"] = "first-200", *,
                              helper: Helper | None = None, context: Any = None) -> m.ListResult | Stream:
        card = "List ADE Integrations"
        return self._paged(card, "/integrations/apple/ade", result_set, "first-200", 200, helper, context)

    def list_ade_devices(self, ade_token_id: str, result_set: Literal["first-300", "stream"] = "first-300", *,
                         helper: Helper | None = None, context: Any = None) -> m.ListResult | Stream:
        """List ADE Devices: a device whose mdm_device is null is still awaiting enrollment."""
        card = "List ADE Devices"
        ade_token_id = _path_id(card, "ADE Token ID", ade_token_id)
        return self._paged(card, f"/integrations/apple/ade/{ade_token_id}/devices", result_set, "first-300", 300,
                           helper, context)

    def _paged(self, card: str, path: str, result_set: str, first: str, size: int, helper, context):
        """Page-numbered lists (reference §2.4 style C): follow `next` (its query, on our host) to the end."""
        stream: Stream | None = None

        def fetch(query: dict):
            body = self._get(path, card, **query) or {}
            if stream is not None and isinstance(body.get("count"), int):
                stream.total = body["count"]
            return body

        def next_query(body: dict) -> dict | None:
            return next_page_query(body.get("next")) if body.get("results") else None

        if result_set == first:
            collected: list = []
            query: dict | None = {"page": 1}
            while query is not None and len(collected) < size:
                body = fetch(query)
                collected += body.get("results") or []
                query = next_query(body)
            return m.ListResult(results=collected[:size])
        if result_set == "stream":
            def pages() -> Iterator[list]:
                for body in fetch_ahead(fetch, {"page": 1}, next_query):
                    yield body.get("results") or []
            stream = Stream(pages, helper, context)
            return stream
        raise InvalidInput(card, f"Result Set must be {first} or stream, not {result_set!r}")

    # --- Custom API Action --------------------------------------------------------------------------------------

    def custom_api_action(self, request_type: str, relative_url: str, *, query: dict[str, Any] | None = None,
                          headers: dict[str, str] | None = None, body: Any = None) -> m.CustomResult:
        """Custom API Action: any call under /api/v1. Status Code, Headers and Body come back whatever the status
        (the connector sets Authorization and Content-Type itself; those in `headers` are ignored)."""
        card = "Custom API Action"
        method = (request_type or "").upper()
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise InvalidInput(card, f"Request Type must be GET, POST, PUT, PATCH or DELETE, not {request_type!r}")
        relative_url = _required(card, "Relative URL", relative_url)
        extra = {k: str(v) for k, v in (headers or {}).items()
                 if k.lower() not in ("authorization", "content-type", "host", "content-length")}
        response = self.connection.request(method, relative_url, params=query, headers=extra, json=body, card=card,
                                           raise_for_status=False)
        return m.CustomResult(status_code=response.status_code, headers=dict(response.headers), body=_json(response))


# --- input rules -------------------------------------------------------------------------------------------------

def _required(card: str, field: str, value):
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(card, f"{field} is required")
    return value.strip() if isinstance(value, str) else value


def _path_id(card: str, field: str, value) -> str:
    value = str(_required(card, field, value))
    if not re.fullmatch(r"[A-Za-z0-9._~-]+", value) or set(value) == {"."}:
        raise InvalidInput(card, f"{field} {value!r} is not an id")
    return value


def _six_digits(card: str, pin) -> str:
    if isinstance(pin, bool):
        raise InvalidInput(card, "PIN must be exactly 6 digits")
    if isinstance(pin, int):
        if not 0 <= pin <= 999_999:
            raise InvalidInput(card, "PIN must be exactly 6 digits")
        return f"{pin:06d}"
    text = str(pin).strip()
    if not re.fullmatch(r"\d{6}", text):
        raise InvalidInput(card, "PIN must be exactly 6 digits")
    return text


def _on_off(card: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("on", "enable", "enabled", "true", "yes", "1", "turn on"):
        return True
    if text in ("off", "disable", "disabled", "false", "no", "0", "turn off"):
        return False
    raise InvalidInput(card, f"Manage Remote Desktop must be on or off, not {value!r}")


def _text(reply) -> str | None:
    if reply in (None, "", {}, []):
        return None
    return message_of(reply) or None
