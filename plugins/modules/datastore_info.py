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
  - Returns the datastores with sizes, per-node figures and flags, and the default HDD and SSD datastores,
    from the state DB's cache.
  - Asks Proxmox (and records the answer, as M(proxmox_manager.core.datastore_refresh) does) only when the cache
    is empty or O(refresh=true).
  - When neither Proxmox nor the DB can answer, the defaults come from E(PROXMOX_HDD_DATASTORE) and
    E(PROXMOX_SSD_DATASTORE), else V(local-lvm) and V(local), and RV(source) and a warning say so.
author:
  - Proxmox Manager maintainers (@proxmox-manager)
extends_documentation_fragment:
  - proxmox_manager.core.connection
  - proxmox_manager.core.state
attributes:
  check_mode:
    support: full
    description: Reads only; with an empty cache, Proxmox is asked but nothing is recorded.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
options:
  refresh:
    description: Refresh the cache from Proxmox before answering.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Where do new disks land?
  proxmox_manager.core.datastore_info:
  register: ds

- name: Use the defaults
  ansible.builtin.debug:
    msg: "{{ ds.default_hdd }} / {{ ds.default_ssd }}"
'''

RETURN = r'''
datastores:
  description: The enabled datastores, as M(proxmox_manager.core.datastore_refresh) returns them.
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
  description: Where the list came from, V(cache), V(proxmox), or V(fallback) when neither answered.
  returned: always
  type: str
  sample: cache
'''

from ansible_collections.proxmox_manager.core.plugins.module_utils import datastores
from ansible_collections.proxmox_manager.core.plugins.module_utils.module_base import ProxmoxManagerModule


def _run(module):
    result, warnings = datastores.info(module.store, lambda: module.client, module.params['refresh'],
                                       module.check_mode)
    for warning in warnings:
        module.warn(warning)
    return dict(result, changed=False)


def main():
    module = ProxmoxManagerModule(argument_spec=dict(refresh=dict(type='bool', default=False)),
                                  supports_check_mode=True)
    module.run(_run)


if __name__ == '__main__':
    main()
