"""The state-store worker: a forked process, or a thread in a process that already runs threads."""

import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import state_store, state_worker
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import StateStoreError
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
    assert 'The state DB worker process stopped before it answered' in str(info.value)


def _executor(kind):
    if kind == 'thread':
        return ThreadPoolExecutor(max_workers=1)
    import multiprocessing
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context('fork'))
