"""The route a user takes: the Galaxy tarball, a fresh venv, a scaffolded config repo of their own.

From a clean clone: build the tarball and look inside, install it into a temporary
collections path with a venv made from its requirements.txt only, scaffold a config
repo outside the checkout (proxmox_manager.core.init_repo) and run the GitOps loop
from there against the API double with the FQCN playbooks. Nothing may be written
outside the config repo and the temporary directories, and the installed collection
must verify clean. Run by `make installed` (part of `make test`); it needs PyPI or
pip's cache for the fresh venv.
"""

import json
import os
import re
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import BIN, ROOT, SAMPLE
from tests.pve_double import DoubleServer, load_scenario

COLLECTION = 'proxmox_manager.core'

# What the tarball must not carry: this repository's sample config repo, tests, CI and tooling.
EXCLUDED = re.compile(r'^(ansible\.cfg|Makefile|pytest\.ini|inventory/|state/|terraform/|tests/|scripts/|'
                      r'extensions/|collections/|\.(?!ansible-lint$)[^/]+|requirements/(test|constraints|bench|release)\.txt)'
                      r'|/__pycache__/|\.pyc$|\.db(-wal|-shm)?$|\.tar\.gz$')
REQUIRED = ('README.md', 'LICENSE', 'CHANGELOG.rst', 'requirements.txt', 'bindep.txt', 'meta/runtime.yml',
            'meta/execution-environment.yml', 'playbooks/init_repo.yml', 'playbooks/apply.yml',
            'plugins/inventory/proxmox.py', 'roles/web/tasks/main.yml')

# What a user declares in the scaffolded repo: live guests of the sample cluster.
ROLES_YML = """---
servers:
  AI-agent:
    role: web
  db-01:
    role: db
  worker:
    role: was
    vmid: 110
"""
DATASTORES_YML = """---
default_hdd: HDD-Storage
default_ssd: ssd-pool
"""
# A play of the user's own: the connection comes from module_defaults, not the environment.
DEFAULTS_PLAY = """---
- name: Read the datastores with the connection set once
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  module_defaults:
    group/proxmox_manager.core.proxmox:
      api_host: "%(host)s"
      api_port: %(port)d
      api_user: "%(user)s"
      api_token_id: "%(token_id)s"
      api_token_secret: "{{ lookup('ansible.builtin.env', 'MY_PVE_SECRET') }}"
      ca_path: "%(ca_path)s"
  tasks:
    - name: List the datastores live
      proxmox_manager.core.datastore_info:
        live: true
      register: info

    - name: Give the monitoring guest its role, with the same connection
      proxmox_manager.core.server_role:
        name: monitoring
        role: monitoring

    - name: Say what was found
      ansible.builtin.debug:
        msg: "datastores={{ info.datastores | map(attribute='id') | sort | join(',') }}"
"""


def _tree(path):
    """{relative path: (size, mtime_ns)} of a tree, without bytecode caches (Python's, not ours)."""
    found = {}
    for folder, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != '__pycache__' and not (folder == str(path) and d in ('.venv', '.git'))]
        for name in files:
            full = os.path.join(folder, name)
            stat = os.lstat(full)
            found[os.path.relpath(full, path)] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope='module')
def route(tmp_path_factory):
    """The tarball built, a fresh venv, the collection installed, a config repo scaffolded, a double running."""
    base = tmp_path_factory.mktemp('installed')
    checkout_before = _tree(ROOT)
    dist, home, config = base / 'dist', base / 'home', base / 'pve-config'
    home.mkdir()
    subprocess.run([str(BIN / 'ansible-galaxy'), 'collection', 'build', '--output-path', str(dist), str(ROOT)],
                   check=True, capture_output=True, text=True)
    tarball = sorted(dist.glob('proxmox_manager-core-*.tar.gz'))[0]
    with tarfile.open(tarball) as archive:
        members = archive.getnames()
        requirements = archive.extractfile('requirements.txt').read().decode()
    (base / 'requirements.txt').write_text(requirements)

    venv = base / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    pip = subprocess.run([str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '--quiet', '-r',
                          str(base / 'requirements.txt')], capture_output=True, text=True, check=False)
    assert pip.returncode == 0, pip.stderr[-3000:]
    collections = base / 'collections'
    env = dict(
        PATH='%s:/usr/bin:/bin' % (venv / 'bin'), HOME=str(home), LANG='C.UTF-8',
        ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
        REQUESTS_CA_BUNDLE=os.environ.get('REQUESTS_CA_BUNDLE', ''),
        # Python would cache the plugins' bytecode inside the collection, which verify reports as modified; it
        # cannot where the collection is not the user's to write (an EE, a system path). We run as root here.
        PYTHONDONTWRITEBYTECODE='1',
    )
    installed = _run(['ansible-galaxy', 'collection', 'install', str(tarball), '-p', str(collections)], base, env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    collection_dir = collections / 'ansible_collections' / 'proxmox_manager' / 'core'
    collection_before = _tree(collection_dir)

    with DoubleServer(load_scenario(SAMPLE)) as double:
        env.update(PROXMOX_HOST=double.host, PROXMOX_PORT=str(double.port), PROXMOX_USER=double.token_user,
                   PROXMOX_TOKEN_ID=double.token_name, PROXMOX_TOKEN_SECRET=double.token_secret,
                   PROXMOX_CA_PATH=double.ca_path)
        yield dict(base=base, members=members, env=env, config=config, home=home, double=double,
                   collection_dir=collection_dir, collection_before=collection_before,
                   checkout_before=checkout_before)


def _run(args, cwd, env):
    return subprocess.run(args, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=600, check=False)


def _play(route, *args, **kwargs):
    """ansible-playbook from the config repo, as a user runs it; fails the test with its output."""
    proc = _run(['ansible-playbook'] + list(args), kwargs.get('cwd', route['config']), route['env'])
    assert proc.returncode == 0, '%s\n%s' % (proc.stdout[-4000:], proc.stderr[-4000:])
    return proc.stdout


def _recap(stdout):
    return {key: int(value) for key, value in re.findall(r'\b(ok|changed|failed|unreachable)=(\d+)', stdout)}


def test_tarball_holds_the_collection_only(route):
    members = [name[2:] if name.startswith('./') else name for name in route['members']]
    assert [name for name in members if EXCLUDED.search(name)] == []
    assert [name for name in REQUIRED if name not in members] == []


def test_fresh_venv_has_only_what_requirements_txt_asks(route):
    frozen = _run(['python', '-m', 'pip', 'freeze'], route['base'], route['env']).stdout.lower()
    for package in ('ansible-core', 'proxmoxer', 'sqlalchemy', 'jsonschema', 'requests', 'pyyaml'):
        assert package + '==' in frozen
    for dev_only in ('pytest', 'molecule', 'ansible-lint', 'hypothesis'):
        assert dev_only + '==' not in frozen


def test_scaffold_writes_a_config_repo(route):
    out = _play(route, '%s.init_repo' % COLLECTION, '-e', 'dest=%s' % route['config'], cwd=route['home'])
    assert _recap(out)['failed'] == 0
    for name in ('ansible.cfg', 'inventory/proxmox.yml', 'state/roles.yml', 'state/datastores.yml',
                 'terraform/main.tf', 'terraform/variables.tf', 'requirements.yml', '.gitlab-ci.yml',
                 '.github/workflows/gitops.yml'):
        assert (route['config'] / name).is_file(), name
    # What the user then declares, as they would edit the commented examples.
    (route['config'] / 'state' / 'roles.yml').write_text(ROLES_YML)
    (route['config'] / 'state' / 'datastores.yml').write_text(DATASTORES_YML)


def test_validate(route):
    out = _play(route, '%s.validate' % COLLECTION)
    assert '3 server(s) declared, all valid' in out
    assert not (route['config'] / 'state' / 'proxmox_manager.db').exists(), 'validate wrote a state DB'


def test_plan_writes_nothing(route):
    out = _play(route, '%s.apply' % COLLECTION, '--check', '--diff')
    assert 'PLAN (check mode): nothing was written.' in out
    assert 'Roles: 3 of 3 server(s) would change' in out
    assert not (route['config'] / 'terraform' / 'datastores.auto.tfvars.json').exists()


def test_apply_writes_the_config_repo(route):
    out = _play(route, '%s.apply' % COLLECTION)
    assert 'Roles: 3 of 3 server(s) changed' in out
    assert (route['config'] / 'state' / 'proxmox_manager.db').is_file()
    written = json.loads((route['config'] / 'terraform' / 'datastores.auto.tfvars.json').read_text())
    assert (written['proxmox_hdd_datastore'], written['proxmox_ssd_datastore']) == ('HDD-Storage', 'ssd-pool')


def test_second_apply_changes_nothing(route):
    out = _play(route, '%s.apply' % COLLECTION)
    assert _recap(out)['changed'] == 0, out
    assert 'Roles: 0 of 3 server(s) changed.' in out


def test_drift_is_clean(route):
    out = _play(route, '%s.drift' % COLLECTION, '-e', 'fail_on_drift=true')
    assert _recap(out)['failed'] == 0


def test_from_another_directory_with_ansible_config_the_config_repo_is_still_used(route):
    """As a CI job runs it: ANSIBLE_CONFIG names the config repo's ansible.cfg; the current directory is elsewhere."""
    env = dict(route['env'], ANSIBLE_CONFIG=str(route['config'] / 'ansible.cfg'))
    graph = _run(['ansible-inventory', '--graph'], route['home'], env)
    assert graph.returncode == 0, graph.stderr
    assert '@role_web:' in graph.stdout and '--AI-agent' in graph.stdout
    proc = _run(['ansible-playbook', '%s.apply' % COLLECTION], route['home'], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert 'Roles: 0 of 3 server(s) changed.' in proc.stdout
    assert sorted(os.listdir(route['home'])) == ['.ansible']


def test_inventory_graph_has_the_role_groups(route):
    proc = _run(['ansible-inventory', '--graph'], route['config'], route['env'])
    assert proc.returncode == 0, proc.stderr
    graph = proc.stdout
    for group, host in (('role_web', 'AI-agent'), ('role_db', 'db-01'), ('role_was', 'worker')):
        section = graph.split('@%s:' % group, 1)
        assert len(section) == 2, graph
        assert '--%s' % host in section[1].split('@', 1)[0], graph


def test_module_defaults_group(route):
    double = route['double']
    (route['config'] / 'defaults.yml').write_text(DEFAULTS_PLAY % dict(
        host=double.host, port=double.port, user=double.token_user, token_id=double.token_name,
        ca_path=double.ca_path))
    env = {key: value for key, value in route['env'].items() if not key.startswith('PROXMOX_')}
    env.update(MY_PVE_SECRET=double.token_secret, ANSIBLE_INJECT_INVOCATION='true')  # results carry module args
    # Without PROXMOX_* the config repo's Proxmox inventory cannot parse; this play needs localhost only.
    proc = _run(['ansible-playbook', '-i', 'localhost,', 'defaults.yml', '-vvv'], route['config'], env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert 'datastores=' in proc.stdout and 'HDD-Storage' in proc.stdout
    # -vvv prints every module's arguments: the secret from module_defaults stays hidden (no_log).
    assert 'api_token_secret' in proc.stdout and double.token_secret not in proc.stdout + proc.stderr


def test_installed_collection_verifies_and_nothing_was_written_outside(route):
    proc = _run(['ansible-galaxy', 'collection', 'verify', '--offline', COLLECTION], route['config'], route['env'])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'Successfully verified' in proc.stdout + proc.stderr
    assert _tree(route['collection_dir']) == route['collection_before']
    assert _tree(ROOT) == route['checkout_before']
