# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who made a change and from which git commit, as the change log records them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import getpass
import os

_CONTEXT = {}


def git_commit():
    """The commit being applied, looked up once per process."""
    if 'commit' not in _CONTEXT:
        _CONTEXT['commit'] = _find_git_commit()
    return _CONTEXT['commit']


def _find_git_commit():
    """The commit being applied: CI variables, else .git/HEAD of the working directory."""
    for var in ('GITHUB_SHA', 'CI_COMMIT_SHA', 'GIT_COMMIT'):
        if os.environ.get(var):
            return os.environ[var][:64]
    try:
        with open(os.path.join('.git', 'HEAD')) as handle:
            head = handle.read().strip()
        if not head.startswith('ref: '):
            return head[:64] or None
        ref = head[5:]
        ref_file = os.path.join('.git', *ref.split('/'))
        if os.path.exists(ref_file):
            with open(ref_file) as handle:
                return handle.read().strip()[:64] or None
        with open(os.path.join('.git', 'packed-refs')) as handle:
            for line in handle:
                if line.rstrip().endswith(' ' + ref):
                    return line.split(' ', 1)[0][:64]
    except OSError:
        pass
    return None


def actor():
    """The CI user, else the local login; None when neither is known."""
    for var in ('GITHUB_ACTOR', 'GITLAB_USER_LOGIN'):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
