"""``@register`` and the dispatch-mode table.

A registered worker method is called once by the driver and runs on every rank (SPMD). Its
dispatch mode says how the driver's arguments are split into one argument list per rank, and
how the ranks' outputs are put back into the one value the driver gets:

=================  =========================================  ==========================================
mode               dispatch (driver -> ranks)                 collect (ranks -> driver)
=================  =========================================  ==========================================
RANK_ZERO          every rank gets the same arguments         rank 0's output
ONE_TO_ALL         every rank gets the same arguments         list of outputs, one per rank
ALL_TO_ALL         lists of world-size length are split,      list of outputs, one per rank
                   anything else is broadcast
DP_COMPUTE         every argument is a list, one item a rank  list of outputs, one per rank
DP_COMPUTE_PROTO   every argument is a DataProto: padded to   DataProto.concat of the outputs, with the
                   a multiple of the world size, chunked      padding rows dropped again
DP_COMPUTE_METRIC  as DP_COMPUTE_PROTO                        list of outputs (e.g. metric dicts)
=================  =========================================  ==========================================

``Execute.ALL`` runs the method on every rank, ``Execute.RANK_ZERO`` on rank 0 only (the driver
then gets rank 0's output as is). New modes: ``register_dispatch_mode(name, dispatch_fn, collect_fn)``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Optional, Union

from verl.single_controller.base.future import WorkerGroupFuture

# verl keeps the registration on the function under this attribute name; so do we.
MAGIC_ATTR = "attrs_3141562937"
# Per-rank count of padding rows, added by the DP_COMPUTE_PROTO dispatch and consumed on the worker.
PAD_ROWS_KEY = "_verl_sc_pad_rows"


class Dispatch(Enum):
    RANK_ZERO = "RANK_ZERO"
    ONE_TO_ALL = "ONE_TO_ALL"
    ALL_TO_ALL = "ALL_TO_ALL"
    DP_COMPUTE = "DP_COMPUTE"
    DP_COMPUTE_PROTO = "DP_COMPUTE_PROTO"
    DP_COMPUTE_METRIC = "DP_COMPUTE_METRIC"


class Execute(Enum):
    ALL = 0
    RANK_ZERO = 1


DispatchMode = Union[Dispatch, str, dict]


@dataclass(frozen=True)
class RegisteredMethod:
    """What ``@register`` recorded about a worker method."""

    dispatch_mode: DispatchMode
    execute_mode: Execute
    blocking: bool
    materialize_futures: bool


def register(
    dispatch_mode: DispatchMode = Dispatch.ALL_TO_ALL,
    execute_mode: Execute = Execute.ALL,
    blocking: bool = True,
    materialize_futures: bool = True,
) -> Callable:
    """Mark a Worker method as callable from the driver through a WorkerGroup.

    ``dispatch_mode``: a ``Dispatch`` member, the name of a mode added with ``register_dispatch_mode``,
    or a dict ``{"dispatch_fn": ..., "collect_fn": ...}``. ``blocking=False`` makes the driver-side
    call return a ``WorkerGroupFuture`` at once. ``materialize_futures``: futures passed as arguments
    are resolved on the worker before the method runs (DP shards always are).
    The function itself is returned unchanged, so it stays a plain method for local calls and debuggers.
    """
    _dispatch_fns(dispatch_mode)  # fail at class definition, not at the first call
    if not isinstance(execute_mode, Execute):
        raise TypeError(f"register: execute_mode must be an Execute member, got {execute_mode!r}")

    def decorator(func: Callable) -> Callable:
        setattr(func, MAGIC_ATTR, RegisteredMethod(dispatch_mode, execute_mode, blocking, materialize_futures))
        return func

    return decorator


def get_registered(func: Any) -> Optional[RegisteredMethod]:
    """The ``RegisteredMethod`` of a function, or None when it was not registered."""
    spec = getattr(func, MAGIC_ATTR, None)
    return spec if isinstance(spec, RegisteredMethod) else None


# ------------------------------------------------------------------------------------------------
# Padding helpers (pure)
# ------------------------------------------------------------------------------------------------
def padding_rows_per_rank(n_rows: int, world_size: int) -> list[int]:
    """How many of each rank's rows are padding after padding ``n_rows`` to a multiple of ``world_size``.

    Padding rows are appended at the end, so they sit on the last ranks: 5 rows on 4 ranks ->
    8 rows, 2 per rank, padding ``[0, 0, 1, 2]``.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    chunk = -(-n_rows // world_size)
    return [chunk - min(max(n_rows - r * chunk, 0), chunk) for r in range(world_size)]


def strip_padding(output: Any, pad_rows: int, n_input_rows: int, method: str) -> Any:
    """Drop the last ``pad_rows`` rows of a DataProto output that has one row per input row.

    Outputs without rows (e.g. metrics only) are returned unchanged; an output with another
    number of rows cannot be unpadded, which is an error naming the method.
    """
    from verl.protocol import DataProto

    if not pad_rows or not isinstance(output, DataProto) or len(output) == 0:
        return output
    if len(output) != n_input_rows:
        raise ValueError(
            f"{method}: returned {len(output)} rows for {n_input_rows} input rows, of which {pad_rows} are "
            "padding; DP_COMPUTE_PROTO can only drop padding from one-row-per-input outputs. Send a batch "
            "whose size divides the world size."
        )
    return output[: n_input_rows - pad_rows]


# ------------------------------------------------------------------------------------------------
# Lazily dispatched DataProto (a future from an earlier call, split on the worker)
# ------------------------------------------------------------------------------------------------
@dataclass
class DataProtoShard:
    """Rank ``rank``'s share of a DataProto that is still being computed.

    The driver sends this instead of data; the worker waits for the future, pads and chunks the
    result exactly as the DP_COMPUTE_PROTO dispatch would have, and keeps its own chunk.
    """

    future: Any
    rank: int
    world_size: int
    strip: bool

    def resolve(self):
        """Returns (this rank's chunk, its number of padding rows or None when padding is kept)."""
        from verl.protocol import DataProto, pad_dataproto_to_divisor

        data = self.future.get()
        if not isinstance(data, DataProto):
            raise TypeError(
                f"a future passed to a DP_COMPUTE_PROTO method resolved to {type(data).__name__}, not DataProto"
            )
        padded, _ = pad_dataproto_to_divisor(data, self.world_size)
        pad_rows = padding_rows_per_rank(len(data), self.world_size)[self.rank]
        return padded.chunk(self.world_size)[self.rank], (pad_rows if self.strip else None)


def _is_future(value: Any) -> bool:
    from verl.protocol import DataProtoFuture

    return isinstance(value, (WorkerGroupFuture, DataProtoFuture))


def _is_object_ref(value: Any) -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and isinstance(value, ray.ObjectRef)


def materialize_inputs(args: tuple, kwargs: dict, resolve_futures: bool = True):
    """Worker side of dispatch: replace shards, futures and Ray object refs by their values.

    Returns (args, kwargs, pad_rows) where pad_rows comes from the shards (None when there were none).
    """
    pad_rows: Optional[int] = None

    def resolve(value):
        nonlocal pad_rows
        if isinstance(value, DataProtoShard):
            value, rows = value.resolve()
            if pad_rows is not None and rows != pad_rows:
                raise ValueError("DataProto arguments of one DP_COMPUTE_PROTO call have different lengths")
            pad_rows = rows
            return value
        if resolve_futures and _is_future(value):
            return value.get()
        if _is_object_ref(value):
            return sys.modules["ray"].get(value)
        return value

    args = tuple(resolve(a) for a in args)
    kwargs = {k: resolve(v) for k, v in kwargs.items()}
    return args, kwargs, pad_rows


# ------------------------------------------------------------------------------------------------
# Dispatch and collect functions: dispatch_fn(worker_group, *args, **kwargs) -> (args, kwargs) where
# every arg and kwarg value is a list with one entry per rank; collect_fn(worker_group, outputs) -> value.
# ------------------------------------------------------------------------------------------------
def dispatch_one_to_all(worker_group, *args, **kwargs):
    n = worker_group.world_size
    return tuple([a] * n for a in args), {k: [v] * n for k, v in kwargs.items()}


def dispatch_all_to_all(worker_group, *args, **kwargs):
    n = worker_group.world_size

    def per_rank(v):
        return list(v) if isinstance(v, (list, tuple)) and len(v) == n else [v] * n

    return tuple(per_rank(a) for a in args), {k: per_rank(v) for k, v in kwargs.items()}


def dispatch_dp_compute(worker_group, *args, **kwargs):
    n = worker_group.world_size
    for name, v in [(f"argument {i}", a) for i, a in enumerate(args)] + list(kwargs.items()):
        if not isinstance(v, (list, tuple)) or len(v) != n:
            got = f"{type(v).__name__} of length {len(v)}" if isinstance(v, (list, tuple)) else type(v).__name__
            raise TypeError(f"DP_COMPUTE: {name} must be a list with one item per rank ({n}), got {got}")
    return tuple(list(a) for a in args), {k: list(v) for k, v in kwargs.items()}


def _split_data_protos(worker_group, args, kwargs, strip: bool, mode: str):
    from verl.protocol import DataProto, pad_dataproto_to_divisor

    n = worker_group.world_size
    named = [(f"argument {i}", a) for i, a in enumerate(args)] + list(kwargs.items())
    lengths = {name: len(v) for name, v in named if isinstance(v, DataProto)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{mode}: DataProto arguments have different lengths {lengths}")

    def split(name, value):
        if isinstance(value, DataProto):
            padded, _ = pad_dataproto_to_divisor(value, n)
            return padded.chunk(n)
        if _is_future(value):
            return [DataProtoShard(value, r, n, strip) for r in range(n)]
        raise TypeError(
            f"{mode}: {name} is a {type(value).__name__}; only DataProto (or a future of one) is split across ranks"
        )

    out_args = tuple(split(name, v) for name, v in named[: len(args)])
    out_kwargs = {k: split(k, v) for k, v in kwargs.items()}
    if strip and lengths:
        out_kwargs[PAD_ROWS_KEY] = padding_rows_per_rank(next(iter(lengths.values())), n)
    return out_args, out_kwargs


def dispatch_dp_compute_data_proto(worker_group, *args, **kwargs):
    return _split_data_protos(worker_group, args, kwargs, strip=True, mode="DP_COMPUTE_PROTO")


def dispatch_dp_compute_metric(worker_group, *args, **kwargs):
    return _split_data_protos(worker_group, args, kwargs, strip=False, mode="DP_COMPUTE_METRIC")


def collect_all_to_all(worker_group, outputs: list) -> list:
    return list(outputs)


def collect_rank_zero(worker_group, outputs: list) -> Any:
    return outputs[0]


def collect_dp_compute_data_proto(worker_group, outputs: list):
    from verl.protocol import DataProto

    for rank, out in enumerate(outputs):
        if not isinstance(out, DataProto):
            raise TypeError(
                f"DP_COMPUTE_PROTO: rank {rank} returned {type(out).__name__}; such methods must return a DataProto"
            )
    return DataProto.concat(outputs)


_DISPATCH_TABLE: dict[Union[Dispatch, str], dict[str, Callable]] = {
    Dispatch.RANK_ZERO: {"dispatch_fn": dispatch_one_to_all, "collect_fn": collect_rank_zero},
    Dispatch.ONE_TO_ALL: {"dispatch_fn": dispatch_one_to_all, "collect_fn": collect_all_to_all},
    Dispatch.ALL_TO_ALL: {"dispatch_fn": dispatch_all_to_all, "collect_fn": collect_all_to_all},
    Dispatch.DP_COMPUTE: {"dispatch_fn": dispatch_dp_compute, "collect_fn": collect_all_to_all},
    Dispatch.DP_COMPUTE_PROTO: {
        "dispatch_fn": dispatch_dp_compute_data_proto,
        "collect_fn": collect_dp_compute_data_proto,
    },
    Dispatch.DP_COMPUTE_METRIC: {"dispatch_fn": dispatch_dp_compute_metric, "collect_fn": collect_all_to_all},
}


def _table_key(dispatch_mode: Union[Dispatch, str]) -> Union[Dispatch, str]:
    """Dispatch members may also be named by string ("DP_COMPUTE_PROTO")."""
    if isinstance(dispatch_mode, str) and dispatch_mode in Dispatch.__members__:
        return Dispatch[dispatch_mode]
    return dispatch_mode


def _dispatch_fns(dispatch_mode: DispatchMode) -> dict[str, Callable]:
    if isinstance(dispatch_mode, dict):
        if set(dispatch_mode) != {"dispatch_fn", "collect_fn"}:
            raise ValueError(
                f"a dict dispatch mode needs exactly 'dispatch_fn' and 'collect_fn', got {sorted(dispatch_mode)}"
            )
        return dispatch_mode
    key = _table_key(dispatch_mode)
    if key not in _DISPATCH_TABLE:
        known = [m.name if isinstance(m, Dispatch) else m for m in _DISPATCH_TABLE]
        raise ValueError(f"unknown dispatch mode {dispatch_mode!r}; known: {known}")
    return _DISPATCH_TABLE[key]


def get_predefined_dispatch_fn(dispatch_mode: DispatchMode) -> dict[str, Callable]:
    """``{"dispatch_fn": ..., "collect_fn": ...}`` for a mode."""
    return _dispatch_fns(dispatch_mode)


def register_dispatch_mode(name: str, dispatch_fn: Callable, collect_fn: Callable) -> None:
    """Add a new dispatch mode, usable afterwards as ``@register(dispatch_mode=name)``."""
    if name in Dispatch.__members__ or name in _DISPATCH_TABLE:
        raise ValueError(f"dispatch mode {name!r} already exists; use update_dispatch_mode to replace it")
    _DISPATCH_TABLE[name] = {"dispatch_fn": dispatch_fn, "collect_fn": collect_fn}


def update_dispatch_mode(dispatch_mode: Union[Dispatch, str], dispatch_fn: Callable, collect_fn: Callable) -> None:
    """Replace the functions of an existing mode."""
    key = _table_key(dispatch_mode)
    if key not in _DISPATCH_TABLE:
        raise ValueError(f"unknown dispatch mode {dispatch_mode!r}")
    _DISPATCH_TABLE[key] = {"dispatch_fn": dispatch_fn, "collect_fn": collect_fn}


def get_predefined_execute_fn(execute_mode: Execute) -> dict[str, str]:
    """The WorkerGroup method that runs a call for an execute mode (verl's naming)."""
    names = {Execute.ALL: "execute_all", Execute.RANK_ZERO: "execute_rank_zero"}
    return {"execute_fn_name": names[execute_mode]}
