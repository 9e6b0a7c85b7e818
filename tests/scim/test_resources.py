"""The plain-body reading of a User (resources.user_profile) against scim2-models' validation: for any body, the
same profile or the same SCIM error, whichever way it was read."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scim2_models import Context

from bramley.scim import resources
from bramley.scim.errors import ScimError
from tests.scim.conftest import ENTERPRISE, USER

CONTEXTS = [Context.RESOURCE_CREATION_REQUEST, Context.RESOURCE_REPLACEMENT_REQUEST]

# Mostly what identity providers send, each part now and then replaced by something scim2-models must judge:
# wrong JSON types, other spellings, unknown attributes, blanks, text over the length limits, "true".
texts = st.one_of(st.sampled_from(["", " ", "ada@corp.example", "Ada", "x" * 255, "x" * 256, "y" * 321, "true",
                                   "Émile", "work"]), st.text(max_size=8))
anything = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), texts, st.just([]), st.just({}),
                     st.just(["a"]))


def mostly(good):
    return st.integers(0, 15).flatmap(lambda i: good if i else anything)


def plain_object(attributes: dict, odd: list[str]):
    """An object of some of `attributes` (name: strategy), now and then with one of the `odd` names as well."""
    return st.tuples(st.fixed_dictionaries({}, optional=attributes),
                     st.one_of(st.just({}), st.just({}), st.just({}), st.dictionaries(st.sampled_from(odd), anything,
                                                                                       max_size=1))
                     ).map(lambda parts: {**parts[0], **parts[1]})


text = mostly(st.one_of(st.none(), texts))
flag = mostly(st.one_of(st.none(), st.booleans()))
names = mostly(st.one_of(st.none(), plain_object(
    {"formatted": text, "familyName": text, "givenName": text, "middleName": text}, ["GivenName", "honorificPrefix"])))
emails = mostly(st.one_of(st.none(), st.lists(mostly(plain_object(
    {"value": text, "type": text, "primary": flag}, ["display", "Value"])), max_size=3)))
managers = mostly(st.one_of(st.none(), plain_object({"value": text}, ["displayName", "$ref"])))
enterprise = mostly(st.one_of(st.none(), plain_object(
    {"employeeNumber": text, "department": text, "manager": managers}, ["costCenter", "Department"])))
bodies = st.tuples(st.sampled_from([[USER], [USER, ENTERPRISE]]), plain_object(
    {"userName": text, "externalId": text, "displayName": text, "title": text,
     "active": st.one_of(flag, st.sampled_from(["True", "false"])), "name": names, "emails": emails,
     ENTERPRISE: enterprise},
    ["UserName", "id", "meta", "groups", "nickName", "password"])).map(lambda p: {"schemas": p[0], **p[1]})


def _outcome(read, body: dict, context: Context):
    try:
        return read(body, context)
    except ScimError as exc:
        return ("error", exc.status, exc.scim_type, exc.detail)


def _validated(body: dict, context: Context):
    return resources.profile_from(resources.parse_user(body, context))


@pytest.mark.parametrize("context", CONTEXTS)
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_a_body_reads_as_scim2_models_reads_it(context, body):
    assert _outcome(resources.user_profile, body, context) == _outcome(_validated, body, context)


@pytest.mark.parametrize("context", CONTEXTS)
def test_what_identity_providers_send_is_read_without_scim2_models(context, monkeypatch):
    body = {"schemas": [USER, ENTERPRISE], "userName": "ada@corp.example", "externalId": "00u1",
            "name": {"givenName": "Ada", "familyName": "Lovelace"}, "displayName": "Ada Lovelace", "title": "CTO",
            "emails": [{"value": "ada@corp.example", "type": "work", "primary": True}], "active": True,
            ENTERPRISE: {"department": "R&D", "employeeNumber": "7", "manager": {"value": "m-1"}}}
    expected = _validated(body, context)
    monkeypatch.setattr(resources, "_validate_user", lambda *a: pytest.fail("scim2-models validated it"))
    assert resources.user_profile(body, context) == expected
