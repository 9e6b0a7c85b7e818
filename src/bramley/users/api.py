"""User routes: cursor-paged list (300 per page), get, delete."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from bramley.apiutil import RawJSON, page_url
from bramley.auth.door import api_context, get_db
from bramley.auth.permissions import grant
from bramley.devices.render import iso_z
from bramley.tenancy.context import TenantContext
from bramley.users import schemas
from bramley.users import service as users

router = APIRouter(prefix="/api/v1/users", tags=["Users"])
SECTION = ("Users", "Users")


def user_dicts(db: Session, ctx: TenantContext, rows) -> list[dict]:
    from bramley.devices import service as devices

    counts = devices.counts_for_users(db, ctx, [u.id for u in rows])
    out = []
    for u in rows:
        integ = u.integration
        out.append({
            "active": u.active, "archived": u.archived, "created_at": iso_z(u.created_at),
            "department": u.department, "deprecated_user_id": str(u.deprecated_user_id), "email": u.email,
            "id": u.id,
            # integration.id is a string (§6 rule 6); a missing id stays null rather than "None".
            "integration": ({"id": None if integ.get("id") is None else str(integ["id"]), "name": integ.get("name"),
                             "uuid": integ.get("uuid"), "type": integ.get("type")} if integ else None),
            "job_title": u.job_title, "name": u.name, "device_count": counts.get(u.id, 0),
            "updated_at": iso_z(u.updated_at),
        })
    return out


@router.get("", response_model=schemas.UserPage, openapi_extra=grant(*SECTION, "List users"))
def list_users(request: Request, email: str | None = None, id: str | None = None,
               integration_id: str | None = None, archived: bool | None = None, cursor: str | None = None,
               sizePerPage: int | None = Query(None, ge=1),  # noqa: N803 (irusdk's parameter name)
               ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    size = min(sizePerPage or users.PAGE_SIZE, users.PAGE_SIZE)
    page = users.list_users(db, ctx, email=email, user_id=id, integration_id=integration_id, archived=archived,
                            cursor=cursor, page_size=size)
    return {
        "next": page_url(request, cursor=page.next_cursor) if page.next_cursor else None,
        "previous": page_url(request, cursor=page.previous_cursor) if page.previous_cursor else None,
        "results": user_dicts(db, ctx, page.users),
    }


@router.get("/{user_id}", response_model=schemas.User, openapi_extra=grant(*SECTION, "Get user"))
def get_user(user_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return user_dicts(db, ctx, [users.get_or_raise(db, ctx, user_id)])[0]


@router.delete("/{user_id}", status_code=204, openapi_extra=grant(*SECTION, "Delete user"))
def delete_user(user_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    users.delete(db, ctx, user_id)
    return RawJSON(b"", status_code=204)
