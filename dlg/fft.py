"""`dlg.fft`: torch.fft's discrete Fourier transforms (fft, ifft, rfft, irfft, hfft, ihfft and
their 2-d and n-d forms), fftfreq, rfftfreq, fftshift and ifftshift; `dlg/frontend/fft.py`
holds them. They run eagerly and in the interpreter, with gradients; `dlg.compile` refuses
complex values."""

from __future__ import annotations

from dlg.frontend.fft import (fft, fft2, fftfreq, fftn, fftshift, hfft, hfft2, hfftn, ifft, ifft2,
                              ifftn, ifftshift, ihfft, ihfft2, ihfftn, irfft, irfft2, irfftn, rfft,
                              rfft2, rfftfreq, rfftn)

__all__ = ["fft", "fft2", "fftfreq", "fftn", "fftshift", "hfft", "hfft2", "hfftn", "ifft",
           "ifft2", "ifftn", "ifftshift", "ihfft", "ihfft2", "ihfftn", "irfft", "irfft2", "irfftn",
           "rfft", "rfft2", "rfftfreq", "rfftn"]
