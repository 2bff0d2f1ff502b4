#!/usr/bin/env bash
# Prediction inputs from the dictionary tagger's output (python -m bert_tf.classifier.contexts), locally or on
# SLURM as three jobs: the split (one job), the shards (an array job, one task a shard group, after the split) and
# a last check that removes the split files once every shard is done (after the array).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$SCRIPT_DIR")

usage() {
  cat <<'EOF'
Usage: scripts/contexts.sh [options] -- CONTEXTS_FLAGS...

CONTEXTS_FLAGS go to python -m bert_tf.classifier.contexts (docs/prediction_inputs.md), e.g.
  --matches all_matches.tsv --entities all_entities.tsv --excluded excluded_documents.txt
  --documents pmc/*.tsv.gz pubmed/*.tsv.gz --ranks scientific_names_and_ranks.tsv
  --output_dir split-contexts --shards 300
and must name --output_dir. A second run skips what is done (a finished split, finished shards).
Options:
  --launcher local|slurm   local: one process does everything (default)
                           slurm: a split job, an array job over the shard groups (after the split), a
                           final job that checks every shard and removes OUTPUT_DIR/.split (after the array)
  --groups N               array tasks; shard j goes to task j % N (default: the --shards value, 300)
  --max_queued N           at most N array tasks at once (%N; default 50, 0: no cap)
  --time_limit HH:MM:SS    per job (default 24:00:00, the published slurm-create-docs.sh limit)
  --mem M                  default 16G         --cpus_per_task N   default 1
  --partition P --account A --sbatch_options "..." (more #SBATCH lines, one a word)
  --python CMD --sbatch CMD --job_prefix P (default contexts)
  --dry_run                print the batch scripts instead of submitting them
EOF
}

die() { echo "error: $*" >&2; exit 2; }

LAUNCHER=local GROUPS_N="" MAX_QUEUED=50 TIME_LIMIT=24:00:00 MEM=16G CPUS_PER_TASK=1 PARTITION="" ACCOUNT=""
SBATCH_OPTIONS="" PYTHON="" SBATCH=sbatch JOB_PREFIX=contexts DRY_RUN=0 FLAGS=()

parse_args() {
  local name value
  while (($#)); do
    case $1 in
      -h|--help) usage; exit 0 ;;
      --) shift; FLAGS=("$@"); return ;;
      --dry_run) DRY_RUN=1; shift; continue ;;
      --*=*) name=${1%%=*}; value=${1#*=}; shift ;;
      --*) (($# >= 2)) || die "$1 needs a value"; name=$1; value=$2; shift 2 ;;
      *) die "unexpected argument '$1' (the command's own flags go after --; see --help)" ;;
    esac
    case ${name#--} in
      launcher) LAUNCHER=$value ;; groups) GROUPS_N=$value ;; max_queued) MAX_QUEUED=$value ;;
      time_limit) TIME_LIMIT=$value ;; mem) MEM=$value ;; cpus_per_task) CPUS_PER_TASK=$value ;;
      partition) PARTITION=$value ;; account) ACCOUNT=$value ;; sbatch_options) SBATCH_OPTIONS=$value ;;
      python) PYTHON=$value ;; sbatch) SBATCH=$value ;; job_prefix) JOB_PREFIX=$value ;;
      *) die "unknown option $name (see --help)" ;;
    esac
  done
}

flag_value() {  # NAME: the value of --NAME in FLAGS (either form), empty when absent
  local i
  for ((i = 0; i < ${#FLAGS[@]}; i++)); do
    case ${FLAGS[i]} in
      "--$1="*) echo "${FLAGS[i]#*=}"; return ;;
      "--$1") echo "${FLAGS[i + 1]:-}"; return ;;
    esac
  done
}

check_settings() {
  [[ $LAUNCHER == local || $LAUNCHER == slurm ]] || die "--launcher must be local or slurm, got '$LAUNCHER'"
  OUTPUT_DIR=$(flag_value output_dir)
  [[ -n $OUTPUT_DIR ]] || die "the command's flags (after --) must name --output_dir"
  local shards
  shards=$(flag_value shards)
  : "${GROUPS_N:=${shards:-300}}"
  [[ $GROUPS_N =~ ^[1-9][0-9]*$ ]] || die "--groups must be a positive number, got '$GROUPS_N'"
  [[ $MAX_QUEUED =~ ^[0-9]+$ ]] || die "--max_queued must be a whole number, got '$MAX_QUEUED'"
  if [[ -z $PYTHON ]]; then
    PYTHON=python3
    if [[ -x $REPO_ROOT/.venv/bin/python ]]; then PYTHON=$REPO_ROOT/.venv/bin/python; fi
  fi
}

command_line() {  # ARGS...: the contexts command, quoted for a batch script
  printf '%q ' env "PYTHONPATH=$REPO_ROOT" $PYTHON -m bert_tf.classifier.contexts "$@"
}

batch_script() {  # NAME DEPENDENCY ARRAY COMMAND...: a batch script running the contexts command
  local name=$1 dependency=$2 array=$3 option
  shift 3
  echo "#!/bin/bash"
  echo "#SBATCH --job-name=${JOB_PREFIX}_$name"
  echo "#SBATCH --output=$LOG_DIR/$name-%A_%a.out"
  echo "#SBATCH --nodes=1"
  echo "#SBATCH --ntasks=1"
  echo "#SBATCH --cpus-per-task=$CPUS_PER_TASK"
  echo "#SBATCH --mem=$MEM"
  echo "#SBATCH --time=$TIME_LIMIT"
  [[ -n $PARTITION ]] && echo "#SBATCH --partition=$PARTITION"
  [[ -n $ACCOUNT ]] && echo "#SBATCH --account=$ACCOUNT"
  [[ -n $dependency ]] && echo "#SBATCH --dependency=afterok:$dependency"
  [[ -n $array ]] && echo "#SBATCH --array=$array"
  for option in $SBATCH_OPTIONS; do echo "#SBATCH $option"; done
  echo "set -euo pipefail"
  echo "cd $(printf '%q' "$PWD")"
  command_line "$@"
  echo
}

submit() {  # SCRIPT: submit it, print the job id
  local output
  if ((DRY_RUN)); then echo "[dry run] $SBATCH $1" >&2; cat "$1" >&2; echo "DRYRUN"; return; fi
  output=$($SBATCH "$1") || die "sbatch failed for $1"
  [[ $output =~ ([0-9]+)[^0-9]*$ ]] || die "no job id in the sbatch answer: $output"
  echo "${BASH_REMATCH[1]}"
}

run_slurm() {
  LOG_DIR=$(cd "$(dirname "$OUTPUT_DIR")" 2>/dev/null && pwd || echo "$PWD")/$(basename "$OUTPUT_DIR")-jobs
  mkdir -p "$LOG_DIR"
  local split_id array_id final_id array="0-$((GROUPS_N - 1))"
  ((MAX_QUEUED > 0)) && array+="%$MAX_QUEUED"
  batch_script split "" "" "${FLAGS[@]}" --step split >"$LOG_DIR/split.sbatch"
  split_id=$(submit "$LOG_DIR/split.sbatch")
  batch_script shards "$split_id" "$array" --output_dir "$OUTPUT_DIR" --step shards \
    --num_shard_groups "$GROUPS_N" >"$LOG_DIR/shards.sbatch"
  array_id=$(submit "$LOG_DIR/shards.sbatch")
  batch_script finish "$array_id" "" "${FLAGS[@]}" --step all >"$LOG_DIR/finish.sbatch"
  final_id=$(submit "$LOG_DIR/finish.sbatch")
  echo "submitted: split job $split_id, shard array job $array_id ($GROUPS_N tasks), final job $final_id" \
    "(logs and batch scripts: $LOG_DIR)"
}

main() {
  parse_args "$@"
  check_settings
  if [[ $LAUNCHER == local ]]; then
    PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" $PYTHON -m bert_tf.classifier.contexts "${FLAGS[@]}"
  else
    run_slurm
  fi
}

main "$@"
