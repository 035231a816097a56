#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: server_drift
short_description: Compare the role declarations in git, the state DB and live Proxmox
version_added: 0.1.0
description:
  - For every server of the merged view (live Proxmox guests merged with the tfvars), every declaration of
    O(roles_file) and every state DB row with a role, compares the role declared in git, the role recorded in the
    state DB and what Proxmox reports.
  - Covers every cluster the C(clusters) mapping of the inventory file declares (O(clusters), filled in on the
    controller), else the one cluster of the connection. State DB rows are matched to servers within their own
    cluster, and every row names its cluster.
  - "Each server gets zero or more kinds of drift:
    C(missing), declared in git but the state DB has no role for it (not applied yet);
    C(role mismatch), git and the state DB give different roles;
    C(undeclared), the state DB has a role that git does not declare (removed from git without pruning, or given by
    hand);
    C(declared only), declared in git but not live in Proxmox (not created yet, destroyed, or unknown)."
  - Returns the rows and the same comparison rendered as a readable text table, with a CLUSTER column.
  - Only reads; with O(fail_on_drift=true) it fails when any server drifts, with the table in the message.
author:
  - Proxmox Manager maintainers (@proxmox-manager)
extends_documentation_fragment:
  - proxmox_manager.core.connection
  - proxmox_manager.core.connection.clusters
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
      - The role declarations. Defaults to E(PROXMOX_MANAGER_ROLES_FILE), else C(state/roles.yml).
      - A file that is not valid YAML or breaks its schema fails the module; declarations naming servers that do
        not exist are compared (as C(declared only)) and reported in RV(problems).
    type: path
  fail_on_drift:
    description: Fail when any server drifts.
    type: bool
    default: false
seealso:
  - module: proxmox_manager.core.declarations_validate
  - module: proxmox_manager.core.server_role
'''

EXAMPLES = r'''
- name: Compare git, the state DB and Proxmox
  proxmox_manager.core.server_drift:
  register: drift

- name: Show the table
  ansible.builtin.debug:
    msg: "{{ drift.table.splitlines() }}"

- name: Fail a scheduled CI job when anything drifts
  proxmox_manager.core.server_drift:
    fail_on_drift: true
'''

RETURN = r'''
rows:
  description: One row per server, sorted by host name, then cluster.
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The inventory host name (the declared or stored name for a server Proxmox does not have).
      type: str
      sample: worker-110
    cluster:
      description:
        - The cluster of the server (of the state DB row, for a server Proxmox does not have), null for a declaration
          that names no cluster and resolves in none.
      type: str
      sample: demo
    name:
      description: The guest name.
      type: str
      sample: worker
    vmid:
      description: The vmid, null when not known.
      type: int
      sample: 110
    git_role:
      description: The role declared in O(roles_file), null when not declared.
      type: str
      sample: was
    db_role:
      description: The role recorded in the state DB, null when none.
      type: str
      sample: was
    proxmox:
      description:
        - The guest status (V(running), V(stopped), ...) for a live server, V(not created) for a server declared
          in the tfvars only, V(not found) or V(ambiguous) for a declaration the merged view cannot resolve, and
          V(gone) for a state DB row whose server no longer exists.
      type: str
      sample: running
    drift:
      description: The kinds of drift, empty when git, the state DB and Proxmox agree.
      type: list
      elements: str
      sample: [missing]
table:
  description:
    - The rows as an aligned text table, with a summary line at the end.
    - The columns are SERVER, CLUSTER, VMID, GIT (roles.yml), STATE DB, PROXMOX and DRIFT.
  returned: always
  type: str
counts:
  description: How many servers have each kind of drift.
  returned: always
  type: dict
  sample: {missing: 1, undeclared: 0, role mismatch: 0, declared only: 1}
drifted:
  description: How many servers drift.
  returned: always
  type: int
  sample: 2
summary:
  description: The summary line of the table.
  returned: always
  type: str
  sample: "Drift in 2 of 11 servers: 1 missing, 1 declared only."
problems:
  description: Declarations the merged view cannot resolve (what validation would report about them).
  returned: always
  type: list
  elements: str
'''

from ansible_collections.proxmox_manager.core.plugins.module_utils import declarations, merged_view
from ansible_collections.proxmox_manager.core.plugins.module_utils.module_base import ProxmoxManagerModule


def _run(module):
    decl = declarations.load(module.params['roles_file'], with_datastores=False)
    declarations.require_valid(decl.problems, decl.files)  # what cannot be read cannot be compared
    view = module.merged_view()
    tfvars = dict((t['client'].cluster, merged_view.tfvars_path(t['tfvars'])) for t in module.cluster_targets())
    resolved, unresolved, problems, _warnings = declarations.check_servers(decl, view, None, tfvars)
    rows = declarations.drift_rows(view, resolved, unresolved, module.store.servers())
    for problem in problems:
        module.warn(problem)
    summary = declarations.summary(rows)
    result = dict(rows=rows, table=declarations.render_table(rows), counts=declarations.drift_counts(rows),
                  drifted=sum(1 for r in rows if r['drift']), summary=summary, problems=problems)
    if module.params['fail_on_drift'] and result['drifted']:
        module.fail_json(msg='%s\n%s' % (summary, result['table']), **result)
    return dict(result, changed=False)


def main():
    module = ProxmoxManagerModule(
        argument_spec=dict(
            roles_file=dict(type='path'),
            fail_on_drift=dict(type='bool', default=False),
        ),
        all_clusters=True,
        supports_check_mode=True,
    )
    module.run(_run)


if __name__ == '__main__':
    main()
