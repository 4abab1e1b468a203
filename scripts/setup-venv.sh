#!/usr/bin/env bash
# Creates (or reuses) .venv beside the pack with what the demo and the tests need.
# torch==2.13.0 first: a CPU build that pip finds on this kind of machine's disk; a bare "torch"
# requirement would otherwise pull a multi-GB CUDA build. Set THREEDLABS_TORCH to change the pin.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${THREEDLABS_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  "${PIP[@]}" "torch==${THREEDLABS_TORCH:-2.13.0}"
fi
# Runtime and test dependencies, read from pyproject.toml so that they are listed in one place.
mapfile -t DEPS < <("$VENV/bin/python" - "$ROOT/pyproject.toml" <<'PY'
import sys, tomllib
data = tomllib.load(open(sys.argv[1], "rb"))["project"]
for dep in data["dependencies"] + data["optional-dependencies"]["test"]:
    print(dep)
PY
)
"${PIP[@]}" "${DEPS[@]}"
echo "$VENV"
