"""Writes src/gpu/ref/golden/rope_llama3.json: RoPE inverse frequencies and one rotated tensor from transformers.

The TypeScript side (ropeInvFreq in src/gpu/kernels/rope.ts, ropeRef in src/gpu/ref/rope.ref.ts) is checked against
these numbers by src/gpu/kernels/rope.test.ts, so the llama3/linear/dynamic formulas and the rotate-half convention
are transformers' own, not our reading of them.

Usage: .venv-ref/bin/python scripts/golden_rope.py   (torch + transformers; npm test never runs this)
"""

import json
import os

import torch
import transformers
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

OUT = os.path.join(os.path.dirname(__file__), "..", "src", "gpu", "ref", "golden", "rope_llama3.json")


def config(head_dim, rope_parameters, max_position_embeddings=131072):
    return LlamaConfig(
        hidden_size=head_dim * 4,
        num_attention_heads=4,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        rope_parameters=rope_parameters,
    )


# Each case: the config (as ropeInvFreq takes it: headDim, theta, scaling = the rope_scaling dict of config.json,
# maxPositionEmbeddings), an optional sequence length (dynamic NTK), and transformers' inv_freq.
CASES = [
    # Llama 3.1 8B
    ("llama3.1-8b", 128, 500000.0, 131072,
     {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 8192}, None),
    # Llama 3.2 1B
    ("llama3.2-1b", 64, 500000.0, 131072,
     {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 8192}, None),
    # small: its 8 frequencies fall in all three bands (kept, smoothed, divided by factor)
    ("llama3-small", 16, 500000.0, 2048,
     {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 256}, None),
    # head_dim 12: 2i/d is not a power-of-two fraction
    ("llama3-d12", 12, 10000.0, 2048,
     {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 2.0, "high_freq_factor": 8.0,
      "original_max_position_embeddings": 100}, None),
    ("default-d12", 12, 10000.0, 2048, {"rope_type": "default"}, None),
    ("linear", 16, 10000.0, 2048, {"rope_type": "linear", "factor": 4.0}, None),
    ("dynamic-short", 16, 10000.0, 128, {"rope_type": "dynamic", "factor": 2.0}, 100),
    ("dynamic-long", 16, 10000.0, 128, {"rope_type": "dynamic", "factor": 2.0}, 300),
]


def inv_freq_cases():
    out = []
    for name, head_dim, theta, max_pos, scaling, seq_len in CASES:
        c = config(head_dim, {"rope_theta": theta, **scaling}, max_pos)
        rope_type = scaling["rope_type"]
        if rope_type == "default":
            inv_freq = LlamaRotaryEmbedding(c).inv_freq
        else:
            inv_freq, _ = ROPE_INIT_FUNCTIONS[rope_type](c, "cpu", seq_len=seq_len)
        out.append({
            "name": name,
            "config": {"headDim": head_dim, "theta": theta, "maxPositionEmbeddings": max_pos, "scaling": scaling},
            "seqLen": seq_len,
            "invFreq": [float(v) for v in inv_freq.to(torch.float32)],
        })
    return out


def apply_case():
    """q rotated by LlamaRotaryEmbedding + apply_rotary_pos_emb at small and large positions, as (T, H, D)."""
    head_dim, heads = 16, 2
    positions = [0, 1, 2, 7, 0, 300, 5000, 70000]
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 256}
    c = config(head_dim, {"rope_theta": 500000.0, **scaling}, 131072)
    rope = LlamaRotaryEmbedding(c)
    g = torch.Generator().manual_seed(0)
    q = torch.rand(1, heads, len(positions), head_dim, generator=g, dtype=torch.float32) * 2 - 1  # (B, H, T, D)
    position_ids = torch.tensor([positions])
    cos, sin = rope(q, position_ids)
    q_embed, _ = apply_rotary_pos_emb(q, q, cos, sin)
    as_thd = lambda x: [float(v) for v in x[0].transpose(0, 1).reshape(-1)]  # (T, H, D) row-major
    return {
        "config": {"headDim": head_dim, "theta": 500000.0, "maxPositionEmbeddings": 131072, "scaling": scaling},
        "T": len(positions),
        "H": heads,
        "positions": positions,
        "x": as_thd(q),
        "y": as_thd(q_embed),
    }


def main():
    golden = {
        "generator": "scripts/golden_rope.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "invFreq": inv_freq_cases(),
        "apply": apply_case(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
