#!/usr/bin/env bash
# The published classifier pipeline end to end on the demo data (`make demo-pipeline`), timing each step:
#   1. fine-tune the classifier (flags/demo_classifier.flags; the published run: flags/biobert_consensus_best.flags)
#   2. the prediction inputs from a dictionary tagger's run on the demo test documents (data/demo/tagger/):
#      python -m bert_tf.classifier.contexts, 3 shards, TYPE-contexts-w100-N.tsv for ggp, che, org and dis
#   3. predict those 12 context shards with scripts/predict_corpus.sh into RUN_DIR/TYPE-predictions/
#   4. build the tagger's blocklists from every shard: python -m bert_tf.classifier.blocklists pipeline
# Usage: scripts/demo_published_pipeline.sh MODEL_DIR [OUT_DIR]   (MODEL_DIR: a pretrained BERT, e.g. MiniLM)
# Environment (all optional):
#   RUN_DIR=DIR        the predictions root (DIR/TYPE-predictions), kept between runs as the published flow
#                      keeps STRING-blocklists-v12/TYPE-predictions (default OUT_DIR/run, removed with OUT_DIR)
#   SEED=N             fine-tuning seed (another seed: another model)
#   PREDICT_FLAGS="…"  more run_classifier.py flags for step 3, e.g. --overwrite_output_dir, --apply_temperature,
#                      --use_amp
# A second run with another model into the same RUN_DIR stops at step 3, naming the shard and the difference;
# PREDICT_FLAGS=--overwrite_output_dir predicts every shard again.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL_DIR=${1:?usage: $0 MODEL_DIR [OUT_DIR]}
OUT=${2:-runs/demo_pipeline}
RUN=${RUN_DIR:-$OUT/run}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
TYPES="ggp che org dis"
rm -rf "$OUT"
mkdir -p "$OUT"

step() { echo; echo "== $1"; STEP_START=$SECONDS; }
took() { echo "== $1 took $((SECONDS - STEP_START)) s" | tee -a "$OUT/timings.txt"; }

step "1. fine-tune"
"$PY" run_classifier.py --flagfile=flags/demo_classifier.flags --bert_model="$MODEL_DIR" \
  --output_dir="$OUT/classifier" --nodo_predict ${SEED:+--seed=$SEED}
took "1. fine-tune (train + dev evaluation)"

step "2. prediction inputs from the tagger run"
TAGGER=data/demo/tagger
"$PY" -m bert_tf.classifier.contexts --matches "$TAGGER/all_matches.tsv" --entities "$TAGGER/all_entities.tsv" \
  --excluded "$TAGGER/excluded_documents.txt" --documents "$TAGGER/documents.tsv" \
  --ranks "$TAGGER/scientific_names_and_ranks.tsv" --output_dir "$OUT/contexts" --shards 3 --words 100
took "2. prediction inputs (tagger output -> 12 context shards)"

step "3. predict the corpus (3 shards x 4 types, one process a type)"
for type in $TYPES; do
  bash scripts/predict_corpus.sh --inputs "$OUT/contexts/$type-contexts-w100-*.tsv" --run_dir "$RUN" \
    --type "$type" --model "$OUT/classifier/model" --max_seq_length 32 --batch_size 64 --python "$PY" \
    --extra_flags "${PREDICT_FLAGS:-}"
done
took "3. predict 12 shards"

step "4. blocklists"
"$PY" -m bert_tf.classifier.blocklists pipeline --run_dir "$RUN" --output_dir "$OUT/blocklists"
took "4. blocklists pipeline"

echo
echo "auto_local.tsv: $(wc -l < "$OUT/blocklists/auto_local.tsv") lines; auto_global.tsv: $(wc -l < "$OUT/blocklists/auto_global.tsv") lines"
cat "$OUT/timings.txt"
