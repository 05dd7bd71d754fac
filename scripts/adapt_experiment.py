"""Does adapting the encoder to the archive pay? An experiment, not a feature (issue 21).

    .venv/bin/python scripts/adapt_experiment.py indexes/ecbplus event_cluster topic /tmp/adapt/ecb
    .venv/bin/python scripts/adapt_experiment.py indexes/reuters topics90 "" /tmp/adapt/reuters

Arguments: an index built by ``scripts/evaluate.sh``, its label field, its group field (or
""), a work directory. One epoch of unsupervised contrastive fine-tuning of the default model
on the index's own articles (no labels): for each article with two sentences of five words or
more, one sentence chosen at random (seeded) against the title and the rest of the article,
in-batch negatives (the loss of sentence-transformers' ``MultipleNegativesRankingLoss``, scale
20), batch 32, max_seq_length 128, AdamW at 2e-5 with 10% warm-up. The loop is written out with
torch: sentence-transformers' trainer needs ``datasets`` and ``accelerate``, which the project
does not install for an experiment. The same articles are then built into a new index with the
adapted model, and both indexes are scored (hybrid as served, hybrid by score, the dense side
alone) in the same run.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import sys
import time
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer
from torch.nn import functional

from recommender import Article, Recommender
from recommender.embedding.models import default_model_path
from recommender.evaluation import evaluate_index

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
BATCH = 32


def main() -> None:
    source, label, group, work = sys.argv[1], sys.argv[2], sys.argv[3] or None, Path(sys.argv[4])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    with Recommender.open(source) as rec:
        articles = [rec.get(a) for a in sorted(a for _, a in rec._index.state.catalog.all_ids())]
        print("base", scores(rec, label, group), flush=True)
    if work.exists():
        shutil.rmtree(work)
    started = time.perf_counter()
    model, pairs, steps = adapt(articles)
    model.save(str(work / "model"))
    print(f"trained on {pairs} pairs, {steps} steps, {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    with Recommender.build(articles, work / "index", model=str(work / "model")) as rec:
        built = time.perf_counter() - started
        print("adapted", scores(rec, label, group), f"(built in {built:.1f} s)", flush=True)


def scores(rec: Recommender, label: str, group: str | None) -> dict[str, str]:
    sides = {
        "hybrid": rec.ranking,
        "hybrid by score": rec.ranking.with_options(story_first=False),
        "dense side": rec.ranking.with_options(method="dense", time_weight=0.0),
    }
    out = {}
    for name, config in sides.items():
        result = evaluate_index(rec, label_field=label, group_field=group, ranking=config)[0]
        hard = result.hard_negative_rate_at_5
        out[name] = f"{result.map_at_10:.4f}" + ("" if hard is None else f" / {hard:.4f}")
    return out


def adapt(articles: list[Article]) -> tuple[SentenceTransformer, int, int]:
    rng = random.Random(0)
    data = training_pairs(articles, rng)
    model = SentenceTransformer(default_model_path(), device="cpu")
    model.max_seq_length = 128
    total = max(1, len(data) // BATCH)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-5)
    warm = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (total - s) / total)
    )
    model.train()
    rng.shuffle(data)
    for start in range(0, total * BATCH, BATCH):
        batch = data[start : start + BATCH]
        anchors = embed(model, [a for a, _ in batch])
        positives = embed(model, [p for _, p in batch])
        loss = functional.cross_entropy(anchors @ positives.T * 20.0, torch.arange(len(batch)))
        loss.backward()
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
    model.eval()
    model.max_seq_length = 256
    return model, len(data), total


def embed(model: SentenceTransformer, texts: list[str]) -> torch.Tensor:
    features = dict(model.tokenize(texts))
    return functional.normalize(model(features)["sentence_embedding"], dim=-1)


def training_pairs(articles: list[Article], rng: random.Random) -> list[tuple[str, str]]:
    """One (sentence, title and the rest of the article) pair per article that has two."""
    out = []
    for article in articles:
        sentences = [s for s in _SENTENCE.split(article.body) if len(s.split()) >= 5]
        if len(sentences) < 2:
            continue
        i = rng.randrange(len(sentences))
        rest = " ".join(sentences[:i] + sentences[i + 1 :])
        out.append((sentences[i], f"{article.title}. {rest}" if article.title else rest))
    return out


if __name__ == "__main__":
    main()
