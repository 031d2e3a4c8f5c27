"""Porting sweep #10: Andrej Karpathy's "Neural Networks: Zero to Hero" notebooks and the d2l.ai
"from scratch" chapters, as their authors wrote them, only `torch` swapped for the side's
library, a hard-coded list of names in place of names.txt, tiny synthetic data in place of the
downloads and a few steps in place of thousands: micrograd's checks against torch, makemore part 1
(bigram counts in an int32 table, sampling from a seeded Generator, the neural bigram trained by
hand), part 2 (the MLP with C[X] lookups, minibatches and the learning-rate search), part 3
(BatchNorm by hand, the Linear/BatchNorm1d/Tanh classes, activation and update-to-data
statistics), part 4 (the manual backward pass compared with autograd by `cmp`), part 5 (the
WaveNet of FlattenConsecutive layers); d2l's linear and softmax regression, dropout, the RNN, GRU
and LSTM, batch normalization, attention scoring, Bahdanau attention, multi-head attention and
positional encoding, each from scratch.

Each program is written once over a `torch` argument and run on torch and on dlg from the same
weights, data and random draws (sweep #5's harness: `side.draw` replays torch's draws, seeded
Generators included); the training ones also through dlg.compile (`side.compile`) where a user
would compile.

Tolerances: the harness's rtol 1e-4 / atol 1e-5 unless a test says why it needs another."""

from __future__ import annotations

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
    chars = sorted(list(set(''.join(words))))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi['.'] = 0
    itos = {i: s for s, i in stoi.items()}
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
    for i in range(5):
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
    chars = sorted(list(set(''.join(words))))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi['.'] = 0
    itos = {i: s for s, i in stoi.items()}
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
        x = xs[i].item()
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
    for k in range(10):
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
    for i in range(5):
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
    chars = sorted(list(set(''.join(words))))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi['.'] = 0
    itos = {i: s for s, i in stoi.items()}
    # build the dataset
    block_size = 3  # context length: how many characters do we take to predict the next one?

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
    n1 = int(0.8 * len(words))
    n2 = int(0.9 * len(words))
    Xtr, Ytr = build_dataset(words[:n1])
    Xdev, Ydev = build_dataset(words[n1:n2])
    Xte, Yte = build_dataset(words[n2:])
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
               emb_view=bool((emb.view(-1, 6) == cat1).all()))
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


def test_makemore_mlp():
    run_both(makemore_mlp)


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
    chars = sorted(list(set(''.join(words))))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi['.'] = 0
    vocab_size = len(stoi)
    block_size = 3

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
    n1 = int(0.8 * len(words))
    Xtr, Ytr = build_dataset(words[:n1])
    Xdev, Ydev = build_dataset(words[n1:])

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
    # The classes we create here are the same API as nn.Module in PyTorch
    class Linear:

        def __init__(self, fan_in, fan_out, bias=True):
            self.weight = side.draw(torch.randn, (fan_in, fan_out), generator=g) / fan_in**0.5
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
                xmean = x.mean(0, keepdim=True)  # batch mean
                xvar = x.var(0, keepdim=True)  # batch variance
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

    n_hidden = 50  # the number of neurons in the hidden layer of the MLP
    g = torch.Generator().manual_seed(2147483647)  # for reproducibility
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
    for i, p in enumerate(parameters):
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
