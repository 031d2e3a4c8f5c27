"""`dlg.compile(module)` as torch.compile's: a module wrapping the original whose calls return dlg
tensors in the eager structure and train through `loss.backward()` by a compiled gradient. The
programs are written once over `lib` (torch or dlg) and run from the same weights and data;
eager torch is the oracle (torch.compile computes what eager torch does)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

import dlg
from dlg.frontend.compiled import OptimizedModule

torch = pytest.importorskip("torch")
R = np.random.default_rng(0)


def pair(make):
    """The same module built on torch and on dlg, dlg's loaded with torch's weights."""
    torch.manual_seed(0)
    theirs = make(torch)
    ours = make(dlg)
    ours.load_state_dict({k: dlg.tensor(v.detach().numpy()) for k, v in
                          theirs.state_dict().items()})
    return ours, theirs


def close(ours, theirs, rtol=1e-4, atol=1e-5, what=""):
    ours = ours.detach().numpy() if isinstance(ours, dlg.Tensor) else np.asarray(ours)
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=rtol, atol=atol,
                               err_msg=what)


def same_grads(ours, theirs):
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if q.grad is not None:
            close(p.grad, q.grad, what=name)


def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 4))


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_an_mlp_trains_through_the_compiled_module_as_torch_eager(optimizer):
    ours, theirs = pair(mlp)
    model = dlg.compile(ours)
    kwargs = {"lr": 0.1, "momentum": 0.9} if optimizer == "SGD" else {"lr": 0.01}
    opt = getattr(dlg.optim, optimizer)(model.parameters(), **kwargs)
    topt = getattr(torch.optim, optimizer)(theirs.parameters(), **kwargs)
    for step in range(5):
        x = R.standard_normal((8, 6)).astype(np.float32)
        y = R.integers(0, 4, 8)
        opt.zero_grad()
        loss = dlg.nn.functional.cross_entropy(model(dlg.tensor(x)), dlg.tensor(y))
        loss.backward()
        opt.step()
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
        tloss.backward()
        topt.step()
        close(loss, tloss, what=f"loss at step {step}")
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        close(p, q, what=name)
    assert len(model.compiled) == 1  # one trace, its forward and backward compiled once


def test_steps_share_one_gradient_graph_and_an_older_loss_keeps_its_own_activations():
    """The gradient graph over a compiled call is kept across steps (its call rebound to each
    step's saved activations), yet a loss from an earlier step still differentiates its own."""
    ours, theirs = pair(mlp)
    model = dlg.compile(ours)
    xs = [R.standard_normal((8, 6)).astype(np.float32) for _ in range(3)]
    first = model(dlg.tensor(xs[0])).square().mean()
    first.backward(retain_graph=True)
    plans = dlg.frontend.autograd._state.plans  # the thread's kept gradient graphs
    kept = len(plans)
    for x in xs[1:]:
        ours.zero_grad()
        model(dlg.tensor(x)).square().mean().backward()
    assert len(plans) == kept
    ours.zero_grad()
    first.backward()
    theirs(torch.tensor(xs[0])).square().mean().backward()
    same_grads(ours, theirs)


def cnn(lib, p=0.0):
    nn = lib.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.drop = nn.Dropout(p)
            self.fc = nn.Linear(4 * 4 * 4, 3)

        def forward(self, x):
            h = lib.relu(self.bn(self.conv(x)))
            h = lib.nn.functional.max_pool2d(h, 2)
            return self.fc(self.drop(h.flatten(1)))
    return Net()


def test_a_cnn_with_batchnorm_trains_then_evaluates_as_torch():
    ours, theirs = pair(cnn)
    model = dlg.compile(ours)
    x = R.standard_normal((5, 2, 8, 8)).astype(np.float32)
    out, tout = model(dlg.tensor(x)), theirs(torch.tensor(x))
    close(out, tout)
    out.square().mean().backward()
    tout.square().mean().backward()
    same_grads(ours, theirs)
    for name in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked"):
        close(ours.state_dict()[name], theirs.state_dict()[name], what=name)

    model.eval()
    theirs.eval()
    assert not ours.training and not ours.bn.training and not model.training
    x = R.standard_normal((3, 2, 8, 8)).astype(np.float32)
    with dlg.no_grad():
        out = model(dlg.tensor(x))
    assert not out.requires_grad
    close(out, theirs(torch.tensor(x)))
    close(ours.bn.running_mean, theirs.bn.running_mean)  # eval leaves the statistics
    assert len(model.compiled) == 2  # train and eval: two traces


def test_dropout_gradients_use_the_mask_the_forward_drew():
    """The compiled forward keeps what its gradient needs (the dropout mask): the gradient
    is the kept positions scaled, exactly where the output is not zero."""
    dlg.manual_seed(0)
    model = dlg.compile(dlg.nn.Dropout(0.5))
    x = dlg.tensor(R.uniform(1, 2, (64, 8)).astype(np.float32), requires_grad=True)
    y = model(x)
    y.sum().backward()
    kept = y.detach().numpy() != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(x.grad.numpy(), kept * 2.0)
    np.testing.assert_allclose(y.detach().numpy(), kept * x.detach().numpy() * 2.0, rtol=1e-6)


def lstm(lib):
    nn = lib.nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(3, 5, batch_first=True)
            self.head = nn.Linear(5, 2)

        def forward(self, x):
            out, (h, c) = self.rnn(x)
            return self.head(out), (h, c)
    return Tagger()


def test_an_lstm_returns_out_and_the_state_pair_with_gradients():
    ours, theirs = pair(lstm)
    model = dlg.compile(ours)
    x = R.standard_normal((4, 6, 3)).astype(np.float32)
    got, want = model(dlg.tensor(x)), theirs(torch.tensor(x))
    assert isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], tuple)
    for g, w in zip((got[0], *got[1]), (want[0], *want[1])):
        close(g, w)
    (got[0].sum() + got[1][1].square().sum()).backward()
    (want[0].sum() + want[1][1].square().sum()).backward()
    same_grads(ours, theirs)


def test_a_forward_returning_logits_and_none_and_a_dict():
    ours, theirs = pair(mlp)

    class Heads(dlg.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = ours

        def forward(self, x, targets=None):
            logits = self.body(x)
            loss = None if targets is None else dlg.nn.functional.cross_entropy(logits, targets)
            return {"logits": logits, "scale": 2}, loss

    model = dlg.compile(Heads())
    x = R.standard_normal((3, 6)).astype(np.float32)
    out, loss = model(dlg.tensor(x))
    assert loss is None and out["scale"] == 2 and list(out) == ["logits", "scale"]
    close(out["logits"], theirs(torch.tensor(x)))
    y = np.array([0, 3, 1])
    out, loss = model(dlg.tensor(x), targets=dlg.tensor(y))  # a keyword: another trace
    tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
    close(loss, tloss)
    loss.backward()
    tloss.backward()
    same_grads(ours, theirs)
    assert len(model.compiled) == 2


def test_the_gradient_reaches_inputs_that_require_it_and_frozen_parameters_get_none():
    ours, theirs = pair(mlp)
    model = dlg.compile(ours)
    x = R.standard_normal((5, 6)).astype(np.float32)
    with dlg.no_grad():  # traced here first: the trace serves calls with gradients too
        model(dlg.tensor(x))
    ours[0].weight.requires_grad_(False)  # frozen after the trace
    theirs[0].weight.requires_grad_(False)
    xs, txs = dlg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (model(xs * 3) ** 2).sum().backward()  # a recorded input: the tape goes on through it
    (theirs(txs * 3) ** 2).sum().backward()
    close(xs.grad, txs.grad)
    same_grads(ours, theirs)
    assert ours[0].weight.grad is None
    ours[0].weight.requires_grad_(True)
    theirs[0].weight.requires_grad_(True)
    model(xs).sum().backward()
    theirs(txs).sum().backward()
    same_grads(ours, theirs)
    assert len(model.compiled) == 1


def test_one_compile_serves_other_batch_sizes_and_reads_parameters_at_each_call():
    ours, theirs = pair(mlp)
    model = dlg.compile(ours)
    for n in (4, 9, 1):
        x = R.standard_normal((n, 6)).astype(np.float32)
        close(model(dlg.tensor(x)), theirs(torch.tensor(x)))
    assert len(model.compiled) == 1
    with torch.no_grad():  # new values, in place and by replacing a tensor's data
        theirs[0].weight.mul_(-1)
        theirs[2].bias.fill_(0.5)
    ours[0].weight.data = dlg.tensor(theirs[0].weight.detach().numpy())
    with dlg.no_grad():
        ours[2].bias.fill_(0.5)
    x = R.standard_normal((2, 6)).astype(np.float32)
    close(model(dlg.tensor(x)), theirs(torch.tensor(x)))
    model(dlg.tensor(x)).sum().backward()
    theirs(torch.tensor(x)).sum().backward()
    same_grads(ours, theirs)
    with pytest.raises(dlg.DlgShapeError):  # another feature size: traced again, the model's error
        model(dlg.randn(2, 5))


def test_a_square_adjacency_compiles_at_its_own_shapes():
    """A graph layer's [N, N] adjacency has the node count on an axis the batch-axis rule
    leaves static, a shape error traced symbolically: the call compiles at its own shapes (as
    torch.compile specialises), once per node count, and trains as eager torch."""
    def gat(lib):
        class Attention(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = lib.nn.Linear(3, 4)
                self.a = lib.nn.Linear(4, 2, bias=False)

            def forward(self, x, adj):
                h = self.lin(x)
                s = self.a(h)
                e = lib.nn.functional.leaky_relu(s[:, :1] + s[:, 1:].T, 0.2)
                e = lib.where(adj > 0, e, lib.full_like(e, -9e15))
                return lib.softmax(e, dim=1) @ h
        return Attention()

    ours, theirs = pair(gat)
    model = dlg.compile(ours)
    for n in (5, 5, 7):
        x = R.standard_normal((n, 3)).astype(np.float32)
        adj = (R.random((n, n)) < 0.5).astype(np.float32) + np.eye(n, dtype=np.float32)
        ours.zero_grad()
        theirs.zero_grad()
        out, want = model(dlg.tensor(x), dlg.tensor(adj)), theirs(torch.tensor(x),
                                                                   torch.tensor(adj))
        close(out, want)
        (out * out).sum().backward()
        (want * want).sum().backward()
        same_grads(ours, theirs)
    assert len([e for e in model.compiled.values() if hasattr(e, "model")]) == 2  # 5 and 7


def test_the_wrapper_is_the_module_as_torch_compile_gives_it():
    ours, theirs = pair(mlp)
    model = dlg.compile(ours)
    assert isinstance(model, OptimizedModule) and isinstance(model, dlg.nn.Module)
    assert model._orig_mod is ours and model._orig_mod[0] is ours[0] and len(model) == 5
    assert [id(p) for p in model.parameters()] == [id(p) for p in ours.parameters()]
    # torch.compile(theirs).state_dict()'s keys: the original's under `_orig_mod.`
    assert list(model.state_dict()) == [f"_orig_mod.{k}" for k in theirs.state_dict()]
    assert model.get_submodule("_orig_mod.2") is ours[2]
    model.eval()
    assert not ours.training and not ours[0].training and not model.training
    ours.train()
    assert model.training
    model.tag = "set through"
    assert ours.tag == "set through"
    x = R.standard_normal((2, 6)).astype(np.float32)
    assert isinstance(model(dlg.tensor(x)), dlg.Tensor)
    assert isinstance(model(x), dlg.Tensor)  # an array is an input too
    twin = copy.deepcopy(model)  # an EMA copy: its own module, compiled at its first call
    assert twin._orig_mod is not ours and not twin.compiled and model.compiled
    with dlg.no_grad():
        twin._orig_mod[4].bias.add_(1)
    close(twin(x), model(x).detach() + 1)


def test_misuse_is_a_dlg_error():
    ours, _ = pair(mlp)
    with pytest.raises(dlg.DlgValueError, match="unknown target"):
        dlg.compile(ours, target="tpu")
    with pytest.raises(dlg.DlgValueError, match="unknown mode 'fast'"):
        dlg.compile(ours, mode="fast")
    assert dlg.compile(ours, disable=True) is ours  # torch.compile's options, as torch's
    assert isinstance(dlg.compile(ours, mode="max-autotune", fullgraph=True, dynamic=True),
                      OptimizedModule)
    model = dlg.compile(ours)
    _, theirs = pair(mlp)
    x = R.standard_normal((3, 6)).astype(np.float32)
    xs, txs = dlg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (g,) = dlg.autograd.grad(model(xs).sum(), xs, create_graph=True)
    close(g, torch.autograd.grad(theirs(txs).sum(), txs)[0])
    with pytest.raises(dlg.DlgValueError, match="cannot be differentiated again"):
        g.sum().backward()
    with pytest.raises(dlg.DlgTypeError, match="returned no tensor"):
        dlg.compile(Nothing())(dlg.randn(2, 3))
    with pytest.raises(dlg.DlgValueError, match=r"stored a tensor in an object it was given"):
        dlg.compile(Appended())(dlg.randn(2, 3), KVCache())  # HF's DynamicCache.update style


class Nothing(dlg.nn.Module):
    def forward(self, x):
        return None


class Cached(dlg.nn.Module):
    """Attention over every step so far, its keys kept in the caller's lists."""

    def __init__(self):
        super().__init__()
        self.key = dlg.nn.Linear(3, 3)

    def forward(self, x, cache, extra):
        k = self.key(x)
        if cache[0] is not None:
            k = dlg.cat([cache[0], k], 1)
        cache[0] = k
        extra["steps"] = [k.mean(), k.shape[1] * dlg.ones(1)]
        return (x * k.softmax(1)).sum(1)


def test_what_the_forward_puts_in_its_list_and_dict_arguments_is_written_back():
    """A KV cache filled by the forward: the compiled code returns what the forward put in its
    list and dict arguments, and the caller's containers get it after each call, as eagerly
    (the same lists and dicts, inputs left as the caller's own tensors); gradients too."""
    model = Cached()
    compiled = dlg.compile(model)
    ours, theirs = ([None], {"steps": None}), ([None], {"steps": None})
    x = dlg.randn(2, 1, 3)
    for step in range(3):
        with dlg.no_grad():
            got = compiled(x, *ours)
            want = model(x, *theirs)
        close(got, torch.tensor(want.numpy()))
        close(ours[0][0], torch.tensor(theirs[0][0].numpy()))
        assert ours[0][0].shape[1] == step + 1 and ours[0][0].graph_value is None
        close(ours[1]["steps"][1], torch.tensor(theirs[1]["steps"][1].numpy()))
    inputs = [dlg.ones(2, 1, 3)]
    compiled(x, inputs, {})  # the cache given is kept: the new keys appended to it
    assert inputs[0].shape[1] == 2
    model.zero_grad()
    loss = compiled(x, [None], {}).sum()
    loss.backward()
    grad = model.key.weight.grad.numpy().copy()
    model.zero_grad()
    model(x, [None], {}).sum().backward()
    np.testing.assert_allclose(grad, model.key.weight.grad.numpy(), rtol=1e-5)


class KVCache:
    def __init__(self):
        self.keys: list = []


class Appended(dlg.nn.Module):
    def forward(self, x, cache):
        cache.keys.append(x * 2)
        return x


class Scaled(dlg.nn.Module):
    def forward(self, x, extra):
        return x * extra.scale


class Holder:
    def __init__(self, scale):
        self.scale = scale


def test_an_object_argument_holding_tensors_is_refused_not_read_as_constants():
    """Its tensors would be the first call's constants in the trace, stale when the same object
    later holds others; objects without tensors (options, None) pass."""
    model = dlg.compile(Scaled())
    holder = Holder(dlg.ones(3))
    with pytest.raises(dlg.DlgTypeError, match="Holder holding tensors in its attributes"):
        model(dlg.ones(2, 3), holder)
    close(model(dlg.ones(2, 3), Holder(2.0)), torch.full((2, 3), 2.0))


def test_attributes_a_hook_sets_while_traced_are_put_back():
    """weight_norm's pre-hook sets `module.weight` before each forward; a compiled call leaves
    the weight it computed there, as an eager call does, never the trace's symbolic one."""
    m = dlg.nn.utils.weight_norm(dlg.nn.Linear(3, 2))
    m.cache = None
    before = m.weight
    dlg.compile(m)(dlg.randn(4, 3))
    assert m.weight.graph_value is None
    np.testing.assert_allclose(m.weight.detach().numpy(), before.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(m(dlg.ones(1, 3)).detach().numpy(),
                               (dlg.ones(1, 3) @ before.T + m.bias).detach().numpy(), rtol=1e-6)


def test_training_steps_at_other_batch_sizes_as_torch():
    """A DataLoader's smaller last batch: each batch size's backward is its own gradient graph
    (the compiled call's outputs have that size), one trace serving them all."""
    ours, theirs = pair(mlp)
    model = dlg.compile(ours)
    opt_a, opt_t = dlg.optim.SGD(ours.parameters(), lr=0.1), torch.optim.SGD(
        theirs.parameters(), lr=0.1)
    for n in (4, 6, 4, 3):
        x = R.standard_normal((n, 6)).astype(np.float32)
        losses = []
        for run, opt, lib in ((model, opt_a, dlg), (theirs, opt_t, torch)):
            opt.zero_grad()
            loss = run(lib.tensor(x)).square().mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        np.testing.assert_allclose(*losses, rtol=1e-5)
        same_grads(ours, theirs)
    assert len(model.compiled) == 1


@dataclasses.dataclass(frozen=True)
class Batch:
    x: dlg.Tensor
    scale: float = 2.0


@dataclasses.dataclass
class Output:
    logits: dlg.Tensor
    loss: dlg.Tensor | None = None


class Scored(dlg.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = dlg.nn.Linear(3, 3)

    def forward(self, batch):
        y = self.linear(batch.x) * batch.scale
        return Output(y, y.square().mean())


def test_dataclass_arguments_and_outputs():
    """A batch dataclass in and a model-output dataclass out (HF style), their tensors graph
    inputs and outputs; one trace serves both batch sizes, and the loss trains."""
    model = Scored()
    compiled = dlg.compile(model)
    for n in (2, 4):
        batch = Batch(dlg.randn(n, 3))
        out, want = compiled(batch), model(batch)
        assert type(out) is Output
        close(out.logits, torch.tensor(want.logits.detach().numpy()))
        close(out.loss, torch.tensor(want.loss.detach().numpy()))
        model.zero_grad()
        out.loss.backward()
        grad = model.linear.weight.grad.numpy().copy()
        model.zero_grad()
        want.loss.backward()
        np.testing.assert_allclose(grad, model.linear.weight.grad.numpy(), rtol=1e-5)
    assert len(compiled.compiled) == 1


def test_module_compile_in_place_as_torch():
    """torch 2's model.compile(): the module itself runs compiled from then on, its state_dict
    names unchanged (no _orig_mod prefix), training as eager torch; disable=True undoes it."""
    ours, theirs = pair(mlp)
    assert ours.compile(mode="reduce-overhead") is None
    opt_a, opt_t = dlg.optim.SGD(ours.parameters(), lr=0.1), torch.optim.SGD(
        theirs.parameters(), lr=0.1)
    for n in (4, 6):
        x = R.standard_normal((n, 6)).astype(np.float32)
        for model, opt, lib in ((ours, opt_a, dlg), (theirs, opt_t, torch)):
            opt.zero_grad()
            model(lib.tensor(x)).square().mean().backward()
            opt.step()
    same_grads(ours, theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert len(ours._compiled_call.compiled) == 1  # one trace serves both batch sizes
    ours.compile(disable=True)
    x = R.standard_normal((2, 6)).astype(np.float32)
    close(ours(dlg.tensor(x)), theirs(torch.tensor(x)))


class MovingAverage(dlg.nn.Module):
    """d2l's batch norm from scratch: moving averages kept as plain tensor attributes, set anew
    from their old values in forward (not buffers); the prediction branch reads them."""

    def __init__(self):
        super().__init__()
        self.gamma = dlg.nn.Parameter(dlg.ones(1, 3))
        self.moving_mean = dlg.zeros(1, 3)

    def forward(self, x):
        if not dlg.is_grad_enabled():
            return self.gamma * (x - self.moving_mean)
        mean = x.mean(dim=0)
        self.moving_mean = (0.9 * self.moving_mean + 0.1 * mean).data
        self.last = x.sum()  # (an attribute set for the caller to read, as d2l's weights)
        return self.gamma * (x - mean)


def test_tensor_attributes_a_forward_sets_are_kept_as_eagerly():
    """They were constants of the graph, the first call's, and the updates lost: the old values
    are now inputs of each call and the new ones written back, as an eager call leaves them."""
    xs = [R.standard_normal((4, 3)).astype(np.float32) for _ in range(3)]
    runs = []
    for compiled in (False, True):
        m = MovingAverage()
        model = dlg.compile(m) if compiled else m
        outs = []
        for x in xs:
            y = model(dlg.tensor(x))
            y.sum().backward()
            outs.append(y.detach().numpy())
        with dlg.no_grad():
            outs.append(model(dlg.tensor(xs[0])).numpy())
        runs.append(outs + [m.moving_mean.numpy(), m.gamma.grad.numpy(), m.last.numpy()])
    for got, want in zip(*runs):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert model.state == (("", "moving_mean"),)


class KeepsWeights(dlg.nn.Module):
    """d2l's attention decoder: the forward keeps its steps' weights in a list attribute."""

    def __init__(self):
        super().__init__()
        self.lin = dlg.nn.Linear(3, 3)

    def forward(self, x):
        self._attention_weights = [[None, None], {"last": None}]
        for i in range(2):
            x = self.lin(x).softmax(-1)
            self._attention_weights[0][i] = x
        self._attention_weights[1]["last"] = x.sum()
        return x


def test_tensors_a_forward_keeps_in_list_attributes_are_written_back():
    """They were left symbolic after a compiled call (reading one failed)."""
    x = R.standard_normal((2, 3)).astype(np.float32)
    m = KeepsWeights()
    want = m(dlg.tensor(x))
    kept = [t.detach().numpy() for t in m._attention_weights[0]]
    model = dlg.compile(m)
    for _ in range(2):
        got = model(dlg.tensor(x))
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-6)
        for t, k in zip(m._attention_weights[0], kept):
            np.testing.assert_allclose(t.detach().numpy(), k, rtol=1e-6)
        assert m._attention_weights[1]["last"].item() == pytest.approx(2.0)
    assert model.state == ()


class ModeBranch(dlg.nn.Module):
    """d2l's batch norm from scratch: `if not torch.is_grad_enabled()` picks the prediction
    branch."""

    def __init__(self):
        super().__init__()
        self.w = dlg.nn.Parameter(dlg.ones(3))

    def forward(self, x):
        if not dlg.is_grad_enabled():
            return x * 0 + 7
        with dlg.no_grad():
            assert not dlg.is_grad_enabled()
        return x * self.w


def test_a_forward_asking_the_grad_mode_gets_the_callers_and_a_trace_per_mode():
    """Traced with recording on (one graph for both modes), the forward used to see True under
    the caller's no_grad too; a forward that asks is now traced once per mode."""
    model = dlg.compile(ModeBranch())
    x = dlg.ones(2, 3)
    assert model(x).tolist() == [[1.0] * 3] * 2
    with dlg.no_grad():
        assert model(x).tolist() == [[7.0] * 3] * 2
    model(x).sum().backward()
    assert model.w.grad.tolist() == [2.0] * 3
    assert [sorted(e) for e in model.compiled.values()] == [[False, True]]
    plain = dlg.compile(dlg.nn.Linear(3, 2))
    with dlg.no_grad():
        plain(x)
    plain(x)
    assert len(plain.compiled) == 1 and not isinstance(*plain.compiled.values(), dict)


def test_a_compiled_submodule_inside_a_traced_module_joins_the_trace():
    """dlg.trace (and dlg.compile(module, x), onnx export) of a module holding a dlg.compile'd
    submodule: its ops join the outer trace, as torch.compile'd submodules trace through."""
    class Big(dlg.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = dlg.compile(dlg.nn.Linear(3, 4))

        def forward(self, x):
            return self.enc(x).relu()

    dlg.manual_seed(0)
    big = Big()
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    want = big(dlg.tensor(x)).detach().numpy()
    model = dlg.trace(big, dlg.tensor(x[:2]))
    np.testing.assert_allclose(np.asarray(model(x=x)), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(dlg.compile(big, x[:2])(x)), want, rtol=1e-5, atol=1e-6)
