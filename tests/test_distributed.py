"""Precomputed embeddings (Parquet) and the Ray Data pipeline that writes them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from recommender import Article, ModelMismatchError, Recommender
from recommender.cli import main
from recommender.embedding.encoders import ArticleEmbedder, HashingEncoder
from recommender.embedding.precomputed import PrecomputedEmbeddings, write_embeddings


def _lists(rec: Recommender) -> dict[str, list[tuple[str, float]]]:
    return {aid: [(m.id, m.score) for m in matches] for aid, matches in rec.related_all(k=5)}


def _write(corpus: list[Article], encoder: HashingEncoder, out: Path) -> None:
    embedder = ArticleEmbedder(encoder)
    write_embeddings(corpus, embedder.embed_articles(corpus), embedder, out)


def test_a_build_from_precomputed_vectors_equals_an_in_process_build(
    corpus: list[Article], encoder: HashingEncoder, tmp_path: Path
) -> None:
    _write(corpus, encoder, tmp_path / "emb")
    with Recommender.build(corpus, tmp_path / "a", encoder=encoder) as direct:
        want = _lists(direct)
    with Recommender.build(
        corpus, tmp_path / "b", encoder=encoder, embeddings=tmp_path / "emb"
    ) as rec:
        assert rec.precomputed is not None
        assert (rec.precomputed.used, rec.precomputed.embedded) == (len(corpus), 0)
        assert _lists(rec) == want


def test_stale_and_missing_vectors_are_embedded_again(
    corpus: list[Article], encoder: HashingEncoder, tmp_path: Path
) -> None:
    _write(corpus[:10], encoder, tmp_path / "emb")
    edited = [replace(a, body=a.body + " updated") if a.id == "port-1" else a for a in corpus]
    with Recommender.build(
        edited, tmp_path / "b", encoder=encoder, embeddings=tmp_path / "emb"
    ) as rec:
        pre = rec.precomputed
        assert pre is not None
        assert (pre.used, pre.embedded) == (9, len(corpus) - 9)
        assert "1 stale" in pre.summary()
        with Recommender.build(edited, tmp_path / "a", encoder=encoder) as direct:
            assert _lists(rec) == _lists(direct)


def test_vectors_of_another_model_are_refused(
    corpus: list[Article], encoder: HashingEncoder, tmp_path: Path
) -> None:
    _write(corpus, HashingEncoder(64), tmp_path / "emb")
    with pytest.raises(ModelMismatchError, match="hashing:64"):
        Recommender.build(corpus, tmp_path / "b", encoder=encoder, embeddings=tmp_path / "emb")
    with (
        Recommender.build(corpus[:3], tmp_path / "c", encoder=encoder) as rec,
        pytest.raises(ModelMismatchError),
    ):
        rec.upsert(corpus, embeddings=tmp_path / "emb")


def test_ray_embedded_build_gives_the_same_related_lists(
    corpus: list[Article], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`recommender embed` (Ray Data, 2 actors of 0.5 CPU), then build/add --embeddings."""
    pytest.importorskip("ray")
    # Ray's driver talks to its local cluster over sockets; the model is still never fetched.
    monkeypatch.undo()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps(a.to_dict()) + "\n" for a in corpus))
    runner = CliRunner()
    embedded = runner.invoke(
        main,
        [
            *("embed", str(source), "--output", str(tmp_path / "emb"), "--model", "hashing:256"),
            *("--actors", "2", "--cpus-per-actor", "0.5", "--json"),
        ],
    )
    assert embedded.exit_code == 0, embedded.output
    assert json.loads(embedded.output.strip().splitlines()[-1])["articles"] == len(corpus)
    assert len(PrecomputedEmbeddings.open(tmp_path / "emb").rows) == len(corpus)

    build = ["build", str(source), "--model", "hashing:256", "--quiet"]
    assert runner.invoke(main, [*build, "--index", str(tmp_path / "a")]).exit_code == 0
    from_ray = [*build, "--index", str(tmp_path / "b"), "--embeddings", str(tmp_path / "emb")]
    result = runner.invoke(main, from_ray)
    assert result.exit_code == 0, result.output
    with Recommender.open(tmp_path / "a") as direct, Recommender.open(tmp_path / "b") as rec:
        assert _lists(rec) == _lists(direct)

    # add --embeddings: an edited article is re-embedded, the rest come from the files.
    source.write_text(
        "".join(
            json.dumps(
                {**a.to_dict(), "body": a.body + " more"} if a.id == "quake-2" else a.to_dict()
            )
            + "\n"
            for a in corpus
        )
    )
    added = runner.invoke(
        main,
        ["add", str(source), "--index", str(tmp_path / "b"), "--embeddings", str(tmp_path / "emb")],
    )
    assert added.exit_code == 0, added.output
    assert "0 vector(s) from precomputed embeddings, 1 embedded here (1 stale" in added.output


def test_build_distributed_embeds_with_ray_then_builds(
    corpus: list[Article], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    monkeypatch.undo()  # Ray's driver talks to its local cluster over sockets
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps(a.to_dict()) + "\n" for a in corpus))
    build = ["build", str(source), "--model", "hashing:256"]
    result = CliRunner().invoke(main, [*build, "--index", str(tmp_path / "b"), "--distributed"])
    assert result.exit_code == 0, result.output
    assert f"{len(corpus)} vector(s) from precomputed embeddings, 0 embedded here" in result.output
    with (
        Recommender.build(corpus, tmp_path / "a", encoder=HashingEncoder(256)) as direct,
        Recommender.open(tmp_path / "b") as rec,
    ):
        assert _lists(rec) == _lists(direct)
