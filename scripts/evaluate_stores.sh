#!/usr/bin/env bash
# The scale-out acceptance checks on ecbplus (docs/benchmarks.md, "Milvus and Ray"):
#   scripts/evaluate_stores.sh
# 1. builds indexes/ecbplus in-process (FAISS, the default), unless it exists;
# 2. embeds the corpus with Ray (`recommender embed`, 2 actors of 0.5 CPU) into
#    indexes/ecbplus-emb (unless it exists: delete it to embed again) and builds indexes/ecbplus-ray from it (FAISS): its related lists
#    must equal the in-process build's;
# 3. builds the same embeddings into Milvus Lite (indexes/ecbplus-lite, file
#    indexes/ecbplus-lite.db) and into a real Milvus server (scripts/with_milvus_server.sh),
#    and prints MAP@10 of every store: they must agree within 0.002.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${RECOMMENDER_DATA:-../shared/data}
input=$data/ecbplus/ecbplus_docs.jsonl
bin=.venv/bin
eval_opts=(--label-field event_cluster --group-field topic --json --quiet)
[ -f "$input" ] || { echo "missing $input (set RECOMMENDER_DATA to the data directory)" >&2; exit 1; }
export HF_HUB_OFFLINE=1

map() { "$bin/recommender" evaluate --index "$1" "${eval_opts[@]}" | "$bin/python" -c \
  'import json,sys; print(json.load(sys.stdin)[0]["map_at_10"])'; }

if [ ! -f indexes/ecbplus/manifest.json ]; then
  echo "== in-process build (FAISS)"
  "$bin/recommender" build "$input" --index indexes/ecbplus --quiet
fi
if [ ! -f indexes/ecbplus-emb/embeddings.json ]; then
  echo "== Ray embedding"
  "$bin/recommender" embed "$input" --output indexes/ecbplus-emb --quiet --actors 2 --cpus-per-actor 0.5
fi
echo "== FAISS build from the Ray embeddings"
"$bin/recommender" build "$input" --index indexes/ecbplus-ray --embeddings indexes/ecbplus-emb
"$bin/recommender" related --all --index indexes/ecbplus --output indexes/ecbplus.lists.jsonl --quiet
"$bin/recommender" related --all --index indexes/ecbplus-ray --output indexes/ecbplus-ray.lists.jsonl --quiet
"$bin/python" - indexes/ecbplus.lists.jsonl indexes/ecbplus-ray.lists.jsonl <<'PY'
import json, sys
a, b = ([json.loads(line) for line in open(path)] for path in sys.argv[1:3])
ids = lambda rows: {r["id"]: [m["id"] for m in r["related"]] for r in rows}
same = sum(ids(a)[k] == ids(b).get(k) for k in ids(a))
worst = max(abs(x["score"] - y["score"]) for r, s in zip(a, b) for x, y in zip(r["related"], s["related"]))
print(f"Ray-embedded build: {same}/{len(a)} related lists identical to the in-process build; "
      f"largest score difference {worst:.2g}")
PY
echo "== Milvus Lite build from the same embeddings"
rm -f indexes/ecbplus-lite.db
"$bin/recommender" build "$input" --index indexes/ecbplus-lite --embeddings indexes/ecbplus-emb \
  --store "milvus://indexes/ecbplus-lite.db" --quiet
echo "== MAP@10"
echo "faiss (in-process embedding): $(map indexes/ecbplus)"
echo "faiss (Ray embedding):        $(map indexes/ecbplus-ray)"
echo "milvus-lite:                  $(map indexes/ecbplus-lite)"
# The server lives only as long as the command it wraps: build and evaluate inside it.
scripts/with_milvus_server.sh bash -c '
  .venv/bin/recommender build "$1" --index indexes/ecbplus-server --embeddings indexes/ecbplus-emb \
    --store "$RECOMMENDER_MILVUS_URL" --quiet >/dev/null
  printf "milvus-server:                %s\n" "$(.venv/bin/recommender evaluate --index indexes/ecbplus-server \
    --label-field event_cluster --group-field topic --json --quiet | .venv/bin/python -c \
    "import json,sys; print(json.load(sys.stdin)[0][\"map_at_10\"])")"
' _ "$input"
