"""Checks made after every other test has used the session daemon: every route the tests
called is documented in the OpenAPI document, and the graceful shutdown.

SIGTERM must make the daemon exit 0 within 10 seconds, and (under ASan/UBSan) its stderr must
hold no sanitizer report: a leak, a use-after-free or undefined behaviour anywhere during the
session fails this test. (Runs last: see pytest_collection_modifyitems in conftest.py.)
"""
import re

import pytest
import requests
import yaml


@pytest.mark.last
def test_every_route_the_tests_called_is_documented(daemon):
    """The daemon logs each request's route pattern; each (method, pattern) seen during the
    session must be an operation of /api/v1/openapi.yaml."""
    r = requests.get(daemon.base + "/api/v1/openapi.yaml", timeout=10)
    assert r.status_code == 200
    doc = yaml.safe_load(r.text)
    documented = set()
    for path, item in (doc.get("paths") or {}).items():
        for method in item:
            documented.add((method.upper(), re.sub(r"\{[^}]+\}", "{}", path)))
    used = set()
    for line in daemon.lines():
        route, method = line.get("route"), line.get("method")
        if not route or not method or not route.startswith("/"):  # "unmatched": 404/405
            continue
        method = "GET" if method == "HEAD" else method
        used.add((method, re.sub(r":[A-Za-z_]+", "{}", route)))
    assert used, "no request lines with a route in the daemon log"
    missing = sorted(u for u in used if u not in documented)
    assert not missing, f"routes called by the tests but not in openapi.yaml: {missing}"


@pytest.mark.last
def test_graceful_shutdown_after_the_session(daemon):
    assert daemon.alive(), f"the daemon died during the session\n{daemon.tail()}"
    problems = daemon.shutdown_problems()
    assert not problems, "; ".join(problems) + "\n" + daemon.tail(60)
