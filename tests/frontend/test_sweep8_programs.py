"""Porting sweep #8: PyTorch programs from areas sweeps #4-#7 left out (BERT's masked-LM step
with 80/10/10 masking and a tied decoder, a Set Transformer on nn.MultiheadAttention with key
padding masks, SimCLR's NT-Xent and Barlow Twins' losses, GCN and GAT on a dense normalised
adjacency, REINFORCE with discounted normalised returns, a CTC speech toy over packed BiGRU
outputs, activation checkpointing (checkpoint, checkpoint_sequential), an SN-GAN with
spectral-norm parametrizations and the hinge loss, MobileNetV2/EfficientNet blocks with depthwise
convolutions, squeeze-excitation and timm's drop_path on RMSprop and warm restarts, LoRA
fine-tuning of a frozen model, DANN's gradient reversal Function, NeRF's volume rendering and
hierarchical sampling with searchsorted, a learning-rate range test then ReduceLROnPlateau, the
pruning tutorial's local, iterative and global magnitude pruning with fine-tuning, AWD-LSTM's
WeightDrop, locked and embedding dropout, variable-length BPTT and NT-ASGD averaging, an ArcFace
head on a renormed kernel with face verification's ROC AUC by trapezoid, a LLaMA-style model
with RMSNorm, rotary tables in nn.Buffers, SwiGLU and SDPA whose optimizers step inside backward
(post-accumulate-grad hooks), decoding greedily with a KV cache, d2l.ai's ResNet of lazy modules
trained from a DataLoader whose last batch is smaller, Grad-CAM by forward and full backward hooks
with saliency, integrated gradients and SmoothGrad), each
written once over a `torch` argument and run on torch and on dlg from the same weights, data and
random draws (sweep #5's harness); most also through dlg.compile (`side.compile`), the GAT's in
the normal suite, the others under -m sweep_full.

Tolerances: the harness's rtol 1e-4 / atol 1e-5 (float32 sums in another order over a few
training steps) unless a test says why it needs another. Where a bias has a gradient of zero up
to rounding (a conv before BatchNorm, an attention's key bias), the programs do what users do
(bias=False) or train on SGD: Adam would blow the rounding up to the learning rate."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest

from tests.frontend.test_sweep5_programs import COMPILED, COMPILED_FULL, Side5, grads, run_both
from tests.frontend.test_sweep7_programs import replay_dropout

torch = pytest.importorskip("torch")
pytest.importorskip("torch.nn.utils.prune")  # torch.nn.utils.prune, as the tutorial imports it


# -- 1. BERT masked-LM pretraining step: 80/10/10 masking, tied decoder, padding masks -----------

def bert_mlm(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    vocab, d_model, max_len = 30, 16, 12
    PAD, CLS, SEP, MASK = 0, 1, 2, 3

    class BertForMaskedLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embeddings = nn.Embedding(vocab, d_model, padding_idx=PAD)
            self.position_embeddings = nn.Embedding(max_len, d_model)
            self.token_type_embeddings = nn.Embedding(2, d_model)
            self.emb_norm = nn.LayerNorm(d_model, eps=1e-12)
            layer = nn.TransformerEncoderLayer(d_model, nhead=2, dim_feedforward=32,
                                               dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
            self.transform = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(),
                                           nn.LayerNorm(d_model, eps=1e-12))
            self.decoder = nn.Linear(d_model, vocab)
            self.decoder.weight = self.word_embeddings.weight  # tied to the input embedding
            self.register_buffer("position_ids", torch.arange(max_len).expand((1, -1)),
                                 persistent=False)

        def forward(self, input_ids, token_type_ids, attention_mask):
            positions = self.position_ids[:, : input_ids.size(1)]
            x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
                 + self.token_type_embeddings(token_type_ids))
            x = self.emb_norm(x)
            x = self.encoder(x, src_key_padding_mask=attention_mask == 0)
            return self.decoder(self.transform(x))

    def mask_tokens(inputs, special_tokens_mask):
        """transformers' DataCollatorForLanguageModeling.torch_mask_tokens."""
        labels = inputs.clone()
        probability_matrix = torch.full(labels.shape, 0.15)
        probability_matrix.masked_fill_(special_tokens_mask, value=0.0)
        masked_indices = side.draw(torch.bernoulli, probability_matrix).bool()
        labels[~masked_indices] = -100
        indices_replaced = side.draw(torch.bernoulli, torch.full(labels.shape, 0.8)).bool()
        indices_replaced = indices_replaced & masked_indices
        inputs[indices_replaced] = MASK
        indices_random = side.draw(torch.bernoulli, torch.full(labels.shape, 0.5)).bool()
        indices_random = indices_random & masked_indices & ~indices_replaced
        random_words = side.draw(torch.randint, vocab, labels.shape, dtype=torch.long)
        inputs = torch.where(indices_random, random_words, inputs)
        return inputs, labels

    rng = np.random.default_rng(81)
    n = 6
    lengths = rng.integers(6, max_len + 1, n)
    ids = np.full((n, max_len), PAD)
    types = np.zeros((n, max_len), dtype=np.int64)
    for i, length in enumerate(lengths):
        cut = length // 2
        ids[i, :length] = np.concatenate([[CLS], rng.integers(4, vocab, cut - 2), [SEP],
                                          rng.integers(4, vocab, length - cut - 1), [SEP]])
        types[i, cut:length] = 1
    input_ids, token_type_ids = side.data(ids), side.data(types)
    attention_mask = (input_ids != PAD).long()
    special = (input_ids == PAD) | (input_ids == CLS) | (input_ids == SEP)
    model = side.weights(BertForMaskedLM())
    net = side.compile(model)
    no_decay = ["bias", "LayerNorm.weight", "norm.weight", "norm1.weight", "norm2.weight"]
    groups = [
        {"params": [p for n_, p in model.named_parameters()
                    if not any(nd in n_ for nd in no_decay)], "weight_decay": 0.01},
        {"params": [p for n_, p in model.named_parameters()
                    if any(nd in n_ for nd in no_decay)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=5e-3, eps=1e-6)
    total, warmup = 5, 2
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (
        step / warmup if step < warmup else max(0.0, (total - step) / (total - warmup))))
    losses, norms = [], []
    model.train()
    for _ in range(total):
        inputs, labels = mask_tokens(input_ids.clone(), special)
        logits = net(inputs, token_type_ids, attention_mask)
        loss = F.cross_entropy(logits.view(-1, vocab), labels.view(-1))  # ignore_index=-100
        loss.backward()
        norms.append(nn.utils.clip_grad_norm_(model.parameters(), 1.0))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        filled = input_ids.clone()
        filled[:, 2] = MASK
        logits = model(filled, token_type_ids, attention_mask)
        top = logits[:, 2].softmax(-1).topk(3)
    assert model.decoder.weight is model.word_embeddings.weight
    return {"losses": losses, "norms": norms, "top_values": top.values,
            "top_indices": top.indices, "state": model.state_dict()}


@COMPILED_FULL
def test_bert_masked_lm(compiled):
    run_both(bert_mlm, compiled=compiled)


# -- 2. Set Transformer (Lee et al.): MAB/ISAB/PMA on nn.MultiheadAttention, padded sets --------

def set_transformer(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    dim = 16

    class MAB(nn.Module):
        def __init__(self, dim, num_heads):
            super().__init__()
            self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
            self.ln0 = nn.LayerNorm(dim)
            self.ln1 = nn.LayerNorm(dim)
            self.ff = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

        def forward(self, q, k, key_padding_mask=None):
            h, weights = self.attn(q, k, k, key_padding_mask=key_padding_mask)
            h = self.ln0(q + h)
            return self.ln1(h + self.ff(h)), weights

    class ISAB(nn.Module):
        def __init__(self, dim, num_heads, num_inds):
            super().__init__()
            self.inducing = nn.Parameter(torch.empty(1, num_inds, dim))
            nn.init.xavier_uniform_(self.inducing)
            self.mab0 = MAB(dim, num_heads)
            self.mab1 = MAB(dim, num_heads)

        def forward(self, x, mask):
            h, _ = self.mab0(self.inducing.repeat(x.size(0), 1, 1), x, key_padding_mask=mask)
            out, _ = self.mab1(x, h)
            return out

    class PMA(nn.Module):
        def __init__(self, dim, num_heads, num_seeds):
            super().__init__()
            self.seeds = nn.Parameter(torch.empty(1, num_seeds, dim))
            nn.init.xavier_uniform_(self.seeds)
            self.mab = MAB(dim, num_heads)

        def forward(self, x, mask):
            return self.mab(self.seeds.expand(x.size(0), -1, -1), x, key_padding_mask=mask)

    class SetTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(2, dim)
            self.enc = nn.ModuleList([ISAB(dim, 4, 3), ISAB(dim, 4, 3)])
            self.pool = PMA(dim, 4, 1)
            self.dec = nn.Linear(dim, 1)

        def forward(self, x, mask):
            h = self.embed(x)
            for block in self.enc:
                h = block(h, mask)
            pooled, weights = self.pool(h, mask)
            return self.dec(pooled).squeeze(-1).squeeze(-1), weights

    # the task of the paper's first experiment, on 2-d points: the largest norm in the set
    rng = np.random.default_rng(82)
    n, size = 8, 7
    points = rng.standard_normal((n, size, 2)).astype(np.float32)
    lengths = rng.integers(3, size + 1, n)
    pad = np.arange(size)[None, :] >= lengths[:, None]
    points[pad] = 0.0
    target = np.where(pad, 0.0, np.linalg.norm(points, axis=-1)).max(1).astype(np.float32)
    x, mask, y = side.data(points), side.data(pad), side.data(target)
    model = side.weights(SetTransformer())
    net = side.compile(model)
    # SGD, not Adam: the attention's key bias has a gradient of zero up to rounding (softmax
    # ignores a shift shared by a row), which Adam's normalisation would blow up to lr
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(4):
        pred, _ = net(x, mask)
        loss = F.l1_loss(pred, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first = grads(model)
    with torch.no_grad():
        pred, weights = model(x, mask)
        # permuting each set's points leaves the prediction alone
        perm = torch.flip(x, dims=[1])
        pred_perm, _ = model(perm, torch.flip(mask, dims=[1]))
    return {"losses": losses, "pred": pred, "pred_perm": pred_perm, "weights": weights,
            "grads": first, "state": model.state_dict()}


@COMPILED_FULL
def test_set_transformer_multihead_attention(compiled):
    run_both(set_transformer, compiled=compiled)


# -- 3. self-supervised losses: SimCLR's NT-Xent and Barlow Twins' cross-correlation -----------

def ssl_losses(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(
                nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(inplace=True),
                nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.projector = nn.Sequential(nn.Linear(8, 16, bias=False), nn.BatchNorm1d(16),
                                           nn.ReLU(inplace=True), nn.Linear(16, 8))
            self.bn = nn.BatchNorm1d(8, affine=False)

        def forward(self, x):
            return self.projector(self.backbone(x))

    def info_nce_loss(features, batch_size, n_views=2, temperature=0.5):
        """sthalles/SimCLR's info_nce_loss: positives pulled out of the similarity matrix."""
        labels = torch.cat([torch.arange(batch_size) for _ in range(n_views)], dim=0)
        labels = (labels.unsqueeze(0) == labels.unsqueeze(1)).float()
        features = F.normalize(features, dim=1)
        similarity_matrix = torch.matmul(features, features.T)
        mask = torch.eye(labels.shape[0], dtype=torch.bool)
        labels = labels[~mask].view(labels.shape[0], -1)
        similarity_matrix = similarity_matrix[~mask].view(similarity_matrix.shape[0], -1)
        positives = similarity_matrix[labels.bool()].view(labels.shape[0], -1)
        negatives = similarity_matrix[~labels.bool()].view(similarity_matrix.shape[0], -1)
        logits = torch.cat([positives, negatives], dim=1) / temperature
        labels = torch.zeros(logits.shape[0], dtype=torch.long)
        return F.cross_entropy(logits, labels), logits

    def nt_xent(z1, z2, temperature=0.5):
        """The other common spelling: -inf on the diagonal, targets i + N mod 2N."""
        z = F.normalize(torch.cat([z1, z2]), dim=1)
        sim = z @ z.t() / temperature
        sim.fill_diagonal_(float("-inf"))
        n = z1.size(0)
        targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
        return F.cross_entropy(sim, targets)

    def off_diagonal(x):
        n, m = x.shape
        assert n == m
        return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()

    def barlow_twins(model, y1, y2, lambd=0.05):
        c = model.bn(model(y1)).T @ model.bn(model(y2))
        c.div_(y1.size(0))
        on_diag = torch.diagonal(c).add_(-1).pow_(2).sum()
        off_diag = off_diagonal(c).pow_(2).sum()
        return on_diag + lambd * off_diag

    def augment(x):
        noise = side.draw(torch.randn, x.shape) * 0.1
        flip = side.draw(torch.rand, x.size(0)) < 0.5
        return torch.where(flip[:, None, None, None], torch.flip(x, dims=[3]), x) + noise

    rng = np.random.default_rng(83)
    images = side.data(rng.random((6, 1, 8, 8), dtype=np.float32))
    model = side.weights(Encoder())
    net = side.compile(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    log: dict[str, list] = {"info_nce": [], "nt_xent": [], "barlow": [], "top1": []}
    for _ in range(3):
        x1, x2 = augment(images), augment(images)
        features = net(torch.cat([x1, x2], dim=0))
        loss, logits = info_nce_loss(features, images.size(0))
        z1, z2 = features.chunk(2)
        other = nt_xent(z1, z2)
        barlow = barlow_twins(model, x1, x2)
        optimizer.zero_grad()
        (loss + other + 0.01 * barlow).backward()
        optimizer.step()
        log["info_nce"].append(loss.item())
        log["nt_xent"].append(other.item())
        log["barlow"].append(barlow.item())
        log["top1"].append((logits.argmax(1) == 0).float().mean().item())
    return {**log, "state": model.state_dict()}


@COMPILED_FULL
def test_simclr_and_barlow_twins_losses(compiled):
    run_both(ssl_losses, compiled=compiled)


# -- 4. GCN (tkipf/pygcn) and GAT (Diego999/pyGAT) on a dense normalised adjacency ------------

def dense_graph(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class GraphConvolution(nn.Module):
        def __init__(self, in_features, out_features):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(in_features, out_features))
            self.bias = nn.Parameter(torch.empty(out_features))
            stdv = 1.0 / math.sqrt(self.weight.size(1))
            self.weight.data.uniform_(-stdv, stdv)
            self.bias.data.uniform_(-stdv, stdv)

        def forward(self, x, adj):
            return torch.mm(adj, torch.mm(x, self.weight)) + self.bias

    class GraphAttentionLayer(nn.Module):
        def __init__(self, in_features, out_features, alpha=0.2, concat=True):
            super().__init__()
            self.out_features, self.concat = out_features, concat
            self.W = nn.Parameter(torch.empty(in_features, out_features))
            nn.init.xavier_uniform_(self.W.data, gain=1.414)
            self.a = nn.Parameter(torch.empty(2 * out_features, 1))
            nn.init.xavier_uniform_(self.a.data, gain=1.414)
            self.leakyrelu = nn.LeakyReLU(alpha)

        def forward(self, h, adj):
            Wh = torch.mm(h, self.W)
            Wh1 = torch.matmul(Wh, self.a[: self.out_features, :])
            Wh2 = torch.matmul(Wh, self.a[self.out_features:, :])
            e = self.leakyrelu(Wh1 + Wh2.T)
            zero_vec = -9e15 * torch.ones_like(e)
            attention = torch.where(adj > 0, e, zero_vec)
            attention = F.softmax(attention, dim=1)
            h_prime = torch.matmul(attention, Wh)
            return F.elu(h_prime) if self.concat else h_prime

    class GCN(nn.Module):
        def __init__(self, nfeat, nhid, nclass):
            super().__init__()
            self.gc1 = GraphConvolution(nfeat, nhid)
            self.gc2 = GraphConvolution(nhid, nclass)
            self.dropout = replay_dropout(side, 0.5)

        def forward(self, x, adj):
            x = F.relu(self.gc1(x, adj))
            x = self.dropout(x)
            return F.log_softmax(self.gc2(x, adj), dim=1)

    class GAT(nn.Module):
        def __init__(self, nfeat, nhid, nclass, nheads):
            super().__init__()
            self.attentions = nn.ModuleList(
                [GraphAttentionLayer(nfeat, nhid) for _ in range(nheads)])
            self.out_att = GraphAttentionLayer(nhid * nheads, nclass, concat=False)

        def forward(self, x, adj):
            x = torch.cat([att(x, adj) for att in self.attentions], dim=1)
            return F.log_softmax(F.elu(self.out_att(x, adj)), dim=1)

    def normalize_adj(adj):
        """D^-1/2 (A + I) D^-1/2, on tensors."""
        adj = adj + torch.eye(adj.size(0))
        rowsum = adj.sum(1)
        d_inv_sqrt = torch.pow(rowsum, -0.5).flatten()
        d_inv_sqrt[torch.isinf(d_inv_sqrt)] = 0.0
        d_mat_inv_sqrt = torch.diag(d_inv_sqrt)
        return d_mat_inv_sqrt @ adj @ d_mat_inv_sqrt

    def accuracy(output, labels):
        preds = output.max(1)[1].type_as(labels)
        return preds.eq(labels).double().sum() / len(labels)

    rng = np.random.default_rng(84)
    num_nodes, nfeat = 12, 6
    a = (rng.random((num_nodes, num_nodes)) < 0.25).astype(np.float32)
    a = np.triu(a, 1)
    a = a + a.T
    features = rng.random((num_nodes, nfeat)).astype(np.float32)
    features = features / features.sum(1, keepdims=True)  # pygcn's row normalisation
    labels = side.data(rng.integers(0, 3, num_nodes))
    adj_raw, x = side.data(a), side.data(features)
    adj = normalize_adj(adj_raw)
    idx_train, idx_val = torch.arange(0, 8), torch.arange(8, 12)
    out = {"adj": adj}
    for name, model in (("gcn", GCN(nfeat, 8, 3)), ("gat", GAT(nfeat, 4, 3, nheads=2))):
        model = side.weights(model)
        net = side.compile(model) if name == "gat" else model  # the GCN's dropout is replayed
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
        losses = []
        for _ in range(4):
            model.train()
            optimizer.zero_grad()
            output = net(x, adj if name == "gcn" else adj_raw)
            loss_train = F.nll_loss(output[idx_train], labels[idx_train])
            loss_train.backward()
            optimizer.step()
            losses.append(loss_train.item())
        model.eval()
        with torch.no_grad():
            output = model(x, adj if name == "gcn" else adj_raw)
        out[name] = {"losses": losses, "output": output,
                     "acc_val": accuracy(output[idx_val], labels[idx_val]),
                     "state": model.state_dict()}
    return out


@COMPILED
def test_gcn_and_gat_dense_adjacency(compiled):
    run_both(dense_graph, compiled=compiled)


# -- 5. REINFORCE (pytorch/examples reinforcement_learning/reinforce.py) ------------------------

def reinforce(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    gamma = 0.9
    eps = np.finfo(np.float32).eps.item()

    class Policy(nn.Module):
        def __init__(self):
            super().__init__()
            self.affine1 = nn.Linear(4, 16)
            self.dropout = replay_dropout(side, 0.6)
            self.affine2 = nn.Linear(16, 2)
            self.saved_log_probs = []
            self.rewards = []
            self.entropies = []

        def forward(self, x):
            x = self.affine1(x)
            x = self.dropout(x)
            x = F.relu(x)
            action_scores = self.affine2(x)
            return F.softmax(action_scores, dim=1)

    class Corridor:
        """A deterministic 1-d corridor: action 1 walks right, 0 left; reward on reaching 4."""

        def reset(self):
            self.pos = 0
            return self.state()

        def state(self):
            return np.array([self.pos / 4, 1.0 - self.pos / 4, float(self.pos == 0),
                             float(self.pos == 3)], dtype=np.float32)

        def step(self, action):
            self.pos = max(0, self.pos + (1 if action == 1 else -1))
            done = self.pos == 4
            return self.state(), (1.0 if done else -0.1), done

    policy = side.weights(Policy())
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)

    def select_action(state):
        state = torch.from_numpy(state).float().unsqueeze(0)
        probs = policy(state)
        m = torch.distributions.Categorical(probs)
        action = side.draw(m.sample)
        policy.saved_log_probs.append(m.log_prob(action))
        policy.entropies.append(m.entropy())
        return action.item()

    def finish_episode():
        R = 0
        policy_loss = []
        returns = deque()
        for r in policy.rewards[::-1]:
            R = r + gamma * R
            returns.appendleft(R)
        returns = torch.tensor(returns)
        returns = (returns - returns.mean()) / (returns.std() + eps)
        for log_prob, R in zip(policy.saved_log_probs, returns):
            policy_loss.append(-log_prob * R)
        optimizer.zero_grad()
        entropy = torch.cat(policy.entropies).mean()
        policy_loss = torch.cat(policy_loss).sum() - 0.01 * entropy
        policy_loss.backward()
        optimizer.step()
        del policy.rewards[:]
        del policy.saved_log_probs[:]
        del policy.entropies[:]
        return policy_loss.item()

    env = Corridor()
    running_reward = 0.0
    log: dict[str, list] = {"loss": [], "running": [], "lengths": []}
    for _episode in range(4):
        state, ep_reward = env.reset(), 0.0
        for t in range(1, 12):  # noqa: B007  (the example logs the episode's length t)
            action = select_action(state)
            state, reward, done = env.step(action)
            policy.rewards.append(reward)
            ep_reward += reward
            if done:
                break
        running_reward = 0.05 * ep_reward + (1 - 0.05) * running_reward
        log["loss"].append(finish_episode())
        log["running"].append(running_reward)
        log["lengths"].append(t)
    return {**log, "state": policy.state_dict()}


def test_reinforce_discounted_returns():
    run_both(reinforce)


# -- 6. a CTC speech toy: Conv1d front end, BiGRU, nn.CTCLoss, greedy decoding --------------------

def ctc_speech(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    n_mels, n_class = 8, 5  # blank = 0

    class SpeechRecognizer(nn.Module):
        def __init__(self):
            super().__init__()
            self.cnn = nn.Sequential(nn.Conv1d(n_mels, 12, kernel_size=3, stride=2, padding=1,
                                               bias=False),
                                     nn.BatchNorm1d(12), nn.GELU())
            self.rnn = nn.GRU(12, 8, num_layers=1, batch_first=True, bidirectional=True)
            self.classifier = nn.Linear(16, n_class)

        def forward(self, spectrogram, lengths):
            x = self.cnn(spectrogram)                      # (N, C, T')
            x = x.transpose(1, 2)                          # (N, T', C)
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                       enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                      total_length=x.size(1))
            return F.log_softmax(self.classifier(out), dim=2)

    def greedy_decode(log_probs, lengths):
        best = log_probs.argmax(dim=2)
        decoded = []
        for seq, length in zip(best, lengths):
            collapsed = torch.unique_consecutive(seq[: int(length)])
            decoded.append([int(c) for c in collapsed if int(c) != 0])
        return decoded

    rng = np.random.default_rng(86)
    n, frames = 4, 16
    spec = rng.standard_normal((n, n_mels, frames)).astype(np.float32)
    frame_lengths = np.array([16, 12, 14, 10])
    for i, length in enumerate(frame_lengths):
        spec[i, :, length:] = 0.0
    target_lengths = np.array([3, 2, 4, 1])
    targets = np.zeros((n, 4), dtype=np.int64)
    for i, length in enumerate(target_lengths):
        targets[i, :length] = rng.integers(1, n_class, length)
    spectrogram, targets = side.data(spec), side.data(targets)
    target_lengths = side.data(target_lengths)
    out_lengths = side.data((frame_lengths - 1) // 2 + 1)  # the stride-2 conv's lengths
    flat_targets = torch.cat([t[:length] for t, length in zip(targets, target_lengths)])
    model = side.weights(SpeechRecognizer())
    criterion = nn.CTCLoss(blank=0, zero_infinity=True)
    summed = nn.CTCLoss(blank=0, reduction="sum")
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=5e-3, total_steps=4,
                                                    anneal_strategy="linear")
    losses, flat_losses = [], []
    for step in range(4):
        model.train()
        log_probs = model(spectrogram, out_lengths.cpu())
        log_probs = log_probs.transpose(0, 1)              # (T, N, C) for the loss
        loss = criterion(log_probs, targets, out_lengths, target_lengths)
        flat_losses.append(summed(log_probs, flat_targets, out_lengths, target_lengths).item())
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            first = grads(model)
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        log_probs = model(spectrogram, out_lengths)
        per_sample = F.ctc_loss(log_probs.transpose(0, 1), targets, out_lengths, target_lengths,
                                reduction="none")
    return {"losses": losses, "flat_losses": flat_losses, "grads": first,
            "per_sample": per_sample, "decoded": greedy_decode(log_probs, out_lengths),
            "state": model.state_dict()}


def test_ctc_speech_recognizer():
    run_both(ctc_speech)


# -- 7. activation checkpointing: torch.utils.checkpoint on blocks, checkpoint_sequential ------

def checkpointing(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    from_checkpoint = torch.utils.checkpoint

    class Block(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.norm = nn.LayerNorm(dim)
            self.fc1 = nn.Linear(dim, 2 * dim)
            self.fc2 = nn.Linear(2 * dim, dim)

        def forward(self, x):
            return x + self.fc2(F.gelu(self.fc1(self.norm(x))))

    class DeepNet(nn.Module):
        def __init__(self, use_checkpoint):
            super().__init__()
            self.use_checkpoint = use_checkpoint
            self.stem = nn.Linear(6, 12)
            self.blocks = nn.ModuleList([Block(12) for _ in range(3)])
            self.tail = nn.Sequential(Block(12), Block(12), nn.Linear(12, 12))
            self.head = nn.Linear(12, 3)

        def forward(self, x):
            x = self.stem(x)
            for block in self.blocks:
                if self.use_checkpoint and self.training:
                    x = from_checkpoint.checkpoint(block, x, use_reentrant=False)
                else:
                    x = block(x)
            if self.use_checkpoint and self.training:
                x = from_checkpoint.checkpoint_sequential(self.tail, 2, x, use_reentrant=False)
            else:
                x = self.tail(x)
            return self.head(x)

    rng = np.random.default_rng(87)
    x = side.data(rng.standard_normal((10, 6)).astype(np.float32))
    y = side.data(rng.integers(0, 3, 10))
    out = {}
    for use_checkpoint in (True, False):
        model = side.weights(DeepNet(use_checkpoint))
        net = side.compile(model)
        if not use_checkpoint:
            model.load_state_dict(out["ckpt_init"])
        else:
            out["ckpt_init"] = {k: v.clone() for k, v in model.state_dict().items()}
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        losses = []
        for step in range(3):
            model.train()
            optimizer.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            if step == 0:
                first = grads(model)
            optimizer.step()
            losses.append(loss.item())
        out["ckpt" if use_checkpoint else "plain"] = {"losses": losses, "grads": first,
                                                      "state": model.state_dict()}
    # checkpointing changes nothing but memory: both runs agree on each library
    for k in ("losses",):
        np.testing.assert_allclose(out["ckpt"][k], out["plain"][k], rtol=1e-6)
    return out


@COMPILED_FULL
def test_activation_checkpointing(compiled):
    run_both(checkpointing, compiled=compiled)


# -- 8. SN-GAN: spectral-norm parametrizations in the discriminator, hinge loss, n_critic --------

def sngan(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    SN = nn.utils.parametrizations.spectral_norm
    nz = 6

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(nz, 8 * 2 * 2)
            self.net = nn.Sequential(
                nn.BatchNorm2d(8), nn.ReLU(True),
                nn.ConvTranspose2d(8, 4, 4, 2, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(True),
                nn.ConvTranspose2d(4, 1, 4, 2, 1), nn.Tanh())

        def forward(self, z):
            return self.net(self.fc(z).view(-1, 8, 2, 2))

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                SN(nn.Conv2d(1, 4, 3, 1, 1)), nn.LeakyReLU(0.1),
                SN(nn.Conv2d(4, 8, 4, 2, 1)), nn.LeakyReLU(0.1),
                SN(nn.Conv2d(8, 8, 3, 1, 1)), nn.LeakyReLU(0.1))
            self.fc = SN(nn.Linear(8 * 4 * 4, 1), n_power_iterations=2)

        def forward(self, x):
            return self.fc(self.net(x).flatten(1))

    rng = np.random.default_rng(88)
    real_images = side.data(np.tanh(rng.standard_normal((3, 6, 1, 8, 8))).astype(np.float32))
    netG, netD = side.weights(Generator()), side.weights(Discriminator())
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.0, 0.9))
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.0, 0.9))
    log: dict[str, list] = {"d": [], "g": [], "sigma": []}
    for real in real_images:
        for _ in range(2):  # n_critic
            z = side.draw(torch.randn, real.size(0), nz)
            fake = netG(z).detach()
            loss_d = F.relu(1.0 - netD(real)).mean() + F.relu(1.0 + netD(fake)).mean()
            optD.zero_grad()
            loss_d.backward()
            optD.step()
        z = side.draw(torch.randn, real.size(0), nz)
        loss_g = -netD(netG(z)).mean()
        optG.zero_grad()
        loss_g.backward()
        optG.step()
        log["d"].append(loss_d.item())
        log["g"].append(loss_g.item())
        with torch.no_grad():  # the normalised weight's largest singular value is about 1
            w = netD.net[2].weight.flatten(1)
            log["sigma"].append(torch.linalg.matrix_norm(w, ord=2).item())
    netD.eval()
    with torch.no_grad():
        scores = netD(real_images[0])
    names = sorted(n for n, _ in netD.named_parameters())
    assert "fc.parametrizations.weight.original" in names
    return {**log, "scores": scores, "D": netD.state_dict(), "G": netG.state_dict()}


def test_sngan_spectral_norm_hinge():
    run_both(sngan)


# -- 9. MobileNetV2 / EfficientNet blocks: depthwise convs, squeeze-excitation, stochastic depth --

def mobile_blocks(side: Side5, drop: float = 0.25) -> dict:
    torch = side.lib
    nn = torch.nn

    def drop_path(x, drop_prob: float = 0.0, training: bool = False):
        """timm's drop_path: one Bernoulli draw per sample, survivors scaled."""
        if drop_prob == 0.0 or not training:
            return x
        keep_prob = 1 - drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        random_tensor = side.draw(lambda: x.new_empty(shape).bernoulli_(keep_prob))
        return x * random_tensor.div_(keep_prob)

    class DropPath(nn.Module):
        def __init__(self, drop_prob=None):
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x):
            return drop_path(x, self.drop_prob, self.training)

    class SqueezeExcitation(nn.Module):  # torchvision.ops.SqueezeExcitation
        def __init__(self, input_channels, squeeze_channels):
            super().__init__()
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
            self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
            self.activation, self.scale_activation = nn.SiLU(), nn.Sigmoid()

        def forward(self, x):
            scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
            return scale * x

    class InvertedResidual(nn.Module):  # MobileNetV2
        def __init__(self, inp, oup, stride, expand_ratio):
            super().__init__()
            hidden_dim = int(round(inp * expand_ratio))
            self.use_res_connect = stride == 1 and inp == oup
            self.conv = nn.Sequential(
                nn.Conv2d(inp, hidden_dim, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden_dim),
                nn.ReLU6(inplace=True),
                nn.Conv2d(hidden_dim, hidden_dim, 3, stride, 1, groups=hidden_dim, bias=False),
                nn.BatchNorm2d(hidden_dim), nn.ReLU6(inplace=True),
                nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup))

        def forward(self, x):
            return x + self.conv(x) if self.use_res_connect else self.conv(x)

    class MBConv(nn.Module):  # EfficientNet: expand, depthwise 5x5, SE, project, drop path
        def __init__(self, channels, expand, drop):
            super().__init__()
            hidden = channels * expand
            self.block = nn.Sequential(
                nn.Conv2d(channels, hidden, 1, bias=False),
                nn.BatchNorm2d(hidden, eps=1e-3, momentum=0.01), nn.SiLU(inplace=True),
                nn.Conv2d(hidden, hidden, 5, padding=2, groups=hidden, bias=False),
                nn.BatchNorm2d(hidden, eps=1e-3, momentum=0.01), nn.SiLU(inplace=True),
                SqueezeExcitation(hidden, max(1, channels // 4)),
                nn.Conv2d(hidden, channels, 1, bias=False),
                nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01))
            self.stochastic_depth = DropPath(drop)

        def forward(self, x):
            return x + self.stochastic_depth(self.block(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                      nn.Hardswish(inplace=True))
            self.features = nn.Sequential(InvertedResidual(8, 8, 1, 2),
                                          InvertedResidual(8, 12, 2, 3),
                                          MBConv(12, 2, drop), MBConv(12, 2, 2 * drop))
            self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(12, 4))
            for m in self.modules():  # torchvision's MobileNetV2 init
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.zeros_(m.bias)

        def forward(self, x):
            x = self.features(self.stem(x))
            x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
            return self.classifier(torch.flatten(x, 1))

    rng = np.random.default_rng(89)
    images = side.data(rng.standard_normal((2, 6, 3, 12, 12)).astype(np.float32))
    labels = side.data(rng.integers(0, 4, (2, 6)))
    model = side.weights(Net())
    net = side.compile(model)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-3,
                                    momentum=0.9, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=2, T_mult=2)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    losses, lrs = [], []
    for epoch in range(2):
        for i, (x, y) in enumerate(zip(images, labels)):
            model.train()
            optimizer.zero_grad()
            loss = criterion(net(x), y)
            loss.backward()
            optimizer.step()
            scheduler.step(epoch + i / 2)
            losses.append(loss.item())
            lrs.append(scheduler.get_last_lr()[0])
    model.eval()
    with torch.no_grad():
        logits = net(images[0])
    return {"losses": losses, "lrs": lrs, "logits": logits, "state": model.state_dict()}


@COMPILED_FULL
def test_mobilenet_efficientnet_blocks(compiled):
    # compiled, drop_path draws its masks in the graph (test_random_fill's traced fills), where
    # torch's can't be replayed: the compiled run trains without stochastic depth
    run_both(lambda side: mobile_blocks(side, 0.0 if compiled else 0.25), compiled=compiled)


# -- 10. LoRA fine-tuning: a frozen base, low-rank adapters, trainable-only optimizer, merging ---

def lora(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class LoRALinear(nn.Module):
        """loralib's Linear: W x + (B A x) * alpha / r, A kaiming-uniform, B zero."""

        def __init__(self, base: nn.Linear, r=2, lora_alpha=4, lora_dropout=0.0):
            super().__init__()
            self.base = base
            self.lora_A = nn.Parameter(base.weight.new_zeros((r, base.in_features)))
            self.lora_B = nn.Parameter(base.weight.new_zeros((base.out_features, r)))
            self.scaling = lora_alpha / r
            self.lora_dropout = nn.Dropout(lora_dropout) if lora_dropout else nn.Identity()
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            nn.init.zeros_(self.lora_B)
            self.merged = False

        def forward(self, x):
            result = self.base(x)
            if not self.merged:
                result = result + (self.lora_dropout(x) @ self.lora_A.transpose(0, 1)
                                   @ self.lora_B.transpose(0, 1)) * self.scaling
            return result

        def merge(self):
            with torch.no_grad():
                self.base.weight += (self.lora_B @ self.lora_A) * self.scaling
            self.merged = True

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(20, 8)
            self.q = nn.Linear(8, 8)
            self.v = nn.Linear(8, 8)
            self.out = nn.Linear(8, 3)

        def forward(self, tokens):
            h = self.embed(tokens)
            att = torch.softmax(self.q(h) @ h.transpose(1, 2) / math.sqrt(8), dim=-1)
            return self.out((att @ self.v(h)).mean(1))

    rng = np.random.default_rng(90)
    tokens = side.data(rng.integers(0, 20, (8, 5)))
    y = side.data(rng.integers(0, 3, 8))
    model = side.weights(Classifier())  # the "pretrained" model
    for p in model.parameters():
        p.requires_grad_(False)
    model.q = LoRALinear(model.q)
    model.v = LoRALinear(model.v)
    model.out.weight.requires_grad = True  # the head is tuned in full
    model.out.bias.requires_grad = True
    side.weights(model)  # the adapters' initial values
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["q.lora_A", "q.lora_B", "v.lora_A", "v.lora_B", "out.weight",
                         "out.bias"]  # the wrapped layers keep their places
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-2)
    net = side.compile(model)
    losses = []
    for _ in range(4):
        loss = F.cross_entropy(net(tokens), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model.embed.weight.grad is None and model.q.base.weight.grad is None
    lora_state = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    with torch.no_grad():
        before = model(tokens)
        model.q.merge()
        model.v.merge()
        after = model(tokens)
    return {"losses": losses, "n_trainable": n_trainable,
            "lora": lora_state, "before": before, "after": after,
            "merged_q": model.q.base.weight}


@COMPILED_FULL
def test_lora_fine_tuning(compiled):
    run_both(lora, compiled=compiled)


# -- 11. DANN: a gradient reversal layer (autograd.Function) between features and a domain head --

def dann(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn

    class GradientReversal(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, alpha):
            ctx.alpha = alpha
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output.neg() * ctx.alpha, None

    class DANN(nn.Module):
        def __init__(self):
            super().__init__()
            self.feature = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 8),
                                         nn.ReLU())
            self.class_classifier = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3),
                                                  nn.LogSoftmax(dim=1))
            self.domain_classifier = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))

        def forward(self, x, alpha):
            feature = self.feature(x)
            reverse_feature = GradientReversal.apply(feature, alpha)
            return (self.class_classifier(feature),
                    self.domain_classifier(reverse_feature).squeeze(1))

    rng = np.random.default_rng(91)
    source_x = side.data(rng.standard_normal((3, 8, 5)).astype(np.float32))
    source_y = side.data(rng.integers(0, 3, (3, 8)))
    target_x = side.data((rng.standard_normal((3, 8, 5)) * 1.5 + 0.5).astype(np.float32))
    model = side.weights(DANN())
    net = side.compile(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_class, loss_domain = nn.NLLLoss(), nn.BCEWithLogitsLoss()
    log: dict[str, list] = {"class": [], "domain": [], "alpha": []}
    n_steps = len(source_x)
    for i in range(n_steps):
        p = i / n_steps
        alpha = 2.0 / (1.0 + np.exp(-10 * p)) - 1
        for param_group in optimizer.param_groups:  # the paper's annealed learning rate
            param_group["lr"] = 0.05 / (1.0 + 10 * p) ** 0.75
        class_output, domain_source = net(source_x[i], alpha)
        _, domain_target = net(target_x[i], alpha)
        err_class = loss_class(class_output, source_y[i])
        err_domain = (loss_domain(domain_source, torch.zeros(8))
                      + loss_domain(domain_target, torch.ones(8)))
        optimizer.zero_grad()
        (err_class + err_domain).backward()
        if i == 1:
            reversed_grads = grads(model)
        optimizer.step()
        log["class"].append(err_class.item())
        log["domain"].append(err_domain.item())
        log["alpha"].append(alpha)
    return {**log, "grads": reversed_grads, "state": model.state_dict()}


@COMPILED_FULL
def test_dann_gradient_reversal(compiled):
    run_both(dann, compiled=compiled)


# -- 12. NeRF: positional encoding, volume rendering, hierarchical sampling with searchsorted ----

def nerf(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class Embedder:
        """nerf-pytorch's get_embedder: x, then sin and cos of 2^k x."""

        def __init__(self, multires):
            self.freq_bands = 2.0 ** torch.linspace(0.0, multires - 1, steps=multires)
            self.out_dim = 3 + 3 * 2 * multires

        def embed(self, inputs):
            outs = [inputs]
            for freq in self.freq_bands:
                for p_fn in (torch.sin, torch.cos):
                    outs.append(p_fn(inputs * freq))
            return torch.cat(outs, -1)

    class NeRF(nn.Module):
        def __init__(self, input_ch, input_ch_views, W=16):
            super().__init__()
            self.input_ch = input_ch
            self.pts_linears = nn.ModuleList(
                [nn.Linear(input_ch, W), nn.Linear(W, W), nn.Linear(W + input_ch, W)])
            self.views_linears = nn.ModuleList([nn.Linear(input_ch_views + W, W // 2)])
            self.feature_linear = nn.Linear(W, W)
            self.alpha_linear = nn.Linear(W, 1)
            self.rgb_linear = nn.Linear(W // 2, 3)

        def forward(self, x):
            input_pts, input_views = torch.split(x, [self.input_ch, x.shape[-1] - self.input_ch],
                                                 dim=-1)
            h = input_pts
            for i, layer in enumerate(self.pts_linears):
                h = F.relu(layer(h))
                if i == 1:  # the skip connection
                    h = torch.cat([input_pts, h], -1)
            alpha = self.alpha_linear(h)
            h = torch.cat([self.feature_linear(h), input_views], -1)
            for layer in self.views_linears:
                h = F.relu(layer(h))
            return torch.cat([self.rgb_linear(h), alpha], -1)

    def raw2outputs(raw, z_vals, rays_d):
        raw2alpha = lambda raw, dists: 1.0 - torch.exp(-F.relu(raw) * dists)  # noqa: E731
        dists = z_vals[..., 1:] - z_vals[..., :-1]
        dists = torch.cat([dists, torch.tensor([1e10]).expand(dists[..., :1].shape)], -1)
        dists = dists * torch.norm(rays_d[..., None, :], dim=-1)
        rgb = torch.sigmoid(raw[..., :3])
        alpha = raw2alpha(raw[..., 3], dists)
        weights = alpha * torch.cumprod(
            torch.cat([torch.ones((alpha.shape[0], 1)), 1.0 - alpha + 1e-10], -1), -1)[:, :-1]
        rgb_map = torch.sum(weights[..., None] * rgb, -2)
        depth_map = torch.sum(weights * z_vals, -1)
        disp_map = 1.0 / torch.max(1e-10 * torch.ones_like(depth_map),
                                   depth_map / torch.sum(weights, -1))
        acc_map = torch.sum(weights, -1)
        return rgb_map, disp_map, acc_map, weights, depth_map

    def sample_pdf(bins, weights, N_samples, u):
        weights = weights + 1e-5
        pdf = weights / torch.sum(weights, -1, keepdim=True)
        cdf = torch.cumsum(pdf, -1)
        cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf], -1)
        u = u.contiguous()
        inds = torch.searchsorted(cdf, u, right=True)
        below = torch.max(torch.zeros_like(inds - 1), inds - 1)
        above = torch.min((cdf.shape[-1] - 1) * torch.ones_like(inds), inds)
        inds_g = torch.stack([below, above], -1)
        matched_shape = [inds_g.shape[0], inds_g.shape[1], cdf.shape[-1]]
        cdf_g = torch.gather(cdf.unsqueeze(1).expand(matched_shape), 2, inds_g)
        bins_g = torch.gather(bins.unsqueeze(1).expand(matched_shape), 2, inds_g)
        denom = cdf_g[..., 1] - cdf_g[..., 0]
        denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)
        t = (u - cdf_g[..., 0]) / denom
        return bins_g[..., 0] + t * (bins_g[..., 1] - bins_g[..., 0])

    embed_fn, embeddirs_fn = Embedder(4), Embedder(2)
    model = side.weights(NeRF(embed_fn.out_dim, embeddirs_fn.out_dim))
    model_fine = side.weights(NeRF(embed_fn.out_dim, embeddirs_fn.out_dim))
    networks = {id(model): side.compile(model), id(model_fine): side.compile(model_fine)}
    optimizer = torch.optim.Adam(list(model.parameters()) + list(model_fine.parameters()),
                                 lr=5e-3, betas=(0.9, 0.999))

    def run_network(net, pts, viewdirs):
        flat = pts.reshape(-1, 3)
        dirs = viewdirs[:, None].expand(pts.shape).reshape(-1, 3)
        out = networks[id(net)](torch.cat([embed_fn.embed(flat), embeddirs_fn.embed(dirs)], -1))
        return out.reshape(list(pts.shape[:-1]) + [out.shape[-1]])

    rng = np.random.default_rng(92)
    n_rays, n_samples, n_importance, near, far = 8, 6, 5, 2.0, 6.0
    rays_o = side.data(rng.standard_normal((3, n_rays, 3)).astype(np.float32) * 0.1)
    rays_d = side.data(rng.standard_normal((3, n_rays, 3)).astype(np.float32))
    target = side.data(rng.random((3, n_rays, 3), dtype=np.float32))
    log: dict[str, list] = {"loss": [], "psnr": [], "z_fine": []}
    for step in range(3):
        ro, rd = rays_o[step], rays_d[step]
        viewdirs = rd / torch.norm(rd, dim=-1, keepdim=True)
        t_vals = torch.linspace(0.0, 1.0, steps=n_samples)
        z_vals = (near * (1.0 - t_vals) + far * t_vals).expand([n_rays, n_samples])
        mids = 0.5 * (z_vals[..., 1:] + z_vals[..., :-1])  # stratified jitter
        upper = torch.cat([mids, z_vals[..., -1:]], -1)
        lower = torch.cat([z_vals[..., :1], mids], -1)
        z_vals = lower + (upper - lower) * side.draw(torch.rand, z_vals.shape)
        pts = ro[..., None, :] + rd[..., None, :] * z_vals[..., :, None]
        rgb_map_0, _, _, weights, _ = raw2outputs(run_network(model, pts, viewdirs), z_vals, rd)
        z_vals_mid = 0.5 * (z_vals[..., 1:] + z_vals[..., :-1])
        u = side.draw(torch.rand, [n_rays, n_importance])
        z_samples = sample_pdf(z_vals_mid, weights[..., 1:-1], n_importance, u).detach()
        z_vals, _ = torch.sort(torch.cat([z_vals, z_samples], -1), -1)
        pts = ro[..., None, :] + rd[..., None, :] * z_vals[..., :, None]
        rgb_map, disp_map, acc_map, _, _ = raw2outputs(run_network(model_fine, pts, viewdirs),
                                                       z_vals, rd)
        img_loss = torch.mean((rgb_map - target[step]) ** 2)
        loss = img_loss + torch.mean((rgb_map_0 - target[step]) ** 2)
        psnr = -10.0 * torch.log(img_loss) / torch.log(torch.Tensor([10.0]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        decay_rate, decay_steps = 0.1, 250
        for param_group in optimizer.param_groups:
            param_group["lr"] = 5e-3 * (decay_rate ** ((step + 1) / decay_steps))
        log["loss"].append(loss.item())
        log["psnr"].append(psnr.item())
        log["z_fine"].append(z_vals)
    return {**log, "disp": disp_map, "acc": acc_map, "coarse": model.state_dict(),
            "fine": model_fine.state_dict()}


@COMPILED_FULL
def test_nerf_volume_rendering_hierarchical_sampling(compiled):
    run_both(nerf, compiled=compiled)


# -- 13. a learning-rate range test, then ReduceLROnPlateau on a validation loss ----------------

def lr_finder(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

        def forward(self, x):
            return self.body(x).squeeze(-1)

    rng = np.random.default_rng(93)
    x_all = rng.standard_normal((40, 4)).astype(np.float32)
    y_all = (np.sin(x_all[:, 0]) + 0.5 * x_all[:, 1] * x_all[:, 2]).astype(np.float32)
    x, y = side.data(x_all[:32]), side.data(y_all[:32])
    x_val, y_val = side.data(x_all[32:]), side.data(y_all[32:])
    model = side.weights(Net())
    initial = {k: v.clone() for k, v in model.state_dict().items()}

    # the fastai / torch-lr-finder range test: lr grows exponentially, losses smoothed
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    start_lr, end_lr, num_iter, beta = 1e-4, 10.0, 12, 0.7
    gamma = (end_lr / start_lr) ** (1 / num_iter)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
    lrs, smoothed, avg, best = [], [], 0.0, float("inf")
    for i in range(num_iter):
        batch = slice((i % 4) * 8, (i % 4) * 8 + 8)
        loss = F.mse_loss(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        avg = beta * avg + (1 - beta) * loss.item()
        smooth = avg / (1 - beta ** (i + 1))
        lrs.append(scheduler.get_last_lr()[0])
        smoothed.append(smooth)
        scheduler.step()
        best = min(best, smooth)
        if smooth > 4 * best or math.isnan(smooth):
            break
    steepest = int(np.argmin(np.gradient(np.array(smoothed))))
    suggested = lrs[steepest]

    model.load_state_dict(initial)  # train from the start at the suggested rate
    optimizer = torch.optim.SGD(model.parameters(), lr=suggested / 10, momentum=0.9)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5,
                                                         patience=1, threshold=1e-2)
    val_losses, val_lrs = [], []
    for _epoch in range(6):
        model.train()
        for i in range(4):
            batch = slice(i * 8, i * 8 + 8)
            loss = F.mse_loss(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = F.mse_loss(model(x_val), y_val)
        plateau.step(val_loss)
        val_losses.append(val_loss.item())
        val_lrs.append(optimizer.param_groups[0]["lr"])
    return {"lrs": lrs, "smoothed": smoothed, "suggested": suggested, "val": val_losses,
            "val_lrs": val_lrs, "state": model.state_dict(),
            "plateau": {k: v for k, v in plateau.state_dict().items()
                        if k in ("best", "num_bad_epochs", "last_epoch", "_last_lr")}}


def test_lr_range_test_and_reduce_on_plateau():
    run_both(lr_finder)


# -- 14. the pruning tutorial: LeNet, local and global magnitude pruning, fine-tuning, remove ----

def pruning(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    prune = torch.nn.utils.prune

    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3)
            self.conv2 = nn.Conv2d(4, 8, 3)
            self.fc1 = nn.Linear(8 * 2 * 2, 16)
            self.fc2 = nn.Linear(16, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = x.view(-1, int(x.nelement() / x.shape[0]))
            return self.fc2(F.relu(self.fc1(x)))

    rng = np.random.default_rng(94)
    images = side.data(rng.standard_normal((3, 8, 1, 14, 14)).astype(np.float32))
    labels = side.data(rng.integers(0, 10, (3, 8)))
    model = side.weights(LeNet())
    module = model.conv1
    prune.l1_unstructured(module, name="weight", amount=0.3)
    prune.ln_structured(module, name="weight", amount=0.5, n=2, dim=0)  # iterative
    prune.l1_unstructured(module, name="bias", amount=1)
    parameters_to_prune = ((model.conv2, "weight"), (model.fc1, "weight"),
                           (model.fc2, "weight"))
    prune.global_unstructured(parameters_to_prune, pruning_method=prune.L1Unstructured,
                              amount=0.2)
    sparsity = {name: float(torch.sum(m.weight == 0)) / float(m.weight.nelement())
                for name, m in model.named_children()}
    buffers = [name for name, _ in model.named_buffers()]
    assert buffers == ["conv1.weight_mask", "conv1.bias_mask", "conv2.weight_mask",
                       "fc1.weight_mask", "fc2.weight_mask"]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for x, y in zip(images, labels):  # fine-tune: the pruned weights get no gradient
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    masked_grad = model.conv2.weight_orig.grad * (1 - model.conv2.weight_mask)
    assert float(masked_grad.abs().sum()) == 0.0
    for m, name in ((model.conv1, "weight"), (model.conv1, "bias")) + parameters_to_prune:
        prune.remove(m, name)
    with torch.no_grad():
        logits = model(images[0])
    return {"sparsity": sparsity, "losses": losses, "logits": logits,
            "state": model.state_dict()}


def test_pruning_tutorial():
    run_both(pruning)


# -- 15. AWD-LSTM (salesforce/awd-lstm-lm): WeightDrop, locked and embedding dropout, tied
#        weights, variable-length BPTT with detached hidden state, AR/TAR, NT-ASGD averaging ---

def awd_lstm(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    ntoken, ninp, nhid = 12, 6, 8

    def embedded_dropout(embed, words, dropout=0.1):
        mask = side.draw(lambda: embed.weight.data.new_empty(
            (embed.weight.size(0), 1)).bernoulli_(1 - dropout))
        mask = mask.expand_as(embed.weight) / (1 - dropout)
        masked_embed_weight = mask * embed.weight
        return F.embedding(words, masked_embed_weight, embed.padding_idx, embed.max_norm,
                           embed.norm_type, embed.scale_grad_by_freq, embed.sparse)

    class LockedDropout(nn.Module):
        def forward(self, x, dropout=0.5):
            if not self.training or not dropout:
                return x
            m = side.draw(lambda: x.data.new_empty((1, x.size(1), x.size(2))).bernoulli_(
                1 - dropout))
            mask = m / (1 - dropout)
            return mask.expand_as(x) * x

    class WeightDrop(nn.Module):
        def __init__(self, module, weights, dropout=0.0):
            super().__init__()
            self.module, self.weights, self.dropout = module, weights, dropout
            for name_w in self.weights:
                w = getattr(self.module, name_w)
                del self.module._parameters[name_w]
                self.module.register_parameter(name_w + "_raw", nn.Parameter(w.data))

        def _setweights(self):
            for name_w in self.weights:
                raw_w = getattr(self.module, name_w + "_raw")
                if self.training:  # F.dropout(raw_w, p), its mask replayed
                    keep = side.draw(torch.bernoulli, torch.full(tuple(raw_w.shape),
                                                                 1 - self.dropout))
                    w = raw_w * keep / (1 - self.dropout)
                else:
                    w = raw_w * 1.0  # a tensor, not the Parameter: torch refuses that here
                setattr(self.module, name_w, w)

        def forward(self, *args):
            self._setweights()
            return self.module.forward(*args)

    class RNNModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.lockdrop = LockedDropout()
            self.encoder = nn.Embedding(ntoken, ninp)
            self.rnns = nn.ModuleList([
                WeightDrop(nn.LSTM(ninp if i == 0 else nhid, nhid if i != 1 else ninp, 1),
                           ["weight_hh_l0"], dropout=0.5) for i in range(2)])
            self.decoder = nn.Linear(ninp, ntoken)
            self.decoder.weight = self.encoder.weight
            self.encoder.weight.data.uniform_(-0.1, 0.1)
            self.decoder.bias.data.fill_(0)

        def forward(self, input, hidden):
            emb = embedded_dropout(self.encoder, input, dropout=0.1 if self.training else 0)
            raw_output = self.lockdrop(emb, 0.4)
            new_hidden, raw_outputs, outputs = [], [], []
            for layer, rnn in enumerate(self.rnns):
                raw_output, new_h = rnn(raw_output, hidden[layer])
                new_hidden.append(new_h)
                raw_outputs.append(raw_output)
                if layer != len(self.rnns) - 1:
                    raw_output = self.lockdrop(raw_output, 0.25)
                    outputs.append(raw_output)
            output = self.lockdrop(raw_output, 0.4)
            outputs.append(output)
            return self.decoder(output.view(-1, output.size(2))), new_hidden, raw_outputs, \
                outputs

        def init_hidden(self, bsz):
            return [(torch.zeros(1, bsz, nhid if i != 1 else ninp),
                     torch.zeros(1, bsz, nhid if i != 1 else ninp)) for i in range(2)]

    def repackage_hidden(h):
        if isinstance(h, torch.Tensor):
            return h.detach()
        return tuple(repackage_hidden(v) for v in h)

    rng = np.random.default_rng(95)
    bsz, base_bptt, lr = 3, 6, 5.0
    corpus = side.data(rng.integers(0, ntoken, 40 * bsz))
    data = corpus.narrow(0, 0, (corpus.size(0) // bsz) * bsz).view(bsz, -1).t().contiguous()
    model = side.weights(RNNModel())
    params = list(model.parameters())
    assert len(params) == 10  # the tied weight counted once
    optimizer = torch.optim.SGD(params, lr=lr, weight_decay=1.2e-6)
    log: dict[str, list] = {"loss": [], "seq_len": [], "val": []}
    for epoch in range(3):
        if epoch == 2:  # NT-ASGD: the validation loss stopped improving
            optimizer = torch.optim.ASGD(params, lr=lr, t0=0, lambd=0.0, weight_decay=1.2e-6)
        model.train()
        hidden = model.init_hidden(bsz)
        i = 0
        while i < data.size(0) - 2:
            bptt = base_bptt if rng.random() < 0.95 else base_bptt / 2.0
            seq_len = min(max(3, int(rng.normal(bptt, 2))), data.size(0) - 1 - i)
            optimizer.param_groups[0]["lr"] = lr * seq_len / base_bptt
            inputs, targets = data[i:i + seq_len], data[i + 1:i + 1 + seq_len].reshape(-1)
            hidden = [repackage_hidden(h) for h in hidden]
            optimizer.zero_grad()
            output, hidden, rnn_hs, dropped_rnn_hs = model(inputs, hidden)
            raw_loss = F.cross_entropy(output, targets)
            loss = raw_loss + 2 * dropped_rnn_hs[-1].pow(2).mean()  # AR
            loss = loss + 1 * (rnn_hs[-1][1:] - rnn_hs[-1][:-1]).pow(2).mean()  # TAR
            loss.backward()
            nn.utils.clip_grad_norm_(params, 0.25)
            optimizer.step()
            optimizer.param_groups[0]["lr"] = lr
            log["loss"].append(raw_loss.item())
            log["seq_len"].append(seq_len)
            i += seq_len
        tmp = {}
        if isinstance(optimizer, torch.optim.ASGD):  # evaluate with the averaged weights
            for prm in params:
                tmp[prm] = prm.data.clone()
                prm.data = optimizer.state[prm]["ax"].clone()
        model.eval()
        with torch.no_grad():
            hidden = model.init_hidden(bsz)
            output, _, _, _ = model(data[:-1], hidden)
            log["val"].append(F.cross_entropy(output, data[1:].reshape(-1)).item())
        for prm, value in tmp.items():
            prm.data = value.clone()
    return {**log, "state": model.state_dict()}


def test_awd_lstm_weight_drop_nt_asgd():
    run_both(awd_lstm)


# -- 16. ArcFace (InsightFace_Pytorch's Arcface head): renormed kernel, additive angular margin,
#        then face verification by cosine similarity with an ROC AUC by the trapezoidal rule ----

def arcface(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    embedding_size, classnum = 8, 5

    def l2_norm(input, axis=1):
        norm = torch.norm(input, 2, axis, True)
        return torch.div(input, norm)

    class Arcface(nn.Module):
        def __init__(self, s=16.0, m=0.5):
            super().__init__()
            self.kernel = nn.Parameter(torch.Tensor(embedding_size, classnum))
            self.kernel.data.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)
            self.m, self.s = m, s
            self.cos_m, self.sin_m = math.cos(m), math.sin(m)
            self.mm = self.sin_m * m
            self.threshold = math.cos(math.pi - m)

        def forward(self, embeddings, label):
            nB = len(embeddings)
            kernel_norm = l2_norm(self.kernel, axis=0)
            cos_theta = torch.mm(embeddings, kernel_norm).clamp(-1, 1)
            cos_theta_2 = torch.pow(cos_theta, 2)
            sin_theta = torch.sqrt(1 - cos_theta_2)
            cos_theta_m = cos_theta * self.cos_m - sin_theta * self.sin_m
            cond_mask = (cos_theta - self.threshold) <= 0
            keep_val = cos_theta - self.mm
            cos_theta_m[cond_mask] = keep_val[cond_mask]
            output = cos_theta * 1.0
            idx_ = torch.arange(0, nB, dtype=torch.long)
            output[idx_, label] = cos_theta_m[idx_, label]
            return output * self.s

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                                      nn.PReLU(4), nn.MaxPool2d(2))
            self.output_layer = nn.Sequential(nn.BatchNorm2d(4), nn.Flatten(),
                                              nn.Linear(4 * 4 * 4, embedding_size),
                                              nn.BatchNorm1d(embedding_size))

        def forward(self, x):
            return l2_norm(self.output_layer(self.body(x)))

    rng = np.random.default_rng(96)
    faces = side.data(rng.standard_normal((3, 10, 1, 8, 8)).astype(np.float32))
    ids = side.data(rng.integers(0, classnum, (3, 10)))
    model, head = side.weights(Backbone()), side.weights(Arcface())
    optimizer = torch.optim.SGD([{"params": model.parameters(), "weight_decay": 5e-4},
                                 {"params": [head.kernel], "weight_decay": 4e-4}],
                                lr=0.05, momentum=0.9)
    losses, accs = [], []
    for x, y in zip(faces, ids):
        model.train()
        thetas = head(model(x), y)
        loss = nn.CrossEntropyLoss()(thetas, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        accs.append((thetas.argmax(1) == y).float().mean().item())
    model.eval()
    with torch.no_grad():  # verification: pairs of faces, same identity or not
        emb = model(faces.reshape(-1, 1, 8, 8))
        a, b = emb[0::2], emb[1::2]
        same = (ids.reshape(-1)[0::2] == ids.reshape(-1)[1::2]).float()
        dist = torch.sum(torch.square(a - b), 1)
        thresholds = torch.linspace(0, 4, 21)
        predict = dist[None, :] < thresholds[:, None]
        tpr = (predict & same.bool()).sum(1).float() / same.sum().clamp(min=1)
        fpr = (predict & ~same.bool()).sum(1).float() / (1 - same).sum().clamp(min=1)
        auc = torch.trapezoid(tpr, fpr)
    return {"losses": losses, "accs": accs, "kernel_norms": head.kernel.norm(dim=0),
            "tpr": tpr, "fpr": fpr, "auc": auc, "state": model.state_dict()}


def test_arcface_margin_and_verification_auc():
    run_both(arcface)


# -- 17. a torch 2 era LLaMA-style model: RMSNorm, rotary embeddings in an nn.Buffer, SwiGLU,
#        scaled_dot_product_attention, the optimizer fused into backward by post-accumulate-grad
#        hooks, KV-cached greedy decoding -----------------------------------------------------

def llama(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    vocab, dim, n_heads, max_len = 20, 16, 2, 16
    head_dim = dim // n_heads

    def rotate_half(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat((-x2, x1), dim=-1)

    class Rotary(nn.Module):
        def __init__(self):
            super().__init__()
            inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
            t = torch.arange(max_len).float()
            freqs = torch.outer(t, inv_freq)
            emb = torch.cat((freqs, freqs), dim=-1)
            self.cos = nn.Buffer(emb.cos(), persistent=False)
            self.sin = nn.Buffer(emb.sin(), persistent=False)

        def forward(self, q, k, start):
            cos = self.cos[start:start + q.shape[2]]
            sin = self.sin[start:start + q.shape[2]]
            return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.wq = nn.Linear(dim, dim, bias=False)
            self.wk = nn.Linear(dim, dim, bias=False)
            self.wv = nn.Linear(dim, dim, bias=False)
            self.wo = nn.Linear(dim, dim, bias=False)
            self.rotary = Rotary()

        def forward(self, x, cache=None, start=0):
            b, t, _ = x.shape
            q, k, v = (w(x).view(b, t, n_heads, head_dim).transpose(1, 2)
                       for w in (self.wq, self.wk, self.wv))
            q, k = self.rotary(q, k, start)
            if cache is not None:
                if cache[0] is not None:
                    k = torch.cat([cache[0], k], dim=2)
                    v = torch.cat([cache[1], v], dim=2)
                cache[0], cache[1] = k, v
            y = F.scaled_dot_product_attention(q, k, v, is_causal=cache is None or t > 1)
            return self.wo(y.transpose(1, 2).contiguous().view(b, t, dim))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention_norm = nn.RMSNorm(dim, eps=1e-5)
            self.attention = Attention()
            self.ffn_norm = nn.RMSNorm(dim, eps=1e-5)
            self.w1 = nn.Linear(dim, 2 * dim, bias=False)
            self.w2 = nn.Linear(2 * dim, dim, bias=False)
            self.w3 = nn.Linear(dim, 2 * dim, bias=False)

        def forward(self, x, cache=None, start=0):
            h = x + self.attention(self.attention_norm(x), cache, start)
            y = self.ffn_norm(h)
            return h + self.w2(F.silu(self.w1(y)) * self.w3(y))

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_embeddings = nn.Embedding(vocab, dim)
            self.layers = nn.ModuleList([Block() for _ in range(2)])
            self.norm = nn.RMSNorm(dim, eps=1e-5)
            self.output = nn.Linear(dim, vocab, bias=False)
            self.output.weight = self.tok_embeddings.weight

        def forward(self, tokens, caches=None, start=0):
            h = self.tok_embeddings(tokens)
            for i, layer in enumerate(self.layers):
                h = layer(h, None if caches is None else caches[i], start)
            return self.output(self.norm(h))

    rng = np.random.default_rng(97)
    data = side.data(rng.integers(0, vocab, (3, 4, 9)))
    model = side.weights(Transformer())
    assert "layers.0.attention.rotary.cos" not in model.state_dict()
    net = side.compile(model)
    optimizers = {p: torch.optim.AdamW([p], lr=3e-3, weight_decay=0.1 if p.ndim > 1 else 0.0,
                                       foreach=False) for p in model.parameters()}

    def optimizer_hook(parameter):
        optimizers[parameter].step()
        optimizers[parameter].zero_grad()

    for p in model.parameters():
        p.register_post_accumulate_grad_hook(optimizer_hook)
    losses = []
    for batch in data:
        x, y = batch[:, :-1], batch[:, 1:]
        logits = net(x)
        loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        loss.backward()  # the optimizers step inside
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():  # greedy decoding with a KV cache, checked against no cache
        prompt = data[0, :2, :4]
        caches = [[None, None] for _ in model.layers]  # filled by the forward (compiled too)
        logits = net(prompt, caches, 0)
        tokens = [logits[:, -1].argmax(-1, keepdim=True)]
        for step in range(3):
            logits = net(tokens[-1], caches, prompt.shape[1] + step)
            tokens.append(logits[:, -1].argmax(-1, keepdim=True))
        generated = torch.cat([prompt] + tokens, dim=1)
        assert caches[1][0].shape[2] == generated.shape[1] - 1
        full = net(generated[:, :-1])
        assert bool((full[:, 3:].argmax(-1) == generated[:, 4:]).all())
    return {"losses": losses, "generated": generated, "last_logits": logits,
            "state": model.state_dict()}


@COMPILED_FULL
def test_llama_rope_swiglu_optimizer_in_backward(compiled):
    run_both(llama, compiled=compiled)


# -- 18. d2l.ai's ResNet: lazy modules, init_cnn applied after a dummy forward, a DataLoader
#        whose last batch is smaller, through dlg.compile -------------------------------------

def d2l_resnet(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class Residual(nn.Module):
        def __init__(self, num_channels, use_1x1conv=False, strides=1):
            super().__init__()
            self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1, stride=strides)
            self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
            self.conv3 = (nn.LazyConv2d(num_channels, kernel_size=1, stride=strides)
                          if use_1x1conv else None)
            self.bn1 = nn.LazyBatchNorm2d()
            self.bn2 = nn.LazyBatchNorm2d()

        def forward(self, X):
            Y = F.relu(self.bn1(self.conv1(X)))
            Y = self.bn2(self.conv2(Y))
            if self.conv3:
                X = self.conv3(X)
            Y += X
            return F.relu(Y)

    class ResNet(nn.Module):
        def __init__(self, arch, num_classes=4):
            super().__init__()
            self.net = nn.Sequential(nn.Sequential(
                nn.LazyConv2d(8, kernel_size=3, stride=1, padding=1), nn.LazyBatchNorm2d(),
                nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1)))
            for i, b in enumerate(arch):
                self.net.add_module(f"b{i + 2}", self.block(*b, first_block=(i == 0)))
            self.net.add_module("last", nn.Sequential(
                nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.LazyLinear(num_classes)))

        def block(self, num_residuals, num_channels, first_block=False):
            blk = []
            for i in range(num_residuals):
                if i == 0 and not first_block:
                    blk.append(Residual(num_channels, use_1x1conv=True, strides=2))
                else:
                    blk.append(Residual(num_channels))
            return nn.Sequential(*blk)

        def forward(self, X):
            return self.net(X)

    def init_cnn(module):
        if type(module) is nn.Linear or type(module) is nn.Conv2d:
            nn.init.xavier_uniform_(module.weight)

    rng = np.random.default_rng(98)
    X = side.data(rng.standard_normal((12, 1, 12, 12)).astype(np.float32))
    y = side.data(rng.integers(0, 4, 12))
    model = ResNet(((1, 8), (1, 12)))
    model(X[:2])  # d2l's apply_init: a dummy forward makes the lazy modules' parameters
    model.apply(init_cnn)
    model = side.weights(model)
    net = side.compile(model)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=5,
                                         shuffle=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    losses, accs = [], []
    for _epoch in range(2):
        model.train()
        for xb, yb in loader:  # 5, 5, then 2
            y_hat = net(xb)
            loss = F.cross_entropy(y_hat, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            accs.append((y_hat.argmax(1) == yb).float().mean().item())
    model.eval()
    with torch.no_grad():
        logits = net(X)
    return {"losses": losses, "accs": accs, "logits": logits, "state": model.state_dict()}


@COMPILED_FULL
def test_d2l_resnet_lazy_modules_last_batch(compiled):
    run_both(d2l_resnet, compiled=compiled)


# -- 19. interpretability: Grad-CAM by forward and full backward hooks, saliency, integrated
#        gradients and SmoothGrad by input gradients (captum's recipes by hand) ----------------

def interpretability(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                                          nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            return self.fc(self.pool(self.features(x)).flatten(1))

    class GradCAM:
        def __init__(self, model, layer):
            self.model, self.activations, self.gradients = model, None, None
            self.handles = [layer.register_forward_hook(self.save_activation),
                            layer.register_full_backward_hook(self.save_gradient)]

        def save_activation(self, module, inputs, output):
            self.activations = output.detach()

        def save_gradient(self, module, grad_input, grad_output):
            self.gradients = grad_output[0].detach()

        def __call__(self, x, class_idx):
            self.model.zero_grad()
            scores = self.model(x)
            scores.gather(1, class_idx[:, None]).sum().backward()
            weights = self.gradients.mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * self.activations).sum(1, keepdim=True))
            cam = F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)
            flat = cam.flatten(1)
            lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
            return ((flat - lo) / (hi - lo + 1e-8)).view_as(cam), scores

        def remove(self):
            for h in self.handles:
                h.remove()

    def saliency(model, x, target):
        x = x.clone().requires_grad_(True)
        model(x).gather(1, target[:, None]).sum().backward()
        return x.grad.abs().amax(dim=1)

    def integrated_gradients(model, x, target, steps=8):
        baseline = torch.zeros_like(x)
        alphas = torch.linspace(0, 1, steps + 1)[1:].view(-1, 1, 1, 1, 1)
        path = (baseline + alphas * (x - baseline)).reshape(-1, *x.shape[1:])
        path.requires_grad_(True)
        out = model(path).view(steps, x.size(0), -1)
        picked = out.gather(2, target.view(1, -1, 1).expand(steps, -1, 1)).sum()
        (grads,) = torch.autograd.grad(picked, path)
        avg = grads.view(steps, *x.shape).mean(0)
        return (x - baseline) * avg

    def smoothgrad(model, x, target, n=4, sigma=0.1):
        total = torch.zeros_like(x)
        for _ in range(n):
            noisy = (x + side.draw(torch.randn, x.shape) * sigma).requires_grad_(True)
            score = model(noisy).gather(1, target[:, None]).sum()
            total += torch.autograd.grad(score, noisy)[0]
        return total / n

    rng = np.random.default_rng(99)
    x = side.data(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))
    model = side.weights(Net()).eval()
    target = model(x).argmax(1).detach()
    cam_tool = GradCAM(model, model.features[2])
    cam, scores = cam_tool(x, target)
    cam_tool.remove()
    assert not model.features[2]._forward_hooks and not model.features[2]._backward_hooks
    ig = integrated_gradients(model, x, target)
    completeness = ig.sum((1, 2, 3))  # ~ f(x) - f(baseline), with few steps
    return {"cam": cam, "scores": scores, "saliency": saliency(model, x, target), "ig": ig,
            "completeness": completeness, "smoothgrad": smoothgrad(model, x, target),
            "fc_grad": model.fc.weight.grad}


def test_interpretability_grad_cam_and_attributions():
    run_both(interpretability)
