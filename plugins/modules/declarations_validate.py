#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: declarations_validate
short_description: Validate the role and datastore declarations kept in git
version_added: 0.1.0
description:
  - Reads O(roles_file) (C(servers) with each server's C(role), optional C(vmid) and C(vars)) and
    O(datastores_file) (C(default_hdd), C(default_ssd)), keeping the line of every key.
  - Checks both against their JSON Schemas (C(schemas/roles.schema.json), C(schemas/datastores.schema.json)),
    then cross-checks them with the same code the inventory and M(proxmox_manager.core.server_role) use, every
    declared server must be in the merged view (live Proxmox guests merged with the tfvars), every role in the
    role catalog, every default datastore in the datastore cache or in Proxmox.
  - Every problem names the file, the line and the field (with a "did you mean" where a close name exists), and
    all of them are listed in one failure. The module only reads, so nothing is ever written.
  - A tfvars C(role) that disagrees with the declaration is a warning; the declaration wins.
  - Returns the entries ready for the O(proxmox_manager.core.server_role#module:servers) option of
    M(proxmox_manager.core.server_role), and separately the C(state=absent) entries of servers that have a role in
    the state DB but are no longer declared, so a playbook applies those only when asked to prune.
author:
  - Proxmox Manager maintainers (@proxmox-manager)
extends_documentation_fragment:
  - proxmox_manager.core.connection
  - proxmox_manager.core.state
attributes:
  check_mode:
    support: full
    description: The module never writes, so it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  roles_file:
    description:
      - "The role declarations, C(servers: {NAME: {role, vmid, vars}}). NAME is a server name, or an inventory host
        name such as C(worker-110). The file must exist; C(servers: {}) declares no role."
      - Defaults to E(PROXMOX_MANAGER_ROLES_FILE), else C(state/roles.yml) of the config repo (O(project_dir)).
    type: path
  datastores_file:
    description:
      - The datastore declarations, C(default_hdd) and C(default_ssd). A missing file declares nothing.
      - Defaults to E(PROXMOX_MANAGER_DATASTORES_FILE), else C(state/datastores.yml) of the config repo (O(project_dir)).
    type: path
  roles_path:
    description:
      - The role catalog, a directory whose subdirectories are the roles a server can be given.
      - Defaults to E(PROXMOX_MANAGER_ROLES), else the config repo's C(roles/) (O(project_dir)) when it exists, else
        the roles this collection ships.
    type: path
seealso:
  - module: proxmox_manager.core.server_role
  - module: proxmox_manager.core.server_drift
  - module: proxmox_manager.core.datastore_default
'''

EXAMPLES = r'''
- name: Validate state/roles.yml and state/datastores.yml
  proxmox_manager.core.declarations_validate:
  register: declarations

- name: Apply every declaration in one transaction, pruning only when asked
  proxmox_manager.core.server_role:
    servers: "{{ declarations.servers + (declarations.prune if prune | bool else []) }}"
    backup: true

- name: Declarations kept elsewhere
  proxmox_manager.core.declarations_validate:
    roles_file: gitops/roles.yml
    datastores_file: gitops/datastores.yml
'''

RETURN = r'''
servers:
  description: One O(proxmox_manager.core.server_role#module:servers) entry per declared server, in file order.
  returned: success
  type: list
  elements: dict
  sample: [{name: AI-agent, vmid: 100, role: web, state: present}]
prune:
  description:
    - O(proxmox_manager.core.server_role#module:servers) entries with C(state=absent) for the servers that have a
      role in the state DB but are not declared any more.
  returned: success
  type: list
  elements: dict
  sample: [{name: build-box, vmid: 120, role: java, state: absent}]
undeclared:
  description: The servers of RV(prune), with their inventory host name and role, for display.
  returned: success
  type: list
  elements: dict
  sample: [{host: build-box, name: build-box, vmid: 120, role: java}]
stale:
  description:
    - State DB rows with a role whose server is gone from both Proxmox and the tfvars. They cannot be pruned by
      name; M(proxmox_manager.core.server_sync) marks them absent.
  returned: success
  type: list
  elements: dict
  sample: [{name: test, vmid: null, role: web}]
declarations:
  description: Every declaration as resolved against the merged view.
  returned: success
  type: list
  elements: dict
  contains:
    key:
      description: The key in O(roles_file).
      type: str
    host:
      description: The inventory host name of the server.
      type: str
    name:
      description: The guest name.
      type: str
    vmid:
      description: The vmid, null for a server declared but not created yet.
      type: int
    role:
      description: The declared role.
      type: str
    vars:
      description: The declared role variables.
      type: dict
    line:
      description: The line of the declaration in O(roles_file).
      type: int
host_vars:
  description: The declared C(vars) by inventory host name, for the hosts that have any.
  returned: success
  type: dict
  sample: {AI-agent: {web_port: 8080}}
default_hdd:
  description: The declared default HDD datastore, null when not declared.
  returned: success
  type: str
  sample: HDD-Storage
default_ssd:
  description: The declared default SSD datastore, null when not declared.
  returned: success
  type: str
  sample: ssd-pool
datastores_refresh:
  description:
    - Whether a declared default datastore exists in Proxmox but not yet in the (non-empty) datastore cache, so the
      cache must be refreshed before M(proxmox_manager.core.datastore_default) accepts it.
  returned: success
  type: bool
roles_file:
  description: The role declarations file that was read.
  returned: success
  type: str
  sample: state/roles.yml
datastores_file:
  description: The datastore declarations file that was read (or would have been, when it does not exist).
  returned: success
  type: str
  sample: state/datastores.yml
problems:
  description: "Every problem, each as C(file:line: field: message), when validation failed."
  returned: failure
  type: list
  elements: str
  sample:
    - "state/roles.yml:13: servers.AI-agnet: Server 'AI-agnet' does not exist in Proxmox or in the tfvars
      declarations. Did you mean 'AI-agent'?"
'''

from ansible_collections.proxmox_manager.core.plugins.module_utils import (
    datastores,
    declarations,
    merged_view,
    role_assignment,
    server_plan,
)
from ansible_collections.proxmox_manager.core.plugins.module_utils.module_base import ProxmoxManagerModule


def _run(module):
    params = module.params
    decl = declarations.load(params['roles_file'], params['datastores_file'])
    catalog = role_assignment.role_catalog(params['roles_path'])
    view = module.merged_view()
    resolved, _unresolved, problems, warnings = declarations.check_servers(
        decl, view, catalog, merged_view.tfvars_path(params['tfvars_path']))
    ds_problems, ds_warnings, refresh = declarations.check_datastores(
        decl, datastores.read(module.store), lambda: datastores.fetch(module.client))
    declarations.require_valid(decl.problems + problems + ds_problems, decl.files)
    prune, stale = declarations.prune_entries(view, resolved, module.store.servers(), catalog)
    for warning in warnings + ds_warnings:
        module.warn(warning)
    for row in stale:
        module.warn('%s has the role %r in the state DB, but neither Proxmox nor the tfvars has that server any '
                    'more, so it cannot be pruned by name.' % (server_plan.server_key(row), row['role']))
    listed = [dict(key=entry['key'], host=record.host, name=record.name, vmid=record.vmid, role=entry['role'],
                   vars=entry['vars'], line=entry['line']) for entry, record in resolved]
    return dict(
        changed=False,
        servers=declarations.role_entries(resolved),
        prune=[dict((k, v) for k, v in item.items() if k in ('name', 'vmid', 'role', 'state')) for item in prune],
        undeclared=[dict(host=item['host'], name=item['name'], vmid=item['vmid'], role=item['previous_role'])
                    for item in prune],
        stale=[dict(name=row['name'], vmid=row['vmid'], role=row['role']) for row in stale],
        declarations=listed,
        host_vars=dict((item['host'], item['vars']) for item in listed if item['vars']),
        default_hdd=decl.defaults.get('hdd'),
        default_ssd=decl.defaults.get('ssd'),
        datastores_refresh=refresh,
        roles_file=decl.roles.path,
        datastores_file=declarations.datastores_file(params['datastores_file']),
    )


def main():
    module = ProxmoxManagerModule(
        argument_spec=dict(
            # Unset, they fall back to the environment, then to state/ (declarations.roles_file()).
            roles_file=dict(type='path'),
            datastores_file=dict(type='path'),
            roles_path=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    module.run(_run)


if __name__ == '__main__':
    main()
