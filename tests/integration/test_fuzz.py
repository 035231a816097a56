"""Never wrong in silence, fuzzed: odd listings, tfvars and roles.yml meet the modules and the inventory.

Hypothesis generates three kinds of input and runs each through the real code against one API double
of the sample cluster (started once for this file):

- `/cluster/resources` payloads (served as-is by the double with HTTP 200): the sample guests with
  fields dropped or retyped (ints as strings, floats, bools, null, nested lists and dicts, huge strings,
  odd unicode), duplicated vmids, a `data` that is no list, null, plain text;
- tfvars files: JSON whose `servers` entries have random shapes and values, and sometimes text that is
  no JSON at all (or nested too deeply, or not UTF-8);
- `state/roles.yml` files: YAML dumped from random declarations and structures, plus hostile snippets
  (anchors and aliases, merge keys, deep nesting, tags, duplicate keys, several documents, ...).

For every example a fresh state DB is prepared by a good `server_sync` and a good inventory parse (so
there are rows and a recorded view to protect). Then the fuzzed input goes through `server_sync` (a
writer) and the inventory plugin (in-process), and roles.yml examples through `declarations_validate`
and, when the declarations pass, `server_role` with the entries it returned. Whatever happens:

- no "Unexpected error" (the modules' last-resort message, and the client's) and no traceback: a module
  fails with one clean message, the inventory with an AnsibleParserError (any other exception fails);
- a refusal leaves the state DB byte for byte as it was: a sha256 of the DB file (after a WAL
  checkpoint, with any WAL left over) or its absence, taken just before the call;
- nothing is wrong in silence: a listing or tfvars file server_sync refuses is refused by the inventory
  too, or served from the recorded view with a warning; one server_sync accepts, the inventory accepts;
  a second server_sync of the same input changes nothing; what declarations_validate accepts, server_role
  accepts.

Examples tried: 80 generated listings, 80 tfvars files and 80 roles.yml files (EXAMPLES, passed to
hypothesis' settings(max_examples=...)), after 7, 4 and 7 explicit ones (@example: cases a random run
may miss), about 40 s in all on 2 cores. `--hypothesis-show-statistics` shows what the examples hit
(refused, accepted, served from the recorded view).
"""

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import traceback
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT, SAMPLE, SAMPLE_TFVARS, ModuleFailed, connection_options, run_module
from tests.pve_double import DoubleServer, load_scenario

EXAMPLES = 80  # per test: 3 tests, 240 examples in all
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

PLUGIN = 'proxmox_manager.core.proxmox'
ROLES_PATH = str(ROOT / 'roles')
CATALOG = sorted(p.name for p in (ROOT / 'roles').iterdir() if (p / 'tasks').is_dir() or (p / 'meta').is_dir())
FORBIDDEN = ('Unexpected error', 'Traceback')
SERVED_RECORDED = 'SERVING THE VIEW RECORDED'
RECORDED_KEPT = 'The recorded view is kept'

# The sample guests as the double lists them (GET /cluster/resources?type=vm), in the fields the
# merged view reads: vmid, name, node, type, status, template, tags, pool, maxmem, maxcpu, maxdisk, uptime.
_G = 1024 ** 3
BASE_GUESTS = [
    dict(vmid=100, name='AI-agent', node='pve1', type='qemu', status='running', template=0, tags='ai;prod',
         pool='prod', maxmem=16 * _G, maxcpu=8, maxdisk=64 * _G, uptime=6469403),
    dict(vmid=101, name='web-01', node='pve1', type='qemu', status='running', template=0, tags='prod;web',
         pool='prod', maxmem=4 * _G, maxcpu=2, maxdisk=32 * _G, uptime=4526964),
    dict(vmid=102, name='db-01', node='pve2', type='qemu', status='running', template=0, tags='db;prod',
         pool='prod', maxmem=16 * _G, maxcpu=4, maxdisk=128 * _G, uptime=1427027),
    dict(vmid=103, name='monitoring', node='pve2', type='qemu', status='running', template=0, tags='monitoring',
         maxmem=2 * _G, maxcpu=2, maxdisk=32 * _G, uptime=6033725),
    dict(vmid=110, name='worker', node='pve2', type='qemu', status='running', template=0, pool='dev',
         maxmem=8 * _G, maxcpu=4, maxdisk=32 * _G, uptime=6896025),
    dict(vmid=111, name='worker', node='pve3', type='qemu', status='stopped', template=0, pool='dev',
         maxmem=8 * _G, maxcpu=4, maxdisk=32 * _G, uptime=0),
    dict(vmid=120, name='build-box', node='pve3', type='qemu', status='stopped', template=0,
         maxmem=8 * _G, maxcpu=4, maxdisk=64 * _G, uptime=0),
    dict(vmid=200, name='ftp-ct', node='pve1', type='lxc', status='running', template=0, tags='ftp', pool='prod',
         maxmem=1 * _G, maxcpu=1, maxdisk=8 * _G, uptime=1201900),
    dict(vmid=201, name='search-ct', node='pve3', type='lxc', status='running', template=0, tags='search',
         pool='dev', maxmem=4 * _G, maxcpu=2, maxdisk=16 * _G, uptime=2375882),
    dict(vmid=202, name='old-ct', node='pve2', type='lxc', status='stopped', template=0,
         maxmem=_G // 2, maxcpu=1, maxdisk=8 * _G, uptime=0),
    dict(vmid=9000, name='debian12-tpl', node='pve1', type='qemu', status='stopped', template=1, tags='template',
         maxmem=2 * _G, maxcpu=2, maxdisk=16 * _G, uptime=0),
]
GUEST_FIELDS = ('vmid', 'name', 'node', 'type', 'status', 'template', 'tags', 'pool', 'maxmem', 'maxcpu', 'maxdisk',
                'uptime')
SAMPLE_NAMES = sorted(set(g['name'] for g in BASE_GUESTS)) + ['web-02']
SAMPLE_SERVERS = json.loads(SAMPLE_TFVARS.read_text())['servers']

# -- strategies ---------------------------------------------------------------------------------------

HUGE = 'x' * 20000
ODD_TEXT = st.sampled_from([
    '', ' ', '100', '0100', ' 100', '100 ', '-5', '+5', '1e3', '1.5', '0x64', '\u00b2', '\u00b9\u00b2\u00b3',
    '\u0663\u0660\u0660', '\uff11\uff10\uff10', 'NaN', 'true', 'True', '1', '0', 'null', 'unknown', 'running',
    'stopped', 'qemu', 'lxc', 'openvz', 'storage', 'pve1', 'VM 200', 'a;b,c d', ';;', ',', '\u00e4\u00f6',
    '\x00', '\ud800', '\u540d\u524d', 'line\nbreak', 'worker', 'AI-agent', 'worker-110', '../x', 'a/b', '%2F',
    '?type=vm', '#', '<html>', '-bad', 'x' * 300, HUGE])
ODD_NUMBERS = st.sampled_from([0, -1, 1, 99, 100, 110, 111, 9000, 2 ** 31, 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63,
                               2 ** 64, 10 ** 30, 1.0, 100.0, 1.5, -0.0, 1e300, float('inf'), float('-inf'),
                               float('nan')])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), ODD_NUMBERS,
                    st.text(max_size=12), ODD_TEXT)
NESTED = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)
ANY_VALUE = st.one_of(SCALARS, NESTED)


FULLWIDTH = str.maketrans('0123456789', '\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19')
ARABIC = str.maketrans('0123456789', '\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669')


def _retyped(value):
    """The same value in another type or spelling: an int as a string (ASCII, fullwidth, Arabic-Indic digits, or
    with a superscript), a float, a bool, a list, or far too big; a string with odd characters."""
    if isinstance(value, bool) or not isinstance(value, int):
        text = value if isinstance(value, str) else ''
        return st.sampled_from([text + '\ud800', '\ud800', text + '\x00', text * 500 or HUGE, text.upper(),
                                ' %s ' % text, [text], {'name': text}, 1, True])
    return st.sampled_from([str(value), ' %d' % value, str(value).translate(FULLWIDTH),
                            str(value).translate(ARABIC), '%d\u00b2' % value, '\u00b2', float(value), value + 0.5,
                            bool(value), [value], {'value': value}, -value, '%d' % -value, value * 2 ** 64,
                            2 ** 63, 2 ** 63 - 1])


def _mutate(draw, item, fields):
    """Drop, retype or replace one field of `item` (a dict), or add a stray one."""
    field = draw(st.sampled_from(fields + ('(extra)',)))
    mode = draw(st.sampled_from(['drop', 'retype', 'retype', 'retype', 'odd', 'odd', 'nested']))
    if field == '(extra)':
        item[draw(st.text(max_size=6))] = draw(ANY_VALUE)
    elif mode == 'drop':
        item.pop(field, None)
    elif mode == 'retype':
        item[field] = draw(_retyped(item.get(field)))
    elif mode == 'odd':
        item[field] = draw(st.one_of(ODD_TEXT, ODD_NUMBERS, SCALARS))
    else:
        item[field] = draw(NESTED)


@st.composite
def listings(draw):
    """The text of a /cluster/resources answer.

    Mostly the sample guests (some left out, one vmid perhaps listed twice) with up to four fields dropped,
    retyped or replaced: one odd field is enough to test a rule, and the rest of the listing stays believable.
    """
    kind = draw(st.sampled_from(['guests'] * 7 + ['empty', 'data', 'top', 'text']))
    if kind == 'guests':
        indexes = draw(st.lists(st.integers(0, len(BASE_GUESTS) - 1), unique=True, max_size=len(BASE_GUESTS)))
        if indexes and draw(st.integers(0, 7)) == 0:
            indexes.append(draw(st.sampled_from(indexes)))  # one vmid listed twice
        listed = [dict(BASE_GUESTS[i]) for i in indexes]
        for _i in range(draw(st.integers(0, 4)) if listed else 0):
            _mutate(draw, draw(st.sampled_from(listed)), GUEST_FIELDS)
        body = {'data': listed}
        if draw(st.integers(0, 7)) == 0:
            body.update(draw(st.dictionaries(st.sampled_from(['total', 'errors', 'success', '']), ANY_VALUE,
                                             max_size=2)))
        return json.dumps(body)
    if kind == 'empty':
        return json.dumps({'data': []})
    if kind == 'data':
        odd_data = st.one_of(SCALARS, st.dictionaries(st.text(max_size=4), ANY_VALUE, max_size=3),
                             st.lists(SCALARS, min_size=1, max_size=3))
        return json.dumps({'data': draw(odd_data)})
    if kind == 'top':
        return json.dumps(draw(st.one_of(SCALARS, st.lists(ANY_VALUE, max_size=3),
                                         st.dictionaries(st.text(max_size=6), ANY_VALUE, max_size=3))))
    return draw(st.one_of(st.sampled_from([
        '', 'null', 'not json', '<html><body>502 Bad Gateway</body></html>', '{"data": [', '{"data": [}]',
        '{"data": [{"vmid": 100}], "data": null}', '[' * 5000 + ']' * 5000, '{"data": ' * 3000 + '[]' + '}' * 3000,
        '\ufeff{"data": []}', '{"data": [{"vmid": NaN}]}', '{"data": "\\ud800"}']), st.text(max_size=40)))


TFVARS_FIELDS = ('name', 'role', 'vm_id', 'node', 'cpu', 'memory', 'os_type', 'template_vm_id', 'disks',
                 'network_devices')
TFVARS_SPECIAL = {
    'name': ['', 'VM 200', None, 'web-01'],
    'role': [None, '', 'nope', 'db', 'x' * 300, '\ud800'],
    'vm_id': [100, 101, 110, 111, 120, 200, 202, 9000, 99, 999999999, 10 ** 12, '110', True, 110.0],
    'node': ['pve1', 'pve9', '', 'a/b', '\ud800'],
    'cpu': [1, 64, 2 ** 63, 10 ** 30, 0, '2', 2.0],
    'memory': [16, 2 ** 63, 10 ** 30, 15, '4096', 4096.0],
    'os_type': ['l26', '', 'x' * 300, '\ud800'],
    'template_vm_id': [9000, 99, 10 ** 30],
    'disks': [[], [{'size': 10 ** 30}], [{'size': 1, 'interface': 'scsi99999999999999999999'}],
              [{'size': 1, 'disk_type': 'SSD'}], [{}], [[]]],
    'network_devices': [[], [{}], [{'ip_address': 'dhcp'}], [{'ip_address': 'auto'}],
                        [{'ip_address': '10.0.0.5/99'}], [{'ip_address': '/'}], [{'ip_address': '999.1.1.1'}],
                        [{'ip_address': 'fe80::1/64'}], [{'ip_address': 5}], [{'ip_address': ''}],
                        [{'subnet': [24]}], [{'ip_address': 'x' * 300}], [{'ip_address': '\u0661.2.3.4'}],
                        [{'ip_address': '\ud800'}], [{'ip_address': '10.0.0.5\x00'}]],
}


@st.composite
def tfvars_files(draw):
    """The bytes of a tfvars file.

    Mostly the sample servers and a few others, with up to four fields dropped, retyped or replaced (by
    random values or by values picked to probe a rule), so most files stay valid enough to reach the DB.
    """
    kind = draw(st.sampled_from(['servers'] * 7 + ['shape', 'deep', 'text']))
    if kind == 'servers':
        names = draw(st.lists(st.sampled_from(SAMPLE_NAMES + ['ghost', 'web-03', 'worker-110', '-bad', 'a_b',
                                                              'VM 200', 'x' * 300, '']),
                              unique=True, max_size=8))
        servers = dict((name, json.loads(json.dumps(SAMPLE_SERVERS.get(name) or {'name': name, 'role': 'web'})))
                       for name in names)
        for _i in range(draw(st.integers(0, 4)) if servers else 0):
            entry = servers[draw(st.sampled_from(names))]
            if draw(st.booleans()):
                field = draw(st.sampled_from(TFVARS_FIELDS))
                entry[field] = draw(st.sampled_from(TFVARS_SPECIAL[field]))
            else:
                _mutate(draw, entry, TFVARS_FIELDS)
        data = {'servers': servers}
        if draw(st.booleans()):
            data.update(proxmox_node='pve1', vm_template_id=9000)
        if draw(st.integers(0, 5)) == 0:
            data.update(draw(st.dictionaries(st.text(max_size=6), ANY_VALUE, max_size=2)))
        text = json.dumps(data, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2])))
        if names and draw(st.integers(0, 7)) == 0:
            # a server declared twice in one object (json keeps the last silently)
            first = json.dumps(names[0])
            text = text.replace('{%s: ' % first, '{%s: {"name": %s}, %s: ' % (first, first, first), 1)
        return text.encode('utf-8', 'surrogatepass')
    if kind == 'shape':
        data = draw(st.one_of(ANY_VALUE, st.builds(lambda s: {'servers': s}, ANY_VALUE),
                              st.builds(lambda k, v: {'servers': {k: v}}, st.sampled_from(SAMPLE_NAMES), ANY_VALUE)))
        return json.dumps(data).encode('utf-8')
    if kind == 'deep':
        levels = draw(st.sampled_from([50, 400, 900, 2000, 100000]))
        deep = '[' * levels + '1' + ']' * levels  # written out: json.dumps itself would recurse too deeply
        template = draw(st.sampled_from([
            '{"top": %s}', '{"servers": {}, "extra": %s}', '%s',
            '{"servers": {"web-01": {"name": "web-01", "disks": %s}}}',
            '{"servers": {"web-01": {"name": "web-01", "extra": %s}}}']))
        return (template % deep).encode('utf-8')
    return draw(st.one_of(st.sampled_from([
        b'', b'null', b'{', b'not json', b'\xff\xfe{}', b'\xef\xbb\xbf{"servers": {}}', b'{"servers": {}}\n{}',
        b'{"servers": {}, "servers": {"ghost": {"name": "ghost"}}}', b'{"servers": {"web-01": {"name": NaN}}}',
        b'{"servers": {"web-01": {"name": "web-01", "cpu": Infinity}}}', b'servers:\n  web-01: {}\n',
        b'{"servers": {"\\ud800": {"name": "\\ud800"}}}']), st.binary(max_size=30)))


ROLE_VALUES = st.one_of(st.sampled_from(CATALOG), st.sampled_from(CATALOG), st.sampled_from(CATALOG),
                        st.sampled_from(['', 'nope', 'Web', 'web ', 'x' * 65]), SCALARS)
VMID_VALUES = st.one_of(st.sampled_from([100, 101, 110, 111, 120, 200, 9000, 99, 999999999, 1000000000, 10 ** 30]),
                        SCALARS)
VARS_KEYS = st.one_of(st.sampled_from(['web_port', 'x', '_y', 'a1']), st.text(max_size=6))


@st.composite
def declarations(draw):
    known = st.sampled_from(SAMPLE_NAMES + ['worker-110', 'worker-111'])
    odd = st.sampled_from(['debian12-tpl', 'ghost', 'AI-agnet', 'VM-200', 'a' * 254])
    names = draw(st.lists(st.one_of(known, known, known, odd, SCALARS), unique_by=repr, max_size=6))
    servers = {}
    for name in names:
        if isinstance(name, (list, dict)):
            continue
        entry = {}
        if draw(st.integers(0, 6)):
            entry['role'] = draw(ROLE_VALUES)
        if draw(st.integers(0, 1 if name == 'worker' else 4)) == 0:
            entry['vmid'] = draw(VMID_VALUES)
        if draw(st.integers(0, 2)) == 0:
            good_vars = st.dictionaries(st.sampled_from(['web_port', 'x', '_y', 'a1']), ANY_VALUE, max_size=3)
            entry['vars'] = draw(st.one_of(good_vars, good_vars, st.dictionaries(VARS_KEYS, ANY_VALUE, max_size=3),
                                           SCALARS))
        if draw(st.integers(0, 9)) == 0:
            entry[draw(st.text(max_size=6))] = draw(SCALARS)
        servers[name] = draw(st.one_of(st.just(entry), SCALARS)) if draw(st.integers(0, 9)) == 0 else entry
    data = {'servers': servers if draw(st.integers(0, 9)) else draw(ANY_VALUE)}
    if draw(st.integers(0, 9)) == 0:
        data[draw(st.text(max_size=6))] = draw(ANY_VALUE)
    return data


def _safe_dump(data, flow, unicode):
    try:
        return yaml.safe_dump(data, default_flow_style=flow, allow_unicode=unicode, sort_keys=False)
    except yaml.YAMLError:
        return yaml.safe_dump({'servers': {}})


HOSTILE_YAML = [
    # anchors and aliases: a billion laughs, a recursive value, a merge key
    'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n'
    'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nservers: {web-01: {role: web, vars: {v: [*c, *c, *c]}}}\n',
    'servers: &s\n  web-01: {role: web, vars: {self: *s}}\n',
    'base: &base {role: web}\nservers:\n  web-01:\n    <<: *base\n',
    'servers:\n  web-01: &w {role: web}\n  db-01: *w\n',
    '&top servers: {}\n',
    # deep nesting, within and past the limit, flow and block
    'servers: {web-01: {role: web, vars: {v: %s1%s}}}\n' % ('[' * 95, ']' * 95),
    'servers: {web-01: {role: web, vars: {v: %s1%s}}}\n' % ('[' * 150, ']' * 150),
    '[' * 100000 + ']' * 100000,
    '{a: ' * 5000 + '1' + '}' * 5000,
    ''.join('%s- \n' % ('  ' * i) for i in range(300)),
    # tags
    'servers: !!python/object/apply:os.system ["true"]\n',
    'servers: !!binary aGVsbG8=\n',
    'servers: {web-01: {role: web, vars: {s: !!set {a, b}}}}\n',
    'servers: {web-01: {role: web, vars: {d: 2020-01-01, t: 2001-12-14t21:59:43.10-05:00}}}\n',
    'servers: {web-01: {role: web, vmid: 2020-01-01}}\n',
    'servers: {web-01: {role: !!str 1}}\n',
    'servers: {web-01: {role: web, vars: {b: !!binary aGVsbG8=}}}\n',
    'servers: !unknown {web-01: {role: web}}\n',
    # odd numbers and keys
    'servers: {worker: {role: was, vmid: 0x6e}}\n',
    'servers: {worker: {role: was, vmid: 1_1_0}}\n',
    'servers: {worker: {role: was, vmid: 0o156}}\n',
    'servers: {worker: {role: was, vmid: .inf}}\n',
    'servers: {worker: {role: was, vmid: .nan}}\n',
    'servers: {worker: {role: was, vmid: 110.0}}\n',
    'servers: {worker: {role: was, vmid: "110"}}\n',
    'servers: {web-01: {role: yes}}\n',
    'servers: {~: {role: web}}\n',
    'servers: {1: {role: web}}\n',
    'servers: {? [web-01]: {role: web}}\n',
    '? [a, b]\n: c\n',
    'servers: {"web-01\\0": {role: web}}\n',
    'servers: {web-01: {role: "\\ud800"}}\n',
    'servers: {"\\ud800": {role: web}}\n',
    'servers: {web-01: {role: web, vars: {"\\ud800": 1}}}\n',
    'servers: {%s: {role: web}}\n' % ('a' * 100000),
    # duplicates, documents, syntax
    'servers:\n  web-01:\n    role: web\n  web-01:\n    role: db\n',
    'servers:\n  web-01: {role: web, role: db}\n',
    'servers: {}\nservers: {web-01: {role: web}}\n',
    'servers: {}\n---\nservers: {web-01: {role: web}}\n',
    '---\n...\n',
    '%YAML 1.1\n---\nservers: {}\n',
    '%YAML 2.0\n---\nservers: {}\n',
    'servers:\n\tweb-01: {role: web}\n',
    'servers: {web-01: {role: web}\n',
    'servers: [web-01]\n',
    'servers:\n',
    '', '# nothing\n', '~\n', '[]\n', '"servers"\n', 'servers: {}\n',
]
HOSTILE_BYTES = [b'\xff\xfe\x00s', b'servers: {web-01: {role: w\xe9b}}\n', b'\xef\xbb\xbfservers: {}\n',
                 b'servers: {}\x00\n', b'\x00', b'\x1b[31mservers: {}\n']


@st.composite
def roles_files(draw):
    """The bytes of a state/roles.yml file."""
    kind = draw(st.sampled_from(['declarations'] * 6 + ['shape', 'hostile', 'hostile']))
    if kind == 'declarations':
        text = _safe_dump(draw(declarations()), draw(st.sampled_from([False, True, None])), draw(st.booleans()))
        return text.encode('utf-8', 'surrogatepass')
    if kind == 'shape':
        return _safe_dump(draw(ANY_VALUE), None, False).encode('utf-8')
    return draw(st.one_of(st.sampled_from(HOSTILE_YAML).map(lambda t: t.encode('utf-8')),
                          st.sampled_from(HOSTILE_BYTES)))


# -- the double, the state DB, the checks ---------------------------------------------------------------

@pytest.fixture(scope='module')
def pve():
    """ONE double of the sample cluster for every example of this file (faults cleared between examples)."""
    with DoubleServer(load_scenario(SAMPLE)) as server:
        yield server


@contextlib.contextmanager
def workdir():
    """A fresh directory per example (hypothesis runs many examples in one test call)."""
    path = tempfile.mkdtemp(prefix='pm-fuzz-')
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def db_digest(path):
    """sha256 of the state DB file (after a WAL checkpoint, with any WAL left over), or None when it is absent.

    The modules run in-process here, and the engines of earlier runs may keep the DB open, so a
    write can sit in the -wal file: the checkpoint moves it into the file first. A checkpoint changes
    no content, so equal digests mean an unchanged DB.
    """
    if not os.path.exists(path):
        return None
    conn = sqlite3.connect('file:%s?mode=rw' % quote(path), uri=True)
    try:
        conn.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchall()
    finally:
        conn.close()
    digest = hashlib.sha256(Path(path).read_bytes())
    wal = Path(path + '-wal')
    if wal.exists() and wal.stat().st_size:  # an empty WAL (kept open by a lingering engine) holds nothing
        digest.update(b'-wal')
        digest.update(wal.read_bytes())
    return digest.hexdigest()


def assert_clean(text, what):
    for needle in FORBIDDEN:
        assert needle not in text, '%s: %r in %s' % (what, needle, text[:3000])


def run_writer(module, args, db, check_mode=False):
    """(result, None) or (None, message); a refusal must be clean and leave the DB as it was."""
    before = db_digest(db)
    try:
        result = run_module(module, args, check_mode=check_mode)
    except ModuleFailed as failed:
        result = failed.result
        message = result.get('msg') or ''
        assert_clean('%s\n%s' % (message, '\n'.join(result.get('problems') or [])), module)
        assert 'exception' not in result, '%s failed with a traceback:\n%s' % (module, result['exception'])
        assert message, '%s failed without a message: %r' % (module, result)
        after = db_digest(db)
        assert after == before, '%s refused (%s) but changed the state DB' % (module, message[:500])
        return None, message
    assert_clean('\n'.join(str(w) for w in result.get('warnings') or []), module)
    return result, None


def write_config(work, pve, db, tfvars):
    path = work / 'x.proxmox.yml'
    opts = dict(connection_options(pve, api_retries=0, api_timeout=5), state_db=db, tfvars_path=str(tfvars))
    path.write_text(yaml.safe_dump(dict(plugin=PLUGIN, **opts), sort_keys=False))
    return path


def run_inventory(loader, config, db):
    """('live' | 'recorded' | 'kept' | 'refused', message or warnings); a refusal or fallback must write nothing."""
    from ansible.errors import AnsibleParserError
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader

    plugin = loader.get(PLUGIN)
    warnings = []
    before = db_digest(db)
    inventory = InventoryData()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plugin.display, 'warning', lambda msg, *a, **kw: warnings.append(str(msg)))
        try:
            plugin.parse(inventory, DataLoader(), str(config), cache=False)
        except AnsibleParserError as exc:
            message = str(exc)
            assert_clean(message, 'inventory')
            assert db_digest(db) == before, 'the inventory refused (%s) but changed the state DB' % message[:500]
            assert len(inventory.hosts) == 0, 'a refused parse left hosts: %s' % sorted(inventory.hosts)[:10]
            return 'refused', message
        except Exception:  # noqa: BLE001 - anything else reaches the user as a traceback
            raise AssertionError('the inventory raised instead of an AnsibleParserError:\n%s'
                                 % traceback.format_exc()[-3000:]) from None
    text = '\n'.join(warnings)
    assert_clean(text, 'inventory warnings')
    if SERVED_RECORDED in text or RECORDED_KEPT in text:
        assert db_digest(db) == before, 'the inventory served or kept the recorded view but changed the state DB'
        return 'recorded' if SERVED_RECORDED in text else 'kept', text
    return 'live', text


def prepare(pve, loader, work):
    """A state DB with something to protect: a good server_sync, then a good inventory parse (the recorded view)."""
    pve.clear_faults()
    db = str(work / 'state' / 'proxmox_manager.db')
    base = dict(connection_options(pve, api_retries=0, api_timeout=5), state_db=db)
    result = run_module('server_sync', dict(base, tfvars_path=str(SAMPLE_TFVARS)))
    assert result['count'] == 11, result
    outcome, text = run_inventory(loader, write_config(work, pve, db, SAMPLE_TFVARS), db)
    assert outcome == 'live', text
    return db, base


def sync_and_inventory(pve, loader, work, db, base, tfvars):
    """server_sync, then the inventory, on the same (possibly odd) listing and tfvars.

    The inventory runs even when server_sync already failed a check, and every failed check is reported.
    """
    failures, result, refused, outcome, text = [], None, None, None, ''
    try:
        result, refused = run_writer('server_sync', dict(base, tfvars_path=str(tfvars)), db)
        if refused is None:
            # A second sync of the same listing and tfvars changes nothing (else every run rewrites rows, in silence).
            again, refused_again = run_writer('server_sync', dict(base, tfvars_path=str(tfvars)), db)
            assert refused_again is None, 'server_sync accepted, then refused the same input: %s' % refused_again
            assert not again['changed'], (
                'a second server_sync of the same input changed again: updated %r, added %r, marked absent %r'
                % (again['updated'], again['added'], again['marked_absent']))
    except AssertionError as exc:
        failures.append(str(exc))
    try:
        outcome, text = run_inventory(loader, write_config(work, pve, db, tfvars), db)
    except AssertionError as exc:
        failures.append(str(exc))
    if not failures:
        # What the examples exercised: pytest --hypothesis-show-statistics
        event('server_sync %s, inventory %s' % ('refused' if refused else 'accepted', outcome))
        if refused is not None and outcome == 'live':
            # Never wrong in silence: what server_sync refuses, the inventory refuses or serves loudly.
            failures.append('server_sync refused (%s) but the inventory showed a live view without a word'
                            % refused[:500])
        elif refused is None and outcome not in ('live', 'kept'):
            failures.append('server_sync accepted (count %s) but the inventory %s: %s'
                            % (result['count'], outcome, text[:500]))
    if failures:
        raise AssertionError('\n\n'.join(failures))


# -- explicit examples: tried first, on every run, besides the EXAMPLES generated ones -----------------------

def listing_with(**changes):
    """The sample listing with fields of some guests changed: {name of a sample guest: {field: value}}."""
    listed = [dict(g) for g in BASE_GUESTS]
    for guest in listed:
        guest.update(changes.get(guest['name'].replace('-', '_'), {}))
    return json.dumps({'data': listed})


def tfvars_with(**changes):
    """The sample tfvars with entries changed or added: {server name: {field: value}}."""
    servers = json.loads(json.dumps(SAMPLE_SERVERS))
    for name, fields in changes.items():
        name = name.replace('_', '-')
        servers.setdefault(name, {'name': name}).update(fields)
    return json.dumps({'servers': servers}).encode('utf-8')


LISTING_EXAMPLES = [
    json.dumps({'data': []}),                                                         # no guests, 10 recorded
    listing_with(AI_agent=dict(vmid='100', maxmem='17179869184', template='0')),      # ints as strings: fine
    listing_with(AI_agent=dict(vmid='100\u00b2')),                                    # isdigit() but no int
    listing_with(web_01=dict(vmid=2 ** 70)),                                          # past SQLite's INTEGER
    listing_with(build_box=dict(maxmem=2 ** 90)),                                     # memory past INTEGER
    listing_with(AI_agent=dict(name='\ud800')),                                       # a lone surrogate
    '[' * 5000 + ']' * 5000,                                                          # too deep for json
]
TFVARS_EXAMPLES = [
    b'[' * 100000 + b']' * 100000,
    tfvars_with(web_01=dict(cpu=10 ** 30)),                                          # past SQLite's INTEGER
    tfvars_with(web_01=dict(os_type='\ud800')),                                       # a lone surrogate
    tfvars_with(ghost=dict(vm_id=101)),                                               # web-01's vmid
]
# a billion laughs, a recursive alias, 100,000 brackets, a python tag, a surrogate key, a key twice, no UTF-8
ROLES_EXAMPLES = [HOSTILE_YAML[i].encode('utf-8') for i in (0, 1, 7, 10, 32, 35)] + [HOSTILE_BYTES[0]]


def with_examples(name, values):
    def decorate(test):
        for value in reversed(values):
            test = example(**{name: value})(test)
        return test
    return decorate


# -- the tests ---------------------------------------------------------------------------------------------

@FUZZ_SETTINGS
@with_examples('listing', LISTING_EXAMPLES)
@given(listing=listings())
def test_fuzzed_listings_are_taken_or_refused_cleanly(pve, inventory_loader, listing):
    with workdir() as work:
        db, base = prepare(pve, inventory_loader, work)
        pve.add_fault(path='^/cluster/resources$', body=listing)
        try:
            sync_and_inventory(pve, inventory_loader, work, db, base, SAMPLE_TFVARS)
        finally:
            pve.clear_faults()


@FUZZ_SETTINGS
@with_examples('tfvars', TFVARS_EXAMPLES)
@given(tfvars=tfvars_files())
def test_fuzzed_tfvars_are_taken_or_refused_cleanly(pve, inventory_loader, tfvars):
    with workdir() as work:
        db, base = prepare(pve, inventory_loader, work)
        path = work / 'terraform.tfvars.json'
        path.write_bytes(tfvars)
        sync_and_inventory(pve, inventory_loader, work, db, base, path)


@FUZZ_SETTINGS
@with_examples('roles', ROLES_EXAMPLES)
@given(roles=roles_files())
def test_fuzzed_roles_files_are_validated_cleanly(pve, inventory_loader, roles):
    with workdir() as work:
        db, base = prepare(pve, inventory_loader, work)
        path = work / 'roles.yml'
        path.write_bytes(roles)
        base = dict(base, tfvars_path=str(SAMPLE_TFVARS), roles_path=ROLES_PATH)
        before = db_digest(db)
        validated, refused = run_writer('declarations_validate', dict(
            base, roles_file=str(path), datastores_file=str(work / 'no-datastores.yml')), db)
        assert db_digest(db) == before, 'declarations_validate only reads, but the state DB changed'
        event('declarations_validate %s' % ('refused' if refused else 'accepted'))
        if refused is not None:
            assert str(path) in refused or 'roles.yml' in refused, 'the refusal names no file: %s' % refused[:500]
            return
        if not validated['servers']:
            return
        # What declarations_validate accepts, server_role (a writer) accepts and applies.
        _applied, refused = run_writer('server_role', dict(base, servers=validated['servers']), db)
        assert refused is None, ('declarations_validate accepted %r but server_role refused: %s'
                                 % (validated['servers'], refused[:1000]))
        outcome, text = run_inventory(inventory_loader, write_config(work, pve, db, SAMPLE_TFVARS), db)
        assert outcome == 'live', text
