"""The training benchmarks' own logic: the goals they mark, the runs they merge, the weights they interpolate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_folder
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import train_scaled  # noqa: E402
from training_runs import interpolate_with_start  # noqa: E402

ZS = train_scaled.ZERO_SHOT


def test_goals_are_marked_met_or_not_from_the_table():
    table = {
        "base": {"A": 0.50, "B": 0.50, ZS: 0.50},
        "plain": {"A": 0.50, "B": 0.52, ZS: 0.48},
        "vanilla": {"A": 0.52, "B": 0.52, ZS: 0.49},
        "moe-ffn": {"A": 0.55, "B": 0.485, ZS: 0.495},
    }
    lines = train_scaled.goals(table)
    assert lines[0].startswith("best MoE recipe: `moe-ffn`")
    assert "vanilla" in lines[1] and lines[1].endswith("**not met**")  # 0.5433 - 0.5100 = +0.0033
    assert "plain" in lines[2] and lines[2].endswith("**not met**")
    assert "worst B -0.015" in lines[3] and lines[3].endswith("**not met**")
    assert lines[4] == "zero-shot within 0.01 of base: -0.005 -> **met**"
    table["moe-ffn"] = {"A": 0.60, "B": 0.60, ZS: 0.50}
    assert all(line.endswith("**met**") for line in train_scaled.goals(table)[1:])


def test_goals_with_intervals_are_met_only_when_the_lower_end_meets_them():
    """The same means, judged on paired intervals: a gap of +0.03 over vanilla on noisy items is not met when the
    interval's lower end is below 0.01, and is met when the items agree."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = 50
    ids = [f"q{i}" for i in range(n)]
    base = {s: dict(zip(ids, rng.uniform(0.3, 0.7, n))) for s in ("A", ZS)}

    def shifted(by: float, noise: float):
        return {s: {q: v + by + float(rng.normal(0, noise)) for q, v in base[s].items()} for s in base}

    for noise, verdict in ((0.4, "**not met**"), (0.001, "**met**")):
        items = {"base": base, "vanilla": shifted(0.0, 0.001), "plain": shifted(-0.02, 0.001),
                 "moe-ffn": shifted(0.03, noise)}
        table = {m: {s: float(np.mean(list(v.values()))) for s, v in rows.items()} for m, rows in items.items()}
        lines = train_scaled.goals(table, items)
        assert "95 % CI" in lines[1] and lines[1].endswith(verdict), lines[1]
    assert lines[3].startswith("no test set more than 0.01 below base") and "95 % CI" in lines[3]


def test_seeds_combine_into_mean_sd_and_per_item_means():
    run = lambda v, items: {"A": {"metric": "m", "value": v, "metrics": {"m": v}, "per_query": items, "wall_s": 1.0}}  # noqa: E731
    combined = train_scaled.combine_seeds([run(0.5, {"q1": 0.4, "q2": 0.6}), run(0.7, {"q1": 0.6, "q2": 0.8})])["A"]
    assert combined["value"] == pytest.approx(0.6) and combined["values"] == [0.5, 0.7]
    assert combined["sd"] == pytest.approx(0.1414, abs=1e-4) and combined["per_query"] == {"q1": 0.5, "q2": 0.7}
    assert combined["wall_s"] == 2.0 and combined["metrics"] == {"m": pytest.approx(0.6)}


def _saved(path: Path, base: float, **variants: float) -> str:
    row = lambda v: {s: {"metric": "m", "value": v} for s in ("A", ZS)}  # noqa: E731
    path.write_text(json.dumps({"results": {"base": row(base), **{k: row(v) for k, v in variants.items()}},
                                "timings_s": {k: 1.0 for k in variants}, "steps": {k: 9 for k in variants}}))
    return str(path)


def test_runs_of_one_setup_merge_and_runs_of_another_are_refused(tmp_path):
    first = _saved(tmp_path / "1.json", 0.5, plain=0.6, vanilla=0.61)
    second = _saved(tmp_path / "2.json", 0.5, **{"moe-ffn": 0.63})
    results, run = train_scaled.merge_runs([first, second])
    assert list(results) == ["base", "plain", "vanilla", "moe-ffn"]
    assert run["timings_s"] == {"plain": 1.0, "vanilla": 1.0, "moe-ffn": 1.0} and len(run["runs"]) == 2
    table = train_scaled.report(results, run, tmp_path / "summary")
    assert "| moe-ffn | 0.630 | 0.630 | 0.630 |" in table
    assert (tmp_path / "summary" / "train_scaled.png").stat().st_size > 1000
    other = _saved(tmp_path / "3.json", 0.4, instruction=0.6)
    with pytest.raises(SystemExit, match="base row differs"):
        train_scaled.merge_runs([first, other])


def test_interpolation_with_the_start_weighs_the_trained_weights_by_alpha(tmp_path, tokenizer):
    run = tmp_path / "run"
    tiny_folder(run / "initial", tokenizer, seed=1)
    tiny_folder(run / "model", tokenizer, seed=2)
    start, trained = (load_file(run / f / "model.safetensors") for f in ("initial", "model"))
    for alpha in (0.0, 0.25, 1.0):
        out = interpolate_with_start(run, alpha, tmp_path / f"wise-{alpha}")
        merged = load_file(out / "model.safetensors")
        for k in trained:
            torch.testing.assert_close(merged[k], alpha * trained[k] + (1 - alpha) * start[k])
        assert (out / "config.json").read_text() == (run / "model" / "config.json").read_text()


def test_every_results_file_records_its_stack():
    """JSON: an ``environment`` entry (versions and machine, or the note that the run predates the record);
    markdown: a stack line; PNG: the same record in its metadata."""
    import json
    from pathlib import Path

    from PIL import Image

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    files = sorted(p for p in results.iterdir() if p.is_file())
    assert files
    for path in files:
        if path.suffix == ".json":
            record = json.loads(path.read_text())["environment"]
        elif path.suffix == ".png":
            record = json.loads(Image.open(path).info["Description"])
        elif path.suffix == ".md":
            assert "_Stack: " in path.read_text(), path.name
            continue
        else:
            raise AssertionError(f"{path.name}: a results file of a kind this test does not check")
        assert record.get("versions", {}).get("transformers") or record.get("recorded_at_run_time") is False, path
