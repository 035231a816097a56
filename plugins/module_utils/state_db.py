# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the state DB lives and which layout it has, without importing any database library.

The inventory reads a SQLite state DB with the standard library, and importing
SQLAlchemy costs about 0.4 s; this is what both sides need to agree on.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import re

from ansible_collections.proxmox_manager.core.plugins.module_utils import config_repo
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import StateStoreError

DEFAULT_DB = os.path.join('state', 'proxmox_manager.db')
DB_ENV = 'PROXMOX_MANAGER_DB'
# 1: the original Flask app's DB (servers.name unique, no change log).
# 2: this collection's first layout (one cluster).
# 3: servers and datastores keyed by cluster.
SCHEMA_VERSION = 3
BUSY_TIMEOUT_S = 60
BUSY_TIMEOUT_ENV = 'PROXMOX_MANAGER_DB_TIMEOUT'


def db_url(option=None, project=None):
    """A SQLAlchemy URL from the option, $PROXMOX_MANAGER_DB or the default path (in the config repo `project`)."""
    value = option or os.environ.get(DB_ENV) or DEFAULT_DB
    if '://' in value:
        return value
    return 'sqlite:///%s' % config_repo.resolve(value, project)


# Set by GitHub Actions and GitLab CI to the job's checkout, which goes when the job ends.
_CI_CHECKOUTS = ('GITHUB_WORKSPACE', 'CI_PROJECT_DIR')


def throwaway_warning(url, environ):
    """What to say when a CI job writes a SQLite state DB inside its own checkout, else None.

    The next job starts from an empty DB there, so an apply records nothing that lasts. Other CI systems may
    keep their workspace between jobs, so without a checkout variable nothing is said.
    """
    path = sqlite_path(url)
    if path is None or environ.get('CI', '').lower() not in ('true', '1', 'yes'):
        return None
    checkouts = [os.path.realpath(environ[name]) for name in _CI_CHECKOUTS if environ.get(name)]
    real = os.path.realpath(path)
    if not any(real == top or real.startswith(top.rstrip(os.sep) + os.sep) for top in checkouts):
        return None
    return ('THE STATE DB IS A THROWAWAY FILE: %s lies in this CI job\'s checkout and goes with it, so the next run '
            'starts from an empty state DB. Give every run the same database: set %s to a shared one, for example '
            'postgresql+psycopg://user@db.example.com/proxmox_manager (a CI secret).' % (path, DB_ENV))


def sqlite_path(url):
    """The file behind a sqlite URL, or None for other databases."""
    if url.startswith('sqlite:///'):
        return url[len('sqlite:///'):].split('?', 1)[0] or None
    return None


def busy_timeout():
    """Seconds a writer waits for another run's transaction before giving up."""
    value = os.environ.get(BUSY_TIMEOUT_ENV) or BUSY_TIMEOUT_S
    try:
        return int(value)
    except ValueError:
        raise StateStoreError('%s=%r is not a whole number of seconds.' % (BUSY_TIMEOUT_ENV, value)) from None


# Where SQLAlchemy's URL parser looks: scheme://user:password@host:port/database?query
_URL = re.compile(r'^(?P<scheme>[\w+]+)://(?:(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@)?'
                  r'(?:\[[^/?]+\]|[^/:?]+)?(?::(?P<port>[^/?]*))?')

# The pip package of each database driver module SQLAlchemy imports (ModuleNotFoundError.name).
DRIVER_PACKAGES = {
    'psycopg': 'psycopg[binary]', 'psycopg2': 'psycopg2-binary', 'pg8000': 'pg8000', 'asyncpg': 'asyncpg',
    'MySQLdb': 'mysqlclient', 'pymysql': 'PyMySQL', 'mysql': 'mysql-connector-python', 'mariadb': 'mariadb',
    'pyodbc': 'pyodbc', 'pymssql': 'pymssql', 'oracledb': 'oracledb', 'cx_Oracle': 'cx_Oracle',
}


def display(url):
    """How messages name the DB: the SQLite file, else the URL with its password masked."""
    path = sqlite_path(url)
    if path:
        return path
    match = _URL.match(url)
    if match and match.group('password') is not None:
        url = url[:match.start('password')] + '***' + url[match.end('password'):]
    return re.sub(r'([?&]password=)[^&]*', r'\1***', url)


def url_problem(url):
    """What is wrong with a database URL before any driver sees it, or None."""
    if sqlite_path(url) is not None or url.startswith('sqlite:'):
        return None
    match = _URL.match(url)
    if match is None:
        return 'not a database URL (dialect+driver://user:password@host:port/database)'
    port = match.group('port')
    if port and not port.isdigit():
        return 'the port %r is not a number' % port
    return None


# The drivers that go through libpq, which waits for ever on a server that takes the connection and never
# answers (a firewall that drops packets, a stopped VM's address taken over) unless given connect_timeout.
_LIBPQ_SCHEMES = ('postgresql', 'postgresql+psycopg', 'postgresql+psycopg2')


def connect_args(url, timeout):
    """create_engine's connect_args for a server URL: libpq's connect_timeout of `timeout` seconds, unless the
    URL sets its own connect_timeout; none for other drivers."""
    match = _URL.match(url)
    query = url.partition('?')[2]
    if match and match.group('scheme').lower() in _LIBPQ_SCHEMES and not re.search(r'(^|&)connect_timeout=', query):
        return {'connect_timeout': timeout}
    return {}


def missing_driver(exc):
    """The reason for a driver that is not installed, naming the package to install."""
    module = (getattr(exc, 'name', None) or str(exc).rsplit(' ', 1)[-1].strip("'")).split('.')[0]
    package = DRIVER_PACKAGES.get(module, module)
    return ('its Python driver is not installed (no module named %r): install the package %s (pip install %s) '
            'into the Python that runs the modules and the inventory' % (module, package, package))


def utcnow():
    """Naive UTC, as every timestamp of the state DB is stored."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def error(action, where, reason):
    """The one message for a state DB that cannot be used; `where` (display()) never holds a password.

    Adds what a reason means where SQLite's own words do not say it: the busy
    timeout for a lock (PostgreSQL's "lock timeout" too), the directory or
    read-only file behind "unable to open" or "readonly".
    """
    reason = (reason.split('\n', 1)[0].strip() or 'unknown error').rstrip('.')
    hint = ''
    is_path = '://' not in where and not where.startswith('(')
    locked = 'locked' in reason or 'busy' in reason or 'lock timeout' in reason
    if locked or 'timeout expired' in reason:
        try:
            timeout = '%ss' % busy_timeout()
        except StateStoreError:
            timeout = 'the timeout'
        if locked:
            hint = ' Another run held the database for more than %s (%s).' % (timeout, BUSY_TIMEOUT_ENV)
        else:
            hint = (' The server took the connection but did not answer within %s (%s, unless the URL sets '
                    'connect_timeout).' % (timeout, BUSY_TIMEOUT_ENV))
    elif is_path and os.path.isdir(where):
        reason = 'it is a directory, not a database file (state_db or %s must name a file)' % DB_ENV
    elif is_path and ('readonly' in reason or 'read-only' in reason or 'unable to open' in reason):
        directory = os.path.dirname(where) or '.'
        if os.path.exists(where) and not os.access(where, os.W_OK):
            hint = ' The file is read-only.'
        if os.path.isdir(directory) and not os.access(directory, os.W_OK):
            hint += (' Its directory %s is read-only, and SQLite writes its -journal, -wal and -shm files beside the '
                     'DB.' % directory)
    elif 'file is not a database' in reason:
        hint = ' Point state_db (%s) at the state DB, or restore a backup of it.' % DB_ENV
    return StateStoreError('Cannot %s the state DB %s: %s.%s' % (action, where, reason, hint))


def check_not_a_directory(path, action):
    """Refuse a directory given as the SQLite state DB, before SQLite's "unable to open database file"."""
    if path and os.path.isdir(path):
        raise error(action, path, 'is a directory')


def roles_by_server(rows):
    """{(cluster, vmid, or name for a server without one): role} of (cluster, vmid, name, role) rows with a role."""
    return dict(((cluster, vmid if vmid is not None else name), role) for cluster, vmid, name, role in rows if role)


def view_name(api_host, api_port):
    """The name a cluster's recorded view is kept under: by its connection, which is known even when it is down."""
    return 'inventory@%s:%s' % (api_host, api_port)
