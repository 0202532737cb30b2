"""Templates (issue 5): the registry (built-in), list/get, create with a template's defaults
(request values override), unknown → 400 with the valid names, templates.file with an
unavailable template."""
import pytest

from apihelpers import assert_error
from sandboxhelpers import PrivateDaemon, SandboxClient
from sandboxhelpers import aux_pg, sandboxes, traversable_state  # noqa: F401 (fixtures)


def test_list_and_get(api, org):
    r = api.get("templates", key=org.key)
    assert r.status_code == 200
    ts = {t["name"]: t for t in r.json()["templates"]}
    assert {"base", "python-basic", "node-basic"} <= set(ts)
    for t in ts.values():
        assert set(t) >= {"name", "description", "image", "runtime_notes", "cpus", "memory",
                          "timeout_seconds", "env", "allow_network", "warm_pool_size",
                          "available"}
        assert isinstance(t["env"], dict) and isinstance(t["available"], bool)
    assert ts["python-basic"]["env"]["PYTHONUNBUFFERED"] == "1"
    assert ts["base"]["available"] is True
    r = api.get("templates/python-basic", key=org.key)
    assert r.status_code == 200 and r.json()["name"] == "python-basic"
    assert_error(api.get("templates/nope", key=org.key), 404, "not_found")
    assert api.get("templates").status_code == 401


def test_create_with_template_defaults_and_override(api, org, sandboxes):
    ts = {t["name"]: t for t in api.get("templates", key=org.key).json()["templates"]}
    if not ts["python-basic"]["available"]:
        pytest.skip("python3 is not installed on this host")
    sb = sandboxes.create({"template": "python-basic", "env": {"MINE": "1"}})
    assert sb["template"] == "python-basic"
    out = sandboxes.execute(sb["sandbox_id"],
                            'echo "$PYTHONUNBUFFERED/$MINE"; python3 -c "print(6*7)"')
    assert out["stdout"] == "1/1\n42\n", out
    assert api.delete(f"sandbox/{sb['sandbox_id']}", key=org.key).status_code == 200
    sb2 = sandboxes.create({"template": "python-basic", "env": {"PYTHONUNBUFFERED": "0"},
                            "cpus": "0.5", "timeout_seconds": 120})
    assert sb2["cpus"] == "0.5" and sb2["timeout_seconds"] == 120
    assert sandboxes.execute(sb2["sandbox_id"], 'echo $PYTHONUNBUFFERED')["stdout"] == "0\n"
    assert api.delete(f"sandbox/{sb2['sandbox_id']}", key=org.key).status_code == 200
    sb3 = sandboxes.create({"template": "base"})
    assert sb3["template"] == "base"


def test_unknown_template(api, org):
    r = api.post("sandbox/create", key=org.key, json={"template": "cobol-85"})
    assert_error(r, 400, "unknown_template")
    msg = r.json()["error"]["message"]
    for name in ("base", "python-basic", "node-basic"):
        assert name in msg
    assert_error(api.post("sandbox/create", key=org.key, json={"template": 7}), 422)
    assert_error(api.post("sandbox/create", key=org.key, json={"template": ""}), 422)


def test_templates_file(aux_pg, tmp_path_factory):
    wd = tmp_path_factory.mktemp("tplfile")
    f = wd / "templates.yaml"
    f.write_text("templates:\n"
                 "  - name: tiny\n"
                 "    description: tiny shell\n"
                 "    requires: /bin/sh\n"
                 "    cpus: \"0.25\"\n"
                 "    memory: 64Mi\n"
                 "    timeout: 90s\n"
                 "    env: {GREETING: hello}\n"
                 "  - name: ghost\n"
                 "    description: needs a missing interpreter\n"
                 "    requires: /nonexistent/bin/ghost\n")
    pd = PrivateDaemon(aux_pg, wd, "tpl", {"SANDBOXD_TEMPLATES_FILE": str(f)}).start()
    try:
        key = pd.register()["api_key"]["key"]
        ts = {t["name"]: t for t in pd.api.get("templates", key=key).json()["templates"]}
        assert set(ts) == {"tiny", "ghost"}
        assert ts["tiny"]["cpus"] == "0.25" and ts["tiny"]["timeout_seconds"] == 90
        assert ts["ghost"]["available"] is False and ts["ghost"]["unavailable_reason"]
        c = SandboxClient(pd.api, key, state_dir=pd.state_dir)
        sb = c.create({"template": "tiny"})
        assert sb["cpus"] == "0.25" and sb["memory"] == "64Mi" and sb["timeout_seconds"] == 90
        assert c.execute(sb["sandbox_id"], "echo $GREETING")["stdout"] == "hello\n"
        assert_error(pd.api.post("sandbox/create", key=key, json={"template": "ghost"}), 422,
                     "template_unavailable")
        assert_error(pd.api.post("sandbox/create", key=key, json={"template": "base"}), 400,
                     "unknown_template")
        c.cleanup()
    finally:
        assert pd.shutdown() in (0, None)


def test_bad_templates_file_refuses_start(aux_pg, tmp_path_factory):
    wd = tmp_path_factory.mktemp("tplbad")
    f = wd / "templates.yaml"
    f.write_text("templates:\n  - name: x\n    cpus: lots\n")
    pd = PrivateDaemon(aux_pg, wd, "tplbad", {"SANDBOXD_TEMPLATES_FILE": str(f)})
    with pytest.raises(RuntimeError) as e:
        pd.start()
    assert "invalid cpus" in str(e.value)
