"""Run the Proxmox VE double as a process (for the demo, the Makefile and benchmarks).

    python -m tests.pve_double --scenario tests/pve_double/scenarios/sample.yml --info-file /tmp/pve.json
    python -m tests.pve_double --nodes 5 --guests 5000 --seed 1 --info-file /tmp/pve.json
    python -m tests.pve_double --nodes 3 --guests 1000 --cluster-name lab --name-prefix lab-vm --info-file /tmp/lab.json

It prints one line when ready, after writing the info file (JSON, mode 0600)
atomically; SIGTERM/SIGINT stop it and remove the info file and the pidfile.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .cluster import _atomic_write, generate_cluster, load_scenario, write_tfvars
from .server import SAMPLE_SCENARIO, DoubleServer


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.pve_double", description=__doc__.split("\n\n", 1)[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--scenario", help="YAML/JSON scenario file (default: the sample cluster)")
    src.add_argument("--nodes", type=int, help="generate a cluster of this many nodes")
    p.add_argument("--guests", type=int, default=10, help="generated guests in all, templates included")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duplicates", type=int, default=0, help="generated guests that reuse another's name")
    p.add_argument("--templates", type=int, default=1)
    p.add_argument("--offline-nodes", type=int, default=0)
    p.add_argument("--lxc-ratio", type=float, default=0.2)
    p.add_argument("--running-ratio", type=float, default=0.8)
    p.add_argument("--agent-ratio", type=float, default=0.7, help="share of qemu guests with the agent enabled")
    p.add_argument("--name-prefix", default="vm")
    p.add_argument("--cluster-name", help="the cluster's name (GET /cluster/status, the login's clustername); "
                                          "default: the scenario's, or 'generated' for a generated cluster")
    p.add_argument("--tfvars-out", help="also write a matching terraform.tfvars.json here")
    p.add_argument("--declared-ratio", type=float, default=0.9, help="share of guests the tfvars declares")
    p.add_argument("--declared-only", type=int, default=0, help="tfvars servers that are not in Proxmox")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every API request")
    p.add_argument("--pve-major", type=int, choices=(8, 9),
                   help="answer as PVE 8 (guest agent calls check VM.Monitor) or 9 (VM.GuestAgent.Audit); "
                        "default: the scenario's pve_major, else 9")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--control-token", help="token of the /_double control API (default: random)")
    p.add_argument("--cert-dir", help="where the CA files go (default: a temporary directory)")
    p.add_argument("--info-file", required=True, help="JSON file written when ready")
    p.add_argument("--pidfile")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args(argv)
    if args.nodes is None and (args.duplicates or args.offline_nodes):
        p.error("--duplicates/--offline-nodes need a generated cluster (--nodes)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.nodes is not None:
        cluster = generate_cluster(
            args.nodes, args.guests, args.seed, templates=args.templates, duplicate_names=args.duplicates,
            offline_nodes=args.offline_nodes, lxc_ratio=args.lxc_ratio, running_ratio=args.running_ratio,
            agent_ratio=args.agent_ratio, name_prefix=args.name_prefix, cluster_name=args.cluster_name or "generated")
    else:
        cluster = load_scenario(args.scenario or SAMPLE_SCENARIO)
        if args.cluster_name:
            cluster.cluster_name = args.cluster_name
    if args.pve_major is not None:
        cluster.pve_major = args.pve_major
    if args.tfvars_out:
        write_tfvars(cluster, args.tfvars_out, declared_ratio=args.declared_ratio,
                     extra_declared_only=args.declared_only, seed=args.seed)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    info_file = Path(args.info_file)
    info_file.unlink(missing_ok=True)  # a stale file must not pass for readiness
    pidfile = Path(args.pidfile) if args.pidfile else None
    double = DoubleServer(cluster, host=args.host, port=args.port, latency=args.latency,
                          control_token=args.control_token, cert_dir=args.cert_dir, verbose=args.verbose)
    try:
        double.start()
        if pidfile:
            _atomic_write(pidfile, f"{os.getpid()}\n")
        info = dict(double.info(), pid=os.getpid())
        _atomic_write(info_file, json.dumps(info, indent=2) + "\n", mode=0o600)
        print(f"pve-double ready on {double.url} ({len(cluster.nodes)} nodes, {len(cluster.guests)} guests); "
              f"info in {info_file}", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        double.stop()
        info_file.unlink(missing_ok=True)
        if pidfile:
            pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
