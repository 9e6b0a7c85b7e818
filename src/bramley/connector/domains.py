"""The connection's "domain" as the Okta Workflows connection takes it, turned into an API base URL.

Accepted (reference §1): `<sub>.api.kandji.io`, `<sub>.api.eu.kandji.io`, `<sub>.api.iru.com`, `<sub>.api.eu.iru.com`,
the legacy `<sub>.clients.<region>.kandji.io`, any of those with `https://`, or any base URL with a scheme
(`http://127.0.0.1:8080`, `https://mdm.example.com:8443/prefix`). A bare word (`acme`) is a subdomain on the
Kandji API host of `region`, as irusdk builds it. Calls go to `<base>/api/v1/<relative path>`.
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from bramley.connector.errors import InvalidInput

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# The host families that name a tenant in their leftmost label (reference §1).
TENANT_HOSTS = re.compile(
    rf"^(?P<sub>{_LABEL})\.(?:api\.(?:eu\.)?(?:kandji\.io|iru\.com)|clients\.{_LABEL}\.kandji\.io)$")
# The web app's host: people paste it from the browser's address bar.
WEB_APP_HOST = re.compile(rf"^(?P<sub>{_LABEL})\.(?:(?P<eu>eu)\.)?(?P<brand>kandji\.io|iru\.com)$")
_HOST = re.compile(rf"^(?:{_LABEL}\.)*{_LABEL}\.?$")
REGIONS = {"us": "api.kandji.io", "eu": "api.eu.kandji.io"}


def base_url_for(domain: str, region: str | None = None) -> str:
    """The API base URL (scheme, host, port, optional path prefix; no trailing slash, no /api/v1)."""
    text = (domain or "").strip()
    if not text:
        raise InvalidInput("Connection", "the domain is empty: give e.g. acme.api.kandji.io or http://127.0.0.1:8080")
    if region is not None and region.lower() not in REGIONS:
        raise InvalidInput("Connection", f"region must be us or eu, not {region!r}")
    if re.fullmatch(_LABEL, text.lower()) and "." not in text:
        # A bare subdomain, as irusdk takes it.
        return f"https://{text.lower()}.{REGIONS[(region or 'us').lower()]}"
    if "://" not in text:
        text = "https://" + text  # a domain as the Okta connection takes it: always HTTPS
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("Connection", f"the URL scheme must be http or https, not {parts.scheme!r}")
    if parts.username or parts.password:
        raise InvalidInput("Connection", "put the token in --token, not in the URL")
    if parts.query or parts.fragment:
        raise InvalidInput("Connection", "the base URL takes no query string or fragment")
    try:
        host, port = (parts.hostname or ""), parts.port
    except ValueError as exc:  # a non-numeric port
        raise InvalidInput("Connection", f"bad port in {domain!r}") from exc
    if not host or not (_is_ip(host) or _HOST.match(host)):
        raise InvalidInput("Connection", f"{domain!r} has no valid host name")
    web = WEB_APP_HOST.match(host)
    if web:
        api = f"{web['sub']}.api.{'eu.' if web['eu'] else ''}{web['brand']}"
        raise InvalidInput("Connection", f"{host} is the web app; the API domain is {api}")
    path = parts.path.rstrip("/")
    if path.endswith("/api/v1"):
        path = path[: -len("/api/v1")]  # pasted a full API URL: the connector adds /api/v1 itself
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{path}"


def tenant_of(base_url: str) -> str | None:
    """The subdomain that names the tenant, on Iru's own hosts; None for a self-hosted server."""
    host = urlsplit(base_url).hostname or ""
    match = TENANT_HOSTS.match(host)
    return match["sub"] if match else None


def is_plain_http_to_remote(base_url: str) -> bool:
    """A token sent over plain HTTP beyond this machine can be read on the way."""
    parts = urlsplit(base_url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return False
    return not (_is_ip(host) and ipaddress.ip_address(host).is_loopback)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
