"""Shared fixtures: tiny generated datasets and a fast config.

Tests never need the shared datasets: they generate RecBole atomic files in a
temporary folder (or use RecBole's bundled ml-100k)."""

import os

import pytest

import recbole_selfattn  # noqa: F401  (applies the compatibility fixes)


def write_inter(folder, name, sequences, users=None):
    """Write ``folder/name/name.inter`` from one item sequence per user.

    Items are written as tokens ``i<id>``, timestamps increase along each
    sequence, so RecBole's TO + leave-one-out split sees them in order."""
    path = os.path.join(folder, name)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, f"{name}.inter"), "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for u, seq in enumerate(sequences):
            user = users[u] if users else f"u{u}"
            for t, item in enumerate(seq):
                f.write(f"{user}\ti{item}\t{t}\n")
    return folder


def write_item_classes(folder, name, n_items=30):
    """Write ``folder/name/name.item``: a ``class`` feature (two tokens) for
    items ``i1`` .. ``i<n_items>``, for models that read item features."""
    with open(os.path.join(folder, name, f"{name}.item"), "w") as f:
        f.write("item_id:token\tclass:token_seq\n")
        f.writelines(f"i{i}\tc{i % 3} c{i % 5}\n" for i in range(1, n_items + 1))


def cyclic_sequences(n_users=60, n_items=30, length=12, step=1):
    """Deterministic next-item rule: every user walks the item ring, item
    ``i`` is always followed by ``i + step`` (mod ``n_items``), starting
    from a user-specific item. A model that learns the rule ranks the
    target first. What a random ranker scores depends on the candidates left
    after RecBole's evaluation masking: each learning test states its figure."""
    return [[(u + step * t) % n_items + 1 for t in range(length)] for u in range(n_users)]


def tiny_config(data_path, **overrides):
    """A config that trains in seconds on the tiny datasets."""
    config = {
        "data_path": str(data_path),
        "epochs": 1,
        "train_batch_size": 64,
        "eval_batch_size": 256,
        "embedding_size": 16,
        "hidden_size": 16,
        "inner_size": 32,
        "n_layers": 1,
        "n_heads": 1,
        "MAX_ITEM_LIST_LENGTH": 10,
        "show_progress": False,
        "state": "WARNING",
        "use_gpu": False,
        "gpu_id": "",
        "checkpoint_dir": "saved",
        "reproducibility": True,
        "seed": 2020,
        "log_wandb": False,
        # oneDNN's CPU convolution backward intermittently gives Caser NaN
        # weight gradients (properties/overall.yaml): tests train without it.
        "cpu_onednn": False,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    }
    config.update(overrides)
    return config


def cli_args(data_path, **overrides):
    """``tiny_config`` as ``--key=value`` command-line arguments."""
    config = tiny_config(data_path, **overrides)
    config.pop("load_col")
    return [f"--{key}={value}" for key, value in config.items()]


def one_paragraph_error(capsys):
    """The command line's stderr, checked to be one ``error: ...`` line (the
    one-paragraph error of bad input) with no traceback."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    """A folder with a ``tiny`` dataset (cyclic rule); the test runs inside
    ``tmp_path`` so RecBole's ``log/`` and ``saved/`` land there."""
    monkeypatch.chdir(tmp_path)
    return write_inter(tmp_path / "data", "tiny", cyclic_sequences())
