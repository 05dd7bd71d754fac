"""Editorial rules commands: check a rules file, attach it to an index, show it, detach it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from recommender.cli._app import index_option, main


@main.group()
def rules() -> None:
    """Editorial rules attached to an index (pins, blocks, section rules, recency, min score)."""


@rules.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--index",
    "index",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also warn about article ids the file names that this index does not hold.",
)
def check(file: Path, index: Path | None) -> None:
    """Validate a rules file; errors name the bad value and what is valid."""
    from recommender.ranking.rules import Rules, check_ids

    parsed = Rules.load(file)
    if index is not None:
        from recommender.recommender import Recommender

        with Recommender.open(index) as rec:
            for warning in check_ids(parsed, rec.field_values("title").keys()):
                click.echo(f"warning: {warning}", err=True)
    click.echo(f"{file}: ok: {parsed.summary()}")


@rules.command("set")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@index_option
def set_(file: Path, index: Path) -> None:
    """Validate FILE and attach it to the index (atomically replacing the current rules).

    Queries (CLI, library, service) apply the new rules from their next call.
    """
    from recommender.ranking.rules import Rules
    from recommender.recommender import Recommender

    parsed = Rules.load(file)
    with Recommender.open(index) as rec:
        rec.set_rules(parsed)
        stored = rec.has_stored_lists()
    click.echo(f"rules attached to {index}: {parsed.summary()}")
    if stored:
        click.echo(
            "note: the stored related lists were ranked under the previous rules; lists are "
            "computed fresh until 'recommender related --all --store-lists' stores them again",
            err=True,
        )


@rules.command("show")
@index_option
def show(index: Path) -> None:
    """Print the rules attached to the index (JSON), or say there are none."""
    from recommender.recommender import Recommender

    with Recommender.open(index) as rec:
        attached = rec.rules
    if attached is None:
        click.echo(f"no rules attached to {index}")
        return
    click.echo(json.dumps(attached.to_dict(), indent=2, ensure_ascii=False))


@rules.command("clear")
@index_option
def clear(index: Path) -> None:
    """Detach the index's rules."""
    from recommender.recommender import Recommender

    with Recommender.open(index) as rec:
        rec.set_rules(None)
    click.echo(f"rules removed from {index}")
