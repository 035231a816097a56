# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The clusters of a config repo: their names, and each cluster's connection and tfvars file.

Declared once, as the `clusters` mapping of the inventory file; the inventory
plugin and the modules' action (which reads the same file) both come here, so a
cluster means the same connection on either side. Pure: the caller hands in the
mapping, the top-level options and the environment.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import ConfigurationError
from ansible_collections.proxmox_manager.core.plugins.module_utils.schemas import CLUSTER_PATTERN, excerpt

# The options a cluster entry may set, and the suffix of its PROXMOX_<NAME>_<SUFFIX> variable.
ENTRY_OPTIONS = (('api_host', 'HOST'), ('api_port', 'PORT'), ('api_user', 'USER'), ('api_token_id', 'TOKEN_ID'),
                 ('api_token_secret', 'TOKEN_SECRET'), ('api_password', 'PASSWORD'),
                 ('validate_certs', 'VALIDATE_CERTS'), ('ca_path', 'CA_PATH'), ('tfvars_path', 'TFVARS'))
# Taken from the top level for every cluster.
SHARED_OPTIONS = ('api_timeout', 'api_retries')
CLUSTER_ENV = 'PROXMOX_CLUSTER'
INVENTORY_ENV = 'PROXMOX_MANAGER_INVENTORY'
DEFAULT_INVENTORY = os.path.join('inventory', 'proxmox.yml')
NAME = re.compile(CLUSTER_PATTERN)  # the declarations' schema checks a cluster's name by the same rule
_BOOL_TEXT = {'true': True, 'yes': True, 'on': True, '1': True, 'false': False, 'no': False, 'off': False, '0': False}


def env_prefix(name):
    """PROXMOX_<NAME>_: the cluster's name in upper case, `-` as `_`."""
    return 'PROXMOX_%s_' % name.upper().replace('-', '_')


def default_tfvars(name):
    return os.path.join('terraform', name, 'terraform.tfvars.json')


def check(mapping, where='clusters'):
    """The cluster names of a `clusters` mapping, in order; anything malformed is a ConfigurationError."""
    if mapping is None:
        return []
    if not isinstance(mapping, dict) or not mapping:
        raise ConfigurationError('%s must map each cluster\'s name to its options, for example '
                                 '{prod: {api_host: pve-prod.example.com}}.' % where)
    problems, prefixes = [], {}
    allowed = set(option for option, _suffix in ENTRY_OPTIONS)
    for name, entry in mapping.items():
        if not isinstance(name, str) or not NAME.match(name):
            problems.append('%s: the name %s is not 1 to 63 letters, digits, _ or -, starting with a letter.'
                            % (where, excerpt(name)))
            continue
        other = prefixes.setdefault(env_prefix(name), name)
        if other != name:
            problems.append('%s: %s and %s would share the variables %s*; rename one.'
                            % (where, excerpt(other), excerpt(name), env_prefix(name)))
        if entry is not None and not isinstance(entry, dict):
            problems.append('%s.%s: must be a mapping of options.' % (where, name))
            continue
        unknown = sorted(set(entry or {}) - allowed)
        if unknown:
            problems.append('%s.%s: unknown option%s %s (allowed: %s).'
                            % (where, name, 's' if len(unknown) > 1 else '', ', '.join(excerpt(u) for u in unknown),
                               ', '.join(option for option, _suffix in ENTRY_OPTIONS)))
    if problems:
        raise ConfigurationError('\n'.join(problems))
    return list(mapping)


def _from_env(option, text):
    if option == 'api_port':
        try:
            return int(text)
        except ValueError:
            raise ConfigurationError('%s is not a port number: %s' % (option, excerpt(text))) from None
    if option == 'validate_certs':
        value = _BOOL_TEXT.get(text.strip().lower())
        if value is None:
            raise ConfigurationError('validate_certs must be true or false, not %s.' % excerpt(text))
        return value
    return text


def options(name, entry, top, environ):
    """The connection options and tfvars_path of cluster `name`, plus `cluster`: name.

    For each option: the cluster's entry, else PROXMOX_<NAME>_<OPTION>, else `top`
    (the top level of the file, whose own fallback is the unprefixed variable).
    tfvars_path is each cluster's own, never the top level's (which would declare
    every cluster's servers in each): else terraform/<name>/terraform.tfvars.json.
    """
    entry = entry or {}
    prefix = env_prefix(name)
    out = dict((option, top.get(option)) for option in SHARED_OPTIONS if option in top)
    for option, suffix in ENTRY_OPTIONS:
        if entry.get(option) is not None:
            out[option] = entry[option]
        elif environ.get(prefix + suffix):
            out[option] = _from_env(option, environ[prefix + suffix])
        else:
            out[option] = top.get(option) if option != 'tfvars_path' else default_tfvars(name)
    out['cluster'] = name
    return out


def every(mapping, top, environ, resolve=None):
    """[options(name)] of every cluster; two clusters reading one tfvars file are refused.

    `resolve(path)` makes a tfvars path absolute (in the config repo) for that check.
    """
    found, by_file = [], {}
    for name in check(mapping):
        chosen = options(name, mapping[name], top, environ)
        path = resolve(chosen['tfvars_path']) if resolve else chosen['tfvars_path']
        if path in by_file:
            raise ConfigurationError('The clusters %s and %s read the same tfvars file %s, so each would list the '
                                     'other\'s declared servers: give each cluster its own tfvars_path.'
                                     % (by_file[path], name, path))
        by_file[path] = name
        found.append(chosen)
    return found


def pick(mapping, name, top, environ):
    """options() of the cluster `name` of the mapping; a name not in it is a ConfigurationError."""
    names = check(mapping)
    if name not in names:
        raise ConfigurationError('The cluster %s is not declared; the clusters are %s.'
                                 % (excerpt(name), ', '.join(names)))
    return options(name, mapping[name], top, environ)
