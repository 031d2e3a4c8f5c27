"""`dlgc`: the command line. User mistakes print `file:line:col: error: ...` and exit 1, with no
traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dlg.api import load
from dlg.errors import DlgError, DlgValueError
from dlg.grammar.format import format_module
from dlg.grammar.loader import load_file
from dlg.ir.printer import format_graph
from dlg.ir.serialize import dumps

EPILOG = "Run `dlgc COMMAND --help` for the options of one command."


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except DlgError as e:
        print(e.format(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlgc", description="dlg: a declarative graph language and compiler for neural "
        "networks. Check, format and run .dlg models.", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="parse and type-check a model; print its summary",
                           description="Parse a .dlg file, infer every shape and print a "
                           "summary: inputs, per-layer output shapes, parameter counts.")
    check.add_argument("file", type=Path, help="the .dlg file")
    check.add_argument("--model", help="which model, when the file defines several")
    check.add_argument("--emit", choices=("summary", "graph", "dlg", "json"), default="summary",
                       help="what to print: the summary table (default), the IR graph as text, "
                       "the canonical .dlg source, or the graph as JSON")
    check.add_argument("--train", action="store_true",
                       help="show the training-mode graph (train section's loss and metrics)")
    check.add_argument("--no-spans", action="store_true",
                       help="leave source locations out of --emit graph")
    check.add_argument("--seed", type=int, default=0, help="parameter initialisation seed")
    check.set_defaults(run=_check)

    run = sub.add_parser("run", help="run a model on inputs from .npy/.npz files",
                         description="Run a model with the reference interpreter.")
    run.add_argument("file", type=Path, help="the .dlg file")
    run.add_argument("--input", "-i", action="append", default=[], metavar="NAME=FILE.npy",
                     help="an input array (repeat for several inputs); a .npz file without "
                     "NAME= supplies inputs by their array names")
    run.add_argument("--weights", "-w", type=Path,
                     help="parameters to load from an .npz file (PyTorch-style names)")
    run.add_argument("--model", help="which model, when the file defines several")
    run.add_argument("--seed", type=int, default=0, help="parameter initialisation seed")
    run.add_argument("-o", "--output", type=Path,
                     help="write the output (.npy, or .npz for several outputs)")
    run.set_defaults(run=_run)

    fmt = sub.add_parser("fmt", help="print a .dlg file in canonical form",
                         description="Print the canonical form of a .dlg file; parsing the "
                         "output gives back the same program. Comments are dropped (they are "
                         "not part of the syntax tree), so --write removes them.")
    fmt.add_argument("file", type=Path, help="the .dlg file")
    fmt.add_argument("--write", "-w", action="store_true", help="rewrite the file in place")
    fmt.add_argument("--check", action="store_true",
                     help="exit 1 if the file is not in canonical form")
    fmt.set_defaults(run=_fmt)
    return parser


def _check(args: argparse.Namespace) -> int:
    m = load(args.file, model=args.model, seed=args.seed)
    graph = m.train_graph if args.train else m.graph
    if args.train and graph is None:
        raise DlgValueError(f"{args.file}: model {m.name} has no train section")
    if args.emit == "summary":
        print(m.summary())
    elif args.emit == "graph":
        print(format_graph(graph, spans=not args.no_spans))
    elif args.emit == "json":
        print(dumps(graph))
    else:
        print(_formatted(args.file), end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    m = load(args.file, model=args.model, seed=args.seed)
    if args.weights is not None:
        m.load_state_dict(dict(_read_arrays(args.weights)))
    inputs: dict[str, np.ndarray] = {}
    for spec in args.input:
        name, sep, path = spec.partition("=")
        if not sep:
            inputs.update(_read_arrays(Path(name)))
        else:
            inputs[name] = _read_array(Path(path))
    outputs = m(**inputs)
    values = outputs if isinstance(outputs, tuple) else (outputs,)
    names = list(m.outputs)
    if args.output is not None:
        if len(values) == 1 and args.output.suffix != ".npz":
            np.save(args.output, values[0])
        else:
            np.savez(args.output, **dict(zip(names, values)))
        print(f"wrote {', '.join(names)} to {args.output}")
    else:
        for name, value in zip(names, values):
            print(f"{name}: {value.dtype}{list(value.shape)}")
            print(np.array2string(value, threshold=60, precision=5))
    return 0


def _fmt(args: argparse.Namespace) -> int:
    text = _formatted(args.file)
    original = args.file.read_text()
    if args.check:
        if text != original:
            print(f"{args.file}: not in canonical form", file=sys.stderr)
            return 1
        return 0
    if args.write:
        if text != original:
            args.file.write_text(text)
        return 0
    print(text, end="")
    return 0


def _formatted(path: Path) -> str:
    return format_module(load_file(path).main)


def _read_array(path: Path) -> np.ndarray:
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DlgValueError(f"cannot read {path}: {e}") from None
    if isinstance(value, np.lib.npyio.NpzFile):
        raise DlgValueError(f"{path} is an .npz archive: pass it without NAME= to use its arrays")
    return value


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except (OSError, ValueError, AttributeError) as e:
        raise DlgValueError(f"cannot read {path} as an .npz archive: {e}") from None


if __name__ == "__main__":
    sys.exit(main())
