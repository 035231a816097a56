"""The schema fast path: it may only ever vouch for data jsonschema also finds valid.

The hypothesis-driven checks of that promise are in tests/integration/test_schemas_fuzz.py.
"""

import json

from ansible_collections.proxmox_manager.core.plugins.module_utils import schemas
from tests.conftest import SAMPLE_TFVARS


def test_every_schema_compiles_and_the_sample_tfvars_takes_the_fast_path():
    assert all(schemas._compile(schema) is not None for schema in schemas.SCHEMAS.values())
    assert schemas._surely_valid(json.loads(SAMPLE_TFVARS.read_text()), schemas.TFVARS_SCHEMA)


def test_enum_keeps_true_and_1_apart_and_unknown_keywords_fall_back():
    check = schemas._compile({'enum': [1, 'a']})
    assert check(1) and check('a') and not check(True) and not check(1.0) and not check([1])
    assert schemas._compile({'type': 'string', 'format': 'ipv4'}) is None
    assert schemas._surely_valid('x', {'oneOf': [{'type': 'string'}]}) is False
