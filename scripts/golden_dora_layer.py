"""PEFT's DoRA layer on its own, with a known dropout mask: the reference for src/gpu/ref/dora.ref.ts's forward and
backward (src/gpu/ref/dora-peft.ref.test.ts), so the semantics of dropout, the detached norm and the bias are PEFT's
own and not a reading of its source.

    .venv-ref/bin/python scripts/golden_dora_layer.py   → tests/fixtures/golden/dora_layer.json

Each case: peft.tuners.lora.layer.Linear(base, use_dora=True) in float64, training mode, lora_B and the magnitude set
away from their initial values; lora_dropout replaced by a module multiplying by a fixed mask (0 or 1/(1-p)), which
PEFT's DoraLinearVariant.forward treats as any dropout (it recomputes base_result = W·drop(x) without the bias); or the
Identity (no dropout: PEFT reuses the base output minus the bias). The loss is Σ y ⊙ dy; its gradients with respect to
x, lora_A, lora_B and the magnitude are recorded. Conv1D (GPT-2, fan_in_fan_out) stores W as [in, out].
"""

from __future__ import annotations

import json
from pathlib import Path

import peft
import torch
from peft.tuners.lora.layer import Linear as LoraLinear
from torch import nn
from transformers.pytorch_utils import Conv1D

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "golden" / "dora_layer.json"
T, IN, OUTF, R, ALPHA, P = 3, 7, 5, 2, 3.0, 0.3


class FixedMask(nn.Module):
    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.mask = mask

    def forward(self, x):
        return x * self.mask


def case(conv1d: bool, dropout: bool, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    base = Conv1D(OUTF, IN) if conv1d else nn.Linear(IN, OUTF)
    base = base.to(torch.float64)
    with torch.no_grad():
        base.weight.copy_(rand(*base.weight.shape))
        base.bias.copy_(rand(OUTF))
    config = peft.LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=P if dropout else 0.0, use_dora=True, fan_in_fan_out=conv1d)
    layer = LoraLinear(base, "default", config, r=R, lora_alpha=ALPHA).to(torch.float64)
    with torch.no_grad():
        layer.lora_A["default"].weight.copy_(rand(R, IN))
        layer.lora_B["default"].weight.copy_(rand(OUTF, R))
        mag = layer.lora_magnitude_vector["default"].weight
        mag.copy_(mag * (1 + 0.3 * rand(OUTF)))
    mask = None
    if dropout:
        mask = (torch.rand(T, IN, generator=g, dtype=torch.float64) >= P).to(torch.float64) / (1 - P)
        layer.lora_dropout["default"] = FixedMask(mask)
    layer.train()
    x = rand(T, IN).requires_grad_(True)
    dy = rand(T, OUTF)
    y = layer(x)
    (y * dy).sum().backward()
    flat = lambda t: [float(v) for v in t.detach().reshape(-1)]
    return {
        "conv1d": conv1d, "T": T, "in": IN, "out": OUTF, "r": R, "scale": layer.scaling["default"],
        "x": flat(x), "W": flat(base.weight), "bias": flat(base.bias),
        "A": flat(layer.lora_A["default"].weight), "B": flat(layer.lora_B["default"].weight),
        "m": flat(layer.lora_magnitude_vector["default"].weight), "mask": flat(mask) if mask is not None else None,
        "dy": flat(dy), "y": flat(y),
        "dx": flat(x.grad), "dA": flat(layer.lora_A["default"].weight.grad), "dB": flat(layer.lora_B["default"].weight.grad),
        "dm": flat(layer.lora_magnitude_vector["default"].weight.grad),
    }


def main() -> None:
    torch.use_deterministic_algorithms(True)
    cases = [case(False, True, 1), case(True, True, 2), case(False, False, 3)]
    OUT.write_text(json.dumps({"reference": f"torch {torch.__version__}, peft {peft.__version__}", "cases": cases}) + "\n")
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
