"""The reference models as PyTorch modules (the peers), built on demand when torch is installed.
Parameter names match the .dlg files, so a dlg state_dict loads into them."""

from __future__ import annotations

from typing import Any


def torch_model(name: str) -> Any:
    import torch  # an optional peer: imported only when it is benchmarked
    nn, F = torch.nn, torch.nn.functional

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(784, 128), nn.Linear(128, 10)

        def forward(self, x):
            return F.log_softmax(self.fc2(F.relu(self.fc1(torch.flatten(x, 1)))), dim=1)

    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.fc1, self.fc2 = nn.Linear(32 * 26 * 26, 128), nn.Linear(128, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))

    class CNN(nn.Module):
        def __init__(self, channels=3, size=10, widths=(64,), hidden=128):
            super().__init__()
            self.convs = []  # conv1, conv2, ...: the .dlg files' names
            for i, w in enumerate(widths):
                conv = nn.Conv2d(channels if i == 0 else widths[i - 1], w, 3, padding=1)
                setattr(self, f"conv{i + 1}", conv)
                self.convs.append(conv)
            self.pool = nn.MaxPool2d(2, 2)
            side = size // 2 ** len(widths)
            self.fc1, self.fc2 = nn.Linear(widths[-1] * side * side, hidden), nn.Linear(hidden, 10)

        def forward(self, x):
            for conv in self.convs:
                x = self.pool(F.relu(conv(x)))
            return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))

    def recurrent(kind):
        class Classifier(nn.Module):
            def __init__(self):
                super().__init__()
                setattr(self, kind.lower(), getattr(nn, kind)(28, 128, batch_first=True))
                self.fc = nn.Linear(128, 10)

            def forward(self, x):
                seq, _ = getattr(self, kind.lower())(x)
                return self.fc(seq[:, -1])
        return Classifier

    class Linear(nn.Module):
        def __init__(self, n_in, logistic=False):
            super().__init__()
            self.linear = nn.Linear(n_in, 1)
            self.logistic = logistic

        def forward(self, x):
            y = self.linear(x)
            return torch.sigmoid(y[:, 0]) if self.logistic else y

    return {"mlp": MLP, "convnet": ConvNet, "cnn": CNN,
            "cifar_cnn": lambda: CNN(3, 32, (32, 64), 256),
            "rnn": recurrent("RNN"), "gru": recurrent("GRU"), "lstm": recurrent("LSTM"),
            "linear_regression": lambda: Linear(1),
            "logistic_regression": lambda: Linear(2, logistic=True)}[name]()
