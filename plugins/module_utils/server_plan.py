# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The server planner: which stored server each input row is, and what an upsert changes.

Pure: it reads plain dicts and returns a plan; the state store applies it (or,
in check mode, only reports it). No database library is imported here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.proxmox_manager.core.plugins.module_utils.state_db import utcnow

# Columns a sync may refresh; None never overwrites a known value.
SERVER_FACTS = ('vmid', 'node', 'type', 'status', 'ip_address', 'cpu', 'memory', 'os_type', 'source')


class ServerPlan:
    """What an upsert will do: per-row results, the SQL rows, the change log.

    results: [(key, old_row or None, {field: new_value})] in input order;
    absent: rows that mark_missing will mark absent.
    """

    def __init__(self):
        self.results, self.inserts, self.updates, self.log, self.absent = [], [], [], [], []

    @property
    def changed(self):
        return bool(self.inserts or self.updates)


def plan_servers(existing, rows, roles=True, mark_missing=False):
    """Match each row to a stored server and say what changes. Pure.

    Each row: name, optional vmid and facts (SERVER_FACTS), and `role` when
    roles=True ('' or None removes it). Rows match by vmid, else by a
    vmid-less row of the same name (a declared server that got created).
    A fact given as None never blanks a stored one. With mark_missing,
    stored servers no row matched are marked absent, never deleted.
    """
    now = utcnow()
    plan = ServerPlan()
    by_vmid = dict((r['vmid'], r) for r in existing if r['vmid'] is not None)
    by_name = dict((r['name'], r) for r in existing if r['vmid'] is None)
    matched = set()
    for row in rows:
        vmid = row.get('vmid')
        old = by_vmid.get(vmid) if vmid is not None else None
        if old is None:
            old = by_name.get(row['name'])
            if old is not None and vmid is not None:
                by_name.pop(row['name'])
        changes = {}
        for field in SERVER_FACTS + (('role',) if roles and 'role' in row else ()):
            value = row.get(field)
            if field == 'role':
                value = value or None
                if row.get('only_if_role') and (old or {}).get('role') != row['only_if_role']:
                    continue
            elif value is None:
                continue
            if (old.get(field) if old is not None else None) != value:
                changes[field] = value
        if old is not None:
            matched.add(old.get('id'))
            if old['name'] != row['name']:
                changes['name'] = row['name']
            if not old['present']:
                changes.update(present=True, absent_since=None)
        key = server_key(row)
        before = dict(old) if old is not None else None
        plan.results.append((key, before, changes))
        if before is None:
            # A new row is one `created` entry (its facts are in the row), plus its role.
            plan.log.append(dict(entity='server', key=key, field='created', old=None, new=row.get('source')))
            if changes.get('role'):
                plan.log.append(dict(entity='server', key=key, field='role', old=None, new=changes['role']))
        else:
            for field, value in changes.items():
                if field not in ('present', 'absent_since'):
                    plan.log.append(dict(entity='server', key=key, field=field, new=_text(value),
                                         old=_text(before.get(field))))
        if old is None:
            new = dict((col, None) for col in ('vmid',) + SERVER_FACTS + ('role', 'absent_since'))
            new.update(changes, name=row['name'], present=True, created_at=now, updated_at=now)
            plan.inserts.append(new)
            if new['vmid'] is not None:
                by_vmid[new['vmid']] = new
            else:
                by_name[new['name']] = new
        elif changes:
            if 'id' in old:  # else it is an insert of this same plan
                plan.updates.append(dict(changes, _id=old['id'], updated_at=now))
            old.update(changes)
    if mark_missing:
        for row in existing:
            if row['id'] not in matched and row['present']:
                plan.absent.append(dict(row))
                plan.updates.append(dict(_id=row['id'], present=False, absent_since=now, updated_at=now))
                plan.log.append(dict(entity='server', key=server_key(row), field='present', old='true', new='false'))
    return plan


def server_key(row):
    """How logs and messages name a server: `name (vmid N)`, or the name alone before it has a vmid."""
    return row['name'] if row.get('vmid') is None else '%s (vmid %s)' % (row['name'], row['vmid'])


def _text(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)
