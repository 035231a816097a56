# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options; mirrors CONNECTION_ARGSPEC in module_utils/proxmox_client.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:

    # Modules: values fall back to the PROXMOX_* environment variables.
    DOCUMENTATION = r'''
options:
  cluster:
    description:
      - The cluster this call acts on, by name. Its rows of the state DB are keyed by this name.
      - When O(inventory_file) declares C(clusters), the named cluster must be one of them, and its connection
        options and C(tfvars_path) come from there (options given to the task still win); see the docs'
        C(clusters.md).
      - Without it, E(PROXMOX_CLUSTER), else the name Proxmox gives in C(GET /cluster/status) (the cluster's name,
        or the node's for a node in no cluster), which needs C(Sys.Audit) on C(/).
    type: str
  inventory_file:
    description:
      - The inventory file whose C(clusters) mapping (and top-level C(cluster)) name the clusters, read on the
        controller before the module runs. A relative path is the config repo's (O(project_dir)).
      - Falls back to E(PROXMOX_MANAGER_INVENTORY), else C(inventory/proxmox.yml). A missing file declares no
        cluster.
    type: path
  api_host:
    description:
      - Host name or address of a Proxmox VE node of the cluster.
      - Falls back to the E(PROXMOX_HOST) environment variable.
    type: str
  api_port:
    description:
      - Port of the Proxmox VE API.
      - Falls back to E(PROXMOX_PORT).
    type: int
    default: 8006
  api_user:
    description:
      - User to authenticate as, with its realm, for example V(root@pam) or V(automation@pve).
      - With API token auth, the user that owns the token.
      - Falls back to E(PROXMOX_USER).
    type: str
  api_password:
    description:
      - Password of O(api_user), for ticket auth. Prefer an API token.
      - Falls back to E(PROXMOX_PASSWORD). Never logged.
    type: str
  api_token_id:
    description:
      - API token id, either the token name (V(automation)) or the full V(user@realm!automation).
      - Falls back to E(PROXMOX_TOKEN_ID).
    type: str
  api_token_secret:
    description:
      - Secret (UUID) of the API token. Never logged, never shown in errors or diffs.
      - Falls back to E(PROXMOX_TOKEN_SECRET).
    type: str
  validate_certs:
    description:
      - Verify the TLS certificate of the Proxmox API.
      - Only turn this off in a lab. Falls back to E(PROXMOX_VALIDATE_CERTS).
      - Takes precedence over E(REQUESTS_CA_BUNDLE).
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA that signed the Proxmox certificate, used instead of the system trust store.
      - Takes precedence over E(REQUESTS_CA_BUNDLE). Falls back to E(PROXMOX_CA_PATH).
    type: path
  api_timeout:
    description:
      - Seconds to wait for each Proxmox API answer. Falls back to E(PROXMOX_API_TIMEOUT).
    type: int
    default: 30
  api_retries:
    description:
      - How many times a request is retried, with exponential backoff, after a connection error, a timeout
        or a 5xx answer other than 501 and 595.
      - Falls back to E(PROXMOX_API_RETRIES).
    type: int
    default: 2
notes:
  - Token auth is used when O(api_token_id) and O(api_token_secret) are set, ticket (password) auth otherwise.
'''

    # Plugins: the same options, read from the config file or the environment.
    PLUGINS = r'''
options:
  cluster:
    description:
      - The name of the cluster, without O(clusters). Its rows of the state DB are keyed by this name.
      - Without it, the name Proxmox gives in C(GET /cluster/status) (the cluster's name, or the node's for a node
        in no cluster), which needs C(Sys.Audit) on C(/).
    type: str
    env:
      - name: PROXMOX_CLUSTER
  api_host:
    description: Host name or address of a Proxmox VE node of the cluster.
    type: str
    env:
      - name: PROXMOX_HOST
  api_port:
    description: Port of the Proxmox VE API.
    type: int
    default: 8006
    env:
      - name: PROXMOX_PORT
  api_user:
    description:
      - User to authenticate as, with its realm, for example V(root@pam).
      - With API token auth, the user that owns the token.
    type: str
    env:
      - name: PROXMOX_USER
  api_password:
    description: Password of O(api_user), for ticket auth. Prefer an API token.
    type: str
    env:
      - name: PROXMOX_PASSWORD
  api_token_id:
    description: API token id, either the token name (V(automation)) or the full V(user@realm!automation).
    type: str
    env:
      - name: PROXMOX_TOKEN_ID
  api_token_secret:
    description: Secret (UUID) of the API token. Never shown in output or errors.
    type: str
    env:
      - name: PROXMOX_TOKEN_SECRET
  validate_certs:
    description:
      - Verify the TLS certificate of the Proxmox API. Only turn this off in a lab.
      - Takes precedence over E(REQUESTS_CA_BUNDLE).
    type: bool
    default: true
    env:
      - name: PROXMOX_VALIDATE_CERTS
  ca_path:
    description:
      - PEM file of the CA that signed the Proxmox certificate.
      - Takes precedence over E(REQUESTS_CA_BUNDLE).
    type: path
    env:
      - name: PROXMOX_CA_PATH
  api_timeout:
    description: Seconds to wait for each Proxmox API answer.
    type: int
    default: 30
    env:
      - name: PROXMOX_API_TIMEOUT
  api_retries:
    description: Retries, with exponential backoff, after a connection error, a timeout or a 5xx other than 501 and 595.
    type: int
    default: 2
    env:
      - name: PROXMOX_API_RETRIES
'''

    # The modules that cover every cluster (declarations_validate, server_drift): mirrors CLUSTERS_ARGSPEC in
    # module_utils/module_base.py.
    CLUSTERS = r'''
options:
  clusters:
    description:
      - Every cluster this call covers, each with its connection options and tfvars file.
      - Filled in on the controller from the C(clusters) mapping of the inventory file (O(inventory_file)); rarely
        given by hand. Unset, the call covers the one cluster of its own connection.
      - An option an entry leaves unset is the call's own.
    type: list
    elements: dict
    suboptions:
      cluster:
        description: The cluster's name.
        type: str
        required: true
      tfvars_path:
        description: The cluster's tfvars file.
        type: path
      api_host:
        description: Host name or address of a Proxmox VE node of the cluster.
        type: str
      api_port:
        description: Port of the Proxmox VE API.
        type: int
      api_user:
        description: User to authenticate as, with its realm.
        type: str
      api_password:
        description: Password of O(clusters[].api_user), for ticket auth.
        type: str
      api_token_id:
        description: API token id.
        type: str
      api_token_secret:
        description: Secret of the API token.
        type: str
      validate_certs:
        description: Verify the TLS certificate of the Proxmox API.
        type: bool
      ca_path:
        description: PEM file of the CA that signed the Proxmox certificate.
        type: path
      api_timeout:
        description: Seconds to wait for each Proxmox API answer.
        type: int
      api_retries:
        description: Retries after a connection error, a timeout or a 5xx.
        type: int
'''
