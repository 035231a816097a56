# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state store: what was applied, in SQLAlchemy (SQLite by default).

It never decides whether a server exists (the merged view does); it records
roles, the last seen facts of each server, the datastore cache and a change
log. Writers take the database lock up front (BEGIN IMMEDIATE on SQLite, an
advisory lock on PostgreSQL), so concurrent runs serialise instead of losing
updates; readers never write, and never create the file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import datetime
import getpass
import json
import os

from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import StateStoreError

try:
    import sqlalchemy as sa
    from sqlalchemy import event
    from sqlalchemy.exc import SQLAlchemyError

    HAS_SQLALCHEMY = True
    SQLALCHEMY_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the callers
    HAS_SQLALCHEMY = False
    SQLALCHEMY_IMPORT_ERROR = exc
    SQLAlchemyError = Exception

DEFAULT_DB = os.path.join('state', 'proxmox_manager.db')
DB_ENV = 'PROXMOX_MANAGER_DB'
# 1: the original Flask app's DB (servers.name unique, no change log).
# 2: this collection's first layout.
SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 60
BUSY_TIMEOUT_ENV = 'PROXMOX_MANAGER_DB_TIMEOUT'
_TARGETED_MAX = 500
# Columns a sync may refresh; None never overwrites a known value.
SERVER_FACTS = ('vmid', 'node', 'type', 'status', 'ip_address', 'cpu', 'memory', 'os_type', 'source')

if HAS_SQLALCHEMY:
    metadata = sa.MetaData()
    meta_table = sa.Table(
        'pm_meta', metadata,
        sa.Column('key', sa.String(64), primary_key=True),
        sa.Column('value', sa.Text, nullable=False),
    )
    servers = sa.Table(
        'servers', metadata,
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('name', sa.String(253), nullable=False, index=True),
        sa.Column('vmid', sa.Integer, nullable=True, unique=True),
        sa.Column('node', sa.String(64)),
        sa.Column('type', sa.String(8)),
        sa.Column('status', sa.String(32)),
        sa.Column('ip_address', sa.String(64)),
        sa.Column('role', sa.String(64)),
        sa.Column('cpu', sa.Integer),
        sa.Column('memory', sa.Integer),
        sa.Column('os_type', sa.String(64)),
        sa.Column('source', sa.String(16)),
        sa.Column('present', sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column('absent_since', sa.DateTime),
        sa.Column('created_at', sa.DateTime, nullable=False),
        sa.Column('updated_at', sa.DateTime, nullable=False),
    )
    # One row per name while no vmid is known (declared, not created yet). Plain DDL, the same on
    # SQLite and PostgreSQL: a postgresql_where= index option would import that dialect (~25 ms) on every run.
    event.listen(servers, 'after_create', sa.DDL(
        'CREATE UNIQUE INDEX ux_servers_name_no_vmid ON servers (name) WHERE vmid IS NULL'
    ).execute_if(dialect=('sqlite', 'postgresql')))
    datastores = sa.Table(
        'datastores', metadata,
        sa.Column('id', sa.String(100), primary_key=True),
        sa.Column('name', sa.String(100), nullable=False),
        sa.Column('type', sa.String(50), nullable=False),
        sa.Column('size', sa.BigInteger, server_default='0'),
        sa.Column('used', sa.BigInteger, server_default='0'),
        sa.Column('available', sa.BigInteger, server_default='0'),
        sa.Column('content', sa.Text),
        sa.Column('enabled', sa.Boolean, server_default=sa.true()),
        sa.Column('shared', sa.Boolean, server_default=sa.false()),
        sa.Column('nodes', sa.Text),
        sa.Column('is_default_hdd', sa.Boolean, server_default=sa.false()),
        sa.Column('is_default_ssd', sa.Boolean, server_default=sa.false()),
        sa.Column('is_system_default', sa.Boolean, server_default=sa.false()),
        sa.Column('created_at', sa.DateTime),
        sa.Column('updated_at', sa.DateTime),
    )
    change_log = sa.Table(
        'change_log', metadata,
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('at', sa.DateTime, nullable=False),
        sa.Column('entity', sa.String(16), nullable=False),
        sa.Column('key', sa.String(253), nullable=False),
        sa.Column('field', sa.String(64), nullable=False),
        sa.Column('old', sa.Text),
        sa.Column('new', sa.Text),
        sa.Column('actor', sa.String(128)),
        sa.Column('git_commit', sa.String(64)),
        sa.Column('tool', sa.String(64)),
    )
    snapshots = sa.Table(
        'view_snapshots', metadata,
        sa.Column('name', sa.String(64), primary_key=True),
        sa.Column('taken_at', sa.DateTime, nullable=False),
        sa.Column('payload', sa.Text, nullable=False),
    )


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def db_url(option=None):
    """A SQLAlchemy URL from the option, $PROXMOX_MANAGER_DB or the default path."""
    value = option or os.environ.get(DB_ENV) or DEFAULT_DB
    if '://' in value:
        return value
    return 'sqlite:///%s' % os.path.abspath(os.path.expanduser(value))


def sqlite_path(url):
    """The file behind a sqlite URL, or None for other databases."""
    if url.startswith('sqlite:///'):
        return url[len('sqlite:///'):].split('?', 1)[0] or None
    return None


_CONTEXT = {}


def _git_commit():
    if 'commit' not in _CONTEXT:
        _CONTEXT['commit'] = _find_git_commit()
    return _CONTEXT['commit']


def _find_git_commit():
    """The commit being applied: CI variables, else .git/HEAD of the working directory."""
    for var in ('GITHUB_SHA', 'CI_COMMIT_SHA', 'GIT_COMMIT'):
        if os.environ.get(var):
            return os.environ[var][:64]
    try:
        with open(os.path.join('.git', 'HEAD')) as handle:
            head = handle.read().strip()
        if not head.startswith('ref: '):
            return head[:64] or None
        ref = head[5:]
        ref_file = os.path.join('.git', *ref.split('/'))
        if os.path.exists(ref_file):
            with open(ref_file) as handle:
                return handle.read().strip()[:64] or None
        with open(os.path.join('.git', 'packed-refs')) as handle:
            for line in handle:
                if line.rstrip().endswith(' ' + ref):
                    return line.split(' ', 1)[0][:64]
    except OSError:
        pass
    return None


def _actor():
    for var in ('GITHUB_ACTOR', 'GITLAB_USER_LOGIN'):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


class StateStore:
    """One state DB. Use `reading()` and `writing()` for transactions."""

    def __init__(self, option=None):
        if not HAS_SQLALCHEMY:
            raise StateStoreError('The Python library SQLAlchemy (2.x) is required: %s' % SQLALCHEMY_IMPORT_ERROR)
        self.url = db_url(option)
        self.path = sqlite_path(self.url)
        # How long a writer waits for another run's transaction before giving up.
        self.busy_timeout = int(os.environ.get(BUSY_TIMEOUT_ENV) or BUSY_TIMEOUT_S)
        self._engine = None
        self._wal_on = False
        self._upgraded = False

    @property
    def exists(self):
        """False for a SQLite file not created yet (readers then see nothing)."""
        return self.path is None or os.path.exists(self.path)

    @property
    def engine(self):
        if self._engine is None:
            self._engine = self._make_engine()
        return self._engine

    def _make_engine(self):
        if self.path is None:
            return sa.create_engine(self.url, pool_pre_ping=True)
        engine = sa.create_engine(self.url, connect_args={'timeout': self.busy_timeout})

        @event.listens_for(engine, 'connect')
        def _on_connect(dbapi_conn, _record):
            # Let SQLAlchemy's begin event issue BEGIN, so writers can ask for IMMEDIATE.
            dbapi_conn.isolation_level = None
            dbapi_conn.execute('PRAGMA busy_timeout=%d' % (self.busy_timeout * 1000))

        @event.listens_for(engine, 'begin')
        def _on_begin(conn):
            immediate = conn.get_execution_options().get('pm_write')
            conn.exec_driver_sql('BEGIN IMMEDIATE' if immediate else 'BEGIN')

        return engine

    def _error(self, action, exc):
        text = str(getattr(exc, 'orig', None) or exc).split('\n', 1)[0]
        hint = ''
        if 'locked' in text or 'busy' in text:
            hint = ' Another run held the database for more than %ss (%s).' % (self.busy_timeout, BUSY_TIMEOUT_ENV)
        return StateStoreError('Cannot %s the state DB %s: %s.%s' % (action, self.display_url, text, hint))

    @property
    def display_url(self):
        """The URL without a password, for messages."""
        if self.path:
            return self.path
        try:
            return sa.engine.make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - a bad URL fails later with its own message
            return '(database URL)'

    @contextlib.contextmanager
    def reading(self):
        """A read transaction; yields None when the DB does not exist yet."""
        if not self.exists:
            yield None
            return
        try:
            with self.engine.connect() as conn:
                with conn.begin():
                    version = self._checked_version(conn)
                    yield conn if version == SCHEMA_VERSION else None
        except SQLAlchemyError as exc:
            raise self._error('read', exc) from None

    @contextlib.contextmanager
    def writing(self):
        """A write transaction holding the DB lock; creates or upgrades the DB first."""
        if self.path:
            directory = os.path.dirname(self.path)
            if directory and not os.path.isdir(directory):
                os.makedirs(directory)
        try:
            if self.path and not self._wal_on:
                self._enable_wal()
            with self.engine.connect().execution_options(pm_write=True) as conn:
                with conn.begin():
                    if self.path is None:
                        conn.execute(sa.text('SELECT pg_advisory_xact_lock(7243001)'))
                    if not self._upgraded:
                        self._upgrade(conn)
                    yield conn
            self._upgraded = True
        except SQLAlchemyError as exc:
            raise self._error('write', exc) from None

    def _enable_wal(self):
        # Outside any transaction (SQLite refuses it inside one); persists in the file.
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.execute('PRAGMA journal_mode=WAL')
        finally:
            raw.close()
        self._wal_on = True

    # -- schema -------------------------------------------------------------

    @staticmethod
    def _version(conn):
        tables = set(sa.inspect(conn).get_table_names())
        if 'pm_meta' in tables:
            value = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == 'schema_version')).scalar()
            return int(value) if value else None
        if 'servers' in tables or 'datastores' in tables:
            return 1
        return None

    def _checked_version(self, conn):
        """The schema version, refusing a DB made by a newer collection."""
        version = self._version(conn)
        if version is not None and version > SCHEMA_VERSION:
            raise StateStoreError(
                'The state DB %s has schema v%s, newer than this collection knows (v%s): '
                'upgrade proxmox_manager.core.' % (self.display_url, version, SCHEMA_VERSION))
        return version

    def _upgrade(self, conn):
        version = self._checked_version(conn)
        if version == SCHEMA_VERSION:
            return
        if version == 1:
            _upgrade_v1(conn)
        metadata.create_all(conn, checkfirst=True)
        conn.execute(meta_table.delete().where(meta_table.c.key == 'schema_version'))
        conn.execute(meta_table.insert().values(key='schema_version', value=str(SCHEMA_VERSION)))

    def schema_version(self):
        with self.reading() as conn:
            if conn is None:
                return self._version_of_old_file()
            return SCHEMA_VERSION

    def _version_of_old_file(self):
        if not self.exists:
            return None
        with self.engine.connect() as conn:
            return self._version(conn)

    # -- servers ------------------------------------------------------------

    def servers(self, conn=None, rows=None):
        """Server rows as dicts (empty when there is no DB yet).

        With `rows`, only those that could match them (small upserts stay
        cheap on a big table); else every row.
        """
        if conn is None:
            with self.reading() as conn2:
                return [] if conn2 is None else self.servers(conn2, rows)
        query = sa.select(servers).order_by(servers.c.name, servers.c.vmid)
        if rows is not None and len(rows) <= _TARGETED_MAX:
            vmids = [r['vmid'] for r in rows if r.get('vmid') is not None]
            names = [r['name'] for r in rows]
            query = query.where(sa.or_(servers.c.vmid.in_(vmids),
                                       sa.and_(servers.c.vmid.is_(None), servers.c.name.in_(names))))
        return [dict(r._mapping) for r in conn.execute(query)]

    def applied_roles(self):
        """{vmid, or name for a server without one: role} of the servers that have a role."""
        return dict((row['vmid'] if row['vmid'] is not None else row['name'], row['role'])
                    for row in self.servers() if row['role'])

    def upsert_servers(self, conn, rows, tool, roles=True, mark_missing=False):
        """Apply plan_servers() in the caller's write transaction; returns the plan."""
        plan = plan_servers(self.servers(conn, None if mark_missing else rows), rows, roles=roles,
                            mark_missing=mark_missing)
        _insert_many(conn, servers, plan.inserts)
        _update_many(conn, servers, plan.updates)
        self.log_changes(conn, plan.log, tool)
        return plan

    def preview_servers(self, rows, roles=True, mark_missing=False):
        """The same plan, computed read-only (check mode)."""
        existing = self.servers(rows=None if mark_missing else rows)
        if not existing:
            # A v1 DB reads as empty, but the write will upgrade it first: plan on its rows.
            existing = self._v1_servers()
        return plan_servers(existing, rows, roles=roles, mark_missing=mark_missing)

    def _v1_servers(self):
        """The rows of a v1 DB as the upgrade will keep them; [] for any other DB."""
        if not self.exists:
            return []
        try:
            with self.engine.connect() as conn:
                if self._version(conn) != 1:
                    return []
                return _v1_server_rows(conn, sa.inspect(conn), utcnow())
        except SQLAlchemyError as exc:
            raise self._error('read', exc) from None

    def log_changes(self, conn, entries, tool):
        if not entries:
            return
        now, actor, commit = utcnow(), _actor(), _git_commit()
        _insert_many(conn, change_log, [dict(e, at=now, actor=actor, git_commit=commit, tool=tool)
                                        for e in entries])

    def changes(self, limit=100):
        with self.reading() as conn:
            if conn is None:
                return []
            query = sa.select(change_log).order_by(change_log.c.id.desc()).limit(limit)
            return [dict(r._mapping) for r in conn.execute(query)]

    # -- the last merged view (inventory fallback) --------------------------

    def save_snapshot(self, conn, name, payload):
        conn.execute(snapshots.delete().where(snapshots.c.name == name))
        conn.execute(snapshots.insert().values(name=name, taken_at=utcnow(), payload=json.dumps(payload)))

    def load_snapshot(self, name):
        """(taken_at, payload) of the last saved view, or (None, None)."""
        with self.reading() as conn:
            if conn is None:
                return None, None
            row = conn.execute(sa.select(snapshots).where(snapshots.c.name == name)).first()
            return (row.taken_at, json.loads(row.payload)) if row else (None, None)

    # -- backup -------------------------------------------------------------

    def backup(self, directory=None):
        """A consistent copy (SQLite online backup API); returns its path."""
        if self.path is None:
            raise StateStoreError('state backup copies SQLite files only; back %s up with its own tools '
                                  '(pg_dump for PostgreSQL).' % self.display_url)
        if not self.exists:
            raise StateStoreError('There is no state DB at %s to back up yet.' % self.path)
        import sqlite3  # only needed here

        directory = directory or os.path.join(os.path.dirname(self.path), 'backups')
        if not os.path.isdir(directory):
            os.makedirs(directory)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')
        base = os.path.splitext(os.path.basename(self.path))[0]
        dest = os.path.join(directory, '%s-%s.db' % (base, stamp))
        tmp = dest + '.part'
        src = sqlite3.connect(self.path, timeout=self.busy_timeout)
        try:
            out = sqlite3.connect(tmp)
            try:
                src.backup(out)
            finally:
                out.close()
        except sqlite3.Error as exc:
            raise StateStoreError('Cannot back up %s: %s' % (self.path, exc)) from None
        finally:
            src.close()
        os.replace(tmp, dest)
        return dest


class ServerPlan:
    """What an upsert will do: per-row results, the SQL rows, the change log.

    results: [(key, old_row or None, {field: new_value})] in input order;
    absent: rows that mark_missing will mark absent.
    """

    def __init__(self):
        self.results, self.inserts, self.updates, self.log, self.absent = [], [], [], [], []

    @property
    def changed(self):
        return bool(self.inserts or self.updates)


def plan_servers(existing, rows, roles=True, mark_missing=False):
    """Match each row to a stored server and say what changes. Pure.

    Each row: name, optional vmid and facts (SERVER_FACTS), and `role` when
    roles=True ('' or None removes it). Rows match by vmid, else by a
    vmid-less row of the same name (a declared server that got created).
    A fact given as None never blanks a stored one. With mark_missing,
    stored servers no row matched are marked absent, never deleted.
    """
    now = utcnow()
    plan = ServerPlan()
    by_vmid = dict((r['vmid'], r) for r in existing if r['vmid'] is not None)
    by_name = dict((r['name'], r) for r in existing if r['vmid'] is None)
    matched = set()
    for row in rows:
        vmid = row.get('vmid')
        old = by_vmid.get(vmid) if vmid is not None else None
        if old is None:
            old = by_name.get(row['name'])
            if old is not None and vmid is not None:
                by_name.pop(row['name'])
        changes = {}
        for field in SERVER_FACTS + (('role',) if roles and 'role' in row else ()):
            value = row.get(field)
            if field == 'role':
                value = value or None
                if row.get('only_if_role') and (old or {}).get('role') != row['only_if_role']:
                    continue
            elif value is None:
                continue
            if (old.get(field) if old is not None else None) != value:
                changes[field] = value
        if old is not None:
            matched.add(old.get('id'))
            if old['name'] != row['name']:
                changes['name'] = row['name']
            if not old['present']:
                changes.update(present=True, absent_since=None)
        key = server_key(row)
        before = dict(old) if old is not None else None
        plan.results.append((key, before, changes))
        if before is None:
            # A new row is one `created` entry (its facts are in the row), plus its role.
            plan.log.append(dict(entity='server', key=key, field='created', old=None, new=row.get('source')))
            if changes.get('role'):
                plan.log.append(dict(entity='server', key=key, field='role', old=None, new=changes['role']))
        else:
            for field, value in changes.items():
                if field not in ('present', 'absent_since'):
                    plan.log.append(dict(entity='server', key=key, field=field, new=_text(value),
                                         old=_text(before.get(field))))
        if old is None:
            new = dict((col, None) for col in ('vmid',) + SERVER_FACTS + ('role', 'absent_since'))
            new.update(changes, name=row['name'], present=True, created_at=now, updated_at=now)
            plan.inserts.append(new)
            if new['vmid'] is not None:
                by_vmid[new['vmid']] = new
            else:
                by_name[new['name']] = new
        elif changes:
            if 'id' in old:  # else it is an insert of this same plan
                plan.updates.append(dict(changes, _id=old['id'], updated_at=now))
            old.update(changes)
    if mark_missing:
        for row in existing:
            if row['id'] not in matched and row['present']:
                plan.absent.append(dict(row))
                plan.updates.append(dict(_id=row['id'], present=False, absent_since=now, updated_at=now))
                plan.log.append(dict(entity='server', key=server_key(row), field='present', old='true', new='false'))
    return plan


def server_key(row):
    return row['name'] if row.get('vmid') is None else '%s (vmid %s)' % (row['name'], row['vmid'])


def _text(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def _insert_many(conn, table, rows):
    """INSERT rows as one driver-level executemany.

    SQLAlchemy's own executemany processes every row's parameters in Python, which costs
    more than SQLite's work for 10,000 rows; here the statement is compiled once for the
    dialect and each value goes through its column type's bind processor only.
    """
    if not rows:
        return
    cols = sorted(set().union(*rows))
    dialect = conn.dialect
    compiled = table.insert().compile(dialect=dialect, column_keys=cols)
    order = list(compiled.positiontup) if compiled.positional else cols
    convert = []
    for i, col in enumerate(order):
        process = table.c[col].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            convert.append((i, process, {}))  # memo: a batch repeats its timestamps
    params = []
    for row in rows:
        values = list(map(row.get, order))
        for i, process, memo in convert:
            v = values[i]
            if v is not None:
                try:
                    values[i] = memo[v]
                except KeyError:
                    values[i] = memo[v] = process(v)
        params.append(tuple(values) if compiled.positional else dict(zip(order, values)))
    conn.exec_driver_sql(compiled.string, params)


def _update_many(conn, table, updates):
    """UPDATE ... WHERE id = :_id as one executemany per set of columns."""
    groups = {}
    for item in updates:
        groups.setdefault(tuple(sorted(k for k in item if k != '_id')), []).append(item)
    for cols, items in groups.items():
        stmt = table.update().where(table.c.id == sa.bindparam('_id')).values(
            dict((c, sa.bindparam(c)) for c in cols))
        conn.execute(stmt, items)


def _default_sql(column, dialect):
    default = column.server_default
    if default is None:
        return ''
    arg = default.arg
    return ' DEFAULT %s' % (arg.compile(dialect=dialect) if hasattr(arg, 'compile') else "'%s'" % arg)


def _v1_server_rows(conn, inspector, now):
    """The servers of a v1 DB in the v2 shape (what the upgrade writes back)."""
    if 'servers' not in inspector.get_table_names():
        return []
    old_cols = set(c['name'] for c in inspector.get_columns('servers'))
    keep = [c.name for c in servers.columns if c.name in old_cols]
    rows = [dict(r._mapping) for r in conn.execute(sa.text('SELECT %s FROM servers' % ', '.join(keep)))]
    for row in rows:
        for col in servers.columns:
            row.setdefault(col.name, None)
        row['present'] = True
        row['created_at'] = row['created_at'] or now
        row['updated_at'] = row['updated_at'] or now
    return rows


def _upgrade_v1(conn):
    """v1 (the original app's DB) -> v2: rebuild servers, add the new columns."""
    inspector = sa.inspect(conn)
    tables = set(inspector.get_table_names())
    now = utcnow()
    if 'servers' in tables:
        # v1 made names unique; guest names are not, so the table is rebuilt.
        rows = _v1_server_rows(conn, inspector, now)
        conn.exec_driver_sql('DROP TABLE servers')
        servers.create(conn)
        if rows:
            conn.execute(servers.insert(), rows)
    if 'datastores' in tables:
        have = set(c['name'] for c in inspector.get_columns('datastores'))
        for column in datastores.columns:
            if column.name not in have:
                conn.exec_driver_sql('ALTER TABLE datastores ADD COLUMN %s %s%s' % (
                    column.name, column.type.compile(dialect=conn.dialect), _default_sql(column, conn.dialect)))
