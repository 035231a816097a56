#!/usr/bin/env bash
# ansible-test sanity on a copy of the tree under ansible_collections/proxmox_manager/core
# (it rejects a symlinked tree). Offline: its pip bootstrap download is replaced by ensurepip.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
python_version=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

pip_version=$("$venv/bin/python" - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version='0'))['pip'])
PY
)
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -f "$cache" ]; then
    mkdir -p "$(dirname "$cache")"
    cat > "$cache" <<'PY'
# Stand-in for the get-pip bootstrap ansible-test downloads: pip from ensurepip, then the pinned pip.
import subprocess
import sys

subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'])
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)
PY
fi

# ansible-test skips its shellcheck test when the program is missing: install it (Debian package).
if ! command -v shellcheck >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -q shellcheck >/dev/null 2>&1 || \
            { apt-get update -q >/dev/null && apt-get install -y -q shellcheck >/dev/null; }
    else
        echo "sanity: shellcheck is required: apt-get install shellcheck" >&2
        exit 1
    fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/proxmox_manager/core"
mkdir -p "$dest"
# The files git would ship: tracked plus new ones not ignored; not the resolver symlink.
(cd "$root" && git ls-files -co --exclude-standard -z | grep -zv '^collections/' | \
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done | tar --null -cf - -T -) | tar -xf - -C "$dest"
cd "$dest"
git init -q
git add -A >/dev/null 2>&1
"$venv/bin/ansible-test" sanity --venv --python "$python_version" --color no "$@"
