"""The command line: a thin shell that parses, calls the library and prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from recommender.cli import main

FAST = ["--model", "hashing:256", "--quiet"]


def _write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _records() -> list[dict[str, object]]:
    words = {
        "port": "harbor dockworkers strike valdora port cranes union wages",
        "quake": "earthquake magnitude tremor rubble rescue aftershock epicentre",
    }
    out: list[dict[str, object]] = []
    for story, text in words.items():
        for n in range(3):
            out.append(
                {
                    "id": f"{story}-{n}",
                    "title": f"{story} news {n}",
                    "body": f"{text} {n}",
                    "section": "world" if story == "quake" else "business",
                    "published_at": f"2026-02-0{n + 1}",
                    "language": "en",
                    "url": f"https://example.test/{story}/{n}",
                }
            )
    return out


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def index(tmp_path: Path, runner: CliRunner) -> Path:
    src = _write_jsonl(tmp_path / "in.jsonl", _records())
    path = tmp_path / "idx"
    result = runner.invoke(main, ["build", str(src), "--index", str(path), *FAST])
    assert result.exit_code == 0, result.output
    return path


def test_build_summary(tmp_path: Path, runner: CliRunner) -> None:
    src = _write_jsonl(tmp_path / "in.jsonl", _records())
    result = runner.invoke(main, ["build", str(src), "--index", str(tmp_path / "i"), *FAST])
    assert result.exit_code == 0
    assert "indexed 6, rejected 0" in result.output


def test_related_json(index: Path, runner: CliRunner) -> None:
    result = runner.invoke(main, ["related", "port-0", "--index", str(index), "--json", "-k", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [set(d) for d in data] == [
        {"id", "title", "url", "published_at", "section", "score", "explanation"}
    ] * 2
    assert all(d["explanation"] is None for d in data)  # only with --explain
    assert {d["id"] for d in data} == {"port-1", "port-2"}


def test_related_table(index: Path, runner: CliRunner) -> None:
    result = runner.invoke(main, ["related", "port-0", "--index", str(index), "-k", "2"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["#", "score", "id", "date", "section", "title"]
    assert "port-1" in result.output and "2026-02-0" in result.output


def test_related_filters(index: Path, runner: CliRunner) -> None:
    args = ["related", "port-0", "--index", str(index), "--json", "-k", "10"]
    by_section = json.loads(runner.invoke(main, [*args, "--section", "world"]).output)
    assert {d["section"] for d in by_section} == {"world"}
    dated = json.loads(
        runner.invoke(main, [*args, "--since", "2026-02-02", "--until", "2026-02-02"]).output
    )
    assert {d["published_at"][:10] for d in dated} == {"2026-02-02"}
    excluded = json.loads(
        runner.invoke(main, [*args, "--exclude", "port-1", "--exclude", "quake-0"]).output
    )
    assert not {"port-1", "quake-0", "port-0"} & {d["id"] for d in excluded}
    langs = json.loads(runner.invoke(main, [*args, "--language", "de"]).output)
    assert langs == []


def test_unknown_id_is_one_line_and_nonzero(index: Path, runner: CliRunner) -> None:
    result = runner.invoke(main, ["related", "ghost", "--index", str(index)])
    assert result.exit_code == 3
    assert result.output.strip() == "Error: article 'ghost' is not in the index"


def test_missing_index_message(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(main, ["related", "x", "--index", str(tmp_path / "nope")])
    assert result.exit_code == 4
    assert "nope" in result.output and "Traceback" not in result.output


def test_bad_date_filter_message(index: Path, runner: CliRunner) -> None:
    result = runner.invoke(
        main, ["related", "port-0", "--index", str(index), "--since", "last week"]
    )
    assert result.exit_code == 2
    assert "last week" in result.output and "Traceback" not in result.output


def test_similar_variants(index: Path, tmp_path: Path, runner: CliRunner) -> None:
    base = ["similar", "--index", str(index), "--json", "-k", "3"]
    by_text = json.loads(runner.invoke(main, [*base, "--text", "earthquake rubble rescue"]).output)
    assert {d["id"] for d in by_text} == {"quake-0", "quake-1", "quake-2"}
    story = tmp_path / "story.md"
    story.write_text("Dockworkers strike at Valdora port; cranes idle as union presses wages")
    by_file = json.loads(runner.invoke(main, [*base, "--file", str(story)]).output)
    assert {d["id"] for d in by_file} == {"port-0", "port-1", "port-2"}
    record = tmp_path / "a.json"
    record.write_text(json.dumps({"title": "Tremor", "body": "earthquake aftershock epicentre"}))
    by_json = json.loads(runner.invoke(main, [*base, "--article-json", str(record)]).output)
    assert {d["id"] for d in by_json} == {"quake-0", "quake-1", "quake-2"}


def test_similar_argument_errors(index: Path, runner: CliRunner) -> None:
    none_given = runner.invoke(main, ["similar", "--index", str(index)])
    assert none_given.exit_code == 2 and "--text" in none_given.output
    both = runner.invoke(
        main, ["similar", "--index", str(index), "--text", "a", "--file", "-"], input="b"
    )
    assert both.exit_code == 2 and "--file" in both.output


def test_add_and_remove(index: Path, tmp_path: Path, runner: CliRunner) -> None:
    records = _records()
    records[0]["body"] = "completely rewritten body about earthquake rubble"
    records[1]["section"] = "economy"
    records.append({"id": "new-1", "body": "valdora port cranes strike"})
    src = _write_jsonl(tmp_path / "more.jsonl", records)
    result = runner.invoke(main, ["add", str(src), "--index", str(index), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "added 1, re-embedded 1, metadata updated 1, unchanged 4, rejected 0" in result.output
    removed = runner.invoke(main, ["remove", "new-1", "ghost", "--index", str(index)])
    assert removed.exit_code == 0
    assert "removed 1 article(s); 6 left" in removed.output
    assert "'ghost' is not in the index" in removed.output


def test_add_json_report(index: Path, tmp_path: Path, runner: CliRunner) -> None:
    src = _write_jsonl(tmp_path / "same.jsonl", _records())
    result = runner.invoke(main, ["add", str(src), "--index", str(index), "--json"])
    assert json.loads(result.output)["unchanged"] == 6


def test_info(index: Path, runner: CliRunner) -> None:
    as_json = json.loads(runner.invoke(main, ["info", "--index", str(index), "--json"]).output)
    assert as_json["counts"] == {"articles": 6, "vectors": 6}
    assert as_json["model"]["id"] == "hashing:256"
    text = runner.invoke(main, ["info", "--index", str(index)]).output
    assert "articles:   6" in text and "hashing:256" in text


def test_index_from_environment(index: Path, runner: CliRunner) -> None:
    result = runner.invoke(
        main, ["related", "port-0", "--json"], env={"RECOMMENDER_INDEX": str(index)}
    )
    assert result.exit_code == 0 and json.loads(result.output)


def test_stdin_and_field_mapping(tmp_path: Path, runner: CliRunner) -> None:
    lines = "".join(
        json.dumps(
            {"doc": f"d{n}", "text": f"story body {n}", "headline": f"H{n}", "when": "2026-01-01"}
        )
        + "\n"
        for n in range(3)
    )
    path = tmp_path / "i"
    args = ["build", "-", "--index", str(path), *FAST]
    mapping = [
        "--id-field",
        "doc",
        "--body-field",
        "text",
        "--title-field",
        "headline",
        "--date-field",
        "when",
    ]
    result = runner.invoke(main, [*args, *mapping], input=lines)
    assert result.exit_code == 0, result.output
    assert "indexed 3" in result.output
    shown = json.loads(
        runner.invoke(main, ["related", "d0", "--index", str(path), "--json"]).output
    )
    assert {d["title"] for d in shown} == {"H1", "H2"}


def test_csv_input(tmp_path: Path, runner: CliRunner) -> None:
    src = tmp_path / "in.csv"
    src.write_text('id,title,body,tags\n1,One,"first body, with comma","a,b"\n2,Two,second body,\n')
    result = runner.invoke(main, ["build", str(src), "--index", str(tmp_path / "i"), *FAST])
    assert result.exit_code == 0, result.output
    assert "indexed 2" in result.output


def test_hundred_good_five_bad(tmp_path: Path, runner: CliRunner) -> None:
    good = [
        json.dumps({"id": f"a{n}", "title": f"T{n}", "body": f"body number {n}"})
        for n in range(100)
    ]
    bad = {
        10: '{"id": "broken", "body": ',
        20: json.dumps({"title": "no id", "body": "text"}),
        30: json.dumps({"id": "empty", "body": "   "}),
        40: json.dumps({"id": "baddate", "body": "text", "published_at": "31/02/2024"}),
        50: json.dumps({"id": "a5", "body": "again"}),
    }
    lines = list(good)
    for line_no in sorted(bad):
        lines.insert(line_no - 1, bad[line_no])
    src = tmp_path / "mixed.jsonl"
    src.write_text("\n".join(lines) + "\n")
    path = tmp_path / "idx"
    result = runner.invoke(
        main, ["build", str(src), "--index", str(path), "--model", "hashing:256"]
    )
    assert result.exit_code == 0, result.output
    assert "indexed 100, rejected 5" in result.output
    for line_no in bad:
        assert f"mixed.jsonl:{line_no}:" in result.output
    rejects = [json.loads(x) for x in (path / "rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [10, 20, 30, 40, 50]
    reasons = " | ".join(r["reason"] for r in rejects)
    for word in ("invalid JSON", "missing id", "empty body", "31/02/2024", "duplicate id"):
        assert word in reasons
    strict = runner.invoke(
        main, ["build", str(src), "--index", str(tmp_path / "s"), *FAST, "--strict"]
    )
    assert strict.exit_code == 5
    assert "5 record(s) rejected" in strict.output
    assert not (tmp_path / "s" / "manifest.json").exists()


def test_help_is_instant_and_imports_nothing_heavy() -> None:
    code = (
        "import sys; from recommender.cli import main\n"
        "try: main(['--help'])\nexcept SystemExit: pass\n"
        "heavy = ('torch', 'faiss', 'numpy', 'sentence_transformers')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]")


def test_related_never_imports_the_model(index: Path) -> None:
    # Nor scikit-learn or numba (what the lexical side could pull in). A hashing index:
    # tests/test_no_model_load.py queries one the real model built (slow).
    code = (
        "import sys; from recommender.cli import main\n"
        f"try: main(['related', 'port-0', '--index', {str(index)!r}, '--json'])\n"
        "except SystemExit as exit: print('exit', exit.code)\n"
        "print([m for m in ('torch', 'sentence_transformers', 'sklearn', 'numba')"
        " if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *printed, status, heavy = out.stdout.strip().splitlines()
    assert status == "exit 0" and heavy == "[]"
    assert {m["id"] for m in json.loads("\n".join(printed))[:2]} == {"port-1", "port-2"}


def test_a_one_query_command_leaves_the_loops_choice_to_the_library(
    index: Path, runner: CliRunner
) -> None:
    from recommender.compiled import switch as compiled

    for command in (["related", "port-0"], ["similar", "--text", "harbour ferry strike"]):
        result = runner.invoke(main, [*command, "--index", str(index), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)
        assert compiled.use_compiled(None) is None  # the CLI forced neither side


def test_python_dash_m() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "recommender", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "build" in out.stdout and "related" in out.stdout


def test_model_mismatch_in_cli(index: Path, runner: CliRunner) -> None:
    result = runner.invoke(
        main, ["similar", "--index", str(index), "--text", "quake", "--model", "all-MiniLM-L6-v2"]
    )
    assert result.exit_code == 4
    assert "built with model 'hashing:256'" in result.output


def test_related_all_jsonl(index: Path, tmp_path: Path, runner: CliRunner) -> None:
    out = tmp_path / "lists" / "related.jsonl"
    result = runner.invoke(
        main, ["related", "--all", "--index", str(index), "-k", "3", "-o", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 6
    for line in lines:
        assert set(line) == {"id", "related"}
        assert len(line["related"]) == 3 and all(set(r) == {"id", "score"} for r in line["related"])
        assert line["id"] not in [r["id"] for r in line["related"]]
        scores = [r["score"] for r in line["related"]]
        assert scores == sorted(scores, reverse=True)
    single = json.loads(
        runner.invoke(
            main, ["related", "port-0", "--index", str(index), "-k", "3", "--json"]
        ).output
    )
    first = next(line for line in lines if line["id"] == "port-0")
    assert [r["id"] for r in first["related"]] == [d["id"] for d in single]
    stdout = runner.invoke(main, ["related", "--all", "--index", str(index), "-k", "1"])
    assert len(stdout.output.splitlines()) == 6


def test_related_all_argument_errors(index: Path, runner: CliRunner) -> None:
    both = runner.invoke(main, ["related", "port-0", "--all", "--index", str(index)])
    assert both.exit_code == 2 and "one of ARTICLE_ID, --url or --all" in both.output
    filtered = runner.invoke(
        main, ["related", "--all", "--index", str(index), "--section", "world"]
    )
    assert filtered.exit_code == 2 and "--section" in filtered.output
    stray = runner.invoke(main, ["related", "port-0", "--index", str(index), "-o", "x.jsonl"])
    assert stray.exit_code == 2 and "--output" in stray.output
    workers = runner.invoke(main, ["related", "port-0", "--index", str(index), "--workers", "2"])
    assert workers.exit_code == 2 and "--workers goes with --all" in workers.output


def test_ranking_options(index: Path, runner: CliRunner) -> None:
    args = ["related", "port-0", "--index", str(index), "--json", "-k", "2"]
    plain = [d["id"] for d in json.loads(runner.invoke(main, args).output)]
    diverse = runner.invoke(main, [*args, "--diversity", "0.9"])
    assert diverse.exit_code == 0
    # The other port articles are near copies: strong diversity swaps the second for another story.
    assert plain == ["port-1", "port-2"] or plain == ["port-2", "port-1"]
    second = [d["id"] for d in json.loads(diverse.output)][1]
    assert not second.startswith("port-")
    bad = runner.invoke(main, [*args, "--diversity", "1.5"])
    assert bad.exit_code == 2 and "1.5" in bad.output


# -- issue 19's reproductions: bad text never gives a traceback -------------------------------


def _cli_bytes(*args: str | bytes | Path) -> subprocess.CompletedProcess[bytes]:
    """The real command in a child process, with argv as raw bytes (as a shell passes $'\\xff')."""
    argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    command = [sys.executable.encode(), b"-m", b"recommender", *argv]
    return subprocess.run(command, capture_output=True, timeout=120)


def test_a_lone_surrogate_id_is_a_rejection_in_build_and_add(tmp_path: Path) -> None:
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"id":"\\ud800","body":"some text"}\n\n{"id":"ok","body":"harbour strike"}\n')
    index = tmp_path / "i1"
    built = _cli_bytes("build", bad, "--index", index, *FAST, "--json")
    assert built.returncode == 0, built.stderr
    report = json.loads(built.stdout)
    assert (report["added"], len(report["rejected"]), report["blank_lines"]) == (1, 1, 1)
    (line,) = (index / "rejects.jsonl").read_text("ascii").splitlines()
    assert json.loads(line)["raw"] == '{"id":"\\ud800","body":"some text"}'
    assert not [p.name for p in index.iterdir() if p.name.endswith(".tmp")]

    added = _cli_bytes("add", bad, "--index", index, "--quiet")
    assert added.returncode == 0, added.stderr
    assert b"Traceback" not in added.stderr and (index / "rejects.jsonl").is_file()

    good = _write_jsonl(tmp_path / "s.jsonl", _records())
    rebuilt = _cli_bytes("build", good, "--index", index, *FAST)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert [p.name for p in index.glob("gen-*")] == [
        json.loads((index / "manifest.json").read_text())["generation"]
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((b"similar", b"--text", b"harbour strike \xff"), b"text: invalid UTF-8 byte 0xff"),
        ((b"related", b"\xff"), b"id: invalid UTF-8 byte 0xff"),
        ((b"remove", b"\xff"), b"id: invalid UTF-8 byte 0xff"),
    ],
)
def test_undecodable_arguments_are_bad_arguments_not_tracebacks(
    tmp_path: Path, args: tuple[bytes, ...], message: bytes
) -> None:
    index = tmp_path / "idx"
    source = _write_jsonl(tmp_path / "s.jsonl", _records())
    assert _cli_bytes("build", source, "--index", index, *FAST).returncode == 0
    result = _cli_bytes(*args, "--index", index)
    assert result.returncode == 2
    assert result.stderr.startswith(b"Error: " + message), result.stderr
    assert b"Traceback" not in result.stderr
