"""The seeds' state DB, and a state DB looked at from outside, shared by tests and the demo.

A state DB here is what a test passes as `state_db`: a SQLite file path, or a PostgreSQL URL of the throwaway
server (tests/postgres.py). Both are read with their plain driver (sqlite3, psycopg), never through the code
under test.
"""

import contextlib
import gc
import hashlib
import os
import sqlite3

# The original Flask app's schema (v1), holding only test and test-2: the seeds' story.
LEGACY_SCHEMA = '''
    CREATE TABLE servers (id INTEGER PRIMARY KEY, name VARCHAR(100) UNIQUE NOT NULL, vmid INTEGER,
        status VARCHAR(20), ip_address VARCHAR(50), role VARCHAR(50), cpu INTEGER, memory INTEGER,
        os_type VARCHAR(50), created_at DATETIME, updated_at DATETIME);
    INSERT INTO servers (name, status, role) VALUES ('test', 'unknown', 'web'), ('test-2', 'unknown', NULL);
'''


# This collection's first layout (v2, release 0.1.0): one cluster per DB, servers keyed by vmid alone.
V2_SCHEMA = '''
    CREATE TABLE pm_meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO pm_meta (key, value) VALUES ('schema_version', '2');
    CREATE TABLE servers (id INTEGER PRIMARY KEY, name VARCHAR(253) NOT NULL, vmid INTEGER UNIQUE,
        node VARCHAR(64), type VARCHAR(8), status VARCHAR(32), ip_address VARCHAR(64), role VARCHAR(64), cpu INTEGER,
        memory INTEGER, os_type VARCHAR(64), source VARCHAR(16), present BOOLEAN NOT NULL DEFAULT TRUE,
        absent_since DATETIME, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL);
    CREATE INDEX ix_servers_name ON servers (name);
    CREATE UNIQUE INDEX ux_servers_name_no_vmid ON servers (name) WHERE vmid IS NULL;
    CREATE TABLE datastores (id VARCHAR(100) PRIMARY KEY, name VARCHAR(100) NOT NULL, type VARCHAR(50) NOT NULL,
        size BIGINT DEFAULT 0, used BIGINT DEFAULT 0, available BIGINT DEFAULT 0, content TEXT,
        enabled BOOLEAN DEFAULT TRUE, shared BOOLEAN DEFAULT FALSE, nodes TEXT, is_default_hdd BOOLEAN DEFAULT FALSE,
        is_default_ssd BOOLEAN DEFAULT FALSE, is_system_default BOOLEAN DEFAULT FALSE, created_at DATETIME,
        updated_at DATETIME);
    CREATE TABLE change_log (id INTEGER PRIMARY KEY, at DATETIME NOT NULL, entity VARCHAR(16) NOT NULL,
        key VARCHAR(253) NOT NULL, field VARCHAR(64) NOT NULL, old TEXT, new TEXT, actor VARCHAR(128),
        git_commit VARCHAR(64), tool VARCHAR(64));
    CREATE TABLE view_snapshots (name VARCHAR(64) PRIMARY KEY, taken_at DATETIME NOT NULL, payload TEXT NOT NULL);
    INSERT INTO servers (name, vmid, node, role, present, created_at, updated_at) VALUES
        ('web-01', 101, 'pve1', 'web', TRUE, '2026-11-01 10:00:00', '2026-11-01 10:00:00'),
        ('planned', NULL, NULL, 'db', TRUE, '2026-11-01 10:00:00', '2026-11-01 10:00:00'),
        ('gone', 150, 'pve2', 'was', FALSE, '2026-11-01 10:00:00', '2026-11-02 10:00:00');
    INSERT INTO datastores (id, name, type, content, is_default_hdd) VALUES
        ('local-lvm', 'local-lvm', 'lvmthin', 'images,rootdir', TRUE);
    INSERT INTO change_log (at, entity, key, field, old, new, actor, tool) VALUES
        ('2026-11-01 10:00:00', 'server', 'web-01 (vmid 101)', 'role', NULL, 'web', 'ci', 'server_role');
'''


def v2_db(path, extra=''):
    """Write a DB of the v2 layout at path (replacing any DB there): three servers, one datastore, one log entry."""
    _empty(path)
    script(path, V2_SCHEMA + extra)


def _empty(path):
    if is_postgresql(path):
        with _pg_connect(path) as conn:
            conn.execute('DROP SCHEMA public CASCADE')
            conn.execute('CREATE SCHEMA public')
    else:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        for suffix in ('', '-wal', '-shm'):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)


def is_postgresql(db):
    return db.startswith('postgresql')


def _pg_connect(url, **kwargs):
    import psycopg

    from tests.postgres import conninfo_of
    return psycopg.connect(**conninfo_of(url), **kwargs)


def legacy_db(path, extra=''):
    """Write the seeds' DB at path (replacing any DB there); `extra` is more SQL."""
    _empty(path)
    script(path, LEGACY_SCHEMA + extra)


def script(db, sql):
    """Run SQL statements written for the original app's SQLite DB, in one transaction; on PostgreSQL in its
    words (an auto-numbered id is SERIAL, DATETIME is TIMESTAMP)."""
    if is_postgresql(db):
        with _pg_connect(db) as conn:
            conn.execute(sql.replace('INTEGER PRIMARY KEY', 'SERIAL PRIMARY KEY').replace('DATETIME', 'TIMESTAMP'))
        return
    conn = sqlite3.connect(db)
    try:
        conn.executescript(sql)
        conn.commit()
    finally:
        conn.close()


def settled_digest(path):
    """sha256 of the DB: equal iff nothing was committed; None when there is no DB (no file, no table).

    SQLite: of the file, once every connection is closed and the WAL is checkpointed. Closing SQLite's last
    connection folds the WAL into the file, so comparing raw bytes is only meaningful from a settled state; any
    committed write still shows, since the checkpoint copies it into the file. PostgreSQL: of every table's
    definition and rows, and the indexes (a rolled-back transaction may still have moved a sequence: not a change).
    """
    gc.collect()  # closes the engines of earlier in-process module runs
    if is_postgresql(path):
        return _pg_digest(path)
    if not os.path.exists(path):
        return None
    conn = sqlite3.connect(path)
    conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    conn.close()
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _tables(conn):
    return [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


def dump(db):
    """Every table's definition and rows, as comparable lines (SQLite: its iterdump)."""
    if not is_postgresql(db):
        conn = sqlite3.connect(db)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()
    lines = []
    with _pg_connect(db) as conn:
        for table in _tables(conn):
            columns = conn.execute(
                'SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns '
                "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position", (table,)).fetchall()
            lines.append(repr((table, columns)))
            order = ', '.join(str(n) for n in range(1, len(columns) + 1))
            lines.extend(repr(row) for row in conn.execute('SELECT * FROM "%s" ORDER BY %s' % (table, order)))
        lines.extend(r[0] for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname"))
    return lines


def _pg_digest(url):
    lines = dump(url)
    if not lines:
        return None
    return hashlib.sha256('\n'.join(lines).encode()).hexdigest()


def db_exists(db):
    """SQLite: the file exists; PostgreSQL: the database holds a table."""
    if is_postgresql(db):
        with _pg_connect(db) as conn:
            return bool(_tables(conn))
    return os.path.exists(db)


def created_nothing(db):
    """No state DB was made: SQLite, not even its directory; PostgreSQL, no table."""
    if is_postgresql(db):
        return not db_exists(db)
    return not os.path.exists(os.path.dirname(db))


def query(db, sql, params=()):
    """Rows as dicts; `?` placeholders on either database."""
    if is_postgresql(db):
        from psycopg.rows import dict_row
        with _pg_connect(db, row_factory=dict_row) as conn:
            return conn.execute(sql.replace('?', '%s'), params).fetchall()
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def execute(db, sql, params=()):
    """Run one statement and commit; `?` placeholders on either database."""
    if is_postgresql(db):
        with _pg_connect(db) as conn:
            conn.execute(sql.replace('?', '%s'), params)
        return
    conn = sqlite3.connect(db)
    try:
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


@contextlib.contextmanager
def hold_write_lock(db):
    """Hold the lock every writer takes first (SQLite: BEGIN IMMEDIATE; PostgreSQL: the state store's advisory
    lock, in a transaction) until the block ends."""
    if is_postgresql(db):
        from ansible_collections.proxmox_manager.core.plugins.module_utils.state_store import ADVISORY_LOCK_KEY
        with _pg_connect(db) as conn:
            conn.execute('SELECT pg_advisory_xact_lock(%s)', (ADVISORY_LOCK_KEY,))
            try:
                yield conn
            finally:
                conn.rollback()
        return
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute('BEGIN IMMEDIATE')
    try:
        yield holder
    finally:
        holder.execute('ROLLBACK')
        holder.close()
