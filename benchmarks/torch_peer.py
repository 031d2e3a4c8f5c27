"""PyTorch eager as a peer: the reference models as nn.Modules with the .dlg files' parameter
names, inference under `torch.inference_mode`, training with `torch.optim` as the train section
names it, and the regression loop in Python. Also the exporter's source for onnxruntime, and the
tests' PyTorch twin of each model (`benchmarks.peers.torch_model`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.cases import SPECS, Case
from benchmarks.machine import cores


def sgemm(a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """torch's fp32 matrix product on NumPy arrays (the machine's peak is measured with it)."""
    return torch.matmul(torch.from_numpy(a), torch.from_numpy(b))


class Reference(nn.Module):
    """A reference model: `body` is the network up to what the loss reads; `forward` adds the
    inference head, so it outputs what the .dlg model outputs."""

    head: str | None = None

    def forward(self, x, *extras):  # extras: the inputs after x (Case.extras), in order
        return HEADS[self.head](self.body(x, *extras))


class MLP(Reference):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 128), nn.Linear(128, 10)

    def body(self, x):
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


class ConvNet(Reference):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.fc1, self.fc2 = nn.Linear(32 * 26 * 26, 128), nn.Linear(128, 10)

    def body(self, x):
        x = F.relu(self.conv1(x))
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


class CNN(Reference):
    """conv-relu-pool blocks (conv1, conv2, ...: the .dlg files' names), then two dense layers."""

    def __init__(self, channels=3, size=10, widths=(64,), hidden=128):
        super().__init__()
        self.convs = []
        for i, w in enumerate(widths):
            conv = nn.Conv2d(channels if i == 0 else widths[i - 1], w, 3, padding=1)
            setattr(self, f"conv{i + 1}", conv)
            self.convs.append(conv)
        side = size // 2 ** len(widths)
        self.fc1, self.fc2 = nn.Linear(widths[-1] * side * side, hidden), nn.Linear(hidden, 10)

    def body(self, x):
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2, 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


class Recurrent(Reference):
    """nn.RNN/GRU/LSTM(28, 128, batch_first=True) read to the last step, then Linear(128, 10)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind.lower()
        setattr(self, self.kind, getattr(nn, kind)(28, 128, batch_first=True))
        self.fc = nn.Linear(128, 10)

    def body(self, x):
        seq, _ = getattr(self, self.kind)(x)
        return self.fc(seq[:, -1])


class Regression(Reference):
    def __init__(self, n_in: int, squeeze: bool):
        super().__init__()
        self.linear, self.squeeze = nn.Linear(n_in, 1), squeeze

    def body(self, x):
        y = self.linear(x)
        return y[:, 0] if self.squeeze else y


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: two 3x3 conv-BN pairs and the identity, or a strided 1x1 conv
    and BN (`downsample`) where the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(Reference):
    """CIFAR-style ResNet-18 with torchvision's names (conv1, bn1, layer1..layer4, fc): a 3x3
    stem without max pooling, four stages of two BasicBlocks (`width` x 1, 2, 4, 8 channels,
    stride 2 from the second), global average pooling."""

    def __init__(self, width: int = 64, classes: int = 10):  # resnet.dlg's width
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        planes = width
        for i in range(4):
            out, stride = width * 2 ** i, 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(planes, out, stride),
                                                         BasicBlock(out, out, 1)))
            planes = out
        self.fc = nn.Linear(planes, classes)

    def body(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Transformer(Reference):
    """transformer.dlg (its sizes under the same names): token embedding + learned positions,
    post-norm GELU encoder layers (dropout 0), the mean of the unpadded positions, a head."""

    def __init__(self, vocab: int = 1000, length: int = 32, d_model: int = 64, nhead: int = 4,
                 dim_feedforward: int = 256, num_layers: int = 2, classes: int = 10):
        super().__init__()
        self.pos_embedding = nn.Parameter(0.02 * torch.randn(length, d_model))
        self.embedding = nn.Embedding(vocab, d_model)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0.0,
                                       activation="gelu", batch_first=True)
            for _ in range(num_layers))
        self.fc = nn.Linear(d_model, classes)

    def body(self, x, key_padding_mask):
        h = self.embedding(x) + self.pos_embedding
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=key_padding_mask)
        keep = (~key_padding_mask).float().unsqueeze(-1)
        return self.fc((h * keep).sum(1) / keep.sum(1))


BODIES: dict[str, Callable[[], Reference]] = {
    "mlp": MLP, "convnet": ConvNet, "cnn": CNN, "cifar_cnn": lambda: CNN(3, 32, (32, 64), 256),
    "rnn": lambda: Recurrent("RNN"), "gru": lambda: Recurrent("GRU"),
    "lstm": lambda: Recurrent("LSTM"),
    "linear_regression": lambda: Regression(1, False),
    "logistic_regression": lambda: Regression(2, True),
    "resnet": ResNet, "transformer": Transformer,
}
HEADS = {None: lambda v: v, "log_softmax": lambda v: F.log_softmax(v, dim=1),
         "sigmoid": torch.sigmoid}
LOSSES = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss,
          "bce_with_logits": F.binary_cross_entropy_with_logits}


def reference(name: str) -> Reference:
    """The model `name` with PyTorch's own initialisation, outputting what the .dlg model does."""
    net = BODIES[name]()
    net.head = SPECS[name][0]
    return net


def network(case: Case) -> Reference:
    """A fresh network holding the case's initial weights."""
    net = reference(case.name)
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in case.init.items()})
    return net


class Trainer:
    """`run()` takes `steps` optimizer steps on (x, y), as a plain eager loop does."""

    def __init__(self, case: Case, x: np.ndarray, y: np.ndarray, steps: int = 1):
        self.net, self.steps = network(case), steps
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.extras = [torch.from_numpy(v) for v in case.extras(x).values()]
        self.opt = getattr(torch.optim, case.optimizer)(self.net.parameters(), **case.hyper)
        self.loss = LOSSES[case.loss]

    def run(self) -> float:
        for _ in range(self.steps):
            self.opt.zero_grad()
            loss = self.loss(self.net.body(self.x, *self.extras), self.y)
            loss.backward()
            self.opt.step()
        return loss.item()

    def params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in self.net.state_dict().items()}


class Peer:
    name = "torch"

    def __init__(self) -> None:
        torch.set_num_threads(cores())

    def infer(self, case: Case, x: np.ndarray) -> Callable[[], Any]:
        net, tx = network(case).eval(), torch.from_numpy(x)
        extras = [torch.from_numpy(v) for v in case.extras(x).values()]

        def call() -> Any:
            with torch.inference_mode():
                return net(tx, *extras)
        return call

    def train(self, case: Case, x: np.ndarray, y: np.ndarray) -> Trainer:
        return Trainer(case, x, y)

    def loop(self, case: Case, x: np.ndarray, y: np.ndarray, steps: int) -> Trainer:
        return Trainer(case, x, y, steps)
