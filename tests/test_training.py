"""Multi-task contrastive training on tiny models and real data: every variant end to end, bad data,
kill -9 and resume, and two-process data-parallel training."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import helpers
import numpy as np
import pytest
import torch
from helpers import PAPERS, free_port, run_python, write_beir
from safetensors.torch import load_file

from scimult_hf import load_sentence_transformer
from scimult_hf.cli import main
from scimult_hf.errors import InputError
from scimult_hf.training import TrainConfig, load_task_data, mine_hard_negatives, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, tokenizer) -> Path:
    """A tiny random plain-BERT folder (no dropout) to upcycle."""
    return helpers.tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert", tokenizer)


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory, shared_dir) -> dict[str, Path]:
    """Small real training files: 24 SciFact (claim, abstract) pairs, 24 OHSUMED (paper, category) pairs."""
    folder = tmp_path_factory.mktemp("pairs")
    out = {}
    for task, source in (("search", "scifact"), ("classification", "ohsumed23")):
        data = load_task_data(shared_dir / "data" / source, task)
        rows = list(range(0, len(data.pairs), len(data.pairs) // 24))[:24]
        path = folder / f"{task}.jsonl"
        path.write_text("".join(json.dumps(data.pairs[i]) + "\n" for i in rows))
        out[task] = path
    return out


def quick_config(**kw) -> TrainConfig:
    base = dict(epochs=10, batch_size=8, learning_rate=1e-3, save_steps=1000, logging_steps=3, max_seq_length=48,
                warmup_ratio=0.0)
    base.update(kw)
    return TrainConfig(**base)


def data_from(files: dict[str, Path]):
    return {task: load_task_data(path, task) for task, path in files.items()}


def first_and_last(history: list[dict], task: str) -> tuple[float, float]:
    """Mean logged loss of the first and of the second half of the run (single windows are noisy)."""
    values = [h[f"loss/{task}"] for h in history if f"loss/{task}" in h]
    half = len(values) // 2
    return sum(values[:half]) / half, sum(values[half:]) / (len(values) - half)


@pytest.mark.parametrize("variant, expert_type", [("moe", "attention"), ("moe", "ffn"), ("vanilla", None),
                                                  ("instruction", None)])
@pytest.mark.smoke
def test_each_variant_trains_end_to_end(tmp_path, tiny_bert, pair_files, variant, expert_type, capsys):
    config = quick_config(variant=variant, expert_type=expert_type or "attention")
    folder = train(tiny_bert, data_from(pair_files), tmp_path / "run", config)
    printed = capsys.readouterr()
    logs = printed.out + printed.err  # readable lines, not the trainer's raw dicts
    assert "{'" not in logs and "step " in logs and re.search(r"trained \d+ steps in \d+ s", logs), logs[-1000:]
    history = json.loads((tmp_path / "run" / "losses.json").read_text())
    for task in pair_files:
        first, last = first_and_last(history, task)
        assert last < first, (task, first, last)  # the loss fell
    assert (tmp_path / "run" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    card, record = (tmp_path / "run" / "README.md").read_text(), (tmp_path / "run" / "training.json").read_text()
    assert "## Hyper-parameters" in card
    for text in (card, record):  # published files carry no local paths: names, not /home/... or /tmp/...
        assert str(tmp_path) not in text and str(Path(tiny_bert).parent) not in text
    # a local folder's name is no Hub id: the card names it in its text, not as base_model metadata
    assert json.loads(record)["base_model"] == "tiny-bert" and "`tiny-bert`" in card and "base_model:" not in card
    st = load_sentence_transformer(folder)
    if variant == "moe":
        weights = load_file(folder / "model.safetensors")
        experts = sorted({k.split(".experts.")[0] for k in weights if ".experts." in k})
        moved = [k for k in experts
                 if not torch.equal(weights[f"{k}.experts.0.weight"], weights[f"{k}.experts.2.weight"])]
        assert moved, "the search and classification experts are still equal"
        search, classification = (st.encode(PAPERS, task=t) for t in ("search", "classification"))
        assert not np.allclose(search, classification, atol=1e-4)  # tasks now give different embeddings
        for task in ("search", "link_prediction", "classification"):
            assert (tmp_path / "run" / "exports" / task / "modules.json").is_file()
        if expert_type == "attention":
            fresh_process_checks(folder, tmp_path)
    else:
        assert not st[0].model.config.has_experts
    if variant == "instruction":
        assert st.prompts["search"].startswith("Instruction:")


def fresh_process_checks(folder: Path, tmp_path: Path) -> None:
    """The trained folder loads with AutoModel (remote code) in a process that never imports scimult_hf, its
    tasks give different embeddings there, and `scimult-hf evaluate` scores it."""
    code = textwrap.dedent(f"""
        import sys, torch
        from transformers import AutoModel, AutoTokenizer
        path = {str(folder)!r}
        model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
        batch = AutoTokenizer.from_pretrained(path, trust_remote_code=True)(["protein folding [SEP] structure"],
                                                                           return_tensors="pt")
        with torch.no_grad():
            a, b = (model(**batch, task=t).pooler_output for t in ("search", "classification"))
        assert "scimult_hf" not in sys.modules
        print("DIFF", float((a - b).abs().max()))
    """)
    proc = run_python(code, env={"HF_HUB_OFFLINE": "1"}, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert float(proc.stdout.split("DIFF")[1]) > 1e-4
    data = write_beir(tmp_path / "beir", "q1\td4\t1\n")
    assert main(["evaluate", "--model", str(folder), "--task", "search", "--data", str(data), "--no-cache",
                 "--quiet", "--output", str(tmp_path / "eval.json")]) == 0
    assert "ndcg@10" in json.loads((tmp_path / "eval.json").read_text())["metrics"]


def test_hard_negatives_never_repeat_a_known_positive(shared_dir, minilm_scimult):
    data = load_task_data(shared_dir / "data" / "unarxive-cites", "link_prediction")
    st = load_sentence_transformer(minilm_scimult)
    st.max_seq_length = 48
    mined = mine_hard_negatives(st, data, num_negatives=2)
    assert mined.pairs.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    text_to_id = {v: k for k, v in data.candidates.items()}
    for anchor, row in zip(mined.anchor_ids, mined.pairs):
        for column in ("negative_1", "negative_2"):
            assert text_to_id[row[column]] not in data.positives[anchor]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def beir(folder: Path, qrels: str) -> Path:
    return write_beir(folder, qrels, queries=[{"_id": "q1", "text": "a"}, {"_id": "q2", "text": "b"}], split="train")


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing_column", "pairs.jsonl, line 2: missing field 'positive'"),
        ("empty_task", "no training pairs for task 'search'"),
        ("no_positive", "query 'q2' has no positive"),
        ("unknown_label", "train.jsonl, line 1: label id(s) ['X9'] are not in labels.jsonl"),
        ("empty_text", "pairs.jsonl, line 1: field 'anchor' must be a non-empty string"),
        ("unknown_task", "unknown tasks ['astrology'] in the training data"),
    ],
)
def test_bad_training_data_stops_before_any_step(tmp_path, tiny_bert, kind, message, capsys):
    if kind == "missing_column":
        source = write(tmp_path / "pairs.jsonl", '{"anchor": "a", "positive": "b"}\n{"anchor": "c", "pos": "d"}\n')
    elif kind == "empty_task":
        source = write(tmp_path / "pairs.jsonl", "\n")
    elif kind == "no_positive":
        source = beir(tmp_path / "beir", "q1\td0\t1\nq2\td1\t0\n")
    elif kind in ("empty_text", "unknown_task"):
        anchor = " " if kind == "empty_text" else "a"
        source = write(tmp_path / "pairs.jsonl", json.dumps({"anchor": anchor, "positive": "b"}) + "\n")
    else:
        write(tmp_path / "cls" / "labels.jsonl", json.dumps({"id": "C01", "name": "Infections"}) + "\n")
        write(tmp_path / "cls" / "train.jsonl", json.dumps({"id": "p", "title": "T", "labels": ["X9"]}) + "\n")
        source = tmp_path / "cls"
    task = {"unknown_label": "classification", "unknown_task": "astrology"}.get(kind, "search")
    code = main(["train", "--model", str(tiny_bert), "--data", f"{task}={source}", "--output", str(tmp_path / "run")])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


TRAIN_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from transformers import TrainerCallback
    from scimult_hf.training import TrainConfig, load_task_data, train

    class SaveReplica(TrainerCallback):
        # every process's weights at the end of training, to compare the data-parallel replicas
        def on_train_end(self, args, state, control, model=None, **kwargs):
            rank = os.environ.get("RANK", "0")
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
                       os.path.join(out, f"replica-{rank}.pt"))

    base, out, files, steps = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
    resume = len(sys.argv) > 5 and sys.argv[5] == "resume"
    data = {task: load_task_data(path, task) for task, path in files.items()}
    config = TrainConfig(max_steps=steps, batch_size=4, learning_rate=5e-3, save_steps=2, save_total_limit=2,
                         logging_steps=2, max_seq_length=48, warmup_ratio=0.0, seed=3)
    train(base, data, out, config, resume=resume, callbacks=[SaveReplica()])
    """
)


def run_training(args: list[str], processes: int = 1) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable]
    if processes > 1:  # accelerate launch --cpu runs one process here; torchrun starts real workers (gloo)
        launcher += ["-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port", str(free_port())]
    script = Path(args[1]).parent / "train_script.py"
    script.write_text(TRAIN_SCRIPT)
    return subprocess.Popen([*launcher, str(script), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_killed_run_resumes_to_the_same_weights(tmp_path, tiny_bert, pair_files):
    files = json.dumps({k: str(v) for k, v in pair_files.items()})
    steps = "12"
    (tmp_path / "ref").mkdir()
    ref = run_training([str(tiny_bert), str(tmp_path / "ref"), files, steps])
    out_ref = ref.communicate(timeout=600)[0]
    assert ref.returncode == 0, out_ref[-3000:]

    run = tmp_path / "run"
    run.mkdir()
    proc = run_training([str(tiny_bert), str(run), files, steps])
    deadline = time.time() + 600
    while not (run / "checkpoints" / "checkpoint-6" / "trainer_state.json").is_file():
        assert proc.poll() is None and time.time() < deadline, "training ended before the kill point"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "model").exists()

    again = run_training([str(tiny_bert), str(run), files, steps, "resume"])
    out = again.communicate(timeout=600)[0]
    assert again.returncode == 0, out[-3000:]
    a = load_file(tmp_path / "ref" / "model" / "model.safetensors")
    b = load_file(run / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=name)
    history = json.loads((run / "losses.json").read_text())
    assert history[-1]["step"] == 12


def test_two_process_data_parallel_training_keeps_replicas_identical(tmp_path, tiny_bert, pair_files):
    files = json.dumps({k: str(v) for k, v in pair_files.items()})
    (tmp_path / "ddp").mkdir()
    proc = run_training([str(tiny_bert), str(tmp_path / "ddp"), files, "6"], processes=2)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-4000:]
    replicas = [{k.split("model.", 1)[1]: v for k, v in torch.load(tmp_path / "ddp" / f"replica-{rank}.pt").items()
                 if "model." in k} for rank in (0, 1)]
    initial = load_file(tmp_path / "ddp" / "initial" / "model.safetensors")
    assert replicas[0].keys() == replicas[1].keys()
    for name in replicas[0]:
        assert torch.equal(replicas[0][name], replicas[1][name]), name
    changed = [n for n in initial if not torch.equal(initial[n], replicas[0][n])]
    assert changed, "no weight changed in 6 steps"
    # Each rank's batch is one task, so some experts were unused on a rank in some steps: DDP coped.
    assert any(".experts." in n for n in changed)


def test_frozen_shared_weights_stay_and_experts_move(tmp_path, tiny_bert, pair_files):
    config = quick_config(epochs=2, freeze_shared=True, expert_learning_rate=5e-3)
    folder = train(tiny_bert, data_from(pair_files), tmp_path / "run", config)
    before = load_file(tmp_path / "run" / "initial" / "model.safetensors")
    after = load_file(folder / "model.safetensors")
    shared = [k for k in before if ".experts." not in k]
    assert all(torch.equal(before[k], after[k]) for k in shared)
    assert any(not torch.equal(before[k], after[k]) for k in before if ".experts." in k)


def test_init_pull_keeps_the_weights_nearer_their_start(tmp_path, tiny_bert, pair_files):
    def distance(run, **kw):
        folder = train(tiny_bert, data_from(pair_files), tmp_path / run, quick_config(epochs=2, learning_rate=5e-3, **kw))
        before = load_file(tmp_path / run / "initial" / "model.safetensors")
        after = load_file(folder / "model.safetensors")
        return sum(float(((after[k] - before[k]) ** 2).sum()) for k in before), tmp_path / run

    free, _ = distance("free")
    pulled, run = distance("pulled", init_pull=10.0)
    assert 0 < pulled < 0.5 * free, (pulled, free)
    history = json.loads((run / "losses.json").read_text())
    assert any(h.get("loss/init_pull", 0) > 0 for h in history)
    assert json.loads((run / "training.json").read_text())["config"]["init_pull"] == 10.0


def test_dataloader_workers_collate_the_same_batches(tmp_path, tiny_bert, pair_files):
    """Collating (tokenizing) in two worker processes changes where the work happens, not the batches: the
    losses equal those of collating in the training process, step for step."""
    losses = {}
    for workers in (0, 2):
        config = quick_config(epochs=1, logging_steps=1, dataloader_workers=workers)
        train(tiny_bert, data_from(pair_files), tmp_path / f"w{workers}", config)
        history = json.loads((tmp_path / f"w{workers}" / "losses.json").read_text())
        losses[workers] = [h["loss"] for h in history if "loss" in h]
    assert len(losses[0]) >= 4 and losses[2] == pytest.approx(losses[0], rel=1e-6)
    with pytest.raises(ValueError, match="dataloader_workers must be >= 0"):
        quick_config(dataloader_workers=-1)


def test_cached_loss_trains_like_the_plain_loss(tmp_path, tiny_bert, pair_files):
    """GradCache (mini-batches of 4 in a batch of 8) computes the same loss and gradients as the whole batch: with
    no dropout, the logged losses match the plain loss's."""
    losses = {}
    for name, cached in (("plain", False), ("cached", True)):
        config = quick_config(epochs=3, cached_loss=cached, mini_batch_size=4, logging_steps=1, learning_rate=1e-2)
        train(tiny_bert, data_from({"search": pair_files["search"]}), tmp_path / name, config)
        history = json.loads((tmp_path / name / "losses.json").read_text())
        losses[name] = [h["loss/search"] for h in history if "loss/search" in h]
    assert len(losses["plain"]) == len(losses["cached"]) >= 4
    assert losses["plain"][-1] < 0.9 * losses["plain"][0], losses["plain"]  # it learns: the losses say something
    # the same loss on the same weights (step 1), the same gradients (steps 2-3); later Adam lets float-level
    # differences grow, so the rest only stays close
    np.testing.assert_allclose(losses["cached"][:3], losses["plain"][:3], rtol=2e-4)
    np.testing.assert_allclose(losses["cached"], losses["plain"], rtol=0.1)


def test_prepare_writes_parquet_with_provenance_and_train_reads_it(tmp_path, tiny_bert, shared_dir, capsys):
    out = tmp_path / "prepared"
    assert main(["prepare", "--data", f"link_prediction={shared_dir / 'data' / 'unarxive-cites'}",
                 "--negatives", "1", "--model", str(tiny_bert), "--output", str(out)]) == 0
    import datasets

    pairs = datasets.Dataset.from_parquet(str(out / "link_prediction" / "pairs.parquet"))
    assert pairs.column_names == ["anchor", "positive", "negative"] and len(pairs) == 1146
    provenance = json.loads((out / "link_prediction" / "provenance.json").read_text())
    assert provenance["format"] == "beir" and provenance["split"] == "train" and provenance["negatives"] == 1
    assert main(["train", "--model", str(tiny_bert), "--prepared", str(out), "--output", str(tmp_path / "run"),
                 "--max-steps", "2", "--batch-size", "4", "--max-seq-length", "32"]) == 0
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


class _TableModel(torch.nn.Module):
    """Stands in for the SentenceTransformer: each text's embedding is a fixed row, looked up by its first token id."""

    def __init__(self, table: dict[int, list[float]]):
        super().__init__()
        self.table = table

    def forward(self, features):
        rows = [self.table[int(ids[0])] for ids in features["input_ids"]]
        return {"sentence_embedding": torch.tensor(rows)}


def _features(first_ids: list[int]) -> dict:
    ids = torch.tensor([[i, 7, 7] for i in first_ids])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_loss_masks_repeated_positives_and_hard_negatives_that_are_the_positive():
    """Two anchors with the same positive text: neither is the other's negative (loss 0, where plain InfoNCE
    gives log 2); a hard negative that is the row's own positive text is masked too."""
    import math

    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from scimult_hf.training.loss import SciMultInfoNCELoss

    table = {1: [1.0, 0.0], 2: [0.9, 0.1], 5: [1.0, 0.2], 9: [0.8, 0.6]}
    anchors, positives = _features([1, 2]), _features([5, 5])  # one positive text for both rows
    loss = SciMultInfoNCELoss(_TableModel(table), scale=20.0)
    assert float(loss([anchors, positives])) == pytest.approx(0.0, abs=1e-6)
    plain = MultipleNegativesRankingLoss(_TableModel(table), scale=20.0)
    assert float(plain([anchors, positives], None)) == pytest.approx(math.log(2), abs=1e-4)
    # A hard-negative column holding the row's own positive text is masked; a true negative still counts.
    with_negatives = float(loss([anchors, positives, _features([5, 9])]))
    only_true_negative = float(loss([_features([1]), _features([5]), _features([9])]))
    assert with_negatives > 0 and only_true_negative > 0
    row0 = math.log(1 + math.exp(20.0 * (0.8 - 1.0 / math.sqrt(1.04))))  # cosines: negative 9 0.8, positive 5
    assert only_true_negative == pytest.approx(row0, rel=1e-4)


def test_add_task_trains_a_new_expert_and_leaves_the_old_tasks_bit_for_bit(tiny_scimult, pair_files, tmp_path):
    """`train --add-task NAME=DATA --init-from TASK`: one new expert per expert layer, the only weights that move;
    the old tasks' embeddings equal the source model's exactly, the new task's differ, and the folder loads with
    AutoModel in a fresh process."""
    import numpy as np

    from scimult_hf.cli import main

    out = tmp_path / "run"
    assert main(["train", "--model", str(tiny_scimult), "--add-task", f"patients={pair_files['search']}",
                 "--init-from", "link_prediction", "--output", str(out), "--max-steps", "3", "--batch-size", "4",
                 "--lr", "1e-2", "--max-seq-length", "48", "--warmup-ratio", "0"]) == 0
    source, trained = load_sentence_transformer(tiny_scimult), load_sentence_transformer(out / "model")
    assert trained[0].model.config.tasks == ["search", "link_prediction", "classification", "patients"]
    for task in ("search", "link_prediction", "classification", "query"):
        assert np.array_equal(source.encode(PAPERS, task=task), trained.encode(PAPERS, task=task)), task
    assert not np.allclose(trained.encode(PAPERS, task="patients"), source.encode(PAPERS, task="link_prediction"))
    assert (out / "exports" / "patients" / "model.safetensors").is_file()
    code = f"""
import sys, torch
from transformers import AutoModel, AutoTokenizer
model = AutoModel.from_pretrained({str(out / "model")!r}, trust_remote_code=True).eval()
batch = AutoTokenizer.from_pretrained({str(out / "model")!r}, trust_remote_code=True)(["a paper"], return_tensors="pt")
with torch.no_grad():
    print("SHAPE", tuple(model(**batch, task="patients").pooler_output.shape))
assert "scimult_hf" not in sys.modules
"""
    proc = run_python(code, env={"HF_HUB_OFFLINE": "1"}, cwd=tmp_path)
    assert proc.returncode == 0 and "SHAPE (1, 32)" in proc.stdout, proc.stderr[-2000:]


def test_add_task_refuses_what_it_cannot_do(tiny_scimult, tiny_bert, pair_files, tmp_path, capsys):
    from scimult_hf.cli import main

    base = ["--data", f"patients={pair_files['search']}", "--output", str(tmp_path / "x"), "--max-steps", "1"]
    assert main(["train", "--model", str(tiny_bert), "--add-task", "patients", *base]) == 2
    assert "adds a task to a trained SciMult model" in capsys.readouterr().err
    assert main(["train", "--model", str(tiny_scimult), "--add-task", "search", "--data",
                 f"search={pair_files['search']}", "--output", str(tmp_path / "y"), "--max-steps", "1"]) == 2
    assert "already has a task 'search'" in capsys.readouterr().err
    assert main(["train", "--model", str(tiny_scimult), "--add-task", "patients", "--data",
                 f"search={pair_files['search']}", "--output", str(tmp_path / "z"), "--max-steps", "1"]) == 2
    assert "the training data is that task's alone" in capsys.readouterr().err
    assert main(["train", "--model", str(tiny_scimult), "--init-from", "search", *base]) == 2
    assert "--init-from goes with --add-task" in capsys.readouterr().err
    assert main(["train", "--model", str(tiny_scimult), "--add-task", "patient cases", "--data",
                 f"patient cases={pair_files['search']}", "--output", str(tmp_path / "w"), "--max-steps", "1"]) == 2
    assert "are not task names" in capsys.readouterr().err
    for name in "xyzw":  # a refused or failed run leaves no empty run folder behind
        assert not (tmp_path / name).exists(), name


def test_mining_shows_a_labelled_bar_skips_the_paper_itself_and_is_cached(minilm_scimult, tmp_path, monkeypatch,
                                                                        capsys):
    """Citation sets hold the citing papers in the corpus too: a paper is never its own negative. Mining says
    what it mines, and a second run takes the cached result without encoding anything."""
    import scimult_hf.retrieval as retrieval
    from scimult_hf.training.data import pairs_from_beir
    from scimult_hf.training.negatives import mine_hard_negatives

    corpus = [{"_id": f"d{i}", "title": f"Paper {i}", "text": p} for i, p in enumerate(PAPERS)]
    queries = [{"_id": "d0", "text": corpus[0]["title"] + " [SEP] " + PAPERS[0]}]  # the query paper is in the corpus
    data = pairs_from_beir(write_beir(tmp_path / "cites", "d0\td1\t1\n", corpus=corpus, queries=queries,
                                      split="train"), "link_prediction")
    st = load_sentence_transformer(minilm_scimult)
    mined = mine_hard_negatives(st, data, 2, show_progress_bar=True)
    assert "mining hard negatives for link_prediction: 1 queries over 5 papers" in capsys.readouterr().err
    negatives = {mined.pairs[0]["negative_1"], mined.pairs[0]["negative_2"]}
    assert data.candidates["d0"] not in negatives and data.candidates["d1"] not in negatives  # not itself, not cited
    calls = []
    monkeypatch.setattr(retrieval, "encode_for_task", lambda *a, **k: calls.append(a) or None)
    again = mine_hard_negatives(st, data, 2, show_progress_bar=True)
    assert calls == [] and again.pairs["negative_1"] == mined.pairs["negative_1"]
    # Shorter inputs are other options: mined anew (not the cached full-length result), the model's length kept.
    monkeypatch.undo()
    lengths = []
    real = retrieval.encode_for_task
    monkeypatch.setattr(retrieval, "encode_for_task",
                        lambda st, *a, **k: lengths.append(st.max_seq_length) or real(st, *a, **k))
    short = mine_hard_negatives(st, data, 2, max_length=8)
    assert lengths and set(lengths) == {8} and st.max_seq_length == 256
    assert short.source["negatives_max_length"] == 8
    assert {short.pairs[0]["negative_1"], short.pairs[0]["negative_2"]} <= set(data.candidates.values()) - {
        data.candidates["d0"], data.candidates["d1"]}
    with pytest.raises(InputError, match="max_length must be a positive"):
        mine_hard_negatives(st, data, 1, max_length=0)


def test_a_recipe_mixes_sets_by_weight_with_label_negatives(shared_dir, tmp_path):
    """The larger real sets through one recipe: arxiv-cats (multi-label: a pair per label) and synergy-mesh (873
    MeSH descriptors) for classification, weighted, each pair with label negatives that are not its own labels."""
    from scimult_hf.training.data import load_task_data
    from scimult_hf.training.recipe import load_recipe, mixture_data

    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(json.dumps({"tasks": {"classification": [
        {"data": str(shared_dir / "data" / "arxiv-cats"), "weight": 0.5},
        {"data": str(shared_dir / "data" / "synergy-mesh"), "weight": 0.1}]}, "label_negatives": 2}))
    mixed = mixture_data(load_recipe(recipe_file))["classification"]
    arxiv = load_task_data(shared_dir / "data" / "arxiv-cats", "classification")
    mesh = load_task_data(shared_dir / "data" / "synergy-mesh", "classification")
    assert len(mixed.pairs) == round(0.5 * len(arxiv.pairs)) + round(0.1 * len(mesh.pairs))
    assert mixed.pairs.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    gold = {}  # (set, paper) -> its label texts
    for i, d in enumerate((arxiv, mesh)):
        for anchor, label in zip(d.anchor_ids, d.positive_ids):
            gold.setdefault(f"{i}:{anchor}", set()).add(d.candidates[label])
    for row in range(0, len(mixed.pairs), 97):
        pair, labels = mixed.pairs[row], gold[mixed.anchor_ids[row]]
        assert pair["positive"] in labels and pair["negative_1"] not in labels and pair["negative_2"] not in labels
    assert [s["weight"] for s in mixed.source["mixture"]] == [0.5, 0.1]


def test_a_temperature_gives_a_small_set_its_share_and_a_cap_bounds_a_set(shared_dir):
    """unarXive's citations (29 papers) beside SYNERGY's in link prediction: by size 7 % of the task; with a
    temperature α its share is n ** α over the sum (α = 0: equal), the task keeping its total; a cap bounds a set."""
    from scimult_hf.training.data import load_task_data
    from scimult_hf.training.recipe import mixture_data, parse_recipe

    paths = [str(shared_dir / "data" / name) for name in ("synergy-cites", "unarxive-cites")]
    sizes = [len(load_task_data(path, "link_prediction").pairs) for path in paths]
    assert sizes[1] < sizes[0] / 10  # 1,146 pairs against 14,043

    def rows(**recipe):
        sets = [{"data": path, **extra} for path, extra in zip(paths, recipe.pop("extra", [{}, {}]))]
        mixed = mixture_data(parse_recipe({"tasks": {"link_prediction": sets}, **recipe}))["link_prediction"]
        assert len(mixed.pairs) == len(mixed.anchor_ids)
        return [sum(a.startswith(f"{i}:") for a in mixed.anchor_ids) for i in range(2)]

    assert rows() == sizes == rows(temperature=1)
    for alpha in (0.5, 0):
        got, shares = rows(temperature=alpha), [n ** alpha for n in sizes]
        assert abs(got[1] - sum(sizes) * shares[1] / sum(shares)) <= 1 and abs(sum(got) - sum(sizes)) <= 2, got
    assert abs(got[0] - got[1]) <= 1  # alpha = 0: equal shares
    assert rows(extra=[{"cap": 500}, {}]) == [500, sizes[1]]


@pytest.mark.parametrize(("recipe", "message"), [
    ({"task": {}}, '"tasks"'),
    ({"tasks": {"search": [{"data": "x"}]}, "temperature": 2}, "temperature must be a number from 0"),
    ({"tasks": {"search": [{"data": "x", "cap": 0}]}}, "cap must be a whole number of pairs > 0"),
    ({"tasks": {"search": [{"data": "x", "weight": 0}]}}, "weight must be a positive number"),
    ({"tasks": {"search": []}}, "non-empty list"),
    ({"tasks": {"search": [{"data": "x"}]}, "negatives": 3}, "unknown recipe keys ['negatives']"),
])
def test_a_bad_recipe_is_named(recipe, message):
    from scimult_hf.training.recipe import parse_recipe

    with pytest.raises(ValueError, match=re.escape(message)):
        parse_recipe(recipe)


def test_a_short_run_still_logs_its_losses(tmp_path, tiny_bert, pair_files):
    """Fewer steps than logging_steps: the run still writes loss points (losses.json was [] before)."""
    config = quick_config(max_steps=4, logging_steps=50)
    train(tiny_bert, data_from(pair_files), tmp_path / "run", config)
    history = json.loads((tmp_path / "run" / "losses.json").read_text())
    assert len(history) >= 2 and all(any(k.startswith("loss") for k in h) for h in history), history
