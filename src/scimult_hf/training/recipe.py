"""A training mixture given once: which data sets feed each task, and how much of each.

A recipe is a small JSON file that ``scimult-hf prepare --recipe`` and ``scimult-hf train --recipe`` both read,
and that the run records in ``training.json`` and its card::

    {
      "tasks": {
        "search": [{"data": "../shared/data/scifact"}],
        "link_prediction": [{"data": "../shared/data/synergy-cites"}, {"data": "../shared/data/unarxive-cites"}],
        "classification": [{"data": "../shared/data/ohsumed23", "weight": 0.5},
                           {"data": "../shared/data/arxiv-cats"}, {"data": "../shared/data/synergy-mesh"}]
      },
      "label_negatives": 2,
      "temperature": 0.5
    }

``data`` is any training source :func:`~scimult_hf.training.data.load_task_data` reads (a BEIR folder, a
classification folder, a pair file); a relative path is relative to the recipe's folder. ``weight`` scales a
set's pairs (0.5 keeps every other pair, 2 repeats each twice; default 1). ``label_negatives`` gives every
classification pair that many labels of its set that are not the paper's own as negatives (an extreme label set,
such as 873 MeSH descriptors, needs label-side negatives: a batch holds only a few dozen of its labels).
Hard negatives mined with a model (``--negatives``) replace them.

``temperature`` (α, from 0 to 1; off by default) samples the sets of each task by size with a temperature, as
multilingual and multi-task training does: set *i* of a task gets a share of the task's pairs proportional to
``weight_i * n_i ** α`` (n: its pairs), the task keeping its total. α = 1 is by size (what no temperature
gives), α = 0 gives every set an equal share (a 29-paper set as much as a 15,000-pair one), α = 0.5 is between.
Small sets are repeated to reach their share, large ones subsampled. ``cap`` on a set bounds its pairs after
that. Across tasks, ``--sampler`` decides (round robin or proportional).

Examples:
    >>> recipe = parse_recipe({"tasks": {"search": [{"data": "scifact", "weight": 2}]}})
    >>> recipe["tasks"]["search"][0]["weight"], recipe["label_negatives"], recipe["temperature"]
    (2.0, 0, None)
    >>> [round(w, 3) for w in set_weights([15000, 30], [1.0, 1.0], temperature=0.5)]  # the small set repeated
    [0.959, 21.446]
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from ..errors import InputError, json_error_text
from .data import TaskData, load_task_data

__all__ = ["load_recipe", "mixture_data", "parse_recipe", "set_weights"]


def parse_recipe(raw: dict, base: Path | None = None) -> dict:
    """A checked recipe: ``{"tasks": {task: [{"data", "weight", "split", "cap"}]}, "label_negatives": int,
    "temperature": float | None}``."""
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), dict) or not raw["tasks"]:
        raise InputError('a recipe is a JSON object with "tasks": {task: [{"data": PATH, "weight": W}, ...]}.')
    unknown = sorted(set(raw) - {"tasks", "label_negatives", "temperature"})
    if unknown:
        raise InputError(f"unknown recipe keys {unknown}; a recipe has tasks, label_negatives and temperature.")
    tasks = {}
    for task, sets in raw["tasks"].items():
        if not isinstance(sets, list) or not sets:
            raise InputError(f"recipe task {task!r}: give a non-empty list of sets ({{'data': PATH}}).")
        tasks[task] = []
        for i, entry in enumerate(sets):
            if not isinstance(entry, dict) or not isinstance(entry.get("data"), str):
                raise InputError(f"recipe task {task!r}, set {i + 1}: needs \"data\": a path.")
            weight = entry.get("weight", 1)
            if not isinstance(weight, (int, float)) or weight <= 0:
                raise InputError(f"recipe task {task!r}, set {i + 1}: weight must be a positive number, got {weight!r}.")
            cap = entry.get("cap")
            if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap <= 0):
                raise InputError(f"recipe task {task!r}, set {i + 1}: cap must be a whole number of pairs > 0, "
                                 f"got {cap!r}.")
            path = Path(entry["data"])
            if base is not None and not path.is_absolute():
                path = base / path
            tasks[task].append({"data": os.fspath(path), "weight": float(weight), "split": entry.get("split", "train"),
                                "cap": cap})
    label_negatives = raw.get("label_negatives", 0)
    if not isinstance(label_negatives, int) or label_negatives < 0:
        raise InputError(f"recipe label_negatives must be a whole number >= 0, got {label_negatives!r}.")
    temperature = raw.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not 0 <= temperature <= 1):
        raise InputError(f"recipe temperature must be a number from 0 (every set an equal share) to 1 (by size), "
                         f"got {temperature!r}.")
    return {"tasks": tasks, "label_negatives": label_negatives,
            "temperature": None if temperature is None else float(temperature)}


def load_recipe(path: str | os.PathLike) -> dict:
    """Read and check a recipe file (relative data paths resolved against its folder)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no recipe file at {path}.") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({json_error_text(err)} of line {err.lineno}).") from None
    return parse_recipe(raw, path.parent)


def set_weights(sizes: list[int], weights: list[float], temperature: float | None = None,
                caps: list[int | None] | None = None) -> list[float]:
    """What each set's pairs are multiplied by in its task: ``weights`` as given without a temperature; with one
    (α), set *i*'s share of the task's pairs is ``weights_i * sizes_i ** α`` over the sum, the task's total kept;
    then each ``caps_i`` bounds its pairs."""
    if temperature is None:
        out = list(weights)
    else:
        raw = [w * n ** temperature for w, n in zip(weights, sizes)]
        out = [sum(sizes) * r / sum(raw) / n for r, n in zip(raw, sizes)]
    return [min(w, cap / n) if cap else w for w, n, cap in zip(out, sizes, caps or [None] * len(sizes))]


def _weighted(data: TaskData, weight: float, seed: int) -> TaskData:
    """``data`` with its pairs scaled by ``weight`` (whole copies, then a seeded sample for the fraction)."""
    if weight == 1:
        return data
    n = len(data.pairs)
    rows = list(range(n)) * int(weight)
    rows += sorted(random.Random(seed).sample(range(n), round(n * (weight - int(weight)))))
    pick = lambda values: [values[i] for i in rows]  # noqa: E731
    return TaskData(data.task, data.pairs.select(rows), pick(data.anchor_ids), pick(data.positive_ids),
                    data.candidates, data.positives, {**data.source, "weight": weight, "rows": len(rows)})


def _label_negatives(data: TaskData, count: int, seed: int) -> TaskData:
    """``count`` random labels of the set that are not the paper's own, as ``negative`` column(s)."""
    if count == 0 or data.source.get("format") != "classification" or "negative" in data.pairs.column_names:
        return data
    rng, labels = random.Random(seed), list(data.candidates)
    columns: list[list[str]] = [[] for _ in range(count)]
    for anchor in data.anchor_ids:
        own = data.positives.get(anchor, set())
        choices = [label for label in labels if label not in own]
        if len(choices) < count:
            raise InputError(f"task {data.task!r}: {data.source.get('path')} has too few labels for "
                             f"{count} label negatives per paper.")
        for column, label in zip(columns, rng.sample(choices, count)):
            column.append(data.candidates[label])
    names = ["negative"] if count == 1 else [f"negative_{j + 1}" for j in range(count)]
    pairs = data.pairs
    for name, values in zip(names, columns):
        pairs = pairs.add_column(name, values)
    return TaskData(data.task, pairs, data.anchor_ids, data.positive_ids, data.candidates, data.positives,
                    {**data.source, "label_negatives": count})


def mixture_data(recipe: dict, mine=None, seed: int = 0) -> dict[str, TaskData]:
    """Each task's pairs from its sets: read (all checked first), mined with ``mine(data)`` when given (per set:
    each set is its own candidate pool), else given label negatives, weighted (:func:`set_weights`: the recipe's
    weights, temperature and caps), then put together."""
    from datasets import concatenate_datasets

    loaded = {task: [(entry, load_task_data(entry["data"], task, entry["split"])) for entry in sets]
              for task, sets in recipe["tasks"].items()}
    out = {}
    for task, sets in loaded.items():
        datas = [mine(data) if mine is not None else _label_negatives(data, recipe["label_negatives"], seed + i)
                 for i, (entry, data) in enumerate(sets)]
        weights = set_weights([len(d.pairs) for d in datas], [entry["weight"] for entry, _ in sets],
                              recipe.get("temperature"), [entry.get("cap") for entry, _ in sets])
        parts = [(i, _weighted(d, w, seed + i)) for i, (d, w) in enumerate(zip(datas, weights))]
        columns = {tuple(d.pairs.column_names) for _, d in parts}
        if len(columns) > 1:
            raise InputError(f"recipe task {task!r}: its sets have different columns {sorted(columns)}; give every "
                             "set of a task the same kind of negatives (or none).")
        prefix = (lambda i, values: [f"{i}:{v}" for v in values]) if len(parts) > 1 else (lambda i, values: values)
        out[task] = TaskData(
            task,
            concatenate_datasets([d.pairs for _, d in parts]),
            [a for i, d in parts for a in prefix(i, d.anchor_ids)],
            [p for i, d in parts for p in prefix(i, d.positive_ids)],
            {k: v for i, d in parts for k, v in zip(prefix(i, d.candidates), d.candidates.values())},
            {k: set(prefix(i, v)) for i, d in parts for k, v in zip(prefix(i, d.positives), d.positives.values())},
            {"mixture": [d.source for _, d in parts], "rows": sum(len(d.pairs) for _, d in parts)},
        )
    return out
