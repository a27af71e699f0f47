"""Ray placement groups for a worker group: one group per node, one bundle per rank, ranks in a stable order."""
from __future__ import annotations

from typing import Optional

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group

from verl.single_controller.base.worker_group import ResourcePool, unique_name_prefix


def _node_ip_of(pg: PlacementGroup, node_ips: dict[str, str]) -> str:
    node_ids = ray.util.placement_group_table(pg)["bundles_to_node_id"]
    return node_ips.get(node_ids[0], "")


def sort_placement_groups_by_node_ip(pgs: list[PlacementGroup]) -> list[PlacementGroup]:
    """Order placement groups by their node's IP so that rank r lands on the same node every run.

    Sharded checkpoints are written per rank; a stable order makes a restarted job read each shard
    on the node (and GPU slot) that wrote it.
    """
    node_ips = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
    keyed = [(_node_ip_of(pg, node_ips), i, pg) for i, pg in enumerate(pgs)]
    return [pg for _, _, pg in sorted(keyed, key=lambda t: (t[0], t[1]))]


class RayResourcePool(ResourcePool):
    """``process_on_nodes[i]`` ranks on node i, each rank a placement-group bundle.

    A bundle is ``{"CPU": num_cpus_per_process}`` plus ``{"GPU": 1}`` when ``use_gpu``; with a Ray
    cluster spanning nodes (``ray start`` on each, ``RAY_ADDRESS`` set), ``[n_gpus_per_node] * nnodes``
    spreads the ranks one placement group per node. Placement groups are created on first use and
    shared by every worker group built on this pool (colocation of separate groups); they are removed
    when the last of those groups shuts down (and made again if another group is built later).

    ``name_prefix`` starts the placement groups' names (``<prefix>verl_pg_<i>``); by default it is
    unique (``verl_<8 hex>_``), because Ray refuses a second placement group with a name in use.
    """

    def __init__(
        self,
        process_on_nodes: Optional[list[int]] = None,
        use_gpu: bool = True,
        name_prefix: Optional[str] = None,
        max_colocate_count: int = 10,
        detached: bool = False,
        num_cpus_per_process: float = 1.0,
        ready_timeout_s: float = 120.0,
    ):
        super().__init__(process_on_nodes, max_colocate_count)
        self.use_gpu = use_gpu
        self.name_prefix = unique_name_prefix() if name_prefix is None else name_prefix
        self.detached = detached
        self.num_cpus_per_process = num_cpus_per_process
        self.ready_timeout_s = ready_timeout_s
        self._pgs: Optional[list[PlacementGroup]] = None
        self._live_groups: set[str] = set()

    def bundle(self) -> dict[str, float]:
        bundle = {"CPU": self.num_cpus_per_process}
        if self.use_gpu:
            bundle["GPU"] = 1
        return bundle

    def get_placement_groups(self, strategy: str = "STRICT_PACK", name: Optional[str] = None) -> list[PlacementGroup]:
        """The placement groups (created and waited for on the first call), sorted by node IP."""
        if self._pgs is not None:
            return self._pgs
        if not self._store:
            raise ValueError("RayResourcePool: process_on_nodes is empty")
        prefix = name or self.name_prefix
        pgs = [
            placement_group(
                bundles=[self.bundle()] * n,
                strategy=strategy,
                name=f"{prefix}verl_pg_{i}" if prefix else "",
                lifetime="detached" if self.detached else None,
            )
            for i, n in enumerate(self._store)
        ]
        try:
            ray.get([pg.ready() for pg in pgs], timeout=self.ready_timeout_s)
        except ray.exceptions.GetTimeoutError:
            for pg in pgs:
                remove_placement_group(pg)
            raise RuntimeError(
                f"RayResourcePool: could not reserve {self._store} bundles of {self.bundle()} (one placement group "
                f"per node) within {self.ready_timeout_s} s; the cluster has {ray.cluster_resources()}"
            ) from None
        self._pgs = sort_placement_groups_by_node_ip(pgs)
        return self._pgs

    def register_worker_group(self, group_id: str) -> None:
        """The worker group ``group_id`` runs on this pool's placement groups (they stay until it is released)."""
        self._live_groups.add(group_id)

    def release_worker_group(self, group_id: str) -> None:
        """The worker group ``group_id`` is gone; the placement groups are removed when no live group is left."""
        self._live_groups.discard(group_id)
        if not self._live_groups:
            self.remove_placement_groups()

    def remove_placement_groups(self) -> None:
        """Give the reserved resources back to Ray (the worker groups on this pool stop being schedulable)."""
        for pg in self._pgs or []:
            remove_placement_group(pg)
        self._pgs = None
