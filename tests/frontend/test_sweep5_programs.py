"""Porting sweep #5: PyTorch programs from areas sweep #4 left out (graph networks with
scatter/index_add message passing, a 1-d audio CNN with a GRU head, a Transformer forecaster,
detection losses, a Dataset/DataLoader pipeline with samplers and padding, a mixed-precision
recipe, einsum capsules, a recommender on Adagrad, a RealNVP flow, a CLIP loss, float64 gradient
checks), each written once over a `torch` argument and run on torch and on dlg from the same
weights and data (sweep #4's harness). Programs that train also run on dlg through
`dlg.compile(model)` (`side.compile`, the identity on torch) where a user would compile.

Random orders a sampler or random_split makes are torch's on both runs (`side.replay`,
`side.split`): dlg's own draws are checked for what they must be (the indices a sampler may
yield, a split's sizes and disjointness) and then replaced by torch's, as `side.draw` does for
tensors."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dlg
from tests.frontend.test_sweep4_programs import Side, as_numpy, compare

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-4, 1e-5


class Side5(Side):
    def __init__(self, lib: Any, kept: list | None = None, drawn: list | None = None,
                 orders: list | None = None, compiled: bool = False) -> None:
        super().__init__(lib, kept, drawn)
        self.orders = [] if orders is None else orders
        self.n_orders = 0
        self.compiled = compiled

    def compile(self, model):
        """dlg.compile(model) on a compiled dlg run; the model itself otherwise."""
        return dlg.compile(model) if self.compiled else model

    def _order(self, ours: list) -> list:
        if self.on_torch:
            self.orders.append(list(ours))
            return list(ours)
        want = self.orders[self.n_orders]
        self.n_orders += 1
        return want

    def replay(self, sampler, allowed: Callable[[list], bool]):
        """`sampler`, yielding torch's order at each pass; on dlg its own order is drawn and
        must satisfy `allowed` first."""
        side = self

        class Replayed(side.lib.utils.data.Sampler):
            def __iter__(self):
                ours = [int(i) for i in sampler]
                assert allowed(ours), ours
                return iter(side._order(ours))

            def __len__(self):
                return len(sampler)

        return Replayed()

    def split(self, parts):
        """random_split's subsets with torch's indices (dlg's: the same sizes, disjoint)."""
        ours = [list(p.indices) for p in parts]
        flat_ours = [i for p in ours for i in p]
        assert len(set(flat_ours)) == len(flat_ours)
        want = [self._order(p) for p in ours]
        assert [len(p) for p in want] == [len(p) for p in ours]
        return [self.lib.utils.data.Subset(p.dataset, w) for p, w in zip(parts, want)]


def run_both(program: Callable[[Side5], dict], rtol: float = RTOL, atol: float = ATOL,
             compiled: bool = False) -> tuple[dict, dict]:
    torch.manual_seed(0)
    on_torch = Side5(torch)
    want = as_numpy(program(on_torch))
    on_dlg = Side5(dlg, on_torch.kept, on_torch.drawn, on_torch.orders, compiled)
    got = as_numpy(program(on_dlg))
    assert on_dlg.n_models == on_torch.n_models and on_dlg.n_draws == len(on_torch.drawn)
    assert on_dlg.n_orders == len(on_torch.orders)
    compare(got, want, "", rtol, atol)
    return got, want


def grads(model) -> dict:
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


COMPILED = pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
# A program's compiled run only with -m sweep_full (2-7 s of cold compile each): each sweep file
# keeps compiled runs in the normal suite (#5 the graph network's, #6 ESPCN's and Swin's).
COMPILED_FULL = pytest.mark.parametrize(
    "compiled", [False, pytest.param(True, marks=pytest.mark.sweep_full)],
    ids=["eager", "compiled"])


# -- 1. graph networks (PyG-style GCNConv, SAGEConv by hand): message passing over edge_index ----

def graph_net(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class GCNConv(nn.Module):
        """Kipf & Welling: self loops, symmetric degree normalisation, sum aggregation."""

        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.lin = nn.Linear(in_channels, out_channels, bias=False)
            self.bias = nn.Parameter(torch.zeros(out_channels))

        def forward(self, x, edge_index):
            num_nodes = x.size(0)
            loop = torch.arange(num_nodes, dtype=edge_index.dtype)
            row = torch.cat([edge_index[0], loop])
            col = torch.cat([edge_index[1], loop])
            deg = torch.zeros(num_nodes, dtype=x.dtype).scatter_add_(
                0, col, torch.ones(col.size(0), dtype=x.dtype))
            deg_inv_sqrt = deg.pow(-0.5)
            deg_inv_sqrt[deg_inv_sqrt == float("inf")] = 0
            norm = deg_inv_sqrt[row] * deg_inv_sqrt[col]
            h = self.lin(x)
            msg = norm.view(-1, 1) * h.index_select(0, row)
            out = torch.zeros_like(h).index_add_(0, col, msg)
            return out + self.bias

    class SAGEConv(nn.Module):
        """GraphSAGE with mean aggregation of the neighbours' features."""

        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.lin_l = nn.Linear(in_channels, out_channels)
            self.lin_r = nn.Linear(in_channels, out_channels, bias=False)

        def forward(self, x, edge_index):
            src, dst = edge_index
            index = dst.unsqueeze(-1).expand(-1, x.size(1))
            summed = torch.zeros_like(x).scatter_add(0, index, x[src])
            count = torch.zeros(x.size(0)).scatter_add_(0, dst, torch.ones(dst.size(0)))
            count = count.clamp(min=1).to(x.dtype)
            return self.lin_l(summed / count.unsqueeze(-1)) + self.lin_r(x)

    class Net(nn.Module):
        def __init__(self, num_features, hidden, num_classes):
            super().__init__()
            self.conv1 = GCNConv(num_features, hidden)
            self.conv2 = SAGEConv(hidden, hidden)
            self.classifier = nn.Linear(hidden, num_classes)
            self.graph_head = nn.Linear(hidden, 1)

        def forward(self, x, edge_index, batch, num_graphs):
            x = F.relu(self.conv1(x, edge_index))
            x = F.dropout(x, p=0.5, training=False)
            x = F.elu(self.conv2(x, edge_index))
            # global mean pool over each graph's nodes
            pooled = torch.zeros(num_graphs, x.size(1)).index_add_(0, batch, x)
            sizes = torch.zeros(num_graphs).index_add_(0, batch, torch.ones(batch.size(0)))
            graph_out = self.graph_head(pooled / sizes.unsqueeze(1)).squeeze(-1)
            return F.log_softmax(self.classifier(x), dim=1), graph_out

    rng = np.random.default_rng(21)
    num_nodes, num_graphs = 14, 2
    batch = side.data(np.repeat(np.arange(num_graphs), [8, 6]))
    edges = []
    for lo, hi in ((0, 8), (8, 14)):
        for _ in range(12):
            a, b = rng.integers(lo, hi, 2)
            if a != b:
                edges += [(a, b), (b, a)]
    edge_index = side.data(np.array(edges, dtype=np.int64).T)
    x = side.data(rng.standard_normal((num_nodes, 5)).astype(np.float32))
    y = side.data(rng.integers(0, 3, num_nodes))
    graph_y = side.data(np.array([0.5, -1.0], dtype=np.float32))
    train_mask = side.data(rng.random(num_nodes) < 0.6)
    model = side.weights(Net(5, 8, 3))
    net = side.compile(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    losses = []
    for _epoch in range(4):
        model.train()
        optimizer.zero_grad()
        out, graph_out = net(x, edge_index, batch, num_graphs)
        loss = F.nll_loss(out[train_mask], y[train_mask]) + F.mse_loss(graph_out, graph_y)
        loss.backward()
        if _epoch == 0:
            first_grads = grads(model)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        out, graph_out = net(x, edge_index, batch, num_graphs)
    pred = out.argmax(dim=1)
    correct = int((pred[~train_mask] == y[~train_mask]).sum())
    histogram = torch.bincount(pred, minlength=3)
    return {"losses": losses, "grads": first_grads, "out": out, "graph_out": graph_out,
            "correct": correct, "histogram": histogram, "state": model.state_dict()}


@COMPILED
def test_graph_network_message_passing(compiled):
    run_both(graph_net, compiled=compiled)


# -- 2. audio: an M5-style 1-d CNN (torchaudio tutorial) with a bidirectional GRU head ----------

def audio_cnn(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class M5(nn.Module):
        def __init__(self, n_input=1, n_output=4, stride=4, n_channel=8):
            super().__init__()
            self.conv1 = nn.Conv1d(n_input, n_channel, kernel_size=16, stride=stride)
            self.bn1 = nn.BatchNorm1d(n_channel)
            self.pool1 = nn.MaxPool1d(2)
            self.conv2 = nn.Conv1d(n_channel, 2 * n_channel, kernel_size=3, padding=1)
            self.bn2 = nn.BatchNorm1d(2 * n_channel)
            self.pool2 = nn.AdaptiveAvgPool1d(6)
            self.gru = nn.GRU(2 * n_channel, 6, batch_first=True, bidirectional=True)
            self.global_pool = nn.AdaptiveAvgPool1d(1)
            self.fc1 = nn.Linear(12 + 2 * n_channel, n_output)

        def forward(self, x):
            x = self.pool1(F.relu(self.bn1(self.conv1(x))))
            x = self.pool2(F.relu(self.bn2(self.conv2(x))))          # N, C, 6
            out, h_n = self.gru(x.permute(0, 2, 1))                   # N, 6, 12
            seq = torch.cat([h_n[0], h_n[1]], dim=1)
            glob = self.global_pool(x).squeeze(-1)
            x = self.fc1(torch.cat([seq, glob], dim=1))
            return F.log_softmax(x, dim=-1), out

    rng = np.random.default_rng(22)
    t = np.arange(200, dtype=np.float32) / 200
    labels = rng.integers(0, 4, (3, 6))
    waves = np.sin(2 * np.pi * (3 + 2 * labels[..., None]) * t) + 0.3 * rng.standard_normal(
        (3, 6, 200))
    waveforms = side.data(waves[:, :, None, :].astype(np.float32))
    targets = side.data(labels)
    model = side.weights(M5())
    net = side.compile(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    losses, lrs = [], []
    model.train()
    for data, target in zip(waveforms, targets):
        output, _ = net(data)
        loss = F.nll_loss(output.squeeze(), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        lrs.append(scheduler.get_last_lr()[0])
    model.eval()
    with torch.no_grad():  # the model itself: the running statistics the compiled steps wrote
        output, seq = model(waveforms[0])
        pred = output.argmax(dim=-1)
    return {"losses": losses, "lrs": lrs, "output": output, "seq": seq, "pred": pred,
            "state": model.state_dict()}


@COMPILED_FULL
def test_audio_cnn_gru_head(compiled):
    run_both(audio_cnn, compiled=compiled)


# -- 3. time series: nn.Transformer encoder-decoder forecaster, causal and padding masks --------

def forecaster(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    d_model = 16

    class PositionalEncoding(nn.Module):
        def __init__(self, d_model, max_len=32):
            super().__init__()
            position = torch.arange(max_len).unsqueeze(1)
            div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
            pe = torch.zeros(max_len, d_model)
            pe[:, 0::2] = torch.sin(position * div_term)
            pe[:, 1::2] = torch.cos(position * div_term)
            self.register_buffer("pe", pe)

        def forward(self, x):
            return x + self.pe[: x.size(1)]

    class Forecaster(nn.Module):
        def __init__(self):
            super().__init__()
            self.src_proj = nn.Linear(2, d_model)
            self.tgt_proj = nn.Linear(1, d_model)
            self.pos = PositionalEncoding(d_model)
            self.transformer = nn.Transformer(d_model=d_model, nhead=2, num_encoder_layers=2,
                                              num_decoder_layers=1, dim_feedforward=32,
                                              dropout=0.0, batch_first=True)
            self.out = nn.Linear(d_model, 1)

        def forward(self, src, tgt, src_key_padding_mask):
            tgt_mask = nn.Transformer.generate_square_subsequent_mask(tgt.size(1))
            out = self.transformer(self.pos(self.src_proj(src)), self.pos(self.tgt_proj(tgt)),
                                   tgt_mask=tgt_mask, src_key_padding_mask=src_key_padding_mask,
                                   memory_key_padding_mask=src_key_padding_mask,
                                   tgt_is_causal=True)
            return self.out(out)

    rng = np.random.default_rng(23)
    n, src_len, horizon = 4, 10, 4
    steps = np.arange(src_len + horizon)[None, :] + rng.integers(0, 20, (n, 1))
    series = np.sin(steps / 3.0).astype(np.float32) + 0.05 * rng.standard_normal(
        steps.shape).astype(np.float32)
    covariate = np.cos(steps[:, :src_len] / 5.0).astype(np.float32)
    src = side.data(np.stack([series[:, :src_len], covariate], -1))
    target = side.data(series[:, src_len:, None])
    lengths = np.array([10, 8, 10, 6])
    pad = side.data(np.arange(src_len)[None, :] >= lengths[:, None])
    decoder_in = torch.cat([src[:, -1:, :1], target[:, :-1]], dim=1)  # teacher forcing
    model = side.weights(Forecaster())
    # SGD, not Adam: the attention's key bias has a gradient of zero up to rounding (softmax
    # ignores a shift shared by a row), which Adam's normalisation would blow up to lr
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    model.train()
    for _ in range(4):
        optimizer.zero_grad()
        prediction = model(src, decoder_in, pad)
        loss = F.mse_loss(prediction, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():  # autoregressive rollout
        generated = src[:, -1:, :1]
        for _ in range(horizon):
            step = model(src, generated, pad)[:, -1:]
            generated = torch.cat([generated, step], dim=1)
    return {"losses": losses, "generated": generated[:, 1:], "state": model.state_dict()}


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")  # torch's eval fast path
def test_transformer_forecaster_masks_and_rollout():
    run_both(forecaster)


# -- 4. detection losses: anchor matching by IoU, focal loss, smooth L1, generalized IoU -------

def detection(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    def box_area(b):
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    def box_iou(a, b):
        area1, area2 = box_area(a), box_area(b)
        lt = torch.max(a[:, None, :2], b[:, :2])
        rb = torch.min(a[:, None, 2:], b[:, 2:])
        wh = (rb - lt).clamp(min=0)
        inter = wh[:, :, 0] * wh[:, :, 1]
        return inter / (area1[:, None] + area2 - inter)

    def generalized_box_iou_loss(b1, b2, eps=1e-7):
        x1, y1, x2, y2 = b1.unbind(dim=-1)
        x1g, y1g, x2g, y2g = b2.unbind(dim=-1)
        xkis1, ykis1 = torch.max(x1, x1g), torch.max(y1, y1g)
        xkis2, ykis2 = torch.min(x2, x2g), torch.min(y2, y2g)
        intsctk = torch.zeros_like(x1)
        mask = (ykis2 > ykis1) & (xkis2 > xkis1)
        intsctk[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
        unionk = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsctk
        iouk = intsctk / (unionk + eps)
        xc1, yc1 = torch.min(x1, x1g), torch.min(y1, y1g)
        xc2, yc2 = torch.max(x2, x2g), torch.max(y2, y2g)
        area_c = (xc2 - xc1) * (yc2 - yc1)
        return (1 - (iouk - ((area_c - unionk) / (area_c + eps)))).mean()

    def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0):
        p = torch.sigmoid(inputs)
        ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = ce_loss * ((1 - p_t) ** gamma)
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        return (alpha_t * loss).sum()

    bbox_xform_clip = math.log(1000.0 / 16)

    def decode(deltas, anchors, clip=bbox_xform_clip):
        widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
        ctr_x, ctr_y = anchors[:, 0] + 0.5 * widths, anchors[:, 1] + 0.5 * heights
        dx, dy, dw, dh = deltas.unbind(-1)
        dw, dh = torch.clamp(dw, max=clip), torch.clamp(dh, max=clip)
        px, py = dx * widths + ctr_x, dy * heights + ctr_y
        pw, ph = torch.exp(dw) * widths, torch.exp(dh) * heights
        return torch.stack([px - 0.5 * pw, py - 0.5 * ph, px + 0.5 * pw, py + 0.5 * ph], dim=1)

    class Head(nn.Module):
        def __init__(self, num_anchors, num_classes):
            super().__init__()
            self.trunk = nn.Sequential(nn.Linear(6, 16), nn.ReLU())
            self.cls = nn.Linear(16, num_anchors * num_classes)
            self.box = nn.Linear(16, num_anchors * 4)
            self.objectness = nn.Linear(16, num_anchors)
            self.num_anchors, self.num_classes = num_anchors, num_classes
            nn.init.constant_(self.cls.bias, -math.log((1 - 0.01) / 0.01))

        def forward(self, features):
            h = self.trunk(features)
            return (self.cls(h).view(-1, self.num_anchors, self.num_classes),
                    self.box(h).view(-1, self.num_anchors, 4), self.objectness(h))

    rng = np.random.default_rng(24)
    num_anchors, num_classes = 6, 3
    xy = rng.uniform(0, 20, (num_anchors, 2))
    anchors = side.data(np.concatenate([xy, xy + rng.uniform(4, 10, (num_anchors, 2))], 1)
                        .astype(np.float32))
    gxy = rng.uniform(0, 20, (2, 3, 2))
    gt_boxes = side.data(np.concatenate([gxy, gxy + rng.uniform(4, 10, (2, 3, 2))], -1)
                         .astype(np.float32))
    gt_labels = side.data(rng.integers(0, num_classes, (2, 3)))
    features = side.data(rng.standard_normal((2, 6)).astype(np.float32))
    model = side.weights(Head(num_anchors, num_classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    pos_weight = torch.tensor([3.0])
    log = []
    for _step in range(3):
        cls_logits, box_deltas, objectness = model(features)
        total = 0.0
        parts = []
        for i in range(features.size(0)):
            iou = box_iou(anchors, gt_boxes[i])                      # anchors x gt
            matched_vals, matches = iou.max(dim=1)
            foreground = matched_vals >= 0.1
            target_cls = torch.zeros(num_anchors, num_classes)
            target_cls[foreground, gt_labels[i][matches[foreground]]] = 1.0
            n_fg = max(1, int(foreground.sum()))
            cls_loss = sigmoid_focal_loss(cls_logits[i], target_cls) / n_fg
            obj_loss = F.binary_cross_entropy_with_logits(
                objectness[i], foreground.float(), pos_weight=pos_weight)
            pred_boxes = decode(box_deltas[i], anchors)
            matched_gt = gt_boxes[i][matches]
            reg_loss = F.smooth_l1_loss(pred_boxes[foreground] / 10, matched_gt[foreground] / 10,
                                        beta=1 / 9, reduction="sum") / n_fg
            giou = generalized_box_iou_loss(pred_boxes[foreground], matched_gt[foreground])
            total = total + cls_loss + obj_loss + reg_loss + giou
            parts.append([cls_loss.item(), obj_loss.item(), reg_loss.item(), giou.item()])
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        log.append(parts)
    return {"log": log, "grads": grads(model), "state": model.state_dict(),
            "iou": box_iou(anchors, gt_boxes[0])}


def test_detection_losses():
    run_both(detection)


# -- 5. data pipeline: a custom Dataset, random_split, samplers, collate_fn with pad_sequence ---

def data_pipeline(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    data = torch.utils.data
    from_rnn = torch.nn.utils.rnn
    rng = np.random.default_rng(25)
    vocab, n_class = 12, 2

    class Sequences(data.Dataset):
        def __init__(self, n):
            self.lengths = rng.integers(2, 7, n)
            self.items = [rng.integers(1, vocab, k) for k in self.lengths]
            self.labels = [int(seq.sum() % 3 == 0) for seq in self.items]

        def __len__(self):
            return len(self.items)

        def __getitem__(self, idx):
            return torch.tensor(self.items[idx]), self.labels[idx]

    def collate_batch(batch):
        sequences, labels = zip(*batch)
        lengths = torch.tensor([len(s) for s in sequences])
        padded = from_rnn.pad_sequence(list(sequences), batch_first=True, padding_value=0)
        return padded, lengths, torch.tensor(labels)

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, 6, padding_idx=0)
            self.lstm = nn.LSTM(6, 8, batch_first=True)
            self.fc = nn.Linear(8, n_class)

        def forward(self, padded, lengths):
            packed = from_rnn.pack_padded_sequence(self.embedding(padded), lengths,
                                                   batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.lstm(packed)
            return self.fc(h_n[-1])

    dataset = Sequences(20)
    train_set, val_set = side.split(data.random_split(
        dataset, [0.7, 0.3], generator=torch.Generator().manual_seed(42)))
    train_labels = [dataset.labels[i] for i in train_set.indices]
    class_count = np.bincount(train_labels, minlength=n_class)
    sample_weights = [1.0 / class_count[y] for y in train_labels]
    sampler = data.WeightedRandomSampler(sample_weights, num_samples=len(train_set),
                                         replacement=True)
    loader = data.DataLoader(
        train_set, batch_size=4, num_workers=0, collate_fn=collate_batch, drop_last=True,
        sampler=side.replay(sampler, lambda ours: len(ours) == 14 and
                            all(0 <= i < 14 for i in ours)))
    val_ids = list(range(len(val_set)))
    val_loader = data.DataLoader(
        val_set, batch_size=3, collate_fn=collate_batch,
        sampler=side.replay(data.SubsetRandomSampler(val_ids),
                            lambda ours: sorted(ours) == val_ids))
    model = side.weights(Classifier())
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.01)
    log: dict[str, list] = {"loss": [], "val": [], "shapes": []}
    for _epoch in range(2):
        model.train()
        for padded, lengths, labels in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(padded, lengths), labels)
            loss.backward()
            optimizer.step()
            log["loss"].append(loss.item())
            log["shapes"].append(list(padded.shape))
        model.eval()
        correct = 0
        with torch.no_grad():
            for padded, lengths, labels in val_loader:
                correct += (model(padded, lengths).argmax(1) == labels).sum().item()
        log["val"].append(correct)
    assert len(loader) == 3 and len(val_loader) == 2
    return {**log, "state": model.state_dict()}


def test_data_pipeline_samplers_and_padding():
    run_both(data_pipeline)


# -- 6. mixed precision as users write it: autocast blocks and a GradScaler, on a CPU -----------

def mixed_precision(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    use_amp = False  # the usual switch; True on a CPU asks for bfloat16 autocast (refused)

    model = side.weights(nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.LayerNorm(16),
                                       nn.Linear(16, 3)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", enabled=use_amp)
    real_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=2)
    rng = np.random.default_rng(26)
    xs = side.data(rng.standard_normal((4, 5, 8)).astype(np.float32))
    ys = side.data(rng.integers(0, 3, (4, 5)))
    log: dict[str, list] = {"loss": [], "scale": [], "amp_on": []}
    for step, (x, y) in enumerate(zip(xs, ys)):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x)
            log["amp_on"].append(torch.is_autocast_enabled("cpu"))
            loss = F.cross_entropy(logits, y)
        if step == 2:  # an overflowing step: the real scaler skips it and backs off
            loss = loss * float("inf")
        chosen = scaler if step % 2 == 0 else real_scaler
        chosen.scale(loss).backward()
        chosen.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        chosen.step(optimizer)
        chosen.update()
        log["loss"].append(loss.item() if step != 2 else 0.0)
        log["scale"].append([scaler.get_scale(), real_scaler.get_scale()])
    with torch.autocast("cpu", enabled=False):
        final = model(xs[0])
    if not side.on_torch:  # an enabled CPU autocast to bfloat16: dlg refuses it by name
        with pytest.raises(dlg.DlgError, match="autocast"):
            with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
                model(xs[0])
    return {**log, "final": final, "state": model.state_dict(),
            "scaler": real_scaler.state_dict()["scale"]}


def test_mixed_precision_recipe():
    run_both(mixed_precision)


# -- 7. capsules: dynamic routing by agreement and attention, written with einsum -------------

def capsules(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    def squash(s, dim=-1):
        squared_norm = (s ** 2).sum(dim=dim, keepdim=True)
        return squared_norm / (1 + squared_norm) * s / torch.sqrt(squared_norm + 1e-8)

    class CapsuleLayer(nn.Module):
        def __init__(self, in_caps, in_dim, out_caps, out_dim, iterations=2):
            super().__init__()
            self.W = nn.Parameter(0.1 * torch.randn(in_caps, out_caps, out_dim, in_dim))
            self.iterations = iterations

        def forward(self, u):
            u_hat = torch.einsum("ijdk,bik->bijd", self.W, u)
            b = torch.zeros(u.size(0), u_hat.size(1), u_hat.size(2))
            for r in range(self.iterations):
                c = F.softmax(b, dim=2)
                v = squash(torch.einsum("bij,bijd->bjd", c, u_hat))
                if r < self.iterations - 1:
                    b = b + torch.einsum("bijd,bjd->bij", u_hat, v)
            return v

    class CapsNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.primary = nn.Linear(10, 6 * 4)
            self.qkv = nn.Linear(4, 12, bias=False)  # a key bias only gets rounding noise
            self.digits = CapsuleLayer(6, 4, 3, 5)
            self.bilinear = nn.Parameter(0.1 * torch.randn(5, 5))

        def forward(self, x):
            u = squash(self.primary(x).view(-1, 6, 4))
            q, k, v = self.qkv(u).chunk(3, dim=-1)
            att = torch.einsum("...qd,...kd->...qk", q, k) / 2.0
            u = u + torch.einsum("bqk,bkd->bqd", att.softmax(-1), v)
            caps = self.digits(u)
            lengths = torch.einsum("bjd,bjd->bj", caps, caps).sqrt()
            agreement = torch.einsum("bi,ij,bj->b", caps[:, 0], self.bilinear, caps[:, 1])
            return lengths, agreement, torch.einsum("bjd->bdj", caps)

    def margin_loss(lengths, labels):
        t = F.one_hot(labels, 3).float()
        loss = t * F.relu(0.9 - lengths) ** 2 + 0.5 * (1 - t) * F.relu(lengths - 0.1) ** 2
        return loss.sum(dim=1).mean()

    rng = np.random.default_rng(27)
    xs = side.data(rng.standard_normal((3, 4, 10)).astype(np.float32))
    ys = side.data(rng.integers(0, 3, (3, 4)))
    model = side.weights(CapsNet())
    net = side.compile(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for x, y in zip(xs, ys):
        optimizer.zero_grad()
        lengths, agreement, _ = net(x)
        loss = margin_loss(lengths, y) + 0.1 * agreement.pow(2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        lengths, agreement, caps = net(xs[0])
    return {"losses": losses, "lengths": lengths, "agreement": agreement, "caps": caps,
            "state": model.state_dict()}


@COMPILED_FULL
def test_capsules_einsum_routing(compiled):
    run_both(capsules, compiled=compiled)


# -- 8. recommender: matrix factorisation with biases, BPR with sampled negatives, Adagrad ------

def recommender(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    n_users, n_items, k = 9, 12, 4

    class MF(nn.Module):
        def __init__(self):
            super().__init__()
            self.user_factors = nn.Embedding(n_users, k)
            self.item_factors = nn.Embedding(n_items, k)
            self.user_bias = nn.Embedding(n_users, 1)
            self.item_bias = nn.Embedding(n_items, 1)
            self.global_bias = nn.Parameter(torch.tensor(3.0))
            nn.init.normal_(self.user_factors.weight, std=0.1)
            nn.init.normal_(self.item_factors.weight, std=0.1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)

        def forward(self, user, item):
            dot = (self.user_factors(user) * self.item_factors(item)).sum(dim=1)
            return (dot + self.user_bias(user).squeeze(1) + self.item_bias(item).squeeze(1)
                    + self.global_bias)

        def score_all(self, users):
            return self.user_factors(users) @ self.item_factors.weight.t() \
                + self.item_bias.weight.t()

    rng = np.random.default_rng(28)
    users = side.data(rng.integers(0, n_users, (4, 6)))
    items = side.data(rng.integers(0, n_items, (4, 6)))
    ratings = side.data(rng.integers(1, 6, (4, 6)).astype(np.float32))
    model = side.weights(MF())
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.1, lr_decay=0.01,
                                    initial_accumulator_value=0.1, weight_decay=1e-4)
    log: dict[str, list] = {"mse": [], "bpr": []}
    for user, item, rating in zip(users, items, ratings):
        optimizer.zero_grad()
        mse = F.mse_loss(model(user, item), rating)
        negatives = side.draw(torch.randint, 0, n_items, (user.size(0),))
        diff = model(user, item) - model(user, negatives)
        bpr = -F.logsigmoid(diff).mean()
        (mse + 0.5 * bpr).backward()
        optimizer.step()
        log["mse"].append(mse.item())
        log["bpr"].append(bpr.item())
    model.eval()
    with torch.no_grad():
        scores = model.score_all(torch.arange(n_users))
        top_scores, top_items = scores.topk(3, dim=1)
    return {**log, "scores": scores, "top_scores": top_scores, "top_items": top_items,
            "state": model.state_dict(),
            "sum": [s["sum"] for s in optimizer.state_dict()["state"].values()]}


def test_recommender_matrix_factorisation_adagrad():
    run_both(recommender)


# -- 9. normalising flow: RealNVP affine couplings, log-det, exact inverse, sampling -----------

def realnvp(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    dim = 4

    class Coupling(nn.Module):
        def __init__(self, mask):
            super().__init__()
            self.register_buffer("mask", mask)
            self.scale = nn.Sequential(nn.Linear(dim, 16), nn.LeakyReLU(), nn.Linear(16, dim),
                                       nn.Tanh())
            self.translate = nn.Sequential(nn.Linear(dim, 16), nn.LeakyReLU(),
                                           nn.Linear(16, dim))
            self.scale_factor = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            x_masked = x * self.mask
            s = self.scale(x_masked) * self.scale_factor * (1 - self.mask)
            t = self.translate(x_masked) * (1 - self.mask)
            y = x_masked + (1 - self.mask) * (x * torch.exp(s) + t)
            return y, s.sum(dim=1)

        def inverse(self, y):
            y_masked = y * self.mask
            s = self.scale(y_masked) * self.scale_factor * (1 - self.mask)
            t = self.translate(y_masked) * (1 - self.mask)
            return y_masked + (1 - self.mask) * ((y - t) * torch.exp(-s))

    class RealNVP(nn.Module):
        def __init__(self, n_layers=4):
            super().__init__()
            masks = [torch.tensor([1.0, 0.0] * (dim // 2)).roll(i) for i in range(n_layers)]
            self.layers = nn.ModuleList(Coupling(m) for m in masks)

        def forward(self, x):
            log_det = torch.zeros(x.shape[0])
            for layer in self.layers:
                x, ld = layer(x)
                log_det += ld
            return x, log_det

        def inverse(self, z):
            for layer in reversed(self.layers):
                z = layer.inverse(z)
            return z

        def log_prob(self, x):
            z, log_det = self(x)
            prior = -0.5 * (z ** 2).sum(dim=1) - 0.5 * dim * math.log(2 * math.pi)
            return prior + log_det

    rng = np.random.default_rng(29)
    angle = rng.uniform(0, 2 * np.pi, (4, 16))
    moons = np.stack([np.cos(angle), np.sin(angle), np.cos(2 * angle), angle / 3], -1)
    batches = side.data((moons + 0.1 * rng.standard_normal(moons.shape)).astype(np.float32))
    model = side.weights(RealNVP())
    net = side.compile(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    losses = []
    for x in batches:
        optimizer.zero_grad()
        z, log_det = net(x)
        prior = -0.5 * (z ** 2).sum(dim=1) - 0.5 * dim * math.log(2 * math.pi)
        loss = -(prior + log_det).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        z = side.draw(torch.randn, 6, dim)
        samples = model.inverse(z)
        z_back, _ = model(samples)
        round_trip = float((z_back - z).abs().max())
        log_prob = model.log_prob(batches[0])
    assert round_trip < 1e-4
    return {"losses": losses, "samples": samples, "log_prob": log_prob,
            "state": model.state_dict()}


@COMPILED_FULL
def test_realnvp_flow(compiled):
    run_both(realnvp, compiled=compiled)


# -- 10. CLIP-style contrastive training: learnable logit_scale, symmetric cross entropy -------

def clip(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class CLIP(nn.Module):
        def __init__(self, embed_dim=6, vocab=15):
            super().__init__()
            self.visual = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.GELU(),
                                        nn.Linear(16, embed_dim, bias=False))
            self.token_embedding = nn.Embedding(vocab, 8)
            self.text_projection = nn.Parameter(torch.randn(8, embed_dim) * 8 ** -0.5)
            self.ln_final = nn.LayerNorm(8)
            self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))

        def encode_image(self, image):
            return self.visual(image)

        def encode_text(self, text):
            x = self.ln_final(self.token_embedding(text))
            # the features at the end-of-text token (the highest id in each sequence)
            return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection

        def forward(self, image, text):
            image_features = self.encode_image(image)
            text_features = self.encode_text(text)
            image_features = image_features / image_features.norm(dim=1, keepdim=True)
            text_features = F.normalize(text_features, dim=-1)
            logit_scale = self.logit_scale.exp()
            logits_per_image = logit_scale * image_features @ text_features.t()
            return logits_per_image, logits_per_image.t()

    rng = np.random.default_rng(30)
    images = side.data(rng.standard_normal((3, 5, 3, 4)).astype(np.float32))
    texts = side.data(rng.integers(0, 14, (3, 5, 7)))
    model = side.weights(CLIP())
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-2, betas=(0.9, 0.98), eps=1e-6,
                                  weight_decay=0.2)
    losses, scales = [], []
    for image, text in zip(images, texts):
        optimizer.zero_grad()
        logits_per_image, logits_per_text = model(image, text)
        ground_truth = torch.arange(len(image), dtype=torch.long)
        loss = (F.cross_entropy(logits_per_image, ground_truth)
                + F.cross_entropy(logits_per_text, ground_truth)) / 2
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        scales.append(model.logit_scale.item())
    with torch.no_grad():
        probs = model(images[0], texts[0])[0].softmax(dim=-1)
    return {"losses": losses, "scales": scales, "probs": probs, "state": model.state_dict()}


def test_clip_contrastive_loss():
    run_both(clip)


# -- 11. float64: a custom Function checked with gradcheck/gradgradcheck, double training -------

def float64_checks(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class LegendrePolynomial3(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return 0.5 * (5 * input ** 3 - 3 * input)

        @staticmethod
        def backward(ctx, grad_output):
            (input,) = ctx.saved_tensors
            return grad_output * 1.5 * (5 * input ** 2 - 1)

    class WrongBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return input ** 2

        @staticmethod
        def backward(ctx, grad_output):
            (input,) = ctx.saved_tensors
            return grad_output * input  # should be 2 * input

    rng = np.random.default_rng(31)
    x = side.data(rng.standard_normal((4, 3))).requires_grad_()
    w = side.data(rng.standard_normal((2, 3))).requires_grad_()
    from_grad = torch.autograd.gradcheck
    checks = [
        from_grad(LegendrePolynomial3.apply, (x,), eps=1e-6, atol=1e-4),
        from_grad(lambda a, b: F.linear(a, b).tanh(), (x, w)),
        torch.autograd.gradgradcheck(lambda a, b: (a @ b.t()).sin().sum(dim=0), (x, w)),
        from_grad(WrongBackward.apply, (x,), raise_exception=False),
    ]
    if not side.on_torch:
        with pytest.raises(dlg.DlgError, match="Jacobian mismatch"):
            from_grad(WrongBackward.apply, (x,))

    model = side.weights(nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    target = side.data(rng.standard_normal((4, 1)))
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        out = LegendrePolynomial3.apply(model(x.detach()))
        loss = F.mse_loss(out, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model[0].weight.dtype == torch.float64 and out.dtype == torch.float64
    return {"checks": checks, "losses": losses, "state": model.state_dict()}


def test_float64_gradcheck_and_training():
    got, want = run_both(float64_checks, rtol=1e-10, atol=1e-12)
    assert want["checks"] == [True, True, True, False]
