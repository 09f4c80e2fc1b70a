"""The TVM backend (docs/architecture.md): backend.py (compile), importer.py (Relax import), cuda.py (cubin
checks), device_scripts.py (GPU bundles' run.sh / bench.sh), tuning.py (MetaSchedule databases, `edgecc tune`,
the CPU build), cpu_schedule.py (default CPU schedules), channels_last.py (the NHWC graph they schedule)."""

from edgecc.compiler.backends.tvm.backend import TvmBackend, resolve_tvm_target
from edgecc.compiler.backends.tvm.cuda import cubin_arch, precompile_cuda
from edgecc.compiler.backends.tvm.device_scripts import write_gpu_device_files
from edgecc.compiler.backends.tvm.importer import import_relax

__all__ = ["TvmBackend", "cubin_arch", "import_relax", "precompile_cuda", "resolve_tvm_target",
           "write_gpu_device_files"]
