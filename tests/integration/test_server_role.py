"""server_role against the API double (issue 4).

The seeds' bug made impossible: a server the inventory lists can always be
given a role, any other name is refused with a "did you mean", and a refused
call leaves the state DB byte for byte as it was.
"""

import itertools
import json
import socket
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import (
    BIN,
    COLLECTIONS,
    ROOT,
    SAMPLE_TFVARS,
    ModuleFailed,
    connection_env,
    connection_options,
    run_ansible,
    run_module,
)
from tests.pve_double import generate_cluster, write_tfvars
from tests.seed_db import created_nothing, db_exists, hold_write_lock, is_postgresql, legacy_db, query, settled_digest

ROLES = ('web', 'was', 'db', 'monitoring', 'ftp', 'search')
ADHOC = ['ansible', 'localhost', '-i', 'localhost,', '-c', 'local',
         '-e', 'ansible_python_interpreter={{ ansible_playbook_python }}', '-m']


def make_catalog(path):
    """A role catalog: role directories with tasks/, plus a directory that is not a role."""
    for role in ROLES:
        (path / role / 'tasks').mkdir(parents=True)
        (path / role / 'tasks' / 'main.yml').write_text('---\n[]\n')
    (path / 'files').mkdir()
    return str(path)


def db_rows(path, where='1=1'):
    return query(path, 'SELECT * FROM servers WHERE %s ORDER BY name, vmid' % where)


def role_log(path):
    return [(r['key'], r['old'], r['new'], r['tool'])
            for r in query(path, "SELECT key, old, new, tool FROM change_log WHERE field = 'role' ORDER BY id")]


def host_of(item):
    """The inventory host of a result item: `host` is returned only where it differs from the name."""
    assert item.get('host') != item['name']
    return item.get('host', item['name'])


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def adhoc(env, module, args, *extra, timeout=300):
    """`ansible localhost -m proxmox_manager.core.<module> -a ...` on the controller's python."""
    raw = args if isinstance(args, str) else json.dumps(args)
    return run_ansible(ADHOC + ['proxmox_manager.core.%s' % module, '-a', raw] + list(extra), env, timeout=timeout)


def adhoc_result(proc):
    """The module result from the minimal callback's `localhost | STATUS => {...}`."""
    out = proc.stdout
    start = out.rindex('localhost | ')
    return json.loads(out[out.index('=> ', start) + 3:])


def plain(value):
    """ansible-inventory marks plugin values untrusted: {"__ansible_unsafe": "x"}."""
    if isinstance(value, dict) and '__ansible_unsafe' in value:
        return value['__ansible_unsafe']
    return value


def group_hosts(listing, group):
    """Hosts of a group in `ansible-inventory --list` output, children included."""
    entry = listing.get(group) or {}
    hosts = set(entry.get('hosts', []))
    for child in entry.get('children', []):
        hosts |= group_hosts(listing, child)
    return hosts


def write_inventory_config(path, **options):
    config = dict(plugin='proxmox_manager.core.proxmox', want_agent_ips=False)
    config.update(options)
    path.write_text(json.dumps(config))  # JSON is YAML
    return str(path)


# -- fixtures -------------------------------------------------------------------


@pytest.fixture
def roles_dir(tmp_path):
    return make_catalog(tmp_path / 'roles')


@pytest.fixture
def base(double, state_db, roles_dir):
    """server_role options: the sample cluster, its tfvars, a scratch DB and catalog."""
    return dict(connection_options(double, api_retries=0, api_timeout=5), state_db=state_db,
                tfvars_path=str(SAMPLE_TFVARS), roles_path=roles_dir)


@pytest.fixture
def env(double, state_db, roles_dir):
    return connection_env(double, PROXMOX_MANAGER_DB=state_db, PROXMOX_MANAGER_TFVARS=str(SAMPLE_TFVARS),
                          PROXMOX_MANAGER_ROLES=roles_dir, PROXMOX_API_RETRIES='0')


# -- the seed story ---------------------------------------------------------------


def test_seed_story_end_to_end(double, state_db, env, tmp_path):
    # The seeds' DB holds only test and test-2; Proxmox and tfvars hold AI-agent.
    legacy_db(state_db)
    assert [r['name'] for r in db_rows(state_db)] == ['test', 'test-2']
    assert double.cluster.guest(100).name == 'AI-agent'
    assert 'AI-agent' in json.loads(SAMPLE_TFVARS.read_text())['servers']

    proc = adhoc(env, 'server_role', 'name=AI-agent role=web')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = adhoc_result(proc)
    assert result['changed'] is True
    assert result['servers'] == [dict(name='AI-agent', vmid=100, role='web',
                                      previous_role=None, changed=True)]

    rows = dict((r['name'], r) for r in db_rows(state_db))
    assert sorted(rows) == ['AI-agent', 'test', 'test-2']  # the old rows are kept through the upgrade
    agent = rows['AI-agent']
    assert (agent['vmid'], agent['node'], agent['ip_address'], agent['status'], agent['role']) == (
        100, 'pve1', '10.10.0.50', 'running', 'web')
    assert rows['test']['role'] == 'web' and rows['test-2']['role'] is None
    assert role_log(state_db) == [('AI-agent (vmid 100)', None, 'web', 'server_role')]

    config = write_inventory_config(tmp_path / 'seed.proxmox.yml')
    listing = run_ansible(['ansible-inventory', '-i', config, '--list'], env)
    assert listing.returncode == 0, listing.stderr
    data = json.loads(listing.stdout)
    assert group_hosts(data, 'role_web') == {'AI-agent'}
    assert plain(data['_meta']['hostvars']['AI-agent']['pve_role']) == 'web'
    assert 'test' not in data['_meta']['hostvars'] and 'test-2' not in data['_meta']['hostvars']

    before = settled_digest(state_db)
    typo = adhoc(env, 'server_role', 'name=AI-agnet role=web')
    assert typo.returncode != 0
    assert 'localhost | FAILED!' in typo.stdout
    failed = adhoc_result(typo)
    assert "Server 'AI-agnet' does not exist" in failed['msg'] and "Did you mean 'AI-agent'?" in failed['msg']
    assert 'Traceback' not in typo.stdout + typo.stderr
    assert settled_digest(state_db) == before


def test_legacy_db_is_upgraded_in_process_and_rows_kept(base, state_db):
    legacy_db(state_db)
    result = run_module('server_role', dict(base, name='AI-agent', role='web'))
    assert result['changed'] is True
    rows = db_rows(state_db)
    assert [(r['name'], r['vmid'], r['role'], r['present']) for r in rows] == [
        ('AI-agent', 100, 'web', 1), ('test', None, 'web', 1), ('test-2', None, None, 1)]


# -- the property: inventory and server_role agree --------------------------------

_INVENTORY_WORKER = r'''
import json, sys
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader([sys.argv[1]])
from ansible.errors import AnsibleError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
for line in sys.stdin:
    try:
        inventory = InventoryManager(loader=DataLoader(), sources=[line.strip()])
        answer = dict(hosts=sorted(h.name for h in inventory.get_hosts()),
                      groups=dict((name, sorted(h.name for h in g.get_hosts()))
                                  for name, g in inventory.groups.items()))
    except AnsibleError as exc:
        answer = dict(error=str(exc))
    sys.stdout.write('ANSWER ' + json.dumps(answer) + '\n')
    sys.stdout.flush()
'''


class InventoryWorker:
    """The real inventory plugin through Ansible's InventoryManager, in one long-lived process.

    The collection loader must own `ansible_collections` from the start, which
    this pytest process (importing the collection from sys.path) cannot offer;
    one worker keeps every example of the property test cheap.
    """

    def __init__(self, env, log_path):
        env = dict(env, ANSIBLE_INVENTORY_ENABLED='proxmox_manager.core.proxmox',
                   ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED='1')
        self._log = open(log_path, 'w')
        self._proc = subprocess.Popen([sys.executable, '-c', _INVENTORY_WORKER, str(COLLECTIONS)], cwd=str(ROOT),
                                      env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                      text=True)
        self.log_path = log_path

    def listing(self, config):
        self._proc.stdin.write(config + '\n')
        self._proc.stdin.flush()
        for line in self._proc.stdout:
            if line.startswith('ANSWER '):
                answer = json.loads(line[len('ANSWER '):])
                assert 'error' not in answer, answer['error']
                return answer
        raise AssertionError('the inventory worker died: %s' % open(self.log_path).read())

    def close(self):
        self._proc.stdin.close()
        self._proc.wait(timeout=30)
        self._log.close()


@st.composite
def cluster_shapes(draw):
    nodes = draw(st.integers(1, 3))
    templates = draw(st.integers(0, 2))
    regular = draw(st.integers(1, 30))
    cluster = dict(nodes=nodes, guests=regular + templates, templates=templates,
                   duplicate_names=draw(st.integers(0, min(4, regular // 2))),
                   offline_nodes=draw(st.integers(0, nodes - 1)), seed=draw(st.integers(0, 2 ** 16)))
    tfvars = dict(declared_ratio=draw(st.sampled_from((0.0, 0.5, 0.9, 1.0))),
                  extra_declared_only=draw(st.integers(0, 3)), with_ips=draw(st.booleans()),
                  seed=draw(st.integers(0, 2 ** 16)))
    return cluster, tfvars


_STRANGER = st.text(alphabet='abcdefghijklmnopqrstuvwxyz0123456789-', min_size=1, max_size=10)


def test_inventory_hosts_and_server_role_agree(double, tmp_path):
    roles_dir = make_catalog(tmp_path / 'roles')
    worker = InventoryWorker(connection_env(double), str(tmp_path / 'worker.log'))
    examples = itertools.count()

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(shape=cluster_shapes(), strangers=st.lists(_STRANGER, max_size=4), offset=st.integers(0, 5))
    def check(shape, strangers, offset):
        cluster_args, tfvars_args = shape
        work = tmp_path / ('example-%d' % next(examples))
        work.mkdir()
        cluster = generate_cluster(**cluster_args)
        cluster.users, cluster.tokens = double.cluster.users, double.cluster.tokens  # same credentials
        double.cluster = cluster
        tfvars = str(work / 'terraform.tfvars.json')
        declared = write_tfvars(cluster, tfvars, **tfvars_args)['servers']
        db = str(work / 'state.db')
        opts = connection_options(double, api_retries=0, api_timeout=5)
        config = write_inventory_config(work / 'x.proxmox.yml', state_db=db, tfvars_path=tfvars, **opts)
        args = dict(opts, state_db=db, tfvars_path=tfvars, roles_path=roles_dir)

        hosts = worker.listing(config)['hosts']
        assert set(declared) <= set(hosts) | set(g.name for g in cluster.guests)

        # Every listed host can be given a role, all in one call.
        wanted = dict((host, ROLES[(i + offset) % len(ROLES)]) for i, host in enumerate(hosts))
        result = run_module('server_role', dict(args, servers=[dict(name=h, role=r) for h, r in wanted.items()]))
        assert result['changed'] is True
        assert [(host_of(s), s['role']) for s in result['servers']] == list(wanted.items())
        regrouped = worker.listing(config)
        assert regrouped['hosts'] == hosts
        for host, role in wanted.items():
            assert host in regrouped['groups']['role_' + role], (host, role)

        # Every name it does not list is refused, and nothing is written.
        candidates = set(strangers) | {'test', 'test-2'}
        candidates |= set(g.name for g in cluster.guests)  # templates, and names shared by several guests
        candidates |= set(h + 'x' for h in hosts[:3]) | set(h.upper() for h in hosts[:3])
        refused = sorted(c for c in candidates if c not in hosts)
        before = settled_digest(db)
        for name in refused:
            with pytest.raises(ModuleFailed) as failed:
                run_module('server_role', dict(args, name=name, role='web'))
            assert repr(name) in failed.value.result['msg']
        with pytest.raises(ModuleFailed) as failed:
            run_module('server_role', dict(args, servers=[dict(name=n, role='db') for n in refused]))
        assert len(failed.value.result['problems']) == len(refused)
        assert settled_digest(db) == before

    try:
        check()
    finally:
        worker.close()


# -- bulk calls -------------------------------------------------------------------

BAD_BULK = [
    dict(name='web-01', role='web'),                    # valid
    dict(name='AI-agnet', role='web'),                  # unknown server, near AI-agent
    dict(name='monitoring', role='wbe'),                # unknown role, near web
    dict(name='worker', role='was'),                    # two guests share the name
    dict(name='web-01', role='db'),                     # the same server again
    dict(name='ftp-ct'),                                # present without a role
    dict(name='ftp-ct', vmid=999, role='ftp'),          # no such vmid for the name
    dict(name='search-ct', role='search'),              # valid
]


def check_bad_bulk_problems(result):
    problems = result['problems']
    assert len(problems) == 6, problems
    by_entry = dict((p.split(':', 1)[0], p) for p in problems)
    assert "Did you mean 'AI-agent'?" in by_entry['servers[1] (AI-agnet)']
    assert "Role 'wbe' is not in the role catalog" in by_entry['servers[2] (monitoring)']
    assert "Did you mean 'web'?" in by_entry['servers[2] (monitoring)']
    assert 'vmids 110, 111' in by_entry['servers[3] (worker)']
    assert 'worker-110, worker-111' in by_entry['servers[3] (worker)']
    assert 'servers[0]' in by_entry['servers[4] (web-01)']
    assert 'role is required' in [p for p in problems if p.startswith('servers[5]')][0]
    assert 'no guest with vmid 999; its vmids are 200' in by_entry['servers[6] (ftp-ct)']
    assert not any(p.startswith(('servers[0]', 'servers[7]')) for p in problems)
    for problem in problems:
        assert problem in result['msg']
    assert result['msg'].startswith('6 problems, nothing was changed')
    assert 'exception' not in result


def test_bulk_with_bad_entries_writes_nothing(base, state_db):
    run_module('server_role', dict(base, name='db-01', role='db'))
    before = settled_digest(state_db)
    with pytest.raises(ModuleFailed) as failed:
        run_module('server_role', dict(base, servers=BAD_BULK))
    check_bad_bulk_problems(failed.value.result)
    assert settled_digest(state_db) == before
    assert [r['name'] for r in db_rows(state_db)] == ['db-01']


def test_bulk_with_bad_entries_creates_no_db(base, state_db):
    with pytest.raises(ModuleFailed) as failed:
        run_module('server_role', dict(base, servers=BAD_BULK))
    check_bad_bulk_problems(failed.value.result)
    assert created_nothing(state_db)


def test_unknown_role_and_server_in_one_entry_are_both_reported(base):
    with pytest.raises(ModuleFailed) as failed:
        run_module('server_role', dict(base, servers=[dict(name='nothing-like-it', role='files'),
                                                      dict(name='web-01', role='web')]))
    problems = failed.value.result['problems']
    assert len(problems) == 2
    assert "Role 'files' is not in the role catalog (db, ftp, monitoring, search, was, web)" in problems[0]
    assert "Server 'nothing-like-it' does not exist" in problems[1]


def test_bulk_assigns_many_in_one_transaction(base, state_db):
    entries = [dict(name='AI-agent', role='web'), dict(name='web-02', role='web'),
               dict(name='worker', vmid=110, role='was'), dict(name='worker-111', role='db'),
               dict(name='build-box', role='was'), dict(name='old-ct', role='ftp')]
    result = run_module('server_role', dict(base, servers=entries))
    assert [(host_of(s), s['vmid'], s['role'], s['changed']) for s in result['servers']] == [
        ('AI-agent', 100, 'web', True), ('web-02', None, 'web', True), ('worker-110', 110, 'was', True),
        ('worker-111', 111, 'db', True), ('build-box', 120, 'was', True), ('old-ct', 202, 'ftp', True)]
    rows = dict(((r['name'], r['vmid']), r) for r in db_rows(state_db))
    assert rows[('web-02', None)]['ip_address'] == '10.10.0.54'  # declared only: the declared IP
    assert rows[('web-02', None)]['source'] == 'declared'
    assert rows[('old-ct', 202)]['source'] == 'live' and rows[('old-ct', 202)]['node'] == 'pve2'
    assert len(role_log(state_db)) == 6


# -- idempotence, check mode, diff, absent -----------------------------------------


def test_second_identical_call_changes_nothing(base, state_db):
    first = run_module('server_role', dict(base, name='AI-agent', role='web'))
    assert first['changed'] is True
    log = role_log(state_db)
    before = settled_digest(state_db)
    second = run_module('server_role', dict(base, name='AI-agent', role='web'), diff=True)
    assert second['changed'] is False
    assert second['servers'] == [dict(name='AI-agent', vmid=100, role='web',
                                      previous_role='web', changed=False)]
    assert second['diff'] == dict(before={}, after={})
    assert role_log(state_db) == log
    assert settled_digest(state_db) == before


def test_check_mode_without_db_creates_nothing(base, state_db):
    args = dict(base, servers=[dict(name='AI-agent', role='web'), dict(name='worker-110', role='was')])
    checked = run_module('server_role', args, check_mode=True, diff=True)
    assert created_nothing(state_db)
    applied = run_module('server_role', args, diff=True)
    assert checked == applied
    assert applied['changed'] is True
    assert applied['diff'] == dict(before={'AI-agent': None, 'worker-110': None},
                                   after={'AI-agent': 'web', 'worker-110': 'was'})


def test_check_mode_with_db_writes_nothing_and_reports_the_same(base, state_db):
    run_module('server_role', dict(base, servers=[dict(name='AI-agent', role='web'), dict(name='db-01', role='db')]))
    before = settled_digest(state_db)
    args = dict(base, servers=[dict(name='AI-agent', role='db'), dict(name='db-01', role='db'),
                               dict(name='web-01', role='web')])
    checked = run_module('server_role', args, check_mode=True, diff=True)
    assert settled_digest(state_db) == before
    assert checked['changed'] is True
    assert checked['diff'] == dict(before={'AI-agent': 'web', 'web-01': None}, after={'AI-agent': 'db', 'web-01': 'web'})
    assert [(host_of(s), s['previous_role'], s['role'], s['changed']) for s in checked['servers']] == [
        ('AI-agent', 'web', 'db', True), ('db-01', 'db', 'db', False), ('web-01', None, 'web', True)]
    assert run_module('server_role', args, diff=True) == checked


def test_check_mode_on_the_seeds_db_plans_like_the_real_run(base, state_db):
    # The write upgrades the old schema first; check mode must see the same rows.
    legacy_db(state_db, "INSERT INTO servers (name, status, role) VALUES ('web-02', 'unknown', 'web');")
    args = dict(base, servers=[dict(name='web-02', role='web'), dict(name='AI-agent', role='web')])
    before = settled_digest(state_db)
    checked = run_module('server_role', args, check_mode=True, diff=True)
    assert settled_digest(state_db) == before
    assert [(host_of(s), s['previous_role'], s['changed']) for s in checked['servers']] == [
        ('web-02', 'web', False), ('AI-agent', None, True)]
    assert run_module('server_role', args, diff=True) == checked


def test_state_absent(base, state_db):
    run_module('server_role', dict(base, name='AI-agent', role='web'))
    # absent with another role removes nothing
    other = run_module('server_role', dict(base, name='AI-agent', role='db', state='absent'))
    assert other['changed'] is False and other['servers'][0]['role'] == 'web'
    # absent with its role removes it; the row stays
    same = run_module('server_role', dict(base, name='AI-agent', role='web', state='absent'), diff=True)
    assert same['changed'] is True
    assert same['servers'][0]['previous_role'] == 'web' and same['servers'][0]['role'] is None
    assert same['diff'] == dict(before={'AI-agent': 'web'}, after={'AI-agent': None})
    assert [(r['name'], r['role']) for r in db_rows(state_db)] == [('AI-agent', None)]
    # absent without a role removes whatever role it has
    run_module('server_role', dict(base, name='AI-agent', role='db'))
    anyrole = run_module('server_role', dict(base, name='AI-agent', state='absent'))
    assert anyrole['changed'] is True and anyrole['servers'][0]['previous_role'] == 'db'
    assert run_module('server_role', dict(base, name='AI-agent', state='absent'))['changed'] is False
    assert role_log(state_db)[-2:] == [('AI-agent (vmid 100)', None, 'db', 'server_role'),
                                       ('AI-agent (vmid 100)', 'db', None, 'server_role')]


def test_absent_for_a_server_without_row_changes_nothing(base, state_db):
    run_module('server_role', dict(base, name='AI-agent', role='web'))
    result = run_module('server_role', dict(base, name='db-01', state='absent'))
    assert result['changed'] is False and result['servers'][0]['role'] is None


def test_vmid_and_host_name_pick_one_of_the_duplicates(base, state_db):
    picked = run_module('server_role', dict(base, name='worker', vmid=111, role='was'))
    assert host_of(picked['servers'][0]) == 'worker-111' and picked['servers'][0]['vmid'] == 111
    assert [(r['vmid'], r['node'], r['role']) for r in db_rows(state_db)] == [(111, 'pve3', 'was')]
    # the inventory host name reaches the same row
    by_host = run_module('server_role', dict(base, name='worker-111', role='db'))
    assert by_host['servers'][0]['previous_role'] == 'was' and by_host['servers'][0]['vmid'] == 111
    run_module('server_role', dict(base, name='worker', vmid=110, role='web'))
    assert [(r['vmid'], r['role']) for r in db_rows(state_db)] == [(110, 'web'), (111, 'db')]
    with pytest.raises(ModuleFailed) as failed:
        run_module('server_role', dict(base, name='worker', vmid=999, role='web'))
    assert "no guest with vmid 999; its vmids are 110, 111" in failed.value.result['msg']


def test_name_and_servers_are_exclusive(base):
    with pytest.raises(ModuleFailed) as failed:
        run_module('server_role', dict(base, name='AI-agent', role='web', servers=[dict(name='web-01', role='web')]))
    assert 'mutually exclusive' in failed.value.result['msg']
    with pytest.raises(ModuleFailed) as failed:
        run_module('server_role', dict(base, role='web'))
    assert 'name' in failed.value.result['msg'] and 'servers' in failed.value.result['msg']


def test_a_directory_without_tasks_is_not_a_role(base):
    with pytest.raises(ModuleFailed) as failed:
        run_module('server_role', dict(base, name='AI-agent', role='files'))
    assert "Role 'files' is not in the role catalog" in failed.value.result['msg']


def test_roles_catalog_from_the_environment(base, monkeypatch, tmp_path):
    monkeypatch.setenv('PROXMOX_MANAGER_ROLES', make_catalog(tmp_path / 'env-roles'))
    args = dict(base)
    del args['roles_path']
    assert run_module('server_role', dict(args, name='AI-agent', role='search'))['changed'] is True


# -- errors: one clear message, no traceback, no change ---------------------------


def _down(double, args, tmp_path, monkeypatch):
    args['api_port'] = free_port()
    return 'Cannot reach Proxmox'


def _refused(double, args, tmp_path, monkeypatch):
    args['api_token_secret'] = 'wrong-9f1c2e7a-secret'
    return 'check the credentials'


def _refused_by_fault(double, args, tmp_path, monkeypatch):
    double.add_fault(path='^/cluster/resources', status=401)
    return 'HTTP 401'


def _server_error(double, args, tmp_path, monkeypatch):
    double.add_fault(path='^/cluster/resources', status=500, message='pveproxy exploded')
    return 'HTTP 500'


def _timeout(double, args, tmp_path, monkeypatch):
    double.add_fault(path='^/cluster/resources', delay=3)
    args.update(api_timeout=1, api_retries=0)
    return 'did not answer'


def _bad_tfvars(double, args, tmp_path, monkeypatch):
    path = tmp_path / 'broken.tfvars.json'
    path.write_text('{"servers": {"AI-agent": ')
    args['tfvars_path'] = str(path)
    return 'is not valid JSON'


def _invalid_tfvars(double, args, tmp_path, monkeypatch):
    path = tmp_path / 'invalid.tfvars.json'
    path.write_text(json.dumps({'servers': {'web-01': {'name': 'web-01', 'cpu': 'two'}}}))
    args['tfvars_path'] = str(path)
    return 'cpu'


def _unknown_role(double, args, tmp_path, monkeypatch):
    args['role'] = 'wbe'
    return "Did you mean 'web'?"


def _no_catalog(double, args, tmp_path, monkeypatch):
    args['roles_path'] = str(tmp_path / 'no-such-roles')
    return 'role catalog'


ERRORS = dict(down=_down, refused=_refused, refused_by_fault=_refused_by_fault, server_error=_server_error,
              timeout=_timeout, bad_tfvars=_bad_tfvars, invalid_tfvars=_invalid_tfvars,
              unknown_role=_unknown_role, no_catalog=_no_catalog)


@pytest.mark.parametrize('case', sorted(ERRORS))
def test_errors_are_clear_and_change_nothing(case, double, base, state_db, tmp_path, monkeypatch):
    run_module('server_role', dict(base, name='AI-agent', role='web'))
    before = settled_digest(state_db)
    args = dict(base, name='web-01', role='web')
    expected = ERRORS[case](double, args, tmp_path, monkeypatch)
    with pytest.raises(ModuleFailed) as failed:
        run_module('server_role', args)
    result = failed.value.result
    assert expected in result['msg'], result['msg']
    assert 'exception' not in result and 'Traceback' not in result['msg']
    for secret in (double.token_secret, args['api_token_secret']):
        assert secret not in json.dumps(result)
    assert settled_digest(state_db) == before


def test_bad_tfvars_fails_before_any_api_call(double, base, tmp_path, monkeypatch):
    args = dict(base, name='web-01', role='web')
    _bad_tfvars(double, args, tmp_path, monkeypatch)
    double.reset_counters()
    with pytest.raises(ModuleFailed):
        run_module('server_role', args)
    assert double.counters()['total'] == 0


def test_locked_db_fails_clearly_and_changes_nothing(base, state_db, monkeypatch):
    run_module('server_role', dict(base, name='AI-agent', role='web'))
    before = settled_digest(state_db)
    monkeypatch.setenv('PROXMOX_MANAGER_DB_TIMEOUT', '1')
    with hold_write_lock(state_db):
        with pytest.raises(ModuleFailed) as failed:
            run_module('server_role', dict(base, name='web-01', role='web'))
    result = failed.value.result
    assert ('lock timeout' if is_postgresql(state_db) else 'database is locked') in result['msg']
    assert 'Another run held the database for more than 1s (PROXMOX_MANAGER_DB_TIMEOUT)' in result['msg']
    assert 'exception' not in result
    assert settled_digest(state_db) == before


def test_refused_secret_never_printed_even_at_vvv(double, env, state_db):
    secret = 'wrong-6d0f4b2a-e2c1-secret'
    args = dict(name='AI-agent', role='web', api_token_secret=secret, api_retries=0)
    proc = adhoc(env, 'server_role', args, '-vvv')
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'check the credentials' in output
    assert secret not in output and double.token_secret not in output
    assert 'Traceback' not in output
    assert not db_exists(state_db)


# -- concurrency ------------------------------------------------------------------


def test_eight_parallel_bulk_calls_lose_nothing(make_double, tmp_path):
    cluster = generate_cluster(nodes=3, guests=2000, templates=0, seed=4)
    double = make_double(cluster)
    tfvars = tmp_path / 'terraform.tfvars.json'
    write_tfvars(cluster, tfvars, declared_ratio=0.5, seed=4)
    db = str(tmp_path / 'state' / 'proxmox_manager.db')
    env = connection_env(double, PROXMOX_MANAGER_DB=db, PROXMOX_MANAGER_TFVARS=str(tfvars),
                         PROXMOX_MANAGER_ROLES=make_catalog(tmp_path / 'roles'))
    guests = sorted(cluster.guests, key=lambda g: g.vmid)
    wanted = dict((g.name, ROLES[g.vmid % len(ROLES)]) for g in guests)
    # interleaved, so the eight writers touch neighbouring rows
    batches = [[dict(name=g.name, role=wanted[g.name]) for g in guests[i::8]] for i in range(8)]
    assert sorted(len(b) for b in batches) == [250] * 8
    cmd_base = [str(BIN / 'ansible')] + ADHOC[1:] + ['proxmox_manager.core.server_role', '-a']
    procs = []
    for n, batch in enumerate(batches):  # output to files: a full pipe must not stall a writer
        out, err = open(tmp_path / ('out-%d' % n), 'w+'), open(tmp_path / ('err-%d' % n), 'w+')
        procs.append((subprocess.Popen(cmd_base + [json.dumps(dict(servers=batch))], cwd=str(ROOT), env=env,
                                       stdout=out, stderr=err, text=True), out, err))
    outputs = []
    for proc, out, err in procs:
        proc.wait(timeout=600)
        out.seek(0)
        err.seek(0)
        outputs.append((proc.returncode, out.read(), err.read()))
        out.close()
        err.close()
    for returncode, out, err in outputs:
        assert returncode == 0, out + err
        assert 'locked' not in out + err
        result = adhoc_result(subprocess.CompletedProcess([], 0, out, err))
        assert result['changed'] is True and len(result['servers']) == 250
        assert all(s['changed'] for s in result['servers'])
    rows = db_rows(db)
    assert len(rows) == 2000
    assert dict((r['name'], r['role']) for r in rows) == wanted
    log = role_log(db)
    assert len(log) == 2000 and len(set(key for key, _old, _new, _tool in log)) == 2000


def test_servers_file_is_one_bulk_call_and_checked_like_the_argspec(double, tmp_path):
    """servers_file: the same list as `servers`, read module-side (very large bulk calls)."""
    roles = tmp_path / 'roles'
    for role in ('web', 'db'):
        (roles / role / 'tasks').mkdir(parents=True)
    base = dict(connection_options(double), state_db=str(tmp_path / 'x.db'), roles_path=str(roles),
                tfvars_path=str(SAMPLE_TFVARS))
    good = tmp_path / 'servers.json'
    good.write_text(json.dumps([{'name': 'AI-agent', 'role': 'web'}, {'name': 'worker', 'vmid': 111, 'role': 'db'}]))
    result = run_module('server_role', dict(base, servers_file=str(good)))
    assert result['changed'] is True
    assert [(host_of(s), s['role']) for s in result['servers']] == [('AI-agent', 'web'), ('worker-111', 'db')]
    yml = tmp_path / 'servers.yml'
    yml.write_text('servers:\n  - {name: AI-agent, role: web}\n')
    assert run_module('server_role', dict(base, servers_file=str(yml)))['changed'] is False
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps([{'name': 'AI-agent', 'role': 'web', 'vmid': 'x'}, {'role': 'db'},
                               {'name': 'web-01', 'state': 'gone', 'colour': 1}]))
    before = settled_digest(str(tmp_path / 'x.db'))
    with pytest.raises(ModuleFailed) as err:
        run_module('server_role', dict(base, servers_file=str(bad)))
    msg = err.value.result['msg']
    assert 'servers[0]: vmid must be a int' in msg and 'servers[1]: needs a name' in msg
    assert "unknown key 'colour'" in msg and 'state must be present or absent' in msg
    assert settled_digest(str(tmp_path / 'x.db')) == before
    with pytest.raises(ModuleFailed, match='Cannot read servers_file'):
        run_module('server_role', dict(base, servers_file=str(tmp_path / 'none.json')))
