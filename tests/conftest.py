"""Shared fixtures: the collection on sys.path, the API double, module runners."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / 'collections'
for path in (str(COLLECTIONS), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)

from tests import postgres  # noqa: E402
from tests.pve_double import DoubleServer, load_scenario  # noqa: E402

SAMPLE = ROOT / 'tests' / 'pve_double' / 'scenarios' / 'sample.yml'
SAMPLE_TFVARS = ROOT / 'terraform' / 'terraform.tfvars.json'
# A second cluster, `lab`: its web-01 shares the name and the vmid of the sample's web-01.
LAB = ROOT / 'tests' / 'pve_double' / 'scenarios' / 'lab.yml'
LAB_TFVARS = ROOT / 'tests' / 'pve_double' / 'scenarios' / 'lab.tfvars.json'
BIN = Path(sys.executable).parent


def declared_vars(entry):
    """What issue 3 says `pve_declared` holds: cpu, memory, disks and network_devices of the tfvars entry."""
    if entry is None:
        return None
    return {k: entry[k] for k in ('cpu', 'memory', 'disks', 'network_devices') if k in entry}


def connection_options(double, auth='token', **extra):
    """Module/plugin options pointing at a running double."""
    opts = dict(api_host=double.host, api_port=double.port, ca_path=double.ca_path, api_user=double.token_user)
    if auth == 'token':
        opts.update(api_token_id=double.token_name, api_token_secret=double.token_secret)
    else:
        opts.update(api_user=double.user, api_password=double.password)
    opts.update(extra)
    return opts


def connection_env(double, **extra):
    """The PROXMOX_* environment a user would export, for subprocess runs."""
    env = dict(os.environ)
    env.update(PROXMOX_HOST=double.host, PROXMOX_PORT=str(double.port), PROXMOX_USER=double.token_user,
               PROXMOX_TOKEN_ID=double.token_name, PROXMOX_TOKEN_SECRET=double.token_secret,
               PROXMOX_CA_PATH=double.ca_path, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'),
               ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    env.update(extra)
    return env


@pytest.fixture
def sample_cluster():
    return load_scenario(SAMPLE)


@pytest.fixture
def double(sample_cluster):
    with DoubleServer(sample_cluster) as server:
        yield server


@pytest.fixture
def lab_double():
    """The second cluster, `lab` (the sample cluster of `double` is `demo`)."""
    yield from _serve(LAB)


def _serve(scenario):
    with DoubleServer(load_scenario(scenario)) as server:
        yield server


@pytest.fixture(scope='module')
def sample_double():
    """The sample cluster for a whole test module whose tests change nothing of it."""
    yield from _serve(SAMPLE)


@pytest.fixture(scope='module')
def lab_module_double():
    """The lab cluster for a whole test module whose tests change nothing of it."""
    yield from _serve(LAB)


@pytest.fixture
def lab_tfvars(tmp_path):
    """A copy of the lab cluster's tfvars the test may edit."""
    path = tmp_path / 'lab.tfvars.json'
    path.write_text(LAB_TFVARS.read_text())
    return path


def clusters_mapping(**doubles_and_tfvars):
    """The `clusters` mapping of an inventory file for {name: (double, tfvars path)}, secrets included."""
    return dict((name, dict(connection_options(double), tfvars_path=str(path)))
                for name, (double, path) in doubles_and_tfvars.items())


@pytest.fixture
def make_double():
    """Start a double for a cluster the test built; stopped at teardown."""
    started = []

    def _start(cluster, **kwargs):
        server = DoubleServer(cluster, **kwargs)
        server.__enter__()
        started.append(server)
        return server

    yield _start
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture(scope='session')
def inventory_loader():
    """Ansible's inventory plugin loader, with this collection's metadata in place."""
    import importlib

    from ansible.plugins.loader import init_plugin_loader, inventory_loader as loader
    init_plugin_loader()
    # Other tests imported the collection from sys.path, before Ansible's collection finder was in
    # place, so its package lacks the runtime.yml metadata the plugin loader needs. Re-import the
    # package (only the package: its submodules stay the very objects the other tests hold).
    package = 'ansible_collections.proxmox_manager.core'
    if getattr(sys.modules.get(package), '_collection_meta', None) is None:
        sys.modules.pop(package, None)
        importlib.import_module(package)
    return loader


@pytest.fixture
def tfvars(tmp_path):
    """A copy of the sample tfvars the test may edit."""
    path = tmp_path / 'terraform.tfvars.json'
    path.write_text(SAMPLE_TFVARS.read_text())
    return path


@pytest.fixture
def roles_dir(tmp_path):
    """A role catalog with the project's role names (each a directory with tasks/)."""
    for role in ('web', 'was', 'db', 'java', 'search', 'ftp', 'monitoring'):
        (tmp_path / 'roles' / role / 'tasks').mkdir(parents=True)
    return str(tmp_path / 'roles')


# -- the state DB: SQLite and PostgreSQL ------------------------------------------------------------------


@pytest.fixture(scope='session')
def postgresql_server():
    """The throwaway PostgreSQL server (tests/postgres.py): started by the first test that asks for it, stopped at
    the end of the session, failures and Ctrl-C included. Missing server programs fail the test, naming the package."""
    server = postgres.PostgresServer()
    try:
        server.start()
        problem = None
    except postgres.PostgresUnavailable as exc:
        problem = str(exc)
    if problem:
        server.stop()
        pytest.fail(problem, pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def postgresql_db(postgresql_server, request):
    """The URL of a new, empty database of the throwaway server (postgresql+psycopg://...), dropped afterwards."""
    name = postgresql_server.create_database(request.node.name)
    yield postgresql_server.url(name)
    postgresql_server.drop_database(name)


@pytest.fixture
def sqlite_db(tmp_path):
    """A SQLite state DB path, not created yet: for tests of what only a SQLite file has (the file itself, WAL,
    -journal files, backups, the inventory's stdlib sqlite3 reads)."""
    return str(tmp_path / 'state' / 'proxmox_manager.db')


@pytest.fixture
def existing_db(sqlite_db):
    """A state DB made the way the modules make it: the inventory records its views only into an existing one."""
    from ansible_collections.proxmox_manager.core.plugins.module_utils.state_store import StateStore

    store = StateStore(sqlite_db)
    with store.writing():
        pass
    store.close()
    return sqlite_db


@pytest.fixture(params=['sqlite', 'postgresql'])
def state_db(request):
    """The state DB option of a test, which runs once on each database: a SQLite path not created yet, or the
    URL of a new, empty PostgreSQL database. tests/seed_db.py looks at either from outside."""
    return request.getfixturevalue('%s_db' % request.param)


def kill_tree(pid):
    """SIGKILL a process and all its descendants; their pids.

    Not a process group: ansible-core's worker process makes a session of its own (os.setsid), and the module
    holding the database connection is its child.
    """
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/stat' % entry) as handle:
                    ppid = int(handle.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    for member in tree:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return tree


class ModuleFailed(Exception):
    def __init__(self, result):
        super().__init__(result.get('msg'))
        self.result = result


def run_module(module, args, check_mode=False, diff=False):
    """Run a module's main() in-process, as Ansible would; return its result.

    Raises ModuleFailed with the result when the module fails.
    """
    import importlib

    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes

    payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff, _ansible_remote_tmp='/tmp',
                   _ansible_keep_remote_files=False)
    basic._ANSIBLE_ARGS = to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': payload}))
    basic._ANSIBLE_PROFILE = 'legacy'
    mod = importlib.import_module('ansible_collections.proxmox_manager.core.plugins.modules.%s' % module)
    captured = {}

    def _exit(self, **kwargs):
        captured.update(kwargs)
        raise SystemExit(0)

    def _fail(self, msg, **kwargs):
        captured.update(kwargs, msg=msg, failed=True)
        raise SystemExit(1)

    from ansible.module_utils import _internal

    orig_exit, orig_fail = basic.AnsibleModule.exit_json, basic.AnsibleModule.fail_json
    basic.AnsibleModule.exit_json, basic.AnsibleModule.fail_json = _exit, _fail
    # A module runs outside the controller: its warnings go to the result, not to the display.
    # Any test that imported controller code (the inventory plugin's) flipped this flag.
    orig_controller, _internal.is_controller = _internal.is_controller, False
    cwd = os.getcwd()  # a module enters its project_dir, as its own process would; this process stays put
    try:
        mod.main()
    except SystemExit:
        pass
    finally:
        basic.AnsibleModule.exit_json, basic.AnsibleModule.fail_json = orig_exit, orig_fail
        _internal.is_controller = orig_controller
        os.chdir(cwd)
    if captured.get('failed'):
        raise ModuleFailed(captured)
    return captured


def run_ansible(args, env, cwd=ROOT, timeout=300):
    """Run an ansible CLI (ansible, ansible-inventory, ansible-playbook) from the venv."""
    proc = subprocess.run([str(BIN / args[0])] + list(args[1:]), cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    return proc


def adhoc_cmd(module, args):
    """`ansible localhost -m proxmox_manager.core.<module> -a <args>`, the action plugin included; -i localhost,
    keeps the repo's proxmox inventory from calling the double."""
    return [str(BIN / 'ansible'), 'localhost', '-i', 'localhost,', '-c', 'local',
            '-e', 'ansible_python_interpreter=%s' % (BIN / 'python'),
            '-m', 'proxmox_manager.core.%s' % module] + (['-a', json.dumps(args)] if args else [])


def adhoc_result(stdout):
    """The module result from `localhost | CHANGED => {...}`."""
    _head, sep, body = stdout.partition('=>')
    assert sep, stdout
    return json.loads(body[:body.rindex('}') + 1])


def run_adhoc(module, args, env, timeout=180):
    """Run adhoc_cmd() from the repo root; (process, the module's result)."""
    proc = subprocess.run(adhoc_cmd(module, args), cwd=str(ROOT), env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert '=>' in proc.stdout, proc.stdout + proc.stderr
    return proc, adhoc_result(proc.stdout)


@pytest.fixture
def warned(monkeypatch):
    """The warnings modules emit in-process (Ansible routes them differently on a controller)."""
    from ansible.module_utils.basic import AnsibleModule

    seen = []
    monkeypatch.setattr(AnsibleModule, 'warn', lambda self, warning, **kw: seen.append(warning))
    return seen


@pytest.fixture
def parse_inventory(inventory_loader, monkeypatch):
    """Parse an inventory source in-process, as ansible-inventory does; returns (InventoryData, warnings)."""
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader

    def _parse(config):
        plugin = inventory_loader.get('proxmox_manager.core.proxmox')
        warnings = []
        monkeypatch.setattr(plugin.display, 'warning', lambda msg, *a, **kw: warnings.append(msg))
        inventory = InventoryData()
        plugin.parse(inventory, DataLoader(), str(config), cache=False)
        return inventory, warnings
    return _parse


AGENT_PATH = 'GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces'


def interrupt_while_an_agent_hangs(config, env, double):
    """Run `ansible-inventory --list` until a guest agent call of `double` hangs, then press Ctrl-C; stderr.

    A terminal sends SIGINT to the whole foreground process group: a session of its own stands in for it.
    Asserts that the process then ends (the hung call would hold it for its api_timeout), fails without a
    traceback, and leaves no process of its group behind.
    """
    double.add_fault(path='/agent/network-get-interfaces$', delay=120)
    env = dict(env, PYTHONFAULTHANDLER='1')  # SIGABRT then prints where every thread is
    # A job a non-interactive shell starts in the background (`make test &`) ignores SIGINT, and an ignored
    # signal stays ignored across exec; a terminal's Ctrl-C reaches a process whose SIGINT is at its default.
    # A handled signal is reset to the default by exec, so the child starts as it would from a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([str(BIN / 'ansible-inventory'), '-i', str(config), '--list'], env=env,
                                cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        for _attempt in range(600):  # until the agent call hangs in the double, at most 60 s
            if double.counters()['by_path'].get(AGENT_PATH) or proc.poll() is not None:
                break
            threading.Event().wait(0.1)
        assert double.counters()['by_path'].get(AGENT_PATH) and proc.poll() is None
        os.killpg(proc.pid, signal.SIGINT)
        # The bound (before its fix, 25.9 s); about 0.5 s here, and the hung call would take 120 s.
        try:
            _out, err = proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGABRT)
            _out, err = proc.communicate(timeout=20)
            pytest.fail('ansible-inventory did not end within 2 s of Ctrl-C; where its threads were:\n%s' % err)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode != 0 and 'Traceback' not in err
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no process of its group is left behind
    return err
