"""The SCIM door: its own token, SCIM errors everywhere, discovery documents, routing, tenant isolation."""
from __future__ import annotations

import pytest

from tests.scim.conftest import BASE, ENTERPRISE, GROUP, LIST, USER, Directory, assert_error, new_integration


def test_empty_directory_answers_the_okta_connector_test(directory):
    r = directory.get("/Users?startIndex=1&count=2")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/scim+json")
    assert r.json() == {"schemas": [LIST], "totalResults": 0, "startIndex": 1, "itemsPerPage": 0, "Resources": []}
    assert directory.get("/Groups?startIndex=1&count=100").json()["totalResults"] == 0


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer a b"])
def test_missing_or_bad_token_is_401_with_a_scim_error(client, directory, header):
    headers = {"Authorization": header} if header else {}
    r = client.get(f"{BASE}/Users", headers=headers)
    assert_error(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_okta_header_mode_doubled_bearer_is_accepted(client, directory):
    r = client.get(f"{BASE}/Users", headers={"Authorization": f"Bearer Bearer {directory.token}"})
    assert r.status_code == 200


def test_api_token_does_not_open_scim_and_scim_token_does_not_open_the_api(client, directory):
    assert_error(client.get(f"{BASE}/Users", headers=directory.tenant.auth), 401)
    r = client.get("/api/v1/users", headers={"Authorization": f"Bearer {directory.token}"})
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token."}


def test_rotated_token_stops_working_and_the_new_one_works(client, directory):
    r = client.post(f"/api/v1/integrations/scim/{directory.integration_id}/rotate", headers=directory.tenant.auth)
    assert r.status_code == 200
    assert_error(directory.get("/Users"), 401)
    fresh = Directory(client, directory.tenant, r.json()["token"], directory.integration_id)
    assert fresh.get("/Users").status_code == 200


def test_deleted_integration_token_is_refused(client, directory):
    assert client.delete(f"/api/v1/integrations/scim/{directory.integration_id}",
                         headers=directory.tenant.auth).status_code == 204
    assert_error(directory.get("/Users"), 401)


def test_tenant_host_must_match_the_token(client, directory, make_tenant):
    other = make_tenant()
    r = directory.get("/Users", headers={"Host": f"{other.subdomain}.api.kandji.io"})
    assert_error(r, 401)
    assert directory.get("/Users", headers={"Host": f"{directory.tenant.subdomain}.api.iru.com"}).status_code == 200
    assert_error(directory.get("/Users", headers={"Host": "nosuchtenant.api.kandji.io"}), 404)


def test_tenants_never_see_each_others_directory(client, directory, make_tenant):
    ours = directory.create_user("ada@example.com")
    group = directory.create_group("Engineering", [ours["id"]])
    other_tenant = make_tenant()
    token, integration_id = new_integration(other_tenant, "Entra")
    theirs = Directory(client, other_tenant, token, integration_id)
    assert theirs.get("/Users").json()["totalResults"] == 0
    assert theirs.get('/Users?filter=userName eq "ada@example.com"').json()["totalResults"] == 0
    for path in (f"/Users/{ours['id']}", f"/Groups/{group['id']}"):
        assert_error(theirs.get(path), 404)
        assert_error(theirs.delete(path), 404)
    # The same userName is free in another tenant.
    assert theirs.create_user("ada@example.com")["id"] != ours["id"]
    # A member id from another tenant is not a member.
    r = theirs.post("/Groups", {"schemas": [GROUP], "displayName": "Leak", "members": [{"value": ours["id"]}]})
    assert r.status_code == 201 and "members" not in r.json()


def test_service_provider_config_announces_what_is_real(directory):
    r = directory.get("/ServiceProviderConfig")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/scim+json")
    body = r.json()
    assert body["patch"] == {"supported": True} and body["bulk"]["supported"] is False
    assert body["filter"] == {"supported": True, "maxResults": 200}
    assert body["etag"] == {"supported": True} and body["sort"] == {"supported": False}
    assert body["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    assert body["meta"]["location"].endswith("/api/v1/scim/ServiceProviderConfig")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas"])
def test_discovery_endpoints_are_read_only(directory, method, path):
    assert_error(directory.request(method, path, json={}), 405)


def test_discovery_with_a_filter_is_403(directory):
    assert_error(directory.get('/Schemas?filter=id eq "x"'), 403)


def test_resource_types_are_a_list_response(directory):
    body = directory.get("/ResourceTypes").json()
    assert body["schemas"] == [LIST] and body["totalResults"] == 2
    user = directory.get("/ResourceTypes/User").json()
    assert user["endpoint"] == "/Users" and user["schema"] == USER
    assert user["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    assert directory.get("/ResourceTypes/Group").json()["schema"] == GROUP
    assert_error(directory.get("/ResourceTypes/Device"), 404)


def test_schemas_publish_what_is_stored(directory):
    body = directory.get("/Schemas").json()
    assert {s["id"] for s in body["Resources"]} == {USER, GROUP, ENTERPRISE}
    user = directory.get(f"/Schemas/{USER}").json()
    attrs = {a["name"]: a for a in user["attributes"]}
    assert attrs["userName"]["required"] is True and attrs["userName"]["caseExact"] is False
    assert attrs["userName"]["uniqueness"] == "server"
    assert attrs["groups"]["mutability"] == "readOnly"
    assert "password" not in attrs  # not stored, so not published
    enterprise = {a["name"] for a in directory.get(f"/Schemas/{ENTERPRISE}").json()["attributes"]}
    assert enterprise == {"employeeNumber", "department", "manager"}
    assert_error(directory.get("/Schemas/urn:nope"), 404)


@pytest.mark.parametrize("path,status", [("/", 404), ("/Devices", 404), ("/Users/a/b", 404), ("/Bulk", 501),
                                         ("/Me", 501)])
def test_unknown_endpoints_answer_with_scim_errors(directory, path, status):
    assert_error(directory.get(path), status)


def test_wrong_method_on_a_collection_is_405(directory):
    assert_error(directory.request("DELETE", "/Users"), 405)
    assert_error(directory.request("PUT", "/Groups"), 405)


def test_json_and_untyped_requests_are_accepted_and_answers_are_scim_json(client, directory):
    body = {"schemas": [USER], "userName": "typed@example.com"}
    for ctype in ("application/json", "application/json; charset=utf-8", None):
        headers = {"Authorization": f"Bearer {directory.token}"}
        if ctype:
            headers["Content-Type"] = ctype
        body["userName"] = f"{ctype or 'none'}@example.com".replace("/", ".").replace(" ", "").replace(";", "")
        r = client.post(f"{BASE}/Users", content=__import__("json").dumps(body), headers=headers)
        assert r.status_code == 201, r.text
        assert r.headers["content-type"].startswith("application/scim+json")


def test_declared_non_json_body_is_415(client, directory):
    r = client.post(f"{BASE}/Users", content="userName=x", headers={
        "Authorization": f"Bearer {directory.token}", "Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 415)


def test_token_never_appears_in_responses_or_logs(client, directory, caplog):
    caplog.set_level("DEBUG")
    directory.create_user("secretive@example.com", password="hunter22")
    listed = client.get("/api/v1/integrations/scim", headers=directory.tenant.auth)
    assert directory.token not in listed.text
    user = directory.get('/Users?filter=userName eq "secretive@example.com"')
    assert "hunter22" not in user.text
    assert directory.token not in caplog.text and "hunter22" not in caplog.text
