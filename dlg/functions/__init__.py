"""The user-facing functions, one layer for both front doors (the .dlg builtins; `dlg.xxx`,
`dlg.nn.functional` and `dlg.Tensor` methods): each takes a `Front` first, reads and checks its
arguments once and emits registry ops through the front. It sits above `dlg.ir` and below
`dlg.grammar` and `dlg.frontend`, and imports neither.

`FUNCTIONS` maps every user name (aliases included) to its function; the elementwise ones are
generated from the registry (`elementwise.py`). How each op is written back as a call is in
`spelling.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlg.functions import activations, creation, gather, losses, nn, reduce, shape
from dlg.functions import sort as ordering
from dlg.functions import elementwise, linalg
from dlg.functions.elementwise import ELEMENTWISE, matmul, where
from dlg.functions.masking import index_fill, masked_fill, tril, triu
from dlg.functions import attention, grid_sample, norms, pooling, resample, shuffle
from dlg.functions.padding import pad
from dlg.functions import arrange, diagonals, pointwise, products, statistics
from dlg.functions import class_losses, embed, quantiles, special, stacking
from dlg.functions.ctc import ctc_loss
from dlg.functions.indexing import select
from dlg.functions.scatter_reduce import index_reduce, scatter_reduce

FUNCTIONS: dict[str, Callable[..., Any]] = {
    **ELEMENTWISE,
    "where": where, "matmul": matmul,
    # reductions
    "sum": reduce.sum_, "mean": reduce.mean, "prod": reduce.prod, "max": reduce.max_,
    "min": reduce.min_, "argmax": reduce.argmax, "argmin": reduce.argmin,
    "logsumexp": reduce.logsumexp, "numel": reduce.numel,
    "amax": reduce.max_, "amin": reduce.min_, "var": reduce.var, "std": reduce.std,
    "var_mean": reduce.var_mean, "std_mean": reduce.std_mean, "all": reduce.all_,
    "any": reduce.any_, "count_nonzero": reduce.count_nonzero,
    # arithmetic and closeness beyond the generated elementwise functions
    "rsub": elementwise.rsub, "true_divide": elementwise.div, "divide": elementwise.div,
    "clamp": elementwise.clamp, "clip": elementwise.clamp, "isclose": elementwise.isclose,
    "allclose": elementwise.allclose, "equal": elementwise.equal,
    "logical_xor": elementwise.logical_xor,
    # products and norms
    "mm": linalg.mm, "bmm": linalg.bmm, "mv": linalg.mv, "dot": linalg.dot,
    "outer": linalg.outer, "einsum": linalg.einsum, "norm": linalg.norm,
    "vector_norm": linalg.vector_norm,
    # shapes and movement
    "reshape": shape.reshape, "view": shape.reshape, "flatten": shape.flatten,
    "permute": shape.permute, "transpose": shape.transpose, "T": shape.T,
    "squeeze": shape.squeeze, "unsqueeze": shape.unsqueeze,
    "broadcast_to": shape.broadcast_to, "expand": shape.broadcast_to,
    "concat": shape.concat, "cat": shape.concat, "stack": shape.stack,
    "split": shape.split, "chunk": shape.chunk, "tensor_split": shape.tensor_split, "pad": pad,
    "unbind": shape.unbind, "narrow": shape.narrow, "movedim": shape.movedim,
    "swapaxes": shape.transpose, "swapdims": shape.transpose, "unflatten": shape.unflatten,
    "repeat": shape.repeat, "tile": shape.tile, "masked_fill": masked_fill,
    "take": shape.take, "tril": tril, "triu": triu, "select": select, "index_fill": index_fill,
    # ordering and scans
    "sort": ordering.sort, "argsort": ordering.argsort, "msort": ordering.msort,
    "topk": ordering.topk, "kthvalue": ordering.kthvalue, "cumsum": ordering.cumsum,
    "cumprod": ordering.cumprod, "flip": ordering.flip,
    # gathers and scatters by an index tensor (PyTorch's argument order)
    "gather": gather.gather, "scatter": gather.scatter, "scatter_add": gather.scatter_add,
    "index_select": gather.index_select, "index_add": gather.index_add,
    "take_along_dim": gather.take_along_dim, "scatter_reduce": scatter_reduce,
    "index_reduce": index_reduce,
    # creation
    "full": creation.full, "zeros": creation.zeros, "ones": creation.ones,
    "zeros_like": creation.zeros_like, "ones_like": creation.ones_like,
    "arange": creation.arange, "rand": creation.rand, "randn": creation.randn,
    "full_like": creation.full_like, "empty": creation.zeros, "empty_like": creation.zeros_like,
    "eye": creation.eye, "linspace": creation.linspace, "logspace": creation.logspace,
    "randint": creation.randint, "rand_like": creation.rand_like,
    "randn_like": creation.randn_like, "randint_like": creation.randint_like,
    # neural networks
    "conv1d": nn.conv1d, "conv2d": nn.conv2d, "conv3d": nn.conv3d,
    "conv_transpose1d": nn.conv_transpose1d, "conv_transpose2d": nn.conv_transpose2d,
    "conv_transpose3d": nn.conv_transpose3d, "max_pool1d": pooling.max_pool1d,
    "max_pool2d": pooling.max_pool2d, "max_pool3d": pooling.max_pool3d,
    "max_unpool1d": pooling.max_unpool1d, "max_unpool2d": pooling.max_unpool2d,
    "max_unpool3d": pooling.max_unpool3d,
    "avg_pool1d": pooling.avg_pool1d, "avg_pool2d": pooling.avg_pool2d,
    "avg_pool3d": pooling.avg_pool3d, "adaptive_avg_pool1d": pooling.adaptive_avg_pool1d,
    "lp_pool1d": pooling.lp_pool1d, "lp_pool2d": pooling.lp_pool2d,
    "lp_pool3d": pooling.lp_pool3d,
    "adaptive_avg_pool2d": pooling.adaptive_avg_pool2d,
    "adaptive_avg_pool3d": pooling.adaptive_avg_pool3d,
    "adaptive_max_pool1d": pooling.adaptive_max_pool1d,
    "adaptive_max_pool2d": pooling.adaptive_max_pool2d,
    "adaptive_max_pool3d": pooling.adaptive_max_pool3d, "unfold": pooling.unfold,
    "fold": pooling.fold, "interpolate": resample.interpolate,
    "grid_sample": grid_sample.grid_sample, "affine_grid": grid_sample.affine_grid,
    "pixel_shuffle": shuffle.pixel_shuffle, "pixel_unshuffle": shuffle.pixel_unshuffle,
    "linear": nn.linear, "bilinear": nn.bilinear, "embedding": nn.embedding,
    "one_hot": nn.one_hot, "detach": nn.detach,
    "dropout": nn.dropout, "dropout1d": nn.dropout1d, "dropout2d": nn.dropout2d,
    "dropout3d": nn.dropout3d, "alpha_dropout": nn.alpha_dropout,
    "feature_alpha_dropout": nn.feature_alpha_dropout,
    "batch_norm": norms.batch_norm, "layer_norm": norms.layer_norm, "rms_norm": norms.rms_norm,
    "group_norm": norms.group_norm, "instance_norm": norms.instance_norm,
    "normalize": norms.normalize, "renorm": norms.renorm,
    "cosine_similarity": norms.cosine_similarity,
    "pairwise_distance": norms.pairwise_distance,
    "softmax": nn.softmax, "log_softmax": nn.log_softmax,
    "scaled_dot_product_attention": attention.scaled_dot_product_attention,
    "prelu": activations.prelu, "glu": activations.glu, "threshold": activations.threshold,
    "softmin": activations.softmin, "local_response_norm": norms.local_response_norm,
    "channel_shuffle": shuffle.channel_shuffle, "rrelu": activations.rrelu,
    # losses
    "cross_entropy": losses.cross_entropy, "nll_loss": losses.nll_loss,
    "mse_loss": losses.mse_loss, "l1_loss": losses.l1_loss,
    "binary_cross_entropy": losses.binary_cross_entropy,
    "binary_cross_entropy_with_logits": losses.binary_cross_entropy_with_logits,
    "kl_div": losses.kl_div, "smooth_l1_loss": losses.smooth_l1_loss,
    "huber_loss": losses.huber_loss, "soft_margin_loss": losses.soft_margin_loss,
    "poisson_nll_loss": losses.poisson_nll_loss,
    "hinge_embedding_loss": losses.hinge_embedding_loss,
    "margin_ranking_loss": losses.margin_ranking_loss,
    "cosine_embedding_loss": losses.cosine_embedding_loss,
    "triplet_margin_loss": losses.triplet_margin_loss,
    "gaussian_nll_loss": losses.gaussian_nll_loss,
    "multi_margin_loss": class_losses.multi_margin_loss,
    "multilabel_margin_loss": class_losses.multilabel_margin_loss,
    "multilabel_soft_margin_loss": class_losses.multilabel_soft_margin_loss,
    "ctc_loss": ctc_loss,
    # more of torch's math: composites of the above
    "roll": arrange.roll, "rot90": arrange.rot90, "repeat_interleave": arrange.repeat_interleave,
    "diff": arrange.diff, "trapezoid": arrange.trapezoid, "trapz": arrange.trapezoid,
    "cumulative_trapezoid": arrange.cumulative_trapezoid, "meshgrid": arrange.meshgrid,
    "diag": diagonals.diag,
    "diagonal": diagonals.diagonal, "diag_embed": diagonals.diag_embed, "trace": diagonals.trace,
    "diagflat": diagonals.diagflat, "nanmedian": statistics.nanmedian,
    "tensordot": products.tensordot, "addmm": products.addmm, "addmv": products.addmv,
    "baddbmm": products.baddbmm, "addbmm": products.addbmm, "kron": products.kron,
    "cross": products.cross, "cdist": products.cdist, "pdist": products.pdist,
    "lerp": pointwise.lerp,
    "hypot": pointwise.hypot, "atan2": pointwise.atan2, "arctan2": pointwise.atan2,
    "arctan": ELEMENTWISE["atan"], "logaddexp": pointwise.logaddexp,
    "logaddexp2": pointwise.logaddexp2, "xlogy": pointwise.xlogy,
    "heaviside": pointwise.heaviside, "signbit": pointwise.signbit, "sgn": ELEMENTWISE["sign"],
    "clamp_min": pointwise.clamp_min, "clamp_max": pointwise.clamp_max,
    "float_power": pointwise.float_power, "nansum": statistics.nansum,
    "nanmean": statistics.nanmean, "median": statistics.median, "cummax": statistics.cummax,
    "cummin": statistics.cummin, "aminmax": statistics.aminmax,
    "logcumsumexp": statistics.logcumsumexp, "histc": statistics.histc,
    "histogram": statistics.histogram,
    "block_diag": diagonals.block_diag, "bucketize": statistics.bucketize,
    "searchsorted": statistics.searchsorted, "isin": statistics.isin,
    "nan_to_num": pointwise.nan_to_num,
    # torch's unary float math beyond the primitives (special.py)
    "tan": special.tan, "asin": special.asin, "acos": special.acos, "atanh": special.atanh,
    "asinh": special.asinh, "acosh": special.acosh, "arcsin": special.asin,
    "arccos": special.acos, "arctanh": special.atanh, "arcsinh": special.asinh,
    "arccosh": special.acosh, "sinc": special.sinc, "deg2rad": special.deg2rad,
    "rad2deg": special.rad2deg, "expm1": special.expm1, "erfc": special.erfc,
    "erfinv": special.erfinv, "logit": special.logit, "lgamma": special.lgamma,
    "digamma": special.digamma, "polygamma": special.polygamma, "mvlgamma": special.mvlgamma,
    "i0": special.i0, "frexp": special.frexp, "nextafter": special.nextafter,
    "copysign": pointwise.copysign, "fmax": pointwise.fmax, "fmin": pointwise.fmin,
    "ldexp": pointwise.ldexp, "isposinf": pointwise.isposinf, "isneginf": pointwise.isneginf,
    "isreal": pointwise.isreal, "positive": pointwise.positive, "addcmul": pointwise.addcmul,
    "addcdiv": pointwise.addcdiv, "gcd": pointwise.gcd, "lcm": pointwise.lcm,
    # torch's other spellings
    "absolute": ELEMENTWISE["abs"], "negative": ELEMENTWISE["neg"], "fix": ELEMENTWISE["trunc"],
    "multiply": ELEMENTWISE["mul"], "subtract": elementwise.sub, "greater": ELEMENTWISE["gt"],
    "greater_equal": ELEMENTWISE["ge"], "less": ELEMENTWISE["lt"],
    "less_equal": ELEMENTWISE["le"], "not_equal": ELEMENTWISE["ne"],
    "concatenate": shape.concat, "moveaxis": shape.movedim,
    # NumPy's stacking and splitting (stacking.py)
    "atleast_1d": stacking.atleast_1d, "atleast_2d": stacking.atleast_2d,
    "atleast_3d": stacking.atleast_3d, "hstack": stacking.hstack, "vstack": stacking.vstack,
    "row_stack": stacking.vstack, "dstack": stacking.dstack,
    "column_stack": stacking.column_stack, "hsplit": stacking.hsplit,
    "vsplit": stacking.vsplit, "dsplit": stacking.dsplit, "ravel": stacking.ravel,
    "fliplr": stacking.fliplr, "flipud": stacking.flipud,
    "broadcast_tensors": stacking.broadcast_tensors,
    "split_with_sizes": stacking.split_with_sizes,
    "addr": products.addr, "ger": linalg.outer, "inner": products.inner, "vdot": products.vdot,
    "dist": products.dist,
    # writing into a part of a tensor, and index constructors (embed.py)
    "select_scatter": embed.select_scatter, "slice_scatter": embed.slice_scatter,
    "diagonal_scatter": embed.diagonal_scatter, "index_copy": embed.index_copy,
    "masked_scatter": embed.masked_scatter, "tril_indices": embed.tril_indices,
    "triu_indices": embed.triu_indices, "combinations": embed.combinations,
    "cartesian_prod": embed.cartesian_prod, "unravel_index": embed.unravel_index,
    "quantile": quantiles.quantile, "nanquantile": quantiles.nanquantile, "mode": quantiles.mode,
    "cov": quantiles.cov, "corrcoef": quantiles.corrcoef,
}
