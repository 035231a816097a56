# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one parse of the inventory shows, and the hostvars and groups of each server.

The servers come from Ansible's inventory cache, from the live merged view
(merged_view.fetch_view, the same build the modules make) or, when Proxmox fails,
from the view recorded in the state DB. Everything here is plain data; the
plugin only adds it to Ansible's inventory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
from collections import namedtuple

from ansible_collections.proxmox_manager.core.plugins.module_utils import config_repo, merged_view, state_db
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import (
    ConfigurationError,
    ProxmoxApiError,
    StateStoreError,
)
from ansible_collections.proxmox_manager.core.plugins.plugin_utils import recorded_view

# Where the servers of a parse come from.
LIVE, FROM_CACHE, RECORDED = 'live', 'inventory cache', 'recorded view'

# records: ServerRecords; roles: {vmid or name: applied role}; origin: LIVE, FROM_CACHE or RECORDED;
# recorded_at: when the recorded view was taken (RECORDED only); warnings: for the user; keep: a live view
# that may replace the recorded view and fill Ansible's inventory cache.
InventoryView = namedtuple('InventoryView', 'records roles origin recorded_at warnings keep')

# Every hostvar costs Ansible time per host, so hosts carry only what the tfvars entry declares of the guest.
_DECLARED_KEYS = ('cpu', 'memory', 'disks', 'network_devices')


def in_config_repo(options, config_file):
    """The plugin's options with the config repo worked out (config_repo) and the state DB's URL in it."""
    project = config_repo.choose(options.get('project_dir'), config_file)
    return dict(options, project_dir=project, state_db=state_db.db_url(options.get('state_db'), project))


def load(options, cached=None):
    """The InventoryView of one parse; `cached` is what Ansible's inventory cache held (record dicts), or None.

    `options` are the plugin's options (the connection, state and inventory options of its docs), after
    in_config_repo().

    The recorded view is read first: it tells which agents were off and the last known
    statuses, and serves when Proxmox fails to answer (an outage: unreachable, timed out,
    a 5xx or a malformed answer; see _fallback), never when it refuses the credentials.
    A state DB that cannot be read fails the parse, after Proxmox had its say.
    """
    if cached is not None:
        return InventoryView(_records(cached), recorded_view.applied_roles(options['state_db']), FROM_CACHE, None, [],
                             False)
    name = recorded_view.view_name(options['api_host'], options['api_port'])
    try:
        last, unreadable = recorded_view.last_view(options['state_db'], name), None
    except StateStoreError as exc:
        last, unreadable = recorded_view.NOTHING_RECORDED, exc
    # Imported here: a hit of the inventory cache needs neither the client nor requests.
    from ansible_collections.proxmox_manager.core.plugins.module_utils import proxmox_client

    client = proxmox_client.ProxmoxClient(dict((key, options.get(key)) for key in proxmox_client.CONNECTION_ARGSPEC))
    try:
        view = merged_view.fetch_view(
            client, options['tfvars_path'], include_templates=options['include_templates'],
            want_ips=options['want_agent_ips'], max_workers=options['max_workers'],
            previous=merged_view.previous_details(last.records or []), project=options['project_dir'])
    except ProxmoxApiError as exc:
        if exc.outage is None:
            raise  # Proxmox answered and refused (credentials, a privilege): stale hosts would hide it
        return _fallback(options, exc, last, unreadable)
    if unreadable is not None:
        raise unreadable
    guests = sum(1 for r in last.records or []
                 if r.get('vmid') is not None and r.get('source') != merged_view.DECLARED_ONLY)
    emptied = None if options['allow_empty_cluster'] else merged_view.emptied(view, guests)
    warnings = view.warnings + (['%s The recorded view is kept.' % emptied] if emptied else [])
    return InventoryView(view.records, recorded_view.applied_roles(options['state_db']), LIVE, None, warnings,
                         not emptied)


def _fallback(options, error, last, unreadable):
    if not options['offline_fallback'] or options['strict']:
        raise error
    if unreadable is not None:
        raise ProxmoxApiError('%s The recorded view cannot be read either: %s' % (error, unreadable))
    if last.records is None:
        raise ProxmoxApiError('%s There is no recorded view in the state DB to fall back on (the inventory records '
                              'into an existing state DB only; any module of this collection creates it).' % error)
    warning = ('PROXMOX %s, SERVING THE VIEW RECORDED AT %sZ (pve_source=recorded, %d hosts): %s'
               % (error.outage.upper(), last.taken_at.isoformat(timespec='seconds'), len(last.records), error))
    roles = recorded_view.applied_roles(options['state_db'])
    return InventoryView(_records(last.records), roles, RECORDED, last.taken_at, [warning], False)


def record(options, view):
    """Keep a live view in the state DB for the next parse (see recorded_view); True when it was written.

    A guest's uptime grows on every parse, but only a guest whose agent is off needs it
    remembered (merged_view._agent_known_off): kept for those alone, the view changes
    when something a host shows changes, and only then is it written.
    """
    records = []
    for record_ in view.records:
        data = record_.as_dict()
        if data['agent'] is not False:
            data['uptime'] = None
        records.append(data)
    return recorded_view.record(options['state_db'],
                                recorded_view.view_name(options['api_host'], options['api_port']), records)


def _records(dicts):
    return [merged_view.ServerRecord.from_dict(data) for data in dicts]


def applied_role(record, roles):
    """The role the state DB gives this server: by vmid, else by name."""
    role = roles.get(record.vmid) if record.vmid is not None else None
    return role or roles.get(record.name)


def networks(cidrs):
    """The ansible_host_networks option as ip_network objects; a value that is no network is a ConfigurationError."""
    found = []
    for cidr in cidrs or []:
        try:
            found.append(ipaddress.ip_network(str(cidr), strict=False))
        except ValueError as exc:
            raise ConfigurationError('ansible_host_networks: %s' % exc) from None
    return found


def ansible_host(record, preferred=()):
    """The first declared IP, else the first reported IP in a preferred network, else the first reported IP."""
    if preferred and not record.declared_ips:
        for ip in record.ips:
            if any(ipaddress.ip_address(ip) in network for network in preferred):
                return ip
    return record.ansible_host


def host_vars(record, origin, role, want_declared=False, preferred=()):
    """The variables of one host; a variable that would be null or an empty list is left out.

    Ansible's time to take hosts in grows with their variables: leaving out the empty
    pve_ips and pve_tags took `ansible-inventory --list` of 5,000 hosts from 7.1 s to 6.0 s
    (medians of 6 interleaved runs of a script printing the same JSON).
    """
    hostvars = dict(
        pve_vmid=record.vmid, pve_node=record.node, pve_type=record.type, pve_status=record.status,
        pve_tags=record.tags, pve_pool=record.pool, pve_ips=record.ips,
        pve_source='recorded' if origin == RECORDED else record.source,
        pve_declared_role=record.declared_role, pve_role=role,
        pve_last_status=record.last_status, ansible_host=ansible_host(record, preferred))
    if want_declared and record.declared:
        hostvars['pve_declared'] = dict((key, record.declared[key]) for key in _DECLARED_KEYS if key in record.declared)
    if record.host != record.name:
        hostvars['pve_name'] = record.name
    if record.template:  # only with include_templates; regular guests carry no pve_template at all
        hostvars['pve_template'] = True
    return dict((key, value) for key, value in hostvars.items() if value is not None and value != [])


def host_groups(record, role):
    """The groups of one host, before Ansible sanitises their names."""
    groups = ['%s_%s' % (prefix, value) for prefix, value in (
        ('role', role), ('node', record.node), ('status', record.status), ('type', record.type),
        ('pool', record.pool)) if value]
    groups.extend('tag_%s' % tag for tag in record.tags)
    if record.source == merged_view.DECLARED_ONLY:
        groups.append('declared_only')
    elif record.source == merged_view.LIVE_ONLY:
        groups.append('undeclared')
    if record.template:
        groups.append('template')
    return groups
