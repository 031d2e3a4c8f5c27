"""Registry-wide checks (STYLE §10): every op has a case here, and for every op the types its
`infer` rule gives equal the dtype and shape of what the interpreter computes. Every primitive
is complete for the compiler (a lowering, a fusion class, a scalar form with its vector form
where it is elementwise) and its traits agree with each other; each check names the op and what
it lacks, and a made-up op shows that the checks can fail."""

from __future__ import annotations

import numpy as np
import pytest

from dlg.compiler.codegen.scalar import SCALAR_FORMS
from dlg.compiler.lower import has_lowering
from dlg.ir import DType
from dlg.ir.ops.elementwise import WHERE
from dlg.ir.ops.opdef import REGISTRY, OpDef, Trait, defop
from tests.ir.opcheck import run_op

R = np.random.default_rng(0)
f = lambda *s: R.uniform(0.5, 1.5, s).astype(np.float32)  # noqa: E731
labels = np.array([0, 2, 1], np.int64)
mask = np.array([True, False, True])
signed = np.random.default_rng(1).uniform(-2.5, 2.5, (2, 3)).astype(np.float32)  # both signs
z23 = (signed + 1j * f(2, 3)).astype(np.complex64)

CASES: dict[str, tuple[tuple[np.ndarray, ...], dict]] = {
    **{op: ((f(2, 3),), {}) for op in ("neg", "abs", "exp", "log", "sqrt", "rsqrt", "tanh",
                                       "sigmoid", "relu", "gelu", "leaky_relu", "sin", "cos",
                                       "floor", "ceil", "sign", "erf", "log1p", "hardtanh",
                                       "atan")},
    **{op: ((signed,), {}) for op in ("silu", "elu", "selu", "celu", "mish", "softsign", "relu6",
                                      "logsigmoid", "tanhshrink", "softshrink", "hardshrink")},
    "softplus": ((signed,), {"beta": 2.0, "threshold": 3.0}),
    "hardsigmoid": ((signed * 2,), {}), "hardswish": ((signed * 2,), {}),
    "prelu": ((signed.reshape(1, 3, 2), np.float32([0.25, -0.5, 2])), {}),
    "glu": ((signed,), {"axis": 0}),
    "logical_not": ((mask,), {}),
    **{op: ((f(2, 3),), {}) for op in ("trunc", "frac", "square", "reciprocal", "exp2", "log2",
                                       "log10", "sinh", "cosh", "isnan", "isinf", "isfinite")},
    "round": ((f(2, 3) * 10,), {"decimals": -1}),
    **{op: ((f(2, 3) * 4, -f(3)), {}) for op in ("floor_divide", "remainder", "fmod")},
    **{op: ((f(2, 3, 4),), {"axes": (0, 2), "keepdims": True})
       for op in ("reduce_var", "reduce_std", "reduce_all", "reduce_any")},
    "vector_norm": ((f(2, 3, 4) - 1,), {"axes": (1,), "ord": 3.0}),
    **{op: ((f(2, 3), f(3)), {}) for op in ("add", "sub", "mul", "div", "pow", "maximum",
                                            "minimum", "eq", "ne", "lt", "le", "gt", "ge")},
    "logical_and": ((mask, mask), {}), "logical_or": ((mask, mask), {}),
    **{op: ((np.array([[5, -6, 0], [7, -1, 12]]), np.array([3, -4, 9])), {})
       for op in ("bitwise_and", "bitwise_or", "bitwise_xor")},
    "bitwise_not": ((np.array([[5, -6, 0]], np.int32),), {}),
    # counts past the bits and negative ones: torch's values, where C's are undefined
    **{op: ((np.array([[5, -6, 1], [-1, 7, 3]]), np.array([1, 64, -2])), {})
       for op in ("bitwise_left_shift", "bitwise_right_shift")},
    "where": ((mask, f(3), f(2, 3)), {}),
    "cast": ((f(2, 3),), {"dtype": DType.f16}),
    **{op: ((f(2, 3, 4),), {"axes": (0, 2), "keepdims": True})
       for op in ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_mean")},
    "argmax": ((f(2, 3),), {"axis": 1}), "argmin": ((f(2, 3),), {"axis": 0}),
    "numel": ((f(2, 3),), {"axes": (1,)}),
    "constant": ((), {"value": np.arange(6.0).reshape(2, 3)}),
    "full": ((), {"shape": (2, 3), "value": 7.0}),
    "arange": ((), {"start": 0, "stop": 5}),
    "random_uniform": ((), {"shape": (3, 2)}), "random_normal": ((), {"shape": (3, 2)}),
    "reshape": ((f(2, 3, 4),), {"shape": (6, 4)}),
    "transpose": ((f(2, 3, 4),), {"perm": (2, 0, 1)}),
    "broadcast_to": ((f(3, 1),), {"shape": (2, 3, 4)}),
    "slice": ((f(5, 6),), {"axes": (0, 1), "starts": (1, 0), "stops": (5, 6), "steps": (2, 3)}),
    "concat": ((f(2, 3), f(4, 3)), {"axis": 0}),
    "split": ((f(5, 2),), {"axis": 0, "sizes": (2, 3)}),
    "pad": ((f(2, 3),), {"pads": ((1, 0), (2, 2)), "value": -1.0}),
    "take": ((f(4, 3), labels), {"axis": 0}),
    "scatter_add": ((f(2, 3, 2), np.array([0, 4, 0])), {"axis": 1, "shape": (2, 5, 2)}),
    "gather": ((f(4, 3), np.array([[0, 3], [2, 2]])), {"axis": 0}),
    "scatter_add_along": ((f(3, 4), np.array([[0, 3, 0], [1, 1, 2]]), f(2, 3)), {"axis": 1}),
    "scatter": ((f(3, 4), np.array([[0, 3, 1], [2, 1, 0]]), f(2, 3)), {"axis": -1}),
    "index_add": ((f(3, 4), np.array([2, 0, 2]), f(3, 3)), {"axis": 1, "alpha": 2.0}),
    "sort": ((f(3, 5),), {"axis": 1, "descending": True}),
    "topk": ((f(3, 5),), {"k": 2, "axis": 0}),
    "cumsum": ((f(3, 4),), {"axis": 1}), "cumprod": ((f(3, 4),), {"axis": 0}),
    "squeeze": ((f(2, 1, 3),), {"axes": (1,)}),
    "unsqueeze": ((f(2, 3),), {"axes": (0, -1)}),
    "flatten": ((f(2, 3, 4),), {}),
    "stack": ((f(2, 3), f(2, 3)), {"axis": 1}),
    "index": ((f(4, 3),), {"axis": 0, "index": 2}),
    "diagonal": ((f(2, 3, 4),), {"offset": -1, "dim1": 2, "dim2": 1}),
    "matmul": ((f(2, 3, 4), f(4, 5)), {}),
    "conv": ((f(2, 3, 6, 6), f(4, 3, 3, 3)),
             {"stride": (1, 2), "padding": ((1, 1), (0, 1)), "dilation": (1, 1), "groups": 1}),
    "conv_weight_grad": ((f(2, 4, 7, 6), f(2, 4, 3, 5)),
                         {"kernel": (3, 2), "stride": (2, 1), "padding": ((1, 0), (0, 1)),
                          "dilation": (1, 2), "groups": 2}),
    "im2col": ((f(2, 3, 7, 8),), {"kernel": (3, 2), "stride": (2, 1), "dilation": (1, 2)}),
    "conv1d": ((f(2, 3, 8), f(4, 3, 3), f(4)), {"stride": (2,)}),
    "conv1d_nobias": ((f(2, 3, 8), f(4, 3, 3)), {"padding": (1,)}),
    "conv2d": ((f(2, 3, 6, 6), f(4, 3, 3, 3), f(4)), {"auto_pad": "same"}),
    "conv2d_nobias": ((f(2, 4, 6, 6), f(4, 2, 3, 3)), {"groups": 2}),
    "conv_transpose1d": ((f(2, 3, 5), f(3, 2, 3), f(2)), {"stride": (2,), "output_padding": (1,)}),
    "conv_transpose1d_nobias": ((f(2, 4, 5), f(4, 1, 2)), {"groups": 2, "padding": (1,)}),
    "conv_transpose2d": ((f(2, 4, 4, 3), f(4, 2, 3, 2), f(4)),
                         {"stride": (2, 3), "padding": (1, 0), "output_padding": (1, 2),
                          "groups": 2}),
    "conv_transpose2d_nobias": ((f(1, 2, 3, 3), f(2, 3, 2, 2)), {"dilation": (2, 1)}),
    "conv3d": ((f(2, 2, 4, 1, 5), f(4, 1, 2, 1, 3), f(4)),
               {"stride": (2, 1, 3), "padding": (1, 0, 1), "groups": 2}),
    "conv3d_nobias": ((f(1, 2, 3, 4, 3), f(3, 2, 2, 2, 2)), {"dilation": (2, 1, 1)}),
    "conv_transpose3d": ((f(2, 2, 2, 3, 1), f(2, 3, 2, 2, 1), f(3)),
                         {"stride": (2, 1, 3), "padding": (0, 1, 0), "output_padding": (1, 0, 2)}),
    "conv_transpose3d_nobias": ((f(1, 4, 2, 2, 2), f(4, 1, 1, 2, 2)),
                                {"groups": 2, "dilation": (1, 2, 1)}),
    "max_pool": ((f(2, 3, 7, 7),), {"kernel": (2, 2), "stride": (2, 2), "padding": (1, 0),
                                    "ceil_mode": True}),
    "avg_pool": ((f(2, 3, 7),), {"kernel": (3,), "stride": (2,), "padding": (1,)}),
    "max_pool_grad": ((f(2, 3, 7, 7), f(2, 3, 4, 4)),
                      {"kernel": (2, 2), "stride": (2, 2), "padding": (1, 0), "ceil_mode": True}),
    "avg_pool_grad": ((f(2, 3, 4),), {"kernel": (3,), "stride": (2,), "padding": (1,),
                                      "shape": (2, 3, 7)}),
    "softmax": ((f(2, 5),), {"axis": 1}), "log_softmax": ((f(2, 5),), {"axis": 1}),
    "logsumexp": ((f(2, 5),), {"axes": (1,)}),
    "dropout": ((f(4, 5),), {"p": 0.3, "training": True}),
    "stop_gradient": ((f(2, 3),), {}),
    "batch_norm": ((f(2, 3, 4), f(3), f(3), f(3), f(3)), {}),
    "layer_norm": ((f(2, 3, 4), f(4), f(4)), {"normalized_shape": (4,)}),
    "embedding": ((f(5, 3), labels), {}),
    "one_hot": ((labels,), {"num_classes": 4}),
    "linear": ((f(2, 3), f(4, 3), f(4)), {}), "linear_nobias": ((f(2, 3), f(4, 3)), {}),
    "cross_entropy": ((f(3, 4), labels), {"label_smoothing": 0.1}),
    "nll_loss": ((np.log(f(3, 4)), labels), {"reduction": "sum"}),
    "mse_loss": ((f(3, 4), f(3, 4)), {}), "l1_loss": ((f(3, 4), f(3, 4)), {"reduction": "none"}),
    "binary_cross_entropy": ((f(3) / 2, f(3) / 2), {}),
    "binary_cross_entropy_with_logits": ((f(3), f(3) / 2), {}),
    "kl_div": ((np.log(f(3, 4) / 2), f(3, 4) / 2), {"reduction": "batchmean"}),
    "smooth_l1_loss": ((f(3, 4), f(3, 4)), {"beta": 0.3}),
    "huber_loss": ((f(3, 4), f(3, 4)), {"delta": 0.3, "reduction": "sum"}),
    "soft_margin_loss": ((f(3, 4), np.sign(f(3, 4) - 1)), {}),
    "poisson_nll_loss": ((f(3, 4), 2 * f(3, 4)), {"full": True}),
    "hinge_embedding_loss": ((f(3, 4), np.sign(f(3, 4) - 1).astype(np.int64)), {"margin": 1.2}),
    "margin_ranking_loss": ((f(3), f(3), np.sign(f(3) - 1)), {"margin": 0.1}),
    # complex values (interpreted: tests/frontend/test_complex_fft.py holds them to torch)
    "complex": ((signed, f(3)), {}),
    **{op: ((z23,), {}) for op in ("real", "imag", "conj", "angle")},
    "fft_c2c": ((z23,), {"axes": (1, 0), "inverse": True, "norm": "ortho"}),
    "fft_r2c": ((f(2, 5),), {"axes": (0, 1)}),
    "fft_c2r": ((z23,), {"axes": (1,), "n": 4, "norm": "forward"}),
}
# graph sources fed by the caller, scan (tested with bodies in tests/grammar), and the ops of
# autograd.Function, whose bodies and VJPs are the user's Python (tests/frontend/test_function.py)
NOT_HERE = {"input", "param", "scan", "custom_vjp", "py_function"}


def test_every_op_has_a_case():
    missing = sorted(set(REGISTRY) - set(CASES) - NOT_HERE)
    assert not missing, f"ops without a registry case: {missing}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_infer_agrees_with_the_computed_result(name):
    arrays, attrs = CASES[name]
    outs, types = run_op(name, *arrays, **attrs)
    assert len(outs) == len(types)
    for out, t in zip(outs, types):
        assert out.dtype == t.dtype.np, f"{name}: computed {out.dtype}, infer says {t}"
        assert out.shape == tuple(t.shape), f"{name}: computed {out.shape}, infer says {t}"


@pytest.mark.parametrize("name", sorted(set(REGISTRY) - NOT_HERE))
def test_op_is_primitive_or_composite(name):
    op = REGISTRY[name]
    assert (op.ref is None) != (op.decompose is None)
    assert op.vjp is None or callable(op.vjp)


# ---- completeness for the compiler, from the traits ---------------------------------------------
# (an op running Python, an eager autograd.Function, lives on eager tapes only: never compiled;
# an INTERPRETED one, on complex values, is refused by the compiler: compiler/interpreted.py)
PRIMITIVES = sorted(name for name, op in REGISTRY.items() if not op.is_composite
                    and not op.traits & {Trait.PYTHON, Trait.INTERPRETED})
# the traits that tell fusion how to treat an op (passes/fuse.py)
FUSION_CLASSES = {Trait.ELEMENTWISE, Trait.VIEW, Trait.MOVEMENT, Trait.REDUCTION,
                  Trait.CONTRACTION, Trait.WINDOW, Trait.OWN_KERNEL, Trait.SOURCE, Trait.CHEAP}


def lowering_gap(op: OpDef) -> str | None:
    if Trait.ARGUMENT in op.traits or has_lowering(op):
        return None
    return f"{op.name} has no lowering rule (lower_rules.LOWERINGS, SCATTERS) nor ELEMENTWISE"


def fusion_gap(op: OpDef) -> str | None:
    if op.traits & FUSION_CLASSES:
        return None
    return (f"{op.name} has no fusion class: tag it with one of "
            f"{', '.join(sorted(t.name for t in FUSION_CLASSES))}")


def scalar_gap(op: OpDef) -> str | None:
    if Trait.ELEMENTWISE not in op.traits:
        return None
    form = SCALAR_FORMS.get(op)
    if form is None:
        return f"{op.name} is ELEMENTWISE but has no scalar form (codegen/scalar.SCALAR_FORMS)"
    if not form.vector <= frozenset(DType):
        return f"{op.name}: its vector form must be a set of dtypes, got {form.vector!r}"
    return None


def trait_gaps(op: OpDef) -> list[str]:
    t, arity = op.traits, len(op.inputs)
    rules = [
        (Trait.UNARY in t and arity != 1, "is UNARY with other than one input"),
        (Trait.BINARY in t and arity != 2, "is BINARY with other than two inputs"),
        (Trait.ELEMENTWISE in t and not (t & {Trait.UNARY, Trait.BINARY}) and op is not WHERE,
         "is ELEMENTWISE but neither UNARY nor BINARY (only where takes three inputs)"),
        (Trait.COMPARISON in t and Trait.BINARY not in t, "is a COMPARISON but not BINARY"),
        (Trait.COMMUTATIVE in t and Trait.BINARY not in t, "is COMMUTATIVE but not BINARY"),
        (Trait.VIEW in t and Trait.MOVEMENT not in t, "is a VIEW but not MOVEMENT"),
        (Trait.ARGUMENT in t and Trait.SOURCE not in t, "is an ARGUMENT but not a SOURCE"),
        (Trait.SOURCE in t and arity != 0, "is a SOURCE with tensor inputs"),
    ]
    return [f"{op.name} {what}" for broken, what in rules if broken]


@pytest.mark.parametrize("name", PRIMITIVES)
def test_every_primitive_has_a_lowering(name):
    assert lowering_gap(REGISTRY[name]) is None, lowering_gap(REGISTRY[name])


@pytest.mark.parametrize("name", PRIMITIVES)
def test_every_primitive_has_a_fusion_class(name):
    assert fusion_gap(REGISTRY[name]) is None, fusion_gap(REGISTRY[name])


@pytest.mark.parametrize("name", PRIMITIVES)
def test_every_elementwise_primitive_has_a_scalar_and_vector_form(name):
    assert scalar_gap(REGISTRY[name]) is None, scalar_gap(REGISTRY[name])


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_traits_agree(name):
    assert not trait_gaps(REGISTRY[name]), "; ".join(trait_gaps(REGISTRY[name]))


def test_scalar_forms_belong_to_elementwise_primitives():
    stale = [op.name for op in SCALAR_FORMS
             if isinstance(op, OpDef) and (Trait.ELEMENTWISE not in op.traits or op.is_composite)]
    assert not stale, f"scalar forms for ops that are not elementwise primitives: {stale}"


@pytest.fixture
def made_up():
    """defop for the length of a test: the op leaves the registry afterwards."""
    names: list[str] = []

    def make(name: str, inputs: tuple[str, ...], traits: set[Trait]) -> OpDef:
        names.append(name)
        return defop(name, inputs, lambda *types: types[0], ref=lambda *xs: xs[0],
                     traits=traits)
    yield make
    for name in names:
        del REGISTRY[name]


def test_the_checks_name_an_incomplete_op(made_up):
    bare = made_up("test_bare", ("x",), set())
    assert "test_bare has no lowering rule" in lowering_gap(bare)
    assert "test_bare has no fusion class" in fusion_gap(bare)
    hardtanh = made_up("test_hardtanh", ("x",), {Trait.UNARY, Trait.ELEMENTWISE})
    assert lowering_gap(hardtanh) is None and fusion_gap(hardtanh) is None
    assert "test_hardtanh is ELEMENTWISE but has no scalar form" in scalar_gap(hardtanh)
    odd = made_up("test_odd", ("x", "y", "z"), {Trait.ELEMENTWISE, Trait.COMMUTATIVE, Trait.VIEW})
    assert trait_gaps(odd) == [
        "test_odd is ELEMENTWISE but neither UNARY nor BINARY (only where takes three inputs)",
        "test_odd is COMMUTATIVE but not BINARY", "test_odd is a VIEW but not MOVEMENT"]
