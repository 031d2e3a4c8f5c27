"""The PyTorch MNIST MLP, written with dlg's PyTorch spellings, trained on the built-in digits:
first eagerly (dlg.nn, dlg.optim, .backward()), then the same network, from the same initial
weights, traced and compiled, where each training step is one native call.

    python examples/mnist_mlp.py [--epochs 5]
"""

import argparse
import copy
import time

import dlg
import dlg.nn as nn
import dlg.nn.functional as F
from dlg.data import DataLoader, load_digits


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = dlg.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def accuracy(predict, x, y) -> float:
    with dlg.no_grad():
        outputs = predict(dlg.from_numpy(x))
        _, predicted = dlg.max(outputs.data, 1)
        return (predicted == dlg.from_numpy(y)).sum().item() / len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    dlg.manual_seed(0)
    x_train, y_train = load_digits(split="train")
    x_test, y_test = load_digits(split="test")
    net = Net()
    start_weights = copy.deepcopy(net.state_dict())

    criterion = nn.CrossEntropyLoss()
    optimizer = dlg.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        for xb, yb in DataLoader(x_train, y_train, batch_size=64, shuffle=True, seed=epoch):
            optimizer.zero_grad()
            loss = criterion(net(dlg.from_numpy(xb)), dlg.from_numpy(yb))
            loss.backward()
            optimizer.step()
        print(f"eager    epoch {epoch + 1}: loss {loss.item():.4f}")
    eager = accuracy(net, x_test, y_test)
    print(f"eager: test accuracy {eager:.2%} in {time.perf_counter() - start:.1f} s")

    # the same network and starting point, traced and compiled
    net.load_state_dict(start_weights)
    optimizer = dlg.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    model = dlg.trace_train(net, criterion, optimizer, x_train[:64], y_train[:64])
    step = model.train_step(compiled=True)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        for xb, yb in DataLoader(x_train, y_train, batch_size=64, shuffle=True, seed=epoch):
            values = step(x=xb, y=yb)
        print(f"compiled epoch {epoch + 1}: loss {values['loss']:.4f}")
    exe = dlg.compile(model)  # the model shares its arrays with `net`, trained in place
    compiled = float((exe(x_test).argmax(axis=1) == y_test).mean())
    assert accuracy(net, x_test, y_test) == compiled
    print(f"compiled: test accuracy {compiled:.2%} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
