"""``scimult-hf convert --checkpoint FILE --output DIR``: the converter's sub-command (registered by
:mod:`scimult_hf.cli`)."""

from __future__ import annotations

import json


def run_convert(args) -> int:
    """Handler of ``scimult-hf convert``."""
    from .writer import convert_checkpoint

    path = convert_checkpoint(
        args.checkpoint,
        args.output,
        tokenizer=args.tokenizer,
        num_attention_heads=args.num_attention_heads,
        overwrite=args.overwrite,
    )
    summary = json.loads((path / "conversion.json").read_text(encoding="utf-8"))
    print(f"tokenizer and base config: {summary['tokenizer_source']}")
    print(f"dropped: {', '.join(summary['dropped'])} (training state and unused weights; see README.md)")
    print(f"wrote {path} (SciMult folder; load with SentenceTransformer({str(path)!r}, trust_remote_code=True))")
    return 0


def register_cli(subparsers) -> None:
    """Add ``convert`` to an argparse subparsers object (``scimult-hf convert --checkpoint FILE --output DIR``)."""
    p = subparsers.add_parser(
        "convert",
        help="convert an original SciMult checkpoint (.ckpt) into a SciMult folder",
        description="Convert an original SciMult training checkpoint (scimult_vanilla.ckpt, scimult_moe.ckpt, "
        "scimult_moe_pmcpatients_*.ckpt) into a folder for transformers / sentence-transformers. The file is "
        "read with a restricted unpickler; nothing is written if anything is wrong.",
    )
    p.add_argument("--checkpoint", required=True, help="the original .ckpt file")
    p.add_argument("--output", required=True, help="folder to write")
    p.add_argument(
        "--tokenizer",
        help="folder or Hub id with the base model's vocab.txt and config.json (default: the base model "
        "the checkpoint names, from the Hub or the local Hub cache)",
    )
    p.add_argument("--num-attention-heads", type=int, help="override the base config (12 for the released models)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run_convert)
