"""Porting sweep #7: PyTorch programs from areas sweeps #4-#6 left out (a tabular MLP with
categorical embeddings on AdamW and a warmup-cosine LambdaLR, a Kim-style 1-d CNN text classifier
with EmbeddingBag, a denoising conv autoencoder with ConvTranspose2d and PixelShuffle, a packed
GRU-encoder/LSTM-decoder seq2seq with ignore_index, a mixture density network, a neural ODE on a
hand-written RK4, Gaussian-process regression on cdist/cholesky/cholesky_solve, multi-task heads
in a ModuleDict with KLDiv/cosine-embedding/margin-ranking/Huber losses, label-smoothed weighted
cross entropy with manual gradient accumulation, a torch.save/dlg.save round trip of a whole
training state, a top-k mixture of experts, MAML through torch.func.functional_call, DDPM,
a VQ-VAE with an EMA codebook, PixelCNN's masked convolutions), each
written once over a `torch` argument and run on torch and on dlg from the same weights, data
and random draws (sweep #5's harness); some also through dlg.compile (`side.compile`). Then
three models written as .dlg files (sweep7/) driven through dlgc and dlg.load against PyTorch
twins.

Tolerances: the harness's rtol 1e-4 / atol 1e-5 (float32 sums in another order over a few
training steps) unless a test says why it needs another."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest

import dlg
from dlg.cli import main as dlgc_main
from tests.frontend.test_sweep5_programs import (COMPILED, COMPILED_FULL, Side5, grads,
                                                  run_both)

torch = pytest.importorskip("torch")


def replay_dropout(side: Side5, p: float):
    """nn.Dropout(p) whose mask is drawn on torch and replayed on dlg (`side.draw`), so both
    runs drop the same units; nn.Dropout itself is checked in test_dropout_statistics."""
    torch = side.lib

    class ReplayDropout(torch.nn.Module):
        def forward(self, x):
            if not self.training:
                return x
            keep = side.draw(torch.bernoulli, torch.full(tuple(x.shape), 1 - p))
            return x * keep / (1 - p)

    return ReplayDropout()


def test_dropout_statistics():
    """dlg's nn.Dropout drops about p of the units in training, scales the kept ones by
    1 / (1 - p), and is the identity in eval mode."""
    drop = dlg.nn.Dropout(0.3)
    x = dlg.ones(200, 50)
    y = drop(x).numpy()
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    assert abs((y == 0).mean() - 0.3) < 0.03
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())


# -- 1. tabular MLP: embeddings per categorical column, BatchNorm1d, AdamW, warmup + cosine ------

def tabular(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    cardinalities, n_cont = [5, 3, 7], 4

    class TabularModel(nn.Module):
        """fastai's TabularModel: an embedding per categorical column (size by fastai's rule),
        BatchNorm on the continuous ones, Linear-ReLU-BatchNorm-Dropout blocks."""

        def __init__(self, emb_szs, n_cont, out_sz, layers):
            super().__init__()
            self.embeds = nn.ModuleList([nn.Embedding(ni, nf) for ni, nf in emb_szs])
            self.emb_drop = replay_dropout(side, 0.1)
            self.bn_cont = nn.BatchNorm1d(n_cont)
            n_emb = sum(e.embedding_dim for e in self.embeds)
            sizes = [n_emb + n_cont] + layers
            blocks = []
            for n_in, n_out in zip(sizes[:-1], sizes[1:]):
                blocks += [nn.Linear(n_in, n_out), nn.ReLU(inplace=True), nn.BatchNorm1d(n_out),
                           replay_dropout(side, 0.2)]
            self.layers = nn.Sequential(*blocks, nn.Linear(sizes[-1], out_sz))

        def forward(self, x_cat, x_cont):
            x = [e(x_cat[:, i]) for i, e in enumerate(self.embeds)]
            x = self.emb_drop(torch.cat(x, 1))
            x = torch.cat([x, self.bn_cont(x_cont)], 1)
            return self.layers(x)

    emb_szs = [(c, min(600, round(1.6 * c ** 0.56))) for c in cardinalities]
    rng = np.random.default_rng(71)
    n = 48
    x_cat = np.stack([rng.integers(0, c, n) for c in cardinalities], 1)
    x_cont = rng.standard_normal((n, n_cont)).astype(np.float32) * [1, 10, 0.1, 3]
    y = ((x_cat[:, 0] % 2) + (x_cont[:, 0] > 0)).astype(np.int64)
    x_cat, x_cont, y = side.data(x_cat), side.data(x_cont.astype(np.float32)), side.data(y)
    model = side.weights(TabularModel(emb_szs, n_cont, 3, [16, 8]))
    decay = [p for name, p in model.named_parameters() if p.ndim > 1 and "embeds" not in name]
    no_decay = [p for name, p in model.named_parameters()
                if not (p.ndim > 1 and "embeds" not in name)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=3e-3)
    warmup, total = 3, 9

    def lr_lambda(step):  # transformers' get_cosine_schedule_with_warmup
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    log: dict[str, list] = {"loss": [], "lr": []}
    for step in range(total):
        idx = slice((step % 3) * 16, (step % 3) * 16 + 16)
        model.train()
        loss = F.cross_entropy(model(x_cat[idx], x_cont[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        log["loss"].append(loss.item())
        log["lr"].append([g["lr"] for g in optimizer.param_groups])
    model.eval()
    with torch.no_grad():
        probs = F.softmax(model(x_cat, x_cont), dim=1)
    return {**log, "probs": probs, "weights": model.state_dict(), "grads": grads(model)}


def test_tabular_embeddings_adamw_warmup_cosine():
    run_both(tabular)


# -- 2. a Kim-style CNN text classifier: EmbeddingBag for a bag-of-words branch, Conv1d filters
#       of several widths, max over time, padding_idx -----------------------------------------

def text_cnn(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class TextCNN(nn.Module):
        def __init__(self, vocab, dim, n_filters, widths, n_classes):
            super().__init__()
            self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
            self.bag = nn.EmbeddingBag(vocab, 4, mode="mean")
            self.convs = nn.ModuleList([nn.Conv1d(dim, n_filters, w) for w in widths])
            self.dropout = replay_dropout(side, 0.5)
            self.fc = nn.Linear(n_filters * len(widths) + 4, n_classes)

        def forward(self, tokens, flat, offsets):
            emb = self.embedding(tokens).permute(0, 2, 1)  # (B, dim, T)
            pooled = [F.relu(conv(emb)).max(dim=2)[0] for conv in self.convs]
            bag = self.bag(flat, offsets)
            return self.fc(self.dropout(torch.cat(pooled + [bag], dim=1)))

    rng = np.random.default_rng(72)
    lengths = [7, 4, 9, 5, 9, 6]
    tokens = np.zeros((6, 9), np.int64)
    for b, n in enumerate(lengths):
        tokens[b, :n] = rng.integers(1, 30, n)
    flat = np.concatenate([tokens[b, :n] for b, n in enumerate(lengths)])
    offsets = np.cumsum([0] + lengths[:-1])
    labels = side.data(rng.integers(0, 2, 6))
    tokens, flat, offsets = side.data(tokens), side.data(flat), side.data(offsets)
    model = side.weights(TextCNN(30, 8, 5, [2, 3, 4], 2))
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    losses = []
    for _ in range(3):
        model.train()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(tokens, flat, offsets), labels)
        loss.backward()
        optimizer.step()
        with torch.no_grad():  # Kim's max-norm constraint on the classifier's rows
            norms = model.fc.weight.norm(dim=1, keepdim=True)
            model.fc.weight.mul_(torch.clamp(3.0 / norms, max=1.0))
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        predictions = model(tokens, flat, offsets).argmax(1)
    return {"losses": losses, "predictions": predictions, "weights": model.state_dict(),
            "embedding_pad_grad": model.embedding.weight.grad[0]}


def test_text_cnn_embedding_bag():
    run_both(text_cnn)


# -- 3. a denoising conv autoencoder: strided convs down, ConvTranspose2d and PixelShuffle up ----

def denoising_autoencoder(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class DAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(
                nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16),
                nn.LeakyReLU(0.2))  # a bias before BatchNorm has gradient 0 but for rounding,
            # which RMSprop's g / sqrt(v) blows up to steps of lr: torch and dlg then differ
            self.up1 = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
            self.up2 = nn.Sequential(nn.Conv2d(8, 4, 3, padding=1), nn.PixelShuffle(2))
            self.out = nn.ConvTranspose2d(1, 1, 3, stride=1, padding=1, output_padding=0)

        def forward(self, x):
            h = self.encoder(x)
            h = F.elu(self.up1(h))
            return torch.sigmoid(self.out(self.up2(h)))

    rng = np.random.default_rng(73)
    grid = np.linspace(-1, 1, 12, dtype=np.float32)
    clean = np.stack([np.exp(-((grid[:, None] - a) ** 2 + (grid[None] - b) ** 2) / 0.2)
                      for a, b in rng.uniform(-0.5, 0.5, (8, 2))])[:, None].astype(np.float32)
    clean = side.data(clean)
    model = side.weights(DAE())
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, momentum=0.5, centered=True)
    log: dict[str, list] = {"loss": [], "psnr": []}
    for _ in range(3):
        noise = side.draw(torch.randn_like, clean) * 0.2
        noisy = (clean + noise).clamp(0.0, 1.0)
        model.train()
        optimizer.zero_grad()
        loss = F.binary_cross_entropy(model(noisy), clean)
        loss.backward()
        optimizer.step()
        log["loss"].append(loss.item())
        model.eval()
        with torch.no_grad():
            mse = F.mse_loss(model(noisy), clean, reduction="none").mean(dim=(1, 2, 3))
            log["psnr"].append(-10 * torch.log10(mse))
    return {**log, "weights": model.state_dict(), "grads": grads(model)}


@COMPILED_FULL
def test_denoising_autoencoder(compiled):
    run_both(denoising_autoencoder, compiled=compiled)


# -- 4. seq2seq on packed sequences: a packed bidirectional GRU encoder, an LSTM decoder with
#       teacher forcing, padded targets ignored by cross entropy ---------------------------------

def packed_seq2seq(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    rnn = nn.utils.rnn
    PAD, BOS, V, H = 0, 1, 12, 8

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, 6, padding_idx=PAD)
            self.gru = nn.GRU(6, H, batch_first=True, bidirectional=True)
            self.bridge_h = nn.Linear(2 * H, H)

        def forward(self, src, lengths):
            packed = rnn.pack_padded_sequence(self.embedding(src), lengths, batch_first=True,
                                              enforce_sorted=False)
            out, h = self.gru(packed)
            # total_length: what dlg.compile asks for (the longest length is data there)
            out, out_lengths = rnn.pad_packed_sequence(out, batch_first=True,
                                                       padding_value=0.0,
                                                       total_length=src.size(1))
            h = torch.tanh(self.bridge_h(torch.cat([h[0], h[1]], dim=1)))
            return out, out_lengths, h

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, 6, padding_idx=PAD)
            self.lstm = nn.LSTM(6 + 2 * H, H, batch_first=True)
            self.out = nn.Linear(H, V)

        def forward(self, tgt_in, context, h):
            emb = self.embedding(tgt_in)
            ctx = context.unsqueeze(1).expand(-1, emb.size(1), -1)
            c = torch.zeros_like(h)
            out, _ = self.lstm(torch.cat([emb, ctx], dim=2), (h.unsqueeze(0), c.unsqueeze(0)))
            return self.out(out)

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = Encoder(), Decoder()

        def forward(self, src, lengths, tgt_in):
            out, out_lengths, h = self.encoder(src, lengths)
            mask = (torch.arange(out.size(1))[None, :] < out_lengths[:, None]).float()
            context = (out * mask.unsqueeze(2)).sum(1) / out_lengths[:, None].float()
            return self.decoder(tgt_in, context, h)

    rng = np.random.default_rng(74)
    src_lengths = [5, 2, 4, 3]
    src = np.zeros((4, 5), np.int64)
    tgt = np.zeros((4, 6), np.int64)
    for b, n in enumerate(src_lengths):
        src[b, :n] = rng.integers(2, V, n)
        tgt[b, :n + 1] = np.r_[src[b, :n][::-1], BOS]  # reverse, then an end marker
    tgt_in = np.concatenate([np.full((4, 1), BOS), tgt[:, :-1]], 1)
    src, tgt, tgt_in = side.data(src), side.data(tgt), side.data(tgt_in)
    lengths = torch.tensor(src_lengths)
    net = side.weights(Seq2Seq())
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    model = side.compile(net)
    criterion = nn.CrossEntropyLoss(ignore_index=PAD)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        logits = model(src, lengths, tgt_in)
        loss = criterion(logits.reshape(-1, V), tgt.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():  # greedy decoding, one step at a time
        out, out_lengths, h = net.encoder(src, lengths)
        mask = (torch.arange(out.size(1))[None, :] < out_lengths[:, None]).float()
        context = (out * mask.unsqueeze(2)).sum(1) / out_lengths[:, None].float()
        tokens = torch.full((4, 1), BOS, dtype=torch.long)
        for _ in range(5):
            step_logits = net.decoder(tokens, context, h)[:, -1]
            tokens = torch.cat([tokens, step_logits.argmax(-1, keepdim=True)], dim=1)
    return {"losses": losses, "tokens": tokens, "weights": net.state_dict(),
            "grads": grads(net)}


@COMPILED_FULL
def test_packed_seq2seq(compiled):
    run_both(packed_seq2seq, compiled=compiled)


# -- 5. a mixture density network (Bishop): pi, mu, sigma heads, the mixture NLL by logsumexp ---

def mixture_density(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    D = torch.distributions
    K = 3

    class MDN(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Sequential(nn.Linear(1, 16), nn.Tanh())
            self.pi = nn.Linear(16, K)
            self.mu = nn.Linear(16, K)
            self.log_sigma = nn.Linear(16, K)

        def forward(self, x):
            h = self.hidden(x)
            return F.log_softmax(self.pi(h), -1), self.mu(h), self.log_sigma(h).exp()

    def mdn_loss(log_pi, mu, sigma, y):
        log_prob = D.Normal(mu, sigma).log_prob(y.expand_as(mu))
        return -torch.logsumexp(log_pi + log_prob, dim=-1).mean()

    rng = np.random.default_rng(75)
    y_np = rng.uniform(-1, 1, (32, 1)).astype(np.float32)  # the inverse problem of
    x_np = (y_np + 0.3 * np.sin(2 * np.pi * y_np)).astype(np.float32)  # x = y + 0.3 sin(2 pi y)
    x, y = side.data(x_np), side.data(y_np)
    net = side.weights(MDN())
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    model = side.compile(net)
    log: dict[str, list] = {"loss": [], "by_hand": []}
    for _ in range(4):
        optimizer.zero_grad()
        log_pi, mu, sigma = model(x)
        loss = mdn_loss(log_pi, mu, sigma, y)
        loss.backward()
        optimizer.step()
        log["loss"].append(loss.item())
        with torch.no_grad():  # the same NLL spelled out
            z = (y - mu) / sigma
            comp = log_pi - 0.5 * z ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
            log["by_hand"].append(-torch.logsumexp(comp, -1).mean())
    with torch.no_grad():  # sample: pick a component, then a normal draw
        log_pi, mu, sigma = model(x[:8])
        k = side.draw(D.Categorical(logits=log_pi).sample)
        eps = side.draw(torch.randn, 8)
        picked_mu = mu.gather(1, k.unsqueeze(1)).squeeze(1)
        picked_sigma = sigma.gather(1, k.unsqueeze(1)).squeeze(1)
        samples = picked_mu + picked_sigma * eps
        mixture = D.MixtureSameFamily(D.Categorical(logits=log_pi), D.Normal(mu, sigma))
        moments = [mixture.log_prob(y[:8].squeeze(1)), mixture.mean, mixture.stddev,
                   mixture.cdf(y[:8].squeeze(1))]
    return {**log, "samples": samples, "mixture": moments, "weights": net.state_dict(),
            "grads": grads(net)}


@COMPILED
def test_mixture_density_network(compiled):
    run_both(mixture_density, compiled=compiled)


# -- 6. a neural ODE on a fixed-step RK4, and a Hamiltonian net whose vector field is
#       autograd.grad of a learned energy (create_graph=True, so training differentiates it) --

def neural_ode(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn

    def rk4(func, y0, t):
        ys = [y0]
        y = y0
        for t0, t1 in zip(t[:-1], t[1:]):
            dt = t1 - t0
            k1 = func(t0, y)
            k2 = func(t0 + dt / 2, y + dt * k1 / 2)
            k3 = func(t0 + dt / 2, y + dt * k2 / 2)
            k4 = func(t1, y + dt * k3)
            y = y + dt * (k1 + 2 * k2 + 2 * k3 + k4) / 6
            ys.append(y)
        return torch.stack(ys)

    class ODEFunc(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2))
            self.nfe = 0

        def forward(self, t, y):
            self.nfe += 1
            t_col = torch.ones_like(y[:, :1]) * t
            return self.net(torch.cat([y, t_col], dim=1))

    class HNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.energy = nn.Sequential(nn.Linear(2, 16), nn.Softplus(), nn.Linear(16, 1))

        def forward(self, t, y):
            y = y if y.requires_grad else y.requires_grad_()
            H = self.energy(y).sum()
            dH = torch.autograd.grad(H, y, create_graph=True)[0]
            return torch.stack([dH[:, 1], -dH[:, 0]], dim=1)  # dq = dH/dp, dp = -dH/dq

    # the ground truth: a damped spiral from the torchdiffeq example
    true_A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
    t = torch.linspace(0.0, 1.0, 6)
    y0 = torch.tensor([[2.0, 0.0], [0.5, 1.0], [-1.0, 0.5]])
    with torch.no_grad():
        true_y = rk4(lambda t, y: torch.mm(y ** 3, true_A), y0, t)
    log: dict[str, list] = {"ode": [], "hnn": [], "energy": []}
    for name, func in (("ode", side.weights(ODEFunc())), ("hnn", side.weights(HNN()))):
        optimizer = torch.optim.Adam(func.parameters(), lr=1e-2)
        for _ in range(3):
            optimizer.zero_grad()
            pred_y = rk4(func, y0, t)
            loss = torch.mean(torch.abs(pred_y - true_y))
            loss.backward()
            optimizer.step()
            log[name].append(loss.item())
        log[name + "_grads"] = grads(func)
        log[name + "_nfe"] = [float(getattr(func, "nfe", 0))]
    with torch.no_grad():
        log["energy"] = func.energy(true_y.reshape(-1, 2)).squeeze(1)
    return log


def test_neural_ode_rk4_and_hamiltonian_net():
    run_both(neural_ode)


# -- 7. Gaussian-process regression: an RBF kernel on cdist, Cholesky, cholesky_solve, the
#       log marginal likelihood's hyper-parameters fitted with Adam, the predictive variance ---

def gaussian_process(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn

    class ExactGP(nn.Module):
        def __init__(self):
            super().__init__()
            self.log_lengthscale = nn.Parameter(torch.tensor(0.0))
            self.log_outputscale = nn.Parameter(torch.tensor(0.0))
            self.log_noise = nn.Parameter(torch.tensor(-2.0))

        def kernel(self, a, b):
            d = torch.cdist(a / self.log_lengthscale.exp(), b / self.log_lengthscale.exp())
            return self.log_outputscale.exp() * torch.exp(-0.5 * d.pow(2))

        def nll(self, x, y):
            n = x.size(0)
            K = self.kernel(x, x) + (self.log_noise.exp() + 1e-4) * torch.eye(n)
            L = torch.linalg.cholesky(K)
            alpha = torch.cholesky_solve(y.unsqueeze(1), L)
            return (0.5 * (y.unsqueeze(1) * alpha).sum() + L.diagonal().log().sum()
                    + 0.5 * n * math.log(2 * math.pi)) / n

        def predict(self, x, y, x_star):
            n = x.size(0)
            K = self.kernel(x, x) + (self.log_noise.exp() + 1e-4) * torch.eye(n)
            L = torch.linalg.cholesky(K)
            K_s = self.kernel(x, x_star)
            mean = K_s.T @ torch.cholesky_solve(y.unsqueeze(1), L)
            v = torch.linalg.solve_triangular(L, K_s, upper=False)
            var = self.kernel(x_star, x_star).diagonal() - v.pow(2).sum(0)
            return mean.squeeze(1), var

    rng = np.random.default_rng(77)
    x_np = np.sort(rng.uniform(-3, 3, (14, 1)), 0).astype(np.float32)
    y_np = (np.sin(2 * x_np[:, 0]) + 0.1 * rng.standard_normal(14)).astype(np.float32)
    x, y = side.data(x_np), side.data(y_np)
    x_star = torch.linspace(-3.5, 3.5, 9).unsqueeze(1)
    model = side.weights(ExactGP())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = model.nll(x, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        mean, var = model.predict(x, y, x_star)
        logdet = torch.logdet(model.kernel(x, x) + torch.eye(14))
    return {"losses": losses, "mean": mean, "var": var, "logdet": logdet,
            "hyper": model.state_dict(), "grads": grads(model)}


def test_gaussian_process_regression():
    # The Cholesky factor of a 14x14 RBF Gram matrix (condition ~1e3): float32 solves in
    # another order differ by ~1e-5 relative per step, so rtol 5e-4 over five Adam steps.
    run_both(gaussian_process, rtol=5e-4, atol=1e-5)


# -- 8. multi-task heads in a ModuleDict: KL divergence to soft labels, a cosine embedding
#       loss, a margin ranking loss, a Huber regression, task weights learned (Kendall et al.) -

def multi_task(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class MultiTask(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.LayerNorm(16))
            self.heads = nn.ModuleDict({
                "soft": nn.Linear(16, 4),
                "embed": nn.Sequential(nn.Linear(16, 8), nn.Tanh()),
                "score": nn.Linear(16, 1),
                "reg": nn.Linear(16, 2),
            })
            self.log_vars = nn.Parameter(torch.zeros(len(self.heads)))

        def forward(self, x):
            h = self.trunk(x)
            return {name: head(h) for name, head in self.heads.items()}

    rng = np.random.default_rng(78)
    x = side.data(rng.standard_normal((10, 6)).astype(np.float32))
    x2 = side.data(rng.standard_normal((10, 6)).astype(np.float32))
    soft = side.data(rng.dirichlet(np.ones(4), 10).astype(np.float32))
    same = side.data(np.where(rng.random(10) < 0.5, 1.0, -1.0).astype(np.float32))
    order = side.data(np.where(rng.random(10) < 0.5, 1.0, -1.0).astype(np.float32))
    target = side.data(rng.standard_normal((10, 2)).astype(np.float32) * 3)
    net = side.weights(MultiTask())
    model = side.compile(net)
    losses = {"soft": nn.KLDivLoss(reduction="batchmean"),
              "embed": nn.CosineEmbeddingLoss(margin=0.2),
              "score": nn.MarginRankingLoss(margin=0.5),
              "reg": nn.HuberLoss(delta=1.0)}
    optimizer = torch.optim.NAdam(model.parameters(), lr=1e-2)
    log: dict[str, list] = {name: [] for name in losses}
    log["total"] = []
    for _ in range(3):
        out, out2 = model(x), model(x2)
        task = {
            "soft": losses["soft"](F.log_softmax(out["soft"], dim=1), soft),
            "embed": losses["embed"](out["embed"], out2["embed"], same),
            "score": losses["score"](out["score"].squeeze(1), out2["score"].squeeze(1), order),
            "reg": losses["reg"](out["reg"], target),
        }
        total = sum(torch.exp(-lv) * task[name] + lv
                    for lv, name in zip(net.log_vars, net.heads.keys()))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        for name, value in task.items():
            log[name].append(value.item())
        log["total"].append(total.item())
    with torch.no_grad():
        out = model(x)
        log["kl_log_target"] = F.kl_div(F.log_softmax(out["soft"], 1), soft.log(),
                                        reduction="sum", log_target=True)
        log["cos"] = F.cosine_similarity(out["embed"], model(x2)["embed"])
    return {**log, "weights": net.state_dict(), "grads": grads(net)}


@COMPILED_FULL
def test_multi_task_module_dict_losses(compiled):
    run_both(multi_task, compiled=compiled)


# -- 9. label-smoothed, class-weighted cross entropy with ignore_index; gradient accumulation
#       over micro-batches with clip_grad_norm_; evaluation under no_grad; SGD with nesterov ----

def label_smoothing_accumulation(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    IGNORE, C = -100, 5

    def smoothed_by_hand(logits, target, weight, eps):
        """The label-smoothed loss spelled out (torch's formula with weights): (1 - eps) of
        the weighted NLL plus eps of the weighted uniform term, both over the kept rows."""
        keep = target != IGNORE
        logp = F.log_softmax(logits[keep], dim=-1)
        t = target[keep]
        w = weight[t]
        nll = -(w * logp.gather(1, t.unsqueeze(1)).squeeze(1)).sum() / w.sum()
        smooth = -(logp * weight).sum(1).sum() / (C * w.sum())
        return (1 - eps) * nll + eps * smooth

    net = side.weights(nn.Sequential(nn.Linear(8, 16), nn.SiLU(), nn.Dropout(0.0),
                                     nn.Linear(16, C)))
    model = side.compile(net)
    weight = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0])
    criterion = nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE, label_smoothing=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    rng = np.random.default_rng(79)
    x = side.data(rng.standard_normal((4, 6, 8)).astype(np.float32))
    y = rng.integers(0, C, (4, 6))
    y[rng.random((4, 6)) < 0.2] = IGNORE
    y = side.data(y)
    val_x = side.data(rng.standard_normal((12, 8)).astype(np.float32))
    val_y = side.data(rng.integers(0, C, 12))
    accum = 2
    log: dict[str, list] = {"loss": [], "by_hand": [], "norm": [], "val": [], "acc": []}
    model.train()
    optimizer.zero_grad()
    for i in range(len(x)):
        logits = model(x[i])
        loss = criterion(logits, y[i])
        log["by_hand"].append(smoothed_by_hand(logits, y[i], weight, 0.1).item())
        (loss / accum).backward()
        log["loss"].append(loss.item())
        if (i + 1) % accum == 0:
            norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
            log["norm"].append(norm)
            optimizer.step()
            optimizer.zero_grad()
            model.eval()
            with torch.no_grad():
                val_logits = model(val_x)
                log["val"].append(F.cross_entropy(val_logits, val_y, reduction="sum"))
                log["acc"].append((val_logits.argmax(1) == val_y).float().mean())
            model.train()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    return {**log, "weights": net.state_dict(),
            "momentum": [s["momentum_buffer"] for s in optimizer.state_dict()["state"].values()]}


@COMPILED_FULL
def test_label_smoothing_weighted_accumulation(compiled):
    run_both(label_smoothing_accumulation, compiled=compiled)


# -- 10. a whole training state saved and loaded: torch.save / dlg.save of the model's, the
#        optimizer's and the scheduler's state_dicts and a Python dict of metadata, to a file
#        and to a buffer; training resumes on fresh objects and matches an unbroken run ----------

def save_load_resume(side: Side5, tmp_path) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, 4, 3, padding=1, bias=False)  # BatchNorm follows (as #3)
            self.bn = nn.BatchNorm1d(4)
            self.fc = nn.Linear(4 * 6, 3)
            self.register_buffer("seen", torch.zeros((), dtype=torch.long))

        def forward(self, x):
            self.seen += x.size(0)
            return self.fc(F.relu(self.bn(self.conv(x))).flatten(1))

    def make():
        model = Net()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
        return model, optimizer, scheduler

    rng = np.random.default_rng(80)
    batches = [(side.data(rng.standard_normal((5, 2, 6)).astype(np.float32)),
                side.data(rng.integers(0, 3, 5))) for _ in range(6)]

    def train(model, optimizer, scheduler, part):
        out = []
        model.train()
        for xb, yb in part:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            scheduler.step()
            out.append(loss.item())
        return out

    model, optimizer, scheduler = make()
    side.weights(model)
    copy_state = {k: v.clone() for k, v in model.state_dict().items()}
    unbroken = train(model, optimizer, scheduler, batches)

    model, optimizer, scheduler = make()
    model.load_state_dict(copy_state)
    first = train(model, optimizer, scheduler, batches[:3])
    path = tmp_path / f"ckpt_{'torch' if side.on_torch else 'dlg'}.pt"
    torch.save({"epoch": 3, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "note": "halfway", "history": first},
               path)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)

    model, optimizer, scheduler = make()  # fresh objects, as in a new process
    checkpoint = torch.load(path, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    assert (checkpoint["epoch"], checkpoint["note"]) == (3, "halfway")
    second = train(model, optimizer, scheduler, batches[3:])
    weights_only = torch.load(buffer, weights_only=True)
    assert set(weights_only) == set(copy_state)
    return {"unbroken": unbroken, "resumed": checkpoint["history"] + second,
            "lr": scheduler.get_last_lr(), "weights": model.state_dict(),
            "halfway": weights_only, "step": [s["step"] for s in
                                              optimizer.state_dict()["state"].values()]}


def test_save_load_resume(tmp_path):
    got, want = run_both(lambda side: save_load_resume(side, tmp_path))
    np.testing.assert_allclose(got["resumed"], got["unbroken"], rtol=1e-6)


def test_dlg_checkpoint_loads_in_torch_and_back(tmp_path):
    """A file dlg.save wrote is read by torch.load (weights_only) into a torch module, and
    torch's file by dlg.load: the same bytes format both ways (outputs to float32 rounding in
    another summation order)."""
    dlg.manual_seed(7)
    net = dlg.nn.Sequential(dlg.nn.Linear(3, 4), dlg.nn.BatchNorm1d(4))
    opt = dlg.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(dlg.randn(5, 3)).sum().backward()
    opt.step()
    dlg.save({"model": net.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "a.pt")
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    their_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    ckpt = torch.load(tmp_path / "a.pt", weights_only=True)
    theirs.load_state_dict(ckpt["model"])
    their_opt.load_state_dict(ckpt["optimizer"])
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    theirs.eval(), net.eval()
    np.testing.assert_allclose(theirs(torch.from_numpy(x)).detach().numpy(),
                               net(dlg.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    torch.save({"model": theirs.state_dict(), "optimizer": their_opt.state_dict()},
               tmp_path / "b.pt")
    back = dlg.load(tmp_path / "b.pt")
    net2 = dlg.nn.Sequential(dlg.nn.Linear(3, 4), dlg.nn.BatchNorm1d(4))
    net2.load_state_dict(back["model"])
    opt2 = dlg.optim.SGD(net2.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(back["optimizer"])
    net2.eval()
    np.testing.assert_allclose(net2(dlg.from_numpy(x)).detach().numpy(),
                               net(dlg.from_numpy(x)).detach().numpy(), rtol=1e-6)


# -- 11. a sparse mixture of experts: top-k gating with noise, softmax over the kept logits,
#        dispatch by index_select and combine by index_add, the load-balancing auxiliary loss -

def mixture_of_experts(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    E, K, D_MODEL = 4, 2, 6

    class MoE(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate = nn.Linear(D_MODEL, E, bias=False)
            self.noise = nn.Linear(D_MODEL, E, bias=False)
            self.experts = nn.ModuleList([nn.Sequential(nn.Linear(D_MODEL, 12), nn.GELU(),
                                                        nn.Linear(12, D_MODEL))
                                          for _ in range(E)])

        def forward(self, x, eps):
            logits = self.gate(x)
            if self.training:  # noisy top-k gating (Shazeer et al.)
                logits = logits + eps * F.softplus(self.noise(x))
            top_logits, top_idx = logits.topk(K, dim=-1)
            gates = torch.full_like(logits, float("-inf")).scatter(1, top_idx, top_logits)
            gates = F.softmax(gates, dim=-1)  # zero off the top k
            out = torch.zeros_like(x)
            for e, expert in enumerate(self.experts):
                rows = (top_idx == e).any(dim=1).nonzero().squeeze(1)
                if rows.numel() == 0:
                    continue
                y = expert(x.index_select(0, rows)) * gates[rows, e].unsqueeze(1)
                out = out.index_add(0, rows, y)
            # Switch's balance loss: fraction routed times mean gate probability
            routed = F.one_hot(top_idx[:, 0], E).float().mean(0)
            prob = F.softmax(logits, dim=-1).mean(0)
            aux = E * (routed * prob).sum()
            kept = gates.gather(1, top_idx)
            return out, aux, kept, top_idx

    rng = np.random.default_rng(81)
    x = side.data(rng.standard_normal((16, D_MODEL)).astype(np.float32))
    target = side.data(rng.standard_normal((16, D_MODEL)).astype(np.float32))
    net = side.weights(MoE())
    optimizer = torch.optim.Adamax(net.parameters(), lr=1e-2)
    model = side.compile(net)
    log: dict[str, list] = {"loss": [], "aux": [], "kept": [], "idx": []}
    for _ in range(3):
        eps = side.draw(torch.randn, 16, E)
        out, aux, kept, idx = model(x, eps)
        loss = F.mse_loss(out, target) + 0.01 * aux
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log["loss"].append(loss.item())
        log["aux"].append(aux.item())
        log["kept"].append(kept)
        log["idx"].append(idx)
    model.eval()
    with torch.no_grad():
        out, _, _, idx = model(x, None)
    return {**log, "eval_out": out, "eval_idx": idx, "weights": net.state_dict(),
            "grads": grads(net)}


def test_mixture_of_experts_top_k():
    run_both(mixture_of_experts)


def test_mixture_of_experts_compiled_needs_dense_routing():
    """The experts' rows come from nonzero(), a data-dependent shape: dlg.compile refuses it
    at the line, naming the fixed-shape ways (torch.compile would break the graph there)."""
    with pytest.raises(dlg.DlgValueError, match=r"nonzero's result has a shape that depends "
                                                 r"on the data.*fixed-size topk"):
        run_both(mixture_of_experts, compiled=True)



# -- 12. MAML on sine regression (Finn et al.): inner SGD steps through torch.func.
#        functional_call with create_graph, the query losses differentiated to the meta
#        parameters (second order), Adam on the meta batch --------------------------------------

def maml(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    functional_call = torch.func.functional_call
    model = side.weights(nn.Sequential(nn.Linear(1, 20), nn.ReLU(), nn.Linear(20, 20),
                                       nn.ReLU(), nn.Linear(20, 1)))
    meta_opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(83)
    log: dict[str, list] = {"meta": [], "inner": [], "adapted": []}
    for _ in range(3):
        meta_opt.zero_grad()
        total = 0.0
        for _ in range(2):  # tasks: a sine's amplitude and phase
            amp, phase = rng.uniform(0.1, 5), rng.uniform(0, np.pi)
            xs, xq = (rng.uniform(-5, 5, (10, 1)).astype(np.float32) for _ in range(2))
            ys, yq = ((amp * np.sin(v + phase)).astype(np.float32) for v in (xs, xq))
            xs, ys, xq, yq = map(side.data, (xs, ys, xq, yq))
            params = dict(model.named_parameters())
            for _ in range(2):
                loss = F.mse_loss(functional_call(model, params, (xs,)), ys)
                g = torch.autograd.grad(loss, list(params.values()), create_graph=True)
                params = {n: p - 0.01 * gi for (n, p), gi in zip(params.items(), g)}
                log["inner"].append(loss.item())
            total = total + F.mse_loss(functional_call(model, params, xq), yq)
        (total / 2).backward()
        meta_opt.step()
        log["meta"].append(total.item() / 2)
    with torch.no_grad():
        log["adapted"] = functional_call(model, params, xq).squeeze(1)
    return {**log, "weights": model.state_dict(), "grads": grads(model)}


def test_maml_functional_call_second_order():
    run_both(maml)


# -- 13. DDPM (the annotated-diffusion recipe): a linear beta schedule and its cumprod, the
#        schedule gathered at drawn timesteps, sinusoidal time embeddings, GroupNorm + SiLU, the
#        ancestral sampling loop on replayed noise -----------------------------------------------

def ddpm(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    T = 50
    betas = torch.linspace(1e-4, 0.02, T)
    alphas = 1.0 - betas
    alphas_cumprod = torch.cumprod(alphas, dim=0)
    alphas_cumprod_prev = F.pad(alphas_cumprod[:-1], (1, 0), value=1.0)
    sqrt_recip_alphas = torch.sqrt(1.0 / alphas)
    sqrt_alphas_cumprod = torch.sqrt(alphas_cumprod)
    sqrt_one_minus_alphas_cumprod = torch.sqrt(1.0 - alphas_cumprod)
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)

    def extract(a, t, x_shape):
        out = a.gather(-1, t)
        return out.reshape(t.shape[0], *((1,) * (len(x_shape) - 1)))

    class SinusoidalPositionEmbeddings(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.dim = dim

        def forward(self, time):
            half_dim = self.dim // 2
            embeddings = math.log(10000) / (half_dim - 1)
            embeddings = torch.exp(torch.arange(half_dim) * -embeddings)
            embeddings = time[:, None] * embeddings[None, :]
            return torch.cat((embeddings.sin(), embeddings.cos()), dim=-1)

    class Denoiser(nn.Module):
        def __init__(self):
            super().__init__()
            self.time_mlp = nn.Sequential(SinusoidalPositionEmbeddings(16), nn.Linear(16, 32),
                                          nn.GELU(), nn.Linear(32, 32))
            self.inp = nn.Conv2d(1, 8, 3, padding=1)
            self.t_proj = nn.Linear(32, 8)
            self.block = nn.Sequential(nn.GroupNorm(2, 8), nn.SiLU(),
                                       nn.Conv2d(8, 8, 3, padding=1))
            self.out = nn.Conv2d(8, 1, 1)

        def forward(self, x, t):
            h = self.inp(x) + self.t_proj(self.time_mlp(t.float()))[:, :, None, None]
            return self.out(h + self.block(h))

    rng = np.random.default_rng(84)
    x0 = side.data((rng.random((6, 1, 8, 8)) > 0.5).astype(np.float32) * 2 - 1)
    net = side.weights(Denoiser())
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    model = side.compile(net)
    losses = []
    for _ in range(3):
        t = side.draw(torch.randint, 0, T, (6,))
        noise = side.draw(torch.randn_like, x0)
        x_noisy = (extract(sqrt_alphas_cumprod, t, x0.shape) * x0
                   + extract(sqrt_one_minus_alphas_cumprod, t, x0.shape) * noise)
        loss = F.smooth_l1_loss(noise, model(x_noisy, t))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        img = side.draw(torch.randn, 2, 1, 8, 8)
        for i in reversed(range(0, T, 10)):
            t = torch.full((2,), i, dtype=torch.long)
            model_mean = extract(sqrt_recip_alphas, t, img.shape) * (
                img - extract(betas, t, img.shape) * model(img, t)
                / extract(sqrt_one_minus_alphas_cumprod, t, img.shape))
            if i == 0:
                img = model_mean
            else:
                noise = side.draw(torch.randn_like, img)
                img = model_mean + torch.sqrt(extract(posterior_variance, t, img.shape)) * noise
    return {"losses": losses, "samples": img, "posterior_variance": posterior_variance,
            "weights": net.state_dict(), "grads": grads(net)}


@COMPILED_FULL
def test_ddpm(compiled):
    run_both(ddpm, compiled=compiled)


# -- 14. VQ-VAE with an EMA codebook (zalandoresearch's notebook): distances by expansion,
#        argmin, one-hot by scatter_, the straight-through estimator, codebook buffers and
#        parameters re-assigned every step, legacy torch.Tensor(n, d) parameters --------------

def vq_vae(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class VectorQuantizerEMA(nn.Module):
        def __init__(self, num_embeddings, embedding_dim, commitment_cost, decay,
                     epsilon=1e-5):
            super().__init__()
            self._embedding_dim = embedding_dim
            self._num_embeddings = num_embeddings
            self._embedding = nn.Embedding(num_embeddings, embedding_dim)
            self._embedding.weight.data.normal_()
            self._commitment_cost = commitment_cost
            self.register_buffer("_ema_cluster_size", torch.zeros(num_embeddings))
            self._ema_w = nn.Parameter(torch.Tensor(num_embeddings, embedding_dim))
            self._ema_w.data.normal_()
            self._decay = decay
            self._epsilon = epsilon

        def forward(self, inputs):
            inputs = inputs.permute(0, 2, 3, 1).contiguous()
            input_shape = inputs.shape
            flat_input = inputs.view(-1, self._embedding_dim)
            distances = (torch.sum(flat_input ** 2, dim=1, keepdim=True)
                         + torch.sum(self._embedding.weight ** 2, dim=1)
                         - 2 * torch.matmul(flat_input, self._embedding.weight.t()))
            encoding_indices = torch.argmin(distances, dim=1).unsqueeze(1)
            encodings = torch.zeros(encoding_indices.shape[0], self._num_embeddings)
            encodings.scatter_(1, encoding_indices, 1)
            quantized = torch.matmul(encodings, self._embedding.weight).view(input_shape)
            if self.training:
                self._ema_cluster_size = (self._ema_cluster_size * self._decay
                                          + (1 - self._decay) * torch.sum(encodings, 0))
                n = torch.sum(self._ema_cluster_size.data)
                self._ema_cluster_size = ((self._ema_cluster_size + self._epsilon)
                                          / (n + self._num_embeddings * self._epsilon) * n)
                dw = torch.matmul(encodings.t(), flat_input)
                self._ema_w = nn.Parameter(self._ema_w * self._decay + (1 - self._decay) * dw)
                self._embedding.weight = nn.Parameter(
                    self._ema_w / self._ema_cluster_size.unsqueeze(1))
            e_latent_loss = F.mse_loss(quantized.detach(), inputs)
            loss = self._commitment_cost * e_latent_loss
            quantized = inputs + (quantized - inputs).detach()
            avg_probs = torch.mean(encodings, dim=0)
            perplexity = torch.exp(-torch.sum(avg_probs * torch.log(avg_probs + 1e-10)))
            return loss, quantized.permute(0, 3, 1, 2).contiguous(), perplexity, encodings

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Conv2d(1, 8, 4, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(8, 4, 3, padding=1))
            self.vq = VectorQuantizerEMA(6, 4, 0.25, 0.9)
            self.dec = nn.Sequential(nn.ConvTranspose2d(4, 8, 4, stride=2, padding=1),
                                     nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))

        def forward(self, x):
            loss, quantized, perplexity, encodings = self.vq(self.enc(x))
            return loss, self.dec(quantized), perplexity, encodings

    rng = np.random.default_rng(85)
    x = side.data(rng.standard_normal((4, 1, 8, 8)).astype(np.float32))
    model = side.weights(Model())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=False)
    log: dict[str, list] = {"loss": [], "perplexity": [], "codes": []}
    for _ in range(3):
        optimizer.zero_grad()
        vq_loss, recon, perplexity, encodings = model(x)
        loss = F.mse_loss(recon, x) + vq_loss
        loss.backward()
        optimizer.step()
        log["loss"].append(loss.item())
        log["perplexity"].append(perplexity.item())
        log["codes"].append(encodings.argmax(1))
    return {**log, "weights": model.state_dict(), "grads": grads(model)}


def test_vq_vae_ema_codebook():
    run_both(vq_vae)


# -- 15. PixelCNN (pytorch-generative-model-collections): masked convolutions whose weight is
#        multiplied by a mask buffer in place in forward, 4-way pixel classification, and
#        autoregressive sampling pixel by pixel into a preallocated image --------------------

def pixel_cnn(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class MaskedConv2d(nn.Conv2d):
        def __init__(self, mask_type, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.register_buffer("mask", self.weight.data.clone())
            _, _, kH, kW = self.weight.size()
            self.mask.fill_(1)
            self.mask[:, :, kH // 2, kW // 2 + (mask_type == "B"):] = 0
            self.mask[:, :, kH // 2 + 1:] = 0

        def forward(self, x):
            self.weight.data *= self.mask
            return super().forward(x)

    fm = 8
    plain = side.weights(nn.Sequential(
        MaskedConv2d("A", 1, fm, 5, 1, 2, bias=False), nn.BatchNorm2d(fm), nn.ReLU(True),
        MaskedConv2d("B", fm, fm, 5, 1, 2, bias=False), nn.BatchNorm2d(fm), nn.ReLU(True),
        nn.Conv2d(fm, 4, 1)))
    net = side.compile(plain)
    rng = np.random.default_rng(86)
    pixels = rng.integers(0, 4, (4, 1, 6, 6))
    inputs, target = side.data((pixels / 3.0).astype(np.float32)), side.data(pixels[:, 0])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(net(inputs), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    net.eval()
    sample = torch.zeros(1, 1, 6, 6)
    with torch.no_grad():
        for i in range(2):
            for j in range(6):
                probs = F.softmax(net(sample)[:, :, i, j], dim=1)
                sample[:, :, i, j] = torch.argmax(probs, dim=1).float() / 3.0
    return {"losses": losses, "sample": sample, "weights": plain.state_dict()}


@COMPILED
def test_pixel_cnn_masked_convolutions(compiled):
    """Compiled, the mask written into the weight in forward is a parameter update whose
    gradient still reaches the weight (it was cut off, and `.data` writes were lost)."""
    run_both(pixel_cnn, compiled=compiled)

# -- 16. three models written as .dlg files (tests/frontend/sweep7/), driven as the README shows:
#        dlgc check / compile / run / train on .npy and .npz files, dlg.load and dlg.compile from
#        Python, against a PyTorch twin with the same weights --------------------------------------

SWEEP7 = Path(__file__).resolve().parent / "sweep7"


def torch_twin(name: str):
    """The PyTorch module each .dlg file says it matches (state_dict keys included)."""
    nn = torch.nn

    class TabularMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(10, 32), nn.LayerNorm(32), nn.GELU(),
                                     nn.Dropout(0.2), nn.Linear(32, 16), nn.LayerNorm(16),
                                     nn.GELU(), nn.Dropout(0.2), nn.Linear(16, 3))

        def forward(self, x):
            return self.net(x)

    class ResBlock(nn.Module):
        def __init__(self, c_in, c_out, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.shortcut = None
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride,
                                                        bias=False), nn.BatchNorm2d(c_out))

        def forward(self, x):
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(out + (x if self.shortcut is None else self.shortcut(x)))

    class ResConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(8), nn.ReLU())
            self.block1, self.block2 = ResBlock(8, 8), ResBlock(8, 16, 2)
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(self.block2(self.block1(self.stem(x))).mean(dim=(2, 3)))

    class GRUClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(50, 8)
            self.gru = nn.GRU(8, 16, num_layers=2, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(32, 2)

        def forward(self, tokens):
            _, h_n = self.gru(self.embedding(tokens))
            return self.fc(torch.cat([h_n[-2], h_n[-1]], dim=1))

    torch.manual_seed(7)
    twin = {"tabular_mlp": TabularMLP, "res_conv": ResConv, "gru_classifier": GRUClassifier}
    model = twin[name]()
    with torch.no_grad():  # running statistics that are not the defaults
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    return model


def dlg_data(name: str) -> dict[str, np.ndarray]:
    """A small learnable dataset named after the model's inputs and labels (dlgc train's npz
    format: `NAME` and, held out, `NAME_test`)."""
    rng = np.random.default_rng(82)
    if name == "tabular_mlp":
        x = rng.standard_normal((64, 10)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
        return {"x": x[:48], "y": y[:48], "x_test": x[48:], "y_test": y[48:]}
    if name == "res_conv":
        x = rng.standard_normal((24, 1, 12, 12)).astype(np.float32)
        y = np.argmax(x[:, 0, :2, :2].reshape(24, 4), axis=1)
        return {"x": x[:16], "y": y[:16], "x_test": x[16:], "y_test": y[16:]}
    tokens = rng.integers(1, 50, (30, 7))
    label = (tokens[:, 0] > 25).astype(np.int64)
    return {"tokens": tokens[:20], "label": label[:20], "tokens_test": tokens[20:],
            "label_test": label[20:]}


def run_dlgc(capsys, *args) -> str:
    code = dlgc_main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err
    return out


DLG_FILES = ["tabular_mlp", "res_conv", "gru_classifier"]


@COMPILED_FULL
@pytest.mark.parametrize("name", DLG_FILES)
def test_dlg_file_through_dlgc(name, compiled, tmp_path, capsys):
    """check and fmt, run with a torch twin's weights (safetensors), compile to an artifact,
    train on an npz file (compiled under -m sweep_full: a cold compile of a training step is
    2-4 s; else dlgc train --interpreter and one model's artifact); the trained weights load
    into the torch twin and give dlgc run's outputs."""
    from safetensors.torch import load_file, save_file

    path = SWEEP7 / f"{name}.dlg"
    data = dlg_data(name)
    first = next(iter(data))
    out = run_dlgc(capsys, "check", path)
    assert f"{dlg.load(path).num_params():,} trainable" in out
    (tmp_path / "formatted.dlg").write_text(run_dlgc(capsys, "fmt", path))
    formatted = dlg.load(tmp_path / "formatted.dlg", seed=0)  # the canonical form is the model
    assert formatted.state_dict().keys() == dlg.load(path).state_dict().keys()
    twin = torch_twin(name).eval()
    save_file({k: v.contiguous() for k, v in twin.state_dict().items()},
              tmp_path / "twin.safetensors")
    np.save(tmp_path / "batch.npy", data[first][:5])
    run_dlgc(capsys, "run", path, "-i", f"{first}={tmp_path / 'batch.npy'}", "-w",
             tmp_path / "twin.safetensors", "-o", tmp_path / "o.npy")
    with torch.no_grad():
        want = twin(torch.from_numpy(data[first][:5])).numpy()
    # the reference interpreter in float32 against torch: summation order only
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), want, rtol=1e-4, atol=1e-5)

    if compiled or name == "tabular_mlp":  # the artifact dlgc compile writes runs as dlgc run
        out = run_dlgc(capsys, "compile", path, "-o", tmp_path / "m.dlgx")
        assert "kernels" in out
        np.testing.assert_allclose(dlg.load(tmp_path / "m.dlgx")(data[first][:5]),
                                   dlg.load(path)(data[first][:5]), rtol=1e-5, atol=1e-6)

    np.savez(tmp_path / "data.npz", **data)
    out = run_dlgc(capsys, "train", path, "--data", f"npz:{tmp_path / 'data.npz'}",
                   "--epochs", "2", "--batch-size", "8", "-o", tmp_path / "trained.safetensors",
                   *(() if compiled else ("--interpreter",)))
    assert "saved weights" in out
    trained = twin.__class__() if name != "res_conv" else torch_twin(name)
    trained.load_state_dict(load_file(tmp_path / "trained.safetensors"))
    trained.eval()
    run_dlgc(capsys, "run", path, "-i", f"{first}={tmp_path / 'batch.npy'}", "-w",
             tmp_path / "trained.safetensors", "-o", tmp_path / "t.npy")
    with torch.no_grad():
        want = trained(torch.from_numpy(data[first][:5])).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "t.npy"), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", DLG_FILES)
def test_dlg_file_from_python(name, tmp_path):
    """dlg.load(file) with the twin's state_dict: the interpreter's and dlg.compile's outputs
    are the twin's in eval mode; an artifact saved and loaded gives them again; the train
    section's loss in inference mode (m.evaluate) is torch's loss on the twin's outputs."""
    F = torch.nn.functional
    path = SWEEP7 / f"{name}.dlg"
    data = dlg_data(name)
    first, label = list(data)[:2]
    twin = torch_twin(name).eval()
    m = dlg.load(path, seed=0)
    m.load_state_dict(twin.state_dict())
    x = data[first]
    with torch.no_grad():
        want = twin(torch.from_numpy(x))
    np.testing.assert_allclose(m(x), want.numpy(), rtol=1e-4, atol=1e-5)
    exe = dlg.compile(m)
    np.testing.assert_allclose(exe(x[:3]), want.numpy()[:3], rtol=1e-4, atol=1e-5)
    exe.save(tmp_path / "m.dlgx")
    np.testing.assert_allclose(dlg.load(tmp_path / "m.dlgx")(x), want.numpy(), rtol=1e-4,
                               atol=1e-5)
    smoothing = 0.1 if name == "tabular_mlp" else 0.0
    loss = F.cross_entropy(want, torch.from_numpy(data[label]), label_smoothing=smoothing)
    accuracy = (want.argmax(1).numpy() == data[label]).mean()
    got = m.evaluate(x, data[label])
    np.testing.assert_allclose([got["loss"], got["accuracy"]], [loss.item(), accuracy],
                               rtol=1e-5)


def test_dlg_file_training_steps_match_torch():
    """ResConv's train section (SGD with nesterov and weight decay, BatchNorm in training
    mode) step by step through m.train_step(), against the twin on torch.optim.SGD: losses,
    weights and running statistics."""
    data = dlg_data("res_conv")
    twin = torch_twin("res_conv").train()
    m = dlg.load(SWEEP7 / "res_conv.dlg", seed=0)
    m.load_state_dict(twin.state_dict())
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    step = m.train_step()
    for i in range(3):
        x, y = data["x"][4 * i:4 * i + 4], data["y"][4 * i:4 * i + 4]
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        optimizer.step()
        got = step(x=x, y=y)
        np.testing.assert_allclose(got["loss"], loss.item(), rtol=1e-5)
    state = m.state_dict()
    for k, v in twin.state_dict().items():
        np.testing.assert_allclose(state[k], v.numpy(), rtol=1e-4, atol=1e-6, err_msg=k)


def test_dlg_file_fit_with_a_schedule_matches_torch():
    """GRUClassifier's fit (Adam, StepLR stepped once per epoch, unshuffled batches of 5)
    against the same loop on the twin."""
    data = dlg_data("gru_classifier")
    twin = torch_twin("gru_classifier")
    m = dlg.load(SWEEP7 / "gru_classifier.dlg", seed=0)
    m.load_state_dict(twin.state_dict())
    optimizer = torch.optim.Adam(twin.parameters(), lr=5e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    losses = []
    for _ in range(2):
        epoch = []
        for i in range(0, 20, 5):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                twin(torch.from_numpy(data["tokens"][i:i + 5])),
                torch.from_numpy(data["label"][i:i + 5]))
            loss.backward()
            optimizer.step()
            epoch.append(loss.item())
        scheduler.step()
        losses.append(np.mean(epoch))
    history = m.fit(data["tokens"], data["label"], epochs=2, batch_size=5, shuffle=False,
                    verbose=0, compiled=False)
    np.testing.assert_allclose(history["loss"], losses, rtol=1e-4)
    state = m.state_dict()
    # atol 1e-3 (a fifth of lr): token 30's embedding gradient cancels to ~1e-9 at one step,
    # float32 noise that Adam's m / (sqrt(v) + eps) turns into a step of about lr / 10; a
    # float64 run differs from both float32 runs there by more than they differ from each other
    for k, v in twin.state_dict().items():
        np.testing.assert_allclose(state[k], v.detach().numpy(), rtol=1e-4, atol=1e-3,
                                   err_msg=k)
