"""Execution environments and AWX/AAP: what ansible-builder finds in the built collection, and the
credential type of docs/awx.md against the variables the plugin and the modules really read.

The collection is built and installed once (module fixture) the way an EE build gets it: from the
tarball `ansible-galaxy collection build` writes, into a collections path of its own.
"""

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from jinja2 import meta as jinja_meta
from jinja2.sandbox import ImmutableSandboxedEnvironment
from packaging.requirements import Requirement
from packaging.version import Version

from ansible_collections.proxmox_manager.core.plugins.module_utils.module_base import STATE_ARGSPEC
from ansible_collections.proxmox_manager.core.plugins.module_utils.proxmox_client import CONNECTION_ARGSPEC
from tests.conftest import BIN, ROOT, SAMPLE_TFVARS

GALAXY = yaml.safe_load((ROOT / 'galaxy.yml').read_text())
FQCN = '%s.%s' % (GALAXY['namespace'], GALAXY['name'])
CREDENTIAL_TYPE = ROOT / 'docs' / 'awx' / 'credential_type.yml'
EE_DEFINITION = ROOT / 'docs' / 'awx' / 'execution-environment.yml'
# ansible-builder drops these from every collection: the EE's ansible-core brings them.
BUILDER_EXCLUDES = {'ansible-core', 'pyyaml'}


def clean_env(**extra):
    """The environment without this checkout's Ansible settings or Proxmox credentials."""
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'PROXMOX_')))
    env.update(ANSIBLE_NOCOLOR='1', ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false')
    env.update(extra)
    return env


def run(args, cwd, env, timeout=120):
    proc = subprocess.run([str(BIN / args[0])] + [str(a) for a in args[1:]], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, '%s\n%s\n%s' % (' '.join(map(str, args)), proc.stdout, proc.stderr)
    return proc


def lines(path):
    """The entries of a requirements or bindep file, without comments and blank lines."""
    return [line.split(' #', 1)[0].strip() for line in Path(path).read_text().splitlines()
            if line.strip() and not line.lstrip().startswith('#')]


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """The collection built into a tarball and installed from it into a collections path of its own."""
    work = tmp_path_factory.mktemp('ee')
    run(['ansible-galaxy', 'collection', 'build', '--output-path', work], ROOT, clean_env())
    tarball = work / ('%s-%s-%s.tar.gz' % (GALAXY['namespace'], GALAXY['name'], GALAXY['version']))
    assert tarball.is_file()
    collections = work / 'collections'
    # The path of its own only: the checkout's collections/ symlink would count as "already installed".
    run(['ansible-galaxy', 'collection', 'install', '--offline', '-p', collections, tarball], work,
        clean_env(ANSIBLE_COLLECTIONS_PATH=str(collections)))
    path = collections / 'ansible_collections' / GALAXY['namespace'] / GALAXY['name']
    return SimpleNamespace(work=work, tarball=tarball, collections=collections, path=path)


# -- what an EE build finds ----------------------------------------------------------------------------


def test_tarball_carries_the_dependency_files_as_in_the_repo(installed):
    manifest = json.loads((installed.path / 'MANIFEST.json').read_text())['collection_info']
    assert (manifest['namespace'], manifest['name'], manifest['version']) == (
        GALAXY['namespace'], GALAXY['name'], GALAXY['version'])
    for name in ('requirements.txt', 'bindep.txt', 'meta/execution-environment.yml'):
        assert (installed.path / name).read_text() == (ROOT / name).read_text(), name
    meta = yaml.safe_load((installed.path / 'meta' / 'execution-environment.yml').read_text())
    assert meta['dependencies'] == {'python': 'requirements.txt', 'system': 'bindep.txt'}
    assert not (installed.path / 'requirements' / 'runtime.txt').exists()


def test_introspect_lists_the_python_and_system_requirements(installed):
    # ansible-builder 3.x always sanitizes; --sanitize is still accepted (hidden) for the 1.x command lines.
    proc = run(['ansible-builder', 'introspect', '--sanitize', installed.collections], installed.work, clean_env())
    found = yaml.safe_load(proc.stdout)
    suffix = '  # from collection %s' % FQCN
    assert all(entry.endswith(suffix) for entry in found['python'] + found['system']), found
    python = [entry[:-len(suffix)] for entry in found['python']]
    system = [entry[:-len(suffix)] for entry in found['system']]

    wanted = lines(ROOT / 'requirements.txt')
    names = set(Requirement(line).name.lower() for line in wanted)
    assert {'proxmoxer', 'requests', 'pyyaml', 'jsonschema', 'sqlalchemy', 'ansible-core'} <= names
    # Every requirement as written, in order, less the two the EE's ansible-core already brings.
    assert python == [line for line in wanted if Requirement(line).name.lower() not in BUILDER_EXCLUDES]
    assert BUILDER_EXCLUDES <= names
    assert system == lines(ROOT / 'bindep.txt') and system


def test_requirements_are_ranges_that_hold_the_pins_and_requires_ansible():
    pins = {}
    for line in lines(ROOT / 'requirements' / 'constraints.txt'):
        name, version = line.split('==')
        pins[name.lower().replace('_', '-')] = Version(version)
    # requirements/postgresql.txt: the optional PostgreSQL driver, for users too
    for line in lines(ROOT / 'requirements.txt') + lines(ROOT / 'requirements' / 'postgresql.txt'):
        req = Requirement(line)
        operators = set(spec.operator for spec in req.specifier)
        assert operators and not operators & {'==', '==='}, line  # ranges, never pins
        assert '>=' in operators and '<' in operators, line  # a floor and a ceiling
        assert pins[req.name.lower()] in req.specifier, (line, pins[req.name.lower()])  # dev venv within range
    core = next(Requirement(line) for line in lines(ROOT / 'requirements.txt') if line.startswith('ansible-core'))
    floor = yaml.safe_load((ROOT / 'meta' / 'runtime.yml').read_text())['requires_ansible']
    assert floor == '>=2.20.0' and Version('2.20.0') in core.specifier and Version('2.19.99') not in core.specifier
    test_txt = lines(ROOT / 'requirements' / 'test.txt')
    assert '-r ../requirements.txt' in test_txt and 'ansible-builder==3.2.0' in test_txt
    assert '-r postgresql.txt' in test_txt  # the dev venv runs the tests on PostgreSQL too


def test_documented_ee_definition_builds_a_context_with_the_collection(installed):
    # ansible-builder create needs no container runtime: it checks the definition and writes the build context.
    work = installed.work / 'ee-context'
    work.mkdir()
    (work / 'execution-environment.yml').write_text(EE_DEFINITION.read_text())
    (work / installed.tarball.name).write_bytes(installed.tarball.read_bytes())
    run(['ansible-builder', 'create', '--output-filename', 'Containerfile', '--context', 'context'], work, clean_env())
    build = work / 'context' / '_build'
    assert (build / 'collections' / installed.tarball.name).read_bytes() == installed.tarball.read_bytes()
    galaxy = yaml.safe_load((build / 'requirements.yml').read_text())
    assert galaxy == {'collections': [{'name': 'collections/%s' % installed.tarball.name, 'type': 'file'}]}
    containerfile = (work / 'context' / 'Containerfile').read_text()
    assert 'ARG PYCMD="/usr/bin/python3.12"' in containerfile
    assert 'ansible-core>=2.20,<2.23' in containerfile
    assert 'introspect.py introspect' in containerfile  # where the collection's requirements get in


# -- the AWX credential type --------------------------------------------------------------------------


def credential_type():
    return yaml.safe_load(CREDENTIAL_TYPE.read_text())


def referenced(template):
    """Input field ids a template uses ({{ field }} or {{ tower.filename.field }})."""
    names = jinja_meta.find_undeclared_variables(ImmutableSandboxedEnvironment().parse(template))
    return names - {'tower'}


def plugin_env_vars(inventory_loader):
    """env name -> option, from the inventory plugin's documentation with its fragments merged in."""
    from ansible.plugins.loader import fragment_loader
    from ansible.utils.plugin_docs import get_docstring
    path = str(ROOT / 'plugins' / 'inventory' / 'proxmox.py')
    doc = get_docstring(path, fragment_loader, collection_name=FQCN, plugin_type='inventory')[0]
    return dict((env['name'], option) for option, spec in doc['options'].items() for env in spec.get('env') or [])


def module_env_vars():
    """env name -> argspec entry, from the modules' env_fallbacks."""
    found = {}
    for spec in list(CONNECTION_ARGSPEC.values()) + list(STATE_ARGSPEC.values()):
        fallback = spec.get('fallback')
        for name in (fallback[1] if fallback else []):
            found[name] = spec
    return found


def test_credential_type_injects_only_what_the_collection_reads_and_hides_secrets(inventory_loader):
    ctype = credential_type()
    fields = dict((field['id'], field) for field in ctype['inputs']['fields'])
    env = ctype['injectors']['env']
    plugin, modules = plugin_env_vars(inventory_loader), module_env_vars()
    assert set(env) <= set(plugin) & set(modules), set(env) - (set(plugin) & set(modules))
    assert {'PROXMOX_HOST', 'PROXMOX_PORT', 'PROXMOX_USER', 'PROXMOX_TOKEN_ID', 'PROXMOX_TOKEN_SECRET',
            'PROXMOX_PASSWORD', 'PROXMOX_CA_PATH'} <= set(env)

    # Every field is injected somewhere, and every template names real fields.
    files = ctype['injectors']['file']
    used = set()
    for template in list(env.values()) + list(files.values()):
        assert referenced(template) <= set(fields), template
        used |= referenced(template)
    assert used == set(fields)
    # The CA goes in as a file, whose path is PROXMOX_CA_PATH.
    assert files == {'template.ca_cert': '{{ ca_cert }}'}
    assert env['PROXMOX_CA_PATH'] == '{{ tower.filename.ca_cert }}'

    # A field behind an option the modules never log is secret, and so is the DB URL (it holds a password).
    secret = set(['state_db'])
    for name, template in env.items():
        if modules[name].get('no_log'):
            secret |= referenced(template)
    assert secret >= {'password', 'token_secret', 'state_db'}
    for field_id, field in fields.items():
        assert field.get('secret', False) is (field_id in secret), field_id
    assert set(ctype['inputs']['required']) <= set(fields)
    assert ctype['kind'] == 'cloud' and all(field['type'] == 'string' for field in fields.values())


def inject(ctype, inputs, directory):
    """The environment AWX gives a job or an inventory update for a credential of this type.

    As AWX's CredentialType.inject_credential: fields left empty are undefined (they render as
    ''), every env var is set anyway, and each file injector writes a file whose path is
    tower.filename.<name>.
    """
    sandbox = ImmutableSandboxedEnvironment()
    namespace = dict((k, v) for k, v in inputs.items() if v)
    tower = SimpleNamespace(filename=SimpleNamespace())
    for label, template in ctype['injectors'].get('file', {}).items():
        path = directory / ('awx_' + label.split('.', 1)[1])
        path.write_text(sandbox.from_string(template).render(tower=tower, **namespace))
        setattr(tower.filename, label.split('.', 1)[1], str(path))
    return dict((name, sandbox.from_string(template).render(tower=tower, **namespace))
                for name, template in ctype['injectors']['env'].items())


@pytest.mark.parametrize('auth', ['token', 'password'])
def test_inventory_source_from_a_project_with_the_credential(installed, double, tmp_path, auth):
    # A config repo as AWX checks it out; the inventory update runs in it, with the installed collection.
    project = tmp_path / 'project'
    (project / 'inventory').mkdir(parents=True)
    (project / 'terraform').mkdir()
    (project / 'ansible.cfg').write_text('[inventory]\nenable_plugins = %s.proxmox\n' % FQCN)
    (project / 'inventory' / 'proxmox.yml').write_text('plugin: %s.proxmox\n' % FQCN)
    (project / 'terraform' / 'terraform.tfvars.json').write_text(SAMPLE_TFVARS.read_text())
    private = tmp_path / 'private'
    private.mkdir()

    ctype = credential_type()
    inputs = dict(host=double.host, port=str(double.port), ca_cert=Path(double.ca_path).read_text())
    if auth == 'token':
        inputs.update(user=double.token_user, token_id=double.token_name, token_secret=double.token_secret)
    else:
        inputs.update(user=double.user, password=double.password)
    assert set(ctype['inputs']['required']) <= set(inputs)
    injected = inject(ctype, inputs, private)
    # The fields left empty are still set, empty, as AWX does: the collection must take '' as unset.
    empty = set(['PROXMOX_MANAGER_DB']) | (
        {'PROXMOX_PASSWORD'} if auth == 'token' else {'PROXMOX_TOKEN_ID', 'PROXMOX_TOKEN_SECRET'})
    assert set(name for name, value in injected.items() if value == '') == empty

    double.reset_counters()
    proc = run(['ansible-inventory', '-i', 'inventory/proxmox.yml', '--list'], project,
               clean_env(ANSIBLE_COLLECTIONS_PATH=str(installed.collections),
                         ANSIBLE_INVENTORY_UNPARSED_FAILED='true', **injected))
    listing = json.loads(proc.stdout)
    hostvars = listing['_meta']['hostvars']
    # The merged view: live guests (two sharing a name become <name>-<vmid>) and the declared servers.
    guests = [g for g in double.cluster.guests if not g.template]
    shared = set(g.name for g in guests if [h.name for h in guests].count(g.name) > 1)
    live = set('%s-%s' % (g.name, g.vmid) if g.name in shared else g.name for g in guests)
    declared = set(json.loads(SAMPLE_TFVARS.read_text())['servers']) - shared
    assert set(hostvars) == live | declared and declared - live
    assert set(listing['declared_only']['hosts']) == declared - live
    calls = double.counters()['by_path']
    assert ('POST /access/ticket' in calls) is (auth == 'password'), calls
    assert calls.get('GET /cluster/resources') == 1
