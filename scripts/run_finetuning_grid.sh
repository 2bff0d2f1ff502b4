#!/usr/bin/env bash
# Hyper-parameter grid for fine-tuning the consensus entity-type classifier (run_classifier.py).
# Run with --help for the options; the grid, paths and SLURM resources come from (later wins):
# built-in defaults < environment variables < --config FILE (a sourced bash file) < options.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true  # bash 5.2: keep '&' literal in ${var//x/y}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$SCRIPT_DIR")
# shellcheck source=scripts/slurm_queue.sh
source "$SCRIPT_DIR/slurm_queue.sh"  # queued_jobs, wait_for_queue_slot (--max_queued)

# Settings: environment variables, variables of the --config file, or --lowercase options.
SETTINGS=(MODELS BATCH_SIZES LEARNING_RATES EPOCHS SEEDS TASK_NAME DATA_DIR OUT_DIR CACHE_DIR
          LAUNCHER PYTHON RUNNER EXTRA_FLAGS REPLACE_SPAN GPU_FLAGS TEMPLATE MAX_QUEUED SQUEUE_CMD POLL_SECONDS SBATCH
          GPUS NODES CPUS_PER_TASK TIME_LIMIT PARTITION ACCOUNT JOB_PREFIX JOB_NAME MEM SBATCH_OPTIONS)
PLACEHOLDERS=(JOB_NAME RUN_DIR COMMAND WORKDIR GPUS NODES CPUS_PER_TASK TIME PARTITION ACCOUNT)

usage() {
  cat <<'EOF'
Usage: scripts/run_finetuning_grid.sh [--config FILE] [options]

Fine-tunes every combination of model x batch size x learning rate x epochs, once per seed,
with run_classifier.py. Each run gets OUT_DIR/<model>/bs<B>_lr<LR>_ep<E>/rep<R>/ holding
run.flags (an absl flagfile with every flag of the run) and runs
    PYTHON RUNNER --flagfile=<run dir>/run.flags
A run with eval_results.json (and no .bert_tf_run.json: killed before its end) is finished and
skipped, so the grid can be re-run to resume (a killed run continues where it stopped);
a run with a .submitted marker (SLURM job id) is skipped unless --resubmit.

Options (each also an environment variable / config variable, named in capitals):
  --models "name:path:max_seq_length ..."   checkpoints to fine-tune (required), e.g.
                         "biobert:/models/biobert_v1.1:256 pubmedbert:/models/pubmedbert:256"
  --batch_sizes "32 64"                     train batch sizes
  --learning_rates "5e-5 3e-5 2e-5 1e-5 5e-6"
  --epochs "2 3 4"                          numbers of training epochs
  --seeds "1 2 3"                           one repetition per seed (rep1 uses the first)
  --task_name consensus
  --data_dir DIR         data set directory (required)
  --out_dir DIR          where the runs go (default: REPO/runs/grid)
  --cache_dir DIR        feature cache shared by the runs (default: OUT_DIR/feature_cache)
  --launcher local|slurm local: one run after another, log in <run dir>/run.log (default)
                         slurm: sbatch a script rendered from --template for each run
  --python CMD           Python interpreter (default: REPO/.venv/bin/python, else python3)
  --runner FILE          script to run (default: REPO/run_classifier.py)
  --extra_flags "..."    more flags for every run, e.g. "--warmup_proportion=0.1"
  --replace_span TOKEN   --replace_span of every run (default: [unused1], as the published grid;
                         none: keep the mention's own tokens)
  --gpu_flags "..."      flags for GPU runs (default auto: "--use_xla" with the slurm launcher or when
                         nvidia-smi lists a GPU: XLA and a float32 model, as the published grid ran (its
                         --use_fp16 left the model in float32); add --use_amp for mixed precision; none: no flags)
  --template FILE        SLURM template (default: scripts/slurm/single_gpu.sbatch)
  --gpus N --nodes N --cpus_per_task N --time_limit HH:MM:SS --partition P --account A
                         SLURM resources (defaults: the template's ##DEFAULT lines;
                         an empty partition/account drops that #SBATCH line, --gpus 0 the --gres line);
                         checked against the partition's nodes as sinfo reports them before anything is submitted
  --job_prefix NAME      prefix of SLURM job names (default: grid; a job is PREFIX_<model>_bs.._lr.._ep.._rep..)
  --job_name NAME        one name for every job instead (the published grid: 125k_grid, which its
                         orchestration polls with squeue -n)
  --mem M                #SBATCH --mem (default: none, the site's; the published grid: 160G)
  --sbatch_options "..." more #SBATCH options, one line each, e.g. "--exclude=r04g05,r04g01 --constraint=v100"
                         (the published grid: --exclude=... of its failing nodes). GPU type: --gpus v100:1
                         gives --gres=gpu:v100:1, as the published scripts (default gpu:1)
  --max_queued N         submit only while fewer than N of your jobs are queued (0: no cap)
  --squeue_cmd CMD       command listing your queued jobs, one a line
                         (default: squeue -u "$USER" -h)
  --poll_seconds S       wait between queue polls (default: 60)
  --sbatch CMD           submit command (default: sbatch)
  --resubmit             submit runs that have a .submitted marker again
  --dry_run              print what would run; write nothing
  --config FILE          bash file setting the variables above (sourced)
  -h, --help             this help
EOF
}

die() { echo "error: $*" >&2; exit 2; }

# ------------------------------------------------------------------------------ settings

declare -A CLI=()
CONFIG=""
DRY_RUN=0
RESUBMIT=0

is_setting() {
  local name
  for name in "${SETTINGS[@]}"; do [[ $name == "$1" ]] && return 0; done
  return 1
}

parse_args() {
  local arg name value
  while (($#)); do
    arg=$1
    case $arg in
      -h|--help) usage; exit 0 ;;
      --dry_run) DRY_RUN=1; shift; continue ;;
      --resubmit) RESUBMIT=1; shift; continue ;;
      --*=*) name=${arg%%=*}; value=${arg#*=}; shift ;;
      --*) (($# >= 2)) || die "$arg needs a value"; name=$arg; value=$2; shift 2 ;;
      *) die "unexpected argument '$arg' (see --help)" ;;
    esac
    name=${name#--}
    if [[ $name == config ]]; then CONFIG=$value; continue; fi
    name=${name^^}
    is_setting "$name" || die "unknown option --${name,,} (see --help)"
    CLI[$name]=$value
  done
}

apply_defaults() {
  local default_python=python3
  # shellcheck disable=SC2016  # expanded when the queue is polled
  local default_squeue='squeue -u "${USER:-$(id -un)}" -h'
  [[ -x $REPO_ROOT/.venv/bin/python ]] && default_python=$REPO_ROOT/.venv/bin/python
  : "${MODELS:=}" "${BATCH_SIZES:=32 64}" "${LEARNING_RATES:=5e-5 3e-5 2e-5 1e-5 5e-6}"
  : "${EPOCHS:=2 3 4}" "${SEEDS:=1 2 3}" "${TASK_NAME:=consensus}" "${DATA_DIR:=}"
  : "${OUT_DIR:=$REPO_ROOT/runs/grid}" "${CACHE_DIR:=}" "${LAUNCHER:=local}"
  : "${PYTHON:=$default_python}" "${RUNNER:=$REPO_ROOT/run_classifier.py}" "${EXTRA_FLAGS:=}"
  : "${REPLACE_SPAN:=[unused1]}" "${GPU_FLAGS:=auto}"
  : "${TEMPLATE:=$SCRIPT_DIR/slurm/single_gpu.sbatch}" "${MAX_QUEUED:=0}" "${POLL_SECONDS:=60}"
  : "${SQUEUE_CMD:=$default_squeue}" "${SBATCH:=sbatch}"
  : "${GPUS:=}" "${NODES:=}" "${CPUS_PER_TASK:=}" "${TIME_LIMIT:=}" "${PARTITION:=}" "${ACCOUNT:=}"
  : "${JOB_PREFIX:=grid}" "${JOB_NAME:=}" "${MEM:=}" "${SBATCH_OPTIONS:=}"
}

load_settings() {
  parse_args "$@"
  if [[ -n $CONFIG ]]; then
    [[ -f $CONFIG ]] || die "$CONFIG: no such config file"
    # shellcheck disable=SC1090
    source "$CONFIG"
  fi
  local name
  for name in "${!CLI[@]}"; do printf -v "$name" '%s' "${CLI[$name]}"; done
  apply_defaults
}

abspath() {
  case $1 in
    /*) printf '%s' "$1" ;;
    *) printf '%s/%s' "$PWD" "$1" ;;
  esac
}

check_number() {  # name value: a non-negative integer
  [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a whole number, got '$2'"
}

check_settings() {
  [[ -n $MODELS ]] || die "no models: set MODELS or --models to 'name:path:max_seq_length ...'"
  [[ $LAUNCHER == local || $LAUNCHER == slurm ]] ||
    die "--launcher must be local or slurm, got '$LAUNCHER'"
  [[ -n $DATA_DIR ]] || die "no data set: set DATA_DIR or --data_dir"
  check_number --max_queued "$MAX_QUEUED"
  [[ $POLL_SECONDS =~ ^[0-9]+([.][0-9]+)?$ ]] ||
    die "--poll_seconds must be a number, got '$POLL_SECONDS'"
  local value
  for value in $BATCH_SIZES $EPOCHS $SEEDS; do
    check_number "batch sizes, epochs and seeds" "$value"
  done
  for value in $LEARNING_RATES; do
    [[ $value =~ ^[0-9.]+([eE]-?[0-9]+)?$ ]] || die "learning rate '$value' is not a number"
  done
  for value in $EXTRA_FLAGS; do
    [[ $value == --* ]] || die "extra flag '$value' does not start with --"
  done
  [[ -n ${SEEDS// /} ]] || die "no seeds: set SEEDS or --seeds"
  if ((DRY_RUN == 0)); then
    [[ -d $DATA_DIR ]] || die "$DATA_DIR: data directory not found"
    [[ -f $RUNNER ]] || die "$RUNNER: runner script not found"
  fi
  if [[ $LAUNCHER == slurm ]]; then check_template; fi
}

check_slurm_resources() {  # what each job asks for (one task per node) against the partition's nodes (sinfo)
  local value name
  for name in NODES CPUS_PER_TASK GPUS; do
    value=${!name}
    [[ -n $value ]] || value=$(template_default "$name")
    printf -v "REQUEST_$name" '%s' "$value"
  done
  check_resources "$PARTITION" "$REQUEST_NODES" "$REQUEST_CPUS_PER_TASK" "$MEM" "$(gpu_count "$REQUEST_GPUS")" \
    "--nodes=$REQUEST_NODES" "--cpus_per_task=$REQUEST_CPUS_PER_TASK" "--mem=$MEM" "--gpus=$REQUEST_GPUS"
}

check_template() {  # the template exists and uses only known placeholders
  [[ -f $TEMPLATE ]] || die "$TEMPLATE: SLURM template not found"
  local found name
  for found in $(grep -oE '@[A-Z_]+@' "$TEMPLATE" | sort -u); do
    name=${found//@/}
    [[ " ${PLACEHOLDERS[*]} " == *" $name "* ]] || die "$TEMPLATE: unknown placeholder $found"
  done
}

finish_settings() {
  check_settings
  DATA_DIR=$(abspath "$DATA_DIR")
  OUT_DIR=$(abspath "$OUT_DIR")
  [[ -n $CACHE_DIR ]] || CACHE_DIR=$OUT_DIR/feature_cache
  CACHE_DIR=$(abspath "$CACHE_DIR")
  RUNNER=$(abspath "$RUNNER")
  read -r -a PYTHON_CMD <<<"$PYTHON"
  read -r -a SBATCH_CMD <<<"$SBATCH"
  read -r -a EXTRA <<<"$EXTRA_FLAGS"
  resolve_gpu_flags
  read -r -a SEED_LIST <<<"$SEEDS"
  if [[ $LAUNCHER == slurm && $DRY_RUN == 0 ]]; then check_slurm_resources; fi
}

has_gpu() {  # whether this machine has a GPU nvidia-smi can see
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'
}

resolve_gpu_flags() {  # GPU_FLAGS -> GPU_FLAG_LIST
  GPU_FLAG_LIST=()
  case $GPU_FLAGS in
    none) ;;
    auto) if [[ $LAUNCHER == slurm ]] || has_gpu; then GPU_FLAG_LIST=(--use_xla); fi ;;
    *) read -r -a GPU_FLAG_LIST <<<"$GPU_FLAGS" ;;
  esac
  local value
  for value in "${GPU_FLAG_LIST[@]}"; do
    [[ $value == --* ]] || die "gpu flag '$value' does not start with --"
  done
}

# ------------------------------------------------------------------------------ one run

write_flagfile() {  # run_dir model_path max_seq_length batch lr epochs seed
  local run_dir=$1 tmp
  tmp=$(mktemp "$run_dir/.run.flags.XXXXXX")
  {
    echo "# written by scripts/run_finetuning_grid.sh"
    echo "--task_name=$TASK_NAME"
    echo "--data_dir=$DATA_DIR"
    echo "--output_dir=$run_dir"
    echo "--bert_model=$2"
    echo "--max_seq_length=$3"
    echo "--train_batch_size=$4"
    echo "--learning_rate=$5"
    echo "--num_train_epochs=$6"
    echo "--seed=$7"
    echo "--do_train"
    echo "--do_eval"
    if [[ -n $REPLACE_SPAN && $REPLACE_SPAN != none ]]; then echo "--replace_span=$REPLACE_SPAN"; fi
    if ((${#GPU_FLAG_LIST[@]})); then printf '%s\n' "${GPU_FLAG_LIST[@]}"; fi
    echo "--cache_dir=$CACHE_DIR"
    if ((${#EXTRA[@]})); then printf '%s\n' "${EXTRA[@]}"; fi
  } >"$tmp"
  mv -f "$tmp" "$run_dir/run.flags"
}

run_command() {  # run_dir: the command line, shell-quoted
  local words=("${PYTHON_CMD[@]}" "$RUNNER" "--flagfile=$1/run.flags")
  printf '%q ' "${words[@]}" | sed 's/ $//'
}

run_local() {  # run_dir
  echo "running $1"
  if "${PYTHON_CMD[@]}" "$RUNNER" "--flagfile=$1/run.flags" >>"$1/run.log" 2>&1; then
    RAN=$((RAN + 1))
  else
    echo "FAILED (exit $?): $1 (see $1/run.log)" >&2
    FAILED=$((FAILED + 1))
  fi
}

template_default() {  # name: the value of a '##DEFAULT NAME=value' line of the template
  sed -n "s/^##DEFAULT $1=//p" "$TEMPLATE" | tail -n 1
}

placeholder_value() {  # name run_dir job_name
  case $1 in
    JOB_NAME) printf '%s' "$3" ;;
    RUN_DIR) printf '%s' "$2" ;;
    COMMAND) run_command "$2" ;;
    WORKDIR) printf '%s' "$REPO_ROOT" ;;
    TIME) printf '%s' "${TIME_LIMIT:-$(template_default TIME)}" ;;
    GPUS) local gpus=${GPUS:-$(template_default GPUS)}  # 0 GPUs: no --gres line (a CPU-only cluster)
          if [[ $(gpu_count "$gpus") != 0 ]]; then printf '%s' "$gpus"; fi ;;
    *) local value=${!1}; printf '%s' "${value:-$(template_default "$1")}" ;;
  esac
}

render_template() {  # run_dir job_name: print the job script
  local -A values=()
  local name line
  for name in "${PLACEHOLDERS[@]}"; do values[$name]=$(placeholder_value "$name" "$1" "$2"); done
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line == '##DEFAULT '* ]] && continue
    for name in "${PLACEHOLDERS[@]}"; do
      [[ $line == *"@$name@"* ]] || continue
      if [[ -z ${values[$name]} && $line == '#SBATCH'* ]]; then continue 2; fi
      line=${line//"@$name@"/"${values[$name]}"}
    done
    printf '%s\n' "$line"
    if [[ $line == '#SBATCH --job-name='* ]]; then extra_sbatch_lines; fi
  done <"$TEMPLATE"
}

extra_sbatch_lines() {  # --mem and --sbatch_options, as #SBATCH lines (after the job name)
  local option
  [[ -n $MEM ]] && printf '#SBATCH --mem=%s\n' "$MEM"
  for option in $SBATCH_OPTIONS; do printf '#SBATCH %s\n' "$option"; done
  return 0
}

submit_slurm() {  # run_dir job_name
  local script=$1/job.sbatch job_id
  render_template "$1" "$2" >"$script"
  wait_for_queue_slot
  job_id=$(submit_script "$script") || exit 2
  echo "$job_id" >"$1/.submitted"
  echo "submitted $1 as job $job_id"
  SUBMITTED=$((SUBMITTED + 1))
}

do_run() {  # name path max_seq_length batch lr epochs rep seed
  local run_dir="$OUT_DIR/${1}/bs${4}_lr${5}_ep${6}/rep${7}"
  local job_name="${JOB_NAME:-${JOB_PREFIX}_${1}_bs${4}_lr${5}_ep${6}_rep${7}}"
  # finished: its results, and no owner file of a run that was killed before its end (bert_tf/ownership.py)
  if [[ -f $run_dir/eval_results.json && ! -f $run_dir/.bert_tf_run.json ]]; then FINISHED=$((FINISHED + 1)); return; fi
  if [[ -f $run_dir/.submitted && $RESUBMIT == 0 ]]; then
    QUEUED=$((QUEUED + 1)); return
  fi
  if ((DRY_RUN)); then
    echo "[dry run] $LAUNCHER ($job_name): $(run_command "$run_dir")"
    echo "[dry run]   --bert_model=$2 --max_seq_length=$3 --train_batch_size=$4" \
      "--learning_rate=$5 --num_train_epochs=$6 --seed=$8 --replace_span=$REPLACE_SPAN" \
      "${GPU_FLAG_LIST[*]} ${EXTRA[*]}"
    WOULD_RUN=$((WOULD_RUN + 1))
    return
  fi
  mkdir -p "$run_dir"
  write_flagfile "$run_dir" "$2" "$3" "$4" "$5" "$6" "$8"
  if [[ $LAUNCHER == local ]]; then
    run_local "$run_dir"
  else
    submit_slurm "$run_dir" "$job_name"
  fi
}

# ------------------------------------------------------------------------------ the grid

model_parts() {  # name:path:max_seq_length -> "name path max_seq_length" in MODEL_PARTS
  local spec=$1 name path length
  name=${spec%%:*}
  length=${spec##*:}
  path=${spec#*:}
  path=${path%:*}
  [[ $spec == *:*:* && -n $name && -n $path && $length =~ ^[0-9]+$ && $name != */* ]] ||
    die "model '$spec' is not name:path:max_seq_length"
  [[ $path != /* && -e $path ]] && path=$(abspath "$path")
  MODEL_PARTS=("$name" "$path" "$length")
}

run_grid() {
  local spec batch lr epochs rep
  for spec in $MODELS; do
    model_parts "$spec"
    for batch in $BATCH_SIZES; do
      for lr in $LEARNING_RATES; do
        for epochs in $EPOCHS; do
          for rep in "${!SEED_LIST[@]}"; do
            do_run "${MODEL_PARTS[@]}" "$batch" "$lr" "$epochs" "$((rep + 1))" "${SEED_LIST[rep]}"
          done
        done
      done
    done
  done
}

main() {
  load_settings "$@"
  finish_settings
  FINISHED=0 QUEUED=0 RAN=0 SUBMITTED=0 FAILED=0 WOULD_RUN=0
  run_grid
  local done_now="$RAN ran, $SUBMITTED submitted, $FAILED failed"
  ((DRY_RUN == 0)) || done_now="$WOULD_RUN would be ${LAUNCHER/local/run}"
  done_now=${done_now/would be slurm/would be submitted}
  echo "grid: $FINISHED finished (skipped), $QUEUED already submitted (skipped), $done_now"
  ((FAILED == 0)) || exit 1
}

main "$@"
