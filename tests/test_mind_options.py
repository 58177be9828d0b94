"""MIND's options beyond the paper's defaults (issue 12): the routing update scale,
the routing weights, the score type and scale, the hard readout, the sampled softmax
over RecBole's negatives, and their config checks. MIND.yaml's defaults reproduce the
loss of the code before these options (test_mind's LOSS_BEFORE_ROUTING_INIT_EVAL)."""

import math

import pytest
import torch
import torch.nn.functional as F

from recbole_selfattn import cli
from recbole_selfattn.errors import ConfigError
from tests.conftest import cli_args, one_paragraph_error
from tests.test_mind import (
    INTERESTS,
    MASK,
    TARGET,
    UNIFORM_NEGATIVES,
    batch,
    inject_logits,
    make_model,
    manual_routing,
    set_weights,
)

ITEMS = [[1.0, 0.5], [-0.5, 1.0]]
S = [[1.0, 2.0], [0.5, -1.0]]
LOGITS = [[0.3, -0.2], [0.1, 0.4]]


# ---------------------------------------------------------------- routing


@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_routing_update_scale_multiplies_the_logit_update(tmp_path, monkeypatch, alpha):
    """Two items, two interests, two iterations: b_ij += alpha u_j . S c_i by hand."""
    model = make_model(tmp_path, interest_num=2, routing_iters=2, dynamic_k=False, routing_update_scale=alpha)
    set_weights(model, ITEMS, S)
    inject_logits(monkeypatch, model, [LOGITS])
    interests, _ = model.forward(torch.tensor([[1, 2]]), torch.tensor([2]))
    expected, _ = manual_routing(ITEMS, S, LOGITS, 2, False, alpha=alpha)
    torch.testing.assert_close(interests[0], torch.tensor(expected), atol=1e-6, rtol=0)
    paper, _ = manual_routing(ITEMS, S, LOGITS, 2, False)
    assert (alpha == 1.0) == torch.allclose(interests[0], torch.tensor(paper), atol=1e-4)


@pytest.mark.parametrize("routing_softmax", ["interests", "items"])
def test_routing_returns_the_last_iterations_weights(tmp_path, monkeypatch, routing_softmax):
    """b2i_routing's weights are the w_ij of the last iteration by hand; a padded third
    item gets weight 0 and the weights of a real item sum to 1 over the interests."""
    model = make_model(tmp_path, interest_num=2, routing_iters=3, dynamic_k=False, routing_softmax=routing_softmax)
    set_weights(model, ITEMS, S)
    inject_logits(monkeypatch, model, [LOGITS + [[5.0, -5.0]]])
    low_capsules = model.behaviour_capsules(torch.tensor([[1, 2, 0]]))
    item_mask = torch.tensor([[True, True, False]])
    interests, weights = model.b2i_routing(low_capsules, item_mask, torch.tensor([[True, True]]))
    expected_u, expected_w = manual_routing(ITEMS, S, LOGITS, 3, routing_softmax == "items")
    torch.testing.assert_close(interests[0], torch.tensor(expected_u), atol=1e-6, rtol=0)
    torch.testing.assert_close(weights[0, :2], torch.tensor(expected_w), atol=1e-6, rtol=0)
    assert weights[0, 2].tolist() == [0.0, 0.0]
    if routing_softmax == "interests":
        torch.testing.assert_close(weights[0, :2].sum(1), torch.ones(2))


# ---------------------------------------------------------------- scores


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def manual_scores(score_type, scale, interests, target):
    dot = [sum(x * y for x, y in zip(u, target)) for u in interests]
    raw = [cosine(u, target) for u in interests] if score_type == "cosine" else dot
    return [scale * r for r in raw]


@pytest.mark.parametrize("score_type, scale", [("dot", 1.0), ("dot", 3.0), ("cosine", 1.0), ("cosine", 4.0)])
def test_label_attention_scores_by_type_and_scale(tmp_path, score_type, scale):
    """softmax_j(sign(s)|s|^2) with s = scale * (u_j . e_t) or scale * cos(u_j, e_t), by hand."""
    model = make_model(tmp_path, pow_p=2, score_type=score_type, score_scale=scale)
    scores = manual_scores(score_type, scale, INTERESTS[0, :3].tolist(), TARGET[0].tolist())
    powered = [math.copysign(s * s, s) for s in scores]
    expected = [math.exp(x) / sum(math.exp(y) for y in powered) for x in powered] + [0.0]
    weights = model.label_attention(INTERESTS, MASK, TARGET)
    torch.testing.assert_close(weights[0], torch.tensor(expected), atol=1e-6, rtol=0)


@pytest.mark.parametrize("score_type, scale", [("dot", 2.0), ("cosine", 5.0)])
def test_training_and_prediction_use_the_score(tmp_path, score_type, scale):
    """The CE logits are s(v_u, e) over all items, and predict/full_sort_predict the max
    over the valid interests of s(u_j, e_i), against loops over the items."""
    model = make_model(tmp_path, embedding_size=4, score_type=score_type, score_scale=scale, pow_p=1)
    interaction = batch(model, [[1, 2, 3, 4, 0, 0], [5, 6, 0, 0, 0, 0]], [4, 2], targets=[7, 8])
    pairs = batch(model, [[1, 2, 3, 4, 0, 0], [5, 6, 0, 0, 0, 0]], [4, 2], targets=[3, 9])  # ITEM_ID is POS_ITEM_ID
    interests, mask = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    emb = model.item_embedding.weight.tolist()
    full = model.full_sort_predict(interaction)
    for b in range(2):
        valid = interests[b, mask[b]].tolist()
        expected = [max(manual_scores(score_type, scale, valid, e)) for e in emb]
        torch.testing.assert_close(full[b], torch.tensor(expected), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.predict(pairs), full[[0, 1], [3, 9]], atol=1e-6, rtol=0)

    model.train()
    torch.manual_seed(4)
    interests, mask = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    torch.manual_seed(4)
    loss = model.calculate_loss(interaction)
    v = model.label_aware_attention(interests, mask, model.item_embedding(torch.tensor([7, 8])))
    expected = 0.0
    for b, target in enumerate([7, 8]):
        logits = manual_scores(score_type, scale, emb, v[b].tolist())  # s is symmetric in its arguments
        expected -= logits[target] - math.log(sum(math.exp(x) for x in logits))
    assert loss.item() == pytest.approx(expected / 2, abs=1e-5)


def test_hard_readout_from_the_threshold_on(tmp_path):
    """pow_p >= pow_hard_threshold picks the best valid interest (one-hot), below it the
    attention is soft; the training loss then uses that interest alone."""
    hard = make_model(tmp_path, embedding_size=4, pow_p=2, pow_hard_threshold=2)
    soft = make_model(tmp_path, embedding_size=4, pow_p=2, pow_hard_threshold=2.5)
    assert hard.label_attention(INTERESTS, MASK, TARGET).tolist() == [[1.0, 0.0, 0.0, 0.0]]
    assert soft.label_attention(INTERESTS, MASK, TARGET)[0, 1:3].gt(0).all()

    hard.train()
    interaction = batch(hard, [[1, 2, 3, 4, 5, 6]], [6], targets=[7])
    torch.manual_seed(2)
    interests, mask = hard.forward(interaction[hard.ITEM_SEQ], interaction[hard.ITEM_SEQ_LEN])
    torch.manual_seed(2)
    loss = hard.calculate_loss(interaction)
    emb = hard.item_embedding.weight
    best = (interests[0, mask[0]] @ emb[7]).argmax()
    expected = F.cross_entropy((interests[0, best] @ emb.t()).unsqueeze(0), torch.tensor([7]))
    torch.testing.assert_close(loss, expected, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- sampled softmax


def test_sampled_softmax_over_the_batch_negatives(tmp_path):
    """Each row's target against the three negatives of the batch, by hand; row 0's
    target 7 is row 1's negative (an accidental hit) and is left out of row 0."""
    model = make_model(
        tmp_path, embedding_size=4, loss_type="BPR", sampled_loss="softmax", pow_p=1, **UNIFORM_NEGATIVES
    ).train()
    targets, negatives = [7, 8, 2], [9, 7, 1]
    interaction = batch(
        model, [[1, 2, 3, 4, 0, 0], [5, 6, 0, 0, 0, 0], [3, 4, 5, 0, 0, 0]], [4, 2, 3],
        targets=targets, negatives=negatives,
    )
    torch.manual_seed(8)
    interests, mask = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    torch.manual_seed(8)
    loss = model.calculate_loss(interaction)
    emb = model.item_embedding.weight
    v = model.label_aware_attention(interests, mask, emb[targets]).tolist()
    expected = 0.0
    for b, target in enumerate(targets):
        dot = lambda item: sum(x * y for x, y in zip(v[b], emb[item].tolist()))  # noqa: E731
        logits = [dot(target)] + [dot(n) for n in negatives if n != target]
        expected -= logits[0] - math.log(sum(math.exp(x) for x in logits))
    assert loss.item() == pytest.approx(expected / 3, abs=1e-6)

    bpr = make_model(tmp_path, embedding_size=4, loss_type="BPR", pow_p=1, **UNIFORM_NEGATIVES).train()
    torch.manual_seed(8)
    assert not math.isclose(bpr.calculate_loss(interaction).item(), loss.item(), abs_tol=1e-4)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "key, value",
    [
        ("routing_update_scale", 0),
        ("routing_update_scale", "big"),
        ("routing_stop_grad", "no"),
        ("score_type", "l2"),
        ("score_scale", -1.0),
        ("sampled_loss", "NCE"),
        ("sampled_loss", "softmax"),  # with the default loss_type CE: no sampled negatives
    ],
)
def test_bad_option_values_are_rejected(tmp_path, key, value):
    with pytest.raises(ConfigError, match=key):
        make_model(tmp_path, **{key: value})


def test_command_line_rejects_a_bad_option_in_one_paragraph(tiny_data, capsys):
    assert cli.main(["--model=MIND", "--dataset=tiny", *cli_args(tiny_data, score_type="l2")]) == 2
    err = one_paragraph_error(capsys)
    assert "score_type='l2' is invalid" in err and "'dot' or 'cosine'" in err
