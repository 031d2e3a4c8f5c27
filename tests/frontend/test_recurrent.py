"""dlg.nn.RNN/GRU/LSTM are prelude.dlg's layers: eager outputs and gradients equal torch.nn's with
the same weights (stacked, batch_first, relu, bidirectional, projections, initial states,
dropout); a trace holds one scan per layer and direction, op for op the graph the .dlg layer
makes; both doors take the same options and refuse bad ones with the same error."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import dlg
import dlg.nn as nn
from dlg.ir.graph import Graph
from dlg.ir.ops.control import SCAN
from tests.grammar.test_prelude import call

torch = pytest.importorskip("torch")
IN, H, N, T = 3, 4, 2, 5

CASES = [
    *[("RNN", dict(num_layers=layers, batch_first=bf, nonlinearity=nl), initial)
      for layers in (1, 2) for bf in (False, True) for nl in ("tanh", "relu")
      for initial in (False, True)],
    *[(kind, dict(num_layers=layers, batch_first=bf), initial) for kind in ("GRU", "LSTM")
      for layers in (1, 2) for bf in (False, True) for initial in (False, True)],
    *[(kind, dict(num_layers=2, bidirectional=True, bias=False), initial)
      for kind in ("RNN", "GRU", "LSTM") for initial in (False, True)],
    ("LSTM", dict(num_layers=2, proj_size=3), True),
    ("LSTM", dict(num_layers=2, proj_size=2, bidirectional=True, batch_first=True), True),
]


def ident(case: tuple[str, dict[str, Any], bool]) -> str:
    kind, options, initial = case
    return "-".join([kind, *(f"{k}={v}" for k, v in options.items()), f"initial={initial}"])


def pair(kind: str, options: dict[str, Any]):
    """The dlg module and the torch one, with torch's weights."""
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(IN, H, **options)
    ours = getattr(nn, kind)(IN, H, **options)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def inputs(kind: str, options: dict[str, Any], initial: bool, seed: int = 0) -> list[Any]:
    """x, and the initial state when asked for, as arrays ((h0, c0) for an LSTM)."""
    r = np.random.default_rng(seed)
    x = r.standard_normal((N, T, IN) if options.get("batch_first") else (T, N, IN))
    if not initial:
        return [x.astype(np.float32)]
    states = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
    h0 = r.standard_normal((states, N, options.get("proj_size") or H))
    if kind != "LSTM":
        return [x.astype(np.float32), h0.astype(np.float32)]
    c0 = r.standard_normal((states, N, H))
    return [x.astype(np.float32), (h0.astype(np.float32), c0.astype(np.float32))]


def leaves(args: list[Any], make: Any) -> tuple[list[Any], list[Any]]:
    """The arguments as tensors that require grad (nesting kept), and those tensors."""
    flat: list[Any] = []

    def to(a: Any) -> Any:
        if isinstance(a, tuple):
            return tuple(to(v) for v in a)
        flat.append(make(a))
        return flat[-1]
    return [to(a) for a in args], flat


def flatten(out: Any) -> list[Any]:
    return [o for v in out for o in flatten(v)] if isinstance(out, tuple) else [out]


def close(ours: Any, theirs: Any, what: str, rtol: float = 1e-5) -> None:
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=rtol, atol=1e-5,
                               err_msg=what)


@pytest.mark.parametrize("case", CASES, ids=ident)
def test_eager_matches_torch(case):
    kind, options, initial = case
    ours, theirs = pair(kind, options)
    args = inputs(kind, options, initial)
    ta, t_leaves = leaves(args, lambda a: torch.tensor(a, requires_grad=True))
    da, d_leaves = leaves(args, lambda a: dlg.tensor(a, requires_grad=True))
    t_out, d_out = flatten(theirs(*ta)), flatten(ours(*da))
    assert [tuple(o.shape) for o in d_out] == [tuple(o.shape) for o in t_out]
    weights = [np.random.default_rng(i).standard_normal(tuple(o.shape)).astype(np.float32)
               for i, o in enumerate(t_out)]
    sum((o * torch.tensor(w)).sum() for o, w in zip(t_out, weights)).backward()
    sum((o * dlg.tensor(w)).sum() for o, w in zip(d_out, weights)).backward()
    for i, (d, t) in enumerate(zip(d_out, t_out)):
        close(d.detach(), t, f"output {i}")
    for i, (d, t) in enumerate(zip(d_leaves, t_leaves)):
        close(d.grad, t.grad, f"gradient of input {i}", rtol=1e-4)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        close(p.grad, tp.grad, f"gradient of {name}", rtol=1e-4)


def unbatched(args: list[Any], batch_first: bool) -> list[Any]:
    """The first sequence of a batch as torch's unbatched input: x [T, IN], states [S, H]."""
    def first(a: Any, axis: int) -> Any:
        return tuple(first(v, 1) for v in a) if isinstance(a, tuple) else np.take(a, 0, axis)
    return [first(args[0], 0 if batch_first else 1), *(first(a, 1) for a in args[1:])]


@pytest.mark.parametrize("case", [(kind, dict(num_layers=2, batch_first=bf), initial)
                                  for kind in ("RNN", "GRU", "LSTM") for bf in (False, True)
                                  for initial in (False, True)], ids=ident)
def test_unbatched_sequences_match_torch(case):
    """One sequence [T, IN] (states [S, H]), as torch takes it, batch_first or not: outputs
    without the batch dim, and the gradients."""
    kind, options, initial = case
    ours, theirs = pair(kind, options)
    args = unbatched(inputs(kind, options, initial), options["batch_first"])
    ta, t_leaves = leaves(args, lambda a: torch.tensor(a, requires_grad=True))
    da, d_leaves = leaves(args, lambda a: dlg.tensor(a, requires_grad=True))
    t_out, d_out = flatten(theirs(*ta)), flatten(ours(*da))
    assert [tuple(o.shape) for o in d_out] == [tuple(o.shape) for o in t_out]
    sum(o.sum() for o in t_out).backward()
    sum(o.sum() for o in d_out).backward()
    for i, (d, t) in enumerate(zip(d_out + d_leaves, t_out + t_leaves)):
        close(d.detach() if i < len(d_out) else d.grad, t if i < len(d_out) else t.grad,
              f"output or gradient {i}", rtol=1e-4)


def test_an_input_of_another_rank_is_an_error_naming_the_layouts():
    with pytest.raises(dlg.DlgError, match=r"GRU takes \[L, N, H_in\]"):
        nn.GRU(IN, H)(dlg.zeros(2, 3, 4, IN))


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_dropout_between_layers_in_training(kind):
    """p=1 drops every input of the upper layer: deterministic, so torch's results must match;
    in eval mode dropout is off."""
    for training in (True, False):
        ours, theirs = pair(kind, dict(num_layers=2, dropout=1.0))
        ours.train(training), theirs.train(training)
        (x,) = inputs(kind, {}, False)
        xa, xt = dlg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        d_out, t_out = flatten(ours(xa)), flatten(theirs(xt))
        for d, t in zip(d_out, t_out):
            close(d.detach(), t, f"training={training}")
        d_out[0].sum().backward()
        t_out[0].sum().backward()
        close(xa.grad, xt.grad, f"training={training}")


def test_dropout_draws_a_mask_when_training():
    dlg.manual_seed(0)
    lstm = nn.LSTM(IN, H, num_layers=2, dropout=0.5)
    (x,) = inputs("LSTM", {}, False)
    dropped, _ = lstm(dlg.tensor(x))
    kept, _ = lstm.eval()(dlg.tensor(x))
    assert not np.allclose(dropped.detach().numpy(), kept.detach().numpy())


# ---- the .dlg layer: the same graph, parameters and errors ----------------------------------
def dlg_layer(kind: str, options: dict[str, Any], initial: bool, types: list[str]) -> dlg.Model:
    """A .dlg model `outputs = m(x[, state])` with the layer made from the same options."""
    names = ["x"] + (["h0", "c0"] if kind == "LSTM" else ["h0"]) * initial
    state = "(h0, c0)" if kind == "LSTM" else "h0"
    args = f"x, {state}" if initial else "x"
    decls = " ".join(f"input {n}: {t}" for n, t in zip(names, types))
    result = "y, (h, c)" if kind == "LSTM" else "y, h"
    outs = "output y, h, c = y, h, c" if kind == "LSTM" else "output y, h = y, h"
    return dlg.loads(f"model M {{ {decls} layer m = {call(kind, IN, H, **options)} "
                     f"{result} = m({args}) {outs} }}")


class Holder(nn.Module):
    """A model with the layer as its submodule `m`, as in the .dlg model; an LSTM's initial
    state comes as two inputs (a trace takes tensors)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.m = layer

    def forward(self, x: Any, *state: Any) -> Any:
        return self.m(x, *((tuple(state),) if len(state) == 2 else state))


def structure(g: Graph) -> list[Any]:
    """Each node's op, attributes (scan bodies recursively), types and inputs by position."""
    position = {n.id: i for i, n in enumerate(g)}

    def attr(v: Any) -> Any:
        return structure(v) if isinstance(v, Graph) else (
            v.tolist() if isinstance(v, np.ndarray) else v)
    return [(n.op.name, {k: attr(v) for k, v in n.attrs.items()}, n.types,
             [(position[v.node], v.index) for v in n.inputs]) for n in g]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_a_weight_set_in_a_parameters_place_is_used_as_torch(kind, compiled):
    """AWD-LSTM's WeightDrop: weight_hh_l0 deleted, weight_hh_l0_raw registered, and
    weight_hh_l0 set to a masked copy before each forward; the layer reads that tensor, and
    the gradient reaches the raw parameter, eagerly and compiled."""
    x = np.random.default_rng(5).standard_normal((N, T, IN)).astype(np.float32)
    keep = (np.random.default_rng(6).random(((3 if kind == "GRU" else 4) * H, H)) > 0.3)
    results = []
    for lib in (torch, dlg):
        torch.manual_seed(0)
        theirs = getattr(torch.nn, kind)(IN, H, batch_first=True)
        layer = theirs if lib is torch else getattr(lib.nn, kind)(IN, H, batch_first=True)
        if lib is dlg:
            layer.load_state_dict({k: dlg.tensor(v.detach().numpy())
                                   for k, v in theirs.state_dict().items()})
        raw = layer.weight_hh_l0
        del layer._parameters["weight_hh_l0"]
        layer.register_parameter("weight_hh_l0_raw", lib.nn.Parameter(raw.data))
        mask = lib.tensor(keep.astype(np.float32))

        class WeightDrop(lib.nn.Module):
            def __init__(self, module, mask):
                super().__init__()
                self.module, self.mask = module, mask

            def forward(self, *args):
                self.module.weight_hh_l0 = self.module.weight_hh_l0_raw * self.mask
                return self.module(*args)

        drop = WeightDrop(layer, mask)
        run = dlg.compile(drop) if lib is dlg and compiled else drop
        outs = []
        for _ in range(2):
            out = run(lib.tensor(x))[0]
            out.square().sum().backward()
            outs.append(out.detach().numpy())
        results.append((outs, layer.weight_hh_l0_raw.grad.numpy(), list(layer.state_dict())))
    (want, want_grad, want_keys), (got, got_grad, got_keys) = results
    assert got_keys == want_keys
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES[::3], ids=ident)
def test_trace_is_the_dlg_layers_graph(case):
    kind, options, initial = case
    module = Holder(getattr(nn, kind)(IN, H, **options)).eval()
    flat = flatten(tuple(inputs(kind, options, initial)))
    traced = dlg.trace(module, *flat, dynamic={"x": {}, "x1": {}, "x2": {}})
    directions = 2 if options.get("bidirectional") else 1
    assert [n.op for n in traced.graph].count(SCAN) == options["num_layers"] * directions
    written = dlg_layer(kind, options, initial, [str(dlg.tensor(a).tensor_type) for a in flat])
    assert structure(traced.graph) == structure(written.graph)
    assert list(traced.params) == list(written.params)
    written.load_state_dict(traced.state_dict())
    for a, b in zip(traced(*flat), written(*flat)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_traced_layer_compiles_for_any_length(kind):
    module = Holder(getattr(nn, kind)(IN, H, num_layers=2, batch_first=True))
    traced = dlg.trace(module.eval(), inputs(kind, dict(batch_first=True), False)[0],
                       dynamic={"x": {0: "N", 1: "T"}})
    assert [n.op for n in traced.graph].count(SCAN) == 2
    exe = dlg.compile(traced)
    x = np.random.default_rng(1).standard_normal((3, 8, IN)).astype(np.float32)
    for a, b in zip(exe(x), flatten(module(dlg.tensor(x)))):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_module_has_the_dlg_layers_parameters_and_options():
    lstm = nn.LSTM(IN, H, 2, bidirectional=True, proj_size=3)
    written = dlg_layer("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3), False,
                        ["f32[T, N, 3]"])
    assert list(lstm.state_dict()) == [k.removeprefix("m.") for k in written.params]
    assert (lstm.num_layers, lstm.bidirectional, lstm.proj_size, lstm.batch_first) == \
        (2, True, 3, False)


BAD = [  # kind, options, class, message
    ("RNN", dict(nonlinearity="gelu"), dlg.DlgTypeError, 'nonlinearity must be "tanh" or'),
    ("LSTM", dict(dropuot=0.5), dlg.DlgTypeError, "no argument 'dropuot'; did you mean"),
    ("GRU", dict(proj_size=2), dlg.DlgTypeError, "no argument 'proj_size'"),
    ("GRU", dict(dropout=1.5), dlg.DlgTypeError, r"dropout must be a probability in \[0, 1\]"),
    ("LSTM", dict(num_layers=0), dlg.DlgTypeError, "num_layers must be greater than zero"),
    ("LSTM", dict(proj_size=4), dlg.DlgTypeError, "proj_size must be at least 0 and smaller"),
    ("RNN", dict(batch_first="yes"), dlg.DlgTypeError, "'batch_first' must be bool"),
]


@pytest.mark.parametrize("kind, options, error, message", BAD, ids=[str(b[1]) for b in BAD])
def test_bad_options_are_the_same_error_from_both_doors(kind, options, error, message):
    with pytest.raises(error, match=message) as from_dlg:
        dlg_layer(kind, options, False, ["f32[T, N, 3]"])
    with pytest.raises(error, match=message) as from_python:
        getattr(nn, kind)(IN, H, **options)
    assert type(from_python.value) is type(from_dlg.value)
    assert from_python.value.message == from_dlg.value.message
    assert from_dlg.value.span.file == "<string>"
    assert from_python.value.span.file == __file__


def test_flatten_parameters_is_accepted_and_changes_nothing():
    """word_language_model calls model.rnn.flatten_parameters() after loading (cuDNN's weight
    layout); dlg's recurrent modules take it and keep their weights."""
    for cls in (dlg.nn.RNN, dlg.nn.GRU, dlg.nn.LSTM):
        rnn = cls(3, 4, 2)
        before = {k: v.detach().numpy().copy() for k, v in rnn.state_dict().items()}
        assert rnn.flatten_parameters() is None
        for k, v in rnn.state_dict().items():
            np.testing.assert_array_equal(v.detach().numpy(), before[k])


def test_repr_is_torchs():
    """d2l prints its RNN models: the sizes and the options off their defaults."""
    for make in (lambda ns: ns.RNN(28, 32), lambda ns: ns.GRU(8, 16, 2, dropout=0.1),
                 lambda ns: ns.LSTM(3, 4, bidirectional=True, proj_size=2, batch_first=True),
                 lambda ns: ns.RNN(2, 3, nonlinearity="relu", bias=False),
                 lambda ns: ns.RNNCell(2, 3, nonlinearity="relu"),
                 lambda ns: ns.GRUCell(2, 3, bias=False), lambda ns: ns.LSTMCell(2, 3)):
        assert repr(make(dlg.nn)) == repr(make(torch.nn))


@pytest.mark.parametrize("name, kwargs", [
    ("RNN", {"num_layers": 2}), ("GRU", {"bidirectional": True}),
    ("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 2, "bias": False})])
def test_weight_lists_are_torchs(name, kwargs):
    """_flat_weights_names, _all_weights, _flat_weights and all_weights name and hold the
    weights in torch's order (d2l's xavier_init_weights walks m._flat_weights_names)."""
    ours, theirs = getattr(dlg.nn, name)(3, 4, **kwargs), getattr(torch.nn, name)(3, 4, **kwargs)
    assert ours._flat_weights_names == theirs._flat_weights_names
    assert ours._all_weights == theirs._all_weights
    assert [p.shape for p in ours._flat_weights] == [p.shape for p in theirs._flat_weights]
    assert [[p.shape for p in w] for w in ours.all_weights] == \
        [[p.shape for p in w] for w in theirs.all_weights]
    for name in ours._flat_weights_names:
        if "weight" in name:
            dlg.nn.init.xavier_uniform_(ours._parameters[name])
    assert all(p is getattr(ours, n) for p, n in zip(ours._flat_weights,
                                                     ours._flat_weights_names))


@pytest.mark.parametrize("name, args", [("RNN", (2, 5)), ("GRU", (2, 5)), ("LSTM", (2, 5, 2)),
                                        ("RNNCell", (2, 5)), ("GRUCell", (2, 5)),
                                        ("LSTMCell", (2, 5))])
def test_recurrent_modules_in_float64_match_torch(name, args):
    """time_sequence_prediction's seq.double(): the prelude's f32 layers run with f64 weights
    and states (matmul: dtypes differ: f64 vs f32 before), outputs and gradients torch's."""
    ours, theirs = getattr(dlg.nn, name)(*args).double(), getattr(torch.nn, name)(*args).double()
    ours.load_state_dict({k: dlg.from_numpy(v.detach().numpy())
                          for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 2) if "Cell" in name else (3, 4, 2))
    ox, tx = dlg.from_numpy(x).requires_grad_(), torch.from_numpy(x).requires_grad_()
    o, t = ours(ox), theirs(tx)
    o, t = (o[0], t[0]) if isinstance(o, tuple) else (o, t)
    assert o.dtype == dlg.float64
    o.sum().backward()
    t.sum().backward()
    np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ox.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-14)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12, atol=1e-13)
