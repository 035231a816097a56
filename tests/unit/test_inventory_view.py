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
