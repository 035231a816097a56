# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A consistent copy of a SQLite state DB (SQLite's online backup API), taken while others write."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import sqlite3

from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import StateStoreError
from ansible_collections.proxmox_manager.core.plugins.module_utils.state_db import check_not_a_directory, error


NOT_SQLITE = 'state backup copies SQLite files only; back %s up with its own tools (pg_dump for PostgreSQL).'


def backup(store, directory=None):
    """Copy the DB of `store` (a StateStore) into `directory`, default backups/ beside it; returns the copy's path."""
    if store.path is None:
        raise StateStoreError(NOT_SQLITE % store.display_url)
    if not store.exists:
        raise StateStoreError('There is no state DB at %s to back up yet.' % store.path)
    check_not_a_directory(store.path, 'back up')
    directory = directory or os.path.join(os.path.dirname(store.path), 'backups')
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise error('back up', store.path, 'cannot create the backup directory %s (%s)'
                    % (directory, exc.strerror)) from None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')
    base = os.path.splitext(os.path.basename(store.path))[0]
    dest = os.path.join(directory, '%s-%s.db' % (base, stamp))
    # Written aside and renamed, so a copy that exists is a whole one.
    tmp = dest + '.part'
    try:
        src = sqlite3.connect(store.path, timeout=store.busy_timeout)
    except sqlite3.Error as exc:
        raise error('back up', store.path, str(exc)) from None
    try:
        out = sqlite3.connect(tmp)
        try:
            src.backup(out)
        finally:
            out.close()
        os.replace(tmp, dest)
    except (sqlite3.Error, OSError) as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise error('back up', store.path, getattr(exc, 'strerror', None) or str(exc)) from None
    finally:
        src.close()
    return dest
