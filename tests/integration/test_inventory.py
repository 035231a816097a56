"""The proxmox_manager.core.proxmox inventory plugin against the Proxmox API double.

The key cases run end to end through `ansible-inventory` (a subprocess with the
PROXMOX_* environment a user exports); the rest parse in-process, which is
cheaper and sees the same plugin code. The state DB is a SQLite file here
(`sqlite_db`): the inventory reads and records it with stdlib sqlite3, and these
tests look at the file. With a PostgreSQL state DB the plugin goes through the
state store: test_state_errors.py and test_server_role.py run those paths.
"""

import json
import os
import sqlite3
from pathlib import Path

import pytest
import yaml

from ansible_collections.proxmox_manager.core.plugins.module_utils import state_db
from ansible_collections.proxmox_manager.core.plugins.plugin_utils import recorded_view as recorded
from tests.conftest import (
    AGENT_PATH as AGENT,
    ROOT,
    SAMPLE_TFVARS,
    ModuleFailed,
    connection_env,
    connection_options,
    declared_vars,
    interrupt_while_an_agent_hangs,
    run_ansible,
    run_module,
)
from tests.pve_double import generate_cluster, load_scenario, write_tfvars

PLUGIN = 'proxmox_manager.core.proxmox'
RESOURCES = 'GET /cluster/resources'
# The cluster's name, asked once per parse when the config does not name the cluster.
STATUS = 'GET /cluster/status'
LXC_IFACES = 'GET /nodes/{node}/lxc/{vmid}/interfaces'
LOOKUPS = (AGENT, LXC_IFACES)
SAMPLE_HOSTS = {'AI-agent', 'web-01', 'web-02', 'db-01', 'monitoring', 'worker-110', 'worker-111', 'build-box',
                'ftp-ct', 'search-ct', 'old-ct'}


# -- helpers ------------------------------------------------------------------------------------------

def write_config(directory, **options):
    path = Path(directory) / 'x.proxmox.yml'
    path.write_text(yaml.safe_dump(dict(plugin=PLUGIN, **options), sort_keys=False))
    return path


def sample_tfvars():
    return json.loads(SAMPLE_TFVARS.read_text())


def plain(value):
    """ansible-inventory's JSON with the `__ansible_unsafe` wrappers removed."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return dict((k, plain(v)) for k, v in value.items())
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class Listing:
    """The answer of `ansible-inventory --list`, or of an in-process parse, in one shape."""

    def __init__(self, hostvars, groups, stderr=''):
        self.hostvars = hostvars
        self.groups = groups
        self.stderr = stderr

    def hosts(self, group):
        return sorted(self.groups.get(group, []))

    def groups_with(self, prefix):
        return dict((g, sorted(h)) for g, h in self.groups.items() if g.startswith(prefix) and h)


def cli(config, env, *extra):
    return run_ansible(['ansible-inventory', '-i', str(config), '--list'] + list(extra), env, timeout=120)


def cli_listing(config, env):
    proc = cli(config, env)
    assert proc.returncode == 0, proc.stderr
    assert 'Failed to parse' not in proc.stderr, proc.stderr
    data = plain(json.loads(proc.stdout))
    groups = dict((name, body.get('hosts', [])) for name, body in data.items() if name != '_meta')
    return Listing(data['_meta']['hostvars'], groups, proc.stderr)


def assert_clean_failure(proc, *needles):
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert 'Traceback' not in output
    for needle in needles:
        assert needle in output, output
    return output


@pytest.fixture
def cli_env(double, sqlite_db, tfvars):
    def _env(**extra):
        # A failed source must fail the command, as a CI job would configure it.
        return connection_env(double, PROXMOX_MANAGER_DB=sqlite_db, PROXMOX_MANAGER_TFVARS=str(tfvars),
                              ANSIBLE_INVENTORY_UNPARSED_FAILED='true', **extra)
    return _env


@pytest.fixture
def build(parse_inventory):
    """Parse a config in-process; returns a Listing whose stderr holds the warnings."""
    def _build(config):
        inventory, warnings = parse_inventory(config)
        groups = dict((name, [h.name for h in group.hosts]) for name, group in inventory.groups.items())
        hostvars = dict((name, dict(host.vars)) for name, host in inventory.hosts.items())
        return Listing(hostvars, groups, '\n'.join(warnings))
    return _build


@pytest.fixture
def config(tmp_path, double, sqlite_db, tfvars):
    """An in-process config for the sample double; keyword arguments add options."""
    def _config(target=None, **options):
        target = target or double
        opts = dict(connection_options(target), state_db=sqlite_db, tfvars_path=str(tfvars))
        opts.update(options)
        return write_config(tmp_path, **opts)
    return _config


def recorded_view(sqlite_db, double):
    """(taken_at, records) the plugin recorded for the cluster of this double."""
    return tuple(recorded.last_view(sqlite_db, state_db.view_name(double.host, double.port)))


def lookups_expected(cluster, declared):
    """{path: n} of the IP lookups the plugin should make: running guests without a declared IP."""
    from ansible_collections.proxmox_manager.core.plugins.module_utils.merged_view import declared_ips
    counts = {}
    for g in cluster.guests:
        if g.template or g.status != 'running' or declared_ips(declared.get(g.name)):
            continue
        path = AGENT if g.type == 'qemu' else LXC_IFACES
        counts[path] = counts.get(path, 0) + 1
    return counts


# -- end to end through ansible-inventory ---------------------------------------------------------------

def test_list_groups_hostvars_roles_and_api_cost(existing_db, double, cli_env, tmp_path, sqlite_db, tfvars):
    # an undeclared running container with no declared IP: its address comes from the interfaces call
    double.cluster.add_guest(vmid=210, name='cache-ct', type='lxc', node='pve2', status='running',
                             ips=['10.10.0.80/24'], tags=['cache'])
    run_module('server_role', dict(
        connection_options(double), state_db=sqlite_db, tfvars_path=str(tfvars), roles_path=str(ROOT / 'roles'),
        servers=[dict(name='AI-agent', role='monitoring'), dict(name='build-box', role='db'),
                 dict(name='worker', vmid=111, role='ftp'), dict(name='web-02', role='web')]))
    double.reset_counters()

    inv = cli_listing(write_config(tmp_path), cli_env())
    declared = sample_tfvars()['servers']
    hv = inv.hostvars
    assert set(hv) == SAMPLE_HOSTS | {'cache-ct'}  # the template is not a server

    # every live guest, rule by rule, against the double's own model
    for g in double.cluster.guests:
        if g.template:
            continue
        host = '%s-%s' % (g.name, g.vmid) if g.name == 'worker' else g.name
        v = hv[host]
        assert (v['pve_vmid'], v['pve_node'], v['pve_type'], v['pve_status']) == (g.vmid, g.node, g.type, g.status)
        assert v.get('pve_tags', []) == list(g.tags) and v.get('pve_pool') == g.pool
        assert ('pve_tags' in v) == bool(g.tags) and ('pve_pool' in v) == bool(g.pool)  # none null or empty
        assert 'pve_declared' not in v  # opt-in (want_declared)
        assert not [k for k, x in v.items() if k.startswith(('pve_', 'ansible_host')) and x in (None, [])]
        assert v.get('pve_name') == (g.name if host != g.name else None)  # only where the host was renamed
        assert v['pve_source'] == ('live+declared' if g.name in declared else 'live')
        assert v['pve_cluster'] == 'demo' and host in inv.hosts('cluster_demo')  # the name /cluster/status gives
        assert host in inv.hosts('node_%s' % g.node)
        assert host in inv.hosts('status_%s' % g.status) and host in inv.hosts('type_%s' % g.type)
        for tag in g.tags:
            assert host in inv.hosts('tag_%s' % tag)
        if g.pool:
            assert host in inv.hosts('pool_%s' % g.pool)

    # ansible_host: the first declared IP, else the first IPv4 the agent / interfaces call reports
    assert hv['AI-agent']['ansible_host'] == '10.10.0.50'
    assert hv['worker-110']['ansible_host'] == '10.10.0.60' and hv['worker-110']['pve_ips'] == ['10.10.0.60']
    assert hv['cache-ct']['ansible_host'] == '10.10.0.80' and hv['cache-ct']['pve_ips'] == ['10.10.0.80']
    for stopped in ('worker-111', 'build-box', 'old-ct'):
        assert 'ansible_host' not in hv[stopped] and 'pve_ips' not in hv[stopped]

    # declared only
    assert inv.hosts('declared_only') == ['web-02']
    assert hv['web-02']['pve_source'] == 'declared'
    assert not {'pve_vmid', 'pve_node', 'pve_status', 'pve_type'} & set(hv['web-02'])  # not created: no nulls
    assert hv['web-02']['ansible_host'] == '10.10.0.54' and hv['web-02']['pve_declared_role'] == 'web'
    assert inv.hosts('undeclared') == ['build-box', 'cache-ct', 'old-ct']

    # role_<role> from the APPLIED role in the state DB, not the declared one
    assert inv.groups_with('role_') == {'role_db': ['build-box'], 'role_ftp': ['worker-111'],
                                        'role_monitoring': ['AI-agent'], 'role_web': ['web-02']}
    assert hv['AI-agent']['pve_role'] == 'monitoring' and hv['AI-agent']['pve_declared_role'] == 'web'
    assert hv['worker-111']['pve_role'] == 'ftp' and 'pve_role' not in hv['worker-110']  # only when there is one

    # duplicate names: two hosts and a warning
    assert 'worker' not in hv
    assert "2 guests share the name 'worker'" in inv.stderr and 'worker-110, worker-111' in inv.stderr

    # API cost: the cluster's name, one listing, then lookups only for worker-110 (dhcp) and cache-ct (undeclared)
    assert double.counters()['by_path'] == {STATUS: 1, RESOURCES: 1, AGENT: 1, LXC_IFACES: 1}

    # the build was recorded for the offline fallback
    taken_at, snapshot = recorded_view(sqlite_db, double)
    assert taken_at is not None and sorted(r['host'] for r in snapshot) == sorted(hv)


def test_cache_hit_makes_zero_api_calls(double, cli_env, tmp_path):
    cfg = write_config(tmp_path, cache=True, cache_plugin='ansible.builtin.jsonfile',
                       cache_connection=str(tmp_path / 'cache'), cache_timeout=3600)
    first = cli_listing(cfg, cli_env())
    assert double.counters()['by_path'][RESOURCES] == 1

    double.reset_counters()
    double.cluster.add_guest(vmid=130, name='brand-new', node='pve1', status='stopped')
    second = cli_listing(cfg, cli_env())
    assert double.counters()['total'] == 0  # not even a login
    assert second.hostvars == first.hostvars and second.groups == first.groups
    assert 'brand-new' not in second.hostvars

    proc = cli(cfg, cli_env(), '--flush-cache')
    assert proc.returncode == 0, proc.stderr
    assert 'brand-new' in plain(json.loads(proc.stdout))['_meta']['hostvars']
    assert double.counters()['by_path'][RESOURCES] == 1


def assert_served_from_snapshot(inv, live, reason, outage='UNREACHABLE'):
    assert set(inv.hostvars) == set(live.hostvars) and inv.groups == live.groups
    for host, v in inv.hostvars.items():
        assert v['pve_source'] == 'recorded'
        assert dict(v, pve_source=None) == dict(live.hostvars[host], pve_source=None)
    # the cluster is named: by the records, when it is down before Proxmox could tell its name
    assert 'Cluster demo: PROXMOX %s, SERVING THE VIEW RECORDED AT' % outage in inv.stderr
    assert 'pve_source=recorded, %d hosts' % len(live.hostvars) in inv.stderr
    assert reason in inv.stderr


def test_cached_fallback_when_proxmox_errors(existing_db, double, cli_env, tmp_path):
    cfg = write_config(tmp_path)
    env = cli_env(PROXMOX_API_RETRIES='0')
    live = cli_listing(cfg, env)
    assert {v['pve_source'] for v in live.hostvars.values()} == {'live+declared', 'live', 'declared'}
    double.add_fault(path='^/cluster/resources$', status=500)
    assert_served_from_snapshot(cli_listing(cfg, env), live, 'HTTP 500', 'SERVER ERROR')


MALFORMED_LISTINGS = {
    'not JSON': '{"data": [',
    'an HTML page': '<html><body>Login to the proxy</body></html>',
    'no data': '{"errors": null}',
    'data not a list': '{"data": {"vmid": 100}}',
    'data null': '{"data": null}',
    'an item without vmid': '{"data": [{"name": "x", "node": "pve1", "type": "qemu"}]}',
    'a name as an int': '{"data": [{"vmid": 100, "name": 7, "node": "pve1", "type": "qemu"}]}',
    'maxmem lots': '{"data": [{"vmid": 100, "name": "x", "node": "pve1", "type": "qemu", "maxmem": "lots"}]}',
    'vmid 1.5': '{"data": [{"vmid": 1.5, "name": "x", "node": "pve1", "type": "qemu"}]}',
    'one vmid twice': ('{"data": [{"vmid": 100, "name": "a", "node": "pve1", "type": "qemu"},'
                       ' {"vmid": 100, "name": "b", "node": "pve1", "type": "qemu"}]}'),
}


@pytest.mark.parametrize('case', sorted(MALFORMED_LISTINGS))
def test_a_malformed_listing_is_an_outage_served_from_the_recorded_view(existing_db, double, build, config, sqlite_db, case):
    live = build(config(api_retries=0))
    taken_at = recorded_view(sqlite_db, double)[0]
    double.add_fault(path='^/cluster/resources$', body=MALFORMED_LISTINGS[case])
    inv = build(config(api_retries=0))
    assert_served_from_snapshot(inv, live, '%s/cluster/resources' % double.url, 'MALFORMED ANSWER')
    assert recorded_view(sqlite_db, double)[0] == taken_at  # the recorded view is not overwritten


@pytest.mark.parametrize('case', sorted(MALFORMED_LISTINGS))
def test_a_malformed_listing_fails_a_module_naming_the_endpoint_and_writes_nothing(double, sqlite_db, tfvars, case):
    double.add_fault(path='^/cluster/resources$', body=MALFORMED_LISTINGS[case])
    with pytest.raises(ModuleFailed) as failed:
        run_module('server_sync', dict(connection_options(double), state_db=sqlite_db, tfvars_path=str(tfvars)))
    message = failed.value.result['msg']
    assert 'Unexpected error' not in message and 'Traceback' not in message
    assert 'malformed answer' in message and '%s/cluster/resources' % double.url in message
    assert not os.path.exists(sqlite_db)


@pytest.mark.parametrize('status, who', [(401, 'token'), (403, 'token'), (401, 'password')])
def test_refused_credentials_always_fail_even_with_a_recorded_view(existing_db, double, build, config, status, who):
    from ansible.errors import AnsibleParserError
    options = dict(api_retries=0)
    if who == 'password':
        options.update(api_token_id=None, api_token_secret=None, api_user=double.user, api_password=double.password)
    build(config(**options))  # a recorded view exists
    double.add_fault(path='^/cluster/resources$' if who == 'token' else '^/access/ticket$', status=status)
    with pytest.raises(AnsibleParserError) as info:
        build(config(**options))
    message = str(info.value)
    assert 'HTTP %s' % status in message or 'refused the login' in message
    expected = ('user %s with token id %s' % (double.token_user, double.token_name) if who == 'token'
                else 'user %s (password auth)' % double.user)
    assert expected in message and 'SERVING' not in message


@pytest.mark.parametrize('trouble', ['timeout', 'down'])
def test_cached_fallback_when_proxmox_times_out_or_is_down(existing_db, double, build, config, trouble):
    cfg = config(api_retries=0, api_timeout=1)
    live = build(cfg)
    if trouble == 'timeout':
        double.add_fault(path='^/cluster/resources$', delay=4)
        reason = 'did not answer %s/cluster/resources within 1s' % double.url
    else:
        reason = 'Cannot reach Proxmox at %s: Connection refused' % double.url
        cfg = config(api_retries=0, api_timeout=1, ca_path=None, validate_certs=False)
        double.stop()
    assert_served_from_snapshot(build(cfg), live, reason, 'TIMED OUT' if trouble == 'timeout' else 'UNREACHABLE')


def test_an_empty_ca_path_variable_fails_the_parse_clearly(existing_db, double, build, config, tmp_path,
                                                           monkeypatch):
    """PROXMOX_CA_PATH= (a CI template's empty export) reaches the plugin as the current directory."""
    from ansible.errors import AnsibleParserError
    monkeypatch.setenv('PROXMOX_CA_PATH', '')
    cfg = config(ca_path=None)  # null in the file: the environment decides
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AnsibleParserError) as err:
        build(cfg)
    assert str(err.value) == (
        'proxmox_manager.core.proxmox: ca_path (PROXMOX_CA_PATH) names the directory %s, not a CA file (PEM). An '
        'empty PROXMOX_CA_PATH is read as the current directory: unset it to use the system CAs.' % tmp_path)
    assert double.counters()['total'] == 0  # a configuration mistake: no request, no recorded fallback


@pytest.mark.parametrize('options', [dict(offline_fallback=False), dict(strict=True)])
def test_no_fallback_when_disabled_or_strict(existing_db, double, cli_env, tmp_path, config, build, options):
    build(config())  # a recorded view exists: the failure comes from the option alone
    double.add_fault(path='^/cluster/resources$', status=500)
    proc = cli(write_config(tmp_path, **options), cli_env(PROXMOX_API_RETRIES='0'))
    output = assert_clean_failure(proc, 'proxmox_manager.core.proxmox: Proxmox answered HTTP 500',
                                  '/cluster/resources')
    assert 'SERVING' not in output


def test_malformed_tfvars_fails_naming_file_and_field(existing_db, double, cli_env, tmp_path, tfvars, config, build):
    build(config())  # even with a recorded view, a broken declaration is no reason to serve it
    data = sample_tfvars()
    data['servers']['db-01']['memory'] = 'lots'
    tfvars.write_text(json.dumps(data))
    double.reset_counters()
    proc = cli(write_config(tmp_path), cli_env())
    output = assert_clean_failure(proc, str(tfvars), 'servers.db-01.memory', "'lots'")
    assert 'SERVING' not in output
    assert double.counters()['total'] == 0  # the file is checked before any API call


def test_wrong_secret_fails_clearly_and_never_shows_even_with_vvv(double, cli_env, tmp_path):
    wrong = 'f00dbabe-0000-4bad-8ecr-etsecret0001'
    proc = cli(write_config(tmp_path), cli_env(PROXMOX_TOKEN_SECRET=wrong), '-vvv')
    output = assert_clean_failure(proc, 'HTTP 401', 'user %s with token id %s' % (double.token_user, double.token_name))
    assert 'SERVING' not in output and 'recorded view' not in output
    assert wrong not in output and double.token_secret not in output


def test_ctrl_c_ends_ansible_inventory_promptly_while_agents_hang(double, cli_env, tmp_path):
    err = interrupt_while_an_agent_hangs(write_config(tmp_path), cli_env(PROXMOX_API_TIMEOUT='120'), double)
    assert double.counters()['by_path'].get(AGENT) == 1 and double.token_secret not in err


# -- in-process ----------------------------------------------------------------------------------------

def test_group_names_are_sanitised(make_double, tmp_path, build, config, sqlite_db):
    cluster = load_scenario(dict(
        nodes=[dict(node='pve.lab-1')],
        guests=[dict(vmid=300, name='edge.example.com', node='pve.lab-1', status='stopped',
                     tags=['web-front', 'eu.west'], pool='team-a')]))
    target = make_double(cluster)
    empty = tmp_path / 'empty.tfvars.json'
    empty.write_text('{"servers": {}}')
    inv = build(config(target, tfvars_path=str(empty)))
    host = 'edge.example.com'
    for group in ('node_pve_lab_1', 'tag_web_front', 'tag_eu_west', 'pool_team_a', 'status_stopped',
                  'type_qemu', 'undeclared'):
        assert inv.hosts(group) == [host], group
    assert not [g for g in inv.groups if '-' in g or '.' in g]
    v = inv.hostvars[host]
    assert v['pve_node'] == 'pve.lab-1' and v['pve_tags'] == ['web-front', 'eu.west'] and v['pve_pool'] == 'team-a'


def test_templates_only_when_asked(double, build, config):
    assert 'debian12-tpl' not in build(config()).hostvars
    inv = build(config(include_templates=True))
    assert inv.hostvars['debian12-tpl']['pve_vmid'] == 9000
    assert 'debian12-tpl' in inv.hosts('tag_template') and 'debian12-tpl' in inv.hosts('undeclared')


def test_offline_node_does_not_fail_the_inventory(double, build, config):
    double.set_node_status('pve3', 'offline')
    inv = build(config())
    assert set(inv.hostvars) == SAMPLE_HOSTS
    on_pve3 = ['build-box', 'search-ct', 'worker-111']
    assert inv.hosts('node_pve3') == on_pve3 and inv.hosts('status_unknown') == on_pve3
    assert inv.hostvars['search-ct']['ansible_host'] == '10.10.0.71'  # declared, so still reachable by name
    assert double.counters()['by_path'] == {STATUS: 1, RESOURCES: 1, AGENT: 1}  # nothing asked of the offline node


@pytest.mark.parametrize('status', [500, 595])
def test_failed_ip_lookup_leaves_the_host_without_address(double, build, config, status):
    # 500: agent not running; 595: its node went away between the listing and the lookup
    double.add_fault(path='/agent/network-get-interfaces$', status=status)
    inv = build(config())
    assert set(inv.hostvars) == SAMPLE_HOSTS
    assert 'pve_ips' not in inv.hostvars['worker-110'] and 'ansible_host' not in inv.hostvars['worker-110']
    assert inv.hostvars['worker-110']['pve_source'] == 'live+declared'


def test_no_ip_lookups_when_not_wanted(double, build, config):
    inv = build(config(want_agent_ips=False))
    assert 'ansible_host' not in inv.hostvars['worker-110']
    assert double.counters()['by_path'] == {STATUS: 1, RESOURCES: 1}


def test_api_calls_constant_in_cluster_size(make_double, tmp_path, build, config):
    seen = {}
    for label, nodes, guests in (('small', 1, 20), ('large', 10, 200)):
        cluster = generate_cluster(nodes=nodes, guests=guests, seed=7)
        tfvars_path = tmp_path / ('%s.tfvars.json' % label)
        declared = write_tfvars(cluster, tfvars_path, declared_ratio=0.9)['servers']
        target = make_double(cluster)
        inv = build(config(target, tfvars_path=str(tfvars_path), max_workers=4))
        calls = target.counters()['by_path']
        expected = lookups_expected(cluster, declared)
        assert sum(expected.values()) > 0
        assert dict((k, v) for k, v in calls.items() if k in LOOKUPS) == expected
        seen[label] = dict((k, v) for k, v in calls.items() if k not in LOOKUPS)
        assert len(inv.hostvars) == guests - 1  # every regular guest, not the template
        for g in cluster.guests:
            if g.status == 'running' and g.agent and g.ips and g.name not in declared:
                assert inv.hostvars[g.name]['ansible_host'] == g.ips[0].split('/')[0]
    assert seen['small'] == seen['large'] == {STATUS: 1, RESOURCES: 1}


def test_compose_groups_and_keyed_groups(double, build, config):
    inv = build(config(
        want_declared=True,
        compose={'ansible_user': "'admin' if 'prod' in pve_tags | default([]) else 'root'",
                 'declared_cpu': 'pve_declared.cpu | default(0)'},
        groups={'big': '(pve_declared.memory | default(0)) >= 8192'},
        keyed_groups=[dict(key='pve_declared_role', prefix='declared'), dict(key='pve_tags')],
        leading_separator=False))
    hv = inv.hostvars
    assert hv['AI-agent']['ansible_user'] == 'admin' and hv['build-box']['ansible_user'] == 'root'
    assert hv['db-01']['declared_cpu'] == 4 and hv['old-ct']['declared_cpu'] == 0
    assert inv.hosts('big') == ['AI-agent', 'db-01', 'worker-110', 'worker-111']
    assert inv.hosts('declared_web') == ['AI-agent', 'web-01', 'web-02']
    assert inv.hosts('declared_was') == ['worker-110', 'worker-111']
    assert inv.hosts('prod') == ['AI-agent', 'db-01', 'web-01'] and '_prod' not in inv.groups


@pytest.mark.parametrize('missing, expected', [
    ('api_host', 'No Proxmox host given: set api_host or the PROXMOX_HOST environment variable'),
    ('api_token_secret', 'No Proxmox credentials for root@pam: set api_token_id and api_token_secret'),
])
def test_configuration_errors_are_not_served_from_the_snapshot(existing_db, double, build, config, tmp_path, monkeypatch,
                                                               missing, expected):
    from ansible.errors import AnsibleError
    build(config())  # a recorded view exists, and must not hide a configuration mistake
    for var in ('PROXMOX_HOST', 'PROXMOX_TOKEN_SECRET', 'PROXMOX_PASSWORD'):
        monkeypatch.delenv(var, raising=False)
    opts = yaml.safe_load(config().read_text())
    del opts['plugin'], opts[missing]
    double.reset_counters()
    with pytest.raises(AnsibleError) as info:
        build(write_config(tmp_path, **opts))
    assert expected in str(info.value) and 'SERVING' not in str(info.value)
    assert double.counters()['total'] == 0


def test_fallback_without_snapshot_says_so(double, build, config, sqlite_db):
    from ansible.errors import AnsibleParserError
    double.add_fault(path='^/cluster/resources$', status=503)
    with pytest.raises(AnsibleParserError) as info:
        build(config(api_retries=0))
    assert 'HTTP 503' in str(info.value) and 'no recorded view in the state DB' in str(info.value)
    assert not os.path.exists(sqlite_db)  # looking for a snapshot created nothing


@pytest.mark.parametrize('how', ['in-process', 'ansible-inventory', 'password'])
def test_guest_with_agent_off_is_not_asked_again_until_it_restarts(existing_db, double, build, config, cli_env, tmp_path, how):
    # The same build through the plugin in-process, through ansible-inventory, and with ticket auth.
    def listing():
        if how == 'ansible-inventory':
            return cli_listing(write_config(tmp_path), cli_env())
        if how == 'password':
            return build(config(api_token_id=None, api_token_secret=None, api_user=double.user,
                                api_password=double.password))
        return build(config())

    def calls():
        return dict((path, n) for path, n in double.counters()['by_path'].items()
                    if path not in ('POST /access/ticket', STATUS))

    worker = double.cluster.guest(110)
    worker.agent_running = False
    worker.uptime = 5000
    double.cluster.touch()
    inv = listing()
    assert calls() == {RESOURCES: 1, AGENT: 1} and 'pve_ips' not in inv.hostvars['worker-110']
    double.reset_counters()
    worker.uptime = 5600  # still up: the agent can't have been turned on
    double.cluster.touch()
    listing()
    assert calls() == {RESOURCES: 1}
    double.reset_counters()
    worker.agent_running = True
    worker.uptime = 30  # restarted: worth asking again
    double.cluster.touch()
    inv = listing()
    assert calls() == {RESOURCES: 1, AGENT: 1}
    assert inv.hostvars['worker-110']['pve_ips'] == ['10.10.0.60']


def test_password_auth_logs_in_once_and_still_looks_up_ips(double, build, config):
    # The lookups reuse the client of the listing: one login for the whole parse.
    double.reset_counters()
    inv = build(config(api_token_id=None, api_token_secret=None, api_user=double.user, api_password=double.password))
    assert double.counters()['by_path'] == {'POST /access/ticket': 1, STATUS: 1, RESOURCES: 1, AGENT: 1}
    assert inv.hostvars['worker-110']['pve_ips'] == ['10.10.0.60']


def test_want_declared_sets_the_declared_spec_on_declared_hosts_only(double, build, config):
    declared = sample_tfvars()['servers']
    lean, full = build(config()), build(config(want_declared=True))
    assert set(lean.hostvars) == set(full.hostvars) and lean.groups == full.groups
    for host, v in full.hostvars.items():
        name = v.get('pve_name', host)
        if name in declared:
            assert v['pve_declared'] == declared_vars(declared[name])
        else:
            assert 'pve_declared' not in v  # never null
        assert dict((k, x) for k, x in v.items() if k != 'pve_declared') == lean.hostvars[host]


def parse_into_new_inventory(inventory_loader, config):
    """Parse in-process into an InventoryData of its own; (inventory, error or None)."""
    from ansible.errors import AnsibleError
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    inventory = InventoryData()
    try:
        inventory_loader.get(PLUGIN).parse(inventory, DataLoader(), str(config), cache=False)
    except AnsibleError as exc:
        return inventory, exc
    return inventory, None


@pytest.mark.parametrize('trouble', ['state DB is not a database', 'lookup refused (401)', 'strict compose'])
def test_a_failed_parse_leaves_no_half_inventory(double, config, sqlite_db, inventory_loader, trouble):
    options = {}
    if trouble == 'state DB is not a database':
        write_not_a_database(sqlite_db)
        expected = 'file is not a database'
    elif trouble == 'lookup refused (401)':
        double.add_fault(path='/agent/network-get-interfaces$', status=401)
        expected = 'HTTP 401'
    else:
        options = dict(strict=True, compose={'ansible_user': 'pve_no_such_var.user'})
        expected = 'pve_no_such_var'
    inventory, error = parse_into_new_inventory(inventory_loader, config(**options))
    assert error is not None and expected in str(error)
    # Ansible keeps what a failed source added, so the plugin takes back every host it added.
    assert inventory.hosts == {} and sorted(inventory.groups) == ['all', 'ungrouped']
    assert inventory.groups['all'].child_groups == [inventory.groups['ungrouped']]


def test_a_lookup_refused_fails_cleanly(double, cli_env, tmp_path, sqlite_db):
    double.add_fault(path='/agent/network-get-interfaces$', status=401)
    proc = cli(write_config(tmp_path), cli_env())
    assert_clean_failure(proc, 'HTTP 401', 'check the credentials and their permissions')
    assert double.token_secret not in proc.stdout + proc.stderr
    assert recorded_view(sqlite_db, double) == (None, None)  # a failed build records nothing


def test_two_clusters_on_one_state_db_keep_their_recorded_views_apart(existing_db, double, make_double, build, config, tmp_path):
    other = make_double(generate_cluster(nodes=1, guests=4, seed=3))
    empty = tmp_path / 'empty.tfvars.json'
    empty.write_text('{"servers": {}}')
    first = build(config(api_retries=0, api_timeout=1))
    second = build(config(other, tfvars_path=str(empty), api_retries=0, api_timeout=1))
    assert not set(first.hostvars) & set(second.hostvars)
    double.add_fault(path='^/cluster/resources$', status=500)
    # the first cluster is down: its own last view is served, not the one recorded after it for the other cluster
    assert_served_from_snapshot(build(config(api_retries=0, api_timeout=1)), first, 'HTTP 500', 'SERVER ERROR')


def test_guest_on_offline_node_keeps_its_last_known_status(existing_db, double, build, config):
    build(config())  # records the view while pve3 is up
    double.set_node_status('pve3', 'offline')
    inv = build(config())
    assert inv.hostvars['search-ct']['pve_status'] == 'unknown'
    assert inv.hostvars['search-ct']['pve_last_status'] == 'running'
    assert inv.hostvars['build-box']['pve_last_status'] == 'stopped'
    assert 'pve_last_status' not in inv.hostvars['AI-agent']
    inv = build(config())  # still offline: the last known status is carried on, not lost
    assert inv.hostvars['search-ct']['pve_last_status'] == 'running'


# -- the state DB: through ansible-inventory and in-process alike -------------------------------------

@pytest.mark.parametrize('how', ['cli', 'in-process'])
def test_locked_state_db_lists_every_host_and_warns(existing_db, double, cli_env, tmp_path, config, build, monkeypatch, sqlite_db,
                                                    how):
    monkeypatch.setenv('PROXMOX_MANAGER_DB_TIMEOUT', '1')

    def listing():
        if how == 'cli':
            return cli_listing(write_config(tmp_path), cli_env(PROXMOX_MANAGER_DB_TIMEOUT='1'))
        return build(config())

    first = listing()
    taken_at = recorded_view(sqlite_db, double)[0]
    guest = double.cluster.guest(101)
    guest.maxmem += 1 << 30  # a changed view (no hostvar shows maxmem) is one to record
    double.cluster.touch()
    holder = sqlite3.connect(sqlite_db, isolation_level=None)
    holder.execute('BEGIN IMMEDIATE')
    try:
        inv = listing()
    finally:
        holder.execute('ROLLBACK')
        holder.close()
    assert inv.hostvars == first.hostvars and inv.groups == first.groups
    assert 'Could not record the view in the state DB' in inv.stderr and 'database is locked' in inv.stderr
    assert 'Traceback' not in inv.stderr
    assert recorded_view(sqlite_db, double)[0] == taken_at  # the recorded view is untouched


def write_not_a_database(sqlite_db):
    os.makedirs(os.path.dirname(sqlite_db))
    Path(sqlite_db).write_bytes(b'this is not a database\n' * 200)


@pytest.mark.parametrize('how', ['cli', 'in-process'])
def test_state_db_that_is_not_a_database_fails_clearly(double, cli_env, tmp_path, config, build, sqlite_db, how):
    from ansible.errors import AnsibleParserError
    write_not_a_database(sqlite_db)
    expected = 'proxmox_manager.core.proxmox: Cannot read the state DB %s: file is not a database' % sqlite_db
    if how == 'cli':
        assert_clean_failure(cli(write_config(tmp_path), cli_env()), expected)
    else:
        with pytest.raises(AnsibleParserError) as info:
            build(config())
        assert expected in str(info.value)
    assert Path(sqlite_db).read_bytes() == b'this is not a database\n' * 200


def test_proxmox_error_and_an_unreadable_state_db_are_both_named(double, build, config, sqlite_db):
    from ansible.errors import AnsibleParserError
    write_not_a_database(sqlite_db)
    double.add_fault(path='^/cluster/resources$', status=500)
    with pytest.raises(AnsibleParserError) as info:
        build(config(api_retries=0))
    assert 'Proxmox answered HTTP 500' in str(info.value)
    assert ('The recorded view cannot be read either: Cannot read the state DB %s: file is not a database'
            % sqlite_db) in str(info.value)


def test_a_token_that_may_not_ask_agents_lists_every_guest_with_one_warning(existing_db, double, build, config, sqlite_db):
    fault = double.add_fault(path='/agent/network-get-interfaces$', status=403,
                             message='Permission check failed (/vms/110, VM.GuestAgent.Audit)')
    inv = build(config())
    assert set(inv.hostvars) == SAMPLE_HOSTS
    assert 'pve_ips' not in inv.hostvars['worker-110'] and 'ansible_host' not in inv.hostvars['worker-110']
    warnings = [w for w in inv.stderr.split('\n') if 'IP lookups were skipped' in w]
    assert len(warnings) == 1 and 'VM.GuestAgent.Audit' in warnings[0] and 'want_agent_ips: false' in warnings[0]
    # the refusal is not remembered as an agent that is off: with the privilege, the next build asks again
    double.remove_fault(fault)
    double.reset_counters()
    inv = build(config())
    assert double.counters()['by_path'].get(AGENT) == 1 and inv.hostvars['worker-110']['pve_ips'] == ['10.10.0.60']


@pytest.mark.parametrize('allow', [False, True])
def test_an_empty_listing_after_guests_is_not_recorded_unless_allowed(existing_db, double, build, config, sqlite_db, allow):
    build(config())
    taken_at = recorded_view(sqlite_db, double)[0]
    double.add_fault(path='^/cluster/resources$', body='{"data": []}')
    inv = build(config(allow_empty_cluster=allow))
    assert set(inv.hostvars) == {'web-02', 'worker'} | {'AI-agent', 'web-01', 'db-01', 'monitoring', 'search-ct',
                                                        'ftp-ct'}
    assert {v['pve_source'] for v in inv.hostvars.values()} == {'declared'}
    if allow:
        assert 'Proxmox listed no guests' not in inv.stderr
        assert recorded_view(sqlite_db, double)[0] != taken_at
    else:
        assert 'Proxmox listed no guests, while 10 were recorded before' in inv.stderr
        assert 'allow_empty_cluster' in inv.stderr and 'The recorded view is kept' in inv.stderr
        assert recorded_view(sqlite_db, double)[0] == taken_at


@pytest.mark.parametrize('error', ['Unsupported', 'CommandDisabled'])
def test_an_agent_answering_an_error_is_an_agent_that_is_off(existing_db, double, build, config, error):
    # What Windows guests answer (HTTP 200): the agent runs, but will not tell its interfaces.
    double.add_fault(path='/agent/network-get-interfaces$',
                     body='{"data": {"result": {"error": {"class": "%s", "desc": "not allowed"}}}}' % error)
    inv = build(config())
    assert set(inv.hostvars) == SAMPLE_HOSTS and 'pve_ips' not in inv.hostvars['worker-110']
    assert 'IP lookups were skipped' not in inv.stderr
    double.reset_counters()
    build(config())
    assert AGENT not in double.counters()['by_path']  # remembered like an agent that is off


def test_the_recorded_view_is_rewritten_only_when_what_hosts_show_changes(existing_db, double, build, config,
                                                                          sqlite_db):
    build(config())
    taken_at = recorded_view(sqlite_db, double)[0]
    for guest in double.cluster.guests:
        guest.uptime = (guest.uptime or 1000) + 60  # time passes: every running guest's uptime grows
    double.cluster.touch()
    build(config())
    assert recorded_view(sqlite_db, double)[0] == taken_at
    double.cluster.guest(101).status = 'stopped'
    double.cluster.touch()
    build(config())
    assert recorded_view(sqlite_db, double)[0] > taken_at


def test_string_options_may_be_templates_as_the_plugins_own_example_shows(double, cli_env, tmp_path, existing_db):
    config = write_config(tmp_path, api_token_secret="{{ lookup('ansible.builtin.env', 'MY_PVE_SECRET') }}",
                          api_host="{{ 'pve-double' | replace('pve-double', lookup('ansible.builtin.env', 'MY_HOST')) }}")
    env = cli_env(MY_PVE_SECRET=double.token_secret, MY_HOST=double.host)
    del env['PROXMOX_TOKEN_SECRET'], env['PROXMOX_HOST']
    listing = cli_listing(config, env)
    assert 'AI-agent' in listing.hostvars
    # A value from the environment is taken as it is, never templated.
    env.update(PROXMOX_TOKEN_SECRET="{{ lookup('ansible.builtin.env', 'MY_PVE_SECRET') }}")
    assert_clean_failure(cli(write_config(tmp_path, api_host=double.host), env), 'HTTP 401')
    # Nor when the file names the option without a value (null falls back to the environment).
    assert_clean_failure(cli(write_config(tmp_path, api_host=double.host, api_token_secret=None), env), 'HTTP 401')


def test_relative_paths_are_the_config_repos_not_the_current_directory(double, tmp_path):
    """The config repo is the directory of the ansible.cfg in use, wherever ansible-inventory runs from."""
    repo, elsewhere = tmp_path / 'repo', tmp_path / 'elsewhere'
    (repo / 'inventory').mkdir(parents=True)
    (repo / 'terraform').mkdir()
    (repo / 'state').mkdir()
    elsewhere.mkdir()
    (repo / 'ansible.cfg').write_text((ROOT / 'ansible.cfg').read_text().replace(
        'collections_path = ./collections', 'collections_path = %s' % (ROOT / 'collections')))
    tfvars = sample_tfvars()
    (repo / 'terraform' / 'terraform.tfvars.json').write_text(json.dumps(tfvars))
    from ansible_collections.proxmox_manager.core.plugins.module_utils.state_store import StateStore
    store = StateStore(str(repo / 'state' / 'proxmox_manager.db'))
    with store.writing():
        pass
    store.close()
    # As the scaffold writes it: a relative tfvars_path, and state_db at its default.
    config = write_config(repo / 'inventory', tfvars_path='terraform/terraform.tfvars.json')
    env = connection_env(double, ANSIBLE_CONFIG=str(repo / 'ansible.cfg'))
    for name in ('PROXMOX_MANAGER_DB', 'PROXMOX_MANAGER_TFVARS', 'PROXMOX_MANAGER_PROJECT_DIR'):
        env.pop(name, None)
    proc = run_ansible(['ansible-inventory', '-i', str(config), '--list'], env, cwd=elsewhere, timeout=120)
    assert proc.returncode == 0, proc.stderr
    hostvars = plain(json.loads(proc.stdout))['_meta']['hostvars']
    declared_only = [name for name in tfvars['servers'] if hostvars.get(name, {}).get('pve_source') == 'declared']
    assert declared_only, 'the tfvars of the config repo were not read'
    with sqlite3.connect(str(repo / 'state' / 'proxmox_manager.db')) as db:
        assert db.execute('SELECT count(*) FROM view_snapshots').fetchone()[0] == 1
    assert os.listdir(elsewhere) == []
