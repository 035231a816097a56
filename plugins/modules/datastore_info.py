#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: datastore_info
short_description: The cached datastores and the default HDD/SSD choice
version_added: 0.1.0
description:
  - Returns the datastores of one cluster with sizes, per-node figures and flags, and its default HDD and SSD
    datastores, from the state DB's cache.
  - The cluster is the one named by O(cluster) (whose connection then comes from the inventory file's
    C(clusters), see C(docs/clusters.md)), else the cluster of the connection. Only that cluster's rows are listed.
  - When the call names no cluster and Proxmox cannot tell its name (it is down, or the token lacks C(Sys.Audit)
    on C(/)), Proxmox is not asked again. The cache answers, with a warning, only when the state DB holds the
    datastores of exactly one cluster; with several the call fails asking for O(cluster); with none the defaults
    fall back as below.
  - Writes nothing, ever, and creates no state DB. Recording the datastores is
    M(proxmox_manager.core.datastore_refresh)'s job.
  - When nothing is cached for the cluster (no state DB yet, or an empty cache), or with O(live=true), asks Proxmox
    (two calls) and answers with what a refresh would record, without recording it; RV(source) is V(proxmox), and
    with nothing cached RV(msg) says to run M(proxmox_manager.core.datastore_refresh).
  - When neither Proxmox nor the DB can answer, the defaults come from E(PROXMOX_HDD_DATASTORE) and
    E(PROXMOX_SSD_DATASTORE), else V(local-lvm) and V(local), and RV(source) and a warning say so.
  - A default disks cannot land on is named in RV(default_warnings) and in a warning, the result still carrying
    it - in particular the built-in SSD fallback V(local), which a stock Proxmox VE gives only
    C(iso,vztmpl,backup), not C(images).
author:
  - Proxmox Manager maintainers (@proxmox-manager)
extends_documentation_fragment:
  - proxmox_manager.core.connection
  - proxmox_manager.core.state
attributes:
  check_mode:
    support: full
    description: Reads only, in check mode or not.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
options:
  live:
    description:
      - Answer from Proxmox (two calls) rather than from the cache, the cached default flags applied to the live
        list. Nothing is recorded; use M(proxmox_manager.core.datastore_refresh) to update the cache.
      - When Proxmox fails, the cache answers, with a warning.
    type: bool
    default: false
    aliases: [refresh]
'''

EXAMPLES = r'''
- name: Where do new disks land?
  proxmox_manager.core.datastore_info:
  register: ds

- name: Use the defaults
  ansible.builtin.debug:
    msg: "{{ ds.default_hdd }} / {{ ds.default_ssd }}"

- name: The lab cluster's datastores (a cluster of inventory/proxmox.yml)
  proxmox_manager.core.datastore_info:
    cluster: lab

- name: What Proxmox reports now, without recording it
  proxmox_manager.core.datastore_info:
    live: true
'''

RETURN = r'''
cluster:
  description:
    - The cluster whose datastores are listed; null when the call names none, Proxmox could not tell its name and
      the state DB holds no cluster's datastores.
  returned: always
  type: str
  sample: prod
datastores:
  description: The cluster's enabled datastores, as M(proxmox_manager.core.datastore_refresh) returns them.
  returned: always
  type: list
  elements: dict
default_hdd:
  description: The default HDD datastore id.
  returned: always
  type: str
  sample: local-lvm
default_ssd:
  description: The default SSD datastore id.
  returned: always
  type: str
  sample: local
default_sources:
  description: Where each default came from, V(db), V(env) or V(builtin).
  returned: always
  type: dict
source:
  description:
    - Where the list came from, V(cache), V(proxmox) (nothing cached, or O(live=true); not recorded), or
      V(fallback) when neither answered.
  returned: always
  type: str
  sample: cache
default_warnings:
  description:
    - By kind, why disks cannot land on that default - its content lacks C(images), it is not one of the cluster's
      datastores, or it is the built-in fallback V(local) that a stock Proxmox VE gives only C(iso,vztmpl,backup).
      Each is also a warning. Empty when both defaults can hold disks.
  returned: always
  type: dict
  sample: {"ssd": "The default SSD datastore 'local' cannot hold disks: its content is iso,vztmpl,backup, ..."}
msg:
  description: With nothing cached for the cluster, that the list was read from Proxmox and not recorded, and to
    run M(proxmox_manager.core.datastore_refresh) (which also upgrades a state DB of an older layout).
  returned: when nothing is cached and Proxmox answered
  type: str
'''

from ansible_collections.proxmox_manager.core.plugins.module_utils import datastores
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import ProxmoxManagerError
from ansible_collections.proxmox_manager.core.plugins.module_utils.module_base import ProxmoxManagerModule


def _cluster(module):
    """This call's cluster, or None (with a warning) when it names none and Proxmox cannot tell its name."""
    try:
        return module.cluster
    except ProxmoxManagerError as exc:
        module.warn('The cluster\'s name is unknown: %s' % exc)
        return None


def _run(module):
    result, warnings = datastores.info(module.store, lambda: module.client, module.params['live'], _cluster(module))
    for warning in warnings:
        module.warn(warning)
    return dict(result, changed=False)


def main():
    module = ProxmoxManagerModule(argument_spec=dict(live=dict(type='bool', default=False, aliases=['refresh'])),
                                  supports_check_mode=True)
    module.run(_run)


if __name__ == '__main__':
    main()
