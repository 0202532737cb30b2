"""Tenant isolation: another org's resources look exactly like missing ones."""
import uuid

from apihelpers import assert_error


def _strip(err):
    return {k: v for k, v in err.items() if k != "request_id"}


def test_other_orgs_key_id_is_404_same_as_missing(api, two_orgs):
    a, b = two_orgs
    b_key_id = api.get("api-keys", key=b.key).json()["api_keys"][0]["id"]
    other = api.delete(f"api-keys/{b_key_id}", key=a.key)
    missing = api.delete(f"api-keys/{uuid.uuid4()}", key=a.key)
    e_other, e_missing = assert_error(other, 404), assert_error(missing, 404)
    assert _strip(e_other) == _strip(e_missing), (e_other, e_missing)
    assert b_key_id not in other.text
    # B's key still works: nothing was revoked.
    assert api.get("api-keys", key=b.key).status_code == 200


def test_lists_show_only_own_keys(api, two_orgs):
    a, b = two_orgs
    r = api.post("api-keys", key=b.key, json={"name": "b-second"})
    assert r.status_code in (200, 201)
    ids_a = {k["id"] for k in api.get("api-keys", key=a.key).json()["api_keys"]}
    ids_b = {k["id"] for k in api.get("api-keys", key=b.key).json()["api_keys"]}
    assert len(ids_a) == 1 and len(ids_b) == 2
    assert not ids_a & ids_b


def test_x_org_id_of_other_org_refused(api, two_orgs):
    a, b = two_orgs
    assert_error(api.get("api-keys", key=a.key, org_id=b.org_id), 401)
    assert_error(api.post("api-keys", key=a.key, org_id=b.org_id, json={"name": "x"}), 401)
    # and nothing was created in B
    assert len(api.get("api-keys", key=b.key).json()["api_keys"]) == 1


def test_audit_of_other_org_invisible(api, two_orgs):
    a, b = two_orgs
    rid = "xorg-" + uuid.uuid4().hex
    assert api.post("api-keys", key=b.key, json={"name": "b"},
                    headers={"X-Request-Id": rid}).status_code in (200, 201)
    r = api.get("audit", key=a.key, params={"limit": 1000})
    assert r.status_code == 200
    assert rid not in r.text
    assert b.org_id not in r.text
