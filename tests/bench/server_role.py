"""server_role benchmark (issue 4): 10,000 assignments in ONE call, against single calls.

One API double process (10 nodes, 10,000 servers plus a template, no latency; 90%
declared in tfvars). Every figure is the wall time of a whole `ansible` or
`ansible-playbook` process, start-up included. Each round runs, in this order:
  bulk_first     `ansible localhost -m proxmox_manager.core.server_role` with all 10,000
                 servers in `servers`, on a fresh state DB (10,000 rows created)
  bulk_noop      the same call again (idempotent: changed=false)
  bulk_file_*    the same 10,000 entries read by the module from `servers_file` (fresh DB, then again)
  bulk_file_pb   that call as the one task of an `ansible-playbook` run (fresh DB): how the GitOps
                 apply playbook calls it, with the default callback, which does not print the result
  single_adhoc   one `ansible localhost -m ... -a 'name=... role=...'` process, one server
  startup_ping   `ansible localhost -m ansible.builtin.ping`: Ansible's own start-up and one module run
and once, after the rounds:
  loop_100       one ansible-playbook task looping 100 single-server calls
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time

from .common import BIN, ROOT, WORK_DIR, BenchError, DoubleProcess, base_env, stats, table, timed

N_SERVERS = 10_000


def _roles() -> list:
    import sys

    sys.path.insert(0, str(ROOT / "collections"))
    from ansible_collections.proxmox_manager.core.plugins.module_utils.role_assignment import role_catalog

    return role_catalog(str(ROOT / "roles"))


def _local(tool: str) -> list:
    """An ansible CLI of the venv against localhost over the local connection."""
    return [str(BIN / tool), *(["localhost"] if tool == "ansible" else []), "-i", "localhost,", "-c", "local",
            "-e", f"ansible_python_interpreter={BIN / 'python'}"]


def _adhoc(args: dict, extra: list) -> list:
    return [*_local("ansible"), *extra, "-m", "proxmox_manager.core.server_role", "-a", json.dumps(args)]


def _rows_with_role(db, role_of: dict) -> int:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, role FROM servers").fetchall()
    return sum(1 for name, role in rows if role_of.get(name) == role)


def run(runs: int, loop_calls: int) -> dict:
    workdir = WORK_DIR / "server_role"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    catalog = _roles()
    print(f"\n-- server_role: starting the API double (10 nodes, {N_SERVERS} servers + 1 template, no latency)",
          flush=True)
    with DoubleProcess(workdir, nodes=10, guests=N_SERVERS + 1, latency=0.0) as double:
        names = sorted(g["name"] for g in double.api_get("/cluster/resources", type="vm") if not g.get("template"))
        if len(names) != N_SERVERS:
            raise BenchError(f"expected {N_SERVERS} servers, the double lists {len(names)}")
        assign = [{"name": n, "role": catalog[i % len(catalog)]} for i, n in enumerate(names)]
        reassign = [{"name": n, "role": catalog[(i + 1) % len(catalog)]} for i, n in enumerate(names)]
        (workdir / "assign.json").write_text(json.dumps({"bench_servers": assign}))
        (workdir / "servers.json").write_text(json.dumps(assign))
        # a third role for each: every call of the loop is a real change
        loop = [{"name": n, "role": catalog[(i + 2) % len(catalog)]} for i, n in enumerate(names[:loop_calls])]
        (workdir / "loop.json").write_text(json.dumps({"bench_servers": loop}))
        env = base_env(**double.env())
        common = {"tfvars_path": str(double.tfvars), "roles_path": str(ROOT / "roles")}

        pb_file = workdir / "bulk-file.yml"
        pb_file.write_text("\n".join([
            "- hosts: localhost", "  gather_facts: false", "  tasks:",
            "    - proxmox_manager.core.server_role:",
            f"        servers_file: {workdir / 'servers.json'}", "        state_db: '{{ bench_db }}'",
            f"        tfvars_path: {common['tfvars_path']}", f"        roles_path: {common['roles_path']}", ""]))
        walls = {k: [] for k in ("bulk_first", "bulk_noop", "bulk_file_first", "bulk_file_noop", "bulk_file_pb",
                                 "single_adhoc", "startup_ping")}
        cpus = {k: [] for k in walls}
        checks = {}

        def measure(what, cmd, expect=None):
            """One timed process, recorded under `what`; an ad-hoc result must start with `expect`."""
            out = workdir / f"last-{what}.out"
            with open(out, "wb") as fh:
                wall, _err, cpu = timed(cmd, env, stdout=fh, what=what)
            text = out.read_text(errors="replace")
            if expect and not text.startswith(expect):
                raise BenchError(f"{what}: expected {expect!r}, got {text.splitlines()[:1]!r}")
            walls[what].append(wall)
            cpus[what].append(cpu)
            return text

        changed, unchanged = "localhost | CHANGED", "localhost | SUCCESS"
        bulk_args = dict(common, servers="{{ bench_servers }}")
        # the same 10,000 entries, read by the module from servers_file
        file_args = dict(common, servers_file=str(workdir / "servers.json"))
        for r in range(runs):
            db = workdir / f"state-{r}" / "proxmox_manager.db"
            bulk = _adhoc(dict(bulk_args, state_db=str(db)), ["-e", f"@{workdir / 'assign.json'}"])
            measure("bulk_first", bulk, changed)
            checks["bulk_first_rows_with_role"] = _rows_with_role(db, {e["name"]: e["role"] for e in assign})
            measure("bulk_noop", bulk, unchanged)
            from_file = _adhoc(dict(file_args, state_db=str(workdir / f"state-file-{r}" / "proxmox_manager.db")), [])
            measure("bulk_file_first", from_file, changed)
            measure("bulk_file_noop", from_file, unchanged)
            pb_db = workdir / f"state-pb-{r}" / "proxmox_manager.db"
            recap = measure("bulk_file_pb", [*_local("ansible-playbook"), "-e", f"bench_db={pb_db}", str(pb_file)])
            if "changed=1" not in recap or "failed=0" not in recap:
                raise BenchError(f"bulk_file_pb: expected one changed task:\n{recap[-1500:]}")
            one = reassign[r]  # another role: a real change on a DB of 10,000 rows
            measure("single_adhoc", _adhoc(dict(common, name=one["name"], role=one["role"], state_db=str(db)), []),
                    changed)
            measure("startup_ping", [*_local("ansible"), "-m", "ansible.builtin.ping"])
            print(f"   round {r + 1}/{runs}  " + "  ".join(f"{k} {v[-1]:.2f} s" for k, v in walls.items()),
                  flush=True)

        # The loop: one playbook, one task, `loop_calls` module runs (a fresh DB copy, so each one changes).
        db = workdir / "state-loop" / "proxmox_manager.db"
        db.parent.mkdir()
        with sqlite3.connect(workdir / "state-0" / "proxmox_manager.db") as src, sqlite3.connect(db) as dst:
            src.backup(dst)
        playbook = workdir / "loop.yml"
        playbook.write_text("\n".join([
            "- hosts: localhost", "  gather_facts: false", "  tasks:",
            "    - proxmox_manager.core.server_role:",
            "        name: '{{ item.name }}'", "        role: '{{ item.role }}'",
            f"        state_db: {db}", f"        tfvars_path: {common['tfvars_path']}",
            f"        roles_path: {common['roles_path']}",
            "      loop: '{{ bench_servers }}'", ""]))
        out = workdir / "loop.out"
        with open(out, "wb") as fh:
            loop_wall, _err, loop_cpu = timed([*_local("ansible-playbook"), "-e", f"@{workdir / 'loop.json'}",
                                               str(playbook)], env, stdout=fh, what="loop")
        recap = out.read_text(errors="replace")
        if recap.count("changed: [localhost] => (item=") != loop_calls or "failed=0" not in recap:
            raise BenchError(f"loop: expected {loop_calls} changed items:\n{recap[-1500:]}")
        print(f"   loop of {loop_calls} single calls in one playbook: {loop_wall:.2f} s", flush=True)

    result = {"benchmark": "server_role", "servers": N_SERVERS, "nodes": 10, "latency_s": 0.0, "runs": runs,
              "roles": catalog, "checks": checks, "variants": {}}
    labels = {"bulk_first": f"bulk, {N_SERVERS} new rows (fresh DB)",
              "bulk_noop": f"bulk, {N_SERVERS} unchanged (changed=false)",
              "bulk_file_first": f"bulk via servers_file, {N_SERVERS} new rows (fresh DB)",
              "bulk_file_noop": f"bulk via servers_file, {N_SERVERS} unchanged",
              "bulk_file_pb": f"bulk via servers_file, {N_SERVERS} new rows, one ansible-playbook task",
              "single_adhoc": "single server, one ansible process",
              "startup_ping": "start-up alone: ansible -m ping"}
    for key, values in walls.items():
        result["variants"][key] = {"label": labels[key], "wall_s": stats(values), "cpu_s": stats(cpus[key])}
    per_call_loop = loop_wall / loop_calls
    single = result["variants"]["single_adhoc"]["wall_s"]["median"]
    result["loop"] = {"label": f"loop of {loop_calls} single calls, one ansible-playbook task", "calls": loop_calls,
                      "wall_s": round(loop_wall, 3), "cpu_s": round(loop_cpu, 3), "per_call_s": round(per_call_loop, 4),
                      f"extrapolated_{N_SERVERS}_s": round(per_call_loop * N_SERVERS, 1)}
    result["single_adhoc_extrapolated_s"] = round(single * N_SERVERS, 1)
    bulk_first = result["variants"]["bulk_first"]["wall_s"]["median"]
    bulk_file_first = result["variants"]["bulk_file_first"]["wall_s"]["median"]
    bulk_file_pb = result["variants"]["bulk_file_pb"]["wall_s"]["median"]
    result["targets"] = [{"target": f"{N_SERVERS}-entry bulk call within 3 s wall (fresh DB, start-up included)",
                          "value": round(bulk_first, 2), "met": bulk_first <= 3.0},
                         {"target": f"{N_SERVERS}-entry bulk call via servers_file within 3 s wall (fresh DB)",
                          "value": round(bulk_file_first, 2), "met": bulk_file_first <= 3.0},
                         {"target": f"{N_SERVERS}-entry bulk call via servers_file, ansible-playbook, within 3 s wall",
                          "value": round(bulk_file_pb, 2), "met": bulk_file_pb <= 3.0}]
    result["speedup_vs_loop"] = round(per_call_loop * N_SERVERS / bulk_first, 1)
    return result


def report(out) -> str:
    rows = []
    for v in out["variants"].values():
        w = v["wall_s"]
        rows.append([v["label"], f"{w['median']:.2f}", f"{w['min']:.2f}-{w['max']:.2f}", len(w["runs"]),
                     f"{v['cpu_s']['median']:.2f}", "-"])
    loop = out["loop"]
    rows.append([loop["label"], f"{loop['wall_s']:.2f}", "-", 1, f"{loop['cpu_s']:.2f}",
                 f"{loop['per_call_s']:.3f} s/call"])
    lines = [f"server_role: {out['servers']} servers, wall of the whole ansible process, "
             f"median of {out['runs']} rounds",
             table(["variant", "wall median s", "wall min-max s", "runs", "CPU median s", "per call"], rows),
             f"\nExtrapolated to {out['servers']} servers: loop {loop['extrapolated_%d_s' % out['servers']]:.0f} s, "
             f"one ansible process per server {out['single_adhoc_extrapolated_s']:.0f} s; "
             f"bulk is {out['speedup_vs_loop']}x faster than the loop.",
             "\nTargets", table(["target", "value", "met"],
                                [[t["target"], t["value"], "yes" if t["met"] else "NO"] for t in out["targets"]])]
    return "\n".join(lines)


def main(runs: int, loop_calls: int) -> dict:
    start = time.monotonic()
    out = run(runs, loop_calls)
    out["bench_seconds"] = round(time.monotonic() - start, 1)
    return out
