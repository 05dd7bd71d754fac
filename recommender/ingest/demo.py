"""The bundled demo corpus: original news-style articles written for this project."""

from __future__ import annotations

from importlib import resources

from recommender.ingest.records import article_from_mapping
from recommender.types import Article

__all__ = ["DEFAULT_STORY", "demo_articles", "demo_corpus_path"]

#: The story whose related list ``recommender demo`` prints.
DEFAULT_STORY = "demo-001"


def demo_corpus_path() -> str:
    """Path of the bundled JSONL file (inside the installed package)."""
    return str(resources.files("recommender") / "data" / "demo_articles.jsonl")


def demo_articles() -> list[Article]:
    import json

    text = (resources.files("recommender") / "data" / "demo_articles.jsonl").read_text("utf-8")
    return [article_from_mapping(json.loads(line)) for line in text.splitlines() if line.strip()]
