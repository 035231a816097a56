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
  - Reads O(roles_file) (C(servers) with each server's C(role), optional C(vmid), C(cluster) and C(vars)) and
    O(datastores_file) (C(default_hdd), C(default_ssd), and C(clusters) with the defaults of a cluster that differ),
    keeping the line of every key.
  - Checks both against their JSON Schemas (C(schemas/roles.schema.json), C(schemas/datastores.schema.json)),
    then cross-checks them with the same code the inventory and M(proxmox_manager.core.server_role) use, every
    declared server must be in the merged view of every cluster (live Proxmox guests merged with the tfvars), every
    role in the role catalog, every default datastore in its cluster's datastore cache or in its cluster's Proxmox.
  - Covers every cluster the C(clusters) mapping of the inventory file declares (O(clusters), filled in on the
    controller), else the one cluster of the connection. A server name used in more than one cluster must name its
    C(cluster) (or be declared by its host name C(<name>.<cluster>)).
  - Every problem names the file, the line and the field (with a "did you mean" where a close name exists), and
    all of them are listed in one failure. The module only reads, so nothing is ever written.
  - A tfvars C(role) that disagrees with the declaration is a warning; the declaration wins.
  - Returns the entries ready for the O(proxmox_manager.core.server_role#module:servers) option of
    M(proxmox_manager.core.server_role), each naming its cluster (RV(servers)), and separately the C(state=absent)
    entries of servers that have a role in the state DB but are no longer declared (RV(prune)), so a playbook
    applies those only when asked to prune. RV(clusters) holds what each cluster's datastore calls take.
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
      - "The role declarations, C(servers: {NAME: {role, vmid, cluster, vars}}). NAME is a server name, or an
        inventory host name such as C(worker-110) or C(web-01.lab). The file must exist; C(servers: {}) declares no
        role."
      - Defaults to E(PROXMOX_MANAGER_ROLES_FILE), else C(state/roles.yml) of the config repo (O(project_dir)).
    type: path
  datastores_file:
    description:
      - "The datastore declarations: C(default_hdd) and C(default_ssd) for every cluster, and
        C(clusters: {NAME: {default_hdd, default_ssd}}) where a cluster differs. A missing file declares nothing."
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

- name: Apply each cluster's declarations in one transaction, pruning only when asked
  proxmox_manager.core.server_role:
    cluster: "{{ item.cluster }}"
    servers: >-
      {{ (declarations.servers + (declarations.prune if prune | bool else []))
         | selectattr('cluster', 'equalto', item.cluster) | list }}
  loop: "{{ declarations.clusters }}"
  loop_control:
    label: "{{ item.cluster }}"

- name: Declarations kept elsewhere
  proxmox_manager.core.declarations_validate:
    roles_file: gitops/roles.yml
    datastores_file: gitops/datastores.yml
'''

RETURN = r'''
clusters:
  description:
    - One item per cluster the call covers, in the order of the inventory file's C(clusters) mapping, with what
      that cluster's M(proxmox_manager.core.server_role), M(proxmox_manager.core.datastore_refresh) and
      M(proxmox_manager.core.datastore_default) calls take.
  returned: success
  type: list
  elements: dict
  contains:
    cluster:
      description: The cluster's name.
      type: str
      sample: lab
    declared:
      description:
        - How many servers of the cluster are declared; their entries are those of RV(servers) that name the
          cluster.
      type: int
      sample: 12
    undeclared:
      description:
        - How many servers of the cluster have a role in the state DB but are not declared any more; their
          entries are those of RV(prune) that name the cluster.
      type: int
      sample: 1
    default_hdd:
      description: The cluster's default HDD datastore (its own under C(clusters), else the top level), null when
        not declared.
      type: str
      sample: local-lvm
    default_ssd:
      description: The cluster's default SSD datastore, null when not declared.
      type: str
      sample: lab-ssd
    datastores_refresh:
      description:
        - Whether a default datastore of the cluster exists in its Proxmox but not yet in its (non-empty) datastore
          cache, so the cache must be refreshed before M(proxmox_manager.core.datastore_default) accepts it.
      type: bool
    terraform_vars_file:
      description: Where the cluster's default datastores are written for Terraform, beside its tfvars file.
      type: str
      sample: terraform/lab/datastores.auto.tfvars.json
servers:
  description:
    - One O(proxmox_manager.core.server_role#module:servers) entry per declared server, in file order.
    - Each entry names its C(cluster), which M(proxmox_manager.core.server_role) checks against the cluster it acts
      on; with several clusters, give each cluster's entries (C(selectattr('cluster', 'equalto', NAME))) to a call
      of its own.
    - They are returned once, not again per cluster, as 10,000 entries cost Ansible time on every copy.
  returned: success
  type: list
  elements: dict
  sample: [{name: AI-agent, vmid: 100, cluster: demo, role: web, state: present}]
prune:
  description:
    - O(proxmox_manager.core.server_role#module:servers) entries with C(state=absent) for the servers that have a
      role in the state DB but are not declared any more.
    - Each entry names its C(cluster), as in RV(servers).
  returned: success
  type: list
  elements: dict
  sample: [{name: build-box, vmid: 120, cluster: demo, role: java, state: absent}]
undeclared:
  description: The servers of RV(prune), with their inventory host name, cluster and role, for display.
  returned: success
  type: list
  elements: dict
  sample: [{host: build-box, cluster: demo, name: build-box, vmid: 120, role: java}]
stale:
  description:
    - State DB rows with a role whose server is gone from both Proxmox and the tfvars of its cluster. They cannot
      be pruned by name; M(proxmox_manager.core.server_sync) marks them absent.
  returned: success
  type: list
  elements: dict
  sample: [{cluster: demo, name: test, vmid: null, role: web}]
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
    cluster:
      description: The cluster of the server.
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
  description:
    - The declared default HDD datastore, null when not declared. With one cluster, that cluster's
      (RV(clusters[].default_hdd)); with several, the top level of O(datastores_file).
  returned: success
  type: str
  sample: HDD-Storage
default_ssd:
  description:
    - The declared default SSD datastore, null when not declared. With one cluster, that cluster's; with several,
      the top level of O(datastores_file).
  returned: success
  type: str
  sample: ssd-pool
datastores_refresh:
  description:
    - Whether the datastore cache of any cluster must be refreshed before M(proxmox_manager.core.datastore_default)
      accepts its defaults (see RV(clusters[].datastores_refresh)).
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

import collections

from ansible_collections.proxmox_manager.core.plugins.module_utils import (
    datastores,
    declarations,
    merged_view,
    role_assignment,
    server_plan,
)
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import ProxmoxManagerError, in_cluster
from ansible_collections.proxmox_manager.core.plugins.module_utils.module_base import ProxmoxManagerModule

_ENTRY_KEYS = ('name', 'vmid', 'cluster', 'role', 'state')  # what server_role's `servers` option takes


def _check_datastores(module, decl, targets):
    """(problems, warnings, {cluster: refresh needed}): each cluster's defaults against its own datastores."""
    problems, warnings, refresh = [], [], {}
    several = len(targets) > 1
    for target in targets:
        name, client = target['cluster'], target['client']
        try:
            found, found_warnings, refresh[name] = declarations.check_datastores(
                decl, datastores.read(module.store, name), lambda client=client: datastores.fetch(client), name,
                several)
        except ProxmoxManagerError as exc:
            raise in_cluster(exc, name) if several else exc
        problems.extend(found)
        warnings.extend(found_warnings)
    return problems, warnings, refresh


def _shared_vars_files(clusters):
    """Problems for clusters whose defaults would go to one Terraform vars file (tfvars files in one directory)."""
    problems, by_file = [], {}
    for item in clusters:
        if item['default_hdd'] is None and item['default_ssd'] is None:
            continue  # nothing is written for it
        first = by_file.setdefault(item['terraform_vars_file'], item['cluster'])
        if first != item['cluster']:
            problems.append('The clusters %s and %s would both write their default datastores to %s, as their tfvars '
                            'files are in one directory: give each cluster a tfvars_path in a directory of its own.'
                            % (first, item['cluster'], item['terraform_vars_file']))
    return problems


def _run(module):
    params = module.params
    decl = declarations.load(params['roles_file'], params['datastores_file'])
    catalog = role_assignment.role_catalog(params['roles_path'])
    view = module.merged_view()
    # Each cluster's name, which the view's fetch asked Proxmox for when no option gave it.
    targets = [dict(t, cluster=t['client'].cluster) for t in module.cluster_targets()]
    several = len(targets) > 1
    tfvars = dict((t['cluster'], merged_view.tfvars_path(t['tfvars'])) for t in targets)
    resolved, _unresolved, problems, warnings = declarations.check_servers(decl, view, catalog, tfvars)
    problems.extend(declarations.check_clusters(decl, view.clusters))
    ds_problems, ds_warnings, refresh = _check_datastores(module, decl, targets)
    clusters = []
    for target in targets:
        name = target['cluster']
        defaults = decl.defaults_for(name)
        clusters.append(dict(
            cluster=name,
            default_hdd=defaults.get('hdd'),
            default_ssd=defaults.get('ssd'),
            datastores_refresh=refresh[name],
            terraform_vars_file=datastores.tf_vars_path(None, target['tfvars'], params['project_dir']),
        ))
    ds_problems.extend(_shared_vars_files(clusters))
    declarations.require_valid(decl.problems + problems + ds_problems, decl.files)
    prune, stale = declarations.prune_entries(view, resolved, module.store.servers(), catalog)
    declared = collections.Counter(record.cluster for _entry, record in resolved)
    undeclared = collections.Counter(item['cluster'] for item in prune)
    for item in clusters:
        item.update(declared=declared[item['cluster']], undeclared=undeclared[item['cluster']])
    for warning in warnings + ds_warnings:
        module.warn(warning)
    for row in stale:
        module.warn('%s%s has the role %r in the state DB, but neither Proxmox nor the tfvars has that server any '
                    'more, so it cannot be pruned by name.' % (server_plan.server_key(row), ' in the cluster %s'
                                                               % row['cluster'] if several else '', row['role']))
    listed = [dict(key=entry['key'], host=record.host, cluster=record.cluster, name=record.name, vmid=record.vmid,
                   role=entry['role'], vars=entry['vars'], line=entry['line']) for entry, record in resolved]
    top = decl.defaults if several else dict(hdd=clusters[0]['default_hdd'], ssd=clusters[0]['default_ssd'])
    return dict(
        changed=False,
        servers=declarations.role_entries(resolved),
        prune=[dict((k, item[k]) for k in _ENTRY_KEYS if k in item) for item in prune],
        undeclared=[dict(host=item['host'], cluster=item['cluster'], name=item['name'], vmid=item['vmid'],
                         role=item['previous_role']) for item in prune],
        stale=[dict(cluster=row['cluster'], name=row['name'], vmid=row['vmid'], role=row['role']) for row in stale],
        declarations=listed,
        host_vars=dict((item['host'], item['vars']) for item in listed if item['vars']),
        default_hdd=top.get('hdd'),
        default_ssd=top.get('ssd'),
        datastores_refresh=any(refresh.values()),
        clusters=clusters,
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
        all_clusters=True,
        supports_check_mode=True,
    )
    module.run(_run)


if __name__ == '__main__':
    main()
