"""A CI job that writes a SQLite state DB inside its own checkout is told so (state_db.throwaway_warning)."""

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import state_db


@pytest.mark.parametrize('checkout', ['GITHUB_WORKSPACE', 'CI_PROJECT_DIR'])
def test_a_sqlite_file_in_the_jobs_checkout_is_a_throwaway(tmp_path, checkout):
    url = state_db.db_url(str(tmp_path / 'state' / 'proxmox_manager.db'))
    warning = state_db.throwaway_warning(url, {'CI': 'true', checkout: str(tmp_path)})
    assert warning.startswith('THE STATE DB IS A THROWAWAY FILE: %s' % (tmp_path / 'state' / 'proxmox_manager.db'))
    assert 'PROXMOX_MANAGER_DB' in warning


def test_without_a_checkout_variable_nothing_is_said(tmp_path, monkeypatch):
    # Another CI system may keep its workspace between jobs.
    monkeypatch.chdir(tmp_path)
    assert state_db.throwaway_warning(state_db.db_url('state/x.db'), {'CI': 'true'}) is None


@pytest.mark.parametrize('environ', [
    {},                                                      # not CI
    {'CI': 'false', 'GITHUB_WORKSPACE': '/'},                # CI says no
    {'CI': 'true', 'GITHUB_WORKSPACE': '/builds/elsewhere'},  # a file the runner keeps (a self-hosted path)
])
def test_no_warning_off_ci_or_for_a_file_outside_the_checkout(tmp_path, environ):
    assert state_db.throwaway_warning(state_db.db_url(str(tmp_path / 'x.db')), environ) is None


def test_no_warning_for_a_shared_database():
    url = 'postgresql+psycopg://ci@db.example.com/proxmox_manager'
    assert state_db.throwaway_warning(url, {'CI': 'true', 'GITHUB_WORKSPACE': '/'}) is None
