"""Caser's fast forward (grouped one-dimensional convolutions) equals RecBole's
``Caser.forward``: outputs and the gradients of every parameter, on random
weights and on a trained model, for sequence lengths that fill the height
groups exactly and that leave a partial last group; and ``fast_path: False``
runs RecBole's code."""

import pytest
import torch
from recbole.trainer import Trainer

from recbole_selfattn.fastpath import caser
from tests.test_acceleration import first_batch, prepare

TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def _caser(tiny_data, length, **overrides):
    config, train_data, _, model = prepare("Caser", tiny_data, MAX_ITEM_LIST_LENGTH=length, nh=3, nv=2,
                                           **overrides)
    return config, train_data, model


def _outputs_and_grads(model, forward, batch):
    model.zero_grad()
    out = forward(batch[model.USER_ID], batch[model.ITEM_SEQ])
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_height_groups_cover_every_height_once_in_order():
    for max_height in (1, caser.HEIGHTS_PER_CONV, caser.HEIGHTS_PER_CONV + 1, 50):
        groups = caser.height_groups(max_height)
        assert [h for group in groups for h in group] == list(range(1, max_height + 1))
        assert max(len(group) for group in groups) <= caser.HEIGHTS_PER_CONV


@pytest.mark.parametrize("taps", [2, 5, 6])  # fewer taps than the 5 positions (transposed convolution), not fewer
def test_filter_group_backward_equals_the_convolutions_gradients(taps):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 4 + taps, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 4, taps, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(caser.FilterGroup.apply, (x, weight))
    grad = torch.randn(3, 2, 5, dtype=torch.float64)
    ours = torch.autograd.grad(caser.FilterGroup.apply(x, weight), (x, weight), grad)
    torch_s = torch.autograd.grad(torch.nn.functional.conv1d(x, weight), (x, weight), grad)
    for a, b in zip(ours, torch_s):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("length", [caser.HEIGHTS_PER_CONV, 2 * caser.HEIGHTS_PER_CONV + 3])
def test_fast_forward_and_gradients_equal_recboles_on_random_weights(tiny_data, length):
    """Every parameter drawn at random (RecBole's zero biases would hide a bias
    added in the wrong place), dropout off so both passes see the same features."""
    _, train_data, model = _caser(tiny_data, length, dropout_prob=0.0)
    torch.manual_seed(1)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.5)
    batch = first_batch(train_data)
    assert (batch[model.ITEM_SEQ] == 0).any()  # padded sequences: the masked positions matter
    fast = _outputs_and_grads(model, model.forward, batch)
    ours = _outputs_and_grads(model, model.recbole_forward, batch)
    assert (ours[0] > 0).float().mean() > 0.2  # the final ReLU passes enough to compare
    torch.testing.assert_close(fast[0], ours[0], **TOLERANCE)
    assert fast[1].keys() == ours[1].keys() and len(ours[1]) == len(list(model.parameters()))
    for name, grad in ours[1].items():
        # a weight's gradient sums terms of the batch's largest magnitudes: rounding scales with them
        torch.testing.assert_close(fast[1][name], grad, rtol=1e-4, atol=1e-5 * grad.abs().max(), msg=name)


def test_trained_caser_fast_forward_equals_recboles(tiny_data):
    """Trained one epoch on the fast path, evaluated: the same sequence
    representations and full-ranking scores as RecBole's forward."""
    config, train_data, model = _caser(tiny_data, 11, epochs=1)
    assert model.fast_path
    Trainer(config, model).fit(train_data, saved=False)
    model.eval()
    batch = first_batch(train_data)
    with torch.no_grad():
        fast = model.forward(batch[model.USER_ID], batch[model.ITEM_SEQ])
        ours = model.recbole_forward(batch[model.USER_ID], batch[model.ITEM_SEQ])
        torch.testing.assert_close(fast, ours, **TOLERANCE)
        torch.testing.assert_close(model.full_sort_predict(batch), ours @ model.item_embedding.weight.T, **TOLERANCE)


def test_fast_path_false_runs_recboles_caser(tiny_data, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the fast path ran with fast_path False")

    monkeypatch.setattr(caser, "horizontal", refuse)
    _, train_data, model = _caser(tiny_data, 10, fast_path=False)
    assert model.fast_path is False
    model.calculate_loss(first_batch(train_data)).backward()
    _, _, fast_model = _caser(tiny_data, 10)
    with pytest.raises(AssertionError, match="the fast path ran"):
        fast_model.calculate_loss(first_batch(train_data))
