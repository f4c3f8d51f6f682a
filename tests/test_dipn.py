from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeintent.errors import ConfigError
from edgeintent.toolkit.features import build_samples, fit_spec
from edgeintent.toolkit.models import create_model
from edgeintent.toolkit.models.base import KEY_AGE_CAP, TimeCrossAttention, event_seconds, exact_exp, samples_to_batch
from edgeintent.toolkit.models.dipn import repeat_flags
from edgeintent.toolkit.data.simulator import SimConfig, simulate


@pytest.fixture(scope="module")
def sim():
    torch.set_num_threads(1)
    data = simulate(SimConfig(users=200, seed=4))
    spec = fit_spec(data.events)
    return spec, build_samples(data.events, spec, data.decisions)


def _batch(model, samples, n=16):
    return samples_to_batch(samples, model.streams, np.arange(n))


@pytest.mark.parametrize("options", [{}, {"attention": False}, {"intra": False}, {"inter": False}, {"multitask": False},
                                     {"use_age": False, "coupon": False}, {"rnn": "lstm"}, {"time_bias": False}])
def test_forward_finite_with_empty_streams(sim, options):
    spec, samples = sim
    torch.manual_seed(0)
    model = create_model("dipn", spec, **options).eval()
    batch = _batch(model, samples)
    for s in model.streams:  # rows 0-2: one stream empty each; row 3: everything empty
        batch[f"{s}_len"][[0, 3]] = 0
    out = model(batch)
    assert set(out) == ({"buy_rt"} if options.get("multitask") is False else {"buy_rt", "buy_long"})
    for v in out.values():
        assert v.shape == (16,) and torch.isfinite(v).all() and v.std() > 0


def test_ablations_remove_their_modules(sim):
    spec, _ = sim
    params = {k: sum(p.numel() for p in create_model("dipn", spec, **o).parameters())
              for k, o in {"full": {}, "no-attn": {"attention": False}, "no-inter": {"inter": False},
                           "no-intra": {"intra": False}}.items()}  # fmt: skip
    assert params["no-attn"] < params["no-inter"] < params["full"]
    assert params["no-intra"] < params["full"]
    single = create_model("dipn", spec, streams=("cloud",))
    assert not single.use_inter  # inter-view attention needs a second stream


def _attention_weights(att: TimeCrossAttention, q, k, mask, age_q, age_k) -> torch.Tensor:
    """The attention weights on the keys: the module's output with identity values and no time values."""
    with torch.no_grad():
        att.v.weight.copy_(torch.eye(k.shape[-1]))
        att.v.bias.zero_()
        att.time_value.weight.zero_()
    return att(q, k, mask, event_seconds(age_q), event_seconds(age_k))


def test_time_cross_attention_starts_local_and_masks():
    torch.manual_seed(0)
    att = TimeCrossAttention(8)
    with torch.no_grad():  # content-blind: only the relative-time bias and the null key decide
        att.q.weight.zero_()
        att.q.bias.zero_()
    secs = torch.tensor([[1.0, 3.0, 20.0, 300.0, 5000.0, 9.5]])  # key ages; the query happened 10 s before t
    n = secs.shape[1]
    keys = torch.eye(n)[None, :, :8] if n >= 8 else torch.nn.functional.pad(torch.eye(n), (0, 8 - n))[None]
    mask = torch.ones(1, n, dtype=torch.bool)
    q = torch.zeros(1, 1, 8)
    w = _attention_weights(att, q, keys, mask, torch.log1p(torch.tensor([[10.0]])), torch.log1p(secs))[0, 0, :n]
    # the key 0.5 s before the query weighs most; the far ones (4990 s, 290 s before) least
    assert int(w.argmax()) == 5 and w[5] > 2 * w[1]
    assert w[4] < w[3] < w[2] and w[4] < w[0]
    assert w.sum() < 1.0  # the null key takes the rest
    # masked keys get nothing; a row with every key masked returns zeros
    mask[0, 5] = False
    w2 = _attention_weights(att, q, keys, mask, torch.log1p(torch.tensor([[10.0]])), torch.log1p(secs))[0, 0, :n]
    assert w2[5] == 0 and w2[1] == w2.max() and w2[1] > w2[2]  # keys 0 and 1 (9 s and 7 s after) share a bucket
    out = att(q, keys, torch.zeros_like(mask), event_seconds(torch.log1p(torch.tensor([[10.0]]))), event_seconds(torch.log1p(secs)))
    assert torch.equal(out, torch.zeros_like(out))


def test_exact_exp_is_fp32_accurate_and_continuous_over_the_age_range():
    """Ages become seconds through exact_exp, not a runtime's exp kernel (MNN's aarch64 one is off by
    up to 5.6e-5 relative): it must be as accurate as fp32 allows and have no jump where n changes."""
    a = torch.linspace(0.0, KEY_AGE_CAP, 200_001)
    ref = torch.exp(a.double())
    assert float(((exact_exp(a).double() - ref).abs() / ref).max()) < 2e-7
    edges = torch.arange(1, 13, dtype=torch.float64) * np.log(2.0)  # where floor(a / ln 2) steps
    for side in (torch.nextafter(edges.float(), torch.tensor(0.0)), torch.nextafter(edges.float(), torch.tensor(99.0))):
        got = exact_exp(side).double()
        assert float(((got - torch.exp(side.double())).abs() / torch.exp(side.double())).max()) < 2e-7
    assert torch.equal(exact_exp(torch.zeros(3)), torch.ones(3))


def test_time_bias_is_part_of_inter_view_attention_only(sim):
    spec, _ = sim
    full = create_model("dipn", spec)
    assert full.hparams["time_bias"] and all(isinstance(m, TimeCrossAttention) for m in full.cross.values())
    assert not any(isinstance(m, TimeCrossAttention) for m in create_model("dipn", spec, inter=False).modules())
    plain = create_model("dipn", spec, time_bias=False)
    assert not any(isinstance(m, TimeCrossAttention) for m in plain.modules())


def test_inter_view_attention_reads_the_other_streams(sim):
    spec, samples = sim
    torch.manual_seed(0)
    model = create_model("dipn", spec, streams=("gesture", "click")).eval()
    batch = _batch(model, samples)
    base = model(batch)["buy_rt"]
    batch["click"] = torch.where(batch["click"] > 1, 2, batch["click"])  # change only the clicks
    changed = model(batch)["buy_rt"]
    assert not torch.allclose(base, changed)


def test_padding_content_and_width_do_not_matter(sim):
    spec, samples = sim
    torch.manual_seed(0)
    model = create_model("dipn", spec).eval()
    batch = _batch(model, samples)
    out = model(batch)
    wide = {k: v.clone() for k, v in batch.items()}
    for s in model.streams:
        x, age = wide[s], wide[f"{s}_age"]
        wide[s] = torch.cat([x, torch.full((x.shape[0], 5, x.shape[2]), 3)], dim=1)  # junk padding
        wide[f"{s}_age"] = torch.cat([age, torch.full((age.shape[0], 5), 9.0)], dim=1)
    out2 = model(wide)
    for t in out:
        torch.testing.assert_close(out[t], out2[t], rtol=1e-5, atol=1e-5)


def test_dropped_hashed_ids_are_ignored_but_repeats_count(sim):
    spec, samples = sim
    torch.manual_seed(0)
    model = create_model("dipn", spec, streams=("cloud",)).eval()
    batch = _batch(model, samples)
    item = [f.name for f in spec.features["cloud"]].index("item")
    shifted = {k: v.clone() for k, v in batch.items()}
    real = shifted["cloud"][:, :, item] > 1
    # a bijective relabelling of items keeps every repeat pattern: the output must not move
    shifted["cloud"][:, :, item] = torch.where(real, (shifted["cloud"][:, :, item] * 7 + 3) % 4096 + 2, 1)
    torch.testing.assert_close(model(batch)["buy_rt"], model(shifted)["buy_rt"])
    keep = create_model("dipn", spec, streams=("cloud",), drop_features=()).eval()
    assert sum(p.numel() for p in keep.parameters()) > sum(p.numel() for p in model.parameters()) + 4000 * 8


def test_repeat_flags_by_hand():
    ids = torch.tensor([[[5], [6], [5], [7], [6]], [[4], [4], [0], [0], [0]]])
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    flags = repeat_flags(ids, mask, [0])[..., 0]
    assert flags.tolist() == [[0, 0, 1, 0, 1], [0, 1, 0, 0, 0]]


def test_coupon_moves_the_prediction(sim):
    spec, samples = sim
    torch.manual_seed(0)
    model = create_model("dipn", spec).eval()
    batch = _batch(model, samples)
    a = model(batch)["buy_rt"]
    batch["coupon"] = batch["coupon"] + 20.0
    assert not torch.allclose(a, model(batch)["buy_rt"])


def test_gradient_reaches_every_stream(sim):
    spec, samples = sim
    torch.manual_seed(0)
    model = create_model("dipn", spec)
    out = model(_batch(model, samples, 32))
    (out["buy_rt"].sum() + out["buy_long"].sum()).backward()
    for s in model.streams:
        assert model.embed[s].table.weight.grad.abs().sum() > 0
        assert model.rnn[s].weight_ih_l0.grad.abs().sum() > 0


def test_unknown_options_are_config_errors(sim):
    spec, _ = sim
    with pytest.raises(ConfigError, match="no option"):
        create_model("dipn", spec, hiden=3)
    with pytest.raises(ConfigError, match="no feature 'cloud.itm'"):
        create_model("dipn", spec, drop_features=("cloud.itm",))
