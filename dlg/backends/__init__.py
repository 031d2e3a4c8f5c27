"""`dlg.backends`: torch.backends' switches (`cudnn.benchmark`, `cudnn.deterministic`,
`cuda.matmul.allow_tf32`, `mps.is_available()`, ...) that PyTorch programs set on their first
lines. Eager dlg computes on the CPU with NumPy, where none of them has anything to switch: each
is a plain setting with torch's default that reads back what was set and changes no number
(the compiled targets take their own options at `dlg.compile`). Only the values torch accepts
are taken (a bool for each flag); `dlg.set_float32_matmul_precision` is `precision`'s."""

from dlg.backends import cpu, cuda, cudnn, mkldnn, mps
from dlg.backends.precision import get_float32_matmul_precision, set_float32_matmul_precision

__all__ = ["cpu", "cuda", "cudnn", "get_float32_matmul_precision", "mkldnn", "mps",
           "set_float32_matmul_precision"]
