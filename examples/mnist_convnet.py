"""The PyTorch `ConvNet` (Conv2d(1, 32, 3, 1) -> ReLU -> view -> Linear(32*26*26, 128) -> ReLU
-> Linear(128, 10)) trained with nll_loss on the built-in digits, eagerly and then traced and
compiled from the same initial weights.

    python examples/mnist_convnet.py [--epochs 1] [--batches 23]
"""

import argparse
import copy
import time

import dlg
import dlg.nn as nn
import dlg.nn.functional as F
from dlg.data import DataLoader, load_digits


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.fc1 = nn.Linear(32 * 26 * 26, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def loss_fn(output, target):
    return F.nll_loss(F.log_softmax(output, dim=1), target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batches", type=int, default=None, help="batches per epoch")
    args = parser.parse_args()
    dlg.manual_seed(0)
    x_train, y_train = load_digits(split="train")
    x_test, y_test = load_digits(split="test")
    net = ConvNet()
    start_weights = copy.deepcopy(net.state_dict())

    def batches(epoch):
        loader = DataLoader(x_train, y_train, batch_size=64, shuffle=True, seed=epoch)
        return list(loader)[:args.batches]

    optimizer = dlg.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    start = time.perf_counter()
    eager_losses = []
    for epoch in range(args.epochs):
        for xb, yb in batches(epoch):
            optimizer.zero_grad()
            loss = loss_fn(net(dlg.from_numpy(xb)), dlg.from_numpy(yb))
            loss.backward()
            optimizer.step()
            eager_losses.append(loss.item())
        print(f"eager    epoch {epoch + 1}: loss {eager_losses[-1]:.4f}")
    with dlg.no_grad():
        _, predicted = dlg.max(net(dlg.from_numpy(x_test)).data, 1)
    eager = (predicted == dlg.from_numpy(y_test)).sum().item() / len(y_test)
    print(f"eager: test accuracy {eager:.2%} in {time.perf_counter() - start:.1f} s")

    net.load_state_dict(start_weights)
    optimizer = dlg.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    model = dlg.trace_train(net, loss_fn, optimizer, x_train[:64], y_train[:64])
    step = model.train_step(compiled=True)
    start = time.perf_counter()
    compiled_losses = []
    for epoch in range(args.epochs):
        for xb, yb in batches(epoch):
            compiled_losses.append(step(x=xb, y=yb)["loss"])
        print(f"compiled epoch {epoch + 1}: loss {compiled_losses[-1]:.4f}")
    compiled = float((dlg.compile(model)(x_test).argmax(axis=1) == y_test).mean())
    print(f"compiled: test accuracy {compiled:.2%} in {time.perf_counter() - start:.1f} s")
    worst = max(abs(a - b) for a, b in zip(eager_losses, compiled_losses))
    print(f"largest loss difference, eager vs compiled: {worst:.2e}")


if __name__ == "__main__":
    main()
