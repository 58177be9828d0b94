"""The trainer's speed options (``recbole_selfattn/acceleration.py``): off they
train exactly as RecBole's trainer; ``mixed_precision=bf16`` runs training and
evaluation under bf16 autocast with losses near float32; ``compile`` gives
eager's losses and scores and checkpoints without compile's traces; bad
values are one-paragraph errors."""

import pytest
import torch
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.trainer import Trainer
from recbole.utils import init_seed

from recbole_selfattn import acceleration, checkpoint, cli
from recbole_selfattn.config import Config
from recbole_selfattn.data import create_dataset, data_preparation
from recbole_selfattn.trainer import SequentialTrainer
from recbole_selfattn.utils import get_model
from tests.conftest import cli_args, one_paragraph_error, tiny_config


def prepare(name, data_path, **overrides):
    """Config, train/valid loaders and a freshly seeded model, as ``quick_start`` builds them."""
    config = Config(name, "tiny", config_dict=tiny_config(data_path, **overrides), cmd_args=[])
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(name)(config, train_data._dataset)
    return config, train_data, valid_data, model


def fit(trainer_class, name, data_path, **overrides):
    """Train ``name`` with ``trainer_class``; the trainer, its model and the validation loader."""
    config, train_data, valid_data, model = prepare(name, data_path, **overrides)
    trainer = trainer_class(config, model)
    trainer.fit(train_data, valid_data, saved=False)
    return trainer, model, valid_data


def first_batch(loader):
    batch = next(iter(loader))
    return batch[0] if isinstance(batch, tuple) else batch


@pytest.mark.parametrize("name", ["MTAW", "SASRec"])
def test_options_off_train_exactly_as_recboles_trainer(name, tiny_data):
    # fast_path False: RecBole's Adam (tests/test_fastpath_optimizer.py compares the fused one)
    plain, _, _ = fit(Trainer, name, tiny_data, epochs=2, fast_path=False)
    ours, _, _ = fit(SequentialTrainer, name, tiny_data, epochs=2, mixed_precision="none", compile=False,
                     fast_path=False)
    assert ours.train_loss_dict == plain.train_loss_dict and len(plain.train_loss_dict) == 2
    assert ours.best_valid_result == plain.best_valid_result


def test_autocast_context():
    cpu = torch.device("cpu")
    with acceleration.autocast(cpu, "none"):
        assert not torch.is_autocast_enabled("cpu")
    with acceleration.autocast(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("name", ["MTAW", "AttRec", "SASRec"])
def test_bf16_trains_and_evaluates_under_autocast_with_losses_near_fp32(name, tiny_data, monkeypatch):
    seen = []
    for method in ("calculate_loss", "full_sort_predict"):
        original = getattr(get_model(name), method)

        def recording(self, interaction, original=original, method=method):
            seen.append((method, torch.is_autocast_enabled("cpu")))
            return original(self, interaction)

        monkeypatch.setattr(get_model(name), method, recording)
    fp32, _, _ = fit(SequentialTrainer, name, tiny_data, epochs=2)
    assert {autocast for _, autocast in seen} == {False}
    seen.clear()
    bf16, _, _ = fit(SequentialTrainer, name, tiny_data, epochs=2, mixed_precision="bf16")
    assert {method for method, _ in seen} == {"calculate_loss", "full_sort_predict"}
    assert {autocast for _, autocast in seen} == {True}
    for epoch, loss in fp32.train_loss_dict.items():
        assert bf16.train_loss_dict[epoch] == pytest.approx(loss, rel=0.03)
        assert bf16.train_loss_dict[epoch] != loss  # bf16 rounding did change the computation


def test_compile_gives_eager_losses_and_scores_and_plain_checkpoints(tiny_data):
    """One tiny MTAW, one training batch per epoch (one shape to compile:
    the test takes ~30-60 s on a 2-core CPU). Dropout is 0: compiled code
    draws its random masks differently from eager."""
    options = {"epochs": 2, "dropout_prob": 0.0, "train_batch_size": 4096}
    eager, _, _ = fit(SequentialTrainer, "MTAW", tiny_data, **options)
    compiled, model, valid_data = fit(SequentialTrainer, "MTAW", tiny_data, compile=True, **options)
    assert len(valid_data) == 1
    for epoch, loss in eager.train_loss_dict.items():
        assert compiled.train_loss_dict[epoch] == pytest.approx(loss, rel=1e-4)
    assert "calculate_loss" in vars(model) and "full_sort_predict" in vars(model)  # compiled, on the model

    batch = first_batch(valid_data)
    model.eval()
    with torch.no_grad():
        compiled_scores = model.full_sort_predict(batch)
        eager_scores = type(model).full_sort_predict(model, batch)
    torch.testing.assert_close(compiled_scores, eager_scores, rtol=1e-4, atol=1e-5)

    compiled._save_checkpoint(1, verbose=False)
    state = checkpoint.load(compiled.saved_model_file)
    _, _, _, fresh = prepare("MTAW", tiny_data, **options)
    assert list(state["state_dict"]) == list(fresh.state_dict())  # no "_orig_mod." keys
    fresh.load_state_dict(state["state_dict"])
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval().full_sort_predict(batch), eager_scores, rtol=1e-4, atol=1e-5)


class LossOnly(AbstractRecommender):
    """A model defining ``calculate_loss`` and ``predict`` but no ``full_sort_predict``."""

    def calculate_loss(self, interaction):
        return interaction.sum()

    def predict(self, interaction):
        return interaction


def test_compile_leaves_a_method_the_model_lacks_to_recboles_fallback():
    model = acceleration.compile_trainer_calls(LossOnly())
    assert set(vars(model)) >= {"calculate_loss", "predict"} and "full_sort_predict" not in vars(model)
    with pytest.raises(NotImplementedError):  # RecBole's trainer then ranks with predict
        model.full_sort_predict(torch.ones(1))


@pytest.mark.parametrize(
    "option, expected",
    [
        ("--mixed_precision=fp8", "mixed_precision='fp8' is invalid: mixed_precision must be none or bf16"),
        ("--compile=yes", "compile='yes' is invalid: compile must be True or False"),
    ],
)
def test_invalid_option_value(option, expected, tiny_data, capsys):
    assert cli.main(["--model=GRU4Rec", "--dataset=tiny", *cli_args(tiny_data), option]) == 2
    assert expected in one_paragraph_error(capsys)
