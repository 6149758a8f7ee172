"""Which CPU a latency was measured on: int8's speed depends on its vector features."""

import os
import platform
import subprocess

# The features XNNPACK's int8 kernels use, as Linux names them: x86 (AVX2, AVX-512, VNNI
# dot products) and Arm (SDOT dot products, int8 matrix multiply).
_FEATURES = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "asimddp": "dotprod",
    "i8mm": "i8mm",
}
_X86_ABSENT = ("AVX-512", "VNNI")


def cpu() -> str:
    """The CPU's model name and the vector features int8 speed depends on, read from this machine.

    On an x86 CPU it also says which of AVX-512 and VNNI are missing: without VNNI,
    XNNPACK's int8 kernels can run slower than float32 ones.

    Returns:
      One line, e.g. "AMD EPYC 7B13, 2 cores (AVX2; no AVX-512, no VNNI)"; the platform's
      processor name where Linux's `lscpu` and `/proc/cpuinfo` are not available.

    Examples:
      >>> tfc.export.cpu()
      'AMD EPYC 7B13, 2 cores (AVX2; no AVX-512, no VNNI)'
    """
    name, flags = _read_cpu()
    found = [label for flag, label in _FEATURES.items() if flag in flags]
    missing = [label for label in _X86_ABSENT if "AVX2" in found and not any(label in have for have in found)]
    features = "; ".join(part for part in (", ".join(found), ", ".join(f"no {label}" for label in missing)) if part)
    cores = f", {os.cpu_count()} cores" if os.cpu_count() else ""
    return f"{name or platform.processor() or platform.machine()}{cores}" + (f" ({features})" if features else "")


def _read_cpu():
    """`(model name, set of feature flags)` from lscpu, else /proc/cpuinfo, else nothing."""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        output = ""
    fields = dict(line.split(":", 1) for line in output.splitlines() if ":" in line)
    if not fields and os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as file:
            fields = dict(line.split(":", 1) for line in file if ":" in line)
    name = (fields.get("Model name") or fields.get("model name") or "").strip()
    flags = (fields.get("Flags") or fields.get("flags") or fields.get("Features") or "").split()
    return name, set(flags)
