"""GitOps benchmark (issue 6): the GitOps loop at 10,000 declared servers, against `ansible-inventory --list`.

One API double process (10 nodes, N guests plus a template, 20 ms per request; every
guest running and declared, with an IP, in a generated tfvars). A generated
state/roles.yml gives each of the N servers its tfvars role, a datastores.yml sets both
defaults. Every figure is the wall time of a whole `ansible-inventory` or
`ansible-playbook` process from the repo root (start-up included). In each round,
side by side:
  inventory_list  ansible-inventory -i proxmox.yml --list       the reference (a state DB holding the N roles)
and, each run both ways, with `-i localhost,` (local: what the localhost playbooks are
meant to run with) and with `-i proxmox.yml` (inventory: the Proxmox inventory parsed
first, as before), each way on its own fresh state DB:
  validate    ansible-playbook playbooks/validate.yml
  plan        ansible-playbook playbooks/apply.yml --check --diff   (N would change; nothing written)
  apply       ansible-playbook playbooks/apply.yml                  (N roles recorded, defaults set)
  apply_noop  ansible-playbook playbooks/apply.yml                  (again: changed=0)
  drift       ansible-playbook playbooks/drift.yml -e fail_on_drift=true   (nothing drifts)
The reference runs at the start and at the end of each round; the two ways of a step
run one after the other, the first of them alternating from round to round.
Target: apply, no-op apply and drift with `-i localhost,` each at most 1.5x the median
of `ansible-inventory --list` of the same run.

Each playbook run's stdout is read as it comes, so the time of each task (from its
TASK banner to the next banner) is kept too, and the time before the first TASK
banner (start-up, and the inventory parse with `-i proxmox.yml`); API calls come
from the double's counters.

On each state DB kind (issue 17): `--state-dbs sqlite,postgresql` also runs apply and
apply_noop with `-i localhost,` on PostgreSQL (a fresh database of a throwaway server,
tests/postgres.py, in each round; the server is stopped at the end, failures included),
in the same rounds as the SQLite runs, the two kinds one after the other, the first of
them alternating from round to round; the report adds the ratio postgresql/sqlite.
`--steps` and `--modes` restrict what runs (apply_noop and drift need apply). A run
other than the default one writes .bench/gitops-state-dbs.json (and works in
.bench/work/gitops-state-dbs), so it leaves the default run's figures alone.

    python -m tests.bench.gitops [--runs N] [--servers N] [--latency S]    # writes .bench/gitops.json
    python -m tests.bench.gitops --servers 1000 --state-dbs sqlite,postgresql [--steps apply,apply_noop --modes local]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

from .common import (
    BIN,
    ROOT,
    WORK_DIR,
    BenchError,
    DoubleProcess,
    base_env,
    machine,
    rotated,
    stats,
    table,
    timed,
    write_json,
)

N_SERVERS = 10_000
TARGET_RATIO = 1.5
REFERENCE = "inventory_list"
STEPS = ("validate", "plan", "apply", "apply_noop", "drift")
MODES = ("local", "inventory")
TARGET_STEPS = ("apply", "apply_noop", "drift")
STATE_DBS = ("sqlite", "postgresql")
PG = "postgresql"
PG_WAY = "local:postgresql"  # the key suffix of a run with -i localhost, on PostgreSQL
PG_STEPS = ("apply", "apply_noop")  # the steps run on each state DB kind
WAY_DIRS = {"local": "local", "inventory": "inventory", PG_WAY: "local-postgresql"}
LABELS = {"validate": "validate", "plan": "plan (apply --check --diff)", "apply": "apply (fresh DB)",
          "apply_noop": "no-op re-apply", "drift": "drift"}
_BANNER = re.compile(r"^(?:PLAY RECAP|(PLAY|TASK) \[(.*)\]) \*+$")


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


def _recap(text: str) -> dict:
    line = next((ln for ln in text.splitlines() if ln.startswith("localhost ")), "")
    return dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", line))


def _db_roles(db) -> dict:
    if isinstance(db, str) and db.startswith("postgresql"):
        return _pg_db_roles(db)
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT name, role FROM servers WHERE role IS NOT NULL").fetchall())


def _pg_db_roles(url: str) -> dict:
    """_db_roles of a PostgreSQL state DB (a URL of tests/postgres.py's server), read with plain psycopg."""
    import psycopg

    from tests.postgres import conninfo_of

    with psycopg.connect(**conninfo_of(url)) as conn:
        return dict(conn.execute("SELECT name, role FROM servers WHERE role IS NOT NULL").fetchall())


def _selection(state_dbs, steps, modes) -> tuple[tuple, tuple, tuple]:
    """The state DB kinds, steps and modes to run, in their canonical order; a BenchError when they cannot run."""
    chosen = []
    for what, given, allowed in (("state DB kind", state_dbs, STATE_DBS), ("step", steps, STEPS),
                                 ("mode", modes, MODES)):
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            raise BenchError(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(allowed)}")
        chosen.append(tuple(x for x in allowed if x in set(given)))
    state_dbs, steps, modes = chosen
    if not steps or not modes:
        raise BenchError("no step or no mode to run")
    if "sqlite" not in state_dbs:
        raise BenchError("the state DB kinds must include sqlite (the runs PostgreSQL is compared with)")
    if any(step in steps for step in ("apply_noop", "drift")) and "apply" not in steps:
        raise BenchError("apply_noop and drift run on the DB apply filled: --steps needs apply too")
    if PG in state_dbs and "local" not in modes:
        raise BenchError("PostgreSQL runs with -i localhost, only: --modes needs local too")
    return state_dbs, steps, modes


def _ways(step: str, modes: tuple, pg_steps: tuple, round_no: int) -> list:
    """The runs of one step in a round, in order: the modes rotated; -i localhost, on each state DB kind for
    the steps that run on PostgreSQL too, the two kinds one after the other, the first alternating."""
    order = []
    for mode in rotated(list(modes), round_no):
        if mode == "local" and step in pg_steps:
            order += rotated(["local", PG_WAY], round_no)
        else:
            order.append(mode)
    return order


def _run_playbook(cmd: list, env: dict, out_path, what: str, timeout: float = 1800) -> tuple[float, float, list]:
    """Run an ansible-playbook; (wall s, CPU s, phases) where phases is [(name, seconds)] in order.

    The phases come from the moments the banners reach stdout: "start-up" until the first
    TASK banner (with `-i proxmox.yml` the inventory parse is in it), each task until the
    next banner, "end" from the PLAY RECAP banner to the exit of the process.
    """
    err_path = out_path.with_suffix(".err")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    marks = []
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err)
        watchdog = threading.Timer(timeout, proc.kill)  # a bound on a hang, as timed() has
        watchdog.start()
        try:
            for line in proc.stdout:
                now = time.perf_counter() - start
                out.write(line)
                m = _BANNER.match(line.decode("utf-8", "replace").rstrip())
                if m and m.group(1) != "PLAY":  # a PLAY banner is counted with the start-up
                    marks.append((now, m.group(2) if m.group(1) == "TASK" else "end"))
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        err_tail, out_tail = (path.read_text(errors="replace")[-3000:] for path in (err_path, out_path))
        raise BenchError(f"{what} failed (exit {proc.returncode}), see {out_path}:\n{err_tail}\n{out_tail}")
    phases, last, name = [], 0.0, "start-up"
    for t, mark in marks + [(wall, None)]:
        phases.append((name, t - last))
        last, name = t, mark
    return wall, cpu, [(n, round(s, 4)) for n, s in phases]


def _commands(workdir, mode: str, round_dir) -> dict:
    """{step: argv} of one way of running the playbooks (the Terraform file they write goes into round_dir)."""
    source = "localhost," if mode == "local" else str(workdir / "proxmox.yml")
    tf_out = round_dir / "datastores.auto.tfvars.json"
    common = ["-i", source, "-e", f"roles_file={workdir / 'roles.yml'}",
              "-e", f"datastores_file={workdir / 'datastores.yml'}"]
    apply = [str(BIN / "ansible-playbook"), "playbooks/apply.yml"] + common + ["-e", f"terraform_vars_file={tf_out}"]
    cmds = {
        "validate": [str(BIN / "ansible-playbook"), "playbooks/validate.yml"] + common,
        "plan": apply + ["--check", "--diff"],
        "apply": apply,
        "apply_noop": apply,
        "drift": [str(BIN / "ansible-playbook"), "playbooks/drift.yml"] + common + ["-e", "fail_on_drift=true"],
    }
    return cmds


def _check(step: str, text: str, db, declared: dict, out_path) -> None:
    """The run did what the step means (the numbers would mean nothing otherwise)."""
    recap = _recap(text)
    changed = recap.get("changed")
    if recap.get("failed", 1) != 0 or recap.get("unreachable", 1) != 0:
        raise BenchError(f"{step}: no clean recap for localhost ({recap}); see {out_path}")
    if step == "validate" and (changed != 0 or f"{len(declared)} server(s) declared, all valid" not in text):
        raise BenchError(f"validate did not report {len(declared)} valid declarations; see {out_path}")
    if step == "plan" and (db.exists() or changed != 2):
        raise BenchError(f"the plan wrote the DB or planned no change (changed={changed}); see {out_path}")
    if step == "apply" and (changed != 2 or _db_roles(db) != declared):
        raise BenchError(f"after apply (changed={changed}) the state DB does not hold the {len(declared)} declared "
                         f"roles; see {out_path}")
    if step in ("apply_noop", "drift") and changed != 0:
        raise BenchError(f"{step} reported changed={changed}, expected 0; see {out_path}")


def _api_calls(double) -> int:
    return double.counters()["total"]


def run(runs: int, latency: float, servers: int = N_SERVERS, state_dbs=("sqlite",), steps=STEPS,
        modes=MODES) -> dict:
    state_dbs, steps, modes = _selection(state_dbs, steps, modes)
    default = (state_dbs, steps, modes) == (("sqlite",), STEPS, MODES)
    pg_steps = tuple(step for step in PG_STEPS if step in steps) if PG in state_dbs else ()
    workdir = WORK_DIR / ("gitops" if default else "gitops-state-dbs")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    pg_server = None
    try:
        if pg_steps:
            from tests import postgres

            pg_server = postgres.PostgresServer()
            try:
                pg_server.start()
            except postgres.PostgresUnavailable as exc:
                raise BenchError(f"no PostgreSQL server for --state-dbs {PG}: {exc}") from None
            print(f"\n-- gitops: throwaway PostgreSQL server started (tests/postgres.py, socket in {pg_server.dir})",
                  flush=True)
        return _run(workdir, runs, latency, servers, state_dbs, steps, modes, pg_steps, pg_server, default)
    finally:
        if pg_server is not None:
            pg_server.stop()


def _run(workdir, runs, latency, servers, state_dbs, steps, modes, pg_steps, pg_server, default) -> dict:
    print(f"\n-- gitops: starting the API double (10 nodes, {servers} guests + 1 template, latency {latency} s)",
          flush=True)
    with DoubleProcess(workdir, nodes=10, guests=servers + 1, latency=latency, declared_ratio=1.0) as double:
        declared = _declarations(workdir, double.tfvars)
        if len(declared) != servers:
            raise BenchError(f"expected {servers} declared servers, the tfvars has {len(declared)}")
        base = dict(**double.env(), PROXMOX_MANAGER_TFVARS=str(double.tfvars))

        # The reference's state DB holds the N roles, as a config repo's does after its first apply; one untimed
        # apply fills it (and warms the caches), one untimed listing records the view in it.
        ref_db = workdir / "reference" / "proxmox_manager.db"
        ref_db.parent.mkdir(parents=True)
        ref_env = base_env(**base, PROXMOX_MANAGER_DB=str(ref_db))
        print("   warm-up: one apply (-i localhost,) and one ansible-inventory --list, untimed", flush=True)
        warm_cmds = _commands(workdir, "local", ref_db.parent)
        _run_playbook(warm_cmds["apply"], ref_env, workdir / "warmup-apply.out", "warm-up apply")
        if _db_roles(ref_db) != declared:
            raise BenchError("the warm-up apply did not record the declared roles")
        list_cmd = [str(BIN / "ansible-inventory"), "-i", str(workdir / "proxmox.yml"), "--list"]
        timed(list_cmd, ref_env, what="warm-up ansible-inventory --list")
        if pg_steps:
            # The PostgreSQL driver's first use (imports, the server's caches) is not in the first timed run either.
            print("   warm-up: one apply (-i localhost,) on PostgreSQL, untimed", flush=True)
            warm_dir = workdir / "warmup-postgresql"
            warm_dir.mkdir()
            warm_name = pg_server.create_database("warmup")
            warm_url = pg_server.url(warm_name)
            _run_playbook(_commands(workdir, "local", warm_dir)["apply"], base_env(**base, PROXMOX_MANAGER_DB=warm_url),
                          warm_dir / "warmup-apply.out", "warm-up apply on PostgreSQL")
            if _db_roles(warm_url) != declared:
                raise BenchError("the warm-up apply on PostgreSQL did not record the declared roles")
            pg_server.drop_database(warm_name)

        keys = ([REFERENCE] + [f"{step}:{mode}" for step in steps for mode in modes]
                + [f"{step}:{PG_WAY}" for step in pg_steps])
        walls, cpus, calls = (dict((k, []) for k in keys) for _copy in range(3))
        phases = dict((k, []) for k in keys if k != REFERENCE)
        for round_no in range(runs):
            ways, pg_name = {}, None
            for mode in modes:
                round_dir = workdir / f"round{round_no}" / mode
                round_dir.mkdir(parents=True)
                db = round_dir / "proxmox_manager.db"
                ways[mode] = (_commands(workdir, mode, round_dir), base_env(**base, PROXMOX_MANAGER_DB=str(db)), db)
            if pg_steps:  # a fresh database of the throwaway server, as the SQLite runs get a fresh file
                round_dir = workdir / f"round{round_no}" / WAY_DIRS[PG_WAY]
                round_dir.mkdir(parents=True)
                pg_name = pg_server.create_database(f"round{round_no}")
                url = pg_server.url(pg_name)
                ways[PG_WAY] = (_commands(workdir, "local", round_dir), base_env(**base, PROXMOX_MANAGER_DB=url), url)

            def reference():
                double.reset()
                with open(workdir / "inventory_list.json", "wb") as fh:
                    wall, _err, cpu = timed(list_cmd, ref_env, stdout=fh, what="ansible-inventory --list")
                calls[REFERENCE].append(_api_calls(double))
                hosts = json.loads((workdir / "inventory_list.json").read_text())["_meta"]["hostvars"]
                if len(hosts) != servers:
                    raise BenchError(f"ansible-inventory --list showed {len(hosts)} hosts, expected {servers}")
                walls[REFERENCE].append(wall)
                cpus[REFERENCE].append(cpu)

            reference()
            for step in steps:
                for way in _ways(step, modes, pg_steps, round_no):
                    cmds, env, db = ways[way]
                    key = f"{step}:{way}"
                    out = workdir / f"round{round_no}" / WAY_DIRS[way] / f"{step}.out"
                    double.reset()
                    wall, cpu, spans = _run_playbook(cmds[step], env, out, key)
                    calls[key].append(_api_calls(double))
                    _check(step, out.read_text(errors="replace"), db, declared, out)
                    walls[key].append(wall)
                    cpus[key].append(cpu)
                    phases[key].append(spans)
            reference()
            if pg_name is not None:
                pg_server.drop_database(pg_name)
            if default:
                print(f"   round {round_no + 1}/{runs}: inventory --list {walls[REFERENCE][-2]:.2f}s/"
                      f"{walls[REFERENCE][-1]:.2f}s; " + "; ".join(
                          f"{step} {walls[step + ':local'][-1]:.2f}s/{walls[step + ':inventory'][-1]:.2f}s"
                          for step in STEPS) + "  (-i localhost, / -i proxmox.yml)", flush=True)
            else:
                print(f"   round {round_no + 1}/{runs}: inventory --list {walls[REFERENCE][-2]:.2f}s/"
                      f"{walls[REFERENCE][-1]:.2f}s; " + "; ".join(
                          f"{key} {walls[key][-1]:.2f}s" for key in keys[1:]) + "  (step:mode[:state DB])",
                      flush=True)

    ref = statistics.median(walls[REFERENCE])
    # Each round's reference: the mean of its two listings (at the start and at the end of the round).
    round_refs = [(walls[REFERENCE][2 * i] + walls[REFERENCE][2 * i + 1]) / 2 for i in range(runs)]
    result = {}
    for key in keys:
        entry = dict(stats(walls[key]), cpu=stats(cpus[key]), api_calls=calls[key],
                     ratio=statistics.median(walls[key]) / ref)
        if key != REFERENCE:
            entry["round_ratios"] = [round(w / r, 3) for w, r in zip(walls[key], round_refs)]
        if key in phases:
            entry["phases"] = _phase_medians(phases[key])
            entry["phases_by_round"] = phases[key]
        result[key] = entry
    checked = dict((step, result[f"{step}:local"]["ratio"] <= TARGET_RATIO) for step in TARGET_STEPS
                   if f"{step}:local" in result)
    out = {"benchmark": "gitops", "servers": servers, "latency_s": latency, "runs": runs,
           "reference": "ansible-inventory -i proxmox.yml --list", "target_ratio": TARGET_RATIO,
           "steps": result, "target": checked, "target_met": all(checked.values()) if checked else None}
    if not default:
        out.update(state_dbs=list(state_dbs), steps_run=list(steps), modes=list(modes))
    if pg_steps:
        # PostgreSQL against SQLite, both with -i localhost,: the ratio of the medians, and of each round's pair.
        out["state_db_comparison"] = dict(
            (step, {"sqlite": f"{step}:local", PG: f"{step}:{PG_WAY}",
                    "ratio": statistics.median(walls[f"{step}:{PG_WAY}"]) / statistics.median(walls[f"{step}:local"]),
                    "round_ratios": [round(p / s, 3) for p, s in zip(walls[f"{step}:{PG_WAY}"],
                                                                     walls[f"{step}:local"])],
                    "cpu_ratio": (statistics.median(cpus[f"{step}:{PG_WAY}"])
                                  / statistics.median(cpus[f"{step}:local"]))})
            for step in pg_steps)
    return out


def _phase_medians(rounds: list) -> list:
    """[(phase, median seconds)] over the rounds, in the order of the first round (the phases are the same)."""
    names = [name for name, _s in rounds[0]]
    return [(name, round(statistics.median(dict(r).get(name, 0.0) for r in rounds), 3)) for name in names]


def report(out) -> str:
    steps, ref = out["steps"], out["steps"][REFERENCE]
    steps_run, modes_run = out.get("steps_run", STEPS), out.get("modes", MODES)

    def cell(key):
        if key not in steps:  # a mode left out (--modes)
            return "-", "-"
        s = steps[key]
        spread = s.get("round_ratios")
        spread = f" ({min(spread):.2f}-{max(spread):.2f})" if spread and len(spread) > 1 else ""
        return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})", f"{s['ratio']:.2f}x{spread}"

    def median_of(key, field, fmt):
        return fmt % (statistics.median(steps[key][field]) if field == "api_calls" else
                      steps[key][field]["median"]) if key in steps else "-"

    rows = [("`ansible-inventory --list` (reference)", *cell(REFERENCE), "", "", f"{ref['cpu']['median']:.2f}", "")]
    for step in steps_run:
        local, inv = f"{step}:local", f"{step}:inventory"
        target = ""
        if step in out["target"]:
            target = ("met" if out["target"][step] else "MISSED") + f" (<= {out['target_ratio']}x)"
        rows.append((LABELS[step], *cell(local), *cell(inv), f"{median_of(local, 'cpu', '%.2f')} / "
                     f"{median_of(inv, 'cpu', '%.2f')}", target))
    lines = [f"gitops: {out['servers']} declared servers, {out['latency_s'] * 1000:.0f} ms per request, "
             f"{out['runs']} rounds (wall s: median (min-max); ratio: median to the reference median "
             f"(per round: to the mean of the round's two reference runs))",
             table(["step", "-i localhost,", "ratio", "-i proxmox.yml", "ratio", "cpu s (local / inv.)", "target"],
                   rows)]
    lines.append("\nAPI calls per run (-i localhost, / -i proxmox.yml): reference "
                 f"{statistics.median(ref['api_calls']):.0f}; " + "; ".join(
                     f"{step} {median_of(step + ':local', 'api_calls', '%.0f')}/"
                     f"{median_of(step + ':inventory', 'api_calls', '%.0f')}" for step in steps_run))
    comparison = out.get("state_db_comparison")
    if comparison:
        rows = []
        for step, c in comparison.items():
            sqlite, pg = steps[c["sqlite"]], steps[c[PG]]
            rows.append((LABELS[step], cell(c["sqlite"])[0], cell(c[PG])[0],
                         f"{c['ratio']:.2f}x ({min(c['round_ratios']):.2f}-{max(c['round_ratios']):.2f})",
                         f"{sqlite['cpu']['median']:.2f} / {pg['cpu']['median']:.2f}",
                         f"{statistics.median(sqlite['api_calls']):.0f} / {statistics.median(pg['api_calls']):.0f}"))
        lines.append(f"\nState DB kinds, -i localhost, ({out['runs']} rounds, each on a fresh DB; the two kinds one "
                     "after the other in each round, the first alternating; wall s: median (min-max); ratio: "
                     "postgresql median / sqlite median (per round: min-max))")
        lines.append(table(["step", "SQLite", "PostgreSQL", "ratio pg/sqlite", "cpu s (sqlite / pg)",
                            "API calls (sqlite / pg)"], rows))
    lines.append("\nWhere the time goes (medians, s; start-up is before the first TASK banner):")
    for key in (k for k in steps if k != REFERENCE):
        lines.append(f"  {key}: " + ", ".join(f"{name} {s:.2f}" for name, s in steps[key]["phases"]))
    if out["target_met"] is None:
        verdict = "not measured (none of apply, no-op apply and drift ran with -i localhost,)"
    else:
        verdict = "met" if out["target_met"] else "MISSED"
        if tuple(out["target"]) != TARGET_STEPS:
            verdict += " (of " + ", ".join(out["target"]) + " only)"
    lines.append(f"\ntarget (apply, no-op apply and drift with -i localhost, each at most {out['target_ratio']}x "
                 f"ansible-inventory --list): {verdict}")
    return "\n".join(lines)


def main(runs: int = 3, latency: float = 0.02, servers: int = N_SERVERS, state_dbs=("sqlite",), steps=STEPS,
         modes=MODES) -> dict:
    return run(runs, latency, servers, state_dbs, steps, modes)


def _names(text: str) -> list:
    return [name.strip() for name in text.split(",") if name.strip()]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.bench.gitops", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds (median reported; default 3)")
    parser.add_argument("--servers", type=int, default=N_SERVERS, help=f"declared servers (default {N_SERVERS})")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per API request (default 0.02)")
    parser.add_argument("--state-dbs", type=_names, default=["sqlite"], metavar="KINDS",
                        help="state DB kinds: sqlite, or sqlite,postgresql to run apply and apply_noop with "
                        "-i localhost, on a throwaway PostgreSQL server too (default sqlite)")
    parser.add_argument("--steps", type=_names, default=list(STEPS), metavar="STEPS",
                        help=f"steps to run (default {','.join(STEPS)}; apply_noop and drift need apply)")
    parser.add_argument("--modes", type=_names, default=list(MODES), metavar="MODES",
                        help=f"ways to run them (default {','.join(MODES)})")
    parser.add_argument("--json", metavar="NAME", help="the results file in .bench/ (default gitops.json, or "
                        "gitops-state-dbs.json when --state-dbs, --steps or --modes differ from their defaults)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    try:
        selection = _selection(args.state_dbs, args.steps, args.modes)
    except BenchError as exc:
        parser.error(str(exc))
    json_name = args.json or ("gitops.json" if selection == (("sqlite",), STEPS, MODES) else "gitops-state-dbs.json")
    host = machine()
    try:
        result = main(args.runs, args.latency, args.servers, *selection)
    except BenchError as exc:
        print(f"gitops bench: {exc}", file=sys.stderr)
        sys.exit(1)
    result["machine"] = dict(host, load_avg_end=os.getloadavg())
    print(f"\nwrote {write_json(json_name, result)}")
    print("\n" + report(result))
