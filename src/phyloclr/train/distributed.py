"""torch.distributed set-up for runs launched by torchrun (DDP); a no-op otherwise."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1).

    Backend: NCCL on CUDA, gloo on CPU. Returns rank 0 of 1 when not launched by torchrun.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    join_group("nccl" if device_type == "cuda" else "gloo")
    if device_type == "cuda":
        torch.cuda.set_device(local)
    return DistInfo(rank, world, local)


_CREATED: list[bool] = []  # whether join_group created the process group (it then destroys it)


def join_group(backend: str) -> None:
    """Initialise the default process group from torchrun's environment unless one exists."""
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
        _CREATED.append(True)


_ENDS_WITH_OS_EXIT: list[bool] = []  # see ends_with_os_exit


def ends_with_os_exit() -> None:
    """Declare that this process ends with ``os._exit`` after its command (the CLI under
    torchrun): :func:`leave_group` then leaves the group to the exit. Two-node CI runs that
    destroyed the group before exiting aborted rank 1; runs that left it to ``os._exit`` never
    tear gloo down at all."""
    _ENDS_WITH_OS_EXIT.append(True)


def leave_group() -> None:
    """Destroy the process group :func:`join_group` created, after the run's last collective
    (a caller's own group is left alone). Callers drop what holds the group (a
    DistributedDataParallel wrapper) first; garbage is collected before and after, so gloo's
    work objects and threads are released while the interpreter is alive. Released at
    interpreter exit instead, a gloo worker thread that needs the GIL aborts the process
    ("terminate called without an active exception", SIGABRT), failing a run whose work is
    done."""
    if _CREATED and dist.is_initialized() and not _ENDS_WITH_OS_EXIT:
        gc.collect()
        dist.destroy_process_group()
        gc.collect()
    _CREATED.clear()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
