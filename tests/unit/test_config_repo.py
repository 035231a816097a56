"""The one rule for relative paths: the config repo (module_utils/config_repo.py, plugin_utils/module_action.py)."""

import os

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import config_repo
from ansible_collections.proxmox_manager.core.plugins.plugin_utils import module_action


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in (config_repo.PROJECT_DIR_ENV, config_repo.ROLES_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_the_environment_wins(monkeypatch, tmp_path):
    monkeypatch.setenv(config_repo.PROJECT_DIR_ENV, str(tmp_path / 'chosen'))
    assert config_repo.project_dir(str(tmp_path / 'repo' / 'ansible.cfg')) == str(tmp_path / 'chosen')


def test_the_ansible_cfg_in_use_anchors_the_config_repo(tmp_path):
    assert config_repo.project_dir(str(tmp_path / 'repo' / 'ansible.cfg')) == str(tmp_path / 'repo')


@pytest.mark.parametrize('shared', ['~/.ansible.cfg', '/etc/ansible/ansible.cfg'])
def test_a_shared_ansible_cfg_says_nothing_and_the_current_directory_is_taken(tmp_path, shared):
    assert config_repo.project_dir(os.path.expanduser(shared)) == str(tmp_path)


def test_without_any_config_the_current_directory_is_taken(tmp_path):
    assert config_repo.project_dir(None) == str(tmp_path)


def test_resolve(tmp_path):
    assert config_repo.resolve('state/x.db', str(tmp_path / 'repo')) == str(tmp_path / 'repo' / 'state' / 'x.db')
    assert config_repo.resolve('/abs/x.db', str(tmp_path / 'repo')) == '/abs/x.db'
    assert config_repo.resolve('~/x.db', str(tmp_path)) == os.path.expanduser('~/x.db')
    assert config_repo.resolve('x.db') == str(tmp_path / 'x.db')


def test_the_role_catalog_is_the_config_repos_else_the_collections(tmp_path):
    assert config_repo.role_catalog_dir(str(tmp_path), '/shipped') == '/shipped'
    (tmp_path / 'roles').mkdir()
    assert config_repo.role_catalog_dir(str(tmp_path), '/shipped') == str(tmp_path / 'roles')


def test_the_shipped_roles_are_the_collections():
    assert sorted(os.listdir(module_action.SHIPPED_ROLES)) == ['db', 'ftp', 'java', 'monitoring', 'search', 'was',
                                                               'web']


def test_module_args_fill_in_what_the_task_leaves_out(tmp_path):
    config = str(tmp_path / 'repo' / 'ansible.cfg')
    args = module_action.module_args({'name': 'web-01'}, config, role_catalog=True)
    assert args == {'name': 'web-01', 'project_dir': str(tmp_path / 'repo'), 'roles_path': module_action.SHIPPED_ROLES}
    assert module_action.module_args({}, config) == {'project_dir': str(tmp_path / 'repo')}


def test_module_args_keep_what_the_task_or_the_environment_says(monkeypatch, tmp_path):
    given = {'project_dir': '/mine', 'roles_path': '/my/roles'}
    assert module_action.module_args(given, None, role_catalog=True) == given
    monkeypatch.setenv(config_repo.ROLES_ENV, '/env/roles')
    assert 'roles_path' not in module_action.module_args({}, None, role_catalog=True)


def test_module_args_take_the_config_repos_roles_when_it_has_them(tmp_path):
    (tmp_path / 'repo' / 'roles').mkdir(parents=True)
    args = module_action.module_args({}, str(tmp_path / 'repo' / 'ansible.cfg'), role_catalog=True)
    assert args['roles_path'] == str(tmp_path / 'repo' / 'roles')


def test_a_relative_or_home_project_dir_is_made_absolute_on_the_controller(tmp_path):
    assert module_action.module_args({'project_dir': 'repo'}, None)['project_dir'] == str(tmp_path / 'repo')
    assert module_action.module_args({'project_dir': '~/repo'}, None)['project_dir'] == os.path.expanduser('~/repo')


def test_the_tasks_environment_counts_as_the_modules_would_see_it(tmp_path):
    """A play's `environment: {PROXMOX_MANAGER_PROJECT_DIR: ...}` still chooses the config repo."""
    environ = {config_repo.PROJECT_DIR_ENV: str(tmp_path / 'from-task'), config_repo.ROLES_ENV: '/task/roles'}
    args = module_action.module_args({}, str(tmp_path / 'repo' / 'ansible.cfg'), role_catalog=True, environ=environ)
    assert args == {'project_dir': str(tmp_path / 'from-task')}


def test_inventory_options_resolve_in_the_config_repo(tmp_path):
    from ansible_collections.proxmox_manager.core.plugins.plugin_utils import inventory_view
    options = inventory_view.in_config_repo({'project_dir': None, 'state_db': None}, str(tmp_path / 'r' / 'ansible.cfg'))
    assert options['project_dir'] == str(tmp_path / 'r')
    assert options['state_db'] == 'sqlite:///%s' % (tmp_path / 'r' / 'state' / 'proxmox_manager.db')
    url = 'postgresql+psycopg://u@h/db'
    assert inventory_view.in_config_repo({'project_dir': 'x', 'state_db': url}, None) == {
        'project_dir': str(tmp_path / 'x'), 'state_db': url}
