"""torch.nn.utils.rnn's PackedSequence in dlg: packing, the recurrent layers on packed batches
(values and gradients against torch), the conversions, the errors, and a traced model that packs
inside forward with its lengths as an input."""

import numpy as np
import pytest

import dlg
from dlg import nn
from dlg.errors import DlgTypeError, DlgValueError
from dlg.nn.utils import rnn as drnn

torch = pytest.importorskip("torch")
trnn = torch.nn.utils.rnn

T = 5  # padded steps
LENGTHS = {True: [5, 4, 4, 1], False: [2, 5, 1, 4]}  # by enforce_sorted: sorted, unsorted


def _pair(kind: str, **options):
    """The torch module and its dlg twin, same weights."""
    torch.manual_seed(0)
    tm = getattr(torch.nn, kind)(3, 4, **options)
    dm = getattr(nn, kind)(3, 4, **options)
    dm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm, dm


def _np(t):
    return t if isinstance(t, np.ndarray) else t.detach().numpy()


def _close(a, b, atol=1e-5):
    np.testing.assert_allclose(_np(a), _np(b), rtol=1e-4, atol=atol)


def _states(kind, out):
    return list(out) if kind == "LSTM" else [out]


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (1, True), (2, False),
                                                      (2, True)])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_packed_layer_matches_torch(kind, num_layers, bidirectional, batch_first,
                                    enforce_sorted):
    tm, dm = _pair(kind, num_layers=num_layers, bidirectional=bidirectional,
                   batch_first=batch_first)
    lengths = LENGTHS[enforce_sorted]
    x = np.random.default_rng(1).standard_normal((4, T, 3) if batch_first else (T, 4, 3))
    tx = torch.tensor(x.astype(np.float32), requires_grad=True)
    dx = dlg.tensor(x.astype(np.float32), requires_grad=True)
    tp = trnn.pack_padded_sequence(tx, lengths, batch_first, enforce_sorted)
    dp = drnn.pack_padded_sequence(dx, lengths, batch_first, enforce_sorted)
    _close(tp.data, dp.data)
    for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
        want, got = getattr(tp, field), getattr(dp, field)
        assert (want is None and got is None) or (want.tolist() == got.tolist()), field
    t_out, t_state = tm(tp)
    d_out, d_state = dm(dp)
    assert isinstance(d_out, drnn.PackedSequence)
    _close(t_out.data, d_out.data)
    t_pad, t_len = trnn.pad_packed_sequence(t_out, batch_first)
    d_pad, d_len = drnn.pad_packed_sequence(d_out, batch_first)
    assert d_pad.shape == tuple(t_pad.shape) and d_len.tolist() == t_len.tolist()
    _close(t_pad, d_pad)
    for want, got in zip(_states(kind, t_state), _states(kind, d_state)):
        _close(want, got)
    # a loss on the padded outputs and on the final states: gradients of input and weights
    weights = np.linspace(-1, 1, t_pad.numel()).reshape(t_pad.shape).astype(np.float32)
    t_loss = (t_pad * torch.tensor(weights)).sum() + sum(
        (s * s).sum() for s in _states(kind, t_state))
    d_loss = (d_pad * dlg.tensor(weights)).sum() + sum(
        (s * s).sum() for s in _states(kind, d_state))
    t_loss.backward()
    d_loss.backward()
    _close(tx.grad, dx.grad)
    params = dict(dm.named_parameters())
    for name, p in tm.named_parameters():
        _close(p.grad, params[name].grad)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_packed_with_initial_state_in_batch_order(kind):
    # torch sorts hx by sorted_indices and h_n back: both stay in the batch's own order
    tm, dm = _pair(kind, bidirectional=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, 4, 3)).astype(np.float32)
    states = [rng.standard_normal((2, 4, 4)).astype(np.float32) for _ in range(2)]
    t_hx = tuple(torch.tensor(s) for s in states) if kind == "LSTM" else torch.tensor(states[0])
    d_hx = tuple(dlg.tensor(s) for s in states) if kind == "LSTM" else dlg.tensor(states[0])
    lengths = LENGTHS[False]
    t_out, t_state = tm(trnn.pack_padded_sequence(torch.tensor(x), lengths, enforce_sorted=False),
                        t_hx)
    d_out, d_state = dm(drnn.pack_padded_sequence(dlg.tensor(x), lengths, enforce_sorted=False),
                        d_hx)
    _close(t_out.data, d_out.data)
    for want, got in zip(_states(kind, t_state), _states(kind, d_state)):
        _close(want, got)


def test_lengths_as_an_int64_tensor_and_padded_input_longer_than_longest():
    x = np.random.default_rng(3).standard_normal((4, T + 2, 3)).astype(np.float32)
    lengths = [3, 5, 1, 2]
    tp = trnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), True, False)
    dp = drnn.pack_padded_sequence(dlg.tensor(x), dlg.tensor(lengths), True, False)
    _close(tp.data, dp.data)
    t_pad, _ = trnn.pad_packed_sequence(tp, True, padding_value=-2.0, total_length=T + 3)
    d_pad, d_len = drnn.pad_packed_sequence(dp, True, padding_value=-2.0, total_length=T + 3)
    _close(t_pad, d_pad)
    assert d_len.dtype == dlg.int64 and d_len.tolist() == lengths
    t_pad, _ = trnn.pad_packed_sequence(tp)
    d_pad, _ = drnn.pad_packed_sequence(dp)
    assert d_pad.shape == (5, 4, 3)
    _close(t_pad, d_pad)


def test_packed_sequence_built_from_data():
    # programs map packed.data through a layer and rebuild the PackedSequence from the fields
    tm, dm = _pair("LSTM", batch_first=True)
    t_lin, d_lin = torch.nn.Linear(3, 3), nn.Linear(3, 3)
    d_lin.load_state_dict({k: v.detach().numpy() for k, v in t_lin.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((4, T, 3)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    dx = dlg.tensor(x, requires_grad=True)
    tp = trnn.pack_padded_sequence(tx, LENGTHS[False], True, False)
    dp = drnn.pack_padded_sequence(dx, LENGTHS[False], True, False)
    tp = trnn.PackedSequence(t_lin(tp.data), tp.batch_sizes, tp.sorted_indices,
                             tp.unsorted_indices)
    dp = drnn.PackedSequence(d_lin(dp.data), dp.batch_sizes, dp.sorted_indices,
                             dp.unsorted_indices)
    data, batch_sizes, sorted_indices, unsorted_indices = dp  # torch's is a 4-tuple
    assert sorted_indices.tolist() == tp.sorted_indices.tolist()
    (t_out, (t_h, _)), (d_out, (d_h, _)) = tm(tp), dm(dp)
    _close(t_out.data, d_out.data)
    _close(t_h, d_h)
    (t_out.data.sum() + t_h.sum()).backward()
    (d_out.data.sum() + d_h.sum()).backward()
    _close(tx.grad, dx.grad)
    _close(t_lin.weight.grad, d_lin.weight.grad)


def test_pack_sequence_and_unpacking():
    rng = np.random.default_rng(5)
    seqs = [rng.standard_normal((n, 2)).astype(np.float32) for n in (4, 2, 3)]
    tp = trnn.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    dp = drnn.pack_sequence([dlg.tensor(s) for s in seqs], enforce_sorted=False)
    _close(tp.data, dp.data)
    assert dp.batch_sizes.tolist() == tp.batch_sizes.tolist()
    for want, got in zip(trnn.unpack_sequence(tp), drnn.unpack_sequence(dp)):
        _close(want, got)
    padded = drnn.pad_sequence([dlg.tensor(s) for s in seqs])
    for want, got in zip(seqs, drnn.unpad_sequence(padded, dlg.tensor([4, 2, 3]))):
        np.testing.assert_array_equal(want, got.numpy())
    with pytest.raises(DlgValueError, match="sorted in decreasing order"):
        drnn.pack_sequence([dlg.tensor(s) for s in seqs])


def test_packed_sequence_conversions():
    x = dlg.randn(T, 2, 3)
    p = drnn.pack_padded_sequence(x, [5, 3])
    assert p.double().data.dtype == dlg.float64
    assert p.to(dlg.float64).data.dtype == dlg.float64
    assert p.double().float().data.dtype == dlg.float32
    assert p.cpu() is p and not p.is_cuda and not p.is_pinned()
    padded, _ = drnn.pad_packed_sequence(p.double())
    assert padded.dtype == dlg.float64
    assert "batch_sizes=tensor([2, 2, 2, 1, 1]" in repr(p).replace("\n", "")


@pytest.mark.parametrize("call,error,message", [
    (lambda x: drnn.pack_padded_sequence(x, [2, 5, 1, 4]), DlgValueError,
     "must be sorted in decreasing order when `enforce_sorted` is True"),
    (lambda x: drnn.pack_padded_sequence(x, [5, 0, 0, 0]), DlgValueError,
     "Length of all samples has to be greater than 0"),
    (lambda x: drnn.pack_padded_sequence(x, [[5, 4, 4, 1]]), DlgValueError,
     "should be a 1D CPU int64 tensor, but got 2D"),
    (lambda x: drnn.pack_padded_sequence(x, [5, 4]), DlgValueError,
     r"equal to batch_size, but got 2 \(batch_size=4\)"),
    (lambda x: drnn.pack_padded_sequence(x, [6, 4, 4, 1]), DlgValueError,
     r"length of 6 is longer than the padded sequences \(5 steps\)"),
    (lambda x: drnn.pad_packed_sequence(drnn.pack_padded_sequence(x, [5, 4, 4, 1]),
                                        total_length=3), DlgValueError,
     "total_length=3 and max sequence length being 5"),
    (lambda x: drnn.pack_sequence([]), DlgValueError, "empty list of sequences"),
    (lambda x: nn.LSTMCell(3, 4)(drnn.pack_padded_sequence(x, [5, 4, 4, 1])), DlgTypeError,
     "LSTMCell takes a tensor, not a PackedSequence"),
])
def test_packing_errors(call, error, message):
    with pytest.raises(error, match=message) as info:
        call(dlg.randn(T, 4, 3))
    assert info.value.span is not None and info.value.span.file == __file__


def _tagger(base, packing, total_length=True):
    class Tagger(base.Module):
        def __init__(self):
            super().__init__()
            self.emb = base.Embedding(20, 5)
            self.lstm = base.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True)
            self.fc = base.Linear(12, 3)

        def forward(self, tokens, lengths):
            packed = packing.pack_padded_sequence(self.emb(tokens), lengths, batch_first=True,
                                                  enforce_sorted=False)
            out, (h, _) = self.lstm(packed)
            steps = tokens.shape[1] if total_length else None
            out, _ = packing.pad_packed_sequence(out, batch_first=True, total_length=steps)
            return self.fc(out) + h[-1].sum(-1, keepdim=True).unsqueeze(1)

    return Tagger()


def test_compiled_model_packing_inside_forward():
    # lengths are an input of the trace: the mask is ops over them, so the batch and the
    # lengths can change between calls of one compiled model
    torch.manual_seed(0)
    tm, dm = _tagger(torch.nn, trnn), _tagger(nn, drnn)
    dm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    rng = np.random.default_rng(6)
    tokens, lengths = rng.integers(0, 20, (4, 7)), np.array([3, 7, 1, 5])
    exe = dlg.compile(dm, dlg.tensor(tokens), dlg.tensor(lengths))
    batches = [(tokens, lengths), (rng.integers(0, 20, (3, 7)), np.array([2, 7, 4]))]
    for tokens, lengths in batches:
        want = tm(torch.tensor(tokens), torch.tensor(lengths))
        got = exe(dlg.tensor(tokens), dlg.tensor(lengths))
        _close(want, got)


def test_traced_lengths_without_total_length_is_an_error():
    with pytest.raises(DlgValueError, match="pass total_length=") as info:
        dlg.trace(_tagger(nn, drnn, total_length=False), dlg.tensor(np.zeros((4, 7), np.int64)),
                  dlg.tensor(np.full(4, 7)))
    assert info.value.span is not None and info.value.span.file == __file__


def test_traced_lengths_packed_data_is_an_error():
    def packed_rows(x, lengths):
        return drnn.pack_padded_sequence(x, lengths, enforce_sorted=False).data

    with pytest.raises(DlgValueError, match="PackedSequence.data: the lengths are data"):
        dlg.trace(packed_rows, dlg.randn(T, 4, 3), dlg.tensor([5, 2, 3, 1]))


def test_packed_lstm_with_projection():
    tm, dm = _pair("LSTM", proj_size=2, bidirectional=True)
    x = np.random.default_rng(7).standard_normal((T, 4, 3)).astype(np.float32)
    t_out, (t_h, t_c) = tm(trnn.pack_padded_sequence(torch.tensor(x), LENGTHS[True]))
    d_out, (d_h, d_c) = dm(drnn.pack_padded_sequence(dlg.tensor(x), LENGTHS[True]))
    _close(t_out.data, d_out.data)
    _close(t_h, d_h)
    _close(t_c, d_c)
