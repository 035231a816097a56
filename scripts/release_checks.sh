#!/usr/bin/env bash
# The checks the collection's tarball meets before an upload (make release-checks):
#   1. galaxy-importer, the checks Galaxy itself runs on upload, on the tarball built from this checkout:
#      no ERROR and no WARNING (every ansible-lint finding is a WARNING line) may be left;
#   2. antsibull-docs lint-collection-docs --plugin-docs, the docsite's linter, on the same tarball;
#   3. antsibull-changelog lint on changelogs/ (fragments and changelog.yaml).
# All three run, then it fails naming each check and the offending lines. The tools come from
# .venv-release (requirements/release.txt), not .venv: galaxy-importer's attrs<24 clashes with its pins.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${RELEASE_VENV:-.venv-release}
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
if [ ! -x "$venv/bin/antsibull-docs" ]; then
    echo "release-checks: no tools in $venv: run 'make release-checks' (it creates the venv)" >&2
    exit 1
fi
# The importer calls ansible-doc and ansible-lint through PATH: they must be the release venv's.
export PATH="$venv/bin:$PATH"

# Galaxy imports with none of our Ansible settings. The Makefile exports ANSIBLE_CONFIG=ansible.cfg, whose
# Proxmox inventory source would make every ansible-lint syntax check fail (internal-error per playbook/role).
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ANSIBLE_' || true)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()

elapsed() { echo "$(( $(date +%s) - $1 )) s"; }

# Build exactly what would be uploaded: galaxy.yml's build_ignore decides the content.
start=$(date +%s)
"$venv/bin/ansible-galaxy" collection build --output-path "$work/dist" "$root" >/dev/null
tarball=$(find "$work/dist" -maxdepth 1 -name '*.tar.gz' -print -quit)
echo "release-checks: built $(basename "$tarball") ($(elapsed "$start"))"

# 1. galaxy-importer. Its config switches off its ansible-test run (needs a container; make sanity runs it).
# It writes importer_result.json into the working directory and temp files under tmp_root_dir: both in $work.
start=$(date +%s)
log="$work/importer.log"
rc=0
(cd "$work" && GALAXY_IMPORTER_CONFIG="$root/tests/release/galaxy-importer.cfg" \
    GALAXY_IMPORTER_TMP_ROOT_DIR="$work" GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP="$work/ansible-tmp" \
    "$venv/bin/python" -m galaxy_importer.main "$tarball") >"$log" 2>&1 || rc=$?
# Its log prints INFO lines bare and every other level as "LEVEL: message"; ansible-lint's findings
# are WARNING lines ("WARNING: path:line: rule: message"), its crashes ERROR lines with a traceback.
bad=$(grep -nE '^(WARNING|ERROR|CRITICAL):|Traceback' "$log" || true)
if [ "$rc" -ne 0 ] || [ -n "$bad" ] || ! grep -q '^Importer processing completed successfully$' "$log"; then
    echo "release-checks: galaxy-importer FAILED (exit $rc, $(elapsed "$start")); offending lines of its output:" >&2
    if [ -n "$bad" ]; then
        printf '%s\n' "$bad" | sed 's/^/  importer:/' >&2
    else
        tail -n 20 "$log" | sed 's/^/  importer: /' >&2
    fi
    failed+=(galaxy-importer)
else
    echo "release-checks: galaxy-importer clean, no error and no lint warning ($(elapsed "$start"))"
fi

# 2. antsibull-docs wants the collection at .../ansible_collections/<namespace>/<name>: the unpacked tarball.
start=$(date +%s)
dest="$work/collections/ansible_collections/proxmox_manager/core"
mkdir -p "$dest"
tar -xzf "$tarball" -C "$dest"
# dependent: references to this collection and to ansible.builtin are checked too.
if out=$("$venv/bin/antsibull-docs" lint-collection-docs --plugin-docs --validate-collection-refs dependent \
        "$dest" 2>&1); then
    echo "release-checks: antsibull-docs lint-collection-docs --plugin-docs clean ($(elapsed "$start"))"
else
    echo "release-checks: antsibull-docs lint-collection-docs FAILED ($(elapsed "$start")):" >&2
    printf '%s\n' "$out" | sed "s|$dest/||; s/^/  antsibull-docs: /" >&2
    failed+=(antsibull-docs)
fi

# 3. The changelog fragments (the release command consumes them) and changelog.yaml, in the checkout.
start=$(date +%s)
if out=$(cd "$root" && "$venv/bin/antsibull-changelog" lint 2>&1 &&
        "$venv/bin/antsibull-changelog" lint-changelog-yaml changelogs/changelog.yaml 2>&1); then
    echo "release-checks: antsibull-changelog lint clean ($(elapsed "$start"))"
else
    echo "release-checks: antsibull-changelog lint FAILED ($(elapsed "$start")):" >&2
    printf '%s\n' "$out" | sed 's/^/  antsibull-changelog: /' >&2
    failed+=(antsibull-changelog)
fi

if [ "${#failed[@]}" -gt 0 ]; then
    echo "release-checks: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "release-checks: all clean"
