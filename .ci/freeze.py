"""The installed distributions as a pip constraints list, or compared with one (used by .ci/run and
.ci/refresh-constraints).

``python .ci/freeze.py`` prints ``name==version`` for every distribution that the project's dev install
needs (the dependency closure of ``scimult-hf[dev]``, so stray packages of the machine stay out), sorted,
with torch's local tag dropped (``2.13.0+cpu`` -> ``2.13.0``: the same constraint then takes the CPU
wheel here and the ordinary wheel elsewhere). ``python .ci/freeze.py --compare constraints.txt`` prints the
distributions whose installed version differs from the lock's.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

PROJECT = "scimult-hf"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str = PROJECT, extras: tuple[str, ...] = ("dev",)) -> set[str]:
    """The installed distributions that ``root[extras]`` needs, directly or not (markers evaluated here)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [(root, set(extras))]
    while todo:
        name, wanted = todo.pop()
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requirements:
            req = Requirement(line)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                continue
            dep = canonical(req.name)
            if dep not in seen:
                seen.add(dep)
                todo.append((dep, set(req.extras)))
    return seen - {canonical(root)}


def installed() -> dict[str, str]:
    needed = closure()
    pins = {}
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"] or "")
        if name in needed:
            pins[name] = dist.version.split("+")[0] if name == "torch" else dist.version
    return dict(sorted(pins.items()))


def read_lock(path: str) -> dict[str, str]:
    pins = {}
    for line in open(path, encoding="utf-8"):
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonical(name)] = version
    return pins


if __name__ == "__main__":
    now = installed()
    if len(sys.argv) == 3 and sys.argv[1] == "--compare":
        lock = read_lock(sys.argv[2])
        # what is installed here against the lock (a smaller install, such as CI's smoke environment, leaves some
        # locked distributions out: they are counted, not listed)
        changed = [(n, lock.get(n), now[n]) for n in sorted(now) if lock.get(n) != now[n]]
        for name, was, is_ in changed:
            print(f"  {name}: lock {was or '-'}, newest {is_}")
        if not changed:
            print("  the newest releases are the locked ones")
        absent = len(set(lock) - set(now))
        if absent:
            print(f"  ({absent} locked distributions are not installed here)")
    elif len(sys.argv) == 1:
        print("\n".join(f"{name}=={version}" for name, version in now.items()))
    else:
        sys.exit("usage: python .ci/freeze.py [--compare constraints.txt]")
