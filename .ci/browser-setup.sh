#!/usr/bin/env bash
# CI: what the browser test (tests/browser, marker "browser") needs on a fresh Debian machine,
# as root. Run it after the venv exists (.ci/run makes .venv), then run pytest with
# KOINE_BROWSER_REQUIRED=1 so a missing piece fails instead of skipping.
#
#   bash .ci/browser-setup.sh            # uses .venv/bin/python
#   PYTHON=/path/to/python bash .ci/browser-setup.sh
#
# Chromium comes from Debian (Playwright's own browser download cannot work here: no
# "playwright install"); the test launches /usr/bin/chromium. The emoji font draws the status
# line's ⏳/✓ marks (without it they show as empty boxes in the screenshots).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"

echo "== browser test: Debian packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium fonts-noto-color-emoji > /dev/null

echo "== browser test: Python packages (the [browser] extra)"
"$PYTHON" -m pip install --quiet -e ".[browser]"

chromium --version 2> /dev/null
"$PYTHON" - << 'PY'
import importlib.metadata as m

for name in ("jupyterlab", "jupyterlab_widgets", "ipywidgets", "playwright"):
    print(f"{name} {m.version(name)}")
PY
