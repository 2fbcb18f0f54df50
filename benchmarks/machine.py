"""What the numbers were measured on: CPU, cores, BLAS, library versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

__all__ = ["machine_info", "machine_markdown"]

_PACKAGES = (
    "sparsehead",
    "numpy",
    "scipy",
    "keras",
    "torch",
    "jax",
    "jaxlib",
    "tensorflow",
    "tensorflow-cpu",
    "pyproximal",
    "jaxopt",
    "threadpoolctl",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas() -> list[str]:
    try:
        import numpy  # noqa: F401  (loads numpy's BLAS so threadpoolctl sees it)
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["threadpoolctl not installed"]
    return [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, "
        f"{i.get('num_threads')} threads, {os.path.basename(i.get('filepath', ''))})"
        for i in threadpool_info()
    ]


def _core_threads() -> int:
    from sparsehead._parallel import num_threads

    return num_threads()


def machine_info() -> dict[str, object]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "blas": _blas(),
        "core_threads": _core_threads(),
        "versions": versions,
        "env": {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("OPENBLAS_", "OMP_", "SPARSEHEAD_"))
        },
    }


def machine_markdown(info: dict[str, object]) -> str:
    lines = [
        f"- CPU: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable)",
        f"- Platform: {info['platform']}, Python {info['python']}",
        f"- BLAS (threadpoolctl): {'; '.join(info['blas']) or 'none found'}",
        f"- sparsehead core threads (large element-wise passes): {info['core_threads']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
    ]
    if info["env"]:
        lines.append("- Environment: " + ", ".join(f"{k}={v}" for k, v in info["env"].items()))
    return "\n".join(lines)
