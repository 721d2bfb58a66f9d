"""Push a SciMult model folder to the Hub in one commit (a thin script over ``scimult_hf.hub.publish``).

    python upload/push_model.py --model DIR --repo ORG/NAME [--card README.md] [--results r.json ...]
                                [--private] [--revision BRANCH] [--message TEXT] [--dry-run OUT]

The same as ``scimult-hf push``; the token comes from HF_TOKEN or the stored login (``hf auth login``).
"""

import sys

from scimult_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["push", *sys.argv[1:]]))
