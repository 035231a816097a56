"""Tests of the Proxmox VE API double itself (tests/pve_double).

The central one walks every endpoint the double serves and validates each answer
against the official PVE `returns` schema in tests/pve_double/pve-api/schema-subset.json.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests` is imported as a package from the repo root
    sys.path.insert(0, str(ROOT))

from tests.pve_double import (  # noqa: E402
    ROLES,
    DoubleServer,
    Guest,
    Storage,
    generate_cluster,
    load_scenario,
    write_tfvars,
)

# Vendored with its provenance in tests/pve_double/pve-api/README.md; PVE_API_SCHEMA may point at a newer extract.
SCHEMA_PATH = Path(os.environ.get("PVE_API_SCHEMA", ROOT / "tests" / "pve_double" / "pve-api" / "schema-subset.json"))
# Items of GET /storage are documented with `storage` only, though PVE sends the whole storage.cfg entry;
# GET /nodes items also carry `id` and `type` (PVE's extract_node_stats), which community.proxmox reads.
_OPEN_PATHS = {"/storage", "/storage/{storage}", "/nodes"}


# --------------------------------------------------------------------------
# PVE schema dialect -> JSON Schema
# --------------------------------------------------------------------------


def pve_to_jsonschema(pve: dict, closed: bool = False) -> dict:
    """Convert PVE's schema dialect to JSON Schema.

    Faithful to PVE's own checker: a property is required unless `optional` is
    true; `boolean` travels as 0/1; `pattern` is anchored; `net[n]` names stand
    for net0, net1, ...; extra properties are allowed unless
    `additionalProperties` is 0. With `closed`, objects that list their
    properties also refuse undeclared ones, to catch a misspelled field.
    """
    out: dict = {}
    kind = pve.get("type")
    if kind == "boolean":
        out.update(type="integer", enum=[0, 1])
    elif isinstance(kind, list):
        out["type"] = ["integer" if k == "boolean" else k for k in kind]
    elif kind is not None:
        out["type"] = kind
    for key in ("minimum", "maximum", "maxLength", "minLength"):
        if key in pve:
            out[key] = pve[key]
    if "enum" in pve and kind != "boolean":
        out["enum"] = pve["enum"]
    if "pattern" in pve:  # PVE anchors patterns and writes Perl's (?^: groups
        out["pattern"] = "^(?:" + pve["pattern"].replace("(?^:", "(?:") + ")$"
    if "items" in pve:
        out["items"] = pve_to_jsonschema(pve["items"], closed)
    if "properties" in pve:
        props, patterns, required = {}, {}, []
        for name, sub in pve["properties"].items():
            converted = pve_to_jsonschema(sub, closed)
            if name.endswith("[n]"):
                patterns[f"^{re.escape(name[:-3])}\\d+$"] = converted
            else:
                props[name] = converted
                if not sub.get("optional"):
                    required.append(name)
        out["properties"] = props
        if patterns:
            out["patternProperties"] = patterns
        if required:
            out["required"] = sorted(required)
    extra = pve.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = pve_to_jsonschema(extra, closed)
    elif extra is not None:
        out["additionalProperties"] = bool(extra)
    elif closed and "properties" in pve:
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def pve_schema() -> dict:
    if not SCHEMA_PATH.is_file():
        pytest.fail(f"PVE API schema not found at {SCHEMA_PATH.resolve()} (PVE_API_SCHEMA, else the vendored "
                    "tests/pve_double/pve-api/schema-subset.json)")
    return json.loads(SCHEMA_PATH.read_text())


def _validator(pve_schema: dict, template: str, method: str, closed: bool):
    schema = pve_to_jsonschema(pve_schema[template][method]["returns"], closed and template not in _OPEN_PATHS)
    return jsonschema.Draft202012Validator(schema)


# --------------------------------------------------------------------------
# Helpers and fixtures
# --------------------------------------------------------------------------


def _get(d: DoubleServer, path: str, session=None, **kwargs) -> requests.Response:
    kwargs.setdefault("headers", d.auth_header())
    kwargs.setdefault("verify", d.ca_path)  # explicit: REQUESTS_CA_BUNDLE would win over a session setting
    kwargs.setdefault("timeout", 10)
    return (session or requests).get(d.api_url + path, **kwargs)


def _data(d: DoubleServer, path: str, session=None, **kwargs):
    r = _get(d, path, session, **kwargs)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()["data"]


def _control(d: DoubleServer, method: str, path: str, body=None):
    """Call the double's control API over HTTP (not counted, not slowed down) and return its JSON answer."""
    r = requests.request(method, d.control_url + path, json=body, headers={"X-Double-Token": d.control_token},
                         verify=d.ca_path, timeout=10)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def _login(d: DoubleServer) -> dict:
    r = requests.post(d.api_url + "/access/ticket", data={"username": d.user, "password": d.password},
                      verify=d.ca_path, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"]


@pytest.fixture(scope="module")
def sample():
    with DoubleServer(load_scenario(ROOT / "tests/pve_double/scenarios/sample.yml")) as d:
        yield d


@pytest.fixture(scope="module")
def generated():
    cluster = generate_cluster(nodes=4, guests=60, seed=7, templates=2, duplicate_names=3, offline_nodes=1)
    with DoubleServer(cluster) as d:
        yield d


@pytest.fixture
def double():
    """A fresh sample double for tests that change it."""
    with DoubleServer(load_scenario(ROOT / "tests/pve_double/scenarios/sample.yml")) as d:
        yield d


# --------------------------------------------------------------------------
# Every endpoint against the official schema
# --------------------------------------------------------------------------


def _walk(d: DoubleServer, s: requests.Session):
    """Yield (method, schema path, answer) for every endpoint and object the double serves."""
    for path in ("/version", "/nodes", "/cluster/status"):
        yield "GET", path, _data(d, path, s)
    for kind in (None, "vm", "storage", "node", "sdn"):
        yield "GET", "/cluster/resources", _data(d, "/cluster/resources", s, params={"type": kind} if kind else {})
    pools = _data(d, "/pools", s)
    yield "GET", "/pools", pools
    for pool in pools:
        for kind in (None, "qemu", "lxc"):
            params = {"poolid": pool["poolid"], **({"type": kind} if kind else {})}
            yield "GET", "/pools", _data(d, "/pools", s, params=params)
    storages = _data(d, "/storage", s)
    yield "GET", "/storage", storages
    yield "GET", "/storage", _data(d, "/storage", s, params={"type": "dir"})
    for st in storages:
        yield "GET", "/storage/{storage}", _data(d, f"/storage/{st['storage']}", s)
    for node in _data(d, "/nodes", s):
        if node["status"] != "online":
            continue
        n = node["node"]
        node_storages = _data(d, f"/nodes/{n}/storage", s)
        yield "GET", "/nodes/{node}/storage", node_storages
        yield "GET", "/nodes/{node}/storage", _data(d, f"/nodes/{n}/storage", s,
                                                    params={"content": "images", "enabled": 1, "format": 1})
        for st in node_storages:
            yield ("GET", "/nodes/{node}/storage/{storage}/status",
                   _data(d, f"/nodes/{n}/storage/{st['storage']}/status", s))
        for kind in ("qemu", "lxc"):
            guests = _data(d, f"/nodes/{n}/{kind}", s)
            yield "GET", f"/nodes/{{node}}/{kind}", guests
            for g in guests:
                base = f"/nodes/{n}/{kind}/{g['vmid']}"
                config = _data(d, base + "/config", s)
                yield "GET", f"/nodes/{{node}}/{kind}/{{vmid}}/config", config
                if kind == "qemu":
                    yield "GET", "/nodes/{node}/qemu/{vmid}/status/current", _data(d, base + "/status/current", s)
                    if g["status"] == "running" and config.get("agent") == "1":
                        yield ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
                               _data(d, base + "/agent/network-get-interfaces", s))
                elif g["status"] == "running":
                    yield "GET", "/nodes/{node}/lxc/{vmid}/interfaces", _data(d, base + "/interfaces", s)
    yield "GET", "/access/ticket", _data(d, "/access/ticket", s, headers={})
    yield "POST", "/access/ticket", _login(d)


@pytest.mark.parametrize("which", ["sample", "generated"])
def test_every_endpoint_matches_the_official_schema(request, pve_schema, which):
    d = request.getfixturevalue(which)
    seen, answers = set(), 0
    with requests.Session() as s:
        for method, template, data in _walk(d, s):
            for closed in (False, True):
                errors = sorted(_validator(pve_schema, template, method, closed).iter_errors(data), key=str)
                where = f"{method} {template} (closed={closed})"
                assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"
            seen.add((template, method))
            answers += 1
    wanted = {(path, method) for path, methods in pve_schema.items() for method in methods}
    assert seen == wanted, f"endpoints not walked: {sorted(wanted - seen)}"
    assert answers > 40


def test_converter_is_faithful_and_not_vacuous(pve_schema):
    resources = jsonschema.Draft202012Validator(
        pve_to_jsonschema(pve_schema["/cluster/resources"]["GET"]["returns"], closed=True))
    good = {"id": "qemu/100", "type": "qemu", "vmid": 100, "template": 0, "name": "a"}
    assert resources.is_valid([good])
    assert not resources.is_valid([dict(good, template=True)])  # booleans travel as 0/1
    assert not resources.is_valid([{"type": "qemu"}])  # id is required
    assert not resources.is_valid([dict(good, tags=["a", "b"])])  # tags is one string
    assert not resources.is_valid([dict(good, vmid=99)])
    assert not resources.is_valid([dict(good, nmae="typo")])  # closed catches misspellings
    config = jsonschema.Draft202012Validator(
        pve_to_jsonschema(pve_schema["/nodes/{node}/qemu/{vmid}/config"]["GET"]["returns"], closed=True))
    assert config.is_valid({"digest": "x", "net7": "virtio=AA:BB:CC:DD:EE:FF,bridge=vmbr0"})
    assert not config.is_valid({"net0": "virtio=AA"})  # digest is required
    assert not config.is_valid({"digest": "x", "vmgenid": "not-a-uuid"})  # anchored pattern
    version = pve_to_jsonschema(pve_schema["/version"]["GET"]["returns"])
    assert not jsonschema.Draft202012Validator(version).is_valid({"version": "9", "release": "9", "repoid": "xyz"})


# --------------------------------------------------------------------------
# Content of the answers
# --------------------------------------------------------------------------


def test_sample_scenario_tells_the_demo_story(sample):
    vms = {g["vmid"]: g for g in _data(sample, "/cluster/resources", params={"type": "vm"})}
    agent = vms[100]
    assert (agent["name"], agent["id"], agent["status"], agent["type"]) == ("AI-agent", "qemu/100", "running", "qemu")
    ifaces = _data(sample, "/nodes/pve1/qemu/100/agent/network-get-interfaces")["result"]
    assert "10.10.0.50" in [a["ip-address"] for i in ifaces for a in i["ip-addresses"]]
    assert [vms[110]["name"], vms[111]["name"]] == ["worker", "worker"]
    assert vms[9000]["name"] == "debian12-tpl" and vms[9000]["template"] == 1
    assert {g["type"] for g in vms.values()} == {"qemu", "lxc"}
    assert {g["status"] for g in vms.values()} == {"running", "stopped"}
    assert not {"test", "test-2"} & {g["name"] for g in vms.values()}
    assert "tags" not in vms[110] and vms[100]["tags"] == "ai;prod"
    assert {p["poolid"] for p in _data(sample, "/pools")} == {"prod", "dev"}
    storages = {s["storage"]: s for s in _data(sample, "/storage")}
    assert {k: v["type"] for k, v in storages.items()} == {
        "local": "dir", "local-lvm": "lvmthin", "HDD-Storage": "lvm", "ssd-pool": "zfspool", "nfs-backup": "nfs"}
    assert storages["HDD-Storage"]["nodes"] == "pve1,pve2"
    assert "HDD-Storage" not in {s["storage"] for s in _data(sample, "/nodes/pve3/storage")}
    nfs = {r["node"]: r for r in _data(sample, "/cluster/resources", params={"type": "storage"})
           if r["storage"] == "nfs-backup"}
    assert set(nfs) == {"pve1", "pve2", "pve3"} and all(r["shared"] == 1 for r in nfs.values())
    config = _data(sample, "/nodes/pve1/qemu/100/config")
    assert config["agent"] == "1" and config["tags"] == "ai;prod" and config["net0"].startswith("virtio=")
    members = _data(sample, "/pools", params={"poolid": "dev", "type": "qemu"})[0]["members"]
    assert sorted(m["vmid"] for m in members) == [110, 111]


def test_generated_cluster_has_offline_node_duplicates_templates_and_lxc(generated):
    vms = _data(generated, "/cluster/resources", params={"type": "vm"})
    assert len(vms) == 60
    offline = [n["node"] for n in _data(generated, "/nodes") if n["status"] == "offline"]
    assert offline == ["pve4"]
    on_offline = [g for g in vms if g["node"] == "pve4"]
    assert on_offline and all(g["status"] == "unknown" and "uptime" not in g for g in on_offline)
    names = [g["name"] for g in vms]
    assert len(names) - len(set(names)) == 3
    assert sum(g["template"] for g in vms) == 2
    assert any(g["type"] == "lxc" for g in vms)
    g = on_offline[0]
    for path in (f"/nodes/pve4/{g['type']}", f"/nodes/pve4/{g['type']}/{g['vmid']}/config", "/nodes/pve4/storage"):
        r = _get(generated, path)
        assert r.status_code == 595, (path, r.status_code)
    status = {i["name"]: i for i in _data(generated, "/cluster/status")}
    assert status["pve4"]["online"] == 0 and status["generated"]["quorate"] == 1


def test_generator_is_deterministic_and_follows_the_ip_rules():
    a = generate_cluster(nodes=3, guests=200, seed=5, duplicate_names=4, templates=2)
    b = generate_cluster(nodes=3, guests=200, seed=5, duplicate_names=4, templates=2)
    c = generate_cluster(nodes=3, guests=200, seed=6, duplicate_names=4, templates=2)

    def shape(cluster):
        return [(g.vmid, g.name, g.type, g.node, g.status, tuple(g.tags), g.pool, tuple(g.ips)) for g in cluster.guests]

    assert shape(a) == shape(b) != shape(c)
    assert a.guests[41].name == "vm-00042"
    for g in a.guests:
        live_ip = g.status == "running" and (g.type == "lxc" or g.agent)
        assert bool(g.ips) == live_ip, g
        assert all(re.fullmatch(r"10\.\d+\.\d+\.\d+", ip) for ip in g.ips)
    assert len({ip for g in a.guests for ip in g.ips}) == sum(len(g.ips) for g in a.guests)


def test_write_tfvars_declares_live_guests_and_declared_only_servers(tmp_path):
    cluster = generate_cluster(nodes=2, guests=50, seed=2, duplicate_names=2, templates=1)
    path = tmp_path / "terraform.tfvars.json"
    written = write_tfvars(cluster, path, declared_ratio=0.8, extra_declared_only=3)
    servers = json.loads(path.read_text())["servers"]
    assert servers == written["servers"]
    live = {g.name for g in cluster.guests if not g.template}
    declared_only = set(servers) - live
    assert len(declared_only) == 3
    assert len(set(servers) & live) == round(len(live) * 0.8)
    template = next(g.vmid for g in cluster.guests if g.template)
    for key, server in servers.items():
        assert server["name"] == key and server["role"] in ROLES and server["template_vm_id"] == template
        disk, net = server["disks"][0], server["network_devices"][0]
        assert disk["interface"] == "scsi0" and disk["disk_type"] in ("hdd", "ssd") and disk["file_format"] == "raw"
        assert re.fullmatch(r"10\.\d+\.\d+\.\d+", net["ip_address"]) and net["subnet"] == 24
        assert net["gateway"] == net["ip_address"].rsplit(".", 1)[0] + ".1"
    by_name = {g.name: g for g in sorted(cluster.guests, key=lambda g: -g.vmid) if g.ips}
    for name, g in by_name.items():
        if name in servers:
            assert servers[name]["network_devices"][0]["ip_address"] == g.ips[0]
    no_ips = write_tfvars(cluster, None, with_ips=False)["servers"]
    assert all("ip_address" not in s["network_devices"][0] for s in no_ips.values())


def test_scenario_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nodes": [{"node": "pve1"}], "guests": [{"vmid": 100, "name": "a", "nmae": "b"}]}))
    with pytest.raises(ValueError, match=r"bad.json: guests\[0\]: unknown field\(s\) nmae"):
        load_scenario(bad)
    with pytest.raises(ValueError, match=r"guests\[0\].node: no node named 'pve9'"):
        load_scenario({"nodes": [{"node": "pve1"}], "guests": [{"vmid": 100, "name": "a", "node": "pve9"}]})


# --------------------------------------------------------------------------
# PVE behaviours
# --------------------------------------------------------------------------


def test_pve_error_answers(sample):
    cases = [
        ("/nodes/pve3/qemu/111/agent/network-get-interfaces", 500, "QEMU guest agent is not running"),  # stopped
        ("/nodes/pve2/qemu/103/agent/network-get-interfaces", 500, "QEMU guest agent is not running"),  # no agent
        ("/nodes/pve2/qemu/100/config", 500, "Configuration file 'nodes/pve2/qemu-server/100.conf' does not exist"),
        ("/nodes/pve1/lxc/100/config", 500, "Configuration file 'nodes/pve1/lxc/100.conf' does not exist"),
        ("/nodes/pve2/lxc/202/interfaces", 500, "CT 202 not running"),
        ("/nodes/pve1/storage/nope/status", 500, "storage 'nope' does not exist"),
        ("/nodes/pve3/storage/HDD-Storage/status", 500, "storage 'HDD-Storage' is not available on node 'pve3'"),
        ("/nodes/pve1/nothing", 501, "Method 'GET /api2/json/nodes/pve1/nothing' not implemented"),
        ("/nodes/pve1/qemu/abc/config", 400, "Parameter verification failed."),
        ("/cluster/resources?type=pool", 400, "Parameter verification failed."),
        ("/cluster/resources?bogus=1", 400, "Parameter verification failed."),
        ("/pools?poolid=nope", 500, "pool 'nope' does not exist"),
    ]
    with requests.Session() as s:
        for path, status, message in cases:
            r = _get(sample, path, s)
            assert (r.status_code, r.reason) == (status, message), path
            assert r.json()["data"] is None and r.json()["message"] == message + "\n"
    assert "bogus" in _get(sample, "/cluster/resources?bogus=1").json()["errors"]


def test_endpoints_beyond_the_schema_that_clients_call(sample):
    with requests.Session() as s:
        assert _data(sample, "/pools/prod", s)["members"]
        assert _data(sample, "/nodes/pve1/qemu/100/snapshot", s)[0]["name"] == "current"
        assert _data(sample, "/nodes/pve1/lxc/200/status/current", s)["status"] == "running"
        assert any(i["iface"] == "vmbr0" for i in _data(sample, "/nodes/pve1/network", s))


def test_model_changes_show_in_the_next_answer(double):
    resources = _data(double, "/cluster/resources", params={"type": "vm"})
    double.cluster.guests.append(Guest(vmid=555, name="fresh", node="pve2", status="running"))
    double.cluster.guest(100).tags.append("zz")
    double.cluster.storages.append(Storage("extra", "dir", "iso"))
    after = {g["vmid"]: g for g in _data(double, "/cluster/resources", params={"type": "vm"})}
    assert len(after) == len(resources) + 1 and after[555]["name"] == "fresh"
    assert after[100]["tags"] == "ai;prod;zz"
    assert "extra" in {s["storage"] for s in _data(double, "/storage")}
    double.cluster.remove_guest(555)
    assert 555 not in {g["vmid"] for g in _data(double, "/cluster/resources", params={"type": "vm"})}


def test_answers_are_rebuilt_only_after_a_change():
    cluster = load_scenario({"nodes": [{"node": "pve1"}],
                             "guests": [{"vmid": 100, "name": "a", "pool": "undeclared"}]})
    view = cluster.view()
    assert cluster.view() is view and view.pool_list() == [{"poolid": "undeclared"}]
    cluster.guest(100).name = "b"
    assert cluster.view() is not view and cluster.view().guest_resource(cluster.guest(100))["name"] == "b"


def test_node_goes_offline_at_run_time(double):
    double.set_node_status("pve2", "offline")
    vms = {g["vmid"]: g for g in _data(double, "/cluster/resources", params={"type": "vm"})}
    assert vms[102]["status"] == "unknown" and vms[102]["node"] == "pve2"
    assert _get(double, "/nodes/pve2/qemu").status_code == 595
    assert _get(double, "/nodes/pve2/qemu/102/status/current").status_code == 595
    double.set_node_status("pve2", "online")
    assert _get(double, "/nodes/pve2/qemu").status_code == 200


# --------------------------------------------------------------------------
# Auth
# --------------------------------------------------------------------------


def test_token_and_ticket_auth(sample):
    assert _get(sample, "/version").status_code == 200
    login = _login(sample)
    assert login["username"] == sample.user and login["clustername"] == "demo"
    cookies = {"PVEAuthCookie": login["ticket"]}
    assert _get(sample, "/nodes", headers={}, cookies=cookies).status_code == 200
    assert _get(sample, "/nodes", headers={}, cookies={"PVEAuthCookie": login["ticket"] + "x"}).status_code == 401


def test_bad_or_missing_credentials_answer_401(sample):
    r = requests.post(sample.api_url + "/access/ticket", data={"username": sample.user, "password": "wrong"},
                      verify=sample.ca_path, timeout=10)
    assert (r.status_code, r.reason) == (401, "authentication failure")
    bad_secret = {"Authorization": f"PVEAPIToken={sample.token_id}=00000000-0000-0000-0000-000000000000"}
    assert _get(sample, "/version", headers=bad_secret).status_code == 401
    unknown = {"Authorization": f"PVEAPIToken={sample.token_user}!nope={sample.token_secret}"}
    assert _get(sample, "/version", headers=unknown).status_code == 401
    assert _get(sample, "/version", headers={}).status_code == 401
    assert _get(sample, "/nodes/pve1/nothing", headers={}).status_code == 401


def test_csrf_token_is_required_for_writes_with_ticket_auth(double):
    login = _login(double)
    url = double.api_url + "/nodes/pve3/qemu/111/status/start"
    cookies = {"PVEAuthCookie": login["ticket"]}
    r = requests.post(url, cookies=cookies, verify=double.ca_path, timeout=10)
    assert r.status_code == 401
    r = requests.post(url, cookies=cookies, headers={"CSRFPreventionToken": "0:forged"}, verify=double.ca_path,
                      timeout=10)
    assert r.status_code == 401
    r = requests.post(url, cookies=cookies, headers={"CSRFPreventionToken": login["CSRFPreventionToken"]},
                      verify=double.ca_path, timeout=10)
    assert r.status_code == 200 and r.json()["data"].startswith("UPID:pve3:")
    assert double.cluster.guest(111).status == "running"


def test_proxmoxer_talks_to_it_with_token_and_password(double):
    from proxmoxer import ProxmoxAPI
    from proxmoxer.core import AuthenticationError

    common = {"port": double.port, "verify_ssl": double.ca_path, "timeout": 10}
    api = ProxmoxAPI(double.host, user=double.token_user, token_name=double.token_name,
                     token_value=double.token_secret, **common)
    assert len(api.cluster.resources.get(type="vm")) == 11
    api = ProxmoxAPI(double.host, user=double.user, password=double.password, **common)
    assert api.nodes("pve1").qemu(100).config.get()["name"] == "AI-agent"
    api.nodes("pve3").lxc(201).status.stop.post()  # a write: proxmoxer sends the CSRF token
    assert double.cluster.guest(201).status == "stopped"
    with pytest.raises(AuthenticationError):
        ProxmoxAPI(double.host, user=double.user, password="wrong", **common)


# --------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------


def test_tls_verifies_with_its_ca_and_fails_with_another(sample):
    assert _get(sample, "/version", verify=sample.ca_path).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        _get(sample, "/version", verify=sample.wrong_ca_path)
    with pytest.raises(requests.exceptions.SSLError):  # the system bundle (or REQUESTS_CA_BUNDLE) does not trust it
        _get(sample, "/version", verify=True)
    assert _get(sample, "/version").status_code == 200  # the server survived the refused handshakes


# --------------------------------------------------------------------------
# Faults, latency, counters
# --------------------------------------------------------------------------


def test_status_faults_match_and_run_out(double):
    double.add_fault(method="GET", path=r"^/cluster/resources", status=500, times=1)
    assert _get(double, "/cluster/resources").status_code == 500
    assert _get(double, "/cluster/resources").status_code == 200
    assert double.faults() == []
    double.add_fault(path=r"^/cluster/resources$", query=r"type=vm", status=503, message="too busy")
    r = _get(double, "/cluster/resources?type=vm")
    assert (r.status_code, r.reason, r.json()["message"]) == (503, "too busy", "too busy\n")
    assert _get(double, "/cluster/resources?type=node").status_code == 200
    double.add_fault(method="POST", path=".", status=500)
    assert _get(double, "/version").status_code == 200
    double.clear_faults()
    assert _get(double, "/cluster/resources?type=vm").status_code == 200
    for status in (401, 595):
        double.add_fault(path=r"^/nodes$", status=status, times=1)
        assert _get(double, "/nodes").status_code == status


def test_delay_fault_makes_a_short_timeout_client_time_out(double):
    # No stopwatch: the fault holds the answer far longer than the client waits, so the client must time out.
    double.add_fault(path=r"^/version$", delay=30.0, times=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        _get(double, "/version", timeout=(10, 0.3))  # (connect, read): only the read waits on the delay
    # the timed-out call used the fault up: the next one is answered (it would time out after 10 s otherwise)
    assert _get(double, "/version").status_code == 200
    assert double.faults() == []
    assert double.counters()["by_path"] == {"GET /version": 2}  # the timed-out call reached the double
    # a delay-only fault delays the answer, it does not change it: a patient client gets the normal answer
    normal = _data(double, "/version")
    double.add_fault(path=r"^/version$", delay=0.5, times=1)
    r = _get(double, "/version", timeout=(10, 30))
    assert r.status_code == 200 and r.json()["data"] == normal
    assert double.faults() == []


def test_close_fault_drops_the_connection(double):
    double.add_fault(path=r"^/nodes$", close=True, times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        _get(double, "/nodes")
    assert _get(double, "/nodes").status_code == 200


def test_latency_is_settable_at_run_time(double):
    # No stopwatch: a client that waits less than the latency times out, one that waits longer is answered,
    # and the setting reads back through the control API (which latency does not slow down).
    assert _control(double, "GET", "/latency") == {"latency": 0.0}
    assert _control(double, "POST", "/latency", {"latency": 1.0}) == {"latency": 1.0}
    assert double.latency == 1.0 and _control(double, "GET", "/latency") == {"latency": 1.0}
    with pytest.raises(requests.exceptions.ReadTimeout):
        _get(double, "/version", timeout=(10, 0.1))  # (connect, read): only the read waits on the latency
    assert _get(double, "/version", timeout=(10, 30)).status_code == 200  # latency delays answers, never fails them
    double.set_latency(3600)  # in process, at run time; longer than any client here waits
    assert _control(double, "GET", "/latency") == {"latency": 3600.0}
    with pytest.raises(requests.exceptions.ReadTimeout):
        _get(double, "/version", timeout=(10, 0.1))
    double.set_latency(0)
    assert _control(double, "GET", "/latency") == {"latency": 0.0}
    assert _get(double, "/version").status_code == 200  # with 3600 s still in force this would time out (10 s)
    assert double.counters()["by_path"] == {"GET /version": 4}  # timed-out calls reached the double too


def test_counters_count_calls_by_path_template(double):
    double.reset_counters()
    with requests.Session() as s:
        _get(double, "/cluster/resources?type=vm", s)
        for vmid, node in ((100, "pve1"), (101, "pve1"), (102, "pve2")):
            _get(double, f"/nodes/{node}/qemu/{vmid}/config", s)
        _get(double, "/version", s, headers={})  # refused calls count too
    assert double.counters() == {"total": 5, "by_path": {
        "GET /cluster/resources": 1, "GET /nodes/{node}/qemu/{vmid}/config": 3, "GET /version": 1}}
    double.reset_counters()
    assert double.counters() == {"total": 0, "by_path": {}}


def test_control_api_over_http(double):
    control = double.control_url
    token = {"X-Double-Token": double.control_token}

    def call(method, path, body=None, headers=None):
        headers = token if headers is None else headers
        return requests.request(method, control + path, json=body, headers=headers, verify=double.ca_path, timeout=10)

    assert call("GET", "/counters", headers={"X-Double-Token": "wrong"}).status_code == 403
    assert call("GET", "/counters", headers={}).status_code == 403
    _get(double, "/version")
    assert call("GET", "/counters").json() == {"total": 1, "by_path": {"GET /version": 1}}
    fault = call("POST", "/faults", {"path": "^/nodes$", "status": 500, "times": 1}).json()
    assert call("GET", "/faults").json()[0]["id"] == fault["id"]
    assert _get(double, "/nodes").status_code == 500
    assert call("POST", "/faults", {"path": "^/", "bogus": 1}).status_code == 400
    assert call("POST", "/latency", {"latency": 0.05}).json() == {"latency": 0.05}
    assert double.latency == 0.05
    assert call("POST", "/nodes", {"node": "pve3", "status": "offline"}).json()["pve3"] == "offline"
    assert _get(double, "/nodes/pve3/qemu").status_code == 595
    bearer = {"Authorization": f"Bearer {double.control_token}"}
    assert call("GET", "/info", headers=bearer).json()["port"] == double.port
    assert call("POST", "/reset").json()["total"] == 0
    assert call("GET", "/counters").json()["total"] == 0  # control calls are not counted


# --------------------------------------------------------------------------
# Scale and the CLI
# --------------------------------------------------------------------------


def test_thousands_of_guests_and_dozens_of_concurrent_clients():
    # Correctness under load only: every client gets every answer in full and the double saw exactly the calls
    # made. How fast it answers is measured by `make bench`, not asserted here.
    cluster = generate_cluster(nodes=8, guests=5000, seed=3, templates=3, duplicate_names=10, offline_nodes=1)
    with DoubleServer(cluster) as d:
        listing_path = "/cluster/resources?type=vm"
        listing = _data(d, listing_path)
        assert len(listing) == 5000
        assert sorted(g["vmid"] for g in listing) == sorted(g.vmid for g in cluster.guests)

        guest = next(g for g in cluster.guests if cluster.node(g.node).status == "online")
        config_path = f"/nodes/{guest.node}/{guest.type}/{guest.vmid}/config"
        config = _data(d, config_path)
        assert config.get("name", config.get("hostname")) == guest.name  # qemu says name, lxc hostname
        expected = {config_path: config, listing_path: listing}
        d.reset_counters()

        clients = 40
        barrier = threading.Barrier(clients)

        def paths(i: int) -> list[str]:  # a quarter of the clients also pull the whole listing
            return [config_path] * 4 + ([listing_path] if i % 4 == 0 else [])

        def client(i: int) -> list[tuple]:
            answers = []
            with requests.Session() as s:
                barrier.wait(timeout=60)  # every client calls at once
                for path in paths(i):
                    r = _get(d, path, s, timeout=60)
                    answers.append((path, r.status_code, r.json()["data"] == expected[path] if r.ok else r.text))
            return answers

        with ThreadPoolExecutor(max_workers=clients) as pool:
            results = list(pool.map(client, range(clients)))  # re-raises a client's exception
        assert results == [[(path, 200, True) for path in paths(i)] for i in range(clients)]
        calls = sum(len(paths(i)) for i in range(clients))
        assert calls == 40 * 4 + 10
        assert d.counters() == {"total": calls, "by_path": {
            f"GET /nodes/{{node}}/{guest.type}/{{vmid}}/config": 40 * 4, "GET /cluster/resources": 10}}


def test_cli_starts_writes_info_answers_and_stops_on_sigterm(tmp_path):
    info_file, pidfile, tfvars = tmp_path / "info.json", tmp_path / "double.pid", tmp_path / "tfvars.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.pve_double", "--nodes", "3", "--guests", "30", "--seed", "4",
         "--duplicates", "2", "--offline-nodes", "1", "--tfvars-out", str(tfvars), "--declared-only", "2",
         "--info-file", str(info_file), "--pidfile", str(pidfile)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "ready on https://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        info = json.loads(info_file.read_text())
        assert {"url", "host", "port", "ca_path", "wrong_ca_path", "user", "password", "token_id", "token_secret",
                "control_url", "control_token"} <= set(info)
        assert oct(info_file.stat().st_mode & 0o777) == "0o600"
        assert int(pidfile.read_text()) == proc.pid
        headers = {"Authorization": f"PVEAPIToken={info['token_id']}={info['token_secret']}"}
        r = requests.get(f"{info['url']}/api2/json/cluster/resources", params={"type": "vm"}, headers=headers,
                         verify=info["ca_path"], timeout=10)
        assert r.status_code == 200 and len(r.json()["data"]) == 30
        counters = requests.get(info["control_url"] + "/counters", headers={"X-Double-Token": info["control_token"]},
                                verify=info["ca_path"], timeout=10).json()
        assert counters["by_path"] == {"GET /cluster/resources": 1}
        assert len(json.loads(tfvars.read_text())["servers"]) > 20
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not pidfile.exists() and not info_file.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
