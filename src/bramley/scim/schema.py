"""What our SCIM door publishes: the resource models (scim2-models), and the discovery documents built from them.

Only what Bramley stores and returns unchanged is published: testers fill every published attribute with data
and expect it back. Emails are plain strings (pydantic's EmailStr refuses Okta's own `okta.local` examples).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field
from scim2_models import (URN, AuthenticationScheme, Bulk, CaseExact, ChangePassword, ComplexAttribute, ETag,
                          Extension, Filter, Mutability, Patch, Reference, Required, Resource, ResourceType,
                          SchemaExtension, ServiceProviderConfig, Sort, Uniqueness)

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
MAX_RESULTS = 200


class Name(ComplexAttribute):
    formatted: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    middle_name: str | None = None


class Email(ComplexAttribute):
    value: str | None = None
    type: str | None = Field(None, examples=["work", "home", "other"])
    primary: bool | None = None


class GroupMembership(ComplexAttribute):
    value: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    ref: Annotated[Reference["Group"] | None, Mutability.read_only] = Field(  # noqa: F821
        None, serialization_alias="$ref", validation_alias="$ref")
    display: Annotated[str | None, Mutability.read_only] = None


class Manager(ComplexAttribute):
    value: Annotated[str | None, CaseExact.true] = None


class EnterpriseUser(Extension):
    __schema__ = URN(ENTERPRISE_SCHEMA)
    employee_number: str | None = None
    department: str | None = None
    manager: Manager | None = None


class User(Resource[EnterpriseUser]):
    __schema__ = URN(USER_SCHEMA)
    user_name: Annotated[str | None, Uniqueness.server, Required.true] = None
    name: Name | None = None
    display_name: str | None = None
    title: str | None = None
    active: bool | None = None
    emails: list[Email] | None = None
    groups: Annotated[list[GroupMembership] | None, Mutability.read_only] = None


class GroupMember(ComplexAttribute):
    value: Annotated[str | None, Mutability.immutable, CaseExact.true] = None
    ref: Annotated[Reference["User"] | None, Mutability.immutable] = Field(  # noqa: F821
        None, serialization_alias="$ref", validation_alias="$ref")
    type: Annotated[str | None, Mutability.immutable] = Field(None, examples=["User"])
    display: str | None = None


class Group(Resource):
    __schema__ = URN(GROUP_SCHEMA)
    display_name: Annotated[str | None, Uniqueness.server, Required.true] = None
    members: list[GroupMember] | None = None


def _dump(model) -> dict:
    return model.model_dump(mode="json", exclude_none=True, by_alias=True)


@lru_cache
def schemas() -> dict[str, dict]:
    """{URN: Schema document}, meta.location filled in per request."""
    out = {}
    for model in (User, EnterpriseUser, Group):
        doc = _dump(model.to_schema())
        doc["meta"] = {"resourceType": "Schema"}
        out[doc["id"]] = doc
    return out


@lru_cache
def resource_types() -> dict[str, dict]:
    user = ResourceType(id="User", name="User", endpoint="/Users", description="Directory users",
                        schema_=USER_SCHEMA, schema_extensions=[SchemaExtension(schema_=ENTERPRISE_SCHEMA,
                                                                                required=False)])
    group = ResourceType(id="Group", name="Group", endpoint="/Groups", description="Directory groups",
                         schema_=GROUP_SCHEMA)
    out = {}
    for rt in (user, group):
        doc = _dump(rt)
        doc["meta"] = {"resourceType": "ResourceType"}
        out[rt.id] = doc
    return out


@lru_cache
def service_provider_config() -> dict:
    config = ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=True),
        authentication_schemes=[AuthenticationScheme(
            type=AuthenticationScheme.Type.oauthbearertoken, name="Bearer token", primary=True,
            description="The token of one directory integration, in the Authorization header")],
    )
    doc = _dump(config)
    doc["meta"] = {"resourceType": "ServiceProviderConfig"}
    return doc
