"""The README's main command and the examples run end to end on the offline default model."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_python

ROOT = Path(__file__).resolve().parents[1]


def run(args, tmp_path, **env):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SCIMULT_HF_CACHE": str(tmp_path / "cache"), **env})


@pytest.mark.slow  # the main command's test runs the demo on the sample; this one reads ../shared (--data)
def test_demo_ranks_real_papers(shared_dir, tmp_path):
    proc = run([sys.executable, "-m", "scimult_hf.cli", "demo", "--data", str(shared_dir / "data")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for heading in ("## Search expert", "## Classification expert", "## Link-prediction expert"):
        assert heading in out
    # the relevant SciFact abstract for the demo's claim is ranked first, with a check mark
    search_rows = out.split("## Search expert")[1].split("##")[0].splitlines()
    assert any(r.startswith("| 1 |") and "✓" in r for r in search_rows)
    assert (tmp_path / "cache" / "scimult-all-MiniLM-L6-v2-upcycled" / "modules.json").is_file()


def test_demo_with_a_wrong_data_folder_says_what_to_pass(tmp_path):
    proc = run([sys.executable, "-m", "scimult_hf.cli", "demo", "--data", str(tmp_path / "nowhere")], tmp_path)
    assert proc.returncode != 0 and "Pass --data DIR" in proc.stderr + proc.stdout
    assert not (tmp_path / "cache").exists()  # it stopped before building the default model


def test_main_command_runs_on_the_shipped_sample_without_shared(tmp_path):
    """The README's main command, as written, from a folder with no ../shared beside it."""
    workdir = tmp_path / "fresh" / "project"
    workdir.mkdir(parents=True)
    proc = subprocess.run(["scimult-hf", "demo"], cwd=workdir, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SCIMULT_HF_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out, err = proc.stdout, proc.stderr
    assert "offline default" in err and "HF_HUB_OFFLINE is set" in err  # one line says which model and why
    assert "experts are identical" in out
    assert "468 S2ORC papers" in out
    search = out.split("query: 'bacterial communities in seawater'")[1].split("##")[0]
    assert "| 1 | " in search.replace("|    1 |", "| 1 | ") and "bacterial communities" in search.splitlines()[4]
    top1 = int(out.split("top-1 is a gold field for ")[1].split(" ")[0])
    assert top1 > 468 * 0.3  # zero-shot fields of study; chance is about 1 in 19
    assert "Loading weights" not in err and "Writing model shards" not in err
    # the README's transcript is this output: its tables and headings to the letter, its first lines in order
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    transcript = readme.split("$ scimult-hf demo\n", 1)[1].split("```", 1)[0].splitlines()
    real = [line.rstrip() for line in out.splitlines() if line.startswith(("|", "## "))]
    assert_same_transcript([line for line in transcript if line.startswith(("|", "## "))], real)
    first = [line.split(":")[0] for line in transcript[:3]]
    bar = err.replace("\r", "\n").splitlines()
    assert first == ["model", "note", "encoding corpus for search, link_prediction, classification (468 papers)"]
    assert "468/468" in transcript[2] and any("468/468" in line for line in bar)


def assert_same_transcript(shown: list[str], real: list[str]):
    """The same lines to the letter, but for the last printed digit of a score: float32 sums differ between CPUs
    by about 1e-5, which moves a score such as 0.30650 to the other side of a rounding boundary."""
    import re

    number = re.compile(r"\d+\.\d+")
    assert [number.sub("#", line) for line in shown] == [number.sub("#", line) for line in real]
    for a, b in zip(shown, real):
        for x, y in zip(number.findall(a), number.findall(b)):
            step = 10.0 ** -len(x.split(".")[1])
            assert abs(float(x) - float(y)) <= step * 1.01 and len(x) == len(y), (a, b)


def test_examples_run(tmp_path):
    proc = run([sys.executable, "examples/quickstart.py"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "-> Natural language processing" in proc.stdout and "-> Computer vision" in proc.stdout
    proc = run([sys.executable, "examples/instruction_variant.py", str(tmp_path / "instr")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "instr" / "config_sentence_transformers.json").is_file()


def readme_python_blocks():
    """Every ```python block of the README and of the documentation pages (``docs/*.md``), once each (the README
    repeats some of the guides'), with the file and line it starts on, unless a skip marker precedes it."""
    blocks, seen = [], set()
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        lines = page.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() == "```python":
                start = i
                i += 1
                body = []
                while lines[i].strip() != "```":
                    body.append(lines[i])
                    i += 1
                code = "\n".join(body)
                if not lines[start - 1].startswith("<!-- readme-test: skip") and code not in seen:
                    seen.add(code)
                    blocks.append(pytest.param(code, id=f"{page.stem}-line-{start + 1}"))
            i += 1
    return blocks


@pytest.mark.parametrize("code", readme_python_blocks())
def test_readme_snippet_runs_on_its_own(code, tmp_path):
    """Each block as written; one that names a released model (``scimult-moe``) reaches a local stand-in of the
    Hub that serves the golden fixtures under the released file names, with an empty cache."""
    from hub_server import FIXTURES, LocalHub, online_env, pinning_preamble, released_files

    from scimult_hf.released import RELEASED

    if not any(f'"{name}"' in code for name in RELEASED):
        proc = run_python(code, env={"SCIMULT_HF_CACHE": str(tmp_path / "cache")}, cwd=tmp_path)
    else:
        if not FIXTURES.is_dir():
            pytest.skip(f"the released-model stand-ins need ../shared/fixtures (expected at {FIXTURES})")
        with LocalHub(released_files()) as hub:
            proc = run_python(pinning_preamble() + code, env=online_env(hub, tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {p.name for p in tmp_path.iterdir()} <= {"cache", "hub"}  # nothing written where it ran


EXAMPLES = {
    "search_collection.py": ([], ["## deep learning for protein structure", "| rank | score | title"]),
    "classify_papers.py": ([], ["| label 1", "top-1 label is a gold label for"]),
    "recommend_citations.py": (["{shared}/data"], ["of the top 10 are real references", " yes "]),
    "convert_checkpoint.py": (["{shared}/fixtures/scimult_moe_attn_s1/checkpoint.ckpt", "{tmp}/converted",
                               "--tokenizer", "{shared}/fixtures/scimult_moe_attn_s1/bert_config"],
                              ["transformers, classification:", "sentence-transformers, search:"]),
    "train_small.py": (["{tmp}/trained", "--steps", "12"], ["held-out measure", "cosine between the two experts"]),
}


#: Examples whose work the default run already does elsewhere (the demo encodes, searches, classifies and
#: recommends on the same sample; tests/test_training.py trains every variant; tests/test_convert.py converts the
#: fixtures): 20 s to a minute each on 2 cores, run with ``-m slow``.
SLOW_EXAMPLES = {"search_collection.py", "classify_papers.py", "train_small.py", "recommend_citations.py",
                 "convert_checkpoint.py"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_EXAMPLES else n
                                  for n in sorted(EXAMPLES)])
def test_example_runs_offline(name, shared_dir, tmp_path):
    args, expected = EXAMPLES[name]
    args = [a.format(shared=shared_dir, tmp=tmp_path) for a in args]
    proc = run([sys.executable, f"examples/{name}", *args], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for text in expected:
        assert text in proc.stdout, proc.stdout[-2000:]


@pytest.mark.slow
def test_langchain_example_in_its_own_environment(tmp_path):
    """langchain-huggingface pins huggingface_hub 1.x, so it gets a virtualenv of its own (on top of ours)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "langchain-huggingface"],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    proc = run([str(python), "examples/langchain_embeddings.py"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 documents, 384 dimensions" in proc.stdout and "best match: Attention is all you need" in proc.stdout
