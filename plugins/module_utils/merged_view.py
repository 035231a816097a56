# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The merged view: the one answer to "which servers exist".

Live guests (one /cluster/resources?type=vm call) merged by name with the
servers declared in terraform/terraform.tfvars.json. The inventory plugin
shows this view and every module that names a server resolves it here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import json
import os
import re

from ansible_collections.proxmox_manager.core.plugins.module_utils import config_repo
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import (
    DeclarationError,
    ProxmoxAuthError,
    ProxmoxManagerError,
    UnknownServerError,
)
from ansible_collections.proxmox_manager.core.plugins.module_utils.schemas import (
    TFVARS_SCHEMA,
    _field,
    excerpt,
    validate,
)

LIVE_AND_DECLARED = 'live+declared'
LIVE_ONLY = 'live'
DECLARED_ONLY = 'declared'

_NOT_IN_HOST_NAME = re.compile(r'[^A-Za-z0-9_.-]')

DEFAULT_TFVARS = os.path.join('terraform', 'terraform.tfvars.json')
TFVARS_ENV = 'PROXMOX_MANAGER_TFVARS'

# What a build remembers of the last one (see previous_details).
_DETAIL_FIELDS = ('agent', 'uptime', 'status', 'last_status')
_RECORD_FIELDS = ('host', 'name', 'cluster', 'vmid', 'node', 'type', 'status', 'template', 'tags', 'pool',
                  'source', 'declared', 'ips', 'maxcpu', 'maxmem', 'maxdisk', 'uptime', 'agent', 'last_status')


def tfvars_path(option=None, project=None):
    """The tfvars file to read: the option, else $PROXMOX_MANAGER_TFVARS, else the default, in the config repo."""
    path = option or os.environ.get(TFVARS_ENV) or DEFAULT_TFVARS
    return config_repo.resolve(path, project) if project else path


def _json_paths(data, wanted):
    """{id(object): its field path} for the objects of `wanted` (ids) within decoded JSON; no recursion."""
    found, stack = {}, [(data, ())]
    while stack and len(found) < len(wanted):
        value, path = stack.pop()
        if isinstance(value, dict):
            if id(value) in wanted:
                found[id(value)] = path
            stack.extend((sub, path + (key,)) for key, sub in value.items())
        elif isinstance(value, list):
            stack.extend((sub, path + (number,)) for number, sub in enumerate(value))
    return found


def _has_lone_surrogate(data):
    """A `\\ud800` escape decodes to a str no database or file can store; checked only when the text has an escape."""
    try:
        json.dumps(data, ensure_ascii=False).encode('utf-8')
    except UnicodeEncodeError:
        return True
    return False


def _read_json(path):
    """The decoded JSON of a file; a key given twice in one object, or nesting too deep, is an error.

    json keeps the last copy of a duplicate key silently, so a server declared
    twice would lose its first declaration without a word.
    """
    twice = []

    def pairs_hook(pairs):
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen = set()
            for key, _value in pairs:
                if key in seen:
                    twice.append((obj, key))
                seen.add(key)
        return obj

    try:
        with open(path, 'rb') as handle:
            text = handle.read().decode('utf-8')
        data = json.loads(text, object_pairs_hook=pairs_hook)
    except RecursionError:
        raise DeclarationError('%s is not valid: nested too deeply to be a tfvars file.' % path) from None
    except ValueError as exc:
        raise DeclarationError('%s is not valid JSON: %s' % (path, exc)) from None
    except OSError as exc:
        raise DeclarationError('Cannot read %s: %s' % (path, exc.strerror)) from None
    if '\\u' in text and _has_lone_surrogate(data):
        raise DeclarationError('%s is not valid: it holds a lone UTF-16 surrogate escape, which is no character.' % path)
    if twice:
        where = _json_paths(data, set(id(obj) for obj, _key in twice))
        problems = []
        for obj, key in twice:
            field = _field(where.get(id(obj), ()) + (key,))
            problem = ('%s: %s: the key is given twice in one object; JSON keeps only the last, so say it once.'
                       % (path, field))
            if problem not in problems:
                problems.append(problem)
        raise DeclarationError('%s is not valid:\n  %s' % (path, '\n  '.join(problems)), problems)
    return data


def load_tfvars(path=None, project=None):
    """Declared servers {name: entry} from tfvars, validated against the schema.

    A missing file at the default path means "nothing declared yet"; a path the
    user named must exist. A key given twice in one object is refused. Relative
    paths are `project`'s (config_repo), else the current directory's.
    """
    explicit = bool(path or os.environ.get(TFVARS_ENV))
    path = tfvars_path(path, project)
    if not os.path.exists(path):
        if explicit:
            raise DeclarationError('The tfvars file %s does not exist.' % path)
        return {}
    data = _read_json(path)
    validate(data, TFVARS_SCHEMA, path)
    servers = data['servers']
    mismatched = ['servers.%s.name: %s differs from its key %s' % (excerpt(key, quote=False), excerpt(entry['name']),
                                                                   excerpt(key))
                  for key, entry in servers.items() if entry['name'] != key]
    if mismatched:
        raise DeclarationError('%s is not valid:\n  %s' % (path, '\n  '.join('%s: %s' % (path, m) for m in mismatched)),
                               mismatched)
    return servers


def declared_ips(entry):
    """IPs of a tfvars entry, in order, without a CIDR suffix."""
    if not entry:
        return []
    return [dev['ip_address'].split('/', 1)[0]
            for dev in entry.get('network_devices') or []
            if dev.get('ip_address') and dev['ip_address'] not in ('dhcp', 'auto')]


def split_tags(tags):
    """PVE sends tags as one `;`-joined string (sometimes `,` or spaces)."""
    if not tags:
        return []
    if isinstance(tags, list):
        return tags
    return [t for t in tags.replace(',', ';').replace(' ', ';').split(';') if t]


class ServerRecord:
    """One server of the merged view."""

    __slots__ = _RECORD_FIELDS

    def __init__(self, **fields):
        for field in _RECORD_FIELDS:
            setattr(self, field, fields.get(field))
        if self.ips is None:
            self.ips = []
        if self.tags is None:
            self.tags = []

    @property
    def declared_role(self):
        return (self.declared or {}).get('role')

    @property
    def declared_ips(self):
        return declared_ips(self.declared)

    @property
    def ansible_host(self):
        """The first declared IP, else the first IPv4 the guest reports."""
        return (self.declared_ips or self.ips or [None])[0]

    @property
    def is_live(self):
        return self.source != DECLARED_ONLY

    def as_dict(self):
        return dict((f, getattr(self, f)) for f in _RECORD_FIELDS)

    @classmethod
    def from_dict(cls, data):
        return cls(**dict((f, data.get(f)) for f in _RECORD_FIELDS))

    def __repr__(self):
        return 'ServerRecord(%s, vmid=%s, source=%s)' % (self.host, self.vmid, self.source)


def _live_record(guest, declared):
    return ServerRecord(
        host=guest['name'], name=guest['name'], vmid=guest.get('vmid'), node=guest.get('node'),
        type=guest.get('type'), status=guest.get('status'), template=bool(guest.get('template')),
        tags=split_tags(guest.get('tags')), pool=guest.get('pool'),
        source=LIVE_AND_DECLARED if declared is not None else LIVE_ONLY,
        declared=declared, maxcpu=guest.get('maxcpu'), maxmem=guest.get('maxmem'),
        maxdisk=guest.get('maxdisk'), uptime=guest.get('uptime'))


def close_matches(word, candidates, n=3, cutoff=0.6):
    """Up to `n` distinct candidates close to `word`: closest first, ties in alphabetical order.

    difflib.get_close_matches breaks ties in reverse alphabetical order and
    keeps repeats, so among 1,000 guests `guest-1o7` got `guest-917`, not `guest-107`.
    """
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(word)
    scored = []
    for candidate in set(candidates):
        matcher.set_seq1(candidate)
        if matcher.real_quick_ratio() >= cutoff and matcher.quick_ratio() >= cutoff:
            score = matcher.ratio()
            if score >= cutoff:
                scored.append((-score, candidate))
    scored.sort()
    return [candidate for _score, candidate in scored[:n]]


class MergedView:
    """The merged list, indexed by inventory host name and by guest name.

    `templates` ({name: [ServerRecord]}) are the templates the view left out:
    not servers, but known, so a name that is a template is told so.
    """

    def __init__(self, records, warnings=None, templates=None, clusters=()):
        self.records = records
        self.warnings = list(warnings or [])
        self.templates = dict(templates or {})
        self.clusters = list(clusters)
        self.by_host = dict((r.host, r) for r in records)
        self.by_name = {}
        for record in records:
            self.by_name.setdefault(record.name, []).append(record)

    def __len__(self):
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def _suggest(self, name):
        """' Did you mean ...?' with up to 3 distinct host or guest names, closest first, or ''."""
        close = close_matches(name, list(self.by_host) + list(self.by_name), n=3)
        return ' Did you mean %s?' % ' or '.join(excerpt(c) for c in close) if close else ''

    def find(self, name, vmid=None, cluster=None):
        """(record, None) or (None, problem) for a server name, an optional vmid and an optional cluster."""
        candidates = self.by_name.get(name)
        if candidates is None and name in self.by_host:
            candidates = [self.by_host[name]]
        if cluster is not None:
            if cluster not in self.clusters:
                return None, ('The cluster %s is not one of the clusters (%s).'
                              % (excerpt(cluster), ', '.join(self.clusters) or 'none'))
            elsewhere = sorted(set(r.cluster for r in candidates or [] if r.cluster != cluster))
            candidates = [r for r in candidates or [] if r.cluster == cluster]
            if not candidates and elsewhere:
                return None, ('Server %s is not in the cluster %s; it is in %s.'
                              % (excerpt(name), cluster, ', '.join(elsewhere)))
        if not candidates:
            templates = [r for r in self.templates.get(name) or [] if cluster in (None, r.cluster)]
            if templates:
                return None, ('%s is a template (vmid %s), not a server: a template gets no role. Clone it into a '
                              'guest, or name a server.' % (excerpt(name), ', '.join(str(r.vmid) for r in templates)))
            return None, ('Server %s does not exist in Proxmox or in the tfvars declarations.%s'
                          % (excerpt(name), self._suggest(name)))
        if vmid is not None:
            match = [r for r in candidates if r.vmid == int(vmid)]
            if not match:
                return None, ('Server %s has no guest with vmid %s; its vmids are %s.'
                              % (excerpt(name), excerpt(vmid, quote=False),
                                 ', '.join(str(r.vmid) for r in candidates)))
            candidates = match
        clusters = sorted(set(r.cluster for r in candidates))
        if len(clusters) > 1:
            return None, ('Server name %s is used in the clusters %s: name its cluster (cluster: %s), or use one of '
                          'the host names %s.' % (excerpt(name), ', '.join(clusters), clusters[0],
                                                  ', '.join(excerpt(r.host, quote=False) for r in candidates)))
        if len(candidates) > 1:
            return None, ('Server name %s is ambiguous: %d guests share it (vmids %s). Give vmid, '
                          'or use one of the host names %s.'
                          % (excerpt(name), len(candidates), ', '.join(str(r.vmid) for r in candidates),
                             ', '.join(excerpt(r.host, quote=False) for r in candidates)))
        return candidates[0], None

    def resolve(self, name, vmid=None, cluster=None):
        """The record for a server, or UnknownServerError with a helpful message."""
        record, problem = self.find(name, vmid, cluster)
        if problem:
            raise UnknownServerError(problem, [problem])
        return record


def host_name(name):
    """A name every Ansible host pattern can target: each character outside A-Z, a-z, 0-9, `_`, `.` and `-` becomes `-`.

    Proxmox names an unnamed VM `VM 200`; `'VM 200'` matches no pattern. The real name stays in pve_name.
    """
    return _NOT_IN_HOST_NAME.sub('-', name)


def build_view(guests, declared, include_templates=False, cluster=None):
    """Merge live guests with declared servers of one cluster. Pure: no I/O.

    Guests come in the shape of /cluster/resources?type=vm. Two live guests
    with one name stay two records, named `<name>-<vmid>` in the inventory.
    A declaration with `vm_id` binds to that guest; without it, it applies
    to every live guest of its name.
    """
    warnings = []
    live, templates = {}, {}
    for guest in guests:
        if guest.get('type') not in ('qemu', 'lxc'):
            continue
        name = guest.get('name') or 'vm-%s' % guest.get('vmid')
        guest = dict(guest, name=name)
        if guest.get('template') and not include_templates:
            templates.setdefault(name, []).append(_live_record(guest, None))  # kept aside: not a server
            continue
        live.setdefault(name, []).append(guest)

    records = []
    for name, same_name in live.items():
        entry = declared.get(name)
        bound = entry.get('vm_id') if entry else None
        if len(same_name) > 1:
            same_name.sort(key=lambda g: g['vmid'])
            warnings.append('%d guests share the name %r (vmids %s): they are listed as %s.'
                            % (len(same_name), name, ', '.join(str(g['vmid']) for g in same_name),
                               ', '.join('%s-%s' % (name, g['vmid']) for g in same_name)))
        for guest in same_name:
            attach = entry if (bound is None or bound == guest['vmid']) else None
            record = _live_record(guest, attach)
            if len(same_name) > 1:
                record.host = '%s-%s' % (name, guest['vmid'])
            records.append(record)

    live_vmids = dict((r.vmid, r.name) for r in records)
    for name, entry in declared.items():
        if name not in live:
            vmid = entry.get('vm_id')
            if vmid in live_vmids:
                # Two servers with one vmid would take turns in one state DB row.
                warnings.append('tfvars declares %s with vm_id %s, the vmid of the live guest %s: it is listed as not '
                                'created yet, without that vmid.' % (excerpt(name), vmid, excerpt(live_vmids[vmid])))
                vmid = None
            records.append(ServerRecord(host=name, name=name, vmid=vmid, source=DECLARED_ONLY, declared=entry))

    for record in records:
        record.host = host_name(record.host)
        record.cluster = cluster
    _unique_hosts(records, warnings)
    records.sort(key=lambda r: (r.name, r.vmid or 0))
    for same_name in templates.values():
        for record in same_name:
            record.cluster = cluster
        same_name.sort(key=lambda r: r.vmid or 0)
    return MergedView(records, warnings, templates, [cluster] if cluster is not None else [])


def _unique_hosts(records, warnings):
    taken = set()
    for record in records:
        if record.host in taken:
            # `<name>-<vmid>` met a guest really called that: keep both, visibly.
            warnings.append('Host name %r is used twice; the guest with vmid %s is listed as %s-vmid%s.'
                            % (record.host, record.vmid, record.host, record.vmid))
            record.host = '%s-vmid%s' % (record.host, record.vmid)
        taken.add(record.host)


def combine(views):
    """One view of several clusters' views (each from build_view with its cluster). Pure.

    A name used in more than one cluster gives one host per cluster, `<host>.<cluster>`,
    with a warning; each cluster's own warnings are prefixed with its name.
    """
    if len(views) == 1:
        return views[0]
    clusters_of = {}
    for view in views:
        for record in view:
            clusters_of.setdefault(record.name, set()).add(record.cluster)
    records, warnings, templates, clusters = [], [], {}, []
    for view in views:
        clusters.extend(view.clusters)
        warnings.extend('Cluster %s: %s' % (', '.join(view.clusters), warning) for warning in view.warnings)
        for name, same_name in view.templates.items():
            templates.setdefault(name, []).extend(same_name)
        records.extend(view.records)
    shared = {}
    for record in records:
        if len(clusters_of[record.name]) > 1:
            record.host = '%s.%s' % (record.host, record.cluster)
            shared.setdefault(record.name, []).append(record.host)
    for name in sorted(shared):
        warnings.append('The name %r is used in the clusters %s: it is listed as %s.'
                        % (name, ', '.join(sorted(clusters_of[name])), ', '.join(sorted(shared[name]))))
    _unique_hosts(records, warnings)
    records.sort(key=lambda r: (r.name, r.cluster, r.vmid or 0))
    return MergedView(records, warnings, templates, clusters)


LOOKUPS_REFUSED = ('The IP lookups were skipped for this run: %s Give the token VM.GuestAgent.Audit (PVE 9) or '
                   'VM.Monitor (PVE 8) on the qemu guests and VM.Audit on the containers, or set want_agent_ips: false.')


def emptied(view, recorded_guests):
    """Why a listing without any guest is not believed when `recorded_guests` were recorded before; None if it is.

    A token without VM.Audit gets an empty listing, not an error: taken as the truth it
    would mark every server gone. allow_empty_cluster lets a really empty cluster through.
    """
    if not recorded_guests or any(record.is_live for record in view):
        return None
    return ('Proxmox listed no guests, while %d were recorded before: a token without VM.Audit on the guests '
            'sees an empty cluster. Set allow_empty_cluster: true if the cluster really is empty.' % recorded_guests)


def previous_details(records):
    """What a build needs to remember of the last view (record dicts): {vmid: {agent, uptime, status, last_status}}."""
    return dict((r['vmid'], dict((key, r.get(key)) for key in _DETAIL_FIELDS))
                for r in records if r.get('vmid') is not None)


def _agent_known_off(record, before):
    """The agent said "not running" last time and the guest has not restarted since.

    Turning the agent on needs a restart in PVE, so the answer still holds.
    """
    if record.type != 'qemu' or not before or before.get('agent') is not False:
        return False
    return record.uptime is not None and before.get('uptime') is not None and record.uptime >= before['uptime']


def _wants_lookup(record):
    """A running live guest that declares no IP: only its agent (or the lxc interfaces call) can tell its IPs."""
    return record.is_live and record.status == 'running' and not record.declared_ips and not record.template


def fetch_view(client, tfvars=None, include_templates=False, want_ips=False, max_workers=None, previous=None,
               project=None):
    """The merged view, live and complete: the listing, the IP lookups, then what the last view remembers.

    The one orchestration of a build, for the modules and the inventory alike.
    The tfvars file is read first so a malformed file fails before any API call.
    `previous` is previous_details() of the last recorded view, or None: a qemu
    guest whose agent was off then is not asked again unless it restarted, and a
    guest Proxmox reports as `unknown` (its node is offline) keeps its last
    known status in `last_status`. `project` is the config repo relative paths are in.
    """
    declared = load_tfvars(tfvars, project)
    guests = client.cluster_resources('vm')
    view = build_view(guests, declared, include_templates=include_templates, cluster=client.cluster)
    previous = previous or {}
    wanting = [r for r in view if want_ips and _wants_lookup(r)]
    ask = [r for r in wanting if not _agent_known_off(r, previous.get(r.vmid))]
    try:
        found = client.guests_ips([dict(vmid=r.vmid, node=r.node, type=r.type) for r in ask], max_workers=max_workers)
    except ProxmoxAuthError as exc:
        if exc.status != 403:
            raise
        # A token may list guests without the privilege to ask their agents: list them, unasked.
        view.warnings.append(LOOKUPS_REFUSED % exc)
        wanting = []
    for record in wanting:
        ips = found.get(record.vmid)
        record.ips = ips or []
        if ips is None:  # not asked (known off), or answered "agent not running"
            record.agent = False
    for record in view:
        if record.is_live and record.status == 'unknown':
            last = previous.get(record.vmid) or {}
            record.last_status = last.get('last_status') if last.get('status') == 'unknown' else last.get('status')
    return view


def fetch_views(targets, include_templates=False, want_ips=False, max_workers=None, project=None):
    """fetch_view() of several clusters at once: [view, or the ProxmoxManagerError it raised] in target order.

    `targets` are plain dicts {client, tfvars, previous}. Each cluster is asked in a daemon thread of its
    own (proxmox_client.in_daemon_threads), so ten clusters cost about one cluster's listing time; the IP
    lookups of each share max_workers.
    """
    views, bugs = [None] * len(targets), []

    def one(index):
        target = targets[index]
        try:
            views[index] = fetch_view(target['client'], target.get('tfvars'), include_templates=include_templates,
                                      want_ips=want_ips, max_workers=max_workers, previous=target.get('previous'),
                                      project=project)
        except ProxmoxManagerError as exc:
            views[index] = exc
        except Exception as exc:  # noqa: BLE001 - raised again in the caller's thread
            bugs.append(exc)

    if len(targets) == 1:
        one(0)  # in this thread
    else:
        from ansible_collections.proxmox_manager.core.plugins.module_utils.proxmox_client import in_daemon_threads

        in_daemon_threads(one, len(targets), 'pve-cluster')
    if bugs:
        raise bugs[0]
    return views
