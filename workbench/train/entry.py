"""`python -m workbench.train.entry [--model-config FILE] -- ARGV`: `open_clip_train.main(ARGV)`, unchanged.

The one thing added: a model-config JSON is registered with open_clip first, so a custom architecture (the demo's
tiny CLIP) is known in every process torchrun starts.
"""

from __future__ import annotations

import sys


def run(argv: list[str]) -> int:
    """Register the model configs before `--`, then call open_clip_train.main with the rest; its return code."""
    import open_clip
    from open_clip_train.main import main as open_clip_main

    split = argv.index("--") if "--" in argv else len(argv)
    head, rest = argv[:split], argv[split + 1 :]
    for index, value in enumerate(head):
        if value == "--model-config" and index + 1 < len(head):
            open_clip.add_model_config(head[index + 1])
    result = open_clip_main(rest)
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
