"""Blueprint assignment rule routes: ordered "members of group G get blueprint B" rules, and a re-evaluation."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from bramley.apiutil import RawJSON, Text
from bramley.auth.door import api_context, get_db
from bramley.auth.permissions import grant
from bramley.blueprints import rules
from bramley.blueprints import service as blueprints
from bramley.tenancy.context import TenantContext
from bramley.users import groups

router = APIRouter(prefix="/api/v1/blueprint-assignment-rules", tags=["Blueprint assignment rules"])
SECTION = ("Blueprints", "Assignment Rules")


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    group_id: Text
    blueprint_id: Text
    position: int | None = Field(None, ge=1, description="1 is tried first; default: last.")
    override_manual: bool = Field(False, description="Also move devices whose blueprint an admin set by hand.")


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group_id: Text | None = None
    blueprint_id: Text | None = None
    position: int | None = Field(None, ge=1)
    override_manual: bool | None = None


class Rule(BaseModel):
    id: str
    position: int
    group_id: str
    group_name: str | None
    blueprint_id: str
    blueprint_name: str | None
    override_manual: bool


class Applied(BaseModel):
    devices_moved: int


def _dicts(db: Session, ctx: TenantContext, rows) -> list[dict]:
    by_group = groups.get_many(db, ctx, [r.group_id for r in rows])
    out = []
    for r in rows:
        group, bp = by_group.get(r.group_id), blueprints.get(db, ctx, r.blueprint_id)
        out.append({"id": r.id, "position": r.position, "group_id": r.group_id,
                    "group_name": group.display_name if group else None, "blueprint_id": r.blueprint_id,
                    "blueprint_name": bp.name if bp else None, "override_manual": r.override_manual})
    return out


@router.get("", response_model=list[Rule], openapi_extra=grant(*SECTION, "List assignment rules"))
def list_rules(ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return _dicts(db, ctx, rules.list_rules(db, ctx))


@router.post("", status_code=201, response_model=Rule, openapi_extra=grant(*SECTION, "Create assignment rule"))
def create_rule(body: RuleIn, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    rule = rules.create(db, ctx, group_id=body.group_id, blueprint_id=body.blueprint_id, position=body.position,
                        override_manual=body.override_manual)
    return _dicts(db, ctx, [rule])[0]


@router.post("/apply", response_model=Applied, openapi_extra=grant(*SECTION, "Apply assignment rules"))
def apply_rules(ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return {"devices_moved": rules.apply_all(db, ctx)}


@router.get("/{rule_id}", response_model=Rule, openapi_extra=grant(*SECTION, "Get assignment rule"))
def get_rule(rule_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    return _dicts(db, ctx, [rules.get_or_raise(db, ctx, rule_id)])[0]


@router.patch("/{rule_id}", response_model=Rule, openapi_extra=grant(*SECTION, "Update assignment rule"))
def update_rule(rule_id: str, body: RulePatch, ctx: TenantContext = Depends(api_context),
                db: Session = Depends(get_db, scope="function")):
    rule = rules.update(db, ctx, rule_id, body.model_dump(exclude_unset=True))
    return _dicts(db, ctx, [rule])[0]


@router.delete("/{rule_id}", status_code=204, openapi_extra=grant(*SECTION, "Delete assignment rule"))
def delete_rule(rule_id: str, ctx: TenantContext = Depends(api_context), db: Session = Depends(get_db, scope="function")):
    rules.delete(db, ctx, rule_id)
    return RawJSON(b"", status_code=204)
