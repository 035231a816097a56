"""The inventory plugin populated from a RECORDED Proxmox answer, without any HTTP.

fixtures/cluster_resources_sample.json is GET /api2/json/cluster/resources?type=vm as the
API double answered it for its sample cluster (tests/pve_double/scenarios/sample.yml).
"""

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.proxmox_manager.core.plugins.module_utils import proxmox_client
from ansible_collections.proxmox_manager.core.plugins.module_utils.state_store import StateStore
from tests.conftest import declared_vars

RECORDED = Path(__file__).resolve().parent / 'fixtures' / 'cluster_resources_sample.json'
# What the guest agent / interfaces calls of those guests answered (103 has its agent off).
RECORDED_IPS = {101: ['10.10.0.51'], 102: ['10.10.0.52'], 103: [], 110: ['10.10.0.60'], 200: ['10.10.0.70']}
DECLARED = {
    'AI-agent': dict(name='AI-agent', role='web', cpu=8, memory=16384,
                     network_devices=[dict(bridge='vmbr0', ip_address='10.10.0.50', subnet=24)]),
    'search-ct': dict(name='search-ct', role='search',
                      network_devices=[dict(bridge='vmbr0', ip_address='10.10.0.71/24')]),
    'worker': dict(name='worker', role='was', network_devices=[dict(bridge='vmbr0', ip_address='dhcp')]),
    'web-02': dict(name='web-02', role='web', network_devices=[dict(bridge='vmbr0', ip_address='10.10.0.54')]),
}


@pytest.fixture(scope='module')
def recorded():
    return json.loads(RECORDED.read_text())['data']


@pytest.fixture
def asked(monkeypatch, recorded):
    """Replay the recording; no HTTP at all (a connection attempt fails the test). Lists the vmids asked."""
    asked = []

    def no_http(self):
        raise AssertionError('the recorded test must not connect')

    def cluster_resources(self, kind):
        assert kind == 'vm'
        return json.loads(json.dumps(recorded))

    def guests_ips(self, guests, max_workers=None):
        asked.extend(g['vmid'] for g in guests)
        return dict((g['vmid'], RECORDED_IPS[g['vmid']] or None) for g in guests)  # 103: agent off

    monkeypatch.setattr(proxmox_client.ProxmoxClient, '_connect', no_http)
    monkeypatch.setattr(proxmox_client.ProxmoxClient, 'cluster_name', lambda self: 'demo')  # GET /cluster/status
    monkeypatch.setattr(proxmox_client.ProxmoxClient, 'cluster_resources', cluster_resources)
    monkeypatch.setattr(proxmox_client.ProxmoxClient, 'guests_ips', guests_ips)
    return asked


@pytest.fixture
def populate(tmp_path, inventory_loader, monkeypatch, asked):
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader

    tfvars = tmp_path / 'terraform.tfvars.json'
    tfvars.write_text(json.dumps({'servers': DECLARED}))
    state_db = str(tmp_path / 'state.db')
    store = StateStore(state_db)  # an existing state DB, as the modules make it: the inventory records into it
    with store.writing():
        pass
    store.close()

    def _populate(**options):
        config = tmp_path / 'recorded.proxmox.yml'
        settings = dict(plugin='proxmox_manager.core.proxmox', api_host='pve.invalid', api_user='root@pam',
                        api_token_id='automation', api_token_secret='recorded-secret', tfvars_path=str(tfvars),
                        state_db=state_db)
        settings.update(options)
        config.write_text(yaml.safe_dump(settings))
        plugin = inventory_loader.get('proxmox_manager.core.proxmox')
        warnings = []
        monkeypatch.setattr(plugin.display, 'warning', lambda msg, *a, **kw: warnings.append(msg))
        inventory = InventoryData()
        plugin.parse(inventory, DataLoader(), str(config), cache=False)
        groups = dict((name, sorted(h.name for h in g.hosts)) for name, g in inventory.groups.items())
        hostvars = dict((name, dict(h.vars)) for name, h in inventory.hosts.items())
        return hostvars, groups, warnings

    _populate.state_db = state_db
    return _populate


def host_of(guest, recorded):
    same = [g for g in recorded if g['name'] == guest['name'] and not g['template']]
    return guest['name'] if len(same) == 1 else '%s-%s' % (guest['name'], guest['vmid'])


def test_recorded_guests_become_hosts_with_their_hostvars_and_groups(populate, recorded, asked):
    hostvars, groups, warnings = populate()
    live = [g for g in recorded if not g['template']]
    assert set(hostvars) == set(host_of(g, recorded) for g in live) | {'web-02'}

    for g in live:
        host = host_of(g, recorded)
        v = hostvars[host]
        tags = g['tags'].split(';') if g.get('tags') else []
        assert (v['pve_vmid'], v['pve_node'], v['pve_type'], v['pve_status']) == (
            g['vmid'], g['node'], g['type'], g['status'])
        assert v.get('pve_tags', []) == tags and v.get('pve_pool') == g.get('pool')
        assert v.get('pve_name') == (g['name'] if host != g['name'] else None)
        assert v['pve_source'] == ('live+declared' if g['name'] in DECLARED else 'live')
        assert v['pve_cluster'] == 'demo'  # the name /cluster/status gives
        expected = ['cluster_demo', 'node_' + g['node'], 'status_' + g['status'], 'type_' + g['type']]
        expected += ['tag_' + t for t in tags] + (['pool_' + g['pool']] if g.get('pool') else [])
        expected += [] if g['name'] in DECLARED else ['undeclared']
        assert sorted(n for n, hosts in groups.items() if host in hosts) == sorted(expected), host

    assert groups['declared_only'] == ['web-02'] and hostvars['web-02']['pve_source'] == 'declared'
    assert groups['cluster_demo'] == sorted(hostvars) and hostvars['web-02']['pve_cluster'] == 'demo'
    assert not [g for g in groups if g.startswith('role_')]  # no role applied yet
    assert any("share the name 'worker'" in w for w in warnings)


def test_ips_asked_only_of_running_guests_without_a_declared_ip(populate, asked):
    hostvars = populate()[0]
    assert sorted(asked) == sorted(RECORDED_IPS)
    assert hostvars['AI-agent']['ansible_host'] == '10.10.0.50'  # declared beats the agent
    assert hostvars['search-ct']['ansible_host'] == '10.10.0.71'  # CIDR suffix dropped
    assert hostvars['worker-110']['ansible_host'] == '10.10.0.60' and hostvars['worker-110']['pve_ips'] == ['10.10.0.60']
    assert hostvars['ftp-ct']['ansible_host'] == '10.10.0.70'
    assert 'ansible_host' not in hostvars['monitoring'] and 'pve_ips' not in hostvars['monitoring']
    assert 'ansible_host' not in hostvars['worker-111']  # stopped, declared with dhcp


def test_an_agent_found_off_is_not_asked_again_until_the_guest_restarts(populate, asked, recorded, monkeypatch):
    populate()
    assert 103 in asked  # its agent answered "not running"
    del asked[:]
    populate()
    assert sorted(asked) == sorted(set(RECORDED_IPS) - {103})
    for guest in recorded:
        if guest['vmid'] == 103:
            monkeypatch.setitem(guest, 'uptime', 1)  # restarted since: its agent may be on now
    del asked[:]
    populate()
    assert sorted(asked) == sorted(RECORDED_IPS)


def test_templates_on_request(populate):
    hostvars, groups = populate(include_templates=True, want_agent_ips=False)[:2]
    template = next(h for h, v in hostvars.items() if v['pve_vmid'] == 9000)
    assert template == 'debian12-tpl' and template in groups['tag_template']


def test_hostvars_are_lean_by_default_and_want_declared_adds_only_pve_declared(populate):
    lean, lean_groups = populate(want_agent_ips=False)[:2]
    full, full_groups = populate(want_agent_ips=False, want_declared=True)[:2]
    assert lean_groups == full_groups and set(lean) == set(full)
    for host, hv in lean.items():
        assert not [k for k, v in hv.items() if k.startswith(('pve_', 'ansible_host')) and v in (None, [])], host
        assert 'pve_declared' not in hv
        name = hv.get('pve_name', host)
        if name in DECLARED:
            assert full[host]['pve_declared'] == declared_vars(DECLARED[name])
        else:
            assert 'pve_declared' not in full[host]
        assert hv == dict((k, v) for k, v in full[host].items() if k != 'pve_declared'), host
    assert lean['AI-agent']['pve_declared_role'] == 'web' and lean['AI-agent']['ansible_host'] == '10.10.0.50'
    assert not {'pve_vmid', 'pve_node', 'pve_type', 'pve_status', 'pve_pool'} & set(lean['web-02'])


def test_applied_roles_from_the_state_db(populate):
    store = StateStore(populate.state_db)
    with store.writing() as conn:
        store.upsert_servers(conn, [dict(name='db-01', vmid=102, role='db'), dict(name='worker', vmid=111, role='was'),
                                    dict(name='web-02', role='web')], 'test', 'demo')
        # the same vmid in another cluster is another server: its role is not this one's
        store.upsert_servers(conn, [dict(name='AI-agent', vmid=100, role='db')], 'test', 'lab')
    hostvars, groups = populate(want_agent_ips=False)[:2]
    assert groups['role_db'] == ['db-01'] and groups['role_was'] == ['worker-111'] and groups['role_web'] == ['web-02']
    assert hostvars['worker-111']['pve_role'] == 'was' and 'pve_role' not in hostvars['worker-110']
    assert 'pve_role' not in hostvars['AI-agent'] and hostvars['AI-agent']['pve_declared_role'] == 'web'
