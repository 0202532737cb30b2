"""API keys: list, create, use, scopes, revoke, expiry, checksum, last_used_at."""
import time
import uuid

import pytest

from apihelpers import KEY_RE, assert_error, auth, is_iso8601

LIST_FIELDS = {"id", "name", "key_prefix", "scopes", "last_used_at", "expires_at", "created_at"}


def create_key(api, org, **body):
    body.setdefault("name", "k-" + uuid.uuid4().hex[:8])
    r = api.post("api-keys", key=org.key, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


def list_keys(api, key):
    r = api.get("api-keys", key=key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"api_keys"} and isinstance(body["api_keys"], list), body
    return body["api_keys"]


def key_by_id(api, key, key_id):
    return next((k for k in list_keys(api, key) if k["id"] == key_id), None)


# --- list --------------------------------------------------------------------------------

def test_list_shape_and_no_secret(api, org):
    keys = list_keys(api, org.key)
    assert len(keys) == 1
    k = keys[0]
    assert set(k) >= LIST_FIELDS, k
    assert isinstance(k["scopes"], list) and all(isinstance(s, str) for s in k["scopes"])
    assert is_iso8601(k["created_at"]), k
    assert org.key.startswith(k["key_prefix"])
    for field in ("key", "key_hash", "hash", "secret"):
        assert field not in k, f"{field} exposed in the list: {k}"
    raw = api.get("api-keys", key=org.key).text
    assert org.key not in raw
    secret_part = org.key[len(k["key_prefix"]):]
    assert secret_part not in raw


# --- create ------------------------------------------------------------------------------

def test_create_shape(api, org):
    body = create_key(api, org, name="ci key", scopes=["read", "write"], expires_in_days=30)
    assert set(body) >= {"api_key", "key"}, body
    key, meta = body["key"], body["api_key"]
    assert KEY_RE.match(key) and key.startswith("sk_live_") and "." not in key, key
    assert set(meta) >= LIST_FIELDS, meta
    assert meta["name"] == "ci key"
    assert sorted(meta["scopes"]) == ["read", "write"]
    assert key.startswith(meta["key_prefix"])
    assert is_iso8601(meta["expires_at"]), meta
    assert meta["last_used_at"] is None
    assert "key" not in meta or meta["key"] is None or meta.get("key") == key
    listed = key_by_id(api, org.key, meta["id"])
    assert listed is not None and listed["name"] == "ci key"
    assert "key" not in listed


def test_create_test_mode_key(api, org):
    body = create_key(api, org, mode="test")
    assert body["key"].startswith("sk_test_"), body["key"]
    assert KEY_RE.match(body["key"])
    r = api.get("api-keys", key=body["key"])
    assert r.status_code == 200, r.text
    assert r.headers.get("X-Sandbox-Test-Mode") == "true", r.headers


def test_live_key_has_no_test_mode_header(api, org):
    r = api.get("api-keys", key=org.key)
    assert r.headers.get("X-Sandbox-Test-Mode") in (None, "false")


def test_new_key_works_with_apikey_and_bearer(api, org):
    key = create_key(api, org)["key"]
    assert api.get("api-keys", headers=auth(key, scheme="ApiKey")).status_code == 200
    assert api.get("api-keys", headers=auth(key, scheme="Bearer")).status_code == 200


def test_scheme_is_case_insensitive(api, org):
    assert api.get("api-keys", headers={"Authorization": "bearer " + org.key}).status_code == 200
    assert api.get("api-keys", headers={"Authorization": "apikey " + org.key}).status_code == 200


def test_x_org_id_match_and_mismatch(api, two_orgs):
    a, b = two_orgs
    assert api.get("api-keys", key=a.key, org_id=a.org_id).status_code == 200
    assert_error(api.get("api-keys", key=a.key, org_id=b.org_id), 401)
    assert_error(api.get("api-keys", key=a.key, org_id=str(uuid.uuid4())), 401)
    assert_error(api.get("api-keys", key=a.key, org_id="not-a-uuid"), 401)


def test_default_scopes_allow_everything_of_the_registering_owner(api, org):
    k = list_keys(api, org.key)[0]
    assert set(k["scopes"]) >= {"read", "write", "execute", "admin"} or k["scopes"] == ["*"], k


def test_read_only_key_can_list_but_not_create(api, org):
    ro = create_key(api, org, scopes=["read"])["key"]
    assert api.get("api-keys", key=ro).status_code == 200
    assert_error(api.post("api-keys", key=ro, json={"name": "nope"}), 403, "insufficient_scope")
    victim = list_keys(api, org.key)[0]["id"]
    assert_error(api.delete(f"api-keys/{victim}", key=ro), 403, "insufficient_scope")


def test_created_key_cannot_exceed_creator_scopes(api, org):
    admin_only = create_key(api, org, scopes=["admin"])["key"]
    r = api.post("api-keys", key=admin_only, json={"name": "x", "scopes": ["admin"]})
    assert r.status_code in (200, 201), r.text
    r = api.post("api-keys", key=admin_only, json={"name": "x", "scopes": ["execute"]})
    assert_error(r, 403)


# --- revoke ------------------------------------------------------------------------------

def test_revoke(api, org):
    body = create_key(api, org)
    key, kid = body["key"], body["api_key"]["id"]
    assert api.get("api-keys", key=key).status_code == 200
    r = api.delete(f"api-keys/{kid}", key=org.key)
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True}
    deadline = time.monotonic() + 2
    while True:
        r = api.get("api-keys", key=key)
        if r.status_code == 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert_error(r, 401)
    assert key_by_id(api, org.key, kid) is None
    # revoking again: gone
    assert_error(api.delete(f"api-keys/{kid}", key=org.key), 404)


def test_revoke_own_key(api, org):
    key = create_key(api, org)
    r = api.delete(f"api-keys/{key['api_key']['id']}", key=key["key"])
    assert r.status_code == 200, r.text
    assert_error(api.get("api-keys", key=key["key"]), 401)


def test_delete_unknown_key_404(api, org):
    assert_error(api.delete(f"api-keys/{uuid.uuid4()}", key=org.key), 404)
    assert_error(api.delete("api-keys/not-a-uuid", key=org.key), 404)


def test_delete_other_orgs_key_404(api, two_orgs):
    a, b = two_orgs
    b_key_id = list_keys(api, b.key)[0]["id"]
    assert_error(api.delete(f"api-keys/{b_key_id}", key=a.key), 404)
    assert api.get("api-keys", key=b.key).status_code == 200


# --- expiry ------------------------------------------------------------------------------

def test_expired_key_401(api, org, pg):
    body = create_key(api, org, expires_in_days=1)
    key, kid = body["key"], body["api_key"]["id"]
    assert api.get("api-keys", key=key).status_code == 200
    pg.sql("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = %s", (kid,))
    # effective within seconds (a worker may hold a verified key for up to 1 s)
    deadline = time.monotonic() + 2
    while True:
        r = api.get("api-keys", key=key)
        if r.status_code == 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert_error(r, 401)
    # and stays refused
    time.sleep(1.2)
    assert_error(api.get("api-keys", key=key), 401)


def test_expires_in_days_sets_expires_at(api, org):
    from datetime import datetime, timedelta, timezone
    meta = create_key(api, org, expires_in_days=7)["api_key"]
    exp = datetime.fromisoformat(meta["expires_at"].replace("Z", "+00:00"))
    if exp.tzinfo is None:
        exp = exp.replace(tzinfo=timezone.utc)
    delta = exp - datetime.now(timezone.utc)
    assert timedelta(days=6, hours=23) < delta < timedelta(days=7, hours=1), delta


def test_no_expiry_by_default(api, org):
    assert create_key(api, org)["api_key"]["expires_at"] is None


# --- malformed credentials ---------------------------------------------------------------

def flip(ch):
    return "B" if ch == "A" else "A"


@pytest.mark.parametrize("pos", [-1, -3, 12, 25])
def test_wrong_checksum_401(api, org, pos):
    key = org.key
    bad = key[:pos] + flip(key[pos]) + (key[pos + 1:] if pos != -1 else "")
    assert bad != key and len(bad) == len(key)
    assert_error(api.get("api-keys", key=bad), 401)


@pytest.mark.parametrize("header", [
    None, "", "ApiKey", "ApiKey ", "Bearer", "Basic dXNlcjpwYXNz", "ApiKey garbage",
    "Bearer a.b.c", "ApiKey sk_live_", "ApiKey sk_prod_abc", "Token sk_live_abc",
    "ApiKey " + "A" * 5000,
], ids=lambda h: "none" if h is None else (h[:24] + "...") if len(h) > 24 else (h or "empty"))
def test_missing_or_garbage_authorization_401(api, header):
    h = {} if header is None else {"Authorization": header}
    r = api.get("api-keys", headers=h)
    assert_error(r, 401)


def test_key_with_trailing_garbage_401(api, org):
    assert_error(api.get("api-keys", key=org.key + "x"), 401)
    assert_error(api.get("api-keys", key=org.key[:-1]), 401)


def test_test_mode_swap_401(api, org):
    # Same body, other mode: the checksum covers the mode.
    assert_error(api.get("api-keys", key=org.key.replace("sk_live_", "sk_test_", 1)), 401)


# --- last_used_at ------------------------------------------------------------------------

def test_last_used_at_set_after_use(api, org):
    body = create_key(api, org)
    key, kid = body["key"], body["api_key"]["id"]
    assert key_by_id(api, org.key, kid)["last_used_at"] is None
    assert api.get("api-keys", key=key).status_code == 200
    deadline = time.monotonic() + 5
    while True:
        used = key_by_id(api, org.key, kid)["last_used_at"]
        if used is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert used is not None and is_iso8601(used), used


# --- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"name": 5},
    {"name": ["x"]},
    {"name": ""},
    {"name": "n" * 201},
    {"name": "x", "scopes": "read"},
    {"name": "x", "scopes": [1]},
    {"name": "x", "scopes": ["read", "superuser"]},
    {"name": "x", "scopes": ["READ"]},
    {"name": "x", "expires_in_days": -1},
    {"name": "x", "expires_in_days": 10 ** 9},
    {"name": "x", "expires_in_days": 1e300},
    {"name": "x", "expires_in_days": "30"},
    {"name": "x", "expires_in_days": 1.5},
    {"name": "x", "mode": "prod"},
    {"name": "x", "mode": 1},
    {"name": "x", "mode": ""},
])
def test_create_bad_input_422(api, org, body):
    assert_error(api.post("api-keys", key=org.key, json=body), 422, "validation_error")


def test_create_without_name_uses_default_or_422(api, org):
    r = api.post("api-keys", key=org.key, json={})
    if r.status_code in (200, 201):
        assert r.json()["api_key"]["name"]
    else:
        assert_error(r, 422, "validation_error")


def test_create_malformed_json_400(api, org):
    r = api.post("api-keys", key=org.key, data=b"{", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")


def test_create_needs_auth(api):
    assert_error(api.post("api-keys", json={"name": "x"}), 401)
