"""The error envelope and the generic input limits.

Status codes used by sandboxd (documented in docs/api/openapi.yaml):
  400 invalid_json        the body is not parseable JSON (syntax, invalid UTF-8, nesting too deep,
                          empty body)
  422 validation_error    well-formed JSON with missing fields, wrong types or bad values
  404                     no such route (also without credentials), or no such resource
  405                     the route exists but not with this method (with an Allow header)
  413                     body over http.max_body_bytes
  415                     a JSON endpoint called with another (or no) Content-Type
"""
import json
import socket
import uuid

import pytest

from apihelpers import assert_error, assert_no_internal_detail, unique_email, unique_name

JSON = {"Content-Type": "application/json"}


def valid_register_body():
    return {"email": unique_email(), "organization_name": unique_name()}


# --- routing -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/does-not-exist", "/api/v1/sandbox/x/y/z/w",
                                  "/nope", "/api/v2/register", "/api/v1/api-keys/a/b"])
def test_unknown_route_is_404_envelope(api, path):
    assert_error(api.get(path), 404)


def test_unknown_route_with_auth_is_404(api, org):
    assert_error(api.get("/api/v1/does-not-exist", key=org.key), 404)


def test_wrong_method_is_405_with_allow(api, org):
    r = api.put("/api/v1/register", json=valid_register_body())
    assert_error(r, 405)
    assert "POST" in r.headers.get("Allow", ""), r.headers
    r = api.delete("/healthz")
    assert_error(r, 405)
    assert "GET" in r.headers.get("Allow", ""), r.headers


@pytest.mark.parametrize("extra", ["", "Content-Length: 0\r\n"], ids=["no-length", "length-0"])
def test_patch_is_405(api, extra):
    """PATCH on a route without PATCH: 405 at once (with or without an empty body)."""
    req = f"PATCH /healthz HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n".encode()
    resp = raw_http(api.base, req, read_timeout=10)
    assert resp.split(b"\r\n", 1)[0].split(b" ")[1:2] == [b"405"], resp[:300] or "no response"


def test_wrong_method_on_authenticated_route(api, org):
    r = api.put("/api/v1/api-keys", key=org.key, json={"name": "x"})
    assert_error(r, 405)


# --- JSON bodies ---------------------------------------------------------------------------

@pytest.mark.parametrize("body", [b"{", b"{bad json}", b'{"email": "a@b.c",}', b"nul",
                                  b'{"email": "a@b.c"} trailing', b"", b"   "])
def test_malformed_json_is_400(api, body):
    r = api.post("register", data=body, headers=JSON)
    assert_error(r, 400, "invalid_json")


@pytest.mark.parametrize("body", [
    {},
    {"email": 5, "organization_name": "x"},
    {"email": unique_email(), "organization_name": ["x"]},
    {"email": None, "organization_name": "x"},
    {"email": unique_email(), "organization_name": {"a": 1}},
    {"email": unique_email(), "organization_name": True},
    {"email": unique_email(), "organization_name": unique_name(), "first_name": 7},
])
def test_wrong_types_are_422(api, body):
    r = api.post("register", json=body)
    assert_error(r, 422, "validation_error")


@pytest.mark.parametrize("body", [[], [1, 2], "string", 42, None, True])
def test_non_object_json_is_422(api, body):
    r = api.post("register", data=json.dumps(body), headers=JSON)
    assert_error(r, 422, "validation_error")


def test_invalid_utf8_is_400(api):
    body = b'{"email": "\xff\xfe@example.com", "organization_name": "Org \xc3\x28"}'
    r = api.post("register", data=body, headers=JSON)
    assert_error(r, 400)


def test_overlong_utf8_encoding_is_400(api):
    # "/" encoded in two bytes (C0 AF) is not valid UTF-8.
    body = b'{"email": "a\xc0\xafb@example.com", "organization_name": "x"}'
    assert_error(api.post("register", data=body, headers=JSON), 400)


@pytest.mark.parametrize("opener,closer", [('{"a":', "}"), ("[", "]")])
def test_deep_nesting_is_400(api, opener, closer):
    depth = 100
    inner = opener * depth + "1" + closer * depth
    body = '{"email": "%s", "organization_name": "x", "use_case": %s}' % (unique_email(), inner)
    r = api.post("register", data=body, headers=JSON)
    assert_error(r, 400)


def test_moderate_nesting_is_not_a_syntax_error(api):
    # Depth 5 is fine as JSON; use_case must be a string, so this is a validation error.
    inner = '{"a":' * 5 + "1" + "}" * 5
    body = '{"email": "%s", "organization_name": "x", "use_case": %s}' % (unique_email(), inner)
    r = api.post("register", data=body, headers=JSON)
    assert_error(r, 422, "validation_error")


# --- Content-Type --------------------------------------------------------------------------

@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/jsonx"])
def test_wrong_content_type_is_415(api, ctype):
    r = api.post("register", data=json.dumps(valid_register_body()),
                 headers={"Content-Type": ctype})
    assert_error(r, 415)


def test_missing_content_type_is_415(api):
    r = api.post("register", data=json.dumps(valid_register_body()).encode())
    assert "Content-Type" not in r.request.headers
    assert_error(r, 415)


def test_content_type_with_charset_is_accepted(api):
    r = api.post("register", data=json.dumps(valid_register_body()),
                 headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code in (200, 201), r.text


# --- body size -----------------------------------------------------------------------------

SMALL_LIMIT = 4096


@pytest.fixture(scope="module")
def small_body_daemon(start_daemon):
    d = start_daemon("sandboxd-smallbody", {"SANDBOXD_HTTP_MAX_BODY_BYTES": str(SMALL_LIMIT)})
    yield d
    problems = d.shutdown_problems()
    assert not problems, "; ".join(problems) + "\n" + d.tail(60)


def test_body_over_limit_is_413(small_body_daemon):
    import requests
    body = valid_register_body()
    body["use_case"] = "x" * (SMALL_LIMIT * 2)
    r = requests.post(small_body_daemon.base + "/api/v1/register", json=body, timeout=30)
    assert_error(r, 413)


def test_body_under_limit_is_accepted(small_body_daemon):
    import requests
    body = valid_register_body()
    body["use_case"] = "y" * 100
    r = requests.post(small_body_daemon.base + "/api/v1/register", json=body, timeout=30)
    assert r.status_code in (200, 201), r.text


def raw_http(base, request_bytes, read_timeout=15):
    host, port = base.replace("http://", "").split(":")
    with socket.create_connection((host, int(port)), timeout=read_timeout) as s:
        s.sendall(request_bytes)
        chunks = []
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                chunks.append(c)
                data = b"".join(chunks)
                if b"\r\n\r\n" in data:
                    head, _, rest = data.partition(b"\r\n\r\n")
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            if len(rest) >= int(line.split(b":")[1]):
                                return data
        except socket.timeout:
            pass
        return b"".join(chunks)


def test_declared_huge_body_is_413_before_upload(api):
    """Content-Length of 17 MiB (over the 16 MiB default): refused from the headers alone."""
    size = 17 * 1024 * 1024
    req = (f"POST /api/v1/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           f"Content-Length: {size}\r\nConnection: close\r\n\r\n").encode() + b'{"email":"'
    resp = raw_http(api.base, req)
    assert resp.startswith(b"HTTP/1.1 413") or resp.startswith(b"HTTP/1.0 413"), resp[:300]
    _, _, body = resp.partition(b"\r\n\r\n")
    err = json.loads(body.decode())["error"]
    assert err["code"] and err["message"] and err["request_id"]


# --- X-Request-Id --------------------------------------------------------------------------

def test_request_id_echoed_on_success(api):
    rid = "req-" + uuid.uuid4().hex
    r = api.get("/healthz", headers={"X-Request-Id": rid})
    assert r.headers.get("X-Request-Id") == rid


def test_request_id_echoed_on_error(api):
    rid = "req-" + uuid.uuid4().hex
    r = api.get("/api/v1/nope", headers={"X-Request-Id": rid})
    err = assert_error(r, 404)
    assert err["request_id"] == rid


def test_request_id_generated_when_absent(api):
    r1 = api.get("/api/v1/nope")
    r2 = api.get("/api/v1/nope")
    e1, e2 = assert_error(r1, 404), assert_error(r2, 404)
    assert e1["request_id"] != e2["request_id"]
    ok = api.get("/healthz")
    assert ok.headers.get("X-Request-Id")


def test_request_id_generated_on_authenticated_error(api):
    r = api.get("api-keys")
    err = assert_error(r, 401)
    assert err["request_id"] == r.headers["X-Request-Id"]


@pytest.mark.parametrize("rid", ["x" * 1000, "bad id with spaces", "<script>", "a\tb"],
                         ids=["long", "spaces", "html", "tab"])
def test_unsafe_request_id_is_not_echoed_verbatim(api, rid):
    r = api.get("/api/v1/nope", headers={"X-Request-Id": rid})
    assert r.status_code == 404
    got = r.headers.get("X-Request-Id", "")
    assert got and got != rid and len(got) <= 128, got
    assert r.json()["error"]["request_id"] == got


# --- no internal detail --------------------------------------------------------------------

def test_error_messages_have_no_internal_detail(api, org):
    responses = [
        api.get("/api/v1/nope"),
        api.post("register", data=b"{", headers=JSON),
        api.post("register", json={}),
        api.post("register", json={"email": "not-an-email", "organization_name": "x"}),
        api.post("register", json={"email": org.email, "organization_name": unique_name()}),
        api.get("api-keys", headers={"Authorization": "ApiKey sk_live_garbage"}),
        api.delete("api-keys/" + str(uuid.uuid4()), key=org.key),
        api.delete("api-keys/not-a-uuid", key=org.key),
        api.post("api-keys", key=org.key, json={"name": 5}),
    ]
    for r in responses:
        assert r.status_code >= 400, (r.request.method, r.request.url, r.status_code)
        assert r.status_code < 500, (r.request.url, r.status_code, r.text)
        body = r.json()
        assert set(body) == {"error"}, body
        assert_no_internal_detail(body["error"]["message"])
        assert_no_internal_detail(json.dumps(body))
