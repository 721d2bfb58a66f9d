"""The README's main command and the examples run end to end on the offline default model."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(args, tmp_path, **env):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SCIMULT_HF_CACHE": str(tmp_path / "cache"), **env})


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


def test_demo_without_data_says_what_to_pass(tmp_path):
    proc = run([sys.executable, "-m", "scimult_hf.cli", "demo", "--data", str(tmp_path / "nowhere")], tmp_path)
    assert proc.returncode != 0 and "Pass --data DIR" in proc.stderr + proc.stdout


def test_examples_run(tmp_path):
    proc = run([sys.executable, "examples/quickstart.py"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "-> Natural language processing" in proc.stdout and "-> Computer vision" in proc.stdout
    proc = run([sys.executable, "examples/instruction_variant.py", str(tmp_path / "instr")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "instr" / "config_sentence_transformers.json").is_file()
