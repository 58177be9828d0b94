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

A clean error inside a rank (:class:`~recbole_selfattn.errors.UsageError`,
:class:`~recbole_selfattn.errors.NonFiniteLossError`) is sent back to the
parent, which stops the other ranks and raises the same error, so the command
line prints its one paragraph as in a single-process run.
"""

import errno
import socket

import torch
from torch.multiprocessing.spawn import ProcessException
from torch.nn.parallel import DistributedDataParallel

from recbole_selfattn.errors import NonFiniteLossError, UsageError

DEFAULT_PORT = 5678


def _port_message(port):
    return (
        f"Port {port} is already in use, so the distributed processes cannot meet there. "
        "Pick a free one with --port=N (e.g. --port=29500), or stop the run that holds it."
    )


def _address_in_use(error):
    text = str(error)
    return "EADDRINUSE" in text or "address already in use" in text.lower()


def uses_cuda(config_dict):
    return bool(config_dict.get("use_gpu", True)) and torch.cuda.is_available() and config_dict["gpu_id"] != ""


def init_process_group(config_dict):
    """Join the process group for ``config_dict['local_rank']`` on CPU (gloo)."""
    rank = config_dict["local_rank"] + config_dict["offset"]
    try:
        torch.distributed.init_process_group(
            backend="gloo",
            rank=rank,
            world_size=config_dict["world_size"],
            init_method=f"tcp://{config_dict['ip']}:{config_dict['port']}",
        )
    except RuntimeError as e:
        if _address_in_use(e):
            raise UsageError(_port_message(config_dict["port"])) from e
        raise
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
    """One rank: ``queue`` gets ``("result", result)`` from rank 0, or
    ``("error", exception)`` from any rank that met a clean error."""
    model, dataset, config_file_list, config_dict, saved, cmd_args = args
    config_dict = {**config_dict, "local_rank": rank}
    try:
        result = run_single(model, dataset, config_file_list, config_dict, saved, cmd_args)
    except (UsageError, NonFiniteLossError) as e:
        queue.put(("error", e))
        return
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if rank == 0 and config_dict["offset"] == 0:
        result["config"] = dict(result["config"].final_config_dict)
        queue.put(("result", result))


def check_port_free(port):
    """Raise :class:`UsageError` naming ``--port`` when ``port`` is taken on
    this machine (rank 0's process group would fail to listen there, and the
    other ranks would wait on whatever holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", int(port)))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UsageError(_port_message(port)) from e
            raise


def _collect(context, queue):
    """Wait for the ranks; return rank 0's result, or raise the first clean
    error a rank reported (stopping the others, which may be waiting on it)."""
    result = None
    while True:
        try:
            finished = context.join(timeout=1)
        except ProcessException:  # a rank crashed: a clean error another rank reported explains it
            for kind, payload in _drain(queue):
                if kind == "error":
                    raise payload from None
            raise
        for kind, payload in _drain(queue):
            if kind == "error":
                _terminate(context)
                raise payload
            result = payload
        if finished:
            return result


def _drain(queue):
    while not queue.empty():
        yield queue.get()


def _terminate(context):
    for process in context.processes:
        if process.is_alive():
            process.terminate()
        process.join()


def spawn(run_single, model, dataset, config_file_list, config_dict, saved, cmd_args, config):
    """Run ``run_single`` in ``config['nproc']`` processes; rank 0's result."""
    import torch.multiprocessing as mp

    nproc = config["nproc"]
    config_dict = {
        **(config_dict or {}),
        "nproc": nproc,
        "world_size": config["world_size"] if (config["world_size"] or -1) > 0 else nproc,
        "ip": config["ip"] or "localhost",
        "port": str(config["port"] or DEFAULT_PORT),
        "offset": config["offset"] or 0,
    }
    if config_dict["offset"] == 0:  # rank 0 listens on this machine
        check_port_free(config_dict["port"])
    queue = mp.get_context("spawn").SimpleQueue()
    context = mp.start_processes(
        _worker,
        args=(run_single, (model, dataset, config_file_list, config_dict, saved, cmd_args), queue),
        nprocs=nproc,
        join=False,
        start_method="spawn",
    )
    return _collect(context, queue)
