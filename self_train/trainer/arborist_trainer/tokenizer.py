"""A tiny byte-level BPE tokenizer in the Hugging Face `tokenizer.json` format.

The vocabulary is GPT-2/Qwen2 style: the 256 byte-level symbols of GPT-2's
`bytes_to_unicode` table (ids 0..255, in GPT-2's order, so "!" is 0), then one
token per learned merge, then the added tokens (ChatML specials, `<extra_0>` for
Qwen-PRM step separators, and the Math-Shepherd step tag " ки").

Merges are learned deterministically from a small built-in corpus, so the
tokenizer is reproducible without any data files. Digits are never merged
(every digit is its own token, as in Qwen2).

`Tokenizer.encode` here is a plain reference implementation used to build the
reference sequences of the test fixtures; it follows the GPT-2 pre-tokenizer
regex for ASCII text (Python's `re` has no `\\p{L}`, so letters and numbers
are approximated with `[^\\W\\d_]` and `\\d`).
"""

from __future__ import annotations

import collections
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

# Added tokens, in id order after the BPE vocabulary: (content, special).
SPECIAL_TOKENS: list[tuple[str, bool]] = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<extra_0>", True),
    (" ки", False),  # Math-Shepherd step tag (space + Cyrillic "ки"), not special
]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Small built-in corpus the merges are learned from (math word-problem style).
DEFAULT_CORPUS = """
Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.
How many clips did Natalia sell altogether in April and May?
Step 1: In May she sold 48 / 2 = 24 clips. Step 2: In total she sold 48 + 24 = 72 clips.
The answer is 72.
Weng earns 12 dollars an hour for babysitting. Yesterday, she just did 50 minutes of babysitting.
How much did she earn? She earns 12 / 60 = 0.2 dollars per minute. So she earned 0.2 * 50 = 10.
The answer is 10.
Betty is saving money for a new wallet which costs 100 dollars. Betty has only half of the money
she needs. Her parents decided to give her 15 dollars for that purpose, and her grandparents twice
as much as her parents. How much more money does Betty need to buy the wallet?
In the beginning, Betty has only 100 / 2 = 50 dollars. Her grandparents gave her 15 * 2 = 30 dollars.
This means, Betty needs 100 - 50 - 30 - 15 = 5 dollars more. The answer is 5.
James writes a 3-page letter to 2 different friends twice a week. How many pages does he write a year?
He writes each friend 3 * 2 = 6 pages a week. So he writes 6 * 2 = 12 pages every week.
That means he writes 12 * 52 = 624 pages a year. The answer is 624.
Let x be the number of apples. Then the total is x + 3 = 10, so x = 7. Therefore the answer is 7.
We want to find the value of the expression. First, we compute the sum. Then we check the result.
If the result is correct, the step is good; if it is wrong, the step is bad.
"""

_PRETOKENIZE = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""",
    re.UNICODE,
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character table, in GPT-2's order."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


BYTE_ENCODER = bytes_to_unicode()
# GPT-2 vocabulary order of the 256 base symbols: id i <-> i-th entry of the table.
BASE_SYMBOLS: list[str] = list(BYTE_ENCODER.values())


def pretokenize(text: str) -> list[str]:
    """Split `text` like GPT-2's ByteLevel pre-tokenizer and map each piece to byte symbols."""
    return ["".join(BYTE_ENCODER[b] for b in piece.encode("utf-8")) for piece in _PRETOKENIZE.findall(text)]


def learn_merges(corpus: str, num_merges: int, allow_digits: bool = False) -> list[tuple[str, str]]:
    """Learn `num_merges` BPE merges from `corpus` (ties broken by the pair's text, so deterministic)."""
    words = collections.Counter(tuple(w) for w in pretokenize(corpus))
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for word, count in words.items():
            for a, b in zip(word, word[1:]):
                if not allow_digits and (any(c.isdigit() for c in a) or any(c.isdigit() for c in b)):
                    continue
                pairs[(a, b)] += count
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        merged = best[0] + best[1]
        new_words: collections.Counter[tuple[str, ...]] = collections.Counter()
        for word, count in words.items():
            out: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_words[tuple(out)] += count
        words = new_words
    return merges


@dataclass
class Tokenizer:
    """A byte-level BPE vocabulary with added tokens; writes HF tokenizer files."""

    merges: list[tuple[str, str]]
    added: list[tuple[str, bool]] = field(default_factory=lambda: list(SPECIAL_TOKENS))

    def __post_init__(self) -> None:
        self.vocab: dict[str, int] = {s: i for i, s in enumerate(BASE_SYMBOLS)}
        for a, b in self.merges:
            self.vocab.setdefault(a + b, len(self.vocab))
        self.added_ids: dict[str, int] = {}
        for content, _special in self.added:
            self.added_ids[content] = len(self.vocab) + len(self.added_ids)
        self.ranks = {pair: i for i, pair in enumerate(self.merges)}
        self.id_to_token = {i: t for t, i in self.vocab.items()} | {i: t for t, i in self.added_ids.items()}

    @property
    def vocab_size(self) -> int:
        """Number of ids (BPE vocabulary plus added tokens)."""
        return len(self.vocab) + len(self.added_ids)

    def token_id(self, token: str) -> int:
        """Id of a vocabulary or added token."""
        return self.added_ids[token] if token in self.added_ids else self.vocab[token]

    def _bpe(self, word: str) -> list[str]:
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, i = min(pairs)
            if rank == 1 << 30:
                break
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        return parts

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (added tokens matched first, longest first; no BOS)."""
        if self.added_ids:
            pattern = "(" + "|".join(re.escape(t) for t in sorted(self.added_ids, key=len, reverse=True)) + ")"
            chunks = re.split(pattern, text)
        else:
            chunks = [text]
        ids: list[int] = []
        for chunk in chunks:
            if not chunk:
                continue
            if chunk in self.added_ids:
                ids.append(self.added_ids[chunk])
                continue
            for word in pretokenize(chunk):
                ids.extend(self.vocab[p] for p in self._bpe(word))
        return ids

    def tokenizer_json(self) -> dict:
        """The `tokenizer.json` contents (Hugging Face tokenizers format)."""
        added_tokens = [
            {
                "id": self.added_ids[content],
                "content": content,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": special,
            }
            for content, special in self.added
        ]
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added_tokens,
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": None,
                "continuing_subword_prefix": "",
                "end_of_word_suffix": "",
                "fuse_unk": False,
                "byte_fallback": False,
                "ignore_merges": False,
                "vocab": self.vocab,
                "merges": [[a, b] for a, b in self.merges],
            },
        }

    def tokenizer_config(self) -> dict:
        """The `tokenizer_config.json` contents (Qwen2 style: no BOS, ChatML template)."""
        decoder = {
            str(self.added_ids[content]): {
                "content": content,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": special,
            }
            for content, special in self.added
        }
        return {
            "add_bos_token": False,
            "add_prefix_space": False,
            "added_tokens_decoder": decoder,
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
            "bos_token": None,
            "chat_template": CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|im_end|>",
            "errors": "replace",
            "model_max_length": 512,
            "pad_token": "<|endoftext|>",
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        }

    def special_ids(self) -> dict[str, int]:
        """bos/eos/pad ids as Qwen2 configs write them (bos = <|endoftext|>, though never added)."""
        return {
            "bos_token_id": self.added_ids["<|endoftext|>"],
            "eos_token_id": self.added_ids["<|im_end|>"],
            "pad_token_id": self.added_ids["<|endoftext|>"],
        }

    def save(self, out_dir: Path) -> None:
        """Write tokenizer.json and tokenizer_config.json into `out_dir`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "tokenizer.json", self.tokenizer_json())
        write_json(out_dir / "tokenizer_config.json", self.tokenizer_config())


def build_default_tokenizer(num_merges: int = 96) -> Tokenizer:
    """The fixtures' tokenizer: merges learned from DEFAULT_CORPUS."""
    return Tokenizer(learn_merges(DEFAULT_CORPUS, num_merges))


def write_json(path: Path, obj: object, indent: int | None = 2) -> None:
    """Write JSON as UTF-8 (non-ASCII kept), with a trailing newline; with `indent`, lists of
    numbers stay on one line."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent)
    if indent is not None:
        text = _NUMBER_LIST.sub(lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text)
    path.write_text(text + "\n", encoding="utf-8")


_NUMBER_LIST = re.compile(r"\[\s*((?:-?[0-9][0-9.eE+-]*,?\s*)+)\]")
