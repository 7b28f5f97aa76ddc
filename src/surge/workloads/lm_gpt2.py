"""GPT-2 causal language models for the language-model workloads: model, loss, tokenizers, packing.

The model is Hugging Face's ``GPT2Model`` (``transformers`` >= 5.2) trained from scratch, with the
output layer tied to the token embedding as in GPT-2 (:class:`GPT2CausalLM`). It maps ``input_ids
[B, T]`` to logits ``[B, T, vocab]``; :func:`lm_loss` is the mean next-token cross-entropy against
targets that are the inputs shifted by one token (:func:`pack_sequences`).

Why a wrapper around ``GPT2Model`` and not ``GPT2LMHeadModel``: the lockstep runner batches trials
with ``torch.func.functional_call`` on a ``"meta"`` copy of the model, and moving a model to ``"meta"``
unties ``lm_head.weight`` from ``transformer.wte.weight`` (measured, torch 2.14): the untied head
stays a meta tensor and the logits come out as garbage. Here the head *is* ``wte.weight`` (one
parameter), so both runners see the same model. The state dict is the ``transformer.*`` half of
``GPT2LMHeadModel``'s (:meth:`GPT2CausalLM.to_hf` builds one). Attention is transformers' "eager"
implementation: the same math in both runners, with vmap batching rules on every device (the CPU's
fused SDPA kernel has none and falls back to a slow per-lane loop). From transformers 5.2 on, GPT-2
registers no buffers (5.0/5.1 kept a causal-mask buffer, which the lockstep runner refuses).

``transformers`` and ``tokenizers`` are imported when a model or tokenizer is built, not on import of
:mod:`surge.workloads`; without them the error says ``pip install 'surge[lm]'``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from surge._validation import check_choice
from surge.errors import SurgeError

LM_EXTRA_HINT = "pip install 'surge[lm]'"

# Model sizes: GPT-2's block layout (pre-LayerNorm, GELU MLP of 4x width, learned positions, tied
# output embedding) at three widths. "distilgpt2" is DistilGPT2's shape (6 blocks x 768, 12 heads).
GPT2_SIZES: dict[str, dict[str, int]] = {
    "tiny": {"n_layer": 2, "n_embd": 128, "n_head": 4},  # offline checks and CPU sweeps
    "small": {"n_layer": 6, "n_embd": 256, "n_head": 4},  # DistilGPT2's depth and head width (64), 1/3 its width
    "distilgpt2": {"n_layer": 6, "n_embd": 768, "n_head": 12},  # DistilGPT2 itself
}
EOS_TOKEN = "<|endoftext|>"  # GPT-2's document separator; also the local tokenizer's only special token


def require(module: str):
    """Import ``module`` or say which extra installs it.

    Args:
        module: a dotted module name, e.g. ``"transformers"`` or ``"pyarrow.parquet"``.

    Returns:
        module: the imported module.

    Raises:
        ModuleNotFoundError: the import failed (any ``ImportError``); the message names the package and
            ``pip install 'surge[lm]'``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"the language-model workloads need the {module!r} package ({exc}); install it: {LM_EXTRA_HINT}"
        ) from None


def gpt2_param_count(size: str, vocab_size: int, seq_len: int) -> int:
    """Parameters of :class:`GPT2CausalLM`: embeddings V*d + T*d, 12d^2 + 13d per block, final LayerNorm 2d.

    The output layer is the token embedding (tied), so it adds nothing.

    Args:
        size: a key of :data:`GPT2_SIZES` (sets the width d and the number of blocks).
        vocab_size: V, the vocabulary size in ids.
        seq_len: T, the context length in tokens (learned positions).

    Returns:
        int: the number of trainable parameters.

    Raises:
        SurgeTypeError: ``size`` is not a string.
        SurgeError: ``size`` is not a key of :data:`GPT2_SIZES`.
    """
    check_choice(size, "size", tuple(GPT2_SIZES))
    d, n_layer = GPT2_SIZES[size]["n_embd"], GPT2_SIZES[size]["n_layer"]
    return vocab_size * d + seq_len * d + n_layer * (12 * d * d + 13 * d) + 2 * d


def gpt2_config(size: str, *, vocab_size: int, seq_len: int, eos_id: int):
    """A ``transformers.GPT2Config`` of a named size, dropout off, context ``seq_len``, eager attention.

    Args:
        size: a key of :data:`GPT2_SIZES` (blocks, width, heads).
        vocab_size: the vocabulary size in ids.
        seq_len: the context length in tokens (``n_positions``).
        eos_id: the end-of-text id (also the BOS id).

    Returns:
        transformers.GPT2Config: with ``use_cache=False`` and ``attn_implementation="eager"``.

    Raises:
        SurgeTypeError: ``size`` is not a string.
        SurgeError: ``size`` is not a key of :data:`GPT2_SIZES`.
        ModuleNotFoundError: ``transformers`` is not installed.
    """
    check_choice(size, "size", tuple(GPT2_SIZES))
    transformers = require("transformers")
    return transformers.GPT2Config(
        vocab_size=int(vocab_size),
        n_positions=int(seq_len),
        **GPT2_SIZES[size],
        resid_pdrop=0.0,  # dropout off: the lockstep runner refuses dropout, and trials must be deterministic
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=int(eos_id),
        eos_token_id=int(eos_id),
        use_cache=False,
        attn_implementation="eager",
    )


class GPT2CausalLM(nn.Module):
    """GPT-2 language model: ``input_ids [B, T]`` (any integer dtype) -> logits ``[B, T, vocab]``.

    ``transformer`` is a ``transformers.GPT2Model``; the output layer is its token embedding.

    Args:
        config: a ``transformers.GPT2Config`` (see :func:`gpt2_config`).

    Raises:
        ModuleNotFoundError: ``transformers`` is not installed.
    """

    def __init__(self, config) -> None:
        super().__init__()
        self.transformer = require("transformers").GPT2Model(config)

    @classmethod
    def from_size(cls, size: str, *, vocab_size: int, seq_len: int, eos_id: int) -> GPT2CausalLM:
        """A fresh model of a named size (weights drawn from torch's default generator).

        Args:
            size: a key of :data:`GPT2_SIZES`.
            vocab_size: the vocabulary size in ids.
            seq_len: the context length in tokens.
            eos_id: the end-of-text id.

        Returns:
            GPT2CausalLM: on the CPU, in torch's default dtype (float32).

        Raises:
            SurgeTypeError: ``size`` is not a string.
            SurgeError: ``size`` is not a key of :data:`GPT2_SIZES`.
            ModuleNotFoundError: ``transformers`` is not installed.
        """
        return cls(gpt2_config(size, vocab_size=vocab_size, seq_len=seq_len, eos_id=eos_id))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits of a batch of sequences.

        Args:
            input_ids: integer tensor ``[B, T]`` of token ids (any integer dtype), T <= the context.

        Returns:
            torch.Tensor ``[B, T, vocab]`` of logits, in the parameters' dtype: position t scores the
            token at t + 1.
        """
        hidden = self.transformer(input_ids=input_ids.long(), use_cache=False).last_hidden_state
        return F.linear(hidden, self.transformer.wte.weight)

    def to_hf(self):
        """A ``transformers.GPT2LMHeadModel`` with these weights (for generation or saving).

        Returns:
            transformers.GPT2LMHeadModel: a new model holding a copy of the weights, in their dtype, on
            the CPU.
        """
        model = require("transformers").GPT2LMHeadModel(self.transformer.config)
        model.transformer.load_state_dict(self.transformer.state_dict())
        return model.to(self.transformer.wte.weight.dtype)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy: logits ``[..., T, V]`` against target ids ``[..., T]``.

    Args:
        logits: float tensor ``[..., T, V]``.
        targets: integer tensor ``[..., T]`` of token ids in ``0 .. V - 1``.

    Returns:
        torch.Tensor: the scalar mean loss over all positions, in nats per token.
    """
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).long())


def pack_sequences(tokens: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a 1-D token stream into ``n = (len - 1) // seq_len`` inputs and next-token targets ``[n, T]``.

    Row i holds tokens ``i*T .. i*T + T - 1`` and its targets the same positions + 1, so every token
    but the very last is predicted once. Both are views of ``tokens`` (no copy). The tokens past
    ``n * seq_len + 1`` are dropped.

    Args:
        tokens: 1-D integer tensor of token ids.
        seq_len: T, tokens per sequence, >= 1 (not checked here; callers check it).

    Returns:
        tuple ``(inputs, targets)``: two tensors ``[n, seq_len]`` of the dtype of ``tokens``.

    Raises:
        SurgeError: ``tokens`` is not 1-D, or has fewer than ``seq_len + 1`` tokens.
    """
    if tokens.ndim != 1:
        raise SurgeError(f"tokens must be a 1-D stream, got shape {tuple(tokens.shape)}")
    n = (len(tokens) - 1) // seq_len
    if n < 1:
        raise SurgeError(f"the corpus has {len(tokens)} tokens: too few for one sequence of {seq_len} (+1) tokens")
    windows = tokens[: n * seq_len + 1].unfold(0, seq_len + 1, seq_len)  # [n, T + 1], overlapping by one
    return windows[:, :-1], windows[:, 1:]


# ---- tokenizers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextTokenizer:
    """What packing needs of a tokenizer: its tag for records, vocabulary size, EOS id and a batch encoder.

    Attributes:
        tag: ``"gpt2"`` or ``"bpe-local-<vocab>"``: recorded in the workload's metadata.
        vocab_size: the model's vocabulary size: every id is below it.
        eos_id: the end-of-text id, appended after every document.
        encode_batch: ``encode_batch(texts)`` -> one list of token ids per text, without special tokens.
        tokenizer: the underlying tokenizer (to decode, or save); None when not given.
    """

    tag: str  # "gpt2" or "bpe-local-<vocab>": recorded in the workload's metadata
    vocab_size: int  # the model's vocabulary: every id is below it
    eos_id: int  # appended after every document
    encode_batch: Callable[[list[str]], list[list[int]]]
    tokenizer: object = None  # the underlying tokenizer (to decode, or save)


def gpt2_tokenizer() -> TextTokenizer:
    """GPT-2's tokenizer through ``transformers.AutoTokenizer.from_pretrained("gpt2")``.

    Needs the Hugging Face Hub or its local cache.

    Returns:
        TextTokenizer: tagged ``"gpt2"``, 50,257 ids, EOS ``<|endoftext|>``.

    Raises:
        ModuleNotFoundError: ``transformers`` is not installed.
        OSError: the tokenizer could not be fetched (offline with no cache), as raised by transformers.
        SurgeError: the fetched tokenizer has no EOS id.
    """
    tok = require("transformers").AutoTokenizer.from_pretrained("gpt2")
    eos = tok.eos_token_id
    if eos is None:
        raise SurgeError("the 'gpt2' tokenizer has no eos_token_id")

    def encode(texts: list[str]) -> list[list[int]]:
        return list(tok(list(texts), add_special_tokens=False, verbose=False)["input_ids"])

    return TextTokenizer(tag="gpt2", vocab_size=len(tok), eos_id=int(eos), encode_batch=encode, tokenizer=tok)


def train_bpe(texts: Iterable[str], vocab_size: int) -> TextTokenizer:
    """A byte-level BPE tokenizer (GPT-2's pre-tokenisation and byte alphabet) trained on ``texts``.

    Deterministic for the same texts. The vocabulary is ``vocab_size`` or smaller when the corpus runs
    out of pairs to merge; ``<|endoftext|>`` is id 0.

    Args:
        texts: the training documents (any iterable of str; consumed once).
        vocab_size: the largest vocabulary to learn, in ids (256 byte symbols + the EOS token + merges).

    Returns:
        TextTokenizer: tagged ``"bpe-local-<vocab>"`` with the actual vocabulary size.

    Raises:
        ModuleNotFoundError: ``tokenizers`` is not installed.
    """
    tokenizers = require("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=int(vocab_size),
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return bpe_from_tokenizer(tok)


def bpe_from_tokenizer(tok) -> TextTokenizer:
    """Wrap a ``tokenizers.Tokenizer`` (trained by :func:`train_bpe`, or read back from its JSON).

    Args:
        tok: a ``tokenizers.Tokenizer`` whose vocabulary holds ``<|endoftext|>``.

    Returns:
        TextTokenizer: tagged ``"bpe-local-<vocab>"``, encoding without special tokens.

    Raises:
        SurgeError: the vocabulary has no ``<|endoftext|>`` (a tokenizer file not written by :func:`train_bpe`).
    """
    vocab = tok.get_vocab_size()
    eos_id = tok.token_to_id(EOS_TOKEN)
    if eos_id is None:
        raise SurgeError(f"the BPE tokenizer has no {EOS_TOKEN} token; delete its cached file to retrain it")

    def encode(texts: list[str]) -> list[list[int]]:
        return [e.ids for e in tok.encode_batch(list(texts), add_special_tokens=False)]

    return TextTokenizer(
        tag=f"bpe-local-{vocab}",
        vocab_size=vocab,
        eos_id=int(eos_id),
        encode_batch=encode,
        tokenizer=tok,
    )


def encode_documents(documents: Sequence[str], tokenizer: TextTokenizer, *, batch: int = 512) -> np.ndarray:
    """One token stream: each document's ids followed by the EOS id, as ``int32``.

    Args:
        documents: the texts, in stream order.
        tokenizer: the :class:`TextTokenizer` that encodes them.
        batch: documents per ``encode_batch`` call (memory versus call overhead), >= 1.

    Returns:
        np.ndarray int32 ``[n_tokens]``; empty when there are no documents.

    Raises:
        SurgeError: the tokenizer produced an id < 0 or >= its ``vocab_size``.
    """
    pieces: list[np.ndarray] = []
    eos = np.array([tokenizer.eos_id], dtype=np.int32)
    for start in range(0, len(documents), batch):
        for ids in tokenizer.encode_batch(list(documents[start : start + batch])):
            pieces.append(np.asarray(ids, dtype=np.int32))
            pieces.append(eos)
    if not pieces:
        return np.zeros(0, dtype=np.int32)
    stream = np.concatenate(pieces)
    if len(stream) and (stream.min() < 0 or stream.max() >= tokenizer.vocab_size):
        raise SurgeError(f"tokenizer {tokenizer.tag!r} produced ids outside [0, {tokenizer.vocab_size})")
    return stream
