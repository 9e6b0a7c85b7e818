"""RFC 7644 filters, translated to SQL: every operator, logic, paths, case rules, and what is refused."""
from __future__ import annotations

from urllib.parse import quote

import pytest
from scim2_models import ScimFilter
from sqlalchemy.dialects import sqlite

from bramley.users import filters
from tests.scim.conftest import ENTERPRISE, USER, assert_error


@pytest.fixture(scope="module")
def people(client, db):
    """Three users with distinct attributes, made once for the module (the tests only read); the filter
    results name them by short name."""
    import uuid

    from bramley.auth import service as tokens
    from bramley.tenancy import service as tenants
    from tests.scim.conftest import Directory, new_integration

    with db.unit_of_work() as s:
        tenant = tenants.create(s, subdomain=f"f{uuid.uuid4().hex[:12]}", region="us")
        ctx = tenants.system_context(tenant)
        api_token = tokens.create(s, ctx, description="filters", permissions=[], all_access=True)

    class Handle:
        id = tenant.id
        auth = {"Authorization": f"Bearer {api_token.value}"}

        @staticmethod
        def ctx(session):
            return tenants.system_context(tenants.get(session, tenant.id))

    Handle.db = db
    token, integration_id = new_integration(Handle)
    directory = Directory(client, Handle, token, integration_id)
    made = {}
    for short, extra in {
        "ada": dict(displayName="Ada Lovelace", title="Engineer", name={"givenName": "Ada", "familyName": "Lovelace"},
                    emails=[{"value": "Ada@Corp.example", "type": "work", "primary": True},
                            {"value": "ada@home.example", "type": "home"}],
                    externalId="EXT-ada", **{"schemas": [USER, ENTERPRISE],
                                             ENTERPRISE: {"department": "R&D", "employeeNumber": "100"}}),
        "bob": dict(displayName="Bob Builder", title="Manager_1", active=False, name={"familyName": "Builder"},
                    emails=[{"value": "bob@corp.example", "type": "work"}], externalId="ext-bob",
                    **{"schemas": [USER, ENTERPRISE], ENTERPRISE: {"department": "Sales", "employeeNumber": "200"}}),
        "cy": dict(displayName="Cy 100%", emails=[{"value": "cy@other.example", "type": "home"}]),
    }.items():
        made[short] = directory.create_user(f"{short}@corp.example", **extra)["id"]
    directory.names = {v: k for k, v in made.items()}
    return directory


def found(d, text: str) -> list[str]:
    r = d.get(f"/Users?filter={quote(text)}")
    assert r.status_code == 200, r.text
    return sorted(d.names[u["id"]] for u in r.json()["Resources"])


@pytest.mark.parametrize("text,expected", [
    ('userName eq "ADA@corp.example"', ["ada"]),
    ('USERNAME Eq "ada@CORP.example"', ["ada"]),
    ('userName ne "ada@corp.example"', ["bob", "cy"]),
    ('userName co "B@CORP"', ["bob"]),
    ('userName sw "c"', ["cy"]),
    ('userName ew ".EXAMPLE"', ["ada", "bob", "cy"]),
    ('displayName co "100%"', ["cy"]),
    ('displayName co "%"', ["cy"]),
    ('title co "_"', ["bob"]),
    ('title pr', ["ada", "bob"]),
    ('not (title pr)', ["cy"]),
    ('externalId eq "ext-ada"', []),  # externalId is caseExact
    ('externalId eq "EXT-ada"', ["ada"]),
    ('active eq false', ["bob"]),
    ('active eq true', ["ada", "cy"]),
    ('active ne true', ["bob"]),
    ('name.familyName eq "lovelace"', ["ada"]),
    ('name.givenName pr and name.familyName pr', ["ada"]),
    ('emails[type eq "work"].value eq "ada@corp.EXAMPLE"', ["ada"]),
    ('emails[type eq "work" and value co "@corp"]', ["ada", "bob"]),
    ('emails[type eq "home"]', ["ada", "cy"]),
    ('emails.value eq "ada@home.example"', ["ada"]),
    ('emails pr', ["ada", "bob", "cy"]),
    ('emails[primary eq true]', ["ada"]),
    (f'{ENTERPRISE}:department eq "r&d"', ["ada"]),
    (f'{ENTERPRISE.upper().replace("URN:", "urn:")}:employeeNumber gt "150"', ["bob"]),
    (f'{ENTERPRISE}:employeeNumber le "200"', ["ada", "bob"]),
    (f'{ENTERPRISE}:employeeNumber lt "200" or title eq "manager_1"', ["ada", "bob"]),
    (f'{ENTERPRISE}:employeeNumber ge "200"', ["bob"]),
    ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "cy@corp.example"', ["cy"]),
    ('title eq "Engineer" or title eq "manager_1" and active eq false', ["ada", "bob"]),
    ('(title eq "Engineer" or title eq "manager_1") and active eq false', ["bob"]),
    ('not (userName eq "ada@corp.example" or userName eq "bob@corp.example")', ["cy"]),
    ('not (title eq "Engineer")', ["bob", "cy"]),  # a missing title is not "Engineer"
    ('title eq null', ["cy"]),
    ('meta.created gt "2000-01-01T00:00:00Z"', ["ada", "bob", "cy"]),
    ('meta.lastModified lt "2000-01-01T00:00:00Z"', []),
])
def test_filter(people, text, expected):
    assert found(people, text) == expected


@pytest.mark.parametrize("text", [
    'bogus eq "x"',
    'userName eq',
    'userName xx "a"',
    'password eq "x"',
    'active gt true',
    'active eq "yes"',
    'userName gt 5',
    'meta.created co "2020"',
    'meta.created gt "yesterday"',
    'emails[bogus eq "x"]',
    'urn:example:custom:1.0:User:shoeSize eq "9"',
    f'{ENTERPRISE}:costCenter eq "1"',
    '((userName eq "a")',
])
def test_unsupported_filters_are_invalid_filter_never_match_all(people, text):
    assert_error(people.get(f"/Users?filter={quote(text)}"), 400, "invalidFilter")


def test_filter_with_nul_is_invalid(people):
    assert_error(people.get("/Users?filter=userName%20eq%20%22a%00%22"), 400, "invalidFilter")


def test_group_filters(directory):
    directory.create_group("Engineering")
    directory.create_group("Sales")
    starts, user_attr = quote('displayName sw "ENG"'), quote('userName eq "x"')
    assert directory.get(f"/Groups?filter={starts}").json()["totalResults"] == 1
    assert_error(directory.get(f"/Groups?filter={user_attr}"), 400, "invalidFilter")


def test_filters_become_sql_not_python():
    """The tree becomes one WHERE clause: the database does the matching (and uses the userName index)."""
    clause = filters.user_where("t1", ScimFilter('userName eq "Ada@X" and emails[type eq "work"]').ast)
    sql = str(clause.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    assert "users.user_name_key = 'ada@x'" in sql
    assert "user_emails.type" in sql and "IN (SELECT user_emails.user_id" in sql
