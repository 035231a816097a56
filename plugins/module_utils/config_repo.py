# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The user's config repo: the one rule for what relative paths are relative to.

The config repo is $PROXMOX_MANAGER_PROJECT_DIR when set, else the directory of
the ansible.cfg in use when it is a project's own (not ~/.ansible.cfg or
/etc/ansible/ansible.cfg), else the current directory. state_db, tfvars_path,
roles_path, terraform_vars_file and the state/*.yml files resolve against it,
never against the installed collection. The role catalog is the config repo's
roles/ when it has one, else the roles this collection ships.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

PROJECT_DIR_ENV = 'PROXMOX_MANAGER_PROJECT_DIR'
ROLES_ENV = 'PROXMOX_MANAGER_ROLES'
ROLES_DIR = 'roles'

# Ansible's own fallbacks: finding one of these says nothing about where the project is.
_SHARED_CONFIGS = ('~/.ansible.cfg', '/etc/ansible/ansible.cfg')


def project_dir(config_file=None, environ=None):
    """The config repo's directory, absolute. `config_file` is the ansible.cfg in use (controller only)."""
    chosen = (os.environ if environ is None else environ).get(PROJECT_DIR_ENV)
    if not chosen and config_file:
        shared = [os.path.realpath(os.path.expanduser(path)) for path in _SHARED_CONFIGS]
        if os.path.realpath(config_file) not in shared:
            chosen = os.path.dirname(config_file)
    return os.path.abspath(os.path.expanduser(chosen or os.getcwd()))


def choose(option, config_file=None, environ=None):
    """The config repo: the project_dir option when given, else project_dir(); absolute either way."""
    return resolve(option) if option else project_dir(config_file, environ)


def resolve(path, project=None):
    """`path` with ~ expanded, and made absolute against `project` (else the current directory)."""
    path = os.path.expanduser(path)
    if project and not os.path.isabs(path):
        path = os.path.join(project, path)
    return os.path.abspath(path)


def role_catalog_dir(project, shipped):
    """The config repo's roles/ when it has one, else `shipped`, the collection's roles."""
    own = os.path.join(project, ROLES_DIR)
    return own if os.path.isdir(own) else shipped
