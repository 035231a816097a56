# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the inventory keeps in the state DB: the recorded view of each cluster, and the applied roles.

The recorded view is the last merged view the inventory built for a cluster, kept
under the name of the cluster's connection (state_db.view_name): the offline
fallback serves it, and the next build remembers from it which guest agents were
off and each guest's last known status. A SQLite state DB of the
current layout is read and written here with the standard library's sqlite3:
importing SQLAlchemy costs 0.4-0.5 s, more than a 500-guest parse spends on
anything else. Any other database URL goes through the state store (SQLAlchemy).

The inventory never creates, upgrades or otherwise changes the state DB beyond
its recorded view: it records only into an existing state DB of the current
layout, which the modules create (server_sync, server_role, datastore_refresh,
datastore_default) and upgrade. Without one, nothing is recorded and there is
no offline fallback. A view is written only when it differs from the one
stored (compared in SQL, one indexed lookup), so its `taken_at` is when the
view last changed; a parse whose view is unchanged writes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import datetime
import json
import os
import sqlite3
from collections import namedtuple
from urllib.parse import quote

from ansible_collections.proxmox_manager.core.plugins.module_utils import state_db

RecordedView = namedtuple('RecordedView', 'taken_at records')
NOTHING_RECORDED = RecordedView(None, None)

# The datetime text SQLAlchemy stores on SQLite, so either side reads what the other wrote.
_SQLITE_DATETIME = '%Y-%m-%d %H:%M:%S.%f'


def last_view(option, name):
    """The RecordedView kept as `name` in the state DB, or NOTHING_RECORDED. Never creates the DB."""
    with _sqlite(option, 'read') as conn:
        if conn is None:
            with _store(option) as store:
                taken_at, records = store.load_snapshot(name)
            return RecordedView(taken_at, records)
        if conn is False:
            return NOTHING_RECORDED
        row = conn.execute('SELECT taken_at, payload FROM view_snapshots WHERE name = ?', (name,)).fetchone()
    if row is None:
        return NOTHING_RECORDED
    return RecordedView(datetime.datetime.fromisoformat(row[0]), json.loads(row[1]))


def applied_roles(option):
    """({(cluster, vmid, or name for a server without one): role}, older): the roles the state DB gives.

    `older` is the schema version of a state DB of an older layout (1 or 2), which shows
    no roles until a module that writes to it upgrades it; else None.
    """
    with _sqlite(option, 'read') as conn:
        if conn is None:
            with _store(option) as store:
                roles = store.applied_roles()
                found = None if roles else store.schema_version()
            return roles, (found if found is not None and found < state_db.SCHEMA_VERSION else None)
        if conn is False:
            return {}, None
        rows = conn.execute("SELECT cluster, vmid, name, role FROM servers WHERE role IS NOT NULL AND role != ''")
        return state_db.roles_by_server(rows.fetchall()), None


def record(option, name, records):
    """Keep `records` (dicts) as the view `name` when they differ from the stored view; True when written.

    Only into an existing state DB of the current layout: without one (no file, an
    empty file, an old layout) nothing is written and False is returned.
    """
    payload = json.dumps(records)
    with _sqlite(option, 'write') as conn:
        if conn is False:
            return False  # no state DB: the modules create it
        if conn is not None:
            return _write_if_changed(conn, name, payload)
        if state_db.sqlite_path(state_db.db_url(option)) is not None:
            return False  # a SQLite DB of another layout: the next module write upgrades it
    with _store(option) as store:
        with store.writing(create=False) as conn:
            return conn is not None and store.save_snapshot(conn, name, payload)


def _write_if_changed(conn, name, payload):
    # The stored text is compared in SQLite, without reading it into Python; a write takes the lock only then.
    same = conn.execute('SELECT 1 FROM view_snapshots WHERE name = ? AND payload = ?', (name, payload)).fetchone()
    if same is not None:
        return False
    conn.execute('BEGIN IMMEDIATE')
    conn.execute('DELETE FROM view_snapshots WHERE name = ?', (name,))
    conn.execute('INSERT INTO view_snapshots (name, taken_at, payload) VALUES (?, ?, ?)',
                 (name, state_db.utcnow().strftime(_SQLITE_DATETIME), payload))
    conn.execute('COMMIT')
    return True


@contextlib.contextmanager
def _sqlite(option, action):
    """A sqlite3 connection to a SQLite state DB of the current layout.

    Yields False for a SQLite file that does not exist, and None when the state
    store must do the work: another database, or a DB of another layout (it
    upgrades an old one and refuses a newer one).
    """
    path = state_db.sqlite_path(state_db.db_url(option))
    if path is not None and not os.path.exists(path):
        yield False
        return
    if path is None:
        yield None
        return
    state_db.check_not_a_directory(path, action)
    try:
        # mode=rw: never create the file, even if it vanished since the check above.
        conn = sqlite3.connect('file:%s?mode=rw' % quote(path), uri=True, isolation_level=None,
                               timeout=state_db.busy_timeout())
        try:
            yield conn if _layout_is_current(conn) else None
        finally:
            conn.close()  # rolls back a transaction an error left open
    except sqlite3.Error as exc:
        raise state_db.error(action, path, str(exc)) from None


def _layout_is_current(conn):
    tables = set(row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    if 'pm_meta' not in tables:
        return False
    row = conn.execute("SELECT value FROM pm_meta WHERE key = 'schema_version'").fetchone()
    return row is not None and row[0] == str(state_db.SCHEMA_VERSION)


@contextlib.contextmanager
def _store(option):
    """The state store for another database or layout, its connections closed after use (even on an error)."""
    from ansible_collections.proxmox_manager.core.plugins.module_utils.state_store import StateStore

    store = StateStore(option)
    try:
        yield store
    finally:
        store.close()
