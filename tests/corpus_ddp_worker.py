"""Worker of tests/test_corpus.py, launched by torch.distributed.run: pretrain from a corpus, dump what it saw."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> None:
    from cloudphys.training.pretrain import pretrain

    corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = {"encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_length": 64},
           "head": {"name": "debye"},
           "pretrain": {"corpus": str(corpus), "epochs": 2, "batch_size": 16, "lr": 1e-3, "device": "cpu",
                        "progress": "false", "val_fraction": 0.1, "num_threads": 1}}
    log: list[list[int]] = []
    res = pretrain(cfg, out / "run", sample_log=log)
    rank = int(os.environ["RANK"])
    dump = {"world": res["world"], "log": log, "weights": res["weights_sha256"]}
    (out / f"rank{rank}.json").write_text(json.dumps(dump))


if __name__ == "__main__":
    main()
