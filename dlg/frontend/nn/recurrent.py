"""Recurrent modules: RNN, GRU and LSTM run prelude.dlg's layers, one scan per layer and
direction (a PackedSequence as its padded steps and their mask); RNNCell, GRUCell and LSTMCell
run its cells, one step of the same arithmetic."""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgTypeError
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.frontend.graph_call import call_graph
from dlg.frontend.nn.module import Module, Parameter
from dlg.frontend.rnn_utils import PackedSequence
from dlg.frontend.tensor import Tensor
from dlg.grammar.layer_graph import layer_graph, prelude_layer
from dlg.ir.dtypes import DType


class _PreludeLayer(Module):
    """A module running the prelude.dlg layer of its class's name: the options (checked by the
    prelude, with its errors), the parameters (names, shapes, initialisers) and the forward are
    the .dlg layer's, so a traced module is the graph the layer makes in a .dlg model."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()
        options, params = prelude_layer(type(self).__name__, args, kwargs, engine.rng(),
                                        engine.caller_span())
        self._options = tuple(options.items())
        for name, value in options.items():
            setattr(self, name, value)
        for name, value in params.items():
            setattr(self, name, Parameter(value))

    takes_packed = False  # whether forward takes a PackedSequence (torch's RNN, GRU, LSTM)

    def forward(self, input: Any, hx: Any = None) -> Any:  # noqa: A002 (PyTorch's names)
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        if hx is None and isinstance(input, Tensor) and input.dtype != DType.f32:
            hx = self._zero_state(input)
        return self._run((input,) if hx is None else (input, hx))

    def _zero_state(self, x: Tensor) -> Any:
        """The state torch starts from, zeros, at x's dtype: the prelude's own zeros are f32,
        so a module made float64 by `.double()` (time_sequence_prediction) is given them."""
        o = dict(self._options)
        hidden = o["hidden_size"]
        if "num_layers" in o:  # RNN, GRU, LSTM
            lead: tuple[int, ...] = (o["num_layers"] * (2 if o["bidirectional"] else 1),)
            if x.ndim == 3:
                lead += (x.shape[0 if o["batch_first"] else 1],)
            h = F.zeros(*lead, o.get("proj_size") or hidden, dtype=x.dtype)
        else:  # the cells
            lead = (x.shape[0],) if x.ndim == 2 else ()
            h = F.zeros(*lead, hidden, dtype=x.dtype)
        if type(self).__name__ in ("LSTM", "LSTMCell"):
            return h, F.zeros(*lead, hidden, dtype=x.dtype)
        return h

    def _run(self, inputs: tuple[Any, ...]) -> Any:
        flat: list[Tensor] = []
        args = _tensors(inputs, flat)
        weights = self._weights()
        dtypes = tuple((k, v.dtype) for k, v in weights.items() if v.dtype != DType.f32)
        graph, nesting = layer_graph(type(self).__name__, self._options, _types(args),
                                     self.training, engine.caller_span(), dtypes)
        return _nest(nesting, call_graph(graph, flat, weights))

    def _weights(self) -> dict[str, Tensor]:
        """The parameters, a weight set as a plain tensor in a parameter's place winning (AWD-LSTM's
        WeightDrop: `weight_hh_l0` deleted, then set to dropout(weight_hh_l0_raw) each forward),
        as torch's RNNs read their weights by name."""
        plain = {k: v for k, v in self.__dict__.items() if isinstance(v, Tensor)}
        return {**self._parameters, **plain} if plain else dict(self._parameters)

    def _forward_packed(self, packed: PackedSequence, hx: Any) -> Any:
        """The layer over the padded steps with their mask (past a length: state kept, zero
        output), giving a PackedSequence of the same lengths; states in the batch's order."""
        name = type(self).__name__
        if not self.takes_packed:
            raise DlgTypeError(f"{name} takes a tensor, not a PackedSequence (RNN, GRU and LSTM "
                               "take packed batches)", engine.caller_span())
        padded, mask, _ = packed._padded_form()
        if padded.ndim != 3:
            raise DlgTypeError(f"{name}: a PackedSequence's data must be [sum(lengths), "
                               f"features], got {padded.ndim - 1}-d", engine.caller_span())
        batch_first = dict(self._options)["batch_first"]
        x = padded.transpose(0, 1) if batch_first else padded
        out, state = self._run((x, hx, mask))
        return packed._with_padded(out.transpose(0, 1) if batch_first else out), state

    def extra_repr(self) -> str:
        """torch's: the sizes, then the options that differ from their defaults (an RNN's
        nonlinearity left out, a cell's shown)."""
        o = dict(self._options)
        defaults: dict[str, Any] = (
            {"proj_size": 0, "num_layers": 1, "bias": True, "batch_first": False, "dropout": 0,
             "bidirectional": False} if "num_layers" in o else
            {"bias": True, "nonlinearity": "tanh"})
        return f"{o['input_size']}, {o['hidden_size']}" + "".join(
            f", {k}={o[k]}" for k, d in defaults.items() if k in o and o[k] != d)


class _Recurrent(_PreludeLayer):
    """RNN, GRU and LSTM: whole sequences, packed ones too."""

    takes_packed = True

    def flatten_parameters(self) -> None:
        """torch's call to lay the weights out in one block for cuDNN (word_language_model
        makes it after loading): dlg's weights are used as they are, so nothing to do."""

    @property
    def _all_weights(self) -> list[list[str]]:
        """torch's weight names, one list per layer and direction: weight_ih, weight_hh, the
        biases (with bias) and weight_hr (with proj_size), `_reverse` for the backward one."""
        o = dict(self._options)
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if o["bias"] else []) \
            + (["weight_hr"] if o.get("proj_size") else [])
        return [[f"{name}_l{layer}{suffix}" for name in names]
                for layer in range(o["num_layers"])
                for suffix in ("", "_reverse")[:2 if o["bidirectional"] else 1]]

    @property
    def _flat_weights_names(self) -> list[str]:
        """The weight names in torch's order (d2l's xavier_init_weights walks them)."""
        return [name for names in self._all_weights for name in names]

    @property
    def _flat_weights(self) -> list[Tensor]:
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """The weights, one list per layer and direction (torch's property)."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]


class RNN(_Recurrent):
    """torch.nn.RNN (input_size, hidden_size, num_layers, nonlinearity, bias, batch_first,
    dropout, bidirectional); forward(input, hx=None) -> (output, h_n)."""


class GRU(_Recurrent):
    """torch.nn.GRU (the options of RNN but nonlinearity); forward(input, hx=None)."""


class LSTM(_Recurrent):
    """torch.nn.LSTM (the options of GRU and proj_size); forward(input, (h_0, c_0)=None) ->
    (output, (h_n, c_n))."""


class RNNCell(_PreludeLayer):
    """torch.nn.RNNCell (input_size, hidden_size, bias, nonlinearity); forward(input, hx=None)
    -> h'."""


class GRUCell(_PreludeLayer):
    """torch.nn.GRUCell (input_size, hidden_size, bias); forward(input, hx=None) -> h'."""


class LSTMCell(_PreludeLayer):
    """torch.nn.LSTMCell (input_size, hidden_size, bias); forward(input, (h, c)=None) ->
    (h', c')."""


def _tensors(x: Any, flat: list[Tensor]) -> Any:
    """Arguments as tensors (tuples and None kept), also collected into `flat` in order."""
    if isinstance(x, (tuple, list)):
        return tuple(_tensors(v, flat) for v in x)
    if x is None:
        return None
    flat.append(F._t(x))
    return flat[-1]


def _types(x: Any) -> Any:
    if isinstance(x, tuple):
        return tuple(_types(v) for v in x)
    return None if x is None else x.tensor_type


def _nest(nesting: Any, flat: list[Tensor]) -> Any:
    return tuple(_nest(n, flat) for n in nesting) if isinstance(nesting, tuple) else flat[nesting]
