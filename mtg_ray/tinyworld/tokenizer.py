"""The world's tokenizer: `mtg_ray.models.build_tokenizer()`'s characters and ids, saved so that
`AutoTokenizer` (and so vLLM) loads it unchanged from a Qwen2 model folder.

Why not save `build_tokenizer()` as is: for a folder whose config says `qwen2`, transformers 5
always builds a `Qwen2Tokenizer` (qwen2 is in its MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS),
which keeps the vocabulary but imposes Qwen2's byte-level pipeline. A space then becomes "Ġ" and
a newline "Ċ", neither in the char vocabulary, so both silently vanish. Here the vocabulary
spells those two characters the byte-level way, and the pipeline is byte-level too, so the
tokenizer in memory, the saved one and Qwen2Tokenizer's rebuild all give the same ids, and those
ids equal `build_tokenizer()`'s for every text over its characters.
"""

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from mtg_ray.models import build_tokenizer

# GPT-2 byte-level spelling of the characters outside printable, non-space ASCII.
BYTE_LEVEL = {" ": "\u0120", "\n": "\u010a"}


def world_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character, ids as in `build_tokenizer()`, byte-level on disk."""
    base = build_tokenizer()
    vocab = {BYTE_LEVEL.get(tok, tok): i for tok, i in base.get_vocab().items()}
    for tok in vocab:
        if len(tok) == 1 and not 33 <= ord(tok) <= 126 and tok not in BYTE_LEVEL.values():
            raise ValueError(f"character {tok!r} has no byte-level spelling here")
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=base.pad_token,
        unk_token=base.unk_token,
        bos_token=base.bos_token,
        eos_token=base.eos_token,
    )
