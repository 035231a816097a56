"""Verify of the gitops scenario: the state DB and the role_* groups equal state/roles.yml.

Run from the project root with the PROXMOX_* environment of the double:
    python verify_gitops.py STATE_DB
Reads the declarations with plain PyYAML, the DB with sqlite3 and the groups
from `ansible-inventory --list`, so it checks the collection from outside.
"""

import json
import os
import sqlite3
import subprocess
import sys

import yaml


def plain(value):
    if isinstance(value, dict) and '__ansible_unsafe' in value:
        return value['__ansible_unsafe']
    return value


def main(db):
    with open(os.path.join('state', 'roles.yml')) as handle:
        declared = yaml.safe_load(handle)['servers']
    bindir = os.path.dirname(sys.executable)
    listing = subprocess.run([os.path.join(bindir, 'ansible-inventory'), '-i', 'inventory/proxmox.yml', '--list'],
                             capture_output=True, text=True, check=True)
    inventory = json.loads(listing.stdout)
    hostvars = dict((host, dict((k, plain(v)) for k, v in hv.items()))
                    for host, hv in inventory['_meta']['hostvars'].items())

    problems, want_groups, want_rows = [], {}, {}
    for name, entry in declared.items():
        # pve_name is set only where the host name differs from the Proxmox name
        hosts = [h for h, hv in hostvars.items() if name == hv.get('pve_name', h) and
                 entry.get('vmid') in (None, hv.get('pve_vmid'))]
        if len(hosts) != 1:
            problems.append('%s: %d inventory hosts match, expected 1: %s' % (name, len(hosts), hosts))
            continue
        want_groups.setdefault('role_%s' % entry['role'], set()).add(hosts[0])
        want_rows[(name, hostvars[hosts[0]].get('pve_vmid'))] = entry['role']

    groups = dict((g, set(data.get('hosts', []))) for g, data in inventory.items() if g.startswith('role_'))
    if groups != want_groups:
        problems.append('role groups %s != declared %s' % (sorted((g, sorted(h)) for g, h in groups.items()),
                                                           sorted((g, sorted(h)) for g, h in want_groups.items())))
    conn = sqlite3.connect(db)
    rows = dict(((name, vmid), role) for name, vmid, role in
                conn.execute('SELECT name, vmid, role FROM servers WHERE role IS NOT NULL'))
    conn.close()
    if rows != want_rows:
        problems.append('state DB roles %s != declared %s' % (sorted(rows.items(), key=str),
                                                              sorted(want_rows.items(), key=str)))
    for group in sorted(want_groups):
        print('%s: %s' % (group, ', '.join(sorted(want_groups[group]))))
    print('state DB: %d servers with a role, as declared' % len(rows) if not problems else 'MISMATCH')
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
