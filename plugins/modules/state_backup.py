#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: state_backup
short_description: Take a consistent copy of the SQLite state DB
version_added: 0.1.0
description:
  - Copies the state DB with SQLite's online backup API, so the copy is consistent even while other runs write.
  - The copy goes to O(backup_dir) (default C(backups/) beside the DB) with a UTC timestamp in its name.
  - Other databases (PostgreSQL) are backed up with their own tools; this module then fails saying so.
author:
  - Proxmox Manager maintainers (@proxmox-manager)
extends_documentation_fragment:
  - proxmox_manager.core.state
attributes:
  check_mode:
    support: full
    description: Reports the DB that would be copied, without copying.
  diff_mode:
    support: none
    description: A backup changes no managed state.
options:
  backup_dir:
    description: Where the copy goes. Defaults to C(backups/) beside the state DB.
    type: path
'''

EXAMPLES = r'''
- name: Back up the state DB before an apply
  proxmox_manager.core.state_backup:
  register: backup

- name: Into a directory of your choice
  proxmox_manager.core.state_backup:
    state_db: state/proxmox_manager.db
    backup_dir: /var/backups/proxmox_manager
'''

RETURN = r'''
backup_file:
  description: The path of the copy (not set in check mode).
  returned: success
  type: str
  sample: state/backups/proxmox_manager-20261122T101500.000000Z.db
state_db:
  description: The DB that was copied.
  returned: always
  type: str
'''

from ansible_collections.proxmox_manager.core.plugins.module_utils.db_backup import backup
from ansible_collections.proxmox_manager.core.plugins.module_utils.module_base import ProxmoxManagerModule


def _run(module):
    store = module.store
    if module.check_mode:
        return dict(changed=True, state_db=store.display_url)
    return dict(changed=True, state_db=store.display_url, backup_file=backup(store, module.params['backup_dir']))


def main():
    module = ProxmoxManagerModule(
        argument_spec=dict(backup_dir=dict(type='path')),
        connection=False,
        supports_check_mode=True,
    )
    module.run(_run)


if __name__ == '__main__':
    main()
