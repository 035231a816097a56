"""datastore_refresh / datastore_default / datastore_info with several clusters in one state DB (issue 17).

`double` is the cluster `demo`, `lab_double` the cluster `lab`; both have a `local` and a `local-lvm` storage, so
the same storage id lives in both clusters.
"""

import json
import os

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import datastores as ds
from ansible_collections.proxmox_manager.core.plugins.module_utils import merged_view
from ansible_collections.proxmox_manager.core.plugins.module_utils.state_db import SCHEMA_VERSION, view_name
from ansible_collections.proxmox_manager.core.plugins.module_utils.state_store import StateStore
from tests.conftest import ROOT, ModuleFailed, connection_env, connection_options, run_adhoc, run_module
from tests.integration.test_datastores import opts, read_json
from tests.seed_db import created_nothing, dump, execute, is_postgresql, query, script, settled_digest

FLAGS = ('is_default_hdd', 'is_default_ssd')


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in list(os.environ):
        if var.startswith('PROXMOX_'):
            monkeypatch.delenv(var)


def storage_ids(double):
    return sorted(s.storage for s in double.cluster.storages)


def rows_of(db, cluster):
    """The datastores rows of one cluster, read with the plain driver."""
    return query(db, 'SELECT * FROM datastores WHERE cluster = ? ORDER BY id', (cluster,))


def defaults_in_db(db, cluster):
    """(hdd ids, ssd ids) flagged in the cluster's rows."""
    rows = rows_of(db, cluster)
    return tuple([r['id'] for r in rows if r[flag]] for flag in FLAGS)


def state_of(db, *paths):
    """Everything a failed call must leave as it was: the DB's rows (change log included) and the files."""
    files = dict((str(p), open(str(p), 'rb').read() if os.path.exists(str(p)) else None) for p in paths)
    return dict(dump=dump(db), digest=settled_digest(db), files=files)


# =============================================================================
# datastore_refresh
# =============================================================================


def test_refresh_of_each_cluster_keeps_the_other_clusters_rows(double, lab_double, state_db, tmp_path):
    demo = run_module('datastore_refresh', opts(double, state_db))
    lab = run_module('datastore_refresh', opts(lab_double, state_db))
    assert (demo['cluster'], lab['cluster']) == ('demo', 'lab')
    assert [r['id'] for r in rows_of(state_db, 'demo')] == storage_ids(double)
    assert [r['id'] for r in rows_of(state_db, 'lab')] == storage_ids(lab_double)
    assert {'local', 'local-lvm'} <= set(storage_ids(double)) & set(storage_ids(lab_double))
    # each cluster's row of a shared id holds its own figures
    assert [r['size'] for r in rows_of(state_db, 'lab') if r['id'] == 'local-lvm'] == \
        [r['size'] for r in lab['datastores'] if r['id'] == 'local-lvm']
    assert [r['size'] for r in rows_of(state_db, 'demo') if r['id'] == 'local-lvm'] == \
        [r['size'] for r in demo['datastores'] if r['id'] == 'local-lvm']
    assert query(state_db, 'SELECT COUNT(*) AS n FROM datastores')[0]['n'] == \
        len(storage_ids(double)) + len(storage_ids(lab_double))

    # lab loses `local` (no longer its SSD default) and its figures move: demo's rows, `local` included, stay
    # exactly as they were
    run_module('datastore_default', opts(lab_double, state_db, ssd='lab-ssd',
                                         terraform_vars_file=str(tmp_path / ds.TF_VARS_NAME)))
    demo_before = rows_of(state_db, 'demo')
    lab_double.cluster.storages.remove(next(s for s in lab_double.cluster.storages if s.storage == 'local'))
    for storage in lab_double.cluster.storages:
        storage.used = 1024 ** 3
    again = run_module('datastore_refresh', opts(lab_double, state_db))
    assert again['changed'] is True and 'local' not in [r['id'] for r in again['datastores']]
    assert [r['id'] for r in rows_of(state_db, 'lab')] == storage_ids(lab_double)
    assert rows_of(state_db, 'demo') == demo_before

    # and demo's refresh, unchanged, changes nothing (lab's rows are not its own)
    lab_before = rows_of(state_db, 'lab')
    assert run_module('datastore_refresh', opts(double, state_db))['changed'] is False
    assert rows_of(state_db, 'lab') == lab_before and rows_of(state_db, 'demo') == demo_before


def test_the_cluster_option_names_the_rows(double, state_db):
    # the cluster option wins over the name Proxmox gives: a node that later joins a cluster keeps its rows
    double.reset_counters()
    named = run_module('datastore_refresh', opts(double, state_db, cluster='prod'))
    assert named['cluster'] == 'prod' and 'GET /cluster/status' not in double.counters()['by_path']
    assert [r['id'] for r in rows_of(state_db, 'prod')] == storage_ids(double)
    assert rows_of(state_db, 'demo') == []


def test_refresh_without_a_cluster_name_fails_in_one_message_and_changes_nothing(double, lab_double, state_db):
    run_module('datastore_refresh', opts(double, state_db))
    run_module('datastore_refresh', opts(lab_double, state_db))
    before = state_of(state_db)
    double.add_fault('GET', r'^/cluster/status$', status=403, message='Permission check failed (/, Sys.Audit)')
    with pytest.raises(ModuleFailed) as failed:
        run_module('datastore_refresh', opts(double, state_db))
    msg = failed.value.result['msg']
    assert 'cluster option (PROXMOX_CLUSTER)' in msg and 'Sys.Audit' in msg and '\n' not in msg
    assert 'exception' not in failed.value.result
    assert state_of(state_db) == before


# =============================================================================
# datastore_default
# =============================================================================


def test_defaults_of_each_cluster_are_independent(double, lab_double, state_db, tmp_path):
    demo_tfvars = tmp_path / 'terraform' / 'demo' / 'terraform.tfvars.json'
    lab_tfvars = tmp_path / 'terraform' / 'lab' / 'terraform.tfvars.json'
    demo_vars, lab_vars = demo_tfvars.parent / ds.TF_VARS_NAME, lab_tfvars.parent / ds.TF_VARS_NAME

    demo = run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', ssd='ssd-pool',
                                                tfvars_path=str(demo_tfvars)))
    lab = run_module('datastore_default', opts(lab_double, state_db, ssd='lab-ssd', tfvars_path=str(lab_tfvars)))
    # each cluster's vars file lies beside its tfvars file, and holds its own pair
    assert (demo['cluster'], demo['terraform_vars_file']) == ('demo', str(demo_vars))
    assert (lab['cluster'], lab['terraform_vars_file']) == ('lab', str(lab_vars))
    assert read_json(demo_vars) == {'proxmox_hdd_datastore': 'HDD-Storage', 'proxmox_ssd_datastore': 'ssd-pool'}
    assert read_json(lab_vars) == {'proxmox_hdd_datastore': 'local-lvm', 'proxmox_ssd_datastore': 'lab-ssd'}
    assert sorted(os.listdir(str(tmp_path / 'terraform'))) == ['demo', 'lab']
    assert (lab['refreshed'], lab['default_sources']) == (True, {'hdd': 'builtin', 'ssd': 'option'})
    assert defaults_in_db(state_db, 'demo') == (['HDD-Storage'], ['ssd-pool'])
    assert defaults_in_db(state_db, 'lab') == (['local-lvm'], ['lab-ssd'])

    # demo takes local-lvm for both kinds: lab's local-lvm flag and its ssd default stay
    moved = run_module('datastore_default', opts(double, state_db, hdd='local-lvm', ssd='local-lvm',
                                                 tfvars_path=str(demo_tfvars)), diff=True)
    assert moved['diff'] == {'before': {'hdd': 'HDD-Storage', 'ssd': 'ssd-pool'},
                             'after': {'hdd': 'local-lvm', 'ssd': 'local-lvm'}}
    assert defaults_in_db(state_db, 'demo') == (['local-lvm'], ['local-lvm'])
    assert defaults_in_db(state_db, 'lab') == (['local-lvm'], ['lab-ssd'])
    assert read_json(lab_vars) == {'proxmox_hdd_datastore': 'local-lvm', 'proxmox_ssd_datastore': 'lab-ssd'}

    # lab moves its ssd default: demo's flags stay
    run_module('datastore_default', opts(lab_double, state_db, ssd='local-lvm', tfvars_path=str(lab_tfvars)))
    assert defaults_in_db(state_db, 'demo') == (['local-lvm'], ['local-lvm'])
    assert defaults_in_db(state_db, 'lab') == (['local-lvm'], ['local-lvm'])
    # a refresh of one cluster keeps both clusters' defaults
    assert run_module('datastore_refresh', opts(double, state_db))['default_sources'] == {'hdd': 'db', 'ssd': 'db'}
    assert defaults_in_db(state_db, 'lab') == (['local-lvm'], ['local-lvm'])

    # the change log names the cluster of each change
    log = [(c['cluster'], c['key'], c['old'], c['new']) for c in StateStore(state_db).changes()
           if c['entity'] == 'datastore']
    assert sorted(log) == sorted([
        ('demo', 'hdd', 'local-lvm', 'HDD-Storage'), ('demo', 'ssd', 'local', 'ssd-pool'),
        ('lab', 'ssd', 'local', 'lab-ssd'),
        ('demo', 'hdd', 'HDD-Storage', 'local-lvm'), ('demo', 'ssd', 'ssd-pool', 'local-lvm'),
        ('lab', 'ssd', 'lab-ssd', 'local-lvm')])


def test_a_storage_of_another_cluster_is_unknown_and_nothing_changes(double, lab_double, state_db, tmp_path):
    lab_tfvars = tmp_path / 'lab' / 'terraform.tfvars.json'
    lab_vars = lab_tfvars.parent / ds.TF_VARS_NAME
    run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', ssd='ssd-pool',
                                         tfvars_path=str(tmp_path / 'demo' / 'terraform.tfvars.json')))
    run_module('datastore_default', opts(lab_double, state_db, ssd='lab-ssd', tfvars_path=str(lab_tfvars)))
    before = state_of(state_db, lab_vars)
    # HDD-Storage is demo's: lab's cache does not know it, and the message lists lab's ids only
    with pytest.raises(ModuleFailed) as failed:
        run_module('datastore_default', opts(lab_double, state_db, hdd='HDD-Storage', tfvars_path=str(lab_tfvars)))
    msg = failed.value.result['msg']
    assert msg == ("Unknown datastore hdd='HDD-Storage'; the cache holds: %s. Nothing was changed."
                   % ', '.join(storage_ids(lab_double)))
    assert state_of(state_db, lab_vars) == before


def test_the_vars_file_path_of_a_cluster(tmp_path, monkeypatch):
    project = str(tmp_path)
    # the single-cluster default is today's file
    assert ds.tf_vars_path(None, None, None) == os.path.join('terraform', ds.TF_VARS_NAME)
    assert ds.tf_vars_path(None, None, project) == os.path.join(project, 'terraform', ds.TF_VARS_NAME)
    # beside the cluster's tfvars, relative to the config repo
    assert ds.tf_vars_path(None, 'terraform/prod/terraform.tfvars.json', project) == \
        os.path.join(project, 'terraform', 'prod', ds.TF_VARS_NAME)
    assert ds.tf_vars_path(None, '/elsewhere/lab.tfvars.json', project) == os.path.join('/elsewhere', ds.TF_VARS_NAME)
    # the option wins, a relative one in the config repo
    assert ds.tf_vars_path('out/ds.json', 'terraform/prod/terraform.tfvars.json', project) == \
        os.path.join(project, 'out', 'ds.json')
    assert ds.tf_vars_path('/abs/ds.json', None, project) == '/abs/ds.json'
    # the tfvars file comes as merged_view resolves it, $PROXMOX_MANAGER_TFVARS included
    monkeypatch.setenv(merged_view.TFVARS_ENV, 'site/a/servers.json')
    assert ds.tf_vars_path(None, None, project) == os.path.join(project, 'site', 'a', ds.TF_VARS_NAME)


def _inventory(tmp_path, double, lab_double):
    """A config repo whose inventory file declares demo (its own tfvars_path) and lab (the default one)."""
    demo = dict(connection_options(double), tfvars_path='terraform/demo/terraform.tfvars.json')
    lab = connection_options(lab_double)
    (tmp_path / 'inventory').mkdir()
    (tmp_path / 'inventory' / 'proxmox.yml').write_text(json.dumps(
        dict(plugin='proxmox_manager.core.proxmox', clusters=dict(demo=demo, lab=lab))))


def test_a_real_run_names_the_cluster_of_the_inventory_file(double, lab_double, sqlite_db, tmp_path):
    # the action hands the module the named cluster's connection and tfvars file
    _inventory(tmp_path, double, lab_double)
    env = dict((k, v) for k, v in connection_env(double).items() if not k.startswith('PROXMOX_'))
    env.update(PROXMOX_MANAGER_PROJECT_DIR=str(tmp_path), PROXMOX_MANAGER_DB=sqlite_db)
    for cluster, ssd in (('demo', 'ssd-pool'), ('lab', 'lab-ssd')):
        proc, result = run_adhoc('datastore_default', dict(cluster=cluster, ssd=ssd), env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        expected = tmp_path / 'terraform' / cluster / ds.TF_VARS_NAME
        assert (result['cluster'], result['terraform_vars_file']) == (cluster, str(expected))
        assert read_json(expected)['proxmox_ssd_datastore'] == ssd
    assert not (tmp_path / 'terraform' / ds.TF_VARS_NAME).exists()
    assert not (ROOT / 'terraform' / 'demo').exists() and not (ROOT / 'terraform' / 'lab').exists()

    proc, info = run_adhoc('datastore_info', dict(cluster='lab'), env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert info['cluster'] == 'lab' and [r['id'] for r in info['datastores']] == storage_ids(lab_double)
    assert (info['default_ssd'], info['source']) == ('lab-ssd', 'cache')


# =============================================================================
# datastore_info
# =============================================================================


def test_info_of_one_cluster_lists_only_its_rows(double, lab_double, state_db, tmp_path):
    run_module('datastore_default', opts(double, state_db, hdd='HDD-Storage', ssd='ssd-pool',
                                         tfvars_path=str(tmp_path / 'demo' / 'terraform.tfvars.json')))
    run_module('datastore_refresh', opts(lab_double, state_db))
    before = state_of(state_db)
    for server, ids, pair in ((double, storage_ids(double), ('HDD-Storage', 'ssd-pool')),
                              (lab_double, storage_ids(lab_double), ('local-lvm', 'local'))):
        server.reset_counters()
        info = run_module('datastore_info', opts(server, state_db))
        assert (info['cluster'], info['source']) == (server.cluster.cluster_name, 'cache')
        assert [r['id'] for r in info['datastores']] == ids
        assert (info['default_hdd'], info['default_ssd']) == pair
        assert server.counters()['by_path'] == {'GET /cluster/status': 1}  # its name; the list is the cache's
    # named by the option, the cluster's rows answer whichever connection is given
    assert [r['id'] for r in run_module('datastore_info', opts(double, state_db, cluster='lab'))['datastores']] == \
        storage_ids(lab_double)
    # a cluster with nothing cached is asked live, and not recorded
    fresh = run_module('datastore_info', opts(double, state_db, cluster='staging'))
    assert (fresh['cluster'], fresh['source']) == ('staging', 'proxmox')
    assert 'Nothing is cached for the cluster staging' in fresh['msg']
    assert state_of(state_db) == before


def test_info_of_an_unknown_cluster_serves_the_only_cached_one(double, state_db, warned):
    run_module('datastore_refresh', opts(double, state_db))
    before = state_of(state_db)
    double.add_fault(None, r'.*', status=500, message='cluster not ready')
    info = run_module('datastore_info', opts(double, state_db, live=True))
    assert (info['cluster'], info['source']) == ('demo', 'cache')
    assert [r['id'] for r in info['datastores']] == storage_ids(double)
    text = ' '.join(warned)
    assert "The cluster's name is unknown" in text and 'HTTP 500' in text
    assert 'the only cluster the state DB' in text and 'option cluster' in text
    assert 'Proxmox was not asked' in text  # live needs the cluster
    assert state_of(state_db) == before


def test_info_of_an_unknown_cluster_with_several_cached_asks_for_the_name(double, lab_double, state_db):
    run_module('datastore_refresh', opts(double, state_db))
    run_module('datastore_refresh', opts(lab_double, state_db))
    before = state_of(state_db)
    double.add_fault(None, r'.*', status=500)
    with pytest.raises(ModuleFailed) as failed:
        run_module('datastore_info', opts(double, state_db))
    msg = failed.value.result['msg']
    assert 'several clusters (demo, lab)' in msg and 'cluster option (PROXMOX_CLUSTER)' in msg, msg
    assert 'exception' not in failed.value.result and '\n' not in msg
    assert state_of(state_db) == before
    # named, it answers from the cache with Proxmox still down
    assert run_module('datastore_info', opts(double, state_db, cluster='lab'))['source'] == 'cache'


# =============================================================================
# A state DB of the layout before several clusters (v2)
# =============================================================================


V2_SCHEMA = '''
    CREATE TABLE pm_meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO pm_meta (key, value) VALUES ('schema_version', '2');
    CREATE TABLE servers (id INTEGER PRIMARY KEY, name VARCHAR(253) NOT NULL, vmid INTEGER UNIQUE, node VARCHAR(64),
        type VARCHAR(8), status VARCHAR(32), ip_address VARCHAR(64), role VARCHAR(64), cpu INTEGER, memory INTEGER,
        os_type VARCHAR(64), source VARCHAR(16), present BOOLEAN NOT NULL DEFAULT TRUE, absent_since DATETIME,
        created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL);
    INSERT INTO servers (name, vmid, role, present, created_at, updated_at)
        VALUES ('web-01', 101, 'web', TRUE, '2026-01-01', '2026-01-01');
    CREATE TABLE datastores (id VARCHAR(100) PRIMARY KEY, name VARCHAR(100) NOT NULL, type VARCHAR(50) NOT NULL,
        size BIGINT DEFAULT 0, used BIGINT DEFAULT 0, available BIGINT DEFAULT 0, content TEXT,
        enabled BOOLEAN DEFAULT TRUE, shared BOOLEAN DEFAULT FALSE, nodes TEXT, is_default_hdd BOOLEAN DEFAULT FALSE,
        is_default_ssd BOOLEAN DEFAULT FALSE, is_system_default BOOLEAN DEFAULT FALSE, created_at DATETIME,
        updated_at DATETIME);
    INSERT INTO datastores (id, name, type, content, is_default_hdd, is_default_ssd, created_at, updated_at) VALUES
        ('HDD-Storage', 'HDD-Storage', 'lvmthin', 'images', TRUE, FALSE, '2026-01-01', '2026-01-01'),
        ('ssd-pool', 'ssd-pool', 'zfspool', 'images,rootdir', FALSE, TRUE, '2026-01-01', '2026-01-01'),
        ('gone-nfs', 'gone-nfs', 'nfs', 'backup', FALSE, FALSE, '2026-01-01', '2026-01-01');
    CREATE TABLE change_log (id INTEGER PRIMARY KEY, at DATETIME NOT NULL, entity VARCHAR(16) NOT NULL,
        key VARCHAR(253) NOT NULL, field VARCHAR(64) NOT NULL, old TEXT, new TEXT, actor VARCHAR(128),
        git_commit VARCHAR(64), tool VARCHAR(64));
    INSERT INTO change_log (at, entity, key, field, old, new, tool)
        VALUES ('2026-01-01', 'datastore', 'hdd', 'default', 'local-lvm', 'HDD-Storage', 'datastore_default');
    CREATE TABLE view_snapshots (name VARCHAR(64) PRIMARY KEY, taken_at DATETIME NOT NULL, payload TEXT NOT NULL);
'''


def v2_db(db, recorded_from):
    """A v2 state DB (one cluster) whose inventory recorded the view of `recorded_from` (a double)."""
    if not is_postgresql(db):
        os.makedirs(os.path.dirname(db))
        execute(db, 'PRAGMA journal_mode=WAL')  # as v2's writers left it
    script(db, V2_SCHEMA + "INSERT INTO view_snapshots (name, taken_at, payload) VALUES ('%s', '2026-01-01', '{}');"
           % view_name(recorded_from.host, recorded_from.port))


def schema_version(db):
    return query(db, "SELECT value FROM pm_meta WHERE key = 'schema_version'")[0]['value']


def test_a_v2_db_is_upgraded_by_refresh_and_its_datastores_become_the_clusters(double, lab_double, state_db):
    v2_db(state_db, double)
    before = state_of(state_db)
    # check mode plans on the rows the upgrade keeps, and writes nothing
    checked = run_module('datastore_refresh', opts(double, state_db), check_mode=True, diff=True)
    assert (checked['default_hdd'], checked['default_ssd']) == ('HDD-Storage', 'ssd-pool')
    assert checked['default_sources'] == {'hdd': 'db', 'ssd': 'db'} and 'gone-nfs' in checked['diff']['before']
    # info reads nothing of it, says so, and writes nothing either
    info = run_module('datastore_info', opts(double, state_db))
    assert info['source'] == 'proxmox' and 'schema v2' in info['msg'] and 'upgrade the DB' in info['msg']
    assert state_of(state_db) == before

    done = run_module('datastore_refresh', opts(double, state_db), diff=True)
    assert done['diff'] == checked['diff']
    assert done['cluster'] == 'demo' and schema_version(state_db) == str(SCHEMA_VERSION)
    assert (done['default_hdd'], done['default_ssd']) == ('HDD-Storage', 'ssd-pool')
    assert done['default_sources'] == {'hdd': 'db', 'ssd': 'db'}
    assert [r['id'] for r in rows_of(state_db, 'demo')] == storage_ids(double)  # gone-nfs dropped by the refresh
    assert defaults_in_db(state_db, 'demo') == (['HDD-Storage'], ['ssd-pool'])
    assert query(state_db, 'SELECT DISTINCT cluster FROM datastores') == [{'cluster': 'demo'}]
    assert [(r['cluster'], r['name'], r['role']) for r in query(state_db, 'SELECT * FROM servers')] == \
        [('demo', 'web-01', 'web')]
    assert [r['key'] for r in query(state_db, 'SELECT * FROM change_log')] == ['hdd']

    # the other cluster then gets rows and defaults of its own
    lab = run_module('datastore_refresh', opts(lab_double, state_db))
    assert (lab['default_hdd'], lab['default_sources']['hdd']) == ('local-lvm', 'builtin')
    assert defaults_in_db(state_db, 'demo') == (['HDD-Storage'], ['ssd-pool'])


def test_a_v2_db_keeps_its_defaults_through_datastore_default(double, state_db, tmp_path):
    v2_db(state_db, double)
    # its cache is the v2 one (local-lvm is not in it)
    with pytest.raises(ModuleFailed, match="Unknown datastore ssd='local-lvm'; the cache holds: HDD-Storage, "
                                           "gone-nfs, ssd-pool. Nothing was changed."):
        run_module('datastore_default', opts(double, state_db, ssd='local-lvm'))
    assert schema_version(state_db) == '2'
    result = run_module('datastore_default', opts(double, state_db, hdd='ssd-pool',
                                                  tfvars_path=str(tmp_path / 'terraform.tfvars.json')))
    assert result['refreshed'] is False and (result['previous_hdd'], result['previous_ssd']) == ('HDD-Storage',
                                                                                                 'ssd-pool')
    assert schema_version(state_db) == str(SCHEMA_VERSION)
    assert defaults_in_db(state_db, 'demo') == (['ssd-pool'], ['ssd-pool'])
    assert read_json(tmp_path / ds.TF_VARS_NAME) == {'proxmox_hdd_datastore': 'ssd-pool',
                                                     'proxmox_ssd_datastore': 'ssd-pool'}


def test_a_v2_db_of_another_cluster_is_not_upgraded_and_nothing_changes(double, lab_double, state_db, tmp_path):
    # its views were recorded from demo's connection: lab's refresh must not take its datastores
    v2_db(state_db, double)
    lab_vars = tmp_path / ds.TF_VARS_NAME
    before = state_of(state_db, lab_vars)
    for module, extra, check in (('datastore_refresh', {}, False), ('datastore_refresh', {}, True),
                                 ('datastore_default', dict(ssd='lab-ssd', terraform_vars_file=str(lab_vars)), False),
                                 ('datastore_default', dict(ssd='lab-ssd', terraform_vars_file=str(lab_vars)), True)):
        with pytest.raises(ModuleFailed) as failed:
            run_module(module, opts(lab_double, state_db, **extra), check_mode=check)
        msg = failed.value.result['msg']
        assert msg.startswith('Cannot upgrade the state DB') and 'schema v2' in msg and 'cluster lab' in msg, msg
        assert 'exception' not in failed.value.result
        assert state_of(state_db, lab_vars) == before


def test_info_on_a_missing_db_of_an_unknown_cluster_creates_nothing(double, state_db):
    double.add_fault(None, r'.*', status=500)
    info = run_module('datastore_info', opts(double, state_db))
    assert (info['cluster'], info['source'], info['datastores']) == (None, 'fallback', [])
    assert created_nothing(state_db)
