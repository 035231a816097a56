"""GitOps over several clusters (issue 17, docs/clusters.md): validate, apply and drift cover every cluster at once.

Two API doubles: `demo` (the sample cluster) and `lab`, whose web-01 has the same name AND the same vmid (101) as
demo's. A tmp config repo holds the inventory file with the `clusters` mapping (no secret: those come from
PROXMOX_DEMO_TOKEN_SECRET and PROXMOX_LAB_TOKEN_SECRET, as in CI), each cluster's tfvars under terraform/<cluster>/,
and the declarations in state/. The playbooks run as real `ansible-playbook` processes, as in test_gitops.py; the
error messages and the result shapes are checked in-process too (same module, faster).
"""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ansible_collections.proxmox_manager.core.plugins.module_utils import declarations, merged_view
from tests.conftest import (
    LAB_TFVARS,
    ROOT,
    SAMPLE_TFVARS,
    ModuleFailed,
    clusters_mapping,
    connection_env,
    run_ansible,
    run_module,
)
from tests.integration.test_gitops import copy_db, debug_lines, digest, recap, table_rows
from tests.pve_double.cluster import Storage
from tests.seed_db import created_nothing, is_postgresql, query

REPORT = 'Show the plan or what changed'
TF_VARS = 'datastores.auto.tfvars.json'

# web-01 is declared by its host name in demo and by its cluster in lab; the other names are in one cluster only.
ROLES = '''servers:
  web-01.demo:
    role: web
  web-01:
    role: db
    cluster: lab
  AI-agent:
    role: web
  lab-ci:
    role: java
'''
# lab has neither HDD-Storage nor ssd-pool: it says otherwise for both.
DATASTORES = '''default_hdd: HDD-Storage
default_ssd: ssd-pool
clusters:
  lab:
    default_hdd: local-lvm
    default_ssd: lab-ssd
'''


# -- the config repo ---------------------------------------------------------------


class ClusterRepo:
    """A config repo for the clusters demo and lab, and the playbooks run against it."""

    def __init__(self, directory, demo, lab, db=None):
        self.dir = directory
        # Not in state/ (which holds the declarations), so that "no DB was made" means no directory either.
        self.db = str(db or directory / 'db' / 'proxmox_manager.db')
        self.backups = directory / 'db' / 'backups'
        self.roles, self.datastores = directory / 'state' / 'roles.yml', directory / 'state' / 'datastores.yml'
        self.roles.parent.mkdir(parents=True, exist_ok=True)
        self.roles.write_text(ROLES)
        self.datastores.write_text(DATASTORES)
        tfvars = {}
        for name, source in (('demo', SAMPLE_TFVARS), ('lab', LAB_TFVARS)):
            tfvars[name] = directory / 'terraform' / name / 'terraform.tfvars.json'
            tfvars[name].parent.mkdir(parents=True)
            shutil.copy(source, tfvars[name])
        mapping = clusters_mapping(demo=(demo, tfvars['demo'].relative_to(directory)),
                                   lab=(lab, tfvars['lab'].relative_to(directory)))
        for entry in mapping.values():
            del entry['api_token_secret']  # git holds no secret
        self.inventory = directory / 'inventory' / 'proxmox.yml'
        self.inventory.parent.mkdir()
        self.inventory.write_text(yaml.safe_dump(dict(plugin='proxmox_manager.core.proxmox', api_retries=0,
                                                      clusters=mapping)))
        self.tf_vars = dict((name, directory / 'terraform' / name / TF_VARS) for name in ('demo', 'lab'))
        # Nothing of the single-cluster environment: each cluster's connection comes from the inventory file.
        env = dict((k, v) for k, v in connection_env(demo).items() if not k.startswith('PROXMOX_'))
        env.update(PROXMOX_MANAGER_PROJECT_DIR=str(directory), PROXMOX_MANAGER_DB=self.db,
                   PROXMOX_DEMO_TOKEN_SECRET=demo.token_secret, PROXMOX_LAB_TOKEN_SECRET=lab.token_secret)
        self.env = env

    def playbook(self, name, *args):
        return run_ansible(['ansible-playbook', '-i', 'localhost,', str(ROOT / 'playbooks' / name)] + list(args),
                           self.env)

    def ok(self, name, *args):
        proc = self.playbook(name, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def roles_in_db(self):
        """{(cluster, name, vmid): role} of the rows with a role."""
        return dict(((r['cluster'], r['name'], r['vmid']), r['role']) for r in query(
            self.db, 'SELECT cluster, name, vmid, role FROM servers WHERE role IS NOT NULL'))

    def default_flags(self):
        """{cluster: (default hdd id, default ssd id)} from the datastores rows."""
        rows = query(self.db, 'SELECT cluster, id, is_default_hdd, is_default_ssd FROM datastores')
        return dict((cluster, tuple(next((r['id'] for r in rows if r['cluster'] == cluster and r[flag]), None)
                                    for flag in ('is_default_hdd', 'is_default_ssd')))
                    for cluster in sorted(set(r['cluster'] for r in rows)))

    def vars_files(self):
        return dict((name, json.loads(path.read_text()) if path.exists() else None)
                    for name, path in self.tf_vars.items())

    def nothing_written_since(self, before):
        """The state DB and the vars files are as `before` (a snapshot())."""
        return self.snapshot() == before

    def snapshot(self):
        return (digest(self.db), [digest(path) for path in self.tf_vars.values()],
                digest(self.dir / 'terraform' / TF_VARS))


def applied_roles():
    """What ROLES records: web-01 in each cluster under one vmid, each with its own role."""
    return {('demo', 'web-01', 101): 'web', ('demo', 'AI-agent', 100): 'web',
            ('lab', 'web-01', 101): 'db', ('lab', 'lab-ci', 300): 'java'}


@pytest.fixture(scope='module')
def applied_sqlite(sample_double, lab_module_double, tmp_path_factory):
    """ROLES and DATASTORES applied once to a fresh SQLite DB over both clusters: (ClusterRepo, first apply)."""
    repo = ClusterRepo(tmp_path_factory.mktemp('clusters'), sample_double, lab_module_double)
    return repo, repo.ok('apply.yml')


@pytest.fixture
def applied_copy(applied_sqlite, sample_double, lab_module_double, tmp_path):
    """A copy of the applied repo (its state DB and vars files) the test may change."""
    base, _first = applied_sqlite
    repo = ClusterRepo(tmp_path, sample_double, lab_module_double)
    copy_db(base.db, Path(repo.db))
    for name, path in base.tf_vars.items():
        shutil.copy(path, repo.tf_vars[name])
    return repo


# -- resolving a name across clusters -----------------------------------------------------


def test_a_name_in_two_clusters_without_its_cluster_is_refused_with_file_line_and_the_hint(double, lab_double,
                                                                                           tmp_path):
    repo = ClusterRepo(tmp_path, double, lab_double)
    repo.roles.write_text('servers:\n  AI-agent:\n    role: web\n  web-01:\n    role: web\n')
    # the playbooks read state/roles.yml of the config repo, and name it so
    expected = ("state/roles.yml:4: servers.web-01: Server name 'web-01' is used in the clusters demo, lab: name its "
                "cluster (cluster: demo), or use one of the host names web-01.demo, web-01.lab.")
    for playbook in ('validate.yml', 'apply.yml'):
        proc = repo.playbook(playbook)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and expected in out, out
        assert 'Traceback' not in out
    assert created_nothing(repo.db) and repo.vars_files() == {'demo': None, 'lab': None}


def test_cluster_names_in_the_declarations_are_checked_with_file_and_line(double, lab_double, tmp_path):
    repo = ClusterRepo(tmp_path, double, lab_double)
    repo.roles.write_text('servers:\n  web-01:\n    role: web\n    cluster: prod\n  lab-ci:\n    role: java\n'
                          '    cluster: demo\n  db-01:\n    role: db\n    cluster: -x\n')
    repo.datastores.write_text(DATASTORES + '  labb:\n    default_ssd: lab-ssd\n')
    result = validate_fails(repo)
    roles, datastores = str(repo.roles), str(repo.datastores)
    assert result['problems'] == [
        "%s:4: servers.web-01.cluster: The cluster 'prod' is not one of the clusters (demo, lab)." % roles,
        "%s:7: servers.lab-ci.cluster: Server 'lab-ci' is not in the cluster demo; it is in lab." % roles,
        "%s:10: servers.db-01.cluster: '-x' does not match '^[A-Za-z][A-Za-z0-9_-]{0,62}$'" % roles,
        "%s:7: clusters.labb: The cluster 'labb' is not one of the clusters (demo, lab). Did you mean 'lab'?"
        % datastores]


def test_the_host_name_or_the_cluster_picks_the_server(double, lab_double, tmp_path):
    result = validate(ClusterRepo(tmp_path, double, lab_double))
    listed = dict((d['key'], (d['host'], d['cluster'], d['vmid'])) for d in result['declarations'])
    assert listed == {'web-01.demo': ('web-01.demo', 'demo', 101), 'web-01': ('web-01.lab', 'lab', 101),
                      'AI-agent': ('AI-agent', 'demo', 100), 'lab-ci': ('lab-ci', 'lab', 300)}
    assert [item['cluster'] for item in result['clusters']] == ['demo', 'lab']  # the inventory file's order
    assert [(item['declared'], item['undeclared']) for item in result['clusters']] == [(2, 0), (2, 0)]
    # one server_role entry per server, by the name and vmid its own cluster's view knows, naming that cluster
    assert result['servers'] == [dict(name='web-01', vmid=101, cluster='demo', role='web', state='present'),
                                 dict(name='web-01', vmid=101, cluster='lab', role='db', state='present'),
                                 dict(name='AI-agent', vmid=100, cluster='demo', role='web', state='present'),
                                 dict(name='lab-ci', vmid=300, cluster='lab', role='java', state='present')]
    # returned once: no cluster item repeats them
    assert all(set(item) == {'cluster', 'declared', 'undeclared', 'default_hdd', 'default_ssd', 'datastores_refresh',
                             'terraform_vars_file'} for item in result['clusters'])


# -- datastore defaults per cluster ---------------------------------------------------------


def test_each_cluster_gets_its_own_defaults_and_vars_file(double, lab_double, tmp_path):
    result = validate(ClusterRepo(tmp_path, double, lab_double))
    defaults = dict((item['cluster'], (item['default_hdd'], item['default_ssd'], item['terraform_vars_file']))
                    for item in result['clusters'])
    assert defaults == {'demo': ('HDD-Storage', 'ssd-pool', str(tmp_path / 'terraform' / 'demo' / TF_VARS)),
                        'lab': ('local-lvm', 'lab-ssd', str(tmp_path / 'terraform' / 'lab' / TF_VARS))}
    assert (result['default_hdd'], result['default_ssd']) == ('HDD-Storage', 'ssd-pool')  # the top level


def test_the_defaults_of_a_cluster_come_kind_by_kind_from_its_entry_else_the_top_level(tmp_path):
    roles, datastores = tmp_path / 'roles.yml', tmp_path / 'datastores.yml'
    roles.write_text('servers: {}\n')
    datastores.write_text(DATASTORES.replace('    default_hdd: local-lvm\n', ''))
    loaded = declarations.load(str(roles), str(datastores))
    assert loaded.defaults_for('lab') == {'hdd': 'HDD-Storage', 'ssd': 'lab-ssd'}
    assert loaded.defaults_for('demo') == loaded.defaults == {'hdd': 'HDD-Storage', 'ssd': 'ssd-pool'}


def test_a_top_level_default_one_cluster_lacks_names_that_cluster(double, lab_double, tmp_path):
    repo = ClusterRepo(tmp_path, double, lab_double)
    repo.datastores.write_text('default_hdd: HDD-Storage\ndefault_ssd: ssd-pool\nclusters:\n  lab:\n'
                               '    default_hdd: local-lvm\n')
    result = validate_fails(repo)
    assert result['problems'] == [
        "%s:2: default_ssd: Cluster lab: datastore 'ssd-pool' is neither in the datastore cache nor in Proxmox "
        "(enabled datastores: lab-ssd, local, local-lvm). Give the cluster its own under clusters.lab.default_ssd."
        % repo.datastores]


def test_two_clusters_writing_one_vars_file_are_refused(double, lab_double, tfvars, lab_tfvars, tmp_path):
    # the fixtures' tfvars files share tmp_path: their datastores.auto.tfvars.json would be one file
    repo = ClusterRepo(tmp_path / 'repo', double, lab_double)
    with pytest.raises(ModuleFailed) as failed:
        run_module('declarations_validate', dict(
            clusters=clusters_option(demo=(double, tfvars), lab=(lab_double, lab_tfvars)),
            roles_file=str(repo.roles), datastores_file=str(repo.datastores), state_db=repo.db,
            roles_path=str(ROOT / 'roles')))
    assert failed.value.result['problems'] == [
        'The clusters demo and lab would both write their default datastores to %s, as their tfvars files are in '
        'one directory: give each cluster a tfvars_path in a directory of its own.' % (tmp_path / TF_VARS)]


# -- apply ---------------------------------------------------------------------------------


@pytest.fixture(params=['sqlite', 'postgresql'])
def applied(request, applied_sqlite, sample_double, lab_module_double, tmp_path):
    """The applied repo on SQLite, and the same apply on a fresh PostgreSQL database."""
    if request.param == 'sqlite':
        return applied_sqlite
    repo = ClusterRepo(tmp_path, sample_double, lab_module_double, request.getfixturevalue('postgresql_db'))
    return repo, repo.ok('apply.yml')


def test_apply_records_each_cluster_and_a_second_apply_changes_nothing(applied):
    repo, first = applied
    assert 'secret' not in repo.inventory.read_text()  # each cluster's secret came from its own variable
    # one server_role and one datastore_default call per cluster
    assert recap(first)['changed'] == 4 and recap(first)['failed'] == 0
    assert repo.roles_in_db() == applied_roles()
    assert repo.default_flags() == {'demo': ('HDD-Storage', 'ssd-pool'), 'lab': ('local-lvm', 'lab-ssd')}
    assert repo.vars_files() == {
        'demo': {'proxmox_hdd_datastore': 'HDD-Storage', 'proxmox_ssd_datastore': 'ssd-pool'},
        'lab': {'proxmox_hdd_datastore': 'local-lvm', 'proxmox_ssd_datastore': 'lab-ssd'}}
    assert not (repo.dir / 'terraform' / TF_VARS).exists()
    report = debug_lines(first, REPORT)
    assert report[0] == 'Cluster demo:' and 'Cluster lab:' in report
    lab = report[report.index('Cluster lab:'):]
    assert lab[:4] == ['Cluster lab:', 'Roles: 2 of 2 server(s) changed:', '  web-01: - -> db', '  lab-ci: - -> java']
    # lab's cache starts from the built-in names, as datastore_default alone would
    assert 'Default datastores changed: hdd local-lvm -> local-lvm, ssd local -> lab-ssd (%s)' % repo.tf_vars['lab'] \
        in lab
    if not is_postgresql(repo.db):
        assert not repo.backups.exists()  # the first change made the DB: nothing to back up

    before = repo.snapshot()
    second = repo.ok('apply.yml')
    assert recap(second)['changed'] == 0 and recap(second)['failed'] == 0
    assert repo.nothing_written_since(before)
    assert repo.roles_in_db() == applied_roles()
    report = debug_lines(second, REPORT)
    assert 'Roles: 0 of 2 server(s) changed.' in report and not any('backed up' in line for line in report)


def test_a_declaration_naming_lab_changes_lab_only_and_one_backup_covers_both(applied_copy):
    repo = applied_copy
    # lab's web-01 changes role; demo's web-01 (the same vmid, 101) is no longer declared: it keeps its role.
    repo.roles.write_text('servers:\n  web-01:\n    role: java\n    cluster: lab\n  AI-agent:\n    role: db\n'
                          '  lab-ci:\n    role: java\n')
    before = repo.snapshot()
    plan = repo.ok('apply.yml', '--check', '--diff')
    assert repo.nothing_written_since(before)
    report = debug_lines(plan, REPORT)
    assert report[:2] == ['PLAN (check mode): nothing was written.', 'Cluster demo:']
    demo, lab = report[:report.index('Cluster lab:')], report[report.index('Cluster lab:'):]
    assert 'Roles: 1 of 1 server(s) would change:' in demo and '  AI-agent: web -> db' in demo
    assert demo[demo.index('No longer declared, role kept (-e prune=true takes it away):') + 1] == \
        '  web-01.demo: web'
    assert 'Roles: 1 of 2 server(s) would change:' in lab and '  web-01: db -> java' in lab

    applied = repo.ok('apply.yml')
    expected = dict(applied_roles())
    expected.update({('lab', 'web-01', 101): 'java', ('demo', 'AI-agent', 100): 'db'})
    assert repo.roles_in_db() == expected
    backups = list(repo.backups.glob('*.db'))
    assert len(backups) == 1, backups  # before the first change, whichever cluster it was in: not one per cluster
    assert ['State DB backed up to %s' % backups[0]] == [line for line in debug_lines(applied, REPORT)
                                                         if 'backed up' in line]
    assert query(str(backups[0]), "SELECT role FROM servers WHERE cluster = 'lab' AND vmid = 101")[0]['role'] == 'db'

    pruned = repo.ok('apply.yml', '-e', 'prune=true')
    assert recap(pruned)['changed'] == 1
    del expected[('demo', 'web-01', 101)]
    assert repo.roles_in_db() == expected

    # a cluster with nothing declared any more is still pruned, and only when asked
    repo.roles.write_text('servers:\n  AI-agent:\n    role: db\n')
    assert recap(repo.ok('apply.yml'))['changed'] == 0
    assert recap(repo.ok('apply.yml', '-e', 'prune=true'))['changed'] == 1
    assert repo.roles_in_db() == {('demo', 'AI-agent', 100): 'db'}


def test_one_vars_file_for_several_clusters_is_refused(applied_copy):
    repo = applied_copy
    before = repo.snapshot()
    proc = repo.playbook('apply.yml', '-e', 'terraform_vars_file=%s' % (repo.dir / TF_VARS))
    assert proc.returncode != 0
    assert '-e terraform_vars_file names one file, but the defaults of each of the clusters demo, lab go beside ' \
           "that cluster's tfvars file" in proc.stdout
    assert repo.nothing_written_since(before)


# -- drift ----------------------------------------------------------------------------------


def test_drift_has_a_cluster_column(applied_copy):
    repo = applied_copy
    repo.roles.write_text(ROLES.replace('    role: db\n    cluster: lab', '    role: was\n    cluster: lab'))
    proc = repo.ok('drift.yml')
    lines = debug_lines(proc, 'Show the drift table')
    assert lines[0].split()[:2] == ['SERVER', 'CLUSTER']
    rows = table_rows(lines)
    assert (rows['web-01.lab']['CLUSTER'], rows['web-01.lab']['VMID'], rows['web-01.lab']['DRIFT']) == (
        'lab', '101', 'role mismatch')
    assert (rows['web-01.demo']['CLUSTER'], rows['web-01.demo']['VMID'], rows['web-01.demo']['DRIFT']) == (
        'demo', '101', 'ok')
    assert rows['lab-ct']['CLUSTER'] == 'lab' and rows['monitoring']['CLUSTER'] == 'demo'
    assert lines[-1].startswith('Drift in 1 of ')


# -- a default only Proxmox knows yet ---------------------------------------------------------


def test_a_cluster_whose_cache_lacks_its_default_is_refreshed_alone(double, lab_double, tmp_path):
    repo = ClusterRepo(tmp_path, double, lab_double)
    repo.ok('apply.yml')
    lab_double.cluster.storages.append(Storage('lab-nvme', 'zfspool', 'images,rootdir'))
    repo.datastores.write_text(DATASTORES.replace('default_ssd: lab-ssd', 'default_ssd: lab-nvme'))
    lines = debug_lines(repo.ok('validate.yml'), 'Show what is declared')
    assert lines == ['state/roles.yml: 4 server(s) declared, all valid.',
                     'Cluster demo: 2 server(s) declared, default_hdd=HDD-Storage, default_ssd=ssd-pool',
                     '  web: web-01.demo, AI-agent',
                     'Cluster lab: 2 server(s) declared, default_hdd=local-lvm, default_ssd=lab-nvme (its datastore '
                     'cache needs a refresh)',
                     '  db: web-01.lab',
                     '  java: lab-ci']

    before = repo.snapshot()
    plan = debug_lines(repo.ok('apply.yml', '--check'), REPORT)
    assert repo.nothing_written_since(before)
    assert 'Default datastores after a cache refresh: hdd local-lvm, ssd lab-nvme' in plan
    assert plan.count('Default datastores unchanged: hdd HDD-Storage, ssd ssd-pool (%s)' % repo.tf_vars['demo']) == 1

    demo_rows = query(repo.db, "SELECT * FROM datastores WHERE cluster = 'demo' ORDER BY id")
    proc = repo.ok('apply.yml')
    assert recap(proc)['changed'] == 2  # lab's refresh and lab's default; nothing of demo
    assert repo.default_flags() == {'demo': ('HDD-Storage', 'ssd-pool'), 'lab': ('local-lvm', 'lab-nvme')}
    assert repo.vars_files()['lab'] == {'proxmox_hdd_datastore': 'local-lvm', 'proxmox_ssd_datastore': 'lab-nvme'}
    assert query(repo.db, "SELECT * FROM datastores WHERE cluster = 'demo' ORDER BY id") == demo_rows
    assert len(list(repo.backups.glob('*.db'))) == 1  # taken by the refresh, the first change


# -- a cluster that is down -------------------------------------------------------------------


def test_a_cluster_down_fails_validate_and_apply_naming_it_with_nothing_written(double, lab_double, tmp_path):
    repo = ClusterRepo(tmp_path, double, lab_double)
    repo.ok('apply.yml')
    repo.roles.write_text(ROLES.replace('role: java', 'role: web'))  # a change pending in lab
    repo.datastores.write_text(DATASTORES.replace('default_hdd: HDD-Storage', 'default_hdd: local-lvm'))  # in demo
    before = repo.snapshot()
    lab_double.add_fault(path=r'^/cluster/resources', status=503, message='service unavailable')
    for playbook in ('validate.yml', 'apply.yml'):
        proc = repo.playbook(playbook)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and 'Cluster lab: ' in out, out
        assert 'Traceback' not in out
        assert repo.nothing_written_since(before)
    assert recap(proc)['changed'] == 0


# -- in-process helpers -----------------------------------------------------------------------


def clusters_option(**doubles_and_tfvars):
    """The `clusters` option the action hands declarations_validate, for {name: (double, tfvars path)}."""
    return [dict(entry, cluster=name) for name, entry in clusters_mapping(**doubles_and_tfvars).items()]


def validate(repo):
    """declarations_validate in-process over both clusters of a ClusterRepo (which knows their doubles)."""
    mapping = yaml.safe_load(repo.inventory.read_text())['clusters']
    secrets = dict(demo=repo.env['PROXMOX_DEMO_TOKEN_SECRET'], lab=repo.env['PROXMOX_LAB_TOKEN_SECRET'])
    clusters = [dict(entry, cluster=name, api_token_secret=secrets[name],
                     tfvars_path=str(repo.dir / entry['tfvars_path'])) for name, entry in mapping.items()]
    return run_module('declarations_validate', dict(clusters=clusters, roles_file=str(repo.roles),
                                                    datastores_file=str(repo.datastores), state_db=repo.db,
                                                    project_dir=str(repo.dir), roles_path=str(ROOT / 'roles')))


def validate_fails(repo):
    with pytest.raises(ModuleFailed) as failed:
        validate(repo)
    result = failed.value.result
    assert result['msg'].startswith('%d problem' % len(result['problems']))
    assert created_nothing(repo.db)
    return result


# -- matching state DB rows within their cluster (pure) ---------------------------------------------------


def two_cluster_view():
    guest = dict(type='qemu', node='n1', status='running')
    demo = merged_view.build_view([dict(guest, vmid=101, name='web-01'), dict(guest, vmid=100, name='AI-agent')], {},
                                  cluster='demo')
    lab = merged_view.build_view([dict(guest, vmid=101, name='web-01')], {}, cluster='lab')
    return merged_view.combine([demo, lab])


def row(cluster, name, vmid, role):
    return dict(cluster=cluster, name=name, vmid=vmid, role=role)


def test_rows_match_servers_by_cluster_and_vmid():
    view = two_cluster_view()
    rows = [row('demo', 'web-01', 101, 'web'), row('lab', 'web-01', 101, 'db'), row('lab', 'gone', 150, 'ftp'),
            row('prod', 'web-01', 101, 'java')]  # a cluster this call does not cover: none of its business
    matched, stale = declarations.applied_roles(view, rows)
    assert dict((host, r['role']) for host, r in matched.items()) == {'web-01.demo': 'web', 'web-01.lab': 'db'}
    assert stale == [rows[2]]
    # declaring lab's web-01 leaves demo's (the same vmid) to prune, and only it
    entry = dict(key='web-01', role='db', vmid=None, cluster='lab', vars={}, line=2)
    resolved = [(entry, view.resolve('web-01', cluster='lab'))]
    prune, _stale = declarations.prune_entries(view, resolved, rows, ['web', 'db'])
    assert [(p['cluster'], p['host'], p['vmid'], p['state']) for p in prune] == [('demo', 'web-01.demo', 101, 'absent')]
    drift = dict((r['host'], (r['cluster'], r['drift'])) for r in declarations.drift_rows(view, resolved, [], rows))
    assert drift == {'AI-agent': ('demo', []), 'gone-150': ('lab', ['undeclared']),
                     'web-01.demo': ('demo', ['undeclared']), 'web-01.lab': ('lab', [])}


def test_a_declaration_that_resolves_nowhere_keeps_its_cluster_in_the_drift_rows():
    view = two_cluster_view()
    entries = [dict(key='AI-agent', role='web', vmid=None, cluster='lab', vars={}, line=2),
               dict(key='web-01', role='web', vmid=None, cluster=None, vars={}, line=4)]
    unresolved = [(e, view.find(e['key'], e['vmid'], e['cluster'])[1]) for e in entries]
    assert unresolved[0][1] == "Server 'AI-agent' is not in the cluster lab; it is in demo."
    rows = dict((r['host'], r) for r in declarations.drift_rows(view, [], unresolved,
                                                                [row('lab', 'AI-agent', None, 'web')]))
    assert (rows['AI-agent']['cluster'], rows['AI-agent']['proxmox'], rows['AI-agent']['db_role']) == (
        'lab', 'not found', 'web')
    assert (rows['web-01']['cluster'], rows['web-01']['proxmox']) == (None, 'ambiguous')
    table = declarations.render_table(list(rows.values())).splitlines()
    assert table[0].split()[:3] == ['SERVER', 'CLUSTER', 'VMID']
