#!/usr/bin/env bash
# Predict a corpus of context shards with a fine-tuned classifier, locally or on SLURM, naming the outputs
# as the published pipeline: RUN_DIR/<type>-predictions/output_with_probabilities_NNN.tsv.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$SCRIPT_DIR")
# shellcheck source=scripts/slurm_queue.sh
source "$SCRIPT_DIR/slurm_queue.sh"  # queued_jobs, wait_for_queue_slot (--max_queued)

usage() {
  cat <<'EOF'
Usage: scripts/predict_corpus.sh --inputs SPEC --run_dir RUN_DIR --type TYPE MODEL [options]

Runs run_classifier.py --do_predict over every shard of SPEC (a folder of *.tsv, a quoted glob such as
'contexts/ggp-contexts-w100-*.tsv', or @LIST), writing RUN_DIR/TYPE-predictions/
output_with_probabilities_NNN.tsv and test_results_NNN.tsv (NNN: the text after the last '-' of the
shard's name) and prediction_info.json. Shards with complete outputs are skipped, so running the same
command again resumes; logs and run_config.json go to RUN_DIR/TYPE-jobs/.

MODEL, one of:
  --model DIR                   a model saved by bert-tf (run_classifier.py --do_train: OUTPUT_DIR/model)
  --init_checkpoint PREFIX --bert_dir DIR --labels_dir DIR
                                a classifier fine-tuned by the published TF1 code (model.ckpt-NNNN), with
                                DIR/bert_config.json and DIR/vocab.txt, and LABELS_DIR/labels.txt
Options:
  --launcher local|slurm        local: one process predicts every shard (default)
                                slurm: one job per shard group (--groups, default one per shard)
  --groups N                    shard groups (SLURM jobs): shard j goes to group j % N
  --array                       submit one SLURM array job (--array=0-(N-1)%MAX_QUEUED) instead of N jobs
  --max_queued N                submit only while fewer than N of your jobs are queued (0: no cap;
                                default 300, as the published pipeline)
  --max_seq_length N            default 256        --batch_size N   default 32
  --replace_span TOKEN          default [unused1] (none: keep the mention)
  --extra_flags "..."           more flags for run_classifier.py (e.g. "--seed_compatible_outputs")
  --gpu_flags "..."             default auto: "--use_xla" on SLURM or when nvidia-smi lists a GPU (the model in
                                float32, as published; add --use_amp for mixed precision)
  --time_limit HH:MM:SS --partition P --account A --cpus_per_task N --mem M
                                SLURM resources (defaults 08:00:00, none, none, 6, 64G; published:
                                08:00:00, gpu, Project_..., 6, 160G)
  --gres G                      default gpu:1 (published: gpu:v100:1; none: no --gres line, CPU only)
  --exclude NODES               #SBATCH --exclude (published: its list of failing nodes)
  --sbatch_options "..."        more #SBATCH options, one line each (e.g. "--constraint=v100 --qos=normal")
  --job_prefix P                job names P_TYPE (default predict: predict_ggp)
  --job_name NAME               one name for every job instead (published: predict, which its
                                orchestration polls with squeue -n predict)
  --python CMD --runner FILE --sbatch CMD --squeue_cmd CMD --poll_seconds S
  --resubmit                    submit groups that have a .submitted marker again
                                (--extra_flags --overwrite_output_dir: every group, markers or not; without
                                it, shards whose shard_info_ID.json names another model stop the launch)
  --dry_run                     print what would run
EOF
}

die() { echo "error: $*" >&2; exit 2; }

INPUTS="" RUN_DIR="" TYPE="" MODEL="" INIT_CKPT="" BERT_DIR="" LABELS_DIR="" LAUNCHER=local GROUPS_N=""
ARRAY=0 MAX_QUEUED=300 MAX_SEQ_LENGTH=256 BATCH_SIZE=32 REPLACE_SPAN="[unused1]" EXTRA_FLAGS="" GPU_FLAGS=auto
TIME_LIMIT=08:00:00 PARTITION="" ACCOUNT="" CPUS_PER_TASK=6 MEM=64G POLL_SECONDS=60 RESUBMIT=0 DRY_RUN=0
GRES=gpu:1 EXCLUDE="" SBATCH_OPTIONS="" JOB_PREFIX=predict JOB_NAME=""
PYTHON="" RUNNER="$REPO_ROOT/run_classifier.py" SBATCH=sbatch SQUEUE_CMD='squeue -u "${USER:-$(id -un)}" -h'

parse_args() {
  local name value
  while (($#)); do
    case $1 in
      -h|--help) usage; exit 0 ;;
      --array) ARRAY=1; shift; continue ;;
      --resubmit) RESUBMIT=1; shift; continue ;;
      --dry_run) DRY_RUN=1; shift; continue ;;
      --*=*) name=${1%%=*}; value=${1#*=}; shift ;;
      --*) (($# >= 2)) || die "$1 needs a value"; name=$1; value=$2; shift 2 ;;
      *) die "unexpected argument '$1' (see --help)" ;;
    esac
    case ${name#--} in
      inputs) INPUTS=$value ;; run_dir) RUN_DIR=$value ;; type) TYPE=$value ;; model) MODEL=$value ;;
      init_checkpoint) INIT_CKPT=$value ;; bert_dir) BERT_DIR=$value ;; labels_dir) LABELS_DIR=$value ;;
      launcher) LAUNCHER=$value ;; groups) GROUPS_N=$value ;; max_queued) MAX_QUEUED=$value ;;
      max_seq_length) MAX_SEQ_LENGTH=$value ;; batch_size) BATCH_SIZE=$value ;;
      replace_span) REPLACE_SPAN=$value ;; extra_flags) EXTRA_FLAGS=$value ;; gpu_flags) GPU_FLAGS=$value ;;
      time_limit) TIME_LIMIT=$value ;; partition) PARTITION=$value ;; account) ACCOUNT=$value ;;
      cpus_per_task) CPUS_PER_TASK=$value ;; mem) MEM=$value ;; python) PYTHON=$value ;;
      runner) RUNNER=$value ;; sbatch) SBATCH=$value ;; squeue_cmd) SQUEUE_CMD=$value ;;
      poll_seconds) POLL_SECONDS=$value ;;
      gres) GRES=$value ;; exclude) EXCLUDE=$value ;; sbatch_options) SBATCH_OPTIONS=$value ;;
      job_prefix) JOB_PREFIX=$value ;; job_name) JOB_NAME=$value ;;
      *) die "unknown option $name (see --help)" ;;
    esac
  done
}

abspath() { case $1 in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }

check_settings() {
  [[ -n $INPUTS ]] || die "--inputs is required (a folder, a quoted glob or @LIST)"
  [[ -n $RUN_DIR ]] || die "--run_dir is required"
  [[ $TYPE =~ ^[A-Za-z0-9_]+$ ]] || die "--type must be an entity type such as ggp, got '$TYPE'"
  [[ $LAUNCHER == local || $LAUNCHER == slurm ]] || die "--launcher must be local or slurm, got '$LAUNCHER'"
  [[ $MAX_QUEUED =~ ^[0-9]+$ ]] || die "--max_queued must be a whole number, got '$MAX_QUEUED'"
  [[ -z $GROUPS_N || $GROUPS_N =~ ^[1-9][0-9]*$ ]] || die "--groups must be a positive number, got '$GROUPS_N'"
  if [[ -n $MODEL ]]; then
    [[ -z $INIT_CKPT ]] || die "give --model or --init_checkpoint, not both"
  else
    [[ -n $INIT_CKPT && -n $BERT_DIR && -n $LABELS_DIR ]] ||
      die "no model: give --model DIR, or --init_checkpoint, --bert_dir and --labels_dir"
  fi
  if [[ -z $PYTHON ]]; then
    PYTHON=python3
    if [[ -x $REPO_ROOT/.venv/bin/python ]]; then PYTHON=$REPO_ROOT/.venv/bin/python; fi
  fi
}

resolve_paths() {
  RUN_DIR=$(abspath "$RUN_DIR")
  [[ $INPUTS == @* ]] && INPUTS="@$(abspath "${INPUTS#@}")" || INPUTS=$(abspath "$INPUTS")
  PRED_DIR=$RUN_DIR/$TYPE-predictions
  JOBS_DIR=$RUN_DIR/$TYPE-jobs
  read -r -a PYTHON_CMD <<<"$PYTHON"
  read -r -a SBATCH_CMD <<<"$SBATCH"
  GPU_LIST=()
  case $GPU_FLAGS in
    none) ;;
    auto) if [[ $LAUNCHER == slurm ]] || { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; }
          then GPU_LIST=(--use_xla); fi ;;
    *) read -r -a GPU_LIST <<<"$GPU_FLAGS" ;;
  esac
}

corpus_tool() {  # command [args]: python -m bert_tf.classifier.corpus
  PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON_CMD[@]}" -m bert_tf.classifier.corpus "$@" \
    --predict_file="$INPUTS" --predict_output_dir="$PRED_DIR" --shard_id=last_field
}

model_path() {  # the path the shard records name (run_classifier.py's prediction_info "model")
  if [[ -n $MODEL ]]; then abspath "$MODEL"; else abspath "$INIT_CKPT"; fi
}

model_flags() {
  if [[ -n $MODEL ]]; then
    echo "--bert_model=$(abspath "$MODEL")"
  else
    echo "--init_checkpoint=$(abspath "$INIT_CKPT")"
    echo "--bert_config_file=$(abspath "$BERT_DIR")/bert_config.json"
    echo "--vocab_file=$(abspath "$BERT_DIR")/vocab.txt"
    echo "--labels_dir=$(abspath "$LABELS_DIR")"
  fi
}

write_flagfile() {  # output_dir: the flags shared by every group, in OUTPUT_DIR/predict.flags
  mkdir -p "$1"
  {
    echo "# written by scripts/predict_corpus.sh"
    echo "--do_predict"
    model_flags
    echo "--predict_file=$INPUTS"
    echo "--output_dir=$1"
    echo "--predict_output_dir=$PRED_DIR"
    echo "--shard_id=last_field"
    echo "--max_seq_length=$MAX_SEQ_LENGTH"
    echo "--predict_batch_size=$BATCH_SIZE"
    [[ -n $REPLACE_SPAN && $REPLACE_SPAN != none ]] && echo "--replace_span=$REPLACE_SPAN"
    if ((${#GPU_LIST[@]})); then printf '%s\n' "${GPU_LIST[@]}"; fi
    local extra
    for extra in $EXTRA_FLAGS; do echo "$extra"; done
  } >"$1/predict.flags.tmp"
  mv -f "$1/predict.flags.tmp" "$1/predict.flags"
}

job_script() {  # group_flags...: a batch script that predicts, forwards SIGTERM and requeues when cut short
  local command
  command=$(printf '%q ' "${PYTHON_CMD[@]}" "$RUNNER" "--flagfile=$JOBS_DIR/predict.flags" "$@")
  cat <<EOF
#!/bin/bash
#SBATCH --job-name=${JOB_NAME:-${JOB_PREFIX}_$TYPE}
#SBATCH --output=$JOBS_DIR/slurm-%A_%a.out
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=$CPUS_PER_TASK
#SBATCH --mem=$MEM
${GRES:+#SBATCH --gres=$GRES}
#SBATCH --time=$TIME_LIMIT
${PARTITION:+#SBATCH --partition=$PARTITION}
${ACCOUNT:+#SBATCH --account=$ACCOUNT}
${EXCLUDE:+#SBATCH --exclude=$EXCLUDE}
$(extra_sbatch_lines)
${JOB_ARRAY:+#SBATCH --array=$JOB_ARRAY}
#SBATCH --signal=B:TERM@120
#SBATCH --requeue
set -uo pipefail
cd $(printf '%q' "$REPO_ROOT")
terminated=0
trap 'terminated=1; kill -TERM "\$child" 2>/dev/null' TERM
$command &
child=\$!
status=0
wait "\$child" || status=\$?
while kill -0 "\$child" 2>/dev/null; do status=0; wait "\$child" || status=\$?; done
if [[ \$terminated == 1 && \$status != 0 ]]; then
  echo "cut short: requeueing job \${SLURM_JOB_ID:-?} (finished shards are kept and skipped)"
  scontrol requeue "\${SLURM_JOB_ID:?}"
fi
exit "\$status"
EOF
}

extra_sbatch_lines() {  # --sbatch_options, one #SBATCH line each
  local option
  for option in $SBATCH_OPTIONS; do printf '#SBATCH %s\n' "$option"; done
}

submit() {  # script marker
  local job_id
  if ((DRY_RUN)); then echo "[dry run] sbatch $1"; return; fi
  wait_for_queue_slot
  job_id=$(submit_script "$1") || exit 2
  echo "$job_id" >"$2"
  echo "submitted $1 as job $job_id"
  SUBMITTED=$((SUBMITTED + 1))
}

check_slurm_resources() {  # what each job asks for (one task) against the partition's nodes (sinfo)
  local gpus=0
  [[ $GRES == gpu* ]] && gpus=$(gpu_count "$GRES")
  check_resources "$PARTITION" 1 "$CPUS_PER_TASK" "$MEM" "$gpus" "--nodes=1" "--cpus_per_task=$CPUS_PER_TASK" \
    "--mem=$MEM" "--gres=$GRES"
}

run_slurm() {
  local shards pending group marker
  shards=$(corpus_tool count) || exit 2
  : "${GROUPS_N:=$shards}"
  local overwrite=""
  if [[ " $EXTRA_FLAGS " == *" --overwrite_output_dir "* ]]; then overwrite=--overwrite RESUBMIT=1; fi
  pending=$(corpus_tool pending --num_shard_groups="$GROUPS_N" --model="$(model_path)" $overwrite) || exit 2
  SUBMITTED=0 SKIPPED=0
  ((DRY_RUN)) || check_slurm_resources
  mkdir -p "$JOBS_DIR"
  write_flagfile "$JOBS_DIR"
  if ((ARRAY)); then
    [[ -n $pending ]] || { echo "all $shards shard(s) done"; return; }
    JOB_ARRAY="${pending// /,}"
    ((MAX_QUEUED > 0)) && JOB_ARRAY+="%$MAX_QUEUED"
    job_script "--num_shard_groups=$GROUPS_N" >"$JOBS_DIR/array.sbatch"
    JOB_ARRAY="" MAX_QUEUED=0 submit "$JOBS_DIR/array.sbatch" "$JOBS_DIR/array.submitted"
  else
    for group in $pending; do
      marker=$JOBS_DIR/group-$group.submitted
      if [[ -f $marker && $RESUBMIT == 0 ]]; then SKIPPED=$((SKIPPED + 1)); continue; fi
      job_script "--shard_index=$group" "--num_shard_groups=$GROUPS_N" >"$JOBS_DIR/group-$group.sbatch"
      submit "$JOBS_DIR/group-$group.sbatch" "$marker"
    done
  fi
  local waiting
  waiting=$(wc -w <<<"$pending")
  echo "$shards shard(s) in $GROUPS_N group(s): $((GROUPS_N - waiting)) group(s) done, $SUBMITTED submitted," \
    "$SKIPPED already submitted (skipped)"
}

run_local() {
  local out=$JOBS_DIR/local
  write_flagfile "$out"
  local command=("${PYTHON_CMD[@]}" "$RUNNER" "--flagfile=$out/predict.flags")
  if ((DRY_RUN)); then echo "[dry run] $(printf '%q ' "${command[@]}")"; return; fi
  echo "predicting into $PRED_DIR (log: $out/predict.log)"
  "${command[@]}" 2>&1 | tee -a "$out/predict.log"
  return "${PIPESTATUS[0]}"
}

main() {
  parse_args "$@"
  check_settings
  resolve_paths
  [[ $GRES == none ]] && GRES=""
  JOB_ARRAY=""
  if [[ $LAUNCHER == local ]]; then run_local; else run_slurm; fi
}

main "$@"
