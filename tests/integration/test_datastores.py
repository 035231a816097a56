"""datastore_refresh / datastore_default / datastore_info against the API double (issue 5).

Expected figures are computed from the double's cluster model, never typed in.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import datastores as ds
from ansible_collections.proxmox_manager.core.plugins.module_utils import schemas
from ansible_collections.proxmox_manager.core.plugins.module_utils.state_store import StateStore
from tests.conftest import (
    COLLECTIONS,
    ROOT,
    ModuleFailed,
    adhoc_cmd,
    adhoc_result,
    connection_env,
    connection_options,
    kill_tree,
    run_adhoc,
    run_module,
)
from tests.pve_double import Storage, generate_cluster
from tests.seed_db import created_nothing, db_exists, dump, hold_write_lock, is_postgresql, query, settled_digest

HDD_ENV, SSD_ENV = ds.DEFAULT_ENV['hdd'], ds.DEFAULT_ENV['ssd']
COLUMNS = ('id', 'name', 'type', 'size', 'used', 'available', 'content', 'enabled', 'is_default_hdd',
           'is_default_ssd', 'is_system_default', 'created_at', 'updated_at')


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in (HDD_ENV, SSD_ENV, 'PROXMOX_MANAGER_DB', 'PROXMOX_MANAGER_DB_TIMEOUT', 'PROXMOX_API_TIMEOUT',
                'PROXMOX_API_RETRIES'):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def tf_vars(tmp_path):
    return str(tmp_path / 'terraform' / 'datastores.auto.tfvars.json')


def opts(double, db, **extra):
    return connection_options(double, state_db=db, api_retries=0, **extra)


# -- expectations from the cluster model --------------------------------------


def _figure(value, node):
    return int(value.get(node, 0)) if isinstance(value, dict) else int(value)


def expected_datastores(cluster):
    """id -> the row the refresh must produce, derived from the double's model."""
    online = set(n.node for n in cluster.nodes if n.status == 'online')
    out = {}
    for s in cluster.storages:
        per_node = []
        for node in sorted(n.node for n in cluster.nodes if s.nodes is None or n.node in s.nodes):
            up = s.enabled and node in online
            size, used = (_figure(s.total, node), _figure(s.used, node)) if up else (0, 0)
            per_node.append(dict(node=node, up=up, size=size, used=used, available=max(size - used, 0)))
        counted = [p for p in per_node if p['up']]
        if s.shared:
            counted = counted[:1]
        out[s.storage] = dict(
            id=s.storage, name=s.storage, type=s.type, content=s.content, enabled=s.enabled, shared=s.shared,
            size=sum(p['size'] for p in counted), used=sum(p['used'] for p in counted),
            available=sum(p['available'] for p in counted),
            nodes=[dict(node=p['node'], size=p['size'], used=p['used'], available=p['available'])
                   for p in per_node])
    return out


def comparable(row):
    """A returned datastore cut to what expected_datastores() predicts."""
    keys = ('id', 'name', 'type', 'content', 'enabled', 'shared', 'size', 'used', 'available')
    out = dict((k, row[k]) for k in keys)
    out['nodes'] = [dict((k, n[k]) for k in ('node', 'size', 'used', 'available')) for n in row['nodes']]
    return out


# -- looking at the DB and files from outside --------------------------------


def db_rows(path):
    """Every datastores row as the seed's table holds it, read with the plain driver (sqlite3, psycopg)."""
    return query(path, 'SELECT %s, nodes FROM datastores ORDER BY id' % ', '.join(COLUMNS))


def db_digest(path):
    """Equal iff nothing was committed (a SQLite file once the WAL is folded in)."""
    return settled_digest(path)


def full_dump(path):
    """Rows of every table (change log included), for an exact before/after comparison."""
    return dump(path)


def integrity_ok(db):
    """SQLite's integrity check; PostgreSQL keeps its own consistency (nothing to ask)."""
    return is_postgresql(db) or query(db, 'PRAGMA integrity_check') == [{'integrity_check': 'ok'}]


def snapshot(db, tf_path=None):
    data = dict(rows=db_rows(db), dump=full_dump(db), digest=db_digest(db))
    if tf_path:
        data['tf'] = open(tf_path, 'rb').read() if os.path.exists(tf_path) else None
    return data


def flags(path):
    rows = db_rows(path)
    return ([r['id'] for r in rows if r['is_default_hdd']], [r['id'] for r in rows if r['is_default_ssd']])


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


# -- ansible subprocesses -----------------------------------------------------


def wait_for(condition, what, limit=90):
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError('gave up waiting for %s' % what)
        time.sleep(0.05)


# =============================================================================
# datastore_refresh
# =============================================================================


def test_refresh_rows_match_the_cluster(double, state_db):
    cluster = double.cluster
    # a disabled storage is reported with no figures, and marked disabled
    cluster.storages.append(Storage('old-nfs', 'nfs', 'backup', shared=True, enabled=False))
    expected = expected_datastores(cluster)
    result = run_module('datastore_refresh', opts(double, state_db))

    assert result['changed'] is True
    assert result['count'] == len(cluster.storages)
    assert [comparable(r) for r in result['datastores']] == [expected[k] for k in sorted(expected)]
    # a storage on several nodes is one datastore; nfs-backup (shared) is counted once, not per node
    nfs = expected['nfs-backup']
    assert len(nfs['nodes']) == len(cluster.nodes) > 1
    assert nfs['size'] == nfs['nodes'][0]['size'] and nfs['used'] == nfs['nodes'][0]['used']
    lvm = expected['local-lvm']
    assert lvm['used'] == sum(n['used'] for n in lvm['nodes']) and len(set(n['used'] for n in lvm['nodes'])) > 1
    assert result['default_hdd'] == ds.BUILTIN_DEFAULTS['hdd'] and result['default_ssd'] == ds.BUILTIN_DEFAULTS['ssd']

    rows = db_rows(state_db)
    assert [r['id'] for r in rows] == sorted(expected)
    for row in rows:
        want = expected[row['id']]
        for key in ('name', 'type', 'size', 'used', 'available', 'content'):
            assert row[key] == want[key], (row['id'], key)
        assert bool(row['enabled']) == want['enabled']
        assert bool(row['is_system_default']) == (row['id'] in ds.BUILTIN_DEFAULTS.values())
        assert bool(row['is_default_hdd']) == (row['id'] == ds.BUILTIN_DEFAULTS['hdd'])
        assert bool(row['is_default_ssd']) == (row['id'] == ds.BUILTIN_DEFAULTS['ssd'])
        assert row['created_at'] and row['updated_at']
        assert [dict((k, n[k]) for k in ('node', 'size', 'used', 'available')) for n in json.loads(row['nodes'])] \
            == want['nodes']


def test_refresh_is_idempotent_and_diff_shows_what_moved(double, state_db):
    run_module('datastore_refresh', opts(double, state_db))
    before = db_digest(state_db)
    again = run_module('datastore_refresh', opts(double, state_db), diff=True)
    assert again['changed'] is False and again['diff'] == {'before': {}, 'after': {}}
    assert db_digest(state_db) == before

    storage = next(s for s in double.cluster.storages if s.storage == 'ssd-pool')
    old_used = storage.used
    storage.used = old_used + 7 * 1024 ** 3
    want = expected_datastores(double.cluster)['ssd-pool']
    checked = run_module('datastore_refresh', opts(double, state_db), check_mode=True, diff=True)
    assert checked['changed'] is True and db_digest(state_db) == before
    assert set(checked['diff']['before']) == set(checked['diff']['after']) == {'ssd-pool'}
    assert checked['diff']['after']['ssd-pool']['used'] == want['used']
    assert checked['diff']['before']['ssd-pool']['used'] == want['used'] - 7 * 1024 ** 3 * len(want['nodes'])

    done = run_module('datastore_refresh', opts(double, state_db), diff=True)
    assert done['changed'] is True and done['diff'] == checked['diff']
    assert next(r for r in db_rows(state_db) if r['id'] == 'ssd-pool')['used'] == want['used']


def test_refresh_check_mode_on_a_fresh_db_creates_nothing(double, state_db):
    result = run_module('datastore_refresh', opts(double, state_db), check_mode=True)
    assert result['changed'] is True and result['count'] == len(double.cluster.storages)
    assert not db_exists(state_db)


@pytest.mark.parametrize('env,sources', [
    ({}, {'hdd': 'builtin', 'ssd': 'builtin'}),
    ({HDD_ENV: 'HDD-Storage', SSD_ENV: 'ssd-pool'}, {'hdd': 'env', 'ssd': 'env'}),
    ({SSD_ENV: 'ssd-pool'}, {'hdd': 'builtin', 'ssd': 'env'}),
])
def test_fresh_db_defaults_come_from_env_or_builtin(double, state_db, monkeypatch, env, sources):
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    want = dict((k, env.get(ds.DEFAULT_ENV[k], ds.BUILTIN_DEFAULTS[k])) for k in ds.KINDS)
    first = run_module('datastore_refresh', opts(double, state_db))
    assert first['default_sources'] == sources
    assert (first['default_hdd'], first['default_ssd']) == (want['hdd'], want['ssd'])
    assert flags(state_db) == ([want['hdd']], [want['ssd']])
    system = set(r['id'] for r in db_rows(state_db) if r['is_system_default'])
    assert system == set(want.values())
    # once stored, they are the DB's; a changed environment no longer moves them
    monkeypatch.setenv(HDD_ENV, 'nfs-backup')
    monkeypatch.setenv(SSD_ENV, 'nfs-backup')
    second = run_module('datastore_refresh', opts(double, state_db))
    assert second['default_sources'] == {'hdd': 'db', 'ssd': 'db'}
    assert (second['default_hdd'], second['default_ssd']) == (want['hdd'], want['ssd'])


def test_defaults_survive_refresh(double, state_db, tf_vars):
    run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', ssd='ssd-pool',
                                         terraform_vars_file=tf_vars))
    storage = next(s for s in double.cluster.storages if s.storage == 'HDD-Storage')
    storage.used = 5 * 1024 ** 3
    result = run_module('datastore_refresh', opts(double, state_db))
    assert result['changed'] is True
    assert (result['default_hdd'], result['default_ssd']) == ('HDD-Storage', 'ssd-pool')
    assert result['default_sources'] == {'hdd': 'db', 'ssd': 'db'} and result['vanished_defaults'] == {}
    assert flags(state_db) == (['HDD-Storage'], ['ssd-pool'])
    want = expected_datastores(double.cluster)['HDD-Storage']
    assert next(r for r in db_rows(state_db) if r['id'] == 'HDD-Storage')['used'] == want['used']


def test_vanished_default_is_reported_and_kept(double, state_db, tf_vars, warned):
    run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', terraform_vars_file=tf_vars))
    gone = next(s for s in double.cluster.storages if s.storage == 'HDD-Storage')
    double.cluster.storages.remove(gone)

    # In a real ansible run the warning reaches the user.
    env = connection_env(double, PROXMOX_MANAGER_DB=state_db, PROXMOX_API_RETRIES='0')
    proc, result = run_adhoc('datastore_refresh', {}, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result['vanished_defaults'] == {'hdd': 'HDD-Storage'} and result['default_hdd'] == 'HDD-Storage'
    assert result['count'] == len(double.cluster.storages)
    warning = [line for line in (proc.stdout + proc.stderr).splitlines() if '[WARNING]' in line]
    assert any('HDD-Storage' in line and 'HDD' in line for line in warning), proc.stderr

    # in-process: still reported, still the default, and the row is kept (disabled)
    again = run_module('datastore_refresh', opts(double, state_db))
    assert again['vanished_defaults'] == {'hdd': 'HDD-Storage'} and again['default_hdd'] == 'HDD-Storage'
    assert any('HDD-Storage' in w for w in warned)
    row = next(r for r in db_rows(state_db) if r['id'] == 'HDD-Storage')
    assert row['is_default_hdd'] and not row['enabled']
    info = run_module('datastore_info', opts(double, state_db))
    assert info['default_hdd'] == 'HDD-Storage' and info['default_sources']['hdd'] == 'db'
    assert read_json(tf_vars)['proxmox_hdd_datastore'] == 'HDD-Storage'

    # until changed: then the next refresh drops the row and reports nothing
    moved = run_module('datastore_default', opts(double, state_db, hdd='local-lvm', terraform_vars_file=tf_vars))
    assert moved['changed'] is True and moved['previous_hdd'] == 'HDD-Storage'
    after = run_module('datastore_refresh', opts(double, state_db))
    assert after['vanished_defaults'] == {} and after['default_hdd'] == 'local-lvm'
    assert 'HDD-Storage' not in [r['id'] for r in db_rows(state_db)]


def _prime(double, state_db, tf_vars):
    """A DB with chosen (non built-in) defaults, and a cluster that has moved on since."""
    run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', ssd='ssd-pool',
                                         terraform_vars_file=tf_vars))
    double.cluster.storages.remove(next(s for s in double.cluster.storages if s.storage == 'local'))
    for s in double.cluster.storages:
        s.used = 1024 ** 3
    return snapshot(state_db, tf_vars)


@pytest.mark.parametrize('path,query', [(r'^/cluster/resources$', r'type=storage'), (r'^/storage$', None)],
                         ids=['cluster-resources', 'storage'])
@pytest.mark.parametrize('fault', ['http500', 'timeout'])
def test_api_failure_during_refresh_changes_nothing(double, state_db, tf_vars, path, query, fault):
    before = _prime(double, state_db, tf_vars)
    if fault == 'http500':
        double.add_fault('GET', path, query=query, status=500, message='storage status unavailable')
    else:
        double.add_fault('GET', path, query=query, delay=3)
    with pytest.raises(ModuleFailed) as failed:
        run_module('datastore_refresh', opts(double, state_db, api_timeout=1))
    msg = failed.value.result['msg']
    endpoint = '/cluster/resources' if 'cluster' in path else '/storage'
    assert endpoint in msg
    if fault == 'http500':
        assert 'HTTP 500' in msg and 'storage status unavailable' in msg
    else:
        assert 'did not answer' in msg and 'api_timeout' in msg
    assert 'exception' not in failed.value.result and 'Traceback' not in msg
    assert snapshot(state_db, tf_vars) == before


def test_refresh_api_calls_do_not_grow_with_nodes(make_double, tmp_path):
    calls = {}
    for nodes in (1, 10):
        double = make_double(generate_cluster(nodes=nodes, guests=2, seed=nodes))
        double.reset_counters()
        result = run_module('datastore_refresh', opts(double, str(tmp_path / ('%d.db' % nodes))))
        expected = expected_datastores(double.cluster)
        assert [comparable(r) for r in result['datastores']] == [expected[k] for k in sorted(expected)]
        calls[nodes] = double.counters()
    assert calls[1]['total'] > 0
    assert calls[1] == calls[10]


# -- killed refreshes ---------------------------------------------------------


def test_refresh_killed_mid_fetch_keeps_old_rows(double, state_db, tf_vars):
    before = _prime(double, state_db, tf_vars)
    double.reset_counters()
    double.add_fault('GET', r'^/storage$', delay=120)  # hangs after /cluster/resources answered
    env = connection_env(double, PROXMOX_MANAGER_DB=state_db, PROXMOX_API_TIMEOUT='300', PROXMOX_API_RETRIES='0')
    proc = subprocess.Popen(adhoc_cmd('datastore_refresh', {}), cwd=str(ROOT), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: double.counters()['by_path'].get('GET /storage'), 'the refresh to reach /storage')
        assert double.counters()['by_path'].get('GET /cluster/resources') == 1
    finally:
        killed = kill_tree(proc.pid)  # ansible, its worker (a session of its own) and the module
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(killed) >= 3, 'the module process was not among those killed: %s' % killed
    assert integrity_ok(state_db)
    assert snapshot(state_db, tf_vars) == before

    # the DB is usable: a refresh now takes the new figures, defaults kept
    double.clear_faults()
    result = run_module('datastore_refresh', opts(double, state_db))
    assert result['changed'] is True and (result['default_hdd'], result['default_ssd']) == ('HDD-Storage', 'ssd-pool')


KILL_IN_TRANSACTION = textwrap.dedent('''
    import json, os, signal, sys
    sys.path[:0] = [sys.argv[1]]
    from ansible_collections.proxmox_manager.core.plugins.module_utils import datastores
    from ansible_collections.proxmox_manager.core.plugins.module_utils.proxmox_client import ProxmoxClient
    from ansible_collections.proxmox_manager.core.plugins.module_utils.state_store import StateStore

    real_write = datastores._write_rows

    def write_then_die(conn, cluster, rows, deleted):
        real_write(conn, cluster, rows, deleted)
        seen = [r[0] for r in conn.exec_driver_sql('SELECT id FROM datastores ORDER BY id')]
        print(json.dumps(dict(deleted=deleted, seen=seen)), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # before the COMMIT

    datastores._write_rows = write_then_die
    client = ProxmoxClient(json.loads(sys.argv[3]))
    datastores.refresh(StateStore(sys.argv[2]), client, False, client.cluster)
''')


def test_refresh_killed_inside_the_transaction_keeps_old_rows(double, state_db, tf_vars):
    before = _prime(double, state_db, tf_vars)
    proc = subprocess.run([sys.executable, '-c', KILL_IN_TRANSACTION, str(COLLECTIONS), state_db,
                           json.dumps(opts(double, state_db))], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    inside = json.loads(proc.stdout)
    # the dead transaction had really deleted a row and rewritten the rest
    assert inside['deleted'] == ['local'] and 'local' not in inside['seen']
    assert integrity_ok(state_db)
    assert snapshot(state_db, tf_vars) == before
    assert 'local' in [r['id'] for r in before['rows']]

    # the lock died with the process: the next writer gets through
    result = run_module('datastore_refresh', opts(double, state_db))
    assert result['changed'] is True and 'local' not in [r['id'] for r in db_rows(state_db)]


# =============================================================================
# datastore_default
# =============================================================================


def test_default_on_empty_cache_refreshes_and_writes_terraform_vars(double, state_db, tf_vars):
    first = run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', ssd='ssd-pool',
                                                 terraform_vars_file=tf_vars), diff=True)
    assert first['changed'] is True and first['refreshed'] is True
    assert (first['default_hdd'], first['default_ssd']) == ('HDD-Storage', 'ssd-pool')
    assert (first['previous_hdd'], first['previous_ssd']) == (ds.BUILTIN_DEFAULTS['hdd'], ds.BUILTIN_DEFAULTS['ssd'])
    assert first['diff'] == {'before': {'hdd': ds.BUILTIN_DEFAULTS['hdd'], 'ssd': ds.BUILTIN_DEFAULTS['ssd']},
                             'after': {'hdd': 'HDD-Storage', 'ssd': 'ssd-pool'}}
    assert flags(state_db) == (['HDD-Storage'], ['ssd-pool'])
    assert sorted(r['id'] for r in db_rows(state_db)) == sorted(expected_datastores(double.cluster))
    data = read_json(tf_vars)
    assert data == {'proxmox_hdd_datastore': 'HDD-Storage', 'proxmox_ssd_datastore': 'ssd-pool'}
    schemas.validate(data, schemas.DATASTORE_TFVARS_SCHEMA, tf_vars)
    assert os.listdir(os.path.dirname(tf_vars)) == [os.path.basename(tf_vars)]  # no temp file left
    log = [(c['entity'], c['key'], c['old'], c['new']) for c in StateStore(state_db).changes()]
    assert ('datastore', 'hdd', ds.BUILTIN_DEFAULTS['hdd'], 'HDD-Storage') in log

    # idempotent: nothing written, not even the file
    before = snapshot(state_db, tf_vars)
    inode = os.stat(tf_vars).st_ino
    again = run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', ssd='ssd-pool',
                                                 terraform_vars_file=tf_vars))
    assert again['changed'] is False and again['refreshed'] is False
    assert snapshot(state_db, tf_vars) == before and os.stat(tf_vars).st_ino == inode

    # one kind only: the other stays; the file is replaced (rename), not edited in place
    ssd_only = run_module('datastore_default', opts(double, state_db, ssd='local-lvm', terraform_vars_file=tf_vars))
    assert ssd_only['changed'] is True and ssd_only['default_hdd'] == 'HDD-Storage'
    assert read_json(tf_vars) == {'proxmox_hdd_datastore': 'HDD-Storage', 'proxmox_ssd_datastore': 'local-lvm'}
    assert os.stat(tf_vars).st_ino != inode
    assert flags(state_db) == (['HDD-Storage'], ['local-lvm'])


def test_default_sources_on_a_fresh_db(double, state_db, tf_vars, monkeypatch):
    monkeypatch.setenv(HDD_ENV, 'HDD-Storage')
    result = run_module('datastore_default', opts(double, state_db, ssd='ssd-pool', terraform_vars_file=tf_vars))
    assert result['refreshed'] is True
    assert (result['default_hdd'], result['default_ssd']) == ('HDD-Storage', 'ssd-pool')
    assert result['default_sources']['hdd'] == 'env'
    assert read_json(tf_vars) == {'proxmox_hdd_datastore': 'HDD-Storage', 'proxmox_ssd_datastore': 'ssd-pool'}
    monkeypatch.delenv(HDD_ENV)
    later = run_module('datastore_default', opts(double, state_db, ssd='local-lvm', terraform_vars_file=tf_vars))
    assert later['default_hdd'] == 'HDD-Storage' and later['default_sources']['hdd'] == 'db'


def test_default_without_a_usable_default_for_the_other_kind_fails_cleanly(double, state_db, tf_vars):
    # no local-lvm in this cluster, so a fresh DB has no HDD default to keep
    double.cluster.storages.remove(next(s for s in double.cluster.storages if s.storage == 'local-lvm'))
    with pytest.raises(ModuleFailed) as failed:
        run_module('datastore_default', opts(double, state_db, ssd='ssd-pool', terraform_vars_file=tf_vars))
    msg = failed.value.result['msg']
    assert 'hdd' in msg.lower() and 'local-lvm' in msg
    assert not os.path.exists(tf_vars) and not db_exists(state_db)
    ok = run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', ssd='ssd-pool',
                                              terraform_vars_file=tf_vars))
    assert ok['changed'] is True
    schemas.validate(read_json(tf_vars), schemas.DATASTORE_TFVARS_SCHEMA, tf_vars)


def test_unknown_id_fails_listing_known_ids_and_changes_nothing(double, state_db, tf_vars):
    run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', ssd='ssd-pool',
                                         terraform_vars_file=tf_vars))
    before = snapshot(state_db, tf_vars)
    # hdd is valid: the seed cleared the old flags before noticing the bad ssd
    with pytest.raises(ModuleFailed) as failed:
        run_module('datastore_default', opts(double, state_db, hdd='local-lvm', ssd='no-such-store',
                                             terraform_vars_file=tf_vars))
    msg = failed.value.result['msg']
    assert 'no-such-store' in msg and 'nothing was changed' in msg.lower()
    for sid in expected_datastores(double.cluster):
        assert sid in msg
    assert snapshot(state_db, tf_vars) == before


def test_unknown_id_on_empty_cache_changes_nothing(double, state_db, tf_vars):
    with pytest.raises(ModuleFailed) as failed:
        run_module('datastore_default', opts(double, state_db, hdd='no-such-store', terraform_vars_file=tf_vars))
    assert 'no-such-store' in failed.value.result['msg'] and 'ssd-pool' in failed.value.result['msg']
    assert not db_exists(state_db) and not os.path.exists(tf_vars)


@pytest.mark.parametrize('db', ['fresh', 'with defaults'])
@pytest.mark.parametrize('kind, sid, content', [('hdd', 'nfs-backup', 'backup'), ('ssd', 'local', 'iso,vztmpl,backup')])
def test_default_refuses_a_storage_that_cannot_hold_disks(double, state_db, tf_vars, db, kind, sid, content):
    # issue "Never wrong in silence", 7: Terraform would be handed a storage no disk can land on
    assert next(s for s in double.cluster.storages if s.storage == sid).content == content
    if db == 'with defaults':
        run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', ssd='ssd-pool',
                                             terraform_vars_file=tf_vars))
        before = snapshot(state_db, tf_vars)
    with pytest.raises(ModuleFailed) as failed:
        run_module('datastore_default', opts(double, state_db, terraform_vars_file=tf_vars, **{kind: sid}))
    result = failed.value.result
    msg = result['msg']
    assert '%s=%r (content: %s)' % (kind, sid, content) in msg and 'cannot hold disks' in msg, msg
    assert "lacks 'images'" in msg and 'Nothing was changed' in msg
    assert 'exception' not in result and 'Unexpected' not in msg
    for able in ('HDD-Storage', 'local-lvm', 'ssd-pool'):
        assert able in msg.split('Datastores that can:')[1]
    if db == 'fresh':
        assert not db_exists(state_db) and not os.path.exists(tf_vars)
    else:
        assert snapshot(state_db, tf_vars) == before


def test_the_builtin_ssd_fallback_local_is_kept_and_reported(double, state_db, tf_vars, warned, monkeypatch,
                                                             tmp_path):
    # issue "Never wrong in silence", 7: the seeds' fallback SSD default `local` holds no disk images on a
    # stock Proxmox VE; it stays the fallback, and every answer says so
    refreshed = run_module('datastore_refresh', opts(double, state_db))
    assert refreshed['default_ssd'] == 'local' and refreshed['default_sources']['ssd'] == 'builtin'
    assert set(refreshed['default_warnings']) == {'ssd'}
    assert 'iso,vztmpl,backup' in refreshed['default_warnings']['ssd']
    info = run_module('datastore_info', opts(double, state_db))
    assert info['source'] == 'cache' and info['default_ssd'] == 'local'
    text = info['default_warnings']['ssd']
    assert "'local' cannot hold disks: its content is iso,vztmpl,backup, without 'images'" in text
    assert 'datastore_default ssd=<id>' in text and set(info['default_warnings']) == {'ssd'}
    assert warned.count(text) == 2  # datastore_refresh and datastore_info each warned
    # datastore_default keeps it when only hdd is given, and says so too
    kept = run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', terraform_vars_file=tf_vars))
    assert kept['default_ssd'] == 'local' and kept['default_warnings']['ssd'] == text and warned.count(text) == 3
    # a choice that holds images: nothing to report
    run_module('datastore_default', opts(double, state_db, ssd='ssd-pool', terraform_vars_file=tf_vars))
    assert run_module('datastore_info', opts(double, state_db))['default_warnings'] == {}

    # with neither Proxmox nor a DB, the fallback is the built-in name: what a stock PVE gives it is said
    del warned[:]
    double.add_fault(None, r'.*', status=500)
    fallback = run_module('datastore_info', opts(double, str(tmp_path / 'none.db')))
    assert fallback['source'] == 'fallback' and fallback['default_ssd'] == 'local'
    text = fallback['default_warnings']['ssd']
    assert 'built-in fallback' in text and 'stock Proxmox VE' in text and 'iso,vztmpl,backup' in text
    assert 'PROXMOX_SSD_DATASTORE' in text and text in warned
    assert 'hdd' not in fallback['default_warnings']  # a stock local-lvm holds images
    monkeypatch.setenv(SSD_ENV, 'ssd-pool')
    assert run_module('datastore_info', opts(double, str(tmp_path / 'none.db')))['default_warnings'] == {}


def test_default_check_mode_writes_neither_db_nor_file(double, state_db, tf_vars):
    checked = run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', terraform_vars_file=tf_vars),
                         check_mode=True, diff=True)
    assert checked['changed'] is True and checked['refreshed'] is True
    assert checked['diff']['after'] == {'hdd': 'HDD-Storage', 'ssd': ds.BUILTIN_DEFAULTS['ssd']}
    assert not db_exists(state_db) and not os.path.exists(tf_vars)

    run_module('datastore_default', opts(double, state_db, hdd='local-lvm', terraform_vars_file=tf_vars))
    before = snapshot(state_db, tf_vars)
    checked = run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', ssd='ssd-pool',
                                                   terraform_vars_file=tf_vars), check_mode=True, diff=True)
    assert checked['changed'] is True and checked['refreshed'] is False
    assert checked['diff'] == {'before': {'hdd': 'local-lvm', 'ssd': ds.BUILTIN_DEFAULTS['ssd']},
                               'after': {'hdd': 'HDD-Storage', 'ssd': 'ssd-pool'}}
    assert snapshot(state_db, tf_vars) == before


def test_default_rewrites_a_missing_or_edited_vars_file(double, state_db, tf_vars):
    run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', terraform_vars_file=tf_vars))
    os.remove(tf_vars)
    result = run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', terraform_vars_file=tf_vars))
    assert result['changed'] is True
    assert read_json(tf_vars) == {'proxmox_hdd_datastore': 'HDD-Storage',
                                  'proxmox_ssd_datastore': ds.BUILTIN_DEFAULTS['ssd']}
    with open(tf_vars, 'w') as handle:
        handle.write('{"proxmox_hdd_datastore": "local"')  # a broken hand edit
    assert run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage',
                                                terraform_vars_file=tf_vars))['changed'] is True
    schemas.validate(read_json(tf_vars), schemas.DATASTORE_TFVARS_SCHEMA, tf_vars)


def test_unwritable_vars_file_rolls_the_flags_back(double, state_db, tmp_path):
    good = str(tmp_path / 'ok.json')
    run_module('datastore_default', opts(double, state_db, hdd='local-lvm', terraform_vars_file=good))
    before = snapshot(state_db)
    blocker = tmp_path / 'not-a-dir'
    blocker.write_text('')
    bad = str(blocker / 'datastores.auto.tfvars.json')
    with pytest.raises(ModuleFailed) as failed:
        run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', terraform_vars_file=bad))
    assert 'Terraform vars file' in failed.value.result['msg'] and bad in failed.value.result['msg']
    assert snapshot(state_db) == before


def test_concurrent_defaults_end_with_one_consistent_pair(double, state_db, tf_vars):
    env = connection_env(double, PROXMOX_MANAGER_DB=state_db, PROXMOX_API_RETRIES='0')
    choices = [('HDD-Storage', 'ssd-pool'), ('local-lvm', 'local-lvm')]
    for round_ in range(3):
        order = choices if round_ % 2 == 0 else choices[::-1]
        procs = [subprocess.Popen(adhoc_cmd('datastore_default', dict(hdd=h, ssd=s, terraform_vars_file=tf_vars)),
                                  cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for h, s in order]
        outputs = [p.communicate(timeout=180) for p in procs]
        for proc, (out, err) in zip(procs, outputs):
            assert proc.returncode == 0, out + err
        hdd, ssd = flags(state_db)
        assert len(hdd) == 1 and len(ssd) == 1, (hdd, ssd)
        pair = (hdd[0], ssd[0])
        assert pair in choices
        assert read_json(tf_vars) == {'proxmox_hdd_datastore': pair[0], 'proxmox_ssd_datastore': pair[1]}
        # the last writer's own answer is the final state
        answers = [adhoc_result(out) for out, _err in outputs]
        assert pair in [(a['default_hdd'], a['default_ssd']) for a in answers]
    assert integrity_ok(state_db)


# =============================================================================
# datastore_info
# =============================================================================


def test_info_reads_the_cache_without_calling_proxmox(double, state_db, tf_vars):
    run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', ssd='ssd-pool',
                                         terraform_vars_file=tf_vars))
    refreshed = run_module('datastore_refresh', opts(double, state_db))
    before = snapshot(state_db)
    double.reset_counters()
    # named, the cluster needs no call; unnamed, one GET /cluster/status tells its name
    info = run_module('datastore_info', opts(double, state_db, cluster=double.cluster.cluster_name))
    assert double.counters()['total'] == 0
    assert run_module('datastore_info', opts(double, state_db)) == info
    assert double.counters()['by_path'] == {'GET /cluster/status': 1}
    assert info['changed'] is False and info['source'] == 'cache' and info['cluster'] == 'demo'
    assert info['datastores'] == [r for r in refreshed['datastores'] if r['enabled']]
    assert (info['default_hdd'], info['default_ssd']) == ('HDD-Storage', 'ssd-pool')
    assert info['default_sources'] == {'hdd': 'db', 'ssd': 'db'}
    assert all('nodes' in r and 'size' in r and 'is_default_hdd' in r for r in info['datastores'])
    assert snapshot(state_db) == before

    # the cache answers even when Proxmox is down
    double.add_fault(None, r'.*', status=500)
    assert run_module('datastore_info', opts(double, state_db))['source'] == 'cache'
    double.clear_faults()

    # live: true (alias refresh) asks Proxmox, keeps the cached default flags, and records nothing
    double.cluster.storages.append(Storage('fast-nvme', 'zfspool', 'images', nodes=['pve1']))
    for option in ('refresh', 'live'):
        double.reset_counters()
        fresh = run_module('datastore_info', opts(double, state_db, **{option: True}))
        by_path = double.counters()['by_path']
        assert by_path.get('GET /cluster/resources') == 1 and by_path.get('GET /storage') == 1
        assert fresh['source'] == 'proxmox' and 'fast-nvme' in [r['id'] for r in fresh['datastores']]
        assert (fresh['default_hdd'], fresh['default_ssd']) == ('HDD-Storage', 'ssd-pool')
        assert fresh['default_sources'] == {'hdd': 'db', 'ssd': 'db'} and 'msg' not in fresh
        assert 'fast-nvme' not in [r['id'] for r in db_rows(state_db)]
        assert snapshot(state_db) == before


@pytest.mark.parametrize('db', ['missing', 'empty cache'])
def test_info_with_nothing_cached_reads_live_and_writes_nothing(double, state_db, tf_vars, db):
    # issue "Never wrong in silence", 7: an _info module writes nothing, not even a new file
    if db == 'empty cache':
        with StateStore(state_db).writing():
            pass  # a state DB of the current layout without any datastore row
        before = snapshot(state_db)
    double.reset_counters()
    info = run_module('datastore_info', opts(double, state_db))
    if db == 'missing':
        assert created_nothing(state_db)
    else:
        assert snapshot(state_db) == before
    assert double.counters()['total'] > 0 and info['source'] == 'proxmox' and info['changed'] is False
    expected = expected_datastores(double.cluster)
    assert [comparable(r) for r in info['datastores']] == [expected[k] for k in sorted(expected)]
    assert (info['default_hdd'], info['default_ssd']) == (ds.BUILTIN_DEFAULTS['hdd'], ds.BUILTIN_DEFAULTS['ssd'])
    assert 'datastore_refresh' in info['msg'] and 'not recorded' in info['msg'] and state_db in info['msg']
    # still nothing cached: the next call asks again; datastore_refresh is what records
    double.reset_counters()
    assert run_module('datastore_info', opts(double, state_db))['source'] == 'proxmox'
    assert double.counters()['total'] > 0
    run_module('datastore_refresh', opts(double, state_db))
    double.reset_counters()
    cached = run_module('datastore_info', opts(double, state_db, cluster='demo'))
    assert cached['source'] == 'cache' and 'msg' not in cached and double.counters()['total'] == 0


def test_info_check_mode_on_an_empty_cache_writes_nothing(double, state_db):
    info = run_module('datastore_info', opts(double, state_db), check_mode=True)
    assert info['source'] == 'proxmox' and len(info['datastores']) == len(double.cluster.storages)
    assert not db_exists(state_db)


def test_info_falls_back_when_neither_proxmox_nor_db_answers(double, tmp_path, monkeypatch, warned):
    monkeypatch.setenv(HDD_ENV, 'HDD-Storage')
    broken = tmp_path / 'broken.db'
    broken.write_bytes(b'this is not a database\n' * 200)
    digest = hashlib.sha256(broken.read_bytes()).hexdigest()
    double.add_fault(None, r'.*', status=500, message='cluster not ready')
    info = run_module('datastore_info', opts(double, str(broken)))
    assert info['source'] == 'fallback' and info['datastores'] == []
    assert (info['default_hdd'], info['default_ssd']) == ('HDD-Storage', ds.BUILTIN_DEFAULTS['ssd'])
    assert info['default_sources'] == {'hdd': 'env', 'ssd': 'builtin'}
    text = ' '.join(warned)
    assert 'No datastore list is available' in text and 'HTTP 500' in text and 'could not be read' in text
    assert hashlib.sha256(broken.read_bytes()).hexdigest() == digest


def test_info_falls_back_in_a_real_run(double, state_db):
    double.add_fault(None, r'.*', status=500)
    env = connection_env(double, PROXMOX_MANAGER_DB=state_db, PROXMOX_API_RETRIES='0')
    env.pop(HDD_ENV, None)
    env[SSD_ENV] = 'ssd-pool'
    proc, result = run_adhoc('datastore_info', {}, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result['source'] == 'fallback'
    assert (result['default_hdd'], result['default_ssd']) == (ds.BUILTIN_DEFAULTS['hdd'], 'ssd-pool')
    assert result['default_sources'] == {'hdd': 'builtin', 'ssd': 'env'}
    assert '[WARNING]' in proc.stderr + proc.stdout and 'No datastore list is available' in proc.stderr + proc.stdout
    assert not db_exists(state_db)


# =============================================================================
# A locked DB
# =============================================================================


@pytest.mark.parametrize('module,extra', [('datastore_refresh', {}), ('datastore_default', {'hdd': 'HDD-Storage'})])
def test_locked_db_fails_clearly_and_changes_nothing(double, state_db, tf_vars, monkeypatch, module, extra):
    run_module('datastore_default', opts(double, state_db, hdd='local-lvm', terraform_vars_file=tf_vars))
    double.cluster.storages[0].used = 1  # a refresh would change a row
    before = snapshot(state_db, tf_vars)
    monkeypatch.setenv('PROXMOX_MANAGER_DB_TIMEOUT', '1')
    with hold_write_lock(state_db):
        args = dict(extra, terraform_vars_file=tf_vars) if module == 'datastore_default' else {}
        with pytest.raises(ModuleFailed) as failed:
            run_module(module, opts(double, state_db, **args))
    msg = failed.value.result['msg']
    assert ('lock timeout' if is_postgresql(state_db) else 'database is locked') in msg
    assert 'PROXMOX_MANAGER_DB_TIMEOUT' in msg and state_db in msg
    assert 'exception' not in failed.value.result
    assert snapshot(state_db, tf_vars) == before
