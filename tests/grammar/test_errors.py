"""Invalid .dlg programs, one row each (STYLE §11): the error class, where it points and a key
phrase of its message; every row also goes through `dlgc check`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import dlg
from dlg.cli import main
from dlg.errors import (
    DlgAttributeError,
    DlgError,
    DlgImportError,
    DlgNameError,
    DlgShapeError,
    DlgSyntaxError,
    DlgTypeError,
    DlgValueError,
)

ROOT = Path(__file__).resolve().parents[2]
X = "model M { input x: f32[N, 3] "  # most rows start here: their columns count from it
TRAIN = "model M { input x: f32[N, 3] output y = x }\ntrain M { input t: f32[N, 3] "
LEAKS = ("Traceback", "unsupported operand", "object at 0x", "<DType", "NoneType", "KeyError",
         "can only concatenate", "positional argument:")


def row(id: str, src: str, cls: type[DlgError], where: str, pattern: str):
    return pytest.param(src, cls, where, pattern, id=id)


SEQ = "model M {\n    input x: f32[N, T, 3]\n    "  # then line 3: a scan
SCAN = (SEQ + "h0 = zeros(x.shape[0], 3)\n"
        "    scan (x_t in x, axis=1) carry (h = h0) { BODY }\n    output y = h\n}")

ROWS = [
    # ---- syntax: the parser's words, or a label from syntax_errors.EXAMPLES
    row("eof-missing-brace", X + "output y = x", DlgSyntaxError, "1:42",
        r"unexpected end of file"),
    row("unclosed-paren", X + "output y = relu(x }", DlgSyntaxError, "1:48",
        r"unclosed '\(' : a call or group needs its '\)'"),
    row("unclosed-paren-first-stmt", "model M { y = f(x }", DlgSyntaxError, "1:19",
        r"unclosed '\('"),
    row("unclosed-def-params", "def f(x { return x }", DlgSyntaxError, "1:9",
        r"unexpected '\{'; expected .*'\)'"),
    row("unclosed-bracket", X + "output y = x[0 }", DlgSyntaxError, "1:45",
        r"unexpected '\}'; expected ':', ',', '\]'"),
    row("stray-brace", X + "output y = x } }", DlgSyntaxError, "1:45",
        r"unexpected '\}'; expected end of file, 'def'"),
    row("stray-paren", X + "y = x) output z = y }", DlgSyntaxError, "1:35",
        r"unexpected '\)'"),
    row("bad-token-dollar", X + "output y = x $ 2 }", DlgSyntaxError, "1:43",
        r"unexpected character '\$'"),
    row("bad-token-andand", X + "output y = x && x }", DlgSyntaxError, "1:43",
        r"unexpected character '&'"),
    row("unterminated-string", X + 'output y = "abc }', DlgSyntaxError, "1:41",
        r"unterminated string"),
    row("bad-escape", X + r'output y = x + "\q" }', DlgSyntaxError, "1:45",
        r"bad escape in string"),
    row("missing-operand", X + "output y = x + }", DlgSyntaxError, "1:45",
        r"missing operand: an operator needs a value on both sides"),
    row("double-comma", X + "output y = f(x,, x) }", DlgSyntaxError, "1:45",
        r"unexpected ','"),
    row("two-dots-number", X + "output y = 1.2.3 }", DlgSyntaxError, "1:45",
        r"unexpected number 3; expected a name"),
    row("missing-comma-in-dims", "model M { input x: f32[N 3] output y = x }", DlgSyntaxError,
        "1:26", r"unexpected number 3"),
    row("input-missing-colon", "model M { input x f32[N] output y = x }", DlgSyntaxError,
        "1:19", r"missing ':' and a type after the input name"),
    row("input-missing-dims", "model M { input x: f32 }", DlgSyntaxError, "1:24",
        r"a tensor type is a dtype and dims in brackets"),
    row("model-missing-brace", "model M input x: f32[N]", DlgSyntaxError, "1:9",
        r"statements go inside braces; did you forget '\{'"),
    row("model-without-name", "model { input x: f32[N] }", DlgSyntaxError, "1:7",
        r"a model needs a name"),
    row("keyword-for-as-name", X + "for = 3 output y = x }", DlgSyntaxError, "1:34",
        r"unexpected '='; expected a name"),
    row("keyword-layer-without-name", X + "layer = Linear(3, 4) output y = x }",
        DlgSyntaxError, "1:36", r"unexpected '='; expected a name"),
    row("if-without-braces", X + "if true y = x output z = x }", DlgSyntaxError, "1:38",
        r"unexpected name 'y'; expected '\{'"),
    row("forward-at-top-level", "forward(x) { return x }", DlgSyntaxError, "1:1",
        r"unexpected 'forward'; expected 'def', 'import', 'layer', 'model'"),
    row("statement-starts-with-number", X + "3 = x output y = x }", DlgSyntaxError, "1:30",
        r"unexpected number 3"),
    row("positional-after-keyword", X + "output y = f(a=1, x) }", DlgSyntaxError, "1:48",
        r"a positional argument cannot follow keyword arguments"),
    row("keyword-given-twice", X + "output y = softmax(x, axis=1, axis=0) }", DlgSyntaxError,
        "1:60", r"keyword argument 'axis' given twice"),
    # ---- statements in the wrong place
    row("param-in-def", "def f(x) { param w: f32[3] = ones() return x }\n" + X
        + "output y = f(x) }", DlgSyntaxError, "1:12", r"`param`/`buffer` is not allowed in a def"),
    row("emit-outside-scan", X + "emit y = x output z = x }", DlgSyntaxError, "1:30",
        r"`emit` is not allowed in a model"),
    row("update-in-model", X + "update y = x output z = x }", DlgSyntaxError, "1:30",
        r"`update` is not allowed in a model"),
    row("update-in-layer-body",
        "layer L() { buffer b: f32[3] = zeros() update b = ones(3) forward(x) { return x } }\n"
        + X + "layer l = L() output y = l(x) }", DlgSyntaxError, "1:40",
        r"`update` is not allowed in a layer body"),
    row("update-in-scan",
        "layer L() {\n    buffer b: f32[3] = zeros()\n    forward(x) {\n"
        "        scan (x_t in x, axis=0) { update b = x_t emit o = x_t }\n        return o\n"
        "    }\n}\n" + X + "layer l = L() output y = l(x) }", DlgSyntaxError, "4:35",
        r"`update` is not allowed in a scan body"),
    row("output-in-layer", "layer L() { output y = 1 forward(x) { return x } }\n" + X
        + "layer l = L() output y = l(x) }", DlgSyntaxError, "1:13",
        r"`output` is not allowed in a layer body"),
    row("input-in-layer", "layer L() { input z: f32[3] forward(x) { return x } }\n" + X
        + "layer l = L() output y = l(x) }", DlgSyntaxError, "1:13",
        r"`input` is not allowed in a layer body"),
    row("return-in-model", X + "return x }", DlgSyntaxError, "1:30",
        r"`return` is not allowed in a model"),
    row("forward-in-model", X + "forward(x) { return x } output y = x }", DlgSyntaxError,
        "1:30", r"`forward` is not allowed in a model"),
    row("metric-in-model", X + "metric m = mean(x) output y = x }", DlgSyntaxError, "1:30",
        r"`metric` is not allowed in a model"),
    row("model-without-outputs", "model M { input x: f32[N, 3] }", DlgSyntaxError, "1:1",
        r"model M has no outputs"),
    # ---- unknown names, with a suggestion
    row("unknown-variable", X + "output y = relu(xx) }", DlgNameError, "1:46",
        r"unknown name 'xx'; did you mean 'x'\?"),
    row("unknown-layer", X + "layer fc = Linaer(3, 4) output y = fc(x) }", DlgNameError,
        "1:41", r"unknown name 'Linaer'; did you mean 'Linear'\?"),
    row("unknown-function", X + "output y = rleu(x) }", DlgNameError, "1:41",
        r"unknown name 'rleu'; did you mean 'relu'\?"),
    row("unknown-optimizer", TRAIN + "loss = mse_loss(y, t) optimizer = Adom(lr=1) }",
        DlgNameError, "2:64", r"^unknown optimizer 'Adom' \(a train section takes SGD, Adam, "
        r"AdamW, RMSprop, Adadelta, Adagrad, Adamax, NAdam, RAdam, Rprop, ASGD, Adafactor\); "
        r"did you mean 'Adam'\?$"),
    row("unknown-schedule", TRAIN + "loss = mse_loss(y, t) optimizer = SGD(lr=0.1) "
        "schedule = OneCycleLR(max_lr=0.1) }", DlgNameError, "2:87",
        r"^unknown schedule 'OneCycleLR' \(a train section takes StepLR, MultiStepLR, "
        r"ExponentialLR, CosineAnnealingLR\)$"),
    # ---- Python's spellings that PyTorch code brings along
    row("python-true", X + "layer r = RNN(3, 4, batch_first=True) output y = x }", DlgNameError,
        "1:62", r"^unknown name 'True'; did you mean true\? \(\.dlg spells booleans true/false "
        r"and none\)$"),
    row("python-none", X + "z = None output y = x }", DlgNameError, "1:34",
        r"^unknown name 'None'; did you mean none\? \(\.dlg spells booleans true/false and "
        r"none\)$"),
    row("python-def-forward", "layer L() {\n    def forward(self, x):\n        return x\n}\n"
        + X + "layer l = L() output y = l(x) }", DlgSyntaxError, "2:9",
        r"^unexpected 'forward': a layer's forward is written `forward\(x\) \{ \.\.\. \}` "
        r"\(no def, no self, a block in braces\)$"),
    row("unknown-initializer",
        "layer L() { param w: f32[3] = unifrm(0, 1) forward(x) { return x } }\n" + X
        + "layer l = L() output y = l(x) }", DlgNameError, "1:31",
        r"unknown name 'unifrm'; did you mean 'uniform'\?"),
    row("unknown-builtin-keyword", X + "output y = softmax(x, axs=1) }", DlgTypeError, "1:41",
        r"softmax\(\) has no argument 'axs'; did you mean 'axis'\?"),
    row("unknown-layer-keyword", X + "layer fc = Linear(3, 4, bais=false) output y = fc(x) }",
        DlgTypeError, "1:41", r"layer Linear has no argument 'bais'; did you mean 'bias'\?"),
    row("unknown-dtype", "model M { input x: f33[N, 3] output y = x }", DlgTypeError, "1:20",
        r"unknown dtype 'f33'; did you mean 'f32'\?"),
    row("unknown-layer-attribute", X + "layer fc = Linear(3, 4) output y = fc.wieght }",
        DlgNameError, "1:65", r"layer fc has no attribute 'wieght'; did you mean 'weight'\?"),
    row("unknown-tensor-attribute", X + "output y = x.foo }", DlgNameError, "1:41",
        r"a tensor has no attribute 'foo' \(it has shape, dtype, ndim, T\)"),
    row("unknown-annotation", "layer L(n: foo) { forward(x) { return x } }\n"
        + X + "layer l = L(3) output y = x }", DlgNameError, "1:9",
        r"unknown type 'foo' for argument 'n'"),
    row("unknown-scan-option",
        SEQ + "scan (x_t in x, axs=1) { emit o = x_t }\n    output y = o\n}",
        DlgNameError, "3:21", r"scan takes axis= and reverse=, not axs="),
    row("scan-local-used-outside", SCAN.replace("BODY", "h = h + x_t  z = h * 2")
        .replace("output y = h", "output y = z"), DlgNameError, "5:16", r"unknown name 'z'"),
    row("update-unknown-buffer",
        "layer L() { buffer b: f32[3] = zeros() forward(x) { update c = x[0] return x } }\n"
        + X + "layer l = L() output y = l(x) }", DlgNameError, "1:53",
        r"`update` needs a buffer or param of this layer; 'c' is not one"),
    # ---- arity and keywords: builtins, defs, layers
    row("builtin-too-many", X + "output y = relu(x, x) }", DlgTypeError, "1:41",
        r"relu\(\): too many positional arguments"),
    row("builtin-missing", X + "output y = relu() }", DlgTypeError, "1:41",
        r"relu\(\): missing argument: 'x'"),
    row("def-missing", "def f(a, b) { return a + b }\n" + X + "output y = f(x) }",
        DlgTypeError, "2:41", r"f\(\) is missing argument 'b'"),
    row("def-too-many", "def f(a, b) { return a + b }\n" + X + "output y = f(x, x, x) }",
        DlgTypeError, "2:41", r"f\(\) takes 2 arguments, got 3"),
    row("def-unknown-keyword", "def f(a, b) { return a + b }\n" + X + "output y = f(x, c=x) }",
        DlgTypeError, "2:41", r"f\(\) has no argument 'c'"),
    row("def-duplicate-keyword", "def f(a, b) { return a + b }\n" + X
        + "output y = f(x, a=x) }", DlgTypeError, "2:41", r"f\(\) got argument 'a' twice"),
    row("layer-missing", X + "layer fc = Linear(3) output y = fc(x) }", DlgTypeError, "1:41",
        r"layer Linear is missing argument 'out_features'"),
    row("layer-too-many", X + "layer fc = Linear(3, 4, 5, 6) output y = fc(x) }",
        DlgTypeError, "1:41", r"layer Linear takes 3 arguments, got 4"),
    row("param-too-large", X + "layer fc = Linear(3, 100000000000) output y = fc(x) }",
        DlgValueError, "1:41", r"has 300,000,000,000 elements .* the limit is"),
    row("forward-too-many", X + "layer fc = Linear(3, 4) output y = fc(x, x) }", DlgTypeError,
        "1:65", r"fc\.forward takes 1 argument, got 2"),
    row("reduction-float-axis", X + "output y = sum(x, 1.5) }", DlgTypeError, "1:41",
        r"sum: axis must be an int or a tuple of ints, got float 1\.5"),
    # ---- wrong kinds of values
    row("float-in-features", "model M { input x: f32[N, 784] layer fc = Linear(784.5, 10) "
        "output y = fc(x) }", DlgTypeError, "1:43",
        r"layer Linear: argument 'in_features' must be int, got float 784\.5"),
    row("float-softmax-dim", X + "layer s = Softmax(1.5) output y = s(x) }", DlgTypeError,
        "1:40", r"layer Softmax: argument 'dim' must be int, got float 1\.5"),
    row("float-kernel-size-in-prelude", "model M { input x: f32[N, 3, 8, 8] "
        "layer c = Conv2d(3, 8, 3.5) output y = c(x) }", DlgShapeError, "1:46",
        r"a dim must be an integer or a symbol, got float 3\.5"),
    row("kernel-size-tuple-length", "model M { input x: f32[N, 3, 8, 8] "
        "layer c = Conv2d(3, 8, (3, 3, 3)) output y = c(x) }", DlgTypeError, "1:46",
        r"expected 2 values, got 3"),
    row("dtype-as-operand", X + "output y = x + f32 }", DlgTypeError, "1:41",
        r"the right side of `\+` must be a tensor or a number, got the dtype f32"),
    row("static-str-plus-int", X + 'y = "a" + 1 output z = x }', DlgTypeError, "1:34",
        r"`\+` cannot combine str 'a' and int 1$"),
    row("division-by-zero", X + "y = 1 / 0 output z = x }", DlgValueError, "1:34",
        r"division by zero in `/`"),
    row("calling-a-tensor", X + "output y = x(x) }", DlgTypeError, "1:41",
        r"a tensor f32\[N,3\] is not callable"),
    row("calling-layer-definition", X + "output y = Linear(3, 4)(x) }", DlgTypeError, "1:41",
        r"Linear\(\.\.\.\) makes a layer: declare it with `layer name = Linear\(\.\.\.\)`"),
    row("layer-decl-without-call", "layer L(n: int) { forward(x) { return x } }\n" + X
        + "layer l = L(3) layer m = l output y = x }", DlgTypeError, "2:55",
        r"a layer declaration needs a call"),
    row("layer-without-forward", "layer L(n: int) { }\n" + X + "layer l = L(3) output y = l(x) }",
        DlgTypeError, "2:56", r"layer L has no forward function"),
    row("output-not-tensor", X + "output y = x.shape }", DlgTypeError, "1:30",
        r"output 'y' must be a tensor, got a tuple of 2"),
    row("param-init-not-initializer",
        "layer L() { param w: f32[3] = relu forward(x) { return x } }\n"
        + X + "layer l = L() output y = l(x) }", DlgTypeError, "1:31",
        r"a param starts from an initialiser .* got the builtin relu"),
    row("cast-to-non-dtype", X + "output y = cast(x, float) }", DlgTypeError, "1:41",
        r"cast: dtype must be a dtype such as f32, got the builtin float"),
    row("concat-not-tuple", X + "output y = concat(x, axis=0) }", DlgTypeError, "1:41",
        r"concat takes a tuple of tensors"),
    # ---- shapes: both shapes in the message
    row("matmul-inner", X + "input w: f32[4, 5] output y = x @ w }", DlgShapeError, "1:60",
        r"matmul: inner dims differ: f32\[N,3\] @ f32\[4,5\]"),
    row("matmul-in-user-def", "def f(x) { return x @ x }\n" + X + "output y = f(x) }",
        DlgShapeError, "1:19", r"matmul: inner dims differ: f32\[N,3\] @ f32\[N,3\]"),
    row("add-broadcast", X + "input w: f32[4] output y = x + w }", DlgShapeError, "1:57",
        r"add: shapes do not broadcast: \[N, 3\] vs \[4\]"),
    row("conv2d-channels", "model M { input x: f32[N, 3, 8, 8] layer c = Conv2d(4, 8, 3) "
        "output y = c(x) }", DlgShapeError, "1:73",
        r"conv2d: input f32\[N,3,8,8\] has 3 channels but weight f32\[8,4,3,3\]"),
    row("conv2d-rank", X + "layer c = Conv2d(3, 8, 3) output y = c(x) }", DlgShapeError,
        "1:67", r"conv2d: input must have rank 4 .* got f32\[N,3\]"),
    row("conv2d-kernel-too-large", "model M { input x: f32[N, 3, 2, 2] layer c = Conv2d(3, 8, 5) "
        "output y = c(x) }", DlgShapeError, "1:73",
        r"larger than the padded input: input f32\[N,3,2,2\], weight f32\[8,3,5,5\]"),
    row("concat-off-axis", X + "input w: f32[N, 4] output y = concat((x, w), axis=0) }",
        DlgShapeError, "1:60", r"concat: shapes differ off axis 0: f32\[N,3\], f32\[N,4\]"),
    row("concat-axis-range", X + "output y = concat((x, x), axis=2) }", DlgShapeError, "1:41",
        r"concat: axis 2 is out of range for rank 2"),
    row("reshape-not-divisible", "model M { input x: f32[N, 10] output y = reshape(x, 3, -1) }",
        DlgShapeError, "1:42",
        r"reshape: cannot reshape f32\[N,10\] to \[3, -1\]: 10\*N elements do not divide by 3"),
    row("reshape-numel", "model M { input x: f32[6, 10] output y = reshape(x, 7, 9) }",
        DlgShapeError, "1:42", r"reshape: .*f32\[6,10\].*\[7, ?9\]"),
    row("linear-in-features", "model M { input x: f32[N, 10] layer fc = Linear(12, 4) "
        "output y = fc(x) }", DlgShapeError, "1:67",
        r"linear: input f32\[N,10\] does not fit weight f32\[4,12\]"),
    row("lstm-input-size", "model M { input x: f32[N, T, 3] layer r = LSTM(4, 8, "
        "batch_first=true) y, hc = r(x) output z = y }", DlgShapeError, "1:80",
        r"LSTM\(input_size=4\) got 3 features"),
    row("batchnorm-channels", "model M { input x: f32[N, 3, 8, 8] layer bn = BatchNorm2d(4) "
        "output y = bn(x) }", DlgShapeError, "1:73",
        r"BatchNorm2d\(4\) got 3 channels"),
    row("layernorm-shape", "model M { input x: f32[N, 5] layer ln = LayerNorm(4) "
        "output y = ln(x) }", DlgShapeError, "1:65",
        r"layer_norm: input f32\[N,5\] does not end with normalized_shape \[4\]"),
    row("split-not-divisible", X + "output y = split(x, 2, axis=1)[0] }", DlgShapeError,
        "1:41", r"split: axis 1 of f32\[N,3\] does not divide into 2 equal parts"),
    row("softmax-axis", X + "output y = softmax(x, axis=5) }", DlgShapeError, "1:41",
        r"softmax: axis 5 is out of range for rank 2"),
    row("transpose-rank-1", "model M { input x: f32[3] output y = x.T }", DlgShapeError,
        "1:38", r"T needs a tensor of rank >= 2, got rank 1"),
    row("assert-fails", X + 'assert x.shape[1] == 4, "need 4 features" output y = x }',
        DlgShapeError, "1:30", r"^need 4 features$"),
    # ---- dtypes
    row("f32-plus-i64", X + "input i: i64[N, 3] output y = x + i }", DlgTypeError, "1:60",
        r"add: dtypes differ: f32\[N,3\] vs i64\[N,3\]"),
    row("float-literal-int-tensor", "model M { input i: i64[N, 3] output y = i * 0.5 }",
        DlgTypeError, "1:41", r"the float 0\.5 meets an i64 tensor"),
    row("bool-literal-float-tensor", X + "output y = x * true }", DlgTypeError, "1:41",
        r"a bool meets an f32 tensor"),
    row("nll-loss-float-target", X + "input t: f32[N] "
        "output y = nll_loss(log_softmax(x, axis=1), t) }", DlgTypeError, "1:57",
        r"nll_loss: target must be int64 \(or int32\) class indices, got f32\[N\]"),
    row("cross-entropy-float-target-shape", X + "input t: f32[N] "
        "output y = cross_entropy(x, t) }", DlgShapeError, "1:57",
        r"cross_entropy: .*input f32\[N,3\], target f32\[N\]"),
    row("softmax-int-input", "model M { input x: i64[N, 3] output y = softmax(x) }",
        DlgTypeError, "1:41", r"softmax: input must be f16/f32/f64, got i64\[N,3\]"),
    row("linear-int-input", "model M { input x: i64[N, 3] layer fc = Linear(3, 4) "
        "output y = fc(x) }", DlgTypeError, "1:65", r"linear: dtypes differ: i64\[N,3\] vs f32"),
    row("embedding-float-indices", X + "layer e = Embedding(10, 4) output y = e(x) }",
        DlgTypeError, "1:68", r"embedding: indices must be i32/i64, got f32\[N,3\]"),
    row("logical-and-floats", X + "output y = x and x }", DlgTypeError, "1:41",
        r"logical_and: inputs must be bool, got f32\[N,3\]"),
    row("where-float-condition", X + "output y = where(x, x, x) }", DlgTypeError, "1:41",
        r"where: condition must be bool, got f32\[N,3\]"),
    # ---- dims
    row("negative-dim", "model M { input x: f32[N, -3] output y = x }", DlgShapeError, "1:27",
        r"a dim cannot be negative, got -3"),
    row("float-dim", "model M { input x: f32[N, 2.5] output y = x }", DlgShapeError, "1:27",
        r"a dim must be an integer or a symbol, got float 2\.5"),
    row("symbolic-param-dim",
        "layer L() { param w: f32[N, 3] = ones() forward(x) { return x * w } }\n"
        + X + "layer l = L() output y = l(x) }", DlgShapeError, "1:26",
        r"parameter shapes must be known numbers, got N"),
    # ---- duplicates
    row("duplicate-param", X + "param w: f32[3] = ones() param w: f32[3] = zeros() "
        "output y = x * w }", DlgNameError, "1:61", r"duplicate parameter 'w'"),
    row("duplicate-layer", X + "layer a = Linear(3, 3) layer a = Linear(3, 3) output y = a(x) }",
        DlgNameError, "1:59", r"duplicate name 'a': it is already layer a \(Linear\)"),
    row("duplicate-input", X + "input x: f32[N, 3] output y = x }", DlgNameError, "1:30",
        r"duplicate input 'x'"),
    row("duplicate-output", X + "output y = x output y = relu(x) }", DlgNameError, "1:43",
        r"duplicate output 'y'"),
    row("duplicate-def", "def f(x) { return x }\ndef f(x) { return x * 2 }\n"
        + X + "output y = f(x) }", DlgNameError, "2:1",
        r"duplicate definition of 'f' in \S*t\.dlg"),
    row("duplicate-emit",
        SEQ + "scan (x_t in x, axis=1) { emit o = x_t emit o = x_t }\n    output y = o\n}",
        DlgNameError, "3:44", r"'o' is emitted twice in one scan step"),
    # ---- scan
    row("scan-carry-shape", SCAN.replace("BODY", "h = concat((h, x_t[:, 0:1]), axis=1)"),
        DlgShapeError, "4:5",
        r"carry 'h' starts as f32\[N,3\] but the body makes it f32\[N,4\]"),
    row("scan-carry-dtype", SCAN.replace("BODY", "h = cast(h, f64)"), DlgShapeError, "4:5",
        r"carry 'h' starts as f32\[N,3\] but the body makes it f64\[N,3\]"),
    row("scan-over-int",
        SEQ + "scan (x_t in 3, axis=1) { emit y = x_t }\n    output y = x\n}",
        DlgTypeError, "3:18", r"a scan sequence must be a tensor, got int 3"),
    row("scan-axis-range",
        SEQ + "scan (x_t in x, axis=3) { emit o = x_t }\n    output y = o\n}",
        DlgShapeError, "3:5", r"scan axis 3 is out of range for f32\[N,T,3\]"),
    row("scan-body-does-nothing",
        SEQ + "scan (x_t in x, axis=1) { y = x_t }\n    output y = x\n}", DlgSyntaxError, "3:5",
        r"a scan body must update a carry or emit a value"),
    # ---- static control flow, unpacking, indexing
    row("tensor-if-condition", X + "if x { y = x } else { y = relu(x) } output z = y }",
        DlgTypeError, "1:33", r"an `if` condition must be known when the model is built"),
    row("for-over-int", X + "for i in 3 { y = x } output y = x }", DlgTypeError, "1:39",
        r"`for` iterates over a tuple, range\(\.\.\.\) or a layer list, got int 3"),
    row("unpack-tensor", X + "a, b = x output y = a }", DlgTypeError, "1:30",
        r"cannot unpack a tensor f32\[N,3\] into 2 names"),
    row("unpack-count", "def f(x) { return x, x, x }\n" + X + "a, b = f(x) output y = a }",
        DlgTypeError, "2:30", r"cannot unpack 3 values into 2 names"),
    row("index-out-of-range", X + "output y = x[:, 5] }", DlgShapeError, "1:41",
        r"index 5 is out of range for axis 1 of f32\[N,3\]"),
    row("negative-index-out-of-range", X + "output y = x[:, -4] }", DlgShapeError, "1:41",
        r"index -4 is out of range for axis 1 of f32\[N,3\]"),
    row("too-many-indices", X + "output y = x[0, 1, 2] }", DlgShapeError, "1:41",
        r"too many indices for f32\[N,3\]: 3 given, it has 2 axes"),
    row("two-ellipses", X + "output y = x[..., ...] }", DlgTypeError, "1:41",
        r"an index can have only one `\.\.\.`"),
    row("float-index", X + "output y = x[1.5] }", DlgTypeError, "1:41",
        r"an index must be an int, a slice, `\.\.\.`, a new axis or an integer tensor, "
        r"got float 1\.5"),
    row("float-tensor-index", X + "output y = x[x] }", DlgTypeError, "1:41",
        r"a tensor index must be i32/i64, got f32\[N,3\]"),
    row("zero-slice-step", X + "output y = x[0:3:0] }", DlgValueError, "1:41",
        r"slice step cannot be zero"),
    row("tuple-index-range", X + "t = (1, 2) output y = x * t[5] }", DlgShapeError, "1:56",
        r"index 5 is out of range for a tuple of 2"),
    # ---- train sections
    row("train-no-loss", TRAIN + "metric m = mean(x) }", DlgSyntaxError, "2:1",
        r"train M needs `loss = \.\.\.`"),
    row("train-loss-not-scalar", TRAIN + "loss = x - t }", DlgShapeError, "2:30",
        r"the loss must be a scalar, got f32\[N,3\]"),
    row("train-int-loss", "model M { input x: f32[N, 3] output y = x }\n"
        "train M { input t: i64[N, 3] loss = sum(t) }", DlgTypeError, "2:30",
        r"the loss must be a float scalar, got i64\[\]"),
    row("train-metric-not-scalar", TRAIN + "loss = mse_loss(y, t) metric acc = y }",
        DlgShapeError, "2:65", r"metric 'acc' must be a scalar, got f32\[N,3\]"),
    row("train-unknown-hyper", TRAIN + "loss = mse_loss(y, t) optimizer = SGD(lr=0.1, "
        "momentun=0.9) }", DlgAttributeError, "2:64",
        r"SGD: unknown hyper-parameter 'momentun' \(it takes lr, momentum.*did you mean "
        r"'momentum'\?"),
    row("train-bad-lr", TRAIN + "loss = mse_loss(y, t) optimizer = Adam(lr=-1) }",
        DlgTypeError, "2:64", r"Adam: bad value -1 for lr"),
    row("train-bad-etas", TRAIN + "loss = mse_loss(y, t) optimizer = Rprop(etas=(1.5, 2)) }",
        DlgTypeError, "2:64", r"Rprop: bad value \(1\.5, 2\) for etas \(it takes \(etaminus, "
        r"etaplus\) with 0 < etaminus < 1 < etaplus\)"),
    row("train-bad-eps-pair", TRAIN + "loss = mse_loss(y, t) optimizer = Adafactor(eps=1e-3) }",
        DlgTypeError, "2:64", r"Adafactor: bad value 0\.001 for eps \(it takes \(eps1 or none, "
        r"eps2\), both >= 0\)"),
    row("train-optimizer-not-optimizer", TRAIN + "loss = mse_loss(y, t) optimizer = 3 }",
        DlgTypeError, "2:52", r"optimizer must be SGD\(\.\.\.\), Adam\(\.\.\.\)"),
    row("train-unknown-model", "model M { input x: f32[N, 3] output y = x }\n"
        "train MM { input t: f32[N, 3] loss = mse_loss(y, t) }", DlgNameError, "2:1",
        r"train section for unknown model 'MM'; did you mean 'M'\?"),
    row("schedule-unknown-hyper", TRAIN + "loss = mse_loss(y, t) optimizer = SGD(lr=0.1) "
        "schedule = StepLR(step_size=2, gama=0.5) }", DlgAttributeError, "2:87",
        r"StepLR: unknown hyper-parameter 'gama' \(it takes step_size, gamma\); did you mean "
        r"'gamma'\?"),
    row("schedule-missing-hyper", TRAIN + "loss = mse_loss(y, t) optimizer = SGD(lr=0.1) "
        "schedule = CosineAnnealingLR(eta_min=0.0) }", DlgAttributeError, "2:87",
        r"CosineAnnealingLR: T_max= is required"),
    row("schedule-bad-milestones", TRAIN + "loss = mse_loss(y, t) optimizer = SGD(lr=0.1) "
        "schedule = MultiStepLR(milestones=(5, 2)) }", DlgTypeError, "2:87",
        r"MultiStepLR: bad value \(5, 2\) for milestones"),
    row("schedule-not-schedule", TRAIN + "loss = mse_loss(y, t) optimizer = SGD(lr=0.1) "
        "schedule = SGD(lr=0.1) }", DlgTypeError, "2:76",
        r"schedule must be StepLR\(\.\.\.\), .*got SGD\(lr=0\.1, momentum=0\.0"),
]


@pytest.mark.parametrize("src, cls, where, pattern", ROWS)
def test_invalid_program(src, cls, where, pattern):
    with pytest.raises(DlgError) as info:
        dlg.loads(src, file="t.dlg")
    e = info.value
    assert type(e) is cls, f"{type(e).__name__}: {e}"
    assert e.span is not None and e.span.file == "t.dlg", e.format()
    assert f"{e.span.line}:{e.span.col}" == where, e.format()
    assert re.search(pattern, e.message), e.message
    assert not any(leak in e.message for leak in LEAKS), e.message


def check_cli_output(code: int, err: str, path: Path, where: str) -> None:
    """Exit 1, `file:line:col: error:`, the source line with a caret under the column."""
    assert code == 1
    assert err.startswith(f"{path}:{where}: error: "), err
    assert "Traceback" not in err
    lines = err.splitlines()
    col = int(where.split(":")[1])
    assert lines[2].strip().startswith("^") and lines[2].index("^") == 4 + col - 1, err


@pytest.mark.parametrize("src, cls, where, pattern", ROWS)
def test_invalid_program_through_dlgc(src, cls, where, pattern, tmp_path, capsys):
    path = tmp_path / "t.dlg"
    path.write_text(src)
    code = main(["check", str(path)])
    out, err = capsys.readouterr()
    assert out == ""
    check_cli_output(code, err, path, where)
    assert re.search(pattern, err.splitlines()[0].split(": error: ", 1)[1])


SUBPROCESS_ROWS = ["unclosed-paren", "unterminated-string", "param-in-def", "unknown-layer",
                   "float-in-features", "matmul-inner", "conv2d-channels", "scan-carry-shape",
                   "tensor-if-condition", "train-unknown-hyper", "float-kernel-size-in-prelude"]


# One row per stage that reports (parser, shape inference, the prelude) in the normal suite; every
# row above runs through dlgc in-process, and the rest of these in a subprocess with -m errors_full
# (two seconds each of starting Python and importing dlg).
SUBPROCESS_QUICK = ["unclosed-paren", "matmul-inner", "float-kernel-size-in-prelude"]


@pytest.mark.parametrize("src, cls, where, pattern", [
    pytest.param(*r.values, id=r.id,
                 marks=() if r.id in SUBPROCESS_QUICK else pytest.mark.errors_full)
    for r in ROWS if r.id in SUBPROCESS_ROWS])
def test_invalid_program_in_a_subprocess(src, cls, where, pattern, tmp_path):
    path = tmp_path / "t.dlg"
    path.write_text(src)
    proc = subprocess.run([sys.executable, "-m", "dlg.cli", "check", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    check_cli_output(proc.returncode, proc.stderr, path, where)
    assert proc.stdout == ""


def test_subprocess_rows_exist():
    assert len(SUBPROCESS_ROWS) == len([r for r in ROWS if r.id in SUBPROCESS_ROWS])
    assert set(SUBPROCESS_QUICK) <= set(SUBPROCESS_ROWS)


# ---- several files --------------------------------------------------------------------------
def write(tmp_path: Path, **files: str) -> None:
    for name, text in files.items():
        (tmp_path / f"{name}.dlg").write_text(text)


def cli_error(path: Path, capsys) -> str:
    code = main(["check", str(path)])
    _, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    return err


def test_recursive_import(tmp_path, capsys):
    write(tmp_path, a='import "b.dlg"\nmodel M { input x: f32[N, 3] output y = x }\n',
          b='import "a.dlg"\nlayer L() { forward(x) { return x } }\n')
    with pytest.raises(DlgImportError, match=r"recursive import: a\.dlg -> b\.dlg -> a\.dlg"
                       ) as info:
        dlg.load(tmp_path / "a.dlg")
    span = info.value.span
    assert (Path(span.file).name, span.line, span.col) == ("b.dlg", 1, 1)
    err = cli_error(tmp_path / "a.dlg", capsys)
    assert err.startswith(f"{tmp_path / 'b.dlg'}:1:1: error: recursive import")


def test_self_import(tmp_path):
    write(tmp_path, a='model M { input x: f32[N, 3] output y = x }\nimport "a.dlg"\n')
    with pytest.raises(DlgImportError, match=r"recursive import: a\.dlg -> a\.dlg") as info:
        dlg.load(tmp_path / "a.dlg")
    assert (info.value.span.line, info.value.span.col) == (2, 1)


def test_missing_import(tmp_path, capsys):
    write(tmp_path, a='\nimport "nope.dlg"\nmodel M { input x: f32[N, 3] output y = x }\n')
    with pytest.raises(DlgImportError, match=r"cannot import 'nope\.dlg': no such file") as info:
        dlg.load(tmp_path / "a.dlg")
    assert (info.value.span.line, info.value.span.col) == (2, 1)
    err = cli_error(tmp_path / "a.dlg", capsys)
    assert err.startswith(f"{tmp_path / 'a.dlg'}:2:1: error: cannot import")


def test_missing_file_on_the_command_line(tmp_path, capsys):
    err = cli_error(tmp_path / "absent.dlg", capsys)
    assert err.startswith("error: no such file")


def test_error_in_an_imported_file_points_into_it(tmp_path, capsys):
    write(tmp_path, lib="def f(x) {\n    return x @ x\n}\n",
          main='import "lib.dlg"\nmodel M { input x: f32[N, 3] output y = f(x) }\n')
    with pytest.raises(DlgShapeError, match=r"f32\[N,3\] @ f32\[N,3\]") as info:
        dlg.load(tmp_path / "main.dlg")
    span = info.value.span
    assert (Path(span.file).name, span.line, span.col) == ("lib.dlg", 2, 12)
    err = cli_error(tmp_path / "main.dlg", capsys)
    assert err.startswith(f"{tmp_path / 'lib.dlg'}:2:12: error: matmul")


def test_syntax_error_in_an_imported_file(tmp_path):
    write(tmp_path, lib="def f(x) { return x + }\n",
          main='import "lib.dlg"\nmodel M { input x: f32[N, 3] output y = f(x) }\n')
    with pytest.raises(DlgSyntaxError, match="missing operand") as info:
        dlg.load(tmp_path / "main.dlg")
    assert Path(info.value.span.file).name == "lib.dlg"


def test_names_from_an_import_are_suggested(tmp_path):
    write(tmp_path, lib="layer Block(n: int) { forward(x) { return x } }\n",
          main='import "lib.dlg"\nmodel M { input x: f32[N, 3] layer b = Blok(3) '
               'output y = b(x) }\n')
    with pytest.raises(DlgNameError, match=r"unknown name 'Blok'; did you mean 'Block'\?"):
        dlg.load(tmp_path / "main.dlg")


def test_there_are_enough_rows():
    assert len(ROWS) >= 45
    assert len({r.id for r in ROWS}) == len(ROWS)
