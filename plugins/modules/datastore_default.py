#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: datastore_default
short_description: Choose the default HDD and SSD datastores, and hand them to Terraform
version_added: 0.1.0
description:
  - Sets the default HDD and/or SSD datastore that new disks land on, in one cluster.
  - Acts on one cluster, the one named by O(cluster) (whose connection and O(tfvars_path) then come from the
    inventory file's C(clusters), see C(docs/clusters.md)), else the cluster of the connection. Each cluster has
    its own defaults; setting one cluster's never moves another's.
  - Both ids must exist in the cluster's datastore cache, which is refreshed from Proxmox first when it is empty.
    An unknown id fails listing the known ids, and nothing changes (a cache filled on the way is written
    only with the new flags).
  - A datastore given must hold disk images (its content includes C(images)); one that does not, such as a
    C(backup)-only NFS share or a stock V(local) (C(iso,vztmpl,backup)), is refused naming its content, and nothing
    changes.
  - A kind not given keeps its default. For a cluster with no defaults yet that is E(PROXMOX_HDD_DATASTORE) /
    E(PROXMOX_SSD_DATASTORE), else V(local-lvm) / V(local); when that storage does not exist, the call fails
    asking for both. Such a kept default that cannot hold disks is accepted, and named in RV(default_warnings)
    and a warning.
  - The flags move in one transaction, and O(terraform_vars_file) is rewritten atomically (temp file and rename)
    with C(proxmox_hdd_datastore) and C(proxmox_ssd_datastore) while the DB lock is held, so two concurrent calls
    end with one consistent pair of flags that matches the file.
  - A disk declared with C(datastore_id = "auto") in tfvars resolves by C(disk_type), V(hdd) to the HDD default,
    V(ssd) and V(nvme) to the SSD default (see C(terraform/main.tf)).
author:
  - Proxmox Manager maintainers (@proxmox-manager)
extends_documentation_fragment:
  - proxmox_manager.core.connection
  - proxmox_manager.core.state
  - proxmox_manager.core.backup
attributes:
  check_mode:
    support: full
    description: Validates and compares, writes neither the DB nor the vars file.
  diff_mode:
    support: full
    description: Shows the defaults before and after.
options:
  hdd:
    description: The datastore id for HDD disks.
    type: str
  ssd:
    description: The datastore id for SSD and NVMe disks.
    type: str
  terraform_vars_file:
    description:
      - The Terraform vars file the cluster's defaults are written to; a relative path is the config repo's
        (O(project_dir)).
      - Defaults to C(datastores.auto.tfvars.json) beside the cluster's tfvars file (O(tfvars_path)); for the
        single-cluster default C(terraform/terraform.tfvars.json) that is C(terraform/datastores.auto.tfvars.json),
        for a cluster of the inventory file's C(clusters) for example C(terraform/prod/datastores.auto.tfvars.json).
    type: path
'''

EXAMPLES = r'''
- name: New HDD disks go to HDD-Storage, SSD disks to ssd-pool
  proxmox_manager.core.datastore_default:
    hdd: HDD-Storage
    ssd: ssd-pool

- name: Only the SSD default
  proxmox_manager.core.datastore_default:
    ssd: ssd-pool

- name: The lab cluster's default, written to terraform/lab/datastores.auto.tfvars.json
  proxmox_manager.core.datastore_default:
    cluster: lab
    ssd: local-lvm
'''

RETURN = r'''
cluster:
  description: The cluster whose defaults were set.
  returned: success
  type: str
  sample: prod
default_hdd:
  description: The default HDD datastore after the call.
  returned: success
  type: str
  sample: HDD-Storage
default_ssd:
  description: The default SSD datastore after the call.
  returned: success
  type: str
  sample: ssd-pool
previous_hdd:
  description: The default HDD datastore before the call.
  returned: success
  type: str
previous_ssd:
  description: The default SSD datastore before the call.
  returned: success
  type: str
terraform_vars_file:
  description: The Terraform vars file that holds the cluster's defaults (absolute when O(project_dir) is known).
  returned: success
  type: str
  sample: /srv/config/terraform/prod/datastores.auto.tfvars.json
refreshed:
  description: Whether the cluster's cache was empty and had to be refreshed from Proxmox first.
  returned: success
  type: bool
default_sources:
  description:
    - Where each default came from, V(option) (given in this call), V(db), or for a cluster with no defaults yet
      V(env) (E(PROXMOX_HDD_DATASTORE), E(PROXMOX_SSD_DATASTORE)) or V(builtin) (V(local-lvm), V(local)).
  returned: success
  type: dict
  sample: {"hdd": "env", "ssd": "option"}
default_warnings:
  description: By kind, why disks cannot land on a default this call kept (see M(proxmox_manager.core.datastore_info)).
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
    params = module.params
    wanted = dict((kind, params[kind]) for kind in datastores.KINDS if params[kind])
    tf_vars = datastores.tf_vars_path(params['terraform_vars_file'], params['tfvars_path'], params['project_dir'])
    result = module.write(lambda check: datastores.set_defaults(
        module.store, module.client, wanted, tf_vars, check, module.cluster))
    for kind in datastores.KINDS:
        if kind in result['default_warnings']:
            module.warn(result['default_warnings'][kind])
    return result


def main():
    module = ProxmoxManagerModule(
        argument_spec=dict(
            hdd=dict(type='str'),
            ssd=dict(type='str'),
            terraform_vars_file=dict(type='path'),
        ),
        backup=True,
        required_one_of=[('hdd', 'ssd')],
        supports_check_mode=True,
    )
    module.run(_run)


if __name__ == '__main__':
    main()
