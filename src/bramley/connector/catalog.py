"""The Okta Workflows Kandji connector's cards: their names, where each lives here (SDK method, CLI command) and
the token permissions each needs; List Devices' inputs and result sets."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bramley.connector.errors import InvalidInput


@dataclass(frozen=True)
class Card:
    """A card of the Okta Workflows Kandji connector and where it lives here."""

    name: str
    method: str  # Connector method
    command: str  # `bramley connect …` command
    routes: tuple[str, ...]  # the permissions it needs ("METHOD /path"), see errors.PERMISSIONS


def _action(name: str) -> tuple[str]:
    return (f"POST /devices/{{device_id}}/action/{name}",)


_LOST = ("GET /devices/{device_id}",)
CARDS: tuple[Card, ...] = (
    Card("Clear Passcode", "clear_passcode", "device clear-passcode", _action("clearpasscode")),
    Card("Create Blueprint", "create_blueprint", "blueprints create", ("POST /blueprints",)),
    Card("Create Note", "create_note", "device notes add", ("POST /devices/{device_id}/notes",)),
    Card("Custom API Action", "custom_api_action", "custom", ()),
    Card("Erase Device", "erase_device", "device erase", _action("erase") + ("GET /devices/{device_id}",)),
    Card("Get ADE Integration", "get_ade_integration", "ade integration",
         ("GET /integrations/apple/ade/{ade_token_id}",)),
    Card("Get Activation Lock Bypass Codes", "get_activation_lock_bypass_codes", "device secrets bypass-codes",
         ("GET /devices/{device_id}/secrets/bypasscode",)),
    Card("Get Blueprint", "get_blueprint", "blueprints get", ("GET /blueprints/{blueprint_id}", "GET /blueprints")),
    Card("Get Device", "get_device", "device get", ("GET /devices/{device_id}", "GET /devices/{device_id}/details")),
    Card("Get FileVault Recovery Key", "get_filevault_recovery_key", "device secrets filevault-key",
         ("GET /devices/{device_id}/secrets/filevaultkey",)),
    Card("Get (Mac) Unlock PIN", "get_unlock_pin", "device secrets unlock-pin",
         ("GET /devices/{device_id}/secrets/unlockpin",)),
    Card("List ADE Integrations", "list_ade_integrations", "ade integrations", ("GET /integrations/apple/ade",)),
    Card("List ADE Devices", "list_ade_devices", "ade devices",
         ("GET /integrations/apple/ade/{ade_token_id}/devices",)),
    Card("List Blueprints", "list_blueprints", "blueprints list", ("GET /blueprints",)),
    Card("List Device Apps", "list_device_apps", "device apps", ("GET /devices/{device_id}/apps",)),
    Card("List Device Library Items", "list_device_library_items", "device library-items",
         ("GET /devices/{device_id}/library-items",)),
    Card("List Device Notes", "list_device_notes", "device notes list", ("GET /devices/{device_id}/notes",)),
    Card("List Devices", "list_devices", "devices list", ("GET /devices",)),
    Card("Lock Device", "lock_device", "device lock", _action("lock")),
    Card("Manage Apple Remote Desktop", "manage_apple_remote_desktop", "device remote-desktop",
         _action("remotedesktop")),
    Card("Play Lost Mode Sound", "play_lost_mode_sound", "device lost-mode sound",
         _LOST + _action("playlostmodesound")),
    Card("Reinstall Kandji Agent", "reinstall_kandji_agent", "device reinstall-agent", _action("reinstallagent")),
    Card("Restart Device", "restart_device", "device restart", _action("restart")),
    Card("Send MDM Blank Push", "send_mdm_blank_push", "device blank-push", _action("blankpush")),
    Card("Set Device Name", "set_device_name", "device set-name", _action("setname")),
    Card("Shutdown Device", "shutdown_device", "device shutdown", _action("shutdown")),
    Card("Turn Off Lost Mode", "turn_off_lost_mode", "device lost-mode off", _LOST + _action("disablelostmode")),
    Card("Turn On Lost Mode", "turn_on_lost_mode", "device lost-mode on", _LOST + _action("enablelostmode")),
    Card("Unlock (Local) User Account", "unlock_user_account", "device unlock-account", _action("unlockaccount")),
    Card("Update Device", "update_device", "device update", ("PATCH /devices/{device_id}",)),
    Card("Update Inventory", "update_inventory", "device update-inventory", _action("updateinventory")),
    Card("Update Lost Mode Location", "update_lost_mode_location", "device lost-mode locate",
         _LOST + _action("updatelocation")),
)
CARDS_BY_NAME = {c.name: c for c in CARDS}


# --- List Devices filters --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filter:
    card: str  # the card's input name
    wire: str  # the query parameter


# The card's 13 inputs, by Python name. "User Email" matches part of the address, "User Email - Exact" all of it.
DEVICE_FILTERS: dict[str, Filter] = {
    "user_email": Filter("User Email", "user_email"),
    "user_email_exact": Filter("User Email - Exact", "user_email_exact"),
    "user_name": Filter("User Name", "user_name"),
    "kandji_user_id": Filter("Kandji User ID", "user_id"),
    "device_id": Filter("Device ID", "device_id"),
    "device_name": Filter("Device Name", "device_name"),
    "serial_number": Filter("Serial Number", "serial_number"),
    "mac_address": Filter("MAC Address", "mac_address"),
    "asset_tag": Filter("Asset Tag", "asset_tag"),
    "platform": Filter("Platform", "platform"),
    "model": Filter("Model", "model"),
    "os_version": Filter("OS Version", "os_version"),
    "blueprint_id": Filter("Blueprint ID", "blueprint_id"),
}

ResultSet = Literal["first", "first-200", "stream"]
RESULT_SETS = {"first": "First Matching Record", "first-200": "First 200 Matching Records",
               "stream": "Stream Matching Records"}


def device_query(filters: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(filters) - set(DEVICE_FILTERS))
    if unknown:
        raise InvalidInput("List Devices", f"unknown filter(s) {', '.join(unknown)}; the card has "
                                           f"{', '.join(DEVICE_FILTERS)}")
    query: dict[str, Any] = {}
    for name, value in filters.items():
        if value is None or value == "":
            continue
        query[DEVICE_FILTERS[name].wire] = str(value) if not isinstance(value, str) else value
    return query
