"""The ``scimult-hf`` command line: one root parser, an explicit list of sub-commands, one error boundary.

Every sub-command handler takes the parsed arguments and returns an exit code. The package's own errors
(:class:`~scimult_hf.errors.ScimultError`: bad options, data, checkpoints, tasks, a missing optional package)
and a missing file, an existing output or a permission problem are reported by :func:`main` as one line,
``scimult-hf COMMAND: error: ...``, exit code 2. Anything else is a defect and shows its traceback (exit 1);
``--debug`` shows the traceback for every error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from .convert.cli import register_cli as register_convert
from .corpus.cli import register_classify, register_encode, register_recommend, register_search
from .errors import InputError, is_user_error
from .evaluation.cli import register_cli as register_evaluate
from .hub.cli import register_push, register_push_dataset
from .serving.cli import register_serve
from .training.cli import register_prepare, register_train


def _demo(args) -> int:
    from .demo import run_demo

    return run_demo(model=args.model, data=args.data, seed=args.seed)


def _upcycle(args) -> int:
    from .models.upcycle import upcycle

    expert_type = None if args.expert_type == "none" else args.expert_type
    tasks = args.tasks.split(",") if args.tasks else None
    path = upcycle(args.source, args.output, expert_type=expert_type, expert_layers=args.expert_layers, tasks=tasks,
                   overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def _export(args) -> int:
    from .resolve import resolve_model_path

    model = resolve_model_path(args.model)
    if args.onnx:
        from .models.onnx import export_onnx

        path = export_onnx(model, args.task, args.output, overwrite=args.overwrite)
        print(f"wrote {path} (plain BERT sentence-transformers folder for task {args.task!r}, with "
              "onnx/model.onnx and onnx/model_qint8.onnx)")
        return 0
    from .models.export import export_task

    path = export_task(model, args.task, args.output, overwrite=args.overwrite)
    print(f"wrote {path} (plain BERT sentence-transformers folder for task {args.task!r})")
    return 0


def _env(args) -> int:
    from .environment import environment_report

    print("Copy-and-paste the text below in your bug report.\n")
    print(environment_report())
    return 0


def _register_env(sub) -> None:
    p = sub.add_parser("env", help="print the versions of the stack and the machine, for bug reports")
    p.set_defaults(func=_env)


def _fetch(args) -> int:
    from .convert.fetch import fetch_released
    from .released import RELEASED

    for name in args.names:
        if name not in RELEASED:
            raise InputError(f"unknown released model {name!r}: use one of {', '.join(RELEASED)}.")
    for name in args.names:
        print(fetch_released(name, full=args.full, overwrite=args.overwrite))
    return 0


def _register_fetch(sub) -> None:
    p = sub.add_parser("fetch", help="download and convert released SciMult models (scimult-moe, ...) into the cache")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="scimult-moe, scimult-vanilla, scimult-moe-pmcpatients-par or scimult-moe-pmcpatients-ppr")
    p.add_argument("--full", action="store_true",
                   help="download the whole checkpoint (kept in the Hub cache) and check its sha256, instead of "
                        "only the model tensors the conversion reads")
    p.add_argument("--overwrite", action="store_true", help="fetch and convert again even if the folder exists")
    p.set_defaults(func=_fetch)


def _register_demo(sub) -> None:
    p = sub.add_parser("demo", help="search, classify and link a handful of real papers with the default model")
    p.add_argument("--model", help="a released name (scimult-moe, scimult-vanilla, scimult-moe-pmcpatients-par/-ppr: fetched and converted on first use), a SciMult folder or Hub id (default: scimult-moe when cached or the Hub answers, else the offline default; one line says which)")
    p.add_argument("--data", help="instead of the shipped sample: a folder with scifact/, ohsumed23/ and unarxive-cites/ (the shared data layout)")
    p.add_argument("--seed", type=int, default=0, help="picks the claim, papers and references shown (default: 0)")
    p.set_defaults(func=_demo)


def _register_upcycle(sub) -> None:
    p = sub.add_parser("upcycle", help="turn a BERT / sentence-transformers folder into a SciMult folder")
    p.add_argument("--source", required=True, help="BERT or sentence-transformers folder (or Hub id)")
    p.add_argument("--output", required=True, help="SciMult folder to write")
    p.add_argument("--expert-type", choices=["attention", "ffn", "none"], default="attention",
                   help="sub-layers that get one expert per task; none: a dense model (default: attention)")
    p.add_argument("--expert-layers", type=int, nargs="+", help="layer indices with experts, e.g. 1 3 5 (default: every other from 1)")
    p.add_argument("--tasks", help="comma-separated task names (default search,link_prediction,classification)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder (once the new one is complete)")
    p.set_defaults(func=_upcycle)


def _register_export(sub) -> None:
    p = sub.add_parser("export", help="write a plain-BERT sentence-transformers folder for one task")
    p.add_argument("--model", required=True, help="a released name (scimult-moe, scimult-vanilla, scimult-moe-pmcpatients-par/-ppr: fetched and converted on first use), or a SciMult folder")
    p.add_argument("--task", help="task whose experts to keep (omit for a dense model)")
    p.add_argument("--output", required=True, help="folder to write")
    p.add_argument("--onnx", action="store_true",
                   help="also write onnx/model.onnx (fused fp32) and onnx/model_qint8.onnx (int8) for ONNX Runtime "
                        '(needs `pip install "scimult-hf[onnx]"`)')
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder (once the new one is complete)")
    p.set_defaults(func=_export)


#: The sub-commands, in the order ``--help`` lists them.
SUBCOMMANDS = (_register_demo, _register_fetch, register_encode, register_search, register_classify, register_recommend,
               _register_upcycle, _register_export, register_convert, register_evaluate,
               register_prepare, register_train, register_serve, register_push,
               register_push_dataset, _register_env)


def _version_line() -> str:
    from .environment import stack_versions

    versions = stack_versions(("scimult-hf", "torch", "transformers", "sentence-transformers", "huggingface-hub"))
    return ", ".join(f"{name} {version or 'not installed'}" for name, version in versions.items())


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The root parser. ``train``'s hyper-parameter options (built by transformers' ``HfArgumentParser``) are
    added only when ``argv`` asks for ``train``, so that other commands and ``--help`` import no transformers."""
    parser = argparse.ArgumentParser(prog="scimult-hf", description="SciMult for transformers and sentence-transformers")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of every error")
    parser.add_argument("--version", action="version", version=_version_line(),
                        help="print the versions of scimult-hf and its stack, then exit (`scimult-hf env`: more)")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in SUBCOMMANDS:
        if register is register_train:
            register(sub, full="train" in argv)
        else:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except Exception as err:
        if not is_user_error(err):
            raise  # a defect: its traceback
        if args.debug:
            traceback.print_exc()
        print(f"scimult-hf {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
