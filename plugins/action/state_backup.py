# -*- coding: utf-8 -*-
"""state_backup runs with its config repo resolved on the controller (plugin_utils/module_action.py)."""
from ansible_collections.proxmox_manager.core.plugins.plugin_utils.module_action import ModuleAction


class ActionModule(ModuleAction):
    CONNECTION = False
