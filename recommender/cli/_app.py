"""The command group, its error translation and the options its commands share.

Heavy modules (numpy, faiss, torch) are imported inside commands so that
``recommender --help`` stays instant.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from recommender.errors import RecommenderError

if TYPE_CHECKING:
    from recommender.ingest.records import FieldMap, ReadStats
    from recommender.recommender import Recommender
    from recommender.types import Match

F = TypeVar("F", bound=Callable[..., Any])


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


def index_option(f: F) -> F:
    return click.option(
        "--index",
        "index",
        required=True,
        envvar="RECOMMENDER_INDEX",
        type=click.Path(file_okay=False, path_type=Path),
        help="Index directory, e.g. indexes/news (or $RECOMMENDER_INDEX).",
    )(f)


page_format_option = click.option(
    "--format",
    "page_format",
    type=click.Choice(["html", "text"]),
    help="Read input files as saved HTML pages or scraped text pages, whatever their "
    "extension [default: by extension: .html/.htm/.xhtml, .txt].",
)
follow_symlinks_option = click.option(
    "--follow-symlinks",
    is_flag=True,
    help="In folders and globs, also read symlinks that point outside the folder given "
    "(by default they are reported as rejected and not read).",
)


def input_options(f: F) -> F:
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
        page_format_option,
        follow_symlinks_option,
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


def query_options(f: F) -> F:
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
        click.option(
            "--explain",
            is_flag=True,
            help="Say why each match is there: shared names, terms, closest sentences.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def ranking_options(rec: Recommender, filters: dict[str, Any], *, bucket: str | None = None) -> Any:
    """Pop the ranking options out of the query options: None keeps the index's defaults
    (or those of the named ``bucket``)."""
    options = {name: filters.pop(name) for name in ("diversity", "dedupe_threshold")}
    return rec.ranking_for(bucket).with_options(**options)


def model_check_option(f: F) -> F:
    return click.option(
        "--model",
        help="Fail unless the index was built with this model (the index's own model is used).",
    )(f)


def field_map(opts: dict[str, Any]) -> FieldMap:
    from recommender.ingest.records import FieldMap

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


def read_inputs(
    inputs: Sequence[str], opts: dict[str, Any], *, stats: ReadStats | None = None
) -> list[Any]:
    """Every Article and Rejection of ``inputs``, read as the shared input options say."""
    from recommender.ingest.records import read_records

    records = read_records(
        list(inputs),
        fields=field_map(opts),
        page_format=opts["page_format"],
        follow_symlinks=opts.get("follow_symlinks", False),
        stats=stats,
    )
    if not progress_enabled(opts["quiet"]):
        return list(records)
    from tqdm import tqdm

    # Extracting a folder of pages takes a while before the embedding starts.
    with tqdm(records, desc="reading", unit=" records", leave=False) as bar:
        return list(bar)


def progress_enabled(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


# -- build / add / remove ----------------------------------------------------------------


def print_matches(matches: Sequence[Match], as_json: bool) -> None:
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
        if m.explanation is not None:
            reason = m.explanation.summary()
            room = max(20, width - 12)
            click.echo(
                f"{'':>10}why: {reason if len(reason) <= room else reason[: room - 1] + '…'}"
            )


# -- serve -------------------------------------------------------------------------------
