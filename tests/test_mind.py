"""MIND (docs/models.md): B2I routing by hand, squash, routing-logit
gradients and state, padding, adaptive K, label-aware attention, the max over
valid interests, learning on a two-interest dataset, config checks."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
import yaml
from recbole.data.interaction import Interaction

from recbole_selfattn.config import Config, properties_dir
from recbole_selfattn.errors import ConfigError
from recbole_selfattn.model.mind import MIND
from recbole_selfattn.model.routing import squash
from recbole_selfattn.quick_start import run
from tests.conftest import tiny_config, write_inter

N_ITEMS = 10  # item ids 0..9, 0 = padding
UNIFORM_NEGATIVES = {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}}  # what BPR needs


def make_config(tmp_path, **overrides):
    # the paper's scores (dot x 1), which the hand computations below follow; the shipped default is cosine x 20
    params = {"embedding_size": 2, "MAX_ITEM_LIST_LENGTH": 6, "score_type": "dot", "score_scale": 1.0, **overrides}
    return Config("MIND", "tiny", config_dict=tiny_config(tmp_path, **params), cmd_args=[])


def make_model(tmp_path, n_items=N_ITEMS, **overrides):
    """A MIND built from the real config layering, for ``n_items`` item ids (0 = padding)."""
    config = make_config(tmp_path, **overrides)
    torch.manual_seed(0)
    return MIND(config, SimpleNamespace(num=lambda field: n_items)).eval()


def batch(model, seqs, lengths, targets=None, negatives=None):
    data = {model.ITEM_SEQ: torch.tensor(seqs), model.ITEM_SEQ_LEN: torch.tensor(lengths)}
    if targets is not None:
        data[model.POS_ITEM_ID] = torch.tensor(targets)
    if negatives is not None:
        data[model.NEG_ITEM_ID] = torch.tensor(negatives)
    return Interaction(data)


def set_weights(model, embeddings, S):
    """Item ``i`` gets ``embeddings[i - 1]``; every other row (padding included) a
    large vector that would show up in any output it leaked into."""
    with torch.no_grad():
        model.item_embedding.weight.fill_(7.0)
        model.item_embedding.weight[1 : len(embeddings) + 1] = torch.tensor(embeddings)
        model.S.copy_(torch.tensor(S))


def inject_logits(monkeypatch, model, logits):
    """Replace the random initial routing logits by ``logits`` ([B, L, K]); like the real
    draws, a call for ``l`` positions gets the first ``l`` of them."""
    logits = torch.tensor(logits)
    monkeypatch.setattr(model, "_initial_logits", lambda b, l, device: logits[:, :l].clone())


# ---------------------------------------------------------------- property file


def test_property_file_defaults_are_loaded(tmp_path):
    keys = yaml.safe_load(open(properties_dir() / "model" / "MIND.yaml"))
    expected = {
        "embedding_size": 64, "interest_num": 4, "routing_iters": 3, "pow_p": 2, "dynamic_k": True,
        "routing_sigma": 1.0, "routing_softmax": "interests", "interest_mlp": False, "loss_type": "CE",
        "routing_init_eval": "fixed",
    }
    assert {k: keys[k] for k in expected} == expected
    config = Config("MIND", "tiny", config_dict={"data_path": str(tmp_path)}, cmd_args=[])
    assert {k: config[k] for k in expected} == expected
    assert config["train_neg_sample_args"]["distribution"] == "none"  # CE: no sampled negatives


# ---------------------------------------------------------------- squash


def test_squash_shrinks_norm_and_keeps_direction():
    u = squash(torch.tensor([[3.0, 4.0]]))
    assert u.norm().item() == pytest.approx(25 / 26, abs=1e-6)  # ||z||^2 / (1 + ||z||^2) = 25/26
    assert torch.allclose(u, torch.tensor([[0.6, 0.8]]) * 25 / 26, atol=1e-6)
    torch.manual_seed(1)
    z = torch.randn(50, 5) * torch.logspace(-2, 2, 50).unsqueeze(1)
    u = squash(z)
    assert (u.norm(dim=1) < 1).all()
    assert torch.allclose(F.cosine_similarity(u, z, dim=1), torch.ones(50), atol=1e-5)
    n2 = z.pow(2).sum(1)
    assert torch.allclose(u.norm(dim=1), n2 / (1 + n2), rtol=1e-5)
    zero = torch.zeros(1, 3, requires_grad=True)
    squash(zero).sum().backward()
    assert torch.equal(squash(zero.detach()), torch.zeros(1, 3)) and torch.isfinite(zero.grad).all()


# ---------------------------------------------------------------- routing by hand


def manual_routing(items, S, logits, iters, over_items, alpha=1.0):
    """Algorithm 1 with explicit loops: items c_i (2-d lists), S (2x2), logits b[i][j],
    the update b_ij += alpha u_j . S c_i. Returns the capsules u_j and the last weights w_ij."""
    low = [[sum(S[r][c] * x[c] for c in range(2)) for r in range(2)] for x in items]  # S c_i
    b = [row[:] for row in logits]
    n, k = len(items), len(logits[0])
    for _ in range(iters):
        if over_items:
            norm = [sum(math.exp(b[m][j]) for m in range(n)) for j in range(k)]  # per interest
            w = [[math.exp(b[i][j]) / norm[j] for j in range(k)] for i in range(n)]
        else:
            norm = [sum(math.exp(b[i][m]) for m in range(k)) for i in range(n)]  # per item
            w = [[math.exp(b[i][j]) / norm[i] for j in range(k)] for i in range(n)]
        u = []
        for j in range(k):
            z = [sum(w[i][j] * low[i][r] for i in range(n)) for r in range(2)]
            n2 = z[0] ** 2 + z[1] ** 2
            u.append([n2 / (1 + n2) * zr / math.sqrt(n2) for zr in z])
        b = [[b[i][j] + alpha * sum(u[j][r] * low[i][r] for r in range(2)) for j in range(k)] for i in range(n)]
    return u, w


@pytest.mark.parametrize("routing_softmax", ["interests", "items"])
@pytest.mark.parametrize("iters", [1, 2])
def test_routing_matches_hand_computation(tmp_path, monkeypatch, routing_softmax, iters):
    """2 items, 2 interests, d = 2, a non-symmetric S and fixed logits; the padded
    third position (embedding 7s, logits 5) must contribute nothing."""
    items = [[1.0, 0.5], [-0.5, 1.0]]
    S = [[1.0, 2.0], [0.5, -1.0]]
    logits = [[0.3, -0.2], [0.1, 0.4]]
    model = make_model(
        tmp_path, interest_num=2, routing_iters=iters, dynamic_k=False, routing_softmax=routing_softmax
    )
    set_weights(model, items, S)
    inject_logits(monkeypatch, model, [logits + [[5.0, -5.0]]])
    interests, mask = model.forward(torch.tensor([[1, 2, 0]]), torch.tensor([2]))
    expected, _ = manual_routing(items, S, logits, iters, routing_softmax == "items")
    assert mask.tolist() == [[True, True]]
    assert torch.allclose(interests[0], torch.tensor(expected), atol=1e-6)


def test_interest_mlp_is_a_relu_layer_over_the_capsules(tmp_path, monkeypatch):
    items, S, logits = [[1.0, 0.5], [-0.5, 1.0]], [[1.0, 2.0], [0.5, -1.0]], [[0.3, -0.2], [0.1, 0.4]]
    weight, bias = torch.tensor([[1.0, -1.0], [-2.0, 0.5]]), torch.tensor([0.1, -0.1])
    model = make_model(tmp_path, interest_num=2, routing_iters=1, dynamic_k=False, interest_mlp=True)
    set_weights(model, items, S)
    inject_logits(monkeypatch, model, [logits])
    with torch.no_grad():
        model.interest_layer[0].weight.copy_(weight)
        model.interest_layer[0].bias.copy_(bias)
    interests, _ = model.forward(torch.tensor([[1, 2]]), torch.tensor([2]))
    u = torch.tensor(manual_routing(items, S, logits, 1, False)[0])
    expected = torch.relu(u @ weight.t() + bias)
    assert torch.allclose(interests[0], expected, atol=1e-6)
    assert (expected == 0).any() and (expected > 0).any()  # the ReLU matters in this example


# ---------------------------------------------------------------- gradients and state


def reference_routing(low, b0, iters, detach_updates):
    """Routing over interests on the [L, d] capsules S c_i, with or without gradient through b."""
    b = b0
    for _ in range(iters):
        w = b.softmax(dim=1)
        z = w.t() @ low
        n2 = z.pow(2).sum(1, keepdim=True)
        u = n2 / (1 + n2) / torch.sqrt(n2 + 1e-9) * z
        delta = low @ u.t()
        b = b + (delta.detach() if detach_updates else delta)
    return u


@pytest.mark.parametrize("stop_grad", [True, False])
def test_S_is_trained_and_routing_logits_carry_no_gradient(tmp_path, monkeypatch, stop_grad):
    """The drawn logits are outside the graph; with routing_stop_grad (the default) dS is
    the one with the logit updates treated as constants, without it the one through them."""
    model = make_model(tmp_path, embedding_size=4, interest_num=3, dynamic_k=False, routing_stop_grad=stop_grad)
    model.train()
    interaction = batch(model, [[1, 2, 3, 4, 0, 0], [5, 6, 7, 0, 0, 0]], [4, 3], targets=[5, 8])
    assert isinstance(model.S, torch.nn.Parameter)
    model.calculate_loss(interaction).backward()
    assert model.S.grad is not None and model.S.grad.abs().sum() > 0
    assert model.item_embedding.weight.grad[1:8].abs().sum(1).gt(0).all()

    # the drawn logits are plain tensors, outside the graph
    drawn = []
    original = model._initial_logits

    def spy(*args):
        drawn.append(original(*args))
        return drawn[-1]

    monkeypatch.setattr(model, "_initial_logits", spy)
    model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    assert drawn and not drawn[0].requires_grad and drawn[0].grad_fn is None

    # dS of the interests equals the one with b's updates treated as constants, or through them
    torch.manual_seed(3)
    b0 = torch.randn(1, 4, 3)
    inject_logits(monkeypatch, model, b0.tolist())
    model.zero_grad()
    seq, weights = torch.tensor([[1, 2, 3, 4]]), torch.randn(3, 4)
    interests, _ = model.forward(seq, torch.tensor([4]))
    (interests[0] * weights).sum().backward()
    grads = {}
    for detach in (True, False):
        S = model.S.detach().clone().requires_grad_(True)
        low = model.item_embedding.weight[1:5].detach() @ S.t()
        u = reference_routing(low, b0[0], model.routing_iters, detach)
        assert torch.allclose(u, interests[0].detach(), atol=1e-6)
        (grads[detach],) = torch.autograd.grad((u * weights).sum(), S)
    assert torch.allclose(model.S.grad, grads[stop_grad], atol=1e-6)
    assert not torch.allclose(grads[True], grads[False], atol=1e-4)


def test_routing_logits_are_fresh_per_call_and_never_kept(tmp_path):
    """The paper's random routing start, at prediction too with routing_init_eval: random."""
    model = make_model(tmp_path, embedding_size=4, MAX_ITEM_LIST_LENGTH=5, routing_init_eval="random")
    user = batch(model, [[1, 2, 3, 4, 5]], [5])
    batch_a = batch(model, [[1, 1, 2, 0, 0], [3, 0, 0, 0, 0]], [3, 1], targets=[4, 5])
    batch_b = batch(model, [[9, 8, 7, 6, 5], [6, 7, 8, 9, 0]], [5, 4], targets=[1, 2])
    attributes, state = set(vars(model)), {k: v.clone() for k, v in model.state_dict().items()}

    outputs = []
    for previous in (batch_a, batch_b):
        torch.manual_seed(11)
        model.full_sort_predict(previous)
        model.train()
        model.calculate_loss(previous)  # a training forward in between as well
        model.eval()
        outputs.append(model.full_sort_predict(user))
    assert torch.equal(outputs[0], outputs[1])  # nothing of batch A or B reached the user
    assert set(vars(model)) == attributes and not list(model.buffers())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())

    torch.manual_seed(5)
    first, second = model.full_sort_predict(user), model.full_sort_predict(user)
    assert not torch.allclose(first, second)  # new draws on every call
    torch.manual_seed(5)
    assert torch.equal(model.full_sort_predict(user), first)  # reproducible under the seed


LOSS_BEFORE_ROUTING_INIT_EVAL = 2.1224021911621094  # the loss below under seed 11, by the code of commit 10e322c


def test_training_draws_fresh_logits_from_the_global_rng(tmp_path):
    """Training routing is the paper's: b_ij ~ N(0, sigma^2) from torch's global RNG,
    the loss under a seed is the one before routing_init_eval existed, and an
    evaluation in between (fixed start) changes nothing of it."""
    model = make_model(tmp_path, embedding_size=4, MAX_ITEM_LIST_LENGTH=6, routing_sigma=0.5).train()
    torch.manual_seed(3)
    drawn = model._initial_logits(2, 4, torch.device("cpu"))
    torch.manual_seed(3)
    assert torch.equal(drawn, torch.randn(2, 6, 4)[:, :4] * 0.5)

    model = make_model(tmp_path, embedding_size=4, MAX_ITEM_LIST_LENGTH=6)
    interaction = batch(model, [[1, 2, 3, 4, 5, 0], [5, 6, 0, 0, 0, 0]], [5, 2], targets=[7, 8])
    for evaluate_first in (False, True):
        torch.manual_seed(11)
        if evaluate_first:
            model.eval().full_sort_predict(interaction)
        loss = model.train().calculate_loss(interaction)
        assert loss.item() == pytest.approx(LOSS_BEFORE_ROUTING_INIT_EVAL, abs=1e-6)


def test_fixed_eval_routing_is_deterministic(tmp_path):
    """routing_init_eval: fixed (default) gives the same scores whatever the global RNG
    state, consumes none of it, gives a sequence the same scores in any batch, and
    keeps the interests distinct; random draws differ between evaluations."""
    seqs = [[1, 2, 3, 4, 5, 6], [2, 3, 4, 0, 0, 0]]
    model = make_model(tmp_path, embedding_size=4, MAX_ITEM_LIST_LENGTH=6)
    interaction = batch(model, seqs, [6, 3])
    pairs = batch(model, seqs, [6, 3])
    pairs[model.ITEM_ID] = torch.tensor([7, 8])
    torch.manual_seed(1)
    state = torch.get_rng_state()
    first, first_pairs = model.full_sort_predict(interaction), model.predict(pairs)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is not consumed
    torch.manual_seed(2)
    torch.randn(100)
    assert torch.equal(model.full_sort_predict(interaction), first)
    assert torch.equal(model.predict(pairs), first_pairs)
    alone = model.full_sort_predict(batch(model, [seqs[1]], [3]))
    torch.testing.assert_close(alone[0], first[1], atol=1e-6, rtol=0)
    interests, mask = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    valid = F.normalize(interests[0, mask[0]], dim=-1)  # K' = 2
    assert (valid @ valid.t())[0, 1] < 0.999  # not collapsed into one vector

    random = make_model(tmp_path, embedding_size=4, MAX_ITEM_LIST_LENGTH=6, routing_init_eval="random")
    torch.manual_seed(1)
    draw = random.full_sort_predict(interaction)
    torch.manual_seed(2)
    assert not torch.allclose(random.full_sort_predict(interaction), draw)


# ---------------------------------------------------------------- padding


@pytest.mark.parametrize("routing_softmax", ["interests", "items"])
def test_padding_changes_nothing(tmp_path, routing_softmax):
    """The same histories padded to length 6 and 9 (padding embedding set to 7s)
    give identical interests and scores under the same seed: padded items are
    masked, and the real items' logit draws do not depend on the padded length."""
    model = make_model(tmp_path, embedding_size=4, MAX_ITEM_LIST_LENGTH=9, routing_softmax=routing_softmax)
    with torch.no_grad():
        model.item_embedding.weight[0] = 7.0
    histories = [[3, 1], [4, 5, 6], [1, 2, 3, 9, 8]]
    outputs = []
    for length in (6, 9):
        padded = [h + [0] * (length - len(h)) for h in histories]
        interaction = batch(model, padded, [len(h) for h in histories])
        torch.manual_seed(2)
        interests, mask = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
        torch.manual_seed(2)
        outputs.append((interests, mask, model.full_sort_predict(interaction)))
    for first, second in zip(*outputs):
        assert torch.allclose(first, second, atol=1e-6)
    assert outputs[0][2].shape == (3, N_ITEMS)


# ---------------------------------------------------------------- adaptive K


def test_dynamic_interest_count(tmp_path):
    model = make_model(tmp_path, interest_num=4)
    lengths = torch.tensor([1, 2, 3, 4, 7, 8, 15, 16, 100])
    expected = [1, 1, 1, 2, 2, 3, 3, 4, 4]  # max(1, min(4, floor(log2 n)))
    assert model.interest_mask(lengths).sum(1).tolist() == expected
    assert model.interest_mask(lengths).tolist() == [[j < k for j in range(4)] for k in expected]
    fixed = make_model(tmp_path, interest_num=4, dynamic_k=False)
    assert fixed.interest_mask(lengths).sum(1).tolist() == [4] * 9


def test_routing_runs_over_the_valid_interests_only(tmp_path, monkeypatch):
    """A 4-item history has K' = 2 of K = 4: its two interests equal those of a
    model with K = 2 fed the same logits for them."""
    logits = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(0))
    outputs = []
    for k, dynamic in ((4, True), (2, False)):
        model = make_model(tmp_path, embedding_size=3, interest_num=k, dynamic_k=dynamic)
        inject_logits(monkeypatch, model, logits[:, :, :k].tolist())
        interests, mask = model.forward(torch.tensor([[1, 2, 3, 4]]), torch.tensor([4]))
        outputs.append(interests[0, mask[0]])
    assert outputs[0].shape == (2, 3)
    assert torch.allclose(outputs[0], outputs[1], atol=1e-6)


# ---------------------------------------------------------------- scoring


def test_invalid_interests_never_win_the_max(tmp_path, monkeypatch):
    """A 2-item history has K' = 1 of K = 2. Items softmax: the invalid interest
    is routed onto item 2 and would score it highest. Interests softmax: the
    invalid interest is 0 and would beat the valid one on items it dislikes."""
    items = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    for routing_softmax in ("items", "interests"):
        model = make_model(tmp_path, interest_num=2, routing_iters=1, routing_softmax=routing_softmax)
        set_weights(model, items, [[1.0, 0.0], [0.0, 1.0]])
        inject_logits(monkeypatch, model, [[[5.0, -5.0], [-5.0, 5.0]]])
        interaction = batch(model, [[1, 2]], [2])
        interests, mask = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
        assert mask.tolist() == [[True, False]]
        all_scores = interests[0] @ model.item_embedding.weight.t()  # [K, n_items]
        scores = model.full_sort_predict(interaction)[0]
        assert torch.allclose(scores, all_scores[0], atol=1e-6)  # the valid interest alone
        loser = 2 if routing_softmax == "items" else 3
        assert all_scores[1, loser] > all_scores[0, loser]  # the invalid one would have won here
        given = batch(model, [[1, 2]] * 3, [2] * 3)
        given[model.ITEM_ID] = torch.tensor([1, 2, 3])
        assert torch.allclose(model.predict(given), all_scores[0, 1:4], atol=1e-6)


def test_full_sort_is_the_max_over_valid_interests(tmp_path):
    model = make_model(tmp_path, embedding_size=4, MAX_ITEM_LIST_LENGTH=8)
    interaction = batch(model, [[1, 2, 3, 4, 5, 6, 7, 8], [2, 3, 0, 0, 0, 0, 0, 0]], [8, 2])
    torch.manual_seed(4)
    interests, mask = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    torch.manual_seed(4)
    scores = model.full_sort_predict(interaction)
    per_interest = interests @ model.item_embedding.weight.t()
    assert torch.allclose(scores[0], per_interest[0, :3].max(0).values, atol=1e-6)  # K' = 3
    assert torch.allclose(scores[1], per_interest[1, 0], atol=1e-6)  # K' = 1
    items = torch.arange(N_ITEMS)
    pairs = batch(model, [interaction[model.ITEM_SEQ][0].tolist()] * N_ITEMS, [8] * N_ITEMS)
    pairs[model.ITEM_ID] = items
    torch.manual_seed(4)
    # predict draws logits for N_ITEMS copies of the user: compare with its own interests
    model_interests, _ = model.forward(pairs[model.ITEM_SEQ], pairs[model.ITEM_SEQ_LEN])
    torch.manual_seed(4)
    predicted = model.predict(pairs)
    expected = (model_interests[:, :3] * model.item_embedding(items).unsqueeze(1)).sum(-1).max(1).values
    assert torch.allclose(predicted, expected, atol=1e-6)


# ---------------------------------------------------------------- label-aware attention


INTERESTS = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0], [3.0, 3.0]]])  # 4th invalid
MASK = torch.tensor([[True, True, True, False]])
TARGET = torch.tensor([[0.5, -0.25]])  # scores 0.5, -0.5, -0.25, (0.75 for the invalid one)


def manual_attention(p):
    scores = [0.5, -0.5, -0.25]
    powered = [math.copysign(abs(s) ** p, s) for s in scores]
    weights = [math.exp(x) for x in powered]
    total = sum(weights)
    return [sum(w * INTERESTS[0, j, r].item() for j, w in enumerate(weights)) / total for r in range(2)]


@pytest.mark.parametrize("p", [1, 2, 3, 0.5])
def test_label_aware_attention_matches_hand_computation(tmp_path, p):
    """Sign-preserving power: with p = 2 the -0.5 interest gets weight e^-0.25, not e^+0.25."""
    model = make_model(tmp_path, pow_p=p)
    v = model.label_aware_attention(INTERESTS, MASK, TARGET)
    assert torch.allclose(v, torch.tensor([manual_attention(p)]), atol=1e-6)


def test_label_aware_attention_large_p_picks_the_closest_valid_interest(tmp_path):
    for p in (50, 1000.0, float("inf")):
        model = make_model(tmp_path, pow_p=p)
        v = model.label_aware_attention(INTERESTS, MASK, TARGET)
        assert torch.equal(v, INTERESTS[:, 0])  # 0.5 is the best valid score; 0.75 is masked
    soft = make_model(tmp_path, pow_p=49, pow_hard_threshold=50)
    big = INTERESTS * 10  # scores up to 5: 5^49 overflows float32 and is clamped
    v = soft.label_aware_attention(big, MASK, TARGET)
    assert torch.isfinite(v).all() and torch.allclose(v, big[:, 0], atol=1e-5)


def test_label_aware_attention_p0_is_the_mean_of_valid_interests(tmp_path):
    model = make_model(tmp_path, pow_p=0)
    v = model.label_aware_attention(INTERESTS, MASK, TARGET)
    assert torch.allclose(v, INTERESTS[:, :3].mean(1), atol=1e-6)


@pytest.mark.parametrize("loss_type", ["CE", "BPR"])
def test_loss_uses_label_aware_vector_of_the_target(tmp_path, loss_type):
    extra = UNIFORM_NEGATIVES if loss_type == "BPR" else {}
    model = make_model(tmp_path, embedding_size=4, loss_type=loss_type, pow_p=3, **extra).train()
    interaction = batch(model, [[1, 2, 3, 4, 0, 0], [5, 6, 0, 0, 0, 0]], [4, 2], targets=[7, 8], negatives=[9, 1])
    torch.manual_seed(6)
    interests, mask = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    torch.manual_seed(6)
    loss = model.calculate_loss(interaction)
    emb = model.item_embedding.weight
    scores = (interests * emb[[7, 8]].unsqueeze(1)).sum(-1)
    powered = torch.sign(scores) * scores.abs() ** 3
    v = (powered.masked_fill(~mask, -math.inf).softmax(1).unsqueeze(-1) * interests).sum(1)
    if loss_type == "CE":
        expected = -(v @ emb.t()).log_softmax(1)[[0, 1], [7, 8]].mean()
    else:
        expected = -F.logsigmoid((v * emb[[7, 8]]).sum(1) - (v * emb[[9, 1]]).sum(1)).mean()
    assert torch.allclose(loss, expected, atol=1e-6)
    assert mask.sum(1).tolist() == [2, 1]


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "key, value",
    [
        ("interest_num", 0),
        ("routing_iters", 0),
        ("pow_p", -1),
        ("routing_sigma", -0.5),
        ("routing_softmax", "users"),
        ("routing_init_eval", "seeded"),
        ("loss_type", "NLL"),
        ("dynamic_k", "yes"),
    ],
)
def test_bad_hyper_parameters_are_rejected(tmp_path, key, value):
    with pytest.raises(ConfigError, match=key):
        make_model(tmp_path, **{key: value})


def test_bpr_without_negative_sampling_is_rejected(tmp_path):
    # The protocol gives a BPR model sampled negatives unless the user turns them off.
    with pytest.raises(ConfigError, match="train_neg_sample_args"):
        make_model(tmp_path, loss_type="BPR", train_neg_sample_args=None)


def test_bpr_gets_the_protocols_sampled_negatives(tmp_path):
    model = make_model(tmp_path, loss_type="BPR")
    assert model.loss_type == "BPR"
    assert make_config(tmp_path, loss_type="BPR")["train_neg_sample_args"]["distribution"] == "uniform"


def test_run_rejects_bad_interest_num(tiny_data):
    with pytest.raises(ConfigError, match="interest_num"):
        run("MIND", "tiny", config_dict=tiny_config(tiny_data, interest_num=0), cmd_args=[])


# ---------------------------------------------------------------- learning


def two_interest_sequences(n_users=80, length=12, cluster=20):
    """Every history alternates between cluster A (items 1..20) and cluster B
    (21..40): the A items walk the A ring by +1 from a user-specific start, the
    B items walk the B ring by +2 from another."""
    sequences = []
    for u in range(n_users):
        seq = []
        for t in range(length // 2):
            seq += [(u + t) % cluster + 1, (3 * u + 2 * t) % cluster + cluster + 1]
        sequences.append(seq)
    return sequences


@pytest.mark.parametrize("loss_type, sampled_loss", [("CE", "BPR"), ("BPR", "BPR"), ("BPR", "softmax")])
def test_learns_two_interest_dataset(tmp_path, monkeypatch, loss_type, sampled_loss):
    monkeypatch.chdir(tmp_path)
    write_inter(tmp_path / "data", "twoint", two_interest_sequences())
    extra = UNIFORM_NEGATIVES if loss_type == "BPR" else {}
    config = tiny_config(
        tmp_path / "data", epochs=30, stopping_step=30, learning_rate=0.01, embedding_size=32,
        loss_type=loss_type, sampled_loss=sampled_loss, **extra,
    )
    result = run("MIND", "twoint", config_dict=config, cmd_args=[])
    # a random ranking of the 40 items puts the target in each of the top 10
    # ranks with probability 1/40: E[NDCG@10] = sum_{r=1..10} 1/log2(r+1) / 40
    random_ndcg = sum(1 / math.log2(r + 1) for r in range(1, 11)) / 40  # 0.1136
    assert result["test_result"]["ndcg@10"] > 2 * random_ndcg, (result["test_result"], random_ndcg)


# ---------------------------------------------------------------- fast path = plain computation


def plain_forward(model, item_seq, item_seq_len):
    """MIND's interests routed over all MAX_ITEM_LIST_LENGTH positions, the padded
    ones masked (the model first cuts the padding after the batch's longest history)."""
    valid = torch.arange(item_seq.size(1)).unsqueeze(0) < item_seq_len.unsqueeze(1)
    interest_mask = model.interest_mask(item_seq_len)
    low_capsules = model.item_embedding(item_seq) @ model.S.t()  # the looked-up rows mapped
    interests, _ = model.b2i_routing(low_capsules, valid, interest_mask)
    return model.interest_layer(interests), interest_mask


@pytest.mark.parametrize("routing_softmax", ["interests", "items"])
@pytest.mark.parametrize("full_length", [False, True])
def test_fast_path_equals_plain_computation(tmp_path, routing_softmax, full_length):
    """Loss, every gradient and full_sort_predict of the model (padding cut to the
    longest history) equal the plain computation over all 8 positions under the same
    seed, on padded histories with or without one at the full length."""
    model = make_model(
        tmp_path, n_items=30, embedding_size=6, MAX_ITEM_LIST_LENGTH=8, routing_softmax=routing_softmax,
        interest_mlp=True, pow_p=3,
    ).train()
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([5, 1, 3, 8 if full_length else 4, 2])
    seqs = torch.randint(1, 30, (5, 8), generator=g)
    seqs[torch.arange(8).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
    interaction = batch(model, seqs.tolist(), lengths.tolist(), targets=[3, 29, 1, 7, 12])
    params = list(model.parameters())

    torch.manual_seed(9)
    loss = model.calculate_loss(interaction)
    fast_grads = torch.autograd.grad(loss, params)
    torch.manual_seed(9)
    interests, mask = plain_forward(model, seqs, lengths)
    v = model.label_aware_attention(interests, mask, model.item_embedding(interaction[model.POS_ITEM_ID]))
    plain = F.cross_entropy(v @ model.item_embedding.weight.t(), interaction[model.POS_ITEM_ID])
    plain_grads = torch.autograd.grad(plain, params)
    torch.testing.assert_close(loss, plain, atol=1e-5, rtol=1e-5)
    for (name, _), fast_grad, plain_grad in zip(model.named_parameters(), fast_grads, plain_grads):
        torch.testing.assert_close(fast_grad, plain_grad, atol=1e-5, rtol=1e-4, msg=name)

    torch.manual_seed(9)
    scores = model.full_sort_predict(interaction)
    torch.manual_seed(9)
    interests, mask = plain_forward(model, seqs, lengths)
    plain_scores = (interests @ model.item_embedding.weight.t()).masked_fill(~mask.unsqueeze(-1), -math.inf).max(1).values
    torch.testing.assert_close(scores, plain_scores, atol=1e-5, rtol=1e-5)


def test_history_is_the_first_item_seq_len_positions(tmp_path):
    """Ids after ITEM_SEQ_LEN are not history, even when they are not 0 (MIND
    reads the length, as the other models, not the non-zero ids)."""
    model = make_model(tmp_path, embedding_size=4, MAX_ITEM_LIST_LENGTH=6)
    outputs = []
    for tail in (0, 9):
        interaction = batch(model, [[3, 1, tail, tail, 0, 0], [4, 5, 6, 2, tail, tail]], [2, 4])
        torch.manual_seed(2)
        outputs.append(model.full_sort_predict(interaction))
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-6, rtol=0)
