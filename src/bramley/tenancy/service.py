"""Tenants: create, look up, list."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bramley.errors import Conflict, InvalidField, NotFound
from bramley.tenancy.context import TenantContext
from bramley.tenancy.hosts import SUBDOMAIN_RE
from bramley.tenancy.models import Tenant

REGIONS = ("us", "eu")


def create(db: Session, *, subdomain: str, region: str = "us") -> Tenant:
    """Create a tenant; the subdomain is its name on every host family of its region."""
    subdomain = subdomain.strip().lower()
    if not SUBDOMAIN_RE.match(subdomain):
        raise InvalidField({"subdomain": ["Use lowercase letters, digits and hyphens (max 63)."]})
    if region not in REGIONS:
        raise InvalidField({"region": [f"Choose one of: {', '.join(REGIONS)}."]})
    if get_by_subdomain(db, subdomain) is not None:
        raise Conflict("subdomain", f"Tenant {subdomain!r} already exists.")
    tenant = Tenant(subdomain=subdomain, region=region)
    db.add(tenant)
    db.flush()
    from bramley.mdm import pki  # device-identity CA and FileVault escrow keys, made with the tenant

    pki.provision(db, system_context(tenant))
    return tenant


def get(db: Session, tenant_id: str) -> Tenant | None:
    return db.get(Tenant, tenant_id)


@dataclass(frozen=True)
class TenantName:
    id: str
    subdomain: str
    region: str


_names: dict[str, TenantName] = {}


def name_of(db: Session, tenant_id: str) -> TenantName | None:
    """A tenant's subdomain and region, remembered per process: they never change once created, and every API
    request needs them (a query less on the hot path)."""
    found = _names.get(tenant_id)
    if found is None:
        tenant = get(db, tenant_id)
        if tenant is None:
            return None
        found = _names[tenant_id] = TenantName(tenant.id, tenant.subdomain, tenant.region)
    return found


def get_by_subdomain(db: Session, subdomain: str) -> Tenant | None:
    return db.scalar(select(Tenant).where(Tenant.subdomain == subdomain.lower()))


_by_subdomain: dict[str, TenantName] = {}


def name_by_subdomain(db: Session, subdomain: str) -> TenantName | None:
    """A tenant's id and region by subdomain, remembered per process once found (the device door asks on every
    check-in; a subdomain never changes owner). Misses are not remembered: a tenant may be created later."""
    key = subdomain.strip().lower()
    found = _by_subdomain.get(key)
    if found is None:
        tenant = get_by_subdomain(db, key)
        if tenant is None:
            return None
        found = _by_subdomain[key] = TenantName(tenant.id, tenant.subdomain, tenant.region)
    return found


def get_by_subdomain_or_raise(db: Session, subdomain: str) -> Tenant:
    tenant = get_by_subdomain(db, subdomain)
    if tenant is None:
        raise NotFound(f"No tenant {subdomain!r}.")
    return tenant


def get_all(db: Session) -> list[Tenant]:
    return list(db.scalars(select(Tenant).order_by(Tenant.subdomain)))


def system_context(tenant: Tenant | TenantName) -> TenantContext:
    """Context for work done by Bramley itself (CLI, seeding, jobs)."""
    return TenantContext(tenant_id=tenant.id, subdomain=tenant.subdomain, region=tenant.region)
