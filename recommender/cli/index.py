"""Commands that write or describe an index: build, add, remove, extract, info."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from recommender.cli._app import (
    follow_symlinks_option,
    index_option,
    input_options,
    main,
    model_check_option,
    page_format_option,
    progress_enabled,
    read_inputs,
)
from recommender.cli.embed import embed_for_build, ray_options
from recommender.errors import RejectedRecordsError
from recommender.types import Article, Rejection

if TYPE_CHECKING:
    from recommender.ingest.records import ReadStats
    from recommender.recommender import Recommender
    from recommender.types import UpdateReport

embeddings_option = click.option(
    "--embeddings",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Vectors written by `recommender embed`: articles found there (same text) are not "
    "encoded again.",
)

_MAX_LISTED_REJECTS = 20

# -- build / add / remove ----------------------------------------------------------------


@main.command()
@input_options
@index_option
@click.option(
    "--model",
    help="sentence-transformers model name or path [default: all-MiniLM-L6-v2, packaged].",
)
@click.option(
    "--index-type",
    type=click.Choice(["auto", "flat", "ivf"]),
    default="auto",
    show_default=True,
    help="Vector search: flat (exact), ivf (approximate, for 100k+ articles), or auto: "
    "flat below 50,000 articles, ivf above.",
)
@click.option(
    "--encoder-backend",
    # The same names as encoders.BACKENDS (a test keeps them equal); importing
    # that module here would load numpy for every command.
    type=click.Choice(["torch", "onnx", "onnx-int8"]),
    default=None,
    help="How the model runs: torch, onnx (onnxruntime, fp32) or onnx-int8 (onnxruntime, "
    "int8 weights) [default: onnx-int8]. Recorded in the index: add and similar use it.",
)
@click.option(
    "--store",
    default="faiss",
    show_default=True,
    help="Where the vectors live: faiss (files in the index), milvus:///path/file.db "
    "(Milvus Lite) or milvus://HOST:19530 (a Milvus server; token from "
    "$RECOMMENDER_MILVUS_TOKEN or the file in $RECOMMENDER_MILVUS_TOKEN_FILE).",
)
@embeddings_option
@click.option(
    "--distributed",
    is_flag=True,
    help="Embed with a Ray Data pipeline first (as `recommender embed`), then build.",
)
@ray_options
@click.option(
    "--calibrate/--no-calibrate",
    default=False,
    show_default=True,
    help="Estimate the time prior from the archive's own date gaps (no labels) instead of "
    "the fixed 1.0 x exp(-days/7); measured in docs/relevance.md (not the default: it did "
    "not win on every corpus).",
)
@click.option(
    "--estimate-weight/--no-estimate-weight",
    default=True,
    show_default=True,
    help="Estimate the lexical side's weight from the archive (equal spread of both sides at "
    "the top of its lists; docs/relevance.md); --no-estimate-weight keeps 1.0.",
)
def build(
    index: Path,
    model: str | None,
    index_type: str,
    encoder_backend: str | None,
    store: str,
    embeddings: Path | None,
    distributed: bool,
    calibrate: bool,
    estimate_weight: bool,
    **opts: Any,
) -> None:
    """Build a new index from JSONL/CSV/JSON files, saved pages or folders of them.

    - reads JSONL from stdin. Pages (.html, scraped .txt) are extracted as `recommender
    extract` shows.

    The new index replaces any index at --index atomically, only once it is complete.
    """
    from recommender.errors import InvalidArgumentError
    from recommender.ingest.records import ReadStats
    from recommender.recommender import Recommender
    from recommender.stores import check_store_url
    from recommender.types import Article

    started = time.monotonic()
    check_store_url(store)
    if distributed and embeddings is not None:
        raise InvalidArgumentError("give --distributed or --embeddings, not both")
    stats = ReadStats()
    items = read_inputs(opts["inputs"], opts, stats=stats)
    scratch = embed_for_build(items, model, encoder_backend, opts) if distributed else None
    if scratch is not None:
        embeddings = Path(scratch.name) / "embeddings"
    try:
        rec = Recommender.build(
            items,
            index,
            model=model,
            strict=opts["strict"],
            progress=progress_enabled(opts["quiet"]),
            total=sum(isinstance(i, Article) for i in items),
            index_type=index_type,
            encoder_backend=encoder_backend,
            store=store,
            embeddings=embeddings,
            calibrate=calibrate,
            estimate_weight=estimate_weight,
        )
    finally:
        if scratch is not None:
            scratch.cleanup()
    _print_precomputed(rec, opts)
    _print_update("built", index, rec.report, stats, opts, time.monotonic() - started)


def _print_precomputed(rec: Recommender, opts: dict[str, Any]) -> None:
    if rec.precomputed is not None and not opts["quiet"] and not opts["as_json"]:
        click.echo(rec.precomputed.summary(), err=True)


@main.command()
@input_options
@index_option
@model_check_option
@embeddings_option
def add(index: Path, model: str | None, embeddings: Path | None, **opts: Any) -> None:
    """Add or update articles: new and changed ones are embedded, unchanged ones skipped."""
    from recommender.ingest.records import ReadStats
    from recommender.recommender import Recommender

    started = time.monotonic()
    stats = ReadStats()
    items = read_inputs(opts["inputs"], opts, stats=stats)
    with Recommender.open(index, model=model) as rec:
        report = rec.upsert(
            items,
            strict=opts["strict"],
            progress=progress_enabled(opts["quiet"]),
            embeddings=embeddings,
        )
        _print_precomputed(rec, opts)
    _print_update("updated", index, report, stats, opts, time.monotonic() - started)


@main.command()
@click.argument("ids", nargs=-1, required=True)
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def remove(ids: tuple[str, ...], index: Path, as_json: bool) -> None:
    """Delete articles by id (ids not in the index are reported, not fatal)."""
    from recommender.recommender import Recommender

    with Recommender.open(index) as rec:
        report = rec.remove(ids)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    for missing in report.missing:
        click.echo(f"warning: article {missing!r} is not in the index", err=True)
    click.echo(f"removed {report.removed} article(s); {report.total} left in {index}")


def _print_update(
    verb: str,
    index: Path,
    report: UpdateReport | None,
    stats: ReadStats,
    opts: dict[str, Any],
    secs: float,
) -> None:
    assert report is not None
    if opts["as_json"]:
        data = {**report.to_dict(), "blank_lines": stats.blank_lines}
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    if not opts["quiet"]:
        _print_rejects(report.rejected)
    parts = [f"indexed {report.added}"]
    if verb == "updated":
        parts = [
            f"added {report.added}",
            f"re-embedded {report.reembedded}",
            f"metadata updated {report.metadata_updated}",
            f"unchanged {report.unchanged}",
        ]
    parts.append(f"rejected {len(report.rejected)}")
    if stats.blank_lines:
        # So the counts add up to the lines of the input.
        plural = "s" if stats.blank_lines != 1 else ""
        parts.append(f"{stats.blank_lines} blank line{plural} skipped")
    where = f" (see {report.rejects_path})" if report.rejects_path else ""
    click.echo(f"{verb} {index}: {', '.join(parts)}{where}; {report.total} articles in {secs:.1f}s")


def _print_rejects(rejected: Sequence[Rejection]) -> None:
    for rejection in rejected[:_MAX_LISTED_REJECTS]:
        click.echo(f"rejected {rejection}", err=True)
    if len(rejected) > _MAX_LISTED_REJECTS:
        click.echo(f"... and {len(rejected) - _MAX_LISTED_REJECTS} more", err=True)


# -- queries -----------------------------------------------------------------------------


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@page_format_option
@follow_symlinks_option
@click.option("--json", "as_json", is_flag=True, help="One JSON record a line, as build reads.")
def extract(
    inputs: tuple[str, ...], page_format: str | None, follow_symlinks: bool, as_json: bool
) -> None:
    """Show what would be indexed from pages (files, folders, globs), without indexing.

    With --json the output is exactly the records build would index (JSONL: save it and
    build from it for the same index). Rejected pages are listed on stderr; the exit status
    is 5 if any was rejected.
    """
    from recommender.ingest.records import read_records

    rejected: list[Rejection] = []
    shown = 0
    items = read_records(list(inputs), page_format=page_format, follow_symlinks=follow_symlinks)
    for item in items:
        if isinstance(item, Rejection):
            rejected.append(item)
            click.echo(f"rejected {item}", err=True)
            continue
        shown += 1
        if as_json:
            click.echo(json.dumps(item.to_dict(), ensure_ascii=False))
        else:
            _print_extracted(item, first=shown == 1)
    if not as_json or rejected:
        click.echo(f"{shown} extracted, {len(rejected)} rejected", err=True)
    if rejected:
        sys.exit(RejectedRecordsError.exit_code)


def _print_extracted(article: Article, *, first: bool) -> None:
    if not first:
        click.echo()
    click.echo(f"id:           {article.id}")
    click.echo(f"title:        {article.title}")
    date = article.published_at.isoformat() if article.published_at else "-"
    click.echo(f"published_at: {date}")
    for name in ("url", "language", "section"):
        click.echo(f"{name + ':':<14}{getattr(article, name) or '-'}")
    click.echo(f"tags:         {', '.join(article.tags) or '-'}")
    words = len(article.body.split())
    click.echo(f"body:         {words} words, {len(article.body)} characters")
    click.echo(textwrap.indent(article.body, "  "))


@main.command()
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(index: Path, as_json: bool) -> None:
    """Show an index's manifest and counts."""
    from recommender.recommender import Recommender

    with Recommender.open(index) as rec:
        data = rec.info().to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(f"index:      {data['path']}")
    click.echo(f"articles:   {data['counts']['articles']}")
    backend = data["model"].get("backend", "torch")
    click.echo(
        f"model:      {data['model']['id']} ({data['model']['dimension']}-d, normalised, "
        f"{backend} backend)"
    )
    where = data.get("store_options", {})
    place = f", {where['url']}, collection {where['collection']}" if "collection" in where else ""
    click.echo(f"store:      {data['store']} ({data['metric']}{place})")
    click.echo(f"embedding:  {data['embedding']['strategy']}")
    ranking = data.get("ranking", {})
    click.echo(
        f"ranking:    {ranking.get('method')} ({ranking.get('fusion')}), "
        f"{ranking.get('candidates')} candidates per side"
    )
    click.echo(f"fusion:     {describe_fusion(ranking, data.get('calibration'))}")
    click.echo(f"time prior: {describe_time_prior(ranking, data.get('calibration'))}")
    click.echo(f"stories:    {describe_stories(ranking, data.get('stories'))}")
    click.echo(f"format:     {data['format_version']}")
    click.echo(f"created:    {data['created_at']}")
    click.echo(f"updated:    {data['updated_at']}")
    versions = ", ".join(f"{k} {v}" for k, v in sorted(data["versions"].items()) if v)
    click.echo(f"built with: {versions}")


# -- demo --------------------------------------------------------------------------------


@main.command()
@index_option
@click.option(
    "--time/--no-time",
    default=None,
    help="Estimate the time prior and rank by it from now on (opt-in: not the default "
    "ranking); --no-time: the lexical weight only. Neither: the time prior again only where "
    "the index already uses an estimated one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was estimated as JSON.")
def calibrate(index: Path, time: bool | None, as_json: bool) -> None:
    """Estimate the index's lexical weight (a build does) and, where asked, its time prior
    (build --calibrate, or --time) from its own articles.

    No labels needed: the weight comes from how both sides' scores spread at the top of
    sampled articles' lists, the curve from the date gaps of their top candidates. A write
    estimates again what the index uses once the archive has grown by a quarter; this does
    it now. Stored lists become stale.
    """
    from recommender.recommender import Recommender

    with Recommender.open(index) as rec:
        found = rec.calibrate(time=time)
        data = rec.info().to_dict()
    if as_json:
        click.echo(json.dumps(found.to_dict(), indent=2))
        return
    click.echo(f"fusion:     {describe_fusion(data.get('ranking', {}), data.get('calibration'))}")
    # A curve estimated now, or one asked for (--time) and not estimated: say which ("off").
    if time or found.time is not None:
        click.echo(
            f"time prior: {describe_time_prior(data.get('ranking', {}), data.get('calibration'))}"
        )


def describe_stories(ranking: dict[str, Any], stories: dict[str, Any] | None) -> str:
    """One line on the index's stories and whether related lists rank the own story first."""
    if stories is None:
        return "not grouped (recommender stories --regroup)"
    span = stories.get("span_days")
    first = "own story first in related lists" if ranking.get("story_first", True) else "by score"
    return (
        f"{stories.get('articles')} articles grouped {stories.get('grouped_at')}"
        + (f", {stories['pending']} to place" if stories.get("pending") else "")
        + (f", a story spans at most {span:g} days" if span else "")
        + f"; {first}"
    )


def describe_fusion(ranking: dict[str, Any], calibration: dict[str, Any] | None) -> str:
    """One line on how an index's ranking adds its two sides, and where the weight came from."""
    method, fusion = ranking.get("method"), ranking.get("fusion")
    if method != "hybrid":
        return f"{method} side only"
    weight = ranking.get("lexical_weight", 1.0)
    line = f"dense + {weight:g} x lexical ({fusion})"
    found = (calibration or {}).get("fusion")
    if not found:
        return line
    if found.get("reason"):
        return f"{line} (not estimated: {found['reason']})"
    if found.get("lexical_weight") != weight:
        return f"{line} (set by hand; estimated {found.get('lexical_weight')})"
    return (
        f"{line}, estimated: equal spread over the top {found.get('depth')} of "
        f"{found.get('queries')} articles' lists (z spread there: dense "
        f"{found.get('dense_spread')}, lexical {found.get('lexical_spread')})"
    )


def describe_time_prior(ranking: dict[str, Any], calibration: dict[str, Any] | None) -> str:
    """One line on the time prior of an index's ranking and where it came from."""
    weight = ranking.get("time_weight")
    if not weight:
        return "off"
    curve = ranking.get("time_curve")
    if curve:
        found = (calibration or {}).get("time", {})
        points = ", ".join(f"{d:g} d {v:+.2f}" for d, v in curve[::3])
        return (
            f"estimated from {found.get('dated_pairs', '?')} dated candidate pairs "
            f"(same-story share {found.get('same_story_share')}, separation "
            f"{found.get('separation')}): {points} (x {weight})"
        ) + _year_scale(ranking, curve=True)
    reason = ((calibration or {}).get("time") or {}).get("reason")
    fixed = f"{weight} x exp(-days/{ranking.get('time_scale_days')})"
    fixed = f"{fixed} (fixed: {reason})" if reason else fixed
    return fixed + _year_scale(ranking, curve=False)


def _year_scale(ranking: dict[str, Any], *, curve: bool) -> str:
    """The year scale's part of the time-prior line ('' when off)."""
    share = ranking.get("year_weight", 0.0)  # stored before the year scale existed: none
    if not share:
        return ""
    whom = "undated pairs" if curve else "within a year or not"
    whom += ", a missing date read as the latest year written"
    return f"; year scale +/-{share:g} x {ranking.get('time_weight')} ({whom})"
