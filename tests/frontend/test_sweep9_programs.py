"""Porting sweep #9: PyTorch's own tutorials (pytorch/tutorials) and examples (pytorch/examples)
as their authors wrote them, only `torch` swapped for the side's library, small synthetic data
in place of the downloads and a few steps in place of thousands: the basics (tensors, autograd,
the Quickstart's FashionMNIST loop with build-model, optimization and save/load), the
polynomial fits of "Learning PyTorch with Examples" (by hand, by autograd, the
LegendrePolynomial3 Function, nn, optim, a custom Module, DynamicNet), "What is torch.nn
really?" (weights by hand, log_softmax by hand, no_grad updates, TensorDataset, Lambda,
WrappedDataLoader), the char-RNN name classifier and generator, pytorch/examples'
word_language_model (RNNModel and TransformerModel, saved whole and loaded under safe_globals),
time_sequence_prediction (LSTMCells in float64 with LBFGS), the FGSM tutorial, regression,
mnist_rnn, the NLP tutorials (bag of words, N-gram LM, CBOW, LSTM tagger),
mnist_forward_forward, the 60 Minute Blitz, siamese_network, the chatbot tutorial, the
state-dict recipes, the torch.func tutorials (ensembling, per-sample gradients, Jacobians and
Hessians), the fused conv-bn custom Function, parametrizations, forward-mode AD,
fast_neural_style, Introduction to PyTorch's tensors tutorial and gat.

Each program is written once over a `torch` argument and run on torch and on dlg from the same
weights, data and random draws (sweep #5's harness); the training ones also through dlg.compile
(`side.compile`) where a user would compile.

Tolerances: the harness's rtol 1e-4 / atol 1e-5 unless a test says why it needs another.
The slowest programs (FGSM, fast neural style, the fused conv-bn Function, the siamese network)
and the compiled run of "What is torch.nn really?" run under -m sweep_full."""

from __future__ import annotations

import io
import math
import random
import string
import unicodedata
import warnings

import numpy as np
import pytest

from tests.frontend.test_sweep5_programs import COMPILED, COMPILED_FULL, Side5, run_both
from tests.frontend.test_sweep7_programs import replay_dropout

torch = pytest.importorskip("torch")


# -- 1. Learn the Basics: Tensors (tensorqs_tutorial.py, tensor_tutorial.py) and Autograd
#       (autogradqs_tutorial.py) ---------------------------------------------------------------

def tensors_and_autograd(side: Side5) -> dict:
    torch = side.lib
    out = {}
    # Initializing a Tensor
    data = [[1, 2], [3, 4]]
    x_data = torch.tensor(data)
    np_array = np.array(data)
    x_np = torch.from_numpy(np_array)
    x_ones = torch.ones_like(x_data)  # retains the properties of x_data
    x_rand = side.draw(torch.rand_like, x_data, dtype=torch.float)  # overrides the datatype
    assert x_ones.dtype == torch.int64 and x_rand.dtype == torch.float32
    shape = (2, 3,)
    rand_tensor = side.draw(torch.rand, shape)
    ones_tensor = torch.ones(shape)
    zeros_tensor = torch.zeros(shape)
    out.update(x_data=x_data, x_np=x_np, x_ones=x_ones, x_rand=x_rand, rand=rand_tensor,
               ones=ones_tensor, zeros=zeros_tensor)
    # Attributes of a Tensor
    tensor = side.draw(torch.rand, 3, 4)
    assert tuple(tensor.shape) == (3, 4) and tensor.dtype == torch.float32
    assert str(tensor.device) == "cpu"
    if torch.cuda.is_available() & (torch.device('cuda').index is not None):
        tensor = tensor.to('cuda')
    # Operations on Tensors: numpy-like indexing and slicing
    tensor = torch.ones(4, 4)
    out.update(first_row=tensor[0], first_column=tensor[:, 0], last_column=tensor[..., -1])
    tensor[:, 1] = 0
    t1 = torch.cat([tensor, tensor, tensor], dim=1)
    y1 = tensor @ tensor.T
    y2 = tensor.matmul(tensor.T)
    y3 = side.draw(torch.rand_like, tensor)
    torch.matmul(tensor, tensor.T, out=y3)
    z1 = tensor * tensor
    z2 = tensor.mul(tensor)
    z3 = side.draw(torch.rand_like, tensor)
    torch.mul(tensor, tensor, out=z3)
    agg = tensor.sum()
    agg_item = agg.item()
    assert isinstance(agg_item, float)
    tensor.add_(5)
    out.update(t1=t1, y1=y1, y2=y2, y3=y3, z1=z1, z2=z2, z3=z3, agg=agg_item, added=tensor)
    # Bridge with NumPy: shared memory both ways
    t = torch.ones(5)
    n = t.numpy()
    t.add_(1)
    assert n.tolist() == [2.0] * 5
    n = np.ones(5)
    t = torch.from_numpy(n)
    np.add(n, 1, out=n)
    assert t.tolist() == [2.0] * 5 and t.dtype == torch.float64
    # the older tensor_tutorial.py: new_ones, randn_like, torch.add(out=), view
    x = torch.tensor([5.5, 3])
    x = x.new_ones(5, 3, dtype=torch.double)
    assert x.dtype == torch.float64
    x = side.draw(torch.randn_like, x, dtype=torch.float)
    y = side.draw(torch.rand, 5, 3)
    result = torch.empty(5, 3)
    torch.add(x, y, out=result)
    y.add_(x)
    out.update(result=result, y_added=y)
    x = side.draw(torch.randn, 4, 4)
    y = x.view(16)
    z = x.view(-1, 8)
    assert (tuple(y.size()), tuple(z.size())) == ((16,), (2, 8))
    out["view"] = z
    # Automatic differentiation with torch.autograd
    x = torch.ones(5)  # input tensor
    y = torch.zeros(3)  # expected output
    w = side.draw(torch.randn, 5, 3).requires_grad_()
    b = side.draw(torch.randn, 3).requires_grad_()
    z = torch.matmul(x, w) + b
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    assert z.grad_fn is not None and loss.grad_fn is not None
    loss.backward()
    out.update(loss=loss, w_grad=w.grad, b_grad=b.grad)
    z = torch.matmul(x, w) + b
    assert z.requires_grad
    with torch.no_grad():
        z = torch.matmul(x, w) + b
    assert not z.requires_grad
    z = torch.matmul(x, w) + b
    z_det = z.detach()
    assert not z_det.requires_grad
    # Tensor gradients and Jacobian products
    inp = torch.eye(4, 5, requires_grad=True)
    out_ = (inp + 1).pow(2).t()
    out_.backward(torch.ones_like(out_), retain_graph=True)
    first = inp.grad.clone()
    out_.backward(torch.ones_like(out_), retain_graph=True)
    second = inp.grad.clone()
    inp.grad.zero_()
    out_.backward(torch.ones_like(out_), retain_graph=True)
    out.update(first_call=first, second_call=second, after_zeroing=inp.grad)
    return out


def test_tensors_and_autograd_basics():
    run_both(tensors_and_autograd)


# -- 2. Quickstart (quickstart_tutorial.py) with Build Model, Optimization and Save & Load: the
#       FashionMNIST NeuralNetwork, train() and test() loops, state_dict and whole-model saves --

def quickstart(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    from_lib = torch.utils.data
    DataLoader, Dataset = from_lib.DataLoader, from_lib.Dataset

    class FashionMNIST(Dataset):
        """datasets.FashionMNIST(transform=ToTensor()): 1x28x28 images in [0, 1], int labels."""

        def __init__(self, seed, n):
            rng = np.random.default_rng(seed)
            self.images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
            self.labels = rng.integers(0, 10, n)

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, idx):
            image = torch.from_numpy(self.images[idx]).float().div(255).unsqueeze(0)  # ToTensor
            return image, int(self.labels[idx])

    training_data, test_data = FashionMNIST(1, 40), FashionMNIST(2, 24)
    batch_size = 16
    train_dataloader = DataLoader(training_data, batch_size=batch_size)
    test_dataloader = DataLoader(test_data, batch_size=batch_size)
    for X, y in test_dataloader:
        assert tuple(X.shape) == (16, 1, 28, 28) and y.dtype == torch.int64
        break

    device = (
        "cuda" if torch.cuda.is_available()
        else "mps" if torch.backends.mps.is_available()
        else "cpu"
    )

    class NeuralNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.flatten = nn.Flatten()
            self.linear_relu_stack = nn.Sequential(
                nn.Linear(28 * 28, 512),
                nn.ReLU(),
                nn.Linear(512, 512),
                nn.ReLU(),
                nn.Linear(512, 10),
            )

        def forward(self, x):
            x = self.flatten(x)
            logits = self.linear_relu_stack(x)
            return logits

    # torch.save(model) pickles the class by name: the tutorial's is its script's global
    NeuralNetwork.__qualname__ = NeuralNetwork.__name__ = f"NeuralNetwork_{torch.__name__}"
    globals()[NeuralNetwork.__name__] = NeuralNetwork
    model = side.weights(NeuralNetwork().to(device))
    assert "Flatten" in str(model) and "Linear(in_features=784, out_features=512" in str(model)
    # Build Model: the layers one at a time
    X = side.draw(torch.rand, 1, 28, 28, device=device)
    logits = model(X)
    pred_probab = nn.Softmax(dim=1)(logits)
    y_pred = pred_probab.argmax(1)
    input_image = side.draw(torch.rand, 3, 28, 28)
    flatten = nn.Flatten()
    flat_image = flatten(input_image)
    layer1 = side.weights(nn.Linear(in_features=28 * 28, out_features=20))
    hidden1 = layer1(flat_image)
    hidden1 = nn.ReLU()(hidden1)
    seq_modules = side.weights(nn.Sequential(flatten, layer1, nn.ReLU(), nn.Linear(20, 10)))
    seq_logits = seq_modules(input_image)
    names = [(name, tuple(param.size())) for name, param in model.named_parameters()]
    assert names[0] == ("linear_relu_stack.0.weight", (512, 784))
    first_rows = {name: param[:2] for name, param in model.named_parameters()}

    loss_fn = nn.CrossEntropyLoss()
    net = side.compile(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-1)
    train_losses, test_results = [], []

    def train(dataloader, model, loss_fn, optimizer):
        size = len(dataloader.dataset)
        model.train()
        for batch, (X, y) in enumerate(dataloader):
            X, y = X.to(device), y.to(device)
            pred = model(X)
            loss = loss_fn(pred, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            loss, current = loss.item(), (batch + 1) * len(X)
            train_losses.append(loss)
            assert f"loss: {loss:>7f}  [{current:>5d}/{size:>5d}]"

    def test(dataloader, model, loss_fn):
        size = len(dataloader.dataset)
        num_batches = len(dataloader)
        model.eval()
        test_loss, correct = 0, 0
        with torch.no_grad():
            for X, y in dataloader:
                X, y = X.to(device), y.to(device)
                pred = model(X)
                test_loss += loss_fn(pred, y).item()
                correct += (pred.argmax(1) == y).type(torch.float).sum().item()
        test_loss /= num_batches
        correct /= size
        test_results.append((test_loss, correct))

    epochs = 2
    for _t in range(epochs):
        train(train_dataloader, net, loss_fn, optimizer)
        test(test_dataloader, net, loss_fn)

    # Saving and loading: the state dict, then the whole model (torch.load(weights_only=False))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    model = NeuralNetwork().to(device)
    model.load_state_dict(torch.load(buffer, weights_only=True))
    whole = io.BytesIO()
    torch.save(model, whole)
    whole.seek(0)
    model = torch.load(whole, weights_only=False)
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
    model.eval()
    x, y = test_data[0][0], test_data[0][1]
    with torch.no_grad():
        x = x.to(device)
        pred = model(x)
        predicted, actual = classes[pred[0].argmax(0)], classes[y]
    assert actual == classes[int(test_data.labels[0])] and predicted in classes
    return {"logits": logits, "y_pred": y_pred, "hidden1": hidden1, "seq": seq_logits,
            "first_rows": first_rows, "train_losses": train_losses, "tests": test_results,
            "pred": pred, "state": model.state_dict()}


@COMPILED
def test_quickstart(compiled):
    run_both(quickstart, compiled=compiled)


# -- 3. Learning PyTorch with Examples: sin(x) by a cubic, by hand on tensors, by autograd, by
#       the LegendrePolynomial3 Function, with nn, with optim, a custom Module and DynamicNet -----

def polynomials(side: Side5) -> dict:
    torch = side.lib
    out = {}
    steps = 60

    # examples_tensor/polynomial_tensor.py: the gradients by hand
    dtype = torch.float
    device = torch.device("cpu")
    x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
    y = torch.sin(x)
    a = side.draw(torch.randn, (), device=device, dtype=dtype)
    b = side.draw(torch.randn, (), device=device, dtype=dtype)
    c = side.draw(torch.randn, (), device=device, dtype=dtype)
    d = side.draw(torch.randn, (), device=device, dtype=dtype)
    learning_rate = 1e-6
    losses = []
    for _t in range(steps):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum().item()
        losses.append(loss)
        grad_y_pred = 2.0 * (y_pred - y)
        grad_a = grad_y_pred.sum()
        grad_b = (grad_y_pred * x).sum()
        grad_c = (grad_y_pred * x ** 2).sum()
        grad_d = (grad_y_pred * x ** 3).sum()
        a -= learning_rate * grad_a
        b -= learning_rate * grad_b
        c -= learning_rate * grad_c
        d -= learning_rate * grad_d
    out["tensor"] = {"losses": losses, "abcd": [a.item(), b.item(), c.item(), d.item()]}

    # examples_autograd/polynomial_autograd.py
    a = side.draw(torch.randn, (), dtype=dtype).requires_grad_()
    b = side.draw(torch.randn, (), dtype=dtype).requires_grad_()
    c = side.draw(torch.randn, (), dtype=dtype).requires_grad_()
    d = side.draw(torch.randn, (), dtype=dtype).requires_grad_()
    losses = []
    for _t in range(steps):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    out["autograd"] = {"losses": losses, "abcd": [a, b, c, d]}

    # examples_autograd/polynomial_custom_function.py
    class LegendrePolynomial3(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return 0.5 * (5 * input ** 3 - 3 * input)

        @staticmethod
        def backward(ctx, grad_output):
            input, = ctx.saved_tensors
            return grad_output * 1.5 * (5 * input ** 2 - 1)

    a = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    b = torch.full((), -1.0, device=device, dtype=dtype, requires_grad=True)
    c = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    d = torch.full((), 0.3, device=device, dtype=dtype, requires_grad=True)
    learning_rate = 5e-6
    losses = []
    for _t in range(steps):
        P3 = LegendrePolynomial3.apply
        y_pred = a + b * P3(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    out["legendre"] = {"losses": losses, "abcd": [a, b, c, d]}

    # examples_nn/polynomial_nn.py
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)
    model = side.weights(torch.nn.Sequential(
        torch.nn.Linear(3, 1),
        torch.nn.Flatten(0, 1)
    ))
    loss_fn = torch.nn.MSELoss(reduction='sum')
    learning_rate = 1e-6
    losses = []
    for _t in range(steps):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        losses.append(loss.item())
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= learning_rate * param.grad
    linear_layer = model[0]
    out["nn"] = {"losses": losses, "result": [linear_layer.bias.item(),
                                              linear_layer.weight[:, 0].item(),
                                              linear_layer.weight[:, 1].item(),
                                              linear_layer.weight[:, 2].item()]}

    # examples_nn/polynomial_optim.py: RMSprop
    model = side.weights(torch.nn.Sequential(
        torch.nn.Linear(3, 1),
        torch.nn.Flatten(0, 1)
    ))
    net = side.compile(model)
    loss_fn = torch.nn.MSELoss(reduction='sum')
    learning_rate = 1e-3
    optimizer = torch.optim.RMSprop(model.parameters(), lr=learning_rate)
    losses = []
    for _t in range(steps):
        y_pred = net(xx)
        loss = loss_fn(y_pred, y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out["optim"] = {"losses": losses, "state": model.state_dict()}

    # examples_nn/polynomial_module.py
    class Polynomial3(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.randn(()))
            self.b = torch.nn.Parameter(torch.randn(()))
            self.c = torch.nn.Parameter(torch.randn(()))
            self.d = torch.nn.Parameter(torch.randn(()))

        def forward(self, x):
            return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3

        def string(self):
            return (f'y = {self.a.item()} + {self.b.item()} x + {self.c.item()} x^2 + '
                    f'{self.d.item()} x^3')

    model = side.weights(Polynomial3())
    net = side.compile(model)
    criterion = torch.nn.MSELoss(reduction='sum')
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    losses = []
    for _t in range(steps):
        y_pred = net(x)
        loss = criterion(y_pred, y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert model.string().startswith("y = ")
    out["module"] = {"losses": losses, "state": model.state_dict()}

    # examples_nn/dynamic_net.py: 4 or 5 orders drawn by Python's random at every forward
    class DynamicNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.randn(()))
            self.b = torch.nn.Parameter(torch.randn(()))
            self.c = torch.nn.Parameter(torch.randn(()))
            self.d = torch.nn.Parameter(torch.randn(()))
            self.e = torch.nn.Parameter(torch.randn(()))

        def forward(self, x):
            y = self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3
            for exp in range(4, random.randint(4, 6)):
                y = y + self.e * x ** exp
            return y

    random.seed(9)
    model = side.weights(DynamicNet())
    criterion = torch.nn.MSELoss(reduction='sum')
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-8, momentum=0.9)
    losses = []
    for _t in range(steps):
        y_pred = model(x)
        loss = criterion(y_pred, y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out["dynamic"] = {"losses": losses, "state": model.state_dict()}
    return out


@COMPILED
def test_polynomial_fits(compiled):
    run_both(polynomials, compiled=compiled)


# -- 4. What is torch.nn really? (nn_tutorial.py): MNIST logistic regression from scratch (weights
#       by hand, log_softmax by hand, nll by fancy indexing, no_grad updates), refactored step
#       by step through F.cross_entropy, nn.Module, nn.Linear, optim, TensorDataset and
#       DataLoader, validation, then a CNN, nn.Sequential with a Lambda layer, and a
#       WrappedDataLoader with AdaptiveAvgPool2d -------------------------------------------------

def nn_tutorial(side: Side5) -> dict:
    torch = side.lib
    nn, F, optim = torch.nn, torch.nn.functional, torch.optim
    TensorDataset, DataLoader = torch.utils.data.TensorDataset, torch.utils.data.DataLoader
    results = {}

    rng = np.random.default_rng(4)
    x_train = rng.random((136, 784), dtype=np.float32)  # two full batches and a short one
    y_train = rng.integers(0, 10, 136)
    x_valid = rng.random((80, 784), dtype=np.float32)
    y_valid = rng.integers(0, 10, 80)
    x_train, y_train, x_valid, y_valid = map(
        torch.tensor, (x_train, y_train, x_valid, y_valid)
    )
    n, c = x_train.shape
    assert (y_train.min().item(), y_train.max().item()) == (int(y_train.min()), 9)

    # Neural net from scratch (no torch.nn)
    weights = side.draw(torch.randn, 784, 10) / math.sqrt(784)
    weights.requires_grad_()
    bias = torch.zeros(10, requires_grad=True)

    def log_softmax(x):
        return x - x.exp().sum(-1).log().unsqueeze(-1)

    def model(xb):
        return log_softmax(xb @ weights + bias)

    bs = 64
    xb = x_train[0:bs]
    preds = model(xb)
    results["preds0"] = preds[0]

    def nll(input, target):
        return -input[range(target.shape[0]), target].mean()

    loss_func = nll
    yb = y_train[0:bs]
    results["loss0"] = loss_func(preds, yb)

    def accuracy(out, yb):
        preds = torch.argmax(out, dim=1)
        return (preds == yb).float().mean()

    results["acc0"] = accuracy(preds, yb)
    lr = 0.5
    epochs = 2
    for _epoch in range(epochs):
        for i in range((n - 1) // bs + 1):
            start_i = i * bs
            end_i = start_i + bs
            xb = x_train[start_i:end_i]
            yb = y_train[start_i:end_i]
            pred = model(xb)
            loss = loss_func(pred, yb)
            loss.backward()
            with torch.no_grad():
                weights -= weights.grad * lr
                bias -= bias.grad * lr
                weights.grad.zero_()
                bias.grad.zero_()
    results["scratch"] = [loss_func(model(xb), yb), accuracy(model(xb), yb)]

    # Using torch.nn.functional
    loss_func = F.cross_entropy

    def model(xb):  # noqa: F811  (the tutorial redefines it as it refactors)
        return xb @ weights + bias

    results["functional"] = [loss_func(model(xb), yb), accuracy(model(xb), yb)]

    # Refactor using nn.Module
    class Mnist_Logistic(nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = nn.Parameter(torch.randn(784, 10) / math.sqrt(784))
            self.bias = nn.Parameter(torch.zeros(10))

        def forward(self, xb):
            return xb @ self.weights + self.bias

    model = side.weights(Mnist_Logistic())
    results["module0"] = loss_func(model(xb), yb)

    def fit():
        for _epoch in range(epochs):
            for i in range((n - 1) // bs + 1):
                start_i = i * bs
                end_i = start_i + bs
                xb = x_train[start_i:end_i]
                yb = y_train[start_i:end_i]
                pred = model(xb)
                loss = loss_func(pred, yb)
                loss.backward()
                with torch.no_grad():
                    for p in model.parameters():
                        p -= p.grad * lr
                    model.zero_grad()

    fit()
    results["module"] = loss_func(model(xb), yb)

    # Refactor using nn.Linear
    class Mnist_Logistic(nn.Module):  # noqa: F811
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(784, 10)

        def forward(self, xb):
            return self.lin(xb)

    model = side.weights(Mnist_Logistic())
    fit()
    results["linear"] = loss_func(model(xb), yb)

    # Refactor using optim, then Dataset, then DataLoader
    def get_model():
        model = side.weights(Mnist_Logistic())
        return model, optim.SGD(model.parameters(), lr=lr)

    model, opt = get_model()
    for _epoch in range(epochs):
        for i in range((n - 1) // bs + 1):
            start_i = i * bs
            end_i = start_i + bs
            xb = x_train[start_i:end_i]
            yb = y_train[start_i:end_i]
            pred = model(xb)
            loss = loss_func(pred, yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
    results["optim"] = loss_func(model(xb), yb)

    train_ds = TensorDataset(x_train, y_train)
    model, opt = get_model()
    for _epoch in range(epochs):
        for i in range((n - 1) // bs + 1):
            xb, yb = train_ds[i * bs: i * bs + bs]
            pred = model(xb)
            loss = loss_func(pred, yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
    results["dataset"] = loss_func(model(xb), yb)

    train_dl = DataLoader(train_ds, batch_size=bs)
    model, opt = get_model()
    for _epoch in range(epochs):
        for xb, yb in train_dl:
            pred = model(xb)
            loss = loss_func(pred, yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
    results["dataloader"] = loss_func(model(xb), yb)

    # Add validation: shuffle=True's order is torch's on both runs (side.replay)
    def shuffled(ds):
        every = set(range(len(ds)))
        return side.replay(torch.utils.data.RandomSampler(ds),
                           lambda ours: len(ours) == len(every) and set(ours) == every)

    train_ds = TensorDataset(x_train, y_train)
    train_dl = DataLoader(train_ds, batch_size=bs, sampler=shuffled(train_ds))
    valid_ds = TensorDataset(x_valid, y_valid)
    valid_dl = DataLoader(valid_ds, batch_size=bs * 2)
    model, opt = get_model()
    valid_losses = []
    for _epoch in range(epochs):
        model.train()
        for xb, yb in train_dl:
            pred = model(xb)
            loss = loss_func(pred, yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        with torch.no_grad():
            valid_loss = sum(loss_func(model(xb), yb) for xb, yb in valid_dl)
        valid_losses.append(valid_loss / len(valid_dl))
    results["validation"] = valid_losses

    # Create fit() and get_data()
    def loss_batch(model, loss_func, xb, yb, opt=None):
        loss = loss_func(model(xb), yb)
        if opt is not None:
            loss.backward()
            opt.step()
            opt.zero_grad()
        return loss.item(), len(xb)

    fitted = []

    def fit(epochs, model, loss_func, opt, train_dl, valid_dl):  # noqa: F811
        for _epoch in range(epochs):
            model.train()
            for xb, yb in train_dl:
                loss_batch(model, loss_func, xb, yb, opt)
            model.eval()
            with torch.no_grad():
                losses, nums = zip(
                    *[loss_batch(model, loss_func, xb, yb) for xb, yb in valid_dl]
                )
            val_loss = np.sum(np.multiply(losses, nums)) / np.sum(nums)
            fitted.append(val_loss)

    def get_data(train_ds, valid_ds, bs):
        return (
            DataLoader(train_ds, batch_size=bs, sampler=shuffled(train_ds)),
            DataLoader(valid_ds, batch_size=bs * 2),
        )

    train_dl, valid_dl = get_data(train_ds, valid_ds, bs)
    model, opt = get_model()
    fit(epochs, model, loss_func, opt, train_dl, valid_dl)

    # Switch to CNN
    class Mnist_CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, kernel_size=3, stride=2, padding=1)
            self.conv2 = nn.Conv2d(16, 16, kernel_size=3, stride=2, padding=1)
            self.conv3 = nn.Conv2d(16, 10, kernel_size=3, stride=2, padding=1)

        def forward(self, xb):
            xb = xb.view(-1, 1, 28, 28)
            xb = F.relu(self.conv1(xb))
            xb = F.relu(self.conv2(xb))
            xb = F.relu(self.conv3(xb))
            xb = F.avg_pool2d(xb, 4)
            return xb.view(-1, xb.size(1))

    lr = 0.1
    model = side.weights(Mnist_CNN())
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    fit(epochs, side.compile(model), loss_func, opt, train_dl, valid_dl)
    results["cnn"] = model.state_dict()

    # nn.Sequential with a Lambda layer
    class Lambda(nn.Module):
        def __init__(self, func):
            super().__init__()
            self.func = func

        def forward(self, x):
            return self.func(x)

    def preprocess(x):
        return x.view(-1, 1, 28, 28)

    model = side.weights(nn.Sequential(
        Lambda(preprocess),
        nn.Conv2d(1, 16, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 10, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(4),
        Lambda(lambda x: x.view(x.size(0), -1)),
    ))
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    fit(epochs, side.compile(model), loss_func, opt, train_dl, valid_dl)
    results["sequential"] = model.state_dict()

    # Wrapping DataLoader, AdaptiveAvgPool2d
    dev = torch.device(
        "cuda") if torch.cuda.is_available() else torch.device("cpu")

    def preprocess(x, y):  # noqa: F811
        return x.view(-1, 1, 28, 28).to(dev), y.to(dev)

    class WrappedDataLoader:
        def __init__(self, dl, func):
            self.dl = dl
            self.func = func

        def __len__(self):
            return len(self.dl)

        def __iter__(self):
            batches = iter(self.dl)
            for b in batches:
                yield (self.func(*b))

    train_dl, valid_dl = get_data(train_ds, valid_ds, bs)
    train_dl = WrappedDataLoader(train_dl, preprocess)
    valid_dl = WrappedDataLoader(valid_dl, preprocess)
    model = side.weights(nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 10, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        Lambda(lambda x: x.view(x.size(0), -1)),
    ))
    model.to(dev)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    fit(epochs, side.compile(model), loss_func, opt, train_dl, valid_dl)
    results.update(wrapped=model.state_dict(), fitted=fitted)
    return results


@COMPILED_FULL
def test_what_is_torch_nn_really(compiled):
    run_both(nn_tutorial, compiled=compiled)


# -- 5. NLP from scratch: classifying names with a character-level RNN
#       (char_rnn_classification_tutorial.py): one-hot letters, the i2h/i2o RNN stepped by hand
#       with SGD by hand (the deprecated add_(alpha, other) of its older text), topk, a confusion
#       matrix; then the 2024 text's CharRNN on nn.RNN with batches of summed losses, clipping ----

NAMES = {"Italian": ["Rossi", "Ferrari", "Esposito", "Bianchi", "Romano"],
         "German": ["Müller", "Schmidt", "Schneider", "Fischer", "Weber"],
         "Japanese": ["Satō", "Suzuki", "Takahashi", "Tanaka", "Watanabe"],
         "Polish": ["Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Ślusàrski"]}


def char_rnn_classification(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    results = {}
    all_letters = string.ascii_letters + " .,;'"
    n_letters = len(all_letters)

    def unicodeToAscii(s):
        return ''.join(
            c for c in unicodedata.normalize('NFD', s)
            if unicodedata.category(c) != 'Mn'
            and c in all_letters
        )

    assert unicodeToAscii('Ślusàrski') == "Slusarski"
    category_lines = {k: [unicodeToAscii(line) for line in v] for k, v in NAMES.items()}
    all_categories = list(category_lines)
    n_categories = len(all_categories)

    def letterToIndex(letter):
        return all_letters.find(letter)

    def letterToTensor(letter):
        tensor = torch.zeros(1, n_letters)
        tensor[0][letterToIndex(letter)] = 1
        return tensor

    def lineToTensor(line):
        tensor = torch.zeros(len(line), 1, n_letters)
        for li, letter in enumerate(line):
            tensor[li][0][letterToIndex(letter)] = 1
        return tensor

    results["J"] = letterToTensor('J')
    assert tuple(lineToTensor('Jones').size()) == (5, 1, n_letters)

    class RNN(nn.Module):
        def __init__(self, input_size, hidden_size, output_size):
            super(RNN, self).__init__()
            self.hidden_size = hidden_size
            self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
            self.i2o = nn.Linear(input_size + hidden_size, output_size)
            self.softmax = nn.LogSoftmax(dim=1)

        def forward(self, input, hidden):
            combined = torch.cat((input, hidden), 1)
            hidden = self.i2h(combined)
            output = self.i2o(combined)
            output = self.softmax(output)
            return output, hidden

        def initHidden(self):
            return torch.zeros(1, self.hidden_size)

    n_hidden = 32
    rnn = side.weights(RNN(n_letters, n_hidden, n_categories))
    input = letterToTensor('A')
    hidden = torch.zeros(1, n_hidden)
    output, next_hidden = rnn(input, hidden)
    input = lineToTensor('Albert')
    hidden = torch.zeros(1, n_hidden)
    output, next_hidden = rnn(input[0], hidden)
    results["albert"] = output

    def categoryFromOutput(output):
        top_n, top_i = output.data.topk(1)  # Tensor out of Variable with .data
        category_i = top_i[0][0]
        return all_categories[category_i], category_i

    results["category"] = categoryFromOutput(output)[0] in all_categories

    def randomChoice(l):  # noqa: E741  (the tutorial's name)
        return l[random.randint(0, len(l) - 1)]

    def randomTrainingExample():
        category = randomChoice(all_categories)
        line = randomChoice(category_lines[category])
        category_tensor = torch.LongTensor([all_categories.index(category)])
        line_tensor = lineToTensor(line)
        return category, line, category_tensor, line_tensor

    criterion = nn.NLLLoss()
    learning_rate = 0.005

    def train(category_tensor, line_tensor):
        hidden = rnn.initHidden()
        rnn.zero_grad()
        for i in range(line_tensor.size()[0]):
            output, hidden = rnn(line_tensor[i], hidden)
        loss = criterion(output, category_tensor)
        loss.backward()
        # Add parameters' gradients to their values, multiplied by learning rate
        for p in rnn.parameters():
            p.data.add_(-learning_rate, p.grad.data)
        return output, loss.item()

    random.seed(5)
    all_losses, current_loss, plot_every = [], 0, 5
    # the deprecated overload warns; torch only once a process, so dlg's warning is checked
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for iter in range(1, 21):
            category, line, category_tensor, line_tensor = randomTrainingExample()
            output, loss = train(category_tensor, line_tensor)
            current_loss += loss
            if iter % plot_every == 0:
                all_losses.append(current_loss / plot_every)
                current_loss = 0
    assert side.on_torch or any("deprecated" in str(w.message) for w in caught)
    results["losses"] = all_losses

    confusion = torch.zeros(n_categories, n_categories)

    def evaluate(line_tensor):
        hidden = rnn.initHidden()
        for i in range(line_tensor.size()[0]):
            output, hidden = rnn(line_tensor[i], hidden)
        return output

    for _i in range(12):
        category, line, category_tensor, line_tensor = randomTrainingExample()
        output = evaluate(line_tensor)
        guess, guess_i = categoryFromOutput(output)
        category_i = all_categories.index(category)
        confusion[category_i][guess_i] += 1
    for i in range(n_categories):
        confusion[i] = confusion[i] / confusion[i].sum()
    results["confusion"] = confusion

    def predict(input_line, n_predictions=3):
        output = evaluate(lineToTensor(input_line))
        topv, topi = output.data.topk(n_predictions, 1, True)
        predictions = []
        for i in range(n_predictions):
            value = topv[0][i]
            category_index = topi[0][i]
            assert '(%.2f) %s' % (value, all_categories[category_index])
            predictions.append([value.item(), all_categories[category_index]])
        return predictions

    results["predict"] = [p[0] for p in predict('Dovesky')]

    # the 2024 text: nn.RNN reads the whole name, batches of summed losses, clipping
    class CharRNN(nn.Module):
        def __init__(self, input_size, hidden_size, output_size):
            super(CharRNN, self).__init__()
            self.rnn = nn.RNN(input_size, hidden_size)
            self.h2o = nn.Linear(hidden_size, output_size)
            self.softmax = nn.LogSoftmax(dim=1)

        def forward(self, line_tensor):
            rnn_out, hidden = self.rnn(line_tensor)
            output = self.h2o(hidden[0])
            output = self.softmax(output)
            return output

    def label_from_output(output, output_labels):
        top_n, top_i = output.topk(1)
        label_i = top_i[0].item()
        return output_labels[label_i], label_i

    data = [(torch.tensor([all_categories.index(c)], dtype=torch.long), lineToTensor(line), c,
             line) for c, lines in category_lines.items() for line in lines]
    rnn = side.weights(CharRNN(n_letters, n_hidden, n_categories))

    def train2(rnn, training_data, n_epoch=3, n_batch_size=4, learning_rate=0.2,
               criterion=nn.NLLLoss()):  # noqa: B008  (the tutorial's)
        current_loss = 0
        all_losses = []
        rnn.train()
        optimizer = torch.optim.SGD(rnn.parameters(), lr=learning_rate)
        for _iter in range(1, n_epoch + 1):
            rnn.zero_grad()  # clear the gradients
            batches = list(range(len(training_data)))
            random.shuffle(batches)
            batches = np.array_split(batches, len(batches) // n_batch_size)
            for _idx, batch in enumerate(batches):
                batch_loss = 0
                for i in batch:
                    (label_tensor, text_tensor, label, text) = training_data[i]
                    output = rnn.forward(text_tensor)
                    loss = criterion(output, label_tensor)
                    batch_loss += loss
                batch_loss.backward()
                nn.utils.clip_grad_norm_(rnn.parameters(), 3)
                optimizer.step()
                optimizer.zero_grad()
                current_loss += batch_loss.item() / len(batch)
            all_losses.append(current_loss / len(batches))
            current_loss = 0
        return all_losses

    random.seed(6)
    results["char_rnn_losses"] = train2(rnn, data)
    confusion = torch.zeros(len(all_categories), len(all_categories))
    rnn.eval()
    with torch.no_grad():
        for i in range(len(data)):
            (label_tensor, text_tensor, label, text) = data[i]
            output = rnn(text_tensor)
            guess, guess_i = label_from_output(output, all_categories)
            label_i = all_categories.index(label)
            confusion[label_i][guess_i] += 1
    for i in range(len(all_categories)):
        denom = confusion[i].sum()
        if denom > 0:
            confusion[i] = confusion[i] / denom
    results.update(char_rnn_confusion=confusion, char_rnn_state=rnn.state_dict())
    return results


def test_char_rnn_classification():
    run_both(char_rnn_classification)


# -- 6. NLP from scratch: generating names with a character-level RNN
#       (char_rnn_generation_tutorial.py): category, letter and hidden concatenated, o2o,
#       dropout, a loss summed into torch.Tensor([0]) step by step, target_line_tensor.unsqueeze_,
#       sampling by topk until EOS, a 0-d tensor indexing a str ----------------------------------

def char_rnn_generation(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    all_letters = string.ascii_letters + " .,;'-"
    n_letters = len(all_letters) + 1  # Plus EOS marker

    def unicodeToAscii(s):
        return ''.join(
            c for c in unicodedata.normalize('NFD', s)
            if unicodedata.category(c) != 'Mn'
            and c in all_letters
        )

    category_lines = {k: [unicodeToAscii(line) for line in v] for k, v in NAMES.items()}
    all_categories = list(category_lines)
    n_categories = len(all_categories)

    class RNN(nn.Module):
        def __init__(self, input_size, hidden_size, output_size):
            super(RNN, self).__init__()
            self.hidden_size = hidden_size
            self.i2h = nn.Linear(n_categories + input_size + hidden_size, hidden_size)
            self.i2o = nn.Linear(n_categories + input_size + hidden_size, output_size)
            self.o2o = nn.Linear(hidden_size + output_size, output_size)
            self.dropout = replay_dropout(side, 0.1)  # nn.Dropout(0.1), its masks torch's
            self.softmax = nn.LogSoftmax(dim=1)

        def forward(self, category, input, hidden):
            input_combined = torch.cat((category, input, hidden), 1)
            hidden = self.i2h(input_combined)
            output = self.i2o(input_combined)
            output_combined = torch.cat((hidden, output), 1)
            output = self.o2o(output_combined)
            output = self.dropout(output)
            output = self.softmax(output)
            return output, hidden

        def initHidden(self):
            return torch.zeros(1, self.hidden_size)

    def randomChoice(l):  # noqa: E741
        return l[random.randint(0, len(l) - 1)]

    def randomTrainingPair():
        category = randomChoice(all_categories)
        line = randomChoice(category_lines[category])
        return category, line

    def categoryTensor(category):
        li = all_categories.index(category)
        tensor = torch.zeros(1, n_categories)
        tensor[0][li] = 1
        return tensor

    def inputTensor(line):
        tensor = torch.zeros(len(line), 1, n_letters)
        for li in range(len(line)):
            letter = line[li]
            tensor[li][0][all_letters.find(letter)] = 1
        return tensor

    def targetTensor(line):
        letter_indexes = [all_letters.find(line[li]) for li in range(1, len(line))]
        letter_indexes.append(n_letters - 1)  # EOS
        return torch.LongTensor(letter_indexes)

    def randomTrainingExample():
        category, line = randomTrainingPair()
        category_tensor = categoryTensor(category)
        input_line_tensor = inputTensor(line)
        target_line_tensor = targetTensor(line)
        return category_tensor, input_line_tensor, target_line_tensor

    criterion = nn.NLLLoss()
    learning_rate = 0.05
    rnn = side.weights(RNN(n_letters, 32, n_letters))

    def train(category_tensor, input_line_tensor, target_line_tensor):
        target_line_tensor.unsqueeze_(-1)
        hidden = rnn.initHidden()
        rnn.zero_grad()
        loss = torch.Tensor([0])  # you can also just simply use ``loss = 0``
        for i in range(input_line_tensor.size(0)):
            output, hidden = rnn(category_tensor, input_line_tensor[i], hidden)
            l = criterion(output, target_line_tensor[i])  # noqa: E741
            loss += l
        loss.backward()
        for p in rnn.parameters():
            p.data.add_(p.grad.data, alpha=-learning_rate)
        return output, loss.item() / input_line_tensor.size(0)

    random.seed(7)
    losses = []
    for _iter in range(1, 16):
        output, loss = train(*randomTrainingExample())
        losses.append(loss)

    max_length = 8

    def sample(category, start_letter='A'):
        with torch.no_grad():  # no need to track history in sampling
            category_tensor = categoryTensor(category)
            input = inputTensor(start_letter)
            hidden = rnn.initHidden()
            output_name = start_letter
            for _i in range(max_length):
                output, hidden = rnn(category_tensor, input[0], hidden)
                topv, topi = output.topk(1)
                topi = topi[0][0]
                if topi == n_letters - 1:
                    break
                else:
                    letter = all_letters[topi]
                    output_name += letter
                input = inputTensor(letter)
            return output_name

    def samples(category, start_letters='ABC'):
        return [sample(category, start_letter) for start_letter in start_letters]

    return {"losses": losses, "state": rnn.state_dict(),
            "names": [len(n) for n in samples('German', 'GER') + samples('Italian', 'ITA')]}


def test_char_rnn_generation():
    run_both(char_rnn_generation)


# -- 7. pytorch/examples word_language_model: model.py's RNNModel (tied LSTM) and
#       TransformerModel (an nn.Transformer subclass, PositionalEncoding buffer, log-of-tril
#       mask), main.py's batchify, get_batch, repackage_hidden, clip_grad_norm_ and SGD by hand
#       with lr /= 4, the whole model saved and loaded under serialization.safe_globals, then
#       generate.py's sampling by multinomial at a temperature --------------------------------

def word_language_model(side: Side5, kind: str) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional

    class RNNModel(nn.Module):
        """Container module with an encoder, a recurrent module, and a decoder."""

        def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5,
                     tie_weights=False):
            super(RNNModel, self).__init__()
            self.ntoken = ntoken
            self.drop = nn.Dropout(dropout)
            self.encoder = nn.Embedding(ntoken, ninp)
            if rnn_type in ['LSTM', 'GRU']:
                self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
            else:
                try:
                    nonlinearity = {'RNN_TANH': 'tanh', 'RNN_RELU': 'relu'}[rnn_type]
                except KeyError as e:
                    raise ValueError("An invalid option for `--model` was supplied") from e
                self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity,
                                  dropout=dropout)
            self.decoder = nn.Linear(nhid, ntoken)
            if tie_weights:
                if nhid != ninp:
                    raise ValueError('When using the tied flag, nhid must be equal to emsize')
                self.decoder.weight = self.encoder.weight
            self.init_weights()
            self.rnn_type = rnn_type
            self.nhid = nhid
            self.nlayers = nlayers

        def init_weights(self):
            initrange = 0.1
            nn.init.uniform_(self.encoder.weight, -initrange, initrange)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -initrange, initrange)

        def forward(self, input, hidden):
            emb = self.drop(self.encoder(input))
            output, hidden = self.rnn(emb, hidden)
            output = self.drop(output)
            decoded = self.decoder(output)
            decoded = decoded.view(-1, self.ntoken)
            return F.log_softmax(decoded, dim=1), hidden

        def init_hidden(self, bsz):
            weight = next(self.parameters())
            if self.rnn_type == 'LSTM':
                return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                        weight.new_zeros(self.nlayers, bsz, self.nhid))
            else:
                return weight.new_zeros(self.nlayers, bsz, self.nhid)

    class PositionalEncoding(nn.Module):
        def __init__(self, d_model, dropout=0.1, max_len=5000):
            super(PositionalEncoding, self).__init__()
            self.dropout = nn.Dropout(p=dropout)
            pe = torch.zeros(max_len, d_model)
            position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
            div_term = torch.exp(torch.arange(0, d_model, 2).float()
                                 * (-math.log(10000.0) / d_model))
            pe[:, 0::2] = torch.sin(position * div_term)
            pe[:, 1::2] = torch.cos(position * div_term)
            pe = pe.unsqueeze(0).transpose(0, 1)
            self.register_buffer('pe', pe)

        def forward(self, x):
            x = x + self.pe[:x.size(0), :]
            return self.dropout(x)

    class TransformerModel(nn.Transformer):
        """Container module with an encoder, a recurrent or transformer module, and a decoder."""

        def __init__(self, ntoken, ninp, nhead, nhid, nlayers, dropout=0.5):
            super(TransformerModel, self).__init__(d_model=ninp, nhead=nhead,
                                                   dim_feedforward=nhid,
                                                   num_encoder_layers=nlayers)
            self.model_type = 'Transformer'
            self.src_mask = None
            self.pos_encoder = PositionalEncoding(ninp, dropout)
            self.input_emb = nn.Embedding(ntoken, ninp)
            self.ninp = ninp
            self.decoder = nn.Linear(ninp, ntoken)
            self.init_weights()

        def _generate_square_subsequent_mask(self, sz):
            return torch.log(torch.tril(torch.ones(sz, sz)))

        def init_weights(self):
            initrange = 0.1
            nn.init.uniform_(self.input_emb.weight, -initrange, initrange)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -initrange, initrange)

        def forward(self, src, has_mask=True):
            if has_mask:
                device = src.device
                if self.src_mask is None or self.src_mask.size(0) != len(src):
                    mask = self._generate_square_subsequent_mask(len(src)).to(device)
                    self.src_mask = mask
            else:
                self.src_mask = None
            src = self.input_emb(src) * math.sqrt(self.ninp)
            src = self.pos_encoder(src)
            output = self.encoder(src, mask=self.src_mask)
            output = self.decoder(output)
            return F.log_softmax(output, dim=-1)

    # torch.save(model) pickles the classes by name: the example's are its model.py's globals
    for cls in (RNNModel, PositionalEncoding, TransformerModel):
        cls.__qualname__ = cls.__name__ = f"{cls.__name__}_{torch.__name__}"
        globals()[cls.__name__] = cls

    class args:  # noqa: N801  (main.py's argparse namespace)
        model, emsize, nhid, nlayers, lr, clip, epochs = kind, 16, 16, 2, 20, 0.25, 2
        batch_size, bptt, dropout, tied, nhead, log_interval = 4, 7, 0.0, True, 2, 3
        dry_run, use_optimizer, temperature, words = False, False, 1.0, 6

    device = torch.device("cpu")
    ntokens = 23
    rng = np.random.default_rng(12)
    corpus_train, corpus_valid, corpus_test = (
        torch.from_numpy(rng.integers(0, ntokens, n)) for n in (150, 61, 41))
    idx2word = [f"w{i}" for i in range(ntokens)]

    def batchify(data, bsz):
        nbatch = data.size(0) // bsz
        data = data.narrow(0, 0, nbatch * bsz)
        data = data.view(bsz, -1).t().contiguous()
        return data.to(device)

    eval_batch_size = 10
    train_data = batchify(corpus_train, args.batch_size)
    val_data = batchify(corpus_valid, eval_batch_size)
    test_data = batchify(corpus_test, eval_batch_size)

    if args.model == 'Transformer':
        model = TransformerModel(ntokens, args.emsize, args.nhead, args.nhid, args.nlayers,
                                 args.dropout).to(device)
        for m in model.modules():  # nn.Transformer's own dropout (0.1, not an argument) off
            if isinstance(m, nn.Dropout):
                m.p = 0.0
            if isinstance(m, nn.MultiheadAttention):
                m.dropout = 0.0
    else:
        model = RNNModel(args.model, ntokens, args.emsize, args.nhid, args.nlayers,
                         args.dropout, args.tied).to(device)
    model = side.weights(model)
    criterion = nn.NLLLoss()

    def repackage_hidden(h):
        """Wraps hidden states in new Tensors, to detach them from their history."""
        if isinstance(h, torch.Tensor):
            return h.detach()
        else:
            return tuple(repackage_hidden(v) for v in h)

    def get_batch(source, i):
        seq_len = min(args.bptt, len(source) - 1 - i)
        data = source[i:i + seq_len]
        target = source[i + 1:i + 1 + seq_len].view(-1)
        return data, target

    def evaluate(data_source):
        model.eval()
        total_loss = 0.
        if args.model != 'Transformer':
            hidden = model.init_hidden(eval_batch_size)
        with torch.no_grad():
            for i in range(0, data_source.size(0) - 1, args.bptt):
                data, targets = get_batch(data_source, i)
                if args.model == 'Transformer':
                    output = model(data)
                    output = output.view(-1, ntokens)
                else:
                    output, hidden = model(data, hidden)
                    hidden = repackage_hidden(hidden)
                total_loss += len(data) * criterion(output, targets).item()
        return total_loss / (len(data_source) - 1)

    train_losses, norms = [], []

    def train():
        model.train()
        total_loss = 0.
        if args.model != 'Transformer':
            hidden = model.init_hidden(args.batch_size)
        for batch, i in enumerate(range(0, train_data.size(0) - 1, args.bptt)):
            data, targets = get_batch(train_data, i)
            model.zero_grad()
            if args.model == 'Transformer':
                output = model(data)
                output = output.view(-1, ntokens)
            else:
                hidden = repackage_hidden(hidden)
                output, hidden = model(data, hidden)
            loss = criterion(output, targets)
            loss.backward()
            norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip))
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            total_loss += loss.item()
            if batch % args.log_interval == 0 and batch > 0:
                cur_loss = total_loss / args.log_interval
                train_losses.append((cur_loss, math.exp(cur_loss)))
                total_loss = 0

    lr = args.lr
    best_val_loss = None
    val_losses = []
    for _epoch in range(1, args.epochs + 1):
        train()
        val_loss = evaluate(val_data)
        val_losses.append(val_loss)
        if not best_val_loss or val_loss < best_val_loss:
            saved = io.BytesIO()  # with open(args.save, 'wb') as f:
            torch.save(model, saved)
            best_val_loss = val_loss
        else:
            lr /= 4.0

    saved.seek(0)
    if args.model == 'Transformer':
        safe_globals = [
            PositionalEncoding,
            TransformerModel,
            torch.nn.functional.relu,
            torch.nn.modules.activation.MultiheadAttention,
            torch.nn.modules.container.ModuleList,
            torch.nn.modules.dropout.Dropout,
            torch.nn.modules.linear.Linear,
            torch.nn.modules.linear.NonDynamicallyQuantizableLinear,
            torch.nn.modules.normalization.LayerNorm,
            torch.nn.modules.sparse.Embedding,
            torch.nn.modules.transformer.TransformerEncoder,
            torch.nn.modules.transformer.TransformerEncoderLayer,
            torch.nn.modules.transformer.TransformerDecoder,  # nn.Transformer's unused decoder
            torch.nn.modules.transformer.TransformerDecoderLayer,
        ]
    else:
        safe_globals = [
            RNNModel,
            torch.nn.modules.dropout.Dropout,
            torch.nn.modules.linear.Linear,
            torch.nn.modules.rnn.GRU,
            torch.nn.modules.rnn.LSTM,
            torch.nn.modules.rnn.RNN,
            torch.nn.modules.sparse.Embedding,
        ]
    with torch.serialization.safe_globals(safe_globals):
        model = torch.load(saved)
    if args.model in ['RNN_TANH', 'RNN_RELU', 'LSTM', 'GRU']:
        model.rnn.flatten_parameters()
    test_loss = evaluate(test_data)

    # generate.py
    model.eval()
    is_transformer_model = hasattr(model, 'model_type') and model.model_type == 'Transformer'
    if not is_transformer_model:
        hidden = model.init_hidden(1)
    input = side.draw(torch.randint, ntokens, (1, 1), dtype=torch.long).to(device)
    words = []
    with torch.no_grad():  # no tracking history
        for _i in range(args.words):
            if is_transformer_model:
                output = model(input, False)
                word_weights = output[-1].squeeze().div(args.temperature).exp().cpu()
                word_idx = side.draw(torch.multinomial, word_weights, 1)[0]
                word_tensor = torch.Tensor([[word_idx]]).long().to(device)
                input = torch.cat([input, word_tensor], 0)
            else:
                output, hidden = model(input, hidden)
                word_weights = output.squeeze().div(args.temperature).exp().cpu()
                word_idx = side.draw(torch.multinomial, word_weights, 1)[0]
                input.fill_(word_idx)
            words.append(idx2word[word_idx])
    assert len(words) == args.words
    return {"train_losses": train_losses, "norms": norms, "val_losses": val_losses,
            "test_loss": test_loss, "state": model.state_dict(), "last_weights": word_weights,
            "input": input}


@pytest.mark.parametrize("kind", ["LSTM", "Transformer"])
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")  # torch's, nn.Transformer's
def test_word_language_model(kind):
    run_both(lambda side: word_language_model(side, kind))


# -- 8. pytorch/examples time_sequence_prediction: two LSTMCells stepped over input.split(1,
#       dim=1) in float64 (seq.double()), LBFGS with a closure, predicting the future under
#       no_grad --------------------------------------------------------------------------------

def time_sequence_prediction(side: Side5) -> dict:
    torch = side.lib
    nn, optim = torch.nn, torch.optim

    # generate_sine_wave.py (T, L, N smaller)
    np.random.seed(2)
    T, L, N = 20, 20, 6
    x = np.empty((N, L), 'int64')
    x[:] = np.array(range(L)) + np.random.randint(-4 * T, 4 * T, N).reshape(N, 1)
    data = np.sin(x / 1.0 / T).astype('float64')

    class Sequence(nn.Module):
        def __init__(self):
            super(Sequence, self).__init__()
            self.lstm1 = nn.LSTMCell(1, 51)
            self.lstm2 = nn.LSTMCell(51, 51)
            self.linear = nn.Linear(51, 1)

        def forward(self, input, future=0):
            outputs = []
            h_t = torch.zeros(input.size(0), 51, dtype=torch.double)
            c_t = torch.zeros(input.size(0), 51, dtype=torch.double)
            h_t2 = torch.zeros(input.size(0), 51, dtype=torch.double)
            c_t2 = torch.zeros(input.size(0), 51, dtype=torch.double)
            for input_t in input.split(1, dim=1):
                h_t, c_t = self.lstm1(input_t, (h_t, c_t))
                h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
                output = self.linear(h_t2)
                outputs += [output]
            for _i in range(future):  # if we should predict the future
                h_t, c_t = self.lstm1(output, (h_t, c_t))
                h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
                output = self.linear(h_t2)
                outputs += [output]
            outputs = torch.cat(outputs, dim=1)
            return outputs

    input = torch.from_numpy(data[3:, :-1])
    target = torch.from_numpy(data[3:, 1:])
    test_input = torch.from_numpy(data[:3, :-1])
    test_target = torch.from_numpy(data[:3, 1:])
    seq = Sequence()
    seq.double()
    seq = side.weights(seq)
    assert seq.linear.weight.dtype == torch.float64
    criterion = nn.MSELoss()
    optimizer = optim.LBFGS(seq.parameters(), lr=0.8, max_iter=5)
    losses, test_losses = [], []
    for _i in range(2):
        def closure():
            optimizer.zero_grad()
            out = seq(input)
            loss = criterion(out, target)
            losses.append(loss.item())
            loss.backward()
            return loss
        optimizer.step(closure)
        with torch.no_grad():
            future = 10
            pred = seq(test_input, future=future)
            loss = criterion(pred[:, :-future], test_target)
            test_losses.append(loss.item())
            y = pred.detach().numpy()
    return {"losses": losses, "test_losses": test_losses, "y": y, "state": seq.state_dict()}


def test_time_sequence_prediction_lbfgs_double():
    run_both(time_sequence_prediction, rtol=1e-7, atol=1e-9)  # float64 throughout


# -- 9. Adversarial example generation (fgsm_tutorial.py): the MNIST Net in eval mode,
#       data.requires_grad = True, data.grad.data's sign, denorm, clamp, renormalise, the
#       accuracy under each epsilon and the adversarial examples kept -------------------------

def fgsm(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    device = torch.device("cpu")

    class Net(nn.Module):
        def __init__(self):
            super(Net, self).__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = self.conv1(x)
            x = F.relu(x)
            x = self.conv2(x)
            x = F.relu(x)
            x = F.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = torch.flatten(x, 1)
            x = self.fc1(x)
            x = F.relu(x)
            x = self.dropout2(x)
            x = self.fc2(x)
            output = F.log_softmax(x, dim=1)
            return output

    model = side.weights(Net().to(device))
    model.eval()

    def Normalize(mean, std):  # torchvision.transforms.Normalize((0.1307,), (0.3081,))
        return lambda t: (t - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(
            1, -1, 1, 1)

    # MNIST's test set, normalised: half of the labels are the model's own guesses, so that
    # some attacks start from a correct prediction
    rng = np.random.default_rng(9)
    images = ((rng.random((8, 1, 1, 28, 28), dtype=np.float32) - 0.1307) / 0.3081)
    with torch.no_grad():
        guesses = [model(torch.from_numpy(im)).argmax(1).item() for im in images]
    labels = [g if i % 2 == 0 else int(rng.integers(0, 10)) for i, g in enumerate(guesses)]
    test_loader = [(torch.from_numpy(im), torch.tensor([y])) for im, y in zip(images, labels)]

    def fgsm_attack(image, epsilon, data_grad):
        sign_data_grad = data_grad.sign()
        perturbed_image = image + epsilon * sign_data_grad
        perturbed_image = torch.clamp(perturbed_image, 0, 1)
        return perturbed_image

    def denorm(batch, mean=[0.1307], std=[0.3081]):  # noqa: B006  (the tutorial's)
        if isinstance(mean, list):
            mean = torch.tensor(mean).to(device)
        if isinstance(std, list):
            std = torch.tensor(std).to(device)
        return batch * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)

    def test(model, device, test_loader, epsilon):
        correct = 0
        adv_examples = []
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            data.requires_grad = True
            output = model(data)
            init_pred = output.max(1, keepdim=True)[1]
            if init_pred.item() != target.item():
                continue
            loss = F.nll_loss(output, target)
            model.zero_grad()
            loss.backward()
            data_grad = data.grad.data
            data_denorm = denorm(data)
            perturbed_data = fgsm_attack(data_denorm, epsilon, data_grad)
            perturbed_data_normalized = Normalize((0.1307,), (0.3081,))(perturbed_data)
            output = model(perturbed_data_normalized)
            final_pred = output.max(1, keepdim=True)[1]
            if final_pred.item() == target.item():
                correct += 1
                if epsilon == 0 and len(adv_examples) < 5:
                    adv_ex = perturbed_data.squeeze().detach().cpu().numpy()
                    adv_examples.append((init_pred.item(), final_pred.item(), adv_ex))
            else:
                if len(adv_examples) < 5:
                    adv_ex = perturbed_data.squeeze().detach().cpu().numpy()
                    adv_examples.append((init_pred.item(), final_pred.item(), adv_ex))
        final_acc = correct / float(len(test_loader))
        return final_acc, adv_examples

    accuracies = []
    examples = []
    for eps in [0, .05, .1, .3]:
        acc, ex = test(model, device, test_loader, eps)
        accuracies.append(acc)
        examples.append(ex)
    return {"accuracies": accuracies, "guesses": guesses,
            "examples": [[list(e[:2]) for e in ex] for ex in examples],
            "images": [[e[2] for e in ex] for ex in examples if ex]}


@pytest.mark.sweep_full  # slow (a ~10 s program): -m sweep_full runs it
def test_fgsm_adversarial_examples():
    run_both(fgsm)


# -- 10. pytorch/examples regression: a degree-4 polynomial fitted by one Linear on
#        torch.cat'd powers, smooth_l1_loss, SGD by hand with param.data.add_, poly_desc's
#        '{:+.2f}'.format of 0-d tensors -----------------------------------------------------

def regression(side: Side5) -> dict:
    torch = side.lib
    F = torch.nn.functional
    POLY_DEGREE = 4
    W_target = side.draw(torch.randn, POLY_DEGREE, 1) * 5
    b_target = side.draw(torch.randn, 1) * 5

    def make_features(x):
        """Builds features i.e. a matrix with columns [x, x^2, x^3, x^4]."""
        x = x.unsqueeze(1)
        return torch.cat([x ** i for i in range(1, POLY_DEGREE + 1)], 1)

    def f(x):
        """Approximated function."""
        return x.mm(W_target) + b_target.item()

    def poly_desc(W, b):
        """Creates a string description of a polynomial."""
        result = 'y = '
        for i, w in enumerate(W):
            result += '{:+.2f} x^{} '.format(w, i + 1)
        result += '{:+.2f}'.format(b[0])
        return result

    def get_batch(batch_size=32):
        """Builds a batch i.e. (x, f(x)) pair."""
        random = side.draw(torch.randn, batch_size)
        x = make_features(random)
        y = f(x)
        return x, y

    fc = side.weights(torch.nn.Linear(W_target.size(0), 1))
    losses = []
    for batch_idx in range(1, 41):  # noqa: B007  (count(1) until the loss is below 1e-3)
        batch_x, batch_y = get_batch()
        fc.zero_grad()
        output = F.smooth_l1_loss(fc(batch_x), batch_y)
        loss = output.item()
        losses.append(loss)
        output.backward()
        for param in fc.parameters():
            param.data.add_(-0.1 * param.grad)
        if loss < 1e-3:
            break
    assert 'Loss: {:.6f} after {} batches'.format(loss, batch_idx)  # its 6th digit rounds
    learned = poly_desc(fc.weight.view(-1), fc.bias)
    actual = poly_desc(W_target.view(-1), b_target)
    text = np.frombuffer((learned + "\n" + actual).encode(), np.uint8)  # compared exactly
    return {"losses": losses, "state": fc.state_dict(), "described": text.astype(np.int64)}


def test_regression_example():
    run_both(regression, rtol=1e-3, atol=1e-4)  # a 4th-power fit grows rounding


# -- 11. pytorch/examples mnist_rnn: an LSTM over the image's rows (batch_first), the last
#        step's output through BatchNorm1d and Dropout2d on [N, 64], Adadelta with StepLR -----

def mnist_rnn(side: Side5) -> dict:
    torch = side.lib
    nn, F, optim = torch.nn, torch.nn.functional, torch.optim
    StepLR = torch.optim.lr_scheduler.StepLR

    class Net(nn.Module):
        def __init__(self):
            super(Net, self).__init__()
            self.rnn = nn.LSTM(input_size=28, hidden_size=64, batch_first=True)
            self.batchnorm = nn.BatchNorm1d(64)
            self.dropout1 = nn.Dropout2d(0.25)
            self.dropout2 = nn.Dropout2d(0.5)
            self.fc1 = nn.Linear(64, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, input):
            input = input.reshape(-1, 28, 28)
            output, hidden = self.rnn(input)
            output = output[:, -1, :]
            output = self.batchnorm(output)
            output = self.dropout1(output)
            output = self.fc1(output)
            output = F.relu(output)
            output = self.dropout2(output)
            output = self.fc2(output)
            output = F.log_softmax(output, dim=1)
            return output

    class args:  # noqa: N801
        lr, gamma, log_interval, dry_run, epochs = 0.1, 0.7, 2, False, 2

    rng = np.random.default_rng(13)
    data = ((rng.random((40, 1, 28, 28), dtype=np.float32) - 0.1307) / 0.3081)
    targets = rng.integers(0, 10, 40)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(data), torch.from_numpy(targets))
    train_loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(24)),
                                               batch_size=8)
    test_loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(24, 40)),
                                              batch_size=8)
    device = torch.device("cpu")
    model = side.weights(Net().to(device))
    # the Dropout2d masks (elementwise on [N, 64]: torch's reading) drawn on torch, replayed
    model.dropout1, model.dropout2 = replay_dropout(side, 0.25), replay_dropout(side, 0.5)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    logged, tests = [], []

    def train(args, model, device, train_loader, optimizer, epoch):
        model.train()
        for batch_idx, (data, target) in enumerate(train_loader):
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            output = model(data)
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()
            if batch_idx % args.log_interval == 0:
                logged.append((epoch, batch_idx * len(data), len(train_loader.dataset),
                               100. * batch_idx / len(train_loader), loss.item()))

    def test(args, model, device, test_loader):
        model.eval()
        test_loss = 0
        correct = 0
        with torch.no_grad():
            for data, target in test_loader:
                data, target = data.to(device), target.to(device)
                output = model(data)
                test_loss += F.nll_loss(output, target, reduction='sum').item()
                pred = output.argmax(dim=1, keepdim=True)
                correct += pred.eq(target.view_as(pred)).sum().item()
        test_loss /= len(test_loader.dataset)
        tests.append((test_loss, correct))

    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        test(args, model, device, test_loader)
        scheduler.step()
    return {"logged": logged, "tests": tests, "state": model.state_dict(),
            "lr": scheduler.get_last_lr()}


def test_mnist_rnn():
    run_both(mnist_rnn)


# -- 12. Deep Learning for NLP with PyTorch (beginner_source/nlp): the bag-of-words classifier
#        (deep_learning_tutorial.py), the N-gram language model with autograd.Variable and a
#        total loss summed into torch.Tensor([0]) (word_embeddings_tutorial.py), CBOW, and the
#        LSTM part-of-speech tagger stepped word by word then over the sentence
#        (sequence_models_tutorial.py) -----------------------------------------------------------

def nlp_tutorials(side: Side5) -> dict:
    torch = side.lib
    nn, F, optim = torch.nn, torch.nn.functional, torch.optim
    autograd = torch.autograd
    out = {}

    # deep_learning_tutorial.py
    lin = side.weights(nn.Linear(5, 3))
    data = side.draw(torch.randn, 2, 5)
    out["lin"] = lin(data)
    data = side.draw(torch.randn, 5)
    out["softmax"] = [F.softmax(data, dim=0), F.softmax(data, dim=0).sum(),
                      F.log_softmax(data, dim=0)]
    data = [("me gusta comer en la cafeteria".split(), "SPANISH"),
            ("Give it to me".split(), "ENGLISH"),
            ("No creo que sea una buena idea".split(), "SPANISH"),
            ("No it is not a good idea to get lost at sea".split(), "ENGLISH")]
    test_data = [("Yo creo que si".split(), "SPANISH"),
                 ("it is lost on me".split(), "ENGLISH")]
    word_to_ix = {}
    for sent, _ in data + test_data:
        for word in sent:
            if word not in word_to_ix:
                word_to_ix[word] = len(word_to_ix)
    VOCAB_SIZE = len(word_to_ix)
    NUM_LABELS = 2

    class BoWClassifier(nn.Module):
        def __init__(self, num_labels, vocab_size):
            super(BoWClassifier, self).__init__()
            self.linear = nn.Linear(vocab_size, num_labels)

        def forward(self, bow_vec):
            return F.log_softmax(self.linear(bow_vec), dim=1)

    def make_bow_vector(sentence, word_to_ix):
        vec = torch.zeros(len(word_to_ix))
        for word in sentence:
            vec[word_to_ix[word]] += 1
        return vec.view(1, -1)

    def make_target(label, label_to_ix):
        return torch.LongTensor([label_to_ix[label]])

    model = side.weights(BoWClassifier(NUM_LABELS, VOCAB_SIZE))
    label_to_ix = {"SPANISH": 0, "ENGLISH": 1}
    loss_function = nn.NLLLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    for _epoch in range(20):
        for instance, label in data:
            model.zero_grad()
            bow_vec = make_bow_vector(instance, word_to_ix)
            target = make_target(label, label_to_ix)
            log_probs = model(bow_vec)
            loss = loss_function(log_probs, target)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        out["bow_test"] = [model(make_bow_vector(instance, word_to_ix))
                           for instance, label in test_data]
    out["creo"] = next(model.parameters())[:, word_to_ix["creo"]]

    # word_embeddings_tutorial.py: the N-gram language model
    word_to_ix = {"hello": 0, "world": 1}
    embeds = side.weights(nn.Embedding(2, 5))
    lookup_tensor = torch.LongTensor([word_to_ix["hello"]])
    out["hello"] = embeds(autograd.Variable(lookup_tensor))
    CONTEXT_SIZE = 2
    EMBEDDING_DIM = 10
    test_sentence = """When forty winters shall besiege thy brow,
And dig deep trenches in thy beauty's field,
Thy youth's proud livery so gazed on now,
Will be a totter'd weed of small worth held:""".split()
    trigrams = [([test_sentence[i], test_sentence[i + 1]], test_sentence[i + 2])
                for i in range(len(test_sentence) - 2)]
    vocab = sorted(set(test_sentence))  # a set's order is per process; sorted, one for both
    word_to_ix = {word: i for i, word in enumerate(vocab)}

    class NGramLanguageModeler(nn.Module):
        def __init__(self, vocab_size, embedding_dim, context_size):
            super(NGramLanguageModeler, self).__init__()
            self.embeddings = nn.Embedding(vocab_size, embedding_dim)
            self.linear1 = nn.Linear(context_size * embedding_dim, 128)
            self.linear2 = nn.Linear(128, vocab_size)

        def forward(self, inputs):
            embeds = self.embeddings(inputs).view((1, -1))
            out = F.relu(self.linear1(embeds))
            out = self.linear2(out)
            log_probs = F.log_softmax(out, dim=1)
            return log_probs

    losses = []
    loss_function = nn.NLLLoss()
    model = side.weights(NGramLanguageModeler(len(vocab), EMBEDDING_DIM, CONTEXT_SIZE))
    optimizer = optim.SGD(model.parameters(), lr=0.001)
    for _epoch in range(3):
        total_loss = torch.Tensor([0])
        for context, target in trigrams:
            context_idxs = [word_to_ix[w] for w in context]
            context_var = autograd.Variable(torch.LongTensor(context_idxs))
            model.zero_grad()
            log_probs = model(context_var)
            loss = loss_function(log_probs, autograd.Variable(
                torch.LongTensor([word_to_ix[target]])))
            loss.backward()
            optimizer.step()
            total_loss += loss.data
        losses.append(total_loss)
    out["ngram_losses"] = losses

    # the CBOW exercise, as its solutions fill it in
    raw_text = """We are about to study the idea of a computational process.
Computational processes are abstract beings that inhabit computers.""".split()
    vocab = sorted(set(raw_text))
    vocab_size = len(vocab)
    word_to_ix = {word: i for i, word in enumerate(vocab)}
    data = []
    for i in range(2, len(raw_text) - 2):
        context = [raw_text[i - 2], raw_text[i - 1], raw_text[i + 1], raw_text[i + 2]]
        target = raw_text[i]
        data.append((context, target))

    class CBOW(nn.Module):
        def __init__(self, vocab_size, embedding_dim):
            super().__init__()
            self.embeddings = nn.Embedding(vocab_size, embedding_dim)
            self.linear = nn.Linear(embedding_dim, vocab_size)

        def forward(self, inputs):
            embeds = self.embeddings(inputs).sum(dim=0).view(1, -1)
            return F.log_softmax(self.linear(embeds), dim=1)

    def make_context_vector(context, word_to_ix):
        idxs = [word_to_ix[w] for w in context]
        tensor = torch.LongTensor(idxs)
        return autograd.Variable(tensor)

    model = side.weights(CBOW(vocab_size, EMBEDDING_DIM))
    optimizer = optim.SGD(model.parameters(), lr=0.05)
    cbow_losses = []
    for _epoch in range(3):
        for context, target in data:
            model.zero_grad()
            loss = loss_function(model(make_context_vector(context, word_to_ix)),
                                 torch.tensor([word_to_ix[target]], dtype=torch.long))
            loss.backward()
            optimizer.step()
            cbow_losses.append(loss.item())
    out["cbow_losses"] = cbow_losses

    # sequence_models_tutorial.py
    lstm = side.weights(nn.LSTM(3, 3))
    inputs = [side.draw(torch.randn, 1, 3) for _ in range(5)]
    hidden = (side.draw(torch.randn, 1, 1, 3), side.draw(torch.randn, 1, 1, 3))
    for i in inputs:
        out_, hidden = lstm(i.view(1, 1, -1), hidden)
    out["stepped"] = [out_, hidden]
    inputs = torch.cat(inputs).view(len(inputs), 1, -1)
    hidden = (side.draw(torch.randn, 1, 1, 3), side.draw(torch.randn, 1, 1, 3))
    out_, hidden = lstm(inputs, hidden)
    out["whole"] = [out_, hidden]

    def prepare_sequence(seq, to_ix):
        idxs = [to_ix[w] for w in seq]
        return torch.tensor(idxs, dtype=torch.long)

    training_data = [
        ("The dog ate the apple".split(), ["DET", "NN", "V", "DET", "NN"]),
        ("Everybody read that book".split(), ["NN", "V", "DET", "NN"])
    ]
    word_to_ix = {}
    for sent, _tags in training_data:
        for word in sent:
            if word not in word_to_ix:
                word_to_ix[word] = len(word_to_ix)
    tag_to_ix = {"DET": 0, "NN": 1, "V": 2}
    EMBEDDING_DIM = 6
    HIDDEN_DIM = 6

    class LSTMTagger(nn.Module):
        def __init__(self, embedding_dim, hidden_dim, vocab_size, tagset_size):
            super(LSTMTagger, self).__init__()
            self.hidden_dim = hidden_dim
            self.word_embeddings = nn.Embedding(vocab_size, embedding_dim)
            self.lstm = nn.LSTM(embedding_dim, hidden_dim)
            self.hidden2tag = nn.Linear(hidden_dim, tagset_size)

        def forward(self, sentence):
            embeds = self.word_embeddings(sentence)
            lstm_out, _ = self.lstm(embeds.view(len(sentence), 1, -1))
            tag_space = self.hidden2tag(lstm_out.view(len(sentence), -1))
            tag_scores = F.log_softmax(tag_space, dim=1)
            return tag_scores

    model = side.weights(LSTMTagger(EMBEDDING_DIM, HIDDEN_DIM, len(word_to_ix), len(tag_to_ix)))
    loss_function = nn.NLLLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    with torch.no_grad():
        inputs = prepare_sequence(training_data[0][0], word_to_ix)
        out["tags_before"] = model(inputs)
    for _epoch in range(15):
        for sentence, tags in training_data:
            model.zero_grad()
            sentence_in = prepare_sequence(sentence, word_to_ix)
            targets = prepare_sequence(tags, tag_to_ix)
            tag_scores = model(sentence_in)
            loss = loss_function(tag_scores, targets)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        inputs = prepare_sequence(training_data[0][0], word_to_ix)
        out["tags_after"] = model(inputs)
    return out


def test_nlp_tutorials():
    run_both(nlp_tutorials)


# -- 13. pytorch/examples mnist_forward_forward (Hinton's Forward-Forward): labels overlaid on
#        the image by range indexing, Layer subclassing nn.Linear with its own Adam and a
#        train(x_pos, x_neg) overriding Module.train, goodness by Python sum ---------------------

def forward_forward(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    Adam = torch.optim.Adam
    device = torch.device("cpu")

    class args:  # noqa: N801
        epochs, lr, threshold, log_interval = 6, 0.03, 2, 2

    logged = []

    def get_y_neg(y):
        y_neg = y.clone()
        for idx, y_samp in enumerate(y):
            allowed_indices = list(range(10))
            allowed_indices.remove(y_samp.item())
            y_neg[idx] = torch.tensor(allowed_indices)[
                side.draw(torch.randint, len(allowed_indices), size=(1,))
            ].item()
        return y_neg.to(device)

    def overlay_y_on_x(x, y, classes=10):
        x_ = x.clone()
        x_[:, :classes] *= 0.0
        x_[range(x.shape[0]), y] = x.max()
        return x_

    class Net(torch.nn.Module):
        def __init__(self, dims):
            super().__init__()
            self.layers = []
            for d in range(len(dims) - 1):
                self.layers = self.layers + [side.weights(Layer(dims[d], dims[d + 1]).to(device))]

        def predict(self, x):
            goodness_per_label = []
            for label in range(10):
                h = overlay_y_on_x(x, label)
                goodness = []
                for layer in self.layers:
                    h = layer(h)
                    goodness = goodness + [h.pow(2).mean(1)]
                goodness_per_label += [sum(goodness).unsqueeze(1)]
            goodness_per_label = torch.cat(goodness_per_label, 1)
            return goodness_per_label.argmax(1)

        def train(self, x_pos, x_neg):
            h_pos, h_neg = x_pos, x_neg
            for _i, layer in enumerate(self.layers):
                h_pos, h_neg = layer.train(h_pos, h_neg)

    class Layer(nn.Linear):
        def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
            super().__init__(in_features, out_features, bias, device, dtype)
            self.relu = torch.nn.ReLU()
            self.opt = Adam(self.parameters(), lr=args.lr)
            self.threshold = args.threshold
            self.num_epochs = args.epochs

        def forward(self, x):
            x_direction = x / (x.norm(2, 1, keepdim=True) + 1e-4)
            return self.relu(torch.mm(x_direction, self.weight.T) + self.bias.unsqueeze(0))

        def train(self, x_pos, x_neg):
            for i in range(self.num_epochs):
                g_pos = self.forward(x_pos).pow(2).mean(1)
                g_neg = self.forward(x_neg).pow(2).mean(1)
                loss = torch.log1p(
                    torch.exp(
                        torch.cat([-g_pos + self.threshold, g_neg - self.threshold])
                    )
                ).mean()
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
                if i % args.log_interval == 0:
                    logged.append(loss.item())
            return self.forward(x_pos).detach(), self.forward(x_neg).detach()

    rng = np.random.default_rng(14)
    images = ((rng.random((48, 784), dtype=np.float32) - 0.1307) / 0.3081)
    labels = rng.integers(0, 10, 48)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
    train_loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(32)),
                                               batch_size=32)
    test_loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(32, 48)),
                                              batch_size=16)
    net = Net([784, 40, 40])
    x, y = next(iter(train_loader))
    x, y = x.to(device), y.to(device)
    x_pos = overlay_y_on_x(x, y)
    y_neg = get_y_neg(y)
    x_neg = overlay_y_on_x(x, y_neg)
    net.train(x_pos, x_neg)
    train_error = 1.0 - net.predict(x).eq(y).float().mean().item()
    x_te, y_te = next(iter(test_loader))
    test_pred = net.predict(x_te)
    return {"logged": logged, "train_error": train_error, "test_pred": test_pred,
            "y_neg": y_neg, "x_pos": x_pos, "layers": [layer.state_dict() for layer in net.layers]}


def test_mnist_forward_forward():
    run_both(forward_forward)


# -- 14. Deep Learning with PyTorch: a 60 Minute Blitz (beginner_source/blitz): autograd (the
#        old Variable text and the new one: external gradients, freezing a model but its new
#        head), neural_networks_tutorial.py (LeNet, out.backward(randn), grad_fn's
#        next_functions, SGD by f.data.sub_) and cifar10_tutorial.py (the training loop,
#        torch.max(outputs, 1), per-class accuracy), with transforms_tutorial.py's one-hot
#        target Lambda (zeros(10).scatter_(0, tensor(y), value=1)) ------------------------------

def blitz(side: Side5) -> dict:
    torch = side.lib
    nn, F, optim = torch.nn, torch.nn.functional, torch.optim
    Variable = torch.autograd.Variable
    out = {}

    # autograd_tutorial.py, the Variable text
    x = Variable(torch.ones(2, 2), requires_grad=True)
    y = x + 2
    assert y.grad_fn is not None
    z = y * y * 3
    o = z.mean()
    o.backward()
    out["x_grad"] = x.grad
    x = Variable(side.draw(torch.randn, 3), requires_grad=True)
    y = x * 2
    while y.data.norm() < 1000:
        y = y * 2
    gradients = torch.FloatTensor([0.1, 1.0, 0.0001])
    y.backward(gradients)
    out["doubled"] = [y, x.grad]
    # the new text
    a = torch.tensor([2., 3.], requires_grad=True)
    b = torch.tensor([6., 4.], requires_grad=True)
    Q = 3 * a ** 3 - b ** 2
    external_grad = torch.tensor([1., 1.])
    Q.backward(gradient=external_grad)
    assert (9 * a ** 2 == a.grad).all() and (-2 * b == b.grad).all()
    x, y = side.draw(torch.rand, 5, 5), side.draw(torch.rand, 5, 5)
    z = side.draw(torch.rand, (5, 5)).requires_grad_()
    assert not (x + y).requires_grad and (x + z).requires_grad
    class ResNet(nn.Module):  # resnet18 in small: a body and its fc head
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(8, 12), nn.ReLU())
            self.fc = nn.Linear(12, 1000)

        def forward(self, x):
            return self.fc(self.body(x))

    model = side.weights(ResNet())
    for param in model.parameters():
        param.requires_grad = False
    model.fc = side.weights(nn.Linear(12, 10))
    optimizer = optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    loss = model(side.draw(torch.rand, 4, 8)).sum()
    loss.backward()
    optimizer.step()
    assert model.body[0].weight.grad is None
    out["head"] = model.state_dict()

    # neural_networks_tutorial.py
    class Net(nn.Module):
        def __init__(self):
            super(Net, self).__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, input):
            c1 = F.relu(self.conv1(input))
            s2 = F.max_pool2d(c1, (2, 2))
            c3 = F.relu(self.conv2(s2))
            s4 = F.max_pool2d(c3, 2)
            s4 = torch.flatten(s4, 1)
            f5 = F.relu(self.fc1(s4))
            f6 = F.relu(self.fc2(f5))
            output = self.fc3(f6)
            return output

    net = side.weights(Net())
    params = list(net.parameters())
    assert len(params) == 10 and tuple(params[0].size()) == (6, 1, 5, 5)
    input = side.draw(torch.randn, 1, 1, 32, 32)
    output = net(input)
    net.zero_grad()
    output.backward(side.draw(torch.randn, 1, 10))
    out["conv1_grad"] = net.conv1.weight.grad
    output = net(input)
    target = side.draw(torch.randn, 10)
    target = target.view(1, -1)
    criterion = nn.MSELoss()
    loss = criterion(output, target)
    node = loss.grad_fn.next_functions[0][0]  # the Linear's
    assert node is not None and node.next_functions[0][0] is not None  # and the ReLU's
    net.zero_grad()
    assert net.conv1.bias.grad is None
    loss.backward()
    out["bias_grad"] = net.conv1.bias.grad
    learning_rate = 0.01
    for f in net.parameters():
        f.data.sub_(f.grad.data * learning_rate)
    optimizer = optim.SGD(net.parameters(), lr=0.01)
    optimizer.zero_grad()
    output = net(input)
    loss = criterion(output, target)
    loss.backward()
    optimizer.step()
    out["net"] = net.state_dict()

    # cifar10_tutorial.py
    classes = ('plane', 'car', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')

    class CifarNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = torch.flatten(x, 1)  # flatten all dimensions except batch
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            x = self.fc3(x)
            return x

    def one_hot(y):  # transforms_tutorial.py's target_transform
        return torch.zeros(10, dtype=torch.float).scatter_(0, torch.tensor(y), value=1)

    rng = np.random.default_rng(15)
    images = ((rng.random((24, 3, 32, 32), dtype=np.float32) - 0.5) / 0.5)
    labels = rng.integers(0, 10, 24)
    trainset = [(torch.from_numpy(im), int(y)) for im, y in zip(images[:16], labels[:16])]
    testset = [(torch.from_numpy(im), int(y)) for im, y in zip(images[16:], labels[16:])]
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=4, shuffle=False)
    testloader = torch.utils.data.DataLoader(testset, batch_size=4, shuffle=False)
    out["one_hot"] = torch.stack([one_hot(int(y)) for y in labels[:4]])
    net = side.weights(CifarNet())
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    running = []
    for _epoch in range(2):  # loop over the dataset multiple times
        running_loss = 0.0
        for i, data in enumerate(trainloader, 0):
            inputs, labels_ = data
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels_)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            if i % 2 == 1:
                running.append(running_loss / 2)
                running_loss = 0.0
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    net = CifarNet()
    net.load_state_dict(torch.load(buffer, weights_only=True))
    dataiter = iter(testloader)
    images_, labels_ = next(dataiter)
    outputs = net(images_)
    _, predicted = torch.max(outputs, 1)
    assert all(classes[predicted[j]] in classes for j in range(4))
    correct = 0
    total = 0
    with torch.no_grad():
        for data in testloader:
            images_, labels_ = data
            outputs = net(images_)
            _, predicted = torch.max(outputs.data, 1)
            total += labels_.size(0)
            correct += (predicted == labels_).sum().item()
    correct_pred = {classname: 0 for classname in classes}
    total_pred = {classname: 0 for classname in classes}
    with torch.no_grad():
        for data in testloader:
            images_, labels_ = data
            outputs = net(images_)
            _, predictions = torch.max(outputs, 1)
            for label, prediction in zip(labels_, predictions):
                if label == prediction:
                    correct_pred[classes[label]] += 1
                total_pred[classes[label]] += 1
    accuracy = {c: 100 * float(correct_pred[c]) / total_pred[c] for c in classes
                if total_pred[c]}
    out.update(running=running, correct=[correct, total], per_class=accuracy,
               cifar=net.state_dict())
    return out


def test_sixty_minute_blitz():
    run_both(blitz)


# -- 15. pytorch/examples siamese_network: a ResNet body whose conv1 is replaced and whose fc
#        is cut off by Sequential(*children()[:-1]), apply(init_weights) with bias.data.fill_,
#        the APP_MATCHER Dataset drawing pairs with Python's random over np.where groups of a
#        uint8 image tensor, BCELoss on squeezed sigmoids, torch.where(outputs > 0.5, 1, 0),
#        Adadelta with StepLR ---------------------------------------------------------------------

def siamese_network(side: Side5) -> dict:
    torch = side.lib
    nn, optim = torch.nn, torch.optim
    StepLR = torch.optim.lr_scheduler.StepLR
    Dataset = torch.utils.data.Dataset
    device = torch.device("cpu")

    class BasicBlock(nn.Module):  # torchvision's, for resnet18 in small
        def __init__(self, planes):
            super().__init__()
            self.conv1 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + x)

    class ResNet(nn.Module):
        def __init__(self, width=8):
            super().__init__()
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = nn.Sequential(BasicBlock(width))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(width, 1000)

    class SiameseNetwork(nn.Module):
        def __init__(self):
            super(SiameseNetwork, self).__init__()
            self.resnet = ResNet()  # torchvision.models.resnet18(weights=None)
            self.resnet.conv1 = nn.Conv2d(1, 8, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3),
                                          bias=False)
            self.fc_in_features = self.resnet.fc.in_features
            self.resnet = torch.nn.Sequential(*(list(self.resnet.children())[:-1]))
            self.fc = nn.Sequential(
                nn.Linear(self.fc_in_features * 2, 256),
                nn.ReLU(inplace=True),
                nn.Linear(256, 1),
            )
            self.sigmoid = nn.Sigmoid()
            self.resnet.apply(self.init_weights)
            self.fc.apply(self.init_weights)

        def init_weights(self, m):
            if isinstance(m, nn.Linear):
                torch.nn.init.xavier_uniform_(m.weight)
                m.bias.data.fill_(0.01)

        def forward_once(self, x):
            output = self.resnet(x)
            output = output.view(output.size()[0], -1)
            return output

        def forward(self, input1, input2):
            output1 = self.forward_once(input1)
            output2 = self.forward_once(input2)
            output = torch.cat((output1, output2), 1)
            output = self.fc(output)
            output = self.sigmoid(output)
            return output

    rng = np.random.default_rng(16)

    class MNIST:  # datasets.MNIST's data (N x 28 x 28 bytes) and targets
        def __init__(self, n):
            self.data = torch.from_numpy(rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
            self.targets = torch.from_numpy(np.repeat(np.arange(10), n // 10))

    class APP_MATCHER(Dataset):
        def __init__(self, n):
            super(APP_MATCHER, self).__init__()
            self.dataset = MNIST(n)
            self.data = self.dataset.data.unsqueeze(1).clone()
            self.group_examples()

        def group_examples(self):
            np_arr = np.array(self.dataset.targets.clone(), dtype=None, copy=None)
            self.grouped_examples = {}
            for i in range(0, 10):
                self.grouped_examples[i] = np.where((np_arr == i))[0]

        def __len__(self):
            return self.data.shape[0]

        def __getitem__(self, index):
            selected_class = random.randint(0, 9)
            random_index_1 = random.randint(0, self.grouped_examples[selected_class].shape[0] - 1)
            index_1 = self.grouped_examples[selected_class][random_index_1]
            image_1 = self.data[index_1].clone().float()
            if index % 2 == 0:
                random_index_2 = random.randint(
                    0, self.grouped_examples[selected_class].shape[0] - 1)
                while random_index_2 == random_index_1:
                    random_index_2 = random.randint(
                        0, self.grouped_examples[selected_class].shape[0] - 1)
                index_2 = self.grouped_examples[selected_class][random_index_2]
                image_2 = self.data[index_2].clone().float()
                target = torch.tensor(1, dtype=torch.float)
            else:
                other_selected_class = random.randint(0, 9)
                while other_selected_class == selected_class:
                    other_selected_class = random.randint(0, 9)
                random_index_2 = random.randint(
                    0, self.grouped_examples[other_selected_class].shape[0] - 1)
                index_2 = self.grouped_examples[other_selected_class][random_index_2]
                image_2 = self.data[index_2].clone().float()
                target = torch.tensor(0, dtype=torch.float)
            return image_1, image_2, target

    logged, tested = [], []

    def train(args, model, device, train_loader, optimizer, epoch):
        model.train()
        criterion = nn.BCELoss()
        for batch_idx, (images_1, images_2, targets) in enumerate(train_loader):
            images_1, images_2, targets = (images_1.to(device), images_2.to(device),
                                           targets.to(device))
            optimizer.zero_grad()
            outputs = model(images_1, images_2).squeeze()
            loss = criterion(outputs, targets)
            loss.backward()
            optimizer.step()
            if batch_idx % args.log_interval == 0:
                logged.append(loss.item())

    def test(model, device, test_loader):
        model.eval()
        test_loss = 0
        correct = 0
        criterion = nn.BCELoss()
        with torch.no_grad():
            for (images_1, images_2, targets) in test_loader:
                images_1, images_2, targets = (images_1.to(device), images_2.to(device),
                                               targets.to(device))
                outputs = model(images_1, images_2).squeeze()
                test_loss += criterion(outputs, targets).sum().item()
                pred = torch.where(outputs > 0.5, 1, 0)
                correct += pred.eq(targets.view_as(pred)).sum().item()
        test_loss /= len(test_loader.dataset)
        tested.append((test_loss, correct))

    class args:  # noqa: N801
        batch_size, test_batch_size, epochs, lr, gamma, log_interval = 8, 10, 2, 1.0, 0.7, 1

    random.seed(16)
    train_dataset, test_dataset = APP_MATCHER(30), APP_MATCHER(20)
    train_loader = torch.utils.data.DataLoader(train_dataset, batch_size=args.batch_size)
    test_loader = torch.utils.data.DataLoader(test_dataset, batch_size=args.test_batch_size)
    model = side.weights(SiameseNetwork().to(device))
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        test(model, device, test_loader)
        scheduler.step()
    return {"logged": logged, "tested": tested, "state": model.state_dict()}


@pytest.mark.sweep_full  # slow (a ~10 s program): -m sweep_full runs it
def test_siamese_network():
    run_both(siamese_network)


# -- 16. The chatbot tutorial (chatbot_tutorial.py): zero-padded batches by zip_longest with a
#        BoolTensor mask, a bidirectional GRU encoder over pack_padded_sequence with its
#        directions summed, Luong attention (dot, general, concat), the masked NLL by gather and
#        masked_select, teacher forcing by random.random(), LongTensor of topk's 0-d tensors,
#        clipping, two Adams, and GreedySearchDecoder's torch.max / torch.cat decoding ----------

def chatbot(side: Side5, attn_model: str) -> dict:
    torch = side.lib
    nn, F, optim = torch.nn, torch.nn.functional, torch.optim
    import itertools

    device = torch.device("cpu")
    PAD_token, SOS_token, EOS_token = 0, 1, 2
    MAX_LENGTH = 6

    class Voc:
        def __init__(self, name):
            self.name = name
            self.word2index = {}
            self.word2count = {}
            self.index2word = {PAD_token: "PAD", SOS_token: "SOS", EOS_token: "EOS"}
            self.num_words = 3

        def addSentence(self, sentence):
            for word in sentence.split(' '):
                self.addWord(word)

        def addWord(self, word):
            if word not in self.word2index:
                self.word2index[word] = self.num_words
                self.word2count[word] = 1
                self.index2word[self.num_words] = word
                self.num_words += 1
            else:
                self.word2count[word] += 1

    words = "hi how are you fine thanks what is your name bot i am ok good bye".split()
    rng = np.random.default_rng(17)
    pairs = [[" ".join(rng.choice(words, rng.integers(1, MAX_LENGTH - 1))),
              " ".join(rng.choice(words, rng.integers(1, MAX_LENGTH - 1)))] for _ in range(12)]
    voc = Voc("synthetic")
    for pair in pairs:
        voc.addSentence(pair[0])
        voc.addSentence(pair[1])

    def indexesFromSentence(voc, sentence):
        return [voc.word2index[word] for word in sentence.split(' ')] + [EOS_token]

    def zeroPadding(l, fillvalue=PAD_token):  # noqa: E741
        return list(itertools.zip_longest(*l, fillvalue=fillvalue))

    def binaryMatrix(l, value=PAD_token):  # noqa: E741
        m = []
        for i, seq in enumerate(l):
            m.append([])
            for token in seq:
                if token == PAD_token:
                    m[i].append(0)
                else:
                    m[i].append(1)
        return m

    def inputVar(l, voc):  # noqa: E741
        indexes_batch = [indexesFromSentence(voc, sentence) for sentence in l]
        lengths = torch.tensor([len(indexes) for indexes in indexes_batch])
        padList = zeroPadding(indexes_batch)
        padVar = torch.LongTensor(padList)
        return padVar, lengths

    def outputVar(l, voc):  # noqa: E741
        indexes_batch = [indexesFromSentence(voc, sentence) for sentence in l]
        max_target_len = max([len(indexes) for indexes in indexes_batch])
        padList = zeroPadding(indexes_batch)
        mask = binaryMatrix(padList)
        mask = torch.BoolTensor(mask)
        padVar = torch.LongTensor(padList)
        return padVar, mask, max_target_len

    def batch2TrainData(voc, pair_batch):
        pair_batch.sort(key=lambda x: len(x[0].split(" ")), reverse=True)
        input_batch, output_batch = [], []
        for pair in pair_batch:
            input_batch.append(pair[0])
            output_batch.append(pair[1])
        inp, lengths = inputVar(input_batch, voc)
        output, mask, max_target_len = outputVar(output_batch, voc)
        return inp, lengths, output, mask, max_target_len

    class EncoderRNN(nn.Module):
        def __init__(self, hidden_size, embedding, n_layers=1, dropout=0):
            super(EncoderRNN, self).__init__()
            self.n_layers = n_layers
            self.hidden_size = hidden_size
            self.embedding = embedding
            self.gru = nn.GRU(hidden_size, hidden_size, n_layers,
                              dropout=(0 if n_layers == 1 else dropout), bidirectional=True)

        def forward(self, input_seq, input_lengths, hidden=None):
            embedded = self.embedding(input_seq)
            packed = nn.utils.rnn.pack_padded_sequence(embedded, input_lengths)
            outputs, hidden = self.gru(packed, hidden)
            outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs)
            outputs = outputs[:, :, :self.hidden_size] + outputs[:, :, self.hidden_size:]
            return outputs, hidden

    class Attn(nn.Module):
        def __init__(self, method, hidden_size):
            super(Attn, self).__init__()
            self.method = method
            if self.method not in ['dot', 'general', 'concat']:
                raise ValueError(self.method, "is not an appropriate attention method.")
            self.hidden_size = hidden_size
            if self.method == 'general':
                self.attn = nn.Linear(self.hidden_size, hidden_size)
            elif self.method == 'concat':
                self.attn = nn.Linear(self.hidden_size * 2, hidden_size)
                self.v = nn.Parameter(torch.FloatTensor(hidden_size))

        def dot_score(self, hidden, encoder_output):
            return torch.sum(hidden * encoder_output, dim=2)

        def general_score(self, hidden, encoder_output):
            energy = self.attn(encoder_output)
            return torch.sum(hidden * energy, dim=2)

        def concat_score(self, hidden, encoder_output):
            energy = self.attn(torch.cat((hidden.expand(encoder_output.size(0), -1, -1),
                                          encoder_output), 2)).tanh()
            return torch.sum(self.v * energy, dim=2)

        def forward(self, hidden, encoder_outputs):
            if self.method == 'general':
                attn_energies = self.general_score(hidden, encoder_outputs)
            elif self.method == 'concat':
                attn_energies = self.concat_score(hidden, encoder_outputs)
            elif self.method == 'dot':
                attn_energies = self.dot_score(hidden, encoder_outputs)
            attn_energies = attn_energies.t()
            return F.softmax(attn_energies, dim=1).unsqueeze(1)

    class LuongAttnDecoderRNN(nn.Module):
        def __init__(self, attn_model, embedding, hidden_size, output_size, n_layers=1,
                     dropout=0.1):
            super(LuongAttnDecoderRNN, self).__init__()
            self.attn_model = attn_model
            self.hidden_size = hidden_size
            self.output_size = output_size
            self.n_layers = n_layers
            self.dropout = dropout
            self.embedding = embedding
            self.embedding_dropout = nn.Dropout(dropout)
            self.gru = nn.GRU(hidden_size, hidden_size, n_layers,
                              dropout=(0 if n_layers == 1 else dropout))
            self.concat = nn.Linear(hidden_size * 2, hidden_size)
            self.out = nn.Linear(hidden_size, output_size)
            self.attn = Attn(attn_model, hidden_size)

        def forward(self, input_step, last_hidden, encoder_outputs):
            embedded = self.embedding(input_step)
            embedded = self.embedding_dropout(embedded)
            rnn_output, hidden = self.gru(embedded, last_hidden)
            attn_weights = self.attn(rnn_output, encoder_outputs)
            context = attn_weights.bmm(encoder_outputs.transpose(0, 1))
            rnn_output = rnn_output.squeeze(0)
            context = context.squeeze(1)
            concat_input = torch.cat((rnn_output, context), 1)
            concat_output = torch.tanh(self.concat(concat_input))
            output = self.out(concat_output)
            output = F.softmax(output, dim=1)
            return output, hidden

    def maskNLLLoss(inp, target, mask):
        nTotal = mask.sum()
        crossEntropy = -torch.log(torch.gather(inp, 1, target.view(-1, 1)).squeeze(1))
        loss = crossEntropy.masked_select(mask).mean()
        loss = loss.to(device)
        return loss, nTotal.item()

    teacher_forcing_ratio = 0.5

    def train(input_variable, lengths, target_variable, mask, max_target_len, encoder, decoder,
              embedding, encoder_optimizer, decoder_optimizer, batch_size, clip,
              max_length=MAX_LENGTH):
        encoder_optimizer.zero_grad()
        decoder_optimizer.zero_grad()
        input_variable = input_variable.to(device)
        lengths = lengths.to(device)
        target_variable = target_variable.to(device)
        mask = mask.to(device)
        loss = 0
        print_losses = []
        n_totals = 0
        encoder_outputs, encoder_hidden = encoder(input_variable, lengths)
        decoder_input = torch.LongTensor([[SOS_token for _ in range(batch_size)]])
        decoder_input = decoder_input.to(device)
        decoder_hidden = encoder_hidden[:decoder.n_layers]
        use_teacher_forcing = True if random.random() < teacher_forcing_ratio else False
        if use_teacher_forcing:
            for t in range(max_target_len):
                decoder_output, decoder_hidden = decoder(
                    decoder_input, decoder_hidden, encoder_outputs
                )
                decoder_input = target_variable[t].view(1, -1)
                mask_loss, nTotal = maskNLLLoss(decoder_output, target_variable[t], mask[t])
                loss += mask_loss
                print_losses.append(mask_loss.item() * nTotal)
                n_totals += nTotal
        else:
            for t in range(max_target_len):
                decoder_output, decoder_hidden = decoder(
                    decoder_input, decoder_hidden, encoder_outputs
                )
                _, topi = decoder_output.topk(1)
                decoder_input = torch.LongTensor([[topi[i][0] for i in range(batch_size)]])
                decoder_input = decoder_input.to(device)
                mask_loss, nTotal = maskNLLLoss(decoder_output, target_variable[t], mask[t])
                loss += mask_loss
                print_losses.append(mask_loss.item() * nTotal)
                n_totals += nTotal
        loss.backward()
        _ = nn.utils.clip_grad_norm_(encoder.parameters(), clip)
        _ = nn.utils.clip_grad_norm_(decoder.parameters(), clip)
        encoder_optimizer.step()
        decoder_optimizer.step()
        return sum(print_losses) / n_totals

    class GreedySearchDecoder(nn.Module):
        def __init__(self, encoder, decoder):
            super(GreedySearchDecoder, self).__init__()
            self.encoder = encoder
            self.decoder = decoder

        def forward(self, input_seq, input_length, max_length):
            encoder_outputs, encoder_hidden = self.encoder(input_seq, input_length)
            decoder_hidden = encoder_hidden[:decoder.n_layers]
            decoder_input = torch.ones(1, 1, device=device, dtype=torch.long) * SOS_token
            all_tokens = torch.zeros([0], device=device, dtype=torch.long)
            all_scores = torch.zeros([0], device=device)
            for _ in range(max_length):
                decoder_output, decoder_hidden = self.decoder(decoder_input, decoder_hidden,
                                                              encoder_outputs)
                decoder_scores, decoder_input = torch.max(decoder_output, dim=1)
                all_tokens = torch.cat((all_tokens, decoder_input), dim=0)
                all_scores = torch.cat((all_scores, decoder_scores), dim=0)
                decoder_input = torch.unsqueeze(decoder_input, 0)
            return all_tokens, all_scores

    def evaluate(encoder, decoder, searcher, voc, sentence, max_length=MAX_LENGTH):
        indexes_batch = [indexesFromSentence(voc, sentence)]
        lengths = torch.tensor([len(indexes) for indexes in indexes_batch])
        input_batch = torch.LongTensor(indexes_batch).transpose(0, 1)
        input_batch = input_batch.to(device)
        lengths = lengths.to(device)
        tokens, scores = searcher(input_batch, lengths, max_length)
        decoded_words = [voc.index2word[token.item()] for token in tokens]
        return decoded_words, scores

    hidden_size, encoder_n_layers, decoder_n_layers, dropout, batch_size = 12, 2, 2, 0.0, 4
    embedding = nn.Embedding(voc.num_words, hidden_size)
    encoder = EncoderRNN(hidden_size, embedding, encoder_n_layers, dropout)
    decoder = LuongAttnDecoderRNN(attn_model, embedding, hidden_size, voc.num_words,
                                  decoder_n_layers, dropout)
    if attn_model == "concat":  # torch.FloatTensor(hidden_size) is uninitialised memory
        torch.nn.init.normal_(decoder.attn.v)
    encoder, decoder = side.weights(encoder.to(device)), side.weights(decoder.to(device))
    assert encoder.embedding is decoder.embedding
    clip, learning_rate, decoder_learning_ratio, n_iteration = 50.0, 0.01, 5.0, 4
    encoder.train()
    decoder.train()
    encoder_optimizer = optim.Adam(encoder.parameters(), lr=learning_rate)
    decoder_optimizer = optim.Adam(decoder.parameters(), lr=learning_rate * decoder_learning_ratio)
    for state in encoder_optimizer.state.values():
        for k, v in state.items():
            if isinstance(v, torch.Tensor):
                state[k] = v.cuda()
    random.seed(18)
    training_batches = [batch2TrainData(voc, [random.choice(pairs) for _ in range(batch_size)])
                        for _ in range(n_iteration)]
    losses = []
    for iteration in range(1, n_iteration + 1):
        training_batch = training_batches[iteration - 1]
        input_variable, lengths, target_variable, mask, max_target_len = training_batch
        losses.append(train(input_variable, lengths, target_variable, mask, max_target_len,
                            encoder, decoder, embedding, encoder_optimizer, decoder_optimizer,
                            batch_size, clip))
    checkpoint = io.BytesIO()
    torch.save({'iteration': n_iteration, 'en': encoder.state_dict(), 'de': decoder.state_dict(),
                'en_opt': encoder_optimizer.state_dict(),
                'de_opt': decoder_optimizer.state_dict(), 'loss': losses[-1],
                'voc_dict': voc.__dict__, 'embedding': embedding.state_dict()}, checkpoint)
    checkpoint.seek(0)
    checkpoint = torch.load(checkpoint)
    assert checkpoint['voc_dict']['num_words'] == voc.num_words
    encoder.eval()
    decoder.eval()
    searcher = GreedySearchDecoder(encoder, decoder)
    words_, scores = evaluate(encoder, decoder, searcher, voc, pairs[0][0])
    decoder_state = dict(decoder.state_dict())
    if attn_model == "general":  # h . b is one shift of every score: softmax gives its bias a
        del decoder_state["attn.attn.bias"]  # gradient of zero up to rounding, which Adam scales
    return {"losses": losses, "encoder": encoder.state_dict(), "decoder": decoder_state,
            "scores": scores, "n_words": len(words_),
            "first_batch": list(training_batches[0][:4])}


@pytest.mark.parametrize("attn_model", ["dot", "general", "concat"])
def test_chatbot(attn_model):
    # concat: Adam divides the tiny gradients of v's near-zero rows by their own size, so their
    # float32 rounding reaches 3e-5 after four steps at lr 0.05
    tolerance = {"rtol": 1e-3, "atol": 1e-4} if attn_model == "concat" else {}
    run_both(lambda side: chatbot(side, attn_model), **tolerance)


# -- 17. Recipes (recipes_source/recipes): what_is_state_dict, saving_and_loading_a_general_
#        checkpoint, warmstarting_model_using_parameters_from_a_different_model (strict=False),
#        zeroing_out_gradients, module_load_state_dict_tips (torch.load(mmap=True), the
#        torch.device('meta') context, load_state_dict(assign=True)), reasoning_about_shapes on
#        the meta device, swap_tensors, changing_default_device (set/get_default_device) -----

def recipes(side: Side5, tmp_path) -> dict:
    torch = side.lib
    nn, F, optim = torch.nn, torch.nn.functional, torch.optim
    out = {}

    class Net(nn.Module):  # what_is_state_dict.py / defining_a_neural_network.py
        def __init__(self):
            super(Net, self).__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = x.view(-1, 16 * 5 * 5)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            x = self.fc3(x)
            return x

    net = side.weights(Net())
    optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    shapes = [(name, tuple(net.state_dict()[name].size())) for name in net.state_dict()]
    assert shapes[0] == ("conv1.weight", (6, 3, 5, 5)) and len(shapes) == 10
    assert list(optimizer.state_dict()) == ["state", "param_groups"]

    # zeroing_out_gradients.py
    criterion = nn.CrossEntropyLoss()
    images = side.draw(torch.randn, 4, 3, 32, 32)
    labels = torch.tensor([1, 0, 3, 9])
    losses = []
    for _epoch in range(2):
        optimizer.zero_grad()
        outputs = net(images)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    out["losses"] = losses

    # saving_and_loading_a_general_checkpoint.py
    EPOCH, PATH, LOSS = 5, str(tmp_path / f"model_{torch.__name__}.pt"), 0.4
    torch.save({
        'epoch': EPOCH,
        'model_state_dict': net.state_dict(),
        'optimizer_state_dict': optimizer.state_dict(),
        'loss': LOSS,
    }, PATH)
    model = Net()
    optimizer = optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    checkpoint = torch.load(PATH, weights_only=True)
    model.load_state_dict(checkpoint['model_state_dict'])
    optimizer.load_state_dict(checkpoint['optimizer_state_dict'])
    epoch = checkpoint['epoch']
    loss = checkpoint['loss']
    assert (epoch, loss) == (5, 0.4)
    model.train()
    optimizer.zero_grad()
    criterion(model(images), labels).backward()
    optimizer.step()  # momentum buffers carried over
    out["resumed"] = model.state_dict()

    # warmstarting_model_using_parameters_from_a_different_model.py
    class NetA(nn.Module):
        def __init__(self):
            super(NetA, self).__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.fc1 = nn.Linear(6, 3)

    class NetB(nn.Module):
        def __init__(self):
            super(NetB, self).__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.fc2 = nn.Linear(6, 3)

    netA, netB = side.weights(NetA()), side.weights(NetB())
    PATH = str(tmp_path / f"net_{torch.__name__}.pth")
    torch.save(netA.state_dict(), PATH)
    result = netB.load_state_dict(torch.load(PATH, weights_only=True), strict=False)
    assert sorted(result.missing_keys) == ["fc2.bias", "fc2.weight"]
    assert sorted(result.unexpected_keys) == ["fc1.bias", "fc1.weight"]
    out["warm"] = netB.conv1.weight

    # module_load_state_dict_tips.py
    class SomeModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linears = nn.ModuleList([nn.Linear(1, 1) for i in range(10)])

        def forward(self, x):
            return self.linears(x)

    m = side.weights(SomeModule())
    PATH = str(tmp_path / f"checkpoint_{torch.__name__}.pth")
    torch.save(m.state_dict(), PATH)
    state_dict = torch.load(PATH, mmap=True)
    with torch.device('meta'):
        meta_m = SomeModule()
    meta_m.load_state_dict(state_dict, assign=True)
    assert meta_m.linears[3].weight.requires_grad
    out["assigned"] = meta_m.state_dict()

    # reasoning_about_shapes.py: shapes on the meta device
    t = torch.rand(2, 3, 10, 10, device="meta")
    conv = torch.nn.Conv2d(3, 5, 2, device="meta")
    assert tuple(conv(t).shape) == (2, 5, 9, 9)

    # swap_tensors.py
    t1 = torch.arange(2)
    t2 = torch.arange(3)
    torch.utils.swap_tensors(t1, t2)
    assert (t1.tolist(), t2.tolist()) == ([0, 1, 2], [0, 1])
    mod = side.weights(torch.nn.Linear(1, 2, bias=False))
    optimizer = torch.optim.SGD(mod.parameters())
    mod.weight = torch.nn.Parameter(2 * mod.weight)
    assert optimizer.param_groups[0]['params'][0] is not mod.weight  # the silent stale reference
    held = optimizer.param_groups[0]['params'][0]
    torch.utils.swap_tensors(held, mod.weight)  # the swap keeps the optimizer's reference live
    assert held.tolist() == (2 * held).div(2).tolist()
    out["swapped"] = held

    # changing_default_device.py, on a machine without an accelerator
    torch.set_default_device("cpu")
    assert str(torch.get_default_device()) == "cpu" and torch.tensor([1.]).device.type == "cpu"
    with torch.device("cpu"):
        assert torch.zeros(2).device.type == "cpu"
    torch.set_default_device(None)
    return out


def test_recipes(tmp_path):
    run_both(lambda side: recipes(side, tmp_path))


# -- 18. torch.func tutorials: model ensembling (ensembling.py: stack_module_state, a deepcopy
#        moved to 'meta', functional_call under vmap with in_dims (0, 0, None)) and
#        per-sample gradients (per_sample_grads.py: a loop of autograd.grad against
#        vmap(grad(compute_loss), in_dims=(None, None, 0, 0))) --------------------------------

def func_tutorials(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    import copy

    class SimpleMLP(nn.Module):
        def __init__(self):
            super(SimpleMLP, self).__init__()
            self.fc1 = nn.Linear(784, 128)
            self.fc2 = nn.Linear(128, 128)
            self.fc3 = nn.Linear(128, 10)

        def forward(self, x):
            x = x.flatten(1)
            x = self.fc1(x)
            x = F.relu(x)
            x = self.fc2(x)
            x = F.relu(x)
            x = self.fc3(x)
            return x

    device = 'cpu'
    num_models = 3
    data = side.draw(torch.randn, 4, 8, 1, 28, 28, device=device)
    models = [side.weights(SimpleMLP().to(device)) for _ in range(num_models)]
    minibatches = data[:num_models]
    predictions_diff_minibatch_loop = [model(minibatch) for model, minibatch
                                       in zip(models, minibatches)]
    minibatch = data[0]
    predictions2 = [model(minibatch) for model in models]
    from_func = torch.func
    params, buffers = from_func.stack_module_state(models)
    base_model = copy.deepcopy(models[0])
    base_model = base_model.to('meta')

    def fmodel(params, buffers, x):
        return from_func.functional_call(base_model, (params, buffers), (x,))

    assert [p.size(0) for p in params.values()] == [num_models] * 6
    predictions1_vmap = torch.vmap(fmodel)(params, buffers, minibatches)
    assert torch.allclose(predictions1_vmap, torch.stack(predictions_diff_minibatch_loop),
                          atol=1e-3, rtol=1e-5)
    predictions2_vmap = torch.vmap(fmodel, in_dims=(0, 0, None))(params, buffers, minibatch)
    assert torch.allclose(predictions2_vmap, torch.stack(predictions2), atol=1e-3, rtol=1e-5)

    class SimpleCNN(nn.Module):
        def __init__(self):
            super(SimpleCNN, self).__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = self.conv1(x)
            x = F.relu(x)
            x = self.conv2(x)
            x = F.relu(x)
            x = F.max_pool2d(x, 2)
            x = torch.flatten(x, 1)
            x = self.fc1(x)
            x = F.relu(x)
            x = self.fc2(x)
            output = F.log_softmax(x, dim=1)
            return output

    def loss_fn(predictions, targets):
        return F.nll_loss(predictions, targets)

    batch_size = 3
    data = side.draw(torch.randn, batch_size, 1, 28, 28, device=device)
    targets = side.draw(torch.randint, 10, (batch_size,), device=device)
    model = side.weights(SimpleCNN().to(device=device))
    predictions = model(data)
    loss = loss_fn(predictions, targets)
    loss.backward()

    def compute_grad(sample, target):
        sample = sample.unsqueeze(0)
        target = target.unsqueeze(0)
        prediction = model(sample)
        loss = loss_fn(prediction, target)
        return torch.autograd.grad(loss, list(model.parameters()))

    def compute_sample_grads(data, targets):
        sample_grads = [compute_grad(data[i], targets[i]) for i in range(batch_size)]
        sample_grads = zip(*sample_grads)
        sample_grads = [torch.stack(shards) for shards in sample_grads]
        return sample_grads

    per_sample_grads = compute_sample_grads(data, targets)
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def compute_loss(params, buffers, sample, target):
        batch = sample.unsqueeze(0)
        targets = target.unsqueeze(0)
        predictions = from_func.functional_call(model, (params, buffers), (batch,))
        loss = loss_fn(predictions, targets)
        return loss

    ft_compute_grad = from_func.grad(compute_loss)
    ft_compute_sample_grad = from_func.vmap(ft_compute_grad, in_dims=(None, None, 0, 0))
    ft_per_sample_grads = ft_compute_sample_grad(params, buffers, data, targets)
    for per_sample_grad, ft_per_sample_grad in zip(per_sample_grads,
                                                   ft_per_sample_grads.values()):
        assert torch.allclose(per_sample_grad, ft_per_sample_grad, atol=3e-3, rtol=1e-5)
    return {"ensemble1": predictions1_vmap, "ensemble2": predictions2_vmap,
            "batch_grads": [p.grad for p in model.parameters()],
            "per_sample": per_sample_grads, "ft_per_sample": ft_per_sample_grads}


def test_func_ensembling_and_per_sample_grads():
    run_both(func_tutorials)


# -- 19. Jacobians, Hessians, hvp, vhp and more (jacobians_hessians.py): rows of
#        autograd.grad against vmap of vjp's function, jacrev / jacfwd with argnums, hessian
#        three ways, batch Jacobians by vmap and by the summed-output trick with movedim, batch
#        Hessians, hvp as jvp of grad -----------------------------------------------------------

def jacobians_hessians(side: Side5) -> dict:
    torch = side.lib
    F = torch.nn.functional
    from functools import partial
    vmap, vjp, jacrev, jacfwd, hessian, jvp, grad = (
        torch.func.vmap, torch.func.vjp, torch.func.jacrev, torch.func.jacfwd,
        torch.func.hessian, torch.func.jvp, torch.func.grad)
    out = {}

    def predict(weight, bias, x):
        return F.linear(x, weight, bias).tanh()

    D = 6
    weight = side.draw(torch.randn, D, D)
    bias = side.draw(torch.randn, D)
    x = side.draw(torch.randn, D)

    def compute_jac(xp):
        jacobian_rows = [torch.autograd.grad(predict(weight, bias, xp), xp, vec)[0]
                         for vec in unit_vectors]
        return torch.stack(jacobian_rows)

    xp = x.clone().requires_grad_()
    unit_vectors = torch.eye(D)
    jacobian = compute_jac(xp)
    _, vjp_fn = vjp(partial(predict, weight, bias), x)
    ft_jacobian, = vmap(vjp_fn)(unit_vectors)
    assert torch.allclose(ft_jacobian, jacobian)
    ft_jacobian = jacrev(predict, argnums=2)(weight, bias, x)
    assert torch.allclose(ft_jacobian, jacobian)
    ft_jac_weight, ft_jac_bias = jacrev(predict, argnums=(0, 1))(weight, bias, x)
    fwd_jacobian = jacfwd(predict, argnums=2)(weight, bias, x)
    assert torch.allclose(fwd_jacobian, jacobian, atol=1e-6)
    out.update(jacobian=jacobian, jac_weight=ft_jac_weight, jac_bias=ft_jac_bias)

    hess_api = hessian(predict, argnums=2)(weight, bias, x)
    hess_fwdfwd = jacfwd(jacfwd(predict, argnums=2), argnums=2)(weight, bias, x)
    hess_revrev = jacrev(jacrev(predict, argnums=2), argnums=2)(weight, bias, x)
    assert torch.allclose(hess_api, hess_fwdfwd, atol=1e-6)
    assert torch.allclose(hess_api, hess_revrev, atol=1e-6)
    out["hessian"] = hess_api

    batch_size, Din, Dout = 5, 4, 3
    weight = side.draw(torch.randn, Dout, Din)
    bias = side.draw(torch.randn, Dout)
    x = side.draw(torch.randn, batch_size, Din)
    compute_batch_jacobian = vmap(jacrev(predict, argnums=2), in_dims=(None, None, 0))
    batch_jacobian0 = compute_batch_jacobian(weight, bias, x)

    def predict_with_output_summed(weight, bias, x):
        return predict(weight, bias, x).sum(0)

    batch_jacobian1 = jacrev(predict_with_output_summed, argnums=2)(weight, bias, x).movedim(1, 0)
    assert torch.allclose(batch_jacobian0, batch_jacobian1)
    compute_batch_hessian = vmap(hessian(predict, argnums=2), in_dims=(None, None, 0))
    batch_hess = compute_batch_hessian(weight, bias, x)
    assert tuple(batch_hess.shape) == (batch_size, Dout, Din, Din)
    out.update(batch_jacobian=batch_jacobian0, batch_hessian=batch_hess)

    def hvp(f, primals, tangents):
        return jvp(lambda x: grad(f)(x), primals, tangents)[1]

    def f(x):
        return x.sin().sum()

    x = side.draw(torch.randn, 16)
    tangent = side.draw(torch.randn, 16)
    out["hvp"] = hvp(f, (x,), (tangent,))
    return out


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # torch's jacfwd's
def test_jacobians_hessians():
    run_both(jacobians_hessians)


# -- 20. Fusing convolution and batch norm with a custom Function
#        (custom_function_conv_bn_tutorial.py): Conv2D's backward by conv2d of transposes and
#        conv_transpose2d (checked against torch.nn.grad), BatchNorm's backward by hand, both
#        gradchecked in float64, the fused Function (backward returning extra Nones) inside a
#        module with F.relu_, a few SGD steps against the unfused BatchNorm2d net ---------------

def fused_conv_bn(side: Side5) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    out = {}

    def convolution_backward(grad_out, X, weight):
        grad_input = F.conv2d(X.transpose(0, 1), grad_out.transpose(0, 1)).transpose(0, 1)
        grad_X = torch.nn.functional.conv_transpose2d(grad_out, weight)
        return grad_X, grad_input

    class Conv2D(torch.autograd.Function):
        @staticmethod
        def forward(ctx, X, weight):
            ctx.save_for_backward(X, weight)
            return F.conv2d(X, weight)

        @staticmethod
        def backward(ctx, grad_out):
            X, weight = ctx.saved_tensors
            return convolution_backward(grad_out, X, weight)

    weight = side.draw(torch.rand, 4, 2, 3, 3, dtype=torch.double).requires_grad_()
    X = side.draw(torch.rand, 2, 2, 5, 5, dtype=torch.double).requires_grad_()
    assert torch.autograd.gradcheck(Conv2D.apply, (X, weight))
    grad_out = side.draw(torch.rand, 2, 4, 3, 3, dtype=torch.double)
    grad_X, grad_w = convolution_backward(grad_out, X.detach(), weight.detach())
    assert torch.allclose(grad_w, torch.nn.grad.conv2d_weight(X.detach(), weight.shape, grad_out))
    assert torch.allclose(grad_X, torch.nn.grad.conv2d_input(X.shape, weight.detach(), grad_out))
    out["conv_backward"] = [grad_X, grad_w]

    def unsqueeze_all(t):
        return t[None, :, None, None]

    def batch_norm_backward(grad_out, X, sum, sqrt_var, N, eps):
        tmp = ((X - unsqueeze_all(sum) / N) * grad_out).sum(dim=(0, 2, 3))
        tmp *= -1
        d_denom = tmp / (sqrt_var + eps)**2
        d_var = d_denom / (2 * sqrt_var)
        d_mean_dx = grad_out / unsqueeze_all(sqrt_var + eps)
        d_mean_dx = unsqueeze_all(-d_mean_dx.sum(dim=(0, 2, 3)) / N)
        grad_input = X * unsqueeze_all(d_var * N)
        grad_input += unsqueeze_all(-d_var * sum)
        grad_input *= 2 / ((N - 1) * N)
        grad_input += d_mean_dx
        grad_input *= unsqueeze_all(sqrt_var + eps)
        grad_input += grad_out
        grad_input /= unsqueeze_all(sqrt_var + eps)
        return grad_input

    class BatchNorm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, X, eps=1e-3):
            sum = X.sum(dim=(0, 2, 3))
            var = X.var(unbiased=True, dim=(0, 2, 3))
            N = X.numel() / X.size(1)
            sqrt_var = torch.sqrt(var)
            ctx.save_for_backward(X)
            ctx.eps = eps
            ctx.sum = sum
            ctx.N = N
            ctx.sqrt_var = sqrt_var
            mean = sum / N
            denom = sqrt_var + eps
            out = X - unsqueeze_all(mean)
            out /= unsqueeze_all(denom)
            return out

        @staticmethod
        def backward(ctx, grad_out):
            X, = ctx.saved_tensors
            return batch_norm_backward(grad_out, X, ctx.sum, ctx.sqrt_var, ctx.N, ctx.eps)

    a = side.draw(torch.rand, 1, 2, 3, 4, dtype=torch.double).requires_grad_()
    assert torch.autograd.gradcheck(BatchNorm.apply, (a,), fast_mode=False)

    class FusedConvBN2DFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, X, conv_weight, eps=1e-3):
            assert X.ndim == 4  # N, C, H, W
            ctx.save_for_backward(X, conv_weight)
            X = F.conv2d(X, conv_weight)
            sum = X.sum(dim=(0, 2, 3))
            var = X.var(unbiased=True, dim=(0, 2, 3))
            N = X.numel() / X.size(1)
            sqrt_var = torch.sqrt(var)
            ctx.eps = eps
            ctx.sum = sum
            ctx.N = N
            ctx.sqrt_var = sqrt_var
            mean = sum / N
            denom = sqrt_var + eps
            out = X - unsqueeze_all(mean)
            out /= unsqueeze_all(denom)
            return out

        @staticmethod
        def backward(ctx, grad_out):
            X, conv_weight, = ctx.saved_tensors
            X_conv_out = F.conv2d(X, conv_weight)
            grad_out = batch_norm_backward(grad_out, X_conv_out, ctx.sum, ctx.sqrt_var,
                                           ctx.N, ctx.eps)
            grad_X, grad_input = convolution_backward(grad_out, X, conv_weight)
            return grad_X, grad_input, None, None, None, None, None

    weight = side.draw(torch.rand, 3, 2, 3, 3, dtype=torch.double).requires_grad_()
    X = side.draw(torch.rand, 2, 2, 4, 4, dtype=torch.double).requires_grad_()
    assert torch.autograd.gradcheck(FusedConvBN2DFunction.apply, (X, weight))

    class FusedConvBN(nn.Module):
        def __init__(self, in_channels, out_channels, kernel_size, exp_avg_factor=0.1,
                     eps=1e-3, device=None, dtype=None):
            super(FusedConvBN, self).__init__()
            factory_kwargs = {'device': device, 'dtype': dtype}
            weight_shape = (out_channels, in_channels, kernel_size, kernel_size)
            self.conv_weight = nn.Parameter(torch.empty(*weight_shape, **factory_kwargs))
            self.eps = eps
            self.reset_parameters()

        def forward(self, X):
            return FusedConvBN2DFunction.apply(X, self.conv_weight, self.eps)

        def reset_parameters(self) -> None:
            nn.init.kaiming_uniform_(self.conv_weight, a=math.sqrt(5))

    class Net(nn.Module):
        def __init__(self, fused=True):
            super(Net, self).__init__()
            self.fused = fused
            if fused:
                self.convbn1 = FusedConvBN(1, 8, 3)
                self.convbn2 = FusedConvBN(8, 16, 3)
            else:
                self.conv1 = nn.Conv2d(1, 8, 3, 1, bias=False)
                self.bn1 = nn.BatchNorm2d(8, affine=False, track_running_stats=False)
                self.conv2 = nn.Conv2d(8, 16, 3, 1, bias=False)
                self.bn2 = nn.BatchNorm2d(16, affine=False, track_running_stats=False)
            self.fc1 = nn.Linear(16 * 6 * 6, 32)
            self.dropout = nn.Dropout(0.0)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            if self.fused:
                x = self.convbn1(x)
            else:
                x = self.conv1(x)
                x = self.bn1(x)
            F.relu_(x)
            if self.fused:
                x = self.convbn2(x)
            else:
                x = self.conv2(x)
                x = self.bn2(x)
            F.relu_(x)
            x = F.max_pool2d(x, 2)
            F.relu_(x)
            x = x.flatten(1)
            x = self.fc1(x)
            x = self.dropout(x)
            F.relu_(x)
            x = self.fc2(x)
            output = F.log_softmax(x, dim=1)
            return output

    data = side.draw(torch.randn, 6, 1, 16, 16)
    target = torch.tensor([0, 3, 1, 9, 2, 5])
    for fused in (True, False):
        model = side.weights(Net(fused))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        losses = []
        for _step in range(3):
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        out[f"fused={fused}"] = {"losses": losses, "state": model.state_dict()}
    return out


@pytest.mark.sweep_full  # slow (a ~10 s program): -m sweep_full runs it
def test_fused_conv_bn_custom_function():
    run_both(fused_conv_bn)


# -- 21. Parametrizations (parametrizations.py): Symmetric, Skew then MatrixExponential and the
#        CayleyMap chained on one weight, P.cached() around a forward, right_inverse on
#        assignment, remove_parametrizations, and a few SGD steps through them --------------------

def parametrizations_tutorial(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    P = torch.nn.utils.parametrize
    out = {}

    class Symmetric(nn.Module):
        def forward(self, X):
            return X.triu() + X.triu(1).transpose(-1, -2)

    layer = side.weights(nn.Linear(3, 3))
    P.register_parametrization(layer, "weight", Symmetric())
    A = layer.weight
    assert torch.allclose(A, A.T)
    out["symmetric"] = A

    class Skew(nn.Module):
        def forward(self, X):
            A = X.triu(1)
            return A - A.transpose(-1, -2)

    class MatrixExponential(nn.Module):
        def forward(self, X):
            return torch.matrix_exp(X)

    layer_orthogonal = side.weights(nn.Linear(3, 3))
    P.register_parametrization(layer_orthogonal, "weight", Skew())
    P.register_parametrization(layer_orthogonal, "weight", MatrixExponential())
    X = layer_orthogonal.weight
    assert torch.dist(X.T @ X, torch.eye(3)) < 1e-5
    out["orthogonal"] = X

    class CayleyMap(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.register_buffer("Id", torch.eye(n))

        def forward(self, X):
            # (I + X)(I - X)^{-1}
            return torch.linalg.solve(self.Id - X, self.Id + X)

    layer = side.weights(nn.Linear(3, 3))
    P.register_parametrization(layer, "weight", Skew())
    P.register_parametrization(layer, "weight", CayleyMap(3))
    X = layer.weight
    assert torch.dist(X.T @ X, torch.eye(3)) < 1e-5
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    inputs = side.draw(torch.randn, 4, 3)
    losses = []
    for _step in range(3):
        optimizer.zero_grad()
        with P.cached():
            loss = (layer(inputs) ** 2).sum() + layer.weight.trace()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    out.update(cayley_losses=losses, cayley=layer.weight,
               names=len(list(layer.state_dict())))

    class Symmetric2(nn.Module):
        def forward(self, X):
            return X.triu() + X.triu(1).transpose(-1, -2)

        def right_inverse(self, A):
            return A.triu()

    layer = side.weights(nn.Linear(3, 3))
    P.register_parametrization(layer, "weight", Symmetric2())
    X = side.draw(torch.rand, 3, 3)
    X = X + X.T
    layer.weight = X
    assert torch.dist(layer.weight, X) < 1e-6
    out["original"] = layer.parametrizations.weight.original
    P.remove_parametrizations(layer, "weight", leave_parametrized=True)
    assert not P.is_parametrized(layer) and isinstance(layer.weight, nn.Parameter)
    out["removed"] = layer.weight
    return out


def test_parametrizations_tutorial():
    run_both(parametrizations_tutorial)


# -- 22. Forward-mode AD (forward_ad_usage.py): dual tensors in a dual_level, make_dual /
#        unpack_dual, a module whose parameters are replaced by duals, functional_call with dual
#        parameters, a custom Function with a jvp staticmethod, and torch.func.jvp -------------

def forward_ad_tutorial(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    fwAD = torch.autograd.forward_ad
    import functools
    out = {}

    primal = side.draw(torch.randn, 10, 10)
    tangent = side.draw(torch.randn, 10, 10)

    def fn(x, y):
        return x ** 2 + y ** 2

    with fwAD.dual_level():
        dual_input = fwAD.make_dual(primal, tangent)
        assert fwAD.unpack_dual(dual_input).tangent is tangent
        plain_tensor = side.draw(torch.randn, 10, 10)
        dual_output = fn(dual_input, plain_tensor)
        jvp = fwAD.unpack_dual(dual_output).tangent
    assert fwAD.unpack_dual(dual_output).tangent is None
    out["jvp"] = jvp

    model = side.weights(nn.Linear(5, 5))
    input = side.draw(torch.randn, 16, 5)
    params = {name: p for name, p in model.named_parameters()}
    tangents = {name: side.draw(torch.rand_like, p) for name, p in params.items()}
    with fwAD.dual_level():
        for name, p in params.items():
            delattr(model, name)
            setattr(model, name, fwAD.make_dual(p, tangents[name]))
        out_ = model(input)
        jvp = fwAD.unpack_dual(out_).tangent
    out["module_jvp"] = jvp

    model = side.weights(nn.Linear(5, 5))
    dual_params = {}
    with fwAD.dual_level():
        for name, p in params.items():
            dual_params[name] = fwAD.make_dual(p, tangents[name])
        out_ = torch.func.functional_call(model, dual_params, input)
        jvp2 = fwAD.unpack_dual(out_).tangent
    assert torch.allclose(jvp, jvp2)

    class Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, foo):
            result = torch.exp(foo)
            ctx.result = result
            return result

        @staticmethod
        def jvp(ctx, gI):
            gO = gI * ctx.result
            del ctx.result
            return gO

    fn_ = Fn.apply
    primal = side.draw(torch.randn, 10, 10, dtype=torch.double).requires_grad_()
    tangent = side.draw(torch.randn, 10, 10)
    with fwAD.dual_level():
        dual_input = fwAD.make_dual(primal, tangent)
        dual_output = fn_(dual_input)
        jvp = fwAD.unpack_dual(dual_output).tangent
    out["function_jvp"] = jvp

    primal0, tangent0, primal1, tangent1 = (side.draw(torch.randn, 10, 10) for _ in range(4))
    primal_out, tangent_out = torch.func.jvp(fn, (primal0, primal1), (tangent0, tangent1))
    y = side.draw(torch.randn, 10, 10)
    new_fn = functools.partial(fn, y=y)
    primal_out2, tangent_out2 = torch.func.jvp(new_fn, (primal0,), (tangent0,))
    out.update(func_jvp=[primal_out, tangent_out, primal_out2, tangent_out2])
    return out


def test_forward_ad_tutorial():
    run_both(forward_ad_tutorial)


# -- 23. pytorch/examples fast_neural_style: TransformerNet (ReflectionPad2d convs, affine
#        InstanceNorm2d, residual blocks, nearest interpolate upsampling), a Vgg16-style loss net
#        returning a namedtuple of frozen features, gram_matrix, normalize_batch's new_tensor and
#        div_, content and style losses, then stylize from a state_dict with the old running
#        statistics keys deleted by regex ---------------------------------------------------------

def fast_neural_style(side: Side5) -> dict:
    torch = side.lib
    import re
    from collections import namedtuple

    class TransformerNet(torch.nn.Module):
        def __init__(self):
            super(TransformerNet, self).__init__()
            self.conv1 = ConvLayer(3, 32, kernel_size=9, stride=1)
            self.in1 = torch.nn.InstanceNorm2d(32, affine=True)
            self.conv2 = ConvLayer(32, 64, kernel_size=3, stride=2)
            self.in2 = torch.nn.InstanceNorm2d(64, affine=True)
            self.conv3 = ConvLayer(64, 128, kernel_size=3, stride=2)
            self.in3 = torch.nn.InstanceNorm2d(128, affine=True)
            self.res1 = ResidualBlock(128)
            self.res2 = ResidualBlock(128)
            self.deconv1 = UpsampleConvLayer(128, 64, kernel_size=3, stride=1, upsample=2)
            self.in4 = torch.nn.InstanceNorm2d(64, affine=True)
            self.deconv2 = UpsampleConvLayer(64, 32, kernel_size=3, stride=1, upsample=2)
            self.in5 = torch.nn.InstanceNorm2d(32, affine=True)
            self.deconv3 = ConvLayer(32, 3, kernel_size=9, stride=1)
            self.relu = torch.nn.ReLU()

        def forward(self, X):
            y = self.relu(self.in1(self.conv1(X)))
            y = self.relu(self.in2(self.conv2(y)))
            y = self.relu(self.in3(self.conv3(y)))
            y = self.res1(y)
            y = self.res2(y)
            y = self.relu(self.in4(self.deconv1(y)))
            y = self.relu(self.in5(self.deconv2(y)))
            y = self.deconv3(y)
            return y

    class ConvLayer(torch.nn.Module):
        def __init__(self, in_channels, out_channels, kernel_size, stride):
            super(ConvLayer, self).__init__()
            reflection_padding = kernel_size // 2
            self.reflection_pad = torch.nn.ReflectionPad2d(reflection_padding)
            self.conv2d = torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride)

        def forward(self, x):
            out = self.reflection_pad(x)
            out = self.conv2d(out)
            return out

    class ResidualBlock(torch.nn.Module):
        def __init__(self, channels):
            super(ResidualBlock, self).__init__()
            self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
            self.in1 = torch.nn.InstanceNorm2d(channels, affine=True)
            self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
            self.in2 = torch.nn.InstanceNorm2d(channels, affine=True)
            self.relu = torch.nn.ReLU()

        def forward(self, x):
            residual = x
            out = self.relu(self.in1(self.conv1(x)))
            out = self.in2(self.conv2(out))
            out = out + residual
            return out

    class UpsampleConvLayer(torch.nn.Module):
        def __init__(self, in_channels, out_channels, kernel_size, stride, upsample=None):
            super(UpsampleConvLayer, self).__init__()
            self.upsample = upsample
            reflection_padding = kernel_size // 2
            self.reflection_pad = torch.nn.ReflectionPad2d(reflection_padding)
            self.conv2d = torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride)

        def forward(self, x):
            x_in = x
            if self.upsample:
                x_in = torch.nn.functional.interpolate(x_in, mode='nearest',
                                                       scale_factor=self.upsample)
            out = self.reflection_pad(x_in)
            out = self.conv2d(out)
            return out

    class Vgg16(torch.nn.Module):  # vgg.py's, its slices made small
        def __init__(self, requires_grad=False):
            super(Vgg16, self).__init__()
            conv = torch.nn.Conv2d
            self.slice1 = torch.nn.Sequential(conv(3, 8, 3, padding=1), torch.nn.ReLU(inplace=True))
            self.slice2 = torch.nn.Sequential(torch.nn.MaxPool2d(2, 2), conv(8, 16, 3, padding=1),
                                              torch.nn.ReLU(inplace=True))
            self.slice3 = torch.nn.Sequential(torch.nn.MaxPool2d(2, 2), conv(16, 16, 3, padding=1),
                                              torch.nn.ReLU(inplace=True))
            self.slice4 = torch.nn.Sequential(conv(16, 16, 3, padding=1),
                                              torch.nn.ReLU(inplace=True))
            if not requires_grad:
                for param in self.parameters():
                    param.requires_grad = False

        def forward(self, X):
            h = self.slice1(X)
            h_relu1_2 = h
            h = self.slice2(h)
            h_relu2_2 = h
            h = self.slice3(h)
            h_relu3_3 = h
            h = self.slice4(h)
            h_relu4_3 = h
            vgg_outputs = namedtuple("VggOutputs", ['relu1_2', 'relu2_2', 'relu3_3', 'relu4_3'])
            out = vgg_outputs(h_relu1_2, h_relu2_2, h_relu3_3, h_relu4_3)
            return out

    def gram_matrix(y):
        (b, ch, h, w) = y.size()
        features = y.view(b, ch, w * h)
        features_t = features.transpose(1, 2)
        gram = features.bmm(features_t) / (ch * h * w)
        return gram

    def normalize_batch(batch):
        mean = batch.new_tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)
        std = batch.new_tensor([0.229, 0.224, 0.225]).view(-1, 1, 1)
        batch = batch.div_(255.0)
        return (batch - mean) / std

    class args:  # noqa: N801
        batch_size, content_weight, style_weight, lr, log_interval = 2, 1e5, 1e10, 1e-3, 1

    rng = np.random.default_rng(23)
    images = rng.integers(0, 256, (4, 3, 16, 16)).astype(np.float32)  # ToTensor, mul(255)
    train_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(images), torch.zeros(4)),
        batch_size=args.batch_size)
    transformer = side.weights(TransformerNet())
    optimizer = torch.optim.Adam(transformer.parameters(), args.lr)
    mse_loss = torch.nn.MSELoss()
    vgg = side.weights(Vgg16(requires_grad=False))
    style = torch.from_numpy(rng.integers(0, 256, (1, 3, 16, 16)).astype(np.float32))
    style = style.repeat(args.batch_size, 1, 1, 1)
    features_style = vgg(normalize_batch(style))
    gram_style = [gram_matrix(y) for y in features_style]
    logged = []
    transformer.train()
    agg_content_loss, agg_style_loss, count = 0., 0., 0
    for batch_id, (x, _) in enumerate(train_loader):
        n_batch = len(x)
        count += n_batch
        optimizer.zero_grad()
        y = transformer(x)
        y = normalize_batch(y)
        x = normalize_batch(x)
        features_y = vgg(y)
        features_x = vgg(x)
        content_loss = args.content_weight * mse_loss(features_y.relu2_2, features_x.relu2_2)
        style_loss = 0.
        for ft_y, gm_s in zip(features_y, gram_style):
            gm_y = gram_matrix(ft_y)
            style_loss += mse_loss(gm_y, gm_s[:n_batch, :, :])
        style_loss *= args.style_weight
        total_loss = content_loss + style_loss
        total_loss.backward()
        optimizer.step()
        agg_content_loss += content_loss.item()
        agg_style_loss += style_loss.item()
        if (batch_id + 1) % args.log_interval == 0:
            logged.append((agg_content_loss / (batch_id + 1), agg_style_loss / (batch_id + 1)))
    transformer.eval().cpu()
    saved = io.BytesIO()
    torch.save(transformer.state_dict(), saved)
    saved.seek(0)

    # stylize
    content_image = torch.from_numpy(images[0]).unsqueeze(0)
    with torch.no_grad():
        style_model = TransformerNet()
        state_dict = torch.load(saved)
        state_dict["in1.running_mean"] = torch.zeros(32)  # an old checkpoint's, which stylize drops
        for k in list(state_dict.keys()):
            if re.search(r'in\d+\.running_(mean|var)$', k):
                del state_dict[k]
        style_model.load_state_dict(state_dict)
        output = style_model(content_image).cpu()
    img = output[0].clone().clamp(0, 255).numpy()
    img = img.transpose(1, 2, 0).astype("uint8")
    # a per-channel constant passes reflection-padded convolutions as a per-channel constant
    # and the next InstanceNorm removes it: every bias but in5's and deconv3's has a gradient
    # of zero up to rounding, which Adam scales to lr-sized steps; those are left out
    state = {k: v for k, v in transformer.state_dict().items()
             if not k.endswith("bias") or k in ("in5.bias", "deconv3.conv2d.bias")}
    return {"logged": logged, "state": state, "output": output, "image": img.astype(np.int64)}


@pytest.mark.sweep_full  # slow (a ~10 s program): -m sweep_full runs it
def test_fast_neural_style():
    # a few weights of conv3 get gradients near rounding noise too: Adam moves them by up to
    # lr = 1e-3 a step either way, over two steps
    run_both(fast_neural_style, rtol=1e-3, atol=2.5e-3)


# -- 24. Introduction to PyTorch, Tensors (introyt/tensors_deeper_tutorial.py): factories and
#        *_like, manual_seed reproducibility, dtypes, broadcasting, common, trigonometric,
#        bitwise, comparison, reduction and linear-algebra functions, in-place and out= forms
#        (a factory's out= too), aliasing by a[0][1] = ..., clone and detach, squeeze and
#        unsqueeze_, reshape, the NumPy bridge ----------------------------------------------------

def tensors_deeper(side: Side5) -> dict:
    torch = side.lib
    out = {}
    x = torch.empty(3, 4)
    assert isinstance(x, torch.Tensor) and tuple(x.shape) == (3, 4)
    out.update(zeros=torch.zeros(2, 3), ones=torch.ones(2, 3))
    torch.manual_seed(1729)
    random1 = torch.rand(2, 3)
    random2 = torch.rand(2, 3)
    torch.manual_seed(1729)
    random3 = torch.rand(2, 3)
    random4 = torch.rand(2, 3)
    assert torch.equal(random1, random3) and torch.equal(random2, random4)
    assert not torch.equal(random1, random2)
    x = torch.empty(2, 2, 3)
    for like in (torch.empty_like(x), torch.zeros_like(x), torch.ones_like(x),
                 torch.rand_like(x)):
        assert tuple(like.shape) == (2, 2, 3)
    out["constants"] = torch.tensor([[3.1415926, 2.71828], [1.61803, 0.0072897]])
    out["integers"] = [torch.tensor((2, 3, 5, 7, 11, 13, 17, 19)),
                       torch.tensor(((2, 4, 6), [3, 6, 9]))]
    a = torch.ones((2, 3), dtype=torch.int16)
    b = side.draw(torch.rand, (2, 3), dtype=torch.float64) * 20.
    c = b.to(torch.int32)
    assert (a.dtype, c.dtype) == (torch.int16, torch.int32)
    out["dtypes"] = [a, b, c]
    ones = torch.zeros(2, 2) + 1
    twos = torch.ones(2, 2) * 2
    threes = (torch.ones(2, 2) * 7 - 1) / 2
    fours = twos ** 2
    sqrt2s = twos ** 0.5
    powers2 = twos ** torch.tensor([[1, 2], [3, 4]])
    out["arithmetic"] = [ones, twos, threes, fours, sqrt2s, powers2, ones + fours,
                         threes * fours]
    rand = side.draw(torch.rand, 2, 4)
    out["doubled"] = rand * (torch.ones(1, 4) * 2)
    a = torch.ones(4, 3, 2)
    out["broadcast"] = [a * side.draw(torch.rand, 3, 2), a * side.draw(torch.rand, 3, 1),
                        a * side.draw(torch.rand, 1, 2)]
    a = side.draw(torch.rand, 2, 4) * 2 - 1
    out["common"] = [torch.abs(a), torch.ceil(a), torch.floor(a), torch.clamp(a, -0.5, 0.5)]
    angles = torch.tensor([0, math.pi / 4, math.pi / 2, 3 * math.pi / 4])
    sines = torch.sin(angles)
    out["trig"] = [sines, torch.asin(sines)]
    out["xor"] = torch.bitwise_xor(torch.tensor([1, 5, 11]), torch.tensor([2, 7, 10]))
    d = torch.tensor([[1., 2.], [3., 4.]])
    e = torch.ones(1, 2)
    out["eq"] = torch.eq(d, e)
    assert torch.max(d).item() == 4.0
    out["reductions"] = [torch.max(d), torch.mean(d), torch.std(d), torch.prod(d),
                         torch.unique(torch.tensor([1, 2, 1, 2, 1, 2]))]
    v1 = torch.tensor([1., 0., 0.])
    v2 = torch.tensor([0., 1., 0.])
    m1 = side.draw(torch.rand, 2, 2)
    m2 = torch.tensor([[3., 0.], [0., 3.]])
    m3 = torch.matmul(m1, m2)
    U, S, V = torch.svd(m3)
    assert torch.allclose(U @ torch.diag(S) @ V.T, m3, atol=1e-5)
    out["linalg"] = [torch.cross(v2, v1, dim=0), m3, S]
    a = torch.tensor([0, math.pi / 4, math.pi / 2, 3 * math.pi / 4])
    assert torch.equal(torch.sin(a), torch.sin(a)) and abs(a[1].item() - math.pi / 4) < 1e-6
    b = torch.tensor([0, math.pi / 4, math.pi / 2, 3 * math.pi / 4])
    returned = torch.sin_(b)
    assert returned is b
    a = torch.ones(2, 2)
    b = side.draw(torch.rand, 2, 2)
    assert a.add_(b) is a and b.mul_(b) is b
    out["in_place"] = [a, b]
    a = side.draw(torch.rand, 2, 2)
    b = side.draw(torch.rand, 2, 2)
    c = torch.zeros(2, 2)
    old_id = id(c)
    d = torch.matmul(a, b, out=c)
    assert c is d and id(c) == old_id
    out["out"] = c.clone()
    torch.rand(2, 2, out=c)  # works for creation too!
    assert id(c) == old_id and tuple(c.shape) == (2, 2)
    a = torch.ones(2, 2)
    b = a
    a[0][1] = 561  # we change a...
    out["aliased"] = b  # ...and b is also altered
    a = torch.ones(2, 2)
    b = a.clone()
    assert b is not a
    a[0][1] = 561
    out["cloned"] = b
    a = side.draw(torch.rand, 2, 2).requires_grad_()
    b = a.clone()
    c = a.detach().clone()
    assert b.requires_grad and b.grad_fn is not None and not c.requires_grad
    if torch.cuda.is_available():
        my_device = torch.device('cuda')
    else:
        my_device = torch.device('cpu')
    assert 'Device: {}'.format(my_device) == "Device: cpu"
    y = side.draw(torch.rand, 2, 2).to(my_device)
    a = side.draw(torch.rand, 3, 226, 226)
    assert tuple(a.unsqueeze(0).shape) == (1, 3, 226, 226)
    a = side.draw(torch.rand, 1, 20)
    assert tuple(a.squeeze(0).shape) == (20,) and tuple(torch.rand(2, 2).squeeze(0).shape) == (2, 2)
    a = torch.ones(4, 3, 2)
    b = side.draw(torch.rand, 3)
    c = b.unsqueeze(1)
    out["unsqueezed"] = a * c
    batch_me = torch.rand(3, 8, 8)
    batch_me.unsqueeze_(0)
    assert tuple(batch_me.shape) == (1, 3, 8, 8)
    output3d = side.draw(torch.rand, 6, 20, 20)
    input1d = output3d.reshape(6 * 20 * 20)
    assert tuple(torch.reshape(output3d, (6 * 20 * 20,)).shape) == (2400,)
    out["reshaped"] = input1d[:10]
    numpy_array = np.ones((2, 3))
    pytorch_tensor = torch.from_numpy(numpy_array)
    numpy_array[1, 1] = 23
    out["bridge"] = pytorch_tensor
    pytorch_rand = side.draw(torch.rand, 2, 3)
    numpy_rand = pytorch_rand.numpy()
    pytorch_rand[1, 1] = 17
    out["bridge_back"] = numpy_rand.copy()
    out["y"] = y
    return out


def test_tensors_deeper():
    run_both(tensors_deeper)


# -- 25. pytorch/examples gat: GraphAttentionLayer (xavier_normal_ in its reset_parameters,
#        scores by broadcast of source and target.mT, masking by torch.where with -9e16,
#        heads averaged or concatenated), train_iter / test over node masks, Adam with L2 -------

def gat_example(side: Side5, concat: bool) -> dict:
    torch = side.lib
    nn, F = torch.nn, torch.nn.functional
    Adam = torch.optim.Adam

    class GraphAttentionLayer(nn.Module):
        def __init__(self, in_features: int, out_features: int, n_heads: int,
                     concat: bool = False, dropout: float = 0.4, leaky_relu_slope: float = 0.2):
            super(GraphAttentionLayer, self).__init__()
            self.n_heads = n_heads
            self.concat = concat
            self.dropout = dropout
            if concat:
                self.out_features = out_features
                assert out_features % n_heads == 0
                self.n_hidden = out_features // n_heads
            else:
                self.n_hidden = out_features
            self.W = nn.Parameter(torch.empty(size=(in_features, self.n_hidden * n_heads)))
            self.a = nn.Parameter(torch.empty(size=(n_heads, 2 * self.n_hidden, 1)))
            self.leakyrelu = nn.LeakyReLU(leaky_relu_slope)
            self.softmax = nn.Softmax(dim=1)
            self.reset_parameters()

        def reset_parameters(self):
            nn.init.xavier_normal_(self.W)
            nn.init.xavier_normal_(self.a)

        def _get_attention_scores(self, h_transformed):
            source_scores = torch.matmul(h_transformed, self.a[:, :self.n_hidden, :])
            target_scores = torch.matmul(h_transformed, self.a[:, self.n_hidden:, :])
            e = source_scores + target_scores.mT
            return self.leakyrelu(e)

        def forward(self, h, adj_mat):
            n_nodes = h.shape[0]
            h_transformed = torch.mm(h, self.W)
            h_transformed = F.dropout(h_transformed, self.dropout, training=self.training)
            h_transformed = h_transformed.view(n_nodes, self.n_heads,
                                               self.n_hidden).permute(1, 0, 2)
            e = self._get_attention_scores(h_transformed)
            connectivity_mask = -9e16 * torch.ones_like(e)
            e = torch.where(adj_mat > 0, e, connectivity_mask)
            attention = F.softmax(e, dim=-1)
            attention = F.dropout(attention, self.dropout, training=self.training)
            h_prime = torch.matmul(attention, h_transformed)
            if self.concat:
                h_prime = h_prime.permute(1, 0, 2).contiguous().view(n_nodes, self.out_features)
            else:
                h_prime = h_prime.mean(dim=0)
            return h_prime

    class GAT(nn.Module):
        def __init__(self, in_features, n_hidden, n_heads, num_classes, concat=False,
                     dropout=0.4, leaky_relu_slope=0.2):
            super(GAT, self).__init__()
            self.gat1 = GraphAttentionLayer(
                in_features=in_features, out_features=n_hidden, n_heads=n_heads,
                concat=concat, dropout=dropout, leaky_relu_slope=leaky_relu_slope
            )
            self.gat2 = GraphAttentionLayer(
                in_features=n_hidden, out_features=num_classes, n_heads=1,
                concat=False, dropout=dropout, leaky_relu_slope=leaky_relu_slope
            )

        def forward(self, input_tensor, adj_mat):
            x = self.gat1(input_tensor, adj_mat)
            x = F.elu(x)
            x = self.gat2(x, adj_mat)
            return F.log_softmax(x, dim=1)

    # load_cora, dense and synthetic: bag-of-words rows scaled to sum 1, self loops added
    rng = np.random.default_rng(25)
    V, n_words, n_classes = 30, 40, 4
    features = torch.FloatTensor((rng.random((V, n_words)) < 0.1).astype(np.int32))
    scale_vector = torch.sum(features, dim=1)
    scale_vector = 1 / scale_vector
    scale_vector[scale_vector == float('inf')] = 0
    features = torch.diag(scale_vector) @ features
    labels = torch.LongTensor(rng.integers(0, n_classes, V))
    adj = np.zeros((V, V), np.int64)
    for a, b in rng.integers(0, V, (60, 2)):
        adj[a, b] = adj[b, a] = 1
    adj_mat = torch.eye(V) + torch.from_numpy(adj)
    logged = []

    def train_iter(epoch, model, optimizer, criterion, input, target, mask_train, mask_val,
                   print_every=2):
        model.train()
        optimizer.zero_grad()
        output = model(*input)
        loss = criterion(output[mask_train], target[mask_train])
        loss.backward()
        optimizer.step()
        loss_train, acc_train = test(model, criterion, input, target, mask_train)
        loss_val, acc_val = test(model, criterion, input, target, mask_val)
        if epoch % print_every == 0:
            logged.append((loss_train, acc_train, loss_val, acc_val))

    def test(model, criterion, input, target, mask):
        model.eval()
        with torch.no_grad():
            output = model(*input)
            output, target = output[mask], target[mask]
            loss = criterion(output, target)
            acc = (output.argmax(dim=1) == target).float().sum() / len(target)
        return loss.item(), acc.item()

    gat_net = side.weights(GAT(in_features=n_words, n_hidden=8, n_heads=2,
                               num_classes=n_classes, concat=concat, dropout=0.0,
                               leaky_relu_slope=0.2))
    optimizer = Adam(gat_net.parameters(), lr=0.005, weight_decay=5e-4)
    criterion = nn.NLLLoss()
    idx = side.draw(torch.randperm, V)
    idx_test, idx_val, idx_train = idx[:8], idx[8:14], idx[14:]
    for epoch in range(1, 7):
        train_iter(epoch, gat_net, optimizer, criterion, (features, adj_mat), labels,
                   idx_train, idx_val)
    loss_test, acc_test = test(gat_net, criterion, (features, adj_mat), labels, idx_test)
    return {"logged": logged, "test": [loss_test, acc_test], "state": gat_net.state_dict()}


@pytest.mark.parametrize("concat", [False, True], ids=["averaged", "concatenated"])
def test_gat_example(concat):
    run_both(lambda side: gat_example(side, concat))
