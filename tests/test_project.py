"""The public surface and the documented commands stay what they claim to be."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import recommender

ROOT = Path(__file__).resolve().parents[1]


def test_public_api_is_locked() -> None:
    assert recommender.__all__ == [
        "Article",
        "ArticleListing",
        "ArticleNotFoundError",
        "ArticleSummary",
        "Encoder",
        "EncoderError",
        "Explanation",
        "FieldMap",
        "IndexDirectoryError",
        "IndexFormatError",
        "IndexLockedError",
        "IndexNotFoundError",
        "InputError",
        "InvalidArgumentError",
        "Match",
        "ModelMismatchError",
        "RankingConfig",
        "Recommender",
        "RecommenderError",
        "RejectedRecordsError",
        "Rejection",
        "SentenceTransformerEncoder",
        "StoreError",
        "UpdateReport",
        "read_records",
    ]
    assert recommender.__all__ == sorted(recommender.__all__)
    for name in recommender.__all__:
        assert getattr(recommender, name) is not None


def test_every_error_is_a_recommender_error() -> None:
    from recommender import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.RecommenderError)


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)[:2]


def test_readme_quick_start_commands() -> None:
    setup, tests = _readme_commands()
    assert "constraints.txt" in setup and "python3 -m venv .venv" in setup
    assert setup.rstrip().endswith("recommender demo")
    assert "pytest" in tests
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()


def test_ci_runs_the_readme_commands() -> None:
    script = ROOT / ".ci" / "run"
    out = subprocess.run(
        [
            "bash",
            "-c",
            f"source <(sed -n '/^mapfile/,/^tests=/p' {script}); "
            'printf "%s\\n%s" "$setup" "$tests"',
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert out.stdout.splitlines() == _readme_commands()


def test_every_cli_command_is_in_the_readme() -> None:
    from recommender.cli import main

    readme = (ROOT / "README.md").read_text()
    for name in main.commands:
        assert f"### `{name}`" in readme or f"`{name}`" in readme, name
