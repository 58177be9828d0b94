"""The fused Adam of the fast path (``recbole_selfattn/fastpath/optimizer.py``):
the plugin's trainer builds it for Adam and AdamW unless ``fast_path`` is
False, with the config's learning rate and weight decay, and trains as
RecBole's Adam does within float32 rounding."""

import pytest
import torch
from recbole.trainer import Trainer

from recbole_selfattn.trainer import SequentialTrainer
from tests.test_acceleration import fit, prepare


@pytest.mark.parametrize("learner, fast_path, fused", [
    ("adam", True, True), ("AdamW", True, True), ("adam", False, False), ("sgd", True, False),
])
def test_the_trainer_fuses_adam_and_adamw_on_the_fast_path_only(learner, fast_path, fused, tiny_data):
    config, _, _, model = prepare("GRU4Rec", tiny_data, learner=learner, fast_path=fast_path,
                                  learning_rate=0.003, weight_decay=0.01)
    optimizer = SequentialTrainer(config, model).optimizer
    expected = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[learner.lower()]
    assert type(optimizer) is expected
    group = optimizer.param_groups[0]
    assert bool(group.get("fused")) is fused and (group["lr"], group["weight_decay"]) == (0.003, 0.01)
    assert [p for g in optimizer.param_groups for p in g["params"]] == list(model.parameters())


@pytest.mark.parametrize("name", ["MTAW", "GRU4Rec"])
def test_fused_adam_trains_as_recboles_adam_within_float32_rounding(name, tiny_data):
    plain, plain_model, _ = fit(Trainer, name, tiny_data, epochs=3, weight_decay=0.001)
    fused, fused_model, _ = fit(SequentialTrainer, name, tiny_data, epochs=3, weight_decay=0.001)
    assert fused.optimizer.param_groups[0]["fused"] and not plain.optimizer.param_groups[0].get("fused")
    assert list(fused.train_loss_dict) == [0, 1, 2]
    for epoch, loss in plain.train_loss_dict.items():
        assert fused.train_loss_dict[epoch] == pytest.approx(loss, rel=1e-5)
    for (key, ours), theirs in zip(fused_model.state_dict().items(), plain_model.state_dict().values()):
        assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5), key
    moved = [not torch.equal(a, b) for a, b in zip(fused_model.parameters(), prepare(name, tiny_data)[3].parameters())]
    assert all(moved)  # every weight trained: the comparison is not between untouched weights
