#!/usr/bin/env bash
# Run the published prediction-input chain and `python -m bert_tf.classifier.contexts` on the same synthetic
# tagger run and compare every context file they write, byte for byte.
#
#   scripts/compare_published_contexts.sh PUBLISHED_REPO_DIR [SEED...]
#
# PUBLISHED_REPO_DIR is a checkout of BioBERT-based-entity-type-classifier (its generate_prediction_inputs/
# scripts are used, unchanged, from a temporary copy). Both chains turn tagger runs into context files for che, org,
# ggp and dis: the demo's (data/demo/tagger, 3 shards, 100 words) and, for each SEED (default: 1 2 3), one that
# scripts/make_tagger_cases.py writes with awkward cases, once with 7 shards and 100 words, once with 1 shard and
# 3 words, once with 12 shards and 12 words. The
# published commands are those of generate_prediction_inputs/sort-split.sh and generate-contexts.sh with the shard
# count and the words as parameters, sort under LC_ALL=C, python3 = $PYTHON (default python3).
# Exit status: 0 identical, 1 different (diff on stdout), 2 bad arguments or a failed run.
set -euo pipefail

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then usage; [[ "${1:-}" == -h || "${1:-}" == --help ]] && exit 0; exit 2; fi
PUBLISHED=$1/generate_prediction_inputs/scripts
shift
SEEDS=${*:-1 2 3}
PYTHON=${PYTHON:-python3}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for f in create_documents.pl create_matches.pl split_string.py add_rank_db_matches.py get_contexts.py; do
    [[ -f "$PUBLISHED/$f" ]] || { echo "error: $PUBLISHED/$f: no such file" >&2; exit 2; }
done

export LC_ALL=C
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

documents() {  # IN: the documents files of a tagger run, in name order (no spaces in the paths)
    echo "$1"/documents*
}

published() {  # IN OUT N WORDS: the published chain (sort-split.sh, generate-contexts.sh) in OUT
    local in=$1 out=$2 n=$3 words=$4 i w type
    mkdir -p "$out/scripts" "$out/results"
    cp "$PUBLISHED"/*.pl "$PUBLISHED"/*.py "$out/scripts/"
    cp "$in/scientific_names_and_ranks.tsv" "$out/scripts/"
    cd "$out"
    perl ./scripts/create_matches.pl "$in/all_entities.tsv" "$in/all_matches.tsv" results/database_matches.tsv >/dev/null
    perl ./scripts/create_documents.pl "$in/excluded_documents.txt" \
        "gzip -cdf $(documents "$in") |" results/database_documents.tsv
    mkdir -p split sorted-split split-org-only split-org-only-first split-org-only-first-ranked \
        split-org-only-first-species sorted-split-org-only-first-species split-contexts delme
    "$PYTHON" ./scripts/split_string.py -n "$n" -s .tsv results/database_documents.tsv split/database_documents-
    "$PYTHON" ./scripts/split_string.py -n "$n" -s .tsv results/database_matches.tsv split/database_matches-
    for f in split/database_documents-*.tsv; do sort -n $f > sorted-split/$(basename $f); done
    for f in split/database_matches-*.tsv; do sort -n $f > sorted-split/$(basename $f); done
    local last=$((n - 1))
    w=${#last}  # split_string.py's zero padding
    for ((k = 0; k < n; k++)); do
        i=$(printf "%0${w}d" "$k")
        awk -F"\t" '$4=="-2"' split/database_matches-"$i".tsv > split-org-only/database_matches-"$i".tsv
        awk -F"\t" '!seen[$1,$2,$3,$4]++' split-org-only/database_matches-"$i".tsv > split-org-only-first/database_matches-"$i".tsv
        "$PYTHON" ./scripts/add_rank_db_matches.py split-org-only-first/database_matches-"$i".tsv > split-org-only-first-ranked/database_matches-"$i".tsv 2>/dev/null
        awk -F"\t" '$6=="species"{printf("%s\t%s\t%s\t%s\t%s\n",$1,$2,$3,$4,$5)}' split-org-only-first-ranked/database_matches-"$i".tsv > split-org-only-first-species/database_matches-"$i".tsv
        sort -n split-org-only-first-species/database_matches-"$i".tsv > sorted-split-org-only-first-species/database_matches-"$i".tsv
        awk -F"\t" 'NR==FNR{a[$1];next}{if($1 in a){print $0}}' <(cut -f1 sorted-split-org-only-first-species/database_matches-"$i".tsv | sort -u ) sorted-split/database_documents-"$i".tsv > sorted-split-org-only-first-species/database_documents-"$i".tsv
        for type in che org ggp dis; do
            if [[ $type != org ]]; then
                "$PYTHON" ./scripts/get_contexts.py -t $type -w "$words" sorted-split/database_{documents,matches}-$i.tsv \
                    > split-contexts/$type-contexts-w$words-$i.tsv 2>delme/${type}_contexts-$i.txt || true
            else
                "$PYTHON" ./scripts/get_contexts.py -t $type -w "$words" sorted-split-org-only-first-species/database_{documents,matches}-$i.tsv \
                    > split-contexts/$type-contexts-w$words-$i.tsv 2>delme/${type}_contexts-$i.txt || true
            fi
        done
    done
    cd - >/dev/null
}

ours() {  # IN OUT N WORDS
    local in=$1
    PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m bert_tf.classifier.contexts \
        --matches "$in/all_matches.tsv" --entities "$in/all_entities.tsv" --excluded "$in/excluded_documents.txt" \
        --documents $(documents "$in") \
        --ranks "$in/scientific_names_and_ranks.tsv" --output_dir "$2" --shards "$3" --words "$4" >/dev/null
}

status=0
cases=("demo $REPO/data/demo/tagger 3 100")
for seed in $SEEDS; do
    "$PYTHON" "$REPO/scripts/make_tagger_cases.py" --out "$work/in-$seed" --seed "$seed"
    for setting in "7 100" "1 3" "12 12"; do cases+=("seed-$seed $work/in-$seed $setting"); done
done
for spec in "${cases[@]}"; do
        read -r name in n words <<<"$spec"
        case=$work/case-$name-$n-$words
        published "$in" "$case/published" "$n" "$words"
        ours "$in" "$case/ours" "$n" "$words" 2>/dev/null || { echo "error: bert_tf.classifier.contexts failed ($name)" >&2; exit 2; }
        if diff -r -x contexts_info.json "$case/published/split-contexts" "$case/ours"; then
            lines=$(cat "$case/ours"/*.tsv | wc -l)
            skipped=$(cat "$case/published"/delme/* | grep -c 'extra space' || true)
            empty=$(cat "$case/published"/delme/* | grep -c '^ValueError: no \(documents\|tags\)$' || true)
            failed=$(cat "$case/published"/delme/* | grep '^[A-Za-z]*Error' | grep -vc '^ValueError: no \(documents\|tags\)$' || true)
            echo "$name, $n shard(s), $words words: identical ($(ls "$case/ours"/*.tsv | wc -l) files, $lines lines;" \
                 "published: $skipped 'extra space' document skips, $empty runs on an empty shard, $failed other failures)"
            [[ $failed == 0 ]] || status=1
        else
            status=1
        fi
done
exit $status
