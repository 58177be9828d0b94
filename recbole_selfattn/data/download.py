"""Getting a dataset that is not on disk yet, without RecBole's pitfalls.

RecBole's ``Dataset._download`` asks for confirmation on stdin (which hangs or
fails without a terminal) and then calls ``torch.distributed.barrier()`` with
no process group, so a first download always crashes (RecBole issue #1989).
:func:`ensure_dataset` downloads before RecBole looks, and turns every failure
into one clear :class:`~recbole_selfattn.errors.DatasetError`.
"""

import os
from logging import getLogger

import yaml
from recbole.utils.url import download_url, extract_zip, makedirs, rename_atomic_files

from recbole_selfattn.data.atomic import check_dataset_files, inter_files
from recbole_selfattn.errors import DatasetError


def recbole_dataset_urls():
    import recbole

    path = os.path.join(os.path.dirname(recbole.__file__), "properties", "dataset", "url.yaml")
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


SESSION_HINT = (
    " Build the session benchmark files from the published pickles with "
    "`python -m recbole_selfattn.data.convert session --name {name} --raw DIR --out dataset/`."
)


def _missing_message(config, extra):
    name = config["dataset"]
    hints = {
        "ml-1m": " For MovieLens-1M offline, build it from the raw GroupLens files with "
        "`python -m recbole_selfattn.data.convert ml-1m --raw DIR --out dataset/`.",
        **{session: SESSION_HINT.format(name=session) for session in ("tmall", "retailrocket", "diginetica")},
    }
    missing = [path for path in inter_files(config) if not os.path.isfile(path)]
    return (
        f"Dataset '{name}' was not found: there is no {' and no '.join(missing)}.{extra} "
        f"Put RecBole atomic files `{name}.inter` (and optionally `.user`/`.item`) in "
        f"{config['data_path']}, or point --data_path at the folder that holds `{name}/`."
        f"{hints.get(name, '')} See dataset/README.md."
    )


def ensure_dataset(config):
    """Make sure ``config``'s dataset is on disk, downloading it if RecBole
    knows where from; raise :class:`DatasetError` otherwise."""
    if all(os.path.isfile(path) for path in inter_files(config)):
        return
    if config["benchmark_filename"]:
        raise DatasetError(_missing_message(config, " Benchmark splits (benchmark_filename) are never downloaded."))
    url = recbole_dataset_urls().get(config["dataset"].lower())
    if url is None:
        raise DatasetError(_missing_message(config, " It is not one of RecBole's downloadable datasets either."))
    if config["local_rank"] != 0:
        raise DatasetError(_missing_message(config, " Download it once with a single process first."))
    getLogger().info(f"Downloading dataset [{config['dataset']}] from [{url}].")
    try:
        makedirs(config["data_path"])
        path = download_url(url, config["data_path"])
        extract_zip(path, config["data_path"])
        os.unlink(path)
        rename_atomic_files(config["data_path"], os.path.splitext(os.path.basename(path))[0], config["dataset"])
    except OSError as e:
        raise DatasetError(_missing_message(config, f" Downloading it from {url} failed ({e}); are you offline?")) from e


def check_dataset(config):
    """The one check of a run's dataset, before anything is built from it:
    download it if RecBole can and it is missing, then check its atomic files
    (:func:`~recbole_selfattn.data.atomic.check_dataset_files`)."""
    ensure_dataset(config)
    check_dataset_files(config)
