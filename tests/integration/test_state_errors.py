"""A state DB that cannot be used ends in one clear message naming it, and changes nothing.

Issue "Never wrong in silence", parts 6 and 7: each broken state DB is tried
through a writing module (server_role), the read-only module (datastore_info),
the inventory's recorded view and the inventory plugin itself. None may end in
"Unexpected error", a traceback or a changed file or database; a password never
shows. The broken SQLite files, then PostgreSQL that cannot be used: the server
down, one that never answers, a database that does not exist, a refused password.
"""

import gc
import hashlib
import os
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.proxmox_manager.core.plugins.module_utils import state_db as sdb
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import StateStoreError
from ansible_collections.proxmox_manager.core.plugins.plugin_utils import recorded_view as recorded
from tests.conftest import SAMPLE_TFVARS, ModuleFailed, connection_options, run_module
from tests.postgres import AUTH_USER, database_of, free_port
from tests.seed_db import created_nothing, is_postgresql, legacy_db, query, settled_digest

SECRET = 'secret'
BAD_PORT_URL = 'postgresql+psycopg://u:%s@localhost:notaport/db' % SECRET
NO_DRIVER_URL = 'mysql://u:%s@localhost/db' % SECRET


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ('PROXMOX_MANAGER_DB', 'PROXMOX_MANAGER_DB_TIMEOUT', 'PROXMOX_HDD_DATASTORE',
                'PROXMOX_SSD_DATASTORE', 'PROXMOX_API_RETRIES'):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def base(double, roles_dir):
    return dict(connection_options(double, api_retries=0, api_timeout=5), tfvars_path=str(SAMPLE_TFVARS),
                roles_path=roles_dir)


def tree(directory):
    """{relative path: sha256 or 'dir'} of everything under directory: equal iff nothing was written."""
    out = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), directory)] = 'dir'
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as handle:
                out[os.path.relpath(path, directory)] = hashlib.sha256(handle.read()).hexdigest()
    return out


def chattr(flag, *paths):
    subprocess.run(['chattr', flag] + [str(p) for p in paths], check=True, capture_output=True)


def immutable_supported(tmp_path):
    probe = tmp_path / 'probe'
    probe.write_text('')
    try:
        chattr('+i', probe)
    except (OSError, subprocess.CalledProcessError):
        return False
    chattr('-i', probe)
    probe.unlink()
    return True


def make_db(base, state_db):
    """A state DB as a real run leaves it (current layout, WAL mode), every connection closed."""
    run_module('server_role', dict(base, state_db=state_db, name='AI-agent', role='web'))
    gc.collect()  # closes the engine of the in-process run: the -wal and -shm files go away


class Broken:
    """One broken state DB: set up, what every message must say, and torn down."""

    def __init__(self, case, base, tmp_path, monkeypatch, request):
        self.case = case
        self.dir = tmp_path / 'state'
        self.path = str(self.dir / 'proxmox_manager.db')
        self.option = self.path
        self.holder = None
        self.listener = None
        self.frozen = []
        self.request = request
        self.databases = None  # PostgreSQL: what must not change there
        getattr(self, '_' + case.replace('-', '_'))(base, tmp_path, monkeypatch)

    # -- the cases ---------------------------------------------------------------------------

    def _corrupt(self, base, tmp_path, monkeypatch):
        self.dir.mkdir()
        Path(self.path).write_bytes(b'this is not a database\n' * 200)
        self.says = [self.path, 'file is not a database']

    def _directory(self, base, tmp_path, monkeypatch):
        os.makedirs(self.path)
        self.says = [self.path, 'is a directory']

    def _read_only(self, base, tmp_path, monkeypatch):
        # Root ignores permission bits; the immutable attribute stops root as a read-only mount does.
        if not immutable_supported(tmp_path):
            pytest.skip('chattr +i is not supported here')
        make_db(base, self.path)
        self.frozen = [self.path, str(self.dir)]
        chattr('+i', *self.frozen)
        self.says = [self.path, 'read-only']

    def _locked_rollback_journal(self, base, tmp_path, monkeypatch):
        make_db(base, self.path)
        conn = sqlite3.connect(self.path)
        assert conn.execute('PRAGMA journal_mode=DELETE').fetchone() == ('delete',)
        conn.close()
        monkeypatch.setenv('PROXMOX_MANAGER_DB_TIMEOUT', '1')
        self.holder = sqlite3.connect(self.path, isolation_level=None)
        self.holder.execute('BEGIN EXCLUSIVE')
        self.says = [self.path, 'database is locked', 'PROXMOX_MANAGER_DB_TIMEOUT']

    def _schema_version_abc(self, base, tmp_path, monkeypatch):
        make_db(base, self.path)
        conn = sqlite3.connect(self.path)
        conn.execute("UPDATE pm_meta SET value = 'abc' WHERE key = 'schema_version'")
        conn.commit()
        conn.close()
        self.says = [self.path, 'schema_version', "'abc'"]

    def _bad_port(self, base, tmp_path, monkeypatch):
        self.dir.mkdir()
        self.option = BAD_PORT_URL
        self.says = ['postgresql+psycopg://u:***@localhost:notaport/db', "port 'notaport' is not a number"]

    def _missing_driver(self, base, tmp_path, monkeypatch):
        self.dir.mkdir()
        self.option = NO_DRIVER_URL
        self.says = ['mysql://u:***@localhost/db', 'MySQLdb', 'pip install mysqlclient']

    def _postgresql_down(self, base, tmp_path, monkeypatch):
        self.dir.mkdir()
        port = free_port()
        self.option = 'postgresql+psycopg://pm:%s@127.0.0.1:%d/proxmox_manager' % (SECRET, port)
        self.says = ['postgresql+psycopg://pm:***@127.0.0.1:%d/proxmox_manager' % port, 'Connection refused']

    def _postgresql_silent(self, base, tmp_path, monkeypatch):
        # A server that takes the connection and never answers (a firewall dropping packets after the
        # handshake): libpq alone waits for ever.
        self.dir.mkdir()
        monkeypatch.setenv('PROXMOX_MANAGER_DB_TIMEOUT', '1')
        self.listener = socket.socket()
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(16)  # the kernel completes the handshakes; nobody reads or writes
        port = self.listener.getsockname()[1]
        self.option = 'postgresql+psycopg://pm:%s@127.0.0.1:%d/proxmox_manager' % (SECRET, port)
        self.says = ['postgresql+psycopg://pm:***@127.0.0.1:%d/proxmox_manager' % port, 'timeout expired',
                     'did not answer within 1s (PROXMOX_MANAGER_DB_TIMEOUT']

    def _postgresql_no_database(self, base, tmp_path, monkeypatch):
        self.dir.mkdir()
        server = self.request.getfixturevalue('postgresql_server')
        self.option = server.url('no_such_db', password=SECRET)
        self.says = [server.url('no_such_db', password='***'), 'database "no_such_db" does not exist']
        self.databases = server, None

    def _postgresql_auth(self, base, tmp_path, monkeypatch):
        self.dir.mkdir()
        server = self.request.getfixturevalue('postgresql_server')
        good = self.request.getfixturevalue('postgresql_db')
        make_db(base, good)
        name = database_of(good)
        self.option = server.url(name, user=AUTH_USER, password=SECRET)
        self.says = [server.url(name, user=AUTH_USER, password='***'),
                     'password authentication failed for user "%s"' % AUTH_USER]
        self.databases = server, good

    # ------------------------------------------------------------------------------------------

    def state(self):
        gc.collect()  # closes the connections of earlier in-process runs: their -wal and -shm files go away
        if self.databases is None:
            return tree(self.dir)
        server, good = self.databases
        names = sorted(r[0] for r in server.admin.execute('SELECT datname FROM pg_database'))
        return tree(self.dir), names, good and settled_digest(good)

    def release(self):
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.holder is not None:
            self.holder.execute('ROLLBACK')
            self.holder.close()
            self.holder = None
        if self.frozen:
            chattr('-i', *self.frozen)
            self.frozen = []

    def assert_clean(self, msg):
        assert 'Unexpected error' not in msg and 'Traceback' not in msg, msg
        assert SECRET not in msg, msg
        for needle in self.says:
            assert needle in msg, (needle, msg)


CASES = ['corrupt', 'directory', 'read-only', 'locked-rollback-journal', 'schema-version-abc', 'bad-port',
         'missing-driver', 'postgresql-down', 'postgresql-silent', 'postgresql-no-database', 'postgresql-auth']


@pytest.fixture(params=CASES)
def broken(request, base, tmp_path, monkeypatch):
    case = Broken(request.param, base, tmp_path, monkeypatch, request)
    yield case
    case.release()


def test_a_writing_module_fails_with_one_clear_message(broken, base):
    before = broken.state()
    with pytest.raises(ModuleFailed) as failed:
        run_module('server_role', dict(base, state_db=broken.option, name='web-01', role='web'))
    result = failed.value.result
    broken.assert_clean(result['msg'])
    assert result['msg'].startswith('Cannot ') and ' the state DB ' in result['msg'], result['msg']
    assert 'exception' not in result
    broken.release()
    assert broken.state() == before


def test_datastore_info_warns_answers_live_and_writes_nothing(broken, base, double, monkeypatch):
    from ansible.module_utils.basic import AnsibleModule
    warned = []
    monkeypatch.setattr(AnsibleModule, 'warn', lambda self, warning, **kw: warned.append(warning))
    before = broken.state()
    result = run_module('datastore_info', dict(connection_options(double, api_retries=0), state_db=broken.option))
    text = '\n'.join(warned)
    assert 'The state DB could not be read: Cannot ' in text, text
    broken.assert_clean(text)
    # Proxmox still answers: the list is live, and nothing is recorded anywhere
    assert result['source'] == 'proxmox' and result['changed'] is False
    assert sorted(r['id'] for r in result['datastores']) == sorted(s.storage for s in double.cluster.storages)
    broken.release()
    assert broken.state() == before


def test_the_recorded_view_fails_with_one_clear_message(broken):
    before = broken.state()
    name = sdb.view_name('pve.example', 8006)
    for call in (lambda: recorded.last_view(broken.option, name), lambda: recorded.applied_roles(broken.option)):
        with pytest.raises(StateStoreError) as failed:
            call()
        broken.assert_clean(str(failed.value))
    broken.release()
    assert broken.state() == before


def test_the_inventory_fails_with_one_clear_message(broken, double, inventory_loader, tmp_path):
    from ansible.errors import AnsibleParserError
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    config = tmp_path / 'x.proxmox.yml'
    config.write_text(yaml.safe_dump(dict(plugin='proxmox_manager.core.proxmox', state_db=broken.option,
                                          tfvars_path=str(SAMPLE_TFVARS), **connection_options(double))))
    before = broken.state()
    inventory = InventoryData()
    with pytest.raises(AnsibleParserError) as failed:
        inventory_loader.get('proxmox_manager.core.proxmox').parse(inventory, DataLoader(), str(config), cache=False)
    msg = str(failed.value)
    assert msg.startswith('proxmox_manager.core.proxmox: Cannot '), msg
    broken.assert_clean(msg)
    assert inventory.hosts == {}
    broken.release()
    assert broken.state() == before


# -- part 7: the inventory never creates the state DB, and writes its view only when it changed -------------


def parse(inventory_loader, config):
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    inventory = InventoryData()
    inventory_loader.get('proxmox_manager.core.proxmox').parse(inventory, DataLoader(), str(config), cache=False)
    return inventory


def write_config(tmp_path, double, state_db):
    config = tmp_path / 'x.proxmox.yml'
    config.write_text(yaml.safe_dump(dict(plugin='proxmox_manager.core.proxmox', state_db=state_db,
                                          tfvars_path=str(SAMPLE_TFVARS), **connection_options(double))))
    return config


def untouched(db):
    """What must stay as it was: SQLite, every file in the DB's directory (not even a -wal); PostgreSQL, every table."""
    return settled_digest(db) if is_postgresql(db) else tree(os.path.dirname(db))


def test_the_inventory_never_creates_the_state_db(double, inventory_loader, tmp_path, state_db):
    inventory = parse(inventory_loader, write_config(tmp_path, double, state_db))
    assert 'AI-agent' in inventory.hosts
    assert created_nothing(state_db)  # SQLite: neither the DB nor its directory


def test_the_inventory_records_into_an_existing_db_only_when_the_view_changed(double, base, inventory_loader,
                                                                              tmp_path, state_db):
    make_db(base, state_db)
    config = write_config(tmp_path, double, state_db)
    name = sdb.view_name(double.host, double.port)
    parse(inventory_loader, config)
    taken_at, records = recorded.last_view(state_db, name)
    assert taken_at is not None and 'AI-agent' in [r['host'] for r in records]
    # an unchanged view: the file is not written at all (not even the WAL)
    before = untouched(state_db)
    parse(inventory_loader, config)
    assert untouched(state_db) == before
    assert recorded.last_view(state_db, name).taken_at == taken_at
    # a changed view is written
    double.cluster.add_guest(vmid=230, name='brand-new', node='pve1', status='stopped')
    parse(inventory_loader, config)
    later, records = recorded.last_view(state_db, name)
    assert later > taken_at and 'brand-new' in [r['host'] for r in records]


def test_the_inventory_does_not_upgrade_an_old_db(double, inventory_loader, tmp_path, state_db):
    legacy_db(state_db)
    before = untouched(state_db)
    inventory = parse(inventory_loader, write_config(tmp_path, double, state_db))
    assert 'AI-agent' in inventory.hosts
    assert untouched(state_db) == before  # the next module write upgrades it, not the inventory
    assert [r['name'] for r in query(state_db, 'SELECT name FROM servers ORDER BY name')] == ['test', 'test-2']


def test_sqlite_wording_of_the_read_only_error_is_mapped(tmp_path):
    """Without the immutable attribute: SQLite's own "attempt to write a readonly database" gets the same mapping."""
    from ansible_collections.proxmox_manager.core.plugins.module_utils import state_db
    path = tmp_path / 'x.db'
    sqlite3.connect(str(path)).close()
    conn = sqlite3.connect('file:%s?mode=ro' % path, uri=True)
    with pytest.raises(sqlite3.OperationalError) as raw:
        conn.execute('CREATE TABLE t (a)')
    conn.close()
    assert 'readonly' in str(raw.value)
    msg = str(state_db.error('write', str(path), str(raw.value)))
    assert msg.startswith('Cannot write the state DB %s: attempt to write a readonly database.' % path), msg
