#!/usr/bin/env bash
# Build the wheel, install it into a fresh venv with the runtime dependencies only (no extras), and
# run the demo from an empty temporary folder: proves a normal install ships the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip wheel -q --no-deps -w "$work/dist" .
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$work"/dist/edge-*.whl
mkdir "$work/elsewhere"
cd "$work/elsewhere"
"$work/venv/bin/python" -c "import sys, edge; assert 'tensorflow' not in sys.modules; print('edge', edge.__version__)"
"$work/venv/bin/edge" run --max-frames 20 --no-show --quiet
echo "wheel check: ok"
