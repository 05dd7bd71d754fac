"""The ``recommender`` command line: parse arguments, call the library, print.

Each submodule registers its commands on the one group, ``main``; importing them
here is what makes ``recommender --help`` list every command.
"""

from recommender.cli import embed, index, query, report, rules, serve, stories, sync
from recommender.cli._app import main
from recommender.cli.index import build

__all__ = [
    "build",
    "embed",
    "index",
    "main",
    "query",
    "report",
    "rules",
    "serve",
    "stories",
    "sync",
]
