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
                    'cpu': {'type': 'integer', 'minimum': 1},
                    'memory': {'type': 'integer', 'minimum': 16, 'description': 'MB'},
                    'os_type': {'type': 'string'},
                    'template_vm_id': {'type': 'integer', 'minimum': 100},
                    'disks': {
                        'type': 'array',
                        'items': {
                            'type': 'object',
                            'required': ['size'],
                            'properties': {
                                'size': {'type': 'integer', 'minimum': 1, 'description': 'GB'},
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
                    'vars': {'type': 'object', 'description': 'Variables for the role on this server.',
                             'propertyNames': {'pattern': '^[A-Za-z_][A-Za-z0-9_]*$'}},
                },
            },
        },
    },
}

# state/datastores.yml: the default datastores new disks land on.
DATASTORES_SCHEMA = {
    '$schema': 'https://json-schema.org/draft/2020-12/schema',
    '$id': 'https://proxmox-manager.github.io/core/schemas/datastores.schema.json',
    'title': 'state/datastores.yml: the default HDD and SSD datastores',
    'type': 'object',
    'additionalProperties': False,
    'properties': {
        'default_hdd': {'type': 'string', 'minLength': 1, 'maxLength': 100,
                        'description': 'Datastore id for disks with disk_type hdd.'},
        'default_ssd': {'type': 'string', 'minLength': 1, 'maxLength': 100,
                        'description': 'Datastore id for disks with disk_type ssd or nvme.'},
    },
}

SCHEMAS = {
    'terraform.tfvars': TFVARS_SCHEMA,
    'datastores.auto.tfvars': DATASTORE_TFVARS_SCHEMA,
    'roles': ROLES_SCHEMA,
    'datastores': DATASTORES_SCHEMA,
}


# -- fast path --------------------------------------------------------------
# jsonschema takes ~0.25 ms per tfvars server (2 s for 9,000); these compiled checks
# take ~15 us and only ever say "certainly valid": anything else goes to jsonschema,
# which then gives the verdict and the messages.

_TYPES = {
    'object': lambda v: isinstance(v, dict),
    'array': lambda v: isinstance(v, list),
    'string': lambda v: isinstance(v, str),
    'integer': lambda v: isinstance(v, int) and not isinstance(v, bool),
    'number': lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    'boolean': lambda v: isinstance(v, bool),
    'null': lambda v: v is None,
}
_ANNOTATIONS = frozenset(('$schema', '$id', '$comment', 'title', 'description', 'default', 'examples'))
_COMPILED = {}


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _compile(schema):
    """A predicate over JSON data that is True only where jsonschema finds no error (never more lenient),
    or None for a schema using a keyword it does not know. Plain closures: ~20x faster than jsonschema."""
    if schema is True:
        return lambda v: True
    if schema is False:
        return lambda v: False
    if not isinstance(schema, dict):
        return None
    checks = []
    if 'properties' in schema or 'additionalProperties' in schema:
        props = dict((k, _compile(s)) for k, s in (schema.get('properties') or {}).items())
        extra = _compile(schema.get('additionalProperties', True))
        if extra is None or None in props.values():
            return None

        def check_members(v):
            if isinstance(v, dict):
                for k, item in v.items():
                    if not props.get(k, extra)(item):
                        return False
            return True
        checks.append(check_members)
    for key, arg in schema.items():
        if key in _ANNOTATIONS or key in ('properties', 'additionalProperties'):
            continue
        if key == 'type':
            names = arg if isinstance(arg, list) else [arg]
            if not all(n in _TYPES for n in names):
                return None
            preds = tuple(_TYPES[n] for n in names)
            checks.append(preds[0] if len(preds) == 1 else (lambda v, preds=preds: any(p(v) for p in preds)))
        elif key == 'required':
            checks.append(lambda v, req=tuple(arg): not isinstance(v, dict) or all(k in v for k in req))
        elif key in ('propertyNames', 'items'):
            sub = _compile(arg)
            if sub is None or (key == 'items' and not isinstance(arg, (dict, bool))):
                return None
            kind = dict if key == 'propertyNames' else list
            checks.append(lambda v, sub=sub, kind=kind: not isinstance(v, kind) or all(sub(x) for x in v))
        elif key == 'minimum':
            checks.append(lambda v, n=arg: not _is_number(v) or v >= n)
        elif key == 'maximum':
            checks.append(lambda v, n=arg: not _is_number(v) or v <= n)
        elif key == 'minLength':
            checks.append(lambda v, n=arg: not isinstance(v, str) or len(v) >= n)
        elif key == 'maxLength':
            checks.append(lambda v, n=arg: not isinstance(v, str) or len(v) <= n)
        elif key == 'pattern':
            checks.append(lambda v, rx=re.compile(arg): not isinstance(v, str) or rx.search(v) is not None)
        elif key == 'enum':
            checks.append(lambda v, allowed=tuple(arg): any(type(v) is type(a) and v == a for a in allowed))
        else:
            return None
    if len(checks) == 1:
        return checks[0]
    checks = tuple(checks)

    def check_all(v):
        for check in checks:
            if not check(v):
                return False
        return True
    return check_all


def _surely_valid(data, schema):
    """True when `data` certainly satisfies `schema`; False means "ask jsonschema" (maybe invalid)."""
    entry = _COMPILED.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = _COMPILED[id(schema)] = (schema, _compile(schema))
    return entry[1] is not None and entry[1](data)


def _field(path):
    """servers.AI-agent.disks[0].disk_type from a jsonschema error path."""
    out = ''
    for part in path:
        out += '[%d]' % part if isinstance(part, int) else ('.' if out else '') + str(part)
    return out or '(top level)'


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
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        line = locate(list(err.absolute_path)) if locate else None
        where = '%s:%s' % (source, line) if line else source
        problems.append('%s: %s: %s' % (where, _field(err.absolute_path), err.message))
    if problems:
        raise DeclarationError('%s is not valid:\n  %s' % (source, '\n  '.join(problems)), problems)
