# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Work the inventory plugin runs beside itself: the state DB, and the IP lookups.

The state store needs SQLAlchemy, and importing it costs about 0.3 s of CPU. The
inventory plugin needs the state DB early (the last view, the applied roles) and
late (recording the new view). A worker process forked at the start of a parse
does the import and that work on another core while the plugin waits on Proxmox.
The IP lookups run there too, so their CPU is not spent in the process that
adds the hosts. This module imports neither SQLAlchemy nor the state store
itself; preload() imports what the lookups need before the worker forks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import StateStoreError

_MODULE_UTILS = 'ansible_collections.proxmox_manager.core.plugins.module_utils.'


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
        raise StateStoreError('The inventory worker process stopped before it answered (%s).' % exc) from None


def preload():
    """Import the merged view and the client (requests) here, before the worker forks: it then has them."""
    for name in ('merged_view', 'proxmox_client'):
        importlib.import_module(_MODULE_UTILS + name)


def warm_up():
    """Start importing the state store in a thread, and return at once.

    The tasks after this one run meanwhile (the IP lookups of containers need no state DB); the first
    one that needs the store waits for the import to finish.
    """
    threading.Thread(target=_import_store, daemon=True).start()


def _import_store():
    try:
        importlib.import_module(_MODULE_UTILS + 'state_store')
    except Exception:  # noqa: BLE001 - the task that needs the store imports it again and says why it fails
        pass


class StateRead:
    """The state DB read of one parse (read_view), made by the first task that needs it.

    With ask_ips() the IP lookups' task makes it, so both share one read and the lookups of
    containers go out while it runs; otherwise it is submitted on its own on start() or result().
    """

    def __init__(self, worker, url, name):
        self._worker = worker
        self._args = (url, name)
        self._lock = threading.Lock()
        self._future = None
        self._with_ips = False

    def ask_ips(self, options, guests, max_workers):
        """Submit the IP lookups of `guests` with the read; returns a function waiting for (ips, agent-off vmids)."""
        with self._lock:
            if self._future is not None:
                raise RuntimeError('StateRead.ask_ips() must come before the read is submitted')
            self._future = self._worker.submit(read_view_and_ask_ips, *(self._args + (options, guests, max_workers)))
            self._with_ips = True
        return lambda: result(self._future)[1]

    def start(self):
        with self._lock:
            if self._future is None:
                self._future = self._worker.submit(read_view, *self._args)

    def result(self):
        """read_view()'s answer."""
        self.start()
        answer = result(self._future)
        return answer[0] if self._with_ips else answer


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


def read_view_and_ask_ips(url, name, options, guests, max_workers):
    """read_view() in a thread, and meanwhile merged_view.ask_ips() of `guests` with a client of its own.

    Returns (read_view()'s answer, (ips by vmid, agent-off vmids)). The qemu lookups wait for the read,
    to skip a guest whose agent was off; the others go out at once. An error of either is the task's.
    """
    from ansible_collections.proxmox_manager.core.plugins.module_utils import merged_view, proxmox_client

    with ThreadPoolExecutor(max_workers=1) as reader:
        read = reader.submit(read_view, url, name)
        client = proxmox_client.ProxmoxClient(options)
        found = merged_view.ask_ips(client, guests, previous=lambda: read.result()[1], max_workers=max_workers)()
        return read.result(), found


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
