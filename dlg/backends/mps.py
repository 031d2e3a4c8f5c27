"""`dlg.backends.mps`: Apple's Metal backend, which eager dlg does not have."""


def is_available() -> bool:
    return False


def is_built() -> bool:
    return False
