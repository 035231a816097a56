# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action of every module of this collection: the config repo is resolved on the controller.

A local play runs its modules in the playbook's directory, which for the FQCN
playbooks (proxmox_manager.core.apply, ...) is inside the installed collection;
only the controller knows the ansible.cfg in use and where the collection's own
roles are. So this fills in `project_dir` (config_repo.project_dir) and, for the
modules with a role catalog, `roles_path`, unless the task or the environment
names them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible import constants as C
from ansible.plugins.action import ActionBase

from ansible_collections.proxmox_manager.core.plugins.module_utils import config_repo

# plugins/plugin_utils/ -> the collection's root -> roles/
SHIPPED_ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             config_repo.ROLES_DIR)


def module_args(args, config_file, role_catalog=False):
    """The module's arguments with the config repo (and the role catalog) filled in, as plain data."""
    args = dict(args)
    if args.get('project_dir') is None:
        args['project_dir'] = config_repo.project_dir(config_file)
    if role_catalog and not args.get('roles_path') and not os.environ.get(config_repo.ROLES_ENV):
        args['roles_path'] = config_repo.role_catalog_dir(config_repo.resolve(args['project_dir']), SHIPPED_ROLES)
    return args


class ModuleAction(ActionBase):
    """Runs the module of the same name on the host, with module_args() when that host is the controller."""

    ROLE_CATALOG = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ModuleAction, self).run(tmp, task_vars)
        args = self._task.args
        if self._connection.transport == 'local':  # elsewhere the controller's paths mean nothing
            args = module_args(args, C.CONFIG_FILE, self.ROLE_CATALOG)
        result.update(self._execute_module(module_name=self._task.resolved_action, module_args=args,
                                           task_vars=task_vars))
        return result
