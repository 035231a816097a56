"""Several-clusters benchmark (issue 17): 10 clusters x 1,000 guests against one cluster of 10,000 guests.

`ansible-inventory -i SOURCE --list` with proxmox_manager.core.proxmox, two contenders run
interleaved (each round starts with the next one):
  single  one API double of 10,000 guests; an inventory file naming it (`cluster: big`, so no
          /cluster/status call), its tfvars, a state DB of its own
  ten     ten API doubles of 1,000 guests each (--cluster-name c0..c9, --name-prefix c0-vm..c9-vm,
          each its own CA and tfvars file), one inventory file with a `clusters:` mapping of the ten
          (api_host, api_port, api_token_secret, ca_path, tfvars_path per entry; api_user and
          api_token_id at the top level when the doubles share them), one state DB for all
Every double has 10 nodes, 20 ms per request (--latency), the same generation parameters (seed,
every guest running with the agent, 90% of the guests declared in tfvars with an IP), so the
plugin looks up the IPs of the undeclared 10% in both. Both configs set want_agent_ips: true.
Target: `ten` at most 1.3x the time of `single`, with API calls = 1 listing
(GET /cluster/resources) per cluster + the IP lookups (agent or interfaces of each running guest
that declares no IP), nothing else. The calls come from each double's counters, reset before every
run (all eleven doubles, so a run that touches the other contender's doubles is seen too).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time

from .common import (
    BIN,
    WORK_DIR,
    BenchError,
    DoubleProcess,
    base_env,
    parse_failure,
    interleaved,
    state_db,
    stats,
    table,
    timed,
    write_private,
)

TARGET_RATIO = 1.3
N_CLUSTERS = 10
GUESTS_EACH = 1_000
GUESTS_SINGLE = N_CLUSTERS * GUESTS_EACH
NODES = 10
SINGLE_NAME = "big"
LISTING = "GET /cluster/resources"
LOOKUP_PATHS = ("GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", "GET /nodes/{node}/lxc/{vmid}/interfaces")
ORDER = ("single", "ten")
LABELS = {"single": f"single: 1 cluster x {GUESTS_SINGLE:,} guests",
          "ten": f"ten: {N_CLUSTERS} clusters x {GUESTS_EACH:,} guests"}
_WARNING = re.compile(r"^\[WARNING\]: (.*)$", re.M)


def _expected_lookups(double: DoubleProcess) -> tuple[int, int]:
    """(hosts, IP lookups) the plugin should make for this double: its non-template guests, and the running
    ones the tfvars gives no IP (every qemu guest has the agent: agent_ratio 1.0)."""
    guests = [g for g in double.api_get("/cluster/resources", type="vm") if not g.get("template")]
    servers = json.loads(double.tfvars.read_text())["servers"]
    declared_ip = {name for name, s in servers.items()
                   if any(d.get("ip_address") for d in s.get("network_devices", []))}
    lookups = sum(1 for g in guests if g.get("status") == "running" and g["name"] not in declared_ip)
    return len(guests), lookups


def _entry(double: DoubleProcess, shared: set) -> list:
    i = double.info
    lines = [f"api_host: {i['host']}", f"api_port: {i['port']}"]
    if "api_user" not in shared:
        lines.append(f"api_user: {i['token_user']}")
    if "api_token_id" not in shared:
        lines.append(f"api_token_id: {i['token_name']}")
    return lines + [f"api_token_secret: {i['token_secret']}", f"ca_path: {i['ca_path']}",
                    f"tfvars_path: {double.tfvars}"]


def _configs(workdir, single: DoubleProcess, ten: dict) -> dict:
    """{contender: inventory file}; each with a fresh state DB of its own."""
    common = ["plugin: proxmox_manager.core.proxmox", "want_agent_ips: true"]
    one = write_private(workdir / "single.proxmox.yml", "\n".join(
        common + [f"cluster: {SINGLE_NAME}"] + _entry(single, set()) + [
            f"state_db: {state_db(workdir / 'state-single' / 'proxmox_manager.db')}", ""]))
    top, shared = [], set()
    for option, key in (("api_user", "token_user"), ("api_token_id", "token_name")):
        values = {d.info[key] for d in ten.values()}
        if len(values) == 1:
            top.append(f"{option}: {values.pop()}")
            shared.add(option)
    lines = common + top + [f"state_db: {state_db(workdir / 'state-ten' / 'proxmox_manager.db')}", "clusters:"]
    for name, double in ten.items():
        lines.append(f"  {name}:")
        lines += [f"    {line}" for line in _entry(double, shared)]
    return {"single": one, "ten": write_private(workdir / "ten.proxmox.yml", "\n".join(lines + [""]))}


def _calls(by_double: dict, expected: dict) -> dict:
    """The API calls of one run, per cluster, and whether they are 1 listing + the lookups and nothing else."""
    per_cluster, ok = {}, True
    for name, counted in by_double.items():
        by_path = counted["by_path"]
        lookups = sum(by_path.get(p, 0) for p in LOOKUP_PATHS)
        other = {p: n for p, n in by_path.items() if p != LISTING and p not in LOOKUP_PATHS}
        per_cluster[name] = {"total": counted["total"], "listings": by_path.get(LISTING, 0), "lookups": lookups,
                             "expected_lookups": expected[name], "other": other}
        ok = ok and by_path.get(LISTING, 0) == 1 and lookups == expected[name] and not other
    return {"total": sum(c["total"] for c in per_cluster.values()),
            "listings": sum(c["listings"] for c in per_cluster.values()),
            "lookups": sum(c["lookups"] for c in per_cluster.values()),
            "expected": len(per_cluster) + sum(expected.values()),
            "other": sum(sum(c["other"].values()) for c in per_cluster.values()),
            "one_listing_per_cluster_plus_lookups": ok, "per_cluster": per_cluster}


def _plain(value):
    """A value of `--list` output: ansible-core >= 2.19 writes an unsafe string as {"__ansible_unsafe": ...}."""
    return value.get("__ansible_unsafe") if isinstance(value, dict) and "__ansible_unsafe" in value else value


def _check_listing(key: str, path, expected_hosts: dict) -> dict:
    """The warm-up's --list output: every host there, live, in its cluster (pve_cluster, cluster_<name>)."""
    data = json.loads(path.read_text())
    hostvars = data.get("_meta", {}).get("hostvars", {})
    want = sum(expected_hosts.values())
    if len(hostvars) != want:
        raise BenchError(f"{LABELS[key]}: --list shows {len(hostvars)} hosts, expected {want}")
    sources, by_var, by_group = {}, {}, {}
    for hv in hostvars.values():
        for var, counts in (("pve_source", sources), ("pve_cluster", by_var)):
            value = _plain(hv.get(var))
            counts[value] = counts.get(value, 0) + 1
    if "recorded" in sources:
        raise BenchError(f"{LABELS[key]}: {sources['recorded']} hosts served from the recorded view")
    for name in expected_hosts:
        by_group[name] = len(data.get(f"cluster_{name}", {}).get("hosts", []))
    return {"hosts": len(hostvars), "pve_source": sources, "pve_cluster": by_var, "cluster_groups": by_group,
            "clusters_as_expected": by_var == expected_hosts and by_group == expected_hosts,
            "list_bytes": path.stat().st_size}


def run(runs: int, latency: float) -> dict:
    workdir = WORK_DIR / "clusters"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    print(f"\n-- clusters: starting {N_CLUSTERS + 1} API doubles (1 x {GUESTS_SINGLE} guests, {N_CLUSTERS} x "
          f"{GUESTS_EACH} guests; {NODES} nodes each, {latency * 1000:.0f} ms/request)", flush=True)
    gen = {"nodes": NODES, "latency": latency, "seed": 0, "running_ratio": 1.0, "agent_ratio": 1.0,
           "declared_ratio": 0.9}
    with contextlib.ExitStack() as stack:
        single = stack.enter_context(DoubleProcess(workdir / "double-big", guests=GUESTS_SINGLE, name_prefix="vm",
                                                   cluster_name=SINGLE_NAME, **gen))
        ten = {}
        for n in range(N_CLUSTERS):
            name = f"c{n}"
            ten[name] = stack.enter_context(DoubleProcess(workdir / f"double-{name}", guests=GUESTS_EACH,
                                                          name_prefix=f"{name}-vm", cluster_name=name, **gen))
        doubles = {"single": {SINGLE_NAME: single}, "ten": ten}
        for name, double in [(SINGLE_NAME, single), *ten.items()]:
            if double.info.get("cluster_name") != name:
                raise BenchError(f"the double meant as {name} calls itself {double.info.get('cluster_name')!r}")
        expected_hosts, expected_lookups = {}, {}
        for key in ORDER:
            expected_hosts[key], expected_lookups[key] = {}, {}
            for name, double in doubles[key].items():
                expected_hosts[key][name], expected_lookups[key][name] = _expected_lookups(double)
        configs = _configs(workdir, single, ten)
        env = base_env(ANSIBLE_INVENTORY_ENABLED="proxmox_manager.core.proxmox")
        every = [d for key in ORDER for d in doubles[key].values()]

        def one_run(key, stdout=None):
            for d in every:
                d.reset()
            wall, err, cpu = timed([str(BIN / "ansible-inventory"), "-i", str(configs[key]), "--list"], env,
                                   stdout=stdout, what=LABELS[key])
            if parse_failure(err):
                raise BenchError(f"{LABELS[key]} did not parse:\n{err[-3000:]}")
            if "SERVING THE VIEW RECORDED" in err:
                raise BenchError(f"{LABELS[key]} served a recorded view:\n{err[-3000:]}")
            strays = {n: d.counters()["total"] for k in ORDER if k != key for n, d in doubles[k].items()}
            if any(strays.values()):
                raise BenchError(f"{LABELS[key]} called the other contender's doubles: {strays}")
            calls = _calls({n: d.counters() for n, d in doubles[key].items()}, expected_lookups[key])
            if calls["listings"] < len(doubles[key]):
                raise BenchError(f"{LABELS[key]} did not list every cluster live: {calls['per_cluster']}\n"
                                 f"{err[-3000:]}")
            return dict(wall=wall, cpu=cpu, calls=calls, warnings=_WARNING.findall(err))

        result = {"contenders": {}}
        print("   warm-up: one untimed run of each", flush=True)
        for key in ORDER:
            out = workdir / f"{key}-list.json"
            with open(out, "wb") as fh:
                warm = one_run(key, fh)
            wall, calls, warnings = warm["wall"], warm["calls"], warm["warnings"]
            listing = _check_listing(key, out, expected_hosts[key])
            result["contenders"][key] = {"label": LABELS[key], "config": str(configs[key]),
                                         "clusters": len(doubles[key]), "warmup": listing,
                                         "warmup_wall_s": round(wall, 3), "warmup_calls": calls,
                                         "warnings": warnings[:20], "warning_count": len(warnings)}
            print(f"   warm-up {LABELS[key]:<32} {wall:7.2f} s wall, {listing['hosts']} hosts, "
                  f"{calls['total']} API calls, {len(warnings)} warnings", flush=True)

        timed_runs = interleaved(runs, ORDER, one_run, LABELS)

    walls = dict((key, [run["wall"] for run in timed_runs[key]]) for key in ORDER)
    for key in ORDER:
        calls = [run["calls"] for run in timed_runs[key]]
        entry = result["contenders"][key]
        entry["wall_s"] = stats(walls[key])
        entry["cpu_s"] = stats([run["cpu"] for run in timed_runs[key]])
        entry["api_calls"] = calls[-1]
        entry["api_calls_totals_seen"] = sorted({c["total"] for c in calls})
        entry["calls_as_expected_every_run"] = all(c["one_listing_per_cluster_plus_lookups"] for c in calls)
        entry["distinct_warnings_in_timed_runs"] = sorted(set(w for run in timed_runs[key]
                                                              for w in run["warnings"]))[:20]
    ratio = entry_median(result, "ten") / entry_median(result, "single")
    round_ratios = [round(t / s, 3) for t, s in zip(walls["ten"], walls["single"])]
    calls_ok = all(result["contenders"][k]["calls_as_expected_every_run"] for k in ORDER)
    result.update(ratio=round(ratio, 3), round_ratios=round_ratios, target_ratio=TARGET_RATIO,
                  target_time_met=ratio <= TARGET_RATIO, target_calls_met=calls_ok)
    return result


def entry_median(result, key) -> float:
    return result["contenders"][key]["wall_s"]["median"]


def report(out) -> str:
    rows = []
    for key in ORDER:
        e = out["contenders"][key]
        w, c = e["wall_s"], e["api_calls"]
        rows.append([e["label"], e["warmup"]["hosts"], f"{w['median']:.2f}", f"{w['min']:.2f}-{w['max']:.2f}",
                     len(w["runs"]), f"{e['cpu_s']['median']:.2f}", c["total"], c["listings"], c["lookups"],
                     c["other"], c["expected"], "yes" if e["calls_as_expected_every_run"] else "NO"])
    lines = [f"clusters: `ansible-inventory --list`, {out['runs']} interleaved rounds, {out['latency_s'] * 1000:.0f} "
             f"ms per request, {NODES} nodes per cluster, 90% of the guests declared in tfvars",
             table(["contender", "hosts", "wall median s", "wall min-max s", "runs", "CPU median s", "API calls",
                    "listings", "IP lookups", "other", "expected (1/cluster + lookups)", "as expected"], rows)]
    per = out["contenders"]["ten"]["api_calls"]["per_cluster"]
    lines.append("\nten, API calls per cluster (listings + lookups, expected lookups): " + ", ".join(
        f"{n} {c['listings']}+{c['lookups']} ({c['expected_lookups']})"
        + (f" other {c['other']}" if c["other"] else "") for n, c in per.items()))
    for key in ORDER:
        w = out["contenders"][key]["warmup"]
        if not w["clusters_as_expected"]:
            lines.append(f"{key}: hosts per pve_cluster {w['pve_cluster']}, per cluster_<name> group "
                         f"{w['cluster_groups']} (not one per guest of each cluster)")
        warnings = out["contenders"][key]["distinct_warnings_in_timed_runs"]
        if warnings:
            lines.append(f"{key}: warnings: " + " | ".join(x[:200] for x in warnings[:5]))
    rr = out["round_ratios"]
    lines.append(f"\nratio ten/single (medians): {out['ratio']:.2f}x; per round {min(rr):.2f}-{max(rr):.2f}x "
                 f"({', '.join(f'{x:.2f}' for x in rr)})")
    lines.append(f"target time (ten <= {out['target_ratio']}x single): "
                 f"{'met' if out['target_time_met'] else 'MISSED'}")
    lines.append("target calls (1 listing per cluster + the IP lookups, nothing else, every run): "
                 f"{'met' if out['target_calls_met'] else 'MISSED'}")
    return "\n".join(lines)


def main(runs: int = 3, latency: float = 0.02) -> dict:
    start = time.monotonic()
    out = {"benchmark": "clusters", "command": "ansible-inventory -i SOURCE --list > /dev/null", "runs": runs,
           "latency_s": latency, "nodes_per_cluster": NODES}
    out.update(run(runs, latency))
    out["bench_seconds"] = round(time.monotonic() - start, 1)
    return out
