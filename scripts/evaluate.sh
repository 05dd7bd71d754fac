#!/usr/bin/env bash
# Reproduce the figures of docs/relevance.md for one corpus of ../shared/data:
#   scripts/evaluate.sh ecbplus | ecbplus-small | basil | basil-nodates | basil-excerpts | reuters
#                       | reuters-dated
#   scripts/evaluate.sh all      # every corpus against the baselines, one table (no ablation)
# Builds indexes/<corpus> with the default settings, scores the default ranking against the
# TF-IDF and plain-dense baselines in one run, then every ranking choice on and off.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${RECOMMENDER_DATA:-../shared/data}
bin=.venv/bin
corpora=(ecbplus ecbplus-small basil basil-nodates basil-excerpts reuters reuters-dated)
corpus=${1:?usage: scripts/evaluate.sh ${corpora[*]// /|}|all}
if [ "$corpus" = all ]; then
  # One run, every corpus: the default ranking and both baselines per corpus, then one table.
  summary=$(mktemp)
  trap 'rm -f "$summary"' EXIT
  for one in "${corpora[@]}"; do
    EVALUATE_SUMMARY=$summary EVALUATE_NO_ABLATION=1 "$0" "$one"
  done
  echo "== every corpus (MAP@10; P@1, hard-neg@5 where the corpus has groups)"
  column -t -s $'\t' "$summary"
  exit 0
fi
# Derived inputs go to a private temporary directory, and only that is ever removed.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

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
  basil-nodates)
    # The same articles with their dates withheld (an archive without publication dates).
    input=$data/basil/basil_articles.jsonl
    build_opts=()
    eval_opts=(--label-field triplet_id) ;;
  basil-excerpts)
    # What a feed of teasers gives: each article cut to its first 90 words, no dates.
    input=$work/basil-excerpts.jsonl
    "$bin/python" - "$data/basil/basil_articles.jsonl" "$input" <<'PY'
import json, sys
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    for line in src:
        record = json.loads(line)
        record["body"] = " ".join(record["body"].split()[:90])
        record.pop("date", None)
        out.write(json.dumps(record) + "\n")
PY
    build_opts=()
    eval_opts=(--label-field triplet_id) ;;
  reuters|reuters-dated)
    # ModApte test split, documents with at least one of the 90 categories; relevant = shares a
    # topic. reuters-dated keeps their timestamps (as ISO 8601): some four hundred unrelated
    # stories a day, which a time prior too strong pushes up (the check story corpora lack).
    input=$work/$corpus.jsonl
    "$bin/python" - "$data/reuters21578/reuters21578_all.jsonl" "$input" "$corpus" <<'PY'
import json, sys
from datetime import datetime
dated = sys.argv[3] == "reuters-dated"
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    for line in src:
        record = json.loads(line)
        if record["modapte"] == "test" and record["topics90"]:
            if dated:
                stamp = datetime.strptime(record["date"].strip().split(".")[0], "%d-%b-%Y %H:%M:%S")
                record["date"] = stamp.isoformat() + "Z"
            out.write(json.dumps(record) + "\n")
PY
    build_opts=(--id-field newid)
    if [ "$corpus" = reuters-dated ]; then build_opts+=(--date-field date); fi
    eval_opts=(--label-field topics90) ;;
  *) echo "unknown corpus '$corpus'; expected one of ${corpora[*]} or all" >&2; exit 2 ;;
esac

[ -f "$input" ] || { echo "missing $input (set RECOMMENDER_DATA to the data directory)" >&2; exit 1; }
index=indexes/$corpus
echo "== build $index"
"$bin/recommender" build "$input" --index "$index" --quiet "${build_opts[@]}"
echo "== default ranking against the baselines"
"$bin/recommender" evaluate --index "$index" "${eval_opts[@]}" --compare tfidf,dense --quiet \
  --json >"$work/scores.json"
"$bin/python" - "$corpus" "$work/scores.json" "${EVALUATE_SUMMARY:-}" <<'PY'
import json, sys
corpus, scores, summary = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
rows = []
for s in scores:
    hard = s["hard_negative_rate_at_5"]
    rows.append([corpus, s["method"], f"{s['p_at_1']:.3f}", f"{s['map_at_10']:.4f}",
                 f"{s['ndcg_at_10']:.4f}", "" if hard is None else f"{hard:.4f}"])
lines = ["\t".join(r) for r in rows]
print("\t".join(["corpus", "method", "P@1", "MAP@10", "nDCG@10", "hard-neg@5"]))
print("\n".join(lines))
if summary:
    with open(summary, "a") as out:
        if out.tell() == 0:
            out.write("corpus\tmethod\tP@1\tMAP@10\tnDCG@10\thard-neg@5\n")
        out.write("\n".join(lines) + "\n")
PY
if [ -z "${EVALUATE_NO_ABLATION:-}" ]; then
  echo "== each ranking choice on and off"
  "$bin/python" scripts/ablation.py --index "$index" "${eval_opts[@]}"
fi
