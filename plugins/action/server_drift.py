# -*- coding: utf-8 -*-
"""server_drift runs with its config repo resolved on the controller, over every cluster (plugin_utils/module_action.py)."""
from ansible_collections.proxmox_manager.core.plugins.plugin_utils.module_action import ModuleAction


class ActionModule(ModuleAction):
    ALL_CLUSTERS = True
