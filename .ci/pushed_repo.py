"""The pushed model repository serves on its own requirements (run by .ci/run).

``python .ci/pushed_repo.py prepare OUT`` (in the project's environment) writes what ``scimult-hf push`` would
upload for the upcycled offline default (``push --dry-run``), plus ``expected.json``: the vectors
sentence-transformers gives for three papers and two tasks. ``python .ci/pushed_repo.py serve OUT`` (in a fresh
environment holding only torch and the repository's ``requirements.txt``, at their newest releases) loads
``OUT/repo/handler.py`` as Inference Endpoints do and checks its vectors against ``expected.json`` (1e-5).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

PAPERS = [
    {"title": "Protein folding with deep learning", "abstract": "We predict structures from sequences."},
    {"title": "Graph algorithms and bounds", "abstract": "Lower bounds for shortest paths."},
    "Bacterial communities in seawater",
]
TASKS = ("search", "classification")


def prepare(out: Path) -> None:
    from huggingface_hub import ModelCardData

    from scimult_hf import default_model_path, load_model
    from scimult_hf.hub.publish import push_model
    from scimult_hf.text import paper_text

    folder = default_model_path()
    metadata = ModelCardData(license="apache-2.0", library_name="sentence-transformers",
                             tags=["scimult", "mixture-of-experts"], base_model="sentence-transformers/all-MiniLM-L6-v2")
    card = f"---\n{metadata.to_yaml()}\n---\n\n# SciMult (upcycled all-MiniLM-L6-v2), the CI check of a pushed repository\n"
    push_model(folder, "scimult-ci/check", card, dry_run=out / "repo")
    model = load_model(folder)
    texts = [paper_text(p["title"], p["abstract"]) if isinstance(p, dict) else p for p in PAPERS]
    expected = {task: model.encode(texts, task=task).tolist() for task in TASKS}
    (out / "expected.json").write_text(json.dumps(expected), encoding="utf-8")
    print(f"prepared {out / 'repo'}: {sorted(p.name for p in (out / 'repo').iterdir())}")


def serve(out: Path) -> None:
    import numpy as np

    if importlib.util.find_spec("scimult_hf") is not None:
        sys.exit("the serving environment must not have scimult_hf: it holds only the repository's requirements")
    repo = out / "repo"
    spec = importlib.util.spec_from_file_location("handler", repo / "handler.py")
    handler_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler_module)
    handler = handler_module.EndpointHandler(str(repo))
    expected = json.loads((out / "expected.json").read_text(encoding="utf-8"))
    for task in TASKS:
        got = np.array(handler({"inputs": PAPERS, "parameters": {"task": task}}))
        diff = float(np.abs(got - np.array(expected[task])).max())
        print(f"handler.py {task}: max |diff| {diff:.2e} against the project's environment")
        if diff > 1e-5:
            sys.exit(f"the pushed repository's handler differs for {task}: {diff:.2e} > 1e-5")
    error = handler({"inputs": PAPERS, "parameters": {"task": "astrology"}})
    if not (isinstance(error, dict) and "error" in error):
        sys.exit(f"an unknown task should give an error object, got {str(error)[:200]}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("prepare", "serve"):
        sys.exit("usage: python .ci/pushed_repo.py prepare|serve OUT")
    target = Path(sys.argv[2])
    target.mkdir(parents=True, exist_ok=True)
    (prepare if sys.argv[1] == "prepare" else serve)(target)
