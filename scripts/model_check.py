"""Loads full model folders with the real transformers and reports what it sees: the live check of exported models
(full fine-tuning's output, or any model folder we write).

    .venv-ref/bin/python scripts/model_check.py < jobs.json > results.json

stdin: a JSON list of jobs
    {"model": model folder (config.json + *.safetensors),
     "compare": optional second model folder (e.g. tests/fixtures/golden/train_full_<fixture>_model), run on the same
                rows for the logit difference,
     "rows": [{"input_ids": [...], "labels": [...] (optional, -100 = ignored; defaults to input_ids)}]}
stdout: a JSON list with, per job,
    {"load": {"missing": [...], "unexpected": [...], "mismatched": [...],   # from_pretrained's output_loading_info
              "dtype": the safetensors dtype of the folder's tensors ("F32", "F16", "BF16"; several joined by ","),
              "file_tensors": number of tensors in the folder's *.safetensors},
     "loss", "tokens",
     "compare": {"loss", "tokens"}, "max_abs_logit_diff": number        # only with "compare"
    }

AutoModelForCausalLM.from_pretrained(folder) in float64 (weights upcast exactly), eager attention, eval mode, each row
on its own (no padding). Loss: the issue-4 contract, as peft_check.py and golden_train.py: logits at t predict
labels[t+1]; summed cross-entropy over labels[t+1] != -100 divided by their count over all rows (null when
no position is trained: JSON has no NaN).
A folder that loads cleanly has empty "missing", "unexpected" and "mismatched" lists; a tied lm_head.weight is the only
acceptable "missing" entry (transformers ties it to the embedding table; whether it is listed depends on the version).
A tensor of the wrong shape is listed in "mismatched" as "key: file [..], model [..]" (ignore_mismatched_sizes=True:
that weight keeps its random init, so the loss is then meaningless); a folder transformers cannot read at all makes
the script exit non-zero with transformers' message.
"""

from __future__ import annotations

import json
import struct
import sys
import warnings
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM
from transformers.utils import logging as hf_logging


def safetensors_dtypes(folder: str) -> tuple[str, int]:
    """The dtypes in the headers of every *.safetensors file of the folder (sorted, joined), and the tensor count."""
    dtypes, count = set(), 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            dtypes.add(entry["dtype"])
            count += 1
    return ",".join(sorted(dtypes)), count


def names(entries) -> list[str]:
    """Loading-info entries as sorted strings; a mismatched one, (key, file shape, model shape), as
    "key: file [a, b], model [c, d]"."""
    out = []
    for e in entries or []:
        if isinstance(e, (tuple, list)) and len(e) == 3:
            out.append(f"{e[0]}: file {list(e[1])}, model {list(e[2])}")
        else:
            out.append(str(e))
    return sorted(out)


def load(folder: str) -> tuple[torch.nn.Module, dict]:
    model, info = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float64, attn_implementation="eager", output_loading_info=True,
        ignore_mismatched_sizes=True,  # a wrong shape is listed in "mismatched" (and that weight left at its init)
    )
    model.eval()
    dtype, count = safetensors_dtypes(folder)
    return model, {
        "missing": names(info.get("missing_keys")),
        "unexpected": names(info.get("unexpected_keys")),
        "mismatched": names(info.get("mismatched_keys")),
        "dtype": dtype,
        "file_tensors": count,
    }


@torch.no_grad()
def run(model, rows) -> tuple[list[torch.Tensor], float | None, int]:
    """Logits per row, and the contract loss over all rows."""
    logits, total, count = [], 0.0, 0
    for row in rows:
        ids = torch.tensor([row["input_ids"]])
        labels = torch.tensor(row.get("labels") or row["input_ids"])
        out = model(input_ids=ids).logits[0]
        logits.append(out)
        shift = labels[1:]
        keep = shift != -100
        if keep.any():
            total += float(torch.nn.functional.cross_entropy(out[:-1][keep], shift[keep], reduction="sum"))
            count += int(keep.sum())
    return logits, (total / count if count else None), count


def job(spec: dict) -> dict:
    rows = spec["rows"]
    model, info = load(spec["model"])
    logits, loss, tokens = run(model, rows)
    result: dict = {"load": info, "loss": loss, "tokens": tokens}
    if spec.get("compare"):
        other, _ = load(spec["compare"])
        other_logits, loss, tokens = run(other, rows)
        result["compare"] = {"loss": loss, "tokens": tokens}
        result["max_abs_logit_diff"] = max((float((a - b).abs().max()) for a, b in zip(logits, other_logits)),
                                           default=0.0)
    return result


def main() -> None:
    warnings.filterwarnings("ignore")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(1)
    jobs = json.load(sys.stdin)
    json.dump([job(spec) for spec in jobs], sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
