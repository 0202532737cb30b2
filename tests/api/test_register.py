"""POST /api/v1/register."""
import re

import pytest

from apihelpers import KEY_RE, assert_error, auth, unique_email, unique_name


def test_register_happy_path_shape(api):
    email = unique_email()
    name = unique_name("Acme Widgets")
    r = api.post("register", json={"email": email, "organization_name": name,
                                   "first_name": "Ada", "last_name": "Lovelace",
                                   "use_case": "agents"})
    assert r.status_code in (200, 201), r.text
    assert r.headers.get("Content-Type", "").startswith("application/json")
    body = r.json()
    org, user, key = body["organization"], body["user"], body["api_key"]
    for f in ("id", "name", "slug", "plan"):
        assert f in org, org
    assert org["name"] == name
    assert isinstance(org["slug"], str) and re.match(r"^[a-z0-9]+(-[a-z0-9]+)*$", org["slug"]), org
    assert org["slug"].startswith("acme-widgets"), org
    assert isinstance(org["plan"], str) and org["plan"]
    for f in ("id", "email", "role"):
        assert f in user, user
    assert user["email"] == email
    assert user["role"] == "owner"
    for f in ("key", "key_prefix", "name"):
        assert f in key, key
    assert KEY_RE.match(key["key"]), key["key"]
    assert "." not in key["key"]
    assert key["key"].startswith("sk_live_")
    assert key["key"].startswith(key["key_prefix"]), key
    assert len(key["key_prefix"]) < len(key["key"]) - 16, "prefix reveals too much of the key"
    assert isinstance(key["name"], str) and key["name"]
    assert org["id"] != user["id"]


def test_registered_key_works(api, org):
    r = api.get("api-keys", key=org.key)
    assert r.status_code == 200, r.text


def test_register_keys_are_unique(api, register):
    a, b = register(), register()
    assert a.key != b.key
    assert a.org_id != b.org_id


def test_register_email_is_case_insensitive_for_duplicates(api, register):
    acct = register()
    r = api.post("register", json={"email": acct.email.upper(),
                                   "organization_name": unique_name()})
    assert_error(r, 409)


def test_register_duplicate_email_409(api, org):
    r = api.post("register", json={"email": org.email, "organization_name": unique_name()})
    assert_error(r, 409)


def test_register_duplicate_org_slug_409(api, org):
    # Same name → same slug.
    r = api.post("register", json={"email": unique_email(), "organization_name": org.org_name})
    assert_error(r, 409)


def test_register_duplicate_slug_different_case_409(api, org):
    r = api.post("register", json={"email": unique_email(),
                                   "organization_name": org.org_name.upper()})
    assert_error(r, 409)


def test_register_no_partial_state_on_conflict(api, org):
    """A failed registration (duplicate slug) must not consume the email."""
    email = unique_email()
    r = api.post("register", json={"email": email, "organization_name": org.org_name})
    assert_error(r, 409)
    r = api.post("register", json={"email": email, "organization_name": unique_name()})
    assert r.status_code in (200, 201), r.text


@pytest.mark.parametrize("body", [
    {"organization_name": "Missing Email Org"},
    {"email": "x@example.com"},
    {"email": "", "organization_name": "Org"},
    {"email": "not-an-email", "organization_name": "Org"},
    {"email": "two@@example.com", "organization_name": "Org"},
    {"email": "@example.com", "organization_name": "Org"},
    {"email": "user@", "organization_name": "Org"},
    {"email": "us er@example.com", "organization_name": "Org"},
    {"email": "user@exa\nmple.com", "organization_name": "Org"},
    {"email": "a" * 250 + "@example.com", "organization_name": "Org"},
    {"email": "x@example.com", "organization_name": ""},
    {"email": "x@example.com", "organization_name": "   "},
    {"email": "x@example.com", "organization_name": "O" * 201},
    {"email": "x@example.com", "organization_name": "Org", "first_name": "F" * 201},
    {"email": "x@example.com", "organization_name": "Org", "last_name": "L" * 201},
])
def test_register_validation_422(api, body):
    r = api.post("register", json=body)
    assert_error(r, 422, "validation_error")


def test_register_name_at_limit_ok(api):
    r = api.post("register", json={"email": unique_email(),
                                   "organization_name": "N" * 190 + unique_name("")[-10:]})
    assert r.status_code in (200, 201), r.text


def test_register_unicode_name_ok(api):
    name = "Société Générale " + unique_name("")[-10:]
    r = api.post("register", json={"email": unique_email(), "organization_name": name})
    assert r.status_code in (200, 201), r.text
    org = r.json()["organization"]
    assert org["name"] == name
    assert re.match(r"^[a-z0-9]+(-[a-z0-9]+)*$", org["slug"]), org


def test_register_does_not_need_auth_and_ignores_it(api, org):
    r = api.post("register", json={"email": unique_email(), "organization_name": unique_name()},
                 headers=auth("sk_live_garbage"))
    assert r.status_code in (200, 201), r.text


def test_register_unknown_fields_ignored(api):
    r = api.post("register", json={"email": unique_email(), "organization_name": unique_name(),
                                   "someFutureField": {"x": 1}})
    assert r.status_code in (200, 201), r.text


def test_register_cannot_choose_role_or_plan(api):
    r = api.post("register", json={"email": unique_email(), "organization_name": unique_name(),
                                   "role": "superadmin", "plan": "enterprise"})
    if r.status_code in (200, 201):
        assert r.json()["user"]["role"] == "owner"
    else:
        assert_error(r, 422)


def test_register_name_without_slug_characters(api):
    """A name with no letters or digits either gets a generated valid slug or is refused."""
    r = api.post("register", json={"email": unique_email(), "organization_name": "!!! ???"})
    if r.status_code in (200, 201):
        slug = r.json()["organization"]["slug"]
        assert re.match(r"^[a-z0-9]+(-[a-z0-9]+)*$", slug), slug
    else:
        assert_error(r, 422, "validation_error")


def test_register_nul_in_name_refused(api):
    """An escaped NUL is well-formed JSON; sandboxd refuses it either while parsing (400
    invalid_json) or as a bad value (422 validation_error) — never stores or crashes on it."""
    r = api.post("register", json={"email": unique_email(), "organization_name": "Org\u0000Nul"})
    assert r.status_code in (400, 422), r.text
    assert_error(r, r.status_code, "invalid_json" if r.status_code == 400 else "validation_error")
