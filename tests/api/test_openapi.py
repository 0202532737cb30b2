"""The OpenAPI document: served by the daemon, and covering every path the tests use."""
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

# (method, path) pairs the API tests exercise.
USED = [
    ("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"),
    ("post", "/api/v1/register"),
    ("get", "/api/v1/api-keys"), ("post", "/api/v1/api-keys"),
    ("delete", "/api/v1/api-keys/{id}"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/webhooks"), ("post", "/api/v1/webhooks"),
    ("delete", "/api/v1/webhooks/{id}"), ("post", "/api/v1/webhooks/{id}/test"),
    ("get", "/api/v1/webhooks/{id}/deliveries"),
    ("get", "/api/v1/secrets"), ("post", "/api/v1/secrets"), ("put", "/api/v1/secrets/{name}"),
    ("delete", "/api/v1/secrets/{name}"), ("post", "/api/v1/secrets/{name}/check"),
    ("post", "/api/v1/sandbox/{id}/secrets/inject"),
    ("get", "/api/v1/templates"), ("get", "/api/v1/templates/{name}"),
]


@pytest.fixture(scope="module")
def served(daemon):
    import requests
    for path in ("/api/v1/openapi.yaml", "/openapi.yaml"):
        r = requests.get(daemon.base + path, timeout=10)
        if r.status_code == 200:
            return r
    pytest.fail("neither /api/v1/openapi.yaml nor /openapi.yaml is served")


@pytest.fixture(scope="module")
def doc(served):
    d = yaml.safe_load(served.text)
    assert isinstance(d, dict)
    return d


def test_served_without_auth_as_yaml(served):
    ctype = served.headers.get("Content-Type", "")
    assert "yaml" in ctype or ctype.startswith("text/"), ctype


def test_both_locations_serve_the_same_document(daemon):
    import requests
    a = requests.get(daemon.base + "/api/v1/openapi.yaml", timeout=10)
    b = requests.get(daemon.base + "/openapi.yaml", timeout=10)
    assert a.status_code == 200 and b.status_code == 200
    assert a.content == b.content


def test_served_document_is_the_repository_file(served):
    path = REPO / "docs" / "api" / "openapi.yaml"
    assert path.exists(), "docs/api/openapi.yaml is missing"
    assert served.content == path.read_bytes(), "served document differs from docs/api/openapi.yaml"


def test_is_openapi_3(doc):
    assert str(doc.get("openapi", "")).startswith("3."), doc.get("openapi")
    assert doc.get("info", {}).get("title")
    assert isinstance(doc.get("paths"), dict) and doc["paths"]


def _normalise(doc):
    """Paths as absolute request paths, whatever the servers' base path is."""
    prefixes = {""}
    for s in doc.get("servers") or []:
        url = s.get("url", "")
        if "://" in url:
            url = "/" + url.split("://", 1)[1].split("/", 1)[-1] if "/" in url.split("://", 1)[1] \
                else ""
        prefixes.add(url.rstrip("/"))
    out = {}
    for p, item in doc["paths"].items():
        for prefix in prefixes:
            out[prefix + p] = item
    return out


def _canon(path):
    # "{id}", "{key_id}" … → "{}"
    import re
    return re.sub(r"\{[^}]+\}", "{}", path)


@pytest.mark.parametrize("method,path", USED)
def test_used_paths_are_documented(doc, method, path):
    paths = {_canon(p): item for p, item in _normalise(doc).items()}
    item = paths.get(_canon(path))
    assert item is not None, f"{path} not in openapi.yaml paths"
    assert method in item, f"{method.upper()} {path} not documented"
    op = item[method]
    assert op.get("responses"), f"{method.upper()} {path} documents no responses"


def test_error_envelope_documented(doc):
    text = yaml.safe_dump(doc)
    for word in ("request_id", "invalid_json", "validation_error", "insufficient_scope"):
        assert word in text, f"{word} not documented"
