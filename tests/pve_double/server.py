"""HTTPS server of the Proxmox VE double: routing, auth, faults, latency, counters.

Real TLS on 127.0.0.1 with a throw-away CA, ticket and API-token auth as PVE
does them, and answers rendered by cluster.ClusterView. A control API under
/_double (outside PVE's /api2/json) lets a separate process read counters and
inject faults; it is not counted and not slowed down.
"""

from __future__ import annotations

import base64
import collections
import gzip
import hashlib
import hmac
import json
import re
import secrets
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote

from .cluster import Access, Cluster, ClusterView, PveError, _grant_spec, load_scenario

API_PREFIX = "/api2/json"
CONTROL_PREFIX = "/_double"
SAMPLE_SCENARIO = Path(__file__).resolve().parent / "scenarios" / "sample.yml"
TICKET_LIFETIME = 7200  # seconds, as PVE
_HANDSHAKE_TIMEOUT = 10.0
_GZIP_MIN = 1024  # pveproxy compresses answers above this size for clients that accept gzip

_DEFAULT_MESSAGES = {
    400: "Parameter verification failed.",
    401: "No ticket",
    403: "Permission check failed",
    404: "Not found",
    500: "internal error",
    501: "Not implemented",
    502: "Bad gateway",
    503: "Service Unavailable",
    595: "Connection timed out",
    596: "Connection reset by peer",
}


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class _Payload:
    """An encoded answer, gzipped at most once however often it is sent (level 1: on loopback,
    speed matters more than size)."""

    __slots__ = ("raw", "_gz")

    def __init__(self, raw: bytes):
        self.raw = raw
        self._gz: bytes | None = None

    def gzipped(self) -> bytes:
        if self._gz is None:
            self._gz = gzip.compress(self.raw, compresslevel=1, mtime=0)
        return self._gz


# --------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------

_BOOL = "bool"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_UNDECLARED = "property is not defined in schema and the schema does not allow additional properties"


@dataclass
class _Call:
    view: ClusterView
    double: DoubleServer
    args: dict
    params: dict
    userid: str | None  # user@realm, or user@realm!tokenid for an API token
    access: Access | None = None  # what userid may see and do


@dataclass
class _Route:
    method: str
    template: str
    handler: Callable[[_Call], Any]
    params: dict = field(default_factory=dict)  # name -> None (any string) | "bool" | tuple of allowed values
    required: tuple = ()
    cache: bool = False  # the answer depends only on the view (and who asks): encode it once per model change
    auth: bool = True
    perm: Callable[[_Call], None] | None = None  # the route's permission check (its schema `permissions`)

    def __post_init__(self):
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        self.regex = re.compile(f"^{pattern}$")


def _check_params(route: _Route, raw: dict) -> dict:
    """PVE rejects unknown or ill-typed parameters with 400 and per-field errors."""
    errors, params = {}, {}
    for key, value in raw.items():
        if key == "_dc":  # the GUI's cache buster, ignored by PVE
            continue
        if key not in route.params:
            errors[key] = _UNDECLARED
            continue
        spec = route.params[key]
        if spec == _BOOL:
            if value.lower() not in _TRUE | _FALSE:
                errors[key] = f"type check ('boolean') failed - got '{value}'"
                continue
            value = value.lower() in _TRUE
        elif spec is not None and value not in spec:
            errors[key] = f"value '{value}' does not have a value in the enumeration '{', '.join(spec)}'"
            continue
        params[key] = value
    for key in route.required:
        if key not in params and key not in errors:
            errors[key] = "property is missing and it is not optional"
    if errors:
        raise PveError(400, "Parameter verification failed.", errors)
    return params


def _check_vmid(args: dict) -> None:
    if "vmid" not in args:
        return
    value = args["vmid"]
    if not re.fullmatch(r"\d+", value):
        raise PveError(400, "Parameter verification failed.",
                       {"vmid": f"type check ('integer') failed - got '{value}'"})
    vmid = int(value)
    if not 100 <= vmid <= 999999999:
        raise PveError(400, "Parameter verification failed.",
                       {"vmid": f"value must have a {'minimum' if vmid < 100 else 'maximum'} value of "
                                f"{100 if vmid < 100 else 999999999}"})
    args["vmid"] = vmid


def _perm(template: str, *privs: str, any_of: bool = False) -> Callable[[_Call], None]:
    """The schema's `["perm", template, [privs], "any", 1]` check: 403 unless the caller has them on the path."""
    def check(call: _Call) -> None:
        call.access.check(template.format(**call.args), privs, any_of=any_of)
    return check


def _agent_perm(call: _Call) -> None:
    """network-get-interfaces: VM.GuestAgent.Audit or .Unrestricted on PVE 9, VM.Monitor on PVE 8."""
    privs, any_of = call.view.agent_privileges()
    call.access.check(f"/vms/{call.args['vmid']}", privs, any_of=any_of)


def _resources(call: _Call):
    return call.view.resources(call.params.get("type"), call.access)


def _pools(call: _Call):
    if "type" in call.params and "poolid" not in call.params:
        raise PveError(400, "Parameter verification failed.", {"type": "missing property - 'poolid' is required"})
    return call.view.pool_list(call.params.get("poolid"), call.params.get("type"), call.access)


def _node_storage(call: _Call):
    p = call.params
    return call.view.node_storage(call.args["node"], content=p.get("content"), enabled=p.get("enabled", False),
                                  storage=p.get("storage"), with_format=p.get("format", False), access=call.access)


def _storage_status(call: _Call):
    node = call.args["node"]
    return call.view.storage_status(call.view.storage_on(node, call.args["storage"]), node)


def _guest(call: _Call, kind: str):
    return call.view.guest_on(call.args["node"], call.args["vmid"], kind)


def _lxc_status(call: _Call):
    g = _guest(call, "lxc")
    item = next(i for i in call.view.node_guests(g.node, "lxc") if i["vmid"] == g.vmid)  # checked: VM.Audit
    return dict(item, ha={"managed": 0}, type="lxc")


def _upid(node: str, kind: str, vmid: int, userid: str) -> str:
    pid, pstart, now = secrets.randbelow(2**22), secrets.randbelow(2**30), int(time.time())
    return f"UPID:{node}:{pid:08X}:{pstart:08X}:{now:08X}:{kind}:{vmid}:{userid}:"


def _set_status(call: _Call, kind: str, action: str):
    g = _guest(call, kind)
    if g.template and action == "start":
        raise PveError(500, "you can't start a vm if it's a template")
    g.status = "running" if action in ("start", "reboot") else "stopped"
    task = {"qemu": "qm", "lxc": "vz"}[kind] + action
    return _upid(g.node, task, g.vmid, call.userid or "root@pam")


def _task_status(call: _Call):
    upid = unquote(call.args["upid"])
    parts = upid.split(":")
    if len(parts) < 9 or parts[0] != "UPID" or parts[1] != call.args["node"]:
        raise PveError(400, "Parameter verification failed.", {"upid": "unable to parse worker upid"})
    if parts[7] != call.userid:  # a task of someone else needs Sys.Audit on the node
        call.access.check(f"/nodes/{parts[1]}", ("Sys.Audit",))
    return {"upid": upid, "node": parts[1], "pid": int(parts[2], 16), "pstart": int(parts[3], 16),
            "starttime": int(parts[4], 16), "type": parts[5], "id": parts[6], "user": parts[7],
            "status": "stopped", "exitstatus": "OK"}


def _login(call: _Call):
    return call.double._login(call.params)


def _build_routes() -> list[_Route]:
    storage_types = ("btrfs", "cephfs", "cifs", "dir", "esxi", "iscsi", "iscsidirect", "lvm", "lvmthin",
                     "nfs", "pbs", "rbd", "zfs", "zfspool")
    vm_audit = _perm("/vms/{vmid}", "VM.Audit")
    routes = [
        _Route("GET", "/version", lambda c: c.view.version()),
        _Route("GET", "/nodes", lambda c: c.view.node_list(c.access)),
        _Route("GET", "/cluster/status", lambda c: c.view.cluster_status(), perm=_perm("/", "Sys.Audit")),
        _Route("GET", "/cluster/resources", _resources, {"type": ("vm", "storage", "node", "sdn")}, cache=True),
        _Route("GET", "/pools", _pools, {"poolid": None, "type": ("qemu", "lxc", "storage")}, cache=True),
        _Route("GET", "/pools/{poolid}", lambda c: c.view.pool_get(c.args["poolid"], c.params.get("type")),
               {"type": ("qemu", "lxc", "storage")}, perm=_perm("/pool/{poolid}", "Pool.Audit")),
        _Route("GET", "/storage", lambda c: c.view.storage_list(c.params.get("type"), c.access),
               {"type": storage_types}),
        _Route("GET", "/storage/{storage}", lambda c: c.view.storage_get(c.args["storage"]),
               perm=_perm("/storage/{storage}", "Datastore.Allocate")),
        _Route("GET", "/nodes/{node}/storage", _node_storage,
               {"content": None, "enabled": _BOOL, "format": _BOOL, "storage": None, "target": None}),
        _Route("GET", "/nodes/{node}/storage/{storage}/status", _storage_status,
               perm=_perm("/storage/{storage}", "Datastore.Audit", "Datastore.AllocateSpace", any_of=True)),
        _Route("GET", "/nodes/{node}/network", lambda c: c.view.node_network(c.args["node"]), {"type": None}),
        _Route("GET", "/nodes/{node}/tasks/{upid}/status", _task_status),
        _Route("GET", "/nodes/{node}/qemu", lambda c: c.view.node_guests(c.args["node"], "qemu", c.access),
               {"full": _BOOL}, cache=True),
        _Route("GET", "/nodes/{node}/lxc", lambda c: c.view.node_guests(c.args["node"], "lxc", c.access),
               cache=True),
        _Route("GET", "/nodes/{node}/qemu/{vmid}/config", lambda c: c.view.qemu_config(_guest(c, "qemu")),
               {"current": _BOOL, "snapshot": None}, perm=vm_audit),
        _Route("GET", "/nodes/{node}/lxc/{vmid}/config", lambda c: c.view.lxc_config(_guest(c, "lxc")),
               {"current": _BOOL, "snapshot": None}, perm=vm_audit),
        _Route("GET", "/nodes/{node}/qemu/{vmid}/status/current", lambda c: c.view.qemu_status(_guest(c, "qemu")),
               perm=vm_audit),
        _Route("GET", "/nodes/{node}/lxc/{vmid}/status/current", _lxc_status, perm=vm_audit),
        _Route("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
               lambda c: c.view.agent_interfaces(_guest(c, "qemu")), perm=_agent_perm),
        _Route("GET", "/nodes/{node}/lxc/{vmid}/interfaces", lambda c: c.view.lxc_interfaces(_guest(c, "lxc")),
               perm=vm_audit),
        _Route("GET", "/access/ticket", lambda c: None, auth=False),
        _Route("POST", "/access/ticket", _login,
               {k: None for k in ("username", "password", "realm", "otp", "path", "privs", "tfa-challenge",
                                  "new-format")}, required=("username", "password"), auth=False),
    ]
    for kind in ("qemu", "lxc"):
        routes.append(_Route("GET", f"/nodes/{{node}}/{kind}/{{vmid}}/snapshot",
                             partial(lambda c, k: c.view.snapshots(_guest(c, k)), k=kind), perm=vm_audit))
        for action in ("start", "stop", "shutdown", "reboot"):
            routes.append(_Route("POST", f"/nodes/{{node}}/{kind}/{{vmid}}/status/{action}",
                                 partial(_set_status, kind=kind, action=action),
                                 {"timeout": None, "skiplock": _BOOL, "forceStop": _BOOL},
                                 perm=_perm("/vms/{vmid}", "VM.PowerMgmt")))
    return routes


_ROUTES = _build_routes()


def _match(method: str, path: str) -> tuple[_Route | None, dict, str | None]:
    """(route, path args, template); the template is also returned for a known path with another method."""
    template = None
    for route in _ROUTES:
        m = route.regex.match(path)
        if m:
            template = route.template
            if route.method == method:
                return route, {k: unquote(v) for k, v in m.groupdict().items()}, template
    return None, {}, template


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


@dataclass
class Fault:
    """One injected fault: which requests it matches and what it does to them."""

    id: int
    method: str | None
    path: str
    query: str | None
    status: int | None
    delay: float
    close: bool
    times: int | None  # None: every matching request
    message: str | None
    body: str | None = None  # answered with status 200 as it is: a malformed answer
    hits: int = 0

    def __post_init__(self):
        self._path = re.compile(self.path)
        self._query = re.compile(self.query) if self.query is not None else None

    def matches(self, method: str, path: str, query: str) -> bool:
        return ((self.method is None or self.method.upper() == method) and bool(self._path.search(path))
                and (self._query is None or bool(self._query.search(query))))

    def as_dict(self) -> dict:
        keys = ("id", "method", "path", "query", "status", "delay", "close", "times", "message", "body", "hits")
        return {k: getattr(self, k) for k in keys}


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address, handler, ssl_context: ssl.SSLContext, double: DoubleServer):
        self.ssl_context = ssl_context
        self.double = double
        self._open: set = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def finish_request(self, request, client_address):
        # The handshake runs in the connection's own thread, so a slow or refusing
        # client (wrong CA) never holds up the accept loop.
        request.settimeout(_HANDSHAKE_TIMEOUT)
        # headers and body leave in two writes; without NODELAY, Nagle and delayed ACKs add ~40 ms per call
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except OSError:
            return
        with self._open_lock:
            self._open.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with self._open_lock:
                self._open.discard(conn)
            conn.close()

    def close_connections(self) -> None:
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            return  # clients that go away (timeouts, injected closes) are normal here
        super().handle_error(request, client_address)


class _AbortConnection(Exception):
    """Raised to drop the connection without an answer (fault `close`)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one TLS handshake per client, not per call
    server_version = "pve-api-daemon/3.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are dropped after this
    server: _TLSServer

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        if self.server.double.verbose:
            sys.stderr.write(f"pve-double: {self.address_string()} {format % args}\n")

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self, method: str) -> None:
        body = self._read_body()
        path, _sep, query = self.path.partition("?")
        try:
            if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
                status, payload = self.server.double._control(method, path[len(CONTROL_PREFIX):], self.headers, body)
                self._send(status, _Payload(_json(payload)))
            elif path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                self._send(200, self.server.double._api(method, path[len(API_PREFIX):], query, self.headers, body))
            else:
                raise PveError(404, "Not found")
        except _AbortConnection:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except PveError as exc:
            self._send_error(exc)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            raise
        except Exception as exc:  # a bug in the double must still answer like a server, and say what
            traceback.print_exc()
            self._send_error(PveError(500, f"pve-double internal error: {exc!r}"))

    def _send_error(self, exc: PveError) -> None:
        body: dict = {"data": None, "message": exc.message + "\n"}
        if exc.errors:
            body["errors"] = exc.errors
        # PVE puts the message in the status line too; clients (proxmoxer) show it from there
        reason = exc.message.replace("\r", " ").replace("\n", " ").encode("latin-1", "replace").decode("latin-1")
        self._send(exc.status, _Payload(_json(body)), reason)

    def _send(self, status: int, payload: _Payload, reason: str | None = None) -> None:
        data = payload.raw
        gz = len(data) > _GZIP_MIN and "gzip" in (self.headers.get("Accept-Encoding") or "")
        if gz:
            data = payload.gzipped()
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        if gz:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        self.wfile.write(data)


# --------------------------------------------------------------------------
# The double
# --------------------------------------------------------------------------


def _only(data: dict, allowed: set, what: str) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")


def _grants(value) -> list:
    """Grants of a control call: a list of [path, role_or_privs, propagate?] lists or {path, roles|privs, propagate}."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("acls must be a list of [path, role or privileges, propagate] or {path, roles, propagate}")
    return [_grant_spec(v) for v in value]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


class DoubleServer:
    """A Proxmox VE API double on https://127.0.0.1:PORT/api2/json.

    Use as a context manager (or start()/stop()). `cluster` stays mutable: the
    next request sees any change made to it.
    """

    def __init__(self, cluster: Cluster | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 latency: float = 0.0, control_token: str | None = None, cert_dir: str | None = None,
                 verbose: bool = False):
        self.cluster = cluster if cluster is not None else load_scenario(SAMPLE_SCENARIO)
        self.cluster.ensure_credentials()
        self.host = host
        self.port = port
        self.latency = float(latency)
        self.control_token = control_token or secrets.token_urlsafe(24)
        self.verbose = verbose
        self._cert_dir_arg = cert_dir
        self._cert_dir: Path | None = None
        self._secret = secrets.token_bytes(32)  # signs tickets and CSRF tokens
        self._faults: list[Fault] = []
        self._fault_ids = 0
        self._lock = threading.Lock()
        self._counts: collections.Counter = collections.Counter()
        self._total = 0
        self._stopping = threading.Event()
        self._httpd: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self.ca_path = ""
        self.wrong_ca_path = ""

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> DoubleServer:
        import trustme  # test-only dependency (requirements/test.txt)

        if self._cert_dir_arg:
            self._cert_dir = Path(self._cert_dir_arg)
            self._cert_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._cert_dir = Path(tempfile.mkdtemp(prefix="pve-double-"))
        ca = trustme.CA(organization_name="pve-double test CA")
        names = ["127.0.0.1", "localhost", "::1"] + ([self.host] if self.host not in ("127.0.0.1", "localhost") else [])
        cert = ca.issue_cert(*names)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        cert.configure_cert(context)
        self.ca_path = str(self._cert_dir / "pve-double-ca.pem")
        self.wrong_ca_path = str(self._cert_dir / "unrelated-ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        trustme.CA(organization_name="unrelated CA").cert_pem.write_to_path(self.wrong_ca_path)

        self._stopping.clear()
        self._httpd = _TLSServer((self.host, self.port), _Handler, context, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"pve-double:{self.port}", daemon=True)
        self._thread.start()
        self.warm()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes requests sleeping on latency or a delay fault
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd = None
        if self._cert_dir is not None and not self._cert_dir_arg:  # also after a failed bind
            shutil.rmtree(self._cert_dir, ignore_errors=True)
        self._cert_dir = None

    def __enter__(self) -> DoubleServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what clients need -----------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX

    @property
    def control_url(self) -> str:
        return self.url + CONTROL_PREFIX

    @property
    def user(self) -> str:
        return self.cluster.users[0].userid

    @property
    def password(self) -> str:
        return self.cluster.users[0].password

    @property
    def token_user(self) -> str:
        return self.cluster.tokens[0].userid

    @property
    def token_name(self) -> str:
        return self.cluster.tokens[0].tokenid

    @property
    def token_id(self) -> str:
        return f"{self.token_user}!{self.token_name}"

    @property
    def token_secret(self) -> str:
        return self.cluster.tokens[0].secret

    def auth_header(self, token_id: str | None = None, secret: str | None = None) -> dict:
        """The header proxmoxer sends for an API token (user@realm!name and its secret; default: the first token)."""
        if token_id is None:
            token_id, secret = self.token_id, self.token_secret
        elif secret is None:
            token = self.cluster.token(token_id)
            if token is None:
                raise ValueError(f"no token {token_id!r}")
            secret = token.secret
        return {"Authorization": f"PVEAPIToken={token_id}={secret}"}

    def info(self) -> dict:
        """Everything a client in another process needs (the CLI writes it to the info file)."""
        return {"url": self.url, "api_url": self.api_url, "host": self.host, "port": self.port,
                "ca_path": self.ca_path, "wrong_ca_path": self.wrong_ca_path, "user": self.user,
                "password": self.password, "token_id": self.token_id, "token_user": self.token_user,
                "token_name": self.token_name, "token_secret": self.token_secret,
                "control_url": self.control_url, "control_token": self.control_token,
                "cluster_name": self.cluster.cluster_name}

    # -- test controls -----------------------------------------------------------------
    def counters(self) -> dict:
        with self._lock:
            return {"total": self._total, "by_path": dict(self._counts)}

    def reset_counters(self) -> None:
        with self._lock:
            self._counts.clear()
            self._total = 0

    def add_fault(self, method: str | None = None, path: str = r".*", *, query: str | None = None,
                  status: int | None = None, delay: float = 0.0, close: bool = False,
                  times: int | None = None, message: str | None = None, body: str | None = None) -> int:
        """Inject a fault on requests whose API path (after /api2/json) matches `path` (re.search).

        It delays the answer by `delay` seconds, then drops the connection (`close`),
        or answers `status` with a PVE-like error body, or answers `body` as it is with status 200
        (a malformed answer: not JSON, no `data`, odd fields), or (delay only) answers normally.
        `times` limits it to the next N matching requests. Returns the fault id.
        """
        if status is None and not close and not delay and body is None:
            raise ValueError("a fault needs a status, a body, a delay or close=True")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._fault_ids += 1
            fault = Fault(self._fault_ids, method.upper() if method else None, path, query,
                          int(status) if status is not None else None, float(delay), bool(close), times, message,
                          body)
            self._faults.append(fault)
            return fault.id

    def remove_fault(self, fault_id: int) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if f.id != fault_id]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = []

    def faults(self) -> list[dict]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def set_latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency cannot be negative")
        self.latency = float(seconds)

    # -- users, tokens, roles, ACLs (see README "Permissions") --------------------------
    def add_user(self, userid: str, password: str | None = None, acls=()) -> str:
        """Create (or find) a user, grant it `acls` ((path, role_or_privs[, propagate]) each); return its password."""
        user = self.cluster.add_user(userid, password)
        self.cluster.grant_all(acls, users=[userid])
        return user.password

    def add_token(self, userid: str, name: str, privsep: bool = True, acls=(), *, user_acls=(),
                  secret: str | None = None) -> str:
        """Create the API token `userid!name` and return its secret, as `pveum user token add --privsep`.

        `acls` are given to the token, `user_acls` to its user (created when missing), each a
        (path, role_or_privs[, propagate]) tuple or a {path, roles|privs, propagate} mapping; a
        role is a role id (built-in or custom), privileges a list such as ["VM.Audit"]. A
        privilege-separated token gets only its own ACLs, intersected with its user's; one
        without privilege separation has exactly its user's privileges.
        """
        token = self.cluster.add_token(userid, name, privsep=privsep, secret=secret)
        self.cluster.grant_all(user_acls, users=[userid])
        self.cluster.grant_all(acls, tokens=[token.full_id])
        return token.secret

    def add_role(self, roleid: str, privs) -> None:
        """A custom role, as `pveum role add ROLEID -privs "A B"`."""
        self.cluster.add_role(roleid, privs)

    def add_acl(self, path: str, roles, *, users=(), tokens=(), propagate: bool = True) -> None:
        """An ACL entry, as `pveum acl modify PATH --roles R --users U --tokens T --propagate 0|1`."""
        self.cluster.grant(path, roles, users=users, tokens=tokens, propagate=propagate)

    def permissions(self, identity: str, path: str) -> list:
        """The privileges `identity` (user@realm or user@realm!name) has on `path`, as PVE would compute them."""
        return self.cluster.permissions(identity, path)

    def access_info(self) -> dict:
        """Users, tokens (no secrets), custom roles and ACLs, as the control API shows them."""
        c = self.cluster
        return {"pve_major": c.pve_major,
                "users": [u.userid for u in c.users],
                "tokens": [{"tokenid": t.full_id, "privsep": int(bool(t.privsep))} for t in c.tokens],
                "roles": {r.roleid: sorted(r.privs) for r in c.roles},
                "acls": [{"path": a.path, "roles": list(a.roles), "users": list(a.users), "tokens": list(a.tokens),
                          "propagate": int(bool(a.propagate))} for a in c.acls]}

    def set_node_status(self, node: str, status: str) -> None:
        try:
            self.cluster.set_node_status(node, status)
        except StopIteration:
            raise ValueError(f"no node named {node!r}") from None

    # -- request handling -----------------------------------------------------------
    def _take_fault(self, method: str, path: str, query: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path, query):
                    fault.hits += 1
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _api(self, method: str, path: str, query: str, headers, body: bytes) -> _Payload:
        path = path.rstrip("/") or "/"
        route, args, template = _match(method, path)
        with self._lock:  # count first: retries and failed calls are calls too
            self._counts[f"{method} {template or path}"] += 1
            self._total += 1
        if self.latency:
            self._stopping.wait(self.latency)
        fault = self._take_fault(method, path, query)
        if fault is not None:
            if fault.delay:
                self._stopping.wait(fault.delay)
            if fault.close:
                raise _AbortConnection()
            if fault.status is not None:
                raise PveError(fault.status, fault.message or _DEFAULT_MESSAGES.get(fault.status, "error"))
            if fault.body is not None:
                return _Payload(fault.body.encode("utf-8"))

        userid = None
        if route is None or route.auth:
            userid = self._authenticate(method, headers)
        if route is None:
            raise PveError(501, f"Method '{method} {API_PREFIX}{path}' not implemented")
        raw = dict(parse_qsl(query, keep_blank_values=True))
        if body:
            raw.update(self._parse_body(headers, body))
        params = _check_params(route, raw)
        _check_vmid(args)
        return self._render(route, args, params, userid)

    def _render(self, route: _Route, args: dict, params: dict, userid: str | None) -> _Payload:
        view = self.cluster.view()
        if "node" in args:
            view.check_node(args["node"])
        access = view.access(userid if route.auth else None)
        call = _Call(view, self, args, params, userid, access)
        if route.perm is not None:
            route.perm(call)
        if not route.cache:
            return _Payload(_json({"data": route.handler(call)}))
        # who asks matters only for an identity whose answers are filtered
        who = None if access.unrestricted else access.identity
        key = (route.template, tuple(sorted(args.items())), tuple(sorted(params.items())), who)
        payload = view.cache.get(key)
        if payload is None:
            payload = view.cache[key] = _Payload(_json({"data": route.handler(call)}))
        return payload

    def warm(self) -> None:
        """Render the guest listing now, so the first timed /cluster/resources call is not the one paying."""
        route = _match("GET", "/cluster/resources")[0]
        for params in ({"type": "vm"}, {}):
            self._render(route, {}, params, None).gzipped()

    @staticmethod
    def _parse_body(headers, body: bytes) -> dict:
        ctype = headers.get("Content-Type") or ""
        text = body.decode("utf-8", "replace")
        if "json" in ctype:
            try:
                data = json.loads(text)
            except ValueError:
                raise PveError(400, "Parameter verification failed.", {"body": "invalid JSON"}) from None
            if not isinstance(data, dict):
                raise PveError(400, "Parameter verification failed.", {"body": "expected a JSON object"})
            return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
        return dict(parse_qsl(text, keep_blank_values=True))

    # -- auth ------------------------------------------------------------------------------
    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._secret, text.encode(), hashlib.sha256).digest())

    def _make_ticket(self, userid: str) -> str:
        plain = f"PVE:{userid}:{int(time.time()):08X}"
        return f"{plain}::{self._sign(plain)}"

    def _make_csrf(self, userid: str) -> str:
        stamp = f"{int(time.time()):08X}"
        return f"{stamp}:{self._sign(f'{stamp}:{userid}')}"

    @staticmethod
    def _fresh(stamp: str) -> bool:
        try:
            age = time.time() - int(stamp, 16)
        except ValueError:
            return False
        return -300 < age < TICKET_LIFETIME

    def _ticket_user(self, ticket: str) -> str | None:
        plain, sep, sig = ticket.partition("::")
        parts = plain.split(":")
        if not sep or len(parts) != 3 or parts[0] != "PVE":
            return None
        if not hmac.compare_digest(sig, self._sign(plain)) or not self._fresh(parts[2]):
            return None
        return parts[1]

    def _csrf_ok(self, token: str, userid: str) -> bool:
        stamp, _sep, sig = token.partition(":")
        return bool(sig) and hmac.compare_digest(sig, self._sign(f"{stamp}:{userid}")) and self._fresh(stamp)

    def _authenticate(self, method: str, headers) -> str:
        authorization = headers.get("Authorization") or ""
        if authorization.startswith("PVEAPIToken="):
            full, sep, secret = authorization[len("PVEAPIToken="):].partition("=")
            userid, _sep, tokenid = full.partition("!")
            for token in self.cluster.tokens:
                if token.userid == userid and token.tokenid == tokenid:
                    if sep and hmac.compare_digest(secret.strip(), token.secret):
                        return full
                    raise PveError(401, "invalid token value!")
            raise PveError(401, f"no such token '{tokenid}' for user '{userid}'")
        ticket = self._cookie(headers, "PVEAuthCookie")
        if ticket is None:
            raise PveError(401, "No ticket")
        userid = self._ticket_user(ticket)
        if userid is None:
            raise PveError(401, "invalid PVE ticket")
        if method != "GET" and not self._csrf_ok(headers.get("CSRFPreventionToken") or "", userid):
            raise PveError(401, "Permission denied - invalid csrf token")
        return userid

    @staticmethod
    def _cookie(headers, name: str) -> str | None:
        for header in headers.get_all("Cookie") or []:
            for part in header.split(";"):
                key, sep, value = part.strip().partition("=")
                if sep and key == name:
                    return unquote(value)
        return None

    def _login(self, params: dict) -> dict:
        username, password = params["username"], params["password"]
        if "@" not in username and params.get("realm"):
            username = f"{username}@{params['realm']}"
        # proxmoxer renews a ticket by sending it as the password
        valid = self._ticket_user(password) == username or any(
            u.userid == username and u.password and hmac.compare_digest(u.password, password)
            for u in self.cluster.users)
        if not valid:
            raise PveError(401, "authentication failure")
        return {"username": username, "ticket": self._make_ticket(username),
                "CSRFPreventionToken": self._make_csrf(username), "clustername": self.cluster.cluster_name}

    # -- control API -------------------------------------------------------------------------
    def _control(self, method: str, path: str, headers, body: bytes) -> tuple[int, Any]:
        given = headers.get("X-Double-Token") or ""
        authorization = headers.get("Authorization") or ""
        if authorization.startswith("Bearer "):
            given = authorization[len("Bearer "):]
        if not hmac.compare_digest(given.strip(), self.control_token):
            return 403, {"error": "missing or wrong control token"}
        try:
            data = json.loads(body) if body else {}
            return 200, self._control_action(method, path.rstrip("/"), data)
        except KeyError as exc:
            return 400, {"error": f"missing field {exc}"}
        except (ValueError, TypeError, re.error) as exc:
            return 400, {"error": str(exc)}
        except LookupError as exc:
            return 404, {"error": str(exc)}

    def _control_action(self, method: str, path: str, data: dict) -> Any:
        if (method, path) == ("GET", "/counters"):
            return self.counters()
        if (method, path) in (("POST", "/reset"), ("DELETE", "/counters")):
            self.reset_counters()
            return self.counters()
        if (method, path) == ("GET", "/faults"):
            return self.faults()
        if (method, path) == ("POST", "/faults"):
            allowed = {"method", "path", "query", "status", "delay", "close", "times", "message", "body"}
            unknown = set(data) - allowed
            if unknown:
                raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
            return {"id": self.add_fault(**data)}
        if (method, path) == ("DELETE", "/faults"):
            self.clear_faults()
            return self.faults()
        if method == "DELETE" and path.startswith("/faults/"):
            self.remove_fault(int(path.rsplit("/", 1)[1]))
            return self.faults()
        if path == "/latency" and method in ("POST", "PUT"):
            self.set_latency(float(data["latency"]))
        if path == "/latency" and method in ("GET", "POST", "PUT"):
            return {"latency": self.latency}
        if path == "/nodes" and method in ("POST", "PUT"):
            self.set_node_status(data["node"], data["status"])
        if path == "/nodes" and method in ("GET", "POST", "PUT"):
            return {n.node: n.status for n in self.cluster.nodes}
        if (method, path) == ("GET", "/info"):
            return self.info()
        if (method, path) == ("GET", "/access"):
            return self.access_info()
        if (method, path) == ("POST", "/users"):
            _only(data, {"userid", "password", "acls"}, "user")
            password = self.add_user(data["userid"], data.get("password"), _grants(data.get("acls")))
            return {"userid": data["userid"], "password": password}
        if (method, path) == ("POST", "/tokens"):
            _only(data, {"userid", "tokenid", "privsep", "acls", "user_acls", "secret"}, "token")
            secret = self.add_token(data["userid"], data["tokenid"], bool(data.get("privsep", True)),
                                    _grants(data.get("acls")), user_acls=_grants(data.get("user_acls")),
                                    secret=data.get("secret"))
            return {"tokenid": f"{data['userid']}!{data['tokenid']}", "secret": secret}
        if (method, path) == ("POST", "/roles"):
            _only(data, {"roleid", "privs"}, "role")
            self.add_role(data["roleid"], data["privs"])
            return self.access_info()
        if (method, path) == ("POST", "/acls"):
            _only(data, {"path", "roles", "privs", "users", "tokens", "propagate"}, "acl")
            if data.get("roles") and data.get("privs"):
                raise ValueError("give roles or privs, not both")
            self.add_acl(data["path"], data.get("roles") or data["privs"], users=data.get("users") or (),
                         tokens=data.get("tokens") or (), propagate=bool(data.get("propagate", True)))
            return self.access_info()
        if (method, path) == ("POST", "/permissions"):
            _only(data, {"identity", "path"}, "permissions query")
            return {"identity": data["identity"], "path": data["path"],
                    "privs": self.permissions(data["identity"], data["path"])}
        raise LookupError(f"no control action {method} {CONTROL_PREFIX}{path}")
