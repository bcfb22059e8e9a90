"""Writes tests/fixtures/models/llama-sentencepiece/: a tiny Llama with a SentencePiece-style tokenizer laid out as
transformers writes one converted from a SentencePiece model (Llama 2, TinyLlama, Mistral 7B v0.1), and
tests/fixtures/golden/llama-sentencepiece-tokens.json: transformers' token ids for the strings the GGUF test checks.

    .venv-ref/bin/python scripts/make_spm_fixture.py

How the tokenizer is made (offline, with the `tokenizers` and `transformers` packages of .venv-ref):
1. BPE pieces are trained with `tokenizers` on make_fixtures.py's generated corpus (words, numbers, punctuation,
   a few non-ASCII words) with SentencePiece's whitespace handling ("▁", split at spaces).
2. The vocabulary is laid out as SentencePiece's: <unk> <s> </s> at 0 1 2, the byte pieces <0x00>…<0xFF> at 3…258,
   then the learned pieces in training order, each scored −(its index) as SentencePiece scores BPE pieces.
3. The merges are what transformers' SentencePiece converter derives from those scores
   (transformers.tokenization_utils_base.generate_merges): every split of a piece into two pieces, ordered by the
   score of the piece they make. That is what makes BPE over these merges and SentencePiece's (and llama.cpp's)
   highest-score-first merging agree.
4. transformers' own LlamaTokenizer (transformers 5: BPE with byte_fallback, no normalizer, a Metaspace pre-tokenizer
   with prepend_scheme "first" and split false, decoder Replace ▁ → " " / ByteFallback / Fuse / Strip) is built over
   that vocabulary and saved with save_pretrained, with add_bos_token true, add_eos_token false and TinyLlama's
   chat template, so tokenizer.json and tokenizer_config.json are what transformers writes for such a model.
The model is a random LlamaForCausalLM (make_fixtures.py's re-initialisation, fixed seeds); the output is
deterministic.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM, LlamaTokenizer
from transformers.tokenization_utils_base import generate_merges

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import OUT, ROOT, ZEPHYR_TEMPLATE, corpus, reinit  # noqa: E402

NAME = "llama-sentencepiece"
PIECES = 360  # learned pieces (with the 3 specials and 256 bytes: a vocabulary of 619)
SPECIALS = ["<unk>", "<s>", "</s>"]

# Strings whose tokenization llama.cpp must reproduce: spaces (leading, repeated, trailing), newlines and tabs,
# characters in the vocabulary (é, ï, ü, 日本語, Ω), characters only byte fallback can write (ж, €, 😀, ✓), digits.
STRINGS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world",
    " leading space",
    "two  spaces   and three",
    "trailing space ",
    "line one\nline two\n\nend",
    "tab\tseparated\tvalues",
    "café naïve über façade résumé",
    "日本語 and Ωmega",
    "жук 5 € 😀 ✓",
    "model 2025, batch 42; loss 0.125!",
    "x",
    "the learning rate of the adapter matrix",
    "gradient batch epoch step, browser kernel shader buffer memory device",
    "Happy calm bright morning; the lazy river under a dark window",
]


def learned_pieces() -> list[str]:
    trained = Tokenizer(models.BPE(unk_token="<unk>"))
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=PIECES + len(SPECIALS), special_tokens=SPECIALS, show_progress=False)
    trained.train_from_iterator(corpus(seed=7), trainer)
    vocab = json.loads(trained.to_str())["model"]["vocab"]
    pieces = [p for p, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if p not in SPECIALS]
    assert len(pieces) == PIECES, len(pieces)
    return pieces


def make_tokenizer(out: Path) -> LlamaTokenizer:
    vocab: dict[str, int] = {s: i for i, s in enumerate(SPECIALS)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    scores: dict[str, float] = {}
    for piece in learned_pieces():
        vocab[piece] = len(vocab)
        scores[piece] = -float(vocab[piece])
    merges = generate_merges(vocab, scores, skip_tokens=SPECIALS)
    tok = LlamaTokenizer(vocab=vocab, merges=merges, legacy=False, add_prefix_space=True, add_bos_token=True,
                         add_eos_token=False, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tok.chat_template = ZEPHYR_TEMPLATE
    tok.model_max_length = 128
    tok.save_pretrained(out)
    return tok


def main() -> None:
    out = OUT / NAME
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tok = make_tokenizer(out)
    vocab_size = len(tok)
    torch.manual_seed(70)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5,
                      rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg)
    reinit(model)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2)
    model.save_pretrained(out, safe_serialization=True)

    # transformers reads the files back: BPE over the derived merges, BOS prepended, byte fallback, round trips.
    loaded = AutoTokenizer.from_pretrained(out)
    spec = json.loads((out / "tokenizer.json").read_text())
    assert spec["model"]["type"] == "BPE" and spec["model"]["byte_fallback"] is True, spec["model"]["type"]
    assert spec["pre_tokenizer"]["type"] == "Metaspace", spec["pre_tokenizer"]
    golden = []
    for text in STRINGS:
        ids = loaded(text, add_special_tokens=False)["input_ids"]
        assert loaded(text)["input_ids"] == [1, *ids], text
        # Metaspace does not prepend "▁" to a text that already begins with a space: that space decodes away.
        assert loaded.decode(ids) == (text[1:] if text.startswith(" ") else text), (text, loaded.decode(ids))
        golden.append({"text": text, "ids": ids})
    byte_ids = {i for g in golden for i in g["ids"] if 3 <= i < 259}
    assert byte_ids, "no string exercises byte fallback"
    lines = ",\n".join("    " + json.dumps(g, ensure_ascii=False) for g in golden)
    source = json.dumps("transformers " + transformers.__version__ + ", AutoTokenizer, add_special_tokens=False")
    (ROOT / "tests" / "fixtures" / "golden" / f"{NAME}-tokens.json").write_text(
        f'{{\n  "source": {source},\n  "strings": [\n{lines}\n  ]\n}}\n')
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"{NAME}: vocabulary {vocab_size}, {len(spec['model']['merges'])} merges, {total / 1e3:.0f} KB", file=sys.stderr)


if __name__ == "__main__":
    main()
