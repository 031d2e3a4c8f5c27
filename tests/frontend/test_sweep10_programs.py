"""Porting sweep #10: Andrej Karpathy's "Neural Networks: Zero to Hero" notebooks and the d2l.ai
"from scratch" chapters, as their authors wrote them, only `torch` swapped for the side's
library, a hard-coded list of names in place of names.txt, tiny synthetic data in place of the
downloads and a few steps in place of thousands: micrograd's checks against torch, makemore part 1
(bigram counts in an int32 table, sampling from a seeded Generator, the neural bigram trained by
hand), part 2 (the MLP with C[X] lookups, a.storage(), minibatches and the learning-rate search),
part 3 (BatchNorm by hand, the Linear/BatchNorm1d/Tanh classes, activation histograms and
update-to-data ratios), part 4 (the manual backward pass compared with autograd by `cmp`), part 5
(the WaveNet of FlattenConsecutive layers) and the lectures' asides; d2l's preliminaries, linear
and softmax regression, the MLP, dropout, generalization (polynomials, weight decay, k-fold),
the builders' guide (parameters, initialisation, lazy layers, file I/O), convolutions, batch
normalization, the RNN, GRU and LSTM from scratch and concise, seq2seq with BLEU, attention
scoring, Nadaraya-Watson pooling, Bahdanau attention, multi-head attention, positional encoding
and the Transformer, each from scratch.

Each program is written once over a `torch` argument and run on torch and on dlg from the same
weights, data and random draws (sweep #5's harness: `side.draw` replays torch's draws, seeded
Generators included). The d2l programs built of nn.Modules also run through dlg.compile
(`side.compile`) under -m sweep_full: the batch-norm LeNets (the from-scratch one branches on
torch.is_grad_enabled() and rebinds its moving averages), the concise RNNs, attention scoring,
multi-head attention, Bahdanau attention and the Transformer (their attention weights, kept as
attributes, read after compiled calls).

Tolerances: the harness's rtol 1e-4 / atol 1e-5 unless a test says why it needs another."""

from __future__ import annotations

import collections
import math
import random

import numpy as np
import pytest

from tests.frontend.test_sweep5_programs import COMPILED_FULL, Side5, run_both

torch = pytest.importorskip("torch")

# names.txt's first lines, and a few more (makemore reads the file's 32033)
WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia", "harper",
         "evelyn", "abigail", "emily", "elizabeth", "mila", "ella", "avery", "sofia", "camila",
         "aria", "scarlett", "victoria", "madison", "luna", "grace", "chloe", "penelope",
         "layla", "riley", "zoey", "nora", "quinn", "xavier", "jack", "kyle", "wyatt"]


def makemore_vocab(words):
    """makemore's stoi and itos: '.' is 0, the letters 1 to 26."""
    chars = sorted(list(set(''.join(words))))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi['.'] = 0
    itos = {i: s for s, i in stoi.items()}
    return stoi, itos


def makemore_data(torch, words, block_size, splits=(0.8,)):
    """makemore's vocabulary and its build_dataset over `words` shuffled by random.seed(42), cut
    at each fraction of `splits` (part 2's train/dev/test: (0.8, 0.9))."""
    stoi, itos = makemore_vocab(words)

    def build_dataset(words):
        X, Y = [], []
        for w in words:
            context = [0] * block_size
            for ch in w + '.':
                ix = stoi[ch]
                X.append(context)
                Y.append(ix)
                context = context[1:] + [ix]  # crop and append
        X = torch.tensor(X)
        Y = torch.tensor(Y)
        return X, Y

    random.seed(42)
    words = list(words)
    random.shuffle(words)
    cuts = [0] + [int(f * len(words)) for f in splits] + [len(words)]
    return (stoi, itos, *(build_dataset(words[a:b]) for a, b in zip(cuts, cuts[1:])))


# -- 1. micrograd: test/test_engine.py's test_sanity_check and test_more_ops (the torch halves),
#       and lecture 1's neuron checked in torch ---------------------------------------------------

def micrograd_checks(side: Side5) -> dict:
    torch = side.lib
    out = {}
    # test_sanity_check
    x = torch.Tensor([-4.0]).double()
    x.requires_grad = True
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    xpt, ypt = x, y
    out.update(sanity_y=ypt.data.item(), sanity_xgrad=xpt.grad.item())
    # test_more_ops
    a = torch.Tensor([-4.0]).double()
    b = torch.Tensor([2.0]).double()
    a.requires_grad = True
    b.requires_grad = True
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + (b + a).relu()
    d = d + 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    apt, bpt, gpt = a, b, g
    tol = 1e-6
    assert abs(gpt.data.item() - 24.70408163265306) < tol
    out.update(g=gpt.data.item(), agrad=apt.grad.item(), bgrad=bpt.grad.item())
    # lecture 1: the same neuron in PyTorch
    x1 = torch.Tensor([2.0]).double()
    x1.requires_grad = True
    x2 = torch.Tensor([0.0]).double()
    x2.requires_grad = True
    w1 = torch.Tensor([-3.0]).double()
    w1.requires_grad = True
    w2 = torch.Tensor([1.0]).double()
    w2.requires_grad = True
    b = torch.Tensor([6.8813735870195432]).double()
    b.requires_grad = True
    n = x1 * w1 + x2 * w2 + b
    o = torch.tanh(n)
    out["o"] = o.data.item()
    o.backward()
    out["grads"] = [x2.grad.item(), w2.grad.item(), x1.grad.item(), w1.grad.item()]
    assert isinstance(o.data.item(), float) and o.dtype == torch.float64
    return out


def test_micrograd_checks():
    got, want = run_both(micrograd_checks, rtol=1e-12, atol=1e-12)
    assert got["grads"] == pytest.approx([0.5, 0.0, -1.5, 1.0], abs=1e-6)


# -- 2. makemore part 1: bigram counts in an int32 table, rows normalised with keepdims=True,
#       sampling by multinomial from a seeded Generator, the average negative log likelihood ----

def makemore_bigram_counts(side: Side5) -> dict:
    torch = side.lib
    words = WORDS
    out = {"n_words": len(words), "min_len": min(len(w) for w in words),
           "max_len": max(len(w) for w in words)}
    N = torch.zeros((27, 27), dtype=torch.int32)
    stoi, itos = makemore_vocab(words)
    for w in words:
        chs = ['.'] + list(w) + ['.']
        for ch1, ch2 in zip(chs, chs[1:]):
            ix1 = stoi[ch1]
            ix2 = stoi[ch2]
            N[ix1, ix2] += 1
    assert N.dtype == torch.int32
    out["N"] = N
    out["N_3_3"] = N[3, 3].item()
    p = N[0].float()
    p = p / p.sum()
    out["p"] = p
    g = torch.Generator().manual_seed(2147483647)
    p3 = side.draw(torch.rand, 3, generator=g)
    p3 = p3 / p3.sum()
    out["p3"] = p3
    out["samples"] = side.draw(torch.multinomial, p3, num_samples=100, replacement=True,
                               generator=g)
    ix = side.draw(torch.multinomial, p, num_samples=1, replacement=True, generator=g).item()
    out["first"] = stoi[itos[ix]]
    P = (N + 1).float()
    P /= P.sum(1, keepdims=True)
    out["P"] = P
    out["P_row_sums"] = P[0].sum()
    g = torch.Generator().manual_seed(2147483647)
    names = []
    for _i in range(5):
        out_ = []
        ix = 0
        while True:
            p = P[ix]
            ix = side.draw(torch.multinomial, p, num_samples=1, replacement=True,
                           generator=g).item()
            out_.append(itos[ix])
            if ix == 0:
                break
        names.append(''.join(out_))
    out["names"] = [len(n) for n in names]
    # GOAL: maximize likelihood of the data w.r.t. model parameters (statistical modeling)
    log_likelihood = 0.0
    n = 0
    for w in words:
        chs = ['.'] + list(w) + ['.']
        for ch1, ch2 in zip(chs, chs[1:]):
            ix1 = stoi[ch1]
            ix2 = stoi[ch2]
            prob = P[ix1, ix2]
            logprob = torch.log(prob)
            log_likelihood += logprob
            n += 1
    nll = -log_likelihood
    out.update(log_likelihood=log_likelihood, nll=nll, avg_nll=nll / n, n=n)
    return out


def test_makemore_bigram_counts():
    run_both(makemore_bigram_counts)


# -- 3. makemore part 1: the neural bigram, F.one_hot(xs).float() @ W, softmax by hand, a
#       regularised loss and gradient descent by W.grad = None / backward / W.data += -50 * grad -

def makemore_neural_bigram(side: Side5) -> dict:
    torch = side.lib
    F = torch.nn.functional
    words = WORDS
    out = {}
    stoi, itos = makemore_vocab(words)
    # create the training set of bigrams (x,y)
    xs, ys = [], []
    for w in words[:1]:
        chs = ['.'] + list(w) + ['.']
        for ch1, ch2 in zip(chs, chs[1:]):
            xs.append(stoi[ch1])
            ys.append(stoi[ch2])
    xs = torch.tensor(xs)
    ys = torch.tensor(ys)
    # randomly initialize 27 neurons' weights. each neuron receives 27 inputs
    g = torch.Generator().manual_seed(2147483647)
    W = side.draw(torch.randn, (27, 27), generator=g)
    xenc = F.one_hot(xs, num_classes=27).float()  # input to the network: one-hot encoding
    assert xenc.dtype == torch.float32 and tuple(xenc.shape) == (5, 27)
    logits = xenc @ W  # predict log-counts
    counts = logits.exp()  # counts, equivalent to N
    probs = counts / counts.sum(1, keepdims=True)  # probabilities for next character
    nlls = torch.zeros(5)
    for i in range(5):
        x = xs[i].item()  # noqa: F841  (the lecture prints it)
        y = ys[i].item()
        p = probs[i, y]
        logp = torch.log(p)
        nlls[i] = -logp
    out.update(probs=probs, nlls=nlls, avg=nlls.mean().item())
    # --------- !!! OPTIMIZATION !!! yay, but this time actually --------------
    xs, ys = [], []
    for w in words:
        chs = ['.'] + list(w) + ['.']
        for ch1, ch2 in zip(chs, chs[1:]):
            ix1 = stoi[ch1]
            ix2 = stoi[ch2]
            xs.append(ix1)
            ys.append(ix2)
    xs = torch.tensor(xs)
    ys = torch.tensor(ys)
    num = xs.nelement()
    g = torch.Generator().manual_seed(2147483647)
    W = side.draw(torch.randn, (27, 27), generator=g)
    W.requires_grad = True
    losses = []
    for _k in range(10):
        # forward pass
        xenc = F.one_hot(xs, num_classes=27).float()
        logits = xenc @ W
        counts = logits.exp()
        probs = counts / counts.sum(1, keepdims=True)
        loss = -probs[torch.arange(num), ys].log().mean() + 0.01 * (W**2).mean()
        losses.append(loss.item())
        # backward pass
        W.grad = None  # set to zero the gradient
        loss.backward()
        # update
        W.data += -50 * W.grad
    out.update(losses=losses, W=W)
    # finally, sample from the 'neural net' model
    g = torch.Generator().manual_seed(2147483647)
    lengths = []
    for _i in range(5):
        out_ = []
        ix = 0
        while True:
            xenc = F.one_hot(torch.tensor([ix]), num_classes=27).float()
            logits = xenc @ W  # predict log-counts
            counts = logits.exp()  # counts, equivalent to N
            p = counts / counts.sum(1, keepdims=True)  # probabilities for next character
            ix = side.draw(torch.multinomial, p, num_samples=1, replacement=True,
                           generator=g).item()
            out_.append(itos[ix])
            if ix == 0 or len(out_) > 20:
                break
        lengths.append(len(''.join(out_)))
    out["lengths"] = lengths
    return out


def test_makemore_neural_bigram():
    run_both(makemore_neural_bigram)


# -- 4. makemore part 2: the MLP (Bengio et al. 2003): build_dataset with a block_size context,
#       C[X] lookups, emb.view(-1, 30), torch.randint minibatches, F.cross_entropy, the
#       learning-rate search over 10**torch.linspace(-3, 0, n), split losses, sampling -----------

def makemore_mlp(side: Side5) -> dict:
    torch = side.lib
    F = torch.nn.functional
    words = WORDS
    out = {}
    # build the dataset
    block_size = 3  # context length: how many characters do we take to predict the next one?
    stoi, itos, (Xtr, Ytr), (Xdev, Ydev), (Xte, Yte) = makemore_data(torch, words, block_size,
                                                                     (0.8, 0.9))
    assert Xtr.dtype == torch.int64 and tuple(Xtr.shape)[1] == 3
    out["shapes"] = [tuple(Xtr.shape), tuple(Xdev.shape), tuple(Xte.shape)]
    # the lecture's first look at the embedding table
    C = side.draw(torch.randn, (27, 2))
    out["C5"] = C[5]
    out["onehot5"] = F.one_hot(torch.tensor(5), num_classes=27).float() @ C
    out["C_list"] = C[torch.tensor([5, 6, 7, 7, 7, 7])]
    emb = C[Xtr]
    assert tuple(emb.shape) == (Xtr.shape[0], 3, 2)
    cat1 = torch.cat([emb[:, 0, :], emb[:, 1, :], emb[:, 2, :]], 1)
    cat2 = torch.cat(torch.unbind(emb, 1), 1)
    a = torch.arange(18)
    out.update(cat=cat1, cat_equal=bool((cat1 == cat2).all()), a_view=a.view(3, 3, 2),
               emb_view=bool((emb.view(-1, 6) == cat1).all()), storage=list(a.storage()))
    # the full network
    g = torch.Generator().manual_seed(2147483647)  # for reproducibility
    C = side.draw(torch.randn, (27, 10), generator=g)
    W1 = side.draw(torch.randn, (30, 200), generator=g)
    b1 = side.draw(torch.randn, 200, generator=g)
    W2 = side.draw(torch.randn, (200, 27), generator=g)
    b2 = side.draw(torch.randn, 27, generator=g)
    parameters = [C, W1, b1, W2, b2]
    out["n_params"] = sum(p.nelement() for p in parameters)  # number of parameters in total
    for p in parameters:
        p.requires_grad = True
    lre = torch.linspace(-3, 0, 1000)
    lrs = 10**lre
    out["lrs"] = lrs
    lri, lossi, stepi = [], [], []
    for i in range(15):
        # minibatch construct
        ix = side.draw(torch.randint, 0, Xtr.shape[0], (32,))
        # forward pass
        emb = C[Xtr[ix]]  # (32, 3, 10)
        h = torch.tanh(emb.view(-1, 30) @ W1 + b1)  # (32, 200)
        logits = h @ W2 + b2  # (32, 27)
        loss = F.cross_entropy(logits, Ytr[ix])
        # backward pass
        for p in parameters:
            p.grad = None
        loss.backward()
        # update
        lr = lrs[i * 40]
        for p in parameters:
            p.data += -lr * p.grad
        # track stats
        lri.append(lre[i * 40])
        stepi.append(i)
        lossi.append(loss.log10().item())
    out.update(lossi=lossi, lri=torch.tensor(lri), params=parameters)
    emb = C[Xtr]  # (32, 3, 2)
    h = torch.tanh(emb.view(-1, 30) @ W1 + b1)  # (32, 100)
    logits = h @ W2 + b2  # (32, 27)
    out["train_loss"] = F.cross_entropy(logits, Ytr)
    emb = C[Xdev]
    h = torch.tanh(emb.view(-1, 30) @ W1 + b1)
    logits = h @ W2 + b2
    out["dev_loss"] = F.cross_entropy(logits, Ydev)
    # sample from the model
    g = torch.Generator().manual_seed(2147483647 + 10)
    names = []
    for _ in range(4):
        out_ = []
        context = [0] * block_size  # initialize with all ...
        while True:
            emb = C[torch.tensor([context])]  # (1,block_size,d)
            h = torch.tanh(emb.view(1, -1) @ W1 + b1)
            logits = h @ W2 + b2
            probs = F.softmax(logits, dim=1)
            ix = side.draw(torch.multinomial, probs, num_samples=1, generator=g).item()
            context = context[1:] + [ix]
            out_.append(ix)
            if ix == 0 or len(out_) > 12:
                break
        names.append(''.join(itos[i] for i in out_))
    out["name_lengths"] = [len(n) for n in names]
    return out


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")
def test_makemore_mlp():
    run_both(makemore_mlp)


def makemore_layers(side: Side5, g=None):
    """makemore's Linear, BatchNorm1d and Tanh (the same API as nn.Module), as part 5 left them
    (BatchNorm1d also takes (B, T, C)); Linear draws from part 3's Generator `g`, part 5 seeds
    torch globally instead."""
    torch = side.lib

    class Linear:

        def __init__(self, fan_in, fan_out, bias=True):
            self.weight = side.draw(torch.randn, (fan_in, fan_out), generator=g) \
                / fan_in**0.5  # kaiming init
            self.bias = torch.zeros(fan_out) if bias else None

        def __call__(self, x):
            self.out = x @ self.weight
            if self.bias is not None:
                self.out += self.bias
            return self.out

        def parameters(self):
            return [self.weight] + ([] if self.bias is None else [self.bias])

    class BatchNorm1d:

        def __init__(self, dim, eps=1e-5, momentum=0.1):
            self.eps = eps
            self.momentum = momentum
            self.training = True
            # parameters (trained with backprop)
            self.gamma = torch.ones(dim)
            self.beta = torch.zeros(dim)
            # buffers (trained with a running 'momentum update')
            self.running_mean = torch.zeros(dim)
            self.running_var = torch.ones(dim)

        def __call__(self, x):
            # calculate the forward pass
            if self.training:
                if x.ndim == 2:
                    dim = 0
                elif x.ndim == 3:
                    dim = (0, 1)
                xmean = x.mean(dim, keepdim=True)  # batch mean
                xvar = x.var(dim, keepdim=True)  # batch variance
            else:
                xmean = self.running_mean
                xvar = self.running_var
            xhat = (x - xmean) / torch.sqrt(xvar + self.eps)  # normalize to unit variance
            self.out = self.gamma * xhat + self.beta
            # update the buffers
            if self.training:
                with torch.no_grad():
                    self.running_mean = (1 - self.momentum) * self.running_mean \
                        + self.momentum * xmean
                    self.running_var = (1 - self.momentum) * self.running_var \
                        + self.momentum * xvar
            return self.out

        def parameters(self):
            return [self.gamma, self.beta]

    class Tanh:
        def __call__(self, x):
            self.out = torch.tanh(x)
            return self.out

        def parameters(self):
            return []

    return Linear, BatchNorm1d, Tanh


# -- 5. makemore part 3: activations, gradients, BatchNorm: the MLP with kaiming-scaled init,
#       BatchNorm by hand with running statistics updated under no_grad, split_loss under a
#       @torch.no_grad() decorator; then the Linear/BatchNorm1d/Tanh classes (plain Python, with
#       parameters() lists), retain_grad on each layer's output, activation and gradient
#       statistics with torch.histogram, and the update-to-data ratios ----------------------------

def makemore_batchnorm(side: Side5) -> dict:
    torch = side.lib
    F = torch.nn.functional
    words = WORDS
    out = {}
    block_size = 3
    stoi, _, (Xtr, Ytr), (Xdev, Ydev) = makemore_data(torch, words, block_size)
    vocab_size = len(stoi)

    # MLP revisited
    n_embd = 10  # the dimensionality of the character embedding vectors
    n_hidden = 200  # the number of neurons in the hidden layer of the MLP
    g = torch.Generator().manual_seed(2147483647)  # for reproducibility
    C = side.draw(torch.randn, (vocab_size, n_embd), generator=g)
    W1 = side.draw(torch.randn, (n_embd * block_size, n_hidden), generator=g) \
        * (5 / 3) / ((n_embd * block_size)**0.5)
    # b1 = torch.randn(n_hidden, generator=g) * 0.01
    W2 = side.draw(torch.randn, (n_hidden, vocab_size), generator=g) * 0.01
    b2 = side.draw(torch.randn, vocab_size, generator=g) * 0
    # BatchNorm parameters
    bngain = torch.ones((1, n_hidden))
    bnbias = torch.zeros((1, n_hidden))
    bnmean_running = torch.zeros((1, n_hidden))
    bnstd_running = torch.ones((1, n_hidden))
    parameters = [C, W1, W2, b2, bngain, bnbias]
    out["n_params"] = sum(p.nelement() for p in parameters)
    for p in parameters:
        p.requires_grad = True
    max_steps = 8
    batch_size = 32
    lossi = []
    for i in range(max_steps):
        # minibatch construct
        ix = side.draw(torch.randint, 0, Xtr.shape[0], (batch_size,), generator=g)
        Xb, Yb = Xtr[ix], Ytr[ix]  # batch X,Y
        # forward pass
        emb = C[Xb]  # embed the characters into vectors
        embcat = emb.view(emb.shape[0], -1)  # concatenate the vectors
        # Linear layer
        hpreact = embcat @ W1  # + b1 # hidden layer pre-activation
        # BatchNorm layer
        bnmeani = hpreact.mean(0, keepdim=True)
        bnstdi = hpreact.std(0, keepdim=True)
        hpreact = bngain * (hpreact - bnmeani) / bnstdi + bnbias
        with torch.no_grad():
            bnmean_running = 0.999 * bnmean_running + 0.001 * bnmeani
            bnstd_running = 0.999 * bnstd_running + 0.001 * bnstdi
        # Non-linearity
        h = torch.tanh(hpreact)  # hidden layer
        logits = h @ W2 + b2  # output layer
        loss = F.cross_entropy(logits, Yb)  # loss function
        # backward pass
        for p in parameters:
            p.grad = None
        loss.backward()
        # update
        lr = 0.1 if i < 100000 else 0.01  # step learning rate decay
        for p in parameters:
            p.data += -lr * p.grad
        lossi.append(loss.log10().item())
    assert not bnmean_running.requires_grad
    out.update(lossi=lossi, bnmean_running=bnmean_running, bnstd_running=bnstd_running,
               saturated=(h.abs() > 0.99).float().mean(), h_list=h.view(-1).tolist()[:50])

    @torch.no_grad()  # this decorator disables gradient tracking
    def split_loss(split):
        x, y = {
            'train': (Xtr, Ytr),
            'val': (Xdev, Ydev),
        }[split]
        emb = C[x]  # (N, block_size, n_embd)
        embcat = emb.view(emb.shape[0], -1)  # concat into (N, block_size * n_embd)
        hpreact = embcat @ W1  # + b1
        hpreact = bngain * (hpreact - bnmean_running) / bnstd_running + bnbias
        h = torch.tanh(hpreact)  # (N, n_hidden)
        logits = h @ W2 + b2  # (N, vocab_size)
        loss = F.cross_entropy(logits, y)
        assert not loss.requires_grad
        return loss.item()

    out["split_losses"] = [split_loss('train'), split_loss('val')]

    # Let's train a deeper network
    n_hidden = 50  # the number of neurons in the hidden layer of the MLP
    g = torch.Generator().manual_seed(2147483647)  # for reproducibility
    Linear, BatchNorm1d, Tanh = makemore_layers(side, g)
    C = side.draw(torch.randn, (vocab_size, n_embd), generator=g)
    layers = [
        Linear(n_embd * block_size, n_hidden, bias=False), BatchNorm1d(n_hidden), Tanh(),
        Linear(n_hidden, n_hidden, bias=False), BatchNorm1d(n_hidden), Tanh(),
        Linear(n_hidden, n_hidden, bias=False), BatchNorm1d(n_hidden), Tanh(),
        Linear(n_hidden, vocab_size, bias=False), BatchNorm1d(vocab_size),
    ]
    with torch.no_grad():
        # last layer: make less confident
        layers[-1].gamma *= 0.1
        # layers[-1].weight *= 0.1
        # all other layers: apply gain
        for layer in layers[:-1]:
            if isinstance(layer, Linear):
                layer.weight *= 1.0  # 5/3
    parameters = [C] + [p for layer in layers for p in layer.parameters()]
    out["deep_n_params"] = sum(p.nelement() for p in parameters)
    for p in parameters:
        p.requires_grad = True
    lossi = []
    ud = []
    for i in range(5):
        # minibatch construct
        ix = side.draw(torch.randint, 0, Xtr.shape[0], (batch_size,), generator=g)
        Xb, Yb = Xtr[ix], Ytr[ix]  # batch X,Y
        # forward pass
        emb = C[Xb]  # embed the characters into vectors
        x = emb.view(emb.shape[0], -1)  # concatenate the vectors
        for layer in layers:
            x = layer(x)
        loss = F.cross_entropy(x, Yb)  # loss function
        # backward pass
        for layer in layers:
            layer.out.retain_grad()  # AFTER_DEBUG: would take out retain_graph
        for p in parameters:
            p.grad = None
        loss.backward()
        # update
        lr = 1.0 if i < 150000 else 0.01  # step learning rate decay
        for p in parameters:
            p.data += -lr * p.grad
        # track stats
        lossi.append(loss.log10().item())
        with torch.no_grad():
            ud.append([((lr * p.grad).std() / p.data.std()).log10().item() for p in parameters])
    out.update(deep_lossi=lossi, ud=ud)
    # visualize histograms: forward pass activations, then the gradients
    stats = []
    for i, layer in enumerate(layers[:-1]):  # note: exclude the output layer
        if isinstance(layer, Tanh):
            t = layer.out
            stats.append([t.mean().item(), t.std().item(),
                          ((t.abs() > 0.97).float().mean() * 100).item()])
            hy, hx = torch.histogram(t, density=True)
            out[f"hist{i}"] = [hy, hx]
            t = layer.out.grad
            stats.append([t.mean().item(), t.std().item()])
            hy, hx = torch.histogram(t, density=True)
            out[f"grad_hist{i}"] = [hy, hx]
    out["stats"] = stats
    # the weights' gradient statistics
    wstats = []
    for _i, p in enumerate(parameters):
        t = p.grad
        if p.ndim == 2:
            wstats.append([t.mean().item(), t.std().item(), (t.std() / p.std()).item()])
    out["wstats"] = wstats
    # evaluation: put layers into eval mode
    for layer in layers:
        layer.training = False

    @torch.no_grad()
    def split_loss2(x, y):
        emb = C[x]
        x = emb.view(emb.shape[0], -1)
        for layer in layers:
            x = layer(x)
        return F.cross_entropy(x, y).item()

    out["eval_losses"] = [split_loss2(Xtr, Ytr), split_loss2(Xdev, Ydev)]
    return out


def test_makemore_batchnorm():
    run_both(makemore_batchnorm)


# -- 6. makemore part 4, "becoming a backprop ninja": the MLP's forward pass broken into small
#       steps, every intermediate's retain_grad, the manual backward pass compared with autograd
#       by `cmp` (torch.all(dt == t.grad), torch.allclose, the max difference), dC by index
#       accumulation in a loop, the fused cross-entropy and batchnorm backward, then training with
#       the manual gradients under torch.no_grad() -------------------------------------------------

def backprop_ninja(side: Side5) -> dict:
    torch = side.lib
    F = torch.nn.functional
    out = {}
    block_size = 3
    stoi, itos, (Xtr, Ytr), (Xdev, Ydev) = makemore_data(torch, WORDS, block_size)
    vocab_size = len(itos)
    cmps = {}

    # utility function we will use later when comparing manual gradients to PyTorch gradients
    def cmp(s, dt, t):
        ex = torch.all(dt == t.grad).item()
        app = torch.allclose(dt, t.grad)
        maxdiff = (dt - t.grad).abs().max().item()
        cmps[s] = (app, maxdiff)
        assert app, f'{s:15s} | exact: {str(ex):5s} | approximate: {str(app):5s} | ' \
                    f'maxdiff: {maxdiff}'
        out["d" + s] = dt

    n_embd = 10  # the dimensionality of the character embedding vectors
    n_hidden = 64  # the number of neurons in the hidden layer of the MLP
    g = torch.Generator().manual_seed(2147483647)  # for reproducibility
    C = side.draw(torch.randn, (vocab_size, n_embd), generator=g)
    # Layer 1
    W1 = side.draw(torch.randn, (n_embd * block_size, n_hidden), generator=g) \
        * (5 / 3) / ((n_embd * block_size)**0.5)
    b1 = side.draw(torch.randn, n_hidden, generator=g) * 0.1  # using b1 just for fun
    # Layer 2
    W2 = side.draw(torch.randn, (n_hidden, vocab_size), generator=g) * 0.1
    b2 = side.draw(torch.randn, vocab_size, generator=g) * 0.1
    # BatchNorm parameters
    bngain = side.draw(torch.randn, (1, n_hidden)) * 0.1 + 1.0
    bnbias = side.draw(torch.randn, (1, n_hidden)) * 0.1
    # Note: I am initializating many of these parameters in non-standard ways
    # because sometimes initializating with e.g. all zeros could mask an incorrect
    # implementation of the backward pass.
    parameters = [C, W1, b1, W2, b2, bngain, bnbias]
    out["n_params"] = sum(p.nelement() for p in parameters)  # number of parameters in total
    for p in parameters:
        p.requires_grad = True
    batch_size = 32
    n = batch_size  # a shorter variable also, for convenience
    # construct a minibatch
    ix = side.draw(torch.randint, 0, Xtr.shape[0], (batch_size,), generator=g)
    Xb, Yb = Xtr[ix], Ytr[ix]  # batch X,Y
    # forward pass, "chunkated" into smaller steps that are possible to backward one at a time
    emb = C[Xb]  # embed the characters into vectors
    embcat = emb.view(emb.shape[0], -1)  # concatenate the vectors
    # Linear layer 1
    hprebn = embcat @ W1 + b1  # hidden layer pre-activation
    # BatchNorm layer
    bnmeani = 1 / n * hprebn.sum(0, keepdim=True)
    bndiff = hprebn - bnmeani
    bndiff2 = bndiff**2
    bnvar = 1 / (n - 1) * (bndiff2).sum(0, keepdim=True)  # Bessel's correction (n-1, not n)
    bnvar_inv = (bnvar + 1e-5)**-0.5
    bnraw = bndiff * bnvar_inv
    hpreact = bngain * bnraw + bnbias
    # Non-linearity
    h = torch.tanh(hpreact)  # hidden layer
    # Linear layer 2
    logits = h @ W2 + b2  # output layer
    # cross entropy loss (same as F.cross_entropy(logits, Yb))
    logit_maxes = logits.max(1, keepdim=True).values
    norm_logits = logits - logit_maxes  # subtract max for numerical stability
    counts = norm_logits.exp()
    counts_sum = counts.sum(1, keepdims=True)
    # if I use (1.0 / counts_sum) instead then I can't get backprop to be bit exact...
    counts_sum_inv = counts_sum**-1
    probs = counts * counts_sum_inv
    logprobs = probs.log()
    loss = -logprobs[range(n), Yb].mean()
    # PyTorch backward pass
    for p in parameters:
        p.grad = None
    for t in [logprobs, probs, counts, counts_sum, counts_sum_inv,  # afaik there is no cleaner way
              norm_logits, logit_maxes, logits, h, hpreact, bnraw,
              bnvar_inv, bnvar, bndiff2, bndiff, hprebn, bnmeani,
              embcat, emb]:
        t.retain_grad()
    loss.backward()
    out["loss"] = loss

    # Exercise 1: backprop through the whole thing manually,
    # backpropagating through exactly all of the variables
    # as they are defined in the forward pass above, one by one
    dlogprobs = torch.zeros_like(logprobs)
    dlogprobs[range(n), Yb] = -1.0 / n
    dprobs = (1.0 / probs) * dlogprobs
    dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)
    dcounts = counts_sum_inv * dprobs
    dcounts_sum = (-counts_sum**-2) * dcounts_sum_inv
    dcounts += torch.ones_like(counts) * dcounts_sum
    dnorm_logits = counts * dcounts
    dlogits = dnorm_logits.clone()
    dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)
    dlogits += F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * dlogit_maxes
    dh = dlogits @ W2.T
    dW2 = h.T @ dlogits
    db2 = dlogits.sum(0)
    dhpreact = (1.0 - h**2) * dh
    dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
    dbnraw = bngain * dhpreact
    dbnbias = dhpreact.sum(0, keepdim=True)
    dbndiff = bnvar_inv * dbnraw
    dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)
    dbnvar = (-0.5 * (bnvar + 1e-5)**-1.5) * dbnvar_inv
    dbndiff2 = (1.0 / (n - 1)) * torch.ones_like(bndiff2) * dbnvar
    dbndiff += (2 * bndiff) * dbndiff2
    dhprebn = dbndiff.clone()
    dbnmeani = (-dbndiff).sum(0)
    dhprebn += 1.0 / n * (torch.ones_like(hprebn) * dbnmeani)
    dembcat = dhprebn @ W1.T
    dW1 = embcat.T @ dhprebn
    db1 = dhprebn.sum(0)
    demb = dembcat.view(emb.shape)
    dC = torch.zeros_like(C)
    for k in range(Xb.shape[0]):
        for j in range(Xb.shape[1]):
            ix = Xb[k, j]
            dC[ix] += demb[k, j]

    cmp('logprobs', dlogprobs, logprobs)
    cmp('probs', dprobs, probs)
    cmp('counts_sum_inv', dcounts_sum_inv, counts_sum_inv)
    cmp('counts_sum', dcounts_sum, counts_sum)
    cmp('counts', dcounts, counts)
    cmp('norm_logits', dnorm_logits, norm_logits)
    cmp('logit_maxes', dlogit_maxes, logit_maxes)
    cmp('logits', dlogits, logits)
    cmp('h', dh, h)
    cmp('W2', dW2, W2)
    cmp('b2', db2, b2)
    cmp('hpreact', dhpreact, hpreact)
    cmp('bngain', dbngain, bngain)
    cmp('bnbias', dbnbias, bnbias)
    cmp('bnraw', dbnraw, bnraw)
    cmp('bnvar_inv', dbnvar_inv, bnvar_inv)
    cmp('bnvar', dbnvar, bnvar)
    cmp('bndiff2', dbndiff2, bndiff2)
    cmp('bndiff', dbndiff, bndiff)
    cmp('bnmeani', dbnmeani, bnmeani)
    cmp('hprebn', dhprebn, hprebn)
    cmp('embcat', dembcat, embcat)
    cmp('W1', dW1, W1)
    cmp('b1', db1, b1)
    cmp('emb', demb, emb)
    cmp('C', dC, C)
    # the gradients autograd gave, compared across the two libraries as well
    out["autograd"] = [t.grad for t in (logprobs, probs, counts, logits, h, hpreact, bnraw,
                                        bnvar, bndiff, hprebn, emb, C, W1, b1, W2, b2)]

    # Exercise 2: backprop through cross_entropy but all in one go
    loss_fast = F.cross_entropy(logits, Yb)
    out["loss_diff"] = (loss_fast - loss).item()
    dlogits = F.softmax(logits, 1)
    dlogits[range(n), Yb] -= 1
    dlogits /= n
    cmp('logits', dlogits, logits)  # I can only get approximate to be true, my maxdiff is 6e-9
    out["logits_row_sums"] = dlogits.sum(1)

    # Exercise 3: backprop through batchnorm but all in one go
    hpreact_fast = bngain * (hprebn - hprebn.mean(0, keepdim=True)) \
        / torch.sqrt(hprebn.var(0, keepdim=True, unbiased=True) + 1e-5) + bnbias
    out["max_diff"] = (hpreact_fast - hpreact).abs().max()
    dhprebn = bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0) - n / (n - 1) * bnraw
                                        * (dhpreact * bnraw).sum(0))
    cmp('hprebn', dhprebn, hprebn)  # I can only get approximate to be true, my maxdiff is 9e-10

    # Exercise 4: putting it all together! Train the MLP neural net with your own backward pass
    lossi = []
    with torch.no_grad():
        for i in range(6):
            # minibatch construct
            ix = side.draw(torch.randint, 0, Xtr.shape[0], (batch_size,), generator=g)
            Xb, Yb = Xtr[ix], Ytr[ix]  # batch X,Y
            # forward pass
            emb = C[Xb]  # embed the characters into vectors
            embcat = emb.view(emb.shape[0], -1)  # concatenate the vectors
            # Linear layer
            hprebn = embcat @ W1 + b1  # hidden layer pre-activation
            # BatchNorm layer
            bnmean = hprebn.mean(0, keepdim=True)
            bnvar = hprebn.var(0, keepdim=True, unbiased=True)
            bnvar_inv = (bnvar + 1e-5)**-0.5
            bnraw = (hprebn - bnmean) * bnvar_inv
            hpreact = bngain * bnraw + bnbias
            # Non-linearity
            h = torch.tanh(hpreact)  # hidden layer
            logits = h @ W2 + b2  # output layer
            loss = F.cross_entropy(logits, Yb)  # loss function
            # manual backprop! #swole_doge_meme
            dlogits = F.softmax(logits, 1)
            dlogits[range(n), Yb] -= 1
            dlogits /= n
            # 2nd layer backprop
            dh = dlogits @ W2.T
            dW2 = h.T @ dlogits
            db2 = dlogits.sum(0)
            # tanh
            dhpreact = (1.0 - h**2) * dh
            # batchnorm backprop
            dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
            dbnbias = dhpreact.sum(0, keepdim=True)
            dhprebn = bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0)
                                                - n / (n - 1) * bnraw * (dhpreact * bnraw).sum(0))
            # 1st layer
            dembcat = dhprebn @ W1.T
            dW1 = embcat.T @ dhprebn
            db1 = dhprebn.sum(0)
            # embedding
            demb = dembcat.view(emb.shape)
            dC = torch.zeros_like(C)
            for k in range(Xb.shape[0]):
                for j in range(Xb.shape[1]):
                    ix = Xb[k, j]
                    dC[ix] += demb[k, j]
            grads = [dC, dW1, db1, dW2, db2, dbngain, dbnbias]
            # update
            lr = 0.1 if i < 100000 else 0.01  # step learning rate decay
            for p, grad in zip(parameters, grads):
                p.data += -lr * grad  # new way of swole doge TODO: enable
            lossi.append(loss.log10().item())
    out.update(lossi=lossi, params=parameters, cmp_ok=[v[0] for v in cmps.values()])
    return out


def test_backprop_ninja():
    run_both(backprop_ninja)


# -- 7. makemore part 5, "building a WaveNet": Embedding, FlattenConsecutive (x.view(B, T//n, C*n)
#       and squeeze), BatchNorm1d over (0, 1) for 3-d inputs, a Sequential of his own classes,
#       global torch.manual_seed(42), training, eval mode and sampling -----------------------------

def makemore_wavenet(side: Side5) -> dict:
    torch = side.lib
    F = torch.nn.functional
    out = {}
    block_size = 8  # context length: how many characters do we take to predict the next one?
    stoi, itos, (Xtr, Ytr), (Xdev, Ydev) = makemore_data(torch, WORDS, block_size)
    vocab_size = len(itos)
    for x, y in zip(Xtr[:3], Ytr[:3]):
        out.setdefault("examples", []).append(''.join(itos[ix.item()] for ix in x)
                                              + '-->' + itos[y.item()])
    out["examples"] = [len(e) for e in out["examples"]]

    Linear, BatchNorm1d, Tanh = makemore_layers(side)

    class Embedding:

        def __init__(self, num_embeddings, embedding_dim):
            self.weight = side.draw(torch.randn, (num_embeddings, embedding_dim))

        def __call__(self, IX):
            self.out = self.weight[IX]
            return self.out

        def parameters(self):
            return [self.weight]

    class FlattenConsecutive:

        def __init__(self, n):
            self.n = n

        def __call__(self, x):
            B, T, C = x.shape
            x = x.view(B, T // self.n, C * self.n)
            if x.shape[1] == 1:
                x = x.squeeze(1)
            self.out = x
            return self.out

        def parameters(self):
            return []

    class Sequential:

        def __init__(self, layers):
            self.layers = layers

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            self.out = x
            return self.out

        def parameters(self):
            # get parameters of all layers and stretch them out into one list
            return [p for layer in self.layers for p in layer.parameters()]

    torch.manual_seed(42)  # seed rng for reproducibility
    # hierarchical network
    n_embd = 12  # the dimensionality of the character embedding vectors
    n_hidden = 32  # the number of neurons in the hidden layer of the MLP
    model = Sequential([
        Embedding(vocab_size, n_embd),
        FlattenConsecutive(2), Linear(n_embd * 2, n_hidden, bias=False), BatchNorm1d(n_hidden),
        Tanh(),
        FlattenConsecutive(2), Linear(n_hidden * 2, n_hidden, bias=False), BatchNorm1d(n_hidden),
        Tanh(),
        FlattenConsecutive(2), Linear(n_hidden * 2, n_hidden, bias=False), BatchNorm1d(n_hidden),
        Tanh(),
        Linear(n_hidden, vocab_size),
    ])
    # parameter init
    with torch.no_grad():
        model.layers[-1].weight *= 0.1  # last layer make less confident
    parameters = model.parameters()
    out["n_params"] = sum(p.nelement() for p in parameters)  # number of parameters in total
    for p in parameters:
        p.requires_grad = True
    # the shapes on the way through, for a batch of 4
    ix = side.draw(torch.randint, 0, Xtr.shape[0], (4,))  # let's look at a batch of just 4
    Xb, Yb = Xtr[ix], Ytr[ix]
    logits = model(Xb)
    out["shapes"] = [tuple(layer.out.shape) for layer in model.layers]
    e = side.draw(torch.randn, 4, 8, 10)  # goal: want this to be (4, 4, 20) where consecutive
    explicit = torch.cat([e[:, ::2, :], e[:, 1::2, :]], dim=2)  # (4, 4, 20)
    out["flatten_same"] = (e.view(4, 4, 20) == explicit).all().item()
    # same optimization as last time
    max_steps = 12
    batch_size = 32
    lossi = []
    for i in range(max_steps):
        # minibatch construct
        ix = side.draw(torch.randint, 0, Xtr.shape[0], (batch_size,))
        Xb, Yb = Xtr[ix], Ytr[ix]  # batch X,Y
        # forward pass
        logits = model(Xb)
        loss = F.cross_entropy(logits, Yb)  # loss function
        # backward pass
        for p in parameters:
            p.grad = None
        loss.backward()
        # update: simple SGD
        lr = 0.1 if i < 150000 else 0.01  # step learning rate decay
        for p in parameters:
            p.data += -lr * p.grad
        lossi.append(loss.log10().item())
    out["lossi"] = lossi
    out["loss_curve"] = torch.tensor(lossi).view(-1, 4).mean(1)
    # put layers into eval mode (needed for batchnorm especially)
    for layer in model.layers:
        layer.training = False

    # evaluate the loss
    @torch.no_grad()  # this decorator disables gradient tracking inside pytorch
    def split_loss(split):
        x, y = {
            'train': (Xtr, Ytr),
            'val': (Xdev, Ydev),
        }[split]
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        return loss.item()

    out["split_losses"] = [split_loss('train'), split_loss('val')]
    out["running"] = [model.layers[3].running_mean, model.layers[3].running_var]
    # sample from the model
    lengths = []
    for _ in range(4):
        out_ = []
        context = [0] * block_size  # initialize with all ...
        while True:
            # forward pass the neural net
            logits = model(torch.tensor([context]))
            probs = F.softmax(logits, dim=1)
            # sample from the distribution
            ix = side.draw(torch.multinomial, probs, num_samples=1).item()
            # shift the context window and track the samples
            context = context[1:] + [ix]
            out_.append(ix)
            # if we sample the special '.' token, break
            if ix == 0 or len(out_) > 12:
                break
        lengths.append(len(''.join(itos[i] for i in out_)))
    out["lengths"] = lengths
    out["params"] = parameters
    return out


def test_makemore_wavenet():
    run_both(makemore_wavenet)


# -- 8. d2l 3.2 linear regression from scratch: synthetic_data with torch.normal, a data_iter
#       generator over shuffled indices, sgd under torch.no_grad() with param -= lr * grad /
#       batch_size and param.grad.zero_(); then 3.3's concise version on nn.Sequential ----------

def d2l_sgd(torch, params, lr, batch_size):
    """Minibatch stochastic gradient descent."""
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def d2l_linear_regression(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    out = {}

    def synthetic_data(w, b, num_examples):
        """Generate y = Xw + b + noise."""
        X = side.draw(torch.normal, 0, 1, (num_examples, len(w)))
        y = torch.matmul(X, w) + b
        y += side.draw(torch.normal, 0, 0.01, y.shape)
        return X, y.reshape((-1, 1))

    true_w = torch.tensor([2, -3.4])
    true_b = 4.2
    features, labels = synthetic_data(true_w, true_b, 100)
    out["first"] = [features[0], labels[0]]

    def data_iter(batch_size, features, labels):
        num_examples = len(features)
        indices = list(range(num_examples))
        # The examples are read at random, in no particular order
        random.shuffle(indices)
        for i in range(0, num_examples, batch_size):
            batch_indices = torch.tensor(
                indices[i: min(i + batch_size, num_examples)])
            yield features[batch_indices], labels[batch_indices]

    batch_size = 10
    random.seed(3)
    for X, y in data_iter(batch_size, features, labels):
        out["batch"] = [X, y]
        break
    w = side.draw(torch.normal, 0, 0.01, size=(2, 1), requires_grad=True)
    w.requires_grad_(True)
    b = torch.zeros(1, requires_grad=True)

    def linreg(X, w, b):
        """The linear regression model."""
        return torch.matmul(X, w) + b

    def squared_loss(y_hat, y):
        """Squared loss."""
        return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2

    lr = 0.03
    num_epochs = 3
    net = linreg
    loss = squared_loss
    train_ls = []
    for epoch in range(num_epochs):
        for X, y in data_iter(batch_size, features, labels):
            l = loss(net(X, w, b), y)  # Minibatch loss in `X` and `y`  # noqa: E741
            # Compute gradient on `l` with respect to [`w`, `b`]
            l.sum().backward()
            d2l_sgd(torch, [w, b], lr, batch_size)  # Update parameters using their gradient
        with torch.no_grad():
            train_l = loss(net(features, w, b), labels)
            train_ls.append(float(train_l.mean()))
            assert f'epoch {epoch + 1}, loss {float(train_l.mean()):f}'.startswith("epoch")
    out.update(train_ls=train_ls, w=w, b=b, w_error=true_w - w.reshape(true_w.shape),
               b_error=true_b - b)
    assert w.is_leaf and w.grad is not None and not w.grad.any()

    # 3.3 concise implementation
    from_data = torch.utils.data

    def load_array(data_arrays, batch_size, is_train=True):
        """Construct a PyTorch data iterator."""
        dataset = from_data.TensorDataset(*data_arrays)
        return from_data.DataLoader(dataset, batch_size, shuffle=is_train)

    data_iter2 = load_array((features, labels), batch_size, is_train=False)
    out["next_batch"] = next(iter(data_iter2))
    net = nn.Sequential(nn.Linear(2, 1))
    net[0].weight.data.normal_(0, 0.01)
    net[0].bias.data.fill_(0)
    side.weights(net)
    loss = nn.MSELoss()
    trainer = torch.optim.SGD(net.parameters(), lr=0.03)
    concise = []
    for _epoch in range(num_epochs):
        for X, y in data_iter2:
            l = loss(net(X), y)  # noqa: E741
            trainer.zero_grad()
            l.backward()
            trainer.step()
        l = loss(net(features), labels)  # noqa: E741
        concise.append(l.item())
    out.update(concise=concise, weight=net[0].weight.data, bias=net[0].bias.data)
    return out


def test_d2l_linear_regression():
    run_both(d2l_linear_regression)


# -- 9. d2l 3.6 softmax regression from scratch: softmax by hand, y_hat[range(len(y_hat)), y],
#       accuracy with y_hat.type(y.dtype), an Accumulator, evaluate_accuracy, train_epoch_ch3
#       with a custom updater; then 4.2 the MLP from scratch (nn.Parameter weights, relu by
#       torch.max(X, zeros_like)) on torch.optim.SGD -----------------------------------------------

class Accumulator:
    """For accumulating sums over `n` variables."""

    def __init__(self, n):
        self.data = [0.0] * n

    def add(self, *args):
        self.data = [a + float(b) for a, b in zip(self.data, args)]

    def reset(self):
        self.data = [0.0] * len(self.data)

    def __getitem__(self, idx):
        return self.data[idx]


def d2l_softmax_regression(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    out = {}
    rng = np.random.default_rng(4)
    images = side.data(rng.random((60, 1, 6, 6)).astype(np.float32))
    classes = side.data(rng.integers(0, 10, 60))
    batch_size = 16
    train_iter = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images[:40], classes[:40]), batch_size)
    test_iter = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images[40:], classes[40:]), batch_size)
    num_inputs = 36
    num_outputs = 10
    W = side.draw(torch.normal, 0, 0.01, size=(num_inputs, num_outputs))
    W.requires_grad_(True)
    b = torch.zeros(num_outputs, requires_grad=True)
    X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out["sums"] = [X.sum(0, keepdim=True), X.sum(1, keepdim=True)]

    def softmax(X):
        X_exp = torch.exp(X)
        partition = X_exp.sum(1, keepdim=True)
        return X_exp / partition  # The broadcasting mechanism is applied here

    X = side.draw(torch.normal, 0, 1, (2, 5))
    X_prob = softmax(X)
    out["X_prob"] = [X_prob, X_prob.sum(1)]

    def net(X):
        return softmax(torch.matmul(X.reshape((-1, W.shape[0])), W) + b)

    y = torch.tensor([0, 2])
    y_hat = torch.tensor([[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]])
    out["picked"] = y_hat[[0, 1], y]

    def cross_entropy(y_hat, y):
        return - torch.log(y_hat[range(len(y_hat)), y])

    out["ce"] = cross_entropy(y_hat, y)

    def accuracy(y_hat, y):
        """Compute the number of correct predictions."""
        if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
            y_hat = y_hat.argmax(axis=1)
        cmp = y_hat.type(y.dtype) == y
        return float(cmp.type(y.dtype).sum())

    out["acc"] = accuracy(y_hat, y) / len(y)

    def evaluate_accuracy(net, data_iter):
        """Compute the accuracy for a model on a dataset."""
        if isinstance(net, torch.nn.Module):
            net.eval()  # Set the model to evaluation mode
        metric = Accumulator(2)  # No. of correct predictions, no. of predictions
        with torch.no_grad():
            for X, y in data_iter:
                metric.add(accuracy(net(X), y), y.numel())
        return metric[0] / metric[1]

    out["acc_before"] = evaluate_accuracy(net, test_iter)

    def train_epoch_ch3(net, train_iter, loss, updater):
        """The training loop defined in Chapter 3."""
        # Set the model to training mode
        if isinstance(net, torch.nn.Module):
            net.train()
        # Sum of training loss, sum of training accuracy, no. of examples
        metric = Accumulator(3)
        for X, y in train_iter:
            # Compute gradients and update parameters
            y_hat = net(X)
            l = loss(y_hat, y)  # noqa: E741
            if isinstance(updater, torch.optim.Optimizer):
                # Using PyTorch in-built optimizer & loss criterion
                updater.zero_grad()
                l.mean().backward()
                updater.step()
            else:
                # Using custom built optimizer & loss criterion
                l.sum().backward()
                updater(X.shape[0])
            metric.add(float(l.sum()), accuracy(y_hat, y), y.numel())
        # Return training loss and training accuracy
        return metric[0] / metric[2], metric[1] / metric[2]

    lr = 0.1

    def updater(batch_size):
        return d2l_sgd(torch, [W, b], lr, batch_size)

    metrics = []
    for _epoch in range(3):
        train_metrics = train_epoch_ch3(net, train_iter, cross_entropy, updater)
        test_acc = evaluate_accuracy(net, test_iter)
        metrics.append([*train_metrics, test_acc])
    out.update(metrics=metrics, W=W, b=b)
    X, y = next(iter(test_iter))
    out["preds"] = net(X).argmax(axis=1)

    # 4.2 Implementation of Multilayer Perceptrons from Scratch
    num_inputs, num_outputs, num_hiddens = 36, 10, 32
    W1 = nn.Parameter(side.draw(torch.randn, num_inputs, num_hiddens) * 0.01)
    b1 = nn.Parameter(torch.zeros(num_hiddens, requires_grad=True))
    W2 = nn.Parameter(side.draw(torch.randn, num_hiddens, num_outputs) * 0.01)
    b2 = nn.Parameter(torch.zeros(num_outputs, requires_grad=True))
    params = [W1, b1, W2, b2]
    assert all(p.is_leaf and p.requires_grad for p in params)

    def relu(X):
        a = torch.zeros_like(X)
        return torch.max(X, a)

    def net2(X):
        X = X.reshape((-1, num_inputs))
        H = relu(X @ W1 + b1)  # Here '@' stands for matrix multiplication
        return (H @ W2 + b2)

    loss = nn.CrossEntropyLoss(reduction='none')
    updater = torch.optim.SGD(params, lr=0.5)
    mlp_metrics = []
    for _epoch in range(3):
        mlp_metrics.append(list(train_epoch_ch3(net2, train_iter, loss, updater)))
    out.update(mlp_metrics=mlp_metrics, mlp_params=params)
    return out


def test_d2l_softmax_regression():
    run_both(d2l_softmax_regression)


# -- 10. d2l 4.6 dropout from scratch: dropout_layer with (torch.rand(X.shape) > dropout).float(),
#        a Net with is_training, trained on CrossEntropyLoss(reduction='none'); the concise
#        version's init_weights through net.apply ------------------------------------------------

def d2l_dropout(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    out = {}

    def dropout_layer(X, dropout):
        assert 0 <= dropout <= 1
        # In this case, all elements are dropped out
        if dropout == 1:
            return torch.zeros_like(X)
        # In this case, all elements are kept
        if dropout == 0:
            return X
        mask = (side.draw(torch.rand, X.shape) > dropout).float()
        return mask * X / (1.0 - dropout)

    X = torch.arange(16, dtype=torch.float32).reshape((2, 8))
    out["drops"] = [X, dropout_layer(X, 0.), dropout_layer(X, 0.5), dropout_layer(X, 1.)]
    num_inputs, num_outputs, num_hiddens1, num_hiddens2 = 36, 10, 32, 16
    dropout1, dropout2 = 0.2, 0.5

    class Net(nn.Module):
        def __init__(self, num_inputs, num_outputs, num_hiddens1, num_hiddens2,
                     is_training=True):
            super(Net, self).__init__()
            self.num_inputs = num_inputs
            self.training = is_training
            self.lin1 = nn.Linear(num_inputs, num_hiddens1)
            self.lin2 = nn.Linear(num_hiddens1, num_hiddens2)
            self.lin3 = nn.Linear(num_hiddens2, num_outputs)
            self.relu = nn.ReLU()

        def forward(self, X):
            H1 = self.relu(self.lin1(X.reshape((-1, self.num_inputs))))
            # Use dropout only when training the model
            if self.training is True:
                # Add a dropout layer after the first fully connected layer
                H1 = dropout_layer(H1, dropout1)
            H2 = self.relu(self.lin2(H1))
            if self.training is True:
                # Add a dropout layer after the second fully connected layer
                H2 = dropout_layer(H2, dropout2)
            out = self.lin3(H2)
            return out

    net = side.weights(Net(num_inputs, num_outputs, num_hiddens1, num_hiddens2))
    rng = np.random.default_rng(5)
    images = side.data(rng.random((48, 1, 6, 6)).astype(np.float32))
    classes = side.data(rng.integers(0, 10, 48))
    train_iter = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, classes), batch_size=16)
    num_epochs, lr = 2, 0.5
    loss = nn.CrossEntropyLoss(reduction='none')
    trainer = torch.optim.SGD(net.parameters(), lr=lr)
    losses = []
    for _epoch in range(num_epochs):
        net.train()
        for X, y in train_iter:
            y_hat = net(X)
            l = loss(y_hat, y)  # noqa: E741
            trainer.zero_grad()
            l.mean().backward()
            trainer.step()
            losses.append(l.sum().item())
    net.eval()
    assert net.training is False
    with torch.no_grad():
        out["eval"] = net(images[:8])
    out.update(losses=losses, state=net.state_dict())

    # concise implementation: its init_weights applied to a Sequential
    net = nn.Sequential(nn.Flatten(),
                        nn.Linear(36, 32),
                        nn.ReLU(),
                        # Add a dropout layer after the first fully connected layer
                        nn.Dropout(dropout1),
                        nn.Linear(32, 10))

    def init_weights(m):
        if type(m) == nn.Linear:  # noqa: E721
            nn.init.normal_(m.weight, std=0.01)

    net.apply(init_weights)
    side.weights(net)
    assert float(net[1].weight.std()) < 0.05 and type(net[3]) == nn.Dropout  # noqa: E721
    net.eval()
    out["concise_eval"] = net(images[:4])
    return out


def test_d2l_dropout():
    run_both(d2l_dropout)


# -- 11. d2l 9.5 RNN from scratch, 10.1 GRU and 10.2 LSTM from scratch: get_params with a normal()
#        helper, a state tuple, F.one_hot(X.T, vocab).type(torch.float32), RNNModelScratch,
#        predict_ch8, grad_clipping with the norm torch.sqrt(sum(torch.sum((p.grad ** 2)) ...))
#        and param.grad[:] *= theta / norm, train_epoch_ch8 over seq_data_iter_sequential with
#        s.detach_() on the state, perplexity ------------------------------------------------------

def d2l_predict_ch8(torch, prefix, num_preds, net, vocab, device, idx_to_token=None):
    """Generate new characters following the `prefix` (d2l 9.5's predict_ch8; without
    `idx_to_token` it returns the token ids instead of joining their tokens)."""
    state = net.begin_state(batch_size=1, device=device)
    outputs = [vocab[prefix[0]]]

    def get_input():
        return torch.tensor([outputs[-1]], device=device).reshape((1, 1))

    for y in prefix[1:]:  # Warm-up period
        _, state = net(get_input(), state)
        outputs.append(vocab[y])
    for _ in range(num_preds):  # Predict `num_preds` steps
        y, state = net(get_input(), state)
        outputs.append(int(y.argmax(dim=1).reshape(1)))
    if idx_to_token is None:
        return outputs
    return ''.join([idx_to_token[i] for i in outputs])


def d2l_grad_clipping(torch, net, theta):
    """Clip the gradient."""
    nn = torch.nn
    if isinstance(net, nn.Module):
        params = [p for p in net.parameters() if p.requires_grad]
    else:
        params = net.params
    norm = torch.sqrt(sum(torch.sum((p.grad ** 2)) for p in params))
    if norm > theta:
        for param in params:
            param.grad[:] *= theta / norm


def d2l_train_epoch_ch8(torch, net, train_iter, loss, updater, device, use_random_iter):
    """Train a net within one epoch (defined in Chapter 8)."""
    nn = torch.nn
    state = None
    metric = Accumulator(2)  # Sum of training loss, no. of tokens
    for X, Y in train_iter:
        if state is None or use_random_iter:
            # Initialize `state` when either it is the first iteration or
            # using random sampling
            state = net.begin_state(batch_size=X.shape[0], device=device)
        else:
            if isinstance(net, nn.Module) and not isinstance(state, tuple):
                # `state` is a tensor for `nn.GRU`
                state.detach_()
            else:
                # `state` is a tuple of tensors for `nn.LSTM` and
                # for our custom scratch implementation
                for s in state:
                    s.detach_()
        y = Y.T.reshape(-1)
        X, y = X.to(device), y.to(device)
        y_hat, state = net(X, state)
        l = loss(y_hat, y.long()).mean()  # noqa: E741
        if isinstance(updater, torch.optim.Optimizer):
            updater.zero_grad()
            l.backward()
            d2l_grad_clipping(torch, net, 1)
            updater.step()
        else:
            l.backward()
            d2l_grad_clipping(torch, net, 1)
            # Since the `mean` function has been invoked
            updater(batch_size=1)
        metric.add(l.detach() * y.numel(), y.numel())
    return math.exp(metric[0] / metric[1])


def d2l_rnn_scratch(side: Side5, kind: str) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    out = {}
    text = "the time machine by h g wells the time traveller for so it will be convenient to " \
           "speak of him was expounding a recondite matter to us"
    tokens = list(text)
    idx_to_token = ['<unk>'] + sorted(set(tokens))
    token_to_idx = {token: idx for idx, token in enumerate(idx_to_token)}
    corpus = [token_to_idx[t] for t in tokens]

    class Vocab:
        def __len__(self):
            return len(idx_to_token)

        def __getitem__(self, tokens):
            return token_to_idx.get(tokens, 0)

    vocab = Vocab()
    device = torch.device('cpu')

    def seq_data_iter_sequential(corpus, batch_size, num_steps):
        """Generate a minibatch of subsequences using sequential partitioning."""
        # Start with a random offset to partition a sequence
        offset = random.randint(0, num_steps)
        num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
        Xs = torch.tensor(corpus[offset: offset + num_tokens])
        Ys = torch.tensor(corpus[offset + 1: offset + 1 + num_tokens])
        Xs, Ys = Xs.reshape(batch_size, -1), Ys.reshape(batch_size, -1)
        num_batches = Xs.shape[1] // num_steps
        for i in range(0, num_steps * num_batches, num_steps):
            X = Xs[:, i: i + num_steps]
            Y = Ys[:, i: i + num_steps]
            yield X, Y

    def normal(shape):
        return side.draw(torch.randn, size=shape, device=device) * 0.01

    def three(num_inputs, num_hiddens):
        return (normal((num_inputs, num_hiddens)),
                normal((num_hiddens, num_hiddens)),
                torch.zeros(num_hiddens, device=device))

    def get_rnn_params(vocab_size, num_hiddens, device):
        num_inputs = num_outputs = vocab_size
        # Hidden layer parameters
        W_xh = normal((num_inputs, num_hiddens))
        W_hh = normal((num_hiddens, num_hiddens))
        b_h = torch.zeros(num_hiddens, device=device)
        # Output layer parameters
        W_hq = normal((num_hiddens, num_outputs))
        b_q = torch.zeros(num_outputs, device=device)
        # Attach gradients
        params = [W_xh, W_hh, b_h, W_hq, b_q]
        for param in params:
            param.requires_grad_(True)
        return params

    def init_rnn_state(batch_size, num_hiddens, device):
        return (torch.zeros((batch_size, num_hiddens), device=device), )

    def rnn(inputs, state, params):
        # Here `inputs` shape: (`num_steps`, `batch_size`, `vocab_size`)
        W_xh, W_hh, b_h, W_hq, b_q = params
        H, = state
        outputs = []
        # Shape of `X`: (`batch_size`, `vocab_size`)
        for X in inputs:
            H = torch.tanh(torch.mm(X, W_xh) + torch.mm(H, W_hh) + b_h)
            Y = torch.mm(H, W_hq) + b_q
            outputs.append(Y)
        return torch.cat(outputs, dim=0), (H,)

    def get_gru_params(vocab_size, num_hiddens, device):
        num_inputs = num_outputs = vocab_size
        W_xz, W_hz, b_z = three(num_inputs, num_hiddens)  # Update gate parameters
        W_xr, W_hr, b_r = three(num_inputs, num_hiddens)  # Reset gate parameters
        W_xh, W_hh, b_h = three(num_inputs, num_hiddens)  # Candidate hidden state parameters
        # Output layer parameters
        W_hq = normal((num_hiddens, num_outputs))
        b_q = torch.zeros(num_outputs, device=device)
        # Attach gradients
        params = [W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q]
        for param in params:
            param.requires_grad_(True)
        return params

    def init_gru_state(batch_size, num_hiddens, device):
        return (torch.zeros((batch_size, num_hiddens), device=device), )

    def gru(inputs, state, params):
        W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q = params
        H, = state
        outputs = []
        for X in inputs:
            Z = torch.sigmoid((X @ W_xz) + (H @ W_hz) + b_z)
            R = torch.sigmoid((X @ W_xr) + (H @ W_hr) + b_r)
            H_tilda = torch.tanh((X @ W_xh) + ((R * H) @ W_hh) + b_h)
            H = Z * H + (1 - Z) * H_tilda
            Y = H @ W_hq + b_q
            outputs.append(Y)
        return torch.cat(outputs, dim=0), (H,)

    def get_lstm_params(vocab_size, num_hiddens, device):
        num_inputs = num_outputs = vocab_size
        W_xi, W_hi, b_i = three(num_inputs, num_hiddens)  # Input gate parameters
        W_xf, W_hf, b_f = three(num_inputs, num_hiddens)  # Forget gate parameters
        W_xo, W_ho, b_o = three(num_inputs, num_hiddens)  # Output gate parameters
        W_xc, W_hc, b_c = three(num_inputs, num_hiddens)  # Candidate memory cell parameters
        # Output layer parameters
        W_hq = normal((num_hiddens, num_outputs))
        b_q = torch.zeros(num_outputs, device=device)
        # Attach gradients
        params = [W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c, W_hq,
                  b_q]
        for param in params:
            param.requires_grad_(True)
        return params

    def init_lstm_state(batch_size, num_hiddens, device):
        return (torch.zeros((batch_size, num_hiddens), device=device),
                torch.zeros((batch_size, num_hiddens), device=device))

    def lstm(inputs, state, params):
        [W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c, W_hq,
         b_q] = params
        (H, C) = state
        outputs = []
        for X in inputs:
            I = torch.sigmoid((X @ W_xi) + (H @ W_hi) + b_i)  # noqa: E741
            F_ = torch.sigmoid((X @ W_xf) + (H @ W_hf) + b_f)
            O = torch.sigmoid((X @ W_xo) + (H @ W_ho) + b_o)  # noqa: E741
            C_tilda = torch.tanh((X @ W_xc) + (H @ W_hc) + b_c)
            C = F_ * C + I * C_tilda
            H = O * torch.tanh(C)
            Y = (H @ W_hq) + b_q
            outputs.append(Y)
        return torch.cat(outputs, dim=0), (H, C)

    class RNNModelScratch:
        """A RNN Model implemented from scratch."""

        def __init__(self, vocab_size, num_hiddens, device, get_params, init_state,
                     forward_fn):
            self.vocab_size, self.num_hiddens = vocab_size, num_hiddens
            self.params = get_params(vocab_size, num_hiddens, device)
            self.init_state, self.forward_fn = init_state, forward_fn

        def __call__(self, X, state):
            X = F.one_hot(X.T, self.vocab_size).type(torch.float32)
            return self.forward_fn(X, state, self.params)

        def begin_state(self, batch_size, device):
            return self.init_state(batch_size, self.num_hiddens, device)

    X = torch.arange(10).reshape((2, 5))
    out["one_hot_shape"] = tuple(F.one_hot(X.T, 28).shape)
    num_hiddens = 32
    get_params, init_state, forward_fn = {
        "rnn": (get_rnn_params, init_rnn_state, rnn),
        "gru": (get_gru_params, init_gru_state, gru),
        "lstm": (get_lstm_params, init_lstm_state, lstm)}[kind]
    net = RNNModelScratch(len(vocab), num_hiddens, device, get_params, init_state, forward_fn)
    state = net.begin_state(X.shape[0], device)
    Y, new_state = net(X.to(device), state)
    out["first"] = [Y, list(new_state)]

    out["predicted"] = [token_to_idx.get(c, 0)
                        for c in d2l_predict_ch8(torch, 'time ', 10, net, vocab, device,
                                                 idx_to_token)]

    loss = nn.CrossEntropyLoss()
    lr = 1

    def updater(batch_size):
        return d2l_sgd(torch, net.params, lr, batch_size)

    random.seed(10)
    ppls = []
    for _epoch in range(3):
        train_iter = seq_data_iter_sequential(corpus, batch_size=4, num_steps=6)
        ppls.append(d2l_train_epoch_ch8(torch, net, train_iter, loss, updater, device, False))
    out.update(ppls=ppls, params=net.params,
               predicted_after=[token_to_idx.get(c, 0)
                                for c in d2l_predict_ch8(torch, 'time ', 10, net, vocab, device,
                                                         idx_to_token)])
    return out


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_d2l_rnn_scratch(kind):
    run_both(lambda side: d2l_rnn_scratch(side, kind))


# -- 12. d2l 8.5 batch normalization from scratch: batch_norm with the torch.is_grad_enabled()
#        branch and moving averages returned as .data, the BatchNorm module keeping them as plain
#        tensor attributes (moved with .to(X.device)), LeNet with it, trained a few steps, then
#        evaluated under no_grad; the concise nn.BatchNorm2d/1d LeNet beside it -------------------

def d2l_batch_norm(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    out = {}

    def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum):
        # Use `is_grad_enabled` to determine whether we are in training mode
        if not torch.is_grad_enabled():
            # In prediction mode, use mean and variance obtained by moving average
            X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
        else:
            assert len(X.shape) in (2, 4)
            if len(X.shape) == 2:
                # When using a fully connected layer, calculate the mean and
                # variance on the feature dimension
                mean = X.mean(dim=0)
                var = ((X - mean) ** 2).mean(dim=0)
            else:
                # When using a two-dimensional convolutional layer, calculate the
                # mean and variance on the channel dimension (axis=1). Here we
                # need to maintain the shape of `X`, so that the broadcasting
                # operation can be carried out later
                mean = X.mean(dim=(0, 2, 3), keepdim=True)
                var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
            # In training mode, the current mean and variance are used
            X_hat = (X - mean) / torch.sqrt(var + eps)
            # Update the mean and variance using moving average
            moving_mean = (1.0 - momentum) * moving_mean + momentum * mean
            moving_var = (1.0 - momentum) * moving_var + momentum * var
        Y = gamma * X_hat + beta  # Scale and shift
        return Y, moving_mean.data, moving_var.data

    class BatchNorm(nn.Module):
        # `num_features`: the number of outputs for a fully connected layer
        # or the number of output channels for a convolutional layer. `num_dims`:
        # 2 for a fully connected layer and 4 for a convolutional layer
        def __init__(self, num_features, num_dims):
            super().__init__()
            if num_dims == 2:
                shape = (1, num_features)
            else:
                shape = (1, num_features, 1, 1)
            # The scale parameter and the shift parameter (model parameters) are
            # initialized to 1 and 0, respectively
            self.gamma = nn.Parameter(torch.ones(shape))
            self.beta = nn.Parameter(torch.zeros(shape))
            # The variables that are not model parameters are initialized to 0 and 1
            self.moving_mean = torch.zeros(shape)
            self.moving_var = torch.ones(shape)

        def forward(self, X):
            # If `X` is not on the main memory, copy `moving_mean` and
            # `moving_var` to the device where `X` is located
            if self.moving_mean.device != X.device:
                self.moving_mean = self.moving_mean.to(X.device)
                self.moving_var = self.moving_var.to(X.device)
            # Save the updated `moving_mean` and `moving_var`
            Y, self.moving_mean, self.moving_var = batch_norm(
                X, self.gamma, self.beta, self.moving_mean,
                self.moving_var, eps=1e-5, momentum=0.1)
            return Y

    net = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), BatchNorm(6, num_dims=4), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), BatchNorm(16, num_dims=4), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120), BatchNorm(120, num_dims=2), nn.Sigmoid(),
        nn.Linear(120, 84), BatchNorm(84, num_dims=2), nn.Sigmoid(),
        nn.Linear(84, 10))
    side.weights(net)
    concise = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
        nn.Linear(84, 10))
    side.weights(concise)
    X = side.draw(torch.rand, size=(1, 1, 28, 28), dtype=torch.float32)
    shapes = []
    for layer in concise:
        X = layer(X) if not isinstance(layer, nn.BatchNorm1d) else X
        shapes.append(tuple(X.shape))
    out["shapes"] = shapes
    rng = np.random.default_rng(6)
    images = side.data(rng.random((16, 1, 28, 28)).astype(np.float32))
    classes = side.data(rng.integers(0, 10, 16))
    train_iter = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, classes), batch_size=8)
    lr = 1.0

    def init_weights(m):
        if type(m) == nn.Linear or type(m) == nn.Conv2d:  # noqa: E721
            nn.init.xavier_uniform_(m.weight)

    for model in (net, concise):
        model.apply(init_weights)
        side.weights(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        model = side.compile(model)
        loss = nn.CrossEntropyLoss()
        losses = []
        for _epoch in range(2):
            model.train()
            for _i, (X, y) in enumerate(train_iter):
                optimizer.zero_grad()
                y_hat = model(X)
                l = loss(y_hat, y)  # noqa: E741
                l.backward()
                optimizer.step()
                with torch.no_grad():
                    losses.append(l * X.shape[0])
        model.eval()
        with torch.no_grad():
            out[f"eval{len(out)}"] = model(images[:4])
        out[f"losses{len(out)}"] = losses
    out["gamma_beta"] = [net[1].gamma.reshape((-1,)), net[1].beta.reshape((-1,))]
    out["moving"] = [net[1].moving_mean, net[1].moving_var, net[13].moving_var]
    out["concise_running"] = [concise[1].running_mean, concise[13].running_var]
    assert not net[1].moving_mean.requires_grad
    assert "moving_mean" not in dict(net.named_buffers())
    return out


@COMPILED_FULL
def test_d2l_batch_norm(compiled):
    run_both(d2l_batch_norm, rtol=2e-4, atol=2e-5, compiled=compiled)


# -- 13. d2l 11.3 attention scoring functions: sequence_mask by torch.arange(...)[None, :] <
#        valid_len[:, None] and X[~mask] = value, masked_softmax with torch.repeat_interleave,
#        AdditiveAttention and DotProductAttention with their attention_weights; 11.6's
#        multi-head attention (transpose_qkv/transpose_output, valid_lens repeated per head) and
#        11.6.3's positional encoding table with torch.pow(10000, arange(0, d, 2) / d) -------------

def d2l_sequence_mask(torch, X, valid_len, value=0):
    """Mask irrelevant entries in sequences."""
    maxlen = X.size(1)
    mask = torch.arange((maxlen), dtype=torch.float32,
                        device=X.device)[None, :] < valid_len[:, None]
    X[~mask] = value
    return X


def d2l_masked_softmax(torch, X, valid_lens):
    """Perform softmax operation by masking elements on the last axis."""
    nn = torch.nn
    # `X`: 3D tensor, `valid_lens`: 1D or 2D tensor
    if valid_lens is None:
        return nn.functional.softmax(X, dim=-1)
    else:
        shape = X.shape
        if valid_lens.dim() == 1:
            valid_lens = torch.repeat_interleave(valid_lens, shape[1])
        else:
            valid_lens = valid_lens.reshape(-1)
        # On the last axis, replace masked elements with a very large negative
        # value, whose exponentiation outputs 0
        X = d2l_sequence_mask(torch, X.reshape(-1, shape[-1]), valid_lens, value=-1e6)
        return nn.functional.softmax(X.reshape(shape), dim=-1)


def d2l_attention_modules(torch):
    nn = torch.nn

    class AdditiveAttention(nn.Module):
        """Additive attention."""

        def __init__(self, key_size, query_size, num_hiddens, dropout, **kwargs):
            super(AdditiveAttention, self).__init__(**kwargs)
            self.W_k = nn.Linear(key_size, num_hiddens, bias=False)
            self.W_q = nn.Linear(query_size, num_hiddens, bias=False)
            self.w_v = nn.Linear(num_hiddens, 1, bias=False)
            self.dropout = nn.Dropout(dropout)

        def forward(self, queries, keys, values, valid_lens):
            queries, keys = self.W_q(queries), self.W_k(keys)
            # After dimension expansion, shape of `queries`: (`batch_size`, no. of
            # queries, 1, `num_hiddens`) and shape of `keys`: (`batch_size`, 1,
            # no. of key-value pairs, `num_hiddens`). Sum them up with
            # broadcasting
            features = queries.unsqueeze(2) + keys.unsqueeze(1)
            features = torch.tanh(features)
            # There is only one output of `self.w_v`, so we remove the last
            # one-dimensional entry from the shape. Shape of `scores`:
            # (`batch_size`, no. of queries, no. of key-value pairs)
            scores = self.w_v(features).squeeze(-1)
            self.attention_weights = d2l_masked_softmax(torch, scores, valid_lens)
            # Shape of `values`: (`batch_size`, no. of key-value pairs, value
            # dimension)
            return torch.bmm(self.dropout(self.attention_weights), values)

    class DotProductAttention(nn.Module):
        """Scaled dot product attention."""

        def __init__(self, dropout, **kwargs):
            super(DotProductAttention, self).__init__(**kwargs)
            self.dropout = nn.Dropout(dropout)

        # Shape of `queries`: (`batch_size`, no. of queries, `d`)
        # Shape of `keys`: (`batch_size`, no. of key-value pairs, `d`)
        # Shape of `values`: (`batch_size`, no. of key-value pairs, value
        # dimension)
        # Shape of `valid_lens`: (`batch_size`,) or (`batch_size`, no. of queries)
        def forward(self, queries, keys, values, valid_lens=None):
            d = queries.shape[-1]
            # Set `transpose_b=True` to swap the last two dimensions of `keys`
            scores = torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(d)
            self.attention_weights = d2l_masked_softmax(torch, scores, valid_lens)
            return torch.bmm(self.dropout(self.attention_weights), values)

    return AdditiveAttention, DotProductAttention


def d2l_multihead_modules(torch):
    """d2l 11.5's MultiHeadAttention (over 11.3's DotProductAttention) and 11.6.3's
    PositionalEncoding."""
    nn = torch.nn
    _, DotProductAttention = d2l_attention_modules(torch)

    def transpose_qkv(X, num_heads):
        """Transposition for parallel computation of multiple attention heads."""
        # Shape of input `X`: (`batch_size`, no. of queries or key-value pairs, `num_hiddens`).
        X = X.reshape(X.shape[0], X.shape[1], num_heads, -1)
        X = X.permute(0, 2, 1, 3)
        return X.reshape(-1, X.shape[2], X.shape[3])

    def transpose_output(X, num_heads):
        """Reverse the operation of `transpose_qkv`."""
        X = X.reshape(-1, num_heads, X.shape[1], X.shape[2])
        X = X.permute(0, 2, 1, 3)
        return X.reshape(X.shape[0], X.shape[1], -1)

    class MultiHeadAttention(nn.Module):
        """Multi-head attention."""

        def __init__(self, key_size, query_size, value_size, num_hiddens,
                     num_heads, dropout, bias=False, **kwargs):
            super(MultiHeadAttention, self).__init__(**kwargs)
            self.num_heads = num_heads
            self.attention = DotProductAttention(dropout)
            self.W_q = nn.Linear(query_size, num_hiddens, bias=bias)
            self.W_k = nn.Linear(key_size, num_hiddens, bias=bias)
            self.W_v = nn.Linear(value_size, num_hiddens, bias=bias)
            self.W_o = nn.Linear(num_hiddens, num_hiddens, bias=bias)

        def forward(self, queries, keys, values, valid_lens):
            queries = transpose_qkv(self.W_q(queries), self.num_heads)
            keys = transpose_qkv(self.W_k(keys), self.num_heads)
            values = transpose_qkv(self.W_v(values), self.num_heads)
            if valid_lens is not None:
                # On axis 0, copy the first item (scalar or vector) for
                # `num_heads` times, then copy the next item, and so on
                valid_lens = torch.repeat_interleave(
                    valid_lens, repeats=self.num_heads, dim=0)
            # Shape of `output`: (`batch_size` * `num_heads`, no. of queries,
            # `num_hiddens` / `num_heads`)
            output = self.attention(queries, keys, values, valid_lens)
            # Shape of `output_concat`:
            # (`batch_size`, no. of queries, `num_hiddens`)
            output_concat = transpose_output(output, self.num_heads)
            return self.W_o(output_concat)

    class PositionalEncoding(nn.Module):
        """Positional encoding."""

        def __init__(self, num_hiddens, dropout, max_len=1000):
            super(PositionalEncoding, self).__init__()
            self.dropout = nn.Dropout(dropout)
            # Create a long enough `P`
            self.P = torch.zeros((1, max_len, num_hiddens))
            X = torch.arange(max_len, dtype=torch.float32).reshape(
                -1, 1) / torch.pow(10000, torch.arange(
                    0, num_hiddens, 2, dtype=torch.float32) / num_hiddens)
            self.P[:, :, 0::2] = torch.sin(X)
            self.P[:, :, 1::2] = torch.cos(X)

        def forward(self, X):
            X = X + self.P[:, :X.shape[1], :].to(X.device)
            return self.dropout(X)

    return MultiHeadAttention, PositionalEncoding


def d2l_attention(side: Side5) -> dict:
    torch = side.lib
    out = {}
    out["masked"] = [d2l_masked_softmax(torch, side.draw(torch.rand, 2, 2, 4),
                                        torch.tensor([2, 3])),
                     d2l_masked_softmax(torch, side.draw(torch.rand, 2, 2, 4),
                                        torch.tensor([[1, 3], [2, 4]]))]
    X = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out["seq_mask"] = d2l_sequence_mask(torch, X, torch.tensor([1, 2]))
    X = torch.ones(2, 3, 4)
    out["seq_mask_3d"] = d2l_sequence_mask(torch, X, torch.tensor([1, 2]), value=-1)
    AdditiveAttention, DotProductAttention = d2l_attention_modules(torch)
    queries, keys = side.draw(torch.normal, 0, 1, (2, 1, 20)), torch.ones((2, 10, 2))
    # The two value matrices in the `values` minibatch are identical
    values = torch.arange(40, dtype=torch.float32).reshape(1, 10, 4).repeat(2, 1, 1)
    valid_lens = torch.tensor([2, 6])
    attention = side.weights(AdditiveAttention(key_size=2, query_size=20, num_hiddens=8,
                                               dropout=0.1))
    attention.eval()
    attention = side.compile(attention)
    out["additive"] = [attention(queries, keys, values, valid_lens),
                       attention.attention_weights.reshape((1, 1, 2, 10))]
    queries = side.draw(torch.normal, 0, 1, (2, 1, 2))
    attention = DotProductAttention(dropout=0.5)
    attention.eval()
    attention = side.compile(attention)
    out["dot"] = [attention(queries, keys, values, valid_lens), attention.attention_weights]

    # 11.5 multi-head attention
    MultiHeadAttention, PositionalEncoding = d2l_multihead_modules(torch)
    num_hiddens, num_heads = 20, 5
    attention = side.weights(MultiHeadAttention(num_hiddens, num_hiddens, num_hiddens,
                                                num_hiddens, num_heads, 0.5))
    attention.eval()
    attention = side.compile(attention)
    batch_size, num_queries = 2, 4
    num_kvpairs, valid_lens = 6, torch.tensor([3, 2])
    X = torch.ones((batch_size, num_queries, num_hiddens))
    Y = torch.ones((batch_size, num_kvpairs, num_hiddens))
    out["multihead"] = attention(X, Y, Y, valid_lens)
    # self-attention over random tokens, with its weights
    X = side.draw(torch.randn, (batch_size, num_queries, num_hiddens))
    out["self"] = [attention(X, X, X, valid_lens), attention.attention.attention_weights]

    # 11.6.3 positional encoding
    encoding_dim, num_steps = 32, 60
    pos_encoding = PositionalEncoding(encoding_dim, 0)
    pos_encoding.eval()
    X = pos_encoding(torch.zeros((1, num_steps, encoding_dim)))
    P = pos_encoding.P[:, :X.shape[1], :]
    out["P"] = [X, P[0, :, 6:10].T, pos_encoding.P[0, 990:, :]]
    out["binary"] = [int(f'{i:>03b}', 2) for i in range(8)]
    P = P[0, :, :].unsqueeze(0).unsqueeze(0)
    out["P4"] = P.shape
    return out


@COMPILED_FULL
def test_d2l_attention(compiled):
    run_both(d2l_attention, compiled=compiled)


# -- 14. d2l 11.4 Bahdanau attention: Seq2SeqEncoder (Embedding + GRU), the
#        Seq2SeqAttentionDecoder looping over steps with the additive attention's context
#        concatenated to each input, MaskedSoftmaxCELoss (a CrossEntropyLoss subclass with
#        reduction='none' set in forward), xavier_init_weights over m._flat_weights_names,
#        train_seq2seq's bos-shifted decoder input, grad_clipping and predict_seq2seq -------------

def d2l_encoder_decoder_modules(torch):
    """d2l 10.6's Encoder/Decoder/EncoderDecoder (11.4's AttentionDecoder), 10.7's
    Seq2SeqEncoder and MaskedSoftmaxCELoss."""
    nn = torch.nn

    class Encoder(nn.Module):
        """The base encoder interface for the encoder-decoder architecture."""

        def __init__(self, **kwargs):
            super(Encoder, self).__init__(**kwargs)

    class Decoder(nn.Module):
        """The base decoder interface for the encoder-decoder architecture."""

        def __init__(self, **kwargs):
            super(Decoder, self).__init__(**kwargs)

    class AttentionDecoder(Decoder):
        """The base attention-based decoder interface."""

        def __init__(self, **kwargs):
            super(AttentionDecoder, self).__init__(**kwargs)

        @property
        def attention_weights(self):
            raise NotImplementedError

    class EncoderDecoder(nn.Module):
        """The base class for the encoder-decoder architecture."""

        def __init__(self, encoder, decoder, **kwargs):
            super(EncoderDecoder, self).__init__(**kwargs)
            self.encoder = encoder
            self.decoder = decoder

        def forward(self, enc_X, dec_X, *args):
            enc_outputs = self.encoder(enc_X, *args)
            dec_state = self.decoder.init_state(enc_outputs, *args)
            return self.decoder(dec_X, dec_state)

    class Seq2SeqEncoder(Encoder):
        """The RNN encoder for sequence to sequence learning."""

        def __init__(self, vocab_size, embed_size, num_hiddens, num_layers,
                     dropout=0, **kwargs):
            super(Seq2SeqEncoder, self).__init__(**kwargs)
            # Embedding layer
            self.embedding = nn.Embedding(vocab_size, embed_size)
            self.rnn = nn.GRU(embed_size, num_hiddens, num_layers,
                              dropout=dropout)

        def forward(self, X, *args):
            # The output `X` shape: (`batch_size`, `num_steps`, `embed_size`)
            X = self.embedding(X)
            # In RNN models, the first axis corresponds to time steps
            X = X.permute(1, 0, 2)
            # When state is not mentioned, it defaults to zeros
            output, state = self.rnn(X)
            # `output` shape: (`num_steps`, `batch_size`, `num_hiddens`)
            # `state` shape: (`num_layers`, `batch_size`, `num_hiddens`)
            return output, state

    class MaskedSoftmaxCELoss(nn.CrossEntropyLoss):
        """The softmax cross-entropy loss with masks."""

        # `pred` shape: (`batch_size`, `num_steps`, `vocab_size`)
        # `label` shape: (`batch_size`, `num_steps`)
        # `valid_len` shape: (`batch_size`,)
        def forward(self, pred, label, valid_len):
            weights = torch.ones_like(label)
            weights = d2l_sequence_mask(torch, weights, valid_len)
            self.reduction = 'none'
            unweighted_loss = super(MaskedSoftmaxCELoss, self).forward(
                pred.permute(0, 2, 1), label)
            weighted_loss = (unweighted_loss * weights).mean(dim=1)
            return weighted_loss

    return EncoderDecoder, AttentionDecoder, Seq2SeqEncoder, MaskedSoftmaxCELoss


def toy_reversal_data(side: Side5, seed, vocab_size, num_steps, pad, eos):
    """A toy "translation" corpus: the target is the source reversed, then <eos>; the dataset of
    (source, its valid length, target, its valid length)."""
    torch = side.lib
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, num_steps, 8)
    src = np.full((8, num_steps), pad)
    tgt = np.full((8, num_steps), pad)
    for i, n in enumerate(lengths):
        words = rng.integers(3, vocab_size, n)
        src[i, :n], src[i, n] = words, eos
        tgt[i, :n], tgt[i, n] = words[::-1], eos
    src_valid, tgt_valid = lengths + 1, lengths + 1
    return torch.utils.data.TensorDataset(*(side.data(a) for a in (src, src_valid, tgt,
                                                                   tgt_valid)))


def d2l_train_seq2seq(side: Side5, net, data_iter, lr, num_epochs, tgt_vocab, device,
                      clip=True):
    """Train a model for sequence to sequence: d2l 10.7's train_seq2seq (through
    `side.compile`); `clip=False` leaves out its grad_clipping, as the Transformer and seq2seq
    ports train. Returns each epoch's loss per token and each batch's summed loss."""
    torch = side.lib
    nn = torch.nn
    _, _, _, MaskedSoftmaxCELoss = d2l_encoder_decoder_modules(torch)

    def xavier_init_weights(m):
        if type(m) == nn.Linear:  # noqa: E721
            nn.init.xavier_uniform_(m.weight)
        if type(m) == nn.GRU:  # noqa: E721
            for param in m._flat_weights_names:
                if "weight" in param:
                    nn.init.xavier_uniform_(m._parameters[param])

    net.apply(xavier_init_weights)
    side.weights(net)
    net.to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    loss = MaskedSoftmaxCELoss()
    net.train()
    model = side.compile(net)
    losses, batch_losses = [], []
    for _epoch in range(num_epochs):
        metric = Accumulator(2)  # Sum of training loss, no. of tokens
        for batch in data_iter:
            optimizer.zero_grad()
            X, X_valid_len, Y, Y_valid_len = [x.to(device) for x in batch]
            bos = torch.tensor([tgt_vocab['<bos>']] * Y.shape[0],
                               device=device).reshape(-1, 1)
            dec_input = torch.cat([bos, Y[:, :-1]], 1)  # Teacher forcing
            Y_hat, _ = model(X, dec_input, X_valid_len)
            l = loss(Y_hat, Y, Y_valid_len)  # noqa: E741
            l.sum().backward()  # Make the loss scalar for `backward`
            if clip:
                d2l_grad_clipping(torch, net, 1)
            num_tokens = Y_valid_len.sum()
            optimizer.step()
            with torch.no_grad():
                metric.add(l.sum(), num_tokens)
            batch_losses.append(l.sum().item())
        losses.append(metric[0] / metric[1])
    return losses, batch_losses


def d2l_predict_seq2seq(torch, net, src_tokens, src_vocab, tgt_vocab, num_steps, device,
                        save_attention_weights=False):
    """Predict for sequence to sequence (d2l 10.7's predict_seq2seq over token ids; it also
    returns the decoder's last state, for the Transformer's key-value cache)."""
    # Set `net` to eval mode for inference
    net.eval()
    enc_valid_len = torch.tensor([len(src_tokens)], device=device)
    src_tokens = src_tokens + [src_vocab['<pad>']] * (num_steps - len(src_tokens))
    # Add the batch axis
    enc_X = torch.unsqueeze(
        torch.tensor(src_tokens, dtype=torch.long, device=device), dim=0)
    enc_outputs = net.encoder(enc_X, enc_valid_len)
    dec_state = net.decoder.init_state(enc_outputs, enc_valid_len)
    # Add the batch axis
    dec_X = torch.unsqueeze(torch.tensor(
        [tgt_vocab['<bos>']], dtype=torch.long, device=device), dim=0)
    output_seq, attention_weight_seq = [], []
    for _ in range(num_steps):
        Y, dec_state = net.decoder(dec_X, dec_state)
        # We use the token with the highest prediction likelihood as the
        # input of the decoder at the next time step
        dec_X = Y.argmax(dim=2)
        pred = dec_X.squeeze(dim=0).type(torch.int32).item()
        # Save attention weights (to be covered later)
        if save_attention_weights:
            attention_weight_seq.append(net.decoder.attention_weights)
        # Once the end-of-sequence token is predicted, the generation of the
        # output sequence is complete
        if pred == tgt_vocab['<eos>']:
            break
        output_seq.append(pred)
    return output_seq, attention_weight_seq, dec_state


def d2l_bahdanau(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    out = {}
    AdditiveAttention, _ = d2l_attention_modules(torch)
    (EncoderDecoder, AttentionDecoder, Seq2SeqEncoder,
     MaskedSoftmaxCELoss) = d2l_encoder_decoder_modules(torch)

    class Seq2SeqAttentionDecoder(AttentionDecoder):
        def __init__(self, vocab_size, embed_size, num_hiddens, num_layers,
                     dropout=0, **kwargs):
            super(Seq2SeqAttentionDecoder, self).__init__(**kwargs)
            self.attention = AdditiveAttention(
                num_hiddens, num_hiddens, num_hiddens, dropout)
            self.embedding = nn.Embedding(vocab_size, embed_size)
            self.rnn = nn.GRU(
                embed_size + num_hiddens, num_hiddens, num_layers,
                dropout=dropout)
            self.dense = nn.Linear(num_hiddens, vocab_size)

        def init_state(self, enc_outputs, enc_valid_lens, *args):
            # Shape of `outputs`: (`num_steps`, `batch_size`, `num_hiddens`).
            # Shape of `hidden_state[0]`: (`num_layers`, `batch_size`,
            # `num_hiddens`)
            outputs, hidden_state = enc_outputs
            return (outputs.permute(1, 0, 2), hidden_state, enc_valid_lens)

        def forward(self, X, state):
            # Shape of `enc_outputs`: (`batch_size`, `num_steps`, `num_hiddens`).
            # Shape of `hidden_state[0]`: (`num_layers`, `batch_size`,
            # `num_hiddens`)
            enc_outputs, hidden_state, enc_valid_lens = state
            # Shape of the output `X`: (`num_steps`, `batch_size`, `embed_size`)
            X = self.embedding(X).permute(1, 0, 2)
            outputs, self._attention_weights = [], []
            for x in X:
                # Shape of `query`: (`batch_size`, 1, `num_hiddens`)
                query = torch.unsqueeze(hidden_state[-1], dim=1)
                # Shape of `context`: (`batch_size`, 1, `num_hiddens`)
                context = self.attention(
                    query, enc_outputs, enc_outputs, enc_valid_lens)
                # Concatenate on the feature dimension
                x = torch.cat((context, torch.unsqueeze(x, dim=1)), dim=-1)
                # Reshape `x` as (1, `batch_size`, `embed_size` + `num_hiddens`)
                out, hidden_state = self.rnn(x.permute(1, 0, 2), hidden_state)
                outputs.append(out)
                self._attention_weights.append(self.attention.attention_weights)
            # After fully-connected layer transformation, shape of `outputs`:
            # (`num_steps`, `batch_size`, `vocab_size`)
            outputs = self.dense(torch.cat(outputs, dim=0))
            return outputs.permute(1, 0, 2), [enc_outputs, hidden_state,
                                              enc_valid_lens]

        @property
        def attention_weights(self):
            return self._attention_weights

    encoder = Seq2SeqEncoder(vocab_size=10, embed_size=8, num_hiddens=16, num_layers=2)
    side.weights(encoder)
    encoder.eval()
    decoder = Seq2SeqAttentionDecoder(vocab_size=10, embed_size=8, num_hiddens=16,
                                      num_layers=2)
    side.weights(decoder)
    decoder.eval()
    X = torch.zeros((4, 7), dtype=torch.long)  # (`batch_size`, `num_steps`)
    state = decoder.init_state(encoder(X), None)
    output, state = decoder(X, state)
    out["shapes"] = [tuple(output.shape), len(state), tuple(state[0].shape), len(state[1]),
                     tuple(state[1][0].shape)]
    out["first_output"] = output

    loss = MaskedSoftmaxCELoss()
    out["masked_ce"] = loss(torch.ones(3, 4, 10), torch.ones((3, 4), dtype=torch.long),
                            torch.tensor([4, 2, 0]))

    # a toy "translation" corpus: the target is the source reversed, then <eos>
    pad, bos, eos = 0, 1, 2
    vocab_size, num_steps = 10, 5
    data = toy_reversal_data(side, 7, vocab_size, num_steps, pad, eos)
    data_iter = torch.utils.data.DataLoader(data, batch_size=4)
    vocab = {'<pad>': pad, '<bos>': bos, '<eos>': eos}
    device = torch.device('cpu')
    embed_size, num_hiddens, num_layers, dropout = 8, 16, 2, 0.0
    lr, num_epochs = 0.005, 2
    encoder = Seq2SeqEncoder(vocab_size, embed_size, num_hiddens, num_layers, dropout)
    decoder = Seq2SeqAttentionDecoder(vocab_size, embed_size, num_hiddens, num_layers,
                                      dropout)
    net = EncoderDecoder(encoder, decoder)

    out["losses"], _ = d2l_train_seq2seq(side, net, data_iter, lr, num_epochs, vocab, device)
    out["state"] = net.state_dict()

    translation, weights, _ = d2l_predict_seq2seq(torch, net, [5, 6, 7, eos], vocab, vocab,
                                                  num_steps, device, True)
    out["translation"] = translation
    out["attention"] = torch.cat([step[0] for step in weights], 0)
    return out


@COMPILED_FULL
def test_d2l_bahdanau(compiled):
    run_both(d2l_bahdanau, compiled=compiled)


# -- 15. d2l's preliminaries: 2.1 data manipulation (in-place updates keeping id(X), the NumPy
#        bridge, a.item(), float(a), int(a)), 2.3 linear algebra (sums over axis lists, cumsum,
#        norms, mv/mm/dot), 2.5 automatic differentiation (non-scalar backward(gradient=),
#        detach, Python control flow) and 4.8 numerical stability (sigmoid's gradient over
#        torch.arange(-8.0, 8.0, 0.1), a product of random matrices) -------------------------------

def d2l_preliminaries(side: Side5) -> dict:
    torch = side.lib
    out = {}
    # 2.1 data manipulation
    x = torch.arange(12)
    assert x.numel() == 12 and tuple(x.shape) == (12,) and x.dtype == torch.int64
    X = x.reshape(3, 4)
    out.update(x=x, X=X, X_inferred=x.reshape(-1, 4), zeros=torch.zeros((2, 3, 4)),
               ones=torch.ones((2, 3, 4)), randn=side.draw(torch.randn, 3, 4),
               listed=torch.tensor([[2, 1, 4, 3], [1, 2, 3, 4], [4, 3, 2, 1]]))
    x = torch.tensor([1.0, 2, 4, 8])
    y = torch.tensor([2, 2, 2, 2])
    out["ops"] = [x + y, x - y, x * y, x / y, x ** y, torch.exp(x)]
    X = torch.arange(12, dtype=torch.float32).reshape((3, 4))
    Y = torch.tensor([[2.0, 1, 4, 3], [1, 2, 3, 4], [4, 3, 2, 1]])
    out["cat"] = [torch.cat((X, Y), dim=0), torch.cat((X, Y), dim=1), X == Y, X.sum()]
    a = torch.arange(3).reshape((3, 1))
    b = torch.arange(2).reshape((1, 2))
    out["broadcast"] = a + b
    out["slices"] = [X[-1], X[1:3]]
    X[1, 2] = 9
    X[0:2, :] = 12
    out["assigned"] = X.clone()
    before = id(Y)
    Y = Y + X
    assert id(Y) != before
    Z = torch.zeros_like(Y)
    z_id = id(Z)
    Z[:] = X + Y
    assert id(Z) == z_id
    before = id(X)
    X += Y
    assert id(X) == before
    out["in_place"] = [Z, X]
    A = X.numpy()
    B = torch.from_numpy(A)
    assert type(A) is np.ndarray and isinstance(B, torch.Tensor)
    a = torch.tensor([3.5])
    out["scalars"] = [a.item(), float(a), int(a)]
    assert isinstance(int(a), int) and int(a) == 3
    # 2.3 linear algebra
    x = torch.tensor(3.0)
    y = torch.tensor(2.0)
    out["scalar_ops"] = [x + y, x * y, x / y, x**y]
    x = torch.arange(4)
    assert len(x) == 4 and x[3].item() == 3
    A = torch.arange(20).reshape(5, 4)
    assert (A.T.T == A).all()
    B = torch.tensor([[1, 2, 3], [2, 0, 4], [3, 4, 5]])
    assert bool((B == B.T).all())
    X = torch.arange(24).reshape(2, 3, 4)
    A = torch.arange(20, dtype=torch.float32).reshape(5, 4)
    B = A.clone()  # Assign a copy of `A` to `B` by allocating new memory
    out["la"] = [X, A + B, A * B]
    a = 2
    X = torch.arange(24).reshape(2, 3, 4)
    out["scalar_broadcast"] = [a + X, (a * X).shape]
    x = torch.arange(4, dtype=torch.float32)
    A_sum_axis0 = A.sum(axis=0)
    A_sum_axis1 = A.sum(axis=1)
    out["sums"] = [x.sum(), A.sum(), A_sum_axis0, A_sum_axis1, A.sum(axis=[0, 1]),
                   A.mean(), A.sum() / A.numel(), A.mean(axis=0), A.sum(axis=0) / A.shape[0]]
    sum_A = A.sum(axis=1, keepdims=True)
    out["keepdims"] = [sum_A, A / sum_A, A.cumsum(axis=0)]
    y = torch.ones(4, dtype=torch.float32)
    out["products"] = [torch.dot(x, y), torch.sum(x * y), torch.mv(A, x),
                       torch.mm(A, torch.ones(4, 3))]
    u = torch.tensor([3.0, -4.0])
    out["norms"] = [torch.norm(u), torch.abs(u).sum(), torch.norm(torch.ones((4, 9)))]
    # 2.5 automatic differentiation
    x = torch.arange(4.0)
    x.requires_grad_(True)  # Same as `x = torch.arange(4.0, requires_grad=True)`
    assert x.grad is None  # The default value is None
    y = 2 * torch.dot(x, x)
    y.backward()
    assert bool((x.grad == 4 * x).all())
    grads = [x.grad.clone()]
    # PyTorch accumulates the gradient in default, we need to clear the previous values
    x.grad.zero_()
    y = x.sum()
    y.backward()
    grads.append(x.grad.clone())
    x.grad.zero_()
    y = x * x
    # Invoking `backward` on a non-scalar requires passing in a `gradient` argument
    y.backward(gradient=torch.ones(len(y)))
    grads.append(x.grad.clone())
    x.grad.zero_()
    y = x * x
    u = y.detach()
    z = u * x
    z.sum().backward()
    assert bool((x.grad == u).all())
    x.grad.zero_()
    y.sum().backward()
    assert bool((x.grad == 2 * x).all())
    out["grads"] = grads

    def f(a):
        b = a * 2
        while b.norm() < 1000:
            b = b * 2
        if b.sum() > 0:
            c = b
        else:
            c = 100 * b
        return c

    a = side.draw(torch.randn, size=()).requires_grad_(True)
    d = f(a)
    d.backward()
    out["control_flow"] = [d, a.grad, d / a]  # the chapter's a.grad == d / a
    # 4.8 numerical stability: vanishing gradients, exploding products
    x = torch.arange(-8.0, 8.0, 0.1, requires_grad=True)
    assert tuple(x.shape) == (160,)
    y = torch.sigmoid(x)
    y.backward(torch.ones_like(x))
    out["sigmoid"] = [x.detach(), y.detach(), x.grad]
    M = side.draw(torch.normal, 0, 1, size=(4, 4))
    for _i in range(10):
        M = torch.mm(M, side.draw(torch.normal, 0, 1, size=(4, 4)))
    out["M"] = M
    return out


def test_d2l_preliminaries():
    got, want = run_both(d2l_preliminaries)
    assert got["scalars"] == [3.5, 3.5, 3]


# -- 16. d2l 6 builders' guide: parameter access (state_dict, .bias.data, named_parameters,
#        nested blocks by add_module), built-in and custom initialisation (net.apply,
#        m.weight.data *= m.weight.data.abs() >= 5, weight.data[:] += 1), tied parameters, a
#        CenteredLayer and MyLinear, lazy layers, and file I/O (torch.save of tensors, lists,
#        dicts and the state_dict, then clone.load_state_dict) ------------------------------------

def d2l_builders_guide(side: Side5, tmp_path) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    out = {}
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    side.weights(net)
    X = side.draw(torch.rand, size=(2, 4))
    out["net"] = net(X)
    state = net[2].state_dict()
    assert list(state) == ['weight', 'bias']
    assert type(net[2].bias) is nn.Parameter
    out["bias"] = [net[2].bias.data, net.state_dict()['2.bias'].data]
    assert net[2].weight.grad is None
    names = [(name, tuple(param.shape)) for name, param in net[0].named_parameters()]
    names_all = [(name, tuple(param.shape)) for name, param in net.named_parameters()]
    assert names == [('weight', (8, 4)), ('bias', (8,))]
    assert [n for n, _ in names_all] == ['0.weight', '0.bias', '2.weight', '2.bias']

    def block1():
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
                             nn.Linear(8, 4), nn.ReLU())

    def block2():
        net = nn.Sequential()
        for i in range(4):
            # Nested here
            net.add_module(f'block {i}', block1())
        return net

    rgnet = nn.Sequential(block2(), nn.Linear(4, 1))
    side.weights(rgnet)
    out["rgnet"] = [rgnet(X), rgnet[0][1][0].bias.data]
    assert "(block 0): Sequential(" in str(rgnet)

    def init_normal(m):
        if type(m) == nn.Linear:  # noqa: E721
            nn.init.normal_(m.weight, mean=0, std=0.01)
            nn.init.zeros_(m.bias)

    net.apply(init_normal)
    side.weights(net)
    # (the chapter prints these values here: copies, as the weights change below)
    out["init_normal"] = [net[0].weight.data[0].clone(), net[0].bias.data[0].clone()]

    def init_constant(m):
        if type(m) == nn.Linear:  # noqa: E721
            nn.init.constant_(m.weight, 1)
            nn.init.zeros_(m.bias)

    net.apply(init_constant)
    out["init_constant"] = [net[0].weight.data[0].clone(), net[0].bias.data[0].clone()]

    def init_xavier(m):
        if type(m) == nn.Linear:  # noqa: E721
            nn.init.xavier_uniform_(m.weight)

    def init_42(m):
        if type(m) == nn.Linear:  # noqa: E721
            nn.init.constant_(m.weight, 42)

    net[0].apply(init_xavier)
    net[2].apply(init_42)
    side.weights(net)
    out["init_mixed"] = [net[0].weight.data[0].clone(), net[2].weight.data.clone()]

    def my_init(m):
        if type(m) == nn.Linear:  # noqa: E721
            nn.init.uniform_(m.weight, -10, 10)
            side.weights(m)
            m.weight.data *= m.weight.data.abs() >= 5

    net.apply(my_init)
    out["my_init"] = net[0].weight[:2]  # a view: it sees the edits below, as torch's does
    net[0].weight.data[:] += 1
    net[0].weight.data[0, 0] = 42
    out["edited"] = net[0].weight.data[0]
    # tied parameters: we need to give the shared layer a name so that we can refer to its
    # parameters
    shared = nn.Linear(8, 8)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
                        shared, nn.ReLU(),
                        shared, nn.ReLU(),
                        nn.Linear(8, 1))
    side.weights(net)
    net(X)
    # Check whether the parameters are the same
    assert bool((net[2].weight.data[0] == net[4].weight.data[0]).all())
    net[2].weight.data[0, 0] = 100
    # Make sure that they are actually the same object rather than just having the same value
    assert bool((net[2].weight.data[0] == net[4].weight.data[0]).all())
    assert len(list(net.parameters())) == 6
    net(X).sum().backward()
    out["tied_grad"] = shared.weight.grad

    # custom layers
    class CenteredLayer(nn.Module):
        def __init__(self):
            super().__init__()

        def forward(self, X):
            return X - X.mean()

    layer = CenteredLayer()
    out["centered"] = layer(torch.tensor([1.0, 2, 3, 4, 5]))
    net = nn.Sequential(nn.Linear(8, 128), CenteredLayer())
    side.weights(net)
    Y = net(side.draw(torch.rand, 4, 8))
    out["centered_mean"] = Y.mean()

    class MyLinear(nn.Module):
        def __init__(self, in_units, units):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(in_units, units))
            self.bias = nn.Parameter(torch.randn(units,))

        def forward(self, X):
            linear = torch.matmul(X, self.weight.data) + self.bias.data
            return F.relu(linear)

    linear = side.weights(MyLinear(5, 3))
    out["my_linear"] = [linear.weight, linear(side.draw(torch.rand, 2, 5))]
    net = nn.Sequential(MyLinear(64, 8), MyLinear(8, 1))
    side.weights(net)
    out["my_linear_net"] = net(side.draw(torch.rand, 2, 64))
    # lazy initialisation
    net = nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(10))
    assert isinstance(net[0].weight, nn.parameter.UninitializedParameter)
    X = side.draw(torch.rand, 2, 20)
    net(X)
    side.weights(net)
    assert tuple(net[0].weight.shape) == (256, 20)
    out["lazy"] = net(X)
    # file I/O
    x = torch.arange(4)
    torch.save(x, tmp_path / f'x-file-{torch.__name__}')
    x2 = torch.load(tmp_path / f'x-file-{torch.__name__}')
    y = torch.zeros(4)
    torch.save([x, y], tmp_path / f'x-files-{torch.__name__}')
    x2, y2 = torch.load(tmp_path / f'x-files-{torch.__name__}')
    mydict = {'x': x, 'y': y}
    torch.save(mydict, tmp_path / f'mydict-{torch.__name__}')
    mydict2 = torch.load(tmp_path / f'mydict-{torch.__name__}')
    out["io"] = [x2, y2, mydict2['x'], mydict2['y']]

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.LazyLinear(256)
            self.output = nn.LazyLinear(10)

        def forward(self, x):
            return self.output(F.relu(self.hidden(x)))

    net = MLP()
    X = side.draw(torch.randn, size=(2, 20))
    net(X)
    side.weights(net)
    Y = net(X)
    torch.save(net.state_dict(), tmp_path / f'mlp.params-{torch.__name__}')
    clone = MLP()
    clone.load_state_dict(torch.load(tmp_path / f'mlp.params-{torch.__name__}'))
    clone.eval()
    Y_clone = clone(X)
    assert bool((Y_clone == Y).all())
    out["clone"] = Y_clone
    return out


def test_d2l_builders_guide(tmp_path):
    run_both(lambda side: d2l_builders_guide(side, tmp_path))


# -- 17. d2l 7 convolutions from scratch: corr2d by loops, a Conv2D module of nn.Parameter
#        weights, learning an edge kernel with conv2d.weight.data[:] -= lr * grad, comp_conv2d's
#        (1, 1) + X.shape, multiple input and output channels (sum over zip, torch.stack), 1x1
#        convolution as a matmul, pool2d by loops beside nn.MaxPool2d/AvgPool2d with padding and
#        stride, then LeNet's shapes ---------------------------------------------------------------

def d2l_convolutions(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    out = {}

    def corr2d(X, K):
        """Compute 2D cross-correlation."""
        h, w = K.shape
        Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
        for i in range(Y.shape[0]):
            for j in range(Y.shape[1]):
                Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
        return Y

    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    out["corr2d"] = corr2d(X, K)

    class Conv2D(nn.Module):
        def __init__(self, kernel_size):
            super().__init__()
            self.weight = nn.Parameter(torch.rand(kernel_size))
            self.bias = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return corr2d(x, self.weight) + self.bias

    conv = side.weights(Conv2D((2, 2)))
    out["conv"] = conv(X)
    X = torch.ones((6, 8))
    X[:, 2:6] = 0
    K = torch.tensor([[1.0, -1.0]])
    Y = corr2d(X, K)
    out["edges"] = [X, Y, corr2d(X.t(), K)]
    # Construct a two-dimensional convolutional layer with 1 output channel and a
    # kernel of shape (1, 2). For the sake of simplicity, we ignore the bias here
    conv2d = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False)
    side.weights(conv2d)
    # The two-dimensional convolutional layer uses four-dimensional input and
    # output in the format of (example, channel, height, width), where the batch
    # size (number of examples in the batch) and the number of channels are both 1
    X = X.reshape((1, 1, 6, 8))
    Y = Y.reshape((1, 1, 6, 7))
    lr = 3e-2  # Learning rate
    losses = []
    for i in range(10):
        Y_hat = conv2d(X)
        l = (Y_hat - Y) ** 2  # noqa: E741
        conv2d.zero_grad()
        l.sum().backward()
        # Update the kernel
        conv2d.weight.data[:] -= lr * conv2d.weight.grad
        if (i + 1) % 2 == 0:
            losses.append(l.sum().item())
    out.update(kernel=conv2d.weight.data.reshape((1, 2)), kernel_losses=losses)

    # We define a helper function to calculate convolutions. It initializes
    # the convolutional layer weights and performs corresponding dimensionality
    # elevations and reductions on the input and output
    def comp_conv2d(conv2d, X):
        side.weights(conv2d)
        # (1, 1) indicates that batch size and the number of channels are both 1
        X = X.reshape((1, 1) + X.shape)
        Y = conv2d(X)
        # Strip the first two dimensions: examples and channels
        return Y.reshape(Y.shape[2:])

    X = side.draw(torch.rand, size=(8, 8))
    out["padded"] = [
        comp_conv2d(nn.Conv2d(1, 1, kernel_size=3, padding=1), X),
        comp_conv2d(nn.Conv2d(1, 1, kernel_size=(5, 3), padding=(2, 1)), X),
        comp_conv2d(nn.Conv2d(1, 1, kernel_size=3, padding=1, stride=2), X),
        comp_conv2d(nn.Conv2d(1, 1, kernel_size=(3, 5), padding=(0, 1), stride=(3, 4)), X)]

    def corr2d_multi_in(X, K):
        # Iterate through the 0th dimension (channel) of K first, then add them up
        return sum(corr2d(x, k) for x, k in zip(X, K))

    X = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
                      [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])
    K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    out["multi_in"] = corr2d_multi_in(X, K)

    def corr2d_multi_in_out(X, K):
        # Iterate through the 0th dimension of `K`, and each time, perform
        # cross-correlation operations with input `X`. All of the results are
        # stacked together
        return torch.stack([corr2d_multi_in(X, k) for k in K], 0)

    K = torch.stack((K, K + 1, K + 2), 0)
    out["multi_out"] = [K.shape, corr2d_multi_in_out(X, K)]

    def corr2d_multi_in_out_1x1(X, K):
        c_i, h, w = X.shape
        c_o = K.shape[0]
        X = X.reshape((c_i, h * w))
        K = K.reshape((c_o, c_i))
        # Matrix multiplication in the fully connected layer
        Y = torch.matmul(K, X)
        return Y.reshape((c_o, h, w))

    X = side.draw(torch.normal, 0, 1, (3, 3, 3))
    K = side.draw(torch.normal, 0, 1, (2, 3, 1, 1))
    Y1 = corr2d_multi_in_out_1x1(X, K)
    Y2 = corr2d_multi_in_out(X, K)
    assert float(torch.abs(Y1 - Y2).sum()) < 1e-6
    out["one_by_one"] = Y1

    def pool2d(X, pool_size, mode='max'):
        p_h, p_w = pool_size
        Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
        for i in range(Y.shape[0]):
            for j in range(Y.shape[1]):
                if mode == 'max':
                    Y[i, j] = X[i: i + p_h, j: j + p_w].max()
                elif mode == 'avg':
                    Y[i, j] = X[i: i + p_h, j: j + p_w].mean()
        return Y

    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    out["pool2d"] = [pool2d(X, (2, 2)), pool2d(X, (2, 2), 'avg')]
    X = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4))
    pools = [nn.MaxPool2d(3)(X), nn.MaxPool2d(3, padding=1, stride=2)(X),
             nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))(X)]
    X = torch.cat((X, X + 1), 1)
    pools += [nn.MaxPool2d(3, padding=1, stride=2)(X), nn.AvgPool2d(2, stride=1)(X)]
    out["pools"] = pools
    # LeNet's shapes
    net = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))
    side.weights(net)
    X = side.draw(torch.rand, size=(1, 1, 28, 28), dtype=torch.float32)
    shapes = []
    for layer in net:
        X = layer(X)
        shapes.append((layer.__class__.__name__, tuple(X.shape)))
    assert shapes[0] == ('Conv2d', (1, 6, 28, 28)) and shapes[-1] == ('Linear', (1, 10))
    out["lenet"] = X
    return out


def test_d2l_convolutions():
    run_both(d2l_convolutions)


# -- 18. d2l 11.2 attention pooling by similarity (Nadaraya-Watson): sorted random training
#        points, a Gaussian kernel by repeat_interleave, torch.bmm of unsqueezed weights, the
#        parametric NWKernelRegression trained on keys picked by (1 - torch.eye(n)).type(
#        torch.bool) masks, MSELoss(reduction='none') --------------------------------------------

def d2l_nadaraya_watson(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    out = {}
    n_train = 50  # No. of training examples
    x_train, _ = torch.sort(side.draw(torch.rand, n_train) * 5)  # Training inputs

    def f(x):
        return 2 * torch.sin(x) + x**0.8

    y_train = f(x_train) + side.draw(torch.normal, 0.0, 0.5, (n_train,))  # Training outputs
    x_test = torch.arange(0, 5, 0.1)  # Testing examples
    y_truth = f(x_test)  # Ground-truth outputs for the testing examples
    n_test = len(x_test)  # No. of testing examples
    assert n_test == 50
    y_hat = torch.repeat_interleave(y_train.mean(), n_test)
    out["average_pooling"] = [x_train, y_train, y_truth, y_hat]
    # Shape of `X_repeat`: (`n_test`, `n_train`), where each row contains the
    # same testing inputs (i.e., same queries)
    X_repeat = x_test.repeat_interleave(n_train).reshape((-1, n_train))
    # Note that `x_train` contains the keys. Shape of `attention_weights`:
    # (`n_test`, `n_train`), where each row contains attention weights to be
    # assigned among the values (`y_train`) given each query
    attention_weights = nn.functional.softmax(-(X_repeat - x_train)**2 / 2, dim=1)
    # Each element of `y_hat` is weighted average of values, where weights are
    # attention weights
    y_hat = torch.matmul(attention_weights, y_train)
    out["nonparametric"] = [attention_weights, y_hat]
    # batch matrix multiplication
    X = torch.ones((2, 1, 4))
    Y = torch.ones((2, 4, 6))
    assert tuple(torch.bmm(X, Y).shape) == (2, 1, 6)
    weights = torch.ones((2, 10)) * 0.1
    values = torch.arange(20.0).reshape((2, 10))
    out["bmm"] = torch.bmm(weights.unsqueeze(1), values.unsqueeze(-1))

    class NWKernelRegression(nn.Module):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.w = nn.Parameter(torch.rand((1,), requires_grad=True))

        def forward(self, queries, keys, values):
            # Shape of the output `queries` and `attention_weights`:
            # (no. of queries, no. of key-value pairs)
            queries = queries.repeat_interleave(keys.shape[1]).reshape((-1, keys.shape[1]))
            self.attention_weights = nn.functional.softmax(
                -((queries - keys) * self.w)**2 / 2, dim=1)
            # Shape of `values`: (no. of queries, no. of key-value pairs)
            return torch.bmm(self.attention_weights.unsqueeze(1),
                             values.unsqueeze(-1)).reshape(-1)

    # Shape of `X_tile`: (`n_train`, `n_train`), where each column contains the
    # same training inputs
    X_tile = x_train.repeat((n_train, 1))
    # Shape of `Y_tile`: (`n_train`, `n_train`), where each column contains the
    # same training outputs
    Y_tile = y_train.repeat((n_train, 1))
    # Shape of `keys`: ('n_train', 'n_train' - 1)
    keys = X_tile[(1 - torch.eye(n_train)).type(torch.bool)].reshape((n_train, -1))
    # Shape of `values`: ('n_train', 'n_train' - 1)
    values = Y_tile[(1 - torch.eye(n_train)).type(torch.bool)].reshape((n_train, -1))
    net = side.weights(NWKernelRegression())
    loss = nn.MSELoss(reduction='none')
    trainer = torch.optim.SGD(net.parameters(), lr=0.5)
    losses = []
    for _epoch in range(5):
        trainer.zero_grad()
        l = loss(net(x_train, keys, values), y_train)  # noqa: E741
        l.sum().backward()
        trainer.step()
        losses.append(float(l.sum()))
    # Shape of `keys`: (`n_test`, `n_train`), where each column contains the same
    # training inputs (i.e., same keys)
    keys = x_train.repeat((n_test, 1))
    # Shape of `value`: (`n_test`, `n_train`)
    values = y_train.repeat((n_test, 1))
    y_hat = net(x_test, keys, values).unsqueeze(1).detach()
    out.update(losses=losses, w=net.w, y_hat=y_hat,
               weights=net.attention_weights.unsqueeze(0).unsqueeze(0))
    return out


def test_d2l_nadaraya_watson():
    run_both(d2l_nadaraya_watson)


# -- 19. d2l 11.7 the Transformer from scratch: PositionWiseFFN, AddNorm (LayerNorm beside
#        BatchNorm1d), EncoderBlock and TransformerEncoder (blocks added by add_module, their
#        attention weights kept), DecoderBlock with its state[2][i] key-value cache and the
#        torch.arange(1, n + 1).repeat(batch, 1) valid lengths, torch.cat(..., axis=1), trained a
#        few steps on a toy reversal task, then greedy prediction --------------------------------

def d2l_transformer(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    out = {}
    MultiHeadAttention, PositionalEncoding = d2l_multihead_modules(torch)
    EncoderDecoder, _, _, _ = d2l_encoder_decoder_modules(torch)

    class PositionWiseFFN(nn.Module):
        """Positionwise feed-forward network."""

        def __init__(self, ffn_num_input, ffn_num_hiddens, ffn_num_outputs, **kwargs):
            super(PositionWiseFFN, self).__init__(**kwargs)
            self.dense1 = nn.Linear(ffn_num_input, ffn_num_hiddens)
            self.relu = nn.ReLU()
            self.dense2 = nn.Linear(ffn_num_hiddens, ffn_num_outputs)

        def forward(self, X):
            return self.dense2(self.relu(self.dense1(X)))

    ffn = side.weights(PositionWiseFFN(4, 4, 8))
    ffn.eval()
    out["ffn"] = ffn(torch.ones((2, 3, 4)))[0]
    ln = nn.LayerNorm(2)
    bn = nn.BatchNorm1d(2)
    X = torch.tensor([[1, 2], [2, 3]], dtype=torch.float32)
    # Compute mean and variance from `X` in the training mode
    out["ln_bn"] = [ln(X), bn(X)]

    class AddNorm(nn.Module):
        """Residual connection followed by layer normalization."""

        def __init__(self, normalized_shape, dropout, **kwargs):
            super(AddNorm, self).__init__(**kwargs)
            self.dropout = nn.Dropout(dropout)
            self.ln = nn.LayerNorm(normalized_shape)

        def forward(self, X, Y):
            return self.ln(self.dropout(Y) + X)

    add_norm = AddNorm([3, 4], 0.5)
    add_norm.eval()
    out["add_norm"] = add_norm(torch.ones((2, 3, 4)), torch.ones((2, 3, 4)))

    class EncoderBlock(nn.Module):
        """Transformer encoder block."""

        def __init__(self, key_size, query_size, value_size, num_hiddens,
                     norm_shape, ffn_num_input, ffn_num_hiddens, num_heads,
                     dropout, use_bias=False, **kwargs):
            super(EncoderBlock, self).__init__(**kwargs)
            self.attention = MultiHeadAttention(
                key_size, query_size, value_size, num_hiddens, num_heads, dropout,
                use_bias)
            self.addnorm1 = AddNorm(norm_shape, dropout)
            self.ffn = PositionWiseFFN(
                ffn_num_input, ffn_num_hiddens, num_hiddens)
            self.addnorm2 = AddNorm(norm_shape, dropout)

        def forward(self, X, valid_lens):
            Y = self.addnorm1(X, self.attention(X, X, X, valid_lens))
            return self.addnorm2(Y, self.ffn(Y))

    X = torch.ones((2, 100, 24))
    valid_lens = torch.tensor([3, 2])
    encoder_blk = side.weights(EncoderBlock(24, 24, 24, 24, [100, 24], 24, 48, 8, 0.5))
    encoder_blk.eval()
    out["encoder_blk"] = encoder_blk(X, valid_lens)[:, :3]

    class TransformerEncoder(nn.Module):
        """Transformer encoder."""

        def __init__(self, vocab_size, key_size, query_size, value_size,
                     num_hiddens, norm_shape, ffn_num_input, ffn_num_hiddens,
                     num_heads, num_layers, dropout, use_bias=False, **kwargs):
            super(TransformerEncoder, self).__init__(**kwargs)
            self.num_hiddens = num_hiddens
            self.embedding = nn.Embedding(vocab_size, num_hiddens)
            self.pos_encoding = PositionalEncoding(num_hiddens, dropout)
            self.blks = nn.Sequential()
            for i in range(num_layers):
                self.blks.add_module("block" + str(i),
                                     EncoderBlock(key_size, query_size, value_size, num_hiddens,
                                                  norm_shape, ffn_num_input, ffn_num_hiddens,
                                                  num_heads, dropout, use_bias))

        def forward(self, X, valid_lens, *args):
            # Since positional encoding values are between -1 and 1, the embedding
            # values are multiplied by the square root of the embedding dimension
            # to rescale before they are summed up
            X = self.pos_encoding(self.embedding(X) * math.sqrt(self.num_hiddens))
            self.attention_weights = [None] * len(self.blks)
            for i, blk in enumerate(self.blks):
                X = blk(X, valid_lens)
                self.attention_weights[
                    i] = blk.attention.attention.attention_weights
            return X

    class DecoderBlock(nn.Module):
        # The `i`-th block in the decoder
        def __init__(self, key_size, query_size, value_size, num_hiddens,
                     norm_shape, ffn_num_input, ffn_num_hiddens, num_heads,
                     dropout, i, **kwargs):
            super(DecoderBlock, self).__init__(**kwargs)
            self.i = i
            self.attention1 = MultiHeadAttention(
                key_size, query_size, value_size, num_hiddens, num_heads, dropout)
            self.addnorm1 = AddNorm(norm_shape, dropout)
            self.attention2 = MultiHeadAttention(
                key_size, query_size, value_size, num_hiddens, num_heads, dropout)
            self.addnorm2 = AddNorm(norm_shape, dropout)
            self.ffn = PositionWiseFFN(ffn_num_input, ffn_num_hiddens,
                                       num_hiddens)
            self.addnorm3 = AddNorm(norm_shape, dropout)

        def forward(self, X, state):
            enc_outputs, enc_valid_lens = state[0], state[1]
            # During training, all the tokens of any output sequence are processed
            # at the same time, so `state[2][self.i]` is `None` as initialized.
            # When decoding any output sequence token by token during prediction,
            # `state[2][self.i]` contains representations of the decoded output at
            # the `i`-th block up to the current time step
            if state[2][self.i] is None:
                key_values = X
            else:
                key_values = torch.cat((state[2][self.i], X), axis=1)
            state[2][self.i] = key_values
            if self.training:
                batch_size, num_steps, _ = X.shape
                # Shape of `dec_valid_lens`: (`batch_size`, `num_steps`), where
                # every row is [1, 2, ..., `num_steps`]
                dec_valid_lens = torch.arange(
                    1, num_steps + 1, device=X.device).repeat(batch_size, 1)
            else:
                dec_valid_lens = None
            # Self-attention
            X2 = self.attention1(X, key_values, key_values, dec_valid_lens)
            Y = self.addnorm1(X, X2)
            # Encoder-decoder attention. Shape of `enc_outputs`:
            # (`batch_size`, `num_steps`, `num_hiddens`)
            Y2 = self.attention2(Y, enc_outputs, enc_outputs, enc_valid_lens)
            Z = self.addnorm2(Y, Y2)
            return self.addnorm3(Z, self.ffn(Z)), state

    class TransformerDecoder(nn.Module):
        def __init__(self, vocab_size, key_size, query_size, value_size,
                     num_hiddens, norm_shape, ffn_num_input, ffn_num_hiddens,
                     num_heads, num_layers, dropout, **kwargs):
            super(TransformerDecoder, self).__init__(**kwargs)
            self.num_hiddens = num_hiddens
            self.num_layers = num_layers
            self.embedding = nn.Embedding(vocab_size, num_hiddens)
            self.pos_encoding = PositionalEncoding(num_hiddens, dropout)
            self.blks = nn.Sequential()
            for i in range(num_layers):
                self.blks.add_module("block" + str(i),
                                     DecoderBlock(key_size, query_size, value_size, num_hiddens,
                                                  norm_shape, ffn_num_input, ffn_num_hiddens,
                                                  num_heads, dropout, i))
            self.dense = nn.Linear(num_hiddens, vocab_size)

        def init_state(self, enc_outputs, enc_valid_lens, *args):
            return [enc_outputs, enc_valid_lens, [None] * self.num_layers]

        def forward(self, X, state):
            X = self.pos_encoding(self.embedding(X) * math.sqrt(self.num_hiddens))
            self._attention_weights = [[None] * len(self.blks) for _ in range(2)]
            for i, blk in enumerate(self.blks):
                X, state = blk(X, state)
                # Decoder self-attention weights
                self._attention_weights[0][
                    i] = blk.attention1.attention.attention_weights
                # Encoder-decoder attention weights
                self._attention_weights[1][
                    i] = blk.attention2.attention.attention_weights
            return self.dense(X), state

        @property
        def attention_weights(self):
            return self._attention_weights

    num_hiddens, num_layers, dropout, batch_size, num_steps = 16, 2, 0.0, 4, 5
    lr, num_epochs = 0.005, 2
    ffn_num_input, ffn_num_hiddens, num_heads = 16, 32, 4
    key_size, query_size, value_size = 16, 16, 16
    norm_shape = [16]
    pad, bos, eos, vocab_size = 0, 1, 2, 9
    vocab = {'<pad>': pad, '<bos>': bos, '<eos>': eos}
    data = toy_reversal_data(side, 8, vocab_size, num_steps, pad, eos)
    data_iter = torch.utils.data.DataLoader(data, batch_size=batch_size)
    encoder = TransformerEncoder(
        vocab_size, key_size, query_size, value_size, num_hiddens,
        norm_shape, ffn_num_input, ffn_num_hiddens, num_heads,
        num_layers, dropout)
    decoder = TransformerDecoder(
        vocab_size, key_size, query_size, value_size, num_hiddens,
        norm_shape, ffn_num_input, ffn_num_hiddens, num_heads,
        num_layers, dropout)
    net = EncoderDecoder(encoder, decoder)
    device = torch.device('cpu')
    _, losses = d2l_train_seq2seq(side, net, data_iter, lr, num_epochs, vocab, device, clip=False)
    out.update(losses=losses, state=net.state_dict(),
               train_attention=net.decoder.attention_weights[1][0])
    # greedy prediction, the decoder's key-value cache growing a step at a time
    output_seq, _, dec_state = d2l_predict_seq2seq(torch, net, [5, 6, 7, eos], vocab, vocab,
                                                   num_steps, device)
    out.update(prediction=output_seq, cache=[kv for kv in dec_state[2]],
               enc_attention=net.encoder.attention_weights[0])
    return out


@COMPILED_FULL
def test_d2l_transformer(compiled):
    run_both(d2l_transformer, compiled=compiled)


# -- 20. d2l 3.6/3.7 underfitting and overfitting (polynomial features scaled by math.gamma,
#        evaluate_loss), weight decay from scratch (l2_penalty, init_params with torch.normal
#        and requires_grad=True) and concisely (param groups with their own weight_decay), and
#        the house prices chapter's k-fold log_rmse (torch.clamp(preds, 1, float('inf'))) on Adam -

def d2l_generalization(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    out = {}

    def load_array(data_arrays, batch_size, is_train=True):
        dataset = torch.utils.data.TensorDataset(*data_arrays)
        return torch.utils.data.DataLoader(dataset, batch_size, shuffle=is_train)

    def evaluate_loss(net, data_iter, loss):
        """Evaluate the loss of a model on the given dataset."""
        metric = Accumulator(2)  # Sum of losses, no. of examples
        for X, y in data_iter:
            out = net(X)
            y = y.reshape(out.shape)
            l = loss(out, y)  # noqa: E741
            metric.add(l.sum(), l.numel())
        return metric[0] / metric[1]

    # polynomial regression
    max_degree = 20  # Maximum degree of the polynomial
    n_train, n_test = 40, 40  # Training and test dataset sizes
    true_w = np.zeros(max_degree)  # Allocate lots of empty space
    true_w[0:4] = np.array([5, 1.2, -3.4, 5.6])
    rng = np.random.default_rng(9)
    features = rng.normal(size=(n_train + n_test, 1))
    rng.shuffle(features)
    poly_features = np.power(features, np.arange(max_degree).reshape(1, -1))
    for i in range(max_degree):
        poly_features[:, i] /= math.gamma(i + 1)  # `gamma(n)` = (n-1)!
    # Shape of `labels`: (`n_train` + `n_test`,)
    labels = np.dot(poly_features, true_w)
    labels += rng.normal(scale=0.1, size=labels.shape)
    # Convert from NumPy ndarrays to tensors
    true_w, features, poly_features, labels = [
        torch.tensor(x, dtype=torch.float32) for x in [true_w, features, poly_features, labels]]
    out["first"] = [features[:2], poly_features[:2, :], labels[:2]]

    def train(train_features, test_features, train_labels, test_labels, num_epochs=4):
        loss = nn.MSELoss(reduction='none')
        input_shape = train_features.shape[-1]
        # Switch off the bias since we already catered for it in the polynomial features
        net = nn.Sequential(nn.Linear(input_shape, 1, bias=False))
        side.weights(net)
        batch_size = min(10, train_labels.shape[0])
        train_iter = load_array((train_features, train_labels.reshape(-1, 1)), batch_size,
                                is_train=False)
        test_iter = load_array((test_features, test_labels.reshape(-1, 1)), batch_size,
                               is_train=False)
        trainer = torch.optim.SGD(net.parameters(), lr=0.01)
        losses = []
        for _epoch in range(num_epochs):
            for X, y in train_iter:
                trainer.zero_grad()
                l = loss(net(X), y)  # noqa: E741
                l.mean().backward()
                trainer.step()
            losses.append([evaluate_loss(net, train_iter, loss),
                           evaluate_loss(net, test_iter, loss)])
        return losses, net[0].weight.data.numpy()

    out["third_order"] = train(poly_features[:n_train, :4], poly_features[n_train:, :4],
                               labels[:n_train], labels[n_train:])
    out["linear"] = train(poly_features[:n_train, :2], poly_features[n_train:, :2],
                          labels[:n_train], labels[n_train:])
    out["high_order"] = train(poly_features[:n_train, :], poly_features[n_train:, :],
                              labels[:n_train], labels[n_train:])

    # weight decay
    n_train, n_test, num_inputs, batch_size = 20, 40, 50, 5
    true_w, true_b = torch.ones((num_inputs, 1)) * 0.01, 0.05
    X = side.draw(torch.normal, 0, 1, (n_train + n_test, num_inputs))
    y = torch.matmul(X, true_w) + true_b
    y += side.draw(torch.normal, 0, 0.01, y.shape)
    train_iter = load_array((X[:n_train], y[:n_train]), batch_size, is_train=False)
    test_iter = load_array((X[n_train:], y[n_train:]), batch_size, is_train=False)

    def init_params():
        w = side.draw(torch.normal, 0, 1, size=(num_inputs, 1)).requires_grad_(True)
        b = torch.zeros(1, requires_grad=True)
        return [w, b]

    def l2_penalty(w):
        return torch.sum(w.pow(2)) / 2

    def linreg(X, w, b):
        return torch.matmul(X, w) + b

    def squared_loss(y_hat, y):
        return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2

    def train_scratch(lambd):
        w, b = init_params()
        net, loss = lambda X: linreg(X, w, b), squared_loss  # noqa: E731
        num_epochs, lr = 5, 0.003
        curve = []
        for _epoch in range(num_epochs):
            for X, y in train_iter:
                # The L2 norm penalty term has been added, and broadcasting
                # makes `l2_penalty(w)` a vector whose length is `batch_size`
                l = loss(net(X), y) + lambd * l2_penalty(w)  # noqa: E741
                l.sum().backward()
                d2l_sgd(torch, [w, b], lr, batch_size)
            curve.append([evaluate_loss(net, train_iter, loss),
                          evaluate_loss(net, test_iter, loss)])
        return curve, torch.norm(w).item()

    out["scratch"] = [train_scratch(lambd=0), train_scratch(lambd=3)]

    def train_concise(wd):
        net = nn.Sequential(nn.Linear(num_inputs, 1))
        for param in net.parameters():
            param.data.normal_()
        side.weights(net)
        loss = nn.MSELoss(reduction='none')
        num_epochs, lr = 5, 0.003
        # The bias parameter has not decayed
        trainer = torch.optim.SGD([
            {"params": net[0].weight, 'weight_decay': wd},
            {"params": net[0].bias}], lr=lr)
        curve = []
        for _epoch in range(num_epochs):
            for X, y in train_iter:
                trainer.zero_grad()
                l = loss(net(X), y)  # noqa: E741
                l.mean().backward()
                trainer.step()
            curve.append([evaluate_loss(net, train_iter, loss),
                          evaluate_loss(net, test_iter, loss)])
        return curve, net[0].weight.norm().item()

    out["concise"] = [train_concise(0), train_concise(3)]

    # 5.7 predicting house prices: k-fold cross-validation of log_rmse on Adam
    n, d = 30, 6
    features = side.draw(torch.randn, n, d)
    labels = (torch.exp(features @ side.draw(torch.rand, d, 1) * 0.3 + 11)
              + side.draw(torch.rand, n, 1))
    loss = nn.MSELoss()
    in_features = features.shape[1]

    def get_net():
        net = nn.Sequential(nn.Linear(in_features, 1))
        return side.weights(net)

    def log_rmse(net, features, labels):
        # To further stabilize the value when the logarithm is taken, set the
        # value less than 1 as 1
        clipped_preds = torch.clamp(net(features), 1, float('inf'))
        rmse = torch.sqrt(loss(torch.log(clipped_preds), torch.log(labels)))
        return rmse.item()

    def train_house(net, train_features, train_labels, test_features, test_labels,
                    num_epochs, learning_rate, weight_decay, batch_size):
        train_ls, test_ls = [], []
        train_iter = load_array((train_features, train_labels), batch_size, is_train=False)
        # The Adam optimization algorithm is used here
        optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate,
                                     weight_decay=weight_decay)
        for _epoch in range(num_epochs):
            for X, y in train_iter:
                optimizer.zero_grad()
                l = loss(net(X), y)  # noqa: E741
                l.backward()
                optimizer.step()
            train_ls.append(log_rmse(net, train_features, train_labels))
            if test_labels is not None:
                test_ls.append(log_rmse(net, test_features, test_labels))
        return train_ls, test_ls

    def get_k_fold_data(k, i, X, y):
        assert k > 1
        fold_size = X.shape[0] // k
        X_train, y_train = None, None
        for j in range(k):
            idx = slice(j * fold_size, (j + 1) * fold_size)
            X_part, y_part = X[idx, :], y[idx]
            if j == i:
                X_valid, y_valid = X_part, y_part
            elif X_train is None:
                X_train, y_train = X_part, y_part
            else:
                X_train = torch.cat([X_train, X_part], 0)
                y_train = torch.cat([y_train, y_part], 0)
        return X_train, y_train, X_valid, y_valid

    def k_fold(k, X_train, y_train, num_epochs, learning_rate, weight_decay, batch_size):
        train_l_sum, valid_l_sum = 0, 0
        for i in range(k):
            data = get_k_fold_data(k, i, X_train, y_train)
            net = get_net()
            train_ls, valid_ls = train_house(net, *data, num_epochs, learning_rate,
                                             weight_decay, batch_size)
            train_l_sum += train_ls[-1]
            valid_l_sum += valid_ls[-1]
        return train_l_sum / k, valid_l_sum / k

    out["k_fold"] = k_fold(3, features, labels, 4, 5, 0, 8)
    return out


def test_d2l_generalization():
    run_both(d2l_generalization)


# -- 21. d2l 9.6 concise RNNs (RNNModel over nn.RNN/GRU/LSTM with F.one_hot(inputs.T.long()),
#        begin_state by the layer's num_layers, bidirectional and hidden_size, state.detach_() on
#        the layer's own state between batches) and 10.7 seq2seq on nn.GRU (the context
#        state[-1].repeat(X.shape[0], 1, 1), MaskedSoftmaxCELoss) with its BLEU --------------------

def d2l_concise_rnn(side: Side5, kind: str) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    out = {}
    text = "the time traveller for so it will be convenient to speak of him was expounding a " \
           "recondite matter to us his grey eyes shone and twinkled"
    idx_to_token = ['<unk>'] + sorted(set(text))
    token_to_idx = {token: idx for idx, token in enumerate(idx_to_token)}
    corpus = [token_to_idx[t] for t in text]
    vocab_size, num_hiddens = len(idx_to_token), 24
    device = torch.device('cpu')

    class RNNModel(nn.Module):
        """The RNN model."""

        def __init__(self, rnn_layer, vocab_size, **kwargs):
            super(RNNModel, self).__init__(**kwargs)
            self.rnn = rnn_layer
            self.vocab_size = vocab_size
            self.num_hiddens = self.rnn.hidden_size
            # If the RNN is bidirectional (to be introduced later),
            # `num_directions` should be 2, else it should be 1.
            if not self.rnn.bidirectional:
                self.num_directions = 1
                self.linear = nn.Linear(self.num_hiddens, self.vocab_size)
            else:
                self.num_directions = 2
                self.linear = nn.Linear(self.num_hiddens * 2, self.vocab_size)

        def forward(self, inputs, state):
            X = F.one_hot(inputs.T.long(), self.vocab_size)
            X = X.to(torch.float32)
            Y, state = self.rnn(X, state)
            # The fully connected layer will first change the shape of `Y` to
            # (`num_steps` * `batch_size`, `num_hiddens`). Its output shape is
            # (`num_steps` * `batch_size`, `vocab_size`).
            output = self.linear(Y.reshape((-1, Y.shape[-1])))
            return output, state

        def begin_state(self, device, batch_size=1):
            if not isinstance(self.rnn, nn.LSTM):
                # `nn.GRU` takes a tensor as hidden state
                return torch.zeros((self.num_directions * self.rnn.num_layers,
                                    batch_size, self.num_hiddens), device=device)
            else:
                # `nn.LSTM` takes a tuple of hidden states
                return (torch.zeros((
                    self.num_directions * self.rnn.num_layers,
                    batch_size, self.num_hiddens), device=device),
                    torch.zeros((
                        self.num_directions * self.rnn.num_layers,
                        batch_size, self.num_hiddens), device=device))

    rnn_layer = {"rnn": lambda: nn.RNN(vocab_size, num_hiddens),
                 "gru": lambda: nn.GRU(vocab_size, num_hiddens, num_layers=2),
                 "lstm": lambda: nn.LSTM(vocab_size, num_hiddens, bidirectional=True)}[kind]()
    net = side.weights(RNNModel(rnn_layer, vocab_size=vocab_size))
    net = net.to(device)
    model = side.compile(net)
    state = net.begin_state(device, batch_size=2)
    X = torch.arange(12).reshape((2, 6))
    Y, state_new = model(X, state)
    out["first"] = [Y, state_new]

    out["predicted"] = d2l_predict_ch8(torch, 'time ', 8, model, token_to_idx, device)

    def seq_data_iter_random(corpus, batch_size, num_steps):
        """Generate a minibatch of subsequences using random sampling."""
        corpus = corpus[random.randint(0, num_steps - 1):]
        num_subseqs = (len(corpus) - 1) // num_steps
        initial_indices = list(range(0, num_subseqs * num_steps, num_steps))
        random.shuffle(initial_indices)

        def data(pos):
            return corpus[pos: pos + num_steps]

        num_batches = num_subseqs // batch_size
        for i in range(0, batch_size * num_batches, batch_size):
            initial_indices_per_batch = initial_indices[i: i + batch_size]
            X = [data(j) for j in initial_indices_per_batch]
            Y = [data(j + 1) for j in initial_indices_per_batch]
            yield torch.tensor(X), torch.tensor(Y)

    loss = nn.CrossEntropyLoss()
    updater = torch.optim.SGD(net.parameters(), 1)
    random.seed(11)
    ppls = []
    for epoch in range(3):
        use_random_iter = epoch == 2
        if use_random_iter:
            train_iter = seq_data_iter_random(corpus, batch_size=3, num_steps=5)
        else:
            train_iter = (
                (torch.tensor([corpus[i:i + 5] for i in range(b, b + 30, 10)]),
                 torch.tensor([corpus[i + 1:i + 6] for i in range(b, b + 30, 10)]))
                for b in range(0, 10, 5))
        ppls.append(d2l_train_epoch_ch8(torch, model, train_iter, loss, updater, device,
                                        use_random_iter))
    out.update(ppls=ppls, state=net.state_dict(),
               predicted_after=d2l_predict_ch8(torch, 'time ', 8, model, token_to_idx, device))
    return out


@COMPILED_FULL
@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_d2l_concise_rnn(kind, compiled):
    run_both(lambda side: d2l_concise_rnn(side, kind), compiled=compiled)


def d2l_seq2seq(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    out = {}
    EncoderDecoder, _, Seq2SeqEncoder, _ = d2l_encoder_decoder_modules(torch)

    class Seq2SeqDecoder(nn.Module):
        """The RNN decoder for sequence to sequence learning."""

        def __init__(self, vocab_size, embed_size, num_hiddens, num_layers, dropout=0,
                     **kwargs):
            super(Seq2SeqDecoder, self).__init__(**kwargs)
            self.embedding = nn.Embedding(vocab_size, embed_size)
            self.rnn = nn.GRU(embed_size + num_hiddens, num_hiddens, num_layers,
                              dropout=dropout)
            self.dense = nn.Linear(num_hiddens, vocab_size)

        def init_state(self, enc_outputs, *args):
            return enc_outputs[1]

        def forward(self, X, state):
            # The output `X` shape: (`num_steps`, `batch_size`, `embed_size`)
            X = self.embedding(X).permute(1, 0, 2)
            # Broadcast `context` so it has the same `num_steps` as `X`
            context = state[-1].repeat(X.shape[0], 1, 1)
            X_and_context = torch.cat((X, context), 2)
            output, state = self.rnn(X_and_context, state)
            output = self.dense(output).permute(1, 0, 2)
            # `output` shape: (`batch_size`, `num_steps`, `vocab_size`)
            # `state` shape: (`num_layers`, `batch_size`, `num_hiddens`)
            return output, state

    encoder = side.weights(Seq2SeqEncoder(vocab_size=10, embed_size=8, num_hiddens=16,
                                          num_layers=2))
    encoder.eval()
    decoder = side.weights(Seq2SeqDecoder(vocab_size=10, embed_size=8, num_hiddens=16,
                                          num_layers=2))
    decoder.eval()
    X = torch.zeros((4, 7), dtype=torch.long)
    output, state = encoder(X)
    state = decoder.init_state(encoder(X))
    dec_output, state = decoder(X, state)
    out["shapes"] = [tuple(output.shape), tuple(state.shape), tuple(dec_output.shape)]
    out["dec_output"] = dec_output
    pad, bos, eos, vocab_size, num_steps = 0, 1, 2, 10, 5
    vocab = {'<pad>': pad, '<bos>': bos, '<eos>': eos}
    device = torch.device('cpu')
    data = toy_reversal_data(side, 12, vocab_size, num_steps, pad, eos)
    data_iter = torch.utils.data.DataLoader(data, batch_size=4)
    net = EncoderDecoder(Seq2SeqEncoder(vocab_size, 8, 16, 2),
                         Seq2SeqDecoder(vocab_size, 8, 16, 2))
    _, out["losses"] = d2l_train_seq2seq(side, net, data_iter, 0.005, 2, vocab, device,
                                         clip=False)

    def bleu(pred_seq, label_seq, k):
        """Compute the BLEU."""
        pred_tokens, label_tokens = pred_seq.split(' '), label_seq.split(' ')
        len_pred, len_label = len(pred_tokens), len(label_tokens)
        score = math.exp(min(0, 1 - len_label / len_pred))
        for n in range(1, k + 1):
            num_matches, label_subs = 0, collections.defaultdict(int)
            for i in range(len_label - n + 1):
                label_subs[' '.join(label_tokens[i: i + n])] += 1
            for i in range(len_pred - n + 1):
                if label_subs[' '.join(pred_tokens[i: i + n])] > 0:
                    num_matches += 1
                    label_subs[' '.join(pred_tokens[i: i + n])] -= 1
            score *= math.pow(num_matches / (len_pred - n + 1), math.pow(0.5, n))
        return score

    scores = []
    for src_tokens in ([5, 6, 7], [3, 4, 8, 9]):
        output_seq, _, _ = d2l_predict_seq2seq(torch, net, src_tokens + [eos], vocab, vocab,
                                               num_steps, device)
        truth = ' '.join(map(str, src_tokens[::-1]))
        k = min(2, len(output_seq))  # (d2l's bleu divides by zero past the prediction)
        scores.append([output_seq, bleu(' '.join(map(str, output_seq)), truth, k) if k else 0])
    out["predictions"] = scores
    return out


def test_d2l_seq2seq():
    run_both(d2l_seq2seq)


# -- 22. the lectures' asides: part 1's broadcasting trap (P / P.sum(1) divides the columns),
#        part 2's numerics (exp of int64 logits overflowing where F.cross_entropy does not),
#        part 3's expected initial loss, softmax of equal logits, and the kaiming scale of a
#        product (x @ w / 10**0.5 keeping the std), calculate_gain('tanh') -------------------------

def karpathy_asides(side: Side5) -> dict:
    torch = side.lib
    F = torch.nn.functional
    out = {}
    N = torch.zeros((27, 27), dtype=torch.int32)
    N[0, 1:] = torch.arange(1, 27, dtype=torch.int32)
    N[1:, 0] = 1
    P = (N + 1).float()
    out["right"] = P / P.sum(1, keepdim=True)
    out["wrong"] = P / P.sum(1)  # (27,) broadcasts as a row: divides the columns
    assert tuple(P.sum(1, keepdim=True).shape) == (27, 1) and tuple(P.sum(1).shape) == (27,)
    logits = torch.tensor([-100, -3, 0, 100])
    counts = logits.exp()
    probs = counts / counts.sum()
    assert logits.dtype == torch.int64 and counts.dtype == torch.float32
    out["overflow"] = [counts, probs, torch.isnan(probs)]
    logits = torch.tensor([-2, -3, 0, 5]) - 5
    out["shifted"] = [logits, logits.exp() / logits.exp().sum(),
                      F.cross_entropy(torch.tensor([[-100.0, -3, 0, 100]]), torch.tensor([3]))]
    out["expected_initial"] = -torch.tensor(1 / 27.0).log()
    logits = torch.tensor([0.0, 0.0, 0.0, 0.0])
    probs = torch.softmax(logits, dim=0)
    out["uniform"] = [probs, -probs[2].log()]
    logits = side.draw(torch.randn, 4) * 10
    probs = torch.softmax(logits, dim=0)
    out["confident"] = [probs, -probs[2].log()]
    x = side.draw(torch.randn, 1000, 10)
    w = side.draw(torch.randn, 10, 200) / 10**0.5
    y = x @ w
    out["kaiming"] = [x.mean(), x.std(), y.mean(), y.std()]
    out["gain"] = [torch.nn.init.calculate_gain('tanh'), torch.nn.init.calculate_gain('relu'),
                   torch.nn.init.calculate_gain('linear')]
    w = torch.empty(200, 30)
    torch.nn.init.kaiming_normal_(w, mode='fan_in', nonlinearity='tanh')
    assert abs(w.std().item() - (5 / 3) / 30**0.5) < 0.02
    h = torch.tanh(side.draw(torch.randn, 32, 200) * 3)
    out["saturation"] = [(h.abs() > 0.99).float().mean(), (h.abs() > 0.99).sum(0)[:10],
                         (h.abs() > 0.99).all(0).any()]
    return out


def test_karpathy_asides():
    run_both(karpathy_asides)
