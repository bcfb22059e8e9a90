"""Writes the tiny model fixtures in the exact Hugging Face layout into tests/fixtures/models/<name>/.

    .venv-ref/bin/python scripts/make_fixtures.py          # then: .venv-ref/bin/python scripts/golden_models.py

Each fixture is a random model built with transformers' own model class (fixed seed) and saved with
save_pretrained(safe_serialization=True), plus a real tokenizer.json trained here with the `tokenizers` library on a
generated corpus (so config.vocab_size is the tokenizer's vocabulary size), tokenizer_config.json (with the chat
template where the architecture has one) and generation_config.json.

| fixture            | what it exercises                                                                       |
|--------------------|-----------------------------------------------------------------------------------------|
| gpt2               | f32; the hub's openai-community/gpt2 layout: no "transformer." prefix, attn.bias buffers |
| gpt2-f16           | F16 storage, transformers 5 layout ("transformer." prefix)                                |
| llama              | GQA (4 heads, 2 kv heads), untied lm_head, sentencepiece-style byte-fallback BPE          |
| llama-rope-scaling | rope_scaling llama3, explicit head_dim ≠ hidden/heads, tied, BF16, legacy config keys     |
| llama-sharded      | the llama fixture's weights in 2 shards with model.safetensors.index.json                 |
| mistral            | mistral (sliding_window recorded, larger than the context so it has no effect)            |
| qwen2              | q/k/v biases, F16 storage, tied, ChatML template                                          |
| qwen3              | q_norm/k_norm, explicit head_dim, tied                                                    |

Also, in tests/fixtures/safetensors/: mixed.safetensors (F32/BF16/F16 tensors written by the safetensors library
itself, the byte-exact reference for the TypeScript writer) and conversion.safetensors (f32 → f16 and bf16 → f16/f32
as torch rounds them, the oracle for src/model/half.ts).

Goldens are float64 forwards of the stored weights; F16/BF16 fixtures are upcast exactly. The output is
deterministic: running this script twice writes identical bytes.

Weights are re-initialised after construction (norm weights ≈ 1 ± 0.1, random biases, 1/sqrt(fan_in) matrices) so
every parameter matters to the logits: transformers' default init (std 0.02, zero biases, unit norms) would let a
forward pass that forgot a bias or a norm weight still match.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers.pytorch_utils import Conv1D
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "models"
SAFETENSORS_OUT = ROOT / "tests" / "fixtures" / "safetensors"

# --- corpus ---------------------------------------------------------------------------------------------------------

WORDS = (
    "the a an of to in on at for with from by about over under after before model token weight layer train loss "
    "learning rate adapter matrix vector gradient batch epoch step browser kernel shader buffer memory device "
    "quick brown fox jumps lazy dog river mountain city garden window morning evening light shadow music story "
    "is are was were be has have had do does did can will would should could may might must small large fast slow "
    "red green blue yellow happy calm bright dark open close read write think learn build run walk see hear "
    "café naïve über façade résumé"
).split()
PUNCT = [".", ",", "!", "?", ";", ":"]


def corpus(seed: int, n: int = 3000) -> list[str]:
    """Generated sentences: words, numbers, punctuation, newlines, a few non-ASCII characters (byte-level coverage)."""
    rnd = random.Random(seed)
    lines = []
    for _ in range(n):
        words = [rnd.choice(WORDS) for _ in range(rnd.randint(3, 12))]
        if rnd.random() < 0.3:
            words.insert(rnd.randrange(len(words)), str(rnd.randint(0, 2025)))
        if rnd.random() < 0.05:
            words.append(rnd.choice(["日本語", "🙂", "Ωmega", "it's", "we'll", "they're"]))
        text = " ".join(words)
        text = text[0].upper() + text[1:] + rnd.choice(PUNCT)
        if rnd.random() < 0.1:
            text += "\n"
        lines.append(text)
    return lines


# --- tokenizers -----------------------------------------------------------------------------------------------------

# The pre-tokenization regexes of GPT-4/Llama 3 (digits in groups of up to 3) and Qwen2 (single digits).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def byte_level_bpe(vocab_size: int, specials: list[str], split_pattern: str | None, seed: int) -> Tokenizer:
    """A byte-level BPE (GPT-2, Llama 3, Qwen2 style) trained to exactly `vocab_size` tokens, specials included."""
    tok = Tokenizer(models.BPE())
    if split_pattern is None:  # GPT-2: the ByteLevel pre-tokenizer's own regex
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split_pattern), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(seed), trainer)
    assert tok.get_vocab_size() == vocab_size, (tok.get_vocab_size(), vocab_size)
    return tok


def sentencepiece_bpe(vocab_size: int, seed: int) -> Tokenizer:
    """A Llama 2 / Mistral style tokenizer: "▁" for spaces, BPE with byte fallback (<0x00>…<0xFF> at ids 3…258),
    <unk> <s> </s> at 0 1 2, BOS prepended by the post-processor: the layout of TinyLlama's tokenizer.json."""
    specials = ["<unk>", "<s>", "</s>"]
    trained = Tokenizer(models.BPE(unk_token="<unk>"))
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 256, special_tokens=specials, show_progress=False)
    trained.train_from_iterator(corpus(seed), trainer)
    spec = json.loads(trained.to_str())
    learned = sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab: dict[str, int] = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in learned:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    assert len(vocab) == vocab_size, (len(vocab), vocab_size)
    spec["model"] = {
        "type": "BPE",
        "dropout": None,
        "unk_token": "<unk>",
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": True,
        "byte_fallback": True,
        "ignore_merges": False,
        "vocab": vocab,
        "merges": spec["model"]["merges"],
    }
    spec["added_tokens"] = [
        {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for i, s in enumerate(specials)
    ]
    spec["normalizer"] = {
        "type": "Sequence",
        "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}],
    }
    spec["pre_tokenizer"] = None
    spec["decoder"] = {
        "type": "Sequence",
        "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ],
    }
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    return tok


def add_bos_processor(tok: Tokenizer, bos: str) -> None:
    """Llama 3 style: the post-processor prepends the BOS token (and keeps ByteLevel offsets untouched)."""
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )


# Real templates: TinyLlama-1.1B-Chat-v1.0, Mistral-7B-Instruct-v0.1, Meta-Llama-3-8B-Instruct, Qwen2-0.5B-Instruct.
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tokenizer_config(tok: Tokenizer, *, bos: str | None, eos: str, pad: str | None, unk: str | None,
                     max_len: int, chat_template: str | None, extra: dict | None = None) -> dict:
    added = {}
    for t in json.loads(tok.to_str())["added_tokens"]:
        added[str(t["id"])] = {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
    cfg = {
        "added_tokens_decoder": added,
        "bos_token": bos,
        "clean_up_tokenization_spaces": False,
        "eos_token": eos,
        "model_max_length": max_len,
        "pad_token": pad,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": unk,
    }
    if chat_template is not None:
        cfg["chat_template"] = chat_template
    cfg.update(extra or {})
    return cfg


# --- weights --------------------------------------------------------------------------------------------------------


@torch.no_grad()
def reinit(model: torch.nn.Module) -> None:
    """Every parameter random and significant (see the module docstring). Uses the global seed."""
    seen: set[int] = set()  # a tied lm_head shares the embedding's Parameter: initialise it once, as an embedding
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.nn.Parameter):
            if id(weight) in seen:
                continue
            seen.add(id(weight))
        if isinstance(module, Conv1D):  # GPT-2: weight [in, out]
            module.weight.copy_(torch.randn_like(module.weight) / math.sqrt(module.weight.shape[0]))
        elif isinstance(module, torch.nn.Linear):  # weight [out, in]
            module.weight.copy_(torch.randn_like(module.weight) / math.sqrt(module.weight.shape[1]))
        elif isinstance(module, torch.nn.Embedding):
            module.weight.copy_(0.5 * torch.randn_like(module.weight))
        elif hasattr(module, "weight") and module.weight is not None and module.weight.ndim == 1:  # LayerNorm, RMSNorm
            module.weight.copy_(1.0 + 0.1 * torch.randn_like(module.weight))
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.nn.Parameter):
            bias.copy_(0.1 * torch.randn_like(bias))


def save_model(model, name: str, dtype: torch.dtype, tok: Tokenizer, tok_cfg: dict, gen: dict,
               max_shard_size: int | None = None) -> Path:
    out = OUT / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model = model.to(dtype)
    model.generation_config = GenerationConfig(**gen)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(out, safe_serialization=True, **kwargs)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2, ensure_ascii=False) + "\n")
    return out


def check_tokenizer(out: Path, vocab_size: int, chat: bool) -> None:
    """transformers loads what we wrote, the vocabulary matches the config, the chat template renders."""
    tok = AutoTokenizer.from_pretrained(out)
    assert len(tok) == vocab_size, (out.name, len(tok), vocab_size)
    ids = tok("The quick brown fox, naïve café 2025 🙂")["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "The quick brown fox, naïve café 2025 🙂", tok.decode(ids)
    if chat:
        text = tok.apply_chat_template(
            [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Tell me"}],
            tokenize=False, add_generation_prompt=True)
        assert "Tell me" in text


def legacy_rope_keys(out: Path) -> None:
    """Rewrite transformers 5's "rope_parameters" into the rope_theta/rope_scaling keys most hub checkpoints carry
    (e.g. Llama 3.2's config.json), so the config mapper is tested on both layouts."""
    path = out / "config.json"
    cfg = json.loads(path.read_text())
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = rope if rope.get("rope_type", "default") != "default" else None
    cfg["torch_dtype"] = cfg.pop("dtype")
    path.write_text(json.dumps(dict(sorted(cfg.items())), indent=2) + "\n")


def hub_gpt2_layout(out: Path, n_layer: int, n_positions: int) -> None:
    """Rewrite model.safetensors like openai-community/gpt2's: names without "transformer.", plus the causal-mask
    buffers h.N.attn.bias (1, 1, P, P) that old checkpoints saved and loaders must ignore."""
    path = out / "model.safetensors"
    tensors = load_file(path)
    renamed = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    mask = torch.tril(torch.ones(n_positions, n_positions, dtype=torch.float32)).view(1, 1, n_positions, n_positions)
    for i in range(n_layer):
        renamed[f"h.{i}.attn.bias"] = mask.clone()
    save_file(renamed, path, metadata={"format": "pt"})


# --- fixtures -------------------------------------------------------------------------------------------------------


def make_gpt2(name: str, dtype: torch.dtype, hub_layout: bool) -> None:
    tok = byte_level_bpe(320, ["<|endoftext|>"], None, seed=1)
    eot = tok.token_to_id("<|endoftext|>")
    n_layer, n_positions = 2, 64
    torch.manual_seed(10 if hub_layout else 11)
    cfg = GPT2Config(vocab_size=tok.get_vocab_size(), n_embd=32, n_layer=n_layer, n_head=4, n_positions=n_positions,
                     bos_token_id=eot, eos_token_id=eot)
    model = GPT2LMHeadModel(cfg)
    reinit(model)
    tok_cfg = tokenizer_config(tok, bos="<|endoftext|>", eos="<|endoftext|>", pad=None, unk="<|endoftext|>",
                               max_len=n_positions, chat_template=None, extra={"add_prefix_space": False})
    out = save_model(model, name, dtype, tok, tok_cfg, {"bos_token_id": eot, "eos_token_id": eot})
    if hub_layout:
        hub_gpt2_layout(out, n_layer, n_positions)
    check_tokenizer(out, cfg.vocab_size, chat=False)


def sp_tokenizer_config(tok: Tokenizer, max_len: int, template: str) -> dict:
    return tokenizer_config(tok, bos="<s>", eos="</s>", pad=None, unk="<unk>", max_len=max_len, chat_template=template,
                            extra={"add_bos_token": True, "add_eos_token": False, "legacy": False})


def make_llama() -> None:
    tok = sentencepiece_bpe(400, seed=2)
    torch.manual_seed(20)
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5,
                      rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg)
    reinit(model)
    tok_cfg = sp_tokenizer_config(tok, 128, ZEPHYR_TEMPLATE)
    gen = {"bos_token_id": 1, "eos_token_id": 2, "max_length": 128}
    out = save_model(model, "llama", torch.float32, tok, tok_cfg, gen)
    check_tokenizer(out, cfg.vocab_size, chat=True)
    # Same weights, two shards. The bound sits between the two halves of the 170 KB checkpoint.
    total = (out / "model.safetensors").stat().st_size
    sharded = save_model(model, "llama-sharded", torch.float32, tok, tok_cfg, gen, max_shard_size=int(total * 0.6))
    shards = sorted(p.name for p in sharded.glob("*.safetensors"))
    assert len(shards) == 2 and (sharded / "model.safetensors.index.json").exists(), shards


def make_llama_rope_scaling() -> None:
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok = byte_level_bpe(352, specials, LLAMA3_PATTERN, seed=3)
    add_bos_processor(tok, "<|begin_of_text|>")
    bos, eot, eos = tok.token_to_id("<|begin_of_text|>"), tok.token_to_id("<|eot_id|>"), tok.token_to_id("<|end_of_text|>")
    torch.manual_seed(30)
    # Llama 3.2's rope: theta 500000, llama3 scaling; original context 32 so the scaling bands cover short positions.
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=128,
                      rms_norm_eps=1e-5, rope_parameters=rope, tie_word_embeddings=True,
                      bos_token_id=bos, eos_token_id=[eos, eot])
    model = LlamaForCausalLM(cfg)
    reinit(model)
    tok_cfg = tokenizer_config(tok, bos="<|begin_of_text|>", eos="<|eot_id|>", pad=None, unk=None, max_len=128,
                               chat_template=LLAMA3_TEMPLATE)
    out = save_model(model, "llama-rope-scaling", torch.bfloat16, tok, tok_cfg,
                     {"bos_token_id": bos, "eos_token_id": [eos, eot], "do_sample": True, "temperature": 0.6, "top_p": 0.9})
    legacy_rope_keys(out)
    check_tokenizer(out, cfg.vocab_size, chat=True)


def make_mistral() -> None:
    tok = sentencepiece_bpe(384, seed=4)
    torch.manual_seed(40)
    cfg = MistralConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=80, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=1, head_dim=8, max_position_embeddings=128,
                        rms_norm_eps=1e-5, sliding_window=4096, tie_word_embeddings=False, bos_token_id=1,
                        eos_token_id=2)
    model = MistralForCausalLM(cfg)
    reinit(model)
    out = save_model(model, "mistral", torch.float32, tok, sp_tokenizer_config(tok, 128, MISTRAL_TEMPLATE),
                     {"bos_token_id": 1, "eos_token_id": 2})
    check_tokenizer(out, cfg.vocab_size, chat=True)


def chatml_tokenizer(seed: int) -> Tokenizer:
    return byte_level_bpe(368, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], QWEN2_PATTERN, seed=seed)


def qwen_tokenizer_config(tok: Tokenizer) -> dict:
    return tokenizer_config(tok, bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None, max_len=128,
                            chat_template=CHATML_TEMPLATE, extra={"errors": "replace", "split_special_tokens": False})


def make_qwen2() -> None:
    tok = chatml_tokenizer(seed=5)
    eot, im_end = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|im_end|>")
    torch.manual_seed(50)
    cfg = Qwen2Config(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6,
                      rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, tie_word_embeddings=True,
                      bos_token_id=eot, eos_token_id=im_end, pad_token_id=eot)
    model = Qwen2ForCausalLM(cfg)
    reinit(model)
    out = save_model(model, "qwen2", torch.float16, tok, qwen_tokenizer_config(tok),
                     {"bos_token_id": eot, "eos_token_id": [im_end, eot], "pad_token_id": eot, "do_sample": True,
                      "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05})
    check_tokenizer(out, cfg.vocab_size, chat=True)


def make_qwen3() -> None:
    tok = chatml_tokenizer(seed=6)
    eot, im_end = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|im_end|>")
    torch.manual_seed(60)
    cfg = Qwen3Config(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=128,
                      rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                      tie_word_embeddings=True, bos_token_id=eot, eos_token_id=im_end, pad_token_id=eot)
    model = Qwen3ForCausalLM(cfg)
    reinit(model)
    out = save_model(model, "qwen3", torch.float32, tok, qwen_tokenizer_config(tok),
                     {"bos_token_id": eot, "eos_token_id": [im_end, eot], "pad_token_id": eot})
    check_tokenizer(out, cfg.vocab_size, chat=True)


def make_mixed_safetensors() -> None:
    """Mixed dtypes and names whose sorted order differs from insertion order, written by the safetensors library."""
    SAFETENSORS_OUT.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    tensors = {
        "zeta.weight": torch.randn(3, 5, generator=g),
        "alpha.bias": torch.randn(7, generator=g).to(torch.float16),
        "Beta.weight": torch.randn(2, 3, generator=g).to(torch.bfloat16),
        "alpha.weight": torch.randn(4, 2, generator=g),
        "empty": torch.zeros(0, 4),
        "scalar": torch.tensor(1.5),
        "special.values": torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan"), 65504.0, 6e-8, 1e-40]),
        "half.special": torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 65504.0, 6e-8, 1.0]).to(torch.float16),
        "bf.special": torch.tensor([0.0, -0.0, float("inf"), 3.0e38, 1e-40, 1.0]).to(torch.bfloat16),
    }
    save_file(tensors, SAFETENSORS_OUT / "mixed.safetensors", metadata={"format": "pt"})


def make_conversion_safetensors() -> None:
    """f32 → f16 and bf16 → f16 as torch rounds them: the oracle for the TypeScript conversions. The f32 values cover
    every f16 exponent (normal and subnormal), the exact midpoints between neighbouring f16 values (ties to even),
    one ulp either side of them, overflow near 65520, and random bit patterns."""
    g = torch.Generator().manual_seed(8)
    halves = torch.arange(0, 0x7C00, dtype=torch.int32).to(torch.int16).view(torch.float16)  # every finite f16 ≥ 0
    picks = halves[torch.randint(0, len(halves) - 1, (512,), generator=g)].float()
    upper = torch.nextafter(picks.half(), torch.tensor(float("inf"), dtype=torch.float16)).float()
    mid = (picks + upper) / 2  # exact in f32
    ulp_up = torch.nextafter(mid, torch.tensor(float("inf")))
    ulp_down = torch.nextafter(mid, torch.tensor(0.0))
    random_bits = torch.randint(-(2**31), 2**31 - 1, (1024,), generator=g, dtype=torch.int64).to(torch.int32).view(torch.float32)
    edges = torch.tensor([65504.0, 65519.0, 65519.996, 65520.0, 65536.0, 1e9, 2.0**-24, 2.0**-25, 1.5 * 2.0**-25,
                          2.0**-26, 2.0**-14, 2.0**-14 - 2.0**-25, 6.1e-5, 1e-45, 0.0, -0.0, float("inf"), float("-inf")])
    values = torch.cat([mid, ulp_up, ulp_down, picks, random_bits, edges])
    values = torch.cat([values, -values])
    values = values[~torch.isnan(values)]  # NaN payloads are checked separately (bit patterns differ by platform)
    bf16 = torch.randint(0, 2**16, (2048,), generator=g, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    bf16 = bf16[~torch.isnan(bf16)]
    save_file({
        "f32": values,
        "f32_to_f16": values.to(torch.float16),
        "bf16": bf16,
        "bf16_to_f16": bf16.to(torch.float16),
        "bf16_to_f32": bf16.to(torch.float32),
    }, SAFETENSORS_OUT / "conversion.safetensors", metadata={"format": "pt"})


def main() -> None:
    make_mixed_safetensors()
    make_conversion_safetensors()
    make_gpt2("gpt2", torch.float32, hub_layout=True)
    make_gpt2("gpt2-f16", torch.float16, hub_layout=False)
    make_llama()
    make_llama_rope_scaling()
    make_mistral()
    make_qwen2()
    make_qwen3()
    total = sum(p.stat().st_size for p in (ROOT / "tests" / "fixtures").rglob("*") if p.is_file())
    print(f"fixtures written: {total / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
