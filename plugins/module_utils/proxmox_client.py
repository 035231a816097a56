# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Proxmox VE client: connection options, auth, retries, error mapping.

The one place that talks HTTP to Proxmox. Modules get the options through
CONNECTION_ARGSPEC, the inventory plugin through the `connection` doc
fragment; both hand a plain dict to ProxmoxClient.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import queue
import re
import threading
import time

from ansible.module_utils.basic import env_fallback

from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import (
    MALFORMED,
    SERVER_ERROR,
    TIMED_OUT,
    UNREACHABLE,
    ConfigurationError,
    ProxmoxApiError,
    ProxmoxAuthError,
    ProxmoxUnreachableError,
)

try:
    import requests
    from proxmoxer import ProxmoxAPI
    from proxmoxer.core import AuthenticationError, ResourceException

    HAS_PROXMOXER = True
    PROXMOXER_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the callers
    HAS_PROXMOXER = False
    PROXMOXER_IMPORT_ERROR = exc

DEFAULT_PORT = 8006
DEFAULT_TIMEOUT = 30
DEFAULT_RETRIES = 2
# Agent calls block a pvedaemon worker (3 per node by default), so 16 spread over a cluster's nodes is gentle.
DEFAULT_MAX_WORKERS = 16
_BACKOFF = 0.5
# 501 is "not implemented": retrying cannot help. 595 is PVE's "node offline".
_NOT_TRANSIENT = (501, 595)

CONNECTION_ARGSPEC = dict(
    api_host=dict(type='str', fallback=(env_fallback, ['PROXMOX_HOST'])),
    cluster=dict(type='str', fallback=(env_fallback, ['PROXMOX_CLUSTER'])),
    # Read by the action on the controller (plugin_utils/module_action.py); the module takes no other use of it.
    inventory_file=dict(type='path', fallback=(env_fallback, ['PROXMOX_MANAGER_INVENTORY'])),
    api_port=dict(type='int', default=DEFAULT_PORT, fallback=(env_fallback, ['PROXMOX_PORT'])),
    api_user=dict(type='str', fallback=(env_fallback, ['PROXMOX_USER'])),
    api_password=dict(type='str', no_log=True, fallback=(env_fallback, ['PROXMOX_PASSWORD'])),
    api_token_id=dict(type='str', no_log=False, fallback=(env_fallback, ['PROXMOX_TOKEN_ID'])),
    api_token_secret=dict(type='str', no_log=True, fallback=(env_fallback, ['PROXMOX_TOKEN_SECRET'])),
    validate_certs=dict(type='bool', default=True, fallback=(env_fallback, ['PROXMOX_VALIDATE_CERTS'])),
    ca_path=dict(type='path', fallback=(env_fallback, ['PROXMOX_CA_PATH'])),
    api_timeout=dict(type='int', default=DEFAULT_TIMEOUT, fallback=(env_fallback, ['PROXMOX_API_TIMEOUT'])),
    api_retries=dict(type='int', default=DEFAULT_RETRIES, fallback=(env_fallback, ['PROXMOX_API_RETRIES'])),
)

SECRET_OPTIONS = ('api_password', 'api_token_secret')


def in_daemon_threads(work, count, name):
    """work(0) ... work(count - 1) at once, each in a daemon thread; returns when all have.

    Daemons, so a hung API call never holds up Ctrl-C or the end of the process: a ThreadPoolExecutor's
    threads are joined at exit, which kept ansible-inventory for the call's whole api_timeout.
    """
    threads = [threading.Thread(target=work, args=(index,), name=name, daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _split_token_id(user, token_id):
    """Accept `automation` with api_user, or the full `user@realm!automation`."""
    if token_id and '!' in token_id:
        token_user, token_name = token_id.split('!', 1)
        return user or token_user, token_name
    return user, token_id


def _is_usable_ipv4(address):
    if not isinstance(address, str):  # ip_address(5) would be 0.0.0.5
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.version == 4 and not ip.is_loopback and not ip.is_link_local


# Interfaces whose addresses no other host can reach: loopback, and the bridges of containers and VMs in the guest.
_LOCAL_INTERFACES = re.compile(r'^(lo|docker\d*|veth.*|br-.*|cni.*|flannel.*|weave.*|virbr\d*|lxcbr\d*|podman\d*)$')


def _ips_from_interfaces(interfaces):
    """IPv4 addresses from the agent's or the lxc interfaces answer, in order, skipping _LOCAL_INTERFACES."""
    ips = []
    for iface in interfaces if isinstance(interfaces, list) else []:
        if not isinstance(iface, dict) or _LOCAL_INTERFACES.match(str(iface.get('name') or '')):
            continue
        addresses = iface.get('ip-addresses')
        for addr in addresses if isinstance(addresses, list) else []:
            if not isinstance(addr, dict):
                continue
            ip = addr.get('ip-address')
            if ip and addr.get('ip-address-type', 'ipv4') == 'ipv4' and _is_usable_ipv4(ip):
                ips.append(ip)
        inet = iface.get('inet')
        if isinstance(inet, str):
            ip = inet.split('/', 1)[0]
            if _is_usable_ipv4(ip) and ip not in ips:
                ips.append(ip)
    return ips


class ProxmoxClient:
    """A lazily connected Proxmox API client.

    Nothing touches the network until the first request, so an inventory
    cache hit costs no call at all, not even a login.
    """

    def __init__(self, options):
        if not HAS_PROXMOXER:
            raise ConfigurationError(
                'The Python libraries proxmoxer and requests are required: %s' % PROXMOXER_IMPORT_ERROR)
        self.host = options.get('api_host')
        if not self.host:
            raise ConfigurationError('No Proxmox host given: set api_host or the PROXMOX_HOST environment variable.')
        self.port = int(options.get('api_port') or DEFAULT_PORT)
        self.timeout = int(options.get('api_timeout') or DEFAULT_TIMEOUT)
        retries = options.get('api_retries')
        self.retries = DEFAULT_RETRIES if retries is None else max(0, int(retries))
        self.user, self.token_name = _split_token_id(options.get('api_user'), options.get('api_token_id'))
        self._password = options.get('api_password')
        self._token_secret = options.get('api_token_secret')
        if not self.user:
            raise ConfigurationError('No Proxmox user given: set api_user (PROXMOX_USER), e.g. root@pam.')
        if not (self._token_secret and self.token_name) and not self._password:
            raise ConfigurationError(
                'No Proxmox credentials for %s: set api_token_id and api_token_secret '
                '(PROXMOX_TOKEN_ID, PROXMOX_TOKEN_SECRET) or api_password (PROXMOX_PASSWORD).' % self.user)
        validate = options.get('validate_certs')
        validate = True if validate is None else validate
        # An explicit verify value per request beats REQUESTS_CA_BUNDLE; proxmoxer
        # passes this value on every request, including the ticket login.
        if not validate:
            self._verify = False
        elif options.get('ca_path'):
            # A typo here is a configuration mistake, not an unreachable Proxmox (no retry, no fallback).
            if not os.path.exists(options['ca_path']):
                raise ConfigurationError('The CA file %s given as ca_path (PROXMOX_CA_PATH) does not exist.'
                                         % options['ca_path'])
            if os.path.isdir(options['ca_path']):
                # Ansible reads an empty PROXMOX_CA_PATH as a path: the current directory.
                raise ConfigurationError('ca_path (PROXMOX_CA_PATH) names the directory %s, not a CA file (PEM). An '
                                         'empty PROXMOX_CA_PATH is read as the current directory: unset it to use '
                                         'the system CAs.' % options['ca_path'])
            self._verify = options['ca_path']
        else:
            self._verify = True
        self._api = None
        self._cluster = options.get('cluster')

    @property
    def cluster(self):
        """The cluster's name: the `cluster` option, else cluster_name() (one call, then remembered)."""
        if not self._cluster:
            self._cluster = self.cluster_name()
        return self._cluster

    @property
    def url(self):
        return 'https://%s:%s' % (self.host, self.port)

    @property
    def logs_in(self):
        """True for password auth: each new client costs a login call; a token needs none."""
        return not (self._token_secret and self.token_name)

    @property
    def who(self):
        """Identity for error messages: user and token id, never a secret."""
        if not self.logs_in:
            return 'user %s with token id %s' % (self.user, self.token_name)
        return 'user %s (password auth)' % self.user

    def _scrub(self, text):
        text = str(text)
        for secret in (self._password, self._token_secret):
            if secret:
                text = text.replace(secret, '********')
        return text

    def _connect(self):
        kwargs = dict(port=self.port, user=self.user, verify_ssl=self._verify,
                      timeout=self.timeout, backend='https')
        if not self.logs_in:
            kwargs.update(token_name=self.token_name, token_value=self._token_secret)
        else:
            kwargs.update(password=self._password)
        if self._verify is False:
            # The user asked for no verification; don't spam every request.
            requests.packages.urllib3.disable_warnings()
        return self._with_retries('/access/ticket', lambda: ProxmoxAPI(self.host, **kwargs))

    @property
    def api(self):
        if self._api is None:
            self._api = self._connect()
        return self._api

    def _with_retries(self, path, call, retry=True):
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 - mapped to our errors below
                error = self._map_error(exc, path)
                transient = isinstance(error, ProxmoxUnreachableError) and not isinstance(
                    exc, requests.exceptions.SSLError)
                transient = transient or (error.status is not None and error.status >= 500
                                          and error.status not in _NOT_TRANSIENT)
                if not transient or attempt == attempts - 1:
                    raise error from None
                time.sleep(_BACKOFF * (2 ** attempt))
        raise AssertionError('unreachable')  # pragma: no cover

    def _map_error(self, exc, path):
        where = '%s%s' % (self.url, path)
        if isinstance(exc, ProxmoxApiError):
            return exc
        if isinstance(exc, AuthenticationError):
            status = _login_status(exc)
            if status is not None and status >= 500:
                # proxmoxer reports any failed login as AuthenticationError; a 5xx is the server's fault.
                return ProxmoxApiError('Proxmox answered HTTP %s to the login at %s for %s.'
                                       % (status, self.url, self.who), status=status, path=path, outage=SERVER_ERROR)
            return ProxmoxAuthError(
                'Proxmox refused the login at %s for %s: check the credentials.' % (self.url, self.who),
                status=401, path=path)
        if isinstance(exc, ResourceException):
            status = exc.status_code
            if status in (401, 403):
                return ProxmoxAuthError(
                    'Proxmox refused %s (HTTP %s %s) for %s: check the credentials and their permissions.'
                    % (path, status, exc.status_message, self.who), status=status, path=path)
            detail = self._scrub(exc.content or exc.status_message)
            return ProxmoxApiError('Proxmox answered HTTP %s for %s: %s' % (status, where, detail), status=status,
                                   path=path, outage=SERVER_ERROR if status >= 500 else None)
        if isinstance(exc, requests.exceptions.SSLError):
            return ProxmoxUnreachableError(
                'TLS verification failed for %s: %s. Set ca_path to the CA that signed the '
                'Proxmox certificate, or validate_certs: false for a lab.' % (self.url, _short(exc)), path=path)
        if isinstance(exc, requests.exceptions.Timeout):
            return ProxmoxUnreachableError(
                'Proxmox did not answer %s within %ss (api_timeout).' % (where, self.timeout), path=path,
                outage=TIMED_OUT)
        if isinstance(exc, requests.exceptions.RequestException):
            return ProxmoxUnreachableError('Cannot reach Proxmox at %s: %s' % (self.url, self._scrub(_short(exc))),
                                           path=path, outage=UNREACHABLE)
        if isinstance(exc, (KeyError, TypeError, ValueError, RecursionError)):
            # proxmoxer reads `data` of the JSON body: a body without it, or that is no JSON object
            return _malformed(where, 'the body', 'a JSON object with `data`', None)
        return ProxmoxApiError('Unexpected error calling %s: %s' % (where, self._scrub(exc)), path=path)

    def get(self, path, retry=True, **params):
        """GET an API path (without /api2/json) and return its `data`."""
        data = self._with_retries(path, lambda: self.api.get(path.lstrip('/'), **params), retry=retry)
        if isinstance(data, dict) and list(data) == ['errors'] and isinstance(data['errors'], bytes):
            # what proxmoxer returns for a 2xx body that is not JSON (an HTML page from a proxy, say)
            raise _malformed('%s%s' % (self.url, path), 'the body', 'JSON', data['errors'])
        return data

    def cluster_name(self):
        """The name GET /cluster/status gives: the cluster's, else the node's for a node in no cluster."""
        where = '%s/cluster/status' % self.url
        try:
            items = _items(self.get('/cluster/status'), where)
        except ProxmoxAuthError as exc:
            if exc.status != 403:
                raise
            raise ProxmoxAuthError('%s Without Sys.Audit on / the cluster\'s name is unknown: name the cluster with '
                                   'the cluster option (PROXMOX_CLUSTER), or grant Sys.Audit on /.' % exc,
                                   status=403, path='/cluster/status') from None
        names = dict((item.get('type'), item.get('name')) for item in items if item.get('type') in ('cluster', 'node'))
        nodes = [item for item in items if item.get('type') == 'node']
        name = names.get('cluster') or (names.get('node') if len(nodes) == 1 else None)
        if not _is_text(name) or not name:
            raise _malformed(where, 'data', 'a cluster entry with a name (or one node entry)', items)
        return name

    def cluster_resources(self, kind):
        """Every resource of one kind in ONE call, whatever the cluster size; guests are checked (see _guests)."""
        data = self.get('/cluster/resources', type=kind)
        where = '%s/cluster/resources?type=%s' % (self.url, kind)
        return _guests(data, where) if kind == 'vm' else _items(data, where)

    def guest_ips(self, guest):
        """IPv4 addresses a running guest reports; [] when it can't tell, None when its agent is not running."""
        if guest['type'] == 'qemu':
            path = '/nodes/%s/qemu/%s/agent/network-get-interfaces' % (guest['node'], guest['vmid'])
        else:
            path = '/nodes/%s/lxc/%s/interfaces' % (guest['node'], guest['vmid'])
        try:
            # A 500 here means "agent not running": final, so no retry.
            data = self.get(path, retry=False)
        except ProxmoxAuthError:
            raise
        except ProxmoxApiError as exc:
            if guest['type'] == 'qemu' and exc.status == 500 and 'agent' in str(exc).lower():
                return None
            return []
        if isinstance(data, dict):
            data = data.get('result')
        if isinstance(data, dict) and 'error' in data:
            # An agent that answers with an error (`Unsupported` on Windows, `CommandDisabled`) tells nothing.
            return None if guest['type'] == 'qemu' else []
        return _ips_from_interfaces(data)

    def guests_ips(self, guests, max_workers=None):
        """{vmid: [ip, ...], or None when its guest agent is not running}, asked concurrently.

        At most `max_workers` lookups run at once, in daemon threads (in_daemon_threads). The first error
        (an auth error: the others are answers) stops the lookups not yet started and is raised.
        """
        todo = queue.SimpleQueue()
        for guest in guests:
            todo.put(guest)
        found, errors = {}, []
        if todo.empty():
            return found

        def work(_index):
            while not errors:
                try:
                    guest = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    found[guest['vmid']] = self.guest_ips(guest)
                except Exception as exc:  # noqa: BLE001 - raised again in the caller's thread
                    errors.append(exc)

        in_daemon_threads(work, max(1, min(int(max_workers or DEFAULT_MAX_WORKERS), todo.qsize())), 'pve-ip-lookup')
        if errors:
            raise errors[0]
        return found


# How a /cluster/resources?type=vm item is read (see _guests): required fields, and integer fields.
_GUEST_TEXT = ('node', 'type')
_GUEST_INTS = ('vmid', 'maxcpu', 'maxmem', 'maxdisk', 'uptime')
# True and False are the dict keys 1 and 0 too.
_TRUTHS = {1: True, 0: False, '1': True, '0': False, 'true': True, 'false': False}


# What a state DB column of type INTEGER holds.
_INT_LIMIT = 1 << 63


def _is_text(value):
    """A str that UTF-8 can encode: a lone surrogate (from a `\\ud800` escape) cannot be stored anywhere."""
    if not isinstance(value, str):
        return False
    try:
        value.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


def _malformed(where, field, expected, value):
    got = '' if value is None else ', not %s' % excerpt(value)
    return ProxmoxApiError('Proxmox answered %s with a malformed answer: %s must be %s%s.'
                           % (where, field, expected, got), outage=MALFORMED)


def excerpt(value, limit=80):
    """repr() of a value from Proxmox, cut to `limit` characters: an answer may be huge."""
    text = repr(value.decode('utf-8', 'replace') if isinstance(value, bytes) else value)
    return text if len(text) <= limit else text[:limit] + '...'


def _items(data, where):
    """The `data` list of a listing; a missing or null list, or an item that is no object, is malformed."""
    if not isinstance(data, list):
        raise _malformed(where, 'data', 'a list', data)
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise _malformed(where, 'data[%d]' % index, 'an object', item)
    return data


def _guests(data, where):
    """The guests of a listing, each checked and coerced by one rule.

    vmid, maxcpu, maxmem, maxdisk and uptime: an integer, or a string of digits
    (read as that integer); node and type: a string; name, status, tags and
    pool: a string when given (an unnamed guest is `vm-<vmid>`); template: 1/0,
    true/false or those as strings. Anything else, or one vmid twice, is a
    malformed answer.
    """
    guests, seen = [], {}
    for index, item in enumerate(_items(data, where)):
        guest = dict(item)
        for field in _GUEST_INTS:
            value = guest.get(field)
            if value is None and field != 'vmid':
                continue
            if isinstance(value, str) and value.isascii() and value.isdigit():
                value = guest[field] = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _INT_LIMIT:
                raise _malformed(where, 'data[%d].%s' % (index, field), 'an integer from 0 to 2**63-1', value)
        for field in _GUEST_TEXT + ('name', 'status', 'tags', 'pool'):
            value = guest.get(field)
            if (value is not None or field in _GUEST_TEXT) and not _is_text(value):
                raise _malformed(where, 'data[%d].%s' % (index, field), 'a string', value)
        template = guest.get('template', 0)
        if isinstance(template, str):
            template = template.lower()
        if not isinstance(template, (int, str)) or template not in _TRUTHS:
            raise _malformed(where, 'data[%d].template' % index, '0 or 1', guest.get('template'))
        guest['template'] = _TRUTHS[template]
        if guest['vmid'] in seen:
            raise _malformed(where, 'data[%d].vmid' % index, 'unique (data[%d] has it too)' % seen[guest['vmid']],
                             guest['vmid'])
        seen[guest['vmid']] = index
        guests.append(guest)
    return guests


def _login_status(exc):
    """The HTTP status of a failed proxmoxer login (`... code: 503`), or None."""
    match = re.search(r'code: (\d{3})$', str(exc))
    return int(match.group(1)) if match else None


def _short(exc):
    """The innermost reason of a requests error, without the URL noise."""
    text = str(exc)
    for marker in ('[SSL: ', 'Connection refused', 'Name or service not known', 'timed out'):
        pos = text.find(marker)
        if pos >= 0:
            text = text[pos:].split("'))", 1)[0].split('")', 1)[0]
            # drop the wrappers' closing parentheses, keep the reason's own `(_ssl.c:1000)`
            while text.endswith(')') and text.count(')') > text.count('('):
                text = text[:-1]
            return text
    return text
