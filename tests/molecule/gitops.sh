#!/usr/bin/env bash
# Run the gitops molecule scenario: the GitOps flow (apply, idempotence, verify)
# against the Proxmox API double, which the scenario starts and stops itself.
# Needs no root and changes nothing outside its ephemeral directory.
#
#   VENV=.venv bash tests/molecule/gitops.sh
set -uo pipefail
# Takes no arguments: refuse e.g. `--list` when something treats the repo as an inventory.
if [ "$#" -gt 0 ]; then
    echo "usage: VENV=.venv bash tests/molecule/gitops.sh" >&2
    exit 2
fi

# shellcheck source=tests/molecule/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# molecule writes its own ansible.cfg; the scenario runs the project's playbooks with the project's.
unset ANSIBLE_CONFIG PROXMOX_MANAGER_DB

cd "$ROOT" || exit 2
LOGDIR="${MOLECULE_LOG_DIR:-$ROOT/tests/output/molecule}"
mkdir -p "$LOGDIR"
echo "=== molecule scenario: gitops"
molecule test -s gitops 2>&1 | tee "$LOGDIR/gitops.log"
rc=${PIPESTATUS[0]}
echo "molecule gitops: $([ "$rc" = 0 ] && echo passed || echo "FAILED (log: $LOGDIR/gitops.log)")"
exit "$rc"
