# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""State-store work run beside the caller: the inventory's reads and its snapshot write.

The state store needs SQLAlchemy, and importing it costs about 0.2 s of CPU. The
inventory plugin needs the state DB early (the last view, the applied roles) and
late (recording the new view). A worker process forked at the start of a parse
does the import and that work on another core while the plugin waits on Proxmox.
This module imports neither SQLAlchemy nor the state store itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import StateStoreError


def executor():
    """A one-worker executor: a forked process, or a thread in a process that already runs threads.

    Forking a process with threads can leave the child holding locks nobody will release.
    """
    if threading.active_count() == 1 and 'fork' in multiprocessing.get_all_start_methods():
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context('fork'))
    return ThreadPoolExecutor(max_workers=1)


def result(future):
    """The future's result; a worker process that died becomes a StateStoreError."""
    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise StateStoreError('The state DB worker process stopped before it answered (%s).' % exc) from None


def read_view(url, name):
    """(taken_at, details, applied roles) of the state DB at `url`.

    `details` is merged_view.previous_details() of the last view recorded as `name` (None when there is
    none): a few fields a guest, so that little crosses back to the caller while it is busy.
    """
    from ansible_collections.proxmox_manager.core.plugins.module_utils import merged_view

    store = _store(url)
    taken_at, records = store.load_snapshot(name)
    details = None if records is None else merged_view.previous_details(records)
    return taken_at, details, store.applied_roles()


def read_snapshot(url, name):
    """(taken_at, records) of the last view recorded as `name`, or (None, None)."""
    return _store(url).load_snapshot(name)


def record_view(url, name, records):
    """Record `records` as the view `name` in one write transaction."""
    store = _store(url)
    with store.writing() as conn:
        store.save_snapshot(conn, name, records)


def _store(url):
    from ansible_collections.proxmox_manager.core.plugins.module_utils import state_store

    return state_store.StateStore(url)
