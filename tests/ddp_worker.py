"""Worker of tests/test_ddp.py, launched by torch.distributed.run: tiny fit, then dump weights."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


from _training_helpers import TINY, cloud_examples, tokenizer

from cloudphys.training import fit


def main() -> None:
    out = Path(sys.argv[1])
    root = Path(os.environ["CLOUDPHYS_DATA"])
    data = {"train": cloud_examples(root, 40), "val": cloud_examples(root, 12, offset=40)}
    res = fit(TINY, out / "run", tokenizer=tokenizer(), examples=data)
    h = hashlib.sha256()
    for k, v in sorted(res.model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes())
    rank = int(os.environ["RANK"])
    (out / f"rank{rank}.json").write_text(json.dumps({
        "world": int(os.environ["WORLD_SIZE"]),
        "weights": h.hexdigest(),
        "val_loss": [r["val_loss"] for r in res.history],
        "train_loss": [r["train_loss"] for r in res.history],
    }))


if __name__ == "__main__":
    main()
