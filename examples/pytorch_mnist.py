"""pytorch/examples' mnist/main.py run by dlg: the imports name dlg instead of torch, and the data
come from dlg.data instead of torchvision (MNIST's IDX files from --data, or the built-in
digits resized to 28x28). Lines marked `# dlg:` are the other differences: --data, the
--compile option (the training step traced and compiled natively) and the saved file's suffix.

    python examples/pytorch_mnist.py [--epochs 14] [--dry-run] [--compile] [--data DIR]
"""
import argparse
import dlg as torch
import dlg.nn as nn
import dlg.nn.functional as F
import dlg.optim as optim
from dlg.data import load_digits, load_mnist
from dlg.optim.lr_scheduler import StepLR


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
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))
            if args.dry_run:
                break


def train_compiled(args, step, optimizer, train_loader, epoch):  # dlg: train() as native steps
    step.lr = optimizer.param_groups[0]['lr']  # what the scheduler set
    for batch_idx, (data, target) in enumerate(train_loader):
        loss = step(x=data.numpy(), y=target.numpy())['loss']  # forward, backward, Adadelta
        if batch_idx % args.log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss))
            if args.dry_run:
                break


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)

    print('\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n'.format(
        test_loss, correct, len(test_loader.dataset),
        100. * correct / len(test_loader.dataset)))


def mnist_datasets(folder):  # dlg: the data source, in place of torchvision's datasets.MNIST
    """(train, test) TensorDatasets of [N, 1, 28, 28] images normalised as
    transforms.Normalize((0.1307,), (0.3081,)) does, and their labels."""
    def load(split):
        x, y = load_mnist(folder, split) if folder else load_digits(split=split)
        return torch.utils.data.TensorDataset((x - 0.1307) / 0.3081, y)
    return load('train'), load('test')


def main():
    # Training settings
    parser = argparse.ArgumentParser(description='PyTorch MNIST Example')
    parser.add_argument('--batch-size', type=int, default=64, metavar='N',
                        help='input batch size for training (default: 64)')
    parser.add_argument('--test-batch-size', type=int, default=1000, metavar='N',
                        help='input batch size for testing (default: 1000)')
    parser.add_argument('--epochs', type=int, default=14, metavar='N',
                        help='number of epochs to train (default: 14)')
    parser.add_argument('--lr', type=float, default=1.0, metavar='LR',
                        help='learning rate (default: 1.0)')
    parser.add_argument('--gamma', type=float, default=0.7, metavar='M',
                        help='Learning rate step gamma (default: 0.7)')
    parser.add_argument('--no-accel', action='store_true',
                        help='disables accelerator')
    parser.add_argument('--dry-run', action='store_true',
                        help='quickly check a single pass')
    parser.add_argument('--seed', type=int, default=1, metavar='S',
                        help='random seed (default: 1)')
    parser.add_argument('--log-interval', type=int, default=10, metavar='N',
                        help='how many batches to wait before logging training status')
    parser.add_argument('--save-model', action='store_true',
                        help='For Saving the current Model')
    parser.add_argument('--compile', action='store_true',  # dlg
                        help='train with the step traced and compiled natively')
    parser.add_argument('--data', metavar='DIR',  # dlg
                        help="a folder with MNIST's IDX files (default: dlg's built-in digits)")
    args = parser.parse_args()

    use_accel = not args.no_accel and torch.accelerator.is_available()

    torch.manual_seed(args.seed)

    if use_accel:
        device = torch.accelerator.current_accelerator()
    else:
        device = torch.device("cpu")

    train_kwargs = {'batch_size': args.batch_size}
    test_kwargs = {'batch_size': args.test_batch_size}
    if use_accel:
        accel_kwargs = {'num_workers': 1,
                        'persistent_workers': True,
                        'pin_memory': True,
                        'shuffle': True}
        train_kwargs.update(accel_kwargs)
        test_kwargs.update(accel_kwargs)

    dataset1, dataset2 = mnist_datasets(args.data)  # dlg
    train_loader = torch.utils.data.DataLoader(dataset1, **train_kwargs)
    test_loader = torch.utils.data.DataLoader(dataset2, **test_kwargs)

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)

    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    if args.compile:  # dlg: one native call per batch, updating the weights `model` shares
        example = next(iter(train_loader))
        step = torch.trace_train(model, F.nll_loss, optimizer, *example).train_step(compiled=True)
    for epoch in range(1, args.epochs + 1):
        if args.compile:  # dlg
            train_compiled(args, step, optimizer, train_loader, epoch)
        else:
            train(args, model, device, train_loader, optimizer, epoch)
        test(model, device, test_loader)
        scheduler.step()

    if args.save_model:
        torch.save(model.state_dict(), "mnist_cnn.safetensors")  # dlg: torch's is mnist_cnn.pt


if __name__ == '__main__':
    main()
