# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""JSON Schemas of the files users keep in git, and one validator for them.

They live in Python so modules carry them to the target; `make schemas`
writes the same schemas to schemas/*.schema.json for editors and CI.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import DeclarationError

try:
    from importlib.util import find_spec

    # Imported only when the fast path below cannot vouch for a file: it costs ~0.15 s per process.
    HAS_JSONSCHEMA = find_spec('jsonschema') is not None
except (ImportError, ValueError):  # pragma: no cover - reported by the callers
    HAS_JSONSCHEMA = False

_NAME = {'type': 'string', 'minLength': 1, 'maxLength': 253,
         'pattern': '^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$'}
# A cluster's name, as module_utils/clusters.py accepts it (1 to 63 characters, starting with a letter).
CLUSTER_PATTERN = '^[A-Za-z][A-Za-z0-9_-]{0,62}$'
_CLUSTER = {'type': 'string', 'pattern': CLUSTER_PATTERN}

TFVARS_SCHEMA = {
    '$schema': 'https://json-schema.org/draft/2020-12/schema',
    '$id': 'https://proxmox-manager.github.io/core/schemas/terraform.tfvars.schema.json',
    'title': 'terraform/terraform.tfvars.json of a proxmox_manager config repo',
    'type': 'object',
    'required': ['servers'],
    'properties': {
        'servers': {
            'type': 'object',
            'propertyNames': _NAME,
            'additionalProperties': {
                'type': 'object',
                'required': ['name'],
                'properties': {
                    'name': _NAME,
                    'role': {'type': ['string', 'null']},
                    'vm_id': {'type': 'integer', 'minimum': 100, 'maximum': 999999999},
                    'node': {'type': 'string', 'minLength': 1},
                    'cpu': {'type': 'integer', 'minimum': 1, 'maximum': 4096},
                    'memory': {'type': 'integer', 'minimum': 16, 'maximum': 1 << 40, 'description': 'MB'},
                    'os_type': {'type': 'string'},
                    'template_vm_id': {'type': 'integer', 'minimum': 100, 'maximum': 999999999},
                    'disks': {
                        'type': 'array',
                        'items': {
                            'type': 'object',
                            'required': ['size'],
                            'properties': {
                                'size': {'type': 'integer', 'minimum': 1, 'maximum': 1 << 40, 'description': 'GB'},
                                'interface': {'type': 'string', 'pattern': '^(scsi|virtio|sata|ide)[0-9]+$'},
                                'datastore_id': {'type': 'string', 'minLength': 1},
                                'disk_type': {'enum': ['hdd', 'ssd', 'nvme']},
                                'file_format': {'enum': ['raw', 'qcow2', 'vmdk']},
                            },
                        },
                    },
                    'network_devices': {
                        'type': 'array',
                        'items': {
                            'type': 'object',
                            'properties': {
                                'bridge': {'type': 'string', 'minLength': 1},
                                'ip_address': {'type': 'string', 'minLength': 1},
                                'subnet': {'type': ['integer', 'string']},
                                'gateway': {'type': 'string'},
                            },
                        },
                    },
                },
            },
        },
    },
}

DATASTORE_TFVARS_SCHEMA = {
    '$schema': 'https://json-schema.org/draft/2020-12/schema',
    '$id': 'https://proxmox-manager.github.io/core/schemas/datastores.auto.tfvars.schema.json',
    'title': 'terraform/datastores.auto.tfvars.json, written by datastore_default',
    'type': 'object',
    'required': ['proxmox_hdd_datastore', 'proxmox_ssd_datastore'],
    'additionalProperties': False,
    'properties': {
        'proxmox_hdd_datastore': {'type': 'string', 'minLength': 1},
        'proxmox_ssd_datastore': {'type': 'string', 'minLength': 1},
    },
}

# state/roles.yml: the functional role of each server, kept in git.
ROLES_SCHEMA = {
    '$schema': 'https://json-schema.org/draft/2020-12/schema',
    '$id': 'https://proxmox-manager.github.io/core/schemas/roles.schema.json',
    'title': 'state/roles.yml: the functional role of each server',
    'type': 'object',
    'required': ['servers'],
    'additionalProperties': False,
    'properties': {
        'servers': {
            'description': 'Server name (or inventory host name) -> its declaration. Empty means no server has a role.',
            'type': ['object', 'null'],
            'propertyNames': _NAME,
            'additionalProperties': {
                'type': 'object',
                'required': ['role'],
                'additionalProperties': False,
                'properties': {
                    'role': {'type': 'string', 'minLength': 1, 'maxLength': 64,
                             'description': 'A role of the catalog (the role directories of roles/).'},
                    'vmid': {'type': 'integer', 'minimum': 100, 'maximum': 999999999,
                             'description': 'Picks one of several guests that share the name.'},
                    'cluster': dict(_CLUSTER, description='The cluster of the server: needed when its name is '
                                                          'used in more than one cluster.'),
                    'vars': {'type': 'object', 'description': 'Variables for the role on this server.',
                             'propertyNames': {'pattern': '^[A-Za-z_][A-Za-z0-9_]*$'}},
                },
            },
        },
    },
}

# state/datastores.yml: the default datastores new disks land on.
_DEFAULTS = {
    'default_hdd': {'type': 'string', 'minLength': 1, 'maxLength': 100,
                    'description': 'Datastore id for disks with disk_type hdd.'},
    'default_ssd': {'type': 'string', 'minLength': 1, 'maxLength': 100,
                    'description': 'Datastore id for disks with disk_type ssd or nvme.'},
}
DATASTORES_SCHEMA = {
    '$schema': 'https://json-schema.org/draft/2020-12/schema',
    '$id': 'https://proxmox-manager.github.io/core/schemas/datastores.schema.json',
    'title': 'state/datastores.yml: the default HDD and SSD datastores',
    'type': 'object',
    'additionalProperties': False,
    'properties': dict(_DEFAULTS, clusters={
        'description': 'Cluster name -> the defaults of that cluster, where they differ from the top level (which '
                       'applies to every cluster).',
        'type': 'object',
        'propertyNames': _CLUSTER,
        'additionalProperties': {'type': 'object', 'additionalProperties': False, 'properties': _DEFAULTS},
    }),
}

SCHEMAS = {
    'terraform.tfvars': TFVARS_SCHEMA,
    'datastores.auto.tfvars': DATASTORE_TFVARS_SCHEMA,
    'roles': ROLES_SCHEMA,
    'datastores': DATASTORES_SCHEMA,
}


# -- fast path --------------------------------------------------------------
# jsonschema takes ~0.25 ms per tfvars server (2 s for 9,000). Each schema is compiled
# once into the source of one plain Python function (~10 us per server) that only ever
# says "certainly valid": anything else goes to jsonschema, which gives the verdict
# and the messages.

_TYPE_TESTS = {
    'object': 'isinstance({v}, dict)',
    'array': 'isinstance({v}, list)',
    'string': 'isinstance({v}, str)',
    'integer': '(isinstance({v}, int) and not isinstance({v}, bool))',
    'number': '(isinstance({v}, (int, float)) and not isinstance({v}, bool))',
    'boolean': 'isinstance({v}, bool)',
    'null': '{v} is None',
}
_ANNOTATIONS = frozenset(('$schema', '$id', '$comment', 'title', 'description', 'default', 'examples'))
_KEYWORDS = frozenset(('type', 'required', 'properties', 'additionalProperties', 'propertyNames', 'items',
                       'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'enum'))
_MISSING = object()
_COMPILED = {}


class _Unsupported(Exception):
    """The schema uses a keyword the fast path does not know: jsonschema decides alone."""


class _Source:
    def __init__(self):
        self.lines, self.consts, self.names = [], {'_MISSING': _MISSING}, 0

    def var(self):
        self.names += 1
        return 'v%d' % self.names

    def const(self, value):
        name = 'c%d' % len(self.consts)
        self.consts[name] = value
        return name

    def emit(self, depth, line):
        self.lines.append('    ' * depth + line)


def _emit(schema, v, src, depth):
    """Lines that `return False` whenever `v` might violate `schema`."""
    if schema is True:
        return
    if schema is False:
        src.emit(depth, 'return False')
        return
    if not isinstance(schema, dict):
        raise _Unsupported(schema)
    if set(schema) - _ANNOTATIONS - _KEYWORDS:
        raise _Unsupported(sorted(set(schema) - _ANNOTATIONS - _KEYWORDS))
    if 'type' in schema:
        names = schema['type'] if isinstance(schema['type'], list) else [schema['type']]
        if not all(n in _TYPE_TESTS for n in names):
            raise _Unsupported(names)
        src.emit(depth, 'if not (%s): return False' % ' or '.join(_TYPE_TESTS[n].format(v=v) for n in names))
    for key, op in (('minimum', '<'), ('maximum', '>')):
        if key in schema:
            src.emit(depth, 'if %s and %s %s %r: return False' % (_TYPE_TESTS['number'].format(v=v), v, op, schema[key]))
    for key, op in (('minLength', '<'), ('maxLength', '>')):
        if key in schema:
            src.emit(depth, 'if isinstance(%s, str) and len(%s) %s %d: return False' % (v, v, op, schema[key]))
    if 'pattern' in schema:
        rx = src.const(re.compile(schema['pattern']))
        src.emit(depth, 'if isinstance(%s, str) and %s.search(%s) is None: return False' % (v, rx, v))
    if 'enum' in schema:
        allowed = schema['enum']
        if any(isinstance(a, (dict, list)) for a in allowed):
            raise _Unsupported('enum')
        pairs = src.const(frozenset((type(a), a) for a in allowed))  # 1 and True stay apart
        src.emit(depth, 'if isinstance(%s, (dict, list)) or (type(%s), %s) not in %s: return False'
                 % (v, v, v, pairs))
    if 'required' in schema:
        src.emit(depth, 'if isinstance(%s, dict) and not (%s): return False'
                 % (v, ' and '.join('%r in %s' % (k, v) for k in schema['required']) or 'True'))
    props, extra = schema.get('properties') or {}, schema.get('additionalProperties', True)
    if props or extra is not True or 'propertyNames' in schema:
        src.emit(depth, 'if isinstance(%s, dict):' % v)
        for name, sub in props.items():
            x = src.var()
            src.emit(depth + 1, '%s = %s.get(%r, _MISSING)' % (x, v, name))
            src.emit(depth + 1, 'if %s is not _MISSING:' % x)
            src.emit(depth + 2, 'pass')
            _emit(sub, x, src, depth + 2)
        if extra is not True or 'propertyNames' in schema:
            k, x = src.var(), src.var()
            known = src.const(frozenset(props))
            src.emit(depth + 1, 'for %s, %s in %s.items():' % (k, x, v))
            src.emit(depth + 2, 'pass')
            _emit(schema.get('propertyNames', True), k, src, depth + 2)
            if extra is not True:
                src.emit(depth + 2, 'if %s not in %s:' % (k, known))
                src.emit(depth + 3, 'pass')
                _emit(extra, x, src, depth + 3)
    if 'items' in schema:
        if not isinstance(schema['items'], (dict, bool)):
            raise _Unsupported('items')
        x = src.var()
        src.emit(depth, 'if isinstance(%s, list):' % v)
        src.emit(depth + 1, 'for %s in %s:' % (x, v))
        src.emit(depth + 2, 'pass')
        _emit(schema['items'], x, src, depth + 2)


def _compile(schema):
    """A function that is True only where jsonschema finds no error (never more lenient), or None."""
    src = _Source()
    src.emit(0, 'def check(v0):')
    try:
        _emit(schema, 'v0', src, 1)
    except _Unsupported:
        return None
    src.emit(1, 'return True')
    namespace = dict(src.consts)
    exec(compile('\n'.join(src.lines), '<schema fast path>', 'exec'), namespace)  # pylint: disable=exec-used
    return namespace['check']


def _surely_valid(data, schema):
    """True when `data` certainly satisfies `schema`; False means "ask jsonschema" (maybe invalid)."""
    entry = _COMPILED.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = _COMPILED[id(schema)] = (schema, _compile(schema))
    return entry[1] is not None and entry[1](data)


# -- messages ----------------------------------------------------------------

EXCERPT = 80


def excerpt(value, quote=True, limit=EXCERPT):
    """A value as an error message shows it: repr() (str() with quote=False), at most `limit` characters, then '...'.

    The one bound on what a message echoes of a file or an argument, so a 1 MB
    server name costs a message 80 characters, not 1 MB.
    """
    if isinstance(value, str):
        text = repr(value[:limit]) if quote else value[:limit]
        return text + '...' if len(value) > limit else text
    text = repr(value) if quote else str(value)
    return text[:limit] + '...' if len(text) > limit else text


def _field(path):
    """servers.AI-agent.disks[0].disk_type from a jsonschema error path (each key bounded by excerpt)."""
    out = ''
    for part in path:
        out += '[%d]' % part if isinstance(part, int) else ('.' if out else '') + excerpt(part, quote=False)
    return out or '(top level)'


def _message(err):
    """jsonschema's message, with any value it echoes bounded by excerpt."""
    if err.validator == 'additionalProperties' and isinstance(err.instance, dict) and err.validator_value is False:
        known = (err.schema or {}).get('properties') or {}
        extras = sorted((key for key in err.instance if key not in known), key=str)
        if extras:
            shown = ', '.join(excerpt(key) for key in extras[:5]) + (', ...' if len(extras) > 5 else '')
            return 'Additional properties are not allowed (%s %s unexpected)' % (
                shown, 'was' if len(extras) == 1 else 'were')
    message = err.message
    echoed = repr(err.instance)
    if len(echoed) > EXCERPT and echoed in message:
        message = message.replace(echoed, excerpt(err.instance))
    return message


def validate(data, schema, source, locate=None):
    """Raise DeclarationError listing every violation as `file: field: message`.

    `locate(path)` may return a line number for a field path (YAML files).
    """
    if not HAS_JSONSCHEMA:
        raise DeclarationError('The Python library jsonschema is required to validate %s.' % source)
    if _surely_valid(data, schema):
        return
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    try:
        for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
            line = locate(list(err.absolute_path)) if locate else None
            where = '%s:%s' % (source, line) if line else source
            problems.append('%s: %s: %s' % (where, _field(err.absolute_path), _message(err)))
    except RecursionError:  # jsonschema echoes a value nested deeper than repr() goes
        problems = ['%s: nested too deeply to be checked; no file of ours nests more than a few levels.' % source]
    if problems:
        raise DeclarationError('%s is not valid:\n  %s' % (source, '\n  '.join(problems)), problems)
