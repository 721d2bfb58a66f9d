"""``scimult-hf push`` (a model folder to the Hub in one commit) and ``push-dataset``; registered by
:mod:`scimult_hf.cli`."""

from __future__ import annotations

__all__ = ["register_push", "register_push_dataset"]


def run_push(args) -> int:
    import json
    from pathlib import Path

    from .publish import card_with_results, push_model

    card_path = Path(args.card) if args.card else Path(args.model) / "README.md"
    if not card_path.is_file():
        raise FileNotFoundError(f"no model card at {card_path}; pass --card README.md (see model_cards/).")
    card = card_path.read_text(encoding="utf-8")
    if args.results:
        results = []
        for path in args.results:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            results += data if isinstance(data, list) else [data]
        card = card_with_results(card, results, model_name=args.repo)
    out = push_model(args.model, args.repo, card, private=args.private, revision=args.revision,
                     commit_message=args.message, dry_run=args.dry_run, overwrite=args.overwrite)
    print(f"wrote {out} (nothing uploaded)" if args.dry_run else f"pushed {args.repo}: {out}")
    return 0


def _push_options(p) -> None:
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--message", help="commit message")
    p.add_argument("--dry-run", metavar="DIR", help="write the exact repository to DIR; upload nothing")
    p.add_argument("--overwrite", action="store_true",
                   help="with --dry-run: replace an existing DIR (once the new one is complete)")


def register_push(sub) -> None:
    p = sub.add_parser("push", help="push a model folder (exports, handler, card, results) to the Hub in one commit")
    p.add_argument("--model", required=True, help="SciMult folder")
    p.add_argument("--repo", required=True, help="Hub repository id, org/name")
    p.add_argument("--card", help="model card (README.md with YAML metadata; default: the folder's README.md)")
    p.add_argument("--results", nargs="+", help="`scimult-hf evaluate --output` JSON files for the card's model-index")
    p.add_argument("--revision", help="branch to push to (created if needed)")
    _push_options(p)
    p.set_defaults(func=run_push)


def run_push_dataset(args) -> int:
    from pathlib import Path

    from .dataset_repo import push_dataset

    citation = Path(args.citation).read_text(encoding="utf-8") if args.citation else None
    out = push_dataset(args.prepared, args.repo, args.license, private=args.private, commit_message=args.message,
                       dry_run=args.dry_run, pretty_name=args.name, citation=citation, overwrite=args.overwrite)
    print(f"wrote {out} (nothing uploaded)" if args.dry_run else f"pushed dataset {args.repo}: {out}")
    return 0


def register_push_dataset(sub) -> None:
    p = sub.add_parser("push-dataset", help="push `scimult-hf prepare` output to a Hub dataset (a config per task, a card)")
    p.add_argument("--prepared", required=True, help="folder written by `scimult-hf prepare`")
    p.add_argument("--repo", required=True, help="Hub dataset id, org/name")
    p.add_argument("--license", required=True, help="license of the data (e.g. cc-by-4.0; check the sources')")
    p.add_argument("--name", default="SciMult training pairs", help="pretty name for the card")
    p.add_argument("--citation", help="file with the BibTeX to cite (default: the SciMult paper)")
    _push_options(p)
    p.set_defaults(func=run_push_dataset)
