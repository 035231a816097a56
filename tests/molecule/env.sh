# Sourced by the molecule runners: the venv's molecule on PATH, colour off.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
if [ ! -x "$VENV/bin/molecule" ]; then
    echo "molecule not found in $VENV/bin: run 'make venv' or set VENV" >&2
    exit 2
fi
export PATH="$VENV/bin:$PATH"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"
export PY_COLORS="${PY_COLORS:-0}"
export NO_COLOR="${NO_COLOR:-1}"
