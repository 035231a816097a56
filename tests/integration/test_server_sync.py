"""server_sync against the API double (issue 4).

The state DB follows the merged view: new servers get rows, facts are
refreshed, vanished servers are marked absent with their role kept, and a
fact the view does not know never blanks a stored one.
"""

import json
import os
import socket
import sqlite3

import pytest

from tests.conftest import (
    ModuleFailed,
    connection_env,
    connection_options,
    run_ansible,
    run_module,
)
from tests.seed_db import created_nothing, legacy_db, query, settled_digest

SAMPLE_KEYS = ['AI-agent (vmid 100)', 'build-box (vmid 120)', 'db-01 (vmid 102)', 'ftp-ct (vmid 200)',
               'monitoring (vmid 103)', 'old-ct (vmid 202)', 'search-ct (vmid 201)', 'web-01 (vmid 101)',
               'web-02', 'worker (vmid 110)', 'worker (vmid 111)']


def db_rows(path):
    """{(name, vmid): row} of the servers table."""
    return dict(((r['name'], r['vmid']), r) for r in query(path, 'SELECT * FROM servers'))


def module_args(double, db, tfvars):
    return dict(connection_options(double, api_retries=0, api_timeout=5), state_db=db, tfvars_path=str(tfvars))


@pytest.fixture
def base(double, state_db, tfvars):
    return module_args(double, state_db, tfvars)


@pytest.fixture
def sqlite_base(double, sqlite_db, tfvars):
    """For the backups, which copy SQLite files."""
    return module_args(double, sqlite_db, tfvars)


def sync(base, check_mode=False, diff=True, **options):
    return run_module('server_sync', dict(base, **options), check_mode=check_mode, diff=diff)


def test_first_sync_records_every_server_and_marks_stale_rows(base, state_db):
    legacy_db(state_db)
    result = sync(base)
    assert result['changed'] is True
    assert result['added'] == SAMPLE_KEYS
    assert result['count'] == 11 and result['updated'] == []
    assert result['marked_absent'] == [dict(name='test', vmid=None, role='web'),
                                       dict(name='test-2', vmid=None, role=None)]
    expected_after = dict((k, 'added') for k in SAMPLE_KEYS)
    expected_after.update(test='absent', **{'test-2': 'absent'})
    assert result['diff']['after'] == expected_after
    assert result['diff']['before'] == {'test': 'present', 'test-2': 'present'}
    rows = db_rows(state_db)
    assert ('debian12-tpl', 9000) not in rows  # templates are not servers
    stale = rows[('test', None)]
    assert stale['present'] == 0 and stale['absent_since'] and stale['role'] == 'web'  # never deleted
    agent = rows[('AI-agent', 100)]
    assert (agent['node'], agent['status'], agent['ip_address'], agent['cpu'], agent['memory'], agent['type'],
            agent['source'], agent['present']) == ('pve1', 'running', '10.10.0.50', 8, 16384, 'qemu',
                                                   'live+declared', 1)
    assert rows[('web-02', None)]['source'] == 'declared' and rows[('web-02', None)]['ip_address'] == '10.10.0.54'
    assert rows[('build-box', 120)]['source'] == 'live' and rows[('build-box', 120)]['ip_address'] is None
    assert all(r['role'] is None for k, r in rows.items() if k[0] != 'test')  # sync never sets roles

    before = settled_digest(state_db)
    again = sync(base)
    assert again['changed'] is False
    assert (again['added'], again['updated'], again['marked_absent']) == ([], [], [])
    assert again['diff'] == dict(before={}, after={})
    assert settled_digest(state_db) == before


def test_facts_are_refreshed_and_logged(double, base, state_db):
    sync(base)
    guest = double.cluster.guest(120)
    guest.status, guest.node = 'running', 'pve1'
    result = sync(base)
    assert result['changed'] is True and result['added'] == [] and result['marked_absent'] == []
    assert result['updated'] == ['build-box (vmid 120)']
    assert result['diff'] == dict(before={'build-box (vmid 120)': dict(status='stopped', node='pve3')},
                                  after={'build-box (vmid 120)': dict(status='running', node='pve1')})
    row = db_rows(state_db)[('build-box', 120)]
    assert (row['status'], row['node']) == ('running', 'pve1')
    log = [(r['field'], r['old'], r['new'], r['tool']) for r in query(
        state_db, "SELECT field, old, new, tool FROM change_log WHERE key = 'build-box (vmid 120)' "
                  "AND old IS NOT NULL ORDER BY field")]
    assert log == [('node', 'pve3', 'pve1', 'server_sync'), ('status', 'stopped', 'running', 'server_sync')]


def test_vanished_guest_is_marked_absent_keeps_role_and_comes_back(double, base, state_db, roles_dir):
    sync(base)
    role_args = dict(base, roles_path=roles_dir, name='old-ct', role='ftp')
    run_module('server_role', role_args)
    guest = double.cluster.guest(202)
    double.cluster.remove_guest(202)

    gone = sync(base)
    assert gone['changed'] is True
    assert gone['marked_absent'] == [dict(name='old-ct', vmid=202, role='ftp')]
    assert gone['diff'] == dict(before={'old-ct (vmid 202)': 'present'}, after={'old-ct (vmid 202)': 'absent'})
    row = db_rows(state_db)[('old-ct', 202)]
    assert row['present'] == 0 and row['absent_since'] and row['role'] == 'ftp'
    assert row['node'] == 'pve2' and row['status'] == 'stopped'  # last known facts kept
    assert sync(base)['changed'] is False  # already marked
    with pytest.raises(ModuleFailed) as refused:  # the inventory no longer lists it, so no role either
        run_module('server_role', role_args)
    assert "Server 'old-ct' does not exist" in refused.value.result['msg']

    double.cluster.guests.append(guest)
    back = sync(base)
    assert back['changed'] is True and back['updated'] == ['old-ct (vmid 202)'] and back['added'] == []
    row = db_rows(state_db)[('old-ct', 202)]
    assert row['present'] == 1 and row['absent_since'] is None and row['role'] == 'ftp'
    assert len([k for k in db_rows(state_db) if k[0] == 'old-ct']) == 1


def test_guests_of_an_offline_node_are_not_marked_absent(double, base, state_db):
    sync(base)
    double.set_node_status('pve3', 'offline')
    result = sync(base)
    assert result['marked_absent'] == []
    assert sorted(result['updated']) == ['build-box (vmid 120)', 'search-ct (vmid 201)', 'worker (vmid 111)']
    rows = db_rows(state_db)
    assert rows[('worker', 111)]['status'] == 'unknown' and rows[('worker', 111)]['present'] == 1


def test_templates_only_with_include_templates(base, state_db):
    assert 'debian12-tpl (vmid 9000)' not in sync(base)['added']
    result = sync(base, include_templates=True)
    assert result['added'] == ['debian12-tpl (vmid 9000)']
    assert db_rows(state_db)[('debian12-tpl', 9000)]['node'] == 'pve1'


def test_a_sync_lacking_the_declared_ip_never_blanks_it(base, state_db, tfvars):
    sync(base)
    data = json.loads(tfvars.read_text())
    data['servers']['AI-agent']['network_devices'] = [dict(bridge='vmbr0', ip_address='dhcp')]
    del data['servers']['AI-agent']['os_type']
    tfvars.write_text(json.dumps(data))
    result = sync(base)
    row = db_rows(state_db)[('AI-agent', 100)]
    assert row['ip_address'] == '10.10.0.50' and row['os_type'] == 'l26'
    assert 'AI-agent (vmid 100)' not in result['updated']

    # The declaration gone altogether: a live guest, still with its stored IP.
    del data['servers']['AI-agent']
    tfvars.write_text(json.dumps(data))
    result = sync(base)
    row = db_rows(state_db)[('AI-agent', 100)]
    assert (row['ip_address'], row['source'], row['present']) == ('10.10.0.50', 'live', 1)
    assert result['updated'] == ['AI-agent (vmid 100)']
    assert result['diff']['after'] == {'AI-agent (vmid 100)': dict(source='live')}


def test_agent_ips_are_recorded_and_kept(base, state_db):
    result = sync(base, want_agent_ips=True)
    rows = db_rows(state_db)
    assert rows[('worker', 110)]['ip_address'] == '10.10.0.60'  # declares dhcp; the agent answers
    assert rows[('worker', 111)]['ip_address'] is None  # stopped: never asked
    assert rows[('old-ct', 202)]['ip_address'] is None
    assert 'worker (vmid 110)' in result['added']
    # a later sync without agent lookups keeps the address it learned
    assert sync(base)['changed'] is False
    assert db_rows(state_db)[('worker', 110)]['ip_address'] == '10.10.0.60'


def test_declared_server_created_later_keeps_its_row(double, base, state_db, roles_dir):
    sync(base)
    run_module('server_role', dict(base, roles_path=roles_dir, name='web-02', role='web'))
    double.cluster.add_guest(vmid=130, name='web-02', type='qemu', node='pve2', status='running',
                             maxcpu=2, maxmem=4 * 1024 ** 3, maxdisk=32 * 1024 ** 3)
    result = sync(base)
    assert result['added'] == [] and result['updated'] == ['web-02 (vmid 130)']
    rows = [r for k, r in db_rows(state_db).items() if k[0] == 'web-02']
    assert len(rows) == 1
    assert (rows[0]['vmid'], rows[0]['node'], rows[0]['role'], rows[0]['source']) == (130, 'pve2', 'web',
                                                                                      'live+declared')


def test_check_mode_without_db_creates_nothing(base, state_db):
    checked = sync(base, check_mode=True)
    assert created_nothing(state_db)
    applied = sync(base)
    assert checked == applied and applied['added'] == SAMPLE_KEYS


def test_check_mode_on_the_seeds_db_plans_like_the_real_run(base, state_db):
    legacy_db(state_db)
    before = settled_digest(state_db)
    checked = sync(base, check_mode=True)
    assert settled_digest(state_db) == before
    assert [s['name'] for s in checked['marked_absent']] == ['test', 'test-2']
    assert sync(base) == checked


def test_check_mode_with_db_writes_nothing_and_reports_the_same(double, base, state_db):
    legacy_db(state_db)
    sync(base)
    double.cluster.guest(103).status = 'stopped'
    double.cluster.remove_guest(202)
    double.cluster.add_guest(vmid=140, name='cache-01', type='lxc', node='pve1', status='running',
                             maxcpu=1, maxmem=1024 ** 3, maxdisk=8 * 1024 ** 3)
    before = settled_digest(state_db)
    checked = sync(base, check_mode=True)
    assert settled_digest(state_db) == before
    assert checked['added'] == ['cache-01 (vmid 140)'] and checked['updated'] == ['monitoring (vmid 103)']
    assert checked['marked_absent'] == [dict(name='old-ct', vmid=202, role=None)]
    assert checked['diff']['before']['monitoring (vmid 103)'] == dict(status='running')
    assert sync(base) == checked


def test_backup_only_when_something_changes(double, sqlite_base, sqlite_db):
    base = sqlite_base
    first = sync(base, backup=True)
    assert first['changed'] is True and 'backup_file' not in first  # no DB to copy yet
    assert sync(base, backup=True).get('backup_file') is None  # nothing changes
    backups = os.path.join(os.path.dirname(sqlite_db), 'backups')
    assert not os.path.exists(backups)
    before_rows = db_rows(sqlite_db)
    double.cluster.guest(120).status = 'running'
    checked = sync(base, backup=True, check_mode=True)
    assert 'backup_file' not in checked and not os.path.exists(backups)
    changed = sync(base, backup=True)
    assert os.path.dirname(changed['backup_file']) == backups and os.listdir(backups) == [
        os.path.basename(changed['backup_file'])]
    conn = sqlite3.connect(changed['backup_file'])
    assert conn.execute('PRAGMA integrity_check').fetchone() == ('ok',)
    conn.close()
    assert db_rows(changed['backup_file']) == before_rows  # the state before the change


def _down(double, args):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        args['api_port'] = sock.getsockname()[1]
    return 'Cannot reach Proxmox'


def _server_error(double, args):
    double.add_fault(path='^/cluster/resources', status=500)
    return 'HTTP 500'


def _refused(double, args):
    args['api_token_secret'] = 'not-the-secret-5b1e'
    return 'check the credentials'


def _bad_tfvars(double, args):
    with open(args['tfvars_path'], 'w') as handle:
        handle.write('{"servers": ')
    return 'is not valid JSON'


@pytest.mark.parametrize('fault', [_down, _server_error, _refused, _bad_tfvars], ids=lambda f: f.__name__[1:])
def test_errors_change_nothing(fault, double, base, state_db):
    # Above all, an unreachable Proxmox must never read as "every server vanished".
    sync(base)
    before = settled_digest(state_db)
    args = dict(base)
    expected = fault(double, args)
    with pytest.raises(ModuleFailed) as failed:
        run_module('server_sync', args)
    result = failed.value.result
    assert expected in result['msg'] and 'exception' not in result
    assert args['api_token_secret'] not in json.dumps(result)
    assert settled_digest(state_db) == before


PLAYBOOK = '''
- hosts: localhost
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: First sync records every server
      proxmox_manager.core.server_sync:
      register: first
    - name: Roles for all declarations in one call, with a backup first
      proxmox_manager.core.server_role:
        backup: true
        servers:
          - {name: AI-agent, role: web}
          - {name: worker-110, role: web}
          - {name: db-01, role: db}
      register: roles
    - name: Second sync changes nothing
      proxmox_manager.core.server_sync:
        backup: true
      register: second
    - name: An explicit backup
      proxmox_manager.core.state_backup:
      register: copy
    - ansible.builtin.assert:
        that:
          - first is changed
          - first.added | length == 11
          - first.marked_absent | map(attribute='name') | list == ['test', 'test-2']
          - roles is changed
          - roles.backup_file is defined
          - roles.servers | map(attribute='previous_role') | select | list == []
          - second is not changed
          - second.backup_file is not defined
          - copy.backup_file is defined
'''


def test_playbook_end_to_end(double, sqlite_db, tfvars, roles_dir, tmp_path):
    """With backups (of SQLite files)."""
    state_db = sqlite_db
    legacy_db(state_db)
    playbook = tmp_path / 'site.yml'
    playbook.write_text(PLAYBOOK)
    env = connection_env(double, PROXMOX_MANAGER_DB=state_db, PROXMOX_MANAGER_TFVARS=str(tfvars),
                         PROXMOX_MANAGER_ROLES=roles_dir)
    proc = run_ansible(['ansible-playbook', '-i', 'localhost,', '-c', 'local', str(playbook)], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'failed=0' in proc.stdout
    rows = db_rows(state_db)
    assert (rows[('AI-agent', 100)]['role'], rows[('worker', 110)]['role'], rows[('db-01', 102)]['role']) == (
        'web', 'web', 'db')
    assert rows[('test', None)]['present'] == 0 and rows[('test', None)]['role'] == 'web'
    backups = sorted(os.listdir(os.path.join(os.path.dirname(state_db), 'backups')))
    assert len(backups) == 2  # one before the role change, one explicit; none for the no-op sync
