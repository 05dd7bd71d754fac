"""``recommender stories`` and ``recommender story``: the archive grouped into stories."""

from __future__ import annotations

import json
from pathlib import Path

import click

from recommender.cli._app import index_option, main, progress_enabled


@main.command()
@index_option
@click.option(
    "--min-size",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Smallest story listed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all", "all_", is_flag=True, help='Each article\'s story, JSONL: {"id", "story"}.')
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="With --all: write the JSONL here (default: standard output).",
)
@click.option(
    "--regroup",
    is_flag=True,
    help="Group the whole archive again and store the stories first (a build does).",
)
def stories(
    index: Path, min_size: int, as_json: bool, all_: bool, output: Path | None, regroup: bool
) -> None:
    """The stories of the archive, largest first: id, size, first and last dates, title."""
    from recommender.errors import InvalidArgumentError
    from recommender.recommender import Recommender

    if output is not None and not all_:
        raise InvalidArgumentError("--output goes with --all")
    with Recommender.open(index) as rec:
        if regroup:
            rec.regroup_stories(progress=progress_enabled(quiet=False))
        found = rec.stories(min_size=1 if all_ else min_size)
    if all_:
        lines = [
            json.dumps({"id": a.id, "story": s.id}, ensure_ascii=False)
            for s in found
            for a in s.articles
        ]
        _write(lines, output)
        return
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in found], indent=2, ensure_ascii=False))
        return
    click.echo(f"{'size':>4}  {'first':<10}  {'last':<10}  story")
    for s in found:
        first, last = (s.first or "-")[:10], (s.last or "-")[:10]
        click.echo(f"{len(s.articles):>4}  {first:<10}  {last:<10}  {s.id}  {s.title}")


@main.command()
@click.argument("article_id")
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def story(article_id: str, index: Path, as_json: bool) -> None:
    """The story an article belongs to: its thread, in time order."""
    from recommender.recommender import Recommender

    with Recommender.open(index) as rec:
        thread = rec.story(article_id)
    if as_json:
        click.echo(json.dumps(thread.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(f"story {thread.id}: {len(thread.articles)} articles — {thread.title}")
    for a in thread.articles:
        click.echo(f"  {(a.published_at or '-')[:10]:<10}  {a.id}  {a.title}")


def _write(lines: list[str], output: Path | None) -> None:
    if output is None or str(output) == "-":
        for line in lines:
            click.echo(line)
        return
    from recommender.index.layout import write_lines_atomic

    write_lines_atomic(output, lines)
    click.echo(f"wrote {len(lines)} articles' stories to {output}", err=True)
