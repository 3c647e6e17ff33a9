#!/usr/bin/env python3
"""Writes the golden files of the tokenizer tests with Hugging Face `tokenizers`.

One command (from the repository root; ../shared as in every checkout):

  python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers==0.23.3 sentencepiece
  /tmp/tokvenv/bin/python tests/golden/tokenizer/make_golden.py

It writes, under tests/golden/tokenizer/:
  llama2/          the reference model's Llama-2 tokenizer: tokenizer.model and
                   tokenizer_config.json copied, tokenizer.json re-serialized
                   compactly (merges as "a b" strings, the older form) and
                   checked to give the same ids as the original;
  <name>_bpe/      small tokenizers trained here (the `tokenizers` library
                   cannot download models): byte-level BPE with the GPT-2,
                   Llama 3, Qwen2 (NFC) and SmolLM (Digits) pre-tokenizers, and
                   SentencePiece-style BPE with byte fallback (Metaspace, new
                   and legacy forms); each with special and non-special added
                   tokens (lstrip/rstrip/single_word/normalized) and a
                   TemplateProcessing post-processor;
  golden_ids.json  the test texts and, per tokenizer, the ids with and without
                   special tokens and both decodings;
  wikitext2_expected.json  per tokenizer, the number of tokens of
                   ../shared/data/wikitext2_test.txt (encoded whole, with
                   special tokens) and the SHA-256 of the ids (int32 LE).

verify_golden.py re-checks the files against whatever `tokenizers` and
transformers are installed (bench/device/tokenizer_runtime.sh runs it).
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import time

import tokenizers
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = LLAMA3_PATTERN.replace(r"\p{N}{1,3}", r"\p{N}")

MIXED_TEXT = (
    "The quick brown fox (born 1987) jumped over 12345678901234567890 lazy dogs; "
    "π ≈ 3.14159265358979 and 1,000,000.00 $ costs.\n\n"
    "def tokenize(text):\n"
    "    if not text:\n"
    "\treturn []  # a tab, then code\n"
    "        return [t for t in text.split()]\n\n"
    "Café naïve Ångström résumé, A\u030angstro\u0308m (decomposed), Größe, ÉCOLE.\n"
    "日本語のテキストと中文字符，还有한국어 텍스트。\n"
    "Emoji: 👋🏽 🚀 🇫🇷 👩‍👩‍👧 ❤️\n"
    "  multiple   spaces   here  \n\n\n"
    "Special strings: <s> begin </s> end <|endoftext|> <unk> <|im_start|>user\n"
    "I'm sure they'RE fine, don't you think? WE'LL see.\r\n"
    "Tabs\tand\t\tmore\ttabs\t\n"
    "Non-breaking\u00a0space, em\u2003space, ideographic\u3000space.\n"
    "Fullwidth ＡＢＣ and circled ①②③ and ² ½ ⅷ.\n"
    "  trailing spaces   "
)

TEXTS = [
    MIXED_TEXT,
    "",
    " ",
    "Hello world",
    " Hello world",
    "Hello <s> world</s>",
    "<s>",
    "<|endoftext|>Start<|endoftext|>",
    "  multiple   spaces  ",
    "\n\nnew\r\nlines\n\n\n",
    "don't I'LL we've they'RE it'\u017f Y'all 'tis",
    "12345678901234567890 3.14159 1,000,000 ٣٤٥ ²³",
    "café naïve Ångström A\u030angstro\u0308m e\u0301 \u1100\u1161\u11a8",
    "日本語のテキスト、中文字符。한국어 텍스트",
    "emoji 👋🏽 🚀 🇫🇷 👩‍👩‍👧",
    "def f(x):\n\tif x:\n\t\treturn x  # tab\n    else:\n        pass\n",
    "<mask> masked <mask>  word[NEW]  next quantd quantdx xquantd <sep>  after",
    "\u00a0nbsp\u2003em\u3000ideo \u200bzero-width",
    "Ångström and Ångström",
]

CODE_AND_CJK = """
def main(argv):
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
\t\tprint(i, arg)
    return 0
日本語のテキストと中文字符。東京は日本の首都です。中国的首都是北京。
한국어 텍스트입니다. Ελληνικά κείμενα. Русский текст. العربية.
"""


def corpus(shared):
    with open(os.path.join(shared, "data", "calibration_wiki.txt"), encoding="utf-8") as f:
        text = f.read(200_000)
    return text.splitlines() + CODE_AND_CJK.splitlines() * 20


def template(single, specials, tok):
    return processors.TemplateProcessing(
        single=single, special_tokens=[(s, tok.token_to_id(s)) for s in specials])


def byte_level_bpe(lines, pre_tokenizer, specials, single, post_specials, added,
                   normalizer=None, wrap_post=False, vocab_size=1500):
    tok = Tokenizer(models.BPE())
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer)
    post = template(single, post_specials, tok)
    tok.post_processor = (processors.Sequence([processors.ByteLevel(trim_offsets=False), post])
                          if wrap_post else post)
    tok.add_tokens(added)
    return tok


def spm_style_bpe(lines, legacy):
    """SentencePiece-like BPE: Metaspace, byte fallback, unknown characters."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=["<unk>", "<s>", "</s>"],
                                  limit_alphabet=150, show_progress=False)
    tok.train_from_iterator(lines, trainer)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    base = len(vocab)
    for b in range(256):
        vocab["<0x%02X>" % b] = base + b
    data["model"]["byte_fallback"] = True
    if legacy:
        # The Metaspace form of older files: add_prefix_space, no
        # prepend_scheme, no split.
        data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581",
                                 "add_prefix_space": True}
        data["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
    else:
        data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581",
                                 "prepend_scheme": "first", "split": False}
        data["decoder"] = json.loads(decoders.Sequence([
            decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
            decoders.Strip(" ", 1, 0)]).__getstate__())
    tok = Tokenizer.from_str(json.dumps(data))
    tok.post_processor = template("<s> $A", ["<s>"], tok)
    tok.add_tokens([AddedToken("<sep>", normalized=True, rstrip=True, special=False)])
    return tok


def build_trained(lines):
    gpt2 = byte_level_bpe(
        lines, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ["<|endoftext|>"], "$A <|endoftext|>", ["<|endoftext|>"],
        [AddedToken("[NEW]", rstrip=True, normalized=False, special=False)])
    gpt2.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
    llama3 = byte_level_bpe(
        lines, pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)]),
        ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"], "<|begin_of_text|> $A",
        ["<|begin_of_text|>"],
        [AddedToken("quantd", single_word=True, normalized=False, special=False)], wrap_post=True)
    data = json.loads(llama3.to_str())
    data["model"]["ignore_merges"] = True  # As Llama 3 ships.
    llama3 = Tokenizer.from_str(json.dumps(data))
    qwen2 = byte_level_bpe(
        lines, pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)]),
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "$A <|endoftext|>", ["<|endoftext|>"],
        # Written decomposed: matched after NFC.
        [AddedToken("A\u030angstro\u0308m", normalized=True, special=False)],
        normalizer=normalizers.NFC())
    smollm = byte_level_bpe(
        lines, pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]),
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "<|im_start|> $A <|im_end|>",
        ["<|im_start|>", "<|im_end|>"], [])
    return {
        "gpt2_bpe": (gpt2, "<|endoftext|>", "<|endoftext|>"),
        "llama3_bpe": (llama3, "<|begin_of_text|>", "<|end_of_text|>"),
        "qwen2_bpe": (qwen2, None, "<|endoftext|>"),
        "smollm_bpe": (smollm, "<|im_start|>", "<|im_end|>"),
        "spm_bpe": (spm_style_bpe(lines, legacy=False), "<s>", "</s>"),
        "spm_legacy_bpe": (spm_style_bpe(lines, legacy=True), "<s>", "</s>"),
    }


def write_llama2(shared):
    src = os.path.join(shared, "models", "quantd-ref-llama-31m")
    dst = os.path.join(HERE, "llama2")
    os.makedirs(dst, exist_ok=True)
    for name in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        data = json.load(f)
    data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                               for m in data["model"]["merges"]]
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(dst, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text)
    original = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
    compact = Tokenizer.from_str(text)
    for t in TEXTS:
        assert original.encode(t).ids == compact.encode(t).ids, t
    return compact


def check_sentencepiece(tok, model_path):
    """The sentencepiece library agrees with tokenizer.json where it can (it
    does not split out special-token strings)."""
    import sentencepiece
    sp = sentencepiece.SentencePieceProcessor(model_file=model_path)
    for t in TEXTS:
        if "<" in t:
            continue
        assert [1] + sp.encode(t) == tok.encode(t).ids, t


def dump(obj):
    text = json.dumps(obj, ensure_ascii=False, indent=1)
    # Lists of ids on one line each.
    return re.sub(r"\[\n\s+([-\d,\s]+?)\n\s*\]",
                  lambda m: "[" + re.sub(r",\s+", ",", m.group(1)) + "]", text) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    args = parser.parse_args()

    llama2 = write_llama2(args.shared)
    check_sentencepiece(llama2, os.path.join(HERE, "llama2", "tokenizer.model"))
    all_toks = {"llama2": (llama2, "<s>", "</s>")}
    all_toks.update(build_trained(corpus(args.shared)))

    golden = {"generator": "tests/golden/tokenizer/make_golden.py",
              "tokenizers_version": tokenizers.__version__, "texts": TEXTS, "tokenizers": {}}
    with open(os.path.join(args.shared, "data", "wikitext2_test.txt"), encoding="utf-8") as f:
        wikitext = f.read()
    wiki = {"file": "data/wikitext2_test.txt",
            "sha256": hashlib.sha256(wikitext.encode("utf-8")).hexdigest(),
            "add_special_tokens": True, "tokenizers": {}}
    for name, (tok, bos, eos) in all_toks.items():
        if name != "llama2":
            out = os.path.join(HERE, name)
            os.makedirs(out, exist_ok=True)
            tok.save(os.path.join(out, "tokenizer.json"))
            config = {"bos_token": bos, "eos_token": eos,
                      "tokenizer_class": "PreTrainedTokenizerFast"}
            with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
                f.write(json.dumps(config, indent=2) + "\n")
        cases = []
        for i, text in enumerate(TEXTS):
            ids = tok.encode(text).ids
            cases.append({"text": i, "ids": ids,
                          "ids_no_special": tok.encode(text, add_special_tokens=False).ids,
                          "decoded": tok.decode(ids, skip_special_tokens=False),
                          "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
        golden["tokenizers"][name] = {
            "bos_id": tok.token_to_id(bos) if bos else -1, "eos_id": tok.token_to_id(eos),
            "vocab_size": tok.get_vocab_size(with_added_tokens=True), "cases": cases}
        start = time.time()
        ids = tok.encode(wikitext).ids
        seconds = time.time() - start
        wiki["tokenizers"][name] = {
            "count": len(ids),
            "ids_sha256": hashlib.sha256(struct.pack("<%di" % len(ids), *ids)).hexdigest()}
        print("%-15s wikitext-2: %d tokens (%.2f s with tokenizers %s)" %
              (name, len(ids), seconds, tokenizers.__version__))
    with open(os.path.join(HERE, "golden_ids.json"), "w", encoding="utf-8") as f:
        f.write(dump(golden))
    with open(os.path.join(HERE, "wikitext2_expected.json"), "w", encoding="utf-8") as f:
        f.write(dump(wiki))


if __name__ == "__main__":
    sys.exit(main())
