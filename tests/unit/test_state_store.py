"""The state store on real databases, each test on a SQLite file and on a PostgreSQL database (the `state_db`
fixture): upserts, upgrades, locks; backups on SQLite files (concurrency: tests/integration)."""

import os
import sqlite3

import psycopg
import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import datastores, db_backup, state_schema
from ansible_collections.proxmox_manager.core.plugins.module_utils import state_db as sdb
from ansible_collections.proxmox_manager.core.plugins.module_utils import state_store as ss
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import StateStoreError
from tests.seed_db import (
    created_nothing,
    v2_db,
    dump,
    execute,
    hold_write_lock,
    is_postgresql,
    query,
    script,
    settled_digest,
)


# The writer that upgrades an older DB: its rows become cluster c1's.
OWNER = dict(cluster='c1', view='inventory@pve-c1:8006')


def test_reading_a_missing_db_creates_nothing(state_db):
    store = ss.StateStore(state_db)
    assert store.servers() == [] and store.changes() == [] and store.load_snapshot('inventory') == (None, None)
    assert store.schema_version() is None
    assert created_nothing(state_db)


def test_reading_never_writes(state_db):
    store = ss.StateStore(state_db)
    with store.writing() as conn:
        store.upsert_servers(conn, [dict(name='a', vmid=100, role='web')], 'test', 'c1')
    store.engine.dispose()
    before = settled_digest(state_db)
    reader = ss.StateStore(state_db)
    assert [r['role'] for r in reader.servers()] == ['web']
    reader.changes()
    reader.preview_servers([dict(name='a', vmid=100, role='db')], 'c1')
    reader.engine.dispose()
    assert settled_digest(state_db) == before


def test_upsert_creates_updates_and_logs(state_db):
    store = ss.StateStore(state_db)
    with store.writing() as conn:
        plan = store.upsert_servers(conn, [dict(name='a', vmid=100, node='pve1', role='web'),
                                           dict(name='planned', role='db')], 'test', 'c1')
    assert [old for _k, old, _c in plan.results] == [None, None]
    # a declared server gets its vmid: the same row, not a new one
    with store.writing() as conn:
        plan = store.upsert_servers(conn, [dict(name='planned', vmid=105, node='pve2', role='db')], 'test', 'c1')
    rows = store.servers()
    assert len(rows) == 2
    planned = [r for r in rows if r['name'] == 'planned'][0]
    assert planned['vmid'] == 105 and planned['role'] == 'db' and planned['node'] == 'pve2'
    log = [(c['key'], c['field'], c['old'], c['new']) for c in store.changes()]
    assert ('planned (vmid 105)', 'vmid', None, '105') in log
    assert ('a (vmid 100)', 'role', None, 'web') in log
    # a new row is one `created` entry plus its role, not one entry per fact
    assert sorted(f for k, f, _o, _n in log if k == 'a (vmid 100)') == ['created', 'role']
    assert all(c['actor'] for c in store.changes())


def test_none_never_blanks_a_known_fact(state_db):
    store = ss.StateStore(state_db)
    with store.writing() as conn:
        store.upsert_servers(conn, [dict(name='a', vmid=100, ip_address='10.0.0.1', role='web')], 'test', 'c1')
    with store.writing() as conn:
        plan = store.upsert_servers(conn, [dict(name='a', vmid=100, ip_address=None, status='stopped')], 'sync', 'c1',
                                    roles=False)
    row = store.servers()[0]
    assert row['ip_address'] == '10.0.0.1' and row['role'] == 'web' and row['status'] == 'stopped'
    assert plan.results[0][2] == {'status': 'stopped'}


def test_mark_missing_keeps_row_and_role(state_db):
    store = ss.StateStore(state_db)
    with store.writing() as conn:
        store.upsert_servers(conn, [dict(name='a', vmid=100, role='web'), dict(name='b', vmid=101, role='db')], 't', 'c1')
    with store.writing() as conn:
        plan = store.upsert_servers(conn, [dict(name='a', vmid=100)], 'sync', 'c1', roles=False, mark_missing=True)
    assert [r['name'] for r in plan.absent] == ['b']
    b = [r for r in store.servers() if r['name'] == 'b'][0]
    assert b['present'] is False and b['absent_since'] is not None and b['role'] == 'db'
    # it comes back: present again, role intact
    with store.writing() as conn:
        store.upsert_servers(conn, [dict(name='a', vmid=100), dict(name='b', vmid=101)], 'sync', 'c1', roles=False,
                             mark_missing=True)
    b = [r for r in store.servers() if r['name'] == 'b'][0]
    assert b['present'] is True and b['absent_since'] is None and b['role'] == 'db'


def _legacy(db):
    """The original app's DB, with a datastores table."""
    sql = '''
        CREATE TABLE servers (id INTEGER PRIMARY KEY, name VARCHAR(100) UNIQUE NOT NULL, vmid INTEGER,
            status VARCHAR(20), ip_address VARCHAR(50), role VARCHAR(50), cpu INTEGER, memory INTEGER,
            os_type VARCHAR(50), created_at DATETIME, updated_at DATETIME);
        INSERT INTO servers (name, vmid, status, ip_address, role, cpu, memory)
            VALUES ('test', NULL, 'unknown', '10.0.0.7', 'web', 2, 2048), ('test-2', 102, 'running', NULL, NULL, 1, 1024);
        CREATE TABLE datastores (id VARCHAR(100) PRIMARY KEY, name VARCHAR(100) NOT NULL, type VARCHAR(50) NOT NULL,
            size BIGINT DEFAULT 0, used BIGINT DEFAULT 0, available BIGINT DEFAULT 0, content TEXT,
            enabled BOOLEAN DEFAULT TRUE, is_default_hdd BOOLEAN DEFAULT FALSE, is_default_ssd BOOLEAN DEFAULT FALSE,
            is_system_default BOOLEAN DEFAULT FALSE, created_at DATETIME, updated_at DATETIME);
        INSERT INTO datastores (id, name, type, size, is_default_hdd) VALUES ('local-lvm', 'local-lvm', 'lvmthin', 100, TRUE);
    '''
    if not is_postgresql(db):
        os.makedirs(os.path.dirname(db), exist_ok=True)
    script(db, sql)


def test_v1_db_of_the_original_app_upgrades_in_place_with_no_row_lost(state_db):
    path = state_db
    _legacy(path)
    store = ss.StateStore(path, owner=OWNER)
    assert store.schema_version() == 1
    assert store.servers() == []  # readers never upgrade: an old DB reads as empty
    with store.writing() as conn:
        store.upsert_servers(conn, [dict(name='test', vmid=None, role='web')], 'test', 'c1')
    rows = dict((r['name'], r) for r in store.servers())
    assert set(rows) == {'test', 'test-2'}
    assert rows['test']['ip_address'] == '10.0.0.7' and rows['test']['role'] == 'web'
    assert rows['test-2']['vmid'] == 102 and rows['test-2']['memory'] == 1024
    assert store.schema_version() == sdb.SCHEMA_VERSION
    assert [(r['cluster'], r['id'], r['is_default_hdd'], r['shared'])
            for r in query(path, 'SELECT * FROM datastores')] == [('c1', 'local-lvm', 1, 0)]
    assert set(r['cluster'] for r in store.servers()) == {'c1'}
    # names are no longer unique: two guests named worker fit
    with store.writing() as conn2:
        store.upsert_servers(conn2, [dict(name='worker', vmid=110), dict(name='worker', vmid=111)], 'test', 'c1')
    assert len([r for r in store.servers() if r['name'] == 'worker']) == 2
    assert_one_row_per_name_without_vmid(path)


def assert_one_row_per_name_without_vmid(db):
    row = ("INSERT INTO servers (cluster, name, vmid, present, created_at, updated_at) "
           "VALUES ('%s', 'twin', %s, TRUE, '2026-01-01', '2026-01-01')")
    execute(db, row % ('c1', 'NULL'))
    execute(db, row % ('c1', '300'))
    execute(db, row % ('c1', '301'))  # guests sharing a name, each with its vmid, fit
    execute(db, row % ('c2', 'NULL'))  # so does the same name, not created yet, in another cluster
    execute(db, row % ('c2', '300'))  # and the same vmid in another cluster
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.UniqueViolation),
                       match='UNIQUE constraint failed: servers.cluster, servers.name|"ux_servers_name_no_vmid"'):
        execute(db, row % ('c1', 'NULL'))
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.UniqueViolation),
                       match='UNIQUE constraint failed: servers.cluster, servers.vmid|"ux_servers_cluster_vmid"'):
        execute(db, row % ('c2', '300'))


def test_a_new_db_holds_one_row_per_name_without_vmid(state_db):
    with ss.StateStore(state_db).writing():
        pass
    assert_one_row_per_name_without_vmid(state_db)


def test_newer_schema_is_refused(state_db):
    path = state_db
    store = ss.StateStore(path)
    with store.writing() as conn:
        conn.execute(state_schema.meta_table.update().values(value='99'))
    with pytest.raises(StateStoreError, match='newer than this collection knows'):
        ss.StateStore(path).servers()


def test_locked_db_is_a_clear_error_and_nothing_changes(state_db, monkeypatch):
    store = ss.StateStore(state_db)
    with store.writing() as conn:
        store.upsert_servers(conn, [dict(name='a', vmid=100, role='web')], 'test', 'c1')
    with hold_write_lock(state_db):
        monkeypatch.setenv(sdb.BUSY_TIMEOUT_ENV, '1')
        other = ss.StateStore(state_db)
        with pytest.raises(StateStoreError) as err:
            with other.writing() as conn:
                other.upsert_servers(conn, [dict(name='a', vmid=100, role='db')], 'test', 'c1')
    msg = str(err.value)
    assert msg.startswith('Cannot write the state DB %s: ' % sdb.display(state_db)), msg
    assert ('database is locked' if not is_postgresql(state_db) else 'lock timeout') in msg
    assert 'Another run held the database for more than 1s (PROXMOX_MANAGER_DB_TIMEOUT).' in msg
    assert store.servers()[0]['role'] == 'web'


def test_backup_is_a_consistent_copy(tmp_path):
    path = str(tmp_path / 'x.db')
    store = ss.StateStore(path)
    with store.writing() as conn:
        store.upsert_servers(conn, [dict(name='a', vmid=100, role='web')], 'test', 'c1')
    copy = db_backup.backup(store)
    assert os.path.dirname(copy) == str(tmp_path / 'backups')
    assert sqlite3.connect(copy).execute('SELECT name, role FROM servers').fetchall() == [('a', 'web')]
    with pytest.raises(StateStoreError, match='pg_dump'):
        db_backup.backup(ss.StateStore('postgresql://u:secret@db/x'))
    with pytest.raises(StateStoreError, match='no state DB'):
        db_backup.backup(ss.StateStore(str(tmp_path / 'none.db')))


def test_url_password_is_hidden_in_messages():
    store = ss.StateStore('postgresql://user:hunter2@db.example/state')
    assert 'hunter2' not in store.display_url and 'db.example' in store.display_url


# -- issue "Never wrong in silence", parts 6 and 7 -----------------------------------------------------


@pytest.mark.parametrize('url, shown, says', [
    ('postgresql+psycopg://u:secret@localhost:notaport/db', 'postgresql+psycopg://u:***@localhost:notaport/db',
     "the port 'notaport' is not a number"),
    ('mysql://u:secret@localhost/db', 'mysql://u:***@localhost/db',
     "no module named 'MySQLdb'): install the package mysqlclient (pip install mysqlclient)"),
])
def test_a_bad_url_or_a_missing_driver_is_one_message_without_the_password(url, shown, says):
    for call in (lambda s: s.servers(), lambda s: s.writing().__enter__()):
        with pytest.raises(StateStoreError) as err:
            call(ss.StateStore(url))
        msg = str(err.value)
        assert msg.startswith('Cannot open the state DB %s: ' % shown) and says in msg, msg
        assert 'secret' not in msg


@pytest.mark.parametrize('url, args', [
    ('postgresql+psycopg://u:p@db.example/state', {'connect_timeout': 7}),
    ('postgresql://u@db.example/state?sslmode=require', {'connect_timeout': 7}),
    ('POSTGRESQL+PSYCOPG2://u@db.example/state', {'connect_timeout': 7}),
    ('postgresql+psycopg://u@db.example/state?connect_timeout=2', {}),  # the URL's own wins
    ('postgresql+psycopg://u@db.example/state?sslmode=require&connect_timeout=2', {}),
    ('postgresql+psycopg://u@db.example/state?application_name=my_connect_timeout=x', {'connect_timeout': 7}),
    ('postgresql+pg8000://u@db.example/state', {}),  # not libpq: it does not take the argument
    ('mysql://u@db.example/state', {}),
])
def test_libpq_gets_a_connect_timeout_unless_the_url_sets_one(url, args):
    assert sdb.connect_args(url, 7) == args


def test_a_directory_another_process_makes_first_is_not_an_error(tmp_path, monkeypatch):
    """First writers at once (eight CI jobs on a fresh runner): each may find the directory just made."""
    real = os.makedirs

    def raced(path, *args, **kwargs):
        real(path)  # the other process wins between the check and the creation
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, 'makedirs', raced)
    store = ss.StateStore(str(tmp_path / 'state' / 'proxmox_manager.db'))
    with store.writing():
        pass
    assert store.exists
    assert db_backup.backup(store, str(tmp_path / 'backups')).startswith(str(tmp_path / 'backups'))
    datastores._write_tf_vars(str(tmp_path / 'terraform' / 'datastores.auto.tfvars.json'), 'a', 'b')
    assert (tmp_path / 'terraform' / 'datastores.auto.tfvars.json').exists()


def test_a_schema_version_that_is_not_a_number_is_refused_by_name(state_db):
    with ss.StateStore(state_db).writing():
        pass
    execute(state_db, "UPDATE pm_meta SET value = 'abc' WHERE key = 'schema_version'")
    before = dump(state_db)
    for call in (lambda s: s.servers(), lambda s: s.schema_version(), lambda s: s.writing().__enter__()):
        with pytest.raises(StateStoreError) as err:
            call(ss.StateStore(state_db))
        assert str(err.value).startswith("Cannot read the state DB %s: its pm_meta table holds schema_version 'abc'"
                                         % sdb.display(state_db)), str(err.value)
    assert dump(state_db) == before


def test_a_busy_timeout_that_is_not_a_number_is_named(monkeypatch):
    monkeypatch.setenv(sdb.BUSY_TIMEOUT_ENV, 'soon')
    with pytest.raises(StateStoreError, match="PROXMOX_MANAGER_DB_TIMEOUT='soon' is not a whole number"):
        ss.StateStore('/nonexistent/x.db')


def test_the_recorded_view_is_never_recorded_into_a_missing_db(state_db):
    from ansible_collections.proxmox_manager.core.plugins.plugin_utils import recorded_view
    assert recorded_view.record(state_db, 'inventory@pve:8006', [dict(host='a')]) is False
    assert created_nothing(state_db)


def test_the_recorded_view_is_written_only_when_it_changed(state_db):
    from ansible_collections.proxmox_manager.core.plugins.plugin_utils import recorded_view
    path = state_db
    with ss.StateStore(path).writing():
        pass
    name = 'inventory@pve:8006'
    assert recorded_view.record(path, name, [dict(host='a', vmid=100)]) is True
    taken_at = recorded_view.last_view(path, name).taken_at
    before = settled_digest(path)
    assert recorded_view.record(path, name, [dict(host='a', vmid=100)]) is False
    assert settled_digest(path) == before and recorded_view.last_view(path, name).taken_at == taken_at
    assert recorded_view.record(path, name, [dict(host='a', vmid=100, status='stopped')]) is True
    assert recorded_view.last_view(path, name).records == [dict(host='a', vmid=100, status='stopped')]
    # the state store (other databases) keeps the same rule
    store = ss.StateStore(path)
    with store.writing() as conn:
        assert store.save_snapshot(conn, name, [dict(host='a', vmid=100, status='stopped')]) is False
        assert store.save_snapshot(conn, name, [dict(host='b')]) is True
    assert store.load_snapshot(name)[1] == [dict(host='b')]


def test_writing_without_create_neither_creates_nor_upgrades(state_db):
    with ss.StateStore(state_db).writing(create=False) as conn:
        assert conn is None
    assert created_nothing(state_db)
    _legacy(state_db)
    before = settled_digest(state_db)
    with ss.StateStore(state_db).writing(create=False) as conn:
        assert conn is None
    assert settled_digest(state_db) == before


# -- several clusters (issue 17) ---------------------------------------------------------------------------


def test_the_same_vmid_in_two_clusters_is_two_servers_and_each_cluster_sees_its_own(state_db):
    store = ss.StateStore(state_db)
    with store.writing() as conn:
        store.upsert_servers(conn, [dict(name='web-01', vmid=101, role='web')], 'test', 'prod')
        store.upsert_servers(conn, [dict(name='web-01', vmid=101, role='db')], 'test', 'lab')
    with store.writing() as conn:
        plan = store.upsert_servers(conn, [dict(name='other', vmid=102)], 'sync', 'lab', roles=False,
                                    mark_missing=True)
    # marking missing is per cluster: prod's web-01 is not lab's business
    assert [(r['cluster'], r['name']) for r in plan.absent] == [('lab', 'web-01')]
    rows = dict(((r['cluster'], r['vmid']), r) for r in store.servers())
    assert rows[('prod', 101)]['role'] == 'web' and rows[('prod', 101)]['present'] is True
    assert rows[('lab', 101)]['role'] == 'db' and rows[('lab', 101)]['present'] is False
    assert [r['cluster'] for r in store.servers(cluster='prod')] == ['prod']
    assert store.applied_roles() == {('prod', 101): 'web', ('lab', 101): 'db'}
    assert set((c['cluster'], c['tool']) for c in store.changes()) == {
        ('prod', 'test'), ('lab', 'test'), ('lab', 'sync')}


def test_a_v2_db_is_upgraded_in_place_its_rows_becoming_the_writers_cluster(state_db):
    v2_db(state_db)
    store = ss.StateStore(state_db, owner=OWNER)
    assert store.schema_version() == 2
    assert store.servers() == []  # readers never upgrade
    # check mode plans on the rows the upgrade will keep
    plan = store.preview_servers([dict(name='web-01', vmid=101, role='web')], 'c1')
    assert plan.results[0][1]['role'] == 'web' and not plan.changed
    with store.writing() as conn:
        store.upsert_servers(conn, [dict(name='new', vmid=200, role='web')], 'test', 'c1')
    rows = dict((r['name'], r) for r in store.servers())
    assert set(rows) == {'web-01', 'planned', 'gone', 'new'}
    assert set(r['cluster'] for r in rows.values()) == {'c1'}
    assert rows['gone']['present'] is False and rows['planned']['vmid'] is None and rows['web-01']['role'] == 'web'
    assert rows['new']['id'] > max(r['id'] for n, r in rows.items() if n != 'new')
    assert [(r['cluster'], r['id'], r['is_default_hdd']) for r in query(state_db, 'SELECT * FROM datastores')] == [
        ('c1', 'local-lvm', 1)]
    log = [(c['cluster'], c['key']) for c in store.changes()]
    assert (None, 'web-01 (vmid 101)') in log and ('c1', 'new (vmid 200)') in log  # the old entries are kept
    assert store.schema_version() == sdb.SCHEMA_VERSION
    assert_one_row_per_name_without_vmid(state_db)


@pytest.mark.parametrize('owner, says', [
    (dict(cluster='lab', view='inventory@pve-lab:8006'),
     'its servers were recorded from pve-c1:8006, not from this connection (pve-lab:8006, cluster lab)'),
    (None, 'this writer does not know which cluster it is'),
])
def test_a_v2_db_is_not_given_to_the_wrong_cluster(state_db, owner, says):
    v2_db(state_db, "INSERT INTO view_snapshots VALUES ('inventory@pve-c1:8006', '2026-11-01 10:00:00', '[]');")
    before = dump(state_db)
    store = ss.StateStore(state_db, owner=owner)
    with pytest.raises(StateStoreError) as err:
        with store.writing() as conn:
            store.upsert_servers(conn, [dict(name='new', vmid=200, role='web')], 'test', 'lab')
    assert str(err.value).startswith('Cannot upgrade the state DB %s (schema v2) to v3: ' % sdb.display(state_db))
    assert says in str(err.value), str(err.value)
    assert dump(state_db) == before
    # the connection it was recorded from upgrades it
    store = ss.StateStore(state_db, owner=OWNER)
    with store.writing():
        pass
    assert set(r['cluster'] for r in store.servers()) == {'c1'}
