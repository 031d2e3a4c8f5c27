"""ONNX's conformance suite on dlg: the official backend node tests (`onnx.backend.test`,
generated in memory by onnx), each a one-node model imported with `dlg.onnx.load` and run on
the interpreter; one case per supported op compiled too (all of them: `-m onnx_full`).

Cases whose ops dlg does not import skip (`unittest.SkipTest`, naming the ops); every case of
an op dlg imports passes, or is listed in `XFAIL` with the reason (a strict expected failure:
a case that starts passing fails until it leaves the table). Counts by op: docs/onnx.md.
"""

from __future__ import annotations

import re

import pytest

onnx = pytest.importorskip("onnx")

from onnx.backend.test import BackendTest  # noqa: E402
from onnx.backend.test.loader import load_model_tests  # noqa: E402

from dlg.onnx.backend import CompiledDlgBackend, DlgBackend  # noqa: E402
from dlg.onnx.load import OPS, unsupported_ops  # noqa: E402

# a regex over `test_<case>_cpu` -> why dlg differs; strict: each case must fail
XFAIL: dict[str, str] = {
    # element types dlg does not have (dlg: f16 f32 f64 i32 i64 bool, u8 i8 i16, c64 c128)
    r"(?i)(?<![a-z])(u?int(2|4)|uint16)(?!\d)|uint(32|64)|bfloat16|float8|float4|e8m0|_string":
        "an element type dlg does not have",
    r"^test_attention_\w*bf16": "an element type dlg does not have (bfloat16)",
    # op options dlg's ops do not have
    r"^test_(average|max)pool_3d_": "3-d pooling (dlg's pools are 1-d and 2-d)",
    r"^test_averagepool_2d_(pads|same_lower|same_upper)_cpu": "padding left out of the "
        "average's count, uneven or over half the kernel",
    r"^test_averagepool_2d_dilations_cpu": "dilated average pooling",
    r"^test_maxpool_with_argmax_": "MaxPool's Indices output",
    r"^test_(batchnorm_\w*training_mode|training_dropout)": "training mode (batch statistics, "
        "random masks): an imported graph is for inference",
    r"^test_gru_": "linear_before_reset=0 (PyTorch's GRU, and dlg's, is linear_before_reset=1)",
    r"^test_lstm_with_peepholes_cpu": "LSTM peepholes",
    r"^test_reduce_(max|min|log_sum_exp)_empty_set(_bool)?_cpu":
        "reducing an empty axis (dlg's max, min and logsumexp refuse it)",
    r"^test_identity_(opt|sequence)_cpu": "optional and sequence values (dlg has tensors)",
    r"^test_mod_float_edge_cases_fmod_0_": "remainder of infinities (Python's x % inf is x, "
        "dlg's, like torch.remainder, nan)",
    # expanded functions that compute a shape, pad or range from input data at run time
    r"^test_(blackman|hamming|hann)window_\w*expanded": "a Range whose bounds are data",
    r"^test_center_crop_pad_\w*expanded": "pads computed from data",
    r"^test_attention_(24_fullymasked_qk|24_qk_matmul_output_mode3|4d_causal_nonpad_attn_mask"
    r"|4d_diff_heads_mask4d_padded_kv|causal_boolmask|local_window_(ext_cache|gqa_rank4|rank1))\w*expanded":
        "a Pad or Expand whose pads, fill value or shape are data",
}


# interpreted only: a regex -> why the interpreter differs (compiled code passes)
INTERPRETED_XFAIL: dict[str, str] = {
    r"^test_swiglu_float16_expanded_cpu": "one f16 ulp: the interpreter rounds each f16 "
        "product, the reference (and dlg's compiled code, which accumulates half sums in f32) "
        "rounds later",
}
# compiled only: a regex -> why the native code differs from the interpreter
COMPILED_XFAIL: dict[str, str] = {
}


def node_cases() -> dict[str, set[str]]:
    """Every node case's name -> the ONNX ops of its model."""
    return {case.name: {n.op_type for n in case.model.graph.node}
            for case in load_model_tests(kind="node")}


CASES = node_cases()
SUPPORTED = sorted(name for name, ops in CASES.items() if ops <= set(OPS))


def _suite(backend: type, names: list[str] | None) -> type:
    """BackendTest's node-test class for `backend`: CPU cases only (of `names`, if given),
    XFAIL's and COMPILED_XFAIL's or INTERPRETED_XFAIL's as expected failures."""
    suite = BackendTest(backend, __name__)
    for pattern in [*XFAIL, *(COMPILED_XFAIL if backend.compiled else INTERPRETED_XFAIL)]:
        suite.xfail(pattern)
    cls = suite.test_cases["OnnxBackendNodeModelTest"]
    for attr in [a for a in vars(cls) if a.startswith("test_")]:
        if not attr.endswith("_cpu") or names is not None and attr[:-4] not in names:
            delattr(cls, attr)
    return cls


def _one_per_op() -> list[str]:
    """For each supported op, its first case (fewest ops first) that is not an expected
    failure."""
    chosen: dict[str, str] = {}
    for name in sorted(SUPPORTED, key=lambda n: (len(CASES[n]), n)):
        if any(re.search(p, f"{name}_cpu") for p in [*XFAIL, *COMPILED_XFAIL]):
            continue
        for op in CASES[name]:
            chosen.setdefault(op, name)
    return sorted(set(chosen.values()))


OnnxBackendNodeModelTest = _suite(DlgBackend, None)
OnnxCompiledOneCaseTest = _suite(CompiledDlgBackend, _one_per_op())
OnnxCompiledOneCaseTest.__name__ = "OnnxCompiledOneCaseTest"
OnnxCompiledAllTest = pytest.mark.onnx_full(_suite(CompiledDlgBackend, SUPPORTED))
OnnxCompiledAllTest.__name__ = "OnnxCompiledAllTest"


def test_every_table_op_has_node_cases():
    """An op in the import table that no node case covers is untested here."""
    covered = {op for ops in CASES.values() for op in ops}
    assert not set(OPS) - covered - {"Dropout"}, sorted(set(OPS) - covered)


def test_unsupported_cases_name_their_ops():
    name = next(n for n, ops in CASES.items() if not ops <= set(OPS))
    case = next(c for c in load_model_tests(kind="node") if c.name == name)
    assert unsupported_ops(case.model)
    with pytest.raises(Exception, match="dlg does not import") as info:
        DlgBackend.prepare(case.model)
    assert type(info.value).__name__ == "SkipTest"
