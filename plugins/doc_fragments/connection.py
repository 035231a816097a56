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
