"""The tenant context each door resolves once and passes explicitly to services."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TenantContext:
    tenant_id: str
    subdomain: str
    region: str
    actor_id: str = "system"
    actor_type: str = "system"
    actor_name: str = "Bramley"
    permissions: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    def as_system(self) -> "TenantContext":
        return TenantContext(self.tenant_id, self.subdomain, self.region)
