"""Start-up: `import scimult_hf` is cheap yet registers "scimult" with the auto classes; `--help` is fast and complete."""

import pytest
from helpers import run_python

CHECK = """
import sys
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_MAPPING

config = CONFIG_MAPPING._extra_content.get("scimult")
assert config is not None and config.__name__ == "SciMultConfig", "AutoConfig does not know scimult"
assert MODEL_MAPPING._extra_content[config].__name__ == "SciMultModel", "AutoModel does not know scimult"
assert config._auto_class == "AutoConfig"
"""

#: Import orders checked in the default run: the plain ones, and our modules that import sentence-transformers /
#: transformers half way through their own import (the moment that once left folders without ``auto_map``).
ORDERS = [
    "import scimult_hf",  # then the check imports the auto modules
    "import scimult_hf.models.folder",
    "from scimult_hf.models.folder import save_sentence_transformer",
]
#: More orders, each a fresh interpreter (about 10 s): run with ``-m slow``.
MORE_ORDERS = [
    "from transformers import AutoModel; import scimult_hf",
    "import scimult_hf; from sentence_transformers import SentenceTransformer",
    "import scimult_hf.training",
    "import scimult_hf; from transformers import AutoModel",
    "import scimult_hf; from transformers import AutoTokenizer",
    "import scimult_hf; from transformers import AutoConfig",
    "import scimult_hf; from transformers import BertModel",
    "import scimult_hf; from transformers import pipeline",
    "from scimult_hf import SciMultModel",
    "import scimult_hf.configuration_scimult",
    "import scimult_hf.convert.writer",
    "import scimult_hf.retrieval.encoding",
]


@pytest.mark.parametrize("first", [*ORDERS, *(pytest.param(o, marks=pytest.mark.slow) for o in MORE_ORDERS)])
def test_registered_whatever_comes_first(first):
    proc = run_python(first + "\n" + CHECK, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_help_imports_neither_torch_nor_transformers():
    code = ("import sys\nfrom scimult_hf.cli import build_parser\nbuild_parser().format_help()\n"
            "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'datasets') if m in sys.modules]\n"
            "assert not heavy, heavy")
    proc = run_python(code, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_option_of_every_command_says_what_it_does():
    import argparse

    from scimult_hf.cli import build_parser

    parser = build_parser(["train"])  # train's hyper-parameter options too
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for option in sub._actions:
                    if option.option_strings and option.dest != "help" and not option.help:
                        missing.append(f"{name} {option.option_strings[0]}")
    assert not missing, f"options without help text: {missing}"
