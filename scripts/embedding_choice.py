"""Compare ways of embedding long articles, leave-one-out on the labelled corpora.

Reproduces the table in docs/relevance.md:

    .venv/bin/python scripts/embedding_choice.py

For each corpus in ../shared/data (or $RECOMMENDER_DATA; skipped when absent) and each setting of
ArticleEmbedder, every article queries all others by cosine; an article's
relevant set is the rest of its story (ecbplus event_cluster, basil triplet_id).
Prints MAP@10 (average precision at 10, normalised by min(R, 10)), P@1 and the
encoding time as a ratio to the plain cut (first row) measured in the same run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.embedding.encoders import ArticleEmbedder, SentenceTransformerEncoder  # noqa: E402

DATA = Path(os.environ.get("RECOMMENDER_DATA", ROOT.parent / "shared" / "data"))
CORPORA = {
    "ecbplus": (DATA / "ecbplus" / "ecbplus_docs.jsonl", "event_cluster"),
    "basil": (DATA / "basil" / "basil_articles.jsonl", "triplet_id"),
}
SETTINGS: dict[str, dict[str, float]] = {
    "cut at 256 tokens (title+body)": {"passage_words": 10**9, "max_passages": 1},
    "mean of 150-word passages (max 8)": {
        "passage_words": 150,
        "max_passages": 8,
        "lead_weight": 1.0,
    },
    "150-word passages, lead x2 (max 8)": {
        "passage_words": 150,
        "max_passages": 8,
        "lead_weight": 2.0,
    },
    "200-word passages, lead x4 (max 3) [default]": {},
    "title only": {"title_only": 1},
}


def leave_one_out(vectors: np.ndarray, labels: np.ndarray, k: int = 10) -> tuple[float, float]:
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    aps, p1 = [], []
    for i in range(len(vectors)):
        relevant = int((labels == labels[i]).sum()) - 1
        if relevant == 0:
            continue
        top = np.argsort(-scores[i])[:k]
        hits = labels[top] == labels[i]
        precision_at = np.cumsum(hits) / np.arange(1, k + 1)
        aps.append(float((precision_at * hits).sum() / min(relevant, k)))
        p1.append(float(hits[0]))
    return float(np.mean(aps)), float(np.mean(p1))


def main() -> None:
    encoder = SentenceTransformerEncoder()
    for corpus, (path, label_field) in CORPORA.items():
        if not path.exists():
            print(f"{corpus}: {path} not found, skipped")
            continue
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        pairs = [(r.get("title") or "", r.get("body") or "") for r in rows]
        labels = np.array([r[label_field] for r in rows])
        print(f"\n{corpus}: {len(rows)} articles")
        print(f"{'setting':<46} {'MAP@10':>7} {'P@1':>6} {'time':>6}")
        baseline = None
        for name, settings in SETTINGS.items():
            started = time.perf_counter()
            options = {k: v for k, v in settings.items() if k != "title_only"}
            texts = [(title, "") for title, _ in pairs] if "title_only" in settings else pairs
            vectors = ArticleEmbedder(encoder, **options).embed_texts(texts)  # type: ignore[arg-type]
            seconds = time.perf_counter() - started
            baseline = baseline or seconds
            map10, p1 = leave_one_out(vectors, labels)
            print(f"{name:<46} {map10:7.4f} {p1:6.3f} {seconds / baseline:5.2f}x")


if __name__ == "__main__":
    main()
