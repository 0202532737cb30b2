"""Small helpers shared by the API tests (importable: conftest puts this directory on sys.path)."""
import re
import uuid

KEY_RE = re.compile(r"^sk_(live|test)_[A-Za-z0-9_]+$")

# Words that betray internals in an error message meant for the API user.
INTERNAL_WORDS = re.compile(
    r"\bSQL\b|postgres|libpq|\bPQ[a-z]+|errno|strerror|"
    r"(?-i:\bE(INVAL|NOENT|EXIST|PERM|ACCES|IO|TIMEDOUT|NOMEM|2BIG|AGAIN|CONNREFUSED|BADF|NOSPC)\b)|"
    r"No such file or directory|Invalid argument|Input/output error|Connection refused|"
    r"(^|[\s'\"(])/(usr|home|tmp|var|work|etc|root|proc|srv|opt)/|\.[ch]:\d+|segfault|"
    r"yajl|libwebsockets|\blws_|stack trace|syntax error at|relation \"|duplicate key value|"
    r"violates .*constraint|pg_catalog|\bsandboxd_(owner|app)\b",
    re.IGNORECASE)


def auth(key, org_id=None, scheme="ApiKey"):
    """Authorization headers for an API key (optionally with X-Org-Id)."""
    h = {"Authorization": f"{scheme} {key}"}
    if org_id is not None:
        h["X-Org-Id"] = org_id
    return h


def unique_email(prefix="user"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def unique_name(prefix="Org"):
    return f"{prefix} {uuid.uuid4().hex[:10]}"


def assert_error(r, status, code=None):
    """Asserts an error response: status, the JSON envelope {"error":{code,message,request_id}},
    request_id equal to the X-Request-Id header, and no internal detail in the message.
    Returns the inner error object."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:500]}"
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), f"error Content-Type is {ctype!r}"
    body = r.json()
    assert isinstance(body, dict) and set(body) >= {"error"}, body
    err = body["error"]
    assert isinstance(err, dict), body
    for field in ("code", "message", "request_id"):
        assert isinstance(err.get(field), str) and err[field], f"error.{field} missing: {body}"
    if code is not None:
        assert err["code"] == code, f"expected code {code!r}, got {err['code']!r}: {body}"
    rid = r.headers.get("X-Request-Id")
    assert rid, "no X-Request-Id header on an error response"
    assert err["request_id"] == rid, f"envelope request_id {err['request_id']!r} != header {rid!r}"
    assert_no_internal_detail(err["message"])
    return err


def assert_no_internal_detail(text):
    m = INTERNAL_WORDS.search(text)
    assert m is None, f"internal detail {m.group(0)!r} leaked in {text!r}"


def is_iso8601(s):
    return isinstance(s, str) and re.match(
        r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$", s) is not None
