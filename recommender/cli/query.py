"""Commands that ask for related articles: related, similar, evaluate."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from recommender.cli._app import (
    index_option,
    main,
    model_check_option,
    page_format_option,
    print_matches,
    progress_enabled,
    query_options,
    ranking_options,
)
from recommender.errors import InputError, InvalidArgumentError

if TYPE_CHECKING:
    from recommender.recommender import Recommender

# -- queries -----------------------------------------------------------------------------


@main.command()
@click.argument("article_id", required=False)
@index_option
@query_options
@click.option("--all", "all_", is_flag=True, help="Every article's related list, as JSONL.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="With --all: write the JSONL here (default: standard output).",
)
@click.option("--quiet", "-q", is_flag=True, help="With --all: no progress bar.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="With --all: processes ranking the lists [default: one per CPU core].",
)
@click.option(
    "--store-lists",
    is_flag=True,
    help="With --all: store every list in the index; add/remove then keep them fresh.",
)
@click.option(
    "--stored",
    is_flag=True,
    help="Answer from the stored list (a lookup) when there is a usable one.",
)
@click.option("--bucket", help="Rank with this named ranking configuration (A/B tests).")
@click.option(
    "--exclude-story",
    is_flag=True,
    help="Nothing from the article's own story: background only (see `recommender story`).",
)
@click.option(
    "--by-score",
    is_flag=True,
    help="Rank by score alone: the article's own story does not come first.",
)
@click.option(
    "--url",
    help="The article at this URL instead of an ARTICLE_ID (compared canonically: scheme, "
    "case, trailing slash and utm_* parameters do not matter).",
)
def related(
    article_id: str | None,
    exclude_story: bool,
    by_score: bool,
    url: str | None,
    index: Path,
    k: int,
    as_json: bool,
    all_: bool,
    output: Path | None,
    quiet: bool,
    workers: int | None,
    explain: bool,
    store_lists: bool,
    stored: bool,
    bucket: str | None,
    **filters: Any,
) -> None:
    """The related list of an indexed article (never the article itself).

    With --all, the list of every article, one JSON line each:
    {"id": ..., "related": [{"id": ..., "score": ...}, ...]}.
    """
    from recommender.recommender import Recommender

    if sum((all_, article_id is not None, url is not None)) != 1:
        raise InvalidArgumentError("give one of ARTICLE_ID, --url or --all")
    if output is not None and not all_:
        raise InvalidArgumentError("--output goes with --all")
    if workers is not None and not all_:
        raise InvalidArgumentError("--workers goes with --all")
    if explain and all_:
        raise InvalidArgumentError("--explain goes with one ARTICLE_ID, not --all")
    if store_lists and not all_:
        raise InvalidArgumentError("--store-lists goes with --all")
    if exclude_story and all_:
        raise InvalidArgumentError("--exclude-story goes with one ARTICLE_ID or --url, not --all")
    if stored and all_:
        raise InvalidArgumentError("--stored goes with one ARTICLE_ID, not --all")
    with Recommender.open(index) as rec:
        ranking = ranking_options(rec, filters, bucket=bucket)
        if by_score:
            ranking = ranking.with_options(story_first=False)
        if all_:
            used = [f"--{name.replace('_', '-')}" for name, value in filters.items() if value]
            if used:
                raise InvalidArgumentError(
                    f"--all computes unfiltered lists; drop {', '.join(used)}"
                )
            options = {
                "ranking": ranking,
                "progress": progress_enabled(quiet),
                "workers": workers or os.cpu_count() or 1,
            }
            if store_lists:
                count = rec.store_lists(k=k, **options)
                click.echo(f"stored {count} related lists (k={k}) in {index}", err=True)
                if output is None:
                    return
            _write_all(rec, k, output, **options)
            return
        if url is not None:
            article_id = rec.article_at(url)
        matches = rec.related(
            article_id or "",
            k=k,
            ranking=ranking,
            explain=explain,
            fresh=not stored,
            exclude_story=exclude_story,
            **filters,
        )
        standing = rec.stored_standing(article_id or "", matches, k=k) if stored else None
        if standing is not None and standing.stale is not None:
            click.echo(
                f"warning: the stored lists are stale ({standing.stale}); this list was "
                f"computed fresh. Recompute them with: {standing.recompute}",
                err=True,
            )
    print_matches(matches, as_json)


def _write_all(
    rec: Recommender, k: int, output: Path | None, *, ranking: Any, progress: bool, workers: int
) -> None:
    from recommender.index.layout import write_lines_atomic

    lines = (
        json.dumps(
            {"id": aid, "related": [{"id": m.id, "score": m.score} for m in matches]},
            ensure_ascii=False,
        )
        for aid, matches in rec.related_all(
            k=k, ranking=ranking, progress=progress, workers=workers
        )
    )
    if output is None or str(output) == "-":
        for line in lines:
            click.echo(line)
        return
    count = write_lines_atomic(output, lines)
    click.echo(f"wrote {count} related lists to {output}", err=True)


@main.command()
@index_option
@click.option("--label-field", required=True, help="Same value = same story (e.g. event_cluster).")
@click.option("--group-field", help="Same value, other label = hard negative (e.g. topic).")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 100))
@click.option(
    "--compare",
    default="",
    help="Comma-separated baselines scored in the same run: tfidf, dense.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--stories",
    is_flag=True,
    help="Score the index's story grouping instead (B-cubed), beside two baselines.",
)
def evaluate(
    index: Path,
    label_field: str,
    group_field: str | None,
    k: int,
    compare: str,
    as_json: bool,
    quiet: bool,
    stories: bool,
) -> None:
    """Leave-one-out relevance of the index's ranking on labelled articles."""
    from recommender.evaluation import evaluate_index
    from recommender.recommender import Recommender

    if stories:
        _evaluate_stories(index, label_field, as_json)
        return
    baselines = [name.strip() for name in compare.split(",") if name.strip()]
    with Recommender.open(index) as rec:
        results = evaluate_index(
            rec,
            label_field=label_field,
            group_field=group_field,
            k=k,
            compare=baselines,
            progress=progress_enabled(quiet),
        )
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
        return
    header = f"{'method':<12} {'queries':>7} {'P@1':>6} {'P@5':>6} {'MAP@10':>7} {'nDCG@10':>7}"
    click.echo(header + ("  hard-neg@5" if group_field else ""))
    for r in results:
        line = (
            f"{r.method:<12} {r.queries:>7} {r.p_at_1:6.3f} {r.p_at_5:6.3f}"
            f" {r.map_at_10:7.4f} {r.ndcg_at_10:7.4f}"
        )
        if r.hard_negative_rate_at_5 is not None:
            line += f"  {r.hard_negative_rate_at_5:10.4f}"
        click.echo(line)


@main.command()
@index_option
@click.option("--text", help="The story text.")
@click.option("--title", help="The story title (with --text, or alone).")
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="A story: a saved page (.html, scraped .txt), extracted as build does, "
    "or plain text (other extensions; - for stdin).",
)
@page_format_option
@click.option(
    "--article-json", type=click.File("r", encoding="utf-8"), help="A JSON record with title/body."
)
@query_options
@model_check_option
def similar(
    index: Path,
    model: str | None,
    text: str | None,
    title: str | None,
    file: str | None,
    page_format: str | None,
    article_json: Any,
    k: int,
    as_json: bool,
    explain: bool,
    **filters: Any,
) -> None:
    """Related articles for a story that is not in the index."""
    from recommender.recommender import Recommender

    query = _similar_query(
        text=text, title=title, file=file, page_format=page_format, article_json=article_json
    )
    with Recommender.open(index, model=model) as rec:
        ranking = ranking_options(rec, filters)
        matches = rec.similar(**query, k=k, ranking=ranking, explain=explain, **filters)
    print_matches(matches, as_json)


def _similar_query(
    *,
    text: str | None,
    title: str | None,
    file: str | None,
    page_format: str | None,
    article_json: Any,
) -> dict[str, Any]:
    given = [
        name
        for name, value in (("--text", text), ("--file", file), ("--article-json", article_json))
        if value
    ]
    if len(given) > 1:
        raise InvalidArgumentError(
            f"give one of --text, --file, --article-json, not {' and '.join(given)}"
        )
    if article_json is not None:
        try:
            record = json.load(article_json)
        except ValueError as exc:
            raise InvalidArgumentError(
                f"--article-json {article_json.name!r}: invalid JSON: {exc}"
            ) from None
        if not isinstance(record, dict):
            raise InvalidArgumentError(
                f"--article-json {article_json.name!r} must hold a JSON object"
            )
        body = record.get("body") or record.get("text") or ""
        return {"title": str(record.get("title") or ""), "body": str(body)}
    if file is not None:
        query = _file_query(file, page_format)
        if query is not None:
            return query if title is None else {**query, "title": title}
        text = _read_story_file(file)
    if text is None and title is None:
        raise InvalidArgumentError("give the story with --text, --file or --article-json")
    # As text when alone, so an error in it names the option that was given.
    return {"text": text} if title is None else {"title": title, "body": text or ""}


def _file_query(path: str, page_format: str | None) -> dict[str, Any] | None:
    """The story of a saved page, extracted as build extracts it; None for plain text."""
    from recommender.ingest.pages import MAX_PAGE_BYTES, extract_page, page_kind

    kind = page_format or (None if path == "-" else page_kind(path))
    if kind is None:
        return None
    data = sys.stdin.buffer.read() if path == "-" else _read_bytes(path, MAX_PAGE_BYTES + 1)
    page = extract_page(data, kind)
    problem = page.problem()
    if problem is not None:
        raise InputError(f"--file {path!r}: {kind} page: {problem}")
    return {"title": page.title, "body": page.body, "published_at": page.published_at}


def _read_story_file(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    data = _read_bytes(path, None)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"--file {path!r} is not UTF-8 text (byte {exc.start + 1})") from None


def _read_bytes(path: str, limit: int | None) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(-1 if limit is None else limit)
    except OSError as exc:
        raise InputError(f"cannot read --file {path!r}: {exc.strerror or exc}") from None


# -- extract -----------------------------------------------------------------------------


def _evaluate_stories(index: Path, label_field: str, as_json: bool) -> None:
    from recommender.evaluation import evaluate_stories
    from recommender.recommender import Recommender

    with Recommender.open(index) as rec:
        scores = evaluate_stories(rec, label_field=label_field)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in scores], indent=2))
        return
    click.echo(
        f"{'method':<24} {'articles':>8} {'stories':>7} {'B3-P':>6} {'B3-R':>6} {'B3-F1':>6}"
    )
    for s in scores:
        click.echo(
            f"{s.method:<24} {s.articles:>8} {s.stories:>7} {s.precision:6.3f} {s.recall:6.3f}"
            f" {s.f1:6.3f}"
        )
