#!/usr/bin/env bash
# The GPU check (issue 17): XLA, mixed precision, mirrored replicas, prediction and the ONNX Runtime engine on
# one GPU, ~10 minutes; figures into bench/RESULTS.md. `--dry_run` runs every step at toy size on the CPU
# (make test does).
# Needs no internet beyond this: the project's environment (.venv, made by `make venv`), and for the engine's
# float16 step onnxruntime-gpu, installed here (into WORK/onnxruntime_gpu, the environment untouched) when the
# environment's onnxruntime has no CUDA provider: from $ORT_GPU_WHEEL (a wheel file) or the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
case " $* " in
  *" --dry_run "*) ;;
  *)
    ORT_GPU_DIR="${ORT_GPU_DIR:-/tmp/bert_tf_gpu_check/onnxruntime_gpu}"
    if ! "$PY" -c "import onnxruntime, sys; sys.exit('CUDAExecutionProvider' not in onnxruntime.get_available_providers())" 2>/dev/null; then
      "$PY" -m pip install --quiet --no-deps --target "$ORT_GPU_DIR" "${ORT_GPU_WHEEL:-onnxruntime-gpu==1.31.1}" \
        || echo "onnxruntime-gpu could not be installed: the engine step runs without CUDA and says so" >&2
      export PYTHONPATH="$ORT_GPU_DIR${PYTHONPATH:+:$PYTHONPATH}"
    fi
    ;;
esac
exec "$PY" bench/gpu_check.py "$@"
