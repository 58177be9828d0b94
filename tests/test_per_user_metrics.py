"""The trainer's per-user test metrics (``SequentialTrainer.per_user_result``),
which the leaderboard's significance tests pair across models: kept for the
test evaluation only, and averaging to the test metrics RecBole reports."""

import pytest
from recbole.utils import init_seed

from recbole_selfattn.config import Config
from recbole_selfattn.data import create_dataset, data_preparation
from recbole_selfattn.trainer import SequentialTrainer
from recbole_selfattn.utils import get_model
from tests.conftest import tiny_config


def test_per_user_ndcg_is_kept_for_the_test_only_and_averages_to_the_test_metric(tiny_data):
    config = Config("GRU4Rec", "tiny", config_dict=tiny_config(tiny_data, epochs=2), cmd_args=[])
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model = get_model("GRU4Rec")(config, train_data._dataset)
    trainer = SequentialTrainer(config, model)
    trainer.fit(train_data, valid_data, saved=False)
    assert len(trainer.valid_curve) == 2 and trainer.per_user_result is None  # validation keeps none

    test_result = trainer.evaluate(test_data, load_best_model=False)
    per_user = trainer.per_user_result
    tokens = test_data._dataset.field2id_token["user_id"]
    assert sorted(per_user["users"]) == sorted(str(tokens[u]) for u in set(test_data._dataset.inter_feat["user_id"].tolist()))
    for k in config["topk"]:
        values = per_user[f"ndcg@{k}"]
        assert len(values) == len(per_user["users"])
        assert sum(values) / len(values) == pytest.approx(test_result[f"ndcg@{k}"], abs=5e-5)  # RecBole rounds to 4 places
