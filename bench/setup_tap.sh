#!/usr/bin/env bash
# Build bench/.venv-tap: the baseline extractor tap-invoiced 0.3.0 in its own virtualenv.
# Its pins (singer-python==6.1.1, invoiced==3.0.0, backoff==2.2.1) clash with syncd's, so it
# never shares .venv. Idempotent: an existing venv with the right version is kept.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-tap"
python="${PYTHON:-python3}"

if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c \
    'import importlib.metadata as m, sys; sys.exit(m.version("tap-invoiced") != "0.3.0")' 2>/dev/null; then
    echo "bench/.venv-tap: tap-invoiced 0.3.0 already installed"
    exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "tap-invoiced==0.3.0"
"$venv/bin/python" -m pip list --format=freeze | grep -Ei '^(tap-invoiced|singer-python|invoiced|backoff|requests)=='
