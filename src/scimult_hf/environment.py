"""What this installation runs on: the versions of the stack and the machine, for bug reports and benchmark files.

``scimult-hf env`` prints :func:`environment_report` (as ``transformers env`` does); every file a benchmark
writes under ``benchmarks/results/`` carries :func:`environment_record`. A leaf module: the standard library
only, and packages are asked for their installed version, never imported (so it is cheap and cannot fail on a
broken install); torch is imported only for the accelerator line.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

#: The distributions whose versions a report names, in the order data flows through them.
STACK = ("scimult-hf", "torch", "transformers", "sentence-transformers", "tokenizers", "safetensors",
         "huggingface-hub", "datasets", "accelerate", "kernels", "evaluate", "onnxruntime", "pylance", "ray", "faiss-cpu", "numpy")

__all__ = ["STACK", "environment_line", "environment_record", "environment_report", "machine", "metadata_version",
           "peak_rss_mib", "png_metadata", "stack_versions"]


def metadata_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def stack_versions(names=STACK) -> dict[str, str | None]:
    """``{distribution: installed version or None}`` for each of ``names``."""
    return {name: metadata_version(name) for name in names}


def machine(with_accelerator: bool = True) -> dict[str, object]:
    """The machine: Python, OS, processor, cores and, when torch is importable, its device and thread count."""
    info: dict[str, object] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    env = {k: os.environ[k] for k in ("USE_HUB_KERNELS", "HF_HUB_OFFLINE", "HF_ENDPOINT") if k in os.environ}
    if env:
        info["environment"] = env
    if with_accelerator and metadata_version("torch"):
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["accelerator"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return info


def environment_record(with_accelerator: bool = True) -> dict[str, object]:
    """``{"versions": ..., "machine": ...}``: what a benchmark's results file records beside its figures."""
    return {"versions": stack_versions(), "machine": machine(with_accelerator)}


def environment_line(record: dict | None = None) -> str:
    """The record as one markdown line, for the tables a benchmark writes."""
    record = record or environment_record()
    versions = ", ".join(f"{name} {version}" for name, version in record["versions"].items() if version)
    where = record["machine"]
    machine_text = f"{where.get('accelerator') or where.get('processor')}, {where.get('cpu_count')} CPUs"
    return f"_Stack: {versions}; machine: {machine_text}, Python {where.get('python')}._"


def png_metadata(record: dict | None = None) -> dict[str, str]:
    """The record (default: this environment's) as PNG metadata, for ``savefig(..., metadata=...)``: a plot says
    what it ran on, as its JSON and markdown do."""
    import json

    return {"Description": json.dumps(record or environment_record())}


def environment_report() -> str:
    """The record as aligned lines, to paste into a bug report."""
    record = environment_record()
    rows = [(name, version or "not installed") for name, version in record["versions"].items()]
    rows += [(key, str(value)) for key, value in record["machine"].items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"- {k.ljust(width)}  {v}" for k, v in rows) + f"\n- {'executable'.ljust(width)}  {sys.executable}"


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB, for benchmarks: ``VmHWM`` from ``/proc/self/status``. Not
    ``ru_maxrss`` where ``/proc`` exists: Linux keeps that across ``execve``, so a child started by a large
    parent would report the parent's size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
