#!/usr/bin/env bash
# The test command: sets up .venv, lints, then runs the whole suite.
# Real-ComfyUI and browser tests run only when COMFYUI_PATH points at a ComfyUI checkout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/scripts/setup-venv.sh" | tail -n 1)"
cd "$ROOT"
"$VENV/bin/python" -m ruff check .
exec "$VENV/bin/python" -m pytest "$@"
