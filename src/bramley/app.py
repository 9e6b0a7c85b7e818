"""The one ASGI app: Iru API door (and, later, SCIM, device and console doors) plus /healthz."""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from sqlalchemy import text

from bramley.ade.api import router as ade_router
from bramley.audit.api import router as audit_router
from bramley.auth.ratelimit import TenantRateLimiter
from bramley.blueprints.api import router as blueprints_router
from bramley.config import Settings, get_settings
from bramley.db.engine import Database
from bramley.devices.api import DeviceListDoor, router as devices_router
from bramley.logs import configure_logging
from bramley.mdm.actions_api import router as device_actions_router
from bramley.mdm.api import DeviceDoor
from bramley.mdm.enroll_api import router as enroll_router
from bramley.openapi import install as install_openapi
from bramley.scim.api import ScimDoor
from bramley.scim.admin_api import router as scim_admin_router
from bramley.blueprints.rules_api import router as assignment_rules_router
from bramley.secrets.api import router as secrets_router
from bramley.tags.api import router as tags_router
from bramley.trust.api import router as trust_router
from bramley.users.api import router as users_router
from bramley.web import EdgeMiddleware, JSONBody, install_error_handlers, reject_nul_query

log = logging.getLogger("bramley")


@asynccontextmanager
async def _lifespan(app: FastAPI):
    # The in-process job worker (APNs pushes, ...): on for `bramley serve`, off for apps built elsewhere.
    worker = None
    if app.state.settings.run_worker:
        from bramley.jobs.worker import Worker

        worker = Worker(app.state.db)
        worker.start_in_thread()
    app.state.worker = worker
    try:
        yield
    finally:
        if worker is not None:
            await asyncio.to_thread(worker.stop_thread)
        await app.state.db.reader.close()  # its connections, closed on the loop (PostgreSQL) or thread that ran them


class Bramley(FastAPI):
    """The device, SCIM and device-list doors go in front of every framework layer: each enrolled device comes
    through the first on every exchange, identity providers provision thousands of users through the second,
    connectors page through the whole fleet through the third, and the framework's telemetry, error and edge
    wrappers cost more than a check-in's, a provisioning request's or a page's own work."""

    _door: DeviceDoor | None = None

    async def __call__(self, scope, receive, send) -> None:
        if self._door is None:
            self._door = DeviceDoor(ScimDoor(DeviceListDoor(super().__call__, self), self.state), self.state)
        await self._door(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    app = Bramley(
        title="Bramley (Iru Endpoint Management compatible API)",
        version="1.0",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        default_response_class=JSONBody,
        lifespan=_lifespan,
        dependencies=[Depends(reject_nul_query)],
    )
    app.state.settings = settings
    app.state.db = Database(settings)
    app.state.rate_limiter = TenantRateLimiter(settings)

    for router in (devices_router, device_actions_router, blueprints_router, users_router, tags_router,
                   audit_router, enroll_router, secrets_router,
                   trust_router, ade_router, scim_admin_router, assignment_rules_router):
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        with app.state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    install_openapi(app)
    install_error_handlers(app)
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
