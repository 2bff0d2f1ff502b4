#!/usr/bin/env bash
# Run the published generate-blocklists.sh and `python -m bert_tf.classifier.blocklists pipeline` on the same
# predictions and compare every file they write, byte for byte.
#
#   scripts/compare_published_blocklists.sh RUN_DIR PUBLISHED_DIR [-- PIPELINE_FLAGS...]
#
# RUN_DIR holds TYPE-predictions/output_with_probabilities_* for ggp, che, org and dis in the published
# 8-column format (the published scripts read no other). PUBLISHED_DIR is the blocklist_generation/
# folder of BioBERT-based-entity-type-classifier (generate-blocklists.sh and its three .py scripts).
# Neither is changed: both runs work on copies in a temporary directory. The published script runs
# unmodified under LC_ALL=C.UTF-8 with `python3` = $PYTHON (default python3; `module` is a no-op).
# If $PYTHON is 3.12 or newer, --compensated_sum is passed to our pipeline (see bert_tf/classifier/blocklists.py).
# Exit status: 0 identical, 1 different (diff on stdout), 2 bad arguments or a failed run.
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
if [[ $# -lt 2 || "$1" == -h || "$1" == --help ]]; then usage; [[ $# -ge 1 && ( "$1" == -h || "$1" == --help ) ]] && exit 0; exit 2; fi
RUN_DIR=$1 PUBLISHED_DIR=$2
shift 2
[[ "${1:-}" == "--" ]] && shift
PYTHON=${PYTHON:-python3}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

for f in generate-blocklists.sh make_local_blacklist.py global_blacklist_candidates.py make_local_bw_lists.py; do
    [[ -f "$PUBLISHED_DIR/$f" ]] || { echo "error: $PUBLISHED_DIR/$f: no such file" >&2; exit 2; }
done
[[ -d "$RUN_DIR" ]] || { echo "error: $RUN_DIR: no such directory" >&2; exit 2; }

export LC_ALL=C.UTF-8
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/scripts" "$work/published" "$work/ours"
cp "$PUBLISHED_DIR"/generate-blocklists.sh "$PUBLISHED_DIR"/*.py "$work/scripts/"
for d in "$RUN_DIR"/*-predictions; do cp -r "$d" "$work/published/"; done
printf '#!/bin/sh\nexec "%s" "$@"\n' "$(command -v "$PYTHON")" > "$work/bin/python3"
chmod +x "$work/bin/python3"

module() { :; }
export -f module
if ! (cd "$work/scripts" && PATH="$work/bin:$PATH" bash generate-blocklists.sh "$work/published") \
        > "$work/published.log" 2>&1; then
    cat "$work/published.log" >&2
    echo "error: the published script failed" >&2
    exit 2
fi

extra=()
if "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then extra=(--compensated_sum); fi
if ! PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m bert_tf.classifier.blocklists pipeline \
        --run_dir "$RUN_DIR" --output_dir "$work/ours" ${extra[@]+"${extra[@]}"} "$@" 2> "$work/ours.log"; then
    cat "$work/ours.log" >&2
    exit 2
fi

if diff -r -x '*-predictions' "$work/published" "$work/ours"; then
    echo "identical: $(cd "$work/ours" && find . -type f | wc -l) files"
else
    exit 1
fi
