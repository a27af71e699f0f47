"""Tiny Qwen2 causal LMs and ChatML tokenizers trained on a local corpus (no model hub needed).

Tests and the CPU demo use these instead of a downloaded checkpoint. The saved folder loads with
``AutoTokenizer.from_pretrained`` / ``AutoModelForCausalLM.from_pretrained`` like any Qwen2 model.

Both tokenizer kinds use Qwen2's own pipeline (NFC, Qwen2's split regex, byte-level BPE). That is
not a matter of taste: transformers 5 rebuilds every tokenizer found next to a ``qwen2`` config as
``Qwen2Tokenizer`` from the vocab and merges alone, so any other pipeline would be silently replaced
on reload. Byte-level pieces also make decode(encode(text)) == text exact, spaces included.

* ``kind="bpe"``: an ordinary byte-level BPE with ``vocab_size`` tokens in total.
* ``kind="word"``: a "whole-word" BPE. The ``vocab_size`` most frequent words of the corpus (and
  punctuation runs such as ``{"``) become single tokens, each word both with its leading space
  (`` red``) and bare (``red``, as right after the quote in ``{"query": "red``);
  merges are trained only until that holds, so the vocabulary holds just those words, the
  intermediate merges that build them, and the 256 byte symbols. Any other word is spelled with
  smaller pieces, so no text is ever lost.
"""
from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from typing import Iterable, Iterator, Optional, Sequence

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END]
# Rec-R1 answer-format tags: whole tokens, but not "special", so decode(skip_special_tokens=True) keeps them.
FORMAT_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

# Qwen2's ChatML template, without the default system prompt.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# The split regex of Qwen2's tokenizer (transformers' tokenization_qwen2.py); kept identical on purpose.
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Text whose pieces every "word" tokenizer keeps whole, so chat turns and answers stay short.
_FORMAT_TEXTS = [
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
    "<|im_start|>user\nquery<|im_end|>\n<|im_start|>assistant\n",
    '<think>\nthink</think>\n<answer>{"query": "query"}</answer>',
    '<think> think </think> <answer> {"query": "query"} </answer>',
]

DEFAULT_CORPUS = [
    "Lightweight running shoes with a breathable mesh upper and a cushioned sole, in red and black.",
    "Waterproof hiking boots for men, leather, with ankle support and a rubber outsole.",
    "Stainless steel water bottle, 750 ml, keeps drinks cold for 24 hours.",
    "Wireless noise cancelling headphones with a 30 hour battery and a soft carrying case.",
    "Organic cotton t-shirt for women, slim fit, available in white, blue and green.",
    "Non-stick frying pan, 28 cm, induction compatible, dishwasher safe.",
    "USB-C charging cable, 2 m, braided nylon, fast charging for phones and tablets.",
    "Yoga mat with a non-slip surface, 6 mm thick, includes a carrying strap.",
    "Kids' backpack with padded straps, water resistant, blue with a dinosaur print.",
    "Ceramic coffee mug, 350 ml, microwave safe, matte grey finish.",
    "I need comfortable shoes for long runs on the road; my old pair hurt my feet.",
    "Looking for a gift for my sister who loves hiking and camping in the mountains.",
    "My kitchen needs a good pan that works on an induction stove and is easy to clean.",
    "Can you find headphones that block noise on long flights and last all day?",
    "I want a cheap and light bottle I can take to the gym every morning.",
    '<think>The user wants running shoes that are light and cushioned.</think>'
    '<answer>{"query": "lightweight cushioned running shoes"}</answer>',
    '<think>A pan for induction that is easy to clean.</think>'
    '<answer>{"query": "non-stick induction frying pan"}</answer>',
    '<think>Noise cancelling matters most for flights.</think>'
    '<answer>{"query": "wireless noise cancelling headphones"}</answer>',
]


def _pipeline(model) -> Tokenizer:
    """A tokenizers.Tokenizer with Qwen2's normalizer / pre-tokenizer / decoder around ``model``."""
    tok = Tokenizer(model)
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def _new_bpe() -> models.BPE:
    return models.BPE(dropout=None, unk_token=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)


def _pieces(tok: Tokenizer, text: str) -> list[str]:
    """Byte-level pre-tokenized pieces of ``text``, e.g. 'red shoes' -> ['red', 'Ġshoes']."""
    return [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))]


def _strip_tags(text: str) -> str:
    """Remove chat/format tags: they become added tokens and must not shape the trained vocabulary."""
    for tag in SPECIAL_TOKENS + FORMAT_TOKENS:
        text = text.replace(tag, " ")
    return text


def _train_word_level(tok: Tokenizer, texts: Sequence[str], n_words: int) -> None:
    """Train merges until the ``n_words`` most frequent words are single tokens, with and without a leading space."""
    space = "Ġ"  # byte-level image of " "

    def word_of(piece: str) -> str:
        return piece[1:] if piece.startswith(space) and len(piece) > 1 else piece

    word_counts: Counter = Counter()
    forms: dict[str, set] = {}
    for i, text in enumerate([*_FORMAT_TEXTS, *texts]):
        for piece in _pieces(tok, _strip_tags(text)):
            word = word_of(piece)
            word_counts[word] += i >= len(_FORMAT_TEXTS)  # format words are always kept; they take no slot
            forms.setdefault(word, set()).add(piece)
    # most frequent first; ties broken alphabetically so the vocabulary does not depend on input order
    ranked = sorted(word_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    format_words = {word_of(p) for t in _FORMAT_TEXTS for p in _pieces(tok, _strip_tags(t))}
    chosen: set[str] = set()
    for word in [w for w, _ in ranked[:n_words]] + sorted(format_words):
        chosen.update(forms[word])
        if word.isalpha():  # a word right after a quote or a newline has no leading space
            chosen.update((word, space + word))

    # Feeding each chosen piece once: counts only change merge order, and training runs until no pair is left.
    trainer = trainers.BpeTrainer(
        vocab_size=10**7,
        min_frequency=0,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_byte_pieces_as_text(sorted(chosen)), trainer=trainer)


def _byte_pieces_as_text(pieces: Iterable[str]) -> Iterator[str]:
    """Turn byte-level pieces back into text, so the trainer's pre-tokenizer reproduces exactly those pieces."""
    byte_decoder = decoders.ByteLevel()
    for piece in pieces:
        yield byte_decoder.decode([piece])


def build_tokenizer(texts: Sequence[str], kind: str = "word", vocab_size: Optional[int] = None) -> PreTrainedTokenizerFast:
    """Train a ChatML tokenizer on ``texts``.

    kind="word": ``vocab_size`` (default 2000) = how many of the most frequent words stay whole
                 (the token count is larger: both space forms, byte symbols, intermediate merges).
    kind="bpe":  ``vocab_size`` (default 1000, more than 256 + 3 specials) = trained vocabulary size
                 (the four format tags come on top).
    ``<|im_end|>`` is eos, ``<|endoftext|>`` is pad; ``<think>``/``<answer>`` and their closing tags
    are single, non-special tokens.
    """
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise ValueError("build_tokenizer: the corpus is empty")
    tok = _pipeline(_new_bpe())
    if kind == "word":
        _train_word_level(tok, texts, n_words=vocab_size or 2000)
    elif kind == "bpe":
        size = vocab_size or 1000
        min_size = 256 + len(SPECIAL_TOKENS)
        if size <= min_size:
            raise ValueError(f"build_tokenizer: vocab_size for kind='bpe' must exceed {min_size}, got {size}")
        trainer = trainers.BpeTrainer(
            vocab_size=size,
            min_frequency=2,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator([_strip_tags(t) for t in texts], trainer=trainer)
    else:
        raise ValueError(f"build_tokenizer: unknown kind {kind!r}; valid kinds: 'word', 'bpe'")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in FORMAT_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        unk_token=None,
        bos_token=None,
        chat_template=CHATML_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )


def build_tiny_qwen2(
    tokenizer: PreTrainedTokenizerFast,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 2,
    intermediate: Optional[int] = None,
    seed: int = 0,
    max_position_embeddings: int = 2048,
) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2ForCausalLM sized for ``tokenizer`` (same ``seed`` -> same weights).

    head_dim = hidden / heads must be >= 32 (vLLM's CPU kernels need it); ``intermediate`` defaults to
    2 * hidden; embeddings are tied, as in small Qwen2.5 models.
    """
    if hidden % heads != 0:
        raise ValueError(f"build_tiny_qwen2: hidden={hidden} is not divisible by heads={heads}")
    head_dim = hidden // heads
    if head_dim < 32:
        raise ValueError(f"build_tiny_qwen2: head_dim = hidden / heads = {head_dim}; vLLM needs >= 32")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        use_sliding_window=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream untouched
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    return model.float().eval()


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, out_dir: str) -> None:
    """save_pretrained, then declare the class as Qwen2Tokenizer: the name both transformers 4 and 5 resolve."""
    tokenizer.save_pretrained(out_dir)
    config_path = os.path.join(out_dir, "tokenizer_config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["tokenizer_class"] = "Qwen2Tokenizer"
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)


def save_tiny_model(
    out_dir: str,
    texts: Optional[Sequence[str]] = None,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 2,
    intermediate: Optional[int] = None,
    kind: str = "word",
    vocab_size: Optional[int] = None,
    seed: int = 0,
) -> str:
    """Train a tokenizer on ``texts`` (default: a small built-in corpus), build the model, save both to ``out_dir``."""
    tokenizer = build_tokenizer(texts if texts is not None else DEFAULT_CORPUS, kind=kind, vocab_size=vocab_size)
    model = build_tiny_qwen2(tokenizer, layers=layers, hidden=hidden, heads=heads, intermediate=intermediate, seed=seed)
    os.makedirs(out_dir, exist_ok=True)
    save_tokenizer(tokenizer, out_dir)
    model.save_pretrained(out_dir)
    return out_dir


def read_corpus(path: str) -> list[str]:
    """Texts from a .jsonl file (field ``contents``, else ``text``) or a plain text file (one text per line)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"corpus file not found: {path}")
    texts = []
    with open(path, encoding="utf-8") as f:
        if path.endswith((".jsonl", ".json")):
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{line_no}: not valid JSON ({e.msg})") from None
                text = row.get("contents", row.get("text")) if isinstance(row, dict) else None
                if not isinstance(text, str):
                    raise ValueError(f"{path}:{line_no}: needs a string field 'contents' or 'text'")
                texts.append(text)
        else:
            texts = [line.rstrip("\n") for line in f if line.strip()]
    return texts


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m verl.utils.tiny_model", description="Build a tiny Qwen2 model + ChatML tokenizer from a corpus."
    )
    parser.add_argument("--corpus", required=True, help="a text file (one text a line) or a JSONL file (contents/text)")
    parser.add_argument("--out", required=True, help="output folder (loadable with AutoModelForCausalLM)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--intermediate", type=int, default=None, help="MLP size (default 2 * hidden)")
    parser.add_argument("--tokenizer", choices=["word", "bpe"], default="word")
    parser.add_argument("--vocab-size", type=int, default=None, help="word: words kept whole; bpe: total size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    texts = read_corpus(args.corpus)
    tokenizer = build_tokenizer(texts, kind=args.tokenizer, vocab_size=args.vocab_size)
    model = build_tiny_qwen2(
        tokenizer, layers=args.layers, hidden=args.hidden, heads=args.heads, intermediate=args.intermediate,
        seed=args.seed,
    )
    os.makedirs(args.out, exist_ok=True)
    save_tokenizer(tokenizer, args.out)
    model.save_pretrained(args.out)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"saved {args.out}: {len(texts)} texts, vocab {len(tokenizer)}, {n_params / 1e6:.2f}M parameters "
        f"(layers {args.layers}, hidden {args.hidden}, heads {args.heads})"
    )

if __name__ == "__main__":
    main()
