"""The ``recommender`` command line: parse arguments, call the library, print.

Heavy modules (numpy, faiss, torch) are imported inside commands so that
``recommender --help`` stays instant.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .errors import InputError, InvalidArgumentError, RecommenderError, RejectedRecordsError
from .types import Article, Rejection

if TYPE_CHECKING:
    from .ingest import FieldMap
    from .recommender import Recommender
    from .types import Match, UpdateReport

F = TypeVar("F", bound=Callable[..., Any])
_MAX_LISTED_REJECTS = 20


class _Group(click.Group):
    """Translates library errors into one-line messages and exit codes, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RecommenderError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; the index is unchanged by the unfinished command.", err=True)
            ctx.exit(130)


@click.group(cls=_Group)
@click.version_option(package_name="recommender")
def main() -> None:
    """Related-article recommendations: build an index of articles, then ask what is related."""


# -- shared options ------------------------------------------------------------------


def _index_option(f: F) -> F:
    return click.option(
        "--index",
        "index",
        required=True,
        envvar="RECOMMENDER_INDEX",
        type=click.Path(file_okay=False, path_type=Path),
        help="Index directory, e.g. indexes/news (or $RECOMMENDER_INDEX).",
    )(f)


_page_format_option = click.option(
    "--format",
    "page_format",
    type=click.Choice(["html", "text"]),
    help="Read input files as saved HTML pages or scraped text pages, whatever their "
    "extension [default: by extension: .html/.htm/.xhtml, .txt].",
)


def _input_options(f: F) -> F:
    options = [
        click.argument("inputs", nargs=-1, required=True),
        click.option(
            "--id-field", default="id", show_default=True, help="Field holding the article id."
        ),
        click.option("--title-field", default="title", show_default=True),
        click.option("--body-field", default="body", show_default=True),
        click.option("--url-field", default="url", show_default=True),
        click.option(
            "--date-field", default="published_at", show_default=True, help="ISO 8601 date field."
        ),
        click.option("--section-field", default="section", show_default=True),
        click.option("--tags-field", default="tags", show_default=True),
        click.option("--language-field", default="language", show_default=True),
        _page_format_option,
        click.option(
            "--strict", is_flag=True, help="Fail on any rejected record; publish nothing."
        ),
        click.option(
            "--quiet", "-q", is_flag=True, help="No progress bar, no per-record messages."
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _query_options(f: F) -> F:
    options = [
        click.option(
            "-k",
            "k",
            default=10,
            show_default=True,
            type=click.IntRange(1, 1000),
            help="How many results.",
        ),
        click.option(
            "--section", multiple=True, help="Only this section (repeatable: any of them)."
        ),
        click.option("--since", help="Only articles published on/after this ISO 8601 date."),
        click.option(
            "--until", help="Only articles published before this date (a date includes that day)."
        ),
        click.option("--language", multiple=True, help="Only this language (repeatable)."),
        click.option("--exclude", multiple=True, help="Never return this article id (repeatable)."),
        click.option(
            "--diversity",
            type=click.FloatRange(0.0, 1.0, max_open=True),
            help="MMR trade-off: 0 off, 0.3 favours items unlike those above them.",
        ),
        click.option(
            "--dedupe-threshold",
            type=click.FloatRange(0.0, 1.0),
            help="Collapse results whose cosine to a better one reaches this (copies).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _ranking(rec: Recommender, filters: dict[str, Any]) -> Any:
    """Pop the ranking options out of the query options: None keeps the index's defaults."""
    options = {name: filters.pop(name) for name in ("diversity", "dedupe_threshold")}
    return rec.ranking.with_options(**options)


def _model_check_option(f: F) -> F:
    return click.option(
        "--model",
        help="Fail unless the index was built with this model (the index's own model is used).",
    )(f)


def _field_map(opts: dict[str, Any]) -> FieldMap:
    from .ingest import FieldMap

    return FieldMap(
        id=opts["id_field"],
        title=opts["title_field"],
        body=opts["body_field"],
        url=opts["url_field"],
        published_at=opts["date_field"],
        section=opts["section_field"],
        tags=opts["tags_field"],
        language=opts["language_field"],
    )


def _read_inputs(inputs: Sequence[str], opts: dict[str, Any]) -> list[Any]:
    from .ingest import read_records

    records = read_records(list(inputs), fields=_field_map(opts), page_format=opts["page_format"])
    if not _progress_enabled(opts["quiet"]):
        return list(records)
    from tqdm import tqdm

    # Extracting a folder of pages takes a while before the embedding starts.
    with tqdm(records, desc="reading", unit=" records", leave=False) as bar:
        return list(bar)


def _progress_enabled(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


# -- build / add / remove ----------------------------------------------------------------


@main.command()
@_input_options
@_index_option
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
def build(
    index: Path, model: str | None, index_type: str, encoder_backend: str | None, **opts: Any
) -> None:
    """Build a new index from JSONL/CSV/JSON files, saved pages or folders of them.

    - reads JSONL from stdin. Pages (.html, scraped .txt) are extracted as `recommender
    extract` shows.

    The new index replaces any index at --index atomically, only once it is complete.
    """
    from .recommender import Recommender
    from .types import Article

    started = time.monotonic()
    items = _read_inputs(opts["inputs"], opts)
    rec = Recommender.build(
        items,
        index,
        model=model,
        strict=opts["strict"],
        progress=_progress_enabled(opts["quiet"]),
        total=sum(isinstance(i, Article) for i in items),
        index_type=index_type,
        encoder_backend=encoder_backend,
    )
    _print_update("built", index, rec.report, opts, time.monotonic() - started)


@main.command()
@_input_options
@_index_option
@_model_check_option
def add(index: Path, model: str | None, **opts: Any) -> None:
    """Add or update articles: new and changed ones are embedded, unchanged ones skipped."""
    from .recommender import Recommender

    started = time.monotonic()
    items = _read_inputs(opts["inputs"], opts)
    with Recommender.open(index, model=model) as rec:
        report = rec.upsert(items, strict=opts["strict"], progress=_progress_enabled(opts["quiet"]))
    _print_update("updated", index, report, opts, time.monotonic() - started)


@main.command()
@click.argument("ids", nargs=-1, required=True)
@_index_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def remove(ids: tuple[str, ...], index: Path, as_json: bool) -> None:
    """Delete articles by id (ids not in the index are reported, not fatal)."""
    from .recommender import Recommender

    with Recommender.open(index) as rec:
        report = rec.remove(ids)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    for missing in report.missing:
        click.echo(f"warning: article {missing!r} is not in the index", err=True)
    click.echo(f"removed {report.removed} article(s); {report.total} left in {index}")


def _print_update(
    verb: str, index: Path, report: UpdateReport | None, opts: dict[str, Any], secs: float
) -> None:
    assert report is not None
    if opts["as_json"]:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
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
    where = f" (see {report.rejects_path})" if report.rejects_path else ""
    click.echo(f"{verb} {index}: {', '.join(parts)}{where}; {report.total} articles in {secs:.1f}s")


def _print_rejects(rejected: Sequence[Rejection]) -> None:
    for rejection in rejected[:_MAX_LISTED_REJECTS]:
        click.echo(f"rejected {rejection}", err=True)
    if len(rejected) > _MAX_LISTED_REJECTS:
        click.echo(f"... and {len(rejected) - _MAX_LISTED_REJECTS} more", err=True)


# -- queries -----------------------------------------------------------------------------


@main.command()
@click.argument("article_id", required=False)
@_index_option
@_query_options
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
def related(
    article_id: str | None,
    index: Path,
    k: int,
    as_json: bool,
    all_: bool,
    output: Path | None,
    quiet: bool,
    workers: int | None,
    **filters: Any,
) -> None:
    """The related list of an indexed article (never the article itself).

    With --all, the list of every article, one JSON line each:
    {"id": ..., "related": [{"id": ..., "score": ...}, ...]}.
    """
    from .recommender import Recommender

    if all_ == (article_id is not None):
        raise InvalidArgumentError("give an ARTICLE_ID or --all, not both or neither")
    if output is not None and not all_:
        raise InvalidArgumentError("--output goes with --all")
    if workers is not None and not all_:
        raise InvalidArgumentError("--workers goes with --all")
    with Recommender.open(index) as rec:
        ranking = _ranking(rec, filters)
        if all_:
            used = [f"--{name.replace('_', '-')}" for name, value in filters.items() if value]
            if used:
                raise InvalidArgumentError(
                    f"--all computes unfiltered lists; drop {', '.join(used)}"
                )
            _write_all(
                rec,
                k,
                output,
                ranking=ranking,
                progress=_progress_enabled(quiet),
                workers=workers or os.cpu_count() or 1,
            )
            return
        matches = rec.related(article_id or "", k=k, ranking=ranking, **filters)
    _print_matches(matches, as_json)


def _write_all(
    rec: Recommender, k: int, output: Path | None, *, ranking: Any, progress: bool, workers: int
) -> None:
    from .storage import write_lines_atomic

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
@_index_option
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
def evaluate(
    index: Path,
    label_field: str,
    group_field: str | None,
    k: int,
    compare: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Leave-one-out relevance of the index's ranking on labelled articles."""
    from .evaluation import evaluate_index
    from .recommender import Recommender

    baselines = [name.strip() for name in compare.split(",") if name.strip()]
    with Recommender.open(index) as rec:
        results = evaluate_index(
            rec,
            label_field=label_field,
            group_field=group_field,
            k=k,
            compare=baselines,
            progress=_progress_enabled(quiet),
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
@_index_option
@click.option("--text", help="The story text.")
@click.option("--title", help="The story title (with --text, or alone).")
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="A story: a saved page (.html, scraped .txt), extracted as build does, "
    "or plain text (other extensions; - for stdin).",
)
@_page_format_option
@click.option(
    "--article-json", type=click.File("r", encoding="utf-8"), help="A JSON record with title/body."
)
@_query_options
@_model_check_option
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
    **filters: Any,
) -> None:
    """Related articles for a story that is not in the index."""
    from .recommender import Recommender

    query = _similar_query(
        text=text, title=title, file=file, page_format=page_format, article_json=article_json
    )
    with Recommender.open(index, model=model) as rec:
        ranking = _ranking(rec, filters)
        matches = rec.similar(**query, k=k, ranking=ranking, **filters)
    _print_matches(matches, as_json)


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
    return {"title": title, "body": text or ""}


def _file_query(path: str, page_format: str | None) -> dict[str, Any] | None:
    """The story of a saved page, extracted as build extracts it; None for plain text."""
    from .pages import MAX_PAGE_BYTES, extract_page, page_kind

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


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@_page_format_option
@click.option("--json", "as_json", is_flag=True, help="One JSON record a line, as build reads.")
def extract(inputs: tuple[str, ...], page_format: str | None, as_json: bool) -> None:
    """Show what would be indexed from pages (files, folders, globs), without indexing.

    With --json the output is exactly the records build would index (JSONL: save it and
    build from it for the same index). Rejected pages are listed on stderr; the exit status
    is 5 if any was rejected.
    """
    from .ingest import read_records

    rejected: list[Rejection] = []
    shown = 0
    for item in read_records(list(inputs), page_format=page_format):
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
@_index_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(index: Path, as_json: bool) -> None:
    """Show an index's manifest and counts."""
    from .recommender import Recommender

    with Recommender.open(index) as rec:
        data = rec.info()
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
    click.echo(f"store:      {data['store']} ({data['metric']})")
    click.echo(f"embedding:  {data['embedding']['strategy']}")
    ranking = data.get("ranking", {})
    click.echo(
        f"ranking:    {ranking.get('method')} ({ranking.get('fusion')}), "
        f"{ranking.get('candidates')} candidates per side, "
        f"time prior {ranking.get('time_weight')} x exp(-days/{ranking.get('time_scale_days')})"
    )
    click.echo(f"format:     {data['format_version']}")
    click.echo(f"created:    {data['created_at']}")
    click.echo(f"updated:    {data['updated_at']}")
    versions = ", ".join(f"{k} {v}" for k, v in sorted(data["versions"].items()) if v)
    click.echo(f"built with: {versions}")


# -- demo --------------------------------------------------------------------------------


@main.command()
@click.option(
    "--index",
    default=Path("indexes/demo"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to build the demo index.",
)
@click.option("--story", "story_id", default=None, help="Article to show the related list of.")
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def demo(index: Path, story_id: str | None, k: int, quiet: bool) -> None:
    """Build an index of the bundled demo corpus and print a story's related list."""
    from .demo import DEFAULT_STORY, demo_articles
    from .recommender import Recommender

    articles = demo_articles()
    click.echo(f"building {index} from {len(articles)} bundled demo articles ...", err=True)
    rec = Recommender.build(articles, index, progress=_progress_enabled(quiet), total=len(articles))
    with rec:
        story = rec.get(story_id or DEFAULT_STORY)
        click.echo(f"\nRelated to: {story.title} [{story.id}, {story.section}]\n")
        _print_matches(rec.related(story.id, k=k), as_json=False)
    click.echo(f"\nTry: recommender related {story.id} --index {index}", err=True)


# -- output ------------------------------------------------------------------------------


def _print_matches(matches: Sequence[Match], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([m.to_dict() for m in matches], ensure_ascii=False, indent=2))
        return
    if not matches:
        click.echo("no related articles match")
        return
    width = shutil.get_terminal_size((120, 20)).columns
    id_width = max(2, min(max(len(m.id) for m in matches), 24))
    sec_width = max(7, min(max(len(m.section or "-") for m in matches), 14))
    header = (
        f"{'#':>2}  {'score':>6}  {'id':<{id_width}}  {'date':<10}  {'section':<{sec_width}}  title"
    )
    click.echo(header)
    title_room = max(20, width - len(header) + len("title"))
    for rank, m in enumerate(matches, start=1):
        date = (m.published_at or "-")[:10]
        title = m.title if len(m.title) <= title_room else m.title[: title_room - 1] + "…"
        click.echo(
            f"{rank:>2}  {m.score:6.3f}  {m.id:<{id_width}}  {date:<10}"
            f"  {(m.section or '-')[:sec_width]:<{sec_width}}  {title}"
        )


# -- serve -------------------------------------------------------------------------------


@main.command()
@_index_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes; each opens the index itself.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the bearer token for writes [default: $RECOMMENDER_API_TOKEN].",
)
@click.option("--read-only", is_flag=True, help="Turn off PUT and DELETE (they answer 403).")
@click.option("--access-log/--no-access-log", default=True, show_default=True)
def serve(
    index: Path,
    host: str,
    port: int,
    workers: int,
    token_file: Path | None,
    read_only: bool,
    access_log: bool,
) -> None:
    """Serve the HTTP API until SIGTERM or Ctrl-C (in-flight requests finish)."""
    import os

    from . import service

    token = service.read_token_file(token_file) if token_file else None
    service.serve(
        index,
        host=host,
        port=port,
        workers=workers,
        token=token or os.environ.get(service.ENV_TOKEN) or None,
        read_only=read_only,
        access_log=access_log,
    )
