"""The in-place samplers (bernoulli_, exponential_, random_, geometric_, log_normal_, cauchy_)
and dlg.Generator against torch: the generators differ, so the tests compare what both must
share (moments, ranges, dtypes and shapes kept, errors) and the generator's reproducibility."""

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")

N = 20000

# (call on a tensor t, statistic of the result, tolerance on the statistic)
MOMENTS = [
    ("t.bernoulli_(0.3)", "mean", 0.02),
    ("t.bernoulli_()", "mean", 0.02),
    ("t.exponential_(2.0)", "mean", 0.02),
    ("t.exponential_()", "std", 0.05),
    ("t.geometric_(0.25)", "mean", 0.15),
    ("t.geometric_(0.25)", "min", 0),
    ("t.log_normal_(0.0, 0.5)", "mean", 0.03),
    ("t.log_normal_()", "median", 0.3),
    ("t.cauchy_(1.0, 2.0)", "median", 0.15),
    ("t.random_(5)", "mean", 0.05),
    ("t.random_(2, 5)", "min", 0),
    ("t.random_(2, 5)", "max", 0),
    ("t.random_(-3, to=3)", "mean", 0.1),
    ("t.random_()", "max_over_2_24", 0.01),
]


def _statistic(values, name):
    if name == "max_over_2_24":
        return values.max() / 2 ** 24
    return getattr(np, name)(values)


@pytest.mark.parametrize("code,stat,tol", MOMENTS)
def test_samplers_share_torchs_distributions(code, stat, tol):
    got = {}
    for lib in (dlg, torch):
        lib.manual_seed(0)
        t = lib.zeros(N)
        out = eval(code, {"t": t})
        assert out is t and t.shape == (N,) and t.dtype == lib.float32
        got[lib.__name__] = _statistic(np.asarray(t.numpy(), np.float64), stat)
    assert abs(got["dlg"] - got["torch"]) <= tol, got


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool", "float64"])
def test_random_and_bernoulli_keep_the_dtype_and_its_range(dtype):
    for lib in (dlg, torch):
        t = lib.zeros(2000, dtype=getattr(lib, dtype))
        values = t.random_().numpy()
        assert t.dtype == getattr(lib, dtype)
        if dtype == "bool":
            assert set(values.tolist()) == {False, True}
        elif dtype == "float64":
            assert 0 <= values.min() and values.max() <= 2 ** 53 and values.max() > 2 ** 50
        else:
            assert values.min() >= 0 and values.max() > np.iinfo(dtype).max // 4
        assert set(t.bernoulli_(0.5).numpy().astype(int).tolist()) == {0, 1}
        assert t.dtype == getattr(lib, dtype)


def test_bernoulli_with_a_tensor_of_probabilities():
    p = np.array([0.0, 1.0, 0.0, 1.0], np.float32)
    for lib in (dlg, torch):
        t = lib.empty(4)
        np.testing.assert_array_equal(t.bernoulli_(lib.tensor(p)).numpy(), p)


# (call, fragment of torch's message, which dlg's shares)
ERRORS = [
    ("lib.zeros(3).exponential_(0)", "lambda > 0.0"),
    ("lib.zeros(3).geometric_(1.5)", "p to be in (0, 1)"),
    ("lib.zeros(3).geometric_(0)", "p to be in (0, 1)"),
    ("lib.zeros(3).log_normal_(0, 0)", "std > 0.0"),
    ("lib.zeros(3).bernoulli_(1.5)", "p to be in [0, 1]"),
    ("lib.zeros(3).random_(4, 2)", "'from' to be less than 'to'"),
    ("lib.zeros(3, dtype=lib.int64).exponential_()", "continuous probability distribution"),
    ("lib.zeros(3, dtype=lib.int64).cauchy_()", "continuous probability distribution"),
    ("lib.ones(2, requires_grad=True).exponential_()", "leaf"),
]


@pytest.mark.parametrize("code,fragment", ERRORS)
def test_bad_calls_raise_like_torch(code, fragment):
    with pytest.raises(RuntimeError, match=None):
        eval(code, {"lib": torch})
    with pytest.raises(dlg.DlgError, match=None) as info:
        eval(code, {"lib": dlg})
    assert fragment in str(info.value)
    assert info.value.span.file == "<string>"  # the line that called (here, eval's)


def _draws(g):
    """One draw from every entry point that takes generator=."""
    return [dlg.randn(3, generator=g), dlg.rand(2, 2, generator=g),
            dlg.randint(0, 9, (4,), generator=g), dlg.randperm(5, generator=g),
            dlg.empty(3).exponential_(generator=g), dlg.empty(3).normal_(generator=g),
            dlg.empty(3).uniform_(generator=g), dlg.multinomial(dlg.ones(5), 3, generator=g),
            dlg.normal(0.0, 1.0, (2,), generator=g),
            dlg.bernoulli(dlg.full((4,), 0.5), generator=g)]


def test_generator_reproduces_its_draws():
    g = dlg.Generator()
    assert g.initial_seed() == torch.Generator().initial_seed()
    assert g.manual_seed(7) is g and g.initial_seed() == 7
    draws = _draws(g)
    g.manual_seed(7)
    again = _draws(g)
    for a, b in zip(draws, again):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_generator_leaves_the_global_stream_alone_and_restores_state():
    dlg.manual_seed(1)
    plain = dlg.randn(4).numpy()
    dlg.manual_seed(1)
    g = dlg.Generator().manual_seed(99)
    dlg.randn(8, generator=g)
    np.testing.assert_array_equal(dlg.randn(4).numpy(), plain)
    state = g.get_state()
    first = dlg.rand(3, generator=g).numpy()
    g.set_state(state)
    np.testing.assert_array_equal(dlg.rand(3, generator=g).numpy(), first)
    seed = g.seed()
    assert g.initial_seed() == seed and isinstance(seed, int)


def test_generator_drives_data_utilities():
    splits = [dlg.utils.data.random_split(range(10), [5, 5],
                                          generator=dlg.Generator().manual_seed(3))
              for _ in range(2)]
    assert list(splits[0][0]) == list(splits[1][0])


def test_bad_generator_arguments():
    with pytest.raises(dlg.DlgError, match="dlg.Generator"):
        dlg.randn(2, generator="seed")
    with pytest.raises(dlg.DlgTypeError, match="no argument 'generator'"):
        dlg.zeros(2, generator=dlg.Generator())
    with pytest.raises(dlg.DlgValueError, match="get_state"):
        dlg.Generator().set_state({"nonsense": 1})


def test_global_rng_state_round_trips_as_torch_programs_use_it(tmp_path):
    """get_rng_state / set_rng_state replay the draws that followed (what a checkpoint keeps,
    through torch.save and dlg.save); fork_rng leaves the state alone; initial_seed is the
    last manual_seed, seed() a fresh one that initial_seed then reports."""
    dlg.manual_seed(11)
    assert dlg.initial_seed() == dlg.random.initial_seed() == 11
    dlg.randn(3)
    state = dlg.get_rng_state()
    want = [dlg.randn(4).numpy(), dlg.rand(2).numpy(), dlg.randperm(5).numpy()]
    dlg.save({"rng": state}, tmp_path / "a.pt")
    torch.save({"rng": torch.from_numpy(state.numpy())}, tmp_path / "b.pt")
    for path in ("a.pt", "b.pt"):
        dlg.random.set_rng_state(dlg.load(tmp_path / path)["rng"])
        with dlg.random.fork_rng():
            dlg.randn(100)
        got = [dlg.randn(4).numpy(), dlg.rand(2).numpy(), dlg.randperm(5).numpy()]
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    assert dlg.initial_seed() == 11
    fresh = dlg.seed()
    assert dlg.initial_seed() == fresh and isinstance(fresh, int)
    with pytest.raises(dlg.DlgTypeError, match=r"expected the int64 tensor \[6\]"):
        dlg.set_rng_state(torch.get_rng_state())


def test_manual_seed_returns_the_generator_of_the_global_draws_as_torch():
    """`g = torch.manual_seed(0)` (torch's default generator), then `generator=g`: its draws
    are the global stream's (it returned None)."""
    for lib in (dlg, torch):
        g = lib.manual_seed(3)
        a = lib.rand(2, generator=g)
        b = lib.rand(2)
        lib.manual_seed(3)
        assert isinstance(g, lib.Generator) and g.initial_seed() == 3
        assert lib.cat([a, b]).tolist() == lib.rand(4).tolist()
        assert lib.random.manual_seed(5).initial_seed() == lib.initial_seed() == 5


def test_traced_fills_draw_afresh_at_every_run():
    """bernoulli_, uniform_ and normal_ on a tensor made inside a compiled function (timm's
    drop_path: `x.new_empty(shape).bernoulli_(keep_prob)`) draw at every run: the same
    distributions as eagerly, a new mask per call, one draw per sample where the shape says."""
    def drop_path(x):
        keep = x.new_empty((x.shape[0], 1)).bernoulli_(0.75)
        u = dlg.empty(x.shape).uniform_(-1.0, 3.0)
        n = x.new_zeros(x.shape).normal_(2.0, 0.5)
        return x * keep / 0.75, u, n

    compiled = dlg.compile(drop_path)
    y, u, n = (np.asarray(v) for v in compiled(dlg.ones(N // 4, 4)))
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.75], rtol=1e-6)
    assert (y == y[:, :1]).all()
    assert abs((y > 0).mean() - 0.75) < 0.02
    assert -1.0 <= u.min() and u.max() < 3.0 and abs(u.mean() - 1.0) < 0.05
    assert abs(n.mean() - 2.0) < 0.02 and abs(n.std() - 0.5) < 0.02
    again = np.asarray(compiled(dlg.ones(N // 4, 4))[0])
    assert (again != y).mean() > 0.2
    x = dlg.ones(8, 3, requires_grad=True)  # the mask carries no gradient; x's is the mask
    (out := drop_path(x)[0]).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), out.detach().numpy())
