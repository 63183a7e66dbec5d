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

`BPETokenizer` (end of the file) encodes with any byte-level BPE `tokenizer.json` (GPT-2,
Qwen2, the fixtures'): what the trainers use to tokenize reward data. It matches the real
GPT-2 tokenizer on the 83 conformance texts in shared/data/tokenizers/conformance.
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


# ---------------------------------------------------------------------------------------
# Loading any byte-level BPE tokenizer.json (GPT-2 / Qwen2 style)

try:  # Debian: python3-regex. Needed for \p{L} / \p{N}; without it the patterns are approximated.
    import regex as _regex

    HAVE_REGEX = True
except ImportError:  # pragma: no cover - depends on the machine
    _regex = None
    HAVE_REGEX = False

# The ByteLevel pre-tokenizer's own split (use_regex: true), as in Hugging Face tokenizers.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _approximate_unicode_classes(pattern: str) -> str:
    """Rewrite \\p{L} / \\p{N} for Python's `re` (no Unicode properties): a letter is
    `[^\\W\\d_]`, a number `\\d`, and a negated class `[^X\\p{L}\\p{N}]` becomes
    `(?:[^X\\w]|_)`. Exact for ASCII; differs on rare characters (e.g. combining marks, which
    \\p{L} excludes too, and non-decimal numerals such as "²", which `re` counts as letters)."""
    out = re.sub(r"\[\^((?:[^\]\\]|\\[^p])*)\\p\{L\}\\p\{N\}\]", r"(?:[^\1\\w]|_)", pattern)
    out = out.replace(r"\p{L}", r"[^\W\d_]").replace(r"\p{N}", r"\d")
    if r"\p{" in out:
        raise NotImplementedError(
            f"Cannot approximate the pre-tokenizer pattern {pattern!r} without the `regex` module: "
            "apt-get install -y python3-regex"
        )
    return out


def compile_pattern(pattern: str):  # noqa: ANN201 - a `regex` or `re` pattern object
    """Compile a tokenizers `Split` regex: with the `regex` module when present (exact), else
    with `re` after `_approximate_unicode_classes`."""
    if _regex is not None:
        return _regex.compile(pattern)
    return re.compile(_approximate_unicode_classes(pattern))


def _split_pieces(pattern, text: str, behavior: str, invert: bool) -> list[str]:  # noqa: ANN001
    """tokenizers' `Split` on one piece: matches (and the text between them) become pieces."""
    if invert:
        raise NotImplementedError("Cannot split with 'invert': true (not used by byte-level BPE tokenizers)")
    pieces: list[tuple[str, bool]] = []
    pos = 0
    for m in pattern.finditer(text):
        if m.start() == m.end():
            continue
        if m.start() > pos:
            pieces.append((text[pos : m.start()], False))
        pieces.append((m.group(0), True))
        pos = m.end()
    if pos < len(text):
        pieces.append((text[pos:], False))
    behavior = behavior.lower()
    if behavior == "isolated":
        return [p for p, _ in pieces]
    if behavior == "removed":
        return [p for p, is_match in pieces if not is_match]
    if behavior == "mergedwithprevious":
        out: list[str] = []
        for p, is_match in pieces:
            if is_match and out:
                out[-1] += p
            else:
                out.append(p)
        return out
    if behavior == "mergedwithnext":
        out = []
        carry = ""
        for p, is_match in pieces:
            if is_match:
                carry += p
            else:
                out.append(carry + p)
                carry = ""
        if carry:
            out.append(carry)
        return out
    raise NotImplementedError(f"Cannot split with behavior {behavior!r}: Isolated, Removed, Merged* are supported")


class BPETokenizer:
    """Encoder for a byte-level BPE `tokenizer.json` (GPT-2, Qwen2, Llama 3 and the fixtures').

    Follows Hugging Face tokenizers: added tokens are matched first (longest first, as its
    Aho-Corasick does for non-overlapping tokens); the rest goes through the normalizer
    (none / NFC / NFKC / NFD / NFKD / Lowercase / Sequence), the pre-tokenizer (ByteLevel with
    or without its GPT-2 regex, Split with a regex or string pattern, Digits, Sequence) and
    BPE (merges by rank, `ignore_merges`). The post-processor's template (TemplateProcessing,
    single sequence) adds special tokens when `add_special_tokens`; ByteLevel adds none.
    `lstrip` / `rstrip` / `single_word` of added tokens are not applied.
    """

    def __init__(self, spec: dict) -> None:
        model = spec.get("model") or {}
        if model.get("type", "BPE") != "BPE":
            raise NotImplementedError(f"Cannot load a {model.get('type')!r} tokenizer: only BPE is supported")
        if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            raise NotImplementedError("Cannot load a BPE with continuing_subword_prefix / end_of_word_suffix")
        self.vocab: dict[str, int] = dict(model["vocab"])
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
        self.ranks: dict[tuple[str, str], int] = {pair: i for i, pair in enumerate(merges)}
        self.ignore_merges = bool(model.get("ignore_merges", False))
        self.added_ids: dict[str, int] = {}
        self.special: set[str] = set()
        for t in spec.get("added_tokens") or []:
            self.added_ids[t["content"]] = t["id"]
            if t.get("special"):
                self.special.add(t["content"])
        self.id_to_token = {i: t for t, i in self.vocab.items()} | {i: t for t, i in self.added_ids.items()}
        self._added_re = (
            re.compile("(" + "|".join(re.escape(t) for t in sorted(self.added_ids, key=len, reverse=True)) + ")")
            if self.added_ids
            else None
        )
        self._normalizers = self._read_normalizer(spec.get("normalizer"))
        self._steps = self._read_pre_tokenizer(spec.get("pre_tokenizer"))
        self._template = self._read_template(spec.get("post_processor"))
        self._cache: dict[str, list[int]] = {}
        self.byte_decoder = {c: b for b, c in BYTE_ENCODER.items()}

    @classmethod
    def from_file(cls, path: str | Path) -> "BPETokenizer":
        """Load `path`: a tokenizer.json, or a model directory holding one."""
        p = Path(path)
        if p.is_dir():
            p = p / "tokenizer.json"
        return cls(json.loads(p.read_text(encoding="utf-8")))

    @property
    def vocab_size(self) -> int:
        """Number of ids (largest id + 1)."""
        return max(self.id_to_token) + 1

    def token_to_id(self, token: str) -> int | None:
        """Id of a vocabulary or added token, or None."""
        return self.added_ids.get(token, self.vocab.get(token))

    # -- configuration readers

    @staticmethod
    def _read_normalizer(spec: dict | None) -> list:
        if spec is None:
            return []
        kind = spec["type"]
        if kind == "Sequence":
            return [f for n in spec["normalizers"] for f in BPETokenizer._read_normalizer(n)]
        if kind in ("NFC", "NFKC", "NFD", "NFKD"):
            import unicodedata

            return [lambda s, form=kind: unicodedata.normalize(form, s)]
        if kind == "Lowercase":
            return [str.lower]
        raise NotImplementedError(f"Cannot apply the normalizer {kind!r}")

    def _read_pre_tokenizer(self, spec: dict | None) -> list:
        """Steps that each map a list of pieces to a list of pieces; the ByteLevel step (always
        last for byte-level BPE) maps each piece to byte symbols."""
        if spec is None:
            return []
        kind = spec["type"]
        if kind == "Sequence":
            return [s for p in spec["pretokenizers"] for s in self._read_pre_tokenizer(p)]
        if kind == "ByteLevel":
            steps = []
            if spec.get("add_prefix_space"):
                steps.append(lambda pieces: [p if p.startswith(" ") or i else " " + p for i, p in enumerate(pieces)])
            if spec.get("use_regex", True):
                pattern = compile_pattern(GPT2_PATTERN)
                steps.append(lambda pieces: [m for p in pieces for m in _split_pieces(pattern, p, "isolated", False)])
            steps.append(lambda pieces: ["".join(BYTE_ENCODER[b] for b in p.encode("utf-8")) for p in pieces])
            return steps
        if kind == "Split":
            raw = spec["pattern"]
            pattern = compile_pattern(raw["Regex"]) if "Regex" in raw else re.compile(re.escape(raw["String"]))
            behavior, invert = spec.get("behavior", "Isolated"), spec.get("invert", False)
            return [lambda pieces: [m for p in pieces for m in _split_pieces(pattern, p, behavior, invert)]]
        if kind == "Digits":
            pattern = re.compile(r"\d" if spec.get("individual_digits") else r"\d+")
            return [lambda pieces: [m for p in pieces for m in _split_pieces(pattern, p, "isolated", False)]]
        raise NotImplementedError(f"Cannot apply the pre-tokenizer {kind!r}")

    def _read_template(self, spec: dict | None) -> tuple[list[int], list[int]] | None:
        """(ids before, ids after) the sequence for TemplateProcessing's `single`, else None."""
        if spec is None:
            return None
        if spec["type"] == "Sequence":
            templates = [self._read_template(p) for p in spec["processors"]]
            return next((t for t in templates if t is not None), None)
        if spec["type"] != "TemplateProcessing":
            return None
        before: list[int] = []
        after: list[int] = []
        seen_sequence = False
        for item in spec["single"]:
            if "Sequence" in item:
                seen_sequence = True
                continue
            token = item["SpecialToken"]["id"]
            ids = spec["special_tokens"][token]["ids"]
            (after if seen_sequence else before).extend(ids)
        return before, after

    # -- encoding

    def _bpe(self, word: str) -> list[int]:
        if word in self._cache:
            return self._cache[word]
        if self.ignore_merges and word in self.vocab:
            ids = [self.vocab[word]]
        else:
            parts = list(word)
            while len(parts) > 1:
                best, at = 1 << 62, -1
                for i in range(len(parts) - 1):
                    r = self.ranks.get((parts[i], parts[i + 1]))
                    if r is not None and r < best:
                        best, at = r, i
                if at < 0:
                    break
                parts[at : at + 2] = [parts[at] + parts[at + 1]]
            try:
                ids = [self.vocab[p] for p in parts]
            except KeyError as e:
                raise ValueError(f"Cannot encode {word!r}: the symbol {e.args[0]!r} is not in the vocabulary") from e
        if len(self._cache) < 100_000:
            self._cache[word] = ids
        return ids

    def _encode_chunk(self, text: str) -> list[int]:
        for f in self._normalizers:
            text = f(text)
        pieces = [text]
        for step in self._steps:
            pieces = step(pieces)
        return [i for p in pieces if p for i in self._bpe(p)]

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`; with `add_special_tokens`, the post-processor's template tokens
        (none for GPT-2 / Qwen2) around them."""
        chunks = self._added_re.split(text) if self._added_re is not None else [text]
        ids: list[int] = []
        for chunk in chunks:
            if not chunk:
                continue
            if chunk in self.added_ids:
                ids.append(self.added_ids[chunk])
            else:
                ids.extend(self._encode_chunk(chunk))
        if add_special_tokens and self._template is not None:
            ids = self._template[0] + ids + self._template[1]
        return ids

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids` (byte-level symbols mapped back to UTF-8; invalid bytes replaced)."""
        out = bytearray()
        for i in ids:
            token = self.id_to_token[i]
            if token in self.added_ids and self.added_ids[token] == i:
                if skip_special_tokens and token in self.special:
                    continue
                out.extend(token.encode("utf-8"))
            else:
                out.extend(self.byte_decoder[c] for c in token)
        return out.decode("utf-8", errors="replace")


def load_tokenizer(path: str | Path) -> BPETokenizer:
    """A `BPETokenizer` from a tokenizer.json or a model directory."""
    return BPETokenizer.from_file(path)
