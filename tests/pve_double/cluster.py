"""Data model of the Proxmox VE double, scenario loading, generators, and the
rendering of the model in the shapes of the PVE API (pve-api/schema-subset.json).

Model objects are plain dataclasses that tests may change freely between calls
(``cluster.guests.append(...)``, ``guest.status = "stopped"``): every change
bumps a generation counter, and the rendered answers are rebuilt only when it
moved, so a 5,000-guest listing is serialized once, not on every request.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import json
import os
import random
import re
import secrets
import tempfile
import threading
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4

ROLES = ("web", "was", "db", "java", "search", "ftp", "monitoring")
DEFAULT_TAGS = ("prod", "dev", "web", "db", "backend", "linux")
DEFAULT_POOLS = ("prod", "dev")
PVE_VERSION = {"version": "9.0.3", "release": "9.0", "repoid": "025a4b5d0d3e7b21"}
PVE8_VERSION = {"version": "8.4.1", "release": "8.4", "repoid": "2a5fa54a8503f96d"}
PVE_MAJORS = (8, 9)

# --------------------------------------------------------------------------
# Change tracking
# --------------------------------------------------------------------------

_GENERATIONS = itertools.count(1)
_generation = 0


def _bump() -> None:
    global _generation
    _generation = next(_GENERATIONS)  # next() on a count is atomic under the GIL


def _tracking(name: str):
    base = getattr(list, name)

    def method(self, *args, **kwargs):
        result = base(self, *args, **kwargs)
        _bump()
        return result

    method.__name__ = name
    return method


class _TrackedList(list):
    """A list whose in-place changes invalidate the rendered answers."""


for _name in ("append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse",
              "__setitem__", "__delitem__", "__iadd__", "__imul__"):
    setattr(_TrackedList, _name, _tracking(_name))


class _Model:
    """Base of the model dataclasses: public attribute writes bump the generation."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):  # caches and locks are not data
            object.__setattr__(self, name, value)
            return
        if isinstance(value, list) and not isinstance(value, _TrackedList):
            value = _TrackedList(value)
        object.__setattr__(self, name, value)
        _bump()


class PveError(Exception):
    """An error answer as PVE gives it: HTTP status, one-line message, optional per-field errors."""

    def __init__(self, status: int, message: str, errors: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


@dataclass(eq=False)
class Node(_Model):
    node: str
    status: str = "online"  # online | offline
    maxcpu: int = 16
    maxmem: int = 128 * GiB
    maxdisk: int = 100 * GiB
    ip: str | None = None
    cpu: float | None = None
    mem: int | None = None
    uptime: int | None = None


@dataclass(eq=False)
class Guest(_Model):
    vmid: int
    name: str
    type: str = "qemu"  # qemu | lxc
    node: str = "pve1"
    status: str = "stopped"  # running | stopped
    template: bool = False
    tags: list = field(default_factory=list)
    pool: str | None = None
    agent: bool = False  # qemu: agent enabled in the config
    agent_running: bool = True  # qemu: the agent answers inside a running guest
    ips: list = field(default_factory=list)  # "10.10.0.50" or "10.10.0.50/24"
    maxcpu: int = 2
    maxmem: int = 2 * GiB
    maxdisk: int = 32 * GiB
    storage: str = "local-lvm"
    ostype: str | None = None
    description: str | None = None
    lock: str | None = None
    # runtime figures; derived from the vmid when left out
    cpu: float | None = None
    mem: int | None = None
    disk: int | None = None
    uptime: int | None = None


@dataclass(eq=False)
class Storage(_Model):
    storage: str
    type: str = "dir"
    content: str = "images"
    shared: bool = False
    nodes: list | None = None  # None: every node
    total: Any = 500 * GiB  # bytes, or {node: bytes}
    used: Any = 100 * GiB  # bytes, or {node: bytes}
    enabled: bool = True
    options: dict = field(default_factory=dict)  # extra storage.cfg keys (path, vgname, ...)


@dataclass(eq=False)
class Pool(_Model):
    poolid: str
    comment: str | None = None


@dataclass(eq=False)
class User(_Model):
    userid: str
    password: str | None = None


@dataclass(eq=False)
class Token(_Model):
    userid: str
    tokenid: str
    secret: str | None = None
    # A privilege-separated token has only the ACLs given to the token, intersected with its user's.
    # `pveum user token add` defaults to 1; the double defaults to 0, so a scenario token written
    # before ACLs existed keeps its user's rights (root@pam: everything).
    privsep: bool = False

    @property
    def full_id(self) -> str:
        return f"{self.userid}!{self.tokenid}"


@dataclass(eq=False)
class Role(_Model):
    """A custom role (`pveum role add ROLEID -privs "..."`); the built-in ones are in builtin_roles()."""

    roleid: str
    privs: list = field(default_factory=list)


@dataclass(eq=False)
class Acl(_Model):
    """One ACL entry (`pveum acl modify PATH --roles R --users U --tokens T --propagate 1`)."""

    path: str
    roles: list = field(default_factory=list)
    users: list = field(default_factory=list)
    tokens: list = field(default_factory=list)  # full token ids: user@realm!tokenid
    propagate: bool = True


@dataclass(eq=False)
class Cluster(_Model):
    cluster_name: str = "demo"
    nodes: list = field(default_factory=list)
    guests: list = field(default_factory=list)
    storages: list = field(default_factory=list)
    pools: list = field(default_factory=list)
    users: list = field(default_factory=list)
    tokens: list = field(default_factory=list)
    roles: list = field(default_factory=list)  # custom Roles; the built-in ones always exist
    acls: list = field(default_factory=list)
    pve_major: int = 9  # 9: guest agent calls need VM.GuestAgent.Audit; 8: VM.Monitor

    def __post_init__(self) -> None:
        self._view = None
        self._view_lock = threading.Lock()

    # -- convenience for tests ------------------------------------------------
    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.node == name)

    def guest(self, vmid: int) -> Guest:
        return next(g for g in self.guests if g.vmid == vmid)

    def add_guest(self, **kwargs) -> Guest:
        guest = Guest(**kwargs)
        self.guests.append(guest)
        return guest

    def remove_guest(self, vmid: int) -> None:
        self.guests.remove(self.guest(vmid))

    def set_node_status(self, name: str, status: str) -> None:
        if status not in ("online", "offline"):
            raise ValueError(f"node status must be online or offline, not {status!r}")
        self.node(name).status = status

    def touch(self) -> None:
        """Invalidate rendered answers after a change the tracking cannot see (a dict edited in place)."""
        _bump()

    # -- users, tokens, roles and ACLs ---------------------------------------------
    def user(self, userid: str) -> User | None:
        return next((u for u in self.users if u.userid == userid), None)

    def token(self, full_id: str) -> Token | None:
        return next((t for t in self.tokens if t.full_id == full_id), None)

    def add_user(self, userid: str, password: str | None = None) -> User:
        """The user `userid`, created (with `password`, or a random one) when missing."""
        if not _USERID.fullmatch(userid):
            raise ValueError(f"invalid user id {userid!r}: expected name@realm")
        user = self.user(userid)
        if user is None:
            user = User(userid, password or secrets.token_urlsafe(18))
            self.users.append(user)
        elif password:
            user.password = password
        return user

    def add_token(self, userid: str, tokenid: str, *, privsep: bool = True, secret: str | None = None) -> Token:
        """A new API token of `userid` (the user is created when missing), as `pveum user token add`."""
        if not _TOKENID.fullmatch(tokenid):
            raise ValueError(f"invalid token name {tokenid!r}")
        self.add_user(userid)
        if self.token(f"{userid}!{tokenid}") is not None:
            raise ValueError(f"token '{tokenid}' for user '{userid}' already exists")
        token = Token(userid, tokenid, secret or str(uuid.uuid4()), bool(privsep))
        self.tokens.append(token)
        return token

    def add_role(self, roleid: str, privs) -> Role:
        """A custom role, as `pveum role add ROLEID -privs "A B"`; privileges are checked for this PVE version."""
        privs = sorted(set(_list(privs, sep=", ")))
        if not _ROLEID.fullmatch(roleid):
            raise ValueError(f"role name '{roleid}' contains invalid characters")
        if roleid in builtin_roles(self.pve_major) or any(r.roleid == roleid for r in self.roles):
            raise ValueError(f"role '{roleid}' already exists")
        check_privileges(privs, self.pve_major)
        role = Role(roleid, privs)
        self.roles.append(role)
        return role

    def role_for(self, privs) -> str:
        """The id of a custom role holding exactly `privs` (created on first use), for grants by privilege list."""
        privs = sorted(set(_list(privs, sep=", ")))
        for role in self.roles:
            if sorted(role.privs) == privs:
                return role.roleid
        digest = hashlib.sha1(",".join(privs).encode()).hexdigest()[:8]
        return self.add_role(f"DoublePrivs-{digest}", privs).roleid

    def grant(self, path: str, roles, *, users=(), tokens=(), propagate: bool = True) -> Acl:
        """An ACL entry, as `pveum acl modify PATH --roles ... --users ... --tokens ... --propagate 0|1`.

        `roles` is a role id, a list of role ids, or (as a convenience) a list of privileges,
        which become one custom role.
        """
        acl = Acl(path, _role_list(self, roles), _list(users), _list(tokens), bool(propagate))
        _check_acl(self, acl, "acl")
        acl.path = normalize_acl_path(acl.path)
        self.acls.append(acl)
        return acl

    def grant_all(self, grants, *, users=(), tokens=()) -> None:
        """Several grants for the same users/tokens: (path, role_or_privs[, propagate]) tuples or mappings."""
        for spec in grants or ():
            path, roles, propagate = _grant_spec(spec)
            self.grant(path, roles, users=users, tokens=tokens, propagate=propagate)

    def permissions(self, identity: str, path: str) -> list:
        """The privileges `identity` (user@realm or user@realm!token) has on `path`, as PVE computes them."""
        return sorted(self.view().access(identity).privs(normalize_acl_path(path)))

    def ensure_credentials(self) -> None:
        """Fill in random credentials where the scenario gives none (no password lives in the repo)."""
        if not self.users:
            self.users.append(User("root@pam"))
        for user in self.users:
            if not user.password:
                user.password = secrets.token_urlsafe(18)
        if not self.tokens:
            self.tokens.append(Token(self.users[0].userid, "automation"))
        for token in self.tokens:
            if not token.secret:
                token.secret = str(uuid.uuid4())

    def view(self) -> ClusterView:
        """The rendered API answers for the current state, rebuilt only after a change."""
        view = self._view
        if view is not None and view.generation == _generation:
            return view
        with self._view_lock:
            view = self._view
            if view is None or view.generation != _generation:
                # read the generation first: a change made while building forces another rebuild
                view = ClusterView(self, _generation)
                self._view = view
            return view


# --------------------------------------------------------------------------
# Access control: privileges, roles, ACLs and tokens, as pve-access-control models them
# --------------------------------------------------------------------------

# PVE::AccessControl's $privgroups: per category, privileges only `root` may have (Administrator
# alone holds them), and those of the admin, user and audit levels. The built-in roles derive
# from them as create_roles() does. PVE 9 dropped VM.Monitor for the VM.GuestAgent.* privileges
# (pve-access-control "add VM.GuestAgent privileges", "privileges: drop VM.Monitor", July 2025).
_PRIVGROUPS_COMMON = {
    "Sys": {"root": ["Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"],
            "admin": ["Permissions.Modify", "Sys.Console", "Sys.Syslog"], "user": [], "audit": ["Sys.Audit"]},
    "Datastore": {"root": [], "admin": ["Datastore.Allocate", "Datastore.AllocateTemplate"],
                  "user": ["Datastore.AllocateSpace"], "audit": ["Datastore.Audit"]},
    "SDN": {"root": [], "admin": ["SDN.Allocate", "SDN.Audit"], "user": ["SDN.Use", "SDN.Audit"],
            "audit": ["SDN.Audit"]},
    "User": {"root": ["Realm.Allocate"], "admin": ["User.Modify", "Group.Allocate", "Realm.AllocateUser"],
             "user": [], "audit": []},
    "Pool": {"root": [], "admin": ["Pool.Allocate"], "user": ["Pool.Audit"], "audit": ["Pool.Audit"]},
    "Mapping": {"root": [], "admin": ["Mapping.Modify"], "user": ["Mapping.Use"], "audit": ["Mapping.Audit"]},
}
_VM_ADMIN = ["VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType",
             "VM.Config.Options", "VM.Allocate", "VM.Clone", "VM.Migrate", "VM.Snapshot", "VM.Snapshot.Rollback"]
_VM_USER = ["VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup", "VM.PowerMgmt"]
_PRIVGROUPS = {
    8: dict(_PRIVGROUPS_COMMON, VM={"root": [], "admin": _VM_ADMIN + ["VM.Monitor"], "user": _VM_USER,
                                    "audit": ["VM.Audit"]}),
    9: dict(_PRIVGROUPS_COMMON, VM={
        "root": [], "admin": _VM_ADMIN + ["VM.GuestAgent.Unrestricted"],
        "user": _VM_USER + ["VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite"],
        "audit": ["VM.Audit", "VM.GuestAgent.Audit"]}),
}
# What the guest agent's network-get-interfaces checks on /vms/{vmid}: (privileges, any of them suffices)
AGENT_PRIVILEGES = {9: (("VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"), True), 8: (("VM.Monitor",), False)}
ROOT_USER = "root@pam"  # always has every privilege, whatever the ACLs say

_USERID = re.compile(r"[^\s:/@!]+@[A-Za-z][A-Za-z0-9.\-_]+")
_TOKENID = re.compile(r"[A-Za-z][A-Za-z0-9.\-_]+")
_ROLEID = re.compile(r"[A-Za-z0-9.\-_]+")
# PVE::AccessControl::check_path: the ACL paths PVE accepts
_ACL_PATH = re.compile(r"/|/access|/access/groups(/[\w.\-]+)?|/access/realm(/[\w.\-]+)?|/mapping(/[\w.\-]+)*"
                       r"|/nodes(/[\w.\-]+)?|/pool(/[\w.\-]+)*|/sdn(/zones(/[\w.\-]+)*|/vnets/[\w.\-]+)?"
                       r"|/storage(/[\w.\-]+)?|/vms(/[1-9]\d{2,})?", re.ASCII)
_BUILTIN_ROLES: dict = {}


def builtin_roles(pve_major: int = 9) -> dict:
    """{roleid: frozenset of privileges} of PVE's built-in roles (Administrator, PVEAuditor, PVEVMUser, ...)."""
    roles = _BUILTIN_ROLES.get(pve_major)
    if roles is None:
        valid, built = set(), {}
        for cat, group in _PRIVGROUPS[pve_major].items():
            valid.update(group["root"] + group["admin"] + group["user"] + group["audit"])
            for priv in group["admin"] + group["user"] + group["audit"]:
                built.setdefault(f"PVE{cat}Admin", set()).add(priv)
                built.setdefault("PVEAdmin", set()).add(priv)
            if group["user"]:
                built.setdefault(f"PVE{cat}User", set()).update(group["user"] + group["audit"])
            built.setdefault("PVEAuditor", set()).update(group["audit"])
        built["PVETemplateUser"] = {"VM.Clone", "VM.Audit"}
        built["Administrator"], built["NoAccess"] = valid, set()
        roles = _BUILTIN_ROLES[pve_major] = {k: frozenset(v) for k, v in sorted(built.items())}
    return roles


def all_privileges(pve_major: int = 9) -> frozenset:
    return builtin_roles(pve_major)["Administrator"]


def check_privileges(privs, pve_major: int = 9) -> None:
    """pveum's check: every name must be a privilege of this PVE version."""
    valid = all_privileges(pve_major)
    for priv in privs:
        if priv not in valid:
            raise ValueError(f"invalid privilege '{priv}'")


def normalize_acl_path(path: str) -> str:
    """PVE::AccessControl::normalize_path: one leading slash, none trailing, no doubled ones."""
    path = re.sub(r"/+", "/", str(path or "")).rstrip("/") or "/"
    return path if path.startswith("/") else "/" + path


def _role_list(cluster: Cluster, roles) -> list:
    """Role ids from a role id, a list of role ids, or a list of privileges (one custom role)."""
    names = [roles] if isinstance(roles, str) else _list(roles)
    known = set(builtin_roles(cluster.pve_major)) | {r.roleid for r in cluster.roles}
    if names and not known & set(names) and all(re.fullmatch(r"[A-Z]\w*(\.\w+)+", n) for n in names):
        return [cluster.role_for(names)]  # privileges (Sys.Audit, ...): an invalid one is refused by name
    return names


def _grant_spec(spec) -> tuple:
    """(path, roles, propagate) from (path, role_or_privs[, propagate]) or {path, roles|role|privs, propagate}."""
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - {"path", "roles", "role", "privs", "propagate"})
        if unknown:
            raise ValueError(f"unknown grant field(s): {', '.join(unknown)}")
        roles = spec.get("roles", spec.get("role", spec.get("privs")))
        return spec["path"], roles, spec.get("propagate", True)
    if isinstance(spec, (list, tuple)) and len(spec) in (2, 3):
        return spec[0], spec[1], spec[2] if len(spec) == 3 else True
    raise ValueError(f"a grant is (path, role or privileges[, propagate]), not {spec!r}")


def _check_acl(cluster: Cluster, acl: Acl, where: str) -> None:
    """`pveum acl modify`'s checks: a valid path, existing roles, users and tokens."""
    path = normalize_acl_path(acl.path)
    if not _ACL_PATH.fullmatch(path):
        raise ValueError(f"{where}.path: invalid ACL path '{acl.path}'")
    if not acl.roles:
        raise ValueError(f"{where}.roles: at least one role is needed")
    known = set(builtin_roles(cluster.pve_major)) | {r.roleid for r in cluster.roles}
    for role in acl.roles:
        if role not in known:
            raise ValueError(f"{where}.roles: role '{role}' does not exist")
    if not acl.users and not acl.tokens:
        raise ValueError(f"{where}: name the users or tokens it is for")
    for userid in acl.users:
        if cluster.user(userid) is None and userid != ROOT_USER:
            raise ValueError(f"{where}.users: user '{userid}' does not exist")
    for full_id in acl.tokens:
        if cluster.token(full_id) is None:
            raise ValueError(f"{where}.tokens: token '{full_id}' does not exist")


class AccessConfig:
    """The access part of one generation of a Cluster: roles, ACLs by path, tokens, pool members."""

    def __init__(self, cluster: Cluster, guests: dict):
        self.pve_major = cluster.pve_major
        self.roles = dict(builtin_roles(cluster.pve_major))
        for role in cluster.roles:
            self.roles[role.roleid] = frozenset(role.privs)
        self.all = self.roles["Administrator"]
        self.privsep = {t.full_id: bool(t.privsep) for t in cluster.tokens}
        acl: dict = {}  # path -> subject (userid or token id) -> {role: propagate}
        for entry in cluster.acls:
            for subject in list(entry.users) + list(entry.tokens):
                given = acl.setdefault(normalize_acl_path(entry.path), {}).setdefault(subject, {})
                for role in entry.roles:
                    given[role] = bool(entry.propagate)
        self.acl = dict(sorted(acl.items()))  # parents sort before their children, as PVE walks them
        self.pool_of = {vmid: g.pool for vmid, g in guests.items() if g.pool}

    def roles_at(self, subject: str, path: str) -> dict:
        """PVE::AccessControl::roles: the most specific ACL on the way to `path` wins; propagate or be final."""
        roles: dict = {}
        for acl_path, subjects in self.acl.items():
            final = acl_path == path
            if not (acl_path == "/" or final or path.startswith(acl_path + "/")):
                continue
            given = subjects.get(subject)
            if given:
                new = {role: prop for role, prop in given.items() if final or prop}
                if new:
                    roles = new
        if "NoAccess" in roles:
            return {"NoAccess": roles["NoAccess"]}
        return roles


class Access:
    """What one identity (user@realm, or user@realm!token) may do, path by path, as PVE's RPCEnvironment
    computes it: roles along the path, pool ACLs for the pool's guests, privilege-separated tokens
    intersected with their user. root@pam may do everything."""

    def __init__(self, config: AccessConfig, identity: str | None):
        self.config = config
        self.identity = identity
        user, _sep, token = (identity or ROOT_USER).partition("!")
        self.user = user
        self.token = identity if token else None
        self.known = self.token is None or self.token in config.privsep
        self.privsep = bool(self.token and config.privsep.get(self.token))
        # unrestricted: the answers are those of the unfiltered (and cached) rendering
        self.unrestricted = identity is None or (user == ROOT_USER and self.known and not self.privsep)
        self._memo: dict = {}

    def privs(self, path: str) -> frozenset:
        if self.unrestricted:
            return self.config.all
        privs = self._memo.get(path)
        if privs is None:
            if not self.known:
                privs = frozenset()
            elif not self.privsep:
                privs = self._compile(self.user, path)
            elif self.user == ROOT_USER:  # root has everything: the intersection is the token's own
                privs = self._compile(self.token, path)
            else:
                privs = self._compile(self.token, path) & self._compile(self.user, path)
            self._memo[path] = privs
        return privs

    def _compile(self, subject: str, path: str) -> frozenset:
        if subject == ROOT_USER:
            return self.config.all
        roles = self.config.roles_at(subject, path)
        match = re.fullmatch(r"/vms/(\d+)", path)
        pool = self.config.pool_of.get(int(match.group(1))) if match else None
        if pool and "NoAccess" not in roles:
            pool_roles = self.config.roles_at(subject, f"/pool/{pool}")
            if "NoAccess" in pool_roles:  # a pool's NoAccess trumps the guest's own ACLs
                roles = {"NoAccess": False}
            else:
                for role in pool_roles:
                    roles.setdefault(role, False)
        privs: set = set()
        for role in roles:
            privs |= self.config.roles.get(role, frozenset())
        return frozenset(privs)

    def has(self, path: str, *privs: str, any_of: bool = False) -> bool:
        if self.unrestricted:
            return True
        have = self.privs(path)
        return any(p in have for p in privs) if any_of else all(p in have for p in privs)

    def check(self, path: str, privs, any_of: bool = False) -> None:
        """RPCEnvironment::check / check_any: 403 `Permission check failed (PATH, PRIV)`, privileges joined by |."""
        privs = tuple(privs)
        if self.has(path, *privs, any_of=any_of):
            return
        if any_of:
            raise PveError(403, f"Permission check failed ({path}, {'|'.join(privs)})")
        have = self.privs(path)
        missing = next(p for p in privs if p not in have)
        raise PveError(403, f"Permission check failed ({path}, {missing})")


# --------------------------------------------------------------------------
# Scenario loading
# --------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB}


def _size(value: Any, where: str) -> int:
    """Bytes from an int or a readable string such as "32G" or "8 GiB"."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"{where}: expected a size like 32G, got {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _list(value: Any, sep: str = ",") -> list:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in re.split(rf"[{re.escape(sep)}]", value) if v.strip()]
    return [str(v) for v in value]


def _build(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    return cls(**data)


def _load_guest(data: dict, where: str) -> Guest:
    data = dict(data)
    for key in ("maxmem", "maxdisk", "mem", "disk"):
        if data.get(key) is not None:
            data[key] = _size(data[key], f"{where}.{key}")
    data["tags"] = _list(data.get("tags"), sep=";,")
    data["ips"] = _list(data.get("ips"))
    guest = _build(Guest, data, where)
    if guest.type not in ("qemu", "lxc"):
        raise ValueError(f"{where}.type: must be qemu or lxc, not {guest.type!r}")
    if guest.status not in ("running", "stopped"):
        raise ValueError(f"{where}.status: must be running or stopped, not {guest.status!r}")
    if not 100 <= int(guest.vmid) <= 999999999:
        raise ValueError(f"{where}.vmid: must be between 100 and 999999999")
    return guest


def _load_storage(data: dict, where: str) -> Storage:
    data = dict(data)
    for key in ("total", "used"):
        if isinstance(data.get(key), dict):
            data[key] = {n: _size(v, f"{where}.{key}.{n}") for n, v in data[key].items()}
        elif key in data:
            data[key] = _size(data[key], f"{where}.{key}")
    if "content" in data:
        data["content"] = ",".join(_list(data["content"]))
    if data.get("nodes") is not None:
        data["nodes"] = _list(data["nodes"])
    return _build(Storage, data, where)


def cluster_from_dict(data: dict) -> Cluster:
    """A Cluster from a scenario mapping; errors name the entry and the field."""
    data = dict(data or {})
    auth = data.pop("auth", None) or {}
    known = {"cluster_name", "nodes", "guests", "storages", "pools", "pve_major"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"scenario: unknown key(s) {', '.join(unknown)}")
    nodes = []
    for i, n in enumerate(data.get("nodes") or []):
        n = dict(n)
        for key in ("maxmem", "maxdisk", "mem"):
            if key in n:
                n[key] = _size(n[key], f"nodes[{i}].{key}")
        nodes.append(_build(Node, n, f"nodes[{i}]"))
    if not nodes:
        raise ValueError("scenario: at least one node is needed")
    node_names = {n.node for n in nodes}
    guests = [_load_guest(g, f"guests[{i}]") for i, g in enumerate(data.get("guests") or [])]
    seen: set[int] = set()
    for i, g in enumerate(guests):
        if g.node not in node_names:
            raise ValueError(f"guests[{i}].node: no node named {g.node!r}")
        if g.vmid in seen:
            raise ValueError(f"guests[{i}].vmid: {g.vmid} is used twice")
        seen.add(g.vmid)
    pools = [_build(Pool, p, f"pools[{i}]") for i, p in enumerate(data.get("pools") or [])]
    pve_major = data.get("pve_major", 9)
    if pve_major not in PVE_MAJORS:
        raise ValueError(f"scenario: pve_major must be one of {', '.join(map(str, PVE_MAJORS))}, not {pve_major!r}")
    cluster = Cluster(
        cluster_name=data.get("cluster_name", "demo"),
        nodes=nodes,
        guests=guests,
        storages=[_load_storage(s, f"storages[{i}]") for i, s in enumerate(data.get("storages") or [])],
        pools=pools,
        users=[_build(User, u, f"auth.users[{i}]") for i, u in enumerate(auth.get("users") or [])],
        tokens=[_build(Token, t, f"auth.tokens[{i}]") for i, t in enumerate(auth.get("tokens") or [])],
        pve_major=pve_major,
    )
    _load_access(cluster, auth)
    return cluster


def _load_access(cluster: Cluster, auth: dict) -> None:
    """Check the users and tokens of a scenario's `auth`, and add its custom roles and ACLs."""
    unknown = sorted(set(auth) - {"users", "tokens", "roles", "acls"})
    if unknown:
        raise ValueError(f"scenario: unknown auth key(s) {', '.join(unknown)}")
    seen: set = set()
    for i, user in enumerate(cluster.users):
        if not isinstance(user.userid, str) or not _USERID.fullmatch(user.userid):
            raise ValueError(f"auth.users[{i}].userid: expected name@realm, got {user.userid!r}")
        if user.userid in seen:
            raise ValueError(f"auth.users[{i}].userid: {user.userid} is given twice")
        seen.add(user.userid)
    seen = set()
    for i, token in enumerate(cluster.tokens):
        if not isinstance(token.userid, str) or not _USERID.fullmatch(token.userid):
            raise ValueError(f"auth.tokens[{i}].userid: expected name@realm, got {token.userid!r}")
        if not isinstance(token.tokenid, str) or not _TOKENID.fullmatch(token.tokenid):
            raise ValueError(f"auth.tokens[{i}].tokenid: invalid token name {token.tokenid!r}")
        if token.full_id in seen:
            raise ValueError(f"auth.tokens[{i}]: {token.full_id} is given twice")
        seen.add(token.full_id)
        if cluster.users and cluster.user(token.userid) is None:
            raise ValueError(f"auth.tokens[{i}].userid: no user {token.userid} in auth.users")
    for i, data in enumerate(auth.get("roles") or []):
        role = _build(Role, data, f"auth.roles[{i}]")
        try:
            cluster.add_role(role.roleid, role.privs)
        except ValueError as exc:
            raise ValueError(f"auth.roles[{i}]: {exc}") from None
    for i, data in enumerate(auth.get("acls") or []):
        data = dict(data)
        if "privs" in data:  # a convenience of the double: the privileges of an unnamed custom role
            if data.get("roles"):
                raise ValueError(f"auth.acls[{i}]: give roles or privs, not both")
            data["roles"] = [cluster.role_for(data.pop("privs"))]
        acl = _build(Acl, data, f"auth.acls[{i}]")
        acl.roles, acl.users, acl.tokens = _list(acl.roles), _list(acl.users), _list(acl.tokens)
        _check_acl(cluster, acl, f"auth.acls[{i}]")
        acl.path = normalize_acl_path(acl.path)
        cluster.acls.append(acl)


def load_scenario(source: str | os.PathLike | dict) -> Cluster:
    """A Cluster from a YAML/JSON scenario file, or from an already parsed mapping."""
    if isinstance(source, dict):
        return cluster_from_dict(source)
    path = Path(source)
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yml", ".yaml"):
        import yaml  # only scenario files need PyYAML

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    try:
        return cluster_from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------


def default_storages(node_names: list[str]) -> list[Storage]:
    """The storages of the demo's story: local, local-lvm, HDD-Storage, ssd-pool, nfs-backup."""
    return [
        Storage("local", "dir", "iso,vztmpl,backup", total=100 * GiB, used=22 * GiB),
        Storage("local-lvm", "lvmthin", "images,rootdir", total=800 * GiB, used=310 * GiB),
        Storage("HDD-Storage", "lvm", "images", nodes=list(node_names[:2]), total=4 * TiB, used=1200 * GiB),
        Storage("ssd-pool", "zfspool", "images,rootdir", total=2 * TiB, used=650 * GiB),
        Storage("nfs-backup", "nfs", "backup", shared=True, total=10 * TiB, used=3 * TiB),
    ]


def planned_ip(index: int) -> str:
    """A distinct 10.x.y.z address for the index-th guest (hosts .10-.249 of /24 blocks)."""
    block, host = divmod(index, 240)
    return f"10.{100 + block // 256}.{block % 256}.{host + 10}"


def generate_cluster(
    nodes: int = 3,
    guests: int = 10,
    seed: int = 0,
    *,
    lxc_ratio: float = 0.2,
    running_ratio: float = 0.8,
    agent_ratio: float = 0.7,
    templates: int = 1,
    duplicate_names: int = 0,
    offline_nodes: int = 0,
    tags: tuple | list = DEFAULT_TAGS,
    pools: tuple | list = DEFAULT_POOLS,
    name_prefix: str = "vm",
    cluster_name: str = "generated",
) -> Cluster:
    """A cluster of `nodes` nodes and `guests` guests in all (templates included), deterministic from `seed`.

    Regular guests are named ``{name_prefix}-00001``...; `duplicate_names` of the last
    ones reuse the names of the first ones; the last `offline_nodes` nodes are offline.
    """
    if nodes < 1 or guests < 0 or not 0 <= templates <= guests:
        raise ValueError("need nodes >= 1 and 0 <= templates <= guests")
    regular = guests - templates
    if duplicate_names * 2 > regular or offline_nodes > nodes:
        raise ValueError("too many duplicate names or offline nodes for this size")
    rng = random.Random(seed)
    node_list = [
        Node(f"pve{i}", "offline" if i > nodes - offline_nodes else "online",
             maxcpu=rng.choice((16, 32, 64)), maxmem=rng.choice((64, 128, 256)) * GiB,
             ip=f"192.0.2.{10 + i}")
        for i in range(1, nodes + 1)
    ]
    names = [n.node for n in node_list]
    pool_choices = list(pools) + [None]
    guest_list = []
    for i in range(1, regular + 1):
        kind = "lxc" if rng.random() < lxc_ratio else "qemu"
        running = rng.random() < running_ratio
        agent = kind == "qemu" and rng.random() < agent_ratio
        guest_list.append(Guest(
            vmid=99 + i, name=f"{name_prefix}-{i:05d}", type=kind, node=rng.choice(names),
            status="running" if running else "stopped", agent=agent,
            tags=sorted(rng.sample(list(tags), rng.randint(0, min(2, len(tags))))),
            pool=rng.choice(pool_choices),
            ips=[planned_ip(i)] if running and (agent or kind == "lxc") else [],
            maxcpu=rng.choice((1, 2, 4, 8)), maxmem=rng.choice((1, 2, 4, 8, 16)) * GiB,
            maxdisk=rng.choice((8, 16, 32, 64, 128)) * GiB,
        ))
    for j in range(duplicate_names):
        guest_list[regular - 1 - j].name = guest_list[j].name
    first_template = max(9000, 100 + regular)
    for j in range(templates):
        guest_list.append(Guest(
            vmid=first_template + j, name=f"{name_prefix}-tpl-{j + 1:02d}", node=names[0],
            template=True, agent=True, tags=["template"], maxdisk=16 * GiB,
        ))
    return Cluster(
        cluster_name=cluster_name, nodes=node_list, guests=guest_list,
        storages=default_storages(names), pools=[Pool(p, f"{p} servers") for p in pools],
    )


def _atomic_write(path: str | os.PathLike, text: str, mode: int = 0o644) -> None:
    """Write then rename, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _declaration(name: str, role: str, cpu: int, memory_mb: int, disk_gb: int, datastore: str,
                 ip: str | None, template_vmid: int) -> dict:
    device: dict = {"bridge": "vmbr0"}
    if ip:
        addr, prefix = _split_ip(ip)
        net = ipaddress.ip_network(f"{addr}/{prefix}", strict=False)
        device.update(ip_address=addr, subnet=prefix, gateway=str(net.network_address + 1))
    return {
        "name": name, "role": role, "cpu": cpu, "memory": memory_mb,
        "disks": [{"size": disk_gb, "interface": "scsi0", "datastore_id": datastore,
                   "disk_type": "ssd" if datastore in ("local-lvm", "ssd-pool") else "hdd",
                   "file_format": "raw"}],
        "network_devices": [device],
        "template_vm_id": template_vmid,
    }


def write_tfvars(cluster: Cluster, path: str | os.PathLike | None, *, declared_ratio: float = 0.9,
                 with_ips: bool = True, extra_declared_only: int = 0, seed: int = 0) -> dict:
    """Write (atomically) and return a terraform.tfvars.json declaring part of `cluster`.

    A seeded `declared_ratio` share of the non-template guest names is declared (one
    entry per name: the map key equals the name), plus `extra_declared_only` servers
    that are not in Proxmox (``planned-001``...). Roles cycle through ROLES.
    """
    rng = random.Random(seed)
    by_name: dict[str, Guest] = {}
    for g in sorted(cluster.guests, key=lambda g: g.vmid):
        if not g.template:
            by_name.setdefault(g.name, g)
    names = list(by_name)
    chosen = set(rng.sample(names, round(len(names) * declared_ratio)))
    template_vmid = next((g.vmid for g in sorted(cluster.guests, key=lambda g: g.vmid) if g.template), 9000)
    servers = {}
    for i, name in enumerate(n for n in names if n in chosen):
        g = by_name[name]
        ip = (g.ips[0] if g.ips else planned_ip(g.vmid - 99)) if with_ips else None
        servers[name] = _declaration(name, ROLES[i % len(ROLES)], g.maxcpu, g.maxmem // MiB,
                                     max(1, g.maxdisk // GiB), g.storage, ip, template_vmid)
    for j in range(1, extra_declared_only + 1):
        name = f"planned-{j:03d}"
        ip = planned_ip(200000 + j) if with_ips else None
        servers[name] = _declaration(name, ROLES[j % len(ROLES)], 2, 2048, 20, "local-lvm", ip, template_vmid)
    tfvars = {"servers": servers}
    if path is not None:
        _atomic_write(path, json.dumps(tfvars, indent=2) + "\n")
    return tfvars


# --------------------------------------------------------------------------
# Rendering in PVE's shapes
# --------------------------------------------------------------------------


def _split_ip(ip: str) -> tuple[str, int]:
    addr, _sep, prefix = ip.partition("/")
    return addr, int(prefix) if prefix else 24


def _mac(vmid: int) -> str:
    return f"BC:24:11:{(vmid >> 16) & 255:02X}:{(vmid >> 8) & 255:02X}:{vmid & 255:02X}"


def _link_local(mac: str) -> str:
    b = [int(x, 16) for x in mac.split(":")]
    b[0] ^= 2  # EUI-64: flip the universal/local bit
    eui = bytes([0xFE, 0x80, 0, 0, 0, 0, 0, 0, b[0], b[1], b[2], 0xFF, 0xFE, b[3], b[4], b[5]])
    return str(ipaddress.IPv6Address(eui))


def _size_str(size: int) -> str:
    return f"{size // GiB}G" if size % GiB == 0 else f"{size // MiB}M"


def _per_node(value: Any, node: str) -> int:
    return int(value.get(node, 0)) if isinstance(value, dict) else int(value)


def _bool(value: Any) -> int:
    return 1 if value else 0


@dataclass
class _Stats:
    cpu: float
    mem: int
    disk: int
    uptime: int
    netin: int
    netout: int
    diskread: int
    diskwrite: int
    pid: int


def _guest_stats(g: Guest) -> _Stats:
    """Runtime figures, stable for a vmid so answers are reproducible; zero when stopped."""
    if g.status != "running":
        return _Stats(0, 0, 0, 0, 0, 0, 0, 0, 0)
    rng = random.Random(g.vmid)
    return _Stats(
        cpu=g.cpu if g.cpu is not None else round(rng.uniform(0.001, 0.35), 4),
        mem=g.mem if g.mem is not None else int(g.maxmem * rng.uniform(0.2, 0.8)),
        disk=g.disk if g.disk is not None else (int(g.maxdisk * rng.uniform(0.1, 0.6)) if g.type == "lxc" else 0),
        uptime=g.uptime if g.uptime is not None else rng.randint(3600, 90 * 86400),
        netin=rng.randint(10**6, 10**11), netout=rng.randint(10**6, 10**11),
        diskread=rng.randint(10**7, 10**11), diskwrite=rng.randint(10**7, 10**11),
        pid=rng.randint(1000, 4_000_000),
    )


def _ssl_fingerprint(name: str) -> str:
    digest = hashlib.sha256(f"pve-double:{name}".encode()).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, 64, 2))


def _digest(conf: dict) -> str:
    return hashlib.sha1(json.dumps(conf, sort_keys=True).encode()).hexdigest()


def _gateway(addr: str, prefix: int) -> str:
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address + 1)


_STORAGE_DEFAULTS = {
    "dir": lambda s: {"path": "/var/lib/vz" if s.storage == "local" else f"/mnt/{s.storage}"},
    "lvmthin": lambda s: {"vgname": "pve", "thinpool": "data"},
    "lvm": lambda s: {"vgname": f"vg-{s.storage.lower()}", "saferemove": 0},
    "zfspool": lambda s: {"pool": f"{s.storage}/data", "sparse": 1},
    "nfs": lambda s: {"server": "192.0.2.200", "export": f"/export/{s.storage}",
                      "path": f"/mnt/pve/{s.storage}", "options": "vers=4.2"},
}

_FORMATS = {
    "dir": ("qcow2", ["raw", "qcow2", "vmdk", "subvol"]),
    "nfs": ("qcow2", ["raw", "qcow2", "vmdk"]),
    "zfspool": ("raw", ["raw", "subvol"]),
}


_STORAGE_LIST_PRIVS = ("Datastore.Audit", "Datastore.AllocateSpace")
# What a node entry keeps for who lacks Sys.Audit on it (PVE::API2Tools::extract_node_stats, $exclude_stats)
_NODE_PUBLIC = ("id", "type", "node", "status", "level", "ssl_fingerprint")


def _without_stats(item: dict) -> dict:
    return {k: v for k, v in item.items() if k in _NODE_PUBLIC}


class ClusterView:
    """Indexes and renderers over one generation of a Cluster.

    Answers that depend only on the view may be cached in ``self.cache``
    by the server; the view is discarded as soon as the model changes.
    """

    def __init__(self, cluster: Cluster, generation: int):
        self.generation = generation
        self.cache: dict = {}
        self.cluster_name = cluster.cluster_name
        self.nodes = {n.node: n for n in cluster.nodes}
        self.guests = {g.vmid: g for g in sorted(cluster.guests, key=lambda g: g.vmid)}
        self.storages = {s.storage: s for s in cluster.storages}
        # poolid -> comment; plain values, since building a model object here would bump the generation
        pools = {p.poolid: p.comment for p in cluster.pools}
        for g in self.guests.values():  # a pool a guest names exists, as in PVE
            if g.pool:
                pools.setdefault(g.pool, None)
        self.pools = dict(sorted(pools.items()))
        self._stats: dict[int, _Stats] = {}
        self._guest_resources: list | None = None
        self.pve_major = cluster.pve_major
        self.access_config = AccessConfig(cluster, self.guests)
        self._access: dict = {}

    # -- access ------------------------------------------------------------------
    def access(self, identity: str | None) -> Access:
        """What `identity` may see and do in this generation (None: the double itself, everything)."""
        access = self._access.get(identity)
        if access is None:
            access = self._access[identity] = Access(self.access_config, identity)
        return access

    def agent_privileges(self) -> tuple:
        """(privileges, any_of) the guest agent's network-get-interfaces checks on /vms/{vmid}."""
        return AGENT_PRIVILEGES[self.pve_major]

    # -- lookups ---------------------------------------------------------------
    def online(self, node: str) -> bool:
        n = self.nodes.get(node)
        return n is not None and n.status == "online"

    def check_node(self, node: str) -> Node:
        """PVE proxies node calls to the node: unknown names fail the lookup, offline nodes give 595."""
        n = self.nodes.get(node)
        if n is None:
            raise PveError(500, f"hostname lookup '{node}' failed - failed to get address info for: "
                                f"{node}: Name or service not known")
        if n.status != "online":
            raise PveError(595, "Connection timed out")
        return n

    def guest_on(self, node: str, vmid: int, kind: str) -> Guest:
        g = self.guests.get(vmid)
        if g is None or g.node != node or g.type != kind:
            conf = "qemu-server" if kind == "qemu" else "lxc"
            raise PveError(500, f"Configuration file 'nodes/{node}/{conf}/{vmid}.conf' does not exist")
        return g

    def storage_on(self, node: str, storage: str) -> Storage:
        s = self.storages.get(storage)
        if s is None:
            raise PveError(500, f"storage '{storage}' does not exist")
        if not self._storage_on_node(s, node):
            raise PveError(500, f"storage '{storage}' is not available on node '{node}'")
        return s

    def stats(self, g: Guest) -> _Stats:
        stats = self._stats.get(g.vmid)
        if stats is None:
            stats = self._stats[g.vmid] = _guest_stats(g)
        return stats

    def _storage_on_node(self, s: Storage, node: str) -> bool:
        return node in self.nodes and (s.nodes is None or node in s.nodes)

    def _storage_nodes(self, s: Storage) -> list[str]:
        return [n for n in self.nodes if self._storage_on_node(s, n)]

    # -- /version, /nodes, /cluster/status ----------------------------------------
    def version(self) -> dict:
        return dict(PVE8_VERSION if self.pve_major == 8 else PVE_VERSION)

    def node_list(self, access: Access | None = None) -> list:
        """GET /nodes: every node; its figures only for who has Sys.Audit on /nodes/{node} (extract_node_stats)."""
        out = []
        for name, n in self.nodes.items():
            # PVE's node index carries id and type too (extract_node_stats); community.proxmox reads type
            item = {"id": f"node/{name}", "type": "node", "node": name, "status": n.status,
                    "ssl_fingerprint": _ssl_fingerprint(name)}
            if n.status == "online":
                rng = random.Random(name)
                item.update(level="", maxcpu=n.maxcpu, maxmem=n.maxmem,
                            cpu=n.cpu if n.cpu is not None else round(rng.uniform(0.01, 0.4), 4),
                            mem=n.mem if n.mem is not None else int(n.maxmem * rng.uniform(0.2, 0.7)),
                            uptime=n.uptime if n.uptime is not None else rng.randint(86400, 200 * 86400))
            out.append(item)
        if access is not None and not access.unrestricted:
            out = [item if access.has(f"/nodes/{item['node']}", "Sys.Audit") else _without_stats(item)
                   for item in out]
        return out

    def _node_ip(self, index: int, n: Node) -> str:
        return n.ip or f"192.0.2.{11 + index}"

    def cluster_status(self) -> list:
        online = [name for name, n in self.nodes.items() if n.status == "online"]
        local = online[0] if online else None
        out = [{"type": "cluster", "id": "cluster", "name": self.cluster_name, "nodes": len(self.nodes),
                "quorate": _bool(len(online) * 2 > len(self.nodes)), "version": len(self.nodes) + 2}]
        for i, (name, n) in enumerate(self.nodes.items()):
            out.append({"type": "node", "id": f"node/{name}", "name": name, "nodeid": i + 1,
                        "ip": self._node_ip(i, n), "online": _bool(n.status == "online"),
                        "local": _bool(name == local), "level": ""})
        return out

    def node_network(self, node: str) -> list:
        i = list(self.nodes).index(node)
        ip = self._node_ip(i, self.nodes[node])
        return [
            {"iface": "eno1", "type": "eth", "active": 1, "autostart": 1, "method": "manual",
             "families": ["inet"], "priority": 3, "exists": 1},
            {"iface": "vmbr0", "type": "bridge", "active": 1, "autostart": 1, "method": "static",
             "families": ["inet"], "priority": 5, "address": ip, "netmask": "24", "cidr": f"{ip}/24",
             "gateway": _gateway(ip, 24), "bridge_ports": "eno1", "bridge_stp": "off", "bridge_fd": "0"},
        ]

    # -- /cluster/resources -------------------------------------------------------
    def guest_resource(self, g: Guest) -> dict:
        item = {"id": f"{g.type}/{g.vmid}", "type": g.type, "vmid": g.vmid, "name": g.name, "node": g.node,
                "template": _bool(g.template), "maxcpu": g.maxcpu, "maxmem": g.maxmem, "maxdisk": g.maxdisk}
        if self.online(g.node):
            s = self.stats(g)
            item.update(status=g.status, cpu=s.cpu, mem=s.mem, disk=s.disk, uptime=s.uptime, netin=s.netin,
                        netout=s.netout, diskread=s.diskread, diskwrite=s.diskwrite)
        else:  # PVE keeps listing guests of a node it cannot reach, with no live figures
            item["status"] = "unknown"
        if g.tags:
            item["tags"] = ";".join(g.tags)
        if g.pool:
            item["pool"] = g.pool
        if g.lock:
            item["lock"] = g.lock
        return item

    def _guest_resource_list(self) -> list:
        if self._guest_resources is None:
            self._guest_resources = [self.guest_resource(g) for g in self.guests.values()]
        return self._guest_resources

    def _node_resources(self) -> list:
        out = []
        for item in self.node_list():
            res = {"id": f"node/{item['node']}", "type": "node", "node": item["node"], "status": item["status"]}
            if item["status"] == "online":
                n = self.nodes[item["node"]]
                res.update(level="", cpu=item["cpu"], maxcpu=item["maxcpu"], mem=item["mem"],
                           maxmem=item["maxmem"], uptime=item["uptime"], disk=n.maxdisk // 4,
                           maxdisk=n.maxdisk, **{"cgroup-mode": 2})
            out.append(res)
        return out

    def _storage_resources(self) -> list:
        out = []
        for s in self.storages.values():
            for node in self._storage_nodes(s):
                res = {"id": f"storage/{node}/{s.storage}", "type": "storage", "storage": s.storage,
                       "node": node, "plugintype": s.type, "content": s.content, "shared": _bool(s.shared)}
                if s.enabled and self.online(node):
                    res.update(status="available", disk=_per_node(s.used, node), maxdisk=_per_node(s.total, node))
                else:
                    res["status"] = "unknown"
                out.append(res)
        return out

    def _sdn_resources(self) -> list:
        return [{"id": f"sdn/{node}/localnetwork", "type": "sdn", "sdn": "localnetwork", "node": node,
                 "status": "ok"} for node in self.nodes if self.online(node)]

    def resources(self, kind: str | None = None, access: Access | None = None) -> list:
        """GET /cluster/resources: only what `access` may audit (VM.Audit on /vms/{vmid}, Datastore.Audit on
        /storage/{storage}, Pool.Audit on /pool/{pool}, SDN.Audit on /sdn/zones/{zone}); nodes are all
        listed, their figures only with Sys.Audit on /nodes/{node}. Nothing is refused: what may not be
        seen is left out."""
        if kind == "vm":
            return self._filtered(self._guest_resource_list(), access)
        if kind == "node":
            return self._filtered(self._node_resources(), access)
        if kind == "storage":
            return self._filtered(self._storage_resources(), access)
        if kind == "sdn":
            return self._filtered(self._sdn_resources(), access)
        pools = [{"id": f"/pool/{p}", "type": "pool", "pool": p} for p in self.pools]
        return self._filtered(self._guest_resource_list() + self._node_resources() + self._storage_resources()
                              + pools + self._sdn_resources(), access)

    @staticmethod
    def _filtered(items: list, access: Access | None) -> list:
        if access is None or access.unrestricted:
            return items
        out = []
        for item in items:
            kind = item["type"]
            if kind in ("qemu", "lxc"):
                if access.has(f"/vms/{item['vmid']}", "VM.Audit"):
                    out.append(item)
            elif kind == "node":
                out.append(item if access.has(f"/nodes/{item['node']}", "Sys.Audit") else _without_stats(item))
            elif kind == "storage":
                if access.has(f"/storage/{item['storage']}", "Datastore.Audit"):
                    out.append(item)
            elif kind == "pool":
                if access.has(f"/pool/{item['pool']}", "Pool.Audit"):
                    out.append(item)
            elif kind == "sdn":
                if access.has(f"/sdn/zones/{item['sdn']}", "SDN.Audit"):
                    out.append(item)
        return out

    # -- /pools --------------------------------------------------------------------
    def _pool_item(self, poolid: str) -> dict:
        if poolid not in self.pools:
            raise PveError(500, f"pool '{poolid}' does not exist")
        comment = self.pools[poolid]
        return {"poolid": poolid, "comment": comment} if comment else {"poolid": poolid}

    def _members(self, poolid: str, kind: str | None) -> list:
        return [r for r in self._guest_resource_list()
                if r.get("pool") == poolid and (kind is None or r["type"] == kind)]

    def pool_list(self, poolid: str | None = None, kind: str | None = None, access: Access | None = None) -> list:
        """GET /pools: the pools `access` has Pool.Audit on (or that one pool, with its members)."""
        def visible(p):
            return access is None or access.has(f"/pool/{p}", "Pool.Audit")

        if poolid is None:
            return [self._pool_item(p) for p in self.pools if visible(p)]
        item = self._pool_item(poolid)
        return [dict(item, members=self._members(poolid, kind))] if visible(poolid) else []

    def pool_get(self, poolid: str, kind: str | None = None) -> dict:
        """The deprecated GET /pools/{poolid} that older clients still call."""
        item = self._pool_item(poolid)
        del item["poolid"]
        return dict(item, members=self._members(poolid, kind))

    # -- /storage ------------------------------------------------------------------
    def storage_config(self, s: Storage) -> dict:
        conf = {"storage": s.storage, "type": s.type, "content": s.content}
        conf.update(_STORAGE_DEFAULTS.get(s.type, lambda _s: {})(s))
        if s.shared and s.type not in ("nfs", "cifs", "cephfs", "rbd", "pbs"):
            conf["shared"] = 1  # network storages are shared by nature and do not say so
        if s.nodes is not None:
            conf["nodes"] = ",".join(s.nodes)
        if not s.enabled:
            conf["disable"] = 1
        if "backup" in s.content.split(","):
            conf["prune-backups"] = "keep-all=1"
        conf.update(s.options)
        conf["digest"] = _digest(conf)
        return conf

    def storage_list(self, kind: str | None = None, access: Access | None = None) -> list:
        """GET /storage: the storages `access` has Datastore.Audit or Datastore.AllocateSpace on."""
        return [self.storage_config(s) for s in self.storages.values() if (kind is None or s.type == kind)
                and (access is None or access.has(f"/storage/{s.storage}", *_STORAGE_LIST_PRIVS, any_of=True))]

    def storage_get(self, storage: str) -> dict:
        s = self.storages.get(storage)
        if s is None:
            raise PveError(500, f"storage '{storage}' does not exist")
        return self.storage_config(s)

    def storage_status(self, s: Storage, node: str) -> dict:
        out = {"type": s.type, "content": s.content, "shared": _bool(s.shared),
               "enabled": _bool(s.enabled), "active": _bool(s.enabled)}
        if s.enabled:
            total, used = _per_node(s.total, node), _per_node(s.used, node)
            out.update(total=total, used=used, avail=max(0, total - used))
        return out

    def node_storage(self, node: str, content: str | None = None, enabled: bool = False,
                     storage: str | None = None, with_format: bool = False, access: Access | None = None) -> list:
        """GET /nodes/{node}/storage: the storages `access` has Datastore.Audit or Datastore.AllocateSpace on."""
        wanted = set(_list(content))
        out = []
        for s in self.storages.values():
            if not self._storage_on_node(s, node) or (storage and s.storage != storage):
                continue
            if access is not None and not access.has(f"/storage/{s.storage}", *_STORAGE_LIST_PRIVS, any_of=True):
                continue
            if wanted and not wanted & set(s.content.split(",")):
                continue
            if enabled and not s.enabled:
                continue
            item = {"storage": s.storage, **self.storage_status(s, node)}
            if s.enabled and item["total"]:
                item["used_fraction"] = round(item["used"] / item["total"], 6)
            if with_format:
                default, supported = _FORMATS.get(s.type, ("raw", ["raw"]))
                item["formats"] = {"default": default, "supported": supported}
            out.append(item)
        return out

    # -- per node guest lists ----------------------------------------------------
    def node_guests(self, node: str, kind: str, access: Access | None = None) -> list:
        """GET /nodes/{node}/{qemu,lxc}: the guests `access` has VM.Audit on."""
        out = []
        for g in self.guests.values():
            if g.node != node or g.type != kind:
                continue
            if access is not None and not access.has(f"/vms/{g.vmid}", "VM.Audit"):
                continue
            s = self.stats(g)
            item = {"vmid": g.vmid, "name": g.name, "status": g.status, "cpus": g.maxcpu, "cpu": s.cpu,
                    "maxmem": g.maxmem, "mem": s.mem, "maxdisk": g.maxdisk, "uptime": s.uptime,
                    "netin": s.netin, "netout": s.netout, "diskread": s.diskread, "diskwrite": s.diskwrite}
            if kind == "lxc":
                item.update(disk=s.disk, maxswap=512 * MiB)
            elif g.status == "running":
                item["pid"] = s.pid
            if g.tags:
                item["tags"] = ";".join(g.tags)
            if g.template:  # PVE only says so when it is one
                item["template"] = 1
            if g.lock:
                item["lock"] = g.lock
            out.append(item)
        return out

    # -- guest config and status -------------------------------------------------
    def _net(self, g: Guest) -> tuple[str | None, int | None, str | None]:
        if not g.ips:
            return None, None, None
        addr, prefix = _split_ip(g.ips[0])
        return addr, prefix, _gateway(addr, prefix)

    def qemu_config(self, g: Guest) -> dict:
        mac = _mac(g.vmid)
        conf: dict = {
            "name": g.name, "memory": str(g.maxmem // MiB), "cores": g.maxcpu, "sockets": 1,
            "cpu": "x86-64-v2-AES", "ostype": g.ostype or "l26", "scsihw": "virtio-scsi-single",
            "boot": "order=scsi0;net0", "numa": 0, "onboot": _bool(g.status == "running"),
            "scsi0": f"{g.storage}:vm-{g.vmid}-disk-0,iothread=1,size={_size_str(g.maxdisk)}",
            "net0": f"virtio={mac},bridge=vmbr0,firewall=1",
            "smbios1": f"uuid={uuid.uuid5(uuid.NAMESPACE_OID, f'pve-double-{g.vmid}')}",
            "vmgenid": str(uuid.uuid5(uuid.NAMESPACE_URL, f'pve-double-{g.vmid}')),
            "meta": "creation-qemu=9.0.2,ctime=1735689600",
        }
        if g.agent:
            conf["agent"] = "1"
        addr, prefix, gw = self._net(g)
        if addr:  # a cloud-init VM carries its static address in the config
            conf["ide2"] = f"{g.storage}:vm-{g.vmid}-cloudinit,media=cdrom"
            conf["ipconfig0"] = f"ip={addr}/{prefix},gw={gw}"
        self._common_config(g, conf)
        return conf

    def lxc_config(self, g: Guest) -> dict:
        addr, prefix, gw = self._net(g)
        net = ["name=eth0", "bridge=vmbr0", "firewall=1"] + ([f"gw={gw}"] if addr else []) + [
            f"hwaddr={_mac(g.vmid)}", f"ip={addr}/{prefix}" if addr else "ip=dhcp", "type=veth"]
        conf: dict = {
            "hostname": g.name, "arch": "amd64", "cores": g.maxcpu, "memory": g.maxmem // MiB, "swap": 512,
            "ostype": g.ostype or "debian", "unprivileged": 1, "features": "nesting=1",
            "onboot": _bool(g.status == "running"),
            "rootfs": f"{g.storage}:vm-{g.vmid}-disk-0,size={_size_str(g.maxdisk)}",
            "net0": ",".join(net),
        }
        self._common_config(g, conf)
        return conf

    @staticmethod
    def _common_config(g: Guest, conf: dict) -> None:
        if g.tags:
            conf["tags"] = ";".join(g.tags)
        if g.template:
            conf["template"] = 1
        if g.description:
            conf["description"] = g.description
        if g.lock:
            conf["lock"] = g.lock
        conf["digest"] = _digest(conf)

    def qemu_status(self, g: Guest) -> dict:
        s = self.stats(g)
        out = {"vmid": g.vmid, "name": g.name, "status": g.status, "qmpstatus": g.status,
               "cpus": g.maxcpu, "cpu": s.cpu, "maxmem": g.maxmem, "mem": s.mem, "maxdisk": g.maxdisk,
               "uptime": s.uptime, "netin": s.netin, "netout": s.netout, "diskread": s.diskread,
               "diskwrite": s.diskwrite, "ha": {"managed": 0}}
        if g.status == "running":
            out.update(pid=s.pid, **{"running-machine": "pc-i440fx-9.0+pve0", "running-qemu": "9.0.2"})
        if g.agent:
            out["agent"] = 1
        if g.tags:
            out["tags"] = ";".join(g.tags)
        if g.template:
            out["template"] = 1
        if g.lock:
            out["lock"] = g.lock
        return out

    def snapshots(self, g: Guest) -> list:
        item = {"name": "current", "description": "You are here!", "digest": _digest({"vmid": g.vmid})}
        if g.type == "qemu":
            item["running"] = _bool(g.status == "running")
        return [item]

    @staticmethod
    def _addresses(ips: list, mac: str) -> list:
        out = []
        for ip in ips:
            addr, prefix = _split_ip(ip)
            family = "ipv6" if ":" in addr else "ipv4"
            out.append({"ip-address": addr, "ip-address-type": family, "prefix": prefix})
        out.append({"ip-address": _link_local(mac), "ip-address-type": "ipv6", "prefix": 64})
        return out

    def agent_interfaces(self, g: Guest) -> dict:
        if g.status != "running" or not g.agent or not g.agent_running:
            raise PveError(500, "QEMU guest agent is not running")
        mac = _mac(g.vmid).lower()
        lo = {"name": "lo", "hardware-address": "00:00:00:00:00:00",
              "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                               {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128}],
              "statistics": {"rx-bytes": 0, "rx-dropped": 0, "rx-errs": 0, "rx-packets": 0,
                             "tx-bytes": 0, "tx-dropped": 0, "tx-errs": 0, "tx-packets": 0}}
        s = self.stats(g)
        eth = {"name": "eth0", "hardware-address": mac, "ip-addresses": self._addresses(g.ips, mac),
               "statistics": {"rx-bytes": s.netin, "rx-dropped": 0, "rx-errs": 0, "rx-packets": s.netin // 1200,
                              "tx-bytes": s.netout, "tx-dropped": 0, "tx-errs": 0,
                              "tx-packets": s.netout // 1200}}
        return {"result": [lo, eth]}

    def lxc_interfaces(self, g: Guest) -> list:
        if g.status != "running":
            raise PveError(500, f"CT {g.vmid} not running")
        mac = _mac(g.vmid)
        lo = {"name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00",
              "inet": "127.0.0.1/8", "inet6": "::1/128",
              "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "inet", "prefix": 8},
                               {"ip-address": "::1", "ip-address-type": "inet6", "prefix": 128}]}
        addresses = [dict(a, **{"ip-address-type": "inet6" if a["ip-address-type"] == "ipv6" else "inet"})
                     for a in self._addresses(g.ips, mac.lower())]
        eth = {"name": "eth0", "hwaddr": mac.lower(), "hardware-address": mac.lower(),
               "inet6": f"{_link_local(mac.lower())}/64", "ip-addresses": addresses}
        v4 = [a for a in addresses if a["ip-address-type"] == "inet"]
        if v4:
            eth["inet"] = f"{v4[0]['ip-address']}/{v4[0]['prefix']}"
        return [lo, eth]
