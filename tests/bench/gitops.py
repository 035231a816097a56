"""GitOps benchmark (issue 6): plan and apply of 1,000 declared servers, end to end.

One API double process (5 nodes, 1,000 guests plus a template; every guest declared
in a generated tfvars). A generated state/roles.yml gives each of the 1,000 servers
its tfvars role, a datastores.yml sets both defaults. Every figure is the wall time
of a whole `ansible-playbook` process from the repo root (start-up and the
inventory build included), on a fresh state DB each round:
  plan_fresh   ansible-playbook playbooks/apply.yml --check --diff   (1,000 would change; nothing written)
  apply_first  ansible-playbook playbooks/apply.yml                  (1,000 roles recorded, defaults set)
  apply_noop   ansible-playbook playbooks/apply.yml                  (again: changed=0)
  plan_noop    ansible-playbook playbooks/apply.yml --check --diff   (nothing would change)
Target: apply_first and apply_noop each within 15 s.

    python -m tests.bench.gitops [--runs N] [--latency S]    # writes .bench/gitops.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import sys

from .common import BIN, WORK_DIR, BenchError, DoubleProcess, base_env, machine, stats, table, timed, write_json

N_SERVERS = 1_000
TARGET_S = 15.0
STEPS = ("plan_fresh", "apply_first", "apply_noop", "plan_noop")


def _declarations(workdir, tfvars) -> dict:
    """roles.yml (every declared server with its tfvars role), datastores.yml and an inventory config."""
    servers = json.loads(tfvars.read_text())["servers"]
    lines = ["servers:"]
    for name in sorted(servers):
        lines += ["  %s:" % name, "    role: %s" % servers[name]["role"]]
    (workdir / "roles.yml").write_text("\n".join(lines) + "\n")
    (workdir / "datastores.yml").write_text("default_hdd: HDD-Storage\ndefault_ssd: ssd-pool\n")
    # The repo's inventory/proxmox.yml, pointed at the generated tfvars.
    (workdir / "proxmox.yml").write_text(
        "plugin: proxmox_manager.core.proxmox\ntfvars_path: %s\nwant_agent_ips: true\nmax_workers: 8\n"
        "offline_fallback: true\n" % tfvars)
    return dict((name, entry["role"]) for name, entry in servers.items())


def _recap(path) -> dict:
    text = path.read_text(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("localhost ")), "")
    return dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", line))


def _db_roles(db) -> dict:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT name, role FROM servers WHERE role IS NOT NULL").fetchall())


def run(runs: int, latency: float) -> dict:
    workdir = WORK_DIR / "gitops"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    print(f"\n-- gitops: starting the API double (5 nodes, {N_SERVERS} guests + 1 template, latency {latency} s)",
          flush=True)
    with DoubleProcess(workdir, nodes=5, guests=N_SERVERS + 1, latency=latency, declared_ratio=1.0) as double:
        declared = _declarations(workdir, double.tfvars)
        if len(declared) != N_SERVERS:
            raise BenchError(f"expected {N_SERVERS} declared servers, the tfvars has {len(declared)}")
        walls = dict((step, []) for step in STEPS)
        cpus = dict((step, []) for step in STEPS)
        for round_no in range(runs):
            db = workdir / f"round{round_no}" / "proxmox_manager.db"
            tf_vars = workdir / f"round{round_no}" / "datastores.auto.tfvars.json"
            env = base_env(**double.env(), PROXMOX_MANAGER_DB=str(db), PROXMOX_MANAGER_TFVARS=str(double.tfvars))
            base = [str(BIN / "ansible-playbook"), "-i", str(workdir / "proxmox.yml"), "playbooks/apply.yml",
                    "-e", f"roles_file={workdir / 'roles.yml'}", "-e", f"datastores_file={workdir / 'datastores.yml'}",
                    "-e", f"terraform_vars_file={tf_vars}"]
            for step in STEPS:
                out = workdir / f"{step}.out"
                cmd = base + (["--check", "--diff"] if step.startswith("plan") else [])
                with open(out, "wb") as fh:
                    wall, _err, cpu = timed(cmd, env, stdout=fh, what=step)
                walls[step].append(wall)
                cpus[step].append(cpu)
                changed = _recap(out).get("changed")
                if step == "plan_fresh" and (db.exists() or changed != 2):
                    raise BenchError(f"the plan wrote the DB or planned no change (changed={changed}); see {out}")
                if step == "apply_first" and _db_roles(db) != declared:
                    raise BenchError(f"after apply the state DB does not hold the {N_SERVERS} declared roles")
                if step in ("apply_noop", "plan_noop") and changed != 0:
                    raise BenchError(f"{step} reported changed={changed}, expected 0; see {out}")
            print(f"   round {round_no + 1}/{runs}: " + ", ".join(
                f"{step} {walls[step][-1]:.2f}s" for step in STEPS), flush=True)
    result = dict((step, dict(stats(walls[step]), cpu=stats(cpus[step]))) for step in STEPS)
    return {"servers": N_SERVERS, "latency_s": latency, "runs": runs, "target_s": TARGET_S, "steps": result,
            "target_met": all(result[s]["median"] <= TARGET_S for s in ("apply_first", "apply_noop"))}


def report(out) -> str:
    rows = [(step, f"{out['steps'][step]['median']:.2f}", f"{out['steps'][step]['min']:.2f}",
             f"{out['steps'][step]['max']:.2f}", f"{out['steps'][step]['cpu']['median']:.2f}",
             f"<= {out['target_s']:.0f} s" if step in ("apply_first", "apply_noop") else "")
            for step in STEPS]
    verdict = "met" if out["target_met"] else "MISSED"
    return (f"gitops: playbooks/apply.yml with {out['servers']} declared servers ({out['runs']} runs, wall s)\n"
            + table(["step", "median", "min", "max", "cpu s", "target"], rows)
            + f"\ntarget (apply and no-op apply each within {out['target_s']:.0f} s): {verdict}")


def main(runs: int = 3, latency: float = 0.02) -> dict:
    return run(runs, latency)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.bench.gitops", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds on a fresh DB (median reported; default 3)")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per API request (default 0.02)")
    args = parser.parse_args()
    try:
        result = main(args.runs, args.latency)
    except BenchError as exc:
        print(f"gitops bench: {exc}", file=sys.stderr)
        sys.exit(1)
    result["machine"] = dict(machine(), load_avg_end=os.getloadavg())
    print(f"\nwrote {write_json('gitops.json', result)}")
    print("\n" + report(result))
