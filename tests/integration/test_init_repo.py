"""proxmox_manager.core.init_repo: the scaffold of a user's config repo.

The playbook runs as a user runs it, `ansible-playbook proxmox_manager.core.init_repo
-e dest=...`, from a directory outside the checkout: the checkout's ansible.cfg
(ANSIBLE_CONFIG) resolves the collection, and `-i localhost,` replaces its Proxmox
inventory. One scaffold, written once for the module, is read by most tests; the
runs that change it work on copies.
"""

import configparser
import json
import os
import shutil
import stat
import subprocess
import tarfile

import pytest
import yaml

from ansible_collections.proxmox_manager.core.plugins.module_utils import declarations
from ansible_collections.proxmox_manager.core.plugins.module_utils.merged_view import load_tfvars
from ansible_collections.proxmox_manager.core.plugins.module_utils.role_assignment import role_catalog
from tests.conftest import BIN, ROOT, connection_env, run_ansible

FILES = ROOT / 'playbooks' / 'files' / 'config_repo'
TEMPLATES = ROOT / 'playbooks' / 'templates' / 'config_repo'
# What the issue asks for; the template may hold more (lint configs).
REQUIRED = {'ansible.cfg', 'inventory/proxmox.yml', 'state/roles.yml', 'state/datastores.yml', 'terraform/main.tf',
            'terraform/variables.tf', 'terraform/terraform.tfvars.json', '.github/workflows/gitops.yml',
            '.gitlab-ci.yml', 'requirements.yml', '.gitignore'}
GALAXY_VERSION = yaml.safe_load((ROOT / 'galaxy.yml').read_text())['version']


def tree(directory):
    """Relative paths of the files under a directory."""
    return set(str(path.relative_to(directory)) for path in directory.rglob('*') if path.is_file())


PLAIN = tree(FILES)
RENDERED = set(name[:-len('.j2')] for name in tree(TEMPLATES))


def env_for(tmp, **extra):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
               TMPDIR=str(tmp))  # where the play renders its templates: must be empty afterwards
    env.update(extra)
    return env


def init_repo(cwd, *args, env=None):
    tmp = cwd / 'tmp'
    tmp.mkdir(exist_ok=True)
    proc = run_ansible(['ansible-playbook', '-i', 'localhost,', 'proxmox_manager.core.init_repo'] + list(args),
                       env=env or env_for(tmp), cwd=cwd)
    assert not list(tmp.iterdir()), 'the rendering directory was left behind'
    return proc


def recap(proc):
    line = next(line for line in proc.stdout.splitlines() if line.startswith('localhost '))
    return dict(item.split('=') for item in line.split(':', 1)[1].split())


def written(proc):
    """The items the copy task reported as changed (written, or under --check would be)."""
    return set(line.split('(item=', 1)[1].rstrip(')') for line in proc.stdout.splitlines()
               if line.startswith('changed: [localhost] => (item='))


def one_clear_failure(proc, message):
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert 'Traceback' not in output and 'Exception' not in output, output
    fatal = [line for line in proc.stdout.splitlines() if line.startswith('fatal:')]
    assert len(fatal) == 1 and message in fatal[0], output
    assert recap(proc)['changed'] == '0'


@pytest.fixture(scope='module')
def first_run(tmp_path_factory):
    """The scaffold written into a directory that does not exist yet."""
    base = tmp_path_factory.mktemp('init_repo')
    proc = init_repo(base, '-e', 'dest=pve-config')  # relative: from the current directory
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, base / 'pve-config'


@pytest.fixture
def scaffold(first_run):
    return first_run[1]


@pytest.fixture
def copy_of_scaffold(scaffold, tmp_path):
    dest = tmp_path / 'repo'
    shutil.copytree(scaffold, dest)
    return dest


def test_writes_every_file_of_the_template_into_a_new_directory(first_run):
    proc, dest = first_run
    assert REQUIRED <= PLAIN | RENDERED and not PLAIN & RENDERED
    assert tree(dest) == PLAIN | RENDERED
    assert written(proc) == PLAIN | RENDERED
    assert recap(proc)['failed'] == '0'
    for name in PLAIN:
        assert (dest / name).read_bytes() == (FILES / name).read_bytes(), name
    for name in PLAIN | RENDERED:
        assert stat.S_IMODE((dest / name).stat().st_mode) == 0o644, name
    for directory in ('', 'state', 'terraform', '.github', '.github/workflows'):
        assert stat.S_IMODE((dest / directory).stat().st_mode) == 0o755, directory
    assert 'Wrote %d file(s) in %s:' % (len(PLAIN | RENDERED), dest) in proc.stdout
    assert not (dest / 'roles').exists()  # the catalog stays the collection's until the user adds roles/


def test_a_second_run_changes_nothing_and_keeps_the_files_the_user_changed(copy_of_scaffold, tmp_path):
    edited = copy_of_scaffold / 'ansible.cfg'
    edited.write_text('[defaults]\ninventory = hosts.ini\n')
    before = dict((name, (copy_of_scaffold / name).read_bytes()) for name in tree(copy_of_scaffold))
    proc = init_repo(tmp_path, '-e', 'dest=%s' % copy_of_scaffold)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert recap(proc)['changed'] == '0' and written(proc) == set()
    assert dict((name, (copy_of_scaffold / name).read_bytes()) for name in tree(copy_of_scaffold)) == before
    assert 'Wrote 0 file(s) in %s.' % copy_of_scaffold in proc.stdout
    assert 'Already there, left as they are: .ansible-lint, .github/workflows/gitops.yml' in proc.stdout


def test_check_mode_reports_the_missing_files_and_writes_nothing(copy_of_scaffold, tmp_path):
    # A file at the root and one whose directories are missing too (a fresh dest is the
    # same case for copy: its directory is missing); fewer files keep the test fast.
    (copy_of_scaffold / 'requirements.yml').unlink()
    shutil.rmtree(copy_of_scaffold / '.github')
    before = dict((name, (copy_of_scaffold / name).read_bytes()) for name in tree(copy_of_scaffold))
    proc = init_repo(tmp_path, '-e', 'dest=%s' % copy_of_scaffold, '--check')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert written(proc) == {'requirements.yml', '.github/workflows/gitops.yml'}
    assert 'Would write 2 file(s) in %s:' % copy_of_scaffold in proc.stdout and 'Next' not in proc.stdout
    assert dict((name, (copy_of_scaffold / name).read_bytes()) for name in tree(copy_of_scaffold)) == before
    assert not (copy_of_scaffold / '.github').exists()


@pytest.mark.parametrize('args, message', [
    ((), 'Name the directory to write the config repo to (created when missing): '
         'ansible-playbook proxmox_manager.core.init_repo -e dest=~/pve-config'),
    (('-e', 'dest='), 'Name the directory to write the config repo to'),
    (('-e', 'dest=a-file'), 'is a file, not a directory: name a new or existing directory for the config repo.'),
    (('-e', 'dest=a-file/pve-config'), 'Cannot create dest '),
])
def test_a_missing_dest_or_a_file_fails_with_one_clear_message(tmp_path, args, message):
    (tmp_path / 'a-file').write_text('keep me\n')
    proc = init_repo(tmp_path, *args)
    one_clear_failure(proc, message)
    if args[1:] == ('dest=a-file/pve-config',):
        assert '%s: %s is a file, not a directory.' % (tmp_path / 'a-file' / 'pve-config', tmp_path / 'a-file') \
            in proc.stdout
    assert (tmp_path / 'a-file').read_text() == 'keep me\n'
    assert sorted(os.listdir(tmp_path)) == ['a-file', 'tmp']


def test_the_yaml_passes_yamllint_strict(scaffold):
    yaml_files = [name for name in tree(scaffold) if name.endswith('.yml') or name in ('.yamllint', '.ansible-lint')]
    for name in yaml_files:
        assert yaml.safe_load((scaffold / name).read_text()) is not None or name.startswith('state/'), name
    # With this repository's rules, and as the config repo's lint job runs it (its own .yamllint).
    for args, cwd in ((['-c', str(ROOT / '.yamllint'), str(scaffold)], ROOT), (['.'], scaffold)):
        proc = subprocess.run([str(BIN / 'yamllint'), '--strict', '-f', 'parsable'] + args, cwd=str(cwd),
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and proc.stdout == '', proc.stdout + proc.stderr
    proc = subprocess.run([str(BIN / 'yamllint'), '--list-files', '.'], cwd=str(scaffold), capture_output=True,
                          text=True, check=False)
    assert set(proc.stdout.split()) >= {'./.github/workflows/gitops.yml', './.gitlab-ci.yml', './state/roles.yml'}


def test_the_terraform_passes_terraform_fmt(scaffold):
    terraform = shutil.which('terraform')
    assert terraform, 'terraform must be on PATH (make test and CI install it)'
    proc = subprocess.run([terraform, 'fmt', '-check', '-diff', '-recursive', str(scaffold / 'terraform')],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_empty_tfvars_is_accepted(scaffold):
    assert json.loads((scaffold / 'terraform' / 'terraform.tfvars.json').read_text()) == {'servers': {}}
    assert load_tfvars(str(scaffold / 'terraform' / 'terraform.tfvars.json')) == {}


def test_requirements_pins_this_collection_version(scaffold):
    requirements = yaml.safe_load((scaffold / 'requirements.yml').read_text())
    assert requirements == {'collections': [{'name': 'proxmox_manager.core', 'version': GALAXY_VERSION}]}


def test_the_declarations_are_valid_as_written_and_so_are_their_commented_examples(scaffold, tmp_path):
    roles, datastores = scaffold / 'state' / 'roles.yml', scaffold / 'state' / 'datastores.yml'
    loaded = declarations.load(str(roles), str(datastores))
    assert loaded.problems == [] and loaded.entries == [] and loaded.defaults == {}

    # Uncommenting the examples (the lines after `servers:`, the datastore keys) gives valid declarations too.
    def uncomment(path, start):
        lines = path.read_text().splitlines()
        at = next(n for n, line in enumerate(lines) if line.startswith(start))
        return '\n'.join(lines[:at] + [line[1:] if line.startswith('#') else line for line in lines[at:]]) + '\n'

    (tmp_path / 'roles.yml').write_text(uncomment(roles, 'servers:'))
    (tmp_path / 'datastores.yml').write_text(uncomment(datastores, '# default_hdd:'))
    examples = declarations.load(str(tmp_path / 'roles.yml'), str(tmp_path / 'datastores.yml'))
    assert examples.problems == []
    assert [(e['key'], e['role'], e['vmid']) for e in examples.entries] == [
        ('web-01', 'web', None), ('worker', 'was', 110), ('AI-agent', 'web', None)]
    assert examples.entries[2]['vars'] == {'web_site_name': 'ai-agent', 'web_port': 8080}
    assert set(e['role'] for e in examples.entries) <= set(role_catalog(str(ROOT / 'roles')))
    assert examples.defaults == {'hdd': 'local-lvm', 'ssd': 'local'}


def test_ansible_reads_the_config_repo_from_its_ansible_cfg(scaffold):
    env = dict(os.environ, ANSIBLE_CONFIG=str(scaffold / 'ansible.cfg'))
    env.pop('ANSIBLE_COLLECTIONS_PATH', None)
    proc = run_ansible(['ansible-config', 'dump', '--only-changed', '--format', 'json'], env=env, cwd=scaffold)
    assert proc.returncode == 0, proc.stderr
    settings = dict((s['name'], s['value']) for s in json.loads(proc.stdout) if 'name' in s)
    home = os.path.expanduser('~')
    assert settings['COLLECTIONS_PATHS'] == [str(scaffold / 'collections'), home + '/.ansible/collections',
                                             '/usr/share/ansible/collections']
    assert settings['DEFAULT_HOST_LIST'] == [str(scaffold / 'inventory' / 'proxmox.yml')]
    assert settings['INVENTORY_ENABLED'][0] == 'proxmox_manager.core.proxmox'
    assert 'auto' not in settings['INVENTORY_ENABLED'] and settings['INVENTORY_UNPARSED_IS_FAILED'] is True
    assert settings['INTERPRETER_PYTHON'] == 'auto_silent' and settings['RETRY_FILES_ENABLED'] is False
    inventory = yaml.safe_load((scaffold / 'inventory' / 'proxmox.yml').read_text())
    assert inventory['plugin'] == 'proxmox_manager.core.proxmox'
    assert inventory['tfvars_path'] == 'terraform/terraform.tfvars.json'
    assert 'state_db' not in inventory  # PROXMOX_MANAGER_DB (a shared DB in CI) must win
    cfg = configparser.ConfigParser()
    cfg.read(scaffold / 'ansible.cfg')
    assert cfg['defaults']['inventory'] == 'inventory/proxmox.yml'


def test_the_inventory_lists_the_cluster_from_the_config_repo(scaffold, double, tmp_path):
    env = connection_env(double, ANSIBLE_CONFIG=str(scaffold / 'ansible.cfg'),
                         ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'))  # nothing installed in ./collections
    proc = run_ansible(['ansible-inventory', '--list'], env=env, cwd=scaffold)
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    assert 'AI-agent' in listing['_meta']['hostvars'] and 'declared_only' not in listing
    assert not (scaffold / 'state' / 'proxmox_manager.db').exists()  # the inventory never creates the state DB


def test_gitignore_keeps_state_dbs_backups_collections_and_venvs_out(scaffold):
    patterns = [line for line in (scaffold / '.gitignore').read_text().splitlines() if line and line[0] != '#']
    for pattern in ('state/*.db', 'state/*.db-*', 'state/backups/', '/collections/', '.venv/', '*.tfstate'):
        assert pattern in patterns, pattern


def test_an_installed_collection_pins_its_manifest_version_and_adds_only_missing_files(copy_of_scaffold, tmp_path):
    """From a built tarball, as users install it: the template ships, MANIFEST.json gives the version."""
    build = tmp_path / 'build'
    proc = run_ansible(['ansible-galaxy', 'collection', 'build', '--output-path', str(build), str(ROOT)],
                       env=dict(os.environ), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tarball = next(build.glob('proxmox_manager-core-*.tar.gz'))
    with tarfile.open(tarball) as archive:
        shipped = set(archive.getnames())
    assert set('playbooks/files/config_repo/' + name for name in PLAIN) <= shipped
    assert set('playbooks/templates/config_repo/%s.j2' % name for name in RENDERED) <= shipped
    no_config = tmp_path / 'empty.cfg'  # as a user with no ansible.cfg: nothing of this checkout's
    no_config.write_text('')
    proc = run_ansible(['ansible-galaxy', 'collection', 'install', str(tarball), '-p', str(tmp_path / 'installed')],
                       env=dict(os.environ, ANSIBLE_CONFIG=str(no_config)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = tmp_path / 'installed' / 'ansible_collections' / 'proxmox_manager' / 'core'
    assert not (installed / 'galaxy.yml').exists()
    manifest = json.loads((installed / 'MANIFEST.json').read_text())
    manifest['collection_info']['version'] = '9.8.7'  # tells MANIFEST.json from the checkout's galaxy.yml
    (installed / 'MANIFEST.json').write_text(json.dumps(manifest))

    (copy_of_scaffold / 'requirements.yml').unlink()
    (copy_of_scaffold / 'terraform' / 'main.tf').unlink()
    before = dict((name, (copy_of_scaffold / name).read_bytes()) for name in tree(copy_of_scaffold))
    env = env_for(tmp_path / 'tmp', ANSIBLE_CONFIG=str(no_config), ANSIBLE_COLLECTIONS_PATH=str(tmp_path / 'installed'))
    proc = init_repo(tmp_path, '-e', 'dest=%s' % copy_of_scaffold, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert written(proc) == {'requirements.yml', 'terraform/main.tf'} and tree(copy_of_scaffold) == PLAIN | RENDERED
    assert dict((name, (copy_of_scaffold / name).read_bytes()) for name in before) == before
    requirements = yaml.safe_load((copy_of_scaffold / 'requirements.yml').read_text())
    assert requirements['collections'] == [{'name': 'proxmox_manager.core', 'version': '9.8.7'}]
