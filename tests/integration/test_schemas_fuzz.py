"""The schema fast path, fuzzed: it may only ever vouch for data jsonschema also finds valid.

Hypothesis-driven (about 20 s), so it lives with the integration tests; the fast checks of the
fast path stay in tests/unit/test_schemas.py.
"""

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.proxmox_manager.core.plugins.module_utils import schemas

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 2_000_000_000), st.floats(allow_nan=False),
                    st.sampled_from(['', 'web', 'hdd', 'ssd', 'raw', 'scsi0', 'virtio1', 'sata', 'vmbr0',
                                     '10.0.0.5/24', 'dhcp', 'AI-agent', '-bad', 'x' * 300]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                    max_leaves=12)

DISK = st.fixed_dictionaries({'size': st.one_of(st.integers(0, 500), JSON)}, optional={
    'interface': st.one_of(st.sampled_from(['scsi0', 'virtio2', 'ide', 'nvme0']), JSON),
    'datastore_id': st.one_of(st.sampled_from(['local-lvm', '']), JSON),
    'disk_type': st.one_of(st.sampled_from(['hdd', 'ssd', 'nvme', 'SSD']), st.just(True), JSON),
    'file_format': st.sampled_from(['raw', 'qcow2', 'vmdk', 'iso'])})
NIC = st.fixed_dictionaries({}, optional={
    'bridge': st.one_of(st.just('vmbr0'), JSON), 'ip_address': st.one_of(st.just('10.0.0.9/24'), JSON),
    'subnet': st.one_of(st.integers(0, 32), st.just('24'), JSON), 'gateway': st.one_of(st.just('10.0.0.1'), JSON)})


@st.composite
def tfvars(draw):
    """tfvars-shaped data, mostly valid, with a wrong value or key here and there."""
    servers = {}
    for name in draw(st.lists(st.sampled_from(['web-01', 'db_1', 'a', '-x', 'x' * 300, '']), max_size=4, unique=True)):
        entry = draw(st.fixed_dictionaries(
            {'name': st.one_of(st.just(name), JSON)},
            optional={'role': st.one_of(st.sampled_from(['web', None]), JSON),
                      'vm_id': st.one_of(st.integers(0, 2_000_000_000), st.just(True), st.just(150.0)),
                      'cpu': st.one_of(st.integers(-1, 64), JSON), 'memory': st.one_of(st.integers(0, 65536), JSON),
                      'os_type': st.one_of(st.just('l26'), JSON), 'node': st.one_of(st.just('pve1'), st.just('')),
                      'template_vm_id': st.one_of(st.integers(0, 9000), JSON),
                      'disks': st.one_of(st.lists(DISK, max_size=2), JSON),
                      'network_devices': st.one_of(st.lists(NIC, max_size=2), JSON)}))
        servers[name] = entry
    data = {'servers': servers}
    return draw(st.one_of(st.just(data), st.just({'servers': JSON}), JSON, st.just(dict(data, extra=1))))


def jsonschema_errors(data, schema):
    return list(jsonschema.Draft202012Validator(schema).iter_errors(data))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tfvars())
def test_the_fast_path_never_vouches_for_invalid_tfvars(data):
    if schemas._surely_valid(data, schemas.TFVARS_SCHEMA):
        assert jsonschema_errors(data, schemas.TFVARS_SCHEMA) == []


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(schemas.SCHEMAS)), JSON)
def test_the_fast_path_never_vouches_for_invalid_data_of_any_schema(name, data):
    schema = schemas.SCHEMAS[name]
    if schemas._surely_valid(data, schema):
        assert jsonschema_errors(data, schema) == []


CLUSTER_NAMES = st.sampled_from(['lab', 'prod-1', 'a_b', 'p' * 63, 'p' * 64, '-x', '1a', 'la b', ''])


@st.composite
def roles(draw):
    """state/roles.yml-shaped data, each server maybe naming a cluster, with a wrong value here and there."""
    servers = {}
    for name in draw(st.lists(st.sampled_from(['web-01', 'web-01.lab', 'db_1', '-x', '']), max_size=3, unique=True)):
        servers[name] = draw(st.fixed_dictionaries(
            {'role': st.one_of(st.just('web'), JSON)},
            optional={'cluster': st.one_of(CLUSTER_NAMES, JSON), 'vmid': st.one_of(st.integers(0, 2_000_000_000), JSON),
                      'vars': st.one_of(st.dictionaries(st.sampled_from(['a', '_b', '1c', 'd-e']), JSON, max_size=2),
                                        JSON)}))
    return draw(st.one_of(st.just({'servers': servers}), st.just({'servers': servers, 'extra': 1})))


DEFAULTS = st.fixed_dictionaries({}, optional={'default_hdd': st.one_of(st.sampled_from(['local-lvm', '']), JSON),
                                               'default_ssd': st.one_of(st.just('x' * 101), st.just('ssd'), JSON)})


@st.composite
def datastores(draw):
    """state/datastores.yml-shaped data: top-level defaults and the defaults of some clusters."""
    data = draw(DEFAULTS)
    if draw(st.booleans()):
        data['clusters'] = draw(st.one_of(st.dictionaries(CLUSTER_NAMES, st.one_of(DEFAULTS, JSON), max_size=3), JSON))
    if draw(st.booleans()):
        data = dict(data, clusters_typo={})
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(roles())
def test_the_fast_path_never_vouches_for_invalid_roles(data):
    if schemas._surely_valid(data, schemas.ROLES_SCHEMA):
        assert jsonschema_errors(data, schemas.ROLES_SCHEMA) == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datastores())
def test_the_fast_path_never_vouches_for_invalid_datastores(data):
    if schemas._surely_valid(data, schemas.DATASTORES_SCHEMA):
        assert jsonschema_errors(data, schemas.DATASTORES_SCHEMA) == []
