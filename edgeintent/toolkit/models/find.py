"""FIND (Ant Group, "Transferable and Forecastable User Targeting Foundation Model") sized for a phone.

Two towers, one bundle:

- the **user encoder** (what the phone runs and every target exports): DIPN's per-stream encoders
  (embeddings, a GRU per stream, intra/inter-view attention) → fusion (Linear + ReLU + Linear) → an
  L2-normalised user embedding (``dim``, default 32). Its signature has one output, ``embedding``
  (B, dim), declared as a vector output, so parity compares it row by row (max |Δ| and cosine). The
  hashed category stays an input (``drop_features`` drops only the item): a demand names categories.
- the **text tower** (server side, never exported): a tokenizer over the template language of
  ``features.text`` (its fixed words plus the slot values seen in training, e.g. category ids, each one
  token), token + position embeddings, ``text_layers`` small transformer encoder layers, masked mean
  pooling, a linear map to ``dim``, L2 normalisation. It understands the template language only, not
  free text: a demand with a word outside its vocabulary is refused with one line naming the words
  (the paper's LLM query rewriting is out of scope).

Training (self-supervised contrastive forecasting, the cyclic regulariser, the user-text alignment)
lives in ``training/find.py``; the options below are its knobs: ``forecast`` (weight of the InfoNCE
forecasting loss, 0 turns it off), ``forecast_steps`` (windows ahead), ``cyclic`` (weight of the
cyclic regulariser, 0 turns it off), ``pretrain_share`` (share of the epochs spent on pretraining
alone before the alignment starts), ``temperature`` (of every InfoNCE), ``vicreg`` (weight of a VICReg
variance + covariance regulariser on the batch of user embeddings, 0 turns it off), ``global_share``
(share of the alignment texts drawn from the future's slot-free clauses, e.g. ``buy anything``),
``past_align`` (weight of an extra alignment with sentences about the past window, 0 turns it off).
"""

from __future__ import annotations

import torch
from torch import nn

from edgeintent.errors import ConfigError
from edgeintent.toolkit.features.text import TABLES, tokenize
from edgeintent.toolkit.models import register_model
from edgeintent.toolkit.models.dipn import DIPN
from edgeintent.toolkit.models.signature import COUPON, Signature, stream_inputs

PAD, CLS = "<pad>", "<cls>"
#: the fixed words of every template table (slot values are added from the training data)
BASE_VOCAB = (PAD, CLS) + tuple(dict.fromkeys(w for t in TABLES.values() for w in t.words()))
MAX_TOKENS = 96


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    """x / ‖x‖ per row, with sqrt and div only (every target's converter has them)."""
    return x / torch.sqrt((x * x).sum(-1, keepdim=True) + 1e-12)


class TextTower(nn.Module):
    """Token ids (B, L) + mask (B, L) [+ prompt vectors (P, d) prepended] → (B, dim), L2-normalised."""

    def __init__(self, vocab_size: int, width: int, dim: int, layers: int, heads: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, width, padding_idx=0)
        self.position = nn.Embedding(MAX_TOKENS, width)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(width, dim)
        self.width = width

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, prompt: torch.Tensor | None = None) -> torch.Tensor:
        x = self.tokens(ids) + self.position(torch.arange(ids.shape[1]))[None]
        pool = mask
        if prompt is not None:  # learnable prompt tokens (few-shot prompt tuning), before the demand: they act
            # through attention; the demand's words keep their positions, the pooling stays over them
            x = torch.cat([prompt.unsqueeze(0).expand(x.shape[0], -1, -1), x], dim=1)
            mask = torch.cat([torch.ones(x.shape[0], prompt.shape[0], dtype=torch.bool), mask], dim=1)
            pool = torch.cat([torch.zeros(x.shape[0], prompt.shape[0], dtype=torch.bool), pool], dim=1)
        h = self.encoder(x, src_key_padding_mask=~mask)
        m = pool.unsqueeze(-1).to(h.dtype)
        return l2_normalise(self.out((h * m).sum(1) / m.sum(1).clamp(min=1.0)))


_OPTIONS = dict(attention=True, intra=True, inter=True, rnn="gru", id_dropout=0.1, drop_features=("cloud.item",),
                use_age=True, coupon=False, time_bias=False, dim=32, text_width=32, text_layers=1, text_heads=2,
                vocab=BASE_VOCAB, temperature=0.1, forecast=1.0, forecast_steps=2, cyclic=0.1, pretrain_share=0.3, vicreg=0.0,
                global_share=0.0, past_align=1.0)  # fmt: skip


@register_model("find", tasks=(), embed_dim=4, hidden=24, trainer="edgeintent.toolkit.training.find", **_OPTIONS,
                description="FIND: DIPN encoders → fusion → L2-normalised user embedding; text tower for targeting")  # fmt: skip
class FIND(DIPN):
    def __init__(self, spec, streams: tuple[str, ...], tasks: tuple[str, ...], embed_dim: int, hidden: int,
                 dim: int = 32, text_width: int = 32, text_layers: int = 1, text_heads: int = 2,
                 vocab: tuple[str, ...] = BASE_VOCAB, temperature: float = 0.1, forecast: float = 1.0,
                 forecast_steps: int = 2, cyclic: float = 0.1, pretrain_share: float = 0.3, vicreg: float = 0.0,
                 global_share: float = 0.0, past_align: float = 1.0, **encoder) -> None:  # fmt: skip
        for name, v in (("dim", dim), ("text_width", text_width), ("text_layers", text_layers), ("text_heads", text_heads),
                        ("forecast_steps", forecast_steps)):  # fmt: skip
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"find: {name} must be a positive integer, got {v!r}")
        if text_width % text_heads:
            raise ConfigError(f"find: text_width ({text_width}) must be a multiple of text_heads ({text_heads})")
        for name, v in (("forecast", forecast), ("cyclic", cyclic), ("vicreg", vicreg), ("past_align", past_align)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"find: {name} must be a non-negative number, got {v!r}")
        if isinstance(global_share, bool) or not isinstance(global_share, (int, float)) or not 0 <= global_share <= 1:
            raise ConfigError(f"find: global_share must be in [0, 1], got {global_share!r}")
        if not 0 < temperature <= 10:
            raise ConfigError(f"find: temperature must be in (0, 10], got {temperature!r}")
        if not 0 <= pretrain_share < 1:
            raise ConfigError(f"find: pretrain_share must be in [0, 1), got {pretrain_share!r}")
        vocab = tuple(vocab)
        if vocab[:2] != (PAD, CLS) or len(set(vocab)) != len(vocab):
            raise ConfigError("find: vocab must start with <pad>, <cls> and hold each word once")
        self.find = dict(dim=dim, text_width=text_width, text_layers=text_layers, text_heads=text_heads,
                         vocab=vocab, temperature=float(temperature), forecast=float(forecast),
                         forecast_steps=forecast_steps, cyclic=float(cyclic), pretrain_share=float(pretrain_share),
                         vicreg=float(vicreg), global_share=float(global_share), past_align=float(past_align))  # fmt: skip
        super().__init__(spec, streams, (), embed_dim, hidden, multitask=True, **encoder)
        self.hparams.pop("multitask")
        self.hparams.update(self.find)
        self.text = TextTower(len(vocab), text_width, dim, text_layers, text_heads)
        self.word_ids = {w: i for i, w in enumerate(vocab)}

    def build_head(self) -> None:
        d = self.hparams["hidden"]
        self.fusion = nn.Sequential(nn.Linear(self.encoded_width, d), nn.ReLU(), nn.Linear(d, self.find["dim"]))

    def signature(self) -> Signature:
        inputs = stream_inputs(self.streams, self.features_per_event, ages=self.hparams["use_age"])
        return Signature(tuple(inputs) + ((COUPON,) if self.hparams["coupon"] else ()), ("embedding",), ("embedding",))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"embedding": l2_normalise(self.fusion(self.encode(batch)))}

    # -- the text tower's side ----------------------------------------------------------------

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.hparams["vocab"]

    def set_vocab(self, vocab: tuple[str, ...]) -> None:
        """A new vocabulary (before training the text tower): a fresh text tower of its size."""
        self.hparams["vocab"] = tuple(vocab)
        self.find["vocab"] = tuple(vocab)
        f = self.find
        self.text = TextTower(len(vocab), f["text_width"], f["dim"], f["text_layers"], f["text_heads"])
        self.word_ids = {w: i for i, w in enumerate(vocab)}

    def unknown_words(self, text: str) -> list[str]:
        return [w for w in dict.fromkeys(tokenize(text)) if w not in self.word_ids]

    def check_demand(self, text: str) -> list[str]:
        """The demand's words; a one-line ``ConfigError`` naming any word outside the vocabulary."""
        words = tokenize(text)
        if not words:
            raise ConfigError("the demand is empty; write e.g. 'users who will buy in category 4756105'")
        unknown = self.unknown_words(text)
        if unknown:
            raise ConfigError(f"unknown words in the demand: {', '.join(unknown)} (the text tower knows the template "
                              f"language and the categories it was trained on; free text is not rewritten)")  # fmt: skip
        return words

    def token_ids(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask) of texts: ``<cls>`` + their words (unknown words dropped), at most MAX_TOKENS − 8."""
        rows = [[1] + [self.word_ids[w] for w in tokenize(t) if w in self.word_ids][: MAX_TOKENS - 9] for t in texts]
        n = max((len(r) for r in rows), default=1)
        ids = torch.zeros((len(rows), n), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids > 0

    def encode_texts(self, texts: list[str], prompt: torch.Tensor | None = None) -> torch.Tensor:
        ids, mask = self.token_ids(texts)
        return self.text(ids, mask, prompt)
