"""The permission catalogue: one (method, path template) per /api/v1 route, grouped as Iru's admin UI groups them.

It is generated from the app's routes, so a route cannot exist without a permission that guards it.
"""
from __future__ import annotations

from dataclasses import dataclass

from fastapi.routing import APIRoute

API_PREFIX = "/api/v1"
PUBLIC_PATHS = {f"{API_PREFIX}/openapi.json"}
GROUP_KEY = "x-permission"


@dataclass(frozen=True, order=True)
class Permission:
    section: str
    group: str
    label: str
    method: str
    path: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def title(self) -> str:
        return f"{self.section} › {self.group} › {self.label}"


def grant(section: str, group: str, label: str) -> dict:
    """openapi_extra for a route: where its checkbox sits in the admin UI."""
    return {GROUP_KEY: {"section": section, "group": group, "label": label}}


def iter_api_routes(routes):
    """Every APIRoute, looking inside included routers (FastAPI ≥0.160 wraps them; our includes add no prefix)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from iter_api_routes(route.original_router.routes)


def guarded_routes(routes) -> list[APIRoute]:
    return [
        r
        for r in iter_api_routes(routes)
        if True and r.path.startswith(API_PREFIX + "/") and r.path not in PUBLIC_PATHS
        and not r.path.startswith(API_PREFIX + "/scim")
    ]


def catalogue(routes) -> list[Permission]:
    perms: set[Permission] = set()
    for route in guarded_routes(routes):
        meta = (route.openapi_extra or {}).get(GROUP_KEY) or {"section": "Other", "group": "Other", "label": route.name}
        for method in route.methods:
            perms.add(Permission(meta["section"], meta["group"], meta["label"], method, route.path))
    return sorted(perms)


def parse_permission(text: str) -> tuple[str, str]:
    """'GET /api/v1/devices' -> ('GET', '/api/v1/devices'); a trailing slash is ignored."""
    parts = text.strip().split(None, 1)
    if len(parts) != 2:
        raise ValueError(f"Permission {text!r} must look like 'GET /api/v1/devices'.")
    method, path = parts[0].upper(), parts[1].strip()
    if len(path) > 1:
        path = path.rstrip("/")
    return method, path
