"""How the client reads what Proxmox answers: guests of a listing, interfaces of an agent."""

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import proxmox_client as pc
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import MALFORMED, ProxmoxApiError

WHERE = 'https://pve:8006/api2/json/cluster/resources?type=vm'


def guest(**extra):
    return dict(dict(vmid=100, name='web', node='pve1', type='qemu', status='running'), **extra)


def test_odd_types_are_coerced_by_one_rule():
    guests = pc._guests([guest(vmid='100', template='0', maxmem='2048'), guest(vmid=101, template=1),
                         guest(vmid=102, template='false', uptime=5)], WHERE)
    assert [g['vmid'] for g in guests] == [100, 101, 102]
    assert [g['template'] for g in guests] == [False, True, False]  # "0" is never true
    assert guests[0]['maxmem'] == 2048 and guests[2]['uptime'] == 5


@pytest.mark.parametrize('data, field', [
    (None, 'data'), ({'vmid': 100}, 'data'), (['x'], 'data[0]'),
    ([guest(vmid=None)], 'data[0].vmid'), ([dict(name='x', node='pve1', type='qemu')], 'data[0].vmid'),
    ([guest(vmid=1.5)], 'data[0].vmid'), ([guest(vmid=True)], 'data[0].vmid'), ([guest(vmid='1e3')], 'data[0].vmid'),
    ([guest(name=7)], 'data[0].name'), ([guest(maxmem='lots')], 'data[0].maxmem'), ([guest(node=None)], 'data[0].node'),
    ([guest(template='yes')], 'data[0].template'), ([guest(template=[1])], 'data[0].template'),
    ([guest(), guest(name='other')], 'data[1].vmid'),
])
def test_a_malformed_listing_names_the_endpoint_and_the_field(data, field):
    with pytest.raises(ProxmoxApiError) as info:
        pc._guests(data, WHERE)
    assert info.value.outage == MALFORMED
    assert str(info.value).startswith('Proxmox answered %s with a malformed answer: %s must be' % (WHERE, field))


def test_an_excerpt_of_a_huge_value_is_bounded():
    with pytest.raises(ProxmoxApiError) as info:
        pc._guests([guest(maxmem='x' * 1000000)], WHERE)
    assert len(str(info.value)) < 300 and str(info.value).endswith('....')  # the excerpt, then the full stop


def test_container_bridges_and_loopback_never_give_the_address():
    interfaces = [
        {'name': 'lo', 'ip-addresses': [{'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4'}]},
        {'name': 'docker0', 'ip-addresses': [{'ip-address': '172.17.0.1', 'ip-address-type': 'ipv4'}]},
        {'name': 'veth12ab', 'ip-addresses': [{'ip-address': '172.17.0.5', 'ip-address-type': 'ipv4'}]},
        {'name': 'br-5f2e', 'ip-addresses': [{'ip-address': '172.18.0.1', 'ip-address-type': 'ipv4'}]},
        {'name': 'eth0', 'ip-addresses': [{'ip-address': 'fe80::1', 'ip-address-type': 'ipv6'},
                                          {'ip-address': '10.0.0.5', 'ip-address-type': 'ipv4'}]},
        {'name': 'cni0', 'inet': '10.244.0.1/24'},
    ]
    assert pc._ips_from_interfaces(interfaces) == ['10.0.0.5']


@pytest.mark.parametrize('answer', [None, 'error', [None, 'x', {'name': 'eth0', 'ip-addresses': 'x'}],
                                    [{'name': 'eth0', 'ip-addresses': [None, {'ip-address': 5}], 'inet': 7}]])
def test_odd_interfaces_answers_give_no_address_and_no_error(answer):
    assert pc._ips_from_interfaces(answer) == []
