"""The world's tokenizer: a byte-level BPE over the world's own words, digits and symbols.

Trained on text the world's generator writes (plain and guided prompts, own and expert
solutions of problems drawn from a seed, none of the splits), it makes every word of the world
one token, a number its digits, and a symbol its own token, so the expert's prose costs about
half the tokens it would as characters. It pre-tokenizes exactly as Qwen2 does (its split
pattern, then GPT-2's byte-level alphabet): for a folder whose config says `qwen2`,
transformers 5 always builds a `Qwen2Tokenizer` (qwen2 is in its
MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS) from the saved vocabulary and merges with that
pipeline, so the tokenizer in memory, the saved one and what transformers and vLLM load give the
same ids, and every text decodes back to itself (tests check both).
"""

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
# Qwen2's pre-tokenization pattern (its tokenizer.json): words with one leading non-letter,
# single digits, runs of symbols with an optional leading space, newlines, spaces.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def world_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A BPE of at most `vocab_size` tokens trained on `texts` (deterministic for the same
    texts): all 256 byte symbols, so any text encodes, plus merges of the world's pieces seen at
    least twice, plus the special tokens."""
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    pad, unk, bos, eos = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=pad, unk_token=unk, bos_token=bos, eos_token=eos
    )
