"""Feedback and A/B commands: click-through report, named ranking buckets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from recommender.cli._app import index_option, main
from recommender.errors import InvalidArgumentError

if TYPE_CHECKING:
    from recommender.ranking.click_weights import ClickWeights


@main.command()
@index_option
@click.option("--since", help="Only events recorded on/after this ISO 8601 date.")
@click.option(
    "--weights",
    is_flag=True,
    help="Also learn the ranking's weights from the clicks (position bias corrected) and "
    "compare them with the index's on held-out clicks; nothing is changed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def report(index: Path, since: str | None, weights: bool, as_json: bool) -> None:
    """Click-through of related items by position and bucket (from POST /v1/events)."""
    from recommender.index.events import EventLog
    from recommender.index.layout import IndexLayout

    IndexLayout(index).read_manifest()  # a clear error for a path that is not an index
    rows = EventLog(index).report(since=since)
    learned = _learned(index, since) if weights else None
    if as_json:
        table = [r.to_dict() for r in rows]
        out = table if learned is None else {"positions": table, "weights": learned.to_dict()}
        click.echo(json.dumps(out, indent=2))
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
    if learned is not None:
        _echo_weights(learned, index)


def _learned(index: Path, since: str | None) -> ClickWeights:
    from recommender.recommender import Recommender

    with Recommender.open(index) as rec:
        return rec.click_weights(since=since)


def _echo_weights(found: ClickWeights, index: Path) -> None:
    click.echo("\nweights learned from the clicks, position bias corrected (nothing changed):")
    click.echo(
        f"  {found.impressions} impressions, {found.clicks} clicks in {found.cells} cells"
        + (f"; {found.unknown} cells left out (no longer in the index)" if found.unknown else "")
    )
    if found.learned is None:
        click.echo(f"  no weights: {found.reason}")
        return
    click.echo(f"  {'weight':<16} {'current':>8} {'learned':>8} {'folds':>13}")
    for name, value in found.learned.items():
        spread = [f[name] for f in found.folds if name in f]
        folds = f"{min(spread):.2f}..{max(spread):.2f}" if spread else "-"
        click.echo(f"  {name:<16} {found.current[name]:>8.2f} {value:>8.2f} {folds:>13}")
    examined = " ".join(f"{e:.2f}" for e in found.examination)
    click.echo(f"  examined, by position (1 = 1.00): {examined}")
    held = found.held_out or {}
    verdict = "the learned weights predict them better"
    if not found.better:
        verdict = "the current weights predict them as well or better: keep them"
    click.echo(
        f"  held-out clicks, log-likelihood per impression: learned {held.get('learned', 0):.5f},"
        f" current {held.get('current', 0):.5f}: {verdict}"
    )
    if found.better:
        options = " ".join(f"{k}={v:.2f}" for k, v in found.learned.items())
        click.echo(f"  to A/B test them: recommender buckets set clicks {options} --index {index}")


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
