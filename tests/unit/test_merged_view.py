"""The merged view: live guests x tfvars declarations, as a pure function."""

import json

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import merged_view as mv
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import (
    DeclarationError,
    ProxmoxApiError,
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


# -- "Never wrong in silence", part 8: files and names ---------------------------------


@pytest.mark.parametrize('raw, field', [
    ('{"servers": {"a": {"name": "a", "cpu": 2}, "a": {"name": "a", "cpu": 4}}}', 'servers.a'),
    ('{"servers": {"a": {"name": "a", "cpu": 2, "cpu": 4}}}', 'servers.a.cpu'),
    ('{"servers": {"a": {"name": "a", "disks": [{"size": 1, "size": 2}]}}}', 'servers.a.disks[0].size'),
    ('{"servers": {}, "servers": {"a": {"name": "a"}}}', 'servers'),
])
def test_tfvars_key_given_twice_is_refused_naming_file_and_key(tmp_path, raw, field):
    path = write(tmp_path, None, raw=raw)
    with pytest.raises(DeclarationError) as err:
        mv.load_tfvars(path)
    assert err.value.problems == ['%s: %s: the key is given twice in one object; JSON keeps only the last, so say '
                                  'it once.' % (path, field)]
    assert str(err.value) == '%s is not valid:\n  %s' % (path, err.value.problems[0])


def test_tfvars_nested_200000_levels_is_a_clear_error(tmp_path):
    path = write(tmp_path, None, raw='{"servers": {"a": {"name": "a", "x": %s%s}}}' % ('[' * 200000, ']' * 200000))
    with pytest.raises(DeclarationError) as err:
        mv.load_tfvars(path)
    assert str(err.value) == '%s is not valid: nested too deeply to be a tfvars file.' % path


def test_tfvars_nested_as_deep_as_json_allows_still_gets_a_clear_schema_error(tmp_path):
    """A deep value jsonschema would echo (servers must be an object) is no RecursionError either."""
    for depth in (900, 1200, 5000, 50000):
        path = write(tmp_path, None, raw='{"servers": %s%s}' % ('[' * depth, ']' * depth))
        with pytest.raises(DeclarationError) as err:
            mv.load_tfvars(path)
        assert path in str(err.value) and len(str(err.value)) < 1000


def test_did_you_mean_at_a_thousand_guests_gives_three_distinct_names_closest_first():
    view = mv.build_view([guest(vmid, 'guest-%d' % vmid) for vmid in range(100, 1100)], {})
    with pytest.raises(UnknownServerError) as err:
        view.resolve('guest-1o7')
    assert str(err.value).endswith("Did you mean 'guest-107' or 'guest-117' or 'guest-127'?")


def test_did_you_mean_lists_a_name_once_and_host_names_of_shared_names():
    view = mv.build_view([guest(100, 'alpha'), guest(110, 'worker'), guest(111, 'worker')], {})
    assert mv.close_matches('alpah', list(view.by_host) + list(view.by_name)) == ['alpha']
    assert mv.close_matches('workr', list(view.by_host) + list(view.by_name)) == [
        'worker', 'worker-110', 'worker-111']
    assert mv.close_matches('zzz', ['alpha']) == []


def test_a_template_is_named_as_a_template_not_as_missing():
    guests = [guest(9000, 'debian12-tpl', template=1, status='stopped'), guest(9001, 'debian12-tpl', template=1),
              guest(100, 'web-01')]
    view = mv.build_view(guests, {})
    assert [r.host for r in view] == ['web-01']  # still no server
    assert [r.vmid for r in view.templates['debian12-tpl']] == [9000, 9001]
    with pytest.raises(UnknownServerError) as err:
        view.resolve('debian12-tpl')
    assert str(err.value).startswith("'debian12-tpl' is a template (vmid 9000, 9001), not a server")
    assert 'does not exist' not in str(err.value)
    # server_role and the declarations resolve through the same find()
    from ansible_collections.proxmox_manager.core.plugins.module_utils import role_assignment

    _resolved, problems = role_assignment.resolve(view, [dict(name='debian12-tpl', role='web')], ['web'])
    assert problems == [view.find('debian12-tpl')[1]]
    # the drift table says what it is too
    from ansible_collections.proxmox_manager.core.plugins.module_utils import declarations

    entry = dict(key='debian12-tpl', role='web', vmid=None, vars={}, line=3)
    rows = declarations.drift_rows(view, [], [(entry, problems[0])], [])
    assert [(r['host'], r['proxmox']) for r in rows] == [('debian12-tpl', 'template'), ('web-01', 'running')]
    # with include_templates it is a record like any other
    assert mv.build_view(guests[:1], {}, include_templates=True).resolve('debian12-tpl').template is True


def test_inventory_marks_templates_with_a_variable_and_a_group():
    from ansible_collections.proxmox_manager.core.plugins.plugin_utils import inventory_view as iv

    view = mv.build_view([guest(9000, 'tpl', template=1, status='stopped'), guest(100, 'a')], {},
                         include_templates=True)
    template, regular = view.by_host['tpl'], view.by_host['a']
    assert iv.host_vars(template, iv.LIVE, None)['pve_template'] is True
    assert 'template' in iv.host_groups(template, None)
    assert 'pve_template' not in iv.host_vars(regular, iv.LIVE, None)
    assert 'template' not in iv.host_groups(regular, None)
    # the same from the inventory cache and from the recorded view (record dicts)
    again = mv.ServerRecord.from_dict(json.loads(json.dumps(template.as_dict())))
    assert iv.host_vars(again, iv.RECORDED, None)['pve_template'] is True and 'template' in iv.host_groups(again, None)


class _Listing:
    """A client stand-in: a cluster whose listing answers, fails as Proxmox may, or hits a bug of ours."""

    def __init__(self, name, failure=None):
        self.cluster, self.failure = name, failure

    def cluster_resources(self, _kind):
        if self.failure:
            raise self.failure
        return []

    def guests_ips(self, _guests, max_workers=None):
        return {}


def test_fetch_views_keeps_each_clusters_error_and_raises_a_bug_in_the_callers_thread(tmp_path):
    tfvars = tmp_path / 'terraform.tfvars.json'
    tfvars.write_text('{"servers": {}}')
    refused = ProxmoxApiError('Proxmox answered HTTP 500', path='/cluster/resources')
    views = mv.fetch_views([dict(client=_Listing('a'), tfvars=str(tfvars)),
                            dict(client=_Listing('b', refused), tfvars=str(tfvars))])
    assert views[0].clusters == ['a'] and views[1] is refused
    for many in (False, True):  # one cluster runs in this thread, several in threads of their own
        targets = [dict(client=_Listing('a', ZeroDivisionError('a bug')), tfvars=str(tfvars))]
        if many:
            targets.append(dict(client=_Listing('b'), tfvars=str(tfvars)))
        with pytest.raises(ZeroDivisionError, match='a bug'):
            mv.fetch_views(targets)
