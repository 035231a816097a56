# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the state DB lives and which layout it has, without importing any database library.

The inventory reads a SQLite state DB with the standard library, and importing
SQLAlchemy costs about 0.4 s; this is what both sides need to agree on.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os

from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import StateStoreError

DEFAULT_DB = os.path.join('state', 'proxmox_manager.db')
DB_ENV = 'PROXMOX_MANAGER_DB'
# 1: the original Flask app's DB (servers.name unique, no change log).
# 2: this collection's first layout.
SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 60
BUSY_TIMEOUT_ENV = 'PROXMOX_MANAGER_DB_TIMEOUT'


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


def busy_timeout():
    """Seconds a writer waits for another run's transaction before giving up."""
    return int(os.environ.get(BUSY_TIMEOUT_ENV) or BUSY_TIMEOUT_S)


def utcnow():
    """Naive UTC, as every timestamp of the state DB is stored."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def error(action, where, reason):
    """The one message for a state DB that cannot be used; `where` never holds a password."""
    reason = reason.split('\n', 1)[0]
    hint = ''
    if 'locked' in reason or 'busy' in reason:
        hint = ' Another run held the database for more than %ss (%s).' % (busy_timeout(), BUSY_TIMEOUT_ENV)
    return StateStoreError('Cannot %s the state DB %s: %s.%s' % (action, where, reason, hint))


def roles_by_server(rows):
    """{vmid, or name for a server without one: role} of (vmid, name, role) rows that have a role."""
    return dict((vmid if vmid is not None else name, role) for vmid, name, role in rows if role)
