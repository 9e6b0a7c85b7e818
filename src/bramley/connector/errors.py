"""What can go wrong, said the way an admin needs it: which card, which device, which status, and (on 403)
which token permission is missing."""
from __future__ import annotations

import re
from dataclasses import dataclass

API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class Permission:
    """One token permission: an (HTTP method, path template) pair, as Iru grants them (reference §5)."""

    method: str
    path: str  # relative to /api/v1, e.g. /devices/{device_id}
    label: str  # where its checkbox sits in the admin UI

    def __str__(self) -> str:
        return f"{self.method} {API_PREFIX}{self.path} ({self.label})"


_INFO, _ACT, _SECRETS, _NOTES = ("Devices › Device Information", "Devices › Device Actions",
                                 "Devices › Device Secrets", "Devices › Device Notes")
_BLUEPRINTS, _ADE = "Blueprints › Blueprints Management", "Integrations › Automated Device Enrollment"

# Every route a card calls, with the admin-UI checkbox that grants it.
PERMISSIONS: dict[str, Permission] = {p.method + " " + p.path: p for p in [
    Permission("GET", "/devices", f"{_INFO} › Device list"),
    Permission("GET", "/devices/{device_id}", f"{_INFO} › Device ID"),
    Permission("PATCH", "/devices/{device_id}", f"{_INFO} › Update device"),
    Permission("GET", "/devices/{device_id}/details", f"{_INFO} › Device details"),
    Permission("GET", "/devices/{device_id}/apps", f"{_INFO} › Application list"),
    Permission("GET", "/devices/{device_id}/library-items", f"{_INFO} › Library items"),
    Permission("GET", "/devices/{device_id}/notes", f"{_NOTES} › List notes"),
    Permission("POST", "/devices/{device_id}/notes", f"{_NOTES} › Create note"),
    Permission("GET", "/devices/{device_id}/secrets/bypasscode", f"{_SECRETS} › Activation Lock bypass code"),
    Permission("GET", "/devices/{device_id}/secrets/filevaultkey", f"{_SECRETS} › FileVault recovery key"),
    Permission("GET", "/devices/{device_id}/secrets/unlockpin", f"{_SECRETS} › Unlock PIN"),
    *[Permission("POST", f"/devices/{{device_id}}/action/{name}", f"{_ACT} › {label}") for name, label in [
        ("blankpush", "Send blank push"), ("clearpasscode", "Clear passcode"), ("erase", "Erase device"),
        ("lock", "Lock device"), ("reinstallagent", "Reinstall agent"), ("remotedesktop", "Remote desktop"),
        ("restart", "Restart device"), ("setname", "Set device name"), ("shutdown", "Shutdown device"),
        ("unlockaccount", "Unlock user account"), ("updateinventory", "Update inventory"),
        ("enablelostmode", "Enable lost mode"), ("disablelostmode", "Disable lost mode"),
        ("playlostmodesound", "Play lost mode sound"), ("updatelocation", "Update lost mode location")]],
    Permission("GET", "/blueprints", f"{_BLUEPRINTS} › List blueprints"),
    Permission("GET", "/blueprints/{blueprint_id}", f"{_BLUEPRINTS} › Get blueprint"),
    Permission("POST", "/blueprints", f"{_BLUEPRINTS} › Create blueprint"),
    Permission("GET", "/integrations/apple/ade", f"{_ADE} › List ADE integrations"),
    Permission("GET", "/integrations/apple/ade/{ade_token_id}", f"{_ADE} › Get ADE integration"),
    Permission("GET", "/integrations/apple/ade/{ade_token_id}/devices", f"{_ADE} › ADE device list"),
    Permission("GET", "/users", "Users › Users › List users"),
]}

_ID = r"[^/]+"
_TEMPLATES = [(re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", _ID, re.escape(p.path)) + "/?$"), p)
              for p in PERMISSIONS.values()]


def permission_for(method: str, path: str) -> Permission:
    """The permission a request needs: a known card route, else the path with its id-like segments templated."""
    method = method.upper()
    path = "/" + path.split("?", 1)[0].strip("/")
    if path.startswith(API_PREFIX + "/"):
        path = path[len(API_PREFIX):]
    # Exact routes first, so /devices/{device_id}/notes is not mistaken for a longer template.
    for pattern, perm in _TEMPLATES:
        if perm.method == method and pattern.match(path) and path.count("/") == perm.path.count("/"):
            return perm
    templated = "/".join("{id}" if _looks_like_id(seg) else seg for seg in path.split("/"))
    return Permission(method, templated, "see the token's permission list")


def _looks_like_id(segment: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", segment)
                or re.fullmatch(r"\d+", segment))


def message_of(body) -> str:
    """The human message in any of Iru's error bodies (reference §2.5): {"detail"|"error"|"errors"|"message"},
    a field dict of lists, a list of strings, or a bare string."""
    if isinstance(body, str):
        return body.strip()
    if isinstance(body, list):
        return "; ".join(message_of(item) for item in body if item not in (None, ""))
    if isinstance(body, dict):
        for key in ("detail", "error", "errors", "message"):
            if key in body and body[key] not in (None, ""):
                return message_of(body[key])
        parts = []
        for key, value in body.items():
            text = message_of(value)
            parts.append(text if key == "non_field_errors" else f"{key}: {text}")
        return "; ".join(parts)
    return "" if body is None else str(body)


class ConnectorError(Exception):
    """Base of every error the connector raises."""


class InvalidInput(ConnectorError, ValueError):
    """A card's inputs break the card's own rules; nothing was sent."""

    def __init__(self, card: str, message: str):
        self.card, self.message = card, message
        super().__init__(f"{card}: {message}")


class ConnectionFailed(ConnectorError):
    """The server could not be reached (after retries where they were safe)."""

    def __init__(self, card: str | None, device_id: str | None, url: str, reason: str):
        self.card, self.device_id, self.url, self.reason = card, device_id, url, reason
        super().__init__(f"{_where(card, device_id)}cannot reach {url}: {reason}")


class ApiError(ConnectorError):
    """The API answered with an error status. Carries the card, the device (if any), the status and the body."""

    def __init__(self, *, card: str | None, device_id: str | None, status_code: int, method: str, path: str,
                 body, headers: dict[str, str] | None = None):
        self.card, self.device_id, self.status_code = card, device_id, status_code
        self.method, self.path, self.body, self.headers = method, path, body, headers or {}
        self.message = message_of(body) or _REASONS.get(status_code, "error")
        super().__init__(self._text())

    def _text(self) -> str:
        return f"{_where(self.card, self.device_id)}{self.status_code} {self.message}"

    def as_dict(self) -> dict:
        return {"card": self.card, "device_id": self.device_id, "status_code": self.status_code,
                "message": self.message, "body": self.body}


class AuthenticationFailed(ApiError):
    """401: the token is missing, unknown, revoked or expired (or belongs to another tenant's host)."""

    def _text(self) -> str:
        return (f"{_where(self.card, self.device_id)}401 the API token was refused ({self.message}); "
                "check the token and that it belongs to this domain's tenant")


class PermissionMissing(ApiError):
    """403: the token is valid but lacks the permission of the route the card calls."""

    def __init__(self, **kwargs):
        self.permission = permission_for(kwargs["method"], kwargs["path"])
        super().__init__(**kwargs)

    def _text(self) -> str:
        return (f"{_where(self.card, self.device_id)}403 the API token lacks the permission "
                f"{self.permission}")

    def as_dict(self) -> dict:
        perm = self.permission
        return {**super().as_dict(), "missing_permission": f"{perm.method} {API_PREFIX}{perm.path}",
                "permission_label": perm.label}


class NotFound(ApiError):
    """404: no such object in this tenant (or no such route)."""


class RateLimited(ApiError):
    """429 still, after honouring Retry-After as many times as retries allow."""


class ServerError(ApiError):
    """5xx, after the retries that were safe to make."""


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 415: "Unsupported Media Type", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def error_for(status_code: int, **kwargs) -> ApiError:
    cls = {401: AuthenticationFailed, 403: PermissionMissing, 404: NotFound, 429: RateLimited}.get(status_code)
    if cls is None:
        cls = ServerError if status_code >= 500 else ApiError
    return cls(status_code=status_code, **kwargs)


def _where(card: str | None, device_id: str | None) -> str:
    if card and device_id:
        return f"{card} (device {device_id}): "
    if card:
        return f"{card}: "
    if device_id:
        return f"device {device_id}: "
    return ""
