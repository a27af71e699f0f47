"""Multi-node placement on one machine: a simulated 2-node Ray cluster, ranks grouped by node with rank 0's node as
the rendezvous, and a short GRPO run across the two "nodes" on gloo through main_ppo."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "single_controller"))
from simulated_cluster_testlib import run_scenario  # noqa: E402


def test_grpo_across_two_nodes(tmp_path):
    result = run_scenario("two-nodes", tmp_path, timeout_s=400)
    assert result["nodes"] == 2
    ranks = sorted(result["placement"], key=lambda r: r["rank"])
    assert ranks[0]["node_id"] != ranks[1]["node_id"]  # one placement group per node
    assert [(r["local_rank"], r["local_world_size"]) for r in ranks] == [(0, 1), (0, 1)]
    master_addr, master_port = ranks[0]["master"]
    assert master_addr == ranks[0]["node_ip"] and all(r["master"] == [master_addr, master_port] for r in ranks)

    assert result["step"] == 2
    assert result["pg_loss"] is not None and abs(result["pg_loss"]) < 1e3 and 0 <= result["score"] <= 1
    assert {"model_world_size_2_rank_0.pt", "model_world_size_2_rank_1.pt"} <= set(result["checkpoint"])
