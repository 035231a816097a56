# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action of every module of this collection: the config repo and the cluster are resolved on the controller.

A local play runs its modules in the playbook's directory, which for the FQCN
playbooks (proxmox_manager.core.apply, ...) is inside the installed collection;
only the controller knows the ansible.cfg in use and where the collection's own
roles are. So this fills in `project_dir` (config_repo.project_dir) and, for the
modules with a role catalog, `roles_path`, unless the task or the environment
names them. It also reads the clusters the inventory file declares
(module_utils/clusters.py): a module acting on one cluster gets that cluster's
connection and tfvars file, and one covering every cluster gets all of them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible import constants as C
from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.proxmox_manager.core.plugins.module_utils import clusters, config_repo
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import (
    ConfigurationError,
    ProxmoxManagerError,
)

# plugins/plugin_utils/ -> the collection's root -> roles/
SHIPPED_ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             config_repo.ROLES_DIR)
# What a cluster entry, or the top level of the inventory file, may hand a module.
_PASSED = tuple(option for option, _suffix in clusters.ENTRY_OPTIONS) + clusters.SHARED_OPTIONS


def inventory_path(args, project, environ):
    """The inventory file that declares the clusters: the task's inventory_file, $PROXMOX_MANAGER_INVENTORY or
    inventory/proxmox.yml, in the config repo."""
    path = args.get('inventory_file') or environ.get(clusters.INVENTORY_ENV) or clusters.DEFAULT_INVENTORY
    return config_repo.resolve(path, project)


def module_args(args, config_file, role_catalog=False, environ=None, inventory=None, all_clusters=False):
    """The module's arguments with the config repo, the role catalog and the cluster filled in, as plain data.

    `environ` is what the module will see: the controller's environment with the task's `environment:`.
    `inventory` is the inventory file's data (templated), or None. A module acting on one cluster gets the
    named cluster's options where the task gives none; with `all_clusters`, the module gets `clusters`, the
    options of each. A mapping that names no cluster for a one-cluster module is a ConfigurationError.
    """
    environ = os.environ if environ is None else environ
    args = dict(args)
    args['project_dir'] = config_repo.choose(args.get('project_dir'), config_file, environ)
    if role_catalog and not args.get('roles_path') and not environ.get(config_repo.ROLES_ENV):
        args['roles_path'] = config_repo.role_catalog_dir(args['project_dir'], SHIPPED_ROLES)
    if inventory is None:
        return args
    mapping = inventory.get('clusters')
    name = args.get('cluster') or environ.get(clusters.CLUSTER_ENV)
    if not mapping:
        if not name and inventory.get('cluster'):
            args['cluster'] = inventory['cluster']  # the single cluster's name, as the inventory says it
        return args
    top = dict((option, inventory[option]) for option in _PASSED if inventory.get(option) is not None)
    if all_clusters:
        if args.get('clusters') is None:
            args['clusters'] = clusters.every(mapping, top, environ,
                                              lambda path: config_repo.resolve(path, args['project_dir']))
        return args
    if not name:
        raise ConfigurationError('The inventory file declares the clusters %s: name the one this task acts on with '
                                 'cluster (or PROXMOX_CLUSTER).' % ', '.join(clusters.check(mapping)))
    for option, value in clusters.pick(mapping, name, top, environ).items():
        if args.get(option) is None and value is not None:  # None leaves the module's own fallback
            args[option] = value
    return args


class ModuleAction(NormalAction):
    """The normal action (check mode, async, cleanup), with module_args() when the module runs on the controller."""

    ROLE_CATALOG = False
    CONNECTION = True  # the module takes the connection options, so the clusters matter
    ALL_CLUSTERS = False  # the module covers every cluster (its `clusters` option)

    def run(self, tmp=None, task_vars=None):
        if self._connection.transport == 'local':  # elsewhere the controller's paths mean nothing
            task_env = {}
            self._compute_environment_string(task_env)
            environ = dict(os.environ, **task_env)
            try:
                args, inventory = self._task.args, None
                if self.CONNECTION:
                    project = config_repo.choose(args.get('project_dir'), C.CONFIG_FILE, environ)
                    inventory = self._inventory(inventory_path(args, project, environ))
                    args = dict(args, project_dir=project)  # chosen once: module_args() keeps an absolute one
                self._task.args = module_args(args, C.CONFIG_FILE, self.ROLE_CATALOG, environ, inventory,
                                              self.ALL_CLUSTERS)
            except ProxmoxManagerError as exc:
                return dict(failed=True, msg=str(exc))
        return super(ModuleAction, self).run(tmp, task_vars)

    def _inventory(self, path):
        """The inventory file's data with its string values templated (as the inventory plugin does), or None."""
        if not os.path.isfile(path):
            return None
        try:
            data = self._loader.load_from_file(path)
        except Exception as exc:  # noqa: BLE001 - Ansible's parser errors have no common base worth naming
            raise ConfigurationError('Cannot read the inventory file %s: %s' % (path, exc)) from None
        if not isinstance(data, dict) or data.get('plugin') != 'proxmox_manager.core.proxmox':
            return None  # not this collection's inventory file: it declares none of our clusters
        # Only what names a cluster or its connection: other options (compose, ...) are Jinja for hosts.
        wanted = dict((key, data[key]) for key in _PASSED + ('cluster', 'clusters') if key in data)
        return self._templar.template(wanted)
