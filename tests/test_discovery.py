"""Models and trainers found by themselves: plugin models from their files,
``<Model>Trainer`` by name (RecBole's S3Rec gets ``S3RecTrainer``)."""

import pytest
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.trainer import KGATTrainer, S3RecTrainer, Trainer
from recbole.utils import ModelType

from recbole_selfattn import PLUGIN_MODELS, get_model, get_trainer
from recbole_selfattn.errors import UnknownModelError
from recbole_selfattn.trainer import SequentialTrainer
from recbole_selfattn.utils import plugin_model_names, recbole_model_classes, sequential_model_names


def test_plugin_models_are_the_model_files_with_a_property_file():
    assert plugin_model_names() == ["AttRec", "MIND", "MTAW"] and sorted(PLUGIN_MODELS) == sorted(plugin_model_names())
    for name in PLUGIN_MODELS:
        model = get_model(name)
        assert model.__name__ == name and issubclass(model, SequentialRecommender)
        assert model.__module__ == f"recbole_selfattn.model.{name.lower()}"


def test_recbole_models_are_read_from_source_and_resolve():
    classes = recbole_model_classes()
    assert classes["SASRec"] == "recbole.model.sequential_recommender.sasrec"
    assert classes["BPR"] == "recbole.model.general_recommender.bpr"
    assert get_model("SASRec").__module__ == classes["SASRec"]
    plugin, builtin = sequential_model_names()
    assert plugin == list(PLUGIN_MODELS) and {"S3Rec", "GRU4Rec", "Caser"} <= set(builtin)
    assert not set(plugin) & set(builtin)
    with pytest.raises(UnknownModelError, match="did you mean 'SASRec'"):
        get_model("sasrec")


def test_s3rec_gets_its_own_trainer_with_the_plugin_records():
    trainer = get_trainer(ModelType.SEQUENTIAL, "S3Rec")
    assert issubclass(trainer, S3RecTrainer) and issubclass(trainer, SequentialTrainer)
    # S3Rec's stages (fit) come first, the plugin's epoch records (_train_epoch) after them.
    assert trainer.fit is S3RecTrainer.fit and trainer._train_epoch is SequentialTrainer._train_epoch


def test_every_other_sequential_model_keeps_the_plugin_trainer():
    _, builtin = sequential_model_names()
    for name in [*PLUGIN_MODELS, *builtin]:
        if name != "S3Rec":
            assert get_trainer(ModelType.SEQUENTIAL, name) is SequentialTrainer, name


def test_other_models_get_recboles_choice():
    assert get_trainer(ModelType.GENERAL, "BPR") is Trainer
    assert get_trainer(ModelType.KNOWLEDGE, "KGAT") is KGATTrainer
