"""Build the paper sample shipped inside the package (``src/scimult_hf/sample/``) from the S2ORC FoS set.

    python upload/build_sample.py --source ../shared/data/s2orc-fos

Keeps every paper that has an abstract (468 of the 953), in the source's order, with its fields of study,
and the 19 field names. The source is the S2ORC metadata sample (Lo et al., 2020), ODC-By 1.0; the
attribution ships beside the files (``sample/README.md``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scimult_hf.io import atomic_write_text

TARGET = Path(__file__).resolve().parent.parent / "src" / "scimult_hf" / "sample"


def build(source: Path, target: Path = TARGET) -> int:
    rows = [json.loads(line) for line in (source / "papers.jsonl").read_text(encoding="utf-8").splitlines() if line]
    kept = [r for r in rows if r["abstract"].strip()]
    lines = [json.dumps({"id": r["id"], "title": r["title"], "abstract": r["abstract"], "labels": r["labels"]},
                        ensure_ascii=False) for r in kept]
    atomic_write_text(target / "papers.jsonl", "\n".join(lines) + "\n")
    atomic_write_text(target / "labels.jsonl", (source / "labels.jsonl").read_text(encoding="utf-8"))
    return len(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("../shared/data/s2orc-fos"),
                        help="S2ORC FoS folder with papers.jsonl and labels.jsonl")
    args = parser.parse_args()
    print(f"wrote {build(args.source)} papers to {TARGET}")


if __name__ == "__main__":
    main()
