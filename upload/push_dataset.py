"""Push `scimult-hf prepare` output to a Hub dataset repository (a thin script over ``scimult_hf.hub``).

    python upload/push_dataset.py --prepared DIR --repo ORG/NAME --license LICENSE [--dry-run OUT]

The same as ``scimult-hf push-dataset``: one configuration per task, a dataset card, one commit.
"""

import sys

from scimult_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["push-dataset", *sys.argv[1:]]))
