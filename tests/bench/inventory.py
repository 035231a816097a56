"""Inventory benchmark (issue 3): `ansible-inventory --list` with our plugin, community.proxmox and the floor.

Per cluster size, one API double process (10 nodes, 20 ms per request; 90% of the
guests declared in tfvars with IPs, the rest running with agent IPs) and these
contenders, run interleaved (each round starts with the next one):
  ours         proxmox_manager.core.proxmox (config file, tmp state DB)
  ours_base    with --baseline REF: the same config (want_declared: false) run by the collection as it was at REF
  ours_list    the same, listing only (want_agent_ips: false): the mode that
               compares like for like with community.proxmox want_facts: false (no IP lookups)
  cp_nofacts   community.proxmox.proxmox, want_facts: false
  cp_facts     community.proxmox.proxmox, want_facts: true (the small cluster only)
  floor        a script inventory printing the JSON our plugin produced for this cluster
  floor_cp     the same for the JSON community.proxmox (want_facts: false) produced: Ansible's cost
               for its much smaller hostvars, to tell plugin work from Ansible's own work
API calls come from the double's counters, reset before every run.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from .common import (
    BIN,
    ROOT,
    WORK_DIR,
    BenchError,
    DoubleProcess,
    base_env,
    baseline_collections,
    community_proxmox,
    interleaved,
    parse_failure,
    state_db,
    stats,
    table,
    timed,
    write_private,
)

AGENT_PATHS = ("GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", "GET /nodes/{node}/lxc/{vmid}/interfaces")
LABELS = {"ours": "proxmox_manager.core.proxmox", "ours_base": "ours at --baseline",
          "ours_list": "ours, listing only (no pve_declared, no lookups)",
          "cp_nofacts": "community.proxmox want_facts:false",
          "cp_facts": "community.proxmox want_facts:true", "floor": "floor: script printing our JSON",
          "floor_cp": "script printing community's JSON"}
ORDER = ("ours", "ours_base", "ours_list", "cp_nofacts", "cp_facts", "floor", "floor_cp")


def _contenders(double: DoubleProcess, workdir, with_facts: bool, cp_dir, baseline=None) -> dict:
    """{key: (config path, env)} for one cluster; `baseline` is (collections dir, label) or None."""
    i = double.info
    ours_lines = [
        "plugin: proxmox_manager.core.proxmox",
        f"api_host: {i['host']}", f"api_port: {i['port']}", f"api_user: {i['token_user']}",
        f"api_token_id: {i['token_name']}", f"api_token_secret: {i['token_secret']}", f"ca_path: {i['ca_path']}",
        f"tfvars_path: {double.tfvars}"]
    ours = write_private(workdir / "ours.proxmox.yml", "\n".join(ours_lines + [
        f"state_db: {state_db(workdir / 'state' / 'proxmox_manager.db')}", "want_agent_ips: true", ""]))
    ours_list = write_private(workdir / "ours-list.proxmox.yml", "\n".join(ours_lines + [
        f"state_db: {state_db(workdir / 'state-list' / 'proxmox_manager.db')}", "want_agent_ips: false",
        "want_declared: false", ""]))
    community = ["plugin: community.proxmox.proxmox", f"url: {i['url']}", f"user: {i['token_user']}",
                 f"token_id: {i['token_name']}", f"token_secret: {i['token_secret']}", "validate_certs: true"]
    cp_env = base_env(ANSIBLE_INVENTORY_ENABLED="community.proxmox.proxmox",
                      ANSIBLE_COLLECTIONS_PATH=f"{cp_dir}{os.pathsep}{ROOT / 'collections'}",
                      REQUESTS_CA_BUNDLE=i["ca_path"])  # it uses requests with verify=True
    ours_env = base_env(ANSIBLE_INVENTORY_ENABLED="proxmox_manager.core.proxmox")
    out = {
        "ours": (ours, ours_env),
        "ours_list": (ours_list, ours_env),
        "cp_nofacts": (write_private(workdir / "cp-nofacts.proxmox.yml", "\n".join(community + ["want_facts: false", ""])),
                       cp_env),
    }
    if baseline:
        # Its own state DB: the two versions must not read each other's recorded view. want_declared: false
        # (our default now) so both carry the same hostvars and the core alone is compared.
        base = write_private(workdir / "ours-base.proxmox.yml", "\n".join(ours_lines + [
            f"state_db: {workdir / 'state-base' / 'proxmox_manager.db'}", "want_agent_ips: true",
            "want_declared: false", ""]))
        out["ours_base"] = (base, dict(ours_env, ANSIBLE_COLLECTIONS_PATH=str(baseline[0])))
    if with_facts:
        out["cp_facts"] = (write_private(workdir / "cp-facts.proxmox.yml", "\n".join(community + ["want_facts: true", ""])),
                           cp_env)
    return out


def _floor(workdir, listing, name="floor") -> tuple:
    """A script inventory that only prints a captured `--list` output: Ansible's own cost to take those hosts in."""
    script = write_private(workdir / f"{name}-inventory.sh", "\n".join([
        "#!/bin/sh",
        f"# Prints {listing.name}, captured from a warm-up run.",
        'if [ "$1" = "--host" ]; then echo "{}"; exit 0; fi',
        f"exec cat '{listing}'", ""]), mode=0o700)
    return script, base_env(ANSIBLE_INVENTORY_ENABLED="ansible.builtin.script")


def _hosts(path) -> int:
    data = json.loads(path.read_text())
    return len(data.get("_meta", {}).get("hostvars", {}))


def _check(key, err, calls):
    if parse_failure(err):
        raise BenchError(f"{LABELS[key]} did not parse:\n{err[-2000:]}")
    if key.startswith("ours") and ("SERVING THE VIEW RECORDED" in err or calls.get("GET /cluster/resources") != 1):
        raise BenchError(f"ours did not build the view live (calls {calls}):\n{err[-2000:]}")


def bench_cluster(guests: int, runs: int, with_facts: bool, cp_dir, latency: float, facts_runs: int,
                  baseline=None) -> dict:
    workdir = WORK_DIR / f"inventory-{guests}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    print(f"\n-- cluster of {guests} guests: starting the API double (10 nodes, {latency * 1000:.0f} ms/request)",
          flush=True)
    with DoubleProcess(workdir, nodes=10, guests=guests, latency=latency) as double:
        contenders = _contenders(double, workdir, with_facts, cp_dir, baseline)
        declared = len(json.loads(double.tfvars.read_text())["servers"])
        result = {"guests": guests, "nodes": 10, "latency_s": latency, "declared_in_tfvars": declared,
                  "contenders": {}}
        # Warm-up, not timed: fills the page cache and captures our output for the floor.
        ours_json = workdir / "ours-list.json"
        for key, (config, env) in contenders.items():
            if key == "cp_facts":
                continue  # minutes per run; its first timed run is warm enough (same imports as cp_nofacts)
            out = ours_json if key == "ours" else workdir / f"{key}-list.json"
            double.reset()
            with open(out, "wb") as fh:
                _wall, err, _cpu = timed([str(BIN / "ansible-inventory"), "-i", str(config), "--list"], env,
                                         stdout=fh, what=LABELS[key])
            _check(key, err, double.counters()["by_path"])
            result["contenders"][key] = {"label": _label(key, baseline), "hosts": _hosts(out)}
        contenders["floor"] = _floor(workdir, ours_json)
        result["contenders"]["floor"] = {"label": LABELS["floor"], "hosts": _hosts(ours_json)}
        contenders["floor_cp"] = _floor(workdir, workdir / "cp_nofacts-list.json", "floor_cp")
        result["contenders"]["floor_cp"] = {"label": LABELS["floor_cp"],
                                            "hosts": _hosts(workdir / "cp_nofacts-list.json")}
        for key, listing in (("ours", ours_json), ("ours_list", workdir / "ours_list-list.json"),
                             ("cp_nofacts", workdir / "cp_nofacts-list.json")):
            size = listing.stat().st_size
            result["contenders"][key]["list_bytes"] = size
            result["contenders"][key]["list_bytes_per_host"] = round(size / max(1, _hosts(listing)))
        if with_facts:
            result["contenders"]["cp_facts"] = {"label": LABELS["cp_facts"], "hosts": None}

        def one_run(key):
            config, env = contenders[key]
            double.reset()
            wall, err, cpu = timed([str(BIN / "ansible-inventory"), "-i", str(config), "--list"], env,
                                   what=LABELS[key])
            counted = double.counters()
            _check(key, err, counted["by_path"])
            return dict(wall=wall, cpu=cpu, calls=counted)

        keys = [k for k in ORDER if k in contenders]
        timed_runs = interleaved(runs, keys, one_run, LABELS,
                                 wanted=lambda key, done: key != "cp_facts" or len(done) < facts_runs)
        for key in keys:
            entry = result["contenders"][key]
            entry["wall_s"] = stats([run["wall"] for run in timed_runs[key]])
            entry["cpu_s"] = stats([run["cpu"] for run in timed_runs[key]])
            last = timed_runs[key][-1]["calls"]
            totals = sorted({run["calls"]["total"] for run in timed_runs[key]})
            agent = sum(last["by_path"].get(p, 0) for p in AGENT_PATHS)
            entry["api_calls"] = {"total": last["total"], "totals_seen": totals, "agent_lookups": agent,
                                  "other": last["total"] - agent, "by_path": last["by_path"]}
    return result


def _label(key, baseline):
    return f"ours at {baseline[1]}" if key == "ours_base" else LABELS[key]


def run(runs: int, sizes: list, facts_size: int, facts_runs: int, latency: float, baseline_ref=None) -> dict:
    cp_dir, cp_version = community_proxmox()
    out = {"benchmark": "inventory", "command": "ansible-inventory -i SOURCE --list > /dev/null",
           "runs": runs, "community_proxmox": cp_version, "clusters": []}
    baseline = None
    if baseline_ref:
        collections, commit = baseline_collections(baseline_ref)
        baseline = (collections, f"{baseline_ref} ({commit[:7]})")
        out["baseline"] = {"ref": baseline_ref, "commit": commit}
    for guests in sizes:
        out["clusters"].append(bench_cluster(guests, runs, False, cp_dir, latency, facts_runs, baseline))
    if facts_size:
        out["clusters"].append(bench_cluster(facts_size, runs, True, cp_dir, latency, facts_runs, baseline))
    out["targets"] = targets(out)
    return out


def _median(cluster, key):
    c = cluster["contenders"].get(key)
    return c["wall_s"]["median"] if c and "wall_s" in c else None


def targets(out) -> list:
    by_size = {c["guests"]: c for c in out["clusters"]}
    checks = []
    big = max((c for c in out["clusters"] if "cp_facts" not in c["contenders"]), key=lambda c: c["guests"],
              default=None)
    if big:
        ratio = _median(big, "ours") / _median(big, "floor")
        checks.append({"target": f"ours <= 1.5x the floor at {big['guests']} guests", "value": round(ratio, 2),
                       "met": ratio <= 1.5})
    for c in out["clusters"]:
        ratio = _median(c, "cp_nofacts") / _median(c, "ours")
        checks.append({"target": f"ours faster than community.proxmox want_facts:false at {c['guests']} guests",
                       "value": round(ratio, 2), "met": ratio > 1.0})
        if _median(c, "ours_list"):
            ratio = _median(c, "cp_nofacts") / _median(c, "ours_list")
            checks.append({"target": f"(listing only) ours faster than community.proxmox want_facts:false at "
                                     f"{c['guests']} guests", "value": round(ratio, 2), "met": ratio > 1.0})
        if _median(c, "cp_facts"):
            ratio = _median(c, "cp_facts") / _median(c, "ours")
            checks.append({"target": f">= 30x faster than community.proxmox want_facts:true at {c['guests']} guests",
                           "value": round(ratio, 1), "met": ratio >= 30})
    others = {size: c["contenders"]["ours"]["api_calls"]["other"] for size, c in sorted(by_size.items())}
    lookups = {size: c["contenders"]["ours"]["api_calls"]["agent_lookups"] for size, c in sorted(by_size.items())}
    undeclared = {size: size - 1 - c["declared_in_tfvars"] for size, c in sorted(by_size.items())}
    checks.append({"target": "API calls constant in cluster size apart from the agent lookups",
                   "value": {"other_calls": others, "agent_lookups": lookups, "undeclared_guests": undeclared},
                   "met": len(set(others.values())) == 1 and all(lookups[s] == undeclared[s] for s in lookups)})
    return checks


def report(out) -> str:
    lines = [f"Inventory: `ansible-inventory --list`, median of {out['runs']} interleaved runs "
             f"(community.proxmox {out['community_proxmox']})"]
    for c in out["clusters"]:
        floor = _median(c, "floor")
        ours = _median(c, "ours")
        rows = []
        for key in ORDER:
            e = c["contenders"].get(key)
            if not e or "wall_s" not in e:
                continue
            w = e["wall_s"]
            rows.append([e["label"], e["hosts"] if e["hosts"] is not None else "-",
                         f"{w['median']:.2f}", f"{w['min']:.2f}-{w['max']:.2f}", len(w["runs"]),
                         f"{w['median'] / floor:.2f}x", f"{w['median'] / ours:.2f}x", f"{e['cpu_s']['median']:.2f}",
                         e["api_calls"]["total"], e["api_calls"]["agent_lookups"], e.get("list_bytes_per_host", "")])
        lines.append(f"\n{c['guests']} guests, 10 nodes, {c['latency_s'] * 1000:.0f} ms/request, "
                     f"{c['declared_in_tfvars']} declared in tfvars")
        lines.append(table(["contender", "hosts", "wall median s", "wall min-max s", "runs", "vs floor", "vs ours",
                            "CPU median s", "API calls", "of which agent/interfaces", "--list bytes/host"], rows))
        if _median(c, "ours_base"):
            lines.append(f"Side by side with {c['contenders']['ours_base']['label']}: ours takes "
                         f"{ours / _median(c, 'ours_base'):.2f}x its time")
        if _median(c, "floor_cp"):
            lines.append(f"Plugin time beyond Ansible's cost for its own output (median minus its floor): "
                         f"ours {ours - floor:+.2f} s, community want_facts:false "
                         f"{_median(c, 'cp_nofacts') - _median(c, 'floor_cp'):+.2f} s")
    lines.append("\nTargets")
    lines.append(table(["target", "value", "met"],
                       [[t["target"], json.dumps(t["value"]) if isinstance(t["value"], dict) else t["value"],
                         "yes" if t["met"] else "NO"] for t in out["targets"]]))
    return "\n".join(lines)


def main(runs: int, sizes: list, facts_size: int, facts_runs: int, latency: float, baseline_ref=None) -> dict:
    start = time.monotonic()
    out = run(runs, sizes, facts_size, facts_runs, latency, baseline_ref)
    out["bench_seconds"] = round(time.monotonic() - start, 1)
    return out
