"""`dlg.backends.cpu`: what torch.backends.cpu reports (the SIMD level eager dlg's NumPy uses is
NumPy's own, not chosen by dlg)."""


def get_cpu_capability() -> str:
    return "DEFAULT"
