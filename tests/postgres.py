"""A throwaway PostgreSQL server for the tests: started the first time a test asks for PostgreSQL, stopped at the
end of the session (also on a failure or Ctrl-C), a fresh database for each test.

The server is Debian's `postgres` binary run directly as a child process: `initdb` into a temporary directory,
trust authentication, no TCP port (`listen_addresses=''`), its unix socket in that same directory, fsync off.
PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user (Debian's
`postgresql` package creates it), else as `nobody`, switched to by subprocess itself (`user=`, `group=`); as any
other user it simply runs as that user. The temporary directory (data, socket, log) belongs to that user and is
removed at the end.

Stopping: the session fixture's teardown (pytest runs it after failures and after Ctrl-C) and an atexit hook
send SIGINT (PostgreSQL's fast shutdown) and wait for the process. The server is started in a session of its
own, so a Ctrl-C in the terminal reaches pytest only, which then stops it; and, through `setpriv --pdeathsig`
(util-linux), the kernel sends it SIGQUIT (immediate shutdown) should the pytest process die without cleaning
up (SIGKILL). Nothing is left running either way.

One role besides the superuser `postgres`: `pm_auth`, which must give its password (scram-sha-256), for the
tests of a refused login; every other connection is trusted.
"""

import atexit
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BINARIES = ('initdb', 'postgres')
DEBIAN_DIRS = '/usr/lib/postgresql/*/bin'
SUPERUSER = 'postgres'
AUTH_USER, AUTH_PASSWORD = 'pm_auth', 'right-password'
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


class PostgresUnavailable(Exception):
    """The server cannot be started here; the message says why and what to install."""


def find_bindir():
    """The directory holding initdb and postgres: Debian's /usr/lib/postgresql/<newest>/bin, else PATH."""
    def version(path):
        found = re.search(r'/postgresql/(\d+)(?:\.(\d+))?/bin$', path)
        return tuple(int(n or 0) for n in found.groups()) if found else (0, 0)

    for directory in sorted(glob.glob(DEBIAN_DIRS), key=version, reverse=True):
        if all(os.access(os.path.join(directory, name), os.X_OK) for name in BINARIES):
            return directory
    found = [shutil.which(name) for name in BINARIES]
    if all(found) and len(set(os.path.dirname(os.path.realpath(p)) for p in found)) == 1:
        return os.path.dirname(found[0])
    raise PostgresUnavailable(
        'The PostgreSQL tests need the PostgreSQL server programs (%s), found neither in %s nor on PATH: install '
        "Debian's postgresql package (apt-get install postgresql; on other systems the PostgreSQL server package), "
        'or put the directory holding them on PATH.' % (', '.join(BINARIES), DEBIAN_DIRS))


def _server_user():
    """(uid, gid) to run the server as: None when not root (the current user), else postgres or nobody."""
    if os.geteuid() != 0:
        return None
    for name in ('postgres', 'nobody'):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise PostgresUnavailable('Running as root, and neither a postgres nor a nobody user exists to run the '
                              'PostgreSQL test server as (PostgreSQL refuses to run as root).')


def free_port():
    """A loopback TCP port nothing listens on (for "connection refused")."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One throwaway server. `start()` once, `create_database()` per test, `stop()` at the end."""

    def __init__(self):
        self.dir = None
        self.proc = None
        self.admin = None
        self._count = 0

    # -- start and stop ---------------------------------------------------------------------

    def start(self):
        bindir = find_bindir()
        user = _server_user()
        # The socket lives here, and a unix socket path may be at most 107 bytes long.
        base = tempfile.gettempdir()
        self.dir = tempfile.mkdtemp(prefix='pm-pg-', dir=base if len(base) < 64 else '/tmp')
        atexit.register(self.stop)
        as_user = dict(user=user[0], group=user[1], extra_groups=[]) if user else {}
        if user:
            os.chown(self.dir, *user)
        data = os.path.join(self.dir, 'data')
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith('PG'))
        env.update(LC_ALL='C', LANG='C')
        init = subprocess.run(
            [os.path.join(bindir, 'initdb'), '-D', data, '-U', SUPERUSER, '--auth=trust', '-E', 'UTF8', '--locale=C',
             '--no-sync', '--no-instructions'],
            cwd=self.dir, env=env, capture_output=True, text=True, check=False, **as_user)
        if init.returncode != 0:
            raise PostgresUnavailable('initdb failed (exit %d): %s' % (init.returncode, init.stderr.strip()))
        with open(os.path.join(data, 'pg_hba.conf'), 'w') as handle:
            handle.write('local all %s scram-sha-256\nlocal all all trust\n' % AUTH_USER)
        command = [os.path.join(bindir, 'postgres'), '-D', data, '-k', self.dir, '-c', "listen_addresses=",
                   '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
                   '-c', 'max_connections=200']
        setpriv = shutil.which('setpriv')
        if setpriv:
            command = [setpriv, '--pdeathsig', 'QUIT', '--'] + command
        self.log = os.path.join(self.dir, 'postgres.log')
        log = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if user:
            os.fchown(log, *user)
        try:
            self.proc = subprocess.Popen(command, cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True, **as_user)
        finally:
            os.close(log)
        self.admin = self._wait_ready()
        self.admin.execute("CREATE ROLE %s LOGIN PASSWORD '%s'" % (AUTH_USER, AUTH_PASSWORD))
        return self

    def _wait_ready(self):
        import psycopg
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise PostgresUnavailable('The PostgreSQL test server exited with %s while starting:\n%s'
                                          % (self.proc.returncode, self.log_text()))
            try:
                return psycopg.connect(**self.conninfo('postgres'), autocommit=True)
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable('The PostgreSQL test server did not accept connections within %ss '
                                              '(%s):\n%s' % (START_TIMEOUT_S, exc, self.log_text())) from None
                time.sleep(0.05)

    def log_text(self):
        try:
            with open(self.log) as handle:
                return handle.read()[-4000:]
        except OSError:
            return '(no log)'

    def stop(self):
        """Fast shutdown, then the temporary directory goes. Safe to call twice."""
        if self.admin is not None:
            try:
                self.admin.close()
            except Exception:  # noqa: BLE001 - closing a connection to a server that may be gone
                pass
            self.admin = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.proc.send_signal(signal.SIGQUIT)
                    try:
                        self.proc.wait(STOP_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        os.killpg(self.proc.pid, signal.SIGKILL)
                        self.proc.wait()
            self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # -- databases --------------------------------------------------------------------------

    def conninfo(self, dbname, user=SUPERUSER):
        """psycopg.connect() keywords for a database of this server."""
        return dict(host=self.dir, dbname=dbname, user=user)

    def url(self, dbname, user=SUPERUSER, password=None):
        """The SQLAlchemy URL of a database of this server, as a user writes it in state_db."""
        auth = user if password is None else '%s:%s' % (user, password)
        return 'postgresql+psycopg://%s@/%s?host=%s' % (auth, dbname, self.dir)

    def create_database(self, hint='', template=None):
        """A new database, empty or a copy of `template` (a database nobody is connected to); its name."""
        self._count += 1
        name = ('pm_%04d_%s' % (self._count, re.sub(r'[^a-z0-9]+', '_', hint.lower())))[:40].rstrip('_')
        self.admin.execute('CREATE DATABASE "%s"%s' % (name, ' TEMPLATE "%s"' % template if template else ''))
        return name

    def drop_database(self, name):
        """Drop it, closing the connections still open to it (in-process module runs keep their pool)."""
        if self.admin is not None:
            self.admin.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def database_of(url):
    """The database name of a postgresql URL."""
    from sqlalchemy.engine import make_url
    return make_url(url).database


def conninfo_of(url):
    """psycopg.connect() keywords for a postgresql URL of PostgresServer.url()."""
    from sqlalchemy.engine import make_url
    parsed = make_url(url)
    info = dict(dbname=parsed.database, user=parsed.username, host=parsed.query.get('host') or parsed.host)
    if parsed.port:
        info['port'] = parsed.port
    if parsed.password:
        info['password'] = parsed.password
    return info
