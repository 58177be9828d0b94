"""MTAW's readings where the paper is ambiguous (issue 12): where the ITL's residual
goes (itl_residual), whether keys and values are projected (kv_projection) and how
positions are counted (position_order), each against loops over the equations, and
the default reading unchanged."""

import math

import pytest
import torch

from recbole_selfattn.errors import ConfigError
from tests.test_mtaw import batch, layer_norm, make_model, manual_linear, relu

D, T = 3, 4
ITEMS = [[0, 0, 0], [0.5, -0.3, 0.8], [-0.4, 0.9, 0.2], [0.7, 0.1, -0.6], [0.3, 0.3, 0.3]]
POSITIONS = [[0.1, 0.0, -0.1], [0.0, 0.2, 0.1], [-0.2, 0.1, 0.0], [0.05, -0.05, 0.3]]
W1, B1 = [[0.5, -0.2, 0.1], [0.3, 0.4, -0.5], [-0.1, 0.2, 0.6]], [0.01, -0.02, 0.03]
W2, B2 = [[0.2, 0.1, -0.3], [-0.4, 0.5, 0.2], [0.3, -0.1, 0.4]], [-0.05, 0.02, 0.0]
GAMMA, BETA = [1.5, 0.5, 1.0], [0.1, -0.2, 0.3]
# key and value maps of the ITL and the IEL (kv_projection)
WK, BK = [[0.9, 0.2, 0.0], [-0.3, 1.1, 0.4], [0.1, -0.2, 0.8]], [0.05, 0.0, -0.05]
WV, BV = [[1.2, 0.0, -0.3], [0.2, 0.7, 0.1], [0.0, 0.4, 1.0]], [0.0, 0.1, 0.02]
IDENTITY = ([[1.0 if r == c else 0.0 for c in range(D)] for r in range(D)], [0.0] * D)

READINGS = [
    {},  # the paper's reading, the default
    {"itl_residual": "input"},
    {"itl_residual": "both"},
    {"kv_projection": True},
    {"position_order": "reverse"},
]


def attend(query, keys, values):
    """softmax(q k_j / sqrt(d)) summed over v_j, with explicit loops."""
    scores = [sum(q * k for q, k in zip(query, key)) / math.sqrt(len(query)) for key in keys]
    weights = [math.exp(s - max(scores)) for s in scores]
    return [sum(w * v[i] for w, v in zip(weights, values)) / sum(weights) for i in range(len(query))]


def build(tmp_path, reading):
    """A 3-dim MTAW with the hand-picked weights above (identity query MLPs)."""
    model = make_model(tmp_path, n_items=5, embedding_size=D, MAX_ITEM_LIST_LENGTH=T, scale=7.0, **reading).double()
    itl = model.itl_layers[0]
    values = {
        model.item_embedding.weight: ITEMS, model.position_embedding.weight: POSITIONS,
        itl.query.weight: IDENTITY[0], itl.query.bias: IDENTITY[1],
        model.iel_query.weight: IDENTITY[0], model.iel_query.bias: IDENTITY[1],
        itl.ffn[0].weight: W1, itl.ffn[0].bias: B1, itl.ffn[2].weight: W2, itl.ffn[2].bias: B2,
        itl.layer_norm.weight: GAMMA, itl.layer_norm.bias: BETA,
    }
    if reading.get("kv_projection"):
        for key, value in ((itl.key, model.iel_key), (itl.value, model.iel_value)):
            assert isinstance(key, torch.nn.Linear) and isinstance(value, torch.nn.Linear)
        values.update({
            itl.key.weight: WK, itl.key.bias: BK, itl.value.weight: WV, itl.value.bias: BV,
            model.iel_key.weight: WV, model.iel_key.bias: BV, model.iel_value.weight: WK, model.iel_value.bias: BK,
        })
    with torch.no_grad():
        for parameter, value in values.items():
            parameter.copy_(torch.tensor(value))
    return model


def manual_session(seq, reading):
    """Instant interests l_1..l_m and the scores tau * cos(O, e_i) of one session, by hand."""
    residual = reading.get("itl_residual", "ffn")
    keys_map, values_map = ((WK, BK), (WV, BV)) if reading.get("kv_projection") else (IDENTITY, IDENTITY)
    m = len(seq)
    order = range(m - 1, -1, -1) if reading.get("position_order") == "reverse" else range(m)
    x = [[e + p for e, p in zip(ITEMS[i], POSITIONS[k])] for i, k in zip(seq, order)]
    keys, values = [manual_linear(*keys_map, v) for v in x], [manual_linear(*values_map, v) for v in x]
    instant = []
    for t in range(m):
        attended = attend(relu(x[t]), keys[: t + 1], values[: t + 1])  # Q_x = ReLU(I x_t), prefix X'_t
        if residual == "both":  # the attention's own residual and LayerNorm (weight 1, bias 0)
            attended = layer_norm([a + v for a, v in zip(attended, x[t])], [1.0] * D, [0.0] * D)
        shortcut = x[t] if residual == "input" else attended
        ffn = manual_linear(W2, B2, relu(manual_linear(W1, B1, attended)))
        instant.append(layer_norm([s + f for s, f in zip(shortcut, ffn)], GAMMA, BETA))
    # the IEL's key map is (WV, BV) and its value map (WK, BK): different from the ITL's
    iel_keys, iel_values = ((WV, BV), (WK, BK)) if reading.get("kv_projection") else (IDENTITY, IDENTITY)
    o = attend(
        relu(instant[-1]), [manual_linear(*iel_keys, v) for v in instant], [manual_linear(*iel_values, v) for v in instant]
    )
    o_norm = math.sqrt(sum(v * v for v in o))
    scores = [0.0] + [
        7.0 * sum(a * e for a, e in zip(o, item)) / (o_norm * math.sqrt(sum(e * e for e in item))) for item in ITEMS[1:]
    ]
    return instant, scores


@pytest.mark.parametrize("reading", READINGS, ids=lambda r: ",".join(f"{k}={v}" for k, v in r.items()) or "paper")
def test_reading_matches_hand_computation(tmp_path, reading):
    """Each reading's instant interests and scores on two padded sessions, against loops."""
    model = build(tmp_path, reading)
    seqs, lengths = [[1, 2, 3, 4], [3, 1, 0, 0]], [4, 2]
    interaction = batch(model, seqs, lengths)
    instant = model.interest_tracking(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    scores = model.full_sort_predict(interaction)
    for b, (seq, length) in enumerate(zip(seqs, lengths)):
        expected_instant, expected_scores = manual_session(seq[:length], reading)
        torch.testing.assert_close(instant[b, :length], torch.tensor(expected_instant, dtype=torch.double), atol=1e-6, rtol=0)
        torch.testing.assert_close(scores[b], torch.tensor(expected_scores, dtype=torch.double), atol=1e-6, rtol=0)
    if reading:  # the reading matters in this example
        paper_instant, paper_scores = manual_session(seqs[0], {})
        assert not torch.allclose(scores[0], torch.tensor(paper_scores, dtype=torch.double), atol=1e-4)


def test_default_reading_adds_no_parameter_and_keeps_the_initialisation(tmp_path):
    """The paper's reading builds the same parameters, drawn the same, as the options
    set explicitly to it; the other readings add exactly their own layers."""
    default = make_model(tmp_path)
    explicit = make_model(tmp_path, itl_residual="ffn", kv_projection=False, position_order="forward")
    assert default.state_dict().keys() == explicit.state_dict().keys()
    assert all(torch.equal(v, explicit.state_dict()[k]) for k, v in default.state_dict().items())
    added = {
        "itl_residual": ("both", {"itl_layers.0.attention_norm.weight", "itl_layers.0.attention_norm.bias"}),
        "kv_projection": (True, {f"{p}.{w}" for p in ("itl_layers.0.key", "itl_layers.0.value", "iel_key", "iel_value")
                                 for w in ("weight", "bias")}),
    }
    for key, (value, names) in added.items():
        assert make_model(tmp_path, **{key: value}).state_dict().keys() - default.state_dict().keys() == names


def test_reverse_positions_ignore_padding(tmp_path):
    """Reversed positions count from each session's own last item: padding (zeros or
    junk after ITEM_SEQ_LEN) changes nothing."""
    model = make_model(tmp_path, MAX_ITEM_LIST_LENGTH=10, n_layers=2, position_order="reverse")
    reference = model.full_sort_predict(batch(model, [[3, 5, 7, 0]], [3]))
    for seq in ([3, 5, 7] + [0] * 7, [3, 5, 7, 2, 6, 1, 4, 4, 2, 1]):
        torch.testing.assert_close(model.full_sort_predict(batch(model, [seq], [3])), reference, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "key, value", [("itl_residual", "pre"), ("kv_projection", "yes"), ("position_order", "backward")]
)
def test_bad_reading_is_rejected(tmp_path, key, value):
    with pytest.raises(ConfigError, match=key):
        make_model(tmp_path, **{key: value})
