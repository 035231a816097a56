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
from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.proxmox_manager.core.plugins.module_utils import config_repo

# plugins/plugin_utils/ -> the collection's root -> roles/
SHIPPED_ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             config_repo.ROLES_DIR)


def module_args(args, config_file, role_catalog=False, environ=None):
    """The module's arguments with the config repo (and the role catalog) filled in, as plain data.

    `environ` is what the module will see: the controller's environment with the task's `environment:`.
    """
    environ = os.environ if environ is None else environ
    args = dict(args)
    args['project_dir'] = config_repo.choose(args.get('project_dir'), config_file, environ)
    if role_catalog and not args.get('roles_path') and not environ.get(config_repo.ROLES_ENV):
        args['roles_path'] = config_repo.role_catalog_dir(args['project_dir'], SHIPPED_ROLES)
    return args


class ModuleAction(NormalAction):
    """The normal action (check mode, async, cleanup), with module_args() when the module runs on the controller."""

    ROLE_CATALOG = False

    def run(self, tmp=None, task_vars=None):
        if self._connection.transport == 'local':  # elsewhere the controller's paths mean nothing
            task_env = {}
            self._compute_environment_string(task_env)
            self._task.args = module_args(self._task.args, C.CONFIG_FILE, self.ROLE_CATALOG,
                                          dict(os.environ, **task_env))
        return super(ModuleAction, self).run(tmp, task_vars)
