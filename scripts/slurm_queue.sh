# Sourced by scripts/run_finetuning_grid.sh and scripts/predict_corpus.sh: the --max_queued throttle, the check of
# the resources a job asks for against what sinfo reports, and sbatch submission that names a refused option.
# Needs SQUEUE_CMD (the listing of this user's jobs, one a line), MAX_QUEUED (0: no cap), POLL_SECONDS, SBATCH_CMD and die().

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

# ------------------------------------------------------------------------------ resources and submission

mem_megabytes() {  # an sbatch --mem value (64G, 500M, 1T, 2048): megabytes ('' for 0 = the whole node)
  local value=${1^^} number unit
  [[ $value =~ ^([0-9]+)([KMGT]?)B?$ ]] || { echo ""; return; }
  number=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]:-M}
  ((number == 0)) && { echo ""; return; }
  case $unit in K) echo $(((number + 1023) / 1024)) ;; M) echo "$number" ;; G) echo $((number * 1024)) ;;
    T) echo $((number * 1024 * 1024)) ;; esac
}

gpu_count() {  # a GPU request (4, v100:4, gpu:v100:4, none): the number of GPUs
  local value=${1##*:}
  [[ $value =~ ^[0-9]+$ ]] && echo "$value" || echo 0
}

partition_nodes() {  # partition: one line per node, "CPUS MEMORY_MB GPUS", as sinfo reports (fails without sinfo)
  local where=()
  [[ -n $1 ]] && where=(-p "$1")
  command -v sinfo >/dev/null 2>&1 || return 1
  sinfo -h -N "${where[@]}" -o '%N %c %m %G' 2>/dev/null | sort -u | awk '{
    gpus = 0; n = split($4, gres, ",")
    for (i = 1; i <= n; i++) if (gres[i] ~ /^gpu/) { sub(/\(.*/, "", gres[i]); k = split(gres[i], f, ":"); gpus += f[k] + 0 }
    mem = $3; sub(/[^0-9].*/, "", mem); print $2 + 0, mem + 0, gpus }'
}

check_resources() {  # partition nodes cpus_per_node mem gpus_per_node, then the option of each for messages:
  # die naming the option when no node (or too few nodes) of the partition as sinfo reports it can hold the job
  local partition=$1 nodes=${2:-1} cpus=${3:-1} mem gpus=${5:-0} listing
  mem=$(mem_megabytes "${4:-0}")
  listing=$(partition_nodes "$partition") || return 0  # no sinfo: nothing to check against
  local where="partition ${partition:-(default)}"
  [[ -n $listing ]] || die "${partition:+--partition=$partition: }sinfo lists no node in $where"
  local most_cpus most_mem most_gpus fitting
  read -r most_cpus most_mem most_gpus < <(awk 'BEGIN { c = m = g = 0 } { if ($1 > c) c = $1; if ($2 > m) m = $2
    if ($3 > g) g = $3 } END { print c, m, g }' <<<"$listing")
  ((cpus <= most_cpus)) || die "$7: needs $cpus CPUs on a node; the largest node of $where has $most_cpus (sinfo)"
  [[ -z $mem ]] || ((mem <= most_mem)) ||
    die "$8: needs $mem MB on a node; the largest node of $where has $most_mem MB (sinfo)"
  ((gpus <= most_gpus)) || die "$9: needs $gpus GPUs on a node; the nodes of $where have at most $most_gpus (sinfo)"
  fitting=$(awk -v c="$cpus" -v m="${mem:-0}" -v g="$gpus" '$1 >= c && $2 >= m && $3 >= g' <<<"$listing" | wc -l)
  ((nodes <= fitting)) ||
    die "$6: needs $nodes node(s); $where has $fitting that can hold one task of this job (sinfo)"
}

REFUSALS=(  # what sbatch's error says -> the option it is about
  "generic resource|gres:--gres" "Memory specification|memory:--mem" "partition:--partition" "account:--account"
  "time limit|Time limit:--time" "CPU count|cpus-per-task|Cpus:--cpus-per-task" "Node count|node count:--nodes"
  "qos|QOS:--qos" "node name|exclude:--exclude" "array:--array" "constraint|feature:--constraint")

refused_option() {  # sbatch's error text, the script: the option (with its #SBATCH line in the script) it is about
  local entry pattern option line
  for entry in "${REFUSALS[@]}"; do
    pattern=${entry%:*} option=${entry##*:}
    if grep -Eq "$pattern" <<<"$1"; then
      line=$(grep -m1 -E "^#SBATCH $option(=| |$)" "$2" 2>/dev/null | sed 's/^#SBATCH //')
      echo "${line:-$option}"
      return
    fi
  done
  grep -E '^#SBATCH --(nodes|ntasks|ntasks-per-node|cpus-per-task|mem|gres)=' "$2" 2>/dev/null |
    sed 's/^#SBATCH //' | paste -sd' ' -
}

submit_script() {  # script: sbatch it (SBATCH_CMD); prints the job id, or dies with one line naming the option
  local output error reason
  error=$(mktemp)
  if ! output=$("${SBATCH_CMD[@]}" "$1" 2>"$error"); then
    reason=$(grep -v '^ *$' "$error" | grep -iv 'Batch job submission failed: Requested node configuration' |
      tail -n 1 | sed 's/^sbatch: error: //; s/^Batch job submission failed: //')
    [[ -n $reason ]] || reason=$(grep -v '^ *$' "$error" | tail -n 1 | sed 's/^sbatch: error: //')
    rm -f "$error"
    die "sbatch refused $1: ${reason:-no reason given} ($(refused_option "$reason" "$1"))"
  fi
  rm -f "$error"
  [[ $output =~ ([0-9]+)[^0-9]*$ ]] || die "no job id in the sbatch answer: $output"
  echo "${BASH_REMATCH[1]}"
}
