"""Commands that run something long-lived: the demo and the HTTP service."""

from __future__ import annotations

from pathlib import Path

import click

from recommender.cli._app import index_option, main, print_matches, progress_enabled

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
@click.option(
    "--serve",
    "serve_ui",
    is_flag=True,
    help="Then serve the web UI and API over the demo index (read-only) until Ctrl-C.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="With --serve: address.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def demo(
    index: Path,
    story_id: str | None,
    k: int,
    quiet: bool,
    serve_ui: bool,
    host: str,
    port: int,
) -> None:
    """Build an index of the bundled demo corpus and print a story's related list.

    With --serve, then serve the web UI over it and print its address.
    """
    from recommender.ingest.demo import DEFAULT_STORY, demo_articles
    from recommender.recommender import Recommender

    articles = demo_articles()
    click.echo(f"building {index} from {len(articles)} bundled demo articles ...", err=True)
    rec = Recommender.build(articles, index, progress=progress_enabled(quiet), total=len(articles))
    with rec:
        story = rec.get(story_id or DEFAULT_STORY)
        click.echo(f"\nRelated to: {story.title} [{story.id}, {story.section}]\n")
        print_matches(rec.related(story.id, k=k), as_json=False)
    if not serve_ui:
        click.echo(f"\nTry: recommender related {story.id} --index {index}", err=True)
        click.echo(
            f"     recommender demo --serve   (the web UI at http://{host}:{port}/)", err=True
        )
        return
    from recommender.serving import app as service

    url = f"http://{_url_host(host)}:{port}/"
    click.echo(f"\nWeb UI: {url}   this story: {url}articles/{story.id}   (Ctrl-C stops)")
    # Read-only: a demo server never needs a write token, whatever address it binds; and
    # its API docs are public, as the demo corpus is (/metrics follows the address).
    service.serve(index, host=host, port=port, read_only=True, public_docs=True, access_log=False)


def _url_host(host: str) -> str:
    """``host`` as it goes in a URL: IPv6 in brackets, any-address as loopback (to click)."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


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
@click.option(
    "--public-docs/--no-public-docs",
    default=None,
    help="Whether /docs, /redoc and /openapi.json answer without the token "
    "[default: public on a loopback --host, else they need the token].",
)
@click.option(
    "--public-metrics/--no-public-metrics",
    default=None,
    help="Whether /metrics answers without the token "
    "[default: public on a loopback --host, else it needs the token].",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True)
@click.option(
    "--cache-max-age",
    default=60,
    show_default=True,
    type=click.IntRange(0, 86_400 * 365),
    help="Seconds a browser or CDN may keep a related list (Cache-Control; ETag and 304 "
    "always); 0: revalidate every time.",
)
@click.option(
    "--allow-origin",
    "allow_origins",
    multiple=True,
    help="An origin (https://example.com) whose pages may call the read routes and "
    "/v1/events (CORS); repeat for several, '*' for any. Writes never allow it.",
)
@click.option(
    "--list-cache",
    default=10_000,
    show_default=True,
    type=click.IntRange(0, 10_000_000),
    help="Related-list answers each worker keeps as bytes until the index changes; 0: none.",
)
def serve(
    index: Path,
    host: str,
    port: int,
    workers: int,
    token_file: Path | None,
    read_only: bool,
    public_docs: bool | None,
    public_metrics: bool | None,
    access_log: bool,
    cache_max_age: int,
    allow_origins: tuple[str, ...],
    list_cache: int,
) -> None:
    """Serve the HTTP API until SIGTERM or Ctrl-C (in-flight requests finish).

    Without a token, docs and /metrics that are not public answer 403.
    """
    import os

    from recommender.serving import app as service

    token = service.read_token_file(token_file) if token_file else None
    service.serve(
        index,
        host=host,
        port=port,
        workers=workers,
        token=token or os.environ.get(service.ENV_TOKEN) or None,
        read_only=read_only,
        public_docs=public_docs,
        public_metrics=public_metrics,
        access_log=access_log,
        cache_max_age=cache_max_age,
        allow_origins=allow_origins,
        list_cache=list_cache,
    )
