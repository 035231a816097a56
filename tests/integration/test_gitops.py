"""GitOps (issue 6): declarations in state/, validated, planned, applied and compared by playbooks.

Playbooks run as real `ansible-playbook` processes from the repo root with the
repo's ansible.cfg and inventory, against the in-process API double, with a
tmp copy of the declarations, a tmp state DB and a tmp Terraform vars file.
Error messages are checked in-process too (same module, faster). The apply, the
second apply, the plan and the drift run on a SQLite file and on PostgreSQL
(PROXMOX_MANAGER_DB=postgresql+psycopg://...); the rest on SQLite.
"""

import gc
import hashlib
import json
import os
import re
import shutil
import sqlite3

import pytest
import yaml
from ansible.module_utils.common.warnings import get_warning_messages

from ansible_collections.proxmox_manager.core.plugins.module_utils.role_assignment import role_catalog
from ansible_collections.proxmox_manager.core.plugins.module_utils.schemas import SCHEMAS
from tests.conftest import (
    ROOT,
    SAMPLE,
    ModuleFailed,
    connection_env,
    connection_options,
    run_ansible,
    run_module,
)
from tests.postgres import database_of
from tests.pve_double import load_scenario
from tests.seed_db import execute, is_postgresql, query, settled_digest

STATE = ROOT / 'state'


# -- helpers -------------------------------------------------------------------


def write_declarations(directory, roles=None, datastores=None):
    """state/roles.yml and state/datastores.yml under `directory` (the committed ones by default)."""
    state = directory / 'state'
    state.mkdir(parents=True, exist_ok=True)
    roles_file, datastores_file = state / 'roles.yml', state / 'datastores.yml'
    roles_file.write_text(roles if roles is not None else (STATE / 'roles.yml').read_text())
    datastores_file.write_text(datastores if datastores is not None else (STATE / 'datastores.yml').read_text())
    return roles_file, datastores_file


def committed_roles():
    return (STATE / 'roles.yml').read_text()


def line_of(path, text):
    """1-based line number of the first line that, stripped, starts with `text`."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip().startswith(text):
            return number
    raise AssertionError('%r not in %s' % (text, path))


def digest(path):
    """sha256 of a file (a SQLite DB after every connection closed), None when absent; of every table of a
    PostgreSQL state DB."""
    if is_postgresql(str(path)):
        return settled_digest(path)
    gc.collect()
    if not os.path.exists(path):
        return None
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def db_roles(path):
    """{(name, vmid): role} of the state DB rows that carry a role."""
    return dict(((r['name'], r['vmid']), r['role'])
                for r in query(str(path), 'SELECT name, vmid, role FROM servers WHERE role IS NOT NULL'))


def set_db_role(path, name, role):
    execute(str(path), 'UPDATE servers SET role = ? WHERE name = ?', (role, name))


def copy_db(source, dest):
    """A consistent copy of a SQLite DB (WAL included)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    src, out = sqlite3.connect(str(source)), sqlite3.connect(str(dest))
    src.backup(out)
    src.close()
    out.close()


def recap(proc):
    """{'ok': n, 'changed': n, ...} from the PLAY RECAP line of localhost."""
    line = next(line for line in proc.stdout.splitlines() if line.startswith('localhost '))
    return dict((key, int(value)) for key, value in re.findall(r'(\w+)=(\d+)', line))


def debug_lines(proc, task):
    """The `msg` list a debug task printed, as plain strings."""
    out = proc.stdout
    start = out.index('TASK [%s]' % task)
    block = out[out.index('"msg": [', start) + len('"msg": ['):]
    block = block[:block.index('\n    ]')]
    return [json.loads(line.strip().rstrip(',')) for line in block.splitlines() if line.strip()]


def table_rows(lines):
    """{host: {column: value}} of the drift table lines."""
    header = re.split(r'\s{2,}', lines[0])
    return dict((cells[0], dict(zip(header, cells))) for cells in (re.split(r'\s{2,}', line) for line in lines[1:-1]))


class GitOps:
    """One config repo checkout's worth of files, in tmp, and the playbooks run against them."""

    def __init__(self, double, directory, db=None):
        self.dir = directory
        self.roles, self.datastores = write_declarations(directory)
        self.db = db or directory / 'state' / 'proxmox_manager.db'
        self.tf_vars = directory / 'terraform' / 'datastores.auto.tfvars.json'
        self.env = connection_env(double, PROXMOX_MANAGER_DB=str(self.db), PROXMOX_API_RETRIES='0')

    def playbook(self, name, *args):
        return run_ansible(['ansible-playbook', 'playbooks/%s' % name, '-e', 'roles_file=%s' % self.roles,
                            '-e', 'datastores_file=%s' % self.datastores,
                            '-e', 'terraform_vars_file=%s' % self.tf_vars] + list(args), self.env)

    def ok(self, name, *args):
        proc = self.playbook(name, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc


# -- fixtures --------------------------------------------------------------------


@pytest.fixture(scope='module')
def applied_sqlite(sample_double, tmp_path_factory):
    """The committed declarations applied once to a fresh SQLite DB: (GitOps, first apply)."""
    repo = GitOps(sample_double, tmp_path_factory.mktemp('applied'))
    return repo, repo.ok('apply.yml')


@pytest.fixture(scope='module')
def applied_postgresql(sample_double, tmp_path_factory, postgresql_server):
    """The same on a fresh PostgreSQL database (PROXMOX_MANAGER_DB=postgresql+psycopg://...)."""
    name = postgresql_server.create_database('gitops_applied')
    try:
        repo = GitOps(sample_double, tmp_path_factory.mktemp('applied'), postgresql_server.url(name))
        first = repo.playbook('apply.yml')
        assert first.returncode == 0, first.stdout + first.stderr
        # apply.yml asks for backup: true; a PostgreSQL DB is not copied, and the apply says so.
        assert 'No backup taken: state backup copies SQLite files only; back postgresql+psycopg://' in \
            first.stdout + first.stderr
        yield repo, first
    finally:
        postgresql_server.drop_database(name)


@pytest.fixture(params=['sqlite', 'postgresql'])
def applied(request):
    """The applied repo of each state DB: SQLite, then PostgreSQL."""
    return request.getfixturevalue('applied_%s' % request.param)


@pytest.fixture
def copy_of(request, tmp_path):
    """copy_of(db): a copy of a state DB the test may change (a SQLite file, or a new PostgreSQL database)."""
    made = []

    def _copy(db, name='copy.db'):
        if is_postgresql(str(db)):
            server = request.getfixturevalue('postgresql_server')
            made.append((server, server.create_database(request.node.name, template=database_of(db))))
            return server.url(made[-1][1])
        dest = tmp_path / name
        copy_db(db, dest)
        return dest
    yield _copy
    for server, name in made:
        server.drop_database(name)


@pytest.fixture
def repo(sample_double, tmp_path):
    return GitOps(sample_double, tmp_path)


def repo_like(applied, sample_double, tmp_path, copy_of):
    """A tmp repo whose DB and vars file are copies of the applied ones."""
    base, _first = applied
    repo = GitOps(sample_double, tmp_path, None if not is_postgresql(str(base.db)) else copy_of(base.db))
    if not is_postgresql(str(base.db)):
        copy_db(base.db, repo.db)
    repo.tf_vars.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(base.tf_vars, repo.tf_vars)
    return repo


@pytest.fixture
def applied_repo(applied, sample_double, tmp_path, copy_of):
    """A copy of the applied repo, on each state DB."""
    return repo_like(applied, sample_double, tmp_path, copy_of)


@pytest.fixture
def sqlite_applied_repo(applied_sqlite, sample_double, tmp_path, copy_of):
    """A copy of the applied repo with a SQLite state DB (backups copy SQLite files)."""
    return repo_like(applied_sqlite, sample_double, tmp_path, copy_of)


def validate(double, tmp_path, roles=None, datastores=None, state_db=None):
    """declarations_validate in-process on tmp declarations."""
    roles_file, datastores_file = write_declarations(tmp_path, roles, datastores)
    return run_module('declarations_validate', dict(
        connection_options(double, api_retries=0), roles_file=str(roles_file), datastores_file=str(datastores_file),
        state_db=state_db or str(tmp_path / 'state' / 'proxmox_manager.db')))


def validate_fails(double, tmp_path, roles=None, datastores=None):
    with pytest.raises(ModuleFailed) as failed:
        validate(double, tmp_path, roles, datastores)
    assert failed.value.result['msg'].startswith('%d problem' % len(failed.value.result['problems']))
    return failed.value.result


# -- validation errors ------------------------------------------------------------


def test_typo_in_a_server_name_fails_the_apply_with_file_line_and_near_match(repo):
    repo.roles.write_text(committed_roles().replace('  AI-agent:', '  AI-agnet:'))
    proc = repo.playbook('apply.yml')
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    line = line_of(repo.roles, 'AI-agnet:')
    assert "state/roles.yml:%d: servers.AI-agnet: Server 'AI-agnet' does not exist" % line in out
    assert "Did you mean 'AI-agent'?" in out
    assert 'Traceback' not in out
    # validation runs first: no role was recorded (no state DB was even made), no vars file written
    assert not os.path.exists(repo.db) or db_roles(repo.db) == {}
    assert not repo.tf_vars.exists()


def test_unknown_role_names_the_role_field_and_the_catalog(sample_double, tmp_path):
    roles = committed_roles().replace('role: ftp', 'role: fpt')
    result = validate_fails(sample_double, tmp_path, roles)
    line = line_of(tmp_path / 'state' / 'roles.yml', 'role: fpt')
    assert result['problems'] == [
        "%s:%d: servers.ftp-ct.role: Role 'fpt' is not in the role catalog (db, ftp, java, monitoring, search, "
        "was, web). Did you mean 'ftp'?" % (tmp_path / 'state' / 'roles.yml', line)]


def test_schema_violations_name_file_line_and_field(sample_double, tmp_path):
    roles = committed_roles().replace('    vmid: 110', '    vmid: one-ten').replace(
        '  db-01:\n    role: db', '  db-01:\n    rol: db')
    result = validate_fails(sample_double, tmp_path, roles, 'default_hdd: HDD-Storage\ndefault_sdd: ssd-pool\n')
    roles_file, ds_file = tmp_path / 'state' / 'roles.yml', tmp_path / 'state' / 'datastores.yml'
    problems = result['problems']
    db_01 = '%s:%d: servers.db-01: ' % (roles_file, line_of(roles_file, 'db-01:'))
    assert sorted(problems[:2]) == [db_01 + "'role' is a required property",
                                    db_01 + "Additional properties are not allowed ('rol' was unexpected)"]
    assert problems[2:] == [
        "%s:%d: servers.worker.vmid: 'one-ten' is not of type 'integer'" % (roles_file, line_of(roles_file, 'vmid:')),
        "%s:1: (top level): Additional properties are not allowed ('default_sdd' was unexpected)" % ds_file]


def test_bad_yaml_names_file_line_and_column(sample_double, tmp_path):
    result = validate_fails(sample_double, tmp_path, 'servers:\n  web-01:\n    role: web\n   db-01:\n    role: db\n')
    assert result['problems'] == ['%s:4:4: not valid YAML: did not find expected key (while parsing a block mapping)'
                                  % (tmp_path / 'state' / 'roles.yml')]


def test_a_key_given_twice_is_an_error_not_silently_dropped(sample_double, tmp_path):
    roles = committed_roles() + '  web-01:\n    role: db\n'
    result = validate_fails(sample_double, tmp_path, roles)
    roles_file = tmp_path / 'state' / 'roles.yml'
    first = line_of(roles_file, 'web-01:')
    last = len(roles_file.read_text().splitlines()) - 1
    assert result['problems'] == ['%s:%d: servers.web-01: given twice (lines %d and %d); YAML keeps only the last, '
                                  'so say it once' % (roles_file, last, first, last)]


def test_every_problem_is_listed_at_once(sample_double, tmp_path):
    roles = (committed_roles().replace('  AI-agent:', '  AI-agnet:').replace('role: monitoring', 'role: nagios')
             .replace('  worker:\n    role: was\n    vmid: 110\n', '  worker:\n    role: was\n'))
    result = validate_fails(sample_double, tmp_path, roles, 'default_hdd: HDD-Storag\ndefault_ssd: ssd-pool\n')
    problems = result['problems']
    assert [p.split(': ', 2)[1] for p in problems] == [
        'servers.AI-agnet', 'servers.monitoring.role', 'servers.worker', 'default_hdd']
    assert "Did you mean 'AI-agent'?" in problems[0]
    assert "Role 'nagios' is not in the role catalog" in problems[1]
    assert "'worker' is ambiguous: 2 guests share it (vmids 110, 111)" in problems[2]
    assert "datastore 'HDD-Storag' is neither in the datastore cache nor in Proxmox" in problems[3]
    assert "Did you mean 'HDD-Storage'?" in problems[3]


def test_two_keys_for_one_server_are_refused(sample_double, tmp_path):
    roles = committed_roles() + '  worker-110:\n    role: web\n'
    result = validate_fails(sample_double, tmp_path, roles)
    assert len(result['problems']) == 1
    assert 'servers.worker-110: the same server (worker-110) as servers.worker on line %d' % line_of(
        tmp_path / 'state' / 'roles.yml', 'worker:') in result['problems'][0]


def test_missing_roles_file_is_a_clear_error(sample_double, tmp_path):
    with pytest.raises(ModuleFailed) as failed:
        run_module('declarations_validate', dict(connection_options(sample_double), roles_file=str(tmp_path / 'x.yml'),
                                                 state_db=str(tmp_path / 'db')))
    assert failed.value.result['msg'].startswith('The role declarations %s do not exist' % (tmp_path / 'x.yml'))


# -- what validation returns ---------------------------------------------------------


def test_committed_declarations_match_the_sample_cluster(sample_double, tmp_path):
    result = validate(sample_double, tmp_path)
    hosts = dict((d['key'], (d['host'], d['vmid'], d['role'])) for d in result['declarations'])
    assert hosts['AI-agent'] == ('AI-agent', 100, 'web')
    assert hosts['worker'] == ('worker-110', 110, 'was')  # the duplicate, resolved by vmid
    assert hosts['web-02'] == ('web-02', None, 'web')  # declared in tfvars, not created yet
    assert dict((s['name'], s['role']) for s in result['servers']) == dict(
        (key, role) for key, (_host, _vmid, role) in hosts.items())
    assert all(s['state'] == 'present' and s['cluster'] == 'demo' for s in result['servers'])
    assert (result['default_hdd'], result['default_ssd']) == ('HDD-Storage', 'ssd-pool')
    assert result['host_vars'] == {'AI-agent': {'web_site_name': 'ai-agent', 'web_port': 8080}}
    assert result['prune'] == [] and result['stale'] == [] and result['changed'] is False
    # the one cluster's item (what apply.yml loops over), without the entries again
    assert result['clusters'] == [dict(cluster='demo', declared=len(hosts), undeclared=0, default_hdd='HDD-Storage',
                                       default_ssd='ssd-pool', datastores_refresh=False,
                                       terraform_vars_file=os.path.join('terraform', 'datastores.auto.tfvars.json'))]
    assert not (tmp_path / 'state' / 'proxmox_manager.db').exists()  # validation never writes
    for name in ('roles', 'datastores'):  # the shipped schemas are the ones used (make schemas)
        with open(ROOT / 'schemas' / ('%s.schema.json' % name)) as handle:
            assert json.load(handle) == json.loads(json.dumps(SCHEMAS[name]))


def test_a_tfvars_role_that_disagrees_is_a_warning(sample_double, tmp_path):
    roles = committed_roles().replace('  db-01:\n    role: db', '  db-01:\n    role: was')
    result = validate(sample_double, tmp_path, roles)
    line = line_of(tmp_path / 'state' / 'roles.yml', 'role: was')
    assert "%s:%d: servers.db-01.role: 'was' differs from the role 'db' in terraform/terraform.tfvars.json; the " \
           "declaration wins." % (tmp_path / 'state' / 'roles.yml', line) in get_warning_messages()
    assert {'name': 'db-01', 'vmid': 102, 'cluster': 'demo', 'role': 'was', 'state': 'present'} in result['servers']


# -- plan, apply, second apply ---------------------------------------------------------


def test_plan_on_a_fresh_repo_shows_every_change_and_writes_nothing(repo):
    proc = repo.ok('apply.yml', '--check', '--diff')
    assert not repo.db.exists() and not repo.tf_vars.exists()  # not even the inventory's snapshot
    assert '+    "AI-agent": "web",' in proc.stdout and '-    "AI-agent": null,' in proc.stdout
    report = debug_lines(proc, 'Show the plan or what changed')
    assert report[:2] == ['PLAN (check mode): nothing was written.', 'Roles: 8 of 8 server(s) would change:']
    assert '  worker-110: - -> was' in report and '  web-02: - -> web' in report
    assert report[-1].startswith('Default datastores would change: hdd local-lvm -> HDD-Storage, ssd local -> ssd-pool')


def test_apply_records_the_declarations_and_a_second_apply_changes_nothing(applied):
    repo, first = applied
    assert recap(first)['changed'] == 2 and recap(first)['failed'] == 0
    declared = yaml.safe_load(repo.roles.read_text())['servers']
    live = dict((g.name, g.vmid) for g in load_scenario(SAMPLE).guests)  # unique names; `worker` gives its vmid
    assert db_roles(repo.db) == dict(((name, entry.get('vmid', live.get(name))), entry['role'])
                                     for name, entry in declared.items())
    assert json.loads(repo.tf_vars.read_text()) == {'proxmox_hdd_datastore': 'HDD-Storage',
                                                    'proxmox_ssd_datastore': 'ssd-pool'}
    before = digest(repo.tf_vars)
    second = repo.ok('apply.yml')
    assert recap(second)['changed'] == 0 and recap(second)['failed'] == 0
    assert 'Roles: 0 of 8 server(s) changed.' in debug_lines(second, 'Show the plan or what changed')
    assert digest(repo.tf_vars) == before


def test_plan_of_a_change_writes_nothing_and_shows_the_server(applied_repo):
    repo = applied_repo
    repo.roles.write_text(committed_roles().replace('  web-01:\n    role: web', '  web-01:\n    role: java'))
    repo.datastores.write_text('default_hdd: local-lvm\ndefault_ssd: ssd-pool\n')
    db_before, vars_before = digest(repo.db), digest(repo.tf_vars)
    proc = repo.ok('apply.yml', '--check', '--diff')
    assert (digest(repo.db), digest(repo.tf_vars)) == (db_before, vars_before)
    assert recap(proc)['changed'] == 2
    assert '-    "web-01": "web"' in proc.stdout and '+    "web-01": "java"' in proc.stdout
    report = debug_lines(proc, 'Show the plan or what changed')
    assert 'Roles: 1 of 8 server(s) would change:' in report and '  web-01: web -> java' in report
    assert any(line.startswith('Default datastores would change: hdd HDD-Storage -> local-lvm, ssd ssd-pool -> '
                               'ssd-pool') for line in report)


# -- prune -----------------------------------------------------------------------------


def test_a_removed_server_loses_its_role_only_with_prune(sqlite_applied_repo):
    # On SQLite only, to spare four playbook runs: the state DB side (state=absent) runs on both databases in
    # test_server_role.py.
    repo = sqlite_applied_repo
    repo.roles.write_text(committed_roles().replace('  db-01:\n    role: db\n', ''))
    before = db_roles(repo.db)

    plan = repo.ok('apply.yml', '--check', '--diff')
    report = debug_lines(plan, 'Show the plan or what changed')
    assert report[report.index('No longer declared, role kept (-e prune=true takes it away):') + 1] == '  db-01: db'
    kept = repo.ok('apply.yml')
    assert recap(kept)['changed'] == 0 and db_roles(repo.db) == before

    db_before = digest(repo.db)
    plan = repo.ok('apply.yml', '--check', '--diff', '-e', 'prune=true')
    assert digest(repo.db) == db_before
    assert '  db-01: db -> -   (pruned: no longer declared)' in debug_lines(plan, 'Show the plan or what changed')
    assert '-    "db-01": "db"' in plan.stdout

    pruned = repo.ok('apply.yml', '-e', 'prune=true')
    assert recap(pruned)['changed'] == 1
    expected = dict(before)
    del expected[('db-01', 102)]
    assert db_roles(repo.db) == expected


# -- drift -------------------------------------------------------------------------------


def test_drift_reports_each_kind_and_fails_on_demand(applied_repo):
    repo = applied_repo
    # missing: old-ct declared but never applied; undeclared: db-01 removed from git;
    # role mismatch: web-01 changed by hand in the DB; declared only: web-02 (not in Proxmox)
    repo.roles.write_text(committed_roles().replace('  db-01:\n    role: db\n', '  old-ct:\n    role: ftp\n'))
    set_db_role(repo.db, 'web-01', 'java')
    proc = repo.ok('drift.yml')
    lines = debug_lines(proc, 'Show the drift table')
    rows = table_rows(lines)
    drift = dict((host, row['DRIFT']) for host, row in rows.items())
    assert drift == {'AI-agent': 'ok', 'build-box': 'ok', 'db-01': 'undeclared', 'ftp-ct': 'ok', 'monitoring': 'ok',
                     'old-ct': 'missing', 'search-ct': 'ok', 'web-01': 'role mismatch', 'web-02': 'declared only',
                     'worker-110': 'ok', 'worker-111': 'ok'}
    assert (rows['web-01']['GIT (roles.yml)'], rows['web-01']['STATE DB'], rows['web-01']['PROXMOX']) == (
        'web', 'java', 'running')
    assert rows['web-02']['PROXMOX'] == 'not created'
    assert set(row['CLUSTER'] for row in rows.values()) == {'demo'}  # one cluster: the same table shape
    assert lines[-1] == 'Drift in 4 of 11 servers: 1 missing, 1 undeclared, 1 role mismatch, 1 declared only.'

    failed = repo.playbook('drift.yml', '-e', 'fail_on_drift=true')
    assert failed.returncode != 0
    assert 'Drift in 4 of 11 servers' in failed.stdout + failed.stderr and 'Traceback' not in failed.stderr


def test_no_drift_passes_fail_on_drift(applied, sample_double, tmp_path, copy_of):
    repo, _first = applied
    # web-02 is declared but not created: without it, git, the DB and Proxmox agree.
    roles_file = write_declarations(tmp_path, committed_roles().replace('  web-02:\n    role: web\n', ''))[0]
    db = copy_of(repo.db)
    set_db_role(db, 'web-02', None)
    result = run_module('server_drift', dict(connection_options(sample_double), roles_file=str(roles_file),
                                             state_db=str(db), fail_on_drift=True))
    assert result['drifted'] == 0 and result['summary'] == 'No drift: git, the state DB and Proxmox agree on 11 servers.'
    assert all(row['drift'] == [] for row in result['rows'])


def test_drift_shows_a_stale_db_row_and_a_declaration_of_a_gone_server(applied, sample_double, tmp_path, copy_of):
    repo, _first = applied
    roles_file = write_declarations(tmp_path, committed_roles() + '  retired:\n    role: db\n')[0]
    db = copy_of(repo.db)
    execute(str(db), "INSERT INTO servers (cluster, name, role, present, created_at, updated_at) VALUES "
                     "('demo', 'test', 'web', TRUE, '2026-01-01', '2026-01-01')")
    with pytest.raises(ModuleFailed) as failed:
        run_module('server_drift', dict(connection_options(sample_double), roles_file=str(roles_file),
                                        state_db=str(db), fail_on_drift=True))
    rows = dict((r['host'], r) for r in failed.value.result['rows'])
    assert (rows['test']['db_role'], rows['test']['proxmox'], rows['test']['drift']) == ('web', 'gone', ['undeclared'])
    assert (rows['retired']['git_role'], rows['retired']['proxmox'], rows['retired']['drift']) == (
        'db', 'not found', ['declared only', 'missing'])
    assert "Server 'retired' does not exist" in failed.value.result['problems'][0]


# -- configure, backup, CI --------------------------------------------------------------------


def test_configure_has_one_play_per_catalog_role_and_targets_the_role_groups(applied_repo):
    with open(ROOT / 'playbooks' / 'configure.yml') as handle:
        plays = yaml.safe_load(handle)
    targets = dict((play['hosts'], play['roles'][0]['role']) for play in plays[1:])
    assert targets == dict(('role_%s' % r, 'proxmox_manager.core.%s' % r) for r in role_catalog(str(ROOT / 'roles')))
    proc = applied_repo.ok('configure.yml', '--list-hosts')
    listed = dict((m.group(1), sorted(m.group(2).split())) for m in re.finditer(
        r"pattern: \['(role_\w+)'\]\n\s+hosts \(\d+\):\n((?:\s{6}\S+\n)*)", proc.stdout))
    assert listed['role_web'] == ['AI-agent', 'web-01', 'web-02']
    assert listed['role_was'] == ['worker-110'] and listed['role_db'] == ['db-01']
    assert listed['role_java'] == []


def test_backup_playbook_copies_the_db(sqlite_applied_repo):
    repo = sqlite_applied_repo
    proc = repo.ok('backup.yml', '-e', 'backup_dir=%s' % (repo.dir / 'backups'))
    copies = list((repo.dir / 'backups').glob('*.db'))
    assert len(copies) == 1 and recap(proc)['changed'] == 1
    assert db_roles(copies[0]) == db_roles(repo.db)


# The config repo pipelines ship in the scaffold proxmox_manager.core.init_repo writes
# (tests/integration/test_init_repo.py checks the writing); this repository's own CI is ci.yml.
CONFIG_REPO = ROOT / 'playbooks' / 'files' / 'config_repo'
COLLECTION_DIR = 'collections/ansible_collections/proxmox_manager/core'


def _on(workflow):
    return workflow.get('on', workflow.get(True))  # YAML 1.1 reads a bare `on` as true


def test_github_workflow_plans_on_pull_requests_and_applies_main_one_at_a_time():
    with open(CONFIG_REPO / '.github' / 'workflows' / 'gitops.yml') as handle:
        text = handle.read()
    workflow = yaml.safe_load(text)
    assert set(_on(workflow)) >= {'pull_request', 'push', 'schedule'}
    assert _on(workflow)['push']['branches'] == ['main']
    for var in ('PROXMOX_HOST', 'PROXMOX_USER', 'PROXMOX_TOKEN_ID', 'PROXMOX_TOKEN_SECRET', 'PROXMOX_MANAGER_DB'):
        assert workflow['env'][var] == '${{ secrets.%s }}' % var
    assert workflow['env']['ANSIBLE_CONFIG'] == '${{ github.workspace }}/ansible.cfg'
    assert workflow['env']['COLLECTION_DIR'] == COLLECTION_DIR
    jobs = workflow['jobs']
    runs = dict((name, '\n'.join(step.get('run', '') for step in job['steps'])) for name, job in jobs.items())
    assert "github.event_name == 'pull_request'" in jobs['plan']['if']
    assert 'ansible-playbook proxmox_manager.core.validate' in runs['plan']
    assert 'ansible-playbook proxmox_manager.core.apply --check --diff -e "prune=$GITOPS_PRUNE"' in runs['plan']
    assert '$GITHUB_STEP_SUMMARY' in runs['plan']
    assert "github.ref == 'refs/heads/main'" in jobs['apply']['if']
    assert jobs['apply']['concurrency'] == {'group': 'gitops-apply', 'cancel-in-progress': False}
    assert 'ansible-playbook proxmox_manager.core.apply -e "prune=$GITOPS_PRUNE"' in runs['apply']
    assert '--check' not in runs['apply']
    assert "github.event_name == 'schedule'" in jobs['drift']['if']
    assert 'ansible-playbook proxmox_manager.core.drift -e fail_on_drift=true' in runs['drift']
    assert 'yamllint --strict .' in runs['lint'] and 'ansible-lint --offline --profile production' in runs['lint']
    artifacts = dict((name, step['with']['path'].split()) for name, job in jobs.items() for step in job['steps']
                     if step.get('uses', '').startswith('actions/upload-artifact'))
    assert artifacts == {'plan': ['validate.txt', 'plan.txt'],
                         'apply': ['apply.txt', 'terraform/**/datastores.auto.tfvars.json']}
    for name, job in jobs.items():
        setup = [step for step in job['steps'] if step.get('uses', '').startswith('actions/setup-python')]
        assert setup[0]['with']['cache-dependency-path'] == 'requirements.yml', name  # no requirements/*.txt there
        _installs_the_pinned_collection_first(runs[name])
    _runs_existing_playbooks(runs.values())
    assert workflow['defaults']['run']['shell'] == 'bash'  # pipefail: a failing playbook piped to tee fails


def test_gitlab_pipeline_plans_merge_requests_and_applies_the_default_branch_one_at_a_time():
    with open(CONFIG_REPO / '.gitlab-ci.yml') as handle:
        pipeline = yaml.safe_load(handle)
    assert pipeline['stages'] == ['lint', 'plan', 'apply']
    plan, apply_job, drift = pipeline['plan'], pipeline['apply'], pipeline['drift']
    assert plan['rules'] == [{'if': '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    assert 'plan.txt' in plan['artifacts']['paths'] and plan['artifacts']['expose_as'] == 'plan'
    assert '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH' in apply_job['rules'][0]['if']
    assert apply_job['resource_group'] == 'proxmox-apply'
    assert apply_job['artifacts']['paths'] == ['apply.txt', 'terraform/**/datastores.auto.tfvars.json']
    assert drift['rules'] == [{'if': '$CI_PIPELINE_SOURCE == "schedule"'}]
    plan_script, apply_script = '\n'.join(plan['script']), '\n'.join(apply_job['script'])
    assert 'ansible-playbook proxmox_manager.core.validate' in plan_script
    assert 'ansible-playbook proxmox_manager.core.apply --check --diff -e "prune=$GITOPS_PRUNE"' in plan_script
    assert 'ansible-playbook proxmox_manager.core.apply -e "prune=$GITOPS_PRUNE"' in apply_script
    assert '--check' not in apply_script
    assert 'ansible-playbook proxmox_manager.core.drift -e fail_on_drift=true' in '\n'.join(drift['script'])
    assert pipeline['variables']['ANSIBLE_CONFIG'] == '$CI_PROJECT_DIR/ansible.cfg'
    assert pipeline['variables']['COLLECTION_DIR'] == COLLECTION_DIR
    assert pipeline['default']['cache']['key']['files'] == ['requirements.yml']
    # Every job installs through the default before_script (none overrides it).
    _installs_the_pinned_collection_first('\n'.join(pipeline['default']['before_script']))
    jobs = dict((name, job) for name, job in pipeline.items() if isinstance(job, dict) and 'script' in job)
    assert set(jobs) == {'lint', 'plan', 'apply', 'drift'}
    assert not any('before_script' in job for job in jobs.values())
    lint = '\n'.join(jobs['lint']['script'])
    assert 'yamllint --strict .' in lint and 'ansible-lint --offline --profile production' in lint
    _runs_existing_playbooks('\n'.join(job['script']) for job in jobs.values())
    assert 'PROXMOX_TOKEN_SECRET' not in json.dumps(pipeline['variables'])  # secrets live in the CI settings


def _installs_the_pinned_collection_first(script):
    """ansible-galaxy installs requirements.yml's version into ./collections, then pip its requirements.txt."""
    lines = [line.strip().lstrip('- ') for line in script.splitlines()]
    galaxy = [n for n, line in enumerate(lines) if line.startswith('ansible-galaxy collection install')]
    assert [lines[n] for n in galaxy] == ['ansible-galaxy collection install -r requirements.yml -p collections']
    collection_pip = [n for n, line in enumerate(lines)
                      if 'pip install' in line and '$COLLECTION_DIR/requirements.txt' in line]
    assert collection_pip and collection_pip[0] > galaxy[0]
    for line in lines:
        if 'pip install' in line:  # nothing of this checkout's (requirements/*.txt, constraints)
            assert 'requirements/' not in line and ' -c ' not in line, line


def _runs_existing_playbooks(scripts):
    text = '\n'.join(scripts)
    assert 'playbooks/validate.yml' not in text and 'playbooks/apply.yml' not in text  # a config repo has no copy
    named = set(re.findall(r'proxmox_manager\.core\.(\w+)', text))
    assert named >= {'validate', 'apply', 'drift'}
    for playbook in named:
        assert (ROOT / 'playbooks' / ('%s.yml' % playbook)).is_file(), playbook


def test_this_repository_ci_runs_ci_run_on_push_and_pull_request():
    with open(ROOT / '.github' / 'workflows' / 'ci.yml') as handle:
        workflow = yaml.safe_load(handle)
    assert set(_on(workflow)) == {'push', 'pull_request'}
    assert [step['run'] for step in workflow['jobs']['test']['steps'] if step.get('run') == '.ci/run'] == ['.ci/run']
    assert sorted(os.listdir(ROOT / '.github' / 'workflows')) == ['ci.yml']  # the config repo pipelines moved
    assert not (ROOT / '.gitlab-ci.yml').exists()


# -- the loader's edges, and the configure vars ------------------------------------------


def test_empty_and_null_declarations(sample_double, tmp_path):
    result = validate_fails(sample_double, tmp_path / 'a', '# nothing yet\n')
    assert result['problems'] == ["%s: (top level): 'servers' is a required property" % (
        tmp_path / 'a' / 'state' / 'roles.yml')]
    result = validate(sample_double, tmp_path / 'b', 'servers:\n', '')
    assert result['servers'] == [] and result['default_hdd'] is None and result['default_ssd'] is None


def test_two_yaml_documents_and_non_utf8_are_clear_errors(sample_double, tmp_path):
    result = validate_fails(sample_double, tmp_path / 'a', 'servers: {}\n---\nservers: {}\n')
    assert result['problems'] == ['%s:2:1: not valid YAML: but found another document (expected a single document '
                                  'in the stream)' % (tmp_path / 'a' / 'state' / 'roles.yml')]
    roles_file, datastores_file = write_declarations(tmp_path / 'b')
    roles_file.write_bytes(b'servers:\n  caf\xe9:\n    role: web\n')
    with pytest.raises(ModuleFailed) as failed:
        run_module('declarations_validate', dict(connection_options(sample_double), roles_file=str(roles_file),
                                                 datastores_file=str(datastores_file), state_db=str(tmp_path / 'db')))
    assert failed.value.result['problems'] == [
        "%s is not UTF-8 text: 'utf-8' codec can't decode byte 0xe9 in position 14: invalid continuation byte"
        % roles_file]


def test_declared_vars_become_host_facts_for_the_role(tmp_path):
    playbook = tmp_path / 'vars.yml'
    playbook.write_text('''
- name: What configure.yml's first play registers
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Fake declarations
      ansible.builtin.set_fact:
        declarations: {host_vars: {localhost: {web_port: 8080, web_site_name: ai-agent}}}
- name: A role play
  hosts: localhost
  gather_facts: false
  tasks:
    - name: The shared task file
      ansible.builtin.import_tasks: %s
    - name: Show them
      ansible.builtin.debug:
        msg: "{{ web_site_name }}:{{ web_port + 1 }}"
''' % (ROOT / 'playbooks' / 'tasks' / 'declared_vars.yml'))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    proc = run_ansible(['ansible-playbook', '-i', 'localhost,', '-c', 'local', '-e',
                        'ansible_python_interpreter=%s' % (ROOT / '.venv' / 'bin' / 'python'), str(playbook)], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"msg": "ai-agent:8081"' in proc.stdout


def test_a_default_datastore_that_cannot_hold_disks_fails_validation(sample_double, tmp_path):
    # datastore_default refuses it, so validate (and the plan) must not pass it
    result = validate_fails(sample_double, tmp_path, datastores='default_hdd: nfs-backup\ndefault_ssd: ssd-pool\n')
    assert len(result['problems']) == 1
    assert "datastores.yml:1: default_hdd: datastore 'nfs-backup' cannot hold disks (content: backup)" in result['problems'][0]
    assert not (tmp_path / 'state' / 'proxmox_manager.db').exists()
