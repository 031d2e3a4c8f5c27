"""dlg.func's transforms (grad, grad_and_value, vjp, jvp, jacrev, jacfwd, hessian, vmap) and
stack_module_state against torch.func on the same functions and the same NumPy data: values
and result structures, nesting, argnums, has_aux, in_dims/out_dims, randomness, per-sample
gradients, ensembling, MAML's inner loop, and the errors for bad calls."""

import copy
import re

import numpy as np
import pytest

import dlg
import dlg.func as DF
from dlg.errors import DlgError, DlgShapeError, DlgTypeError, DlgValueError

torch = pytest.importorskip("torch")
TF = torch.func

R = np.random.default_rng(0)


def _data(*shapes):
    return [R.standard_normal(s).astype(np.float32) for s in shapes]


def _on(lib, tree):
    """The NumPy arrays of `tree` (nested tuples/lists/dicts) as `lib`'s tensors."""
    if isinstance(tree, np.ndarray):
        return lib.tensor(tree)
    if isinstance(tree, dict):
        return {k: _on(lib, v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_on(lib, v) for v in tree)
    return tree


def _same(got, want, tol=1e-4):
    """Equal structure (tuples, lists, dicts), shapes, dtypes and values."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), (got, want)
        for k in want:
            _same(got[k], want[k], tol)
    elif isinstance(want, (tuple, list)):
        assert type(got) is type(want) and len(got) == len(want), (got, want)
        for g, w in zip(got, want):
            _same(g, w, tol)
    elif isinstance(want, torch.Tensor):
        assert isinstance(got, dlg.Tensor), type(got)
        assert tuple(got.shape) == tuple(want.shape)
        assert repr(got.dtype).split(".")[-1] == repr(want.dtype).split(".")[-1]
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=tol,
                                   atol=tol)
    else:
        assert got == want


def _check(transform, args, *, kwargs=None, tol=1e-4):
    """transform(lib) applied to args (NumPy trees) gives torch's result on dlg."""
    kwargs = kwargs or {}
    want = transform(torch)(*_on(torch, args), **kwargs)
    got = transform(dlg)(*_on(dlg, args), **kwargs)
    _same(got, want, tol)
    return got


def _func(lib):
    return DF if lib is dlg else TF


# ---- grad and grad_and_value ----------------------------------------------------------------
GRAD_CASES = [
    ("cubic", lambda x: (x ** 3 * x.sin()).sum(), {}, [(3,)]),
    ("matrix", lambda x: (x @ x.t()).tanh().sum(), {}, [(2, 3)]),
    ("second_arg", lambda x, y: (x.exp() * y).sum(), {"argnums": 1}, [(3,), (3,)]),
    ("both_args", lambda x, y: (x.exp() * y).sum(), {"argnums": (0, 1)}, [(3,), (3,)]),
    ("negative_argnum", lambda x, y: (x * y.cos()).sum(), {"argnums": -1}, [(2,), (2,)]),
    ("reversed_argnums", lambda x, y: (x * y.cos()).sum(), {"argnums": (1, 0)}, [(2,), (2,)]),
    ("unused_input", lambda x, y: (x * 3.0).sum(), {"argnums": (0, 1)}, [(2,), (3,)]),
    ("scalar_input", lambda x: x.sin() * x, {}, [()]),
]


@pytest.mark.parametrize("name,f,options,shapes", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_grad_and_value_match_torch(name, f, options, shapes):
    args = tuple(_data(*shapes))
    _check(lambda lib: _func(lib).grad(f, **options), args)
    _check(lambda lib: _func(lib).grad_and_value(f, **options), args)


def test_grad_of_a_dict_of_parameters_with_aux_and_kwargs():
    def loss(params, x, scale=1.0):
        h = (x @ params["w"] + params["b"]).tanh()
        return (h ** 2).sum() * scale, {"h": h, "norm": params["w"].sum()}

    args = ({"w": _data((3, 2))[0], "b": _data((2,))[0]}, _data((4, 3))[0])
    got = _check(lambda lib: _func(lib).grad(loss, has_aux=True), args, kwargs={"scale": 0.5})
    assert not got[0]["w"].requires_grad and not got[1]["h"].requires_grad
    _check(lambda lib: _func(lib).grad_and_value(loss, has_aux=True), args)


def test_nested_grad_and_perturbation_confusion():
    x = _data((3,))
    _check(lambda lib: _func(lib).grad(lambda a: _func(lib).grad(
        lambda b: (b ** 3 * a.sin()).sum())(a).sum()), tuple(x))
    # the inner function differentiates b alone, though b is the a it closes over: 1, not 2
    _check(lambda lib: _func(lib).grad(lambda a: _func(lib).grad(lambda b: a * b)(a)),
           (np.full((), 2.0, np.float32),))


def test_grad_composes_with_backward_and_respects_no_grad():
    data = _data((4,))[0]
    results = {}
    for lib in (dlg, torch):
        x = lib.tensor(data, requires_grad=True)
        g = _func(lib).grad(lambda a: (a ** 3 * a.sin()).sum())(x)
        assert g.requires_grad
        g.sum().backward()
        with lib.no_grad():
            assert not _func(lib).grad(lambda a: (a ** 3).sum())(x).requires_grad
        results[lib] = (g, x.grad)
    _same(results[dlg], results[torch])
    assert not DF.grad(lambda a: (a ** 3).sum())(dlg.tensor(data)).requires_grad


def test_maml_inner_loop_matches_torch():
    def make(lib):
        fn = _func(lib)

        def loss(p, x, y):
            return (((x @ p["w"] + p["b"]).tanh() - y) ** 2).mean()

        def adapted_loss(p, xs, ys, xq, yq):
            for _ in range(2):  # two inner steps, differentiated through
                g = fn.grad(loss)(p, xs, ys)
                p = {k: p[k] - 0.1 * g[k] for k in p}
            return loss(p, xq, yq)

        return fn.grad_and_value(adapted_loss)

    params = {"w": _data((3, 2))[0], "b": _data((2,))[0]}
    _check(make, (params, *_data((5, 3), (5, 2), (4, 3), (4, 2))))


# ---- vjp and jvp -----------------------------------------------------------------------------
def test_vjp_with_containers_aux_and_repeated_calls():
    def f(x, p):
        return {"y": x.sin() * p["s"], "z": (x * p["t"]).sum()}, x.exp()

    primals = (_data((3,))[0], {"s": _data((3,))[0], "t": _data((3,))[0]})
    cots = [{"y": c, "z": np.full((), 1.5, np.float32)} for c in _data((3,), (3,))]
    results = {}
    for lib in (dlg, torch):
        out, fn, aux = _func(lib).vjp(f, *_on(lib, primals), has_aux=True)
        results[lib] = (out, aux, *(fn(_on(lib, c)) for c in cots))
    _same(results[dlg], results[torch])
    assert not results[dlg][0]["y"].requires_grad


@pytest.mark.parametrize("has_aux", [False, True])
def test_jvp_matches_torch(has_aux):
    def f(x, y):
        out = (x.sin() * y, {"s": (x * y).sum()})
        return (out, x.cos()) if has_aux else out

    primals = tuple(_data((3,), (3,)))
    tangents = tuple(_data((3,), (3,)))
    _check(lambda lib: lambda p, t: _func(lib).jvp(f, p, t, has_aux=has_aux),
           (primals, tangents))


def test_jvp_of_a_function_of_one_input_only():
    _check(lambda lib: lambda p, t: _func(lib).jvp(lambda x, y: x.exp() * 2.0, p, t),
           (tuple(_data((2,), (3,))), tuple(_data((2,), (3,)))))


def test_backward_through_vjp_jvp_and_hessian_reaches_seeds_and_closed_over_tensors():
    x_data, v_data, w_data = _data((3,), (3,), (3,))
    results = {}
    for lib in (dlg, torch):
        fn = _func(lib)
        x = lib.tensor(x_data)
        v, w = (lib.tensor(a, requires_grad=True) for a in (v_data, w_data))

        def f(a):
            return (a.sin() * 2.0).exp()

        pulled = fn.vjp(f, x)[1](v)[0]  # a cotangent requiring grad: the result is recorded
        pushed = fn.jvp(f, (x,), (v,))[1]  # as is a tangent's
        hess = fn.hessian(lambda a, w=w: (a.sin() * w).exp().sum())(x)  # w: closed over
        assert pulled.requires_grad and hess.requires_grad and pushed.requires_grad
        ((pulled ** 2).sum() + hess.sum() + (pushed * pushed).sum()).backward()
        results[lib] = (pulled, hess, pushed, v.grad, w.grad)
    _same(results[dlg], results[torch])


# ---- jacrev, jacfwd, hessian -----------------------------------------------------------------
JAC_CASES = [
    ("vector", lambda x: x.sin() * x.sum(), {}, [(3,)]),
    ("matrix_in", lambda x: (x @ x).tanh(), {}, [(2, 2)]),
    ("scalar_out", lambda x: (x.exp() * x).sum(), {}, [(3,)]),
    ("scalar_in", lambda x: x * x.sin(), {}, [()]),
    ("two_outputs", lambda x, y: (x * y, (x ** 2).sum()), {"argnums": (0, 1)}, [(2,), (2,)]),
    ("second_arg", lambda x, y: x.exp() * y, {"argnums": 1}, [(3,), (3,)]),
    ("dict_in", lambda p: p["w"] @ p["x"], {}, [{"w": (2, 3), "x": (3,)}]),
    ("dict_out", lambda x: {"a": x.cos(), "b": [x.sum()]}, {}, [(2,)]),
    ("unused", lambda x, y: x * 3.0, {"argnums": (0, 1)}, [(2,), (3,)]),
]


def _args(shapes):
    return tuple({k: _data(s)[0] for k, s in s_.items()} if isinstance(s_, dict)
                 else _data(s_)[0] for s_ in (shapes))


@pytest.mark.parametrize("jac", ["jacrev", "jacfwd"])
@pytest.mark.parametrize("name,f,options,shapes", JAC_CASES, ids=[c[0] for c in JAC_CASES])
def test_jacobians_match_torch(jac, name, f, options, shapes):
    _check(lambda lib: getattr(_func(lib), jac)(f, **options), _args(shapes))


@pytest.mark.parametrize("jac", ["jacrev", "jacfwd"])
def test_jacobian_with_aux(jac):
    got = _check(lambda lib: getattr(_func(lib), jac)(lambda x: (x.sin() * x, x.exp()),
                                                      has_aux=True), tuple(_data((3,))))
    assert not got[0].requires_grad and not got[1].requires_grad


HESSIAN_CASES = [
    ("vector", lambda x: (x.sin() * x.cos().sum()).sum(), {}, [(3,)]),
    ("matrix", lambda x: (x @ x.t()).tanh().sum(), {}, [(2, 3)]),
    ("two_args", lambda x, y: (x.exp() * y).sin().sum(), {"argnums": (0, 1)}, [(2,), (3, 1)]),
    ("second_arg", lambda x, y: (x * y ** 3).sum(), {"argnums": 1}, [(2,), (2,)]),
]


@pytest.mark.parametrize("name,f,options,shapes", HESSIAN_CASES,
                         ids=[c[0] for c in HESSIAN_CASES])
def test_hessian_matches_torch(name, f, options, shapes):
    _check(lambda lib: _func(lib).hessian(f, **options), _args(shapes))


NESTED = [
    ("jacrev_jacrev", lambda fn: fn.jacrev(fn.jacrev(lambda x: x.sin() * x.sum())), [(3,)]),
    ("jacfwd_jacrev", lambda fn: fn.jacfwd(fn.jacrev(lambda x: x.exp() * x[0])), [(3,)]),
    ("grad_grad", lambda fn: fn.grad(lambda x: fn.grad(lambda y: (y ** 4).sum())(x).sin()
                                     .sum()), [(3,)]),
    ("vmap_jacrev", lambda fn: fn.vmap(fn.jacrev(lambda x: x.sin() * x.sum())), [(4, 3)]),
    ("vmap_hessian", lambda fn: fn.vmap(fn.hessian(lambda x: (x ** 3).sum())), [(2, 3)]),
    ("jacrev_vmap", lambda fn: fn.jacrev(fn.vmap(lambda r: r.sin() * r.sum())), [(2, 3)]),
    ("grad_of_vmap", lambda fn: fn.grad(lambda w, x: fn.vmap(
        lambda r: (r * w).tanh().sum())(x).sum()), [(3,), (4, 3)]),
    ("vmap_vmap", lambda fn: fn.vmap(fn.vmap(lambda a, b: a * b, in_dims=(0, None)),
                                     in_dims=(None, 0)), [(3,), (5,)]),
    ("vmap_vjp", lambda fn: fn.vmap(lambda x, c: fn.vjp(lambda a: a.sin() * a, x)[1](c)),
     [(4, 3), (4, 3)]),
    ("vmap_jvp", lambda fn: fn.vmap(lambda x, t: fn.jvp(lambda a: a.exp() * a.sum(), (x,),
                                                        (t,))), [(4, 3), (4, 3)]),
]


@pytest.mark.parametrize("name,make,shapes", NESTED, ids=[c[0] for c in NESTED])
def test_nested_transforms_match_torch(name, make, shapes):
    _check(lambda lib: make(_func(lib)), _args(shapes))


# ---- vmap ------------------------------------------------------------------------------------
VMAP_CASES = [
    ("default", lambda x: x.sin() * x.sum(), {}, [(4, 3)]),
    ("in_dim_1", lambda x: x.cumsum(0), {"in_dims": 1}, [(3, 4)]),
    ("negative_in_dim", lambda x: x * x[0], {"in_dims": -1}, [(3, 4)]),
    ("unmapped_arg", lambda x, y: x @ y, {"in_dims": (0, None)}, [(4, 3), (3, 2)]),
    ("out_dim_1", lambda x: x.exp(), {"out_dims": 1}, [(4, 3)]),
    ("negative_out_dim", lambda x: x.exp(), {"out_dims": -1}, [(4, 2, 3)]),
    ("scalar_outputs", lambda x: (x ** 2).sum(), {}, [(4, 3)]),
    ("two_outputs", lambda x: (x.sin(), x.sum()), {"out_dims": (1, 0)}, [(4, 3)]),
    ("one_tuple_out_dims", lambda x: x.sin(), {"out_dims": (1,)}, [(4, 3)]),
    ("dict_in_dims", lambda d: d["a"] * d["b"], {"in_dims": ({"a": 1, "b": None},)},
     [{"a": (3, 4), "b": (3,)}]),
    ("list_in_dims", lambda xs: xs[0] + xs[1], {"in_dims": ([0, None],)}, [[(2, 3), (3,)]]),
    ("int_for_a_dict", lambda d: d["a"] - d["b"], {}, [{"a": (4, 2), "b": (4, 2)}]),
    ("dict_out_dims", lambda x: {"x": x.sin(), "y": x.sum()}, {"out_dims": {"x": 1, "y": 0}},
     [(4, 3)]),
    ("unbatched_output", lambda x, y: (x * 2.0, y.exp()), {"in_dims": (0, None),
                                                          "out_dims": (0, None)},
     [(4, 3), (2,)]),
    ("chunked", lambda x: x.sin(), {"chunk_size": 2}, [(5, 3)]),
]


@pytest.mark.parametrize("name,f,options,shapes", VMAP_CASES, ids=[c[0] for c in VMAP_CASES])
def test_vmap_matches_torch(name, f, options, shapes):
    if isinstance(shapes[0], list):
        args = ([_data(s)[0] for s in shapes[0]],)
    else:
        args = _args(shapes)
    _check(lambda lib: _func(lib).vmap(f, **options), args)


def test_vmap_passes_keywords_and_python_values_whole():
    x, w = _data((4, 3), (3,))
    _check(lambda lib: lambda a, n: _func(lib).vmap(lambda r, k, w=None: r ** k * w,
                                                    in_dims=(0, None))(a, n, w=lib.tensor(w)),
           (x, 2))
    _check(lambda lib: _func(lib).vmap(lambda r, k: (r * k, k), out_dims=(0, None),
                                       in_dims=(0, None)), (x, 3))


def test_vmap_over_an_empty_batch():
    _check(lambda lib: _func(lib).vmap(lambda r, y: (r @ y).sum(), in_dims=(0, None)),
           (np.zeros((0, 3), np.float32), _data((3, 2))[0]))


def test_vmap_backward_reaches_mapped_and_closed_over_tensors():
    x_data, w_data = _data((4, 3), (3,))
    results = {}
    for lib in (dlg, torch):
        x, w = (lib.tensor(a, requires_grad=True) for a in (x_data, w_data))
        out = _func(lib).vmap(lambda r, w=w: (r * w).tanh(), out_dims=1)(x)
        (out * out.sin()).sum().backward()
        results[lib] = (out, x.grad, w.grad)
    _same(results[dlg], results[torch])


def test_vmap_randomness():
    x = dlg.zeros(3, 4)
    dlg.manual_seed(0)
    same = DF.vmap(lambda r: r + dlg.rand(4), randomness="same")(x)
    after_same = dlg.rand(2)
    dlg.manual_seed(0)
    one = dlg.rand(4)
    assert np.array_equal(dlg.rand(2).numpy(), after_same.numpy())  # the stream moved once
    assert all(np.array_equal(row, one.numpy()) for row in same.numpy())
    different = DF.vmap(lambda r: r + dlg.rand(4), randomness="different")(x).numpy()
    assert not np.array_equal(different[0], different[1])
    with pytest.raises(DlgValueError, match="random operation while in randomness error mode"):
        DF.vmap(lambda r: r + dlg.rand(4))(x)
    with pytest.raises(DlgValueError, match="randomness error mode"):
        DF.vmap(lambda r: dlg.nn.functional.dropout(r, 0.5))(x)
    assert DF.vmap(lambda r: dlg.nn.functional.dropout(r, 0.5, training=False))(x).shape == (3, 4)


# ---- the torch.func recipes: per-sample gradients, ensembling ---------------------------------
def _mlp(lib, state=None):
    nn = lib.nn
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.BatchNorm1d(8),
                          nn.ReLU(), nn.Linear(8, 3))
    if state is not None:
        model.load_state_dict({k: lib.tensor(v) for k, v in state.items()})
    return model


def _state():
    model = _mlp(torch)
    model[3].running_mean.uniform_(-0.5, 0.5)
    model[3].running_var.uniform_(0.5, 1.5)
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def test_per_sample_gradients_of_an_mlp_match_torch():
    state = _state()
    x, y = _data((16, 5))[0], R.integers(0, 3, 16)
    results = {}
    for lib in (dlg, torch):
        model = _mlp(lib, state).eval()
        fn = _func(lib)
        params = {k: v.detach() for k, v in model.named_parameters()}
        buffers = {k: v.detach() for k, v in model.named_buffers()}

        def loss(p, b, sample, target, fn=fn, model=model, lib=lib):
            out = fn.functional_call(model, (p, b), (sample.unsqueeze(0),))
            return lib.nn.functional.cross_entropy(out, target.unsqueeze(0))

        grads = fn.vmap(fn.grad(loss), in_dims=(None, None, 0, 0))(
            params, buffers, lib.tensor(x), lib.tensor(y))
        results[lib] = grads
        assert set(grads) == set(params) and all(g.shape[0] == 16 for g in grads.values())
    _same(results[dlg], results[torch], tol=1e-5)


def test_ensembling_with_stack_module_state_matches_torch():
    states = [_state() for _ in range(3)]
    x = _data((6, 5))[0]
    results = {}
    for lib in (dlg, torch):
        models = [_mlp(lib, s).eval() for s in states]
        params, buffers = _func(lib).stack_module_state(models)
        assert all(p.requires_grad and p.is_leaf for p in params.values())
        assert not any(b.requires_grad for b in buffers.values())
        base = copy.deepcopy(models[0])

        def fmodel(p, b, data, base=base, lib=lib):
            return _func(lib).functional_call(base, (p, b), (data,))

        out = _func(lib).vmap(fmodel, in_dims=(0, 0, None))(params, buffers, lib.tensor(x))
        (out ** 2).sum().backward()
        results[lib] = (out, buffers, {k: p.grad for k, p in params.items()})
    _same(results[dlg], results[torch], tol=1e-5)
    assert results[dlg][0].shape == (3, 6, 3)


def test_stack_module_state_keeps_requires_grad_off():
    models = [dlg.nn.Linear(2, 2).requires_grad_(False) for _ in range(2)]
    params, _ = DF.stack_module_state(models)
    assert not any(p.requires_grad for p in params.values())
    assert np.array_equal(params["weight"][1].numpy(), models[1].weight.numpy())


# ---- errors ----------------------------------------------------------------------------------
X = dlg.zeros(3, 4)
Y = dlg.zeros(2, 4)


def _two(a, b):
    return a + b


ERRORS = [
    ("batch_sizes_differ", lambda: DF.vmap(_two)(X, Y), DlgValueError,
     r"Expected all tensors to have the same size in the mapped dimension, got sizes \[3, 2\]"),
    ("batch_sizes_differ_in_a_dict", lambda: DF.vmap(lambda d: d["a"])({"a": X, "b": Y}),
     DlgValueError, r"same size in the mapped dimension"),
    ("in_dims_none", lambda: DF.vmap(lambda a: a, in_dims=None)(X), DlgValueError,
     r"expected `in_dims` to be int or a \(potentially nested\) tuple"),
    ("in_dims_list", lambda: DF.vmap(lambda a: a, in_dims=[0])(X), DlgValueError,
     r"expected `in_dims` to be int or a \(potentially nested\) tuple"),
    ("in_dim_out_of_range", lambda: DF.vmap(lambda a: a, in_dims=2)(X), DlgValueError,
     r"Got in_dim=2 for some input, but that input is a Tensor of dimensionality 2"),
    ("in_dim_of_a_0d_tensor", lambda: DF.vmap(lambda a: a)(dlg.tensor(1.0)), DlgValueError,
     r"dimensionality 0"),
    ("in_dim_float", lambda: DF.vmap(lambda a: a, in_dims=(0.5,))(X), DlgValueError,
     r"in_dim must be either an integer dimension or None"),
    ("in_dims_too_short", lambda: DF.vmap(_two, in_dims=(0,))(X, X), DlgValueError,
     r"in_dims is not compatible with the structure of `inputs`"),
    ("in_dims_dict_keys", lambda: DF.vmap(lambda d: d["a"], in_dims=({"a": 0},))(
        {"a": X, "b": X}), DlgValueError, r"in_dims is not compatible"),
    ("in_dim_for_a_number", lambda: DF.vmap(_two, in_dims=(0, 0))(X, 3), DlgTypeError,
     r"We cannot vmap over non-Tensor arguments"),
    ("nothing_mapped", lambda: DF.vmap(lambda a: a, in_dims=(None,))(X), DlgValueError,
     r"Expected at least one Tensor to vmap over"),
    ("no_inputs", lambda: DF.vmap(lambda: X)(), DlgValueError, r"got no inputs"),
    ("returns_a_number", lambda: DF.vmap(lambda a: (a, 3))(X), DlgTypeError,
     r"must only return Tensors, got type <class 'int'>"),
    ("returns_none", lambda: DF.vmap(lambda a: None)(X), DlgTypeError,
     r"must only return Tensors"),
    ("out_dim_none_of_a_mapped_output",  # read from values: the elements' outputs differ
     lambda: DF.vmap(lambda a: a * 2.0, out_dims=None)(dlg.arange(6.0).reshape(3, 2)),
     DlgValueError, r"can not return a BatchedTensor when out_dim is None"),
    ("out_dims_structure", lambda: DF.vmap(lambda a: (a, a), out_dims=(0,))(X), DlgValueError,
     r"out_dims is not compatible with the structure of `outputs`"),
    ("out_dims_list_for_a_tuple", lambda: DF.vmap(lambda a: (a, a), out_dims=[0, 1])(X),
     DlgValueError, r"out_dims is not compatible"),
    ("out_dims_float", lambda: DF.vmap(lambda a: a, out_dims=0.5)(X), DlgValueError,
     r"`out_dims` must be an int, None or a python collection of ints"),
    ("out_dim_out_of_range", lambda: DF.vmap(lambda a: a, out_dims=2)(X), DlgValueError,
     r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"),
    ("chunk_size_0", lambda: DF.vmap(lambda a: a, chunk_size=0), DlgValueError,
     r"chunk_size should be None or greater than 0"),
    ("randomness_unknown", lambda: DF.vmap(lambda a: a, randomness="foo"), DlgValueError,
     r"Only allowed values for randomness are 'error', 'different', or 'same'. Got foo"),
    ("grad_of_a_vector", lambda: DF.grad(lambda a: a)(X), DlgShapeError,
     r"Expected f\(\*args\) to return a scalar Tensor, got tensor with 2 dims"),
    ("grad_of_a_number", lambda: DF.grad(lambda a: 3.0)(X), DlgTypeError,
     r"Expected f\(\*args\) to return a Tensor, got float"),
    ("grad_aux_not_a_pair", lambda: DF.grad(lambda a: a.sum(), has_aux=True)(X), DlgTypeError,
     r"output of function f should be a tuple: \(output, aux\) if has_aux is True"),
    ("grad_aux_number", lambda: DF.grad(lambda a: (a.sum(), 3), has_aux=True)(X), DlgTypeError,
     r"expected tensors, got unsupported type int"),
    ("argnums_out_of_range", lambda: DF.grad(lambda a: a.sum(), argnums=1)(X), DlgValueError,
     r"Got argnum=1, but only 1 positional inputs"),
    ("argnums_repeated", lambda: DF.grad(_two, argnums=(0, 0))(X, X), DlgValueError,
     r"argnums elements must be unique, got \(0, 0\)"),
    ("argnums_empty", lambda: DF.grad(_two, argnums=())(X, X), DlgValueError,
     r"argnums must be non-empty"),
    ("argnums_float", lambda: DF.jacrev(_two, argnums=0.0)(X, X), DlgTypeError,
     r"argnums must be int or Tuple\[int, \.\.\.\], got: <class 'float'>"),
    ("grad_of_an_int_tensor", lambda: DF.grad(lambda a: a.sum())(dlg.tensor([1, 2])),
     DlgTypeError, r"only Tensors of floating point dtype can require gradients"),
    ("grad_of_a_number_argument", lambda: DF.grad(lambda a: a)(3.0), DlgTypeError,
     r"Thing passed to transform API must be Tensor, got float"),
    ("vjp_returns_none", lambda: DF.vjp(lambda a: (a, None), X), DlgTypeError,
     r"expected f\(\*primals\) to return only tensors"),
    ("vjp_cotangent_structure", lambda: DF.vjp(lambda a: a, X)[1]((X,)), DlgValueError,
     r"Expected pytree structure of cotangents to be the same"),
    ("vjp_cotangent_shape", lambda: DF.vjp(lambda a: a, X)[1](Y), DlgShapeError,
     r"Mismatch in shape: cotangents\[0\] has a shape of \[2, 4\]"),
    ("jvp_primals_not_a_tuple", lambda: DF.jvp(lambda a: a, X, X), DlgTypeError,
     r"Expected primals to be a tuple"),
    ("jvp_structure", lambda: DF.jvp(lambda a: a, (X,), (X, X)), DlgValueError,
     r"Expected primals and tangents to have the same python structure"),
    ("jvp_tangent_shape", lambda: DF.jvp(lambda a: a, (X,), (Y,)), DlgShapeError,
     r"Mismatch in shape: tangents\[0\]"),
    ("jacrev_chunk_size", lambda: DF.jacrev(lambda a: a, chunk_size=0), DlgValueError,
     r"`chunk_size` should be greater than 0"),
    ("jacfwd_randomness", lambda: DF.jacfwd(lambda a: a, randomness="x"), DlgValueError,
     r"Only allowed values for randomness"),
    ("jacrev_returns_a_number", lambda: DF.jacrev(lambda a: 3)(X), DlgTypeError,
     r"return only tensors"),
    ("no_models", lambda: DF.stack_module_state([]), DlgValueError,
     r"Expected at least one model, got 0"),
    ("models_of_two_classes", lambda: DF.stack_module_state([dlg.nn.Linear(2, 2),
                                                             dlg.nn.Tanh()]),
     DlgTypeError, r"Expected all models to be of the same class"),
    ("models_in_two_modes", lambda: DF.stack_module_state([dlg.nn.Linear(2, 2),
                                                           dlg.nn.Linear(2, 2).eval()]),
     DlgValueError, r"Expected all models to have the same training/eval mode"),
    ("models_requires_grad_mixed", lambda: DF.stack_module_state(
        [dlg.nn.Linear(2, 2), dlg.nn.Linear(2, 2).requires_grad_(False)]), DlgValueError,
     r"Expected weight from each model to have the same .requires_grad"),
]


@pytest.mark.parametrize("name,call,cls,pattern", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors(name, call, cls, pattern):
    with pytest.raises(cls) as info:
        call()
    assert re.search(pattern, info.value.message), info.value.message
    assert info.value.span is not None and info.value.span.file == __file__


class _Traced(dlg.nn.Module):
    def __init__(self, transform):
        super().__init__()
        self.transform = transform

    def forward(self, x):
        return self.transform(x)


@pytest.mark.parametrize("transform", [
    DF.vmap(lambda r: r.sin()), DF.grad(lambda r: r.sin().sum()), DF.jacrev(lambda r: r.sin()),
    lambda x: DF.vjp(lambda r: r.sin(), x)[0]])
def test_tracing_a_transform_is_refused(transform):
    with pytest.raises(DlgError, match="runs eagerly only"):
        dlg.trace(_Traced(transform), np.zeros((2, 3), np.float32))
