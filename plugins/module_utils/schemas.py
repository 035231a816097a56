# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""JSON Schemas of the files users keep in git, and one validator for them.

They live in Python so modules carry them to the target; `make schemas`
writes the same schemas to schemas/*.schema.json for editors and CI.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import DeclarationError

try:
    import jsonschema

    HAS_JSONSCHEMA = True
except ImportError:  # pragma: no cover - reported by the callers
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

SCHEMAS = {
    'terraform.tfvars': TFVARS_SCHEMA,
    'datastores.auto.tfvars': DATASTORE_TFVARS_SCHEMA,
}


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
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        line = locate(list(err.absolute_path)) if locate else None
        where = '%s:%s' % (source, line) if line else source
        problems.append('%s: %s: %s' % (where, _field(err.absolute_path), err.message))
    if problems:
        raise DeclarationError('%s is not valid:\n  %s' % (source, '\n  '.join(problems)), problems)
