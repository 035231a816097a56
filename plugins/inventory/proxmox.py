# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: proxmox
short_description: Proxmox VE guests merged with the servers declared in Terraform tfvars
version_added: 0.1.0
description:
  - Lists every server of the merged view, the same view every module of this collection validates against
    live guests from one C(/cluster/resources?type=vm) call, merged by name with C(terraform/terraform.tfvars.json).
  - Lists one cluster, or with O(clusters) several, asked concurrently, each merged with its own tfvars file. Every
    host carries its cluster's name in C(pve_cluster) and sits in the group C(cluster_<name>). A guest name used in
    more than one cluster gives one host per cluster, C(<name>.<cluster>), with a warning.
  - Each host says where it comes from in C(pve_source), V(live+declared), V(live) (undeclared),
    V(declared) (not created yet, or destroyed), or V(recorded) when served from the recorded view (see below).
  - Groups hosts by applied role (C(role_<role>)), node, status, guest type, tag and pool, and by source
    (C(declared_only), C(undeclared)). Group names are sanitised as Ansible sanitises group names.
  - Two live guests sharing a name become two hosts, C(<name>-<vmid>), with a warning; never one host.
  - Templates are not servers unless O(include_templates=true); then each template is a host with
    C(pve_template=true), in the group C(template).
  - IPs are asked of the guest agent (qemu) or the interfaces call (lxc) only for running guests that declare
    no IP, concurrently, at most O(max_workers) at a time.
  - Each live build that changed is recorded as the cluster's recorded view, named by the cluster's O(api_host) and
    O(api_port), into an existing state DB; the modules create and upgrade it, the inventory never does. When a
    cluster's Proxmox cannot be reached, times out, answers with a 5xx or a malformed answer, the recorded view of
    that cluster is served with a loud warning that names it and says which (see O(offline_fallback)); the other
    clusters stay live. Refused credentials or privileges of any cluster always fail the parse.
  - Uses a configuration file whose name ends in C(proxmox.yml) or C(proxmox.yaml). A string option written in that
    file may be a template, for example a lookup of an environment variable (see the examples), and so may a string
    written in an entry of O(clusters); a value taken from the environment never is.
  - Relative paths (O(tfvars_path), O(state_db)) are the config repo's, see O(project_dir).
requirements:
  - proxmoxer >= 2.3
  - requests
  - jsonschema
  - SQLAlchemy >= 2.0 (only to create or upgrade the state DB, or for a state DB that is not SQLite)
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
  - proxmox_manager.core.connection.plugins
  - proxmox_manager.core.state.plugins
options:
  plugin:
    description: The name of this plugin; it makes the file an inventory source of this plugin.
    type: str
    required: true
    choices: ['proxmox_manager.core.proxmox']
  include_templates:
    description:
      - List templates as hosts too, each with C(pve_template=true) and in the group C(template), so a play can
        leave them out with the host pattern C(all:!template).
      - Templates are never servers of the merged view, so M(proxmox_manager.core.server_role) still refuses to give
        one a role, saying it is a template.
    type: bool
    default: false
  want_agent_ips:
    description:
      - Ask running guests that declare no IP in tfvars for their addresses (guest agent for qemu,
        the interfaces call for lxc), to set C(pve_ips) and C(ansible_host).
    type: bool
    default: true
  want_declared:
    description:
      - Set C(pve_declared), the cpu, memory, disks and network devices the tfvars declare, on each host.
      - Off by default, since it is most of the data a host carries and Ansible's time to take hosts in grows
        with it. A play that needs a server's declaration can read the tfvars file instead, for example
        C((lookup('ansible.builtin.file', 'terraform/terraform.tfvars.json') | from_json).servers[inventory_hostname]).
        C(pve_declared_role) and C(ansible_host) from a declared IP are set either way.
    type: bool
    default: false
  ansible_host_networks:
    description:
      - Networks (CIDR) whose addresses C(ansible_host) prefers among those a guest reports, in the order the guest
        reports them, for example V(10.0.0.0/8). A declared IP still comes first; a guest with no address in these
        networks keeps its first reported address.
    type: list
    elements: str
    default: []
  max_workers:
    description:
      - How many IP lookups run at once.
      - Each guest agent call holds one C(pvedaemon) worker of the guest's node (3 per node by default)
        while it runs; lookups beyond that queue on the node, so more workers than three per node gain nothing.
    type: int
    default: 16
  offline_fallback:
    description:
      - When Proxmox cannot be reached, times out, answers with a 5xx or a malformed answer, serve the recorded
        view of the cluster from the state DB (hosts get C(pve_source=recorded)) with a warning naming the outage.
        A refused login or privilege (401, 403) always fails.
      - When false, or when O(strict=true), that is an error instead.
    type: bool
    default: true
  clusters:
    description:
      - The clusters to list, each by its name, mapped to its options. Without it, one cluster, named by O(cluster)
        (else by Proxmox, C(GET /cluster/status)); with it, O(cluster) is not used.
      - A name is 1 to 63 letters, digits, V(_) or V(-), starting with a letter; two names that differ only in case,
        V(_) or V(-) are refused, since they would share the same environment variables.
      - An entry takes C(api_host), C(api_port), C(api_user), C(api_token_id), C(api_token_secret), C(api_password),
        C(validate_certs), C(ca_path) and C(tfvars_path); O(api_timeout) and O(api_retries) are shared.
      - For each of them, in this order, the cluster's entry; the environment variable C(PROXMOX_<NAME>_<OPTION>);
        the top level of this file; the unprefixed environment variable (E(PROXMOX_HOST), E(PROXMOX_TOKEN_SECRET),
        ...). C(<NAME>) is the cluster's name in upper case with V(-) as V(_), and C(<OPTION>) is C(HOST), C(PORT),
        C(USER), C(TOKEN_ID), C(TOKEN_SECRET), C(PASSWORD), C(VALIDATE_CERTS), C(CA_PATH) or C(TFVARS); for example
        E(PROXMOX_PROD_TOKEN_SECRET), so that git holds no secret.
      - C(tfvars_path) is each cluster's own (the entry's, else C(PROXMOX_<NAME>_TFVARS)), never the top level's;
        without one, a cluster reads C(terraform/<name>/terraform.tfvars.json) of the config repo, which must exist.
        Two clusters reading one tfvars file are refused.
      - The modules of this collection read the same mapping from this file (their C(inventory_file) option), so a
        cluster means the same connection to the inventory and to the playbooks.
      - A mapping is expected; anything else is refused with one error naming the option.
    type: raw
notes:
  - Host variables, all prefixed C(pve_), C(pve_cluster), C(pve_vmid), C(pve_node), C(pve_type), C(pve_status),
    C(pve_tags) (list), C(pve_pool), C(pve_ips) (list), C(pve_source), C(pve_declared_role)
    (the C(role) of the tfvars entry), C(pve_role) (the applied role from the state DB), and with
    O(want_declared=true) C(pve_declared) (the C(cpu), C(memory), C(disks) and C(network_devices) of the tfvars entry).
  - With O(include_templates=true), templates carry C(pve_template=true) and sit in the group C(template); no other
    host sets C(pve_template), so use C(pve_template | default(false)).
  - A variable whose value would be null or an empty list is not set, for example C(pve_vmid) of a server not
    created yet, C(pve_pool) of a guest in no pool, C(pve_tags) of a guest without tags, C(pve_ips) of a guest
    whose IPs are unknown, or C(pve_role) of a server without an applied role; use C(pve_role | default(none))
    and C(pve_tags | default([])).
  - C(pve_name) is set only when the host name differs from the Proxmox name, that is for guests sharing a
    name (C(<name>-<vmid>) in one cluster, C(<name>.<cluster>) across clusters); use
    C(pve_name | default(inventory_hostname)) for the Proxmox name of any host.
    A guest on an offline node keeps the C(unknown) status Proxmox reports, and its last known status in
    C(pve_last_status).
  - A running qemu guest whose agent answered "not running" at the last build is not asked again until it
    restarts (its uptime drops), since turning the agent on takes a restart in Proxmox VE.
    C(ansible_host) is the first declared IP, else the first IPv4 the guest reports (in O(ansible_host_networks)
    when given). Addresses of loopback and of the bridges of containers inside the guest (C(lo), C(docker*),
    C(veth*), C(br-*), C(cni*), C(flannel*), C(weave*), C(virbr*), C(lxcbr*), C(podman*)) are never taken, nor
    link-local ones.
  - A guest whose name no Ansible host pattern can target, such as the C(VM 200) Proxmox gives an unnamed VM, gets
    a host name with each character outside C(A-Z a-z 0-9 _ . -) made C(-) (C(VM-200)); C(pve_name) keeps its name.
  - A hit of the inventory cache (O(cache=true)) makes no API call at all, not even a login. A parse that served a
    cluster from its recorded view fills no cache.
  - The applied roles are read from the state DB by cluster and vmid. A state DB of an older layout (schema v1 or v2)
    shows none, with a warning, until a module that writes to it (for example
    M(proxmox_manager.core.server_sync)) upgrades it.
  - A parse that fails takes back every host and group it added, since Ansible would otherwise keep a half
    inventory. Under C(ansible-playbook --check) nothing is written to the state DB.
'''

EXAMPLES = r'''
# inventory/proxmox.yml -- connection from the PROXMOX_* environment, no secret in git
plugin: proxmox_manager.core.proxmox
tfvars_path: terraform/terraform.tfvars.json
state_db: state/proxmox_manager.db

---
# Token auth spelled out, with a private CA and the inventory cache
plugin: proxmox_manager.core.proxmox
api_host: pve1.example.com
api_user: automation@pve
api_token_id: inventory
api_token_secret: "{{ lookup('ansible.builtin.env', 'PROXMOX_TOKEN_SECRET') }}"
ca_path: /etc/ssl/certs/pve-root-ca.pem
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/proxmox_manager
cache_timeout: 300

---
# Two clusters; each token secret from PROXMOX_PROD_TOKEN_SECRET and PROXMOX_LAB_TOKEN_SECRET (a CI secret each)
plugin: proxmox_manager.core.proxmox
api_user: automation@pve
api_token_id: inventory
clusters:
  prod:
    api_host: pve-prod.example.com
    tfvars_path: terraform/prod/terraform.tfvars.json
  lab:
    api_host: pve-lab.example.com
    ca_path: /etc/ssl/certs/lab-ca.pem
    # tfvars_path: terraform/lab/terraform.tfvars.json, the default

---
# One cluster, named here rather than asked of Proxmox (GET /cluster/status needs Sys.Audit on /)
plugin: proxmox_manager.core.proxmox
cluster: prod

---
# The declared cpu, memory, disks and networks on each host, and no guest agent calls
# (ansible_host then comes from the declared IPs only)
plugin: proxmox_manager.core.proxmox
want_declared: true
want_agent_ips: false

---
# Extra groups and variables with the constructed options (pve_declared needs want_declared)
plugin: proxmox_manager.core.proxmox
want_declared: true
keyed_groups:
  - key: pve_declared.disks | default([]) | map(attribute='disk_type') | list
    prefix: disk
groups:
  big: (pve_declared.memory | default(0)) >= 8192
compose:
  ansible_user: "'debian' if 'debian' in pve_tags | default([]) else 'root'"
'''

from ansible import constants as C
from ansible import context
from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import ProxmoxManagerError

# The core (requests, and SQLAlchemy for a state DB it must create) is imported in parse(), not here:
# Ansible loads every enabled inventory plugin on each run, even `-i localhost,`, and those imports cost
# about 0.4 s.


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = 'proxmox_manager.core.proxmox'

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(('proxmox.yml', 'proxmox.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        written = self._read_config_data(path)
        from ansible_collections.proxmox_manager.core.plugins.plugin_utils import inventory_view

        options = inventory_view.in_config_repo(self._templated_options(written), C.CONFIG_FILE)
        cache_key = self.get_cache_key(path)
        cached = None
        if self.get_option('cache') and cache:
            cached = self._cache.get(cache_key)
        added = _Added(self.inventory, self._sanitize_group_name)
        try:
            view = inventory_view.load(options, cached)
            for warning in view.warnings:
                self.display.warning(warning)
            self._add(view, added)
        except Exception as exc:
            added.undo()  # Ansible keeps what a failed source added: leave no half inventory
            if isinstance(exc, ProxmoxManagerError):
                raise AnsibleParserError('proxmox_manager.core.proxmox: %s' % exc)
            raise
        if self.get_option('cache') and view.keep:
            self._cache[cache_key] = [r.as_dict() for r in view.records]
        if not view.to_record or context.CLIARGS.get('check'):
            return  # ansible-playbook --check writes nothing, not even the recorded views
        try:
            inventory_view.record(options, view)
        except ProxmoxManagerError as exc:
            # The live views are still right; only the offline fallback suffers.
            self.display.warning('Could not record the view in the state DB: %s' % exc)

    def _templated_options(self, written):
        # As community.proxmox does: api_token_secret: "{{ lookup('ansible.builtin.env', ...) }}" works.
        # Only the values written in this file are templated; one from the environment is taken as it is.
        options = self.get_options()
        for name, in_file in written.items():
            # A null in the file leaves the option to the environment, whose values are never templates.
            if in_file is None:
                continue
            if name == 'clusters' and isinstance(options.get(name), dict):
                # Each entry's strings too; a malformed entry is left for clusters.check() to name.
                options[name] = dict(
                    (cluster, dict((key, self._template(value)) for key, value in entry.items())
                     if isinstance(entry, dict) else entry) for cluster, entry in options[name].items())
            else:
                options[name] = self._template(options.get(name))
        return options

    def _template(self, value):
        """A string that is a template, templated; any other value as it is."""
        if isinstance(value, str) and self.templar.is_template(value):
            return self.templar.template(value)
        return value

    def _add(self, view, added):
        from ansible_collections.proxmox_manager.core.plugins.plugin_utils import inventory_view

        strict = self.get_option('strict')
        want_declared = self.get_option('want_declared')
        preferred = inventory_view.networks(self.get_option('ansible_host_networks'))
        compose, groups, keyed = self.get_option('compose'), self.get_option('groups'), self.get_option('keyed_groups')
        for record in view.records:
            host = added.host(record.host)
            role = inventory_view.applied_role(record, view.roles)
            origin = view.origins.get(record.cluster)
            for key, value in inventory_view.host_vars(record, origin, role, want_declared, preferred).items():
                self.inventory.set_variable(host, key, value)
            for group in inventory_view.host_groups(record, role):
                added.member(group, host)
            if compose or groups or keyed:
                allvars = self.inventory.get_host(host).get_vars()
                self._set_composite_vars(compose, allvars, host, strict=strict)
                self._add_host_to_composed_groups(groups, allvars, host, strict=strict)
                self._add_host_to_keyed_groups(keyed, allvars, host, strict=strict)


class _Added:
    """Hosts and groups this parse adds, each group sanitised and added once, and taken back on failure."""

    def __init__(self, inventory, sanitize):
        self._inventory = inventory
        self._sanitize = sanitize
        self._groups = {}
        self._new_hosts = []
        self._new_groups = []

    def host(self, name):
        if name not in self._inventory.hosts:
            self._new_hosts.append(name)
        return self._inventory.add_host(name)

    def member(self, name, host):
        group = self._groups.get(name)
        if group is None:
            known = len(self._inventory.groups)
            group = self._groups[name] = self._inventory.add_group(self._sanitize(name))
            if len(self._inventory.groups) > known:
                self._new_groups.append(group)  # the name add_group used, as undo() looks it up
        self._inventory.add_child(group, host)

    def undo(self):
        for name in self._new_hosts:
            self._inventory.remove_host(self._inventory.hosts[name])
        for name in self._new_groups:
            self._inventory.remove_group(self._inventory.groups[name])
        self._new_hosts, self._new_groups = [], []
