# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state DB's tables (SQLAlchemy), how to tell its version, and the v1 -> v2 upgrade.

Every function here works inside a transaction the caller holds; none opens one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import StateStoreError
from ansible_collections.proxmox_manager.core.plugins.module_utils.state_db import SCHEMA_VERSION, error, utcnow

try:
    import sqlalchemy as sa
    from sqlalchemy import event

    HAS_SQLALCHEMY = True
    SQLALCHEMY_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the callers
    HAS_SQLALCHEMY = False
    SQLALCHEMY_IMPORT_ERROR = exc

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


def version(conn, where='(the state DB)'):
    """The schema version of the DB behind conn: None when empty, 1 for the original app's DB.

    A schema_version that is not a number is refused (StateStoreError naming `where`), never guessed.
    """
    tables = set(sa.inspect(conn).get_table_names())
    if 'pm_meta' in tables:
        value = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == 'schema_version')).scalar()
        if not value:
            return None
        try:
            return int(value)
        except ValueError:
            raise error('read', where, 'its pm_meta table holds schema_version %r, not a version number; the DB '
                                       'is damaged or was not made by this collection' % value) from None
    if 'servers' in tables or 'datastores' in tables:
        return 1
    return None


def checked_version(conn, where):
    """version(), refusing a DB made by a newer collection; `where` names the DB in the message."""
    found = version(conn, where)
    if found is not None and found > SCHEMA_VERSION:
        raise StateStoreError(
            'The state DB %s has schema v%s, newer than this collection knows (v%s): '
            'upgrade proxmox_manager.core.' % (where, found, SCHEMA_VERSION))
    return found


def upgrade(conn, where):
    """Bring the DB to SCHEMA_VERSION (creating it when empty), inside the caller's write transaction."""
    found = checked_version(conn, where)
    if found == SCHEMA_VERSION:
        return
    if found == 1:
        _upgrade_v1(conn)
    metadata.create_all(conn, checkfirst=True)
    conn.execute(meta_table.delete().where(meta_table.c.key == 'schema_version'))
    conn.execute(meta_table.insert().values(key='schema_version', value=str(SCHEMA_VERSION)))


def v1_servers(conn, where='(the state DB)'):
    """The servers of a v1 DB as the upgrade will keep them; [] for any other DB."""
    if version(conn, where) != 1:
        return []
    return _v1_server_rows(conn, sa.inspect(conn), utcnow())


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
            if conn.dialect.name == 'postgresql':
                # The rows keep their ids, which PostgreSQL's id sequence does not see: move it past them,
                # or the next new server gets id 1 again (duplicate key).
                conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('servers', 'id'), MAX(id)) FROM servers")
    if 'datastores' in tables:
        have = set(c['name'] for c in inspector.get_columns('datastores'))
        for column in datastores.columns:
            if column.name not in have:
                conn.exec_driver_sql('ALTER TABLE datastores ADD COLUMN %s %s%s' % (
                    column.name, column.type.compile(dialect=conn.dialect), _default_sql(column, conn.dialect)))
