"""server_role and server_sync with two clusters in one state DB (issue 17).

`double` is the cluster `demo`, `lab_double` the cluster `lab`; both have a web-01 with vmid 101. A call acts on
one cluster: the one its `cluster` names (its connection then comes from the inventory file's `clusters`), or
the one its connection reaches.
"""

import json

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import state_store as ss
from tests.conftest import (
    LAB_TFVARS,
    SAMPLE_TFVARS,
    ModuleFailed,
    clusters_mapping,
    connection_env,
    connection_options,
    run_adhoc,
    run_module,
)
from tests.seed_db import dump, v2_db


def rows(db):
    return dict(((r['cluster'], r['name'], r['vmid']), r) for r in ss.StateStore(db).servers())


def test_the_same_vmid_in_two_clusters_keeps_two_roles(double, lab_double, state_db):
    demo = dict(connection_options(double), state_db=state_db, tfvars_path=str(SAMPLE_TFVARS))
    lab = dict(connection_options(lab_double), state_db=state_db, tfvars_path=str(LAB_TFVARS))
    run_module('server_role', dict(demo, name='web-01', role='web'))
    result = run_module('server_role', dict(lab, name='web-01', role='java'), diff=True)
    assert result['servers'] == [dict(name='web-01', vmid=101, role='java', previous_role=None, changed=True)]
    found = rows(state_db)
    assert found[('demo', 'web-01', 101)]['role'] == 'web' and found[('lab', 'web-01', 101)]['role'] == 'java'
    # a sync of lab marks lab's missing servers only, and touches no role
    result = run_module('server_sync', lab)
    assert result['added'] == ['lab-ci (vmid 300)', 'lab-ct (vmid 301)'] and result['marked_absent'] == []
    assert set(k[0] for k in rows(state_db)) == {'demo', 'lab'}
    assert rows(state_db)[('demo', 'web-01', 101)]['role'] == 'web'
    log = ss.StateStore(state_db).changes()
    assert set(c['cluster'] for c in log) == {'demo', 'lab'}


def test_a_server_of_the_other_cluster_is_refused_with_nothing_written(double, lab_double, state_db):
    lab = dict(connection_options(lab_double), state_db=state_db, tfvars_path=str(LAB_TFVARS))
    run_module('server_role', dict(lab, name='lab-ci', role='java'))
    before = dump(state_db)
    with pytest.raises(ModuleFailed) as err:
        run_module('server_role', dict(lab, name='AI-agent', role='web'))
    assert "Server 'AI-agent' does not exist in Proxmox or in the tfvars declarations." in err.value.result['msg']
    assert dump(state_db) == before


def test_an_entry_of_another_cluster_fails_the_call(double, lab_double, state_db, tmp_path):
    """declarations_validate's entries name their cluster; server_role takes those of its own cluster only."""
    lab = dict(connection_options(lab_double), state_db=state_db, tfvars_path=str(LAB_TFVARS))
    mine = dict(name='web-01', vmid=101, cluster='lab', role='java', state='present')
    result = run_module('server_role', dict(lab, servers=[mine, dict(name='lab-ci', cluster='lab', role='db')]))
    assert [s['changed'] for s in result['servers']] == [True, True]
    before = dump(state_db)
    other = dict(name='AI-agent', vmid=100, cluster='demo', role='web')
    for args in (dict(servers=[dict(mine, role='db'), other]),
                 dict(servers_file=str(tmp_path / 'servers.json'))):
        (tmp_path / 'servers.json').write_text(json.dumps([dict(mine, role='db'), other]))
        with pytest.raises(ModuleFailed) as err:
            run_module('server_role', dict(lab, **args))
        assert ("servers[1] (AI-agent): the entry is for the cluster 'demo', but this call acts on the cluster lab; "
                "give each cluster its own call (its cluster option).") in err.value.result['msg']
        assert dump(state_db) == before  # web-01 is not changed either: the call is one transaction


def test_a_v2_state_db_becomes_the_rows_of_the_first_writers_cluster(double, state_db, tfvars):
    v2_db(state_db)
    base = dict(connection_options(double), state_db=state_db, tfvars_path=str(tfvars))
    plan = run_module('server_role', dict(base, name='web-01', role='web'), check_mode=True)
    assert plan['changed'] is False  # the v2 row already says web: the upgrade keeps it
    run_module('server_sync', base)
    found = rows(state_db)
    assert found[('demo', 'web-01', 101)]['role'] == 'web'
    assert found[('demo', 'gone', 150)]['role'] == 'was' and found[('demo', 'gone', 150)]['present'] is False
    assert set(k[0] for k in found) == {'demo'}


def test_a_v2_state_db_recorded_from_another_cluster_is_not_taken(double, lab_double, state_db, tfvars):
    view = 'inventory@%s:%s' % (double.host, double.port)
    v2_db(state_db, "INSERT INTO view_snapshots VALUES ('%s', '2026-11-01 10:00:00', '[]');" % view)
    before = dump(state_db)
    lab = dict(connection_options(lab_double), state_db=state_db, tfvars_path=str(LAB_TFVARS))
    for check_mode in (True, False):
        with pytest.raises(ModuleFailed) as err:
            run_module('server_sync', lab, check_mode=check_mode)
        msg = err.value.result['msg']
        assert msg.startswith('Cannot upgrade the state DB') and 'cluster lab' in msg, msg
        assert '%s:%s' % (double.host, double.port) in msg
    assert dump(state_db) == before
    run_module('server_sync', dict(connection_options(double), state_db=state_db, tfvars_path=str(tfvars)))
    assert set(k[0] for k in rows(state_db)) == {'demo'}


# -- through Ansible: the action reads the inventory file's clusters ------------------------------------


@pytest.fixture
def config_repo(tmp_path, double, lab_double, sqlite_db, tfvars, lab_tfvars):
    """A config repo whose inventory file declares demo and lab without any secret; (path, environment)."""
    mapping = clusters_mapping(demo=(double, tfvars), lab=(lab_double, lab_tfvars))
    secrets = {}
    for name, entry in mapping.items():
        secrets['PROXMOX_%s_TOKEN_SECRET' % name.upper()] = entry.pop('api_token_secret')
    (tmp_path / 'inventory').mkdir()
    (tmp_path / 'inventory' / 'proxmox.yml').write_text(json.dumps(
        dict(plugin='proxmox_manager.core.proxmox', clusters=mapping)))
    env = dict((k, v) for k, v in connection_env(double).items() if not k.startswith('PROXMOX_'))
    env.update(secrets, PROXMOX_MANAGER_PROJECT_DIR=str(tmp_path), PROXMOX_MANAGER_DB=sqlite_db)
    return tmp_path, env


def test_a_task_names_its_cluster_and_gets_its_connection_and_tfvars(config_repo, sqlite_db):
    _repo, env = config_repo
    proc, result = run_adhoc('server_role', dict(cluster='lab', name='web-01', role='java'), env)
    assert proc.returncode == 0 and result['changed'], proc.stdout + proc.stderr
    proc, result = run_adhoc('server_role', dict(cluster='demo', name='AI-agent', role='web'), env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted((k[0], k[1], r['role']) for k, r in rows(sqlite_db).items()) == [
        ('demo', 'AI-agent', 'web'), ('lab', 'web-01', 'java')]
    secrets = [value for key, value in env.items() if key.endswith('_TOKEN_SECRET')]
    assert len(secrets) == 2 and not any(secret in proc.stdout + proc.stderr for secret in secrets)


def test_a_task_that_names_no_cluster_of_several_is_refused(config_repo, sqlite_db):
    _repo, env = config_repo
    proc, result = run_adhoc('server_role', dict(name='web-01', role='java'), env)
    assert proc.returncode != 0
    assert result['msg'] == ('The inventory file declares the clusters demo, lab: name the one this task acts on '
                             'with cluster (or PROXMOX_CLUSTER).')
    proc, result = run_adhoc('server_role', dict(cluster='prod', name='web-01', role='java'), env)
    assert result['msg'] == "The cluster 'prod' is not declared; the clusters are demo, lab."
    assert ss.StateStore(sqlite_db).servers() == []
