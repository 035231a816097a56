#!/usr/bin/env bash
# Print a Python >= 3.12 interpreter: ansible-core 2.21 needs it, and the pyenv
# shims of a non-global version exit 127, so real paths are tried first.
for candidate in "$HOME"/.pyenv/versions/3.12*/bin/python3.12 "$HOME"/.pyenv/versions/3.13*/bin/python3.13 \
                 /usr/bin/python3.13 /usr/bin/python3.12 python3.13 python3.12 python3; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
        command -v "$candidate"
        exit 0
    fi
done
echo "no Python >= 3.12 found" >&2
exit 1
