"""`dlgc`: the command line. User mistakes print `file:line:col: error: ...` and exit 1, with no
traceback."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dlg.api import compile as compile_model
from dlg.api import load
from dlg.frontend.trace import trace
from dlg.compiler.pipeline import (
    PIPELINE,
    STAGES,
    CompileOptions,
    assembly,
    dump_file,
    format_program,
    format_seconds,
    verify_requested,
)
from dlg.errors import DlgError, DlgValueError
from dlg.files import atomic_write, write_text
from dlg.grammar.format import format_module
from dlg.grammar.loader import load_file
from dlg.ir.anomaly import set_anomaly
from dlg.ir.printer import format_graph
from dlg.ir.serialize import dumps
from dlg.ir.shapes import evaluate_shape
from dlg.onnx.export import DEFAULT_OPSET, OPSETS
from dlg.onnx.export import export as export_onnx
from dlg.onnx.load import load as load_onnx
from dlg.runtime.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TensorBoard,
)
from dlg.runtime.checkpoint import Interrupted
from dlg.runtime.cuda import ARCH, device_program, format_launches
from dlg.runtime.model import Model
from dlg.runtime.native import NativeGraph, compile_report, profile_kernels
from dlg.runtime.plot import plot_history
from dlg.runtime.sources import training_data
from dlg.runtime.training import TrainStep
from dlg.runtime.weights import FORMATS as WEIGHT_FORMATS
from dlg.runtime.weights import load_weights
from dlg.viz import picture
from dlg.viz import save as save_picture
from dlg.viz.render import IMAGE_FORMATS, SOURCE_FORMATS

EPILOG = "Run `dlgc COMMAND --help` for the options of one command."


def _add_model_choice(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="which model, when the file defines several")


def _add_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="parameter initialisation seed")


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
    except BrokenPipeError:  # `dlgc ... | head` stopped reading: stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 141


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlgc", description="dlg: a declarative graph language and compiler for neural "
        "networks. Check, run, train, compile and format .dlg models; trace PyTorch-style "
        "modules into them.", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="parse and type-check a model; print its summary",
                           description="Parse a .dlg file, infer every shape and print a "
                           "summary: inputs, per-layer output shapes, parameter counts.")
    check.add_argument("file", type=Path, help="the .dlg file")
    _add_model_choice(check)
    check.add_argument("--emit", choices=("summary", "graph", "dlg", "json"), default="summary",
                       help="what to print: the summary table (default), the IR graph as text, "
                       "the canonical .dlg source, or the graph as JSON")
    check.add_argument("--train", action="store_true",
                       help="show the training-mode graph (train section's loss and metrics)")
    check.add_argument("--no-spans", action="store_true",
                       help="leave source locations out of --emit graph")
    _add_seed(check)
    check.set_defaults(run=_check)

    run = sub.add_parser("run", help="run a model on inputs from .npy/.npz files",
                         description="Run a model with the reference interpreter.")
    run.add_argument("file", type=Path, help="the .dlg file")
    run.add_argument("--input", "-i", action="append", default=[], metavar="NAME=FILE.npy",
                     help="an input array (repeat for several inputs); a .npz file without "
                     "NAME= supplies inputs by their array names")
    run.add_argument("--weights", "-w", type=Path,
                     help="parameters to load from a .safetensors, .npz or .pt/.pth file "
                     "(PyTorch names)")
    _add_model_choice(run)
    _add_seed(run)
    run.add_argument("-o", "--output", type=Path,
                     help="write the output (.npy, or .npz for several outputs)")
    run.set_defaults(run=_run)

    comp = sub.add_parser(
        "compile", help="compile a model to native code; write a .dlgx artifact",
        description="Compile a model (or, with --train, its whole training step) for this "
        "machine's CPU and print a report: ops before and after the graph passes, kernels, "
        "buffers and peak arena bytes, time per pass. -o writes a .dlgx artifact that "
        "dlg.load() runs without recompiling.")
    comp.add_argument("file", type=Path, help="the .dlg file")
    comp.add_argument("-o", "--output", type=Path, help="write the artifact (.dlgx)")
    comp.add_argument("--emit", choices=("report", "graph", "kernels", "llvm", "asm", "ptx"),
                      default="report", help="what to print: the report (default), the "
                      "optimised graph, the kernels, LLVM IR (kernels are named after their "
                      "fused ops) or assembly; with --target cuda: ptx, llvm (NVVM IR) or "
                      "kernels (the launches: kind, block and grid size)")
    comp.add_argument("--target", choices=("cpu", "cuda", "cuda-emulated"), default="cpu",
                      help="cpu (default); cuda: the GPU's kernels, made here without a GPU "
                      "(--emit ptx); cuda-emulated: those kernels run on this CPU (--profile)")
    comp.add_argument("--arch", default=ARCH, metavar="SM",
                      help=f"the GPU architecture of --target cuda (default {ARCH}: PTX that "
                      "every GPU from the A100 on runs)")
    comp.add_argument("--dump-after", action="append", default=[], metavar="PASS",
                      help=f"print the program after a pass ({', '.join(STAGES)}, or all); "
                      "repeatable")
    comp.add_argument("--dump-dir", type=Path, metavar="DIR",
                      help="write the dumps to files in DIR instead, one per pass, numbered in "
                      f"pipeline order ({dump_file(STAGES[0])}, ..., {dump_file('llvm')}, ..., "
                      f"{dump_file('codegen')}); without --dump-after every pass is written")
    comp.add_argument("--time-passes", action="store_true",
                      help="print a table of the seconds each pass took, LLVM's optimisation "
                      "and code generation included (the disk cache is skipped, so they run)")
    comp.add_argument("--verify", action="store_true",
                      help="check the IR's invariants after every graph pass and name the pass "
                      "that broke them (a debugging aid; DLG_VERIFY=1 does the same)")
    comp.add_argument("--train", action="store_true",
                      help="compile the training step (forward, backward, optimizer update)")
    comp.add_argument("--batch", type=int, default=64,
                      help="batch size the memory report is computed for (default 64)")
    comp.add_argument("--profile", type=int, metavar="CALLS", nargs="?", const=20,
                      help="run the compiled graph CALLS times (default 20) at --batch on "
                      "random inputs and print the milliseconds spent in each kernel")
    _add_model_choice(comp)
    _add_seed(comp)
    comp.set_defaults(run=_compile)

    train = sub.add_parser(
        "train", help="train a model with its train section; save the weights",
        description="Train a model with the loss, metrics and optimizer of its train section, "
        "showing a progress bar per epoch, then report the held-out loss and metrics. With no "
        "--data, image models train on the built-in handwritten digits (1,797 UCI images, "
        "upsampled to 28x28) and models with one float feature on synthetic y = 2x + 1 + noise; "
        "models with several inputs or labels, or none (an autoencoder), take --data npz:FILE.")
    train.add_argument("file", type=Path, help="the .dlg file (it needs a train section)")
    train.add_argument("--data", default="auto", metavar="SOURCE",
                       help="digits | mnist:FOLDER (IDX files) | npz:FILE (arrays named after "
                       "the inputs and labels, any number of each, optionally with _test "
                       "twins) | regression (default: chosen from the model's input shape)")
    train.add_argument("--epochs", type=int, default=20, help="passes over the data (default 20)")
    train.add_argument("--batch-size", type=int, default=64, help="samples per step (default 64)")
    train.add_argument("--lr", type=float, help="learning rate (default: the train section's)")
    train.add_argument("--seed", type=int, default=0,
                       help="seed for initialisation, shuffling and dropout (default 0)")
    _add_model_choice(train)
    train.add_argument("-o", "--output", type=Path,
                       help="save the trained weights (.safetensors or .npz)")
    train.add_argument("--checkpoint", type=Path, metavar="PATH",
                       help="where Ctrl-C saves a checkpoint (parameters, optimizer state, "
                       "epoch and batch) to resume from (default: beside -o as NAME.ckpt, else "
                       "the --resume file, else MODEL.ckpt in the current folder)")
    train.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                       help="also write the checkpoint after every N-th epoch, so a crash or a "
                       "killed process loses at most N epochs (default 0: on Ctrl-C only)")
    train.add_argument("--resume", type=Path, metavar="PATH",
                       help="continue an interrupted run from its checkpoint (give the same "
                       "command: --epochs counts from where that run began)")
    train.add_argument("--plot", type=Path, metavar="PNG",
                       help="write the loss/metric curves to an image (needs matplotlib)")
    train.add_argument("--validation-split", type=float, default=0.0, metavar="F",
                       help="validate each epoch on the last fraction F of the training data "
                       "(default: on the held-out test part)")
    train.add_argument("--early-stop", type=int, metavar="PATIENCE",
                       help="stop once --monitor has not improved for PATIENCE epochs, and "
                       "keep the best epoch's weights")
    train.add_argument("--save-best", type=Path, metavar="PATH",
                       help="save the weights (.safetensors or .npz) whenever --monitor "
                       "reaches its best value so far")
    train.add_argument("--reduce-lr", type=int, metavar="PATIENCE",
                       help="divide the learning rate by 10 once --monitor has not improved "
                       "for PATIENCE epochs")
    train.add_argument("--monitor", default="val_loss", metavar="NAME",
                       help="what --early-stop, --save-best and --reduce-lr watch: a logged "
                       "name such as val_loss or val_accuracy (default val_loss)")
    train.add_argument("--csv-log", type=Path, metavar="FILE",
                       help="write a CSV row of each epoch's loss and metrics")
    train.add_argument("--tensorboard", type=Path, metavar="DIR",
                       help="write each epoch's loss and metrics as TensorBoard event files "
                       "(needs tensorboardX)")
    train.add_argument("--interpreter", action="store_true",
                       help="run each step on the NumPy interpreter instead of as one native "
                       "call (the default: compiled first, then cached on disk)")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    train.add_argument("--detect-anomaly", action="store_true",
                       help="stop at the first op whose finite inputs give a NaN or an Inf and "
                       "name it with its line (slower: every kernel's outputs are checked)")
    train.set_defaults(run=_train)

    tr = sub.add_parser(
        "trace", help="trace a PyTorch-style dlg.nn module into .dlg source",
        description="Import a Python file, build the named dlg.nn.Module (no constructor "
        "arguments), run it once on a zero input of the given shape and print the traced model "
        "as .dlg source (the batch axis becomes the symbol N).")
    tr.add_argument("target", metavar="FILE.py:NAME", help="the file and the module class")
    tr.add_argument("--shape", required=True, metavar="D0,D1,...",
                    help="the example input's shape, e.g. 1,1,28,28")
    tr.add_argument("-o", "--output", type=Path, help="write the .dlg file here")
    tr.set_defaults(run=_trace)

    viz = sub.add_parser(
        "viz", help="draw a model's graph with Graphviz (SVG, PNG, PDF or DOT source)",
        description="Draw a model's graph: layers as boxes with their type and parameter count "
        "(--expand: around their ops), the type of every tensor on its edge (symbolic dims as "
        "written: f32[N,128]), inputs and outputs apart. The format is -o's suffix: .svg, .png "
        "and .pdf are laid out by Graphviz's `dot` program (apt install graphviz), .dot and .gv "
        "are DOT source and need no program; without -o the DOT source is printed. Needs the "
        "graphviz package: pip install 'dlg[viz]'.")
    viz.add_argument("file", type=Path, help="the .dlg file")
    viz.add_argument("-o", "--output", type=Path,
                     help="the picture to write (graph.svg, graph.png, graph.pdf, graph.dot)")
    viz.add_argument("--format", choices=SOURCE_FORMATS + IMAGE_FORMATS,
                     help="the picture's format when -o's suffix does not say it")
    viz.add_argument("--expand", action="store_true",
                     help="draw each layer as a box around its ops and parameters")
    viz.add_argument("--compiled", action="store_true",
                     help="draw the graph as the compiler leaves it (decomposed, simplified), "
                     "each fused kernel outlined and named as in --emit kernels")
    viz.add_argument("--train", action="store_true",
                     help="draw the training graph (loss and metrics as outputs; with "
                     "--compiled, the whole step: forward, backward and optimizer update)")
    _add_model_choice(viz)
    viz.set_defaults(run=_viz)

    exp = sub.add_parser(
        "export", help="write a model's inference graph as an ONNX file",
        description="Write a model's inference graph as ONNX (weights included as initializers; "
        "symbolic dims such as N stay named dynamic dims), for onnxruntime and other ONNX "
        "tools. Needs the onnx package (pip install 'dlg[onnx]').")
    exp.add_argument("file", type=Path, help="the .dlg file")
    exp.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    exp.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                     help=f"ONNX opset version, {OPSETS.start} to {OPSETS.stop - 1} "
                     f"(default {DEFAULT_OPSET})")
    exp.add_argument("--weights", "-w", type=Path,
                     help="parameters to load from a .safetensors, .npz or .pt/.pth file "
                     "(PyTorch names)")
    exp.add_argument("--scan", action="store_true",
                     help="write recurrent layers as ONNX Scan loops (default: ONNX's own LSTM, "
                     "GRU and RNN ops)")
    _add_model_choice(exp)
    _add_seed(exp)
    exp.set_defaults(run=_export)

    imp = sub.add_parser(
        "import", help="read an ONNX model and print it as .dlg source",
        description="Import an ONNX model (external data files beside it are read) and print "
        "it as .dlg source: named dynamic dims stay symbols, initializers become parameters "
        "under their ONNX names (the .dlg file declares them; -w writes their values). Ops dlg "
        "cannot import are listed together. Needs the onnx package (pip install 'dlg[onnx]').")
    imp.add_argument("file", type=Path, help="the .onnx file")
    imp.add_argument("-o", "--output", type=Path, help="write the .dlg file here")
    imp.add_argument("--weights", "-w", type=Path,
                     help="write the parameters to this .safetensors or .npz file, for "
                     "`dlgc run FILE.dlg -w` and load_state_dict")
    imp.set_defaults(run=_import)

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
        m.load_state_dict(load_weights(args.weights))
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
        with atomic_write(args.output) as f:
            if len(values) == 1 and args.output.suffix != ".npz":
                np.save(f, values[0])
            else:
                np.savez(f, **dict(zip(names, values)))
        print(f"wrote {', '.join(names)} to {args.output}")
    else:
        for name, value in zip(names, values):
            print(f"{name}: {value.dtype}{list(value.shape)}")
            print(np.array2string(value, threshold=60, precision=5))
    return 0


def _compile(args: argparse.Namespace) -> int:
    m = load(args.file, model=args.model, seed=args.seed)
    if args.output is not None and args.output.suffix != ".dlgx":
        raise DlgValueError(f"{args.output}: artifacts are .dlgx files")
    training = [s for s in args.dump_after if s in {s.name for s in PIPELINE if s.training}]
    if training and not args.train:
        raise DlgValueError(f"--dump-after {training[0]}: that pass makes a training step; "
                            f"add --train")
    options = CompileOptions(dump_after=tuple(args.dump_after), dump_dir=args.dump_dir,
                             profile=args.profile is not None,
                             verify=args.verify or verify_requested(),
                             cold=args.time_passes,
                             target="cpu" if args.target == "cuda" else args.target)
    if args.target != "cpu" and args.output is not None:
        raise DlgValueError(f"-o writes an artifact of CPU code; --target {args.target} "
                            "writes none yet")
    if args.target == "cuda":
        return _compile_cuda(args, m, options)
    if args.emit == "ptx":
        raise DlgValueError("--emit ptx: add --target cuda")
    values = dict(m.params)
    if args.train:
        if m.train_spec is None:
            raise DlgValueError(f"{args.file}: model {m.name} has no train section")
        step = TrainStep(m, compiled=True, options=options)
        native, values = step.native, {**values, **step.state}
    else:
        native = NativeGraph(m.graph, options=options)
    assert native is not None
    if args.time_passes:
        print(format_seconds(native.seconds))
    if args.profile is not None:
        return _print_profile(native, values, args.batch, args.profile)
    if args.emit == "graph":
        print(format_graph(native.optimized_graph))
    elif args.emit == "kernels":
        print(format_program(native.program))
    elif args.emit == "llvm":
        print(native.module)
    elif args.emit == "asm":
        print(assembly(native.module))
    else:
        print(compile_report(native, args.batch))
    if args.output is not None:
        compile_model(m).save(args.output, train=args.train)  # from the cache just filled
        print(f"wrote {args.output}")
    return 0


def _compile_cuda(args: argparse.Namespace, m: Model, options: CompileOptions) -> int:
    """--target cuda: the GPU's PTX, its NVVM IR or its launches (the default report)."""
    if args.emit not in ("report", "ptx", "llvm", "kernels"):
        raise DlgValueError(f"--target cuda --emit {args.emit}: use ptx, llvm or kernels")
    device = device_program(m, train=args.train, options=options, arch=args.arch)
    if args.time_passes:
        print(format_seconds(options.seconds))
    print({"ptx": device.ptx, "llvm": device.llvm_ir}.get(args.emit) or format_launches(device))
    return 0


def _print_profile(native: NativeGraph, values: dict[str, np.ndarray], batch: int,
                   calls: int) -> int:
    """Kernels by time on random inputs (normal floats, zero integers: valid class labels)."""
    rng = np.random.default_rng(0)
    env = {d: batch for d in native.dim_names}
    inputs = {name: (rng.standard_normal(evaluate_shape(t.shape, env)) if t.dtype.is_float
                     else np.zeros(evaluate_shape(t.shape, env))).astype(t.dtype.np)
              for name, _, t in native.input_types}
    rows = profile_kernels(native, lambda: native(inputs, values), calls)
    total = sum(ms for _, ms in rows)
    print(f"{native.graph.name} at batch {batch}: {total:.3f} ms per call, {calls} calls")
    for name, ms in rows[:20]:
        print(f"  {ms:9.3f} ms {100 * ms / total:5.1f}%  {name}")
    if len(rows) > 20:
        print(f"  {sum(ms for _, ms in rows[20:]):9.3f} ms in {len(rows) - 20} more kernels")
    return 0


def _train(args: argparse.Namespace) -> int:
    if args.detect_anomaly:  # before anything is compiled: the checks are compiled in
        set_anomaly(True)
    m = load(args.file, model=args.model, seed=args.seed)
    if m.train_spec is None:
        raise DlgValueError(f"{args.file}: model {m.name} has no train section; add `train "
                            f"{m.name} {{ input y: ...  loss = ...  optimizer = ... }}`")
    if args.output is not None and args.output.suffix not in WEIGHT_FORMATS:
        raise DlgValueError(f"{args.output}: weights are {', '.join(WEIGHT_FORMATS)} files")
    data = training_data(m, args.data, seed=args.seed)
    callbacks = _callbacks(args)  # before compiling: a missing package is said at once
    tested = data.rows(data.test)
    print(f"training {m.name} ({m.num_params():,} parameters) on {data.description}: "
          f"{data.rows(data.train):,} train / {tested:,} test samples, "
          f"{args.epochs} epochs, batch {args.batch_size}", file=sys.stderr)
    if not args.interpreter:  # compile (or load from the disk cache) outside the training time
        start = time.perf_counter()
        native, _ = m.fit_step().native, m.eval_native  # each built on first use
        print(f"compiled the training step and the evaluation in "
              f"{time.perf_counter() - start:.2f} s"
              + (" (machine code from the disk cache)" if native and native.cache_hit else ""),
              file=sys.stderr)
    checkpoint = args.checkpoint or args.resume or (
        args.output.with_suffix(".ckpt") if args.output else Path(f"{args.file.stem}.ckpt"))
    start = time.perf_counter()
    try:
        history = m.fit(data.train, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, seed=args.seed, verbose=0 if args.quiet else 1,
                        validation_data=None if args.validation_split else data.test,
                        validation_split=args.validation_split, callbacks=callbacks,
                        compiled=not args.interpreter, checkpoint=checkpoint,
                        resume=args.resume, checkpoint_every=args.checkpoint_every)
    except Interrupted as e:
        print(f"{e.where()}; saved a checkpoint to {e.checkpoint}\nto continue, run the same "
              f"command with --resume {e.checkpoint}", file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - start
    if args.quiet:  # otherwise each epoch's bar already shows these
        for epoch, values in zip(history.epoch, zip(*history.history.values())):
            row = "  ".join(f"{k} {v:.4f}" for k, v in zip(history.history, values))
            print(f"epoch {epoch:>3}  {row}")
    for stopper in (c for c in callbacks if isinstance(c, EarlyStopping) and c.stopped_epoch):
        print(f"stopped early after epoch {stopper.stopped_epoch + 1}: {args.monitor} did not "
              f"improve for {args.early_stop} epochs; kept the weights of epoch "
              f"{stopper.best_epoch + 1}", file=sys.stderr)
    final = m.evaluate(data.test, compiled=not args.interpreter)
    shown = ", ".join(_describe_metric(k, v) for k, v in final.items())
    print(f"test: {shown} ({tested:,} samples); trained in {elapsed:.2f} s")
    if args.output is not None:
        m.save_weights(args.output)
        print(f"saved weights to {args.output}")
    if args.plot is not None:
        plot_history(history, args.plot, title=f"{m.name} on {data.description}")
        print(f"wrote curves to {args.plot}")
    return 0


def _callbacks(args: argparse.Namespace) -> list[Callback]:
    """The Keras callbacks the train flags ask for."""
    callbacks: list[Callback] = []
    if args.early_stop is not None:
        callbacks.append(EarlyStopping(args.monitor, patience=args.early_stop,
                                       restore_best_weights=True))
    if args.save_best is not None:
        callbacks.append(ModelCheckpoint(args.save_best, args.monitor, save_best_only=True))
    if args.reduce_lr is not None:
        callbacks.append(ReduceLROnPlateau(args.monitor, patience=args.reduce_lr))
    if args.csv_log is not None:
        callbacks.append(CSVLogger(args.csv_log))
    if args.tensorboard is not None:
        callbacks.append(TensorBoard(args.tensorboard))
    return callbacks


def _describe_metric(name: str, value: float) -> str:
    return f"{name} {value:.2%}" if "acc" in name else f"{name} {value:.4f}"


def _trace(args: argparse.Namespace) -> int:
    path, _, name = args.target.rpartition(":")
    if not path or not name:
        raise DlgValueError(f"expected FILE.py:NAME, got {args.target!r}")
    try:
        shape = tuple(int(d) for d in args.shape.split(","))
    except ValueError:
        raise DlgValueError(f"--shape must be comma-separated ints, got {args.shape!r}") from None
    spec = importlib.util.spec_from_file_location("traced_module", path)
    if spec is None or spec.loader is None or not Path(path).is_file():
        raise DlgValueError(f"{path}: no such Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = getattr(module, name, None)
    if cls is None:
        raise DlgValueError(f"{path} defines no {name!r}")
    net = cls().eval()
    source = trace(net, np.zeros(shape, np.float32)).to_dlg()
    if args.output is not None:
        write_text(args.output, source)
        print(f"wrote {args.output}")
    else:
        print(source, end="")
    return 0


def _export(args: argparse.Namespace) -> int:
    m = load(args.file, model=args.model, seed=args.seed)
    if args.weights is not None:
        m.load_state_dict(load_weights(args.weights))
    export_onnx(m, args.output, opset=args.opset, rnn_ops=not args.scan)
    print(f"wrote {args.output} (ONNX opset {args.opset}): "
          f"{', '.join(f'{k}: {t}' for k, t in m.inputs.items())} -> "
          f"{', '.join(f'{k}: {t}' for k, t in m.outputs.items())}")
    return 0


def _import(args: argparse.Namespace) -> int:
    m = load_onnx(args.file)
    source = m.to_dlg()
    if args.weights is not None:
        m.save_weights(args.weights)
        print(f"wrote {len(m.params)} parameters to {args.weights}", file=sys.stderr)
    if args.output is not None:
        write_text(args.output, source)
        print(f"wrote {args.output}")
    else:
        print(source, end="")
    return 0


def _viz(args: argparse.Namespace) -> int:
    if args.expand and args.compiled:
        raise DlgValueError("--expand opens layers and --compiled draws kernels: give one")
    if args.output is None and args.format not in (None, *SOURCE_FORMATS):
        raise DlgValueError(f"--format {args.format} writes an image: give the file with -o")
    m = load(args.file, model=args.model)
    drawn = picture(m, expand=args.expand, compiled=args.compiled, train=args.train)
    if args.output is None:
        print(drawn.source, end="")
        return 0
    save_picture(drawn, args.output, args.format)
    print(f"wrote {args.output}")
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
            write_text(args.file, text)
        return 0
    print(text, end="")
    return 0


def _formatted(path: Path) -> str:
    return format_module(load_file(path).main, path.read_text())


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
