"""Which tenant a Host header names, per the Iru host families (reference §1)."""
from __future__ import annotations

import re
from dataclasses import dataclass

# (pattern, region). The leftmost label names the tenant; every family of a region serves its tenants.
_FAMILIES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^([a-z0-9][a-z0-9-]*)\.api\.eu\.kandji\.io$"), "eu"),
    (re.compile(r"^([a-z0-9][a-z0-9-]*)\.api\.eu\.iru\.com$"), "eu"),
    (re.compile(r"^([a-z0-9][a-z0-9-]*)\.clients\.eu\.kandji\.io$"), "eu"),
    (re.compile(r"^([a-z0-9][a-z0-9-]*)\.api\.kandji\.io$"), "us"),
    (re.compile(r"^([a-z0-9][a-z0-9-]*)\.api\.iru\.com$"), "us"),
    (re.compile(r"^([a-z0-9][a-z0-9-]*)\.clients\.us-1\.kandji\.io$"), "us"),
]

SUBDOMAIN_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class HostTenant:
    subdomain: str
    region: str


def tenant_from_host(host: str | None) -> HostTenant | None:
    """The tenant a tenant-family host names, or None for any other host (IP, localhost, own name)."""
    if not host:
        return None
    name = host.strip().lower()
    if name.startswith("["):  # IPv6 literal
        return None
    name = name.rsplit(":", 1)[0] if ":" in name else name
    for pattern, region in _FAMILIES:
        m = pattern.match(name)
        if m:
            return HostTenant(m.group(1), region)
    return None


def api_host(subdomain: str, region: str) -> str:
    return f"{subdomain}.api.eu.kandji.io" if region == "eu" else f"{subdomain}.api.kandji.io"
