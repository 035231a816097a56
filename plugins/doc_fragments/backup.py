# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup option of the writing modules; mirrors BACKUP_ARGSPEC."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:

    DOCUMENTATION = r'''
options:
  backup:
    description:
      - Copy the state DB (SQLite online backup, consistent even while others write) before changing it.
      - The copy is taken only when something will change; its path is returned as RV(backup_file).
      - Only a SQLite state DB is copied; for another database a warning says no backup was taken (use its own
        tools, such as C(pg_dump)).
    type: bool
    default: false
  backup_dir:
    description: Where backups go. Defaults to C(backups/) beside the state DB.
    type: path
'''
