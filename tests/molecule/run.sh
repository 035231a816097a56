#!/usr/bin/env bash
# Run the molecule scenarios of the functional roles, one after the other.
#
#   VENV=.venv bash tests/molecule/run.sh            # every scenario
#   VENV=.venv bash tests/molecule/run.sh web db     # some of them
#
# The target is this machine itself over a local connection (see
# tests/molecule/README.md): the scenarios install and start real packages here,
# so run them as root on a Debian 12 machine or throw-away VM/container.
# MOLECULE_PURGE=1 makes each scenario's cleanup purge its service packages as well.
set -uo pipefail

# shellcheck source=tests/molecule/env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# The repository's ansible.cfg is not read under molecule (it writes its own);
# each molecule.yml points ANSIBLE_COLLECTIONS_PATH at ./collections.
unset ANSIBLE_CONFIG

# Order: cheap first; search last, since it adds (and its cleanup removes) an
# APT source that points at a scenario-local mirror.
ALL=(web monitoring ftp db java was search)
for arg in "$@"; do
    case " ${ALL[*]} " in
        *" $arg "*) ;;
        *) echo "usage: $0 [scenario...]  (scenarios: ${ALL[*]}; got '$arg')" >&2; exit 2 ;;
    esac
done
if [ "$#" -gt 0 ]; then SCENARIOS=("$@"); else SCENARIOS=("${ALL[@]}"); fi

if [ "$(id -u)" != 0 ]; then
    echo "the role scenarios converge on this machine and need root" >&2
    exit 2
fi
if ! grep -qs '^ID=debian' /etc/os-release; then
    echo "the role scenarios target a Debian machine (this is $(. /etc/os-release; echo "$PRETTY_NAME"))" >&2
    exit 2
fi

cd "$ROOT" || exit 2
LOGDIR="${MOLECULE_LOG_DIR:-$ROOT/tests/output/molecule}"
mkdir -p "$LOGDIR"

passed=0; failed=0; failed_names=(); summary=()
start_all=$(date +%s)
for s in "${SCENARIOS[@]}"; do
    echo "=== molecule scenario: $s"
    t0=$(date +%s)
    if molecule test -s "$s" 2>&1 | tee "$LOGDIR/$s.log"; then
        rc=0
    else
        rc=1
    fi
    dt=$(( $(date +%s) - t0 ))
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1)); summary+=("PASS  $s  ${dt}s")
    else
        failed=$((failed + 1)); failed_names+=("$s"); summary+=("FAIL  $s  ${dt}s  (log: $LOGDIR/$s.log)")
    fi
done
total=$(( $(date +%s) - start_all ))

echo
echo "=== molecule role scenarios"
printf '  %s\n' "${summary[@]}"
echo "  total time: ${total}s"
echo "molecule: $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
    echo "failed scenarios: ${failed_names[*]}" >&2
    exit 1
fi
