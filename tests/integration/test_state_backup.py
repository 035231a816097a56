"""state_backup and the `backup: true` option of the writing modules (issue 4).

A backup is SQLite's online backup: a consistent copy even while another
run writes, taken by the writing modules only when something changes.
"""

import os
import re
import sqlite3
import threading

import pytest

from tests.conftest import SAMPLE_TFVARS, ModuleFailed, connection_options, run_module
from tests.seed_db import settled_digest

STAMPED = re.compile(r'^proxmox_manager-\d{8}T\d{6}\.\d{6}Z\.db$')


def dump(path):
    """Every table's rows, for comparing a copy with its source."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return dict((t, sorted(conn.execute('SELECT * FROM "%s"' % t).fetchall(), key=repr)) for t in tables)
    finally:
        conn.close()


def integrity(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute('PRAGMA integrity_check').fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def base(double, sqlite_db, roles_dir):
    return dict(connection_options(double, api_retries=0, api_timeout=5), state_db=sqlite_db,
                tfvars_path=str(SAMPLE_TFVARS), roles_path=roles_dir)


@pytest.fixture
def populated(base, sqlite_db):
    """A state DB with every sample server and a few roles, as a real run leaves it."""
    sync_args = dict((k, v) for k, v in base.items() if k != 'roles_path')
    run_module('server_sync', sync_args)
    run_module('server_role', dict(base, servers=[dict(name='AI-agent', role='web'), dict(name='db-01', role='db'),
                                                  dict(name='worker-111', role='was')]))
    return sqlite_db


def test_state_backup_copies_every_row(populated):
    before = dump(populated)
    digest = settled_digest(populated)
    result = run_module('state_backup', dict(state_db=populated))
    assert result['changed'] is True and result['state_db'] == populated
    copy = result['backup_file']
    assert os.path.dirname(copy) == os.path.join(os.path.dirname(populated), 'backups')
    assert STAMPED.match(os.path.basename(copy))
    assert integrity(copy) == 'ok'
    assert dump(copy) == before
    assert len(before['servers']) == 11 and len(before['change_log']) > 3
    assert settled_digest(populated) == digest  # the source is only read
    assert os.listdir(os.path.dirname(copy)) == [os.path.basename(copy)]  # no leftover partial file


def test_each_backup_is_a_new_file(populated, tmp_path):
    target = tmp_path / 'elsewhere' / 'backups'
    first = run_module('state_backup', dict(state_db=populated, backup_dir=str(target)))['backup_file']
    second = run_module('state_backup', dict(state_db=populated, backup_dir=str(target)))['backup_file']
    assert first != second
    assert sorted(os.listdir(target)) == sorted([os.path.basename(first), os.path.basename(second)])


def test_state_db_from_the_environment(populated, monkeypatch):
    monkeypatch.setenv('PROXMOX_MANAGER_DB', populated)
    result = run_module('state_backup', {})
    assert result['state_db'] == populated and dump(result['backup_file']) == dump(populated)


def test_backup_ignores_an_uncommitted_write(populated):
    committed = dump(populated)
    writer = sqlite3.connect(populated, isolation_level=None)
    writer.execute('BEGIN IMMEDIATE')
    writer.execute("UPDATE servers SET role = 'db' WHERE name = 'AI-agent'")
    try:
        copy = run_module('state_backup', dict(state_db=populated))['backup_file']
    finally:
        writer.execute('ROLLBACK')
        writer.close()
    assert dump(copy) == committed


def test_backup_is_consistent_while_another_run_writes(populated):
    # Each write adds a server and its change-log entry in one transaction: any
    # consistent copy holds as many of one as of the other.
    stop = threading.Event()
    writes = []

    def write():
        conn = sqlite3.connect(populated, isolation_level=None, timeout=30)
        while not stop.is_set():
            n = len(writes)
            conn.execute('BEGIN IMMEDIATE')
            conn.execute("INSERT INTO servers (cluster, name, present, created_at, updated_at) "
                         "VALUES ('demo', ?, 1, '2026-01-01', '2026-01-01')", ('w-%05d' % n,))
            conn.execute("INSERT INTO change_log (at, entity, key, field, new) "
                         "VALUES ('2026-01-01', 'server', ?, 'role', 'web')", ('w-%05d' % n,))
            conn.execute('COMMIT')
            writes.append(n)
        conn.close()

    thread = threading.Thread(target=write)
    thread.start()
    copies = []
    try:
        while len(copies) < 5 and thread.is_alive():  # a writer that failed would leave this waiting for ever
            if writes:  # copy only once writing has begun
                copies.append(run_module('state_backup', dict(state_db=populated))['backup_file'])
    finally:
        stop.set()
        thread.join(timeout=30)
    assert writes
    for copy in copies:
        assert integrity(copy) == 'ok'
        conn = sqlite3.connect(copy)
        servers = conn.execute("SELECT count(*) FROM servers WHERE name LIKE 'w-%'").fetchone()[0]
        logged = conn.execute("SELECT count(*) FROM change_log WHERE key LIKE 'w-%'").fetchone()[0]
        conn.close()
        assert servers == logged


def test_check_mode_copies_nothing(populated):
    result = run_module('state_backup', dict(state_db=populated), check_mode=True)
    assert result['changed'] is True and 'backup_file' not in result
    assert not os.path.exists(os.path.join(os.path.dirname(populated), 'backups'))


def test_no_db_is_a_clear_failure(sqlite_db):
    with pytest.raises(ModuleFailed) as failed:
        run_module('state_backup', dict(state_db=sqlite_db))
    result = failed.value.result
    assert result['msg'] == 'There is no state DB at %s to back up yet.' % sqlite_db
    assert 'exception' not in result
    assert not os.path.exists(os.path.dirname(sqlite_db))


def test_postgresql_says_to_use_pg_dump():
    url = 'postgresql+psycopg://pm:s3cret-pw@db.example.invalid/proxmox_manager'
    with pytest.raises(ModuleFailed) as failed:
        run_module('state_backup', dict(state_db=url))
    result = failed.value.result
    assert 'pg_dump' in result['msg'] and 'db.example.invalid' in result['msg']
    assert 's3cret-pw' not in result['msg'] and 'exception' not in result


# -- backup: true on server_role ---------------------------------------------------


def test_server_role_backs_up_only_when_something_changes(base, populated, tmp_path):
    backups = tmp_path / 'role-backups'
    args = dict(base, name='AI-agent', role='web', backup=True, backup_dir=str(backups))
    unchanged = run_module('server_role', args)
    assert unchanged['changed'] is False and 'backup_file' not in unchanged
    assert not backups.exists()

    args['role'] = 'db'
    checked = run_module('server_role', args, check_mode=True)
    assert checked['changed'] is True and 'backup_file' not in checked and not backups.exists()

    before = dump(populated)
    changed = run_module('server_role', args)
    assert changed['changed'] is True and os.listdir(backups) == [os.path.basename(changed['backup_file'])]
    assert integrity(changed['backup_file']) == 'ok'
    assert dump(changed['backup_file']) == before  # taken before the change
    assert dump(populated) != before


def test_failed_server_role_takes_no_backup(base, populated):
    with pytest.raises(ModuleFailed):
        run_module('server_role', dict(base, name='AI-agnet', role='web', backup=True))
    assert not os.path.exists(os.path.join(os.path.dirname(populated), 'backups'))


def test_first_write_has_nothing_to_back_up(base, sqlite_db):
    result = run_module('server_role', dict(base, name='AI-agent', role='web', backup=True))
    assert result['changed'] is True and 'backup_file' not in result
    assert 'backups' not in os.listdir(os.path.dirname(sqlite_db))
