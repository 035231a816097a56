"""Least-privilege API tokens: the double's ACL model, and the collection run with such tokens.

Proxmox lists only what a token may audit and refuses (403) a call it may not make. The first
half checks that the double models this as pve-access-control does (roles, ACL paths and
propagation, pools, privilege-separated tokens intersected with their user); the second runs
the inventory and the modules with the tokens docs/permissions.md tells admins to create.
"""

import json
import re
import sys

import jsonschema
import pytest
import requests
import yaml

from ansible_collections.proxmox_manager.core.plugins.module_utils import state_store as ss
from tests.conftest import ROOT, ModuleFailed, run_module
from tests.seed_db import created_nothing
from tests.pve_double import DoubleServer, generate_cluster, load_scenario
from tests.pve_double.cluster import builtin_roles

PLUGIN = 'proxmox_manager.core.proxmox'
AGENT = 'GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces'
LXC_IFACES = 'GET /nodes/{node}/lxc/{vmid}/interfaces'
SAMPLE_GUESTS = {100, 101, 102, 103, 110, 111, 120, 200, 201, 202, 9000}
SAMPLE_HOSTS = {'AI-agent', 'web-01', 'web-02', 'db-01', 'monitoring', 'worker-110', 'worker-111', 'build-box',
                'ftp-ct', 'search-ct', 'old-ct'}
AGENT_DENIED = 'Permission check failed (/vms/%s, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)'


# -- helpers ------------------------------------------------------------------------------------------

def get(d, path, token=None, secret=None, **params):
    """GET an API path as `token` (user@realm!name; default: the double's full-access token)."""
    headers = d.auth_header(token, secret) if token else d.auth_header()
    return requests.get(d.api_url + path, params=params, headers=headers, verify=d.ca_path, timeout=10)


def data(d, path, token=None, secret=None, **params):
    r = get(d, path, token, secret, **params)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()['data']


def vmids(d, token, secret=None, **params):
    return sorted(g['vmid'] for g in data(d, '/cluster/resources', token, secret, type='vm', **params))


def refused(r, message):
    """A 403 as PVE gives it: the message in the body and in the reason phrase."""
    assert (r.status_code, r.reason, r.json()) == (403, message, {'data': None, 'message': message + '\n'}), r.text


def privsep_token(d, name, grant, path='/', propagate=True):
    """A privilege-separated token `name@pve!name` whose user and token both get `grant` on `path`: returns its id
    and secret (what docs/permissions.md sets up)."""
    userid = '%s@pve' % name
    secret = d.add_token(userid, name, privsep=True, acls=[(path, grant, propagate)],
                         user_acls=[(path, grant, propagate)])
    return '%s!%s' % (userid, name), secret


def token_options(d, token_id, secret, **extra):
    """Module/plugin connection options for a token of the double, the cluster named (so no Sys.Audit is needed
    to learn its name; docs/permissions.md)."""
    user, name = token_id.split('!')
    opts = dict(api_host=d.host, api_port=d.port, ca_path=d.ca_path, api_user=user, api_token_id=name,
                api_token_secret=secret, cluster=d.cluster.cluster_name)
    opts.update(extra)
    return opts


def control(d, method, path, body=None):
    return requests.request(method, d.control_url + path, json=body, headers={'X-Double-Token': d.control_token},
                            verify=d.ca_path, timeout=10)


# -- the double's ACL model ---------------------------------------------------------------------------

def test_existing_tokens_and_root_still_see_and_do_everything(double):
    assert not double.cluster.tokens[0].privsep and double.token_user == 'root@pam'
    assert vmids(double, None) == sorted(SAMPLE_GUESTS)
    assert len(data(double, '/storage')) == 5 and data(double, '/cluster/status')
    assert data(double, '/nodes/pve1/qemu/100/agent/network-get-interfaces')['result']
    assert all('maxcpu' in n for n in data(double, '/nodes') if n['status'] == 'online')
    assert len(double.permissions(double.token_id, '/vms/100')) == len(builtin_roles(9)['Administrator'])
    login = requests.post(double.api_url + '/access/ticket', data={'username': 'root@pam', 'password': double.password},
                          verify=double.ca_path, timeout=10).json()['data']
    r = requests.get(double.api_url + '/cluster/resources', params={'type': 'vm'}, verify=double.ca_path,
                     cookies={'PVEAuthCookie': login['ticket']}, timeout=10)
    assert len(r.json()['data']) == len(SAMPLE_GUESTS)


def test_a_token_with_no_vm_audit_anywhere_gets_an_empty_listing(double):
    token, secret = privsep_token(double, 'storage', ['Datastore.Audit'])
    r = get(double, '/cluster/resources', token, secret, type='vm')
    assert r.status_code == 200 and r.json() == {'data': []}  # no error: left out in silence
    assert data(double, '/nodes/pve1/qemu', token, secret) == [] and data(double, '/nodes/pve1/lxc', token, secret) == []
    assert len(data(double, '/storage', token, secret)) == 5  # what it may audit, it sees
    everything = data(double, '/cluster/resources', token, secret)
    assert {item['type'] for item in everything} == {'node', 'storage'}
    refused(get(double, '/nodes/pve1/qemu/100/config', token, secret), 'Permission check failed (/vms/100, VM.Audit)')


def test_the_listing_is_filtered_per_token(double):
    # one token per scope; answers are cached per identity, so ask them interleaved
    one, one_secret = privsep_token(double, 'one', 'PVEAuditor', path='/vms/101', propagate=False)
    everyone, every_secret = privsep_token(double, 'every', ['VM.Audit'])
    for _round in range(2):
        assert vmids(double, one, one_secret) == [101]
        assert vmids(double, everyone, every_secret) == sorted(SAMPLE_GUESTS)
        assert vmids(double, None) == sorted(SAMPLE_GUESTS)
    assert [g['vmid'] for g in data(double, '/nodes/pve1/qemu', one, one_secret)] == [101]
    assert data(double, '/nodes/pve2/qemu', one, one_secret) == []
    assert data(double, '/nodes/pve1/qemu/101/config', one, one_secret)['name'] == 'web-01'
    refused(get(double, '/nodes/pve1/qemu/100/config', one, one_secret), 'Permission check failed (/vms/100, VM.Audit)')
    # nodes stay listed, without their figures, for who lacks Sys.Audit on them
    nodes = data(double, '/cluster/resources', everyone, every_secret, type='node')
    assert [n['node'] for n in nodes] == ['pve1', 'pve2', 'pve3']
    assert all(set(n) == {'id', 'type', 'node', 'status', 'level'} for n in nodes)
    assert all('maxmem' not in n for n in data(double, '/nodes', everyone, every_secret))
    assert data(double, '/storage', everyone, every_secret) == []
    assert data(double, '/cluster/resources', everyone, every_secret, type='storage') == []
    assert data(double, '/pools', everyone, every_secret) == []


def test_agent_call_without_guest_agent_audit_answers_403_like_pve(double):
    token, secret = privsep_token(double, 'listing', ['VM.Audit'])
    assert vmids(double, token, secret) == sorted(SAMPLE_GUESTS)
    refused(get(double, '/nodes/pve1/qemu/100/agent/network-get-interfaces', token, secret), AGENT_DENIED % 100)
    # a stopped VM or one without an agent is refused the same way: the check comes first
    refused(get(double, '/nodes/pve2/qemu/103/agent/network-get-interfaces', token, secret), AGENT_DENIED % 103)
    # the lxc interfaces call needs VM.Audit only
    assert data(double, '/nodes/pve1/lxc/200/interfaces', token, secret)[1]['inet'] == '10.10.0.70/24'
    for privs in (['VM.GuestAgent.Audit'], ['VM.GuestAgent.Unrestricted']):  # either one suffices (check_any)
        agent, agent_secret = privsep_token(double, privs[0].rsplit('.', maxsplit=1)[-1].lower(), privs)
        result = data(double, '/nodes/pve1/qemu/100/agent/network-get-interfaces', agent, agent_secret)['result']
        assert '10.10.0.50' in [a['ip-address'] for i in result for a in i['ip-addresses']]
        assert vmids(double, agent, agent_secret) == []  # but without VM.Audit it lists nothing


def test_pve8_checks_vm_monitor_for_the_agent_and_knows_no_guest_agent_privileges(double):
    double.cluster.pve_major = 8
    assert data(double, '/version')['release'].startswith('8.')
    auditor, auditor_secret = privsep_token(double, 'auditor', 'PVEAuditor')
    refused(get(double, '/nodes/pve1/qemu/100/agent/network-get-interfaces', auditor, auditor_secret),
            'Permission check failed (/vms/100, VM.Monitor)')
    monitor, monitor_secret = privsep_token(double, 'monitor', ['VM.Audit', 'VM.Monitor'])
    assert data(double, '/nodes/pve1/qemu/100/agent/network-get-interfaces', monitor, monitor_secret)['result']
    with pytest.raises(ValueError, match="invalid privilege 'VM.GuestAgent.Audit'"):
        double.add_role('Agent', ['VM.GuestAgent.Audit'])
    assert 'VM.GuestAgent.Audit' not in builtin_roles(8)['PVEAuditor']
    assert 'VM.GuestAgent.Audit' in builtin_roles(9)['PVEAuditor'] and 'VM.Monitor' not in builtin_roles(9)['Administrator']


def test_an_acl_reaches_below_its_path_only_when_propagated(double):
    double.add_token('prop@pve', 'flat', privsep=False)
    double.add_acl('/vms', 'PVEAuditor', users=['prop@pve'], propagate=False)
    secret = double.cluster.token('prop@pve!flat').secret
    assert vmids(double, 'prop@pve!flat', secret) == []
    assert double.permissions('prop@pve!flat', '/vms') == sorted(builtin_roles(9)['PVEAuditor'])
    double.add_acl('/vms', 'PVEAuditor', users=['prop@pve'], propagate=True)
    assert vmids(double, 'prop@pve!flat', secret) == sorted(SAMPLE_GUESTS)  # the next request sees the change
    # Sys.Audit on / without propagation: /cluster/status (checks /) answers, the nodes' figures (/nodes/N) stay hidden
    token, sys_secret = privsep_token(double, 'sys', ['Sys.Audit'], propagate=False)
    assert data(double, '/cluster/status', token, sys_secret)[0]['type'] == 'cluster'
    assert all('maxcpu' not in n for n in data(double, '/nodes', token, sys_secret))
    other, other_secret = privsep_token(double, 'nosys', ['VM.Audit'])
    refused(get(double, '/cluster/status', other, other_secret), 'Permission check failed (/, Sys.Audit)')


def test_the_most_specific_acl_wins_and_noaccess_takes_everything(double):
    token, secret = privsep_token(double, 'most', 'PVEAuditor')
    double.add_acl('/vms/101', 'NoAccess', tokens=[token], propagate=False)
    assert 101 not in vmids(double, token, secret) and 100 in vmids(double, token, secret)
    refused(get(double, '/nodes/pve1/qemu/101/status/current', token, secret),
            'Permission check failed (/vms/101, VM.Audit)')
    # a deeper ACL replaces the roles from above instead of adding to them (103 is in no pool: a pool's
    # roles, / propagated included, would add to the guest's, as in PVE)
    double.add_acl('/vms/103', 'PVETemplateUser', users=['most@pve'], tokens=[token], propagate=False)
    assert double.permissions(token, '/vms/103') == ['VM.Audit', 'VM.Clone']
    assert 'VM.Clone' not in double.permissions(token, '/vms/100')
    double.add_acl('/vms/102', 'PVETemplateUser', users=['most@pve'], tokens=[token], propagate=False)
    assert 'Sys.Audit' in double.permissions(token, '/vms/102')  # 102 is in pool prod, which / reaches


def test_a_privsep_token_is_intersected_with_its_user(double):
    double.add_user('split@pve', acls=[('/vms/100', 'PVEAuditor', False), ('/vms/101', 'PVEAuditor', False)])
    wide = double.add_token('split@pve', 'wide', privsep=True, acls=[('/', 'Administrator', True)])
    bare = double.add_token('split@pve', 'bare', privsep=True)
    shared = double.add_token('split@pve', 'shared', privsep=False, acls=[('/', 'Administrator', True)])
    assert vmids(double, 'split@pve!wide', wide) == [100, 101]  # never more than its user
    assert vmids(double, 'split@pve!bare', bare) == []  # privilege separation without its own ACLs: nothing
    assert vmids(double, 'split@pve!shared', shared) == [100, 101]  # no separation: the user's, its own ACLs ignored
    assert double.permissions('split@pve!wide', '/vms/100') == sorted(builtin_roles(9)['PVEAuditor'])
    # root's privilege-separated token has exactly its own ACLs
    secret = double.add_token('root@pam', 'scoped', privsep=True, acls=[('/vms/200', ['VM.Audit'], False)])
    assert vmids(double, 'root@pam!scoped', secret) == [200]


def test_a_pool_acl_grants_its_guests(double):
    token, secret = privsep_token(double, 'pool', 'PVEAuditor', path='/pool/dev', propagate=False)
    assert vmids(double, token, secret) == [110, 111, 201]
    assert [p['poolid'] for p in data(double, '/pools', token, secret)] == ['dev']
    assert data(double, '/pools', token, secret, poolid='prod') == []
    assert sorted(m['vmid'] for m in data(double, '/pools', token, secret, poolid='dev')[0]['members']) == [110, 111, 201]
    refused(get(double, '/pools/prod', token, secret), 'Permission check failed (/pool/prod, Pool.Audit)')
    assert data(double, '/nodes/pve2/qemu/110/agent/network-get-interfaces', token, secret)['result']  # PVEAuditor, PVE 9
    double.add_acl('/pool/dev', 'NoAccess', tokens=[token], propagate=False)  # a pool's NoAccess wins
    assert vmids(double, token, secret) == []


def test_storage_listings_and_checks(double):
    token, secret = privsep_token(double, 'lvm', ['Datastore.Audit'], path='/storage/local-lvm', propagate=False)
    assert [s['storage'] for s in data(double, '/storage', token, secret)] == ['local-lvm']
    assert [s['storage'] for s in data(double, '/nodes/pve1/storage', token, secret)] == ['local-lvm']
    assert {r['storage'] for r in data(double, '/cluster/resources', token, secret, type='storage')} == {'local-lvm'}
    assert data(double, '/nodes/pve1/storage/local-lvm/status', token, secret)['total'] > 0
    refused(get(double, '/nodes/pve1/storage/ssd-pool/status', token, secret),
            'Permission check failed (/storage/ssd-pool, Datastore.Audit|Datastore.AllocateSpace)')
    refused(get(double, '/storage/local-lvm', token, secret),  # the storage's configuration needs Datastore.Allocate
            'Permission check failed (/storage/local-lvm, Datastore.Allocate)')
    space, space_secret = privsep_token(double, 'space', ['Datastore.AllocateSpace'])
    assert len(data(double, '/storage', space, space_secret)) == 5  # Audit or AllocateSpace
    assert data(double, '/cluster/resources', space, space_secret, type='storage') == []  # Audit only


def test_writes_need_their_privilege(double):
    token, secret = privsep_token(double, 'viewer', 'PVEAuditor')
    r = requests.post(double.api_url + '/nodes/pve3/qemu/111/status/start', headers=double.auth_header(token, secret),
                      verify=double.ca_path, timeout=10)
    refused(r, 'Permission check failed (/vms/111, VM.PowerMgmt)')
    assert double.cluster.guest(111).status == 'stopped'
    power, power_secret = privsep_token(double, 'power', 'PVEVMUser')
    r = requests.post(double.api_url + '/nodes/pve3/qemu/111/status/start',
                      headers=double.auth_header(power, power_secret), verify=double.ca_path, timeout=10)
    assert r.status_code == 200 and double.cluster.guest(111).status == 'running'


def test_a_user_with_a_ticket_gets_its_acls(double):
    password = double.add_user('alice@pve', acls=[('/pool/prod', 'PVEVMUser', False)])
    login = requests.post(double.api_url + '/access/ticket', data={'username': 'alice@pve', 'password': password},
                          verify=double.ca_path, timeout=10).json()['data']
    r = requests.get(double.api_url + '/cluster/resources', params={'type': 'vm'}, verify=double.ca_path,
                     cookies={'PVEAuthCookie': login['ticket']}, timeout=10)
    assert sorted(g['vmid'] for g in r.json()['data']) == [100, 101, 102, 200]


def test_the_scenario_file_defines_users_tokens_roles_and_acls():
    cluster = load_scenario(ROOT / 'tests' / 'pve_double' / 'scenarios' / 'least_privilege.yml')
    with DoubleServer(cluster) as d:
        assert d.token_id == 'root@pam!automation' and vmids(d, None) == [100, 101, 110, 120, 200]
        secrets = dict((t.full_id, t.secret) for t in cluster.tokens)
        assert all(secrets.values()) and len(set(secrets.values())) == len(secrets)  # random, one per token
        inv = 'inventory@pve!inv'
        assert vmids(d, inv, secrets[inv]) == [100, 101, 110, 120, 200]
        assert data(d, '/nodes/pve2/qemu/110/agent/network-get-interfaces', inv, secrets[inv])['result']
        assert data(d, '/storage', inv, secrets[inv]) == []
        listing = 'listing@pve!list'
        refused(get(d, '/nodes/pve2/qemu/110/agent/network-get-interfaces', listing, secrets[listing]),
                AGENT_DENIED % 110)
        ds = 'storage@pve!ds'
        assert vmids(d, ds, secrets[ds]) == [] and len(data(d, '/storage', ds, secrets[ds])) == 3
        dev = 'dev@pve!dev'
        assert vmids(d, dev, secrets[dev]) == [110, 120]
        assert control(d, 'GET', '/access').json()['roles'] == {
            'Datastores': ['Datastore.Audit'], 'Inventory': ['VM.Audit', 'VM.GuestAgent.Audit'], 'Listing': ['VM.Audit']}


@pytest.mark.parametrize('auth, error', [
    ({'roles': [{'roleid': 'Old', 'privs': ['VM.Monitor']}]}, "auth.roles[0]: invalid privilege 'VM.Monitor'"),
    ({'acls': [{'path': '/', 'roles': ['Nope'], 'users': ['root@pam']}]}, "role 'Nope' does not exist"),
    ({'acls': [{'path': '/vms/abc', 'roles': ['PVEAuditor'], 'users': ['root@pam']}]}, "invalid ACL path '/vms/abc'"),
    ({'acls': [{'path': '/', 'roles': ['PVEAuditor'], 'tokens': ['root@pam!nope']}]},
     "token 'root@pam!nope' does not exist"),
    ({'acls': [{'path': '/', 'roles': ['PVEAuditor']}]}, 'auth.acls[0]: name the users or tokens'),
    ({'acls': [{'path': '/', 'roles': ['PVEAuditor'], 'users': ['root@pam'], 'propgate': 0}]},
     'auth.acls[0]: unknown field(s) propgate'),
    ({'users': [{'userid': 'root@pam'}], 'tokens': [{'userid': 'who@pve', 'tokenid': 'ci'}]},
     'auth.tokens[0].userid: no user who@pve'),
    ({'groups': [{'groupid': 'admins'}]}, 'unknown auth key(s) groups'),
])
def test_scenario_access_errors_name_the_entry(auth, error):
    with pytest.raises(ValueError) as info:
        load_scenario({'nodes': [{'node': 'pve1'}], 'auth': auth})
    assert error in str(info.value)


def test_control_api_makes_tokens_roles_and_acls(double):
    r = control(double, 'POST', '/tokens', {'userid': 'ci@pve', 'tokenid': 'ci', 'privsep': True,
                                            'acls': [['/', ['VM.Audit'], True]], 'user_acls': [['/', 'PVEAuditor']]})
    assert r.status_code == 200, r.text
    token = r.json()
    assert token['tokenid'] == 'ci@pve!ci' and re.fullmatch(r'[0-9a-f-]{36}', token['secret'])
    assert vmids(double, token['tokenid'], token['secret']) == sorted(SAMPLE_GUESTS)
    refused(get(double, '/nodes/pve1/qemu/100/agent/network-get-interfaces', token['tokenid'], token['secret']),
            AGENT_DENIED % 100)
    assert control(double, 'POST', '/roles', {'roleid': 'Agent', 'privs': ['VM.GuestAgent.Audit']}).status_code == 200
    for who in ({'tokens': ['ci@pve!ci']}, {'users': ['ci@pve']}):
        r = control(double, 'POST', '/acls', dict(path='/vms/103', roles=['Agent'], propagate=False, **who))
        assert r.status_code == 200, r.text
    r = control(double, 'POST', '/permissions', {'identity': 'ci@pve!ci', 'path': '/vms/103'})
    assert r.json()['privs'] == ['VM.GuestAgent.Audit']  # the deeper ACL replaces the one from / (103: in no pool)
    r = get(double, '/nodes/pve2/qemu/103/agent/network-get-interfaces', token['tokenid'], token['secret'])
    assert (r.status_code, r.reason) == (500, 'QEMU guest agent is not running')  # allowed: the agent answers
    refused(get(double, '/nodes/pve2/qemu/103/config', token['tokenid'], token['secret']),
            'Permission check failed (/vms/103, VM.Audit)')
    user = control(double, 'POST', '/users', {'userid': 'bob@pve', 'acls': [{'path': '/', 'roles': 'PVEAuditor'}]})
    assert user.status_code == 200 and user.json()['password']
    access = control(double, 'GET', '/access').json()
    assert {'tokenid': 'ci@pve!ci', 'privsep': 1} in access['tokens'] and 'bob@pve' in access['users']
    assert 'secret' not in json.dumps(access) and token['secret'] not in json.dumps(access)
    for bad in ({'userid': 'ci@pve', 'tokenid': 'ci'},  # exists already
                {'userid': 'x@pve', 'tokenid': 'xy', 'acls': [['/', 'NoSuchRole', True]]},
                {'userid': 'x@pve', 'tokenid': 'xz', 'bogus': 1}):
        assert control(double, 'POST', '/tokens', bad).status_code == 400
    assert control(double, 'POST', '/roles', {'roleid': 'Old', 'privs': ['VM.Monitor']}).json() == {
        'error': "invalid privilege 'VM.Monitor'"}


def test_restricted_answers_still_match_the_official_schema(double):
    sys.path.insert(0, str(ROOT / 'tests' / 'integration'))
    try:
        from test_pve_double import _OPEN_PATHS, SCHEMA_PATH, pve_to_jsonschema
    finally:
        sys.path.remove(str(ROOT / 'tests' / 'integration'))
    schema = json.loads(SCHEMA_PATH.read_text())
    token, secret = privsep_token(double, 'mixed', ['VM.Audit', 'Pool.Audit'], path='/pool/dev', propagate=False)
    double.add_acl('/storage/local', ['Datastore.Audit'], users=['mixed@pve'], tokens=[token], propagate=False)
    for template, path, params in (('/cluster/resources', '/cluster/resources', {}),
                                   ('/cluster/resources', '/cluster/resources', {'type': 'node'}),
                                   ('/nodes', '/nodes', {}), ('/pools', '/pools', {}),
                                   ('/pools', '/pools', {'poolid': 'dev'}),
                                   ('/nodes/{node}/qemu', '/nodes/pve2/qemu', {}),
                                   ('/nodes/{node}/storage', '/nodes/pve1/storage', {})):
        answer = data(double, path, token, secret, **params)
        assert answer, path
        closed = template not in _OPEN_PATHS  # as the schema test: /nodes items carry id and type too
        validator = jsonschema.Draft202012Validator(pve_to_jsonschema(schema[template]['GET']['returns'], closed))
        errors = list(validator.iter_errors(answer))
        assert not errors, (path, errors[0].message)


# -- the collection with least-privilege tokens ---------------------------------------------------------

@pytest.fixture
def build(parse_inventory):
    """Parse a plugin config in-process; returns (hostvars, warnings)."""
    def _build(config):
        inventory, warnings = parse_inventory(config)
        return dict((name, dict(host.vars)) for name, host in inventory.hosts.items()), warnings
    return _build


@pytest.fixture
def config(tmp_path, double, state_db, tfvars):
    """A plugin config for the sample double and a token; keyword arguments add options."""
    def _config(token_id, secret, **options):
        opts = dict(token_options(double, token_id, secret), plugin=PLUGIN, state_db=state_db, tfvars_path=str(tfvars))
        opts.update(options)
        path = tmp_path / 'least.proxmox.yml'
        path.write_text(yaml.safe_dump(opts, sort_keys=False))
        return path
    return _config


@pytest.mark.parametrize('grant', [['VM.Audit', 'VM.GuestAgent.Audit'], 'PVEAuditor'], ids=['custom role', 'PVEAuditor'])
def test_inventory_with_a_least_privilege_token_lists_every_guest_with_its_ips(double, build, config, tfvars, grant):
    from ansible_collections.proxmox_manager.core.plugins.module_utils.merged_view import declared_ips
    # a running container without a declared IP: its address comes from the lxc interfaces call (VM.Audit)
    double.cluster.add_guest(vmid=210, name='cache-ct', type='lxc', node='pve2', status='running',
                             ips=['10.10.0.80/24'])
    token, secret = privsep_token(double, 'inventory', grant)
    double.reset_counters()
    hostvars, warnings = build(config(token, secret))
    assert set(hostvars) == SAMPLE_HOSTS | {'cache-ct'}
    by_vmid = dict((v['pve_vmid'], host) for host, v in hostvars.items() if 'pve_vmid' in v)
    declared = json.loads(tfvars.read_text())['servers']
    looked_up = [g for g in double.cluster.guests
                 if not g.template and g.status == 'running' and not declared_ips(declared.get(g.name))]
    assert {g.type for g in looked_up if g.ips} == {'qemu', 'lxc'}  # both lookups are exercised
    for g in looked_up:
        assert hostvars[by_vmid[g.vmid]].get('pve_ips', []) == [ip.split('/')[0] for ip in g.ips], g.name
    assert hostvars['worker-110']['ansible_host'] == '10.10.0.60' and hostvars['cache-ct']['ansible_host'] == '10.10.0.80'
    assert not [w for w in warnings if 'VM.GuestAgent' in w or 'Permission' in w], warnings
    calls = double.counters()['by_path']
    assert calls.get(AGENT) and calls.get(LXC_IFACES)


def test_inventory_with_a_token_that_may_list_but_not_ask_agents(double, build, config):
    # behaviour of issue 15 part 2: list every guest, skip the agent lookups, warn once naming the missing
    # privilege and want_agent_ips: false
    token, secret = privsep_token(double, 'listing', ['VM.Audit'])
    hostvars, warnings = build(config(token, secret))
    assert set(hostvars) == SAMPLE_HOSTS
    assert not [host for host, v in hostvars.items() if 'pve_ips' in v]
    about_agents = [w for w in warnings if 'VM.GuestAgent.Audit' in w]
    assert len(about_agents) == 1 and 'want_agent_ips' in about_agents[0], warnings


def test_datastore_refresh_with_datastore_audit(double, state_db, tmp_path):
    token, secret = privsep_token(double, 'storage', ['Datastore.Audit'])
    result = run_module('datastore_refresh', dict(token_options(double, token, secret), state_db=state_db))
    full = run_module('datastore_refresh', dict(token_options(double, double.token_id, double.token_secret),
                                                state_db=str(tmp_path / 'root.db')))
    assert result['count'] == 5 and result['datastores'] == full['datastores']
    assert {d['id'] for d in result['datastores']} == {'local', 'local-lvm', 'HDD-Storage', 'ssd-pool', 'nfs-backup'}
    assert all(d['size'] > 0 for d in result['datastores'])


# What docs/permissions.md says each module needs (state_backup needs no token at all).
MODULE_PRIVILEGES = {
    'server_role': ['VM.Audit'],
    'server_sync': ['VM.Audit'],
    'server_drift': ['VM.Audit'],
    'declarations_validate': ['VM.Audit', 'Datastore.Audit'],
    'datastore_refresh': ['Datastore.Audit'],
    'datastore_default': ['Datastore.Audit'],
    'datastore_info': ['Datastore.Audit'],
}


def _module_args(module, directory, tfvars):
    state = ROOT / 'state'
    args = dict(state_db=str(directory / 'proxmox_manager.db'), tfvars_path=str(tfvars))
    args.update({
        'server_role': dict(name='AI-agent', role='web', roles_path=str(ROOT / 'roles')),
        'server_sync': {},
        'server_drift': dict(roles_file=str(state / 'roles.yml')),
        'declarations_validate': dict(roles_file=str(state / 'roles.yml'), datastores_file=str(state / 'datastores.yml'),
                                      roles_path=str(ROOT / 'roles')),
        'datastore_refresh': {},
        'datastore_default': dict(hdd='HDD-Storage', ssd='ssd-pool',
                                  terraform_vars_file=str(directory / 'datastores.auto.tfvars.json')),
        'datastore_info': {},
    }[module])
    return args


@pytest.mark.parametrize('module', sorted(MODULE_PRIVILEGES))
def test_each_module_works_with_its_documented_privileges(double, tmp_path, tfvars, module):
    token, secret = privsep_token(double, 'mod', MODULE_PRIVILEGES[module])
    (tmp_path / 'least').mkdir()
    (tmp_path / 'root').mkdir()
    args = _module_args(module, tmp_path / 'least', tfvars)
    least = run_module(module, dict(token_options(double, token, secret), **args))
    full = run_module(module, dict(token_options(double, double.token_id, double.token_secret),
                                   **_module_args(module, tmp_path / 'root', tfvars)))

    def same(result, directory):
        return json.loads(json.dumps(result, default=str).replace(str(directory), 'DIR'))

    assert same(least, tmp_path / 'least') == same(full, tmp_path / 'root')
    assert 'Permission check failed' not in json.dumps(least)


def test_every_documented_role_line_is_valid_for_its_pve_version():
    """docs/permissions.md's `pveum role add` lines name only privileges the PVE version has."""
    text = (ROOT / 'docs' / 'permissions.md').read_text()
    lines = re.findall(r'pveum role add ([A-Za-z][\w.\-]*) --?privs "([^"]+)"(?:\s*#\s*PVE (\d))?', text)
    assert len(lines) >= 4
    for roleid, privs, major in lines:
        for version in ([int(major)] if major else [8, 9]):
            cluster = generate_cluster(nodes=1, guests=1)
            cluster.pve_major = version
            cluster.add_role(roleid, privs.split())  # raises on a privilege the version lacks
    documented = dict((roleid, set(privs.split())) for roleid, privs, _major in lines)
    for module, privs in MODULE_PRIVILEGES.items():
        assert any(set(privs) <= granted for granted in documented.values()), module


def test_an_unnamed_cluster_needs_sys_audit_and_the_error_says_how_to_do_without(double, state_db, tfvars, tmp_path):
    """GET /cluster/status tells an unnamed cluster's name; a token without Sys.Audit on / is told to name it."""
    token, secret = privsep_token(double, 'noname', ['VM.Audit'])
    args = dict(token_options(double, token, secret), cluster=None, state_db=state_db, tfvars_path=str(tfvars),
                name='AI-agent', role='web', roles_path=str(ROOT / 'roles'))
    with pytest.raises(ModuleFailed) as err:
        run_module('server_role', args)
    msg = err.value.result['msg']
    assert 'Sys.Audit' in msg and 'name the cluster with the cluster option (PROXMOX_CLUSTER)' in msg, msg
    assert created_nothing(state_db)
    token, secret = privsep_token(double, 'named', ['VM.Audit', 'Sys.Audit'])
    result = run_module('server_role', dict(args, **token_options(double, token, secret, cluster=None)))
    assert result['changed'] and ss.StateStore(state_db).servers()[0]['cluster'] == 'demo'
