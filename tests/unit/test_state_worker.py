"""The inventory worker (state DB, IP lookups): a forked process, or a thread where threads already run."""

import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import state_store, state_worker
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import ProxmoxAuthError, StateStoreError
from tests.conftest import ROOT

RECORDS = [dict(host='web-01', name='web-01', vmid=101, status='running'),
           dict(host='db-01', name='db-01', vmid=None, status=None)]


def test_a_single_threaded_process_gets_a_forked_worker():
    code = textwrap.dedent('''
        import os
        from ansible_collections.proxmox_manager.core.plugins.module_utils import state_worker
        with state_worker.executor() as worker:
            print(type(worker).__name__, worker.submit(os.getpid).result() != os.getpid())
    ''')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / 'collections'), str(ROOT)]))
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ['ProcessPoolExecutor', 'True']


def test_a_process_with_threads_gets_a_thread_worker():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with state_worker.executor() as worker:
            assert isinstance(worker, ThreadPoolExecutor)
            assert worker.submit(os.getpid).result() == os.getpid()
    finally:
        stop.set()
        other.join()


@pytest.mark.parametrize('kind', ['process', 'thread'])
def test_records_and_reads_the_view_and_roles(tmp_path, kind):
    url = str(tmp_path / 'state' / 'x.db')
    store = state_store.StateStore(url)
    with store.writing() as conn:
        store.upsert_servers(conn, [dict(name='web-01', vmid=101, role='web'), dict(name='db-01', role='db'),
                                    dict(name='bare', vmid=7)], 'test')
    store.engine.dispose()
    with _executor(kind) as worker:
        assert worker.submit(state_worker.read_view, url, 'inventory').result()[1] is None
        state_worker.result(worker.submit(state_worker.record_view, url, 'inventory', RECORDS))
        taken_at, details, roles = state_worker.result(worker.submit(state_worker.read_view, url, 'inventory'))
        snapshot = state_worker.result(worker.submit(state_worker.read_snapshot, url, 'inventory'))
    assert snapshot == (taken_at, RECORDS)
    # only what the next build's details need crosses back, by vmid (a server without one has none)
    assert taken_at is not None and details == {101: dict(agent=None, uptime=None, status='running', last_status=None)}
    assert roles == {101: 'web', 'db-01': 'db'}  # by vmid, else by name; servers without a role left out


def test_reading_a_missing_db_creates_nothing(tmp_path):
    with _executor('process') as worker:
        answer = state_worker.result(worker.submit(state_worker.read_view, str(tmp_path / 'state' / 'x.db'), 'x'))
    assert answer == (None, None, {})
    assert not (tmp_path / 'state').exists()


def test_a_state_db_error_crosses_the_process_boundary_as_itself(tmp_path):
    broken = tmp_path / 'broken.db'
    broken.write_bytes(b'this is not a database\n' * 200)
    with _executor('process') as worker:
        with pytest.raises(StateStoreError) as info:
            state_worker.result(worker.submit(state_worker.read_view, str(broken), 'inventory'))
    assert 'Cannot read the state DB %s' % broken in str(info.value) and 'not a database' in str(info.value)


def test_a_worker_process_that_dies_is_a_clear_state_store_error():
    with _executor('process') as worker:
        with pytest.raises(StateStoreError) as info:
            state_worker.result(worker.submit(os._exit, 3))
    assert 'The inventory worker process stopped before it answered' in str(info.value)


def _executor(kind):
    if kind == 'thread':
        return ThreadPoolExecutor(max_workers=1)
    import multiprocessing
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context('fork'))


class CountingWorker:
    """A thread worker that keeps the names of the tasks submitted to it, in order."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.submitted = []

    def submit(self, fn, *args):
        self.submitted.append(fn.__name__)
        return self.pool.submit(fn, *args)


@pytest.fixture
def counting_worker():
    worker = CountingWorker()
    yield worker
    worker.pool.shutdown(wait=True)


@pytest.fixture
def recorded_db(tmp_path):
    url = str(tmp_path / 'state' / 'x.db')
    store = state_store.StateStore(url)
    with store.writing() as conn:
        store.upsert_servers(conn, [dict(name='web-01', vmid=101, role='web')], 'test')
        store.save_snapshot(conn, 'inventory', [dict(RECORDS[0], agent=False, uptime=50, type='qemu')])
    store.engine.dispose()
    return url


@pytest.fixture
def lookups(monkeypatch):
    """ProxmoxClient lookups without HTTP: the vmids asked, each answered with one IP."""
    from ansible_collections.proxmox_manager.core.plugins.module_utils import proxmox_client
    asked = []

    def start_guests_ips(self, guests, max_workers=None, should_ask=None):
        chosen = [g for g in guests if should_ask(g)]
        asked.extend(g['vmid'] for g in chosen)
        return lambda: dict((g['vmid'], ['10.0.0.%d' % (g['vmid'] % 250)]) for g in chosen)

    monkeypatch.setattr(proxmox_client.ProxmoxClient, 'start_guests_ips', start_guests_ips)
    return asked


OPTIONS = dict(api_host='pve.invalid', api_user='root@pam', api_token_id='t', api_token_secret='s')


def test_the_state_read_is_submitted_on_first_use_and_once(recorded_db, counting_worker):
    worker = counting_worker
    state = state_worker.StateRead(worker, recorded_db, 'inventory')
    assert worker.submitted == []  # nothing read until a step needs it
    taken_at, details, roles = state.result()
    state.start()
    assert state.result()[2] == roles == {101: 'web'} and details[101]['agent'] is False
    assert worker.submitted == ['read_view']


def test_the_lookups_task_makes_the_read_and_skips_a_guest_known_off(recorded_db, lookups, counting_worker):
    worker = counting_worker
    state = state_worker.StateRead(worker, recorded_db, 'inventory')
    guests = [dict(vmid=101, node='pve1', type='qemu', uptime=60), dict(vmid=300, node='pve1', type='lxc', uptime=5)]
    found = state.ask_ips(OPTIONS, guests, 4)
    ips, agent_off = found()
    assert lookups == [300]  # 101's agent was off at the last look and it has not restarted since
    assert ips == {300: ['10.0.0.50']} and agent_off == set()
    assert state.result()[2] == {101: 'web'}
    assert worker.submitted == ['read_view_and_ask_ips']  # one task, one read
    with pytest.raises(RuntimeError):
        state.ask_ips(OPTIONS, guests, 4)  # the read is submitted already


def test_container_lookups_do_not_wait_for_the_read(recorded_db, lookups, counting_worker, monkeypatch):
    release = threading.Event()
    real_read = state_worker.read_view

    def slow_read(url, name):
        assert release.wait(10)
        return real_read(url, name)

    monkeypatch.setattr(state_worker, 'read_view', slow_read)
    state = state_worker.StateRead(counting_worker, recorded_db, 'inventory')
    found = state.ask_ips(OPTIONS, [dict(vmid=300, node='pve1', type='lxc', uptime=5)], 4)
    for _attempt in range(200):  # bounded: the lookup is asked while the read is still held back
        if lookups:
            break
        threading.Event().wait(0.05)
    assert lookups == [300] and not release.is_set()
    release.set()
    assert found()[0] == {300: ['10.0.0.50']} and state.result()[2] == {101: 'web'}


def test_an_api_error_crosses_the_process_boundary_with_its_status():
    with _executor('process') as worker:
        with pytest.raises(ProxmoxAuthError) as info:
            state_worker.result(worker.submit(_refuse))
    assert (info.value.status, info.value.path) == (403, '/nodes/pve1/qemu/101/agent/network-get-interfaces')
    assert 'HTTP 403' in str(info.value)


def _refuse():
    raise ProxmoxAuthError('Proxmox refused /nodes/pve1/qemu/101/agent/network-get-interfaces (HTTP 403)', status=403,
                           path='/nodes/pve1/qemu/101/agent/network-get-interfaces')


def test_a_state_db_error_is_the_lookups_task_error_too(tmp_path, lookups):
    broken = tmp_path / 'broken.db'
    broken.write_bytes(b'this is not a database\n' * 200)
    with _executor('process') as worker:
        state = state_worker.StateRead(worker, str(broken), 'inventory')
        found = state.ask_ips(OPTIONS, [dict(vmid=300, node='pve1', type='lxc', uptime=5)], 4)
        for step in (found, state.result):
            with pytest.raises(StateStoreError) as info:
                step()
            assert 'not a database' in str(info.value)


def test_a_failed_warm_up_import_stays_quiet(monkeypatch, capsys):
    import importlib
    calls = []

    def failing(name):
        calls.append(name)
        raise ImportError('No module named sqlalchemy')

    monkeypatch.setattr(importlib, 'import_module', failing)
    state_worker._import_store()
    assert calls and capsys.readouterr() == ('', '')  # the task that needs the store reports it
