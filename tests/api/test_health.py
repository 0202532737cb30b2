"""Liveness, readiness and metrics."""
import re

import pytest


def test_healthz(api):
    r = api.get("/healthz")
    assert r.status_code == 200, r.text


def test_readyz(api):
    r = api.get("/readyz")
    assert r.status_code == 200, r.text


def test_health_needs_no_auth_and_ignores_bad_auth(api):
    r = api.get("/healthz", headers={"Authorization": "ApiKey garbage"})
    assert r.status_code == 200


def test_healthz_head(api):
    r = api.session.head(api.url("/healthz"), timeout=10)
    assert r.status_code == 200
    assert r.content == b""


METRIC_LINE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)(\s+\d+)?$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format → list of (name, {labels}, value); also checks the syntax."""
    samples = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* ", line) or \
                line.startswith("# "), f"bad comment line {line!r}"
            continue
        m = METRIC_LINE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(LABEL.findall(m.group("labels") or ""))
        value = m.group("value")
        assert re.match(r"^([+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+)|[+-]?Inf|NaN)$", value), line
        samples.append((m.group("name"), labels, float(value)))
    return samples


@pytest.fixture
def metrics_after_traffic(api, org):
    # Some traffic with known routes and statuses.
    assert api.get("api-keys", key=org.key).status_code == 200
    assert api.get("api-keys").status_code == 401
    assert api.get("/healthz").status_code == 200
    r = api.get("/metrics")
    assert r.status_code == 200, r.text
    return r


def test_metrics_is_prometheus_text(metrics_after_traffic):
    r = metrics_after_traffic
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers
    samples = parse_metrics(r.text)
    assert samples
    assert "# TYPE" in r.text


def _find_family(samples, suffix_opts, label_pred=lambda l: True):
    return [(n, l, v) for (n, l, v) in samples if any(n.endswith(s) for s in suffix_opts)
            and label_pred(l)]


def _route_label(labels):
    return labels.get("route") or labels.get("path") or labels.get("handler")


def _status_label(labels):
    return labels.get("status") or labels.get("code") or labels.get("status_code")


def test_metrics_request_counter_by_route_and_status(metrics_after_traffic):
    samples = parse_metrics(metrics_after_traffic.text)
    counters = [(n, l, v) for (n, l, v) in samples
                if n.endswith("_requests_total") and _route_label(l) is not None
                and _status_label(l) is not None]
    assert counters, "no *_requests_total counter with route and status labels"
    by = {(_route_label(l), _status_label(l)): v for (n, l, v) in counters}
    assert by.get(("/api/v1/api-keys", "200"), 0) >= 1, sorted(by)
    assert by.get(("/api/v1/api-keys", "401"), 0) >= 1, sorted(by)
    # The route label is the pattern, never the raw path (bounded cardinality).
    for (route, _status) in by:
        assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", route or ""), \
            f"raw id in route label {route!r}"


def test_metrics_latency_histogram_by_route_and_status(metrics_after_traffic):
    samples = parse_metrics(metrics_after_traffic.text)
    buckets = [(n, l, v) for (n, l, v) in samples if n.endswith("_bucket") and "le" in l
               and _route_label(l) is not None and _status_label(l) is not None]
    assert buckets, "no latency histogram buckets with route and status labels"
    fam = {}
    for (n, l, v) in buckets:
        key = (n, _route_label(l), _status_label(l))
        fam.setdefault(key, []).append((l["le"], v))
    key = next((k for k in fam if k[1] == "/api/v1/api-keys" and k[2] == "200"), None)
    assert key, sorted(fam)
    series = fam[key]
    les = [le for le, _ in series]
    assert "+Inf" in les, les
    # cumulative buckets: non-decreasing with le
    ordered = sorted(series, key=lambda t: float("inf") if t[0] == "+Inf" else float(t[0]))
    values = [v for _, v in ordered]
    assert values == sorted(values), ordered
    assert values[-1] >= 1
    base = key[0][:-len("_bucket")]
    names = {n for (n, _, _) in samples}
    assert base + "_sum" in names and base + "_count" in names, sorted(names)


def test_metrics_needs_no_secret_in_output(metrics_after_traffic, org):
    assert org.key not in metrics_after_traffic.text
