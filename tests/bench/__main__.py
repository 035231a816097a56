"""`make bench`: python -m tests.bench [--only inventory|server_role|gitops|clusters] [--runs N] ...

Prints the tables and writes .bench/inventory.json, .bench/server_role.json, .bench/gitops.json and
.bench/clusters.json.
Benchmarks report; they never fail a build on a missed target (exit 0), only
when a run could not happen as designed (exit 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from . import clusters, gitops, inventory, server_role
from .common import BenchError, machine, write_json


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--only", choices=("inventory", "server_role", "gitops", "clusters"), help="run one benchmark only")
    p.add_argument("--runs", type=int, default=None,
                   help="timed runs per contender (median reported; default 5, clusters 3)")
    p.add_argument("--sizes", default="1000,5000", help="inventory cluster sizes, guests (default 1000,5000)")
    p.add_argument("--facts-size", type=int, default=500,
                   help="cluster size for community.proxmox want_facts:true (0 skips it; default 500)")
    p.add_argument("--facts-runs", type=int, default=None, help="timed runs of want_facts:true (default --runs)")
    p.add_argument("--latency", type=float, default=0.02,
                   help="inventory, gitops and clusters: seconds per API request (default 0.02)")
    p.add_argument("--baseline", metavar="REF", help="inventory: also time the plugin as it was at git REF "
                   "(e.g. HEAD~1), interleaved with this checkout")
    p.add_argument("--servers", type=int, default=gitops.N_SERVERS,
                   help=f"gitops: declared servers (default {gitops.N_SERVERS}; at most 3 rounds of --runs)")
    p.add_argument("--loop-calls", type=int, default=100, help="server_role: single calls in the loop (default 100)")
    args = p.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        p.error("--runs must be at least 1")
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    return args


def main(argv=None) -> int:
    args = _parse(argv)
    runs = args.runs or 5
    host = machine()
    print(f"make bench on {host['nproc']} cores ({host['cpu_model']}), {host['memory_gib']} GiB, Python "
          f"{host['python']}, ansible-core {host['ansible_core']}; load average {host['load_avg_start'][0]:.2f}",
          flush=True)
    reports = []
    try:
        if args.only in (None, "inventory"):
            out = inventory.main(runs, args.sizes, args.facts_size, args.facts_runs or runs, args.latency,
                                 args.baseline)
            out["machine"] = dict(host, load_avg_end=os.getloadavg())
            print(f"\nwrote {write_json('inventory.json', out)}")
            reports.append(inventory.report(out))
        if args.only in (None, "server_role"):
            out = server_role.main(runs, args.loop_calls)
            out["machine"] = dict(host, load_avg_end=os.getloadavg())
            print(f"\nwrote {write_json('server_role.json', out)}")
            reports.append(server_role.report(out))
        if args.only in (None, "gitops"):
            out = gitops.main(min(runs, 3), args.latency, args.servers)
            out["machine"] = dict(host, load_avg_end=os.getloadavg())
            print(f"\nwrote {write_json('gitops.json', out)}")
            reports.append(gitops.report(out))
        if args.only in (None, "clusters"):
            out = clusters.main(args.runs or 3, args.latency)
            out["machine"] = dict(host, load_avg_end=os.getloadavg())
            print(f"\nwrote {write_json('clusters.json', out)}")
            reports.append(clusters.report(out))
    except BenchError as exc:
        print(f"\nmake bench: {exc}", file=sys.stderr)
        return 1
    print("\n" + "\n\n".join(reports))
    print(f"\n(load average now {os.getloadavg()[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M:%S')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
