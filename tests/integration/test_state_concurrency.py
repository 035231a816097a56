"""Concurrent writers on one state DB, SQLite and PostgreSQL: none of their upserts lost, the later ones waiting
for the lock rather than failing, and a writer killed inside its transaction leaving the old state.

Here rather than in tests/unit: spawning the processes and their 2,000 locked
write transactions take about half a minute.
"""

import json
import multiprocessing
import signal
import subprocess
import time

import psycopg
import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils.state_store import ADVISORY_LOCK_KEY, StateStore
from tests.conftest import BIN, ROOT, connection_env, connection_options, kill_tree, run_module
from tests.postgres import conninfo_of
from tests.pve_double import generate_cluster, write_tfvars
from tests.seed_db import hold_write_lock, is_postgresql, query, settled_digest

ADHOC = [str(BIN / 'ansible'), 'localhost', '-i', 'localhost,', '-c', 'local',
         '-e', 'ansible_python_interpreter={{ ansible_playbook_python }}', '-m', 'proxmox_manager.core.server_role']
ROLES = ('web', 'was', 'db', 'java', 'search', 'ftp', 'monitoring')


def _worker(args):
    path, start = args
    store = StateStore(path)
    for i in range(start, start + 250):
        with store.writing() as conn:
            store.upsert_servers(conn, [dict(name='vm-%05d' % i, vmid=1000 + i, role='web')], 'test', 'demo')
    return 250


def test_eight_processes_times_250_upserts_lose_nothing(state_db):
    ctx = multiprocessing.get_context('spawn')
    with ctx.Pool(8) as pool:
        done = pool.map(_worker, [(state_db, n * 250) for n in range(8)])
    assert sum(done) == 2000
    rows = StateStore(state_db).servers()
    assert len(rows) == 2000 and len(set(r['vmid'] for r in rows)) == 2000
    assert all(r['role'] == 'web' for r in rows)
    assert len(query(state_db, "SELECT id FROM change_log WHERE field = 'role'")) == 2000
    if not is_postgresql(state_db):
        assert query(state_db, 'PRAGMA journal_mode') == [{'journal_mode': 'wal'}]


# -- PostgreSQL: real server_role runs against the throwaway server ------------------------------------------


def wait_for(condition, what, limit=120):
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('gave up waiting for %s' % what)
        time.sleep(0.1)


def pg_rows(db, sql, params=()):
    with psycopg.connect(**conninfo_of(db), autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def advisory_waiters(db):
    """How many backends wait for the state store's advisory lock."""
    return pg_rows(db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND NOT granted",
                   (ADVISORY_LOCK_KEY,))[0][0]


def start_server_role(env, tmp_path, tag, servers):
    """`ansible localhost -m proxmox_manager.core.server_role` in a session of its own; output to files."""
    out = open(tmp_path / ('%s.out' % tag), 'w+')
    proc = subprocess.Popen(ADHOC + ['-a', json.dumps(dict(servers=servers))], cwd=str(ROOT), env=env,
                            stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return proc, out


def finish(proc, out, timeout=300):
    proc.wait(timeout=timeout)
    out.seek(0)
    text = out.read()
    out.close()
    return proc.returncode, text


def adhoc_result(text):
    """The module result from the minimal callback's `localhost | STATUS => {...}`."""
    start = text.rindex('localhost | ')
    return json.loads(text[text.index('=> ', start) + 3:])


@pytest.fixture
def cluster_env(make_double, tmp_path, roles_dir, postgresql_db):
    """A 400-guest cluster, its tfvars and a PostgreSQL state DB, as the environment of an ansible run."""
    cluster = generate_cluster(nodes=2, guests=400, templates=0, seed=7)
    double = make_double(cluster)
    tfvars = tmp_path / 'terraform.tfvars.json'
    write_tfvars(cluster, tfvars, declared_ratio=0.5, seed=7)
    env = connection_env(double, PROXMOX_MANAGER_DB=postgresql_db, PROXMOX_MANAGER_TFVARS=str(tfvars),
                         PROXMOX_MANAGER_ROLES=roles_dir, PROXMOX_API_RETRIES='0')
    return cluster, double, tfvars, env


def test_eight_applies_on_postgresql_wait_for_the_advisory_lock_and_lose_nothing(cluster_env, postgresql_db,
                                                                                 tmp_path):
    cluster, _double, _tfvars, env = cluster_env
    guests = sorted(cluster.guests, key=lambda g: g.vmid)
    wanted = dict((g.vmid, ROLES[g.vmid % len(ROLES)]) for g in guests)
    batches = [[dict(name=g.name, vmid=g.vmid, role=wanted[g.vmid]) for g in guests[i::8]] for i in range(8)]
    procs = []
    try:
        # Held while the eight start: each must reach the lock and wait for it, none may fail.
        with hold_write_lock(postgresql_db):
            for n, batch in enumerate(batches):
                procs.append(start_server_role(env, tmp_path, 'writer-%d' % n, batch))
            wait_for(lambda: advisory_waiters(postgresql_db) == 8, 'the eight writers to wait for the lock')
            assert all(proc.poll() is None for proc, _out in procs)
        outputs = [finish(proc, out) for proc, out in procs]
    finally:
        for proc, _out in procs:
            if proc.poll() is None:
                kill_tree(proc.pid)
    for returncode, text in outputs:
        assert returncode == 0, text
        result = adhoc_result(text)
        assert result['changed'] is True and len(result['servers']) == 50
        assert all(s['changed'] for s in result['servers'])
    rows = query(postgresql_db, 'SELECT vmid, role FROM servers')
    assert dict((r['vmid'], r['role']) for r in rows) == wanted
    log = query(postgresql_db, "SELECT key FROM change_log WHERE field = 'role'")
    assert len(log) == 400 and len(set(r['key'] for r in log)) == 400


WAITING_ON_THE_CHANGE_LOG = ("SELECT pid, backend_xid IS NOT NULL FROM pg_stat_activity "
                             "WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO change_log%%'")


def test_a_writer_killed_inside_its_transaction_on_postgresql_leaves_the_old_state(cluster_env, postgresql_db,
                                                                                   tmp_path):
    """Paused by lock contention after writing its server rows, before its change log rows: then SIGKILL."""
    cluster, double, tfvars, env = cluster_env
    guests = sorted(cluster.guests, key=lambda g: g.vmid)[:20]
    opts = dict(connection_options(double, api_retries=0), state_db=postgresql_db, tfvars_path=str(tfvars),
                roles_path=env['PROXMOX_MANAGER_ROLES'])
    run_module('server_role', dict(opts, servers=[dict(name=g.name, vmid=g.vmid, role='web') for g in guests[:10]]))
    before = settled_digest(postgresql_db)
    # Every guest: ten change role, ten are new rows.
    servers = [dict(name=g.name, vmid=g.vmid, role='db') for g in guests]
    with psycopg.connect(**conninfo_of(postgresql_db)) as blocker:
        # Writers may still read the change log, but not add to it.
        blocker.execute('LOCK TABLE change_log IN EXCLUSIVE MODE')
        proc, out = start_server_role(env, tmp_path, 'killed', servers)
        try:
            writer = wait_for(lambda: pg_rows(postgresql_db, WAITING_ON_THE_CHANGE_LOG), 'the writer to wait')
            pid, wrote = writer[0]
            # Inside its transaction: it holds the advisory lock and has written to servers.
            held = set(pg_rows(postgresql_db, "SELECT locktype, coalesce(relation::regclass::text, objid::text), mode "
                                              "FROM pg_locks WHERE pid = %s AND granted", (pid,)))
            assert wrote
            assert ('advisory', str(ADVISORY_LOCK_KEY), 'ExclusiveLock') in held
            assert ('relation', 'servers', 'RowExclusiveLock') in held
        finally:
            killed = kill_tree(proc.pid)
            returncode, text = finish(proc, out, timeout=30)
        blocker.rollback()
    assert returncode == -signal.SIGKILL, text
    assert len(killed) >= 3, killed  # ansible, its worker, the module
    wait_for(lambda: not pg_rows(postgresql_db, 'SELECT 1 FROM pg_stat_activity WHERE pid = %s', (pid,)),
             'the server to end the dead writer\'s session')
    assert settled_digest(postgresql_db) == before
    # The lock went with it: the next writer gets through.
    result = run_module('server_role', dict(opts, servers=servers))
    assert result['changed'] is True
    assert sorted(r['role'] for r in query(postgresql_db, 'SELECT role FROM servers')) == ['db'] * 20
