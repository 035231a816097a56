"""Concurrent writers on one SQLite state DB: eight processes, none of their upserts lost.

Here rather than in tests/unit: spawning the processes and their 2,000 locked
write transactions take about half a minute.
"""

import multiprocessing
import sqlite3

from ansible_collections.proxmox_manager.core.plugins.module_utils.state_store import StateStore


def _worker(args):
    path, start = args
    store = StateStore(path)
    for i in range(start, start + 250):
        with store.writing() as conn:
            store.upsert_servers(conn, [dict(name='vm-%05d' % i, vmid=1000 + i, role='web')], 'test')
    return 250


def test_eight_processes_times_250_upserts_lose_nothing(tmp_path):
    path = str(tmp_path / 'x.db')
    ctx = multiprocessing.get_context('spawn')
    with ctx.Pool(8) as pool:
        done = pool.map(_worker, [(path, n * 250) for n in range(8)])
    assert sum(done) == 2000
    rows = StateStore(path).servers()
    assert len(rows) == 2000 and len(set(r['vmid'] for r in rows)) == 2000
    assert all(r['role'] == 'web' for r in rows)
    assert sqlite3.connect(path).execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
