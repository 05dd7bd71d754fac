"""Scale-out commands: embed (Ray Data, Parquet out) and the options build/add share with it."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from recommender.cli._app import input_options, main, progress_enabled, read_inputs

F = TypeVar("F", bound=Callable[..., Any])


def ray_options(f: F) -> F:
    options = [
        click.option(
            "--ray-address",
            help="A Ray cluster (e.g. ray://head:10001, or 'auto' on a cluster node) "
            "[default: a local Ray instance for this command].",
        ),
        click.option(
            "--actors",
            type=click.IntRange(min=1),
            default=2,
            show_default=True,
            help="Encoder actors, each holding the model.",
        ),
        click.option(
            "--cpus-per-actor",
            type=click.FloatRange(min=0.0, min_open=True),
            default=0.5,
            show_default=True,
            help="CPUs Ray reserves per actor; keep the sum below the cores so reading and "
            "writing blocks still get scheduled.",
        ),
        click.option(
            "--gpus-per-actor",
            type=click.FloatRange(min=0.0),
            default=0.0,
            show_default=True,
            help="GPUs per actor on a cluster with GPU workers (0.5: two actors per GPU).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command()
@input_options
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the Parquet files (replaced whole when the run completes).",
)
@click.option("--model", help="Model name or path [default: all-MiniLM-L6-v2, packaged].")
@click.option(
    "--encoder-backend",
    type=click.Choice(["torch", "onnx", "onnx-int8"]),
    default=None,
    help="How the model runs [default: onnx-int8]; build must use the same one.",
)
@ray_options
def embed(output: Path, model: str | None, encoder_backend: str | None, **opts: Any) -> None:
    """Embed articles with a Ray Data pipeline and write the vectors to Parquet.

    Runs on a local Ray instance, or unchanged on a cluster with --ray-address.
    Then `recommender build INPUT --embeddings DIR` (or `add --embeddings DIR`) indexes
    the same articles without encoding them again.
    """
    from recommender.embedding.distributed import embed_with_ray
    from recommender.types import Article

    started = time.monotonic()
    items = read_inputs(opts["inputs"], opts)
    articles = [i for i in items if isinstance(i, Article)]
    rejected = len(items) - len(articles)
    if not opts["quiet"]:
        for item in items:
            if not isinstance(item, Article):
                click.echo(f"rejected {item}", err=True)
    report = embed_with_ray(
        articles,
        output,
        model=model,
        backend=encoder_backend,
        address=opts["ray_address"],
        actors=opts["actors"],
        cpus_per_actor=opts["cpus_per_actor"],
        gpus_per_actor=opts["gpus_per_actor"],
        quiet=opts["quiet"] or opts["as_json"],
    )
    if opts["as_json"]:
        click.echo(json.dumps({**report.__dict__, "rejected": rejected}))
        return
    click.echo(
        f"embedded {report.articles} article(s) into {output} ({report.files} Parquet file(s)), "
        f"rejected {rejected}; {time.monotonic() - started:.1f}s"
    )


def embed_for_build(
    items: list[Any], model: str | None, backend: str | None, opts: dict[str, Any]
) -> tempfile.TemporaryDirectory[str]:
    """``build --distributed``: embed with Ray into a temporary directory the build reads."""
    from recommender.embedding.distributed import embed_with_ray
    from recommender.types import Article

    scratch = tempfile.TemporaryDirectory(prefix="recommender-embed-")
    embed_with_ray(
        [i for i in items if isinstance(i, Article)],
        Path(scratch.name) / "embeddings",
        model=model,
        backend=backend,
        address=opts["ray_address"],
        actors=opts["actors"],
        cpus_per_actor=opts["cpus_per_actor"],
        gpus_per_actor=opts["gpus_per_actor"],
        quiet=opts["quiet"],
    )
    if progress_enabled(opts["quiet"]):
        click.echo("embedded with Ray; building", err=True)
    return scratch
