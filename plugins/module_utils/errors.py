# -*- coding: utf-8 -*-
# Copyright: (c) 2026, proxmox_manager.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors shared by the client, the merged view and the state store.

Every error the collection raises on purpose derives from ProxmoxManagerError,
so modules and the inventory plugin can turn any of them into one clear
message without a traceback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ProxmoxManagerError(Exception):
    """Base of every expected failure; str() is the user-facing message."""


class ConfigurationError(ProxmoxManagerError):
    """Options missing or contradictory: a user error, never worth a retry or fallback."""


# What kept Proxmox from answering (ProxmoxApiError.outage): the inventory serves its recorded view for these only.
UNREACHABLE, TIMED_OUT, SERVER_ERROR, MALFORMED = 'unreachable', 'timed out', 'server error', 'malformed answer'


class ProxmoxApiError(ProxmoxManagerError):
    """Proxmox answered with an error status, or could not be reached.

    `outage` is UNREACHABLE, TIMED_OUT, SERVER_ERROR (5xx) or MALFORMED when Proxmox
    failed to answer; None when it answered and refused (bad credentials, a
    missing privilege, a bad request) or the TLS certificate did not verify.
    """

    def __init__(self, message, status=None, path=None, outage=None):
        super(ProxmoxApiError, self).__init__(message)
        self.status = status
        self.path = path
        self.outage = outage


class ProxmoxAuthError(ProxmoxApiError):
    """401/403: the credentials were refused (never carries the secret)."""


class ProxmoxUnreachableError(ProxmoxApiError):
    """Connection refused, DNS failure, TLS failure or timeout."""


class DeclarationError(ProxmoxManagerError):
    """A file in git (tfvars, roles.yml, datastores.yml) is malformed."""

    def __init__(self, message, problems=None):
        super(DeclarationError, self).__init__(message)
        self.problems = problems or []


class UnknownServerError(ProxmoxManagerError):
    """A server name the merged view does not hold (or holds ambiguously)."""

    def __init__(self, message, problems=None):
        super(UnknownServerError, self).__init__(message)
        self.problems = problems or []


class StateStoreError(ProxmoxManagerError):
    """The state DB cannot be opened, upgraded or written."""


def problems_text(problems, where=''):
    """One message for a call that checked everything first and found `problems`."""
    return '%d problem%s%s, nothing was changed:\n  %s' % (
        len(problems), '' if len(problems) == 1 else 's', where, '\n  '.join(problems))


def in_cluster(exc, cluster):
    """`exc` with its message prefixed by the cluster it happened in (its class and fields kept)."""
    exc.args = ('Cluster %s: %s' % (cluster, exc),) + exc.args[1:]
    return exc
