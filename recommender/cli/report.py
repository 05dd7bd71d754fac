"""Feedback and A/B commands: click-through report, named ranking buckets."""

from __future__ import annotations

import json
from pathlib import Path

import click

from recommender.cli._app import index_option, main
from recommender.errors import InvalidArgumentError


@main.command()
@index_option
@click.option("--since", help="Only events recorded on/after this ISO 8601 date.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def report(index: Path, since: str | None, as_json: bool) -> None:
    """Click-through of related items by position and bucket (from POST /v1/events)."""
    from recommender.index.events import EventLog
    from recommender.index.layout import IndexLayout

    IndexLayout(index).read_manifest()  # a clear error for a path that is not an index
    rows = EventLog(index).report(since=since)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    if not rows:
        click.echo("no events recorded yet (POST /v1/events)")
        return
    click.echo(f"{'bucket':<16} {'position':>8} {'impressions':>11} {'clicks':>7} {'CTR':>7}")
    for r in rows:
        position = "all" if r.position is None else str(r.position)
        ctr = "-" if r.ctr is None else f"{r.ctr:.2%}"
        click.echo(
            f"{(r.bucket or '-'):<16} {position:>8} {r.impressions:>11} {r.clicks:>7} {ctr:>7}"
        )


@main.group()
def buckets() -> None:
    """Named ranking configurations of an index, for A/B tests (related --bucket NAME)."""


@buckets.command("list")
@index_option
def list_(index: Path) -> None:
    """Each bucket and how it differs from the index's default ranking."""
    from recommender.recommender import Recommender

    with Recommender.open(index) as rec:
        named = dict(rec.manifest.get("buckets") or {})
    if not named:
        click.echo("no buckets; add one with 'recommender buckets set NAME OPTION=VALUE ...'")
    for name, options in sorted(named.items()):
        click.echo(f"{name}: {json.dumps(options, sort_keys=True)}")


@buckets.command("set")
@click.argument("name")
@click.argument("options", nargs=-1, required=True)
@index_option
def set_(name: str, options: tuple[str, ...], index: Path) -> None:
    """Store bucket NAME: ranking OPTION=VALUE pairs over the default (e.g. diversity=0.3).

    Values are JSON (numbers, true/false, null, "strings"); bare words are strings.
    """
    from recommender.recommender import Recommender

    parsed = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(f"expected OPTION=VALUE, got {option!r}")
        try:
            parsed[key.strip()] = json.loads(value)
        except ValueError:
            parsed[key.strip()] = value
    with Recommender.open(index) as rec:
        rec.set_bucket(name, parsed)
    click.echo(f"bucket {name!r}: {json.dumps(parsed, sort_keys=True)}")


@buckets.command("remove")
@click.argument("name")
@index_option
def remove(name: str, index: Path) -> None:
    """Remove bucket NAME."""
    from recommender.recommender import Recommender

    with Recommender.open(index) as rec:
        rec.set_bucket(name, None)
    click.echo(f"bucket {name!r} removed")
