"""The merged view: live guests x tfvars declarations, as a pure function."""

import json

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import merged_view as mv
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import (
    DeclarationError,
    UnknownServerError,
)


def guest(vmid, name, node='pve1', kind='qemu', status='running', **extra):
    return dict(dict(id='%s/%s' % (kind, vmid), vmid=vmid, name=name, node=node, type=kind, status=status),
                **extra)


def declared(name, ip=None, **extra):
    entry = dict(name=name, role='web', cpu=2, memory=2048,
                 disks=[dict(size=20, interface='scsi0', datastore_id='local-lvm', disk_type='ssd')],
                 network_devices=[dict(bridge='vmbr0', ip_address=ip, subnet=24)] if ip else [])
    entry.update(extra)
    return entry


def test_live_and_declared_live_only_and_declared_only():
    view = mv.build_view(
        [guest(100, 'AI-agent'), guest(101, 'stray')],
        {'AI-agent': declared('AI-agent', '10.0.0.5'), 'planned': declared('planned', '10.0.0.9')})
    by_host = view.by_host
    assert by_host['AI-agent'].source == mv.LIVE_AND_DECLARED
    assert by_host['AI-agent'].ansible_host == '10.0.0.5'
    assert by_host['AI-agent'].declared_role == 'web'
    assert by_host['stray'].source == mv.LIVE_ONLY and by_host['stray'].declared is None
    assert by_host['planned'].source == mv.DECLARED_ONLY
    assert by_host['planned'].vmid is None and by_host['planned'].node is None
    assert [r.host for r in view] == ['AI-agent', 'planned', 'stray']


def test_duplicate_names_stay_two_records_with_a_warning():
    view = mv.build_view([guest(111, 'worker'), guest(110, 'worker', node='pve2')], {'worker': declared('worker')})
    assert sorted(view.by_host) == ['worker-110', 'worker-111']
    assert [r.vmid for r in view.by_name['worker']] == [110, 111]
    assert all(r.source == mv.LIVE_AND_DECLARED for r in view)
    assert 'worker-110' in view.warnings[0] and 'worker-111' in view.warnings[0]


def test_declaration_with_vm_id_binds_to_that_guest_only():
    view = mv.build_view([guest(110, 'worker'), guest(111, 'worker')], {'worker': declared('worker', vm_id=111)})
    assert view.by_host['worker-111'].source == mv.LIVE_AND_DECLARED
    assert view.by_host['worker-110'].source == mv.LIVE_ONLY


def test_templates_are_not_servers_unless_asked():
    guests = [guest(9000, 'tpl', template=1, status='stopped'), guest(100, 'a')]
    assert [r.host for r in mv.build_view(guests, {})] == ['a']
    assert [r.host for r in mv.build_view(guests, {}, include_templates=True)] == ['a', 'tpl']


def test_guest_on_offline_node_is_kept_with_its_reported_status():
    view = mv.build_view([guest(120, 'far', node='pve3', status='unknown')], {})
    assert view.by_host['far'].status == 'unknown' and view.by_host['far'].node == 'pve3'


def test_tags_lxc_pool_and_sizes():
    view = mv.build_view([guest(200, 'ct', kind='lxc', tags='web;prod', pool='prod', maxmem=2 ** 31, maxcpu=2)], {})
    record = view.by_host['ct']
    assert record.type == 'lxc' and record.tags == ['web', 'prod'] and record.pool == 'prod'
    assert record.maxmem == 2 ** 31


def test_host_name_collision_with_a_real_guest_is_kept_apart():
    view = mv.build_view([guest(110, 'w'), guest(111, 'w'), guest(112, 'w-110')], {})
    assert len(view) == 3 and len(view.by_host) == 3


def test_resolve_did_you_mean_and_ambiguity():
    view = mv.build_view([guest(100, 'AI-agent'), guest(110, 'worker'), guest(111, 'worker')], {})
    with pytest.raises(UnknownServerError) as err:
        view.resolve('AI-agnet')
    assert "Did you mean 'AI-agent'" in str(err.value)
    with pytest.raises(UnknownServerError) as err:
        view.resolve('worker')
    assert '110, 111' in str(err.value) and 'ambiguous' in str(err.value)
    assert view.resolve('worker', vmid=111).host == 'worker-111'
    assert view.resolve('worker-110').vmid == 110
    with pytest.raises(UnknownServerError, match='no guest with vmid 999'):
        view.resolve('worker', vmid=999)


def test_record_round_trip_through_json():
    view = mv.build_view([guest(100, 'a', tags='x')], {'a': declared('a', '10.0.0.1')})
    again = mv.ServerRecord.from_dict(json.loads(json.dumps(view.records[0].as_dict())))
    assert again.as_dict() == view.records[0].as_dict() and again.ansible_host == '10.0.0.1'


def write(tmp_path, data, raw=None):
    path = tmp_path / 'terraform.tfvars.json'
    path.write_text(raw if raw is not None else json.dumps(data))
    return str(path)


def test_load_tfvars_valid(tmp_path):
    path = write(tmp_path, {'servers': {'a': declared('a', '10.0.0.1/24')}, 'proxmox_node': 'pve1'})
    servers = mv.load_tfvars(path)
    assert list(servers) == ['a'] and mv.declared_ips(servers['a']) == ['10.0.0.1']


@pytest.mark.parametrize('data, field', [
    ({'servers': {'a': declared('a', disks=[{'size': 10, 'disk_type': 'floppy'}])}}, 'servers.a.disks[0].disk_type'),
    ({'servers': {'a': declared('a', cpu='two')}}, 'servers.a.cpu'),
    ({'servers': {'a': {'role': 'web'}}}, 'servers.a'),
    ({'hosts': {}}, '(top level)'),
])
def test_malformed_tfvars_names_file_and_field(tmp_path, data, field):
    path = write(tmp_path, data)
    with pytest.raises(DeclarationError) as err:
        mv.load_tfvars(path)
    assert path in str(err.value) and field in str(err.value)


def test_tfvars_key_must_equal_name(tmp_path):
    path = write(tmp_path, {'servers': {'a': declared('b')}})
    with pytest.raises(DeclarationError, match="servers.a.name: 'b' differs from its key 'a'"):
        mv.load_tfvars(path)


def test_tfvars_not_json_and_missing(tmp_path, monkeypatch):
    path = write(tmp_path, None, raw='{"servers": {')
    with pytest.raises(DeclarationError, match='is not valid JSON'):
        mv.load_tfvars(path)
    with pytest.raises(DeclarationError, match='does not exist'):
        mv.load_tfvars(str(tmp_path / 'nope.json'))
    # the default path missing means nothing declared yet
    monkeypatch.delenv(mv.TFVARS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert mv.load_tfvars() == {}
