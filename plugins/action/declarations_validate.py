# -*- coding: utf-8 -*-
"""declarations_validate runs with its config repo and role catalog resolved on the controller, over every cluster (plugin_utils/module_action.py)."""
from ansible_collections.proxmox_manager.core.plugins.plugin_utils.module_action import ModuleAction


class ActionModule(ModuleAction):
    ROLE_CATALOG = True
    ALL_CLUSTERS = True
