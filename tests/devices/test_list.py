"""GET /api/v1/devices: Iru's bare-array list, paging, filters and ordering."""
from __future__ import annotations

import orjson

DEVICE_FIELDS = ["device_id", "device_name", "model", "serial_number", "platform", "os_version",
                 "supplemental_build_version", "supplemental_os_version_extra", "last_check_in", "user", "asset_tag",
                 "blueprint_id", "mdm_enabled", "agent_installed", "is_missing", "is_removed", "agent_version",
                 "first_enrollment", "last_enrollment", "blueprint_name", "lost_mode_status", "tags"]


def test_device_list_is_bare_array_with_iru_fields_in_order(client, tenant):
    r = client.get("/api/v1/devices", headers=tenant.auth)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    devices = r.json()
    assert isinstance(devices, list) and len(devices) == 40
    assert list(devices[0].keys()) == DEVICE_FIELDS
    assert r.content == orjson.dumps(devices)  # compact JSON (names like "iMac (24-inch, M3)" hold ", ")


def test_empty_result_is_exactly_brackets(client, tenant):
    r = client.get("/api/v1/devices?serial_number=NO-SUCH-SERIAL", headers=tenant.auth)
    assert r.status_code == 200 and r.text == "[]"


def test_timestamps_keep_each_fields_format(client, tenant):
    d = client.get("/api/v1/devices?limit=1", headers=tenant.auth).json()[0]
    assert d["last_check_in"].endswith("Z") and "T" in d["last_check_in"]
    assert d["first_enrollment"].endswith("+00:00") and " " in d["first_enrollment"]


def test_paging_walks_every_device_once_with_fixed_page_size(client, make_tenant):
    t = make_tenant(devices=65)
    seen, offset, pages = [], 0, []
    while True:
        page = client.get(f"/api/v1/devices?limit=20&offset={offset}", headers=t.auth).json()
        pages.append(len(page))
        if not page:
            break
        seen += [d["device_id"] for d in page]
        offset += len(page)
    assert pages == [20, 20, 20, 5, 0]
    assert len(seen) == len(set(seen)) == 65


def test_limit_above_300_is_clamped_and_offset_past_end_is_empty(client, make_tenant):
    t = make_tenant(devices=310)
    assert len(client.get("/api/v1/devices?limit=5000", headers=t.auth).json()) == 300
    assert len(client.get("/api/v1/devices", headers=t.auth).json()) == 300
    assert client.get("/api/v1/devices?offset=10000", headers=t.auth).text == "[]"


def test_bad_limit_is_a_field_error(client, tenant):
    r = client.get("/api/v1/devices?limit=abc", headers=tenant.auth)
    assert r.status_code == 400 and "limit" in r.json()
    r = client.get("/api/v1/devices?limit=0", headers=tenant.auth)
    assert r.status_code == 400 and "limit" in r.json()


def test_filters_match_like_the_list_devices_card(client, tenant):
    everything = client.get("/api/v1/devices", headers=tenant.auth).json()
    mac = next(d for d in everything if d["platform"] == "Mac" and d["user"])
    get = lambda q: client.get(f"/api/v1/devices?{q}", headers=tenant.auth).json()  # noqa: E731

    assert [d["device_id"] for d in get(f"device_id={mac['device_id']}")] == [mac["device_id"]]
    assert mac["device_id"] in {d["device_id"] for d in get(f"serial_number={mac['serial_number'][2:7].lower()}")}
    assert all(d["platform"] == "Mac" for d in get("platform=Mac"))
    assert len(get("platform=Mac")) == sum(d["platform"] == "Mac" for d in everything)
    email = mac["user"]["email"]
    assert all(email[:6] in d["user"]["email"] for d in get(f"user_email={email[:6].upper()}"))
    assert {d["user"]["email"] for d in get(f"user_email_exact={email}")} == {email}
    assert get(f"user_email_exact={email[:-1]}") == []
    assert all(d["user"]["id"] == mac["user"]["id"] for d in get(f"user_id={mac['user']['id']}"))
    assert all(mac["user"]["name"].split()[0].lower() in d["user"]["name"].lower()
               for d in get(f"user_name={mac['user']['name'].split()[0]}"))
    assert all(d["blueprint_id"] == mac["blueprint_id"] for d in get(f"blueprint_id={mac['blueprint_id']}"))
    assert all("MacBook" in d["model"] for d in get("model=macbook"))
    assert all(d["os_version"].startswith("15") for d in get("os_version=15."))
    if mac["asset_tag"]:
        assert [d["asset_tag"] for d in get(f"asset_tag={mac['asset_tag']}")] == [mac["asset_tag"]]


def test_tag_filters(client, tenant):
    everything = client.get("/api/v1/devices", headers=tenant.auth).json()
    tagged = [d for d in everything if "Lab" in d["tags"]]
    got = client.get("/api/v1/devices?tag_name=Lab", headers=tenant.auth).json()
    assert {d["device_id"] for d in got} == {d["device_id"] for d in tagged}
    either = client.get("/api/v1/devices?tag_name_in=Lab,Finance", headers=tenant.auth).json()
    assert {d["device_id"] for d in either} == {d["device_id"] for d in everything
                                                 if {"Lab", "Finance"} & set(d["tags"])}
    assert client.get("/api/v1/devices?tag_name=lab", headers=tenant.auth).json() == []  # case-sensitive


def test_filevault_filter_reads_lenient_booleans(client, tenant):
    on = client.get("/api/v1/devices?filevault_enabled=True", headers=tenant.auth).json()
    off = client.get("/api/v1/devices?filevault_enabled=false", headers=tenant.auth).json()
    assert on and all(d["platform"] == "Mac" for d in on + off)
    assert not {d["device_id"] for d in on} & {d["device_id"] for d in off}


def test_ordering_and_unknown_params_are_ignored_gracefully(client, tenant):
    names = [d["device_name"] for d in client.get("/api/v1/devices?ordering=device_name&source=okta",
                                                  headers=tenant.auth).json()]
    assert names == sorted(names)
    rev = [d["serial_number"] for d in client.get("/api/v1/devices?ordering=-serial_number", headers=tenant.auth).json()]
    assert rev == sorted(rev, reverse=True)
    assert client.get("/api/v1/devices?ordering=bogus", headers=tenant.auth).status_code == 200


def test_trailing_slash_and_double_slash_serve_the_same_list(client, tenant):
    a = client.get("/api/v1/devices", headers=tenant.auth)
    b = client.get("/api/v1/devices/", headers=tenant.auth)
    c = client.get("http://testserver//api/v1/devices", headers=tenant.auth)
    assert a.status_code == b.status_code == c.status_code == 200
    assert orjson.loads(a.content) == orjson.loads(b.content) == orjson.loads(c.content)


def _walk(client, auth, page_size: int) -> list[str]:
    ids, offset = [], 0
    while page := client.get(f"/api/v1/devices?limit={page_size}&offset={offset}", headers=auth).json():
        ids += [d["device_id"] for d in page]
        offset += page_size
    return ids


def test_paging_after_deletes_has_no_holes_or_repeats_and_new_devices_come_last(client, make_tenant):
    t = make_tenant(devices=30)
    before = _walk(client, t.auth, 7)
    assert len(before) == 30
    gone = [before[0], before[6], before[7], before[15], before[29]]  # first, across a page edge, last
    for device_id in gone:
        assert client.delete(f"/api/v1/devices/{device_id}", headers=t.auth).status_code == 204
    kept = [d for d in before if d not in gone]
    assert _walk(client, t.auth, 7) == kept
    # Every page boundary lands where the same walk by a filter that matches all devices lands.
    assert _walk(client, t.auth, 4) == kept
    by_platform = [d["device_id"] for platform in ("Mac", "iPhone", "iPad", "AppleTV")
                   for d in client.get(f"/api/v1/devices?platform={platform}&limit=300", headers=t.auth).json()]
    assert sorted(by_platform) == sorted(kept)

    with t.db.unit_of_work() as s:
        from bramley.devices import service as devices

        new = devices.create(s, t.ctx(s), devices.NewDevice(serial_number="C02NEWDEVICE1", platform="Mac")).id
    assert _walk(client, t.auth, 7) == [*kept, new]
    assert client.get(f"/api/v1/devices?limit=1&offset={len(kept)}", headers=t.auth).json()[0]["device_id"] == new


def test_deleting_in_one_tenant_leaves_anothers_pages_alone(client, make_tenant):
    a, b = make_tenant(devices=12), make_tenant(devices=12)
    b_before = _walk(client, b.auth, 5)
    for device_id in _walk(client, a.auth, 5)[:6]:
        client.delete(f"/api/v1/devices/{device_id}", headers=a.auth)
    assert _walk(client, b.auth, 5) == b_before
    assert len(_walk(client, a.auth, 5)) == 6


def test_mac_filter_finds_a_seeded_device_by_the_address_its_details_show(client, tenant):
    device = client.get("/api/v1/devices?limit=1", headers=tenant.auth).json()[0]
    mac = client.get(f"/api/v1/devices/{device['device_id']}/details", headers=tenant.auth).json()["network"]["mac_address"]
    found = client.get(f"/api/v1/devices?mac_address={mac}", headers=tenant.auth).json()
    assert [d["device_id"] for d in found] == [device["device_id"]]


def test_whole_fleet_page_is_the_stored_documents_joined_in_order(client, db, make_tenant):
    """The unfiltered default-ordered page (PostgreSQL: read on the AsyncReader, SQLite: one joined BLOB) is
    byte for byte the stored documents in list order, as the service's session path builds it too."""
    from bramley.db.raw import RawStatement, fetch_all
    from bramley.devices import service as devices

    t = make_tenant(devices=25)
    with db.unit_of_work(write=False) as s:
        docs = [doc if isinstance(doc, str) else doc.decode() for doc, in fetch_all(s, RawStatement(
            "SELECT doc FROM devices WHERE tenant_id = :tenant ORDER BY position"), {"tenant": t.id})]
    for limit, offset in ((10, 0), (10, 20), (300, 0), (5, 24), (5, 25)):
        r = client.get(f"/api/v1/devices?limit={limit}&offset={offset}", headers=t.auth)
        expected = ("[" + ",".join(docs[offset:offset + limit]) + "]").encode()
        assert r.status_code == 200 and r.content == expected, (limit, offset)
        with db.unit_of_work(write=False) as s:
            assert devices.list_json(s, t.ctx(s), filters=devices.NO_FILTERS, limit=limit, offset=offset) == expected
    assert r.text == "[]"
