"""terraform/ and schemas/: the JSON files validate, the schemas never drift, the HCL declares what they set.

Terraform itself is not installed here, so the HCL is checked by parsing the
few constructs the collection relies on.
"""

import importlib.util
import json
import re

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import schemas
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import DeclarationError
from tests.conftest import ROOT

TF = ROOT / 'terraform'
KINDS = set(schemas.TFVARS_SCHEMA['properties']['servers']['additionalProperties']['properties']['disks']['items']
            ['properties']['disk_type']['enum'])


def load(path):
    with open(path) as handle:
        return json.load(handle)


def hcl(name):
    text = (TF / name).read_text()
    return re.sub(r'(?m)^\s*#.*$', '', text)  # comments out of the way


def block(text, opener):
    """The text between the brace that follows `opener` and its match."""
    start = text.index(opener)
    depth, i = 0, text.index('{', start)
    for j in range(i, len(text)):
        depth += {'{': 1, '}': -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j]
    raise AssertionError('unbalanced block after %r' % opener)


def declared_variables():
    text = '\n'.join(hcl(f.name) for f in TF.glob('*.tf'))
    return set(re.findall(r'(?m)^\s*variable\s+"([A-Za-z_][\w-]*)"\s*\{', text))


def write_schemas_module():
    spec = importlib.util.spec_from_file_location('write_schemas', ROOT / 'scripts' / 'write_schemas.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_tfvars_validates_and_auto_disks_have_a_kind():
    data = load(TF / 'terraform.tfvars.json')
    schemas.validate(data, schemas.TFVARS_SCHEMA, 'terraform.tfvars.json')
    auto = [(name, d) for name, server in data['servers'].items() for d in server.get('disks', [])
            if d.get('datastore_id') == 'auto']
    assert auto, 'the sample should show datastore_id "auto"'
    for name, disk in auto:
        assert disk.get('disk_type') in ('hdd', 'ssd', 'nvme'), (name, disk)
    assert set(d['disk_type'] for _n, d in auto) >= {'hdd', 'ssd'}
    for name, server in data['servers'].items():
        assert name == server['name']  # variables.tf's validation demands it


def test_datastore_vars_file_validates():
    data = load(TF / 'datastores.auto.tfvars.json')
    schemas.validate(data, schemas.DATASTORE_TFVARS_SCHEMA, 'datastores.auto.tfvars.json')
    assert set(data) == {'proxmox_hdd_datastore', 'proxmox_ssd_datastore'}


@pytest.mark.parametrize('bad', [
    {'proxmox_hdd_datastore': None, 'proxmox_ssd_datastore': 'local'},
    {'proxmox_hdd_datastore': 'local-lvm'},
    {'proxmox_hdd_datastore': 'local-lvm', 'proxmox_ssd_datastore': 'local', 'extra': 1},
])
def test_datastore_schema_refuses_incomplete_files(bad):
    with pytest.raises(DeclarationError):
        schemas.validate(bad, schemas.DATASTORE_TFVARS_SCHEMA, 'datastores.auto.tfvars.json')


def test_tfvars_schema_refuses_an_unknown_disk_type():
    data = load(TF / 'terraform.tfvars.json')
    name = next(iter(data['servers']))
    data['servers'][name]['disks'] = [dict(size=10, datastore_id='auto', disk_type='tape')]
    with pytest.raises(DeclarationError) as failed:
        schemas.validate(data, schemas.TFVARS_SCHEMA, 'terraform.tfvars.json')
    assert 'disk_type' in str(failed.value)


def test_schema_files_are_what_write_schemas_writes():
    writer = write_schemas_module()
    assert set(p.name for p in (ROOT / 'schemas').glob('*.schema.json')) == \
        set('%s.schema.json' % name for name in writer.SCHEMAS)
    for name, schema in writer.SCHEMAS.items():
        on_disk = (ROOT / 'schemas' / ('%s.schema.json' % name)).read_text()
        assert on_disk == writer.render(schema), 'schemas/%s.schema.json is stale: run make schemas' % name


def test_hcl_declares_every_variable_the_json_files_set():
    declared = declared_variables()
    for name in ('terraform.tfvars.json', 'datastores.auto.tfvars.json'):
        missing = set(load(TF / name)) - declared
        assert not missing, '%s sets undeclared variables: %s' % (name, sorted(missing))


def test_main_tf_uses_only_declared_variables():
    used = set(re.findall(r'\bvar\.([A-Za-z_]\w*)', hcl('main.tf')))
    assert used and used <= declared_variables()


def test_hcl_braces_balance():
    for path in TF.glob('*.tf'):
        text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', hcl(path.name))  # strings may hold anything
        for opening, closing in ('{}', '()', '[]'):
            assert text.count(opening) == text.count(closing), (path.name, opening)


def test_main_tf_maps_every_disk_type_to_a_default():
    text = hcl('main.tf')
    mapping = dict(re.findall(r'(\w+)\s*=\s*var\.(\w+)', block(text, 'default_datastore')))
    assert set(mapping) == KINDS == {'hdd', 'ssd', 'nvme'}
    assert mapping['hdd'] == 'proxmox_hdd_datastore'
    assert mapping['ssd'] == mapping['nvme'] == 'proxmox_ssd_datastore'
    # a disk with datastore_id "auto" takes the default of its disk_type
    assert re.search(r'datastore_id\s*=\s*disk\.value\.datastore_id\s*==\s*"auto"\s*\?\s*'
                     r'local\.default_datastore\[disk\.value\.disk_type\]\s*:\s*disk\.value\.datastore_id', text)
    # and variables.tf refuses any other disk_type
    validation = re.search(r'contains\(\[([^\]]*)\],\s*disk\.disk_type\)', hcl('variables.tf'))
    assert validation and set(re.findall(r'"(\w+)"', validation.group(1))) == KINDS


def test_servers_variable_declares_every_attribute_the_schema_allows():
    servers = block(hcl('variables.tf'), 'variable "servers"')
    attributes = set(re.findall(r'(?m)^\s*([a-z_]+)\s*=', servers))
    server_schema = schemas.TFVARS_SCHEMA['properties']['servers']['additionalProperties']['properties']
    allowed = set(server_schema)
    for nested in ('disks', 'network_devices'):
        allowed |= set(server_schema[nested]['items']['properties'])
    missing = allowed - attributes
    assert not missing, 'variables.tf drops attributes the schema allows: %s' % sorted(missing)
    used = set()
    for server in load(TF / 'terraform.tfvars.json')['servers'].values():
        used |= set(server)
        for nested in ('disks', 'network_devices'):
            for item in server.get(nested, []):
                used |= set(item)
    assert used <= attributes
