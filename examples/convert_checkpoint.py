"""Convert an original SciMult checkpoint (.ckpt) and use it with transformers and sentence-transformers.

    python examples/convert_checkpoint.py CHECKPOINT.ckpt OUTPUT_DIR [--tokenizer DIR_OR_ID]

The released checkpoints (scimult_vanilla.ckpt, scimult_moe.ckpt, ...) use the BiomedBERT tokenizer (the
default of `--tokenizer`, fetched from the Hub); the project's test fixtures carry theirs in bert_config/:

    python examples/convert_checkpoint.py ../shared/fixtures/scimult_moe_attn_s1/checkpoint.ckpt /tmp/moe \\
        --tokenizer ../shared/fixtures/scimult_moe_attn_s1/bert_config
"""

import argparse

import torch
from transformers import AutoModel, AutoTokenizer

from scimult_hf import load_sentence_transformer
from scimult_hf.convert import convert_checkpoint

parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("output")
parser.add_argument("--tokenizer", default=None)
args = parser.parse_args()

report = convert_checkpoint(args.checkpoint, args.output, tokenizer=args.tokenizer, overwrite=True)
print(report)

papers = ["Graph neural networks [SEP] We study message passing on graphs."]
model = AutoModel.from_pretrained(args.output, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(args.output, trust_remote_code=True)
with torch.no_grad():
    for task in model.config.tasks:
        emb = model(**tokenizer(papers, return_tensors="pt"), task=task).pooler_output
        print(f"transformers, {task}: {emb[0, :4].tolist()}")
st = load_sentence_transformer(args.output)
print("sentence-transformers, search:", st.encode(papers, task="search")[0][:4].tolist())
