"""server_plan.plan_servers as a pure function: stored rows and input rows in, a plan out."""

import datetime

from ansible_collections.proxmox_manager.core.plugins.module_utils.server_plan import (
    SERVER_FACTS,
    plan_servers,
    server_key,
)


def stored(id_, name, vmid=None, present=True, **facts):
    """A row as StateStore.servers() returns it."""
    row = dict((col, None) for col in SERVER_FACTS + ('role', 'absent_since'))
    row.update(facts, id=id_, name=name, vmid=vmid, present=present)
    return row


def log_of(plan):
    return [(e['key'], e['field'], e['old'], e['new']) for e in plan.log]


def test_new_rows_are_inserts_with_every_column_and_one_created_entry_plus_role():
    plan = plan_servers([], [dict(name='web-01', vmid=101, node='pve1', source='proxmox', role='web'),
                             dict(name='planned', role='db')])
    assert plan.changed and plan.updates == [] and plan.absent == []
    assert [(key, old) for key, old, _changes in plan.results] == [('web-01 (vmid 101)', None), ('planned', None)]
    web, planned = plan.inserts
    assert set(web) == set(SERVER_FACTS) | {'name', 'role', 'present', 'absent_since', 'created_at', 'updated_at'}
    assert (web['name'], web['vmid'], web['node'], web['role'], web['present']) == ('web-01', 101, 'pve1', 'web', True)
    assert web['ip_address'] is None and web['absent_since'] is None
    assert isinstance(web['created_at'], datetime.datetime) and web['created_at'] == web['updated_at']
    assert (planned['vmid'], planned['role']) == (None, 'db')
    assert log_of(plan) == [('web-01 (vmid 101)', 'created', None, 'proxmox'), ('web-01 (vmid 101)', 'role', None, 'web'),
                            ('planned', 'created', None, None), ('planned', 'role', None, 'db')]


def test_a_changed_fact_is_an_update_of_that_field_only_logged_as_text():
    existing = [stored(7, 'web-01', 101, node='pve1', cpu=2, role='web')]
    plan = plan_servers(existing, [dict(name='web-01', vmid=101, node='pve2', cpu=4, role='web')])
    assert plan.inserts == []
    [update] = plan.updates
    assert update['_id'] == 7 and dict((k, v) for k, v in update.items() if k not in ('_id', 'updated_at')) == \
        {'node': 'pve2', 'cpu': 4}
    key, old, changes = plan.results[0]
    assert key == 'web-01 (vmid 101)' and old['node'] == 'pve1' and changes == {'node': 'pve2', 'cpu': 4}
    assert sorted(log_of(plan)) == [('web-01 (vmid 101)', 'cpu', '2', '4'), ('web-01 (vmid 101)', 'node', 'pve1', 'pve2')]


def test_an_unchanged_row_plans_nothing():
    existing = [stored(7, 'web-01', 101, node='pve1', role='web')]
    plan = plan_servers(existing, [dict(name='web-01', vmid=101, node='pve1', role='web')])
    assert not plan.changed and plan.log == [] and plan.results[0][2] == {}


def test_none_never_blanks_a_known_fact():
    existing = [stored(7, 'web-01', 101, ip_address='10.0.0.1', status='running', role='web')]
    plan = plan_servers(existing, [dict(name='web-01', vmid=101, ip_address=None, status='stopped')], roles=False)
    assert plan.results[0][2] == {'status': 'stopped'}
    assert [sorted(k for k in u if k not in ('_id', 'updated_at')) for u in plan.updates] == [['status']]


def test_roles_false_leaves_the_role_and_an_empty_role_removes_it():
    existing = [stored(7, 'web-01', 101, role='web')]
    assert not plan_servers(existing, [dict(name='web-01', vmid=101, role='db')], roles=False).changed
    plan = plan_servers([stored(7, 'web-01', 101, role='web')], [dict(name='web-01', vmid=101, role='')])
    assert plan.results[0][2] == {'role': None}
    assert log_of(plan) == [('web-01 (vmid 101)', 'role', 'web', None)]


def test_only_if_role_changes_only_that_role():
    plan = plan_servers([stored(7, 'a', 101, role='web'), stored(8, 'b', 102, role='db')],
                        [dict(name='a', vmid=101, role=None, only_if_role='web'),
                         dict(name='b', vmid=102, role=None, only_if_role='web')])
    assert [changes for _key, _old, changes in plan.results] == [{'role': None}, {}]


def test_a_declared_server_that_got_a_vmid_is_the_same_row():
    existing = [stored(3, 'planned', None, role='db')]
    plan = plan_servers(existing, [dict(name='planned', vmid=105, node='pve2')], roles=False)
    assert plan.inserts == []
    [update] = plan.updates
    assert update['_id'] == 3 and update['vmid'] == 105 and update['node'] == 'pve2' and 'name' not in update
    assert ('planned (vmid 105)', 'vmid', None, '105') in log_of(plan)


def test_a_renamed_guest_keeps_its_row_by_vmid():
    existing = [stored(4, 'old-name', 110, role='web')]
    plan = plan_servers(existing, [dict(name='new-name', vmid=110)], roles=False)
    assert plan.inserts == []
    [update] = plan.updates
    assert update['_id'] == 4 and update['name'] == 'new-name'
    assert log_of(plan) == [('new-name (vmid 110)', 'name', 'old-name', 'new-name')]


def test_a_declared_name_taken_by_vmid_is_consumed_once():
    # Two guests named like one declared row: the first takes the row, the second is new.
    plan = plan_servers([stored(3, 'worker', None, role='was')],
                        [dict(name='worker', vmid=110), dict(name='worker', vmid=111)], roles=False)
    assert [u['_id'] for u in plan.updates] == [3]
    assert [(r['name'], r['vmid'], r['role']) for r in plan.inserts] == [('worker', 111, None)]


def test_the_same_new_server_twice_in_one_plan_is_one_insert():
    plan = plan_servers([], [dict(name='a', vmid=100, node='pve1'), dict(name='a', vmid=100, node='pve2')])
    assert len(plan.inserts) == 1 and plan.inserts[0]['node'] == 'pve2' and plan.updates == []


def test_mark_missing_marks_unmatched_present_rows_absent_and_deletes_nothing():
    existing = [stored(1, 'a', 100, role='web'), stored(2, 'b', 101, role='db'),
                stored(3, 'gone', 102, present=False, absent_since=datetime.datetime(2026, 1, 1))]
    plan = plan_servers(existing, [dict(name='a', vmid=100)], roles=False, mark_missing=True)
    assert [r['name'] for r in plan.absent] == ['b']
    [update] = plan.updates
    assert update['_id'] == 2 and update['present'] is False and update['absent_since'] is not None
    assert 'role' not in update
    assert log_of(plan) == [('b (vmid 101)', 'present', 'true', 'false')]


def test_without_mark_missing_unmatched_rows_are_left_alone():
    plan = plan_servers([stored(1, 'a', 100), stored(2, 'b', 101)], [dict(name='a', vmid=100)], roles=False)
    assert not plan.changed and plan.absent == []


def test_an_absent_server_seen_again_is_present_without_a_log_entry_for_it():
    existing = [stored(2, 'b', 101, present=False, absent_since=datetime.datetime(2026, 1, 1), role='db')]
    plan = plan_servers(existing, [dict(name='b', vmid=101)], roles=False, mark_missing=True)
    assert plan.results[0][2] == {'present': True, 'absent_since': None}
    assert plan.updates[0]['present'] is True and plan.updates[0]['absent_since'] is None
    assert plan.log == [] and plan.absent == []


def test_server_key():
    assert server_key(dict(name='a', vmid=None)) == 'a'
    assert server_key(dict(name='a')) == 'a'
    assert server_key(dict(name='a', vmid=7)) == 'a (vmid 7)'
