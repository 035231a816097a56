"""The schema fast path: it may only ever vouch for data jsonschema also finds valid.

The hypothesis-driven checks of that promise are in tests/integration/test_schemas_fuzz.py.
"""

import json

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import schemas
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import DeclarationError
from tests.conftest import SAMPLE_TFVARS


def test_every_schema_compiles_and_the_sample_tfvars_takes_the_fast_path():
    assert all(schemas._compile(schema) is not None for schema in schemas.SCHEMAS.values())
    assert schemas._surely_valid(json.loads(SAMPLE_TFVARS.read_text()), schemas.TFVARS_SCHEMA)


def test_enum_keeps_true_and_1_apart_and_unknown_keywords_fall_back():
    check = schemas._compile({'enum': [1, 'a']})
    assert check(1) and check('a') and not check(True) and not check(1.0) and not check([1])
    assert schemas._compile({'type': 'string', 'format': 'ipv4'}) is None
    assert schemas._surely_valid('x', {'oneOf': [{'type': 'string'}]}) is False


def test_messages_echo_values_as_bounded_excerpts():
    """A 1 MB value in a file costs a message EXCERPT characters, whatever the rule it breaks."""
    huge = 'x' * 1000000
    data = {'servers': {huge: {'role': huge, 'vmid': huge, 'vars': [huge], 'extra': 1, huge + 'y': 2}}, huge: 1}
    with pytest.raises(DeclarationError) as err:
        schemas.validate(data, schemas.ROLES_SCHEMA, 'roles.yml', locate=lambda path: 7)
    problems = err.value.problems
    cut = schemas.excerpt(huge)
    assert cut == repr('x' * schemas.EXCERPT) + '...'
    field = 'servers.' + 'x' * schemas.EXCERPT + '...'
    expected = [
        "roles.yml:7: (top level): Additional properties are not allowed (%s was unexpected)" % cut,
        "roles.yml:7: servers: %s is too long" % cut,
        "roles.yml:7: %s: Additional properties are not allowed ('extra', %s were unexpected)"
        % (field, schemas.excerpt(huge + 'y')),
        "roles.yml:7: %s.role: %s is too long" % (field, cut),
        "roles.yml:7: %s.vars: %s is not of type 'object'" % (field, "['" + 'x' * (schemas.EXCERPT - 2) + '...'),
        "roles.yml:7: %s.vmid: %s is not of type 'integer'" % (field, cut),
    ]
    assert sorted(problems) == sorted(expected), [p[:200] for p in problems]


def test_field_paths_are_bounded_too():
    assert schemas._field(['servers', 'y' * 500, 'disks', 0, 'size']) == 'servers.%s....disks[0].size' % ('y' * 80)
    assert schemas._field([]) == '(top level)'


def problems_of(data, schema):
    try:
        schemas.validate(data, schema, 'f.yml')
    except DeclarationError as exc:
        return exc.problems
    return []


def test_a_server_may_name_its_cluster_as_the_inventory_file_names_clusters():
    from ansible_collections.proxmox_manager.core.plugins.module_utils import clusters

    assert schemas.CLUSTER_PATTERN == clusters.NAME.pattern  # one rule for a cluster's name, wherever it is written
    ok = {'servers': {'web-01': {'role': 'web', 'cluster': 'lab'}, 'db-01': {'role': 'db', 'cluster': 'p' * 63}}}
    assert schemas._surely_valid(ok, schemas.ROLES_SCHEMA)
    for bad in ('', '-lab', '1lab', 'p' * 64, 'la b', 3):
        data = {'servers': {'web-01': {'role': 'web', 'cluster': bad}}}
        assert not schemas._surely_valid(data, schemas.ROLES_SCHEMA)
        assert [p.split(': ')[1] for p in problems_of(data, schemas.ROLES_SCHEMA)] == ['servers.web-01.cluster'], bad


def test_datastores_take_defaults_per_cluster():
    ok = {'default_hdd': 'local-lvm', 'default_ssd': 'ssd-pool',
          'clusters': {'lab': {'default_ssd': 'lab-ssd'}, 'prod-2': {}}}
    assert schemas._surely_valid(ok, schemas.DATASTORES_SCHEMA)
    assert problems_of({'clusters': {'lab': {'default_sdd': 'x'}}}, schemas.DATASTORES_SCHEMA) == [
        "f.yml: clusters.lab: Additional properties are not allowed ('default_sdd' was unexpected)"]
    assert problems_of({'clusters': {'lab': None, '9x': {}}}, schemas.DATASTORES_SCHEMA) == [
        "f.yml: clusters: '9x' does not match '^[A-Za-z][A-Za-z0-9_-]{0,62}$'",
        "f.yml: clusters.lab: None is not of type 'object'"]
    assert problems_of({'clusters': {'lab': {'default_hdd': ''}}}, schemas.DATASTORES_SCHEMA) == [
        "f.yml: clusters.lab.default_hdd: '' should be non-empty"]
