"""IIDN: shapes, masking, S→P conditioning, coupon input, gradients, training, determinism, trace and ONNX."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgeintent.errors import ConfigError
from edgeintent.toolkit import models
from edgeintent.toolkit.features import build_samples, fit_spec
from edgeintent.toolkit.models import iidn as iidn_mod  # noqa: F401  (registers "iidn")
from edgeintent.toolkit.models.base import samples_to_batch
from edgeintent.toolkit.data.simulator import SimConfig, simulate

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    sim = simulate(SimConfig(users=300, seed=1))
    spec = fit_spec(sim.events)
    samples = build_samples(sim.events, spec, sim.decisions)
    return spec, samples


def make(spec, streams=None, tasks=None, seed=0, **kw):
    """Build through the registry entry (defaults + overrides), like ``create_model`` does."""
    entry = models.get_entry("iidn")
    torch.manual_seed(seed)
    m = entry.factory(spec=spec, streams=tuple(streams or spec.streams), tasks=tuple(tasks or entry.tasks),
                      **{**entry.defaults, **kw})
    return m.eval()


def batch_of(samples, streams, idx):
    return samples_to_batch(samples, tuple(streams), np.asarray(idx))


def test_registry_entry_and_config_round_trip(data):
    spec, samples = data
    entry = models.get_entry("iidn")
    assert entry.kind == "torch" and entry.tasks == ("stay", "buy_rt")
    assert entry.defaults["layers"] == 2 and entry.defaults["rnn"] == "lstm"
    m = make(spec, streams=("click", "cloud"))
    cfg = json.loads(json.dumps(m.config()))
    assert cfg["name"] == "iidn" and cfg["streams"] == ["click", "cloud"] and cfg["tasks"] == ["stay", "buy_rt"]
    assert cfg["amounts"] == [0.0, 5.0, 10.0, 20.0] and cfg["hidden"] == 32
    hp = {k: v for k, v in cfg.items() if k not in ("name", "streams", "tasks")}
    rebuilt = entry.factory(spec=spec, streams=tuple(cfg["streams"]), tasks=tuple(cfg["tasks"]), **hp).eval()
    rebuilt.load_state_dict(m.state_dict())
    b = batch_of(samples, m.streams, range(16))
    with torch.no_grad():
        a, r = m(b), rebuilt(b)
    for t in m.tasks:
        torch.testing.assert_close(a[t], r[t], rtol=0, atol=0)


@pytest.mark.parametrize("streams", [("cloud",), ("gesture",), ("gesture", "click", "cloud")])
@pytest.mark.parametrize("rnn,batchnorm", [("lstm", True), ("gru", True), ("lstm", False)])
def test_shapes_and_finite(data, streams, rnn, batchnorm):
    spec, samples = data
    m = make(spec, streams=streams, rnn=rnn, batchnorm=batchnorm)
    b = batch_of(samples, streams, range(0, 70, 3))
    with torch.no_grad():
        out = m(b)
    assert list(out) == ["stay", "buy_rt"]
    for v in out.values():
        assert v.shape == (24,) and v.dtype == torch.float32 and torch.isfinite(v).all()
    # rows differ (the model looks at its input)
    assert out["buy_rt"].std() > 0


def test_all_empty_rows_finite_and_padding_ignored(data):
    spec, samples = data
    m = make(spec)
    b = batch_of(samples, m.streams, range(6))
    for s in m.streams:
        b[f"{s}_len"][:3] = 0  # rows 0-2: no events in any stream
    with torch.no_grad():
        out = m(b)
        # whatever sits in the padding (ids beyond the length) must not matter
        b2 = {k: v.clone() for k, v in b.items()}
        for s in m.streams:
            junk = torch.randint_like(b2[s], 0, 2)
            pad = ~(torch.arange(b2[s].shape[1])[None, :] < b2[f"{s}_len"][:, None])
            b2[s][pad] = junk[pad]
        out2 = m(b2)
        # nor how far the batch is padded
        padded = set(m.streams) | {f"{s}_age" for s in m.streams}
        b3 = {k: (torch.cat([v, torch.zeros_like(v[:, :7])], 1) if k in padded else v) for k, v in b.items()}
        out3 = m(b3)
    for t in m.tasks:
        assert torch.isfinite(out[t]).all()
        torch.testing.assert_close(out2[t], out[t], rtol=0, atol=1e-6)
        torch.testing.assert_close(out3[t], out[t], rtol=0, atol=1e-6)
    # empty rows with the same coupon give the same outputs
    same = b["coupon"][:3] == b["coupon"][0]
    assert torch.allclose(out["buy_rt"][:3][same], out["buy_rt"][0])


def test_purchase_is_conditioned_on_stay(data):
    spec, samples = data
    m = make(spec)
    b = batch_of(samples, m.streams, range(32))
    with torch.no_grad():
        base = m(b)
        # perturb the S head only: S changes and, through the feedback of sigmoid(S), P changes too
        bias = m.head_s.bias.clone()
        m.head_s.bias.add_(2.0)
        moved = m(b)
        m.head_s.bias.copy_(bias)
        # cut the S feedback: S unchanged, P changes
        w = m.feedback.weight.clone()
        m.feedback.weight.zero_()
        cut = m(b)
        m.feedback.weight.copy_(w)
    assert (moved["stay"] - base["stay"]).abs().min() > 1e-3
    assert (moved["buy_rt"] - base["buy_rt"]).abs().max() > 1e-5
    torch.testing.assert_close(cut["stay"], base["stay"], rtol=0, atol=0)
    assert (cut["buy_rt"] - base["buy_rt"]).abs().max() > 1e-5
    # d P / d S is non-zero through the decoder (autograd through sigmoid(S) → feedback → cell)
    z = m.encode(b).detach()
    s_logit, p_logit = m.decode(z)
    (g,) = torch.autograd.grad(p_logit.sum(), m.feedback.weight)
    assert g.abs().sum() > 0


def test_coupon_bucket_and_effect(data):
    spec, samples = data
    m = make(spec)
    c = torch.tensor([-3.0, 0.0, 2.4, 2.6, 5.0, 7.5, 7.6, 14.0, 16.0, 20.0, 500.0])
    buckets = (c[:, None] > m.coupon_mids[None, :]).long().sum(1)
    assert buckets.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    feats = m.coupon_features(c)
    torch.testing.assert_close(feats[:, -1], c / 20.0)
    torch.testing.assert_close(feats[:, :-1], m.coupon_embed.weight[buckets])
    b = batch_of(samples, m.streams, range(16))
    with torch.no_grad():
        outs = []
        for amount in (0.0, 5.0, 20.0, 7.0):
            b["coupon"] = torch.full((16,), amount)
            outs.append(m(b))
    for t in m.tasks:
        assert (outs[0][t] - outs[2][t]).abs().min() > 1e-6
        assert (outs[1][t] - outs[2][t]).abs().min() > 1e-6
        # 7.0 is not a listed amount: bucket 5.0, but the raw value still moves the output
        assert (outs[3][t] - outs[1][t]).abs().min() > 1e-7
    # a batch without a coupon column means no coupon
    del b["coupon"]
    with torch.no_grad():
        nocoupon = m(b)
    torch.testing.assert_close(nocoupon["buy_rt"], outs[0]["buy_rt"], rtol=0, atol=0)


def test_monotone_coupon_curve(data):
    spec, _ = data
    m = make(spec, coupon_response="monotone")
    with torch.no_grad():
        m.response_steps.copy_(torch.tensor([0.3, -1.0, 2.0]))
    sp = torch.nn.functional.softplus(m.response_steps.detach())
    c = torch.tensor([-5.0, 0.0, 2.5, 5.0, 7.5, 10.0, 15.0, 20.0, 80.0])
    want = torch.stack([0 * sp[0], 0 * sp[0], sp[0] / 2, sp[0], sp[0] + sp[1] / 2, sp[0] + sp[1],
                        sp[0] + sp[1] + sp[2] / 2, sp.sum(), sp.sum()])  # fmt: skip
    torch.testing.assert_close(m.coupon_curve(c), want)


@pytest.mark.parametrize("response", ["monotone", "monotone-only"])
def test_monotone_coupon_response(data, response):
    """The elasticity term adds softplus(e(z))·r(c) ≥ 0 to the purchase logit; with ``monotone-only`` the
    coupon reaches the model through that term alone, so P never falls as the amount grows."""
    spec, samples = data
    m = make(spec, coupon_response=response, seed=3)
    with torch.no_grad():
        m.response_steps.normal_()
        m.head_e.weight.normal_()
    b = batch_of(samples, m.streams, range(64))
    amounts = [0.0, 1.0, 5.0, 6.0, 10.0, 20.0, 40.0]
    with torch.no_grad():
        z = m.encode({**b, "coupon": torch.zeros(64)})
        outs = []
        for a in amounts:
            b["coupon"] = torch.full((64,), a)
            outs.append(m(b))
    p = torch.stack([o["buy_rt"] for o in outs], dim=1)
    if response == "monotone-only":
        assert (p[:, 1:] - p[:, :-1] >= -1e-6).all()
        assert (p[:, -1] - p[:, 0]).min() > 0
        for o in outs:  # the stay intent does not see the coupon
            torch.testing.assert_close(o["stay"], outs[0]["stay"], rtol=0, atol=0)
    else:
        assert (outs[0]["stay"] - outs[-1]["stay"]).abs().max() > 1e-6
    with torch.no_grad():  # at amount 0 the term vanishes: P is the decoder's own logit
        torch.testing.assert_close(outs[0]["buy_rt"], m.decode(z)[1], rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="coupon_response"):
        make(spec, coupon_response="linear")


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_gradients_reach_every_stream_and_layer(data, rnn):
    spec, samples = data
    m = make(spec, rnn=rnn).train()
    b = batch_of(samples, m.streams, range(48))
    out = m(b)
    y = torch.from_numpy(samples.labels["buy_rt"][:48].astype(np.float32))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(out["buy_rt"], y)  # P loss alone
    loss.backward()
    for s in m.streams:
        assert m.embed[s].table.weight.grad.abs().sum() > 0, s
        for k, layer in enumerate(m.rnns[s]):
            assert layer.weight_ih_l0.grad.abs().sum() > 0, (s, k)
            assert layer.weight_hh_l0.grad.abs().sum() > 0, (s, k)
        for k, pool in enumerate(m.attn[s]):
            assert pool.proj.weight.grad.abs().sum() > 0, (s, k)
    # the P loss trains the S head too, through the feedback of sigmoid(S)
    assert m.head_s.weight.grad.abs().sum() > 0 and m.feedback.weight.grad.abs().sum() > 0
    assert m.coupon_embed.weight.grad.abs().sum() > 0


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    for v in np.unique(score):  # average ranks over ties
        tie = score == v
        ranks[tie] = ranks[tie].mean()
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def test_short_training_learns(data):
    spec, samples = data
    m = make(spec, seed=0)
    tasks = m.tasks
    n = len(samples.user_id)
    y = {t: torch.from_numpy(samples.labels[t].astype(np.float32)) for t in tasks}
    obs = {t: torch.from_numpy(samples.observed[t].astype(np.float32)) for t in tasks}
    full = batch_of(samples, m.streams, np.arange(n))

    def loss_fn(out, idx):
        total = 0.0
        for t in tasks:
            bce = torch.nn.functional.binary_cross_entropy_with_logits(out[t], y[t][idx], reduction="none")
            total = total + (bce * obs[t][idx]).sum() / obs[t][idx].sum().clamp(min=1.0)
        return total

    with torch.no_grad():
        before = loss_fn(m(full), slice(None)).item()
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=0.003)
    rng = np.random.default_rng(0)
    for _ in range(100):
        idx = rng.choice(n, 128, replace=False)
        loss = loss_fn(m(batch_of(samples, m.streams, idx)), torch.from_numpy(idx))
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        out = m(full)
        after = loss_fn(out, slice(None)).item()
    assert after < before - 0.3, (before, after)
    auc_p = _auc(samples.labels["buy_rt"], out["buy_rt"].numpy())
    auc_s = _auc(samples.labels["stay"], out["stay"].numpy())
    assert auc_p > 0.6, auc_p
    assert auc_s > 0.6, auc_s


def test_deterministic_for_a_seed(data):
    spec, samples = data
    a, b_, c = make(spec, seed=3), make(spec, seed=3), make(spec, seed=4)
    sa, sb, sc = a.state_dict(), b_.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    batch = batch_of(samples, a.streams, range(20))
    with torch.no_grad():
        oa, ob, oc = a(batch), b_(batch), c(batch)
    for t in a.tasks:
        assert torch.equal(oa[t], ob[t])
        assert not torch.equal(oa[t], oc[t])


def test_task_names_and_validation(data):
    spec, samples = data
    m = make(spec, tasks=("stay", "buy_long"), streams=("cloud",))
    with torch.no_grad():
        out = m(batch_of(samples, ("cloud",), range(4)))
    assert list(out) == ["stay", "buy_long"]
    with pytest.raises(ConfigError, match="rnn"):
        make(spec, rnn="transformer")
    with pytest.raises(ConfigError, match="two distinct tasks"):
        make(spec, tasks=("stay",))
    with pytest.raises(ConfigError, match="amounts"):
        make(spec, amounts=(5.0, 0.0))
    with pytest.raises(ConfigError, match="layers"):
        make(spec, layers=0)
    with pytest.raises(ConfigError, match="no stream"):
        make(spec, streams=("gesture", "smell"))


def test_layers_option_and_static_hook(data):
    spec, samples = data
    m3 = make(spec, streams=("click",), layers=3)
    assert len(m3.rnns["click"]) == 3 and len(m3.attn["click"]) == 3
    m = make(spec, streams=("click",), static_dim=3)
    b = batch_of(samples, ("click",), range(10))
    with pytest.raises(KeyError, match="static"):
        m(b)
    with torch.no_grad():
        b["static"] = torch.zeros(10, 3)
        o0 = m(b)["buy_rt"]
        b["static"] = torch.ones(10, 3)
        o1 = m(b)["buy_rt"]
    assert torch.isfinite(o0).all() and (o0 - o1).abs().min() > 1e-7


class _Flat(torch.nn.Module):
    """Positional-tensor wrapper (the model's ``input_names`` in order) → (S, P): what exporters trace."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, *tensors):
        out = self.model(dict(zip(self.model.input_names(), tensors)))
        return tuple(out[t] for t in self.model.tasks)


def _flat(batch, model):
    return tuple(batch[n] for n in model.input_names())


def _ragged_batch(samples, streams, idx, cut: dict[str, int]):
    """A batch whose streams are padded to different lengths (cut[s] events), one row empty everywhere."""
    b = batch_of(samples, streams, idx)
    for s in streams:
        t = cut[s]
        b[s] = b[s][:, :t].contiguous()
        b[f"{s}_age"] = b[f"{s}_age"][:, :t].contiguous()
        b[f"{s}_len"] = b[f"{s}_len"].clamp(max=t)
        b[f"{s}_len"][1] = 0
    return b


def test_trace_has_no_baked_shapes(data):
    spec, samples = data
    m = make(spec)
    w = _Flat(m).eval()
    ex = _ragged_batch(samples, m.streams, range(8), {"gesture": 30, "click": 12, "cloud": 9})
    with torch.no_grad():
        traced = torch.jit.trace(w, _flat(ex, m), check_trace=False)
        other = _ragged_batch(samples, m.streams, range(40, 45), {"gesture": 17, "click": 20, "cloud": 4})
        got = traced(*_flat(other, m))
        want = m(other)
    for g, t in zip(got, m.tasks):
        assert g.shape == (5,)
        torch.testing.assert_close(g, want[t], rtol=0, atol=1e-6)


@pytest.mark.parametrize("response", ["input", "monotone", "monotone-only"])
def test_onnx_export_matches_onnxruntime(data, tmp_path, response):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    spec, samples = data
    m = make(spec, coupon_response=response)
    w = _Flat(m).eval()
    streams = m.streams
    names = m.input_names()
    axes = {}
    for s in streams:
        axes[s] = axes[f"{s}_age"] = {0: "batch", 1: f"{s}_steps"}
        axes[f"{s}_len"] = {0: "batch"}
    axes["coupon"] = {0: "batch"}
    axes.update({t: {0: "batch"} for t in m.tasks})
    ex = _ragged_batch(samples, streams, range(8), {"gesture": 30, "click": 12, "cloud": 9})
    path = tmp_path / "iidn.onnx"
    with torch.no_grad():
        torch.onnx.export(w, _flat(ex, m), str(path), input_names=names, output_names=list(m.tasks),
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    other = _ragged_batch(samples, streams, range(100, 113), {"gesture": 41, "click": 5, "cloud": 20})
    other["coupon"][:4] = torch.tensor([0.0, 7.0, 20.0, 33.0])
    feeds = {n: t.numpy() for n, t in zip(names, _flat(other, m))}
    got = sess.run(list(m.tasks), feeds)
    with torch.no_grad():
        want = m(other)
    for g, t in zip(got, m.tasks):
        assert g.shape == (13,)
        np.testing.assert_allclose(g, want[t].numpy(), rtol=0, atol=1e-5)


def test_bundles_without_coupon_response_load_as_the_papers_model(data):
    """A bundle written before ``coupon_response`` and ``cross_time`` existed rebuilds the model it was
    trained with; weights that do not fit the configured model are a one-line BundleError, not a torch
    traceback."""
    from types import SimpleNamespace

    from edgeintent.errors import BundleError
    from edgeintent.toolkit.models import model_config, rebuild_model
    from edgeintent.toolkit.bundle import load_model
    from edgeintent.toolkit.training.trainer import model_weights

    spec, _ = data
    old = make(spec, coupon_response="input", cross_time=False)
    old.registry_name = "iidn"
    cfg = model_config(old)
    del cfg["coupon_response"], cfg["cross_time"]
    assert rebuild_model(cfg, spec).hparams["coupon_response"] == "input"
    assert rebuild_model(cfg, spec).input_names() == old.input_names()  # no event ages: the old exports' inputs
    bundle = SimpleNamespace(config={"model": cfg}, spec=spec, weights=model_weights(old), path="b")
    assert load_model(bundle).hparams["coupon_response"] == "input"
    bundle.config["model"] = {**cfg, "coupon_response": "monotone"}
    with pytest.raises(BundleError, match=r"^b: the weights do not fit model 'iidn'.*head_e") as err:
        load_model(bundle)
    assert "\n" not in str(err.value)


def test_cross_time_reads_when_the_other_streams_events_happened(data):
    """With ``cross_time`` the output depends on the time between streams' events (shift one stream's
    ages and it moves); without it, and for a single stream, ages are not read at all."""
    spec, samples = data
    idx = [i for i in range(len(samples)) if min(samples.length[s][i] for s in spec.streams) > 2][:16]
    b = batch_of(samples, spec.streams, idx)
    shifted = dict(b, click_age=torch.log1p(torch.expm1(b["click_age"]) + 3.0) * (b["click_age"] != 0))  # clicks 3 s earlier
    m = make(spec)
    assert m.use_cross and [n for n in m.input_names() if n.endswith("_age")] == [f"{s}_age" for s in spec.streams]
    with torch.no_grad():
        a, z = m(b), m(shifted)
    assert (a["buy_rt"] - z["buy_rt"]).abs().max() > 1e-4
    for other in (make(spec, cross_time=False), make(spec, streams=("click",))):
        assert not any(n.endswith("_age") for n in other.input_names())
        with torch.no_grad():
            torch.testing.assert_close(other(b)["buy_rt"], other(shifted)["buy_rt"], rtol=0, atol=0)
