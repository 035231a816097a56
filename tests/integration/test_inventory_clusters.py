"""The inventory plugin over several clusters (issue 17, docs/clusters.md), against two API doubles.

`double` is the cluster `demo` (the sample), `lab_double` the cluster `lab`; both have a guest web-01 with
vmid 101. The state DB is a SQLite file (`sqlite_db`) unless a test says otherwise.
"""

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.proxmox_manager.core.plugins.module_utils import state_db as state_db_names
from ansible_collections.proxmox_manager.core.plugins.module_utils.state_store import StateStore
from ansible_collections.proxmox_manager.core.plugins.plugin_utils import recorded_view
from tests.conftest import (
    clusters_mapping,
    connection_env,
    connection_options,
    interrupt_while_an_agent_hangs,
    run_ansible,
)
from tests.seed_db import legacy_db, v2_db

PLUGIN = 'proxmox_manager.core.proxmox'
STATUS = 'GET /cluster/status'
DEMO_HOSTS = {'AI-agent', 'web-01', 'web-02', 'db-01', 'monitoring', 'worker-110', 'worker-111', 'build-box',
              'ftp-ct', 'search-ct', 'old-ct'}
LAB_HOSTS = {'web-01', 'lab-ci', 'lab-ct'}


def write_config(directory, **options):
    path = Path(directory) / 'clusters.proxmox.yml'
    path.write_text(yaml.safe_dump(dict(plugin=PLUGIN, **options), sort_keys=False))
    return path


class Listing:
    """An in-process parse: hostvars, groups ({name: sorted hosts}) and the warnings."""

    def __init__(self, inventory, warnings):
        self.hostvars = dict((name, dict(host.vars)) for name, host in inventory.hosts.items())
        self.groups = dict((name, sorted(h.name for h in group.hosts)) for name, group in inventory.groups.items())
        self.warnings = warnings

    def warned(self, needle):
        return [w for w in self.warnings if needle in w]


@pytest.fixture
def mapping(double, lab_double, tfvars, lab_tfvars):
    """The clusters mapping of both doubles; a test may change an entry before writing the config."""
    return clusters_mapping(demo=(double, tfvars), lab=(lab_double, lab_tfvars))


@pytest.fixture
def build(parse_inventory, tmp_path, sqlite_db, mapping):
    """Parse a config of both clusters (keyword arguments are more top-level options); a Listing."""
    def _build(**options):
        settings = dict(state_db=sqlite_db, api_retries=0, clusters=mapping)
        settings.update(options)
        return Listing(*parse_inventory(write_config(tmp_path, **settings)))
    return _build


def parse_error(parse_inventory, config):
    from ansible.errors import AnsibleParserError
    with pytest.raises(AnsibleParserError) as info:
        parse_inventory(config)
    return str(info.value)


def recorded(sqlite_db, double):
    """(taken_at, records) recorded for the cluster of this double."""
    return tuple(recorded_view.last_view(sqlite_db, state_db_names.view_name(double.host, double.port)))


def seed_roles(option, cluster, rows):
    """Roles in the state DB for `cluster`, as the modules write them."""
    store = StateStore(option, owner=dict(cluster=cluster, view=None))
    with store.writing() as conn:
        store.upsert_servers(conn, rows, 'test', cluster)
    store.close()


# -- hosts ------------------------------------------------------------------------------------------------------

def test_a_name_in_two_clusters_is_one_host_per_cluster(build):
    inv = build()
    assert set(inv.hostvars) == ({'web-01.demo', 'web-01.lab'} | (DEMO_HOSTS - {'web-01'})
                                 | (LAB_HOSTS - {'web-01'}))
    demo, lab = inv.hostvars['web-01.demo'], inv.hostvars['web-01.lab']
    assert (demo['pve_name'], demo['pve_cluster'], demo['pve_vmid'], demo['pve_node']) == ('web-01', 'demo', 101,
                                                                                           'pve1')
    assert (lab['pve_name'], lab['pve_cluster'], lab['pve_vmid'], lab['pve_node']) == ('web-01', 'lab', 101, 'lab1')
    assert demo['ansible_host'] == '10.10.0.51' and lab['ansible_host'] == '10.20.0.51'  # each its own tfvars
    warning, = inv.warned("The name 'web-01' is used in the clusters demo, lab")
    assert 'web-01.demo, web-01.lab' in warning
    # a name in one cluster only keeps its name; duplicates inside one cluster are still <name>-<vmid>
    assert 'pve_name' not in inv.hostvars['lab-ci'] and 'pve_name' not in inv.hostvars['AI-agent']
    assert inv.hostvars['worker-110']['pve_name'] == 'worker'
    assert inv.warned("Cluster demo: 2 guests share the name 'worker'")


def test_every_host_carries_its_cluster_and_sits_in_its_group(build):
    inv = build()
    assert inv.groups['cluster_lab'] == sorted(['web-01.lab', 'lab-ci', 'lab-ct'])
    assert inv.groups['cluster_demo'] == sorted(set(inv.hostvars) - set(inv.groups['cluster_lab']))
    for host, hostvars in inv.hostvars.items():
        assert host in inv.groups['cluster_%s' % hostvars['pve_cluster']]
        assert hostvars['pve_source'] in ('live+declared', 'live', 'declared')
    assert inv.hostvars['web-02']['pve_cluster'] == 'demo' and inv.hostvars['web-02']['pve_source'] == 'declared'


def test_roles_are_read_by_cluster(existing_db, build):
    # vmid 101 is web-01 in both clusters, each with a role of its own; `planned` is declared in demo only
    seed_roles(existing_db, 'demo', [dict(name='web-01', vmid=101, role='web'), dict(name='web-02', role='was')])
    seed_roles(existing_db, 'lab', [dict(name='web-01', vmid=101, role='db'), dict(name='web-02', role='ftp')])
    inv = build()
    assert inv.hostvars['web-01.demo']['pve_role'] == 'web' and inv.hostvars['web-01.lab']['pve_role'] == 'db'
    assert inv.groups['role_web'] == ['web-01.demo'] and inv.groups['role_db'] == ['web-01.lab']
    # web-02 is demo's (declared, no vmid): lab's row of that name is not its role
    assert inv.hostvars['web-02']['pve_role'] == 'was' and 'role_ftp' not in inv.groups
    assert not inv.warned('older layout')


def test_secrets_come_from_each_clusters_variables(build, mapping, double, lab_double, monkeypatch):
    for entry in mapping.values():
        del entry['api_token_secret']
    # the unprefixed variable is the last resort: each cluster's own variable wins over it
    monkeypatch.setenv('PROXMOX_TOKEN_SECRET', 'not-the-secret-of-either')
    monkeypatch.setenv('PROXMOX_DEMO_TOKEN_SECRET', double.token_secret)
    monkeypatch.setenv('PROXMOX_LAB_TOKEN_SECRET', lab_double.token_secret)
    inv = build()
    assert {'web-01.demo', 'web-01.lab', 'lab-ci', 'AI-agent'} <= set(inv.hostvars)


def test_a_string_in_a_cluster_entry_may_be_a_template_but_a_variable_never_is(build, mapping, lab_double,
                                                                               monkeypatch, parse_inventory):
    monkeypatch.setenv('MY_LAB_SECRET', lab_double.token_secret)
    mapping['lab']['api_token_secret'] = "{{ lookup('ansible.builtin.env', 'MY_LAB_SECRET') }}"
    assert 'lab-ci' in build().hostvars
    del mapping['lab']['api_token_secret']
    monkeypatch.setenv('PROXMOX_LAB_TOKEN_SECRET', "{{ lookup('ansible.builtin.env', 'MY_LAB_SECRET') }}")
    from ansible.errors import AnsibleParserError
    with pytest.raises(AnsibleParserError) as info:
        build()
    assert 'Cluster lab:' in str(info.value) and 'HTTP 401' in str(info.value)


@pytest.mark.parametrize('change, expected', [
    (dict(clusters={'1lab': {}}), "clusters: the name '1lab' is not 1 to 63 letters"),
    (dict(clusters={'lab': {'api_hots': 'pve'}}), "clusters.lab: unknown option 'api_hots'"),
    (dict(clusters={'lab': 'pve-lab.example.com'}), 'clusters.lab: must be a mapping of options'),
    (dict(clusters={'lab-1': {}, 'LAB_1': {}}), 'would share the variables PROXMOX_LAB_1_*'),
    ('one tfvars', 'The clusters demo and lab read the same tfvars file'),
])
def test_a_malformed_mapping_is_one_clear_error_before_any_call(double, lab_double, mapping, parse_inventory,
                                                                tmp_path, tfvars, sqlite_db, change, expected):
    if change == 'one tfvars':
        mapping['lab']['tfvars_path'] = str(tfvars)
        change = dict(clusters=mapping)
    message = parse_error(parse_inventory, write_config(tmp_path, state_db=sqlite_db, **change))
    assert message.startswith('proxmox_manager.core.proxmox: ') and expected in message, message
    assert 'Traceback' not in message
    assert double.counters()['total'] == lab_double.counters()['total'] == 0


# -- one cluster down ---------------------------------------------------------------------------------------------

def test_a_cluster_that_is_down_is_served_from_its_recorded_view_while_the_other_stays_live(
        existing_db, build, mapping, double, lab_double):
    before = build()
    lab_taken = recorded(existing_db, lab_double)[0]
    assert lab_taken is not None and recorded(existing_db, double)[0] is not None
    lab_double.stop()
    mapping['lab'].update(ca_path=None, validate_certs=False)  # its CA went with it
    double.cluster.guest(101).status = 'stopped'  # demo changes meanwhile
    double.cluster.touch()
    inv = build(api_timeout=2)
    assert set(inv.hostvars) == set(before.hostvars)
    for host, hostvars in inv.hostvars.items():
        if hostvars['pve_cluster'] == 'lab':
            assert hostvars['pve_source'] == 'recorded'
            assert dict(hostvars, pve_source=None) == dict(before.hostvars[host], pve_source=None)
        else:
            assert hostvars['pve_source'] != 'recorded'
    assert inv.hostvars['web-01.demo']['pve_status'] == 'stopped'  # live
    warning, = inv.warned('SERVING THE VIEW RECORDED AT')
    assert warning.startswith('Cluster lab: PROXMOX UNREACHABLE, SERVING THE VIEW RECORDED AT')
    assert '(pve_source=recorded, 3 hosts)' in warning and lab_double.url in warning
    # demo's changed view is recorded, lab's recorded view is left as it was
    assert recorded(existing_db, lab_double)[0] == lab_taken
    demo_records = recorded(existing_db, double)[1]
    assert [r['status'] for r in demo_records if r['vmid'] == 101] == ['stopped']


def test_a_view_recorded_before_clusters_takes_the_name_of_its_cluster(existing_db, build, mapping, lab_double):
    build()
    name = state_db_names.view_name(lab_double.host, lab_double.port)
    taken_at, records = recorded_view.last_view(existing_db, name)
    for record in records:
        del record['cluster']  # as the collection recorded it before several clusters
    store = StateStore(existing_db)
    with store.writing() as conn:
        store.save_snapshot(conn, name, records)
    store.close()
    lab_double.add_fault(path='^/cluster/resources$', status=503)
    inv = build()
    lab = dict((h, v) for h, v in inv.hostvars.items() if v['pve_source'] == 'recorded')
    assert set(lab) == {'web-01.lab', 'lab-ci', 'lab-ct'}
    assert set(v['pve_cluster'] for v in lab.values()) == {'lab'} and inv.groups['cluster_lab'] == sorted(lab)
    assert inv.warned('Cluster lab: PROXMOX SERVER ERROR, SERVING THE VIEW RECORDED AT')


def test_a_cluster_down_without_a_recorded_view_fails_the_parse_naming_it(build, lab_double, sqlite_db):
    from ansible.errors import AnsibleParserError
    lab_double.add_fault(path='^/cluster/resources$', status=500)
    with pytest.raises(AnsibleParserError) as info:
        build()
    message = str(info.value)
    assert 'Cluster lab: ' in message and 'HTTP 500' in message and 'no recorded view' in message
    assert 'Cluster demo' not in message


@pytest.mark.parametrize('options', [dict(offline_fallback=False), dict(strict=True)])
def test_no_fallback_for_a_cluster_when_disabled_or_strict(existing_db, build, lab_double, options):
    from ansible.errors import AnsibleParserError
    build()
    lab_double.add_fault(path='^/cluster/resources$', status=500)
    with pytest.raises(AnsibleParserError) as info:
        build(**options)
    assert 'Cluster lab: Proxmox answered HTTP 500' in str(info.value) and 'SERVING' not in str(info.value)


@pytest.mark.parametrize('status', [401, 403])
def test_a_refusal_of_one_cluster_fails_the_whole_parse_naming_it(existing_db, build, lab_double, double, status):
    from ansible.errors import AnsibleParserError
    build()  # both clusters have a recorded view: a refusal must not be hidden behind it
    lab_double.add_fault(path='^/cluster/resources$', status=status)
    with pytest.raises(AnsibleParserError) as info:
        build()
    message = str(info.value)
    assert 'Cluster lab: ' in message and 'HTTP %s' % status in message and 'SERVING' not in message
    assert 'user %s with token id %s' % (lab_double.token_user, lab_double.token_name) in message


def test_an_emptied_listing_of_one_cluster_keeps_its_recorded_view(existing_db, build, double, lab_double):
    build()
    lab_taken = recorded(existing_db, lab_double)[0]
    lab_double.add_fault(path='^/cluster/resources$', body='{"data": []}')
    double.cluster.guest(101).status = 'stopped'
    double.cluster.touch()
    inv = build()
    warning, = inv.warned('Proxmox listed no guests')
    assert warning.startswith('Cluster lab: Proxmox listed no guests, while 3 were recorded before')
    assert 'The recorded view is kept' in warning
    assert recorded(existing_db, lab_double)[0] == lab_taken
    # the other cluster's view is still believed and recorded
    assert [r['status'] for r in recorded(existing_db, double)[1] if r['vmid'] == 101] == ['stopped']


# -- the recorded views and the cache -----------------------------------------------------------------------------

def test_each_cluster_is_recorded_under_its_own_name_with_its_own_host_names(existing_db, build, double, lab_double,
                                                                             monkeypatch):
    from ansible import context
    cliargs = context.CLIARGS
    monkeypatch.setattr(context, 'CLIARGS', dict(cliargs, check=True))
    build()
    assert recorded(existing_db, double) == recorded(existing_db, lab_double) == (None, None)  # --check
    monkeypatch.setattr(context, 'CLIARGS', cliargs)
    build()
    demo, lab = recorded(existing_db, double)[1], recorded(existing_db, lab_double)[1]
    assert set(r['cluster'] for r in demo) == {'demo'} and set(r['cluster'] for r in lab) == {'lab'}
    # recorded before the hosts of a shared name got their cluster: each view stands alone
    assert 'web-01' in [r['host'] for r in lab] and 'web-01' in [r['host'] for r in demo]
    assert sorted(r['host'] for r in lab) == sorted(LAB_HOSTS)


def test_the_inventory_cache_keeps_the_clusters(double, lab_double, mapping, tmp_path, sqlite_db):
    config = write_config(tmp_path, state_db=sqlite_db, clusters=mapping, cache=True,
                          cache_plugin='ansible.builtin.jsonfile', cache_connection=str(tmp_path / 'cache'),
                          cache_timeout=3600)
    env = connection_env(double, ANSIBLE_INVENTORY_UNPARSED_FAILED='true')

    def listing():
        proc = run_ansible(['ansible-inventory', '-i', str(config), '--list'], env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def cluster_of(data, host):
        value = data['_meta']['hostvars'][host]['pve_cluster']
        return value['__ansible_unsafe'] if isinstance(value, dict) else value

    first = listing()
    double.reset_counters()
    lab_double.reset_counters()
    second = listing()
    assert double.counters()['total'] == lab_double.counters()['total'] == 0  # not even a login
    assert second == first
    assert cluster_of(second, 'web-01.demo') == 'demo' and cluster_of(second, 'web-01.lab') == 'lab'
    assert sorted(second['cluster_lab']['hosts']) == ['lab-ci', 'lab-ct', 'web-01.lab']


def test_ctrl_c_ends_a_parse_of_several_clusters_promptly_while_an_agent_hangs(double, lab_double, mapping,
                                                                               tmp_path, sqlite_db):
    # demo's lookups hang, lab answers: the clusters' threads must not hold the process up either
    config = write_config(tmp_path, state_db=sqlite_db, clusters=mapping, api_timeout=120, want_agent_ips=True)
    err = interrupt_while_an_agent_hangs(config, connection_env(double), double)
    assert double.token_secret not in err and lab_double.token_secret not in err


# -- one cluster, named --------------------------------------------------------------------------------------------

@pytest.mark.parametrize('how', ['cluster/status', 'option', 'PROXMOX_CLUSTER'])
def test_without_clusters_the_name_is_the_option_else_the_one_proxmox_gives(double, parse_inventory, tmp_path,
                                                                            tfvars, sqlite_db, monkeypatch, how):
    options = dict(connection_options(double), tfvars_path=str(tfvars), state_db=sqlite_db)
    if how == 'option':
        options['cluster'] = 'prod'
    elif how == 'PROXMOX_CLUSTER':
        monkeypatch.setenv('PROXMOX_CLUSTER', 'prod')
    inv = Listing(*parse_inventory(write_config(tmp_path, **options)))
    name = 'demo' if how == 'cluster/status' else 'prod'
    assert set(inv.hostvars) == DEMO_HOSTS  # no cluster suffix for one cluster
    assert set(v['pve_cluster'] for v in inv.hostvars.values()) == {name}
    assert inv.groups['cluster_%s' % name] == sorted(DEMO_HOSTS)
    assert double.counters()['by_path'].get(STATUS, 0) == (1 if how == 'cluster/status' else 0)


def test_with_clusters_the_cluster_option_is_not_used(build, monkeypatch):
    monkeypatch.setenv('PROXMOX_CLUSTER', 'lab')  # set for the modules of a one-cluster task
    inv = build(cluster='prod')
    assert set(v['pve_cluster'] for v in inv.hostvars.values()) == {'demo', 'lab'}


# -- a state DB of an older layout ---------------------------------------------------------------------------------

@pytest.mark.parametrize('layout', ['v1', 'v2'])
def test_a_state_db_of_an_older_layout_shows_no_roles_and_says_so_once(build, double, lab_double, state_db, layout):
    (legacy_db if layout == 'v1' else v2_db)(state_db)
    inv = build(state_db=state_db)
    warning, = inv.warned('older layout')
    assert 'schema %s' % layout in warning and 'server_sync' in warning
    assert not [g for g in inv.groups if g.startswith('role_')]
    assert not [h for h, v in inv.hostvars.items() if 'pve_role' in v]
    if layout == 'v2':
        # the first module write upgrades it for its own cluster: the roles show again, and the warning goes
        store = StateStore(state_db, owner=dict(cluster='demo', view=state_db_names.view_name(double.host,
                                                                                              double.port)))
        with store.writing():
            pass
        store.close()
        inv = build(state_db=state_db)
        assert not inv.warned('older layout')
        assert inv.hostvars['web-01.demo']['pve_role'] == 'web' and 'pve_role' not in inv.hostvars['web-01.lab']
