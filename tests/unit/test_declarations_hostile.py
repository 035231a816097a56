"""Hostile declaration files ("Never wrong in silence", part 1): refused at once, with file and line.

A state/roles.yml arrives in a pull request. Aliases can make nine lines stand for a
billion values, or for an endless one, that every later step (the schema messages,
the module result) would expand: CI hung with memory growing. Each file is loaded in
a child process, so a hang is a failed test (the timeout is a bound on a hang, not a
measurement) and the memory a child may take is capped.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import declarations, merged_view, role_assignment
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import ConfigurationError, DeclarationError
from ansible_collections.proxmox_manager.core.plugins.module_utils.schemas import EXCERPT, excerpt
from tests.conftest import COLLECTIONS, ROOT

HANG_BOUND = 30  # seconds: a child still busy then is hung (the refusal itself takes milliseconds)
MEMORY_CAP = 2 * 1024 ** 3

_CHILD = textwrap.dedent('''
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (%(cap)d, %(cap)d))
    sys.path[:0] = [%(collections)r, %(root)r]
    from ansible_collections.proxmox_manager.core.plugins.module_utils import declarations
    from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import DeclarationError
    try:
        loaded = declarations.load(sys.argv[1], with_datastores=False)
        # What declarations_validate returns: the entries with their vars, as JSON.
        json.dumps([dict(key=e['key'], role=e['role'], vars=e['vars']) for e in loaded.entries])
        print(json.dumps(dict(outcome='accepted', problems=[p[:200] for p in loaded.problems])))
    except DeclarationError as exc:
        print(json.dumps(dict(outcome='refused', message=str(exc), problems=exc.problems)))
    except BaseException as exc:
        print(json.dumps(dict(outcome=type(exc).__name__, message=str(exc)[:200])))
''') % dict(cap=MEMORY_CAP, collections=str(COLLECTIONS), root=str(ROOT))


def load_in_child(path):
    """{outcome, message, problems} of declarations.load(path) in a child process; outcome 'hung' on a hang."""
    try:
        proc = subprocess.run([sys.executable, '-c', _CHILD, str(path)], capture_output=True, text=True,
                              timeout=HANG_BOUND, check=False)
    except subprocess.TimeoutExpired:
        return dict(outcome='hung')
    if not proc.stdout.strip():
        return dict(outcome='crashed (exit %s)' % proc.returncode, message=proc.stderr[-500:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def laughs(use=''):
    """A billion-laughs roles.yml, valid by the schema: a server whose vars hold nine anchors, each 9 copies
    of the one before (the first alias is on line 6); `use` adds servers that use the last one."""
    lines = ['a0: &a0 "lol"']
    for level in range(1, 10):
        lines.append('a%d: &a%d [%s]' % (level, level, ', '.join(['*a%d' % (level - 1)] * 9)))
    return 'servers:\n  laughs:\n    role: web\n    vars:\n' + ''.join('      %s\n' % line for line in lines) + use


HOSTILE = {
    # name: (roles.yml text, line of the first alias or anchor, what the message names)
    'recursive alias': ('servers: {AI-agent: &x {role: web, vars: {self: *x}}}\n', 1, 'an alias (*x)'),
    'recursive alias, block style': ('servers:\n  AI-agent: &x\n    role: web\n    vars:\n      self: *x\n', 5,
                                     'an alias (*x)'),
    'billion laughs under vars': (laughs(), 6, 'an alias (*a0)'),
    'billion laughs as role': (laughs('  AI-agent:\n    role: *a9\n'), 6, 'an alias (*a0)'),
    'billion laughs as vars': (laughs('  AI-agent:\n    role: web\n    vars: {lol: *a9}\n'), 6,
                               'an alias (*a0)'),
    'alias deep in vars': ('servers:\n  web-01:\n    role: web\n    vars:\n      a: {b: [{c: &deep [1, 2]}]}\n'
                           '  db-01:\n    role: db\n    vars:\n      x: {y: {z: [[[*deep]]]}}\n', 9,
                           'an alias (*deep)'),
    'merge key with an alias': ('base: &base {role: web}\nservers:\n  web-01:\n    <<: *base\n', 4,
                                'an alias (*base)'),
    'anchor without alias': ('servers:\n  web-01: &w\n    role: web\n', 2, 'an anchor (&w)'),
}


@pytest.mark.parametrize('case', sorted(HOSTILE))
def test_anchors_and_aliases_are_refused_at_once_with_file_and_line(case, tmp_path):
    text, line, what = HOSTILE[case]
    path = tmp_path / 'roles.yml'
    path.write_text(text)
    result = load_in_child(path)
    assert result['outcome'] == 'refused', result
    assert len(result['problems']) == 1
    problem = result['problems'][0]
    assert problem.startswith('%s:%d:' % (path, line)), problem
    assert what in problem and 'anchors and aliases are not accepted' in problem
    assert 'Traceback' not in result['message'] and len(result['message']) < 1000


def test_a_billion_laughs_refused_in_process_too(tmp_path):
    """The same refusal in this process (the module's path), naming the file and the line."""
    path = tmp_path / 'roles.yml'
    path.write_text(laughs('  AI-agent:\n    role: web\n    vars: {lol: *a9}\n'))
    with pytest.raises(DeclarationError) as err:
        declarations.load(str(path), with_datastores=False)
    assert str(err.value).startswith('1 problem in the declarations, nothing was changed:\n  %s:6:' % path)


def test_stars_and_ampersands_in_values_are_not_aliases(tmp_path):
    path = tmp_path / 'roles.yml'
    path.write_text('servers:\n  web-01:\n    role: web\n    vars:\n      glob: "*.log"\n      amp: "&x"\n'
                    '      plain: a*b&c\n  # a comment with *x and &y\n')
    loaded = declarations.load(str(path), with_datastores=False)
    assert loaded.problems == []
    assert loaded.entries[0]['vars'] == {'glob': '*.log', 'amp': '&x', 'plain': 'a*b&c'}


def test_the_committed_declarations_still_load():
    loaded = declarations.load(str(ROOT / 'state' / 'roles.yml'), str(ROOT / 'state' / 'datastores.yml'))
    assert loaded.problems == [] and loaded.entries


@pytest.mark.parametrize('depth', [97, 5000, 100000])
def test_deeply_nested_yaml_is_a_clear_error(tmp_path, depth):
    """5,000 levels were a RecursionError; 100,000 crashed the process in libyaml's composer."""
    path = tmp_path / 'roles.yml'
    path.write_text('servers:\n  web-01:\n    role: web\n    vars:\n      deep: %s%s\n' % ('[' * depth, ']' * depth))
    result = load_in_child(path)
    assert result['outcome'] == 'refused', result
    # the file's mapping, servers, web-01 and vars are 4 levels: the 97th bracket (line 5, column 109) is the 101st
    assert result['problems'] == ['%s:5:109: nested more than 100 levels deep; a declaration needs a few.' % path]


def test_nesting_a_declaration_may_need_is_accepted(tmp_path):
    path = tmp_path / 'roles.yml'
    path.write_text('servers:\n  web-01:\n    role: web\n    vars:\n      deep: %s%s\n' % ('[' * 96, ']' * 96))
    assert declarations.load(str(path), with_datastores=False).problems == []


# -- bounded echoes ----------------------------------------------------------------

HUGE = 'a' * 1000000


def assert_bounded(messages):
    for message in messages:
        assert HUGE[:EXCERPT + 1] not in message and len(message) < 1000, message[:300]


def test_excerpt_bounds_every_value():
    assert excerpt('web') == "'web'" and excerpt('web', quote=False) == 'web'
    assert excerpt(HUGE) == repr('a' * EXCERPT) + '...'
    assert excerpt(HUGE, quote=False) == 'a' * EXCERPT + '...'
    assert excerpt(list(range(100000))).endswith('...') and len(excerpt(list(range(100000)))) == EXCERPT + 3
    assert excerpt(None) == 'None' and excerpt(110, quote=False) == '110'


def test_a_megabyte_server_name_is_echoed_as_an_excerpt(tmp_path):
    path = tmp_path / 'roles.yml'
    # YAML caps implicit keys at 1,024 characters: a longer one is an explicit key (`? name`).
    path.write_text('servers:\n  ? %s\n  : role: %s\n    vars: {? %s : 1}\n  web-01:\n    role: web\n    rol: x\n'
                    % (HUGE, HUGE, HUGE))
    loaded = declarations.load(str(path), with_datastores=False)
    problems = loaded.problems
    assert any('is too long' in p for p in problems) and any("'rol' was unexpected" in p for p in problems)
    assert_bounded(problems)
    # The cross-checks: the server is looked up in the merged view, the role in the catalog.
    view = merged_view.build_view([dict(vmid=100, name='web-01', type='qemu', node='pve1', status='running')], {})
    _resolved, _unresolved, found, warnings = declarations.check_servers(loaded, view, ['web'], 'tfvars.json')
    assert len(found) == 2 and 'does not exist' in found[1] and 'not in the role catalog' in found[0]
    assert_bounded(found + warnings)


def test_module_arguments_are_echoed_as_excerpts(tmp_path):
    view = merged_view.build_view([dict(vmid=100, name='web-01', type='qemu', node='pve1', status='running')], {})
    _resolved, problems = role_assignment.resolve(
        view, [dict(name=HUGE, role=HUGE), dict(name='web-01', vmid=999, role='web')], ['web'])
    assert len(problems) == 3
    assert_bounded(problems)
    servers_file = tmp_path / 'servers.json'
    servers_file.write_text(json.dumps([{'name': 'web-01', HUGE: 1}]))
    with pytest.raises(ConfigurationError) as err:
        role_assignment.load_entries(str(servers_file))
    assert 'unknown key' in str(err.value)
    assert_bounded([str(err.value)])


def test_tfvars_key_and_name_are_echoed_as_excerpts(tmp_path):
    path = tmp_path / 'terraform.tfvars.json'
    path.write_text(json.dumps({'servers': {HUGE: {'name': 'web-01'}, 'web-01': {'name': HUGE}}}))
    with pytest.raises(DeclarationError) as err:
        merged_view.load_tfvars(str(path))
    assert 'is too long' in str(err.value)
    assert_bounded(err.value.problems)
    assert len(str(err.value)) < 2000


def test_a_megabyte_cluster_name_is_echoed_as_an_excerpt(tmp_path):
    roles, datastores = tmp_path / 'roles.yml', tmp_path / 'datastores.yml'
    roles.write_text('servers:\n  web-01:\n    role: web\n    cluster: %s\n' % HUGE)
    datastores.write_text('default_hdd: local-lvm\nclusters:\n  ? %s\n  : default_ssd: %s\n' % (HUGE, HUGE))
    loaded = declarations.load(str(roles), str(datastores))
    problems = loaded.problems
    assert len(problems) == 3 and all('does not match' in p or 'is too long' in p for p in problems), problems
    assert loaded.entries == []  # a malformed cluster is no declaration to cross-check
    assert_bounded(problems)
    # the cross-check of the clusters datastores.yml names: not among the view's
    found = declarations.check_clusters(loaded, ['demo', 'lab'])
    assert len(found) == 1 and 'is not one of the clusters (demo, lab)' in found[0]
    assert_bounded(found)
