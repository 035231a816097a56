"""Write the JSON Schemas kept in module_utils/schemas.py to schemas/*.schema.json."""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'collections'))

from ansible_collections.proxmox_manager.core.plugins.module_utils.schemas import SCHEMAS  # noqa: E402


def render(schema):
    return json.dumps(schema, indent=2, sort_keys=True) + '\n'


def main():
    out = os.path.join(ROOT, 'schemas')
    os.makedirs(out, exist_ok=True)
    for name, schema in SCHEMAS.items():
        with open(os.path.join(out, '%s.schema.json' % name), 'w') as handle:
            handle.write(render(schema))


if __name__ == '__main__':
    main()
