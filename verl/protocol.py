"""DataProto: the one container that crosses every worker-group boundary.

A DataProto holds
  * ``batch``: a TensorDict whose tensors share dim 0 (the batch dimension), or None;
  * ``non_tensor_batch``: ``{key: np.ndarray}`` (usually ``dtype=object``), first dim = batch size;
  * ``meta_info``: a plain dict that applies to the whole batch (temperature, metrics, ...).

Names and semantics follow verl's ``verl/protocol.py`` so code written against verl runs unchanged.
"""
from __future__ import annotations

import copy
import pickle
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

__all__ = [
    "DataProto",
    "DataProtoItem",
    "DataProtoFuture",
    "collate_fn",
    "pad_dataproto_to_divisor",
    "unpad_dataproto",
    "union_two_dict",
    "union_tensor_dict",
    "union_numpy_dict",
    "list_of_dict_to_dict_of_list",
]


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _to_object_array(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array holding ``values`` as they are (np.array would turn equal-length lists into 2-D)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _as_non_tensor(key: str, value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)):
        return _to_object_array(value)
    raise TypeError(
        f"non_tensor_batch[{key!r}] must be a numpy array or a list, got {type(value).__name__}"
    )


def _values_equal(a: Any, b: Any) -> bool:
    """Equality that works for tensors, numpy arrays, nested containers and plain objects."""
    if a is b:
        return True
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a.cpu(), b.cpu()))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        if a_arr.shape != b_arr.shape:
            return False
        if a_arr.dtype == object or b_arr.dtype == object:
            return all(_values_equal(x, y) for x, y in zip(a_arr.ravel(), b_arr.ravel()))
        return bool(np.array_equal(a_arr, b_arr, equal_nan=a_arr.dtype.kind == "f"))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_values_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:  # objects whose == is not a bool
        return False


def _index_to_numpy(idx: Any, length: int) -> np.ndarray:
    """Normalize an index (list, numpy array, tensor, bool mask) to an int64 numpy array."""
    if isinstance(idx, torch.Tensor):
        idx = idx.detach().cpu().numpy()
    idx = np.asarray(idx)
    if idx.dtype == bool:
        if idx.shape != (length,):
            raise IndexError(f"boolean index has shape {idx.shape}, expected ({length},)")
        return np.nonzero(idx)[0]
    if idx.size == 0:
        return idx.astype(np.int64)
    if idx.dtype.kind not in "iu":
        raise IndexError(f"index array must hold integers or booleans, got dtype {idx.dtype}")
    return idx.astype(np.int64)


def union_two_dict(dict1: dict, dict2: dict) -> dict:
    """Merge ``dict2`` into ``dict1`` (in place); a key present in both must hold equal values."""
    for key, val in dict2.items():
        if key in dict1 and not _values_equal(dict1[key], val):
            raise ValueError(f"union: meta_info key {key!r} differs: {dict1[key]!r} vs {val!r}")
        dict1[key] = val
    return dict1


def union_tensor_dict(tensor_dict1: TensorDict, tensor_dict2: TensorDict) -> TensorDict:
    """Merge the tensors of ``tensor_dict2`` into ``tensor_dict1``; shared keys must hold equal tensors."""
    if tensor_dict1.batch_size != tensor_dict2.batch_size:
        raise ValueError(
            f"union: batch sizes differ: {tuple(tensor_dict1.batch_size)} vs {tuple(tensor_dict2.batch_size)}"
        )
    for key in tensor_dict2.keys():
        val = tensor_dict2[key]
        if key in tensor_dict1.keys() and not _values_equal(tensor_dict1[key], val):
            raise ValueError(f"union: tensor {key!r} differs between the two DataProtos")
        tensor_dict1[key] = val
    return tensor_dict1


def union_numpy_dict(dict1: dict[str, np.ndarray], dict2: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Merge the arrays of ``dict2`` into ``dict1``; shared keys must hold equal arrays."""
    for key, val in dict2.items():
        if key in dict1 and not _values_equal(dict1[key], val):
            raise ValueError(f"union: non-tensor {key!r} differs between the two DataProtos")
        dict1[key] = val
    return dict1


def list_of_dict_to_dict_of_list(list_of_dict: list[dict]) -> dict[str, list]:
    """``[{"a": 1}, {"a": 2}] -> {"a": [1, 2]}``; every dict must have the same keys."""
    if not list_of_dict:
        return {}
    keys = list_of_dict[0].keys()
    out: dict[str, list] = {k: [] for k in keys}
    for i, d in enumerate(list_of_dict):
        if d.keys() != keys:
            raise ValueError(f"dict {i} has keys {sorted(d)}, expected {sorted(keys)}")
        for k, v in d.items():
            out[k].append(v)
    return out


def _merge_metrics(meta_infos: list[dict]) -> dict[str, list]:
    """Concatenate ``meta_info["metrics"]`` of several DataProtos into one dict of lists."""
    merged: dict[str, list] = defaultdict(list)
    for meta in meta_infos:
        metrics = meta.get("metrics")
        if not metrics:
            continue
        for item in metrics if isinstance(metrics, list) else [metrics]:
            for k, v in item.items():
                merged[k].extend(v if isinstance(v, list) else [v])
    return dict(merged)


# ----------------------------------------------------------------------------------------------
# DataProto
# ----------------------------------------------------------------------------------------------
@dataclass
class DataProtoItem:
    """One row of a DataProto: ``batch`` is a 0-dim TensorDict, non-tensors are the row's objects."""

    batch: Optional[TensorDictBase] = None
    non_tensor_batch: dict = field(default_factory=dict)
    meta_info: dict = field(default_factory=dict)


@dataclass
class DataProto:
    """A batch: tensors sharing dim 0 (``batch``), numpy arrays (``non_tensor_batch``), ``meta_info``."""

    batch: Optional[TensorDict] = None
    non_tensor_batch: dict = field(default_factory=dict)
    meta_info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.non_tensor_batch = {k: _as_non_tensor(k, v) for k, v in self.non_tensor_batch.items()}
        self.check_consistency()

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_dict(
        cls,
        tensors: Optional[dict[str, torch.Tensor]] = None,
        non_tensors: Optional[dict[str, Any]] = None,
        meta_info: Optional[dict] = None,
        num_batch_dims: int = 1,
    ) -> "DataProto":
        """Build from ``{key: tensor [B, ...]}``, ``{key: array/list [B]}`` and ``meta_info``.

        Raises ValueError naming the keys and sizes when the batch sizes disagree.
        """
        tensors = dict(tensors or {})
        non_tensors = dict(non_tensors or {})
        if num_batch_dims < 1:
            raise ValueError(f"num_batch_dims must be >= 1, got {num_batch_dims}")
        batch = None
        if tensors:
            sizes = {}
            for key, t in tensors.items():
                if not isinstance(t, torch.Tensor):
                    raise TypeError(f"tensors[{key!r}] must be a torch.Tensor, got {type(t).__name__}")
                if t.dim() < num_batch_dims:
                    raise ValueError(f"tensors[{key!r}] has {t.dim()} dims, fewer than num_batch_dims={num_batch_dims}")
                sizes[key] = tuple(t.shape[:num_batch_dims])
            if len(set(sizes.values())) > 1:
                detail = ", ".join(f"{k}: {v}" for k, v in sizes.items())
                raise ValueError(f"DataProto.from_dict: tensors disagree on batch size ({detail})")
            batch = TensorDict(source=tensors, batch_size=next(iter(sizes.values())))
        return cls(batch=batch, non_tensor_batch=non_tensors, meta_info=dict(meta_info or {}))

    @classmethod
    def from_single_dict(cls, data: dict[str, Any], meta_info: Optional[dict] = None) -> "DataProto":
        """Build from one dict, sorting torch tensors into ``batch`` and numpy arrays into non-tensors."""
        tensors, non_tensors = {}, {}
        for key, val in data.items():
            if isinstance(val, torch.Tensor):
                tensors[key] = val
            elif isinstance(val, np.ndarray):
                non_tensors[key] = val
            else:
                raise TypeError(
                    f"DataProto.from_single_dict: {key!r} is a {type(val).__name__}; "
                    "expected a torch.Tensor or a numpy array"
                )
        return cls.from_dict(tensors=tensors, non_tensors=non_tensors, meta_info=meta_info)

    def check_consistency(self) -> None:
        """Raise ValueError (naming key and sizes) unless all tensors and arrays share the batch size."""
        if self.batch is not None and len(self.batch.batch_size) != 1 and self.non_tensor_batch:
            raise ValueError(
                f"non_tensor_batch needs a 1-D batch, but batch has batch_size {tuple(self.batch.batch_size)}"
            )
        expected_key, expected = None, None
        if self.batch is not None and len(self.batch.batch_size) >= 1:
            expected_key, expected = "batch", self.batch.batch_size[0]
        for key, val in self.non_tensor_batch.items():
            if not isinstance(val, np.ndarray):
                raise TypeError(f"non_tensor_batch[{key!r}] must be a numpy array, got {type(val).__name__}")
            if val.ndim == 0:
                raise ValueError(f"non_tensor_batch[{key!r}] is 0-dimensional; it needs one entry per row")
            if expected is None:
                expected_key, expected = key, val.shape[0]
            elif val.shape[0] != expected:
                where = "tensors in batch" if expected_key == "batch" else f"non_tensor_batch[{expected_key!r}]"
                raise ValueError(
                    f"DataProto: non_tensor_batch[{key!r}] has {val.shape[0]} rows but {where} has {expected}"
                )

    # -- size and indexing ----------------------------------------------------------------------
    def __len__(self) -> int:
        if self.batch is not None:
            return int(self.batch.batch_size[0])
        if self.non_tensor_batch:
            return int(next(iter(self.non_tensor_batch.values())).shape[0])
        return 0

    def __getitem__(self, item):
        """``dp[int]`` -> DataProtoItem; ``dp[slice]``, ``dp[list/array/tensor/bool mask]`` -> DataProto."""
        if isinstance(item, slice):
            return self.slice(item.start, item.stop, item.step)
        if isinstance(item, (int, np.integer)) or (isinstance(item, torch.Tensor) and item.dim() == 0):
            i = int(item)
            n = len(self)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of range for a DataProto of length {n}")
            batch = self.batch[i] if self.batch is not None else None
            return DataProtoItem(
                batch=batch, non_tensor_batch={k: v[i] for k, v in self.non_tensor_batch.items()}, meta_info=self.meta_info
            )
        if isinstance(item, (list, tuple, np.ndarray, torch.Tensor)):
            return self.select_idxs(item)
        raise TypeError(f"DataProto indices must be int, slice, list, numpy array or tensor, not {type(item).__name__}")

    def slice(self, start: Optional[int] = None, end: Optional[int] = None, step: Optional[int] = None) -> "DataProto":
        """Rows ``start:end:step`` as a new DataProto (tensors are views)."""
        s = slice(start, end, step)
        batch = self.batch[s] if self.batch is not None else None
        non_tensors = {k: v[s] for k, v in self.non_tensor_batch.items()}
        return DataProto(batch=batch, non_tensor_batch=non_tensors, meta_info=self.meta_info)

    def select_idxs(self, idxs) -> "DataProto":
        """Rows picked by an integer index array or a boolean mask of shape [B]."""
        np_idx = _index_to_numpy(idxs, len(self))
        batch = None
        if self.batch is not None:
            t_idx = torch.as_tensor(np_idx, dtype=torch.long, device=self.batch.device)
            batch = self.batch[t_idx]
        non_tensors = {k: v[np_idx] for k, v in self.non_tensor_batch.items()}
        return DataProto(batch=batch, non_tensor_batch=non_tensors, meta_info=self.meta_info)

    # -- pickling (Ray ships DataProtos between processes) ---------------------------------------
    def __getstate__(self):
        batch_state = None
        if self.batch is not None:
            batch_state = ({k: v for k, v in self.batch.items()}, tuple(self.batch.batch_size))
        return batch_state, self.non_tensor_batch, self.meta_info

    def __setstate__(self, state):
        batch_state, self.non_tensor_batch, self.meta_info = state
        self.batch = None
        if batch_state is not None:
            tensors, batch_size = batch_state
            self.batch = TensorDict(source=tensors, batch_size=batch_size)

    def save_to_disk(self, filepath: str) -> None:
        with open(filepath, "wb") as f:
            pickle.dump(self, f)

    @staticmethod
    def load_from_disk(filepath: str) -> "DataProto":
        with open(filepath, "rb") as f:
            data = pickle.load(f)
        if not isinstance(data, DataProto):
            raise TypeError(f"{filepath} holds a {type(data).__name__}, not a DataProto")
        return data

    # -- key-level operations -------------------------------------------------------------------
    def to(self, device) -> "DataProto":
        """Move the tensors to ``device`` (in place) and return self."""
        if self.batch is not None:
            self.batch = self.batch.to(device)
        return self

    def _check_keys(self, kind: str, keys, available) -> None:
        missing = [k for k in keys if k not in available]
        if missing:
            raise KeyError(f"{kind} keys {missing} not found; available: {sorted(available)}")

    def select(
        self,
        batch_keys: Optional[Sequence[str]] = None,
        non_tensor_batch_keys: Optional[Sequence[str]] = None,
        meta_info_keys: Optional[Sequence[str]] = None,
        deepcopy: bool = False,
    ) -> "DataProto":
        """A DataProto with only the named keys (None keeps every key of that kind)."""
        if batch_keys is not None and self.batch is not None:
            batch_keys = list(batch_keys)
            self._check_keys("batch", batch_keys, list(self.batch.keys()))
            batch = self.batch.select(*batch_keys)
        else:
            batch = self.batch
        if non_tensor_batch_keys is not None:
            self._check_keys("non_tensor_batch", non_tensor_batch_keys, self.non_tensor_batch)
            non_tensors = {k: self.non_tensor_batch[k] for k in non_tensor_batch_keys}
        else:
            non_tensors = dict(self.non_tensor_batch)
        if meta_info_keys is not None:
            self._check_keys("meta_info", meta_info_keys, self.meta_info)
            meta = {k: self.meta_info[k] for k in meta_info_keys}
        else:
            meta = dict(self.meta_info)
        if deepcopy:
            non_tensors, meta = copy.deepcopy(non_tensors), copy.deepcopy(meta)
            batch = batch.clone() if batch is not None else None
        return DataProto(batch=batch, non_tensor_batch=non_tensors, meta_info=meta)

    def pop(
        self,
        batch_keys: Optional[Sequence[str]] = None,
        non_tensor_batch_keys: Optional[Sequence[str]] = None,
        meta_info_keys: Optional[Sequence[str]] = None,
    ) -> "DataProto":
        """Remove the named keys from self and return them as a new DataProto."""
        batch_keys = list(batch_keys or [])
        non_tensor_batch_keys = list(non_tensor_batch_keys or [])
        meta_info_keys = list(meta_info_keys or [])
        if batch_keys:
            if self.batch is None:
                raise KeyError(f"batch keys {batch_keys} not found: this DataProto has no tensors")
            self._check_keys("batch", batch_keys, list(self.batch.keys()))
        self._check_keys("non_tensor_batch", non_tensor_batch_keys, self.non_tensor_batch)
        self._check_keys("meta_info", meta_info_keys, self.meta_info)
        tensors = {k: self.batch.pop(k) for k in batch_keys}
        non_tensors = {k: self.non_tensor_batch.pop(k) for k in non_tensor_batch_keys}
        meta = {k: self.meta_info.pop(k) for k in meta_info_keys}
        batch = None
        if tensors:
            batch = TensorDict(source=tensors, batch_size=self.batch.batch_size)
        return DataProto(batch=batch, non_tensor_batch=non_tensors, meta_info=meta)

    def rename(self, old_keys, new_keys) -> "DataProto":
        """Rename tensor keys in place (``old_keys``/``new_keys``: a str or equal-length lists)."""
        old_keys = [old_keys] if isinstance(old_keys, str) else list(old_keys)
        new_keys = [new_keys] if isinstance(new_keys, str) else list(new_keys)
        if len(old_keys) != len(new_keys):
            raise ValueError(f"rename: {len(old_keys)} old keys but {len(new_keys)} new keys")
        if self.batch is None:
            raise KeyError("rename: this DataProto has no tensors")
        self._check_keys("batch", old_keys, list(self.batch.keys()))
        for old, new in zip(old_keys, new_keys):
            self.batch.rename_key_(old, new)
        return self

    def union(self, other: "DataProto") -> "DataProto":
        """Add ``other``'s keys to self (in place); a key in both must hold equal values, else ValueError."""
        if len(self) != len(other) and (self.batch is not None or self.non_tensor_batch) and (
            other.batch is not None or other.non_tensor_batch
        ):
            raise ValueError(f"union: lengths differ: {len(self)} vs {len(other)}")
        if self.batch is None:
            self.batch = other.batch
        elif other.batch is not None:
            self.batch = union_tensor_dict(self.batch, other.batch)
        self.non_tensor_batch = union_numpy_dict(self.non_tensor_batch, other.non_tensor_batch)
        self.meta_info = union_two_dict(self.meta_info, other.meta_info)
        self.check_consistency()
        return self

    # -- row-level operations -------------------------------------------------------------------
    def chunk(self, chunks: int) -> list["DataProto"]:
        """Split into ``chunks`` equal parts (the length must be divisible; see pad_dataproto_to_divisor)."""
        if chunks < 1:
            raise ValueError(f"chunk: chunks must be >= 1, got {chunks}")
        n = len(self)
        if n % chunks != 0:
            raise ValueError(
                f"chunk: a DataProto of length {n} cannot be split into {chunks} equal chunks; "
                "pad it first with pad_dataproto_to_divisor"
            )
        size = n // chunks
        return [self.slice(i * size, (i + 1) * size) for i in range(chunks)]

    def split(self, split_size: int) -> list["DataProto"]:
        """Consecutive pieces of ``split_size`` rows (the last may be shorter)."""
        if split_size < 1:
            raise ValueError(f"split: split_size must be >= 1, got {split_size}")
        return [self.slice(i, i + split_size) for i in range(0, len(self), split_size)]

    @staticmethod
    def concat(data: list["DataProto"]) -> "DataProto":
        """Stack DataProtos along dim 0.

        meta_info comes from the first element, except ``metrics``, which is merged from all of them
        into ``{name: [values...]}`` so metrics reported by every worker survive collection.
        """
        if not data:
            raise ValueError("concat: got an empty list")
        has_batch = [d.batch is not None for d in data]
        if any(has_batch) and not all(has_batch):
            raise ValueError("concat: some DataProtos have tensors and some do not")
        keys0 = set(data[0].non_tensor_batch)
        for i, d in enumerate(data[1:], start=1):
            if set(d.non_tensor_batch) != keys0:
                raise ValueError(
                    f"concat: element {i} has non-tensor keys {sorted(d.non_tensor_batch)}, element 0 has {sorted(keys0)}"
                )
        batch = torch.cat([d.batch for d in data], dim=0) if all(has_batch) else None
        non_tensors = {k: np.concatenate([d.non_tensor_batch[k] for d in data], axis=0) for k in keys0}
        meta = dict(data[0].meta_info)
        metrics = _merge_metrics([d.meta_info for d in data])
        if metrics:
            meta["metrics"] = metrics
        return DataProto(batch=batch, non_tensor_batch=non_tensors, meta_info=meta)

    def reorder(self, indices) -> None:
        """Permute the rows in place: row i becomes old row ``indices[i]``."""
        np_idx = _index_to_numpy(indices, len(self))
        if self.batch is not None:
            self.batch = self.batch[torch.as_tensor(np_idx, dtype=torch.long, device=self.batch.device)]
        self.non_tensor_batch = {k: v[np_idx] for k, v in self.non_tensor_batch.items()}

    def repeat(self, repeat_times: int = 2, interleave: bool = True) -> "DataProto":
        """Repeat every row: interleaved ``a a b b`` (as rollout.n needs) or tiled ``a b a b``."""
        if repeat_times < 1:
            raise ValueError(f"repeat: repeat_times must be >= 1, got {repeat_times}")
        batch = None
        if self.batch is not None:
            if interleave:
                tensors = {k: v.repeat_interleave(repeat_times, dim=0) for k, v in self.batch.items()}
            else:
                tensors = {k: v.repeat(repeat_times, *[1] * (v.dim() - 1)) for k, v in self.batch.items()}
            batch = TensorDict(source=tensors, batch_size=(len(self) * repeat_times,))
        if interleave:
            non_tensors = {k: np.repeat(v, repeat_times, axis=0) for k, v in self.non_tensor_batch.items()}
        else:
            non_tensors = {
                k: np.tile(v, (repeat_times,) + (1,) * (v.ndim - 1)) for k, v in self.non_tensor_batch.items()
            }
        return DataProto(batch=batch, non_tensor_batch=non_tensors, meta_info=self.meta_info)

    def make_iterator(
        self, mini_batch_size: int, epochs: int, seed: Optional[int] = None, dataloader_kwargs: Optional[dict] = None
    ) -> Iterator["DataProto"]:
        """Yield mini-batches of ``mini_batch_size`` rows for ``epochs`` passes.

        ``dataloader_kwargs`` understands ``shuffle`` (default False, as torch's DataLoader) and
        ``drop_last``; with ``seed`` the shuffling is reproducible. Each mini-batch carries self.meta_info.
        """
        kwargs = dict(dataloader_kwargs or {})
        shuffle = bool(kwargs.pop("shuffle", False))
        drop_last = bool(kwargs.pop("drop_last", False))
        if kwargs:
            raise ValueError(f"make_iterator: unsupported dataloader_kwargs {sorted(kwargs)}; use shuffle / drop_last")
        n = len(self)
        if mini_batch_size < 1:
            raise ValueError(f"make_iterator: mini_batch_size must be >= 1, got {mini_batch_size}")
        if n % mini_batch_size != 0 and not drop_last:
            raise ValueError(
                f"make_iterator: length {n} is not divisible by mini_batch_size {mini_batch_size} (pass drop_last=True)"
            )
        generator = torch.Generator()
        if seed is not None:
            generator.manual_seed(seed)
        else:
            generator.seed()

        def _iter():
            for _ in range(epochs):
                order = torch.randperm(n, generator=generator).numpy() if shuffle else np.arange(n)
                for start in range(0, n - mini_batch_size + 1, mini_batch_size):
                    yield self.select_idxs(order[start : start + mini_batch_size])

        return _iter()

    # -- diagnostics ----------------------------------------------------------------------------
    def print_size(self, prefix: str = "") -> None:
        tensor_bytes = sum(t.numel() * t.element_size() for t in self.batch.values()) if self.batch is not None else 0
        numpy_bytes = sum(v.nbytes for v in self.non_tensor_batch.values())
        print(f"{prefix}tensors {tensor_bytes / 2**30:.4f} GiB, non-tensors {numpy_bytes / 2**30:.4f} GiB")

    def __repr__(self) -> str:
        keys = list(self.batch.keys()) if self.batch is not None else []
        return (
            f"DataProto(len={len(self)}, batch={keys}, non_tensor_batch={list(self.non_tensor_batch)}, "
            f"meta_info={list(self.meta_info)})"
        )


def collate_fn(items: list[DataProtoItem]) -> DataProto:
    """Stack DataProtoItems (e.g. from a torch DataLoader over a DataProto) back into a DataProto."""
    if not items:
        raise ValueError("collate_fn: got an empty list")
    batch = None
    if items[0].batch is not None:
        batch = torch.stack([it.batch for it in items]).contiguous()
    non_tensors = {k: _to_object_array([it.non_tensor_batch[k] for it in items]) for k in items[0].non_tensor_batch}
    return DataProto(batch=batch, non_tensor_batch=non_tensors, meta_info=items[0].meta_info)


def pad_dataproto_to_divisor(data: DataProto, size_divisor: int) -> tuple[DataProto, int]:
    """Pad ``data`` (by repeating its first rows) to a multiple of ``size_divisor``; return (padded, pad_size)."""
    if size_divisor < 1:
        raise ValueError(f"size_divisor must be >= 1, got {size_divisor}")
    n = len(data)
    if n == 0:
        raise ValueError("pad_dataproto_to_divisor: cannot pad an empty DataProto")
    pad_size = (-n) % size_divisor
    if pad_size == 0:
        return data, 0
    pieces, remaining = [data], pad_size
    while remaining > 0:
        take = min(remaining, n)
        pieces.append(data[:take])
        remaining -= take
    return DataProto.concat(pieces), pad_size


def unpad_dataproto(data: DataProto, pad_size: int) -> DataProto:
    """Drop the ``pad_size`` rows that pad_dataproto_to_divisor appended."""
    if pad_size < 0 or pad_size > len(data):
        raise ValueError(f"unpad_dataproto: pad_size {pad_size} is out of range for length {len(data)}")
    return data[: len(data) - pad_size] if pad_size else data


@dataclass
class DataProtoFuture:
    """A DataProto still being computed by Ray workers: ``get()`` collects then dispatches it.

    ``collect_fn`` turns the list of per-worker results into one DataProto; ``dispatch_fn`` (optional)
    then picks this future's share of it (set by ``chunk``).
    """

    collect_fn: Callable
    futures: list
    dispatch_fn: Optional[Callable] = None

    @staticmethod
    def concat(data: list) -> "DataProtoFuture":
        return DataProtoFuture(collect_fn=DataProto.concat, futures=list(data))

    def chunk(self, chunks: int) -> list["DataProtoFuture"]:
        return [
            DataProtoFuture(
                collect_fn=self.collect_fn,
                futures=self.futures,
                dispatch_fn=lambda x, i=i: x.chunk(chunks)[i],
            )
            for i in range(chunks)
        ]

    def get(self) -> DataProto:
        import ray

        output = self.collect_fn(ray.get(self.futures))
        if self.dispatch_fn is not None:
            output = self.dispatch_fn(output)
        return output
