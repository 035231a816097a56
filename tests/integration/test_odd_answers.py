"""Odd answers of Proxmox meet the modules: nothing is written on a listing that cannot be believed.

An empty listing after guests were recorded is what a token without VM.Audit gets; a
malformed one is a server fault. Either way the state DB stays as it was.
"""

import pytest

from tests.conftest import ROOT, ModuleFailed, connection_options, run_module
from tests.seed_db import settled_digest


@pytest.fixture
def base(double, state_db, tfvars):
    return dict(connection_options(double, api_retries=0, api_timeout=5), state_db=state_db, tfvars_path=str(tfvars))


def digest(db):
    """Equal iff nothing was committed: a SQLite file, or every table of a PostgreSQL database."""
    return settled_digest(db)


@pytest.mark.parametrize('module, args', [
    ('server_sync', {}),
    ('server_role', dict(name='db-01', role='db', roles_path=str(ROOT / 'roles'))),
])
def test_an_empty_listing_after_guests_is_refused_by_writers(double, base, state_db, module, args):
    run_module('server_sync', base)
    before = digest(state_db)
    double.add_fault(path='^/cluster/resources$', body='{"data": []}')
    with pytest.raises(ModuleFailed) as refused:
        run_module(module, dict(base, **args))
    message = refused.value.result['msg']
    assert 'Proxmox listed no guests, while 10 were recorded before' in message
    assert 'VM.Audit' in message and 'allow_empty_cluster' in message and 'Nothing was changed' in message
    assert digest(state_db) == before


def test_allow_empty_cluster_lets_a_really_empty_cluster_through(double, base, state_db):
    run_module('server_sync', base)
    double.add_fault(path='^/cluster/resources$', body='{"data": []}')
    result = run_module('server_sync', dict(base, allow_empty_cluster=True))
    assert result['changed'] and len(result['marked_absent']) == 10


def test_an_empty_listing_on_a_fresh_state_db_is_believed(double, base, state_db):
    double.add_fault(path='^/cluster/resources$', body='{"data": []}')
    result = run_module('server_sync', base)
    assert result['changed'] and sorted(result['added']) == ['AI-agent', 'db-01', 'ftp-ct', 'monitoring',
                                                             'search-ct', 'web-01', 'web-02', 'worker']
