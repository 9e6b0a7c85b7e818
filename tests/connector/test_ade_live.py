"""The ADE cards end to end: a server token from the fake Apple service is uploaded to the live server, its
worker syncs the organisation's devices from Apple, and the connector reads them as Iru's cards do."""
from __future__ import annotations

import httpx
import pytest

from bramley.connector import InvalidInput, NotFound, connect
from bramley.simulator.fake_ade import server_token_p7m
from tests.connector.conftest import committed, found, seeded_tenant

ADE = "/integrations/apple/ade"


@pytest.fixture(scope="module")
def integrated(app, server, apple_ade):
    """A tenant with one ADE integration whose organisation has 310 devices (two pages), synced."""
    tenant = seeded_tenant(app, 0)
    org = apple_ade.fake.new_org(server_name="Accuhive MDM", org_name="Accuhive")
    org.add_devices(300, family="Mac")
    org.add_devices(10, family="iPad")
    with connect(server, tenant.token) as kandji:
        public_key = kandji.custom_api_action("GET", f"{ADE}/public_key/")
        assert public_key.headers["content-type"] == "application/x-x509-ca-cert"
        blueprint = kandji.create_blueprint("ADE default", True, color="aqua-800", icon="ss-files").blueprint
        # The upload is an admin's multipart form (no card sends one): straight to the API.
        uploaded = httpx.post(f"{server}/api/v1{ADE}/", headers=tenant.auth,
                              data={"blueprint_id": blueprint["id"], "phone": "4155550100",
                                    "email": "it@accuhive.io"},
                              files={"file": ("Accuhive_Token_smime.p7m", server_token_p7m(public_key.body, org),
                                              "application/pkcs7-mime")})
        assert uploaded.status_code == 200, uploaded.text
        integration = uploaded.json()
        # The server's worker syncs with Apple on its own.
        synced = committed(lambda: found(lambda: kandji.get_ade_integration(integration["id"])),
                           lambda got: got is not None and got.last_device_sync is not None
                           and got.total_device_count == 310, timeout=30)
        assert synced.total_device_count == 310
        yield kandji, integration, blueprint, org


def test_get_ade_integration(integrated):
    kandji, integration, blueprint, org = integrated
    got = kandji.get_ade_integration(integration["id"])
    card = got.card()
    assert {k: card[k] for k in ("ADE Token ID", "Default Blueprint ID", "Default Blueprint Name",
                                 "Default Blueprint Color", "Default Blueprint Icon", "Server Name", "Server UUID",
                                 "Organization Name", "Organization Email", "Default Email", "Default Phone",
                                 "Status", "Mac Device Count", "iPad Device Count", "iPhone Device Count",
                                 "Apple TV Device Count", "Total Device Count")} == {
        "ADE Token ID": integration["id"], "Default Blueprint ID": blueprint["id"],
        "Default Blueprint Name": "ADE default", "Default Blueprint Color": "aqua-800",
        "Default Blueprint Icon": "ss-files", "Server Name": "Accuhive MDM",
        "Server UUID": org.account["server_uuid"], "Organization Name": "Accuhive",
        "Organization Email": org.account["org_email"], "Default Email": "it@accuhive.io",
        "Default Phone": "4155550100", "Status": "SUCCESS", "Mac Device Count": 300, "iPad Device Count": 10,
        "iPhone Device Count": 0, "Apple TV Device Count": 0, "Total Device Count": 310}
    assert got.days_left > 300 and got.last_device_sync is not None and got.stoken_file_name
    with pytest.raises(NotFound) as missing:
        kandji.get_ade_integration("00000000-0000-4000-8000-000000000000")
    assert str(missing.value).startswith("Get ADE Integration: 404")
    with pytest.raises(InvalidInput):
        kandji.get_ade_integration("../devices")


def test_list_ade_integrations(integrated):
    kandji, integration, _, _ = integrated
    first = kandji.list_ade_integrations()
    assert [i["id"] for i in first.results] == [integration["id"]]
    seen = []
    streamed = kandji.list_ade_integrations("stream", helper=lambda record, ctx: seen.append((record["id"], ctx)),
                                            context="flow-7").run()
    assert streamed.record_count == 1 and seen == [(integration["id"], "flow-7")]


def test_list_ade_devices_first_300_and_stream(integrated):
    kandji, integration, _, org = integrated
    first = kandji.list_ade_devices(integration["id"])
    assert len(first.results) == 300 and first.record_count is None
    assert all(d["dep_account"]["id"] == integration["id"] for d in first.results)
    awaiting = []
    stream = kandji.list_ade_devices(integration["id"], "stream",
                                     helper=lambda d, ctx: d["mdm_device"] is None and awaiting.append(
                                         d["serial_number"]))
    result = stream.run()
    # Nothing has enrolled yet: every device is awaiting enrollment (mdm_device null), page 2 included.
    assert result.record_count == 310 and sorted(awaiting) == sorted(org.devices)
    assert result.card() == {"Results": None, "Record Count": 310}
