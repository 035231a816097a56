#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: datastore_refresh
short_description: Cache the cluster's storages in the state DB
version_added: 0.1.0
description:
  - Acts on one cluster, the one named by O(cluster) (whose connection then comes from the inventory file's
    C(clusters), see C(docs/clusters.md)), else the cluster of the connection. Only that cluster's rows of the
    state DB are replaced; the other clusters' datastores and defaults are never touched.
  - Reads every storage of the cluster in two API calls whatever the node count (C(/cluster/resources?type=storage)
    for capacity per node, C(/storage) for type and content), then replaces the cached rows in one transaction.
  - Proxmox is asked first; when it fails, the old cache and the defaults stay exactly as they were.
  - A storage on several nodes is one datastore. A shared storage is counted once; node-local capacity is summed.
    The per-node figures are kept and returned. Sizes are bytes.
  - The default HDD and SSD choices survive a refresh. A default whose storage vanished from Proxmox is reported
    in RV(vanished_defaults) and as a warning, and stays the default until changed.
  - A state DB of the layout before several clusters (schema v2, or the original app's v1) is upgraded by the
    first write, and its datastores, default flags included, become the rows of this call's cluster.
  - With no defaults yet for the cluster, they start from E(PROXMOX_HDD_DATASTORE) and E(PROXMOX_SSD_DATASTORE), else
    V(local-lvm) and V(local), when those storages exist. A default that cannot hold disks (its content lacks
    C(images), as a stock V(local)'s C(iso,vztmpl,backup) does) is kept, and named in RV(default_warnings) and a
    warning.
author:
  - Proxmox Manager maintainers (@proxmox-manager)
extends_documentation_fragment:
  - proxmox_manager.core.connection
  - proxmox_manager.core.state
  - proxmox_manager.core.backup
attributes:
  check_mode:
    support: full
    description: Fetches and compares, writes nothing.
  diff_mode:
    support: full
    description: Shows each datastore that changed, before and after.
options: {}
'''

EXAMPLES = r'''
- name: Refresh the datastore cache
  proxmox_manager.core.datastore_refresh:
  register: stores

- name: Refresh the cache of the lab cluster declared in inventory/proxmox.yml
  proxmox_manager.core.datastore_refresh:
    cluster: lab

- name: Show the defaults
  ansible.builtin.debug:
    msg: "HDD {{ stores.default_hdd }}, SSD {{ stores.default_ssd }}"
'''

RETURN = r'''
cluster:
  description: The cluster whose datastores were refreshed.
  returned: success
  type: str
  sample: prod
count:
  description: How many storages Proxmox reported.
  returned: success
  type: int
  sample: 5
datastores:
  description: The cluster's cached datastores after the refresh.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: The storage id.
      type: str
      sample: local-lvm
    type:
      description: The storage type (dir, lvmthin, zfspool, nfs, ...).
      type: str
    size:
      description: Total bytes (shared storages counted once, node-local ones summed).
      type: int
    used:
      description: Used bytes.
      type: int
    available:
      description: Free bytes.
      type: int
    content:
      description: Content types, comma separated.
      type: str
    enabled:
      description: False for a disabled storage, or a default that vanished from Proxmox.
      type: bool
    shared:
      description: Whether the storage is shared between nodes.
      type: bool
    nodes:
      description: Per-node figures, C(node), C(status), C(size), C(used), C(available).
      type: list
      elements: dict
    is_default_hdd:
      description: The default HDD datastore.
      type: bool
    is_default_ssd:
      description: The default SSD datastore.
      type: bool
    is_system_default:
      description: One of the environment or built-in defaults.
      type: bool
default_hdd:
  description: The default HDD datastore id.
  returned: success
  type: str
  sample: local-lvm
default_ssd:
  description: The default SSD datastore id.
  returned: success
  type: str
  sample: local
default_sources:
  description: Where each default came from, V(db), V(env) or V(builtin).
  returned: success
  type: dict
  sample: {"hdd": "db", "ssd": "builtin"}
vanished_defaults:
  description: Defaults whose storage Proxmox no longer reports, by kind.
  returned: success
  type: dict
  sample: {"hdd": "HDD-Storage"}
default_warnings:
  description: By kind, why disks cannot land on that default (see M(proxmox_manager.core.datastore_info)).
  returned: success
  type: dict
  sample: {"ssd": "The default SSD datastore 'local' cannot hold disks: its content is iso,vztmpl,backup, ..."}
backup_file:
  description: The backup taken before the change, when O(backup=true) and something changed.
  returned: changed and backup requested
  type: str
'''

from ansible_collections.proxmox_manager.core.plugins.module_utils import datastores
from ansible_collections.proxmox_manager.core.plugins.module_utils.module_base import ProxmoxManagerModule


def _run(module):
    result = module.write(lambda check: datastores.refresh(module.store, module.client, check, module.cluster))
    for kind, sid in sorted(result['vanished_defaults'].items()):
        module.warn('The default %s datastore %r is no longer reported by Proxmox; it stays the default until '
                    'changed with proxmox_manager.core.datastore_default.' % (kind.upper(), sid))
    for kind in datastores.KINDS:
        if kind in result['default_warnings']:
            module.warn(result['default_warnings'][kind])
    return result


def main():
    module = ProxmoxManagerModule(argument_spec=dict(), backup=True, supports_check_mode=True)
    module.run(_run)


if __name__ == '__main__':
    main()
