# -*- coding: utf-8 -*-
"""datastore_refresh runs with its config repo resolved on the controller (plugin_utils/module_action.py)."""
from ansible_collections.proxmox_manager.core.plugins.plugin_utils.module_action import ModuleAction

ActionModule = ModuleAction
