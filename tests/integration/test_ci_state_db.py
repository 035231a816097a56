"""On a CI runner, a writing module says loudly that a SQLite state DB in the job's checkout is thrown away."""

import pytest
from ansible.module_utils.basic import AnsibleModule

from tests.conftest import connection_options, run_module


@pytest.fixture
def warned(monkeypatch):
    seen = []
    monkeypatch.setattr(AnsibleModule, 'warn', lambda self, warning, **kw: seen.append(warning))
    return seen


def test_an_apply_on_a_ci_runner_with_a_sqlite_file_in_the_checkout_warns(double, tfvars, roles_dir, sqlite_db,
                                                                          tmp_path, monkeypatch, warned):
    monkeypatch.setenv('CI', 'true')
    monkeypatch.setenv('GITHUB_WORKSPACE', str(tmp_path))
    args = dict(connection_options(double), state_db=sqlite_db, tfvars_path=str(tfvars), roles_path=roles_dir,
                name='web-01', role='web')
    run_module('server_role', args, check_mode=True)
    assert warned == []  # a plan writes nothing, so nothing is thrown away
    assert run_module('server_role', args)['changed']
    assert [w for w in warned if w.startswith('THE STATE DB IS A THROWAWAY FILE')], warned
    monkeypatch.setenv('GITHUB_WORKSPACE', str(tmp_path / 'another-checkout'))
    del warned[:]
    run_module('server_role', dict(args, role='db'))
    assert warned == []
