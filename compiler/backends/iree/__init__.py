"""The IREE backend (`@register_backend("iree")` in backend.py): options.py → importer.py → pipeline.py (the
rewrites in passes/) → iree-compile."""

from .backend import IreeBackend
from .cuda import inspect_cuda_vmfb
from .device_scripts import write_device_scripts
from .options import IreeOptions

__all__ = ["IreeBackend", "IreeOptions", "inspect_cuda_vmfb", "write_device_scripts"]
