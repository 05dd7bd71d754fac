"""Commands that run something long-lived: the demo and the HTTP service."""

from __future__ import annotations

from pathlib import Path

import click

from ._app import index_option, main, print_matches, progress_enabled

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
    from ..demo import DEFAULT_STORY, demo_articles
    from ..recommender import Recommender

    articles = demo_articles()
    click.echo(f"building {index} from {len(articles)} bundled demo articles ...", err=True)
    rec = Recommender.build(articles, index, progress=progress_enabled(quiet), total=len(articles))
    with rec:
        story = rec.get(story_id or DEFAULT_STORY)
        click.echo(f"\nRelated to: {story.title} [{story.id}, {story.section}]\n")
        print_matches(rec.related(story.id, k=k), as_json=False)
    click.echo(f"\nTry: recommender related {story.id} --index {index}", err=True)


# -- output ------------------------------------------------------------------------------


@main.command()
@index_option
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

    from .. import service

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
