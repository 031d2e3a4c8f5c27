"""The PyTorch `LinearRegressionModel`: Linear(1, 1), MSELoss, SGD(lr=0.1), 100 steps on
y = 2x + 1 + noise; eagerly, then traced and compiled from the same start.

    python examples/linear_regression.py
"""

import copy

import dlg
import dlg.nn as nn
from dlg.data import synthetic_regression


class LinearRegressionModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x):
        return self.linear(x)


def main() -> None:
    dlg.manual_seed(0)
    x, y = synthetic_regression(n=100, seed=0)
    inputs, targets = dlg.from_numpy(x), dlg.from_numpy(y)
    model = LinearRegressionModel()
    start_weights = copy.deepcopy(model.state_dict())
    criterion = nn.MSELoss()
    optimizer = dlg.optim.SGD(model.parameters(), lr=0.1)
    for step in range(100):
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
        if (step + 1) % 25 == 0:
            print(f"eager    step {step + 1}: loss {loss.item():.4f}")
    w, b = model.linear.weight.item(), model.linear.bias.item()
    print(f"eager: w = {w:.3f}, b = {b:.3f} (true: 2, 1)")

    model.load_state_dict(start_weights)
    optimizer = dlg.optim.SGD(model.parameters(), lr=0.1)
    traced = dlg.trace_train(model, criterion, optimizer, x, y)
    step_fn = traced.train_step(compiled=True)
    for step in range(100):
        values = step_fn(x=x, y=y)
        if (step + 1) % 25 == 0:
            print(f"compiled step {step + 1}: loss {values['loss']:.4f}")
    print(f"compiled: w = {model.linear.weight.item():.3f}, b = {model.linear.bias.item():.3f}")


if __name__ == "__main__":
    main()
