"""The fast path for RecBole's Transformer models equals RecBole's own code:
outputs and gradients of ``TransformerEncoder`` on random inputs and masks,
SASRec's sequence representations on a trained model, the off switch, and
the dropout mask's statistics."""

import ctypes

import pytest
import torch
from recbole.model.layers import TransformerEncoder
from recbole.trainer import Trainer

from recbole_selfattn.fastpath import allocator
from recbole_selfattn.fastpath import dropout as fast_dropout
from recbole_selfattn.fastpath.embedding import Embedding
from recbole_selfattn.fastpath import sasrec
from recbole_selfattn.fastpath import transformer
from tests.test_acceleration import first_batch, prepare

TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def _encoder(hidden_act="gelu", n_heads=2, dropout=0.0, n_layers=2):
    torch.manual_seed(0)
    encoder = TransformerEncoder(n_layers=n_layers, n_heads=n_heads, hidden_size=8, inner_size=12,
                                 hidden_dropout_prob=dropout, attn_dropout_prob=dropout, hidden_act=hidden_act)
    for parameter in encoder.parameters():  # RecBole's zero biases and unit norms would hide mistakes
        torch.nn.init.normal_(parameter, std=0.5)
    return encoder


def _additive(mask):
    return torch.where(mask, 0.0, -10000.0)


def _masks(item_seq):
    """RecBole's causal and bidirectional masks of right-padded ``item_seq`` (its ``get_attention_mask``)."""
    keys = (item_seq != 0)[:, None, None, :]
    causal = torch.tril(keys.expand(-1, -1, item_seq.shape[1], -1))
    return {"causal": _additive(causal), "bidirectional": _additive(keys)}


def _sequences(batch=5, length=6):
    lengths = torch.tensor([6, 1, 3, 5, 2])[:batch]
    item_seq = (torch.arange(length) < lengths[:, None]).long() * torch.randint(1, 9, (batch, length))
    return item_seq, lengths


def _grads(module, inputs, outputs_of):
    """Outputs and the gradients of a fixed random projection of them, for every parameter and ``inputs``."""
    module.zero_grad()
    inputs.grad = None
    out = outputs_of()
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    return out.detach(), grads, inputs.grad.clone()


@pytest.mark.parametrize("hidden_act", ["gelu", "relu", "swish", "tanh", "sigmoid"])
@pytest.mark.parametrize("mask", ["causal", "bidirectional"])
def test_encoder_outputs_and_gradients_equal_recboles(hidden_act, mask):
    encoder = _encoder(hidden_act)
    item_seq, _ = _sequences()
    attention_mask = _masks(item_seq)[mask]
    hidden = torch.randn(*item_seq.shape, 8, requires_grad=True)
    fast = _grads(encoder, hidden, lambda: torch.stack(transformer.encode(encoder, hidden, attention_mask)))
    ours = _grads(encoder, hidden, lambda: torch.stack(encoder.recbole_forward(hidden, attention_mask)))
    torch.testing.assert_close(fast[0], ours[0], **TOLERANCE)
    for name in ours[1]:
        torch.testing.assert_close(fast[1][name], ours[1][name], **TOLERANCE, msg=name)
    torch.testing.assert_close(fast[2], ours[2], **TOLERANCE)


def test_encoder_in_evaluation_keeps_dropout_off_and_equals_recboles():
    encoder = _encoder(dropout=0.5).eval()
    item_seq, _ = _sequences()
    hidden = torch.randn(*item_seq.shape, 8)
    for attention_mask in _masks(item_seq).values():
        with torch.no_grad():
            fast = encoder(hidden, attention_mask, output_all_encoded_layers=False)
            ours = encoder.recbole_forward(hidden, attention_mask, output_all_encoded_layers=False)
        assert len(fast) == 1
        torch.testing.assert_close(fast[0], ours[0], **TOLERANCE)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_encode_last_equals_recboles_causal_encoder_at_the_read_position(n_layers):
    """Queries and feed-forward of the last layer only at the read position,
    the padding columns left to the caller: RecBole's result there, with the
    same gradients."""
    encoder = _encoder(n_layers=n_layers)
    item_seq, lengths = _sequences()
    hidden = torch.randn(*item_seq.shape, 8, requires_grad=True)
    rows = torch.arange(len(item_seq))
    fast = _grads(encoder, hidden, lambda: transformer.encode_last(encoder, hidden, lengths - 1))
    ours = _grads(encoder, hidden,
                  lambda: encoder.recbole_forward(hidden, _masks(item_seq)["causal"])[-1][rows, lengths - 1])
    torch.testing.assert_close(fast[0], ours[0], **TOLERANCE)
    for name in ours[1]:
        torch.testing.assert_close(fast[1][name], ours[1][name], **TOLERANCE, msg=name)
    torch.testing.assert_close(fast[2], ours[2], **TOLERANCE)


def test_trained_sasrec_fast_forward_equals_recboles(tiny_data):
    """A SASRec trained one epoch on the fast path (so the weights are not
    RecBole's initial ones), on training prefixes of every length: the fast
    forward, columns after the longest sequence cut, equals RecBole's forward,
    and so do the scores."""
    config, train_data, _, model = prepare("SASRec", tiny_data, n_layers=2, n_heads=2, epochs=1)
    assert model.fast_path and config["fast_path"] is True
    Trainer(config, model).fit(train_data, saved=False)
    model.eval()
    batch = first_batch(train_data)  # prefixes of every length
    item_seq, lengths = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    assert lengths.min() < lengths.max() < item_seq.shape[1]  # padding to cut and to mask
    with torch.no_grad():
        fast = model.forward(item_seq, lengths)
        ours = model.recbole_forward(item_seq, lengths)
        torch.testing.assert_close(fast, ours, **TOLERANCE)
        torch.testing.assert_close(model.full_sort_predict(batch), ours @ model.item_embedding.weight.T, **TOLERANCE)


def test_fast_path_false_runs_recboles_code(tiny_data, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the fast path ran with fast_path False")

    monkeypatch.setattr(transformer, "encode", refuse)
    monkeypatch.setattr(sasrec, "encode_last", refuse)
    config, train_data, _, model = prepare("SASRec", tiny_data, fast_path=False)
    assert model.fast_path is False and model.trm_encoder.fast_path is False
    model.calculate_loss(first_batch(train_data)).backward()
    _, _, _, fast_model = prepare("SASRec", tiny_data)
    with pytest.raises(AssertionError, match="the fast path ran"):
        fast_model.calculate_loss(first_batch(train_data))


def test_dropout_drops_p_of_the_elements_keeps_the_mean_and_masks_the_gradient():
    torch.manual_seed(0)
    x = torch.full((200_000,), 2.0, requires_grad=True)
    out = fast_dropout.dropout(x, 0.3, training=True)
    dropped = out == 0
    assert abs(dropped.float().mean().item() - 0.3) < 0.005
    _, drop = fast_dropout._drop_threshold(0.3)
    assert abs(drop - 0.3) <= 2**-17
    torch.testing.assert_close(out[~dropped], torch.full_like(out[~dropped], 2.0 / (1 - drop)))
    out.sum().backward()
    torch.testing.assert_close(x.grad, (~dropped).float() / (1 - drop))


@pytest.mark.parametrize("size", [200_003, 200_000])
def test_dropout_uses_every_16_bit_word_of_a_draw_alike(size):
    """Each 64-bit draw gives four masks: every one of the four positions drops p
    (a word with a constant sign bit would drop all or nothing at p = 0.3)."""
    torch.manual_seed(1)
    dropped = fast_dropout.dropout(torch.ones(size), 0.3, training=True) == 0
    for word in range(4):
        assert abs(dropped[word::4].float().mean().item() - 0.3) < 0.01


def test_dropout_is_the_identity_when_off_and_seeded():
    x = torch.randn(1000)
    assert fast_dropout.dropout(x, 0.5, training=False) is x
    assert fast_dropout.dropout(x, 0.0, training=True) is x
    assert torch.equal(fast_dropout.dropout(x, 1.0, training=True), torch.zeros(1000))
    torch.manual_seed(3)
    first = fast_dropout.dropout(x, 0.5, training=True)
    torch.manual_seed(3)
    assert torch.equal(fast_dropout.dropout(x, 0.5, training=True), first)


@pytest.mark.parametrize("padding_idx", [0, None])
def test_embedding_lookup_and_gradient_equal_nn_embeddings(padding_idx):
    """Repeated ids, padding and a 3-d id tensor: the same rows forward, the same summed
    gradient rows backward (none for the padding row), the same state dict."""
    torch.manual_seed(0)
    reference = torch.nn.Embedding(12, 5, padding_idx=padding_idx)
    fast = Embedding(12, 5, padding_idx=padding_idx)
    fast.load_state_dict(reference.state_dict())
    ids = torch.randint(0, 12, (4, 7, 3))
    ids[0, 0] = 0  # the padding id, several times
    ids[1] = 5  # one id many times
    grad = torch.randn(4, 7, 3, 5)
    out, expected = fast(ids), reference(ids)
    assert torch.equal(out, expected)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(fast.weight.grad, reference.weight.grad)
    padding_row_grad = fast.weight.grad[0].abs().sum()
    assert padding_row_grad == 0 if padding_idx == 0 else padding_row_grad > 0


@pytest.mark.parametrize("padding_idx", [0, None])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_embedding_dots_equal_the_looked_up_rows_times_the_vectors(padding_idx, dtype):
    """``dots``: the products, the table's gradient (none for the padding row) and the
    vectors' gradient of ``(nn.Embedding(ids) * vectors[:, None]).sum(-1)``, repeated and
    padding ids included; under bf16 autocast, with bf16 vectors, within bf16 rounding."""
    torch.manual_seed(0)
    reference = torch.nn.Embedding(12, 6, padding_idx=padding_idx)
    fast = Embedding(12, 6, padding_idx=padding_idx)
    fast.load_state_dict(reference.state_dict())
    with torch.no_grad():
        fast.weight[0] = reference.weight[0] = torch.randn(6)  # a non-zero padding row still scores
    ids = torch.randint(0, 12, (4, 9))
    ids[0, :3] = 0
    ids[1] = 5
    vectors = torch.randn(4, 6, dtype=dtype)
    ours_v, theirs_v = vectors.clone().requires_grad_(), vectors.float().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        out = fast.dots(ids, ours_v)
    expected = (reference(ids) * theirs_v.unsqueeze(1)).sum(-1)
    tolerance = {} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    torch.testing.assert_close(out.float(), expected, **tolerance)
    grad = torch.randn(4, 9)
    out.backward(grad.to(out.dtype))
    expected.backward(grad)
    assert ours_v.grad.dtype == dtype
    torch.testing.assert_close(ours_v.grad.float(), theirs_v.grad, **tolerance)
    torch.testing.assert_close(fast.weight.grad, reference.weight.grad, **tolerance)
    padding_row_grad = fast.weight.grad[0].abs().sum()
    assert padding_row_grad == 0 if padding_idx == 0 else padding_row_grad > 0


def test_embedding_dots_of_vectors_without_gradient_give_the_table_its_gradient_only():
    fast = Embedding(7, 3)
    vectors = torch.randn(2, 3)
    fast.dots(torch.tensor([[1, 2], [2, 6]]), vectors).sum().backward()
    torch.testing.assert_close(fast.weight.grad[2], vectors.sum(0))
    torch.testing.assert_close(fast.weight.grad[[0, 3, 4, 5]], torch.zeros(4, 3))


@pytest.mark.parametrize("mask", ["causal", "bidirectional", "read position"])
def test_training_attention_path_computes_recboles_attention(mask, monkeypatch):
    """The per-head attention of training (taken when attention dropout is on)
    with the dropout itself made the identity: RecBole's encoder without dropout."""
    monkeypatch.setattr(transformer, "dropout", lambda x, p, training: x)
    encoder = _encoder(dropout=0.5)
    reference = _encoder(dropout=0.0).eval()
    item_seq, lengths = _sequences()
    hidden = torch.randn(*item_seq.shape, 8)
    with torch.no_grad():
        ours = reference.recbole_forward(hidden, _masks(item_seq)["causal" if mask == "read position" else mask])
        if mask == "read position":
            fast = transformer.encode_last(encoder, hidden, lengths - 1)
            ours = ours[-1][torch.arange(len(item_seq)), lengths - 1]
        else:
            fast, ours = torch.stack(transformer.encode(encoder, hidden, _masks(item_seq)[mask])), torch.stack(ours)
    torch.testing.assert_close(fast, ours, **TOLERANCE)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo():
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _MallInfo2
    return mallinfo2()


def _mapped_bytes():
    """glibc's bytes in mmap-ed blocks (``mallinfo2().hblkhd``)."""
    return _mallinfo().hblkhd


@pytest.mark.skipif(allocator._mallopt() is None or not hasattr(ctypes.CDLL(None), "mallinfo2"),
                    reason="glibc >= 2.33 only")
def test_retained_memory_serves_large_tensors_from_the_heap(tiny_data):
    """With freed memory retained, a 64 MiB tensor comes from the heap (no new
    mmap, which the kernel would page in afresh); with the default restored it
    is mmap-ed again. Building a model on the fast path retains, off restores."""
    size = 16 * 1024 * 1024  # float32: 64 MiB, above glibc's largest mmap threshold
    try:
        allocator.retain_freed_memory(True)
        before = _mapped_bytes()
        tensor = torch.ones(size)
        assert _mapped_bytes() - before < size * 4
        del tensor
        allocator.retain_freed_memory(False)
        # larger than all the heap's free memory, so no free heap block can serve it
        larger = size + _mallinfo().fordblks // 4
        before = _mapped_bytes()
        tensor = torch.ones(larger)
        assert _mapped_bytes() - before >= larger * 4
        del tensor
        prepare("SASRec", tiny_data)
        assert allocator._state["retained"] is True
        prepare("SASRec", tiny_data, fast_path=False)
        assert allocator._state["retained"] is False
    finally:
        allocator.retain_freed_memory(True)
