# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state DB's tables (SQLAlchemy), how to tell its version, and the upgrade of older layouts.

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
        sa.Column('cluster', sa.String(64), nullable=False),
        sa.Column('name', sa.String(253), nullable=False, index=True),
        sa.Column('vmid', sa.Integer, nullable=True),
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
        # A vmid is unique within its cluster only.
        sa.UniqueConstraint('cluster', 'vmid', name='ux_servers_cluster_vmid'),
    )
    # One row per name and cluster while no vmid is known (declared, not created yet). Plain DDL, the same on
    # SQLite and PostgreSQL: a postgresql_where= index option would import that dialect (~25 ms) on every run.
    event.listen(servers, 'after_create', sa.DDL(
        'CREATE UNIQUE INDEX ux_servers_name_no_vmid ON servers (cluster, name) WHERE vmid IS NULL'
    ).execute_if(dialect=('sqlite', 'postgresql')))
    datastores = sa.Table(
        'datastores', metadata,
        sa.Column('cluster', sa.String(64), primary_key=True),
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
        sa.Column('cluster', sa.String(64)),
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


def upgrade(conn, where, owner=None):
    """Bring the DB to SCHEMA_VERSION (creating it when empty), inside the caller's write transaction.

    An older DB knew one cluster: its servers and datastores become the rows of the cluster
    `owner` names ({cluster, view}: the writer's cluster and the recorded view name of its
    connection). When the DB recorded views of other connections but not this one, the
    upgrade is refused: the rows would be given to the wrong cluster.
    """
    found = checked_version(conn, where)
    if found == SCHEMA_VERSION:
        return
    if found is not None:
        _upgrade_rows(conn, where, found, owner or {})
    metadata.create_all(conn, checkfirst=True)
    conn.execute(meta_table.delete().where(meta_table.c.key == 'schema_version'))
    conn.execute(meta_table.insert().values(key='schema_version', value=str(SCHEMA_VERSION)))


def old_rows(conn, table, owner, where='(the state DB)'):
    """The rows of `table` (servers or datastores) of an older DB as its upgrade will keep them for `owner`;
    [] for any other DB. Refused, in upgrade()'s words, when the upgrade would be (check mode says so too)."""
    found = version(conn, where)
    if found is None or found == SCHEMA_VERSION:
        return []
    inspector = sa.inspect(conn)
    _refuse_foreign(conn, inspector, where, found, owner or {})
    return _owned_rows(conn, inspector, table, owner['cluster'])


def _default_sql(column, dialect):
    default = column.server_default
    if default is None:
        return ''
    arg = default.arg
    return ' DEFAULT %s' % (arg.compile(dialect=dialect) if hasattr(arg, 'compile') else "'%s'" % arg)


def _rows(conn, inspector, table):
    """The rows of an older `table`, with the columns it shares with today's (the others left to their defaults)."""
    if table.name not in inspector.get_table_names():
        return []
    old_cols = set(c['name'] for c in inspector.get_columns(table.name))
    keep = [c.name for c in table.columns if c.name in old_cols]
    # Selected through today's column types, so SQLite's datetime text comes back as datetimes.
    return [dict(r._mapping) for r in conn.execute(sa.select(*[table.c[name] for name in keep]))]


def _owned_rows(conn, inspector, table, cluster):
    """The rows of an older `table` in today's shape, as rows of `cluster`."""
    rows = _rows(conn, inspector, table)
    now = utcnow()
    for row in rows:
        row['cluster'] = cluster
        if table is servers:
            for col in servers.columns:
                row.setdefault(col.name, None)
            if row['present'] is None:  # v1 had no such column: every server it knew was there
                row['present'] = True
            row['created_at'] = row['created_at'] or now
            row['updated_at'] = row['updated_at'] or now
    return rows


def _refuse_foreign(conn, inspector, where, found, owner):
    """Raise when the rows of an older DB cannot go to `owner`'s cluster."""
    if not set(inspector.get_table_names()) & set(['servers', 'datastores']):
        return
    problem = None
    recorded = []
    if snapshots.name in inspector.get_table_names():
        recorded = sorted(r[0] for r in conn.execute(sa.select(snapshots.c.name)))
    if not owner.get('cluster'):
        problem = ('it knew one cluster, and this writer does not know which cluster it is: run a module that '
                   'connects to Proxmox first')
    elif recorded and owner.get('view') not in recorded:
        problem = ('its servers were recorded from %s, not from this connection (%s, cluster %s): run the first '
                   'write against that cluster, so that its rows keep their cluster'
                   % (', '.join(name.split('@', 1)[-1] for name in recorded),
                      (owner.get('view') or '?').split('@', 1)[-1], owner['cluster']))
    if problem:
        raise StateStoreError('Cannot upgrade the state DB %s (schema v%s) to v%s: %s.'
                              % (where, found, SCHEMA_VERSION, problem))


def _upgrade_rows(conn, where, found, owner):
    """An older DB -> today's: servers and datastores rebuilt as rows of the owner's cluster."""
    inspector = sa.inspect(conn)
    tables = set(inspector.get_table_names())
    _refuse_foreign(conn, inspector, where, found, owner)
    server_rows = _owned_rows(conn, inspector, servers, owner.get('cluster'))
    store_rows = _owned_rows(conn, inspector, datastores, owner.get('cluster'))
    # v1 made names unique, v2 vmids; both keys now include the cluster, so the tables are rebuilt.
    for table in (servers, datastores):
        if table.name in tables:
            conn.exec_driver_sql('DROP TABLE %s' % table.name)
        table.create(conn)
    if server_rows:
        conn.execute(servers.insert(), server_rows)
        if conn.dialect.name == 'postgresql':
            # The rows keep their ids, which PostgreSQL's id sequence does not see: move it past them,
            # or the next new server gets id 1 again (duplicate key).
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('servers', 'id'), MAX(id)) FROM servers")
    if store_rows:
        conn.execute(datastores.insert(), store_rows)
    if change_log.name in tables:
        have = set(c['name'] for c in inspector.get_columns(change_log.name))
        for column in change_log.columns:
            if column.name not in have:
                conn.exec_driver_sql('ALTER TABLE %s ADD COLUMN %s %s%s' % (
                    change_log.name, column.name, column.type.compile(dialect=conn.dialect),
                    _default_sql(column, conn.dialect)))
