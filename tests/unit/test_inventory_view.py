"""The inventory's host rules as plain data: ansible_host, host names, hostvars."""

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import merged_view as mv
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import ConfigurationError
from ansible_collections.proxmox_manager.core.plugins.plugin_utils import inventory_view as iv


def record(ips, declared=None):
    return mv.ServerRecord(host='web', name='web', vmid=100, source=mv.LIVE_ONLY, ips=ips, declared=declared)


def test_ansible_host_prefers_the_given_networks_but_never_over_a_declared_ip():
    preferred = iv.networks(['10.0.0.0/8', '192.168.10.0/24'])
    assert iv.ansible_host(record(['172.17.5.2', '10.1.2.3']), preferred) == '10.1.2.3'
    assert iv.ansible_host(record(['172.17.5.2', '10.1.2.3'])) == '172.17.5.2'  # no preference: the first
    assert iv.ansible_host(record(['172.17.5.2']), preferred) == '172.17.5.2'  # none in them: the first
    declared = {'name': 'web', 'network_devices': [{'bridge': 'vmbr0', 'ip_address': '10.9.9.9/24'}]}
    assert iv.ansible_host(record(['10.1.2.3'], declared), preferred) == '10.9.9.9'
    assert iv.host_vars(record(['172.17.5.2', '10.1.2.3']), iv.LIVE, None, preferred=preferred)['ansible_host'] \
        == '10.1.2.3'


def test_a_network_that_is_no_network_is_a_configuration_error():
    with pytest.raises(ConfigurationError) as info:
        iv.networks(['10.0.0.0/8', 'lan'])
    assert 'ansible_host_networks' in str(info.value) and 'lan' in str(info.value)


def test_a_name_no_host_pattern_can_target_gets_a_host_name_and_keeps_its_name():
    view = mv.build_view([dict(vmid=200, name='VM 200', node='pve1', type='qemu', status='stopped'),
                          dict(vmid=201, name='db:01/a', node='pve1', type='qemu', status='stopped')], {})
    assert sorted(r.host for r in view) == ['VM-200', 'db-01-a']
    hostvars = iv.host_vars(view.by_host['VM-200'], iv.LIVE, None)
    assert hostvars['pve_name'] == 'VM 200' and hostvars['pve_vmid'] == 200
    assert view.resolve('VM 200').vmid == 200 and view.resolve('VM-200').vmid == 200


# -- several clusters (issue 17) ---------------------------------------------------------------------------------


def test_the_applied_role_is_the_one_of_the_records_cluster():
    roles = {('demo', 101): 'web', ('lab', 101): 'db', ('demo', 'planned'): 'was'}
    demo = mv.ServerRecord(host='web-01', name='web-01', cluster='demo', vmid=101, source=mv.LIVE_ONLY)
    lab = mv.ServerRecord(host='web-01', name='web-01', cluster='lab', vmid=101, source=mv.LIVE_ONLY)
    planned = mv.ServerRecord(host='planned', name='planned', cluster='demo', source=mv.DECLARED_ONLY)
    other = mv.ServerRecord(host='planned', name='planned', cluster='lab', source=mv.DECLARED_ONLY)
    assert [iv.applied_role(r, roles) for r in (demo, lab, planned, other)] == ['web', 'db', 'was', None]


def test_every_host_carries_its_cluster_as_a_variable_and_a_group():
    view = mv.combine([mv.build_view([dict(vmid=101, name='web-01', node='pve1', type='qemu', status='running')], {},
                                     cluster=name) for name in ('demo', 'lab')])
    for host, cluster in (('web-01.demo', 'demo'), ('web-01.lab', 'lab')):
        record = view.by_host[host]
        hostvars = iv.host_vars(record, iv.LIVE, None)
        assert hostvars['pve_cluster'] == cluster and hostvars['pve_name'] == 'web-01'
        assert 'cluster_%s' % cluster in iv.host_groups(record, None)


def test_without_a_mapping_the_plugins_own_options_are_the_one_cluster():
    options = dict(api_host='pve1', api_port=8006, cluster=None, tfvars_path=None, clusters=None, project_dir='/r')
    assert iv.clusters_of(options, {}) == [options]


def test_a_clusters_option_comes_from_the_entry_then_its_variable_then_the_top_level():
    options = dict(api_host='pve-top', api_port=8006, api_user='automation@pve', api_token_id='inv',
                   api_token_secret='top-secret', api_timeout=30, api_retries=2, tfvars_path=None, project_dir='/r',
                   clusters=dict(prod=dict(api_host='pve-prod', api_token_secret='entry-secret'), lab=None))
    environ = dict(PROXMOX_PROD_TOKEN_SECRET='prod-secret', PROXMOX_LAB_TOKEN_SECRET='lab-secret',
                   PROXMOX_LAB_PORT='8007')
    prod, lab = iv.clusters_of(options, environ)
    assert (prod['cluster'], prod['api_host'], prod['api_token_secret'], prod['api_port']) == (
        'prod', 'pve-prod', 'entry-secret', 8006)
    assert (lab['cluster'], lab['api_host'], lab['api_token_secret'], lab['api_port']) == (
        'lab', 'pve-top', 'lab-secret', 8007)
    assert lab['api_user'] == 'automation@pve' and lab['api_retries'] == 2
    assert lab['tfvars_path'] == 'terraform/lab/terraform.tfvars.json'


@pytest.mark.parametrize('mapping, expected', [
    ({}, 'clusters must map each cluster'),
    ({'1prod': {}}, 'is not 1 to 63 letters'),
    ({'prod': {'api_hots': 'x'}}, "clusters.prod: unknown option 'api_hots'"),
    ({'prod': ['pve-prod']}, 'clusters.prod: must be a mapping of options'),
    ({'lab-a': {}, 'LAB_A': {}}, 'would share the variables PROXMOX_LAB_A_*'),
    ({'prod': {'tfvars_path': 'terraform/x.json'}, 'lab': {'tfvars_path': '/r/terraform/x.json'}},
     'The clusters prod and lab read the same tfvars file /r/terraform/x.json'),
])
def test_a_malformed_clusters_mapping_is_a_configuration_error(mapping, expected):
    with pytest.raises(ConfigurationError) as info:
        iv.clusters_of(dict(clusters=mapping, project_dir='/r'), {})
    assert expected in str(info.value)
