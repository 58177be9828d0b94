"""RecBole's ``Config`` with the plugin's property files layered in.

Precedence, lowest to highest (the same order RecBole uses for its own files):

1. RecBole's defaults (``recbole/properties/overall.yaml``, and for
   sequential models RecBole's quick-start ``sequential.yaml``);
2. the plugin's shared protocol, ``properties/overall.yaml`` (sequential
   models), with RecBole's quick-start settings over it for the models that
   need them (:mod:`recbole_selfattn.protocol`);
3. the model's property file: RecBole's ``properties/model/<Model>.yaml`` for a
   built-in, the plugin's ``properties/model/<Model>.yaml`` for a plugin model;
4. the dataset's property file (RecBole's, then the plugin's
   ``properties/dataset/<dataset>.yaml``);
5. ``config_file_list`` (later files win), then ``config_dict``, then
   ``--key=value`` on the command line.

After ``import recbole_selfattn``, RecBole's own ``Config`` does the same for
a plugin model (:mod:`recbole_selfattn.dropin`); this subclass also applies
the protocol to RecBole's sequential built-ins, checks values and files
early and turns RecBole's errors into one-paragraph ones.
"""

import math
import os
import sys
from pathlib import Path

import recbole
import yaml
from recbole.config import Config as RecBoleConfig
from recbole.evaluator.register import metric_types
from recbole.utils import EvaluatorType, ModelType

from recbole_selfattn import distributed, output, protocol
from recbole_selfattn.acceleration import MIXED_PRECISION
from recbole_selfattn.errors import ConfigError, UsageError
from recbole_selfattn.dropin import is_plugin_model
from recbole_selfattn.utils import get_model, properties_dir

# No sane run exceeds it; far above it Adam's update overflows float32.
MAX_LEARNING_RATE = 10


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _at_least(minimum):
    return lambda v: is_int(v) and v >= minimum, f"an integer >= {minimum}"


def _is_topk(value):
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(is_int(k) and k >= 1 for k in values)


def _is_port(value):
    return (is_int(value) or (isinstance(value, str) and value.isdigit())) and 1 <= int(value) <= 65535


# key: (test, what a valid value is). Checked before RecBole sets its
# defaults, so a mistyped value fails here instead of deep inside numpy,
# torch or torch.distributed.
COMMON_VALUES = {
    "seed": (lambda v: is_int(v) and 0 <= v <= 2**31 - 1, "an integer between 0 and 2147483647"),
    "reproducibility": (lambda v: isinstance(v, bool), "True or False"),
    "epochs": _at_least(0),
    "train_batch_size": _at_least(1),
    "eval_batch_size": _at_least(1),
    "learning_rate": (
        lambda v: is_number(v) and 0 < v <= MAX_LEARNING_RATE,
        f"a number > 0 and <= {MAX_LEARNING_RATE} (typical values lie between 1e-4 and 1e-2)",
    ),
    "weight_decay": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "clip_grad_norm": (lambda v: isinstance(v, dict), "a dict of clip_grad_norm_ arguments, e.g. \"{'max_norm': 5}\""),
    "stopping_step": _at_least(1),
    "eval_step": (lambda v: is_int(v) and v >= 0, "an integer >= 0 (0 turns validation off)"),
    "topk": (_is_topk, "an integer >= 1 or a list of them, e.g. [10, 20]"),
    "worker": _at_least(0),
    "show_progress": (lambda v: isinstance(v, bool), "True or False"),
    "cpu_onednn": (lambda v: isinstance(v, bool), "True or False"),
    "mixed_precision": (lambda v: v in MIXED_PRECISION, " or ".join(MIXED_PRECISION)),
    "compile": (lambda v: isinstance(v, bool), "True or False"),
    "fast_path": (lambda v: isinstance(v, bool), "True or False"),
    "MAX_ITEM_LIST_LENGTH": _at_least(1),
    "embedding_size": _at_least(1),
    "nproc": _at_least(1),
    "world_size": (lambda v: is_int(v) and (v == -1 or v >= 1), "-1 (one process per --nproc) or an integer >= 1"),
    "offset": _at_least(0),
    "port": (_is_port, "a TCP port number between 1 and 65535"),
}


def _check_config_file(file):
    """Raise :class:`ConfigError` unless ``file`` is an existing regular file."""
    if os.path.isdir(file):
        raise ConfigError(
            f"Config file '{file}' is a directory. Give --config_files the YAML files themselves "
            f"(e.g. --config_files={os.path.join(file, 'my.yaml')})."
        )
    if not os.path.isfile(file):
        raise ConfigError(
            f"Config file '{file}' does not exist. Check the path given to "
            "--config_files (paths are relative to the current directory)."
        )


def _read_config_file(file, loader):
    """The ``key: value`` pairs of one config file (empty file: none).

    Raises :class:`ConfigError` naming the file, and the line where YAML
    reports it, when the file is not UTF-8 YAML holding a mapping."""
    try:
        with open(file, encoding="utf-8") as f:
            content = yaml.load(f.read(), Loader=loader)
    except UnicodeDecodeError as e:
        raise ConfigError(f"Config file '{file}' is not UTF-8 text ({e.reason}). Save it as UTF-8 YAML.") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(
            f"Config file '{file}'{where} is not valid YAML: {problem}. "
            "Each line should read `key: value`; fix the file and run again."
        ) from e
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(
            f"Config file '{file}' holds a {type(content).__name__}, not `key: value` lines. "
            "Write one `key: value` per line (e.g. `learning_rate: 0.001`)."
        )
    return content

class Config(RecBoleConfig):
    """RecBole ``Config`` that knows the plugin's models and property files.

    Args:
        model (str or class): model name or class (plugin or RecBole built-in).
        dataset (str): dataset name.
        config_file_list (list of str): YAML files, later ones win.
        config_dict (dict): parameters, above the files.
        cmd_args (list of str): ``--key=value`` overrides, above everything;
            ``None`` reads ``sys.argv[1:]`` as RecBole does.
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None):
        self._cmd_args = sys.argv[1:] if cmd_args is None else list(cmd_args)
        for file in config_file_list or []:
            _check_config_file(file)
        try:
            super().__init__(model, dataset, config_file_list, config_dict)
        except UsageError:
            raise
        except yaml.YAMLError as e:
            raise ConfigError(f"A property file is not valid YAML: {e}. Fix the file and run again.") from e
        except (ValueError, TypeError, KeyError, NotImplementedError, RuntimeError, AssertionError) as e:
            raise ConfigError(
                f"Invalid configuration: {e}. Fix that value in your config file, config dict "
                "or --key=value option; RecBole's documentation lists each key's meaning."
            ) from e
        self._check_valid_metric()

    def _load_config_files(self, file_list):
        """RecBole's file loading, with errors that name the file (and line)."""
        file_config_dict = {}
        for file in file_list or []:
            file_config_dict.update(_read_config_file(file, self.yaml_loader))
        return file_config_dict

    def _load_cmd_line(self):
        cmd_config_dict = {}
        for arg in self._cmd_args:
            if not arg.startswith("--") or "=" not in arg:
                continue
            key, value = arg[2:].split("=", 1)
            if key in cmd_config_dict and cmd_config_dict[key] != value:
                raise ConfigError(f"--{key} is given twice with different values; keep one.")
            cmd_config_dict[key] = value
        return self._convert_config_dict(cmd_config_dict)

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise ConfigError("No model given: pass --model=NAME (e.g. --model=AttRec).")
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise ConfigError("No dataset given: pass --dataset=NAME (e.g. --dataset=ml-100k).")
        if isinstance(model, str):
            return model, get_model(model), dataset
        return model.__name__, model, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        # RecBole's Config loads the plugin's files for a plugin model
        # (recbole_selfattn.dropin); this class adds them for built-ins too.
        super()._load_internal_config_dict(model, model_class, dataset)
        if not is_plugin_model(model_class):
            load_plugin_properties(self, model, model_class, dataset)

    def _set_default_parameters(self):
        self._check_common_values()  # before RecBole's own use of them
        super()._set_default_parameters()
        if "show_progress" not in self.external_config_dict:
            self.final_config_dict["show_progress"] = output.default_show_progress()
        # RecBole always points ml-100k at its bundled copy; honour a data_path
        # the user set explicitly when it holds the dataset.
        user_path = self.external_config_dict.get("data_path")
        if self.dataset == "ml-100k" and user_path:
            candidate = os.path.join(user_path, self.dataset)
            if os.path.isfile(os.path.join(candidate, f"{self.dataset}.inter")):
                self.final_config_dict["data_path"] = candidate

    def _set_train_neg_sample_args(self):
        protocol.set_sampled_negatives(self, builtin=not is_plugin_model(self.model_class))
        super()._set_train_neg_sample_args()

    def _init_device(self):
        """RecBole's device set-up, plus distributed training on CPU (gloo)."""
        if "local_rank" in self.final_config_dict and not distributed.uses_cuda(self.final_config_dict):
            self.final_config_dict["gpu_id"] = str(self.final_config_dict["gpu_id"])
            distributed.init_process_group(self.final_config_dict)
        else:
            super()._init_device()

    def _check_common_values(self):
        """Check the values every run uses before RecBole or torch trips over them."""
        for key, (ok, expected) in COMMON_VALUES.items():
            if self.final_config_dict.get(key) is not None:
                require(self, key, ok, expected)

    def _check_valid_metric(self):
        valid_metric = self.final_config_dict["valid_metric"]
        topk = self.final_config_dict["topk"]
        computed = []
        for m in self.final_config_dict["metrics"]:  # value metrics (AUC, LogLoss) have no @k
            ranking = metric_types.get(m.lower()) != EvaluatorType.VALUE
            computed += [f"{m}@{k}" for k in topk] if ranking else [m]
        if valid_metric.lower() not in {name.lower() for name in computed}:
            raise ConfigError(
                f"valid_metric '{valid_metric}' is not among the computed metrics ({', '.join(computed)}). "
                "Set --valid_metric to one of them, or add its metric/topk."
            )


def load_plugin_properties(config, model, model_class, dataset):
    """Layer the plugin's files over RecBole's in ``config`` (a RecBole
    ``Config`` loading its internal files): the protocol (sequential models),
    and RecBole's quick-start settings of the models that cannot use it as it
    is (:mod:`recbole_selfattn.protocol`), then the model's and the dataset's
    property files, RecBole's before the plugin's (see the module docstring
    for the whole order)."""
    recbole_properties = Path(recbole.__file__).resolve().parent / "properties"
    plugin = properties_dir()
    layers = [
        recbole_properties / "model" / f"{model}.yaml",
        plugin / "model" / f"{model}.yaml",
        recbole_properties / "dataset" / f"{dataset}.yaml",
        plugin / "dataset" / f"{dataset}.yaml",
    ]
    if model_class.type == ModelType.SEQUENTIAL:
        layers[:0] = [plugin / "overall.yaml", *protocol.recbole_quick_start_files(model, dataset)]
    for file in layers:
        if file.is_file():
            config_dict = config._update_internal_config_dict(str(file)) or {}
            if file.parent.name == "dataset":
                config.parameters["Dataset"] += [k for k in config_dict if k not in config.parameters["Dataset"]]


def require(config, key, ok, expected):
    """Raise :class:`ConfigError` naming ``key`` unless ``ok(config[key])``.

    Models call this in ``__init__`` for their own hyper-parameters."""
    value = config[key]
    try:
        valid = bool(ok(value))
    except TypeError:
        valid = False
    if not valid:
        raise ConfigError(
            f"Config value {key}={value!r} is invalid: {key} must be {expected}. "
            f"Set it in the model's YAML, a --config_files file, or with --{key}=VALUE."
        )
