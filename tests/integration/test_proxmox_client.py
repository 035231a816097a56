"""ProxmoxClient against the in-process Proxmox API double: auth, TLS, retries, errors, IP lookups."""

import os
import socket
import threading
import types

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import proxmox_client
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import (
    ConfigurationError,
    ProxmoxApiError,
    ProxmoxAuthError,
    ProxmoxUnreachableError,
)
from ansible_collections.proxmox_manager.core.plugins.module_utils.proxmox_client import ProxmoxClient
from tests.conftest import connection_options

AGENT = 'GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces'
LXC_IFACES = 'GET /nodes/{node}/lxc/{vmid}/interfaces'
SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt'


@pytest.fixture(autouse=True)
def requests_ca_bundle(monkeypatch):
    """REQUESTS_CA_BUNDLE as a user's shell has it: the system bundle, which does not trust the double."""
    if not os.path.exists(SYSTEM_BUNDLE):
        import certifi
        bundle = certifi.where()
    else:
        bundle = SYSTEM_BUNDLE
    monkeypatch.setenv('REQUESTS_CA_BUNDLE', bundle)
    return bundle


@pytest.fixture
def sleeps(monkeypatch):
    """Record the backoff sleeps instead of sleeping them."""
    recorded = []
    monkeypatch.setattr(proxmox_client, 'time', types.SimpleNamespace(sleep=recorded.append))
    return recorded


def calls(double):
    return double.counters()['by_path']


def free_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# -- auth ---------------------------------------------------------------------------------------

def test_token_auth_makes_no_login_call(double):
    client = ProxmoxClient(connection_options(double))
    assert client.get('/version')['release']
    assert calls(double) == {'GET /version': 1}


def test_full_token_id_form_is_accepted(double):
    opts = connection_options(double, api_token_id=double.token_id)
    opts.pop('api_user')
    client = ProxmoxClient(opts)
    assert client.user == double.token_user and client.token_name == double.token_name
    assert client.get('/version')['release']


def test_ticket_auth_logs_in_once(double):
    client = ProxmoxClient(connection_options(double, auth='password'))
    assert client.get('/version')['release']
    assert len(client.cluster_resources('vm')) == len(double.cluster.guests)
    assert calls(double) == {'POST /access/ticket': 1, 'GET /version': 1, 'GET /cluster/resources': 1}


def test_wrong_token_secret_is_a_clear_401_without_the_secret(double):
    wrong = 'not-the-secret-5f1e2d'
    client = ProxmoxClient(connection_options(double, api_token_secret=wrong))
    with pytest.raises(ProxmoxAuthError) as info:
        client.cluster_resources('vm')
    text = str(info.value)
    assert info.value.status == 401
    assert double.token_user in text and 'token id %s' % double.token_name in text
    assert '401' in text and 'credentials' in text
    for secret in (wrong, double.token_secret):
        assert secret not in text and secret not in repr(info.value.args)
    # an auth error is final: no retry
    assert calls(double) == {'GET /cluster/resources': 1}


def test_unknown_token_id_names_it(double):
    client = ProxmoxClient(connection_options(double, api_token_id='nosuchtoken'))
    with pytest.raises(ProxmoxAuthError, match='token id nosuchtoken'):
        client.get('/version')


def test_wrong_password_is_a_clear_401_without_the_password(double):
    wrong = 'Wr0ng-Passw0rd-zz'
    client = ProxmoxClient(connection_options(double, auth='password', api_password=wrong))
    with pytest.raises(ProxmoxAuthError) as info:
        client.get('/version')
    text = str(info.value)
    assert info.value.status == 401 and double.user in text and 'password auth' in text
    assert wrong not in text and double.password not in text
    assert calls(double) == {'POST /access/ticket': 1}


def test_403_is_an_auth_error_naming_the_token(double):
    double.add_fault(path='^/cluster/resources$', status=403, times=1)
    client = ProxmoxClient(connection_options(double))
    with pytest.raises(ProxmoxAuthError) as info:
        client.cluster_resources('vm')
    assert info.value.status == 403 and 'permissions' in str(info.value)
    assert double.token_name in str(info.value) and double.token_secret not in str(info.value)


# -- TLS, with REQUESTS_CA_BUNDLE set -------------------------------------------------------------

def test_ca_path_verifies_with_requests_ca_bundle_set(double, requests_ca_bundle):
    assert os.environ['REQUESTS_CA_BUNDLE'] == requests_ca_bundle
    assert ProxmoxClient(connection_options(double)).get('/version')['release']
    assert ProxmoxClient(connection_options(double, auth='password')).get('/version')['release']


def test_without_ca_path_the_bundle_applies_and_refuses_the_double(double):
    with pytest.raises(ProxmoxUnreachableError, match='TLS verification failed'):
        ProxmoxClient(connection_options(double, ca_path=None)).get('/version')


def test_ca_path_beats_requests_ca_bundle(double, monkeypatch):
    # The environment trusts the double; the CA the user named does not, and wins.
    monkeypatch.setenv('REQUESTS_CA_BUNDLE', double.ca_path)
    assert ProxmoxClient(connection_options(double, ca_path=None)).get('/version')['release']
    with pytest.raises(ProxmoxUnreachableError):
        ProxmoxClient(connection_options(double, ca_path=double.wrong_ca_path)).get('/version')


def test_wrong_ca_is_refused_clearly_and_not_retried(double, sleeps):
    client = ProxmoxClient(connection_options(double, ca_path=double.wrong_ca_path, api_retries=3))
    with pytest.raises(ProxmoxUnreachableError) as info:
        client.get('/version')
    text = str(info.value)
    assert text.startswith('TLS verification failed for %s' % double.url)
    assert 'CERTIFICATE_VERIFY_FAILED' in text and 'ca_path' in text
    assert text.count('(') == text.count(')')
    assert sleeps == []
    assert double.counters()['total'] == 0  # refused at the handshake, before any HTTP


def test_missing_ca_file_is_a_configuration_error(double, tmp_path):
    missing = str(tmp_path / 'no-such-ca.pem')
    with pytest.raises(ConfigurationError, match='The CA file %s given as ca_path' % missing):
        ProxmoxClient(connection_options(double, ca_path=missing))
    # unless verification is off, when the CA file does not matter
    assert ProxmoxClient(connection_options(double, ca_path=missing, validate_certs=False)).get('/version')


def test_an_empty_ca_path_variable_is_refused_not_read_as_a_ca_directory(double, tmp_path, monkeypatch):
    """The inventory's options (Ansible's config) turn PROXMOX_CA_PATH= into the current directory."""
    from ansible.config.manager import ensure_type
    monkeypatch.chdir(tmp_path)
    ca_path = ensure_type('', 'path')
    assert ca_path == str(tmp_path)
    with pytest.raises(ConfigurationError) as err:
        ProxmoxClient(connection_options(double, ca_path=ca_path))
    assert str(err.value) == (
        'ca_path (PROXMOX_CA_PATH) names the directory %s, not a CA file (PEM). An empty PROXMOX_CA_PATH is '
        'read as the current directory: unset it to use the system CAs.' % tmp_path)
    assert double.counters()['total'] == 0


@pytest.mark.parametrize('bundle', ['system', 'wrong_ca'])
def test_validate_certs_false_works_with_requests_ca_bundle_set(double, monkeypatch, bundle):
    if bundle == 'wrong_ca':
        monkeypatch.setenv('REQUESTS_CA_BUNDLE', double.wrong_ca_path)
    for auth in ('token', 'password'):
        client = ProxmoxClient(connection_options(double, auth=auth, ca_path=None, validate_certs=False))
        assert client.get('/version')['release']


# -- unreachable, retries, timeouts ---------------------------------------------------------------

def test_proxmox_down_is_unreachable_after_retries(double, sleeps):
    port = free_port()
    client = ProxmoxClient(connection_options(double, api_port=port, api_retries=2))
    with pytest.raises(ProxmoxUnreachableError) as info:
        client.get('/version')
    assert str(info.value) == 'Cannot reach Proxmox at https://127.0.0.1:%s: Connection refused' % port
    assert sleeps == [proxmox_client._BACKOFF, proxmox_client._BACKOFF * 2]


def test_500_then_success_is_retried(double, sleeps):
    double.add_fault(path='^/cluster/resources$', status=500, times=1)
    client = ProxmoxClient(connection_options(double))
    assert len(client.cluster_resources('vm')) == len(double.cluster.guests)
    assert calls(double) == {'GET /cluster/resources': 2}
    assert sleeps == [proxmox_client._BACKOFF]


def test_501_is_not_retried(double, sleeps):
    double.add_fault(path='^/cluster/resources$', status=501, times=1)
    client = ProxmoxClient(connection_options(double, api_retries=3))
    with pytest.raises(ProxmoxApiError) as info:
        client.cluster_resources('vm')
    assert info.value.status == 501 and 'HTTP 501' in str(info.value)
    assert calls(double) == {'GET /cluster/resources': 1} and sleeps == []


@pytest.mark.parametrize('retries', [0, 2])
def test_500_forever_fails_after_one_plus_retries_attempts(double, sleeps, retries):
    double.add_fault(path='^/cluster/resources$', status=500, message='pveproxy broke')
    client = ProxmoxClient(connection_options(double, api_retries=retries))
    with pytest.raises(ProxmoxApiError) as info:
        client.cluster_resources('vm')
    assert info.value.status == 500
    assert 'HTTP 500' in str(info.value) and 'pveproxy broke' in str(info.value)
    assert calls(double) == {'GET /cluster/resources': 1 + retries}
    assert len(sleeps) == retries


def test_ticket_login_is_retried_on_5xx(double, sleeps):
    double.add_fault(method='POST', path='^/access/ticket$', status=503, times=1)
    client = ProxmoxClient(connection_options(double, auth='password'))
    assert client.get('/version')['release']
    assert calls(double) == {'POST /access/ticket': 2, 'GET /version': 1}


def test_timeout_is_a_clear_message(double):
    double.add_fault(path='^/cluster/resources$', delay=3)
    client = ProxmoxClient(connection_options(double, api_timeout=1, api_retries=0))
    with pytest.raises(ProxmoxUnreachableError) as info:
        client.cluster_resources('vm')
    assert str(info.value) == 'Proxmox did not answer %s/cluster/resources within 1s (api_timeout).' % double.url


# -- configuration --------------------------------------------------------------------------------

@pytest.mark.parametrize('drop, expected', [
    (('api_host',), 'No Proxmox host given: set api_host or the PROXMOX_HOST'),
    (('api_user',), 'No Proxmox user given: set api_user (PROXMOX_USER)'),
    (('api_token_secret',), 'No Proxmox credentials for {user}: set api_token_id and api_token_secret'),
    (('api_token_id', 'api_token_secret'), 'No Proxmox credentials for {user}'),
])
def test_missing_options_are_configuration_errors(double, drop, expected):
    opts = connection_options(double)
    for key in drop:
        opts.pop(key)
    with pytest.raises(ConfigurationError) as info:
        ProxmoxClient(opts)
    assert str(info.value).startswith(expected.format(user=double.token_user))
    assert double.counters()['total'] == 0


# -- guest IP lookups -----------------------------------------------------------------------------

def guest_ref(double, vmid):
    g = double.cluster.guest(vmid)
    return dict(vmid=g.vmid, node=g.node, type=g.type)


def test_guests_ips_asks_only_what_it_is_given(double):
    # 100 agent running, 103 agent off (500), 200 lxc running, 201 lxc on an offline node (595)
    double.set_node_status('pve3', 'offline')
    client = ProxmoxClient(connection_options(double, api_retries=2))
    found = client.guests_ips([guest_ref(double, v) for v in (100, 103, 200, 201)], max_workers=4)
    assert found == {100: ['10.10.0.50'], 103: None, 200: ['10.10.0.70'], 201: []}  # None: agent not running
    # 500 and 595 are final answers: one call each, no retry, nothing else asked
    assert calls(double) == {AGENT: 2, LXC_IFACES: 2}


def test_guests_ips_of_nothing_makes_no_call(double):
    assert ProxmoxClient(connection_options(double)).guests_ips([]) == {}
    assert double.counters()['total'] == 0


def test_guests_ips_an_auth_error_is_not_swallowed(double):
    client = ProxmoxClient(connection_options(double, api_token_secret='bad-secret-0'))
    with pytest.raises(ProxmoxAuthError):
        client.guests_ips([guest_ref(double, 100)])


def test_guests_ips_runs_concurrently_and_bounded(double, monkeypatch):
    workers = 3
    refs = [guest_ref(double, v) for v in (100, 101, 102, 103, 110, 200, 201, 111, 120)]
    lock = threading.Lock()
    state = dict(active=0, peak=0, started=0)
    # The first `workers` lookups only pass together: a serial client would break the barrier.
    barrier = threading.Barrier(workers, timeout=10)
    original = ProxmoxClient.guest_ips

    def tracked(self, guest):
        with lock:
            state['active'] += 1
            state['started'] += 1
            state['peak'] = max(state['peak'], state['active'])
            first_wave = state['started'] <= workers
        try:
            if first_wave:
                barrier.wait()
            threading.Event().wait(0.02)  # hold the slot, so an unbounded pool would overlap more
            return original(self, guest)
        finally:
            with lock:
                state['active'] -= 1

    monkeypatch.setattr(ProxmoxClient, 'guest_ips', tracked)
    found = ProxmoxClient(connection_options(double)).guests_ips(refs, max_workers=workers)
    assert sorted(found) == sorted(r['vmid'] for r in refs)
    assert state['peak'] == workers
    assert double.counters()['total'] == len(refs)


def test_lookups_run_in_daemon_threads_so_a_hung_agent_never_holds_up_the_exit(double, monkeypatch):
    seen = []
    original = ProxmoxClient.guest_ips

    def tracked(self, guest):
        seen.append((threading.current_thread().daemon, threading.current_thread() is threading.main_thread()))
        return original(self, guest)

    monkeypatch.setattr(ProxmoxClient, 'guest_ips', tracked)
    ProxmoxClient(connection_options(double)).guests_ips([guest_ref(double, v) for v in (100, 200)], max_workers=2)
    assert seen == [(True, False)] * 2


def test_the_first_lookup_error_stops_the_lookups_not_started(double):
    double.add_fault(path='/agent/network-get-interfaces$', status=403)
    client = ProxmoxClient(connection_options(double))
    refs = [guest_ref(double, 100)] * 20
    with pytest.raises(ProxmoxAuthError):
        client.guests_ips(refs, max_workers=1)
    assert calls(double) == {AGENT: 1}
