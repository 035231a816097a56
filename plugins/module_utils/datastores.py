# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Datastores: each cluster's storages cached in the state DB, and its default HDD/SSD choice.

Every read and write acts on one cluster's rows (the table is keyed by cluster
and storage id): a refresh of one cluster never touches another's rows, and
each cluster has its own defaults and its own Terraform vars file, beside its
tfvars file.

The seed's refresh deleted the cache before fetching and reset the defaults
on every run; here the fetch comes first (two calls, whatever the node
count), the cache is replaced in one transaction, and the default flags
survive. The defaults are handed to Terraform in a vars file. Only refresh()
and set_defaults() write; info() never does. A default must hold disk images
(content `images`): datastore_default refuses any other, and a fallback
default that cannot hold them is reported, never silently used.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile

from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import (
    ConfigurationError,
    ProxmoxManagerError,
    StateStoreError,
)
from ansible_collections.proxmox_manager.core.plugins.module_utils import config_repo, merged_view, state_schema
from ansible_collections.proxmox_manager.core.plugins.module_utils.state_db import SCHEMA_VERSION, utcnow

try:
    import sqlalchemy as sa
except ImportError:  # pragma: no cover - the state store reports it
    sa = None

KINDS = ('hdd', 'ssd')
BUILTIN_DEFAULTS = {'hdd': 'local-lvm', 'ssd': 'local'}
# What a stock Proxmox VE install gives each built-in default (`local` cannot hold disks).
STOCK_CONTENT = {'local-lvm': 'images,rootdir', 'local': 'iso,vztmpl,backup'}
DISK_CONTENT = 'images'
DEFAULT_ENV = {'hdd': 'PROXMOX_HDD_DATASTORE', 'ssd': 'PROXMOX_SSD_DATASTORE'}
TF_VARS_NAME = 'datastores.auto.tfvars.json'
_FLAG = {'hdd': 'is_default_hdd', 'ssd': 'is_default_ssd'}
_PUBLIC = ('id', 'name', 'type', 'size', 'used', 'available', 'content', 'enabled', 'shared',
           'is_default_hdd', 'is_default_ssd', 'is_system_default')


def initial_default(kind):
    """(id, source) a fresh DB starts from: the environment, else PVE's usual names."""
    value = os.environ.get(DEFAULT_ENV[kind])
    return (value, 'env') if value else (BUILTIN_DEFAULTS[kind], 'builtin')


def fetch(client):
    """Every storage of the cluster as a datastore row, in two API calls.

    /cluster/resources?type=storage gives capacity per node; /storage gives
    type, content and whether it is disabled. A storage on several nodes is
    one datastore; a shared one is counted once, node-local ones are summed.
    """
    per_node = client.cluster_resources('storage')
    config = dict((s['storage'], s) for s in client.get('/storage') or [])
    merged = {}
    for item in per_node:
        sid = item.get('storage')
        if not sid:
            continue
        conf = config.get(sid, {})
        row = merged.setdefault(sid, dict(
            id=sid, name=sid, type=conf.get('type') or item.get('plugintype') or 'unknown',
            content=conf.get('content') or item.get('content') or '',
            shared=bool(conf.get('shared', item.get('shared'))), enabled=not conf.get('disable'),
            size=0, used=0, available=0, nodes=[]))
        size, used = int(item.get('maxdisk') or 0), int(item.get('disk') or 0)
        row['nodes'].append(dict(node=item.get('node'), status=item.get('status'), size=size, used=used,
                                 available=max(size - used, 0)))
    for row in merged.values():
        online = [n for n in row['nodes'] if n['status'] == 'available'] or row['nodes']
        figures = online[:1] if row['shared'] else online
        row['size'] = sum(n['size'] for n in figures)
        row['used'] = sum(n['used'] for n in figures)
        row['available'] = sum(n['available'] for n in figures)
        row['nodes'].sort(key=lambda n: n['node'] or '')
    for sid, conf in config.items():
        # Configured but reported by no node (e.g. restricted to nodes that are gone).
        if sid not in merged:
            merged[sid] = dict(id=sid, name=sid, type=conf.get('type', 'unknown'), content=conf.get('content', ''),
                               shared=bool(conf.get('shared')), enabled=not conf.get('disable'),
                               size=0, used=0, available=0, nodes=[])
    return [merged[k] for k in sorted(merged)]


def _public(row):
    out = dict((k, row.get(k)) for k in _PUBLIC)
    nodes = row.get('nodes')
    out['nodes'] = json.loads(nodes) if isinstance(nodes, str) else (nodes or [])
    return out


def cached(conn, cluster):
    """The cached rows of `cluster` as public dicts, sorted by id."""
    if conn is None:
        return []
    table = state_schema.datastores
    query = sa.select(table).where(table.c.cluster == cluster).order_by(table.c.id)
    return [_public(dict(r._mapping)) for r in conn.execute(query)]


def defaults_of(rows):
    """{'hdd': id or None, 'ssd': id or None} from the flags."""
    return dict((kind, next((r['id'] for r in rows if r[_FLAG[kind]]), None)) for kind in KINDS)


def read(store, cluster):
    """The cached rows of `cluster` ([] with no DB, or one of an older layout)."""
    with store.reading() as conn:
        return cached(conn, cluster)


def _old_rows(store):
    """The datastores an older DB's upgrade gives the store's owner (state_store.old_rows), as public rows."""
    return sorted((_public(row) for row in store.old_rows(state_schema.datastores)), key=lambda r: r['id'])


def _planned_rows(store, cluster):
    """What a write will find for `cluster`, read-only: its cached rows, or on an older DB (which reads as empty)
    the rows its upgrade gives this cluster, so that check mode plans what the write does."""
    return read(store, cluster) or _old_rows(store)  # old_rows() is [] without a DB


def refresh(store, client, check_mode, cluster):
    """Replace `cluster`'s cache with what Proxmox reports now; (changed, result, diff).

    Proxmox is asked before the DB is touched, so a failure leaves the old
    cache and the defaults exactly as they were. Other clusters' rows are
    never touched.
    """
    fresh = fetch(client)
    if check_mode:
        changed, result, diff = _plan_refresh(_planned_rows(store, cluster), fresh)[:3]
    else:
        with store.writing() as conn:
            changed, result, diff, deleted = _plan_refresh(cached(conn, cluster), fresh)
            if changed:
                _write_rows(conn, cluster, result['datastores'], deleted)
    return changed, dict(result, cluster=cluster), diff


def _plan_refresh(old_rows, fresh):
    now_ids = set(r['id'] for r in fresh)
    old = dict((r['id'], r) for r in old_rows)
    defaults = defaults_of(old_rows)
    sources = dict((k, 'db') for k in KINDS if defaults[k])
    for kind in KINDS:
        if not defaults[kind]:
            candidate, source = initial_default(kind)
            if candidate in now_ids:
                defaults[kind], sources[kind] = candidate, source
    system = set(initial_default(kind)[0] for kind in KINDS)
    vanished = dict((kind, sid) for kind, sid in defaults.items() if sid and sid not in now_ids)
    rows = []
    for row in fresh:
        row = dict(row, is_system_default=row['id'] in system)
        for kind in KINDS:
            row[_FLAG[kind]] = defaults[kind] == row['id']
        rows.append(row)
    for kind, sid in vanished.items():
        # A chosen default stays until changed, even when Proxmox lost it.
        if sid not in [r['id'] for r in rows]:
            rows.append(dict(old[sid], enabled=False, is_system_default=sid in system))
    rows.sort(key=lambda r: r['id'])
    deleted = sorted(set(old) - set(r['id'] for r in rows))
    before = dict((r['id'], _comparable(r)) for r in old_rows)
    after = dict((r['id'], _comparable(r)) for r in rows)
    changed = before != after
    result = dict(count=len(fresh), datastores=rows, default_hdd=defaults['hdd'], default_ssd=defaults['ssd'],
                  default_sources=sources, vanished_defaults=vanished,
                  default_warnings=default_warnings(rows, defaults, sources))
    diff = dict(before=dict((k, v) for k, v in before.items() if after.get(k) != v),
                after=dict((k, v) for k, v in after.items() if before.get(k) != v))
    return changed, result, diff, deleted


def _comparable(row):
    return dict((k, row.get(k)) for k in _PUBLIC + ('nodes',))


def _write_rows(conn, cluster, rows, deleted):
    now = utcnow()
    table = state_schema.datastores
    mine = table.c.cluster == cluster
    existing = set(r[0] for r in conn.execute(sa.select(table.c.id).where(mine)))
    if deleted:
        conn.execute(table.delete().where(mine, table.c.id.in_(deleted)))
    for row in rows:
        values = dict((k, row.get(k)) for k in _PUBLIC)
        values['nodes'] = json.dumps(row.get('nodes') or [])
        values['updated_at'] = now
        if row['id'] in existing:
            conn.execute(table.update().where(mine, table.c.id == row['id']).values(**values))
        else:
            conn.execute(table.insert().values(cluster=cluster, created_at=now, **values))


def ensure_cache(store, client, cluster):
    """(rows, fresh, sources): `cluster`'s cached rows, or on an empty cache the rows a refresh would write, the
    fetch behind them, and where their defaults come from.

    Nothing is written here: the caller writes `fresh` in its own transaction,
    so a call that fails on validation leaves no half-change behind.
    """
    rows = _planned_rows(store, cluster)
    if rows:
        return rows, None, dict((k, 'db') for k in KINDS)
    fresh = fetch(client)
    plan = _plan_refresh([], fresh)[1]
    return plan['datastores'], fresh, plan['default_sources']


def holds_disks(row):
    """Whether a datastore row's content lets Proxmox put disk images on it."""
    return DISK_CONTENT in [c.strip() for c in (row.get('content') or '').split(',')]


def _check_wanted(rows, wanted):
    """Every wanted id is an enabled cached datastore that holds disk images, and the kind not given already
    has a default."""
    known = [r['id'] for r in rows if r['enabled']]
    unknown = ['%s=%r' % (kind, sid) for kind, sid in sorted(wanted.items()) if sid not in known]
    if unknown:
        raise ConfigurationError('Unknown datastore %s; the cache holds: %s. Nothing was changed.'
                                 % (', '.join(unknown), ', '.join(known) or 'nothing'))
    by_id = dict((r['id'], r) for r in rows)
    unfit = ['%s=%r (content: %s)' % (kind, sid, by_id[sid].get('content') or 'none')
             for kind, sid in sorted(wanted.items()) if not holds_disks(by_id[sid])]
    if unfit:
        able = [r['id'] for r in rows if r['enabled'] and holds_disks(r)]
        raise ConfigurationError('Datastore %s cannot hold disks: its content lacks %r, so Terraform could not put a '
                                 'disk there. Datastores that can: %s. Nothing was changed.'
                                 % (', '.join(unfit), DISK_CONTENT, ', '.join(able) or 'none'))
    current = defaults_of(rows)
    for kind in KINDS:
        if kind not in wanted and not current[kind]:
            # Terraform needs both names; an empty one would land disks nowhere.
            candidate, source = initial_default(kind)
            origin = '%s=%r' % (DEFAULT_ENV[kind], candidate) if source == 'env' else 'the built-in %r' % candidate
            raise ConfigurationError('There is no default %s datastore yet and %s is not in the cache: set %s as '
                                     'well. Nothing was changed.' % (kind.upper(), origin, kind))


def set_defaults(store, client, wanted, tf_vars_file, check_mode, cluster):
    """Move `cluster`'s default flags in one transaction and hand them to Terraform.

    Every id is checked against the cluster's cache before any flag moves (the
    seed cleared the old flags first). The vars file (tf_vars_path(): the
    cluster's own) is rewritten atomically while the DB lock is held, so
    concurrent calls end with one consistent pair. Other clusters' flags never
    move.
    """
    rows, fresh, sources = ensure_cache(store, client, cluster)
    refreshed = fresh is not None
    _check_wanted(rows, wanted)
    if check_mode:
        return _plan_defaults(rows, wanted, tf_vars_file, refreshed, sources, cluster)
    with store.writing() as conn:
        if refreshed:
            # The cache fill commits with the flags, or not at all.
            refresh_changed, plan, _diff, deleted = _plan_refresh(cached(conn, cluster), fresh)
            sources = plan['default_sources']
            if refresh_changed:
                _write_rows(conn, cluster, plan['datastores'], deleted)
        current = cached(conn, cluster)
        _check_wanted(current, wanted)  # again under the lock: another run may have refreshed meanwhile
        changed, result, diff = _plan_defaults(current, wanted, tf_vars_file, refreshed, sources, cluster)
        if changed:
            table = state_schema.datastores
            mine = table.c.cluster == cluster
            for kind, sid in wanted.items():
                flag = table.c[_FLAG[kind]]
                conn.execute(table.update().where(mine, flag.is_(True), table.c.id != sid)
                             .values(**{_FLAG[kind]: False}))
                conn.execute(table.update().where(mine, table.c.id == sid).values(**{_FLAG[kind]: True}))
            store.log_changes(conn, [dict(entity='datastore', key=kind, field='default', old=diff['before'][kind],
                                          new=diff['after'][kind]) for kind in KINDS
                                     if diff['before'][kind] != diff['after'][kind]], 'datastore_default', cluster)
            _write_tf_vars(tf_vars_file, result['default_hdd'], result['default_ssd'])
    return changed, result, diff


def tf_vars_path(option, tfvars_path, project):
    """The Terraform vars file of a cluster's defaults: `option` when given (a relative path is the config repo
    `project`'s), else datastores.auto.tfvars.json beside the cluster's tfvars file (`tfvars_path`, resolved as
    merged_view.tfvars_path() does): terraform/datastores.auto.tfvars.json for the default single-cluster one."""
    if option:
        return config_repo.resolve(option, project) if project else option
    return os.path.join(os.path.dirname(merged_view.tfvars_path(tfvars_path, project)), TF_VARS_NAME)


def _plan_defaults(rows, wanted, tf_vars_file, refreshed, sources, cluster):
    before = defaults_of(rows)
    after = dict(before, **wanted)
    file_ok = _read_tf_vars(tf_vars_file) == _tf_vars(after['hdd'], after['ssd'])
    changed = before != after or not file_ok
    sources = dict(sources, **dict((k, 'option') for k in wanted))
    result = dict(cluster=cluster, default_hdd=after['hdd'], default_ssd=after['ssd'],
                  terraform_vars_file=tf_vars_file, refreshed=refreshed, previous_hdd=before['hdd'],
                  previous_ssd=before['ssd'], default_sources=sources,
                  default_warnings=default_warnings(rows, after, sources))
    return changed, result, dict(before=before, after=after)


def _tf_vars(hdd, ssd):
    return {'proxmox_hdd_datastore': hdd, 'proxmox_ssd_datastore': ssd}


def _read_tf_vars(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _write_tf_vars(path, hdd, ssd):
    """temp file + rename: Terraform never reads a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix='.datastores.', suffix='.tmp')
        with os.fdopen(fd, 'w') as handle:
            handle.write(json.dumps(_tf_vars(hdd, ssd), indent=2, sort_keys=True) + '\n')
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        # Raised inside the DB transaction: the flags roll back with it.
        raise StateStoreError('Cannot write the Terraform vars file %s: %s' % (path, exc.strerror)) from None


def default_warnings(rows, defaults, sources):
    """{kind: message} for each default disks cannot land on: its row lacks `images`; or, with no row to tell,
    it is the built-in `local`, which a stock Proxmox VE gives only iso,vztmpl,backup; or the list lacks it."""
    by_id = dict((r['id'], r) for r in rows)
    out = {}
    for kind in KINDS:
        sid = defaults.get(kind)
        if not sid:
            continue
        row = by_id.get(sid)
        change = 'choose one that holds %r with proxmox_manager.core.datastore_default %s=<id>' % (DISK_CONTENT, kind)
        if row is not None:
            if not holds_disks(row):
                out[kind] = ('The default %s datastore %r cannot hold disks: its content is %s, without %r; %s.'
                             % (kind.upper(), sid, row.get('content') or 'empty', DISK_CONTENT, change))
        elif rows:
            out[kind] = ('The default %s datastore %r (%s) is not one of the cluster\'s datastores; %s.'
                         % (kind.upper(), sid, sources.get(kind), change))
        elif sources.get(kind) == 'builtin' and DISK_CONTENT not in STOCK_CONTENT.get(sid, DISK_CONTENT):
            out[kind] = ('The default %s datastore %r is the built-in fallback, and a stock Proxmox VE gives %r only '
                         '%s, not disk images: set %s, or %s.'
                         % (kind.upper(), sid, sid, STOCK_CONTENT[sid], DEFAULT_ENV[kind], change))
    return out


def info(store, client_factory, live, cluster):
    """The seed's GET answer for `cluster`; (result, warnings). Writes nothing, ever.

    From the cluster's cache; from Proxmox (two calls, nothing recorded) when
    that is empty or `live`. When neither Proxmox nor the DB can answer, the
    defaults come from the environment or the built-in names, and the result
    says so. A default that cannot hold disks is named in `default_warnings`
    and in a warning.

    `cluster` is None when this call names none and Proxmox could not tell its
    name: then Proxmox is not asked again, and the cache answers only when it
    holds the datastores of exactly one cluster (with a warning); with several,
    a ConfigurationError asks for the cluster to be named.
    """
    warnings = []
    rows = []
    source = 'cache'
    msg = None
    unreadable = False
    older = None
    known = cluster is not None
    try:
        if known:
            rows = read(store, cluster)
        else:
            cluster, rows = _only_cluster(store)
            if cluster is not None:
                warnings.append('This call names no cluster and Proxmox did not tell its name: the datastores of %s, '
                                'the only cluster the state DB %s holds, are served from its cache. Name the cluster '
                                '(option cluster, PROXMOX_CLUSTER) to be sure they are this connection\'s.'
                                % (cluster, store.display_url))
        if known and not rows:  # only the message of a cluster with nothing cached names the version
            older = store.schema_version()
    except StateStoreError as exc:
        unreadable = True
        warnings.append('The state DB could not be read: %s' % exc)
    sources = dict((k, 'db') for k in KINDS)
    if known and (live or not rows):
        try:
            # What a refresh would record, computed read-only: the cached flags applied to the live list.
            plan = _plan_refresh(rows, fetch(client_factory()))[1]
            if not rows and not unreadable:
                upgrade = older is not None and older != SCHEMA_VERSION
                msg = ('Nothing is cached for the cluster %s in the state DB %s%s: the datastores were read from '
                       'Proxmox and not recorded; run proxmox_manager.core.datastore_refresh to %s.'
                       % (cluster, store.display_url, ' (schema v%s, from before several clusters)' % older
                          if upgrade else '', 'upgrade the DB and cache them' if upgrade else 'cache them'))
            rows, sources, source = plan['datastores'], plan['default_sources'], 'proxmox'
        except ProxmoxManagerError as exc:
            warnings.append('Proxmox could not be asked for datastores: %s' % exc)
    elif not known and live:
        warnings.append('Proxmox was not asked for the live list: this call\'s cluster is unknown.')
    defaults = defaults_of(rows)
    for kind in KINDS:
        if not defaults[kind]:
            defaults[kind], sources[kind] = initial_default(kind)
    if not rows:
        source = 'fallback'
        warnings.append('No datastore list is available; the defaults come from %s.'
                        % ', '.join('%s=%s (%s)' % (k, defaults[k], sources[k]) for k in KINDS))
    unfit = default_warnings(rows, defaults, sources)
    warnings.extend(unfit[kind] for kind in KINDS if kind in unfit)
    result = dict(cluster=cluster, datastores=[r for r in rows if r['enabled']], default_hdd=defaults['hdd'],
                  default_ssd=defaults['ssd'], default_sources=sources, source=source, default_warnings=unfit)
    if msg:
        result['msg'] = msg
    return result, warnings


def _only_cluster(store):
    """(cluster, its cached rows) when the DB holds the datastores of exactly one cluster, (None, []) when it holds
    none; several is a ConfigurationError, since which one this call means is unknown."""
    with store.reading() as conn:
        if conn is None:
            return None, []
        table = state_schema.datastores
        names = [r[0] for r in conn.execute(sa.select(table.c.cluster).distinct().order_by(table.c.cluster))]
        if len(names) > 1:
            raise ConfigurationError(
                'This call names no cluster and Proxmox did not tell its name, and the state DB %s holds the '
                'datastores of several clusters (%s): name the cluster whose datastores to show with the cluster '
                'option (PROXMOX_CLUSTER).' % (store.display_url, ', '.join(names)))
        return (names[0], cached(conn, names[0])) if names else (None, [])
