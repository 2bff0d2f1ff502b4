# Sourced by scripts/run_finetuning_grid.sh and scripts/predict_corpus.sh: the --max_queued throttle.
# Needs SQUEUE_CMD (the listing of this user's jobs, one a line), MAX_QUEUED (0: no cap), POLL_SECONDS and die().

queued_jobs() {  # how many jobs the queue lists now
  local listing
  listing=$(eval "$SQUEUE_CMD") || die "queue listing failed: $SQUEUE_CMD"
  [[ -z $listing ]] && { echo 0; return; }
  printf '%s\n' "$listing" | wc -l
}

wait_for_queue_slot() {  # return when fewer than MAX_QUEUED jobs are queued
  ((MAX_QUEUED > 0)) || return 0
  local queued
  while true; do
    queued=$(queued_jobs) || exit 2
    ((queued < MAX_QUEUED)) && return 0
    echo "$queued jobs queued (cap $MAX_QUEUED); waiting ${POLL_SECONDS}s"
    sleep "$POLL_SECONDS"
  done
}
