#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: server_role
short_description: Give servers a functional role, or take it away, in the state DB
version_added: 0.1.0
description:
  - Records the functional role (web, was, db, ...) of one server, or of many in one transaction.
  - Every server is validated against the merged view (live Proxmox guests merged with the tfvars declarations),
    the same view the C(proxmox_manager.core.proxmox) inventory lists. A server the inventory lists can always be
    given a role; any other name is refused with a "did you mean".
  - Every role is validated against the role catalog, the role directories of O(roles_path).
  - All entries are validated before anything is written. One invalid entry fails the whole call, listing every
    problem, and the state DB stays byte for byte as it was.
  - A server missing from the state DB gets its row on first assignment, with the vmid, node, status and IP the
    merged view knows. Every change goes to the change log.
  - Acts on one cluster, the one O(cluster) names or the connection reaches, so a vmid means that cluster's guest.
author:
  - Proxmox Manager maintainers (@proxmox-manager)
extends_documentation_fragment:
  - proxmox_manager.core.connection
  - proxmox_manager.core.state
  - proxmox_manager.core.backup
attributes:
  check_mode:
    support: full
    description: Computes the same plan from the current state DB without writing.
  diff_mode:
    support: full
    description: Shows the role of each changed server before and after.
options:
  name:
    description:
      - The server, as the inventory names it. A guest name shared by several guests needs O(vmid),
        or the inventory host name C(<name>-<vmid>).
      - Mutually exclusive with O(servers).
    type: str
  vmid:
    description: Picks one of several guests that share O(name).
    type: int
  role:
    description:
      - The role to give. Required when O(state=present).
      - With O(state=absent), only this role is removed; without it, any role is.
    type: str
  state:
    description: Whether the server has the role (V(present)) or no role (V(absent)).
    type: str
    choices: [present, absent]
    default: present
  servers:
    description:
      - Many servers in ONE call and ONE transaction; a thousand declarations are one task.
      - Each item takes O(name), O(vmid), O(role) and O(state) as above, and optionally its cluster.
    type: list
    elements: dict
    suboptions:
      name:
        description: The server.
        type: str
        required: true
      vmid:
        description: Picks one of several guests that share the name.
        type: int
      cluster:
        description:
          - The cluster of the server, as in RV(proxmox_manager.core.declarations_validate#module:servers).
          - It must be the cluster the call acts on (O(cluster)); an entry of another cluster fails the call.
        type: str
      role:
        description: The role.
        type: str
      state:
        description: V(present) or V(absent).
        type: str
        choices: [present, absent]
        default: present
  servers_file:
    description:
      - A JSON or YAML file holding the same list as O(servers), read by the module itself.
      - For thousands of servers. Ansible does not then load, template and copy every value of a huge
        argument; at 10,000 servers the call takes about 3 s instead of 5 s with O(servers).
      - Mutually exclusive with O(name) and O(servers).
    type: path
  roles_path:
    description:
      - The role catalog, a directory whose subdirectories are the roles a server can be given.
      - Defaults to E(PROXMOX_MANAGER_ROLES), else the config repo's C(roles/) (O(project_dir)) when it exists, else
        the roles this collection ships.
    type: path
'''

EXAMPLES = r'''
- name: Give AI-agent the web role
  proxmox_manager.core.server_role:
    name: AI-agent
    role: web

- name: One of two guests called worker
  proxmox_manager.core.server_role:
    name: worker
    vmid: 111
    role: was

- name: Take a role away
  proxmox_manager.core.server_role:
    name: AI-agent
    state: absent

- name: Ten thousand servers from a file, in one transaction
  proxmox_manager.core.server_role:
    servers_file: build/roles.json

- name: All declarations in one transaction, with a backup of the DB first
  proxmox_manager.core.server_role:
    backup: true
    servers:
      - {name: web-01, role: web}
      - {name: db-01, role: db}
      - {name: old-01, state: absent}
'''

RETURN = r'''
servers:
  description: One item per requested server, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The guest name.
      type: str
      sample: AI-agent
    host:
      description:
        - The inventory host name, C(<name>-<vmid>), returned only for a guest that shares its name with
          another guest; else the host name is the same as RV(servers[].name).
      type: str
      returned: when the host name differs from the name
      sample: worker-110
    vmid:
      description: The guest's vmid, null for a server declared but not created yet.
      type: int
      sample: 100
    role:
      description: The role after this call.
      type: str
      sample: web
    previous_role:
      description: The role before this call.
      type: str
      sample: null
    changed:
      description: Whether this server's role changed.
      type: bool
      sample: true
backup_file:
  description: The backup of the state DB taken before the change, when O(backup=true) and something changed.
  returned: changed and backup requested
  type: str
  sample: state/backups/proxmox_manager-20261122T101500.000000Z.db
problems:
  description: Every validation problem, when the call failed validation.
  returned: failure
  type: list
  elements: str
'''

from ansible_collections.proxmox_manager.core.plugins.module_utils import role_assignment
from ansible_collections.proxmox_manager.core.plugins.module_utils.module_base import ProxmoxManagerModule


def _run(module):
    params = module.params
    if params['servers_file']:
        entries = role_assignment.load_entries(params['servers_file'])
    elif params['servers'] is not None:
        entries = params['servers']
    else:
        entries = [dict(name=params['name'], vmid=params['vmid'], role=params['role'], state=params['state'])]
    catalog = role_assignment.role_catalog(params['roles_path'])
    view = module.merged_view()
    resolved, problems = role_assignment.resolve(view, entries, catalog)
    role_assignment.require_valid(problems)
    return module.write(lambda check: role_assignment.assign(module.store, resolved, check, module.cluster))


def main():
    module = ProxmoxManagerModule(
        argument_spec=dict(
            name=dict(type='str'),
            vmid=dict(type='int'),
            role=dict(type='str'),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            servers=dict(type='list', elements='dict', options=dict(
                name=dict(type='str', required=True),
                vmid=dict(type='int'),
                cluster=dict(type='str'),
                role=dict(type='str'),
                state=dict(type='str', default='present', choices=['present', 'absent']),
            )),
            servers_file=dict(type='path'),
            roles_path=dict(type='path'),
        ),
        backup=True,
        mutually_exclusive=[('name', 'servers', 'servers_file')],
        required_one_of=[('name', 'servers', 'servers_file')],
        supports_check_mode=True,
    )
    module.run(_run)


if __name__ == '__main__':
    main()
