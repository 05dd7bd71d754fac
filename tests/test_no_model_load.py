"""Related-by-id never loads the embedding model, on an index the real default model built.

The fast versions of these checks (tests/test_cli.py, test_explain.py, test_onnx_encoder.py)
query indexes of the hashing encoder, which no code path would load as a model; here the
index is the real thing (all-MiniLM-L6-v2 from the packaged weights, the default backend),
so loading it on a query would show in ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recommender import Recommender
from recommender.embedding.encoders import DEFAULT_BACKEND

pytestmark = pytest.mark.slow

#: What loading the model (any backend) imports.
HEAVY = (
    "torch",
    "onnxruntime",
    "onnx",
    "sentence_transformers",
    "transformers",
    "tokenizers",
)

STORIES = {
    "strike": [
        "Dockworkers walk out at the port of Valdora as wage talks collapse.",
        "Cranes stand idle in Valdora harbour on the second day of the dockworkers' strike.",
        "The Valdora dock union and shipping firms return to the table to end the port strike.",
    ],
    "quake": [
        "A magnitude 6.1 earthquake strikes Ardesh province; rescuers search collapsed homes.",
        "Aftershocks rattle Ardesh as rescue teams pull survivors from the rubble.",
        "Ardesh earthquake: the death toll rises as aid convoys reach the province.",
    ],
    "budget": [
        "The city council passes its budget after a late vote on library funding.",
        "The mayor signs the city budget, restoring money for the public libraries.",
    ],
    "other": [
        "A recipe for lemon cake: flour, sugar, butter, eggs and two lemons.",
        "The home side's striker scores twice to win the derby.",
    ],
}


@pytest.fixture(scope="module")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Ten articles embedded by the default model and backend, offline; built once."""
    root = tmp_path_factory.mktemp("real-model")
    articles = [
        {"id": f"{story}-{n}", "title": text.split(":")[0][:60], "body": text}
        for story, texts in STORIES.items()
        for n, text in enumerate(texts)
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        patch.setenv("RECOMMENDER_CACHE_DIR", str(root / "cache"))
        Recommender.build(articles, root / "idx").close()
        model = json.loads((root / "idx" / "manifest.json").read_text())["model"]
        assert model["id"].endswith("all-MiniLM-L6-v2") and model["dimension"] == 384
        assert model["backend"] == DEFAULT_BACKEND
        yield root


def _run(code: str, root: Path) -> list[str]:
    """``code`` in a fresh interpreter (offline, the index's own cache); its output lines."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RECOMMENDER_CACHE_DIR": str(root / "cache"),
    }
    heavy = f"print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\n{heavy}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return out.stdout.strip().splitlines()


def test_cli_related_by_id_loads_no_model(real_index: Path) -> None:
    index = str(real_index / "idx")
    code = (
        "from recommender.cli import main\n"
        f"try: main(['related', 'quake-0', '--index', {index!r}, '-k', '3', '--json'])\n"
        "except SystemExit as exit: print('exit', exit.code)"
    )
    *printed, heavy = _run(code, real_index)
    assert printed[-1] == "exit 0"
    related = [m["id"] for m in json.loads("\n".join(printed[:-1]))]
    assert set(related[:2]) == {"quake-1", "quake-2"}  # the model's neighbours, read back
    assert heavy == "[]"


def test_library_related_by_id_loads_no_model(real_index: Path) -> None:
    code = (
        "import json; from recommender import Recommender\n"
        f"with Recommender.open({str(real_index / 'idx')!r}) as rec:\n"
        "    print(json.dumps([m.id for m in rec.related('strike-0', k=3)]))\n"
        "    print(json.dumps([m.id for m in rec.related('budget-0', k=1, explain=True)]))"
    )
    strike, budget, heavy = _run(code, real_index)
    assert set(json.loads(strike)[:2]) == {"strike-1", "strike-2"}
    assert json.loads(budget) == ["budget-1"]
    assert heavy == "[]"
