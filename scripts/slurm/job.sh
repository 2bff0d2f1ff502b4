# Sourced by the ready-to-submit job scripts of scripts/slurm/ (ner_*.sbatch, classifier_*.sbatch,
# pretraining_*.sbatch) inside the batch job: `run_job COMMAND...` runs the command from the bert-tf checkout,
# passes SLURM's SIGTERM (preemption, or --signal=B:TERM@... before the time limit) on to it, and requeues the
# job when the run stopped early (bert-tf's exit status 75: it wrote a checkpoint and the same command resumes).
#
# Settings (environment variables; sbatch passes the submitting shell's environment to the job):
#   BERT_TF      the bert-tf checkout (default: the directory sbatch was called from, SLURM_SUBMIT_DIR)
#   PYTHON       the interpreter (default: BERT_TF/.venv/bin/python, else python3)
#   FLAGFILE     the run's flagfile (default: each script's own, under flags/)
#   EXTRA_FLAGS  more flags after the flagfile (later flags win), e.g. "--output_dir=runs/x --seed=3"

BERT_TF=${BERT_TF:-${SLURM_SUBMIT_DIR:-$PWD}}
if [[ -z ${PYTHON:-} ]]; then
  PYTHON=python3
  [[ -x $BERT_TF/.venv/bin/python ]] && PYTHON=$BERT_TF/.venv/bin/python
fi
read -r -a EXTRA <<<"${EXTRA_FLAGS:-}"
RESUMABLE=75  # a bert-tf run stopped by SIGTERM after writing its checkpoint

run_job() {  # command...: run it in BERT_TF, forward SIGTERM, requeue when it stopped early; exits with its status
  cd "$BERT_TF" || { echo "error: BERT_TF=$BERT_TF: no such directory" >&2; exit 2; }
  echo "job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname): $*"
  local terminated=0 status=0 child
  trap 'terminated=1; echo "SIGTERM: asking the run to checkpoint and stop"; kill -TERM "$child" 2>/dev/null' TERM
  "$@" &
  child=$!
  wait "$child" || status=$?
  while kill -0 "$child" 2>/dev/null; do  # wait was interrupted by the signal: wait for the run itself
    status=0
    wait "$child" || status=$?
  done
  if [[ $terminated == 1 || $status == "$RESUMABLE" ]] && [[ $status != 0 ]]; then
    echo "stopped early (exit $status): requeueing job ${SLURM_JOB_ID:-?}; the same command resumes"
    scontrol requeue "${SLURM_JOB_ID:?}" || true
  fi
  exit "$status"
}
