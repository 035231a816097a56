# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GitOps declarations: state/roles.yml and state/datastores.yml.

They are read with the line of every key, validated against their JSON
Schemas, then cross-checked with the same core the inventory and server_role
use: servers in the merged view of every cluster (MergedView.find, by name,
vmid and cluster), roles in the role catalog, each cluster's default
datastores in its cache or in its Proxmox. Every problem names the file, the
line and the field, and all of them are reported at once, before anything is
written. The same module compares git, the state DB and Proxmox (drift);
state DB rows are matched to servers within their own cluster, since a vmid
is unique only there.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import os

from ansible_collections.proxmox_manager.core.plugins.module_utils import clusters, role_assignment
from ansible_collections.proxmox_manager.core.plugins.module_utils.datastores import holds_disks
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import DeclarationError, problems_text
from ansible_collections.proxmox_manager.core.plugins.module_utils.schemas import (
    DATASTORES_SCHEMA,
    ROLES_SCHEMA,
    _field,
    excerpt,
    validate,
)

try:
    import yaml

    try:
        from yaml import CSafeLoader as _Loader
    except ImportError:  # pragma: no cover - libyaml missing: same behaviour, slower
        from yaml import SafeLoader as _Loader
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False

ROLES_FILE = os.path.join('state', 'roles.yml')
DATASTORES_FILE = os.path.join('state', 'datastores.yml')
ROLES_FILE_ENV = 'PROXMOX_MANAGER_ROLES_FILE'
DATASTORES_FILE_ENV = 'PROXMOX_MANAGER_DATASTORES_FILE'

# Drift kinds (a declared-only server of the merged view is merged_view.DECLARED_ONLY, a source, not a drift).
DRIFT_MISSING, DRIFT_UNDECLARED, DRIFT_MISMATCH, DRIFT_NOT_LIVE = 'missing', 'undeclared', 'role mismatch', 'declared only'
DRIFT_KINDS = (DRIFT_MISSING, DRIFT_UNDECLARED, DRIFT_MISMATCH, DRIFT_NOT_LIVE)
_MERGE_TAG = 'tag:yaml.org,2002:merge'
_MAX_DEPTH = 100  # levels of mappings and lists; the vars of a server are at level four
_KINDS = (('hdd', 'default_hdd'), ('ssd', 'default_ssd'))


def roles_file(option=None):
    return option or os.environ.get(ROLES_FILE_ENV) or ROLES_FILE


def datastores_file(option=None):
    return option or os.environ.get(DATASTORES_FILE_ENV) or DATASTORES_FILE


# -- YAML with line numbers ----------------------------------------------------


class YamlDocument:
    """A parsed YAML file that knows the line of every key and list item."""

    def __init__(self, path, data, lines):
        self.path = path
        self.data = data
        self._lines = lines

    def line(self, path):
        """The line of a field, else of its nearest parent that has one."""
        path = tuple(str(p) for p in path)
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._lines.get(())

    def problem(self, path, message):
        line = self.line(path)
        return '%s: %s: %s' % ('%s:%s' % (self.path, line) if line else self.path, _field(path), message)


def _index(node, path, lines, duplicates, visited):
    """Record the line of each key under `node`; note keys given twice (PyYAML keeps the last silently)."""
    if id(node) in visited:  # an alias seen before (or a recursive one)
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            sub = path + (key_node.value,)
            line = key_node.start_mark.line + 1
            if key_node.value in seen:
                duplicates.append((sub, line, seen[key_node.value]))
            seen[key_node.value] = line
            lines[sub] = line
            _index(value_node, sub, lines, duplicates, visited)
    elif isinstance(node, yaml.SequenceNode):
        for number, item in enumerate(node.value):
            sub = path + (str(number),)
            lines[sub] = item.start_mark.line + 1
            _index(item, sub, lines, duplicates, visited)


def _refuse_aliases_and_depth(path, text):
    """Raise at the first alias (else anchor), or past _MAX_DEPTH levels, of a YAML text.

    An alias makes one node stand for another, so nine lines can stand for a
    billion values (or for an endless, recursive value) that every later step
    (the schema messages, the module result) would expand. Declarations need
    none: each server says its role and vars in full. Nesting is bounded too:
    libyaml's composer recurses in C, and 100,000 brackets crash the process.
    Only the parser's events are read (a fifth of the time of the load itself),
    so nothing is expanded or composed before the checks pass.
    """
    anchor, depth = None, 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            mark, what = event.start_mark, 'an alias (*%s)' % excerpt(event.anchor, quote=False)
            break
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > _MAX_DEPTH:
                message = ('%s:%d:%d: nested more than %d levels deep; a declaration needs a few.'
                           % (path, event.start_mark.line + 1, event.start_mark.column + 1, _MAX_DEPTH))
                raise DeclarationError(message, [message])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        if anchor is None and getattr(event, 'anchor', None):
            anchor = event
    else:
        if anchor is None:
            return
        mark, what = anchor.start_mark, 'an anchor (&%s)' % excerpt(anchor.anchor, quote=False)
    message = ('%s:%d:%d: %s: YAML anchors and aliases are not accepted in the declarations (an alias can make a '
               'small file endless); write each value out in full.' % (path, mark.line + 1, mark.column + 1, what))
    raise DeclarationError(message, [message])


def load_yaml(path):
    """(YamlDocument, [problem]) for a YAML file; a syntax error raises, naming the file and line.

    Anchors and aliases are refused, and so are merge keys (`<<`) that use them,
    as is nesting past _MAX_DEPTH levels (see _refuse_aliases_and_depth).
    """
    if not HAS_YAML:
        raise DeclarationError('The Python library PyYAML is required to read %s.' % path)
    try:
        with open(path, 'rb') as handle:
            text = handle.read().decode('utf-8')
    except UnicodeDecodeError as exc:
        raise DeclarationError('%s is not UTF-8 text: %s' % (path, exc)) from None
    except OSError as exc:
        raise DeclarationError('Cannot read %s: %s' % (path, exc.strerror)) from None
    lines, duplicates = {}, []
    try:
        _refuse_aliases_and_depth(path, text)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = None
            if node is not None:
                lines[()] = node.start_mark.line + 1
                _index(node, (), lines, duplicates, set())
                data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = '%s:%d:%d' % (path, mark.line + 1, mark.column + 1) if mark else path
        what = exc.problem or exc.context or 'invalid YAML'
        if exc.context and exc.problem:
            what = '%s (%s)' % (exc.problem, exc.context)
        message = '%s: not valid YAML: %s' % (where, what)
        raise DeclarationError(message, [message]) from None
    except yaml.YAMLError as exc:
        message = '%s: not valid YAML: %s' % (path, exc)
        raise DeclarationError(message, [message]) from None
    except RecursionError:
        message = '%s: nested too deeply to be a declaration file.' % path
        raise DeclarationError(message, [message]) from None
    document = YamlDocument(path, data, lines)
    problems = [document.problem(sub, 'given twice (lines %d and %d); YAML keeps only the last, so say it once'
                                 % (first, line)) for sub, line, first in duplicates]
    return document, problems


def _schema_problems(document, schema):
    try:
        validate(document.data, schema, document.path, locate=document.line)
    except DeclarationError as exc:
        return list(exc.problems)
    return []


# -- the declarations ----------------------------------------------------------


class Declarations:
    """state/roles.yml and state/datastores.yml, parsed and schema-checked.

    `entries` are the well-formed server declarations in file order:
    {key, role, vmid, cluster, vars, line}. `problems` holds every schema problem.
    `defaults` are the top-level default datastores; defaults_for() gives one cluster's.
    """

    def __init__(self, roles, datastores, problems):
        self.roles = roles
        self.datastores = datastores
        self.problems = problems
        servers = (roles.data or {}).get('servers') if isinstance(roles.data, dict) else None
        self.entries = []
        for key, value in (servers or {}).items() if isinstance(servers, dict) else ():
            vmid = value.get('vmid') if isinstance(value, dict) else None
            cluster = value.get('cluster') if isinstance(value, dict) else None
            if (not isinstance(value, dict) or not isinstance(value.get('role'), str) or not value['role'] or
                    (vmid is not None and (not isinstance(vmid, int) or isinstance(vmid, bool))) or
                    (cluster is not None and not (isinstance(cluster, str) and clusters.NAME.match(cluster)))):
                continue  # the schema problem is already listed; cross-checks would only echo it
            self.entries.append(dict(key=str(key), role=value['role'], vmid=vmid, cluster=cluster,
                                     vars=value.get('vars') if isinstance(value.get('vars'), dict) else {},
                                     line=roles.line(('servers', key))))
        wanted = datastores.data if datastores is not None and isinstance(datastores.data, dict) else {}
        self.files = (roles.path, datastores.path if datastores is not None else None)
        self.defaults = _defaults(wanted)
        per_cluster = wanted.get('clusters') if isinstance(wanted.get('clusters'), dict) else {}
        # {cluster: {kind: id}} of the clusters state/datastores.yml gives defaults of their own.
        self.cluster_defaults = dict((str(name), _defaults(entry) if isinstance(entry, dict) else {})
                                     for name, entry in per_cluster.items())

    def problem(self, entry, message, field=None):
        path = ('servers', entry['key']) + ((field,) if field else ())
        return self.roles.problem(path, message)

    def defaults_for(self, cluster):
        """{kind: datastore id} of one cluster: its entry under `clusters`, else the top level, kind by kind."""
        return dict((kind, sid) for kind, (sid, _path) in self.defaults_with_paths(cluster).items())

    def defaults_with_paths(self, cluster):
        """{kind: (datastore id, the field path that says it)} of one cluster."""
        own = self.cluster_defaults.get(cluster, {})
        out = {}
        for kind, key in _KINDS:
            if kind in own:
                out[kind] = (own[kind], ('clusters', cluster, key))
            elif kind in self.defaults:
                out[kind] = (self.defaults[kind], (key,))
        return out


def _defaults(mapping):
    return dict((kind, mapping[key]) for kind, key in _KINDS if isinstance(mapping.get(key), str) and mapping[key])


def load(roles_path=None, datastores_path=None, with_datastores=True):
    """Read both files; syntax errors of either are raised together, schema problems are kept."""
    roles_path, datastores_path = roles_file(roles_path), datastores_file(datastores_path)
    if not os.path.exists(roles_path):
        raise DeclarationError('The role declarations %s do not exist: create it with `servers: {}` (see '
                               'schemas/roles.schema.json), or set roles_file.' % roles_path)
    documents, problems, broken = {}, [], []
    for name, path, schema in (('roles', roles_path, ROLES_SCHEMA), ('datastores', datastores_path,
                                                                     DATASTORES_SCHEMA)):
        if name == 'datastores' and not (with_datastores and os.path.exists(path)):
            documents[name] = None  # no datastore declaration: the defaults stay as they are
            continue
        try:
            document, found = load_yaml(path)
        except DeclarationError as exc:
            broken.extend(exc.problems or [str(exc)])
            continue
        if document.data is None:  # an empty file declares nothing
            document.data = {}
        documents[name] = document
        problems.extend(found)
        problems.extend(_schema_problems(document, schema))
    if broken:
        raise DeclarationError(problems_text(broken, ' in the declarations'), broken)
    return Declarations(documents['roles'], documents['datastores'], problems)


def require_valid(problems, files=()):
    """Raise every problem at once, ordered by file (as given) and line."""
    if problems:
        problems = sorted(problems, key=lambda p: _position(p, files))
        raise DeclarationError(problems_text(problems, ' in the declarations'), problems)


def _position(problem, files):
    for rank, path in enumerate(files):
        if path and problem.startswith(path + ':'):
            line = problem[len(path) + 1:].split(':', 1)[0]
            return rank, int(line) if line.isdigit() else 0
    return len(files), 0


# -- cross-checks against the one core -----------------------------------------


def check_servers(declarations, view, catalog, tfvars_name):
    """([(entry, record)], [(entry, problem)], problems, warnings) for the role declarations.

    Servers resolve through MergedView.find (name, vmid and cluster), as in the
    inventory and server_role; roles are checked against the role catalog
    (unless None). `tfvars_name` is the tfvars file a warning names: one
    path, or {cluster: path}.
    """
    resolved, unresolved, problems, warnings, seen = [], [], [], [], {}
    for entry in declarations.entries:
        if catalog is not None and entry['role'] not in catalog:
            problems.append(declarations.problem(entry, role_assignment._role_problem(entry['role'], catalog),
                                                 'role'))
        record, problem = view.find(entry['key'], entry['vmid'], entry.get('cluster'))
        if problem:
            problems.append(declarations.problem(entry, problem, _problem_field(entry, view)))
            unresolved.append((entry, problem))
            continue
        if record.host in seen:
            first = seen[record.host]
            problems.append(declarations.problem(entry, 'the same server (%s) as servers.%s on line %s; declare '
                                                        'each server once.' % (excerpt(record.host, quote=False),
                                                                               excerpt(first['key'], quote=False),
                                                                               first['line'])))
            continue
        seen[record.host] = entry
        resolved.append((entry, record))
        tf_role = record.declared_role
        if tf_role and tf_role != entry['role']:
            name = tfvars_name.get(record.cluster) if isinstance(tfvars_name, dict) else tfvars_name
            warnings.append(declarations.problem(entry, '%s differs from the role %s in %s; the declaration wins.'
                                                 % (excerpt(entry['role']), excerpt(tf_role), name), 'role'))
    return resolved, unresolved, problems, warnings


def _candidates(view, key):
    return view.by_name.get(key) or ([view.by_host[key]] if key in view.by_host else [])


def _problem_field(entry, view):
    """The field a resolution problem is about: `cluster`, `vmid`, or None (the server itself)."""
    candidates = _candidates(view, entry['key'])
    cluster = entry.get('cluster')
    if cluster is not None and (cluster not in view.clusters or
                                (candidates and all(r.cluster != cluster for r in candidates))):
        return 'cluster'
    if entry['vmid'] is not None and candidates:
        return 'vmid'
    return None


def check_clusters(declarations, names):
    """Problems for the clusters state/datastores.yml gives defaults of that are not among `names` (the view's)."""
    document = declarations.datastores
    problems = []
    for name in declarations.cluster_defaults:
        if name not in names:
            close = difflib.get_close_matches(name, list(names), n=2, cutoff=0.6)
            hint = ' Did you mean %s?' % ' or '.join(excerpt(c) for c in close) if close else ''
            problems.append(document.problem(('clusters', name), 'The cluster %s is not one of the clusters (%s).%s'
                                             % (excerpt(name), ', '.join(names) or 'none', hint)))
    return problems


def check_datastores(declarations, cached_rows, fetch, cluster=None, named=False):
    """(problems, warnings, refresh_needed) for the default datastores of one cluster in state/datastores.yml.

    A default must be an enabled datastore of the cluster's cache or of its
    Proxmox; Proxmox is asked (one fetch) only when the cache lacks one. A
    datastore that exists only in Proxmox while the cache has other rows
    needs a refresh before datastore_default accepts it. `named` names the
    cluster in each problem (when there are several).
    """
    wanted = declarations.defaults_with_paths(cluster)
    if not wanted:
        return [], [], False
    known = dict((r['id'], r) for r in cached_rows if r.get('enabled'))
    refresh = False
    if any(sid not in known for sid, _path in wanted.values()):
        live = dict((r['id'], r) for r in fetch() if r.get('enabled'))
        refresh = bool(cached_rows) and any(sid in live and sid not in known for sid, _path in wanted.values())
        for sid, row in live.items():
            known.setdefault(sid, row)
    problems, warnings = [], []
    document = declarations.datastores
    for kind, key in _KINDS:
        if kind not in wanted:
            continue
        sid, path = wanted[kind]
        where = 'Cluster %s: ' % cluster if named else ''  # as errors.in_cluster says it
        # A top-level default that does not fit one cluster: that cluster may say otherwise.
        own = (' Give the cluster its own under clusters.%s.%s.' % (cluster, key)
               if named and path == (key,) else '')
        if sid not in known:
            close = difflib.get_close_matches(sid, list(known), n=2, cutoff=0.6)
            hint = ' Did you mean %s?' % ' or '.join(excerpt(c) for c in close) if close else ''
            problems.append(document.problem(path, '%sdatastore %s is neither in the datastore cache nor in Proxmox '
                                                   '(enabled datastores: %s).%s%s'
                                             % (where, excerpt(sid), ', '.join(sorted(known)) or 'none', hint, own)))
            continue
        if not holds_disks(known[sid]):
            # datastore_default refuses it too: validate must not pass what apply will refuse
            problems.append(document.problem(path, '%sdatastore %s cannot hold disks (content: %s), so new disks '
                                                   'could not land there.%s'
                                             % (where, excerpt(sid), excerpt(known[sid].get('content') or 'none',
                                                                             quote=False), own)))
    return problems, warnings, refresh


def _covered_rows(view, rows):
    """The rows of the clusters the view covers, with the cluster to match them by (None for a view of no
    named cluster, which matches rows of any)."""
    if not view.clusters:
        return [(None, row) for row in rows]
    return [(row.get('cluster'), row) for row in rows if row.get('cluster') in view.clusters]


def applied_roles(view, rows):
    """({host: row}, [stale row]) for the state DB rows that carry a role.

    Matched as the inventory matches them, within each cluster (a vmid is
    unique only there): a row with a vmid belongs to that guest of its
    cluster, a row without one to the servers of its name in its cluster.
    Stale rows belong to no server of the view (gone from Proxmox and from
    tfvars). Rows of clusters the view does not cover are left out.
    """
    rows = [(cluster, r) for cluster, r in _covered_rows(view, rows) if r.get('role')]
    by_vmid = dict(((cluster, r['vmid']), r) for cluster, r in rows if r['vmid'] is not None)
    by_name = dict(((cluster, r['name']), r) for cluster, r in rows if r['vmid'] is None)
    scoped = bool(view.clusters)
    matched, used = {}, set()
    for record in view:
        cluster = record.cluster if scoped else None
        row = by_vmid.get((cluster, record.vmid)) if record.vmid is not None else None
        row = row or by_name.get((cluster, record.name))
        if row is not None:
            matched[record.host] = row
            used.add(id(row))
    return matched, [r for _cluster, r in rows if id(r) not in used]


def prune_entries(view, resolved, rows, catalog):
    """(server_role entries with state absent, stale rows) for roles no longer declared.

    Each entry also carries the server's `cluster`, `host` and `previous_role`.
    """
    declared = set(record.host for _entry, record in resolved)
    matched, stale = applied_roles(view, rows)
    prune = []
    for record in view:
        row = matched.get(record.host)
        if row is None or record.host in declared:
            continue
        item = dict(name=record.name, vmid=record.vmid, state='absent', host=record.host, cluster=record.cluster,
                    previous_role=row['role'])
        if row['role'] in catalog:
            item['role'] = row['role']  # removes only that role, should another run change it meanwhile
        prune.append(item)
    return prune, stale


def role_entries(resolved):
    """The entries for server_role's `servers` option, one per declared server, each naming its cluster."""
    return [dict(name=record.name, vmid=record.vmid, cluster=record.cluster, role=entry['role'], state='present')
            for entry, record in resolved]


# -- drift -----------------------------------------------------------------------


def drift_kinds(git_role, db_role, live):
    kinds = []
    if git_role and not live:
        kinds.append(DRIFT_NOT_LIVE)
    if git_role and not db_role:
        kinds.append(DRIFT_MISSING)
    elif git_role and db_role != git_role:
        kinds.append(DRIFT_MISMATCH)
    if db_role and not git_role:
        kinds.append(DRIFT_UNDECLARED)
    return kinds


def drift_rows(view, resolved, unresolved, rows):
    """One row per server: git (roles.yml) vs the state DB vs live Proxmox, with the server's cluster.

    Kinds: `declared only` (in git, not live in Proxmox), `missing` (in git,
    no role in the state DB), `role mismatch` (both, different roles),
    `undeclared` (a role in the state DB that git does not declare).
    """
    matched, stale = applied_roles(view, rows)
    git = dict((record.host, entry) for entry, record in resolved)
    out = []

    def add(host, cluster, name, vmid, git_role, db_role, proxmox, live):
        out.append(dict(host=host, cluster=cluster, name=name, vmid=vmid, git_role=git_role, db_role=db_role,
                        proxmox=proxmox, drift=drift_kinds(git_role, db_role, live)))

    for record in view:
        entry, row = git.get(record.host), matched.get(record.host)
        add(record.host, record.cluster, record.name, record.vmid, entry and entry['role'], row and row['role'],
            (record.status or 'unknown') if record.is_live else 'not created', record.is_live)
    for entry, _problem in unresolved:
        key, cluster = entry['key'], entry.get('cluster')
        if _problem_field(entry, view) != 'cluster' and _candidates(view, key):
            # Ambiguous name, or a vmid the name does not have: validation explains it.
            add(key, cluster, key, entry['vmid'], entry['role'], None, 'ambiguous', True)
            continue
        if key in view.templates and cluster in [None] + [r.cluster for r in view.templates[key]]:
            # A template is no server: it gets no role (validation says so).
            add(key, cluster, key, entry['vmid'], entry['role'], None, 'template', False)
            continue
        # A declaration of a server that is gone (from its cluster): one row with its stale DB role, if any.
        row = next((r for r in stale if r['name'] == key and entry['vmid'] in (None, r['vmid']) and
                    cluster in (None, r.get('cluster'))), None)
        if row is not None:
            stale.remove(row)
        add(key, cluster if row is None else row.get('cluster'), key, entry['vmid'], entry['role'],
            row and row['role'], 'not found', False)
    for row in stale:
        host = row['name'] if row['vmid'] is None else '%s-%s' % (row['name'], row['vmid'])
        add(host, row.get('cluster'), row['name'], row['vmid'], None, row['role'], 'gone', False)
    out.sort(key=lambda r: (r['host'].lower(), r['cluster'] or '', r['vmid'] or 0))
    return out


def drift_counts(rows):
    counts = dict((kind, 0) for kind in DRIFT_KINDS)
    for row in rows:
        for kind in row['drift']:
            counts[kind] += 1
    return counts


def render_table(rows):
    """The drift rows as an aligned text table, with a summary line."""
    header = ('SERVER', 'CLUSTER', 'VMID', 'GIT (roles.yml)', 'STATE DB', 'PROXMOX', 'DRIFT')
    cells = [header] + [(r['host'], r['cluster'] or '-', '-' if r['vmid'] is None else str(r['vmid']),
                         r['git_role'] or '-', r['db_role'] or '-', r['proxmox'], ', '.join(r['drift']) or 'ok')
                        for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ['  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.append(summary(rows))
    return '\n'.join(lines)


def summary(rows):
    drifted = [r for r in rows if r['drift']]
    if not drifted:
        return 'No drift: git, the state DB and Proxmox agree on %d server%s.' % (len(rows), '' if len(rows) == 1
                                                                                  else 's')
    counts = drift_counts(rows)
    return 'Drift in %d of %d servers: %s.' % (len(drifted), len(rows), ', '.join(
        '%d %s' % (counts[kind], kind) for kind in DRIFT_KINDS if counts[kind]))
