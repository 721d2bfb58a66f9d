"""Convert, evaluate, card and push the released SciMult checkpoints in one command.

    python upload/release_models.py --checkpoints DIR --org ORG --work DIR [--tokenizer DIR_OR_ID]
        [--data search=../shared/data/scifact ...] [--code-revision SHA] [--private] [--dry-run]

DIR holds any of scimult_vanilla.ckpt, scimult_moe.ckpt, scimult_moe_pmcpatients_par.ckpt,
scimult_moe_pmcpatients_ppr.ckpt (download them with `hf download yuz9yuz/SciMult --local-dir DIR`).
Each is converted into WORK/models/NAME, evaluated on every --data set, given its card from
../model_cards/NAME.md (usage, results, model-index) and pushed to ORG/NAME in one commit, or with
--dry-run written to WORK/repos/NAME. The token comes from HF_TOKEN or the stored login.
"""

import argparse
import logging
import sys
from pathlib import Path

from scimult_hf.hub.release import release_models

CARDS = Path(__file__).resolve().parents[1] / "model_cards"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", required=True, help="folder with the original .ckpt files")
    parser.add_argument("--org", required=True, help="Hub organisation or user for the repositories")
    parser.add_argument("--work", required=True, help="folder for the converted models (and dry runs)")
    parser.add_argument("--tokenizer", help="BiomedBERT folder or Hub id (default: from the Hub or its cache)")
    parser.add_argument("--data", action="append", default=[], metavar="TASK=DIR", help="evaluate on this set")
    parser.add_argument("--code-revision", help="commit of the remote code the cards pin")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="write WORK/repos/NAME; upload nothing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    data = dict(item.split("=", 1) for item in args.data)
    done = release_models(args.checkpoints, args.org, args.work, CARDS, tokenizer=args.tokenizer, data=data,
                          code_revision=args.code_revision, dry_run=args.dry_run, private=args.private)
    for name, where in done.items():
        print(f"{name}: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
