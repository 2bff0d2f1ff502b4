#!/usr/bin/env bash
# The GPU check (issue 17): XLA, mixed precision, mirrored replicas and prediction on one GPU, ~8 minutes;
# figures into bench/RESULTS.md. `--dry_run` runs every step at toy size on the CPU (make test does).
# Needs no internet: the project's environment (.venv, made by `make venv`) is all it uses.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" bench/gpu_check.py "$@"
