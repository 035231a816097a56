# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one parse of the inventory shows, and the hostvars and groups of each server.

The servers come from Ansible's inventory cache, or cluster by cluster from the
live merged view (merged_view.fetch_views, the same build the modules make) or,
when a cluster's Proxmox fails, from the view recorded for it in the state DB;
the clusters' views are then combined (merged_view.combine). Everything here is
plain data; the plugin only adds it to Ansible's inventory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
from collections import namedtuple

from ansible_collections.proxmox_manager.core.plugins.module_utils import clusters, config_repo, merged_view, state_db
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import (
    ConfigurationError,
    ProxmoxApiError,
    ProxmoxManagerError,
    StateStoreError,
    in_cluster,
)
from ansible_collections.proxmox_manager.core.plugins.plugin_utils import recorded_view

# Where the servers of a cluster come from.
LIVE, FROM_CACHE, RECORDED = 'live', 'inventory cache', 'recorded view'

# records: the ServerRecords of every cluster; roles: {(cluster, vmid or name): applied role}; origins: {cluster:
# LIVE, FROM_CACHE or RECORDED}; warnings: for the user; keep: every cluster is live and believed, so the view may
# fill Ansible's inventory cache; to_record: [(view name, record dicts)] of the live cluster views that may replace
# their recorded view.
InventoryView = namedtuple('InventoryView', 'records roles origins warnings keep to_record')

# Every hostvar costs Ansible time per host, so hosts carry only what the tfvars entry declares of the guest.
_DECLARED_KEYS = ('cpu', 'memory', 'disks', 'network_devices')

_LAYOUTS = {1: "the original app's", 2: 'from before several clusters'}
OLDER_LAYOUT = ('The state DB %s has an older layout (schema v%s, %s): it shows no applied roles (no pve_role, no '
                'role_<role> groups) until a module that writes to it upgrades it; run any writing module, for '
                'example proxmox_manager.core.server_sync.')


def in_config_repo(options, config_file):
    """The plugin's options with the config repo worked out (config_repo) and the state DB's URL in it."""
    project = config_repo.choose(options.get('project_dir'), config_file)
    return dict(options, project_dir=project, state_db=state_db.db_url(options.get('state_db'), project))


def clusters_of(options, environ=None):
    """The options of each cluster the parse lists, each with its `cluster` name.

    With the `clusters` mapping, clusters.every() of it (the plugin's own options are the top
    level); without, the plugin's options alone: one cluster, named by the `cluster` option or,
    when that is not set (None), by Proxmox.
    """
    if options.get('clusters') is None:
        return [dict(options)]
    return clusters.every(options['clusters'], options, os.environ if environ is None else environ,
                          lambda path: config_repo.resolve(path, options['project_dir']))


def load(options, cached=None, environ=None):
    """The InventoryView of one parse; `cached` is what Ansible's inventory cache held (record dicts), or None.

    `options` are the plugin's options (the connection, state and inventory options of its docs), after
    in_config_repo(); `environ` holds the PROXMOX_<NAME>_* variables of the clusters (os.environ).

    The recorded view of each cluster is read first: it tells which agents were off and the
    last known statuses, and serves when that cluster's Proxmox fails to answer (an outage:
    unreachable, timed out, a 5xx or a malformed answer; see _fallback), never when it
    refuses the credentials. A state DB that cannot be read fails the parse, after Proxmox
    had its say.
    """
    chosen = clusters_of(options, environ)  # a malformed mapping fails even on a cache hit
    named = options.get('clusters') is not None
    # A cache of records without their cluster (an older collection's) is rebuilt live.
    if cached is not None and all(record.get('cluster') for record in cached):
        records = _records(cached)
        roles, warnings = _applied_roles(options)
        return InventoryView(records, roles, dict((r.cluster, FROM_CACHE) for r in records), warnings, False, [])
    views, origins, warnings, to_record = [], {}, [], []
    for cluster, view, last, unreadable in _fetch(options, chosen, named):
        if _outage(view):
            view, warning = _fallback(options, view, last, unreadable, cluster, named)
            warnings.append(warning)
            origins[view.clusters[0] if view.clusters else None] = RECORDED
        else:
            if unreadable is not None:
                raise unreadable
            guests = sum(1 for r in last.records or []
                         if r.get('vmid') is not None and r.get('source') != merged_view.DECLARED_ONLY)
            emptied = None if options['allow_empty_cluster'] else merged_view.emptied(view, guests)
            if emptied:
                view.warnings.append('%s The recorded view is kept.' % emptied)
            else:
                # Taken before combine(), which renames the hosts of a name used in several clusters.
                to_record.append((_view_name(cluster), _recordable(view.records)))
            origins[view.clusters[0]] = LIVE
        views.append(view)
    combined = merged_view.combine(views)
    roles, more = _applied_roles(options)
    keep = len(to_record) == len(chosen)
    return InventoryView(combined.records, roles, origins, warnings + combined.warnings + more, keep, to_record)


def _fetch(options, chosen, named):
    """[(cluster, its live view or the outage that kept it, its RecordedView, the state DB error reading it)].

    Every cluster is asked at once (merged_view.fetch_views); any failure other than an
    outage (a refusal, a malformed tfvars file, ...) fails the parse: stale hosts would hide it.
    """
    # Imported here: a hit of the inventory cache needs neither the client nor requests.
    from ansible_collections.proxmox_manager.core.plugins.module_utils import proxmox_client

    targets, lasts = [], []
    for cluster in chosen:
        try:
            client = proxmox_client.ProxmoxClient(
                dict((key, cluster.get(key)) for key in proxmox_client.CONNECTION_ARGSPEC))
        except ProxmoxManagerError as exc:
            raise _named(exc, cluster, named) from None
        try:
            last = recorded_view.last_view(options['state_db'], _view_name(cluster)), None
        except StateStoreError as exc:
            last = recorded_view.NOTHING_RECORDED, exc
        targets.append(dict(client=client, tfvars=cluster['tfvars_path'],
                            previous=merged_view.previous_details(last[0].records or [])))
        lasts.append(last)
    found = merged_view.fetch_views(targets, include_templates=options['include_templates'],
                                    want_ips=options['want_agent_ips'], max_workers=options['max_workers'],
                                    project=options['project_dir'])
    for cluster, view in zip(chosen, found):
        if isinstance(view, ProxmoxManagerError) and not _outage(view):
            raise _named(view, cluster, named)
    return [(cluster, view) + last for cluster, view, last in zip(chosen, found, lasts)]


def _view_name(cluster):
    return state_db.view_name(cluster['api_host'], cluster['api_port'])


def _outage(result):
    return isinstance(result, ProxmoxApiError) and result.outage is not None


def _named(exc, cluster, named):
    """The error, its message naming the cluster when the clusters are declared."""
    return in_cluster(exc, cluster['cluster']) if named else exc


def _applied_roles(options):
    """(roles, [the warning about a state DB whose older layout shows no roles])."""
    roles, older = recorded_view.applied_roles(options['state_db'])
    if older is None:
        return roles, []
    return roles, [OLDER_LAYOUT % (state_db.display(options['state_db']), older, _LAYOUTS.get(older, 'older'))]


def _fallback(options, error, last, unreadable, cluster, named):
    """(the cluster's recorded view as a MergedView, the loud warning saying so), or the error."""
    if not options['offline_fallback'] or options['strict']:
        raise _named(error, cluster, named)
    if unreadable is not None:
        raise _named(ProxmoxApiError('%s The recorded view cannot be read either: %s' % (error, unreadable)),
                     cluster, named)
    if last.records is None:
        raise _named(ProxmoxApiError(
            '%s There is no recorded view in the state DB to fall back on (the inventory records into an existing '
            'state DB only; any module of this collection creates it).' % error), cluster, named)
    # The name this parse knows the cluster by; without one (no `cluster` option), the one it was recorded with.
    name = cluster.get('cluster') or next((r.get('cluster') for r in last.records if r.get('cluster')), None)
    warning = ('%sPROXMOX %s, SERVING THE VIEW RECORDED AT %sZ (pve_source=recorded, %d hosts): %s'
               % ('Cluster %s: ' % name if name else '', error.outage.upper(),
                  last.taken_at.isoformat(timespec='seconds'), len(last.records), error))
    records = _records(last.records)
    for record in records:
        record.cluster = name
    return merged_view.MergedView(records, clusters=[name] if name else []), warning


def _recordable(records):
    """The records to keep as a recorded view (dicts).

    A guest's uptime grows on every parse, but only a guest whose agent is off needs it
    remembered (merged_view._agent_known_off): kept for those alone, the view changes
    when something a host shows changes, and only then is it written.
    """
    kept = []
    for record_ in records:
        data = record_.as_dict()
        if data['agent'] is not False:
            data['uptime'] = None
        kept.append(data)
    return kept


def record(options, view):
    """Keep each live cluster view of `view` in the state DB for the next parse (see recorded_view).

    Each is written only when it changed; the names of the views written.
    """
    return [name for name, records in view.to_record if recorded_view.record(options['state_db'], name, records)]


def _records(dicts):
    return [merged_view.ServerRecord.from_dict(data) for data in dicts]


def applied_role(record, roles):
    """The role the state DB gives this server in its cluster: by vmid, else by name."""
    role = roles.get((record.cluster, record.vmid)) if record.vmid is not None else None
    return role or roles.get((record.cluster, record.name))


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
        pve_cluster=record.cluster, pve_vmid=record.vmid, pve_node=record.node, pve_type=record.type,
        pve_status=record.status, pve_tags=record.tags, pve_pool=record.pool, pve_ips=record.ips,
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
        ('cluster', record.cluster), ('role', role), ('node', record.node), ('status', record.status),
        ('type', record.type), ('pool', record.pool)) if value]
    groups.extend('tag_%s' % tag for tag in record.tags)
    if record.source == merged_view.DECLARED_ONLY:
        groups.append('declared_only')
    elif record.source == merged_view.LIVE_ONLY:
        groups.append('undeclared')
    if record.template:
        groups.append('template')
    return groups
