"""Porting sweep #7: PyTorch programs from areas sweeps #4-#6 left out (a tabular MLP with
categorical embeddings on AdamW and a warmup-cosine LambdaLR, a Kim-style 1-d CNN text classifier
with EmbeddingBag, a denoising conv autoencoder with ConvTranspose2d and PixelShuffle, a packed
GRU-encoder/LSTM-decoder seq2seq with ignore_index, a mixture density network, a neural ODE on a
hand-written RK4, Gaussian-process regression on cdist/cholesky/cholesky_solve, multi-task heads
in a ModuleDict with KLDiv/cosine-embedding/margin-ranking/Huber losses, label-smoothed weighted
cross entropy with manual gradient accumulation, a torch.save/dlg.save round trip of a whole
training state, a top-k mixture of experts), each written once over a `torch` argument and run
on torch and on dlg from the same weights, data and random draws (sweep #5's harness).

Tolerances: the harness's rtol 1e-4 / atol 1e-5 (float32 sums in another order over a few
training steps) unless a program says why it needs another."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dlg
from tests.frontend.test_sweep5_programs import COMPILED_FULL, Side5, grads, run_both

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
            out, out_lengths = rnn.pad_packed_sequence(out, batch_first=True,
                                                       padding_value=0.0)
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
    model = side.weights(Seq2Seq())
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    criterion = nn.CrossEntropyLoss(ignore_index=PAD)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        logits = model(src, lengths, tgt_in)
        loss = criterion(logits.reshape(-1, V), tgt.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():  # greedy decoding, one step at a time
        out, out_lengths, h = model.encoder(src, lengths)
        mask = (torch.arange(out.size(1))[None, :] < out_lengths[:, None]).float()
        context = (out * mask.unsqueeze(2)).sum(1) / out_lengths[:, None].float()
        tokens = torch.full((4, 1), BOS, dtype=torch.long)
        for _ in range(5):
            step_logits = model.decoder(tokens, context, h)[:, -1]
            tokens = torch.cat([tokens, step_logits.argmax(-1, keepdim=True)], dim=1)
    return {"losses": losses, "tokens": tokens, "weights": model.state_dict(),
            "grads": grads(model)}


def test_packed_seq2seq():
    run_both(packed_seq2seq)


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
    model = side.weights(MDN())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
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
    return {**log, "samples": samples, "mixture": moments, "weights": model.state_dict(),
            "grads": grads(model)}


def test_mixture_density_network():
    run_both(mixture_density)
