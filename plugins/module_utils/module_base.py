# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of every module: shared options, lazy client/view/store, clean failures."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sqlite3
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.proxmox_manager.core.plugins.module_utils import (
    config_repo,
    db_backup,
    merged_view,
    proxmox_client,
    state_db,
    state_schema,
    state_store,
)
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import (
    ProxmoxApiError,
    ProxmoxManagerError,
    in_cluster,
)
from ansible_collections.proxmox_manager.core.plugins.module_utils.schemas import HAS_JSONSCHEMA

STATE_ARGSPEC = dict(
    tfvars_path=dict(type='path', fallback=(env_fallback, [merged_view.TFVARS_ENV])),
    state_db=dict(type='str', fallback=(env_fallback, [state_db.DB_ENV])),
    allow_empty_cluster=dict(type='bool', default=False),
    # The collection's action plugins fill it in on the controller (config_repo.project_dir).
    project_dir=dict(type='path', fallback=(env_fallback, [config_repo.PROJECT_DIR_ENV])),
)

# Every cluster a call covers (declarations_validate, server_drift); the action fills it from the inventory file.
# No fallback and no default: an option an entry leaves unset is the call's own (cluster_targets).
_CLUSTER_SUBOPTIONS = dict((key, dict((k, v) for k, v in spec.items() if k not in ('fallback', 'default')))
                           for key, spec in proxmox_client.CONNECTION_ARGSPEC.items() if key != 'inventory_file')
_CLUSTER_SUBOPTIONS.update(cluster=dict(type='str', required=True), tfvars_path=dict(type='path'))
CLUSTERS_ARGSPEC = dict(clusters=dict(type='list', elements='dict', options=_CLUSTER_SUBOPTIONS))

BACKUP_ARGSPEC = dict(
    backup=dict(type='bool', default=False),
    backup_dir=dict(type='path'),
)


class ProxmoxManagerModule(AnsibleModule):
    """AnsibleModule with the connection and state options merged in.

    `connection=False` is for modules that only read the state DB.
    """

    def __init__(self, argument_spec, connection=True, backup=False, all_clusters=False, **kwargs):
        spec = dict(STATE_ARGSPEC)
        if backup:
            spec.update(BACKUP_ARGSPEC)
        if all_clusters:
            spec.update(CLUSTERS_ARGSPEC)
        if connection:
            spec.update(proxmox_client.CONNECTION_ARGSPEC)
            kwargs.setdefault('required_together', []).append(('api_token_id', 'api_token_secret'))
        spec.update(argument_spec)
        super(ProxmoxManagerModule, self).__init__(argument_spec=spec, **kwargs)
        self._check_libs(connection)
        self._enter_project_dir()
        self._client = None
        self._store = None
        self._targets = None

    def _check_libs(self, connection):
        missing = [(lib, err) for lib, ok, err in (
            ('proxmoxer', proxmox_client.HAS_PROXMOXER or not connection, proxmox_client.PROXMOXER_IMPORT_ERROR),
            ('SQLAlchemy', state_schema.HAS_SQLALCHEMY, state_schema.SQLALCHEMY_IMPORT_ERROR),
            ('jsonschema', HAS_JSONSCHEMA, None),
        ) if not ok]
        if missing:
            lib, err = missing[0]
            self.fail_json(msg=missing_required_lib(lib), exception=str(err) if err else None)

    def _enter_project_dir(self):
        # A local play runs its modules in the playbook's directory; relative paths are the config repo's.
        project = self.params['project_dir']
        if project:
            try:
                os.chdir(project)
            except OSError as exc:
                self.fail_json(msg='Cannot enter the config repo %s (project_dir): %s' % (project, exc.strerror))

    @property
    def client(self):
        if self._client is None:
            self._client = proxmox_client.ProxmoxClient(self.params)
        return self._client

    @property
    def cluster(self):
        """The cluster this call acts on: the `cluster` option, else the connection's (client.cluster)."""
        return self.client.cluster

    @property
    def store(self):
        if self._store is None:
            self._store = state_store.StateStore(self.params['state_db'])
        return self._store

    def cluster_targets(self):
        """[{client, tfvars}] of every cluster this call covers (each one's name is client.cluster): the `clusters`
        option, else its own.

        Made once per call, so its clients (and a password login each) serve every use.
        """
        if self._targets is None:
            self._targets = self._cluster_targets()
        return self._targets

    def _cluster_targets(self):
        if not self.params.get('clusters'):
            # Its name is asked (if need be) after the tfvars file is read: a bad file fails before any API call.
            return [dict(client=self.client, tfvars=self.params['tfvars_path'])]
        own = dict((key, self.params.get(key)) for key in proxmox_client.CONNECTION_ARGSPEC)
        targets = []
        for entry in self.params['clusters']:
            options = dict(own, **dict((key, value) for key, value in entry.items() if value is not None))
            targets.append(dict(client=proxmox_client.ProxmoxClient(options), tfvars=entry.get('tfvars_path')))
        return targets

    def merged_view(self, include_templates=False, want_ips=False, max_workers=None):
        """The one answer to "which servers exist", as the inventory computes it, for every cluster this call covers.

        The clusters are asked at once and combined (merged_view.combine). A cluster that fails fails the
        call, named when there are several; so does one that lists no guest while the state DB records guests
        of it (merged_view.emptied).
        """
        targets = self.cluster_targets()
        views = merged_view.fetch_views(targets, include_templates=include_templates, want_ips=want_ips,
                                        max_workers=max_workers)
        rows = None
        for target, view in zip(targets, views):
            if isinstance(view, ProxmoxManagerError):
                # With several, each client's name is its entry's: no API call.
                raise in_cluster(view, target['client'].cluster) if len(targets) > 1 else view
            if not self.params['allow_empty_cluster'] and not any(record.is_live for record in view):
                cluster = view.clusters[0]
                rows = self.store.servers() if rows is None else rows
                recorded = sum(1 for row in rows if row['cluster'] == cluster and row['vmid'] is not None
                               and row['present'])
                problem = merged_view.emptied(view, recorded)
                if problem:
                    raise in_cluster(ProxmoxApiError('%s Nothing was changed.' % problem, path='/cluster/resources'),
                                     cluster)
        return merged_view.combine(views)

    def write(self, apply):
        """apply(check_mode) -> (changed, result, diff), with the backup option.

        With backup=true the plan is computed read-only first, so a backup is
        taken only when something will change, before it changes.
        """
        result = {}
        # A write that upgrades an older DB gives its rows to this call's cluster (state_schema.upgrade); only a
        # write needs to know it, so a reader never asks Proxmox for the cluster's name.
        self.store.owner = dict(cluster=self.cluster, view=state_db.view_name(self.client.host, self.client.port))
        if self.params.get('backup') and not self.check_mode and self.store.exists:
            if apply(True)[0]:
                if self.store.path is None:
                    self.warn('No backup taken: %s' % (db_backup.NOT_SQLITE % self.store.display_url))
                else:
                    result['backup_file'] = db_backup.backup(self.store, self.params.get('backup_dir'))
        changed, payload, diff = apply(self.check_mode)
        result.update(payload, changed=changed)
        if self._diff:
            result['diff'] = diff
        if not self.check_mode:
            warning = state_db.throwaway_warning(self.store.url, os.environ)
            if warning:
                self.warn(warning)
        return result

    def run(self, body):
        """Call body(self) -> result dict; expected errors end in one clear message."""
        try:
            result = body(self)
        except ProxmoxManagerError as exc:
            self.fail_json(msg=str(exc), **_problems(exc))
        except Exception as exc:  # noqa: BLE001 - last resort: still no raw traceback
            if self._store is not None and _is_database_error(exc):
                # A database error state_store did not map (a bug there): still the one state DB message.
                self.fail_json(msg=str(state_db.error('use', self._store.display_url,
                                                      str(getattr(exc, 'orig', None) or exc))))
            self.fail_json(msg='Unexpected error: %s: %s' % (type(exc).__name__, exc),
                           exception=traceback.format_exc())
        self.exit_json(**result)


def _is_database_error(exc):
    """sqlite3's errors and SQLAlchemy's (when it is installed)."""
    if isinstance(exc, sqlite3.Error):
        return True
    return state_schema.HAS_SQLALCHEMY and isinstance(exc, state_store.SQLAlchemyError)


def _problems(exc):
    problems = getattr(exc, 'problems', None)
    return dict(problems=problems) if problems else {}
