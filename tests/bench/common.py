"""Shared pieces of the benchmarks: the API double as a process, timing, the machine, community.proxmox."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BENCH_DIR = ROOT / ".bench"
WORK_DIR = BENCH_DIR / "work"  # not /tmp: other runs on this machine clean up /tmp/pve-double-*
BENCH_REQUIREMENTS = ROOT / "requirements" / "bench.txt"
COMMUNITY_DIR = BENCH_DIR / "collections"  # holds ansible_collections/community/proxmox only


class BenchError(RuntimeError):
    """A benchmark could not run as designed (the numbers would mean nothing)."""


# --------------------------------------------------------------------------
# The double, as a separate process
# --------------------------------------------------------------------------


class DoubleProcess:
    """`python -m tests.pve_double ...` in its own process, with its control API at hand."""

    def __init__(self, workdir: Path, *, nodes: int, guests: int, latency: float, seed: int = 0,
                 running_ratio: float = 1.0, agent_ratio: float = 1.0, declared_ratio: float = 0.9,
                 name_prefix: str = "vm", cluster_name: str | None = None):
        self.workdir = workdir
        self.info_file = workdir / "double.json"
        self.tfvars = workdir / "terraform.tfvars.json"
        self.args = [
            str(BIN / "python"), "-m", "tests.pve_double", "--nodes", str(nodes), "--guests", str(guests),
            "--seed", str(seed), "--latency", str(latency), "--running-ratio", str(running_ratio),
            "--agent-ratio", str(agent_ratio), "--declared-ratio", str(declared_ratio),
            "--name-prefix", name_prefix, "--tfvars-out", str(self.tfvars), "--cert-dir", str(workdir / "certs"),
            "--info-file", str(self.info_file),
        ] + (["--cluster-name", cluster_name] if cluster_name else [])
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self._session = requests.Session()

    def __enter__(self) -> DoubleProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.info_file.unlink(missing_ok=True)
        log = open(self.workdir / "double.log", "wb")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 180
        while not self.info_file.exists():
            if self.proc.poll() is not None:
                raise BenchError("the API double exited early:\n" + (self.workdir / "double.log").read_text()[-2000:])
            if time.monotonic() > deadline:
                self.__exit__()
                raise BenchError("the API double did not start within 180 s")
            time.sleep(0.1)
        self.info = json.loads(self.info_file.read_text())
        self._session.headers["X-Double-Token"] = self.info["control_token"]
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._session.close()

    def reset(self) -> None:
        r = self._session.post(self.info["control_url"] + "/reset", timeout=30, verify=self.info["ca_path"])
        r.raise_for_status()

    def counters(self) -> dict:
        r = self._session.get(self.info["control_url"] + "/counters", timeout=30, verify=self.info["ca_path"])
        r.raise_for_status()
        return r.json()

    def api_get(self, path: str, **params):
        headers = {"Authorization": f"PVEAPIToken={self.info['token_id']}={self.info['token_secret']}"}
        r = self._session.get(self.info["api_url"] + path, params=params, headers=headers, timeout=60,
                              verify=self.info["ca_path"])  # explicit: REQUESTS_CA_BUNDLE beats a session's verify
        r.raise_for_status()
        return r.json()["data"]

    def env(self) -> dict:
        """The PROXMOX_* environment a user would export for this cluster."""
        return {"PROXMOX_HOST": self.info["host"], "PROXMOX_PORT": str(self.info["port"]),
                "PROXMOX_USER": self.info["token_user"], "PROXMOX_TOKEN_ID": self.info["token_name"],
                "PROXMOX_TOKEN_SECRET": self.info["token_secret"], "PROXMOX_CA_PATH": self.info["ca_path"]}


# --------------------------------------------------------------------------
# Running and timing
# --------------------------------------------------------------------------


def base_env(**extra) -> dict:
    env = dict(os.environ)
    for key in list(env):  # the bench sets what it means; a user's setting must not leak in
        if key.startswith(("PROXMOX_", "ANSIBLE_")) or key == "REQUESTS_CA_BUNDLE":
            del env[key]
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PYTHONDONTWRITEBYTECODE="")
    env.update(extra)
    return env


def timed(cmd: list, env: dict, stdout=None, what: str = "", timeout: float = 900) -> tuple[float, str, float]:
    """Run cmd, return (wall seconds, stderr, CPU seconds); a failure stops the benchmark with its message.

    CPU (user+sys of the process and its children) is less disturbed by a busy machine than wall time.
    """
    out = stdout if stdout is not None else subprocess.DEVNULL
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.PIPE, timeout=timeout, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise BenchError(f"{what or cmd[0]} failed (exit {proc.returncode}):\n{err[-3000:]}")
    return wall, err, cpu


def write_private(path: Path, text: str, mode: int = 0o600) -> Path:
    """A bench input file (an inventory source holds a token secret: 0600)."""
    path.write_text(text)
    os.chmod(path, mode)
    return path


def state_db(path: Path) -> str:
    """A state DB made as the modules make it: the inventory records its view only into an existing one."""
    sys.path.insert(0, str(ROOT / "collections"))
    from ansible_collections.proxmox_manager.core.plugins.module_utils.state_store import StateStore

    path.parent.mkdir(parents=True, exist_ok=True)
    store = StateStore(str(path))
    with store.writing():
        pass
    store.close()
    return str(path)


def parse_failure(err: str) -> bool:
    """Whether ansible-inventory's stderr says a source did not parse (it may still exit 0)."""
    return any(s in err for s in ("Failed to parse", "Unable to parse", "No inventory was parsed"))


def stats(values: list) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": [round(v, 4) for v in values]}


def rotated(items: list, round_no: int) -> list:
    """Interleave: each round starts with the next contender, so none always runs first."""
    k = round_no % len(items)
    return items[k:] + items[:k]


def interleaved(runs: int, keys: list, one_run, labels: dict, wanted=None) -> dict:
    """{key: [run, ...]}: `runs` rounds, each running every key once, in rotated() order.

    one_run(key) returns a dict with at least `wall`, `cpu` and `calls` (the double's counters, with their
    `total`); each run is printed as it ends. wanted(key, its runs so far) may leave a key out of a round.
    """
    done = {key: [] for key in keys}
    width = max(len(labels[key]) for key in keys)
    for r in range(runs):
        for key in rotated(list(keys), r):
            if wanted is not None and not wanted(key, done[key]):
                continue
            run = one_run(key)
            done[key].append(run)
            print(f"   round {r + 1}/{runs}  {labels[key]:<{width}} {run['wall']:7.2f} s wall {run['cpu']:6.2f} s CPU "
                  f"{run['calls']['total']:6d} API calls", flush=True)
    return done


def table(headers: list, rows: list) -> str:
    """A Markdown table (readable on a terminal, pasteable into docs/benchmarks.md)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

    return "\n".join([line(cells[0]), "| " + " | ".join("-" * w for w in widths) + " |"]
                     + [line(r) for r in cells[1:]])


def write_json(name: str, data: dict) -> Path:
    BENCH_DIR.mkdir(exist_ok=True)
    path = BENCH_DIR / name
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


# --------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    except (OSError, AttributeError):
        pass
    from ansible.release import __version__ as ansible_core

    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "nproc": os.cpu_count(), "cpu_model": cpu,
            "memory_gib": round(mem_kib / 1024 / 1024, 1), "python": platform.python_version(),
            "ansible_core": ansible_core, "kernel": platform.release(), "load_avg_start": os.getloadavg()}


# --------------------------------------------------------------------------
# The collection at another commit, to time side by side with this checkout
# --------------------------------------------------------------------------


def baseline_collections(ref: str) -> tuple[Path, str]:
    """The collections dir of a git worktree of `ref` under .bench/baseline/, and the commit it is.

    The worktree's committed symlink collections/ansible_collections/proxmox_manager/core points at its
    own root, so ANSIBLE_COLLECTIONS_PATH=<that dir> runs the plugin as it was at `ref`.
    """
    def git(*args):
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BenchError(f"git {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    tree = BENCH_DIR / "baseline" / commit[:12]
    if not (tree / "galaxy.yml").exists():
        git("worktree", "prune")  # forgets worktrees whose directory `make clean` removed
        git("worktree", "add", "--detach", "--force", str(tree), commit)
    return tree / "collections", commit


# --------------------------------------------------------------------------
# community.proxmox, a benchmark-only dependency
# --------------------------------------------------------------------------


def _pinned_wheel() -> tuple[str, str, str]:
    """(name, version, sha256) of the one pin in requirements/bench.txt."""
    for line in BENCH_REQUIREMENTS.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)==([^\s;]+)\s+--hash=sha256:([0-9a-f]{64})", line)
        if m:
            return m.group(1), m.group(2), m.group(3)
    raise BenchError(f"{BENCH_REQUIREMENTS}: expected a line `NAME==VERSION --hash=sha256:...`")


def community_proxmox() -> tuple[Path, str]:
    """The collections dir holding community.proxmox, and its version.

    The `ansible` package pins ansible-core too, so it is not installed into
    .venv: its wheel is fetched with pip (hash-checked) and only
    ansible_collections/community/proxmox is extracted under .bench/.
    """
    name, version, sha = _pinned_wheel()
    target = COMMUNITY_DIR / "ansible_collections" / "community" / "proxmox"
    stamp = COMMUNITY_DIR / f".from-{name}-{version}-{sha[:12]}"
    if not stamp.exists():
        wheels = BENCH_DIR / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(BIN / "python"), "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--only-binary=:all:", "--require-hashes", "-r", str(BENCH_REQUIREMENTS),
                        "-d", str(wheels)], check=True, cwd=ROOT)
        wheel = next(wheels.glob(f"{name}-{version}-*.whl"))
        if hashlib.sha256(wheel.read_bytes()).hexdigest() != sha:
            raise BenchError(f"{wheel}: sha256 differs from the pin in {BENCH_REQUIREMENTS}")
        shutil.rmtree(COMMUNITY_DIR, ignore_errors=True)
        prefix = "ansible_collections/community/proxmox/"
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(COMMUNITY_DIR, [m for m in zf.namelist() if m.startswith(prefix)])
        stamp.touch()
    manifest = json.loads((target / "MANIFEST.json").read_text())
    return COMMUNITY_DIR, manifest["collection_info"]["version"]
