"""MTAW (docs/models.md): ITL/IEL equations by hand, causal and padding
masks, scaled-cosine scores, the AW loss, gradients, learning, config checks."""

import logging
import math
import re
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction

from recbole_selfattn.config import Config
from recbole_selfattn.errors import ConfigError
from recbole_selfattn.model.mtaw import MTAW, AWLoss
from recbole_selfattn.quick_start import run
from recbole_selfattn.recommender import Recommender
from tests.conftest import tiny_config


def make_model(tmp_path, n_items=8, **overrides):
    """An MTAW built from the real config layering, for ``n_items`` item ids (0 = padding)."""
    params = {"dropout_prob": 0.0, "embedding_size": 8, "MAX_ITEM_LIST_LENGTH": 6, **overrides}
    config = Config("MTAW", "tiny", config_dict=tiny_config(tmp_path, **params), cmd_args=[])
    torch.manual_seed(0)
    return MTAW(config, SimpleNamespace(num=lambda field: n_items)).eval()


def batch(model, seqs, lengths, targets=None):
    data = {model.ITEM_SEQ: torch.tensor(seqs), model.ITEM_SEQ_LEN: torch.tensor(lengths)}
    if targets is not None:
        data[model.POS_ITEM_ID] = torch.tensor(targets)
    return Interaction(data)


def manual_attention(query, keys):
    """softmax(q k_j / sqrt(d)) summed over v_j = k_j, with explicit loops."""
    d = len(query)
    scores = [sum(q * k for q, k in zip(query, key)) / math.sqrt(d) for key in keys]
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    total = sum(weights)
    return [sum(w * key[i] for w, key in zip(weights, keys)) / total for i in range(d)]


def manual_linear(weight, bias, x):
    return [sum(w * v for w, v in zip(row, x)) + b for row, b in zip(weight, bias)]


def relu(x):
    return [max(v, 0.0) for v in x]


def layer_norm(x, gamma, beta):
    mean = sum(x) / len(x)
    var = sum((v - mean) ** 2 for v in x) / len(x)
    return [(v - mean) / math.sqrt(var + 1e-12) * g + b for v, g, b in zip(x, gamma, beta)]


def test_attention_layers_and_scores_match_hand_computation(tmp_path):
    """ITL, IEL and tau*cosine scores on a 3-dim example with fixed weights
    (identity query MLPs, hand-picked FFN/LayerNorm), against loops over the
    equations of docs/models.md."""
    d, T = 3, 4
    model = make_model(tmp_path, n_items=5, embedding_size=d, MAX_ITEM_LIST_LENGTH=T, scale=7.0).double()
    items = [[0, 0, 0], [0.5, -0.3, 0.8], [-0.4, 0.9, 0.2], [0.7, 0.1, -0.6], [0.3, 0.3, 0.3]]
    positions = [[0.1, 0.0, -0.1], [0.0, 0.2, 0.1], [-0.2, 0.1, 0.0], [0.05, -0.05, 0.3]]
    w1, b1 = [[0.5, -0.2, 0.1], [0.3, 0.4, -0.5], [-0.1, 0.2, 0.6]], [0.01, -0.02, 0.03]
    w2, b2 = [[0.2, 0.1, -0.3], [-0.4, 0.5, 0.2], [0.3, -0.1, 0.4]], [-0.05, 0.02, 0.0]
    gamma, beta = [1.5, 0.5, 1.0], [0.1, -0.2, 0.3]
    itl = model.itl_layers[0]
    with torch.no_grad():
        model.item_embedding.weight.copy_(torch.tensor(items))
        model.position_embedding.weight.copy_(torch.tensor(positions))
        for linear in (itl.query, model.iel_query):
            linear.weight.copy_(torch.eye(d))
            linear.bias.zero_()
        itl.ffn[0].weight.copy_(torch.tensor(w1))
        itl.ffn[0].bias.copy_(torch.tensor(b1))
        itl.ffn[2].weight.copy_(torch.tensor(w2))
        itl.ffn[2].bias.copy_(torch.tensor(b2))
        itl.layer_norm.weight.copy_(torch.tensor(gamma))
        itl.layer_norm.bias.copy_(torch.tensor(beta))
    seqs, lengths = [[1, 2, 3, 4], [3, 1, 0, 0]], [4, 2]
    interaction = batch(model, seqs, lengths)
    instant = model.interest_tracking(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    scores = model.full_sort_predict(interaction)

    for b, (seq, length) in enumerate(zip(seqs, lengths)):
        x = [[e + p for e, p in zip(items[i], positions[k])] for k, i in enumerate(seq[:length])]
        expected_l = []
        for t in range(length):
            attended = manual_attention(relu(x[t]), x[: t + 1])  # Q_x = ReLU(I x_t), prefix X'_t
            ffn = manual_linear(w2, b2, relu(manual_linear(w1, b1, attended)))
            expected_l.append(layer_norm([a + f for a, f in zip(attended, ffn)], gamma, beta))
        torch.testing.assert_close(instant[b, :length], torch.tensor(expected_l, dtype=torch.double), atol=1e-6, rtol=0)

        o = manual_attention(relu(expected_l[-1]), expected_l)  # Q_l = ReLU(I l_m) over L
        o_norm = math.sqrt(sum(v * v for v in o))
        expected_scores = [0.0] + [
            7.0 * sum(a * e for a, e in zip(o, item)) / (o_norm * math.sqrt(sum(e * e for e in item)))
            for item in items[1:]
        ]
        torch.testing.assert_close(scores[b], torch.tensor(expected_scores, dtype=torch.double), atol=1e-6, rtol=0)


def test_instant_interest_is_causal(tmp_path):
    """l_t depends on items 1..t only, through two stacked ITLs."""
    model = make_model(tmp_path, n_layers=2)
    a = batch(model, [[1, 2, 3, 4, 5, 6]], [6])
    b = batch(model, [[1, 2, 3, 7, 6, 2]], [6])
    la = model.interest_tracking(a[model.ITEM_SEQ], a[model.ITEM_SEQ_LEN])
    lb = model.interest_tracking(b[model.ITEM_SEQ], b[model.ITEM_SEQ_LEN])
    torch.testing.assert_close(la[:, :3], lb[:, :3], atol=1e-6, rtol=0)
    assert not torch.allclose(la[:, 3], lb[:, 3], atol=1e-4)


def test_padding_never_changes_outputs(tmp_path):
    """The same session padded to 4 or 10 positions, or with junk items after
    its length, gives the same representation and scores; a real item does not."""
    model = make_model(tmp_path, MAX_ITEM_LIST_LENGTH=10, n_layers=2)
    padded = [
        batch(model, [[3, 5, 7, 0]], [3]),
        batch(model, [[3, 5, 7] + [0] * 7], [3]),
        batch(model, [[3, 5, 7, 2, 6, 1, 4, 4, 2, 1]], [3]),
    ]
    reference = model.full_sort_predict(padded[0])
    for interaction in padded[1:]:
        torch.testing.assert_close(
            model(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]),
            model(padded[0][model.ITEM_SEQ], padded[0][model.ITEM_SEQ_LEN]),
            atol=1e-6,
            rtol=0,
        )
        torch.testing.assert_close(model.full_sort_predict(interaction), reference, atol=1e-6, rtol=0)
    longer = batch(model, [[3, 5, 7, 2, 6, 1, 4, 4, 2, 1]], [4])
    assert not torch.allclose(model.full_sort_predict(longer), reference, atol=1e-4)


def test_scores_are_scaled_cosines(tmp_path):
    """|score| <= scale for every item, predict agrees with full_sort_predict,
    and a score equals tau * cos(O, e_i) recomputed from the parts."""
    scale = 5.0
    model = make_model(tmp_path, n_items=20, scale=scale)
    with torch.no_grad():
        model.item_embedding.weight[1:].mul_(50.0)  # norms must not leak into the scores
    interaction = batch(model, [[4, 9, 2, 0, 0, 0], [1, 2, 3, 4, 5, 6]], [3, 6], targets=[7, 11])
    scores = model.full_sort_predict(interaction)
    assert scores.shape == (2, 20)
    assert scores.abs().max() <= scale + 1e-5
    assert torch.all(scores[:, 0] == 0)  # padding item: zero embedding
    torch.testing.assert_close(model.predict(interaction), scores[[0, 1], [7, 11]])
    o = model(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])[1]
    e = model.item_embedding.weight[11]
    assert scores[1, 11].item() == pytest.approx(scale * (o @ e / (o.norm() * e.norm())).item(), abs=1e-5)
    # the training loss is the AW loss of these scores over the real items 1..N-1
    expected_loss = AWLoss(model.aw_gamma)(scores[:, 1:], torch.tensor([7, 11]) - 1)
    torch.testing.assert_close(model.calculate_loss(interaction), expected_loss)


def test_aw_loss_hand_computed():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.2, -1.0, 3.0]])
    target = torch.tensor([0, 2])
    p0 = math.exp(1.0) / (math.exp(1.0) + math.exp(2.0) + math.exp(0.5))
    p1 = math.exp(3.0) / (math.exp(0.2) + math.exp(-1.0) + math.exp(3.0))
    for gamma in (0.0, 2.0, 6.0):
        expected = -((2 - 2 * p0) ** gamma * math.log(p0) + (2 - 2 * p1) ** gamma * math.log(p1)) / 2
        assert AWLoss(gamma)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_aw_gamma_zero_is_cross_entropy():
    torch.manual_seed(0)
    logits = (torch.randn(16, 40) * 3).requires_grad_()
    target = torch.randint(0, 40, (16,))
    aw = AWLoss(0.0)(logits, target)
    (aw_grad,) = torch.autograd.grad(aw, logits)
    ce = F.cross_entropy(logits, target)
    (ce_grad,) = torch.autograd.grad(ce, logits)
    assert torch.allclose(aw, ce, rtol=1e-6, atol=1e-7)
    assert torch.allclose(aw_grad, ce_grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("gamma", [1.0, 2.0, 6.0])
def test_aw_loss_weights_hard_samples_more(gamma):
    """d loss / d z_target relative to cross-entropy's is
    (2-2p)^(gamma-1) * ((2-2p) - 2 gamma p log p): above 1 for a hard sample,
    below 1 for an easy one."""
    ratios = {}
    for name, true_logit in (("hard", -2.0), ("easy", 4.0)):
        logits = torch.tensor([[true_logit, 0.0, 0.5, -0.5]], dtype=torch.double, requires_grad=True)
        target = torch.tensor([0])
        (aw_grad,) = torch.autograd.grad(AWLoss(gamma)(logits, target), logits)
        (ce_grad,) = torch.autograd.grad(F.cross_entropy(logits, target), logits)
        p = torch.softmax(logits, -1)[0, 0].item()
        ratio = (aw_grad[0, 0] / ce_grad[0, 0]).item()
        assert ratio == pytest.approx((2 - 2 * p) ** (gamma - 1) * ((2 - 2 * p) - 2 * gamma * p * math.log(p)), rel=1e-9)
        ratios[name] = ratio
    assert ratios["hard"] > 1 > ratios["easy"]


@pytest.mark.parametrize("gamma", [0.0, 2.0, 6.0])
def test_aw_loss_finite_for_extreme_logits(gamma):
    logits = torch.tensor(
        [[1e4, -1e4, -1e4], [-1e4, 1e4, -1e4], [1e4, 1e4, -1e4], [0.0, -1e4, 1e4]], requires_grad=True
    )
    target = torch.tensor([0, 0, 0, 1])
    per_sample = [AWLoss(gamma)(logits[i : i + 1], target[i : i + 1]) for i in range(4)]
    loss = AWLoss(gamma)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert per_sample[0].item() == 0.0  # p = 1: nothing to learn
    assert per_sample[1].item() == pytest.approx(2**gamma * 2e4, rel=1e-6)  # p = e^-2e4, weight 2^gamma
    assert per_sample[2].item() == pytest.approx(math.log(2), abs=2e-3)  # p = 1/2, weight 1 (float32 at 1e4)
    assert per_sample[3].item() == pytest.approx(2**gamma * 2e4, rel=1e-6)


def test_gradients_reach_embeddings_and_queries_but_not_padding(tmp_path):
    model = make_model(tmp_path, MAX_ITEM_LIST_LENGTH=6).train()
    interaction = batch(model, [[1, 2, 3, 0, 0, 0], [4, 5, 0, 0, 0, 0]], [3, 2], targets=[4, 6])
    model.calculate_loss(interaction).backward()
    for name in ("item_embedding", "position_embedding", "itl_layers.0.query", "iel_query"):
        grad = dict(model.named_parameters())[f"{name}.weight"].grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert torch.all(model.item_embedding.weight.grad[0] == 0)  # padding item
    assert torch.all(model.position_embedding.weight.grad[3:] == 0)  # positions only padding occupies


def test_learns_cyclic_rule(tiny_data):
    """60 users walk a ring of 30 items (item i is followed by i+1). At test
    time the 11 history items are masked, so a random ranker puts the target
    uniformly among 19 candidates: NDCG@10 = sum_{r<=10} 1/log2(r+1) / 19 = 0.239.
    A window of 5 keeps every position trained as the last one. When this
    test was written MTAW reached test NDCG@10 1.0 (best validation epoch 11)."""
    random_ndcg = sum(1 / math.log2(r + 1) for r in range(1, 11)) / 19
    config = tiny_config(
        tiny_data, epochs=15, learning_rate=0.01, embedding_size=16, dropout_prob=0.0, MAX_ITEM_LIST_LENGTH=5
    )
    result = run("MTAW", "tiny", config_dict=config, cmd_args=[])
    ndcg = result["test_result"]["ndcg@10"]
    assert ndcg > 3 * random_ndcg, (ndcg, random_ndcg)


@pytest.mark.parametrize(
    "key, value",
    [("aw_gamma", -0.5), ("scale", 0.0), ("scale", -3.0), ("n_layers", 0), ("dropout_prob", 1.0), ("dropout_prob", -0.1)],
)
def test_bad_hyper_parameters_are_rejected(tmp_path, key, value):
    with pytest.raises(ConfigError, match=key):
        make_model(tmp_path, **{key: value})


def test_run_rejects_bad_hyper_parameter(tiny_data):
    with pytest.raises(ConfigError, match="aw_gamma"):
        run("MTAW", "tiny", config_dict=tiny_config(tiny_data, aw_gamma=-1), cmd_args=[])


# ---------------------------------------------------------------- fast path = plain computation


def plain_aw_loss(logits, target, gamma):
    """The AW loss as first written: log(1 - p) from a second log-sum-exp over the
    other items (the model computes it from log p alone, in one pass)."""
    log_z = torch.logsumexp(logits, dim=-1)
    log_p = logits.gather(-1, target.unsqueeze(-1)).squeeze(-1) - log_z
    others = logits.scatter(-1, target.unsqueeze(-1), float("-inf"))
    log_1mp = torch.logsumexp(others, dim=-1) - log_z
    return -(torch.exp(gamma * (math.log(2.0) + log_1mp)) * log_p).mean()


def plain_forward(model, item_seq, item_seq_len):
    """MTAW's O over all MAX_ITEM_LIST_LENGTH positions (the model first cuts the
    padding after the batch's longest session)."""
    instant = model.interest_tracking(item_seq, item_seq_len)
    last = model.gather_indexes(instant, item_seq_len - 1)
    query = F.relu(model.iel_query(last)).unsqueeze(1)
    valid = (torch.arange(item_seq.size(1)).unsqueeze(0) < item_seq_len.unsqueeze(1)).unsqueeze(1)
    return F.scaled_dot_product_attention(query, instant, instant, attn_mask=valid).squeeze(1)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 6.0])
@pytest.mark.parametrize("full_length", [False, True])
def test_fast_path_equals_plain_computation(tmp_path, gamma, full_length):
    """Loss, every gradient and full_sort_predict of the model (padding cut to the
    longest session, one-pass AW loss) equal the plain computation (all 8 positions,
    two log-sum-exps), on padded sessions with or without one at the full length.
    Junk ids after a session's length must not matter either."""
    model = make_model(tmp_path, n_items=30, MAX_ITEM_LIST_LENGTH=8, n_layers=2, aw_gamma=gamma, scale=6.0)
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([5, 1, 3, 8 if full_length else 4, 2])
    seqs = torch.randint(1, 30, (5, 8), generator=g)
    seqs[0, 5:] = 0
    seqs[1:, :][torch.arange(8).unsqueeze(0) >= lengths[1:].unsqueeze(1)] = 0
    seqs[0, 6] = 17  # a junk id after the first session's end
    interaction = batch(model, seqs.tolist(), lengths.tolist(), targets=[3, 29, 1, 7, 12])

    loss = model.calculate_loss(interaction)
    fast_grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    seq, seq_len = interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]
    o = F.normalize(plain_forward(model, seq, seq_len), dim=-1)
    items = F.normalize(model.item_embedding.weight, dim=-1)
    plain = plain_aw_loss(model.scale * o @ items[1:].t(), interaction[model.POS_ITEM_ID] - 1, gamma)
    plain_grads = torch.autograd.grad(plain, list(model.parameters()), allow_unused=True)

    torch.testing.assert_close(loss, plain, atol=1e-5, rtol=1e-5)
    for (name, _), fast_grad, plain_grad in zip(model.named_parameters(), fast_grads, plain_grads):
        if plain_grad is None:
            assert fast_grad is None or torch.all(fast_grad == 0), name
            continue
        # float32 tolerance relative to the gradient's size (the normalised embeddings,
        # std 0.02, get gradients in the hundreds)
        scale = max(1.0, plain_grad.abs().max().item())
        assert (fast_grad - plain_grad).abs().max().item() <= 1e-5 * scale, name
    scores = model.full_sort_predict(interaction)
    torch.testing.assert_close(scores, model.scale * o @ items.t(), atol=1e-5, rtol=1e-5)
    assert scores.shape == (5, 30)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_aw_loss_equals_plain_two_pass_form(gamma):
    """The one-pass AW loss and its gradient equal the two-log-sum-exp form, from
    p close to 0 to p close to 1, in float64."""
    torch.manual_seed(0)
    logits = (torch.randn(64, 500, dtype=torch.double) * torch.logspace(-1, 1.5, 64, dtype=torch.double)[:, None])
    logits.requires_grad_()
    target = logits.detach().argmax(1).where(torch.arange(64) % 2 == 0, torch.randint(0, 500, (64,)))
    fast, plain = AWLoss(gamma)(logits, target), plain_aw_loss(logits, target, gamma)
    (fast_grad,), (plain_grad,) = torch.autograd.grad(fast, logits), torch.autograd.grad(plain, logits)
    p = logits.softmax(1).gather(1, target[:, None])
    assert p.min() < 1e-6 and p.max() > 1 - 1e-6  # both ends are covered
    torch.testing.assert_close(fast, plain, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(fast_grad, plain_grad, atol=1e-12, rtol=1e-9)


# ---------------------------------------------------------------- AW statistics and the learned scale


def test_aw_statistics_hand_computed(tmp_path):
    """Over the training batches since the last call: the mean AW weight
    (2 - 2p)^gamma and the share of samples with p > 0.5 (weight below 1),
    summed over two batches; nothing in eval mode; a call starts afresh."""
    loss = AWLoss(2.0).train()
    first = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    second = torch.tensor([[0.0, 0.0, 2.0]])
    loss(first, torch.tensor([0, 0]))
    loss(second, torch.tensor([2]))
    loss.eval()(second, torch.tensor([0]))  # not counted
    p = [math.exp(3) / (math.exp(3) + 2), 1 / (2 + math.e), math.exp(2) / (math.exp(2) + 2)]  # 0.91, 0.21, 0.79
    statistics = loss.statistics()
    assert statistics["aw_mean_weight"] == pytest.approx(sum((2 - 2 * q) ** 2 for q in p) / 3, rel=1e-6)
    assert statistics["aw_easy_share"] == pytest.approx(2 / 3)
    assert loss.statistics() == {}

    # the model reports what its AW loss saw on its own scores
    model = make_model(tmp_path, n_items=20, scale=12.0).train()  # dropout 0: train scores = eval scores
    interaction = batch(model, [[4, 9, 2, 0, 0, 0], [1, 2, 3, 4, 5, 6], [7, 7, 0, 0, 0, 0]], [3, 6, 2], targets=[7, 11, 3])
    with torch.no_grad():  # make sample 1's target the closest item: p > 0.5 at tau 12
        o = model(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
        model.item_embedding.weight[11] = o[1]
    model.calculate_loss(interaction)
    p = model.full_sort_predict(interaction)[:, 1:].softmax(-1)[[0, 1, 2], [6, 10, 2]]
    assert p[1] > 0.5 > max(p[0], p[2])
    assert model.epoch_statistics() == pytest.approx(
        {"aw_mean_weight": ((2 - 2 * p) ** 2).mean().item(), "aw_easy_share": 1 / 3}, rel=1e-5
    )
    assert model.epoch_statistics() == {}


def train_loss_lines(caplog):
    """The logged ``epoch N training [...]`` lines, without colour codes."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", r.getMessage()) for r in caplog.records]
    return [line for line in lines if "training [" in line]


def test_trainer_logs_model_statistics_each_epoch(tiny_data, caplog):
    """The trainer appends the model's epoch_statistics() to each epoch's
    train-loss line and keeps them in run()'s result; models without the
    method log the usual line."""
    caplog.set_level(logging.INFO)
    result = run("MTAW", "tiny", config_dict=tiny_config(tiny_data, epochs=2, state="INFO"), cmd_args=[])
    lines = train_loss_lines(caplog)
    assert len(lines) == 2 and all("aw_mean_weight" in line and "aw_easy_share" in line for line in lines)
    assert len(result["epoch_statistics"]) == 2
    for statistics in result["epoch_statistics"]:
        assert set(statistics) == {"aw_mean_weight", "aw_easy_share"}
        assert 0 < statistics["aw_mean_weight"] <= 4 and 0 <= statistics["aw_easy_share"] <= 1
    for line, statistics in zip(lines, result["epoch_statistics"]):
        assert line.endswith(
            f", aw_mean_weight: {statistics['aw_mean_weight']:.4f}, aw_easy_share: {statistics['aw_easy_share']:.4f}]"
        )
    caplog.clear()
    result = run("GRU4Rec", "tiny", config_dict=tiny_config(tiny_data, state="INFO", checkpoint_dir="gru"), cmd_args=[])
    assert result["epoch_statistics"] == [{}]
    (line,) = train_loss_lines(caplog)
    assert line.endswith("]") and "aw_" not in line


def test_fixed_scale_adds_no_parameter(tmp_path):
    """learn_scale False (the default) is the fixed-tau model: the same
    parameters as before the option existed and scores tau * cos."""
    model = make_model(tmp_path, n_items=20, scale=5.0)
    assert model.learn_scale is False
    assert not any("scale" in key for key in model.state_dict())
    interaction = batch(model, [[4, 9, 2, 0, 0, 0]], [3], targets=[7])
    o = F.normalize(model(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]), dim=-1)
    expected = 5.0 * o @ F.normalize(model.item_embedding.weight, dim=-1).t()
    torch.testing.assert_close(model.full_sort_predict(interaction), expected, atol=0, rtol=0)


def test_learned_scale_trains_stays_positive_and_is_checkpointed(tiny_data):
    """learn_scale: tau = exp(log_scale) starts at scale, gets a gradient,
    moves with an Adam step, stays > 0, scales training and prediction
    scores, and a saved run's checkpoint holds the learned value."""
    model = make_model(tiny_data, n_items=20, scale=4.0, learn_scale=True).train()
    assert model.tau().item() == pytest.approx(4.0)
    assert model.epoch_statistics() == {"scale": pytest.approx(4.0)}
    interaction = batch(model, [[4, 9, 2, 0, 0, 0], [1, 2, 3, 4, 5, 6]], [3, 6], targets=[7, 11])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.5)
    model.calculate_loss(interaction).backward()
    assert model.log_scale.grad is not None and model.log_scale.grad.item() != 0
    optimizer.step()
    tau = model.tau().item()
    assert tau > 0 and abs(tau - 4.0) > 0.1
    o = F.normalize(model(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]), dim=-1)
    expected = tau * o @ F.normalize(model.item_embedding.weight, dim=-1).t()
    torch.testing.assert_close(model.full_sort_predict(interaction), expected)
    torch.testing.assert_close(model.predict(interaction), expected[[0, 1], [7, 11]])

    config = tiny_config(tiny_data, epochs=2, learning_rate=0.05, scale=4.0, learn_scale=True, eval_step=0)
    result = run("MTAW", "tiny", config_dict=config, cmd_args=[])
    learned = [statistics["scale"] for statistics in result["epoch_statistics"]]
    assert learned[-1] != pytest.approx(4.0, abs=1e-3)
    restored = Recommender(result["model_file"]).model
    assert restored.tau().item() == pytest.approx(learned[-1], rel=1e-6)


@pytest.mark.parametrize("n_items, tau, expected", [(3124, 4.0, 0.015), (3124, 8.0, 0.367), (3124, 12.0, 0.945)])
def test_aligned_target_probability_at_ml1m_size(tmp_path, n_items, tau, expected):
    """The docstring's table (ml-1m row, d 64): p of a target at cosine 1
    against the model's random item vectors, averaged over 50 targets."""
    model = make_model(tmp_path, n_items=n_items, embedding_size=64, scale=tau)
    items = model.item_embedding.weight[1:].detach()
    targets = torch.arange(0, n_items - 1, (n_items - 1) // 50)[:50]
    with torch.no_grad():
        p = model._scores(items[targets], items).softmax(-1).gather(1, targets[:, None])
    assert p.mean().item() == pytest.approx(expected, abs=0.01)
