# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: proxmox
short_description: Proxmox VE guests merged with the servers declared in Terraform tfvars
version_added: 0.1.0
description:
  - Lists every server of the merged view, the same view every module of this collection validates against
    live guests from one C(/cluster/resources?type=vm) call, merged by name with C(terraform/terraform.tfvars.json).
  - Each host says where it comes from in C(pve_source), V(live+declared), V(live) (undeclared),
    V(declared) (not created yet, or destroyed), or V(cached) when served from the state DB.
  - Groups hosts by applied role (C(role_<role>)), node, status, guest type, tag and pool, and by source
    (C(declared_only), C(undeclared)). Group names are sanitised as Ansible sanitises group names.
  - Two live guests sharing a name become two hosts, C(<name>-<vmid>), with a warning; never one host.
  - Templates are not servers unless O(include_templates=true).
  - IPs are asked of the guest agent (qemu) or the interfaces call (lxc) only for running guests that declare
    no IP, concurrently, at most O(max_workers) at a time.
  - Each successful build is recorded in the state DB under the cluster's O(api_host) and O(api_port), so
    sources for several clusters can share one state DB. When Proxmox cannot be reached, times out or errors,
    the last view recorded for that cluster is served with a loud warning (see O(offline_fallback)).
  - Uses a configuration file whose name ends in C(proxmox.yml) or C(proxmox.yaml).
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
  - proxmox_manager.core.connection.plugins
  - proxmox_manager.core.state.plugins
options:
  plugin:
    description: The name of this plugin; it makes the file an inventory source of this plugin.
    type: str
    required: true
    choices: ['proxmox_manager.core.proxmox']
  include_templates:
    description: List templates as hosts too.
    type: bool
    default: false
  want_agent_ips:
    description:
      - Ask running guests that declare no IP in tfvars for their addresses (guest agent for qemu,
        the interfaces call for lxc), to set C(pve_ips) and C(ansible_host).
    type: bool
    default: true
  want_declared:
    description:
      - Set C(pve_declared), the cpu, memory, disks and network devices the tfvars declare, on each host.
      - It is most of the data a host carries, and Ansible's time to take hosts in grows with it; turn it off on a
        large cluster when plays do not need it. Everything else, C(pve_declared_role) and C(ansible_host) from a
        declared IP included, stays.
    type: bool
    default: true
  max_workers:
    description:
      - How many IP lookups run at once.
      - Each guest agent call holds one C(pvedaemon) worker of the guest's node (3 per node by default)
        while it runs; lookups beyond that queue on the node, so more workers than three per node gain nothing.
    type: int
    default: 16
  offline_fallback:
    description:
      - When Proxmox cannot be reached, times out or answers with an error, serve the last view recorded in the
        state DB (hosts get C(pve_source=cached)) with a warning.
      - When false, or when O(strict=true), that is an error instead.
    type: bool
    default: true
notes:
  - Host variables, all prefixed C(pve_), C(pve_vmid), C(pve_node), C(pve_type), C(pve_status),
    C(pve_tags) (list), C(pve_pool), C(pve_ips) (list), C(pve_source), C(pve_declared) (the C(cpu), C(memory),
    C(disks) and C(network_devices) of the tfvars entry; null for an undeclared guest), C(pve_declared_role)
    (the C(role) of the tfvars entry), and C(pve_role) (the applied role from the state DB, set only when there is
    one; use C(pve_role | default(none))).
  - C(pve_name) is set only when the host name differs from the Proxmox name, that is for guests sharing a
    name (C(<name>-<vmid>)); use C(pve_name | default(inventory_hostname)) for the Proxmox name of any host.
    A guest on an offline node keeps the C(unknown) status Proxmox reports, and its last known status in
    C(pve_last_status).
  - A running qemu guest whose agent answered "not running" at the last build is not asked again until it
    restarts (its uptime drops), since turning the agent on takes a restart in Proxmox VE.
    C(ansible_host) is the first declared IP, else the first non-loopback IPv4 the guest reports.
  - A cache hit (O(cache=true)) makes no API call at all, not even a login.
  - The state DB is read and written by one worker process forked at the start of the parse, so importing its
    database library (about 0.3 s) runs on another CPU while the plugin waits on Proxmox; in a process that
    already runs threads, where forking is unsafe, a worker thread does it instead.
  - With an API token, that worker also makes the IP lookups, with a connection of its own, so their CPU is not
    spent in the process that adds the hosts (where a worker thread stands in for the process, they share it).
    With O(api_password) they are made from the plugin's own process, since a second client would log in again.
  - Hosts are added while the IP lookups and that read run; a host waiting on a lookup gets C(pve_ips) and
    C(ansible_host) when it answers, and every host its C(pve_role) once the read is done. A parse that fails
    takes back every host and group it added, since Ansible would otherwise keep a half inventory.
'''

EXAMPLES = r'''
# inventory/proxmox.yml -- connection from the PROXMOX_* environment, no secret in git
plugin: proxmox_manager.core.proxmox
tfvars_path: terraform/terraform.tfvars.json
state_db: state/proxmox_manager.db

---
# Token auth spelled out, with a private CA and the inventory cache
plugin: proxmox_manager.core.proxmox
api_host: pve1.example.com
api_user: automation@pve
api_token_id: inventory
api_token_secret: "{{ lookup('ansible.builtin.env', 'PROXMOX_TOKEN_SECRET') }}"
ca_path: /etc/ssl/certs/pve-root-ca.pem
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/proxmox_manager
cache_timeout: 300

---
# A plain listing for a very large cluster: no declared spec on each host, no guest agent calls
# (ansible_host still comes from the declared IPs)
plugin: proxmox_manager.core.proxmox
want_declared: false
want_agent_ips: false

---
# Extra groups and variables with the constructed options
plugin: proxmox_manager.core.proxmox
keyed_groups:
  - key: pve_declared.disks | default([]) | map(attribute='disk_type') | list
    prefix: disk
groups:
  big: (pve_declared.memory | default(0)) >= 8192
compose:
  ansible_user: "'debian' if 'debian' in pve_tags else 'root'"
'''

from ansible import context
from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import (
    DeclarationError,
    ProxmoxApiError,
    ProxmoxManagerError,
    StateStoreError,
)

# The core (requests here, SQLAlchemy in the state worker) is imported in parse(), not here: Ansible loads
# every enabled inventory plugin on each run, even `-i localhost,`, and those imports cost about 0.4 s.
# The recorded view is named by the cluster it came from, so several sources on one state DB keep theirs apart.
_SNAPSHOT = 'inventory@%s:%s'
# Every hostvar costs Ansible time per host, so hosts carry only what the tfvars entry declares of the guest.
_DECLARED_KEYS = ('cpu', 'memory', 'disks', 'network_devices')


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = 'proxmox_manager.core.proxmox'

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(('proxmox.yml', 'proxmox.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        from ansible_collections.proxmox_manager.core.plugins.module_utils import state_worker

        # (state DB, name of this cluster's recorded view)
        snapshot = (self.get_option('state_db'), _SNAPSHOT % (self.get_option('api_host'), self.get_option('api_port')))
        added = _Added(self.inventory, self._sanitize_group_name)
        cached = self._cached(path, cache)
        if cached is None:
            state_worker.preload()  # a cache hit needs neither the client nor requests
        with state_worker.executor() as worker:
            # Started first: the worker imports the state store while this process talks to Proxmox.
            worker.submit(state_worker.warm_up)
            # Submitted once the view is known, with the IP lookups when there are any (see _fetch).
            state = state_worker.StateRead(worker, *snapshot)
            try:
                records, cached_at, pending, finish = self._records(cached, state, worker, snapshot)
                state.start()
                # Hosts are added while the IP lookups and the state DB read run; only `pending` waits for them.
                self._add_hosts(records, cached_at, pending, added)
                finish()
                self._complete(records, state.result()[2], pending, added)
            except Exception as exc:
                added.undo()  # Ansible keeps what a failed source added: leave no half inventory
                if isinstance(exc, ProxmoxManagerError):
                    raise AnsibleParserError('proxmox_manager.core.proxmox: %s' % exc)
                raise
            # A live view is recorded; ansible-playbook --check writes nothing, not even the fallback snapshot.
            recorded = None
            if pending is not None:
                view = [r.as_dict() for r in records]
                if self.get_option('cache'):
                    self._cache[self.get_cache_key(path)] = view
                if not context.CLIARGS.get('check'):
                    recorded = worker.submit(state_worker.record_view, *snapshot, view)
            if recorded is not None:
                try:
                    state_worker.result(recorded)
                except ProxmoxManagerError as exc:
                    # The live view is still right; only the offline fallback suffers.
                    self.display.warning('Could not record the view in the state DB: %s' % exc)

    def _cached(self, path, cache):
        """The records of Ansible's inventory cache, or None (a miss, or the cache is off)."""
        if self.get_option('cache') and cache:
            try:
                return _from_dicts(self._cache[self.get_cache_key(path)])
            except KeyError:
                pass
        return None

    def _records(self, cached, state, worker, snapshot):
        """(records, cached_at, pending, finish) of the merged view, from the cache, Proxmox, or the state DB.

        For a live view, `pending` holds the host names whose records finish() completes (an IP lookup,
        a last known status); it is None for a view that is complete already (the cache, the state DB).
        """
        if cached is not None:
            return cached, None, None, _done
        try:
            view, pending, finish = self._fetch(state)
        except DeclarationError:
            raise
        except ProxmoxApiError as exc:
            records, cached_at = self._fallback(exc, state, worker, snapshot)
            return _from_dicts(records), cached_at, None, _done
        for warning in view.warnings:
            self.display.warning(warning)
        return view.records, None, set(r.host for r in pending), finish

    def _fetch(self, state):
        from ansible_collections.proxmox_manager.core.plugins.module_utils import merged_view, proxmox_client

        def previous():
            """What the last recorded view says of each guest: agent state and last known status."""
            return state.result()[1]

        options = dict((name, self.get_option(name)) for name in proxmox_client.CONNECTION_ARGSPEC)
        client = proxmox_client.ProxmoxClient(options)
        view = merged_view.fetch_listing(client, self.get_option('tfvars_path'),
                                         include_templates=self.get_option('include_templates'))
        guests = merged_view.guests_to_ask(view, self.get_option('want_agent_ips'))
        max_workers = self.get_option('max_workers')
        if guests and not client.logs_in:
            # The worker asks them with a client of its own, so their CPU is not spent in this process
            # while it adds the hosts. A password would mean a second login there: that client asks from here.
            found = state.ask_ips(options, guests, max_workers)
        else:
            found = merged_view.ask_ips(client, guests, previous=previous, max_workers=max_workers)
        pending, finish = merged_view.start_details(view, guests, found, previous=previous)
        return view, pending, finish

    def _fallback(self, error, state, worker, snapshot):
        from ansible_collections.proxmox_manager.core.plugins.module_utils import state_worker

        if not self.get_option('offline_fallback') or self.get_option('strict'):
            raise error
        try:
            state.result()  # a state DB that cannot be read says so here
            taken_at, records = state_worker.result(worker.submit(state_worker.read_snapshot, *snapshot))
        except StateStoreError as exc:
            raise ProxmoxApiError('%s The recorded view cannot be read either: %s' % (error, exc))
        if records is None:
            raise ProxmoxApiError('%s There is no recorded view in the state DB to fall back on.' % error)
        self.display.warning(
            'PROXMOX UNREACHABLE, SERVING THE VIEW RECORDED AT %sZ (pve_source=cached, %d hosts): %s'
            % (taken_at.isoformat(timespec='seconds'), len(records), error))
        return records, taken_at

    def _add_hosts(self, records, cached_at, pending, added):
        """Each host with every variable and group that needs neither the lookups nor the applied roles."""
        from ansible_collections.proxmox_manager.core.plugins.module_utils import merged_view

        inventory = self.inventory
        want_declared = self.get_option('want_declared')
        pending = pending or ()
        for record in records:
            host = added.host(record.host)
            hostvars = dict(
                pve_vmid=record.vmid, pve_node=record.node, pve_type=record.type, pve_status=record.status,
                pve_tags=record.tags, pve_pool=record.pool,
                pve_source='cached' if cached_at else record.source, pve_declared_role=record.declared_role)
            if want_declared:
                hostvars['pve_declared'] = _declared_vars(record.declared)
            if host != record.name:
                hostvars['pve_name'] = record.name
            if host not in pending:
                hostvars.update(_detail_vars(record))
            for key, value in hostvars.items():
                inventory.set_variable(host, key, value)
            for prefix, value in (('node', record.node), ('status', record.status), ('type', record.type),
                                  ('pool', record.pool)):
                if value:
                    added.member('%s_%s' % (prefix, value), host)
            for tag in record.tags:
                added.member('tag_%s' % tag, host)
            if record.source == merged_view.DECLARED_ONLY:
                added.member('declared_only', host)
            elif record.source == merged_view.LIVE_ONLY:
                added.member('undeclared', host)

    def _complete(self, records, roles, pending, added):
        """What waited: the pending records' details, the applied roles, then the constructed options."""
        strict = self.get_option('strict')
        compose, groups, keyed = self.get_option('compose'), self.get_option('groups'), self.get_option('keyed_groups')
        inventory = self.inventory
        pending = pending or ()
        for record in records:
            host = record.host
            hostvars = _detail_vars(record) if host in pending else {}
            role = roles.get(record.vmid) if record.vmid is not None else None
            role = role or roles.get(record.name)
            if role:
                hostvars['pve_role'] = role
                added.member('role_%s' % role, host)
            for key, value in hostvars.items():
                inventory.set_variable(host, key, value)
            if compose or groups or keyed:
                allvars = inventory.get_host(host).get_vars()
                self._set_composite_vars(compose, allvars, host, strict=strict)
                self._add_host_to_composed_groups(groups, allvars, host, strict=strict)
                self._add_host_to_keyed_groups(keyed, allvars, host, strict=strict)


class _Added:
    """Hosts and groups this parse adds, each group sanitised and added once, and taken back on failure."""

    def __init__(self, inventory, sanitize):
        self._inventory = inventory
        self._sanitize = sanitize
        self._groups = {}
        self._new_hosts = []
        self._new_groups = []

    def host(self, name):
        if name not in self._inventory.hosts:
            self._new_hosts.append(name)
        return self._inventory.add_host(name)

    def member(self, name, host):
        group = self._groups.get(name)
        if group is None:
            known = len(self._inventory.groups)
            group = self._groups[name] = self._inventory.add_group(self._sanitize(name))
            if len(self._inventory.groups) > known:
                self._new_groups.append(group)  # the name add_group used, as undo() looks it up
        self._inventory.add_child(group, host)

    def undo(self):
        for name in self._new_hosts:
            self._inventory.remove_host(self._inventory.hosts[name])
        for name in self._new_groups:
            self._inventory.remove_group(self._inventory.groups[name])
        self._new_hosts, self._new_groups = [], []


def _from_dicts(records):
    """ServerRecords of recorded dicts: the inventory cache, the state DB snapshot."""
    from ansible_collections.proxmox_manager.core.plugins.module_utils import merged_view

    return [merged_view.ServerRecord.from_dict(data) for data in records]


def _done():
    """Nothing to wait for: a view from the cache or the state DB is complete."""


def _detail_vars(record):
    """The variables the IP lookups and the last known status decide."""
    hostvars = dict(pve_ips=record.ips)
    if record.ansible_host:
        hostvars['ansible_host'] = record.ansible_host
    if record.last_status:
        hostvars['pve_last_status'] = record.last_status
    return hostvars


def _declared_vars(entry):
    """The part of a tfvars entry hosts carry; name and role have their own variables."""
    if not entry:
        return None
    return dict((key, entry[key]) for key in _DECLARED_KEYS if key in entry)
