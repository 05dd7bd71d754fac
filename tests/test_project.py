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


def _readme_sections(text: str) -> list[tuple[str, str, str]]:
    """(heading line, its own text, its text with subsections) of each README heading."""
    lines = text.splitlines()
    heads: list[tuple[int, int]] = []
    fenced = False
    for i, line in enumerate(lines):
        fenced ^= line.startswith("```")
        found = None if fenced else re.match(r"(#+) ", line)
        if found:
            heads.append((i, len(found.group(1))))
    out = []
    for n, (i, level) in enumerate(heads):
        own = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        whole = next((j for j, deeper in heads[n + 1 :] if deeper <= level), len(lines))
        out.append((lines[i], "\n".join(lines[i:own]), "\n".join(lines[i:whole])))
    return out


def _usage_lines(text: str, command: str, *, inline: bool = True) -> list[str]:
    """Lines of ```bash blocks (and inline code spans) that run ``recommender COMMAND``."""
    bash = re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)
    lines = [line for block in bash for line in block.splitlines()]
    lines += re.findall(r"`(recommender [^`]+)`", text) if inline else []
    return [u for u in lines if re.match(rf"\s*(?:\S*/)?recommender {command}(?!\S)", u)]


def _command_docs(readme: str, command: str, *, reads_records: bool) -> str:
    """The README text that documents one command: the sections whose heading names it,
    the sections that show its usage, its usage lines, the sentences that name it and the
    option lists introduced for it ("Filters, in `related` and `similar`:"), the options
    common to every command (the Commands section's opening) and, for commands that read
    records, the input format."""
    parts = _usage_lines(readme, command)
    for heading, own, whole in _readme_sections(readme):
        if f"`{command}`" in heading:
            parts.append(whole)
        elif _usage_lines(own, command):
            parts.append(own)
        if heading == "## Commands" or (reads_records and heading == "## Input format"):
            parts.append(own if heading == "## Commands" else whole)
    listed = rf"^[^\n]*`{command}`[^\n]*:\n\n((?:[-*] [^\n]*\n(?:  [^\n]*\n)*)+)"
    parts += re.findall(listed, readme, flags=re.M)
    named = re.compile(rf"`(?:recommender )?{command}[` ]")
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z*`(\[])|\n\n", readme)
    parts += [sentence for sentence in sentences if named.search(sentence)]
    return "\n".join(parts)


def test_every_cli_command_is_in_the_readme() -> None:
    """Each command has its own documentation: a heading that names it (### `build`, ###
    `add` and `remove`) or an example that runs it (```bash recommender serve ...); each
    subcommand an example. A mention in passing does not count."""
    from recommender.cli import main

    readme = (ROOT / "README.md").read_text()
    headings = [heading for heading, _, _ in _readme_sections(readme)]
    for name, command in main.commands.items():
        headed = any(f"`{name}`" in heading for heading in headings)
        shown = _usage_lines(readme, name, inline=False)
        assert headed or shown, f"{name}: no README heading names it, no example runs it"
        for sub in getattr(command, "commands", {}):
            assert _usage_lines(readme, f"{name} {sub}", inline=False), f"{name} {sub}"


#: Options the README does not document yet (the test fails when one gets documented:
#: then drop it from here). Add none: document the option.
UNDOCUMENTED_OPTIONS: set[tuple[str, str]] = set()


def test_every_cli_option_is_documented_for_its_command() -> None:
    """Every long option appears where the README documents its command (see
    :func:`_command_docs`), not merely somewhere in the README."""
    import click

    from recommender.cli import main

    readme = (ROOT / "README.md").read_text()
    missing = set()
    for name, command in main.commands.items():
        options = [p for p in command.params if isinstance(p, click.Option)]
        reads_records = any("--id-field" in option.opts for option in options)
        docs = _command_docs(readme, name, reads_records=reads_records)
        for option in options:
            spellings = [o for o in [*option.opts, *option.secondary_opts] if o.startswith("--")]
            if spellings and not any(
                re.search(re.escape(o) + r"(?![\w-])", docs) for o in spellings
            ):
                missing.add((name, spellings[0]))
    assert missing - UNDOCUMENTED_OPTIONS == set(), "options missing from the README"
    assert UNDOCUMENTED_OPTIONS - missing == set(), "documented now: drop from the list"
