"""Templates (issue 5): the registry (built-in), list/get, create with a template's defaults
(request values override), unknown → 400 with the valid names, templates.file with an
unavailable template."""
import pytest

from apihelpers import assert_error
from conftest import RUNTIME
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
        if RUNTIME == "local":
            assert ts["ghost"]["available"] is False and ts["ghost"]["unavailable_reason"]
        else:
            # by design (controller/templates.c): `requires` names a file of the daemon's host,
            # which only local sandboxes see; pods run k8s.image, which the controller cannot
            # inspect, so every template is available on the Kubernetes runtime
            assert ts["ghost"]["available"] is True, ts["ghost"]
        c = SandboxClient(pd.api, key, state_dir=pd.state_dir)
        sb = c.create({"template": "tiny"})
        assert sb["cpus"] == "0.25" and sb["memory"] == "64Mi" and sb["timeout_seconds"] == 90
        assert c.execute(sb["sandbox_id"], "echo $GREETING")["stdout"] == "hello\n"
        if RUNTIME == "local":
            assert_error(pd.api.post("sandbox/create", key=key, json={"template": "ghost"}),
                         422, "template_unavailable")
        assert_error(pd.api.post("sandbox/create", key=key, json={"template": "base"}), 400,
                     "unknown_template")
        c.cleanup()
    finally:
        assert pd.shutdown() in (0, None)


@pytest.mark.parametrize("entry,message", [
    ("    cpus: lots\n", ":3: invalid cpus"),
    ("    tolerations:\n      - {key: gpu, operator: Sometimes}\n",
     ":4: toleration: operator must be Equal or Exists"),
    ("    tolerations:\n      - {operator: Equal, value: x}\n",
     ":4: toleration: a toleration without a key needs operator Exists"),
    ("    tolerations:\n      - {key: gpu, effect: Never}\n", ":4: toleration: effect must be"),
    ("    node_selector: {\"bad key!\": x}\n", ":3: node_selector: invalid label key"),
    ("    node_selector: {pool: [a]}\n", ":3: 'node_selector' must be a mapping"),
    ("    runtime_class: Kata_Containers\n", ":3: invalid runtime_class"),
    ("    image: \"has space\"\n", ":3: invalid image"),
])
def test_bad_templates_file_refuses_start(aux_pg, tmp_path_factory, entry, message):
    wd = tmp_path_factory.mktemp("tplbad")
    f = wd / "templates.yaml"
    f.write_text("templates:\n  - name: x\n" + entry)
    pd = PrivateDaemon(aux_pg, wd, "tplbad", {"SANDBOXD_TEMPLATES_FILE": str(f)})
    with pytest.raises(RuntimeError) as e:
        pd.start()
    assert message in str(e.value), str(e.value)[-500:]


# ---------------------------------------------------------------------------------------------
# Org-private templates promoted from checkpoints (POST /api/v1/checkpoints/:id/promote)
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def ck_orgs(daemon):
    """Two organizations on the session daemon (fs blob store) with checkpoint helpers."""
    from pathlib import Path

    import ckpthelpers
    env = ckpthelpers.Env("fs", daemon.base, ckpthelpers.FsStore(Path(daemon.state_dir) / "blobs"),
                          daemon.state_dir)
    a, b = ckpthelpers.Org(env, env.register()), ckpthelpers.Org(env, env.register())
    yield a, b
    a.sb.cleanup()
    b.sb.cleanup()


def test_promote_checkpoint_to_template(ck_orgs):
    from ckpthelpers import workspace_state
    o, other = ck_orgs
    sid = o.new_sandbox()
    o.sh(sid, "mkdir -p /workspace/app && head -c 50000 /dev/urandom > /workspace/app/blob.bin"
              " && printf 'print(1)\\n' > /workspace/app/main.py && chmod 0750 /workspace/app")
    ck = o.checkpoint(sid, "golden")
    state = workspace_state(o, sid)
    o.drop_sandbox(sid)

    r = o.post(f"checkpoints/{ck['id']}/promote", {"template_name": "my-app.v1",
                                                    "description": "golden image"})
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["name"] == "my-app.v1" and t["checkpoint_id"] == ck["id"]
    assert t["source"] == "checkpoint" and t["org_private"] is True and t["available"] is True
    assert t["description"] == "golden image"

    # listed next to the built-ins, and readable by name; not visible to another org
    names = [x["name"] for x in o.get("templates").json()["templates"]]
    assert "my-app.v1" in names and "base" in names
    assert o.get("templates/my-app.v1").json()["checkpoint_id"] == ck["id"]
    assert "my-app.v1" not in [x["name"] for x in other.get("templates").json()["templates"]]
    assert_error(other.get("templates/my-app.v1"), 404)
    assert_error(other.sb.create_raw({"template": "my-app.v1"}), 400, "unknown_template")

    # a sandbox from the template starts with the checkpoint's workspace
    sb = o.sb.create({"template": "my-app.v1"}, timeout=300)
    assert sb["template"] == "my-app.v1"
    assert workspace_state(o, sb["sandbox_id"]) == state
    o.drop_sandbox(sb["sandbox_id"])
    assert_error(o.sb.create_raw({"template": "my-app.v1", "from_checkpoint": ck["id"]}), 422)

    # the checkpoint cannot be deleted while the template references it
    assert_error(o.delete(f"checkpoints/{ck['id']}"), 409, "checkpoint_in_use")
    assert o.get(f"checkpoints/{ck['id']}").status_code == 200
    # duplicates, built-in names, bad names, cross-org checkpoints, unknown checkpoints
    assert_error(o.post(f"checkpoints/{ck['id']}/promote", {"template_name": "my-app.v1"}), 409,
                 "template_exists")
    assert_error(o.post(f"checkpoints/{ck['id']}/promote", {"template_name": "python-basic"}),
                 409, "template_exists")
    for bad in ["", "Upper", "-lead", "a b", "x" * 65, "a/b", "é", 5, None]:
        assert_error(o.post(f"checkpoints/{ck['id']}/promote", {"template_name": bad}), 422)
    assert_error(o.post(f"checkpoints/{ck['id']}/promote", {}), 422)
    assert_error(other.post(f"checkpoints/{ck['id']}/promote", {"template_name": "stolen"}), 404)
    assert_error(o.post("checkpoints/00000000-0000-4000-8000-000000000000/promote",
                        {"template_name": "ghost"}), 404)
    assert_error(o.post("checkpoints/not-a-uuid/promote", {"template_name": "ghost"}), 404)
    # another org may use the same name for its own checkpoint
    sid_b = other.new_sandbox()
    ck_b = other.checkpoint(sid_b, "theirs")
    assert other.post(f"checkpoints/{ck_b['id']}/promote",
                      {"template_name": "my-app.v1"}).status_code == 201
    assert_error(o.delete("templates/base"), 409)
    assert_error(other.delete(f"checkpoints/{ck_b['id']}"), 409)

    # deleting the template frees the checkpoint; the template is gone for creates
    assert_error(other.delete("templates/nope"), 404)
    assert o.delete("templates/my-app.v1").status_code == 200
    assert_error(o.get("templates/my-app.v1"), 404)
    assert_error(o.sb.create_raw({"template": "my-app.v1"}), 400, "unknown_template")
    assert other.get("templates/my-app.v1").status_code == 200
    assert o.delete(f"checkpoints/{ck['id']}").status_code == 200


def test_promote_is_audited_and_documented(ck_orgs):
    import yaml

    from ckpthelpers import REPO
    o, _ = ck_orgs
    sid = o.new_sandbox()
    ck = o.checkpoint(sid, "a")
    assert o.post(f"checkpoints/{ck['id']}/promote", {"template_name": "audited"}).status_code \
        == 201
    acts = [e["action"] for e in o.get("audit", params={"limit": 50}).json()["events"]]
    assert "template.promote" in acts
    spec = yaml.safe_load((REPO / "docs/api/openapi.yaml").read_text())
    assert "post" in spec["paths"]["/api/v1/checkpoints/{id}/promote"]
    assert "delete" in spec["paths"]["/api/v1/templates/{name}"]
