# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role assignment: the role catalog, validation against the merged view, the upsert.

server_role, server_sync and the declarations all come through here, so a
server the inventory lists can always be given a role and any other name is
always refused.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import os

from ansible_collections.proxmox_manager.core.plugins.module_utils import config_repo
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import (
    ConfigurationError,
    UnknownServerError,
    problems_text,
)
from ansible_collections.proxmox_manager.core.plugins.module_utils.schemas import excerpt
from ansible_collections.proxmox_manager.core.plugins.module_utils.server_plan import server_key

_MIB = 1024 * 1024


def role_catalog(path=None):
    """The role names a server can be given: the role directories of `path`."""
    path = path or os.environ.get(config_repo.ROLES_ENV) or config_repo.ROLES_DIR
    if not os.path.isdir(path):
        raise ConfigurationError('The role catalog %s does not exist: set roles_path to the directory '
                                 'that holds the roles (the config repo\'s roles/).' % path)
    return sorted(name for name in os.listdir(path)
                  if os.path.isdir(os.path.join(path, name, 'tasks')) or
                  os.path.isdir(os.path.join(path, name, 'meta')))


def server_facts(record):
    """The state DB row of a merged-view record (None never blanks a stored fact)."""
    declared = record.declared or {}
    memory = declared.get('memory')
    if memory is None and record.maxmem:
        memory = int(record.maxmem) // _MIB
    return dict(name=record.name, vmid=record.vmid, node=record.node, type=record.type,
                status=record.status, ip_address=record.ansible_host,
                cpu=declared.get('cpu') or (int(record.maxcpu) if record.maxcpu else None),
                memory=memory, os_type=declared.get('os_type'), source=record.source)


def _role_problem(role, catalog):
    close = difflib.get_close_matches(role, catalog, n=2, cutoff=0.6)
    hint = ' Did you mean %s?' % ' or '.join(excerpt(c) for c in close) if close else ''
    return 'Role %s is not in the role catalog (%s).%s' % (excerpt(role), ', '.join(catalog) or 'empty', hint)


_ENTRY_KEYS = {'name': str, 'vmid': int, 'cluster': str, 'role': str, 'state': str}


def load_entries(path):
    """The `servers` list from a JSON or YAML file, checked as the argspec would."""
    import json

    try:
        with open(path) as handle:
            text = handle.read()
        if path.endswith('.json'):
            entries = json.loads(text)
        else:
            import yaml
            entries = yaml.safe_load(text)
    except (OSError, ValueError) as exc:
        raise ConfigurationError('Cannot read servers_file %s: %s' % (path, exc)) from None
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError without importing yaml early
        raise ConfigurationError('servers_file %s is not valid YAML: %s' % (path, exc)) from None
    if isinstance(entries, dict) and 'servers' in entries:
        entries = entries['servers']
    if not isinstance(entries, list):
        raise ConfigurationError('servers_file %s must hold a list of {name, vmid?, cluster?, role?, state?}.' % path)
    problems = []
    for index, entry in enumerate(entries):
        where = '%s: servers[%d]' % (path, index)
        if not isinstance(entry, dict) or not isinstance(entry.get('name'), str):
            problems.append('%s: needs a name.' % where)
            continue
        for key, value in entry.items():
            kind = _ENTRY_KEYS.get(key)
            if kind is None:
                problems.append('%s: unknown key %s.' % (where, excerpt(key)))
            elif value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                problems.append('%s: %s must be a %s.' % (where, key, kind.__name__))
        if entry.get('state') not in (None, 'present', 'absent'):
            problems.append('%s: state must be present or absent.' % where)
    if problems:
        raise ConfigurationError(problems_text(problems, ' in servers_file'))
    return entries


def resolve(view, entries, catalog):
    """Validate every entry first; ([(record, entry)], [problem, ...]).

    Entries are {name, vmid?, cluster?, role?, state?}; an entry's cluster must be the view's (the one
    cluster the call acts on). Every problem is listed, so one failing call tells the user everything to fix.
    """
    resolved, problems, seen = [], [], {}
    for index, entry in enumerate(entries):
        name = excerpt(entry.get('name'), quote=False)
        label = 'servers[%d] (%s)' % (index, name) if len(entries) > 1 else name
        state = entry.get('state') or 'present'
        role = entry.get('role')
        if state == 'present' and not role:
            problems.append('%s: role is required when state is present.' % label)
        elif role and role not in catalog:
            problems.append('%s: %s' % (label, _role_problem(role, catalog)))
        cluster = entry.get('cluster')
        if cluster is not None and cluster not in view.clusters:
            problems.append('%s: the entry is for the cluster %s, but this call acts on the cluster %s; give each '
                            'cluster its own call (its cluster option).'
                            % (label, excerpt(cluster), ', '.join(view.clusters)))
            continue
        record, problem = view.find(entry['name'], entry.get('vmid'), cluster)
        if problem:
            problems.append('%s: %s' % (label, problem) if len(entries) > 1 else problem)
            continue
        if record.host in seen:
            problems.append('%s: the same server as servers[%d]; give each server once.' % (label, seen[record.host]))
            continue
        seen[record.host] = index
        resolved.append((record, dict(entry, state=state)))
    return resolved, problems


def assign(store, resolved, check_mode, cluster, tool='server_role'):
    """Record the roles of servers of `cluster` in ONE transaction; (changed, {servers: [...]}, diff).

    A server missing from the DB gets its row here (the seeds' fix). In
    check mode the same plan is computed without writing.
    """
    rows = []
    for record, entry in resolved:
        row = server_facts(record)
        row['role'] = entry['role'] if entry['state'] == 'present' else None
        if entry['state'] == 'absent' and entry.get('role'):
            row['only_if_role'] = entry['role']  # absent with a role removes only that role
        rows.append(row)
    if check_mode:
        plan = store.preview_servers(rows, cluster)
    else:
        with store.writing() as conn:
            plan = store.upsert_servers(conn, rows, tool, cluster)
    servers, before, after = [], {}, {}
    for (record, entry), (key, old, changes) in zip(resolved, plan.results):
        previous = old['role'] if old else None
        role = changes.get('role', previous)
        role_changed = 'role' in changes
        item = dict(name=record.name, vmid=record.vmid, role=role, previous_role=previous, changed=role_changed)
        if record.host != record.name:
            item['host'] = record.host  # only for guests sharing a name: 10,000 copies of the name cost Ansible time
        servers.append(item)
        if role_changed:
            before[record.host], after[record.host] = previous, role
    return bool(before), dict(servers=servers), dict(before=before, after=after)


def require_valid(problems):
    if problems:
        raise UnknownServerError(problems_text(problems), problems)


def sync(store, view, check_mode, cluster, tool='server_sync'):
    """Reconcile the state DB's rows of `cluster` with its merged view; (changed, result, diff).

    New servers get rows, known ones get fresh facts, servers gone from the
    view are marked absent (never deleted, role kept). Roles are untouched.
    """
    rows = [server_facts(record) for record in view]
    if check_mode:
        plan = store.preview_servers(rows, cluster, roles=False, mark_missing=True)
    else:
        with store.writing() as conn:
            plan = store.upsert_servers(conn, rows, tool, cluster, roles=False, mark_missing=True)
    added = [key for key, old, _changes in plan.results if old is None]
    updated = dict((key, changes) for key, old, changes in plan.results if old is not None and changes)
    absent = [dict(name=row['name'], vmid=row['vmid'], role=row['role']) for row in plan.absent]
    before = dict((key, dict((f, old.get(f)) for f in changes)) for key, old, changes in plan.results
                  if old is not None and changes)
    before.update((server_key(row), 'present') for row in plan.absent)
    after = dict(updated)
    after.update((key, 'added') for key in added)
    after.update((server_key(row), 'absent') for row in plan.absent)
    result = dict(added=added, updated=sorted(updated), marked_absent=absent, count=len(rows))
    return plan.changed, result, dict(before=before, after=after)
