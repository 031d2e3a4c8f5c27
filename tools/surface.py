"""The eager surface dlg offers PyTorch programs, listed from the live namespaces (which are
themselves generated from the op registry and `dlg.functions`), for the README's eager section:
a new op or module appears in the list without anyone writing it down.

    python tools/surface.py            print the section
    python tools/surface.py --write    replace it in README.md (between the surface markers)
    python tools/surface.py --check    exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import inspect
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- surface:begin (tools/surface.py --write) -->", "<!-- surface:end -->"


def _public(names: Iterable[str]) -> list[str]:
    return sorted(n for n in set(names) if not n.startswith("_"))


def _functions(namespace: Any) -> list[str]:
    """Callables spelled as functions: torch's lower-case classes (no_grad, finfo) included."""
    values = {n: getattr(namespace, n) for n in dir(namespace)}
    return _public(n for n, v in values.items() if callable(v) and not inspect.ismodule(v)
                   and (n[0].islower() or not inspect.isclass(v)))


def _classes(namespace: Any, base: type) -> list[str]:
    return _public(n for n in dir(namespace) if inspect.isclass(getattr(namespace, n))
                   and issubclass(getattr(namespace, n), base)
                   and getattr(namespace, n) is not base)


def sections() -> dict[str, list[str]]:
    """Heading -> names, for each public namespace of the eager frontend."""
    import dlg
    import dlg.nn.functional as F  # noqa: N812
    from dlg import nn, optim

    tensor_attrs = _public(n for n in dir(dlg.Tensor) if n not in _TENSOR_INTERNALS)
    out = {
        "`dlg.` functions": [n for n in _functions(dlg) if n not in _DLG_NOT_TENSOR_API],
        "dtypes": _public(n for n in dir(dlg)  # bfloat16: a name autocast takes, no tensors
                          if isinstance(getattr(dlg, n), (dlg.DType, type(dlg.bfloat16)))),
        "`Tensor` methods and properties": tensor_attrs,
        "`dlg.nn.functional`": _functions(F),
        "`dlg.nn` modules": _classes(nn, nn.Module),
        "`dlg.optim`": _classes(optim, optim.Optimizer),
        "`dlg.autograd`": _public(n for n in dlg.autograd.__all__
                                  if not inspect.ismodule(getattr(dlg.autograd, n))),
        "`dlg.autograd.functional`": _public(dlg.autograd.functional.__all__),
        "`dlg.amp`": _public(dlg.amp.__all__),
    }
    out["`dlg.backends`"] = _backends(dlg.backends)
    out["`dlg.utils.checkpoint`"] = _public(dlg.utils.checkpoint.__all__)
    out["`dlg.nn.utils`"] = _dotted(nn.utils)
    out["`dlg.optim.swa_utils`"] = _public(optim.swa_utils.__all__)
    out["`dlg.distributions`"] = _public(dlg.distributions.__all__)
    out["`dlg.func`"] = _public(dlg.func.__all__)
    scheduler = getattr(optim, "lr_scheduler", None)
    if scheduler is not None:
        out["`dlg.optim.lr_scheduler`"] = _public(
            n for n in dir(scheduler) if inspect.isclass(getattr(scheduler, n))
            and getattr(scheduler, n).__module__.startswith("dlg"))
    return out


def _dotted(namespace: Any) -> list[str]:
    """A namespace's `__all__`, its submodules' names dotted (`parametrize.register_...`)."""
    names = []
    for name in namespace.__all__:
        value = getattr(namespace, name)
        names += ([f"{name}.{n}" for n in value.__all__] if inspect.ismodule(value) else [name])
    return _public(names)


def _backends(backends: Any) -> list[str]:
    """Each switch and query as its dotted name (`cudnn.benchmark`, `cuda.matmul.allow_tf32`)."""
    names = []
    for name in backends.__all__:
        value = getattr(backends, name)
        if not inspect.ismodule(value):
            names.append(name)
            continue
        for member in dir(type(value)) + dir(value):
            inner = getattr(value, member)
            if member.startswith("_") or inspect.ismodule(inner) or inspect.isclass(inner):
                continue
            if getattr(inner, "__module__", value.__name__) != value.__name__:
                continue  # imported helpers
            if type(inner).__module__.startswith("dlg.backends"):  # a namespace (cuda.matmul)
                names += [f"{name}.{member}.{n}" for n in dir(type(inner)) if n[0] != "_"]
            else:
                names.append(f"{name}.{member}")
    return _public(names)


# the compiler's entry points, listed elsewhere in the README
_DLG_NOT_TENSOR_API = {"compile", "load", "loads", "save", "trace", "trace_train"}
# the engine's own members of Tensor (autograd records, the tracer's values)
_TENSOR_INTERNALS = {"accumulate_grad", "numpy_view", "record", "result", "graph_value", "traced",
                     "of"}


def render() -> str:
    parts = [BEGIN]
    for heading, names in sections().items():
        body = textwrap.fill(" ".join(f"`{n}`" for n in names), 100)
        parts.append(f"**{heading}** ({len(names)}):\n{body}\n")
    parts.append(END)
    return "\n".join(parts)


def _replace(text: str, section: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{README.name} has no {BEGIN} ... {END} block")
    return text[:start] + section + text[end + len(END):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update README.md in place")
    mode.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = parser.parse_args(argv)
    section = render()
    if not (args.write or args.check):
        print(section)
        return 0
    text = README.read_text()
    updated = _replace(text, section)
    if args.check:
        if updated != text:
            print(f"{README.name}'s eager surface is out of date: run python tools/surface.py "
                  "--write", file=sys.stderr)
            return 1
        return 0
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
