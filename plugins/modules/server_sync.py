#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: server_sync
short_description: Reconcile the state DB with the merged view of Proxmox and tfvars
version_added: 0.1.0
description:
  - Records every server of the merged view (live Proxmox guests merged with the tfvars declarations) in the
    state DB, in one transaction.
  - New servers get a row; known servers get their vmid, node, status, IP, CPU and memory refreshed; a fact the
    view does not know never blanks a stored one.
  - Servers gone from the view are marked absent (C(present=false), C(absent_since)), never deleted, and keep
    their role, so a server that comes back has it again.
  - Roles are never changed here; use M(proxmox_manager.core.server_role).
  - Templates are not servers unless O(include_templates=true).
  - Acts on one cluster, the one O(cluster) names or the connection reaches; the rows of other clusters in the same
    state DB are never touched, nor marked absent.
author:
  - Proxmox Manager maintainers (@proxmox-manager)
extends_documentation_fragment:
  - proxmox_manager.core.connection
  - proxmox_manager.core.state
  - proxmox_manager.core.backup
attributes:
  check_mode:
    support: full
    description: Reports what would be added, updated and marked absent without writing.
  diff_mode:
    support: full
    description: Shows each changed field before and after.
options:
  include_templates:
    description: Record templates too.
    type: bool
    default: false
  want_agent_ips:
    description:
      - Ask running guests that declare no IP for their address (guest agent or lxc interfaces), bounded
        by O(max_workers). Without it, the IP is the declared one, and a stored IP is kept.
    type: bool
    default: false
  max_workers:
    description:
      - How many IP lookups run at once.
      - Each guest agent call holds one C(pvedaemon) worker of the guest's node (3 per node by default)
        while it runs; lookups beyond that queue on the node, so more workers than three per node gain nothing.
    type: int
    default: 16
'''

EXAMPLES = r'''
- name: Record every server Proxmox and tfvars know
  proxmox_manager.core.server_sync:

- name: What would change (nothing is written)
  proxmox_manager.core.server_sync:
  check_mode: true
  diff: true
'''

RETURN = r'''
added:
  description: Servers that got a new row (C(name), or C(name (vmid N))).
  returned: always
  type: list
  elements: str
  sample: ["AI-agent (vmid 100)"]
updated:
  description: Servers whose stored facts changed.
  returned: always
  type: list
  elements: str
marked_absent:
  description: Servers no longer in the merged view, now marked absent, with the role they keep.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "test", "vmid": null, "role": "web"}]
count:
  description: How many servers the merged view holds.
  returned: always
  type: int
backup_file:
  description: The backup taken before the change, when O(backup=true) and something changed.
  returned: changed and backup requested
  type: str
'''

from ansible_collections.proxmox_manager.core.plugins.module_utils import role_assignment
from ansible_collections.proxmox_manager.core.plugins.module_utils.module_base import ProxmoxManagerModule
from ansible_collections.proxmox_manager.core.plugins.module_utils.proxmox_client import DEFAULT_MAX_WORKERS


def _run(module):
    params = module.params
    view = module.merged_view(include_templates=params['include_templates'], want_ips=params['want_agent_ips'],
                              max_workers=params['max_workers'])
    return module.write(lambda check: role_assignment.sync(module.store, view, check, module.cluster))


def main():
    module = ProxmoxManagerModule(
        argument_spec=dict(
            include_templates=dict(type='bool', default=False),
            want_agent_ips=dict(type='bool', default=False),
            max_workers=dict(type='int', default=DEFAULT_MAX_WORKERS),
        ),
        backup=True,
        supports_check_mode=True,
    )
    module.run(_run)


if __name__ == '__main__':
    main()
