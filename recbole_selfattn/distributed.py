"""Distributed data-parallel training through RecBole's own DDP support, on
GPUs (nccl) and on CPU (gloo).

RecBole 1.2.1 hard-codes the nccl backend, asserts one GPU id per process and
wraps the model with ``device_ids=[local_rank]``, all of which fail on CPU.
This module supplies the CPU path:

* :func:`init_process_group` (used by :class:`recbole_selfattn.Config`)
  picks gloo and the CPU device when CUDA is not used;
* :func:`apply` makes RecBole's trainer build ``DistributedDataParallel``
  without ``device_ids`` for a CPU model;
* :func:`spawn` starts ``nproc`` local processes, as RecBole's ``run`` does,
  and returns rank 0's result.

Config keys, as in RecBole: ``nproc`` (processes on this node), ``world_size``
(processes over all nodes; default ``nproc``), ``ip``/``port`` (rank 0's
address), ``offset`` (rank of this node's first process).
"""

import torch
from torch.nn.parallel import DistributedDataParallel


def uses_cuda(config_dict):
    return bool(config_dict.get("use_gpu", True)) and torch.cuda.is_available() and config_dict["gpu_id"] != ""


def init_process_group(config_dict):
    """Join the process group for ``config_dict['local_rank']`` on CPU (gloo)."""
    rank = config_dict["local_rank"] + config_dict["offset"]
    torch.distributed.init_process_group(
        backend="gloo",
        rank=rank,
        world_size=config_dict["world_size"],
        init_method=f"tcp://{config_dict['ip']}:{config_dict['port']}",
    )
    config_dict["device"] = torch.device("cpu")
    config_dict["single_spec"] = False
    if config_dict["local_rank"] != 0:
        config_dict["state"] = "error"
        config_dict["show_progress"] = False
        config_dict["verbose"] = False


def _cpu_aware_ddp(module, device_ids=None, **kwargs):
    if next(module.parameters()).device.type == "cpu":
        device_ids = None
    return DistributedDataParallel(module, device_ids=device_ids, **kwargs)


def apply():
    import recbole.trainer.trainer as trainer_module

    trainer_module.DistributedDataParallel = _cpu_aware_ddp


def _worker(rank, run_single, args, queue):
    model, dataset, config_file_list, config_dict, saved, cmd_args = args
    config_dict = {**config_dict, "local_rank": rank}
    try:
        result = run_single(model, dataset, config_file_list, config_dict, saved, cmd_args)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if rank == 0 and config_dict["offset"] == 0:
        result["config"] = dict(result["config"].final_config_dict)
        queue.put(result)


def spawn(run_single, model, dataset, config_file_list, config_dict, saved, cmd_args, config):
    """Run ``run_single`` in ``config['nproc']`` processes; rank 0's result."""
    import os

    import torch.multiprocessing as mp

    # RecBole's ranks would race to create these (check-then-makedirs).
    for folder in (os.path.join("log", config["model"]), config["checkpoint_dir"]):
        os.makedirs(folder, exist_ok=True)
    nproc = config["nproc"]
    config_dict = {
        **(config_dict or {}),
        "nproc": nproc,
        "world_size": config["world_size"] if (config["world_size"] or -1) > 0 else nproc,
        "ip": config["ip"] or "localhost",
        "port": str(config["port"] or 5678),
        "offset": config["offset"] or 0,
    }
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(
        _worker,
        args=(run_single, (model, dataset, config_file_list, config_dict, saved, cmd_args), queue),
        nprocs=nproc,
        join=True,
    )
    return None if queue.empty() else queue.get()
