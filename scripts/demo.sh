#!/usr/bin/env bash
# The demo: sets up .venv, then runs the flagship pipeline (topic -> story -> scene plan -> one
# image per scene -> local 2x upscale -> contact sheet) against the bundled sandbox.
# With THREEDLABS_TOKEN set it runs against the real 3DLabs service instead, and says so.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/scripts/setup-venv.sh" | tail -n 1)"
exec "$VENV/bin/python" "$ROOT/scripts/demo.py" "$@"
