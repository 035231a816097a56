# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the merged view and the state store read from; mirrors STATE_ARGSPEC."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:

    DOCUMENTATION = r'''
options:
  tfvars_path:
    description:
      - "The Terraform variables file that declares the servers, C({\"servers\": {NAME: {...}}})."
      - Defaults to E(PROXMOX_MANAGER_TFVARS), else C(terraform/terraform.tfvars.json) of the config repo
        (O(project_dir)).
      - A missing file at the default path means no server is declared yet.
      - With a C(cluster) named in an inventory file's C(clusters), that cluster's C(tfvars_path) (by default
        C(terraform/<cluster>/terraform.tfvars.json)).
    type: path
  state_db:
    description:
      - The state DB, a path to a SQLite file or any SQLAlchemy URL (for example C(postgresql+psycopg://host/db)).
      - Defaults to E(PROXMOX_MANAGER_DB), else C(state/proxmox_manager.db) of the config repo (O(project_dir)).
    type: str
  allow_empty_cluster:
    description:
      - Believe a listing in which Proxmox reports no guest at all although the state DB records some.
      - By default such a listing is refused and nothing is changed, since a token without C(VM.Audit) on the
        guests gets an empty listing rather than an error. Set it for a cluster that really is empty now.
    type: bool
    default: false
  project_dir:
    description:
      - The config repo, which every relative path resolves against (O(tfvars_path), O(state_db), the
        C(state/*.yml) files, C(roles/), the Terraform vars file of the default datastores).
      - Defaults to E(PROXMOX_MANAGER_PROJECT_DIR), else the directory of the C(ansible.cfg) in use unless that is
        C(~/.ansible.cfg) or C(/etc/ansible/ansible.cfg), else the current directory of C(ansible-playbook).
      - The collection's action plugin works the default out on the controller, so a playbook anywhere, including
        the FQCN playbooks inside the installed collection, acts on the config repo and never on the collection.
    type: path
notes:
  - These modules run on the controller, in a local play or delegated to localhost.
requirements:
  - proxmoxer >= 2.3
  - requests
  - SQLAlchemy >= 2.0
  - jsonschema
'''

    PLUGINS = r'''
options:
  tfvars_path:
    description:
      - The Terraform variables file that declares the servers.
      - Defaults to C(terraform/terraform.tfvars.json) of the config repo (O(project_dir)); a missing file there
        means no server is declared yet. A relative path is the config repo's too.
    type: str
    env:
      - name: PROXMOX_MANAGER_TFVARS
  state_db:
    description:
      - The state DB, a path to a SQLite file or any SQLAlchemy URL.
      - Defaults to C(state/proxmox_manager.db) of the config repo (O(project_dir)).
    type: str
    env:
      - name: PROXMOX_MANAGER_DB
  project_dir:
    description:
      - The config repo, which the relative paths of O(tfvars_path) and O(state_db) resolve against (not the
        directory of this inventory file, nor the installed collection).
      - Defaults to the directory of the C(ansible.cfg) in use unless that is C(~/.ansible.cfg) or
        C(/etc/ansible/ansible.cfg), else the current directory.
    type: str
    env:
      - name: PROXMOX_MANAGER_PROJECT_DIR
  allow_empty_cluster:
    description:
      - Believe a listing in which Proxmox reports no guest at all although the recorded view holds some.
      - By default the hosts of such a listing are shown with a warning, but neither recorded nor cached, since a
        token without C(VM.Audit) on the guests gets an empty listing rather than an error.
    type: bool
    default: false
'''
