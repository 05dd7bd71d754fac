#!/usr/bin/env bash
# Reproduce the figures of docs/relevance.md for one corpus of ../shared/data:
#   scripts/evaluate.sh ecbplus | ecbplus-small | basil | reuters
# Builds indexes/<corpus> with the default settings, scores the default ranking against the
# TF-IDF and plain-dense baselines in one run, then every ranking choice on and off.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${RECOMMENDER_DATA:-../shared/data}
bin=.venv/bin
# Derived inputs go to a private temporary directory, and only that is ever removed.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus=${1:?usage: scripts/evaluate.sh ecbplus|ecbplus-small|basil|reuters}

case "$corpus" in
  ecbplus)
    input=$data/ecbplus/ecbplus_docs.jsonl
    build_opts=()
    eval_opts=(--label-field event_cluster --group-field topic) ;;
  ecbplus-small)
    # Real story clusters are small (2-5 articles) on narrow beats: keep the first 3 articles of
    # each ecbplus event (file order), so every story keeps its same-topic hard negatives.
    input=$work/ecbplus-small.jsonl
    "$bin/python" - "$data/ecbplus/ecbplus_docs.jsonl" "$input" <<'PY'
import json, sys
from collections import Counter
seen = Counter()
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    for line in src:
        cluster = json.loads(line)["event_cluster"]
        seen[cluster] += 1
        if seen[cluster] <= 3:
            out.write(line)
PY
    build_opts=()
    eval_opts=(--label-field event_cluster --group-field topic) ;;
  basil)
    input=$data/basil/basil_articles.jsonl
    build_opts=(--date-field date)
    eval_opts=(--label-field triplet_id) ;;
  reuters)
    # ModApte test split, documents with at least one of the 90 categories; relevant = shares a topic.
    input=$work/reuters-modapte-test.jsonl
    "$bin/python" - "$data/reuters21578/reuters21578_all.jsonl" "$input" <<'PY'
import json, sys
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    for line in src:
        record = json.loads(line)
        if record["modapte"] == "test" and record["topics90"]:
            out.write(line)
PY
    build_opts=(--id-field newid)
    eval_opts=(--label-field topics90) ;;
  *) echo "unknown corpus '$corpus'; expected ecbplus, ecbplus-small, basil or reuters" >&2; exit 2 ;;
esac

[ -f "$input" ] || { echo "missing $input (set RECOMMENDER_DATA to the data directory)" >&2; exit 1; }
index=indexes/$corpus
echo "== build $index"
"$bin/recommender" build "$input" --index "$index" --quiet "${build_opts[@]}"
echo "== default ranking against the baselines"
"$bin/recommender" evaluate --index "$index" "${eval_opts[@]}" --compare tfidf,dense --quiet
echo "== each ranking choice on and off"
"$bin/python" scripts/ablation.py --index "$index" "${eval_opts[@]}"
