"""Porting sweep #11: language models, generative blocks and their training loops as their
authors wrote them, only `torch` swapped for the side's library, tiny synthetic data and a few
steps: Karpathy's "Let's build GPT" (ng-video-lecture gpt.py: Head/MultiHeadAttention with a
tril buffer, generate by multinomial, estimate_loss), "Let's reproduce GPT-2" (train_gpt2.py:
SDPA is_causal, NANOGPT_SCALE_INIT, weight tying, configure_optimizers by parameter dim with the
`fused` probe by inspect.signature, DataLoaderLite, warmup-cosine get_lr, gradient accumulation,
clip_grad_norm_, top-k sampling from a seeded Generator; its bfloat16 CPU autocast refused by
name), minGPT (CausalSelfAttention, NewGELU, configure_optimizers by whitelist/blacklist module
types, the trainer's RandomSampler of 1e10 samples, generate with top_k), the Annotated
Transformer (clones, a hand LayerNorm, SublayerConnection, subsequent_mask, LabelSmoothing on
KLDivLoss(reduction="sum"), the rate schedule on LambdaLR, a DummyOptimizer, greedy_decode),
llama2.c's model.py, train.py and export (real-valued rotary tables, repeat_kv, SwiGLU, both
attention paths, generate under a bare @torch.inference_mode, serialize_fp32), Meta's llama
(torch.polar, view_as_complex/view_as_real, a KV cache, sample_top_p), mamba-minimal (the
selective scan by einsum, a depthwise Conv1d, split(split_size=...)), efficient-kan (B-splines,
curve2coeff by torch.linalg.lstsq, update_grid), DiT (adaLN-Zero, unpatchify by
reshape(shape=...) and einsum, EMA, classifier-free guidance), RWKV-4 (torch.jit.ScriptModule
subclasses with script_method, ZeroPad2d token shift, the WKV recurrence, L2Wrap's backward),
the Annotated Diffusion Model's UNet (weight-standardised convolutions, GroupNorm, linear
attention, nearest upsampling, torch.pi in the cosine schedule, ancestral sampling), YOLOv5's
Detect head, CIoU loss and non_max_suppression with NMS by hand, minbpe's BasicTokenizer feeding
a packed GRU classifier with label smoothing, a training loop with torchmetrics-style metrics by
hand and early stopping, what these programs print (modules, optimizers, tensors), and Whisper
(log-mel by torch.stft, Conv1d's _conv_forward overridden, a key/value cache filled by forward
hooks; its sparse alignment-heads buffer refused by name), and T5 (relative position buckets,
T5LayerNorm, extended attention masks by finfo(dtype).min, Adafactor).

Each program is written once over a `torch` argument and run on torch and on dlg from the same
weights, data and random draws (sweep #5's harness: `side.draw` replays torch's draws);
llama2.c's training also through dlg.compile where train.py calls torch.compile (`side.compile`,
under -m sweep_full).

Tolerances: the harness's rtol 1e-4 / atol 1e-5 unless a test says why it needs another."""

from __future__ import annotations

import collections
import copy
import functools
import inspect
import io
import math
import struct
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import pytest

import dlg
from tests.frontend.test_sweep5_programs import COMPILED_FULL, Side5, run_both

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """torch, the oracle, on one thread for this file's tiny programs: a second one spin-waits
    between their small ops, up to several times the CPU time on a busy two-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. "
        "resolved.\n\nFirst Citizen:\nFirst, you know Caius Marcius is chief enemy to the "
        "people.\n")


# -- 1. Let's build GPT (karpathy/ng-video-lecture gpt.py): Head with a registered tril buffer,
#       MultiHeadAttention by torch.cat of heads, FeedFoward, Block, estimate_loss under
#       @torch.no_grad() with model.eval(), get_batch by torch.randint, generate by multinomial --

def ng_gpt(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    F = nn.functional
    out = {}
    # hyperparameters
    batch_size = 4  # how many independent sequences will we process in parallel?
    block_size = 8  # what is the maximum context length for predictions?
    max_iters = 4
    eval_interval = 2
    learning_rate = 1e-3
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    eval_iters = 3
    n_embd = 16
    n_head = 4
    n_layer = 2
    dropout = 0.0

    text = TEXT
    # here are all the unique characters that occur in this text
    chars = sorted(list(set(text)))
    vocab_size = len(chars)
    # create a mapping from characters to integers
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}
    encode = lambda s: [stoi[c] for c in s]  # noqa: E731
    decode = lambda l: ''.join([itos[i] for i in l])  # noqa: E731,E741

    # Train and test splits
    data = torch.tensor(encode(text), dtype=torch.long)
    n = int(0.9 * len(data))  # first 90% will be train, rest val
    train_data = data[:n]
    val_data = data[n:]

    # data loading
    def get_batch(split):
        # generate a small batch of data of inputs x and targets y
        data = train_data if split == 'train' else val_data
        ix = side.draw(torch.randint, len(data) - block_size, (batch_size,))
        x = torch.stack([data[i:i + block_size] for i in ix])
        y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])
        x, y = x.to(device), y.to(device)
        return x, y

    @torch.no_grad()
    def estimate_loss():
        out = {}
        model.eval()
        for split in ['train', 'val']:
            losses = torch.zeros(eval_iters)
            for k in range(eval_iters):
                X, Y = get_batch(split)
                logits, loss = model(X, Y)
                losses[k] = loss.item()
            out[split] = losses.mean()
        model.train()
        return out

    class Head(nn.Module):
        """ one head of self-attention """

        def __init__(self, head_size):
            super().__init__()
            self.key = nn.Linear(n_embd, head_size, bias=False)
            self.query = nn.Linear(n_embd, head_size, bias=False)
            self.value = nn.Linear(n_embd, head_size, bias=False)
            self.register_buffer('tril', torch.tril(torch.ones(block_size, block_size)))

            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            # input of size (batch, time-step, channels)
            # output of size (batch, time-step, head size)
            B, T, C = x.shape
            k = self.key(x)   # (B,T,hs)
            q = self.query(x)  # (B,T,hs)
            # compute attention scores ("affinities")
            # (B, T, hs) @ (B, hs, T) -> (B, T, T)
            wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5
            wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, T, T)
            wei = F.softmax(wei, dim=-1)  # (B, T, T)
            wei = self.dropout(wei)
            # perform the weighted aggregation of the values
            v = self.value(x)  # (B,T,hs)
            out = wei @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)
            return out

    class MultiHeadAttention(nn.Module):
        """ multiple heads of self-attention in parallel """

        def __init__(self, num_heads, head_size):
            super().__init__()
            self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])
            self.proj = nn.Linear(head_size * num_heads, n_embd)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            out = torch.cat([h(x) for h in self.heads], dim=-1)
            out = self.dropout(self.proj(out))
            return out

    class FeedFoward(nn.Module):
        """ a simple linear layer followed by a non-linearity """

        def __init__(self, n_embd):
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(n_embd, 4 * n_embd),
                nn.ReLU(),
                nn.Linear(4 * n_embd, n_embd),
                nn.Dropout(dropout),
            )

        def forward(self, x):
            return self.net(x)

    class Block(nn.Module):
        """ Transformer block: communication followed by computation """

        def __init__(self, n_embd, n_head):
            # n_embd: embedding dimension, n_head: the number of heads we'd like
            super().__init__()
            head_size = n_embd // n_head
            self.sa = MultiHeadAttention(n_head, head_size)
            self.ffwd = FeedFoward(n_embd)
            self.ln1 = nn.LayerNorm(n_embd)
            self.ln2 = nn.LayerNorm(n_embd)

        def forward(self, x):
            x = x + self.sa(self.ln1(x))
            x = x + self.ffwd(self.ln2(x))
            return x

    class GPTLanguageModel(nn.Module):

        def __init__(self):
            super().__init__()
            # each token directly reads off the logits for the next token from a lookup table
            self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
            self.position_embedding_table = nn.Embedding(block_size, n_embd)
            self.blocks = nn.Sequential(*[Block(n_embd, n_head=n_head) for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(n_embd)  # final layer norm
            self.lm_head = nn.Linear(n_embd, vocab_size)

            # better init, not covered in the original GPT video, but important, will cover in
            # followup video
            self.apply(self._init_weights)

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def forward(self, idx, targets=None):
            B, T = idx.shape

            # idx and targets are both (B,T) tensor of integers
            tok_emb = self.token_embedding_table(idx)  # (B,T,C)
            pos_emb = self.position_embedding_table(torch.arange(T, device=device))  # (T,C)
            x = tok_emb + pos_emb  # (B,T,C)
            x = self.blocks(x)  # (B,T,C)
            x = self.ln_f(x)  # (B,T,C)
            logits = self.lm_head(x)  # (B,T,vocab_size)

            if targets is None:
                loss = None
            else:
                B, T, C = logits.shape
                logits = logits.view(B * T, C)
                targets = targets.view(B * T)
                loss = F.cross_entropy(logits, targets)

            return logits, loss

        def generate(self, idx, max_new_tokens):
            # idx is (B, T) array of indices in the current context
            for _ in range(max_new_tokens):
                # crop idx to the last block_size tokens
                idx_cond = idx[:, -block_size:]
                # get the predictions
                logits, loss = self(idx_cond)
                # focus only on the last time step
                logits = logits[:, -1, :]  # becomes (B, C)
                # apply softmax to get probabilities
                probs = F.softmax(logits, dim=-1)  # (B, C)
                # sample from the distribution
                idx_next = side.draw(torch.multinomial, probs, num_samples=1)  # (B, 1)
                # append sampled index to the running sequence
                idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
            return idx

    model = side.weights(GPTLanguageModel())
    m = model.to(device)
    # print the number of parameters in the model
    out["M parameters"] = sum(p.numel() for p in m.parameters()) / 1e6
    assert [n for n, _ in m.named_buffers()][:2] == ['blocks.0.sa.heads.0.tril',
                                                     'blocks.0.sa.heads.1.tril']

    # create a PyTorch optimizer
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)

    log = []
    for iter in range(max_iters):

        # every once in a while evaluate the loss on train and val sets
        if iter % eval_interval == 0 or iter == max_iters - 1:
            losses = estimate_loss()
            log.append(f"step {iter}: train loss {losses['train']:.4f}, "
                       f"val loss {losses['val']:.4f}")

        # sample a batch of data
        xb, yb = get_batch('train')

        # evaluate the loss
        logits, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    out["log"] = [float(s.split()[4].rstrip(',')) for s in log] + [len(log)]

    # generate from the model
    context = torch.zeros((1, 1), dtype=torch.long, device=device)
    sample = m.generate(context, max_new_tokens=12)[0].tolist()
    out["decoded"] = len(decode(sample))
    out["sample"] = sample
    out["weights"] = dict(model.state_dict())
    return out


def test_ng_video_lecture_gpt():
    run_both(ng_gpt)


# -- 2. Let's reproduce GPT-2 (karpathy/build-nanogpt train_gpt2.py): c_attn split, SDPA with
#       is_causal, GELU(approximate='tanh'), NANOGPT_SCALE_INIT, wte tied to lm_head,
#       configure_optimizers (decay by p.dim(), the `fused` probe by inspect.signature),
#       DataLoaderLite, get_lr's warmup and cosine, gradient accumulation with loss.detach(),
#       clip_grad_norm_, param_group['lr'] = lr, top-50 sampling from a seeded Generator ---------

def build_nanogpt(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    F = nn.functional
    out = {}

    class CausalSelfAttention(nn.Module):

        def __init__(self, config):
            super().__init__()
            assert config.n_embd % config.n_head == 0
            # key, query, value projections for all heads, but in a batch
            self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
            # output projection
            self.c_proj = nn.Linear(config.n_embd, config.n_embd)
            self.c_proj.NANOGPT_SCALE_INIT = 1
            # regularization
            self.n_head = config.n_head
            self.n_embd = config.n_embd

        def forward(self, x):
            B, T, C = x.size()  # batch size, sequence length, embedding dimensionality (n_embd)
            # calculate query, key, values for all heads in batch and move head forward to be
            # the batch dim
            # nh is "number of heads", hs is "head size", and C (number of channels) = nh * hs
            # e.g. in GPT-2 (124M), n_head=12, hs=64, so nh*hs=C=768 channels in the Transformer
            qkv = self.c_attn(x)
            q, k, v = qkv.split(self.n_embd, dim=2)
            k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
            q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
            v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # flash attention
            # re-assemble all head outputs side by side
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            # output projection
            y = self.c_proj(y)
            return y

    class MLP(nn.Module):

        def __init__(self, config):
            super().__init__()
            self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
            self.gelu = nn.GELU(approximate='tanh')
            self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
            self.c_proj.NANOGPT_SCALE_INIT = 1

        def forward(self, x):
            x = self.c_fc(x)
            x = self.gelu(x)
            x = self.c_proj(x)
            return x

    class Block(nn.Module):

        def __init__(self, config):
            super().__init__()
            self.ln_1 = nn.LayerNorm(config.n_embd)
            self.attn = CausalSelfAttention(config)
            self.ln_2 = nn.LayerNorm(config.n_embd)
            self.mlp = MLP(config)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            x = x + self.mlp(self.ln_2(x))
            return x

    @dataclass
    class GPTConfig:
        block_size: int = 1024  # max sequence length
        # number of tokens: 50,000 BPE merges + 256 bytes tokens + 1 <|endoftext|> token
        vocab_size: int = 50257
        n_layer: int = 12  # number of layers
        n_head: int = 12  # number of heads
        n_embd: int = 768  # embedding dimension

    class GPT(nn.Module):

        def __init__(self, config):
            super().__init__()
            self.config = config

            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd),
            ))
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

            # weight sharing scheme
            self.transformer.wte.weight = self.lm_head.weight

            # init params
            self.apply(self._init_weights)

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                std = 0.02
                if hasattr(module, 'NANOGPT_SCALE_INIT'):
                    std *= (2 * self.config.n_layer) ** -0.5
                torch.nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def forward(self, idx, targets=None):
            # idx is of shape (B, T)
            B, T = idx.size()
            assert T <= self.config.block_size, \
                f"Cannot forward sequence of length {T}, block size is only " \
                f"{self.config.block_size}"
            # forward the token and posisition embeddings
            pos = torch.arange(0, T, dtype=torch.long, device=idx.device)  # shape (T)
            pos_emb = self.transformer.wpe(pos)  # position embeddings of shape (T, n_embd)
            tok_emb = self.transformer.wte(idx)  # token embeddings of shape (B, T, n_embd)
            x = tok_emb + pos_emb
            # forward the blocks of the transformer
            for block in self.transformer.h:
                x = block(x)
            # forward the final layernorm and the classifier
            x = self.transformer.ln_f(x)
            logits = self.lm_head(x)  # (B, T, vocab_size)
            loss = None
            if targets is not None:
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
            return logits, loss

        def configure_optimizers(self, weight_decay, learning_rate, device_type):
            # start with all of the candidate parameters (that require grad)
            param_dict = {pn: p for pn, p in self.named_parameters()}
            param_dict = {pn: p for pn, p in param_dict.items() if p.requires_grad}
            # create optim groups. Any parameters that is 2D will be weight decayed, otherwise no.
            # i.e. all weight tensors in matmuls + embeddings decay, all biases and layernorms
            # don't.
            decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
            nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
            optim_groups = [
                {'params': decay_params, 'weight_decay': weight_decay},
                {'params': nodecay_params, 'weight_decay': 0.0}
            ]
            num_decay_params = sum(p.numel() for p in decay_params)
            num_nodecay_params = sum(p.numel() for p in nodecay_params)
            out["groups"] = [len(decay_params), num_decay_params, len(nodecay_params),
                             num_nodecay_params]
            # Create AdamW optimizer and use the fused version if it is available
            fused_available = 'fused' in inspect.signature(torch.optim.AdamW).parameters
            use_fused = fused_available and device_type == "cuda"
            out["fused_available"] = fused_available
            optimizer = torch.optim.AdamW(optim_groups, lr=learning_rate, betas=(0.9, 0.95),
                                          eps=1e-8, fused=use_fused)
            return optimizer

    tokens_np = np.random.default_rng(0).integers(0, 64, 600).astype(np.uint16)

    def load_tokens(filename):
        npt = tokens_np  # np.load(filename)
        npt = npt.astype(np.int32)  # added after video
        ptt = torch.tensor(npt, dtype=torch.long)
        return ptt

    class DataLoaderLite:
        def __init__(self, B, T, process_rank, num_processes, split):
            self.B = B
            self.T = T
            self.process_rank = process_rank
            self.num_processes = num_processes
            assert split in {'train', 'val'}
            self.reset()

        def reset(self):
            # state, init at shard zero
            self.current_shard = 0
            self.tokens = load_tokens("edufineweb_train_000000.npy")
            self.current_position = self.B * self.T * self.process_rank

        def next_batch(self):
            B, T = self.B, self.T
            buf = self.tokens[self.current_position: self.current_position + B * T + 1]
            x = (buf[:-1]).view(B, T)  # inputs
            y = (buf[1:]).view(B, T)  # targets
            # advance the position in the tensor
            self.current_position += B * T * self.num_processes
            # if loading the next batch would be out of bounds, advance to next shard
            if self.current_position + (B * T * self.num_processes + 1) > len(self.tokens):
                self.current_shard = 0
                self.tokens = load_tokens("edufineweb_train_000000.npy")
                self.current_position = B * T * self.process_rank
            return x, y

    ddp_rank, ddp_world_size, master_process = 0, 1, True  # noqa: F841
    device = "cpu"
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    torch.manual_seed(1337)

    total_batch_size = 64  # 524288, 2**19, ~0.5M, in number of tokens
    B = 2  # micro batch size
    T = 16  # sequence length
    assert total_batch_size % (B * T * ddp_world_size) == 0, \
        "make sure total_batch_size is divisible by B * T * ddp_world_size"
    grad_accum_steps = total_batch_size // (B * T * ddp_world_size)

    train_loader = DataLoaderLite(B=B, T=T, process_rank=ddp_rank,
                                  num_processes=ddp_world_size, split="train")
    val_loader = DataLoaderLite(B=B, T=T, process_rank=ddp_rank,
                                num_processes=ddp_world_size, split="val")

    torch.set_float32_matmul_precision('high')

    # create model
    model = side.weights(GPT(GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=2,
                                       n_embd=16)))
    model.to(device)
    assert model.transformer.wte.weight is model.lm_head.weight
    out["n_params"] = sum(p.numel() for p in model.parameters())
    raw_model = model  # always contains the "raw" unwrapped model

    max_lr = 6e-4
    min_lr = max_lr * 0.1
    warmup_steps = 2
    max_steps = 5  # 19,073 steps is ~1 epoch, if data is 10B tokens and batch size 0.5M tokens

    def get_lr(it):
        # 1) linear warmup for warmup_iters steps
        if it < warmup_steps:
            return max_lr * (it + 1) / warmup_steps
        # 2) if it > lr_decay_iters, return min learning rate
        if it > max_steps:
            return min_lr
        # 3) in between, use cosine decay down to min learning rate
        decay_ratio = (it - warmup_steps) / (max_steps - warmup_steps)
        assert 0 <= decay_ratio <= 1
        coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))  # coeff starts at 1 and goes to 0
        return min_lr + coeff * (max_lr - min_lr)

    # optimize!
    optimizer = raw_model.configure_optimizers(weight_decay=0.1, learning_rate=6e-4,
                                               device_type=device_type)

    log = []
    for step in range(max_steps):
        last_step = (step == max_steps - 1)

        # once in a while evaluate our validation loss
        if step % 2 == 0 or last_step:
            model.eval()
            val_loader.reset()
            with torch.no_grad():
                val_loss_accum = 0.0
                val_loss_steps = 2
                for _ in range(val_loss_steps):
                    x, y = val_loader.next_batch()
                    x, y = x.to(device), y.to(device)
                    logits, loss = model(x, y)
                    loss = loss / val_loss_steps
                    val_loss_accum += loss.detach()
            log.append(f"validation loss: {val_loss_accum.item():.4f}")

        # once in a while generate from the model (except step 0, which is noise)
        if (step > 0 and step % 2 == 0) or last_step:
            model.eval()
            num_return_sequences = 2
            max_length = 12
            # enc.encode("Hello, I'm a language model,")
            tokens = [15496, 11, 314, 1101, 257, 3303, 2746, 11]
            tokens = torch.tensor([t % 64 for t in tokens], dtype=torch.long)
            tokens = tokens.unsqueeze(0).repeat(num_return_sequences, 1)
            xgen = tokens.to(device)
            sample_rng = torch.Generator(device=device)
            sample_rng.manual_seed(42 + ddp_rank)
            while xgen.size(1) < max_length:
                # forward the model to get the logits
                with torch.no_grad():
                    logits, loss = model(xgen)  # (B, T, vocab_size)
                    # take the logits at the last position
                    logits = logits[:, -1, :]  # (B, vocab_size)
                    # get the probabilities
                    probs = F.softmax(logits, dim=-1)
                    # do top-k sampling of 50 (huggingface pipeline default)
                    # topk_probs here becomes (5, 50), topk_indices is (5, 50)
                    topk_probs, topk_indices = torch.topk(probs, 50, dim=-1)
                    # select a token from the top-k probabilities
                    # note: multinomial does not demand the input to sum to 1
                    ix = side.draw(torch.multinomial, topk_probs, 1, generator=sample_rng)  # (B, 1)
                    # gather the corresponding indices
                    xcol = torch.gather(topk_indices, -1, ix)  # (B, 1)
                    # append to the sequence
                    xgen = torch.cat((xgen, xcol), dim=1)
            # print the generated text
            out[f"gen{step}"] = xgen

        # do one step of the optimization
        model.train()
        optimizer.zero_grad()
        loss_accum = 0.0
        for micro_step in range(grad_accum_steps):  # noqa: B007
            x, y = train_loader.next_batch()
            x, y = x.to(device), y.to(device)
            logits, loss = model(x, y)
            # we have to scale the loss to account for gradient accumulation,
            # because the gradients just add on each successive backward().
            # addition of gradients corresponds to a SUM in the objective, but
            # instead of a SUM we want MEAN. Scale the loss here so it comes out right
            loss = loss / grad_accum_steps
            loss_accum += loss.detach()
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        # determine and set the learning rate for this iteration
        lr = get_lr(step)
        for param_group in optimizer.param_groups:
            param_group['lr'] = lr
        optimizer.step()
        if device_type == "cuda":
            torch.cuda.synchronize()  # wait for the GPU to finish work
        tokens_processed = train_loader.B * train_loader.T * grad_accum_steps * ddp_world_size
        log.append(f"step {step:5d} | loss: {loss_accum.item():.6f} | lr {lr:.4e} | "
                   f"norm: {norm:.4f} | tok: {tokens_processed}")
    out["log"] = [[float(w) for w in s.replace("|", " ").split() if w[0].isdigit()]
                  for s in log]
    out["weights"] = dict(model.state_dict())
    # the video's CPU run, as written: autocast to bfloat16 (torch computes the matmuls in
    # bfloat16 there; dlg, which has no autocast op policy, refuses by name)
    x, y = train_loader.next_batch()
    if side.on_torch:
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            logits, loss = model(x, y)
        assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    else:
        with pytest.raises(dlg.DlgValueError, match=r"autocast\(device_type='cpu'\) to "
                           r"bfloat16.*enabled=False"):
            with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
                logits, loss = model(x, y)
    return out


def test_build_nanogpt_train_gpt2():
    run_both(build_nanogpt)


# -- 3. minGPT (karpathy/minGPT mingpt/model.py, trainer.py, demo.ipynb's SortDataset): NewGELU,
#       the causal mask as a (1, 1, T, T) buffer, the MLP as a ModuleDict called by a lambda,
#       c_proj's scaled init by name, configure_optimizers by whitelist/blacklist module types,
#       a RandomSampler with replacement and num_samples=1e10, generate with top_k by
#       logits[logits < v[:, [-1]]] = -inf, greedy and sampled ---------------------------------

def mingpt(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    F = nn.functional
    out = {}

    class NewGELU(nn.Module):
        """
        Implementation of the GELU activation function currently in Google BERT repo
        (identical to OpenAI GPT).
        Reference: Gaussian Error Linear Units (GELU) paper: https://arxiv.org/abs/1606.08415
        """
        def forward(self, x):
            return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi)
                                               * (x + 0.044715 * torch.pow(x, 3.0))))

    class CausalSelfAttention(nn.Module):

        def __init__(self, config):
            super().__init__()
            assert config.n_embd % config.n_head == 0
            # key, query, value projections for all heads, but in a batch
            self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
            # output projection
            self.c_proj = nn.Linear(config.n_embd, config.n_embd)
            # regularization
            self.attn_dropout = nn.Dropout(config.attn_pdrop)
            self.resid_dropout = nn.Dropout(config.resid_pdrop)
            # causal mask to ensure that attention is only applied to the left in the input sequence
            self.register_buffer("bias", torch.tril(torch.ones(config.block_size,
                                                               config.block_size))
                                 .view(1, 1, config.block_size, config.block_size))
            self.n_head = config.n_head
            self.n_embd = config.n_embd

        def forward(self, x):
            B, T, C = x.size()  # batch size, sequence length, embedding dimensionality (n_embd)

            # calculate query, key, values for all heads in batch and move head forward to be
            # the batch dim
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
            q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
            v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)

            # causal self-attention; Self-attend: (B, nh, T, hs) x (B, nh, hs, T) -> (B, nh, T, T)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float('-inf'))
            att = F.softmax(att, dim=-1)
            att = self.attn_dropout(att)
            y = att @ v  # (B, nh, T, T) x (B, nh, T, hs) -> (B, nh, T, hs)
            # re-assemble all head outputs side by side
            y = y.transpose(1, 2).contiguous().view(B, T, C)

            # output projection
            y = self.resid_dropout(self.c_proj(y))
            return y

    class Block(nn.Module):
        """ an unassuming Transformer block """

        def __init__(self, config):
            super().__init__()
            self.ln_1 = nn.LayerNorm(config.n_embd)
            self.attn = CausalSelfAttention(config)
            self.ln_2 = nn.LayerNorm(config.n_embd)
            self.mlp = nn.ModuleDict(dict(
                c_fc=nn.Linear(config.n_embd, 4 * config.n_embd),
                c_proj=nn.Linear(4 * config.n_embd, config.n_embd),
                act=NewGELU(),
                dropout=nn.Dropout(config.resid_pdrop),
            ))
            m = self.mlp
            self.mlpf = lambda x: m.dropout(m.c_proj(m.act(m.c_fc(x))))  # MLP forward

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            x = x + self.mlpf(self.ln_2(x))
            return x

    class CN:
        """ a lightweight configuration class inspired by yacs """
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    class GPT(nn.Module):
        """ GPT Language Model """

        @staticmethod
        def get_default_config():
            C = CN()
            # either model_type or (n_layer, n_head, n_embd) must be given in the config
            C.model_type = 'gpt'
            C.n_layer = None
            C.n_head = None
            C.n_embd = None
            # these options must be filled in externally
            C.vocab_size = None
            C.block_size = None
            # dropout hyperparameters
            C.embd_pdrop = 0.1
            C.resid_pdrop = 0.1
            C.attn_pdrop = 0.1
            return C

        def __init__(self, config):
            super().__init__()
            assert config.vocab_size is not None
            assert config.block_size is not None
            self.block_size = config.block_size

            type_given = config.model_type is not None
            params_given = all([config.n_layer is not None, config.n_head is not None,
                                config.n_embd is not None])
            assert type_given ^ params_given  # exactly one of these (XOR)
            if type_given:
                # translate from model_type to detailed configuration
                config.__dict__.update({
                    # I made these tiny models up
                    'gpt-mini': dict(n_layer=6, n_head=6, n_embd=192),
                    'gpt-micro': dict(n_layer=4, n_head=4, n_embd=128),
                    'gpt-nano': dict(n_layer=3, n_head=3, n_embd=48),
                }[config.model_type])

            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.embd_pdrop),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd),
            ))
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

            # init all weights, and apply a special scaled init to the residual projections,
            # per GPT-2 paper
            self.apply(self._init_weights)
            for pn, p in self.named_parameters():
                if pn.endswith('c_proj.weight'):
                    torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

            # report number of parameters (note we don't count the decoder parameters in lm_head)
            n_params = sum(p.numel() for p in self.transformer.parameters())
            out["number of parameters: %.2fM" % (n_params / 1e6,)] = n_params

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            elif isinstance(module, nn.LayerNorm):
                torch.nn.init.zeros_(module.bias)
                torch.nn.init.ones_(module.weight)

        def configure_optimizers(self, train_config):
            """
            This long function is unfortunately doing something very simple and is being very
            defensive: We are separating out all parameters of the model into two buckets: those
            that will experience weight decay for regularization and those that won't (biases,
            and layernorm/embedding weights).
            We are then returning the PyTorch optimizer object.
            """

            # separate out all parameters to those that will and won't experience regularizing
            # weight decay
            decay = set()
            no_decay = set()
            whitelist_weight_modules = (torch.nn.Linear, )
            blacklist_weight_modules = (torch.nn.LayerNorm, torch.nn.Embedding)
            for mn, m in self.named_modules():
                for pn, p in m.named_parameters():  # noqa: B007
                    fpn = '%s.%s' % (mn, pn) if mn else pn  # full param name
                    # random note: because named_modules and named_parameters are recursive
                    # we will see the same tensors p many many times. but doing it this way
                    # allows us to know which parent module any tensor p belongs to...
                    if pn.endswith('bias'):
                        # all biases will not be decayed
                        no_decay.add(fpn)
                    elif pn.endswith('weight') and isinstance(m, whitelist_weight_modules):
                        # weights of whitelist modules will be weight decayed
                        decay.add(fpn)
                    elif pn.endswith('weight') and isinstance(m, blacklist_weight_modules):
                        # weights of blacklist modules will NOT be weight decayed
                        no_decay.add(fpn)

            # validate that we considered every parameter
            param_dict = {pn: p for pn, p in self.named_parameters()}
            inter_params = decay & no_decay
            union_params = decay | no_decay
            assert len(inter_params) == 0, \
                "parameters %s made it into both decay/no_decay sets!" % (str(inter_params), )
            assert len(param_dict.keys() - union_params) == 0, \
                "parameters %s were not separated into either decay/no_decay set!" \
                % (str(param_dict.keys() - union_params), )

            # create the pytorch optimizer object
            optim_groups = [
                {"params": [param_dict[pn] for pn in sorted(list(decay))],
                 "weight_decay": train_config.weight_decay},
                {"params": [param_dict[pn] for pn in sorted(list(no_decay))], "weight_decay": 0.0},
            ]
            out["decay"] = [len(decay), len(no_decay)]
            assert "lm_head.weight" in decay and "transformer.wte.weight" in no_decay
            optimizer = torch.optim.AdamW(optim_groups, lr=train_config.learning_rate,
                                          betas=train_config.betas)
            return optimizer

        def forward(self, idx, targets=None):
            device = idx.device
            b, t = idx.size()
            assert t <= self.block_size, \
                f"Cannot forward sequence of length {t}, block size is only {self.block_size}"
            pos = torch.arange(0, t, dtype=torch.long, device=device).unsqueeze(0)  # shape (1, t)

            # forward the GPT model itself
            tok_emb = self.transformer.wte(idx)  # token embeddings of shape (b, t, n_embd)
            pos_emb = self.transformer.wpe(pos)  # position embeddings of shape (1, t, n_embd)
            x = self.transformer.drop(tok_emb + pos_emb)
            for block in self.transformer.h:
                x = block(x)
            x = self.transformer.ln_f(x)
            logits = self.lm_head(x)

            # if we are given some desired targets also calculate the loss
            loss = None
            if targets is not None:
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                       ignore_index=-1)

            return logits, loss

        @torch.no_grad()
        def generate(self, idx, max_new_tokens, temperature=1.0, do_sample=False, top_k=None):
            """
            Take a conditioning sequence of indices idx (LongTensor of shape (b,t)) and complete
            the sequence max_new_tokens times, feeding the predictions back into the model each
            time.
            Most likely you'll want to make sure to be in model.eval() mode of operation for this.
            """
            for _ in range(max_new_tokens):
                # if the sequence context is growing too long we must crop it at block_size
                idx_cond = idx if idx.size(1) <= self.block_size else idx[:, -self.block_size:]
                # forward the model to get the logits for the index in the sequence
                logits, _ = self(idx_cond)
                # pluck the logits at the final step and scale by desired temperature
                logits = logits[:, -1, :] / temperature
                # optionally crop the logits to only the top k options
                if top_k is not None:
                    v, _ = torch.topk(logits, top_k)
                    logits[logits < v[:, [-1]]] = -float('Inf')
                # apply softmax to convert logits to (normalized) probabilities
                probs = F.softmax(logits, dim=-1)
                # either sample from the distribution or take the most likely element
                if do_sample:
                    idx_next = side.draw(torch.multinomial, probs, num_samples=1)
                else:
                    _, idx_next = torch.topk(probs, k=1, dim=-1)
                # append to the sequence and continue
                idx = torch.cat((idx, idx_next), dim=1)

            return idx

    class SortDataset(torch.utils.data.Dataset):
        """
        Dataset for the Sort problem. E.g. for problem length 6:
        Input: 0 0 2 1 0 1 -> Output: 0 0 0 1 1 2
        Which will feed into the transformer concatenated as:
        input:  0 0 2 1 0 1 0 0 0 1 1
        output: I I I I I 0 0 0 1 1 2
        where I is "ignore", as the transformer is reading the input sequence
        """

        def __init__(self, split, length=6, num_digits=3):
            assert split in {'train', 'test'}
            self.split = split
            self.length = length
            self.num_digits = num_digits

        def __len__(self):
            return 10000  # ...

        def get_vocab_size(self):
            return self.num_digits

        def get_block_size(self):
            # the length of the sequence that will feed into transformer,
            # containing concatenated input and the output, but -1 because
            # the transformer starts making predictions at the last input element
            return self.length * 2 - 1

        def __getitem__(self, idx):

            # use rejection sampling to generate an input example from the desired split
            while True:
                # generate some random integers
                inp = side.draw(torch.randint, self.num_digits, size=(self.length,),
                                dtype=torch.long)
                # half of the time let's try to boost the number of examples that
                # have a large number of repeats, as this is what the model seems to struggle
                # with later in training, and they are kind of rate
                if side.draw(torch.rand, 1).item() < 0.5:
                    if inp.unique().nelement() > self.length // 2:
                        # too many unqiue digits, re-sample
                        continue
                # figure out if this generated example is train or test based on its hash
                # hash(pickle.dumps(inp.tolist()))
                h = sum((i + 1) * v for i, v in enumerate(inp.tolist()))
                inp_split = 'test' if h % 4 == 0 else 'train'  # designate 25% of examples as test
                if inp_split == self.split:
                    break  # ok

            # solve the task: i.e. sort
            sol = torch.sort(inp)[0]

            # concatenate the problem specification and the solution
            cat = torch.cat((inp, sol), dim=0)

            # the inputs to the transformer will be the offset sequence
            x = cat[:-1].clone()
            y = cat[1:].clone()
            # we only want to predict at output locations, mask out the loss at the input locations
            y[:self.length - 1] = -1
            return x, y

    train_dataset = SortDataset('train')
    test_dataset = SortDataset('test')  # noqa: F841
    x, y = train_dataset[0]
    out["first"] = [x, y]

    # create a GPT instance
    model_config = GPT.get_default_config()
    model_config.model_type = 'gpt-nano'
    model_config.vocab_size = train_dataset.get_vocab_size()
    model_config.block_size = train_dataset.get_block_size()
    model = side.weights(GPT(model_config))
    for m in model.modules():  # dropout off: no masks to replay
        if isinstance(m, nn.Dropout):
            m.p = 0.0

    # the Trainer's run()
    config = CN(device='auto', num_workers=0, max_iters=3, batch_size=4, learning_rate=5e-4,
                betas=(0.9, 0.95), weight_decay=0.1, grad_norm_clip=1.0)
    optimizer = model.configure_optimizers(config)
    # setup the dataloader
    train_loader = torch.utils.data.DataLoader(
        train_dataset,
        sampler=torch.utils.data.RandomSampler(train_dataset, replacement=True,
                                               num_samples=int(1e10)),
        shuffle=False,
        pin_memory=True,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
    )

    model.train()
    iter_num = 0
    data_iter = iter(train_loader)
    losses = []
    while True:

        # fetch the next batch (x, y) and re-init iterator if needed
        try:
            batch = next(data_iter)
        except StopIteration:
            data_iter = iter(train_loader)
            batch = next(data_iter)
        batch = [t.to('cpu') for t in batch]
        x, y = batch

        # forward the model
        logits, loss = model(x, y)

        # backprop and update the parameters
        model.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_norm_clip)
        optimizer.step()
        losses.append(loss.item())

        iter_num += 1
        # termination conditions
        if config.max_iters is not None and iter_num >= config.max_iters:
            break
    out["losses"] = losses

    # now let's perform some evaluation
    model.eval()
    n = train_dataset.length  # naugy direct access shrug
    inp = torch.tensor([[0, 0, 2, 1, 0, 1]], dtype=torch.long)
    assert inp[0].nelement() == n
    with torch.no_grad():
        cat = model.generate(inp, n, do_sample=False)
    sol = torch.sort(inp[0])[0]
    sol_candidate = cat[:, n:]
    out["generated"] = cat
    out["correct"] = bool((sol == sol_candidate).all())
    out["sampled"] = model.generate(inp, 4, do_sample=True, top_k=2)
    out["weights"] = dict(model.state_dict())
    return out


def test_mingpt_sort():
    run_both(mingpt)


# -- 4. The Annotated Transformer (harvardnlp, 2022 edition): clones by deepcopy, LayerNorm by hand
#       (x.std), SublayerConnection with lambdas, subsequent_mask through uint8, attention with
#       masked_fill(mask == 0, -1e9), Batch's masks, LabelSmoothing on KLDivLoss(reduction="sum")
#       with scatter_/index_fill_ over torch.nonzero, the rate schedule on LambdaLR, run_epoch
#       with a DummyOptimizer that subclasses torch.optim.Optimizer without calling its __init__,
#       greedy_decode with type_as/fill_ -------------------------------------------------------

def annotated_transformer(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    log_softmax = nn.functional.log_softmax
    LambdaLR = torch.optim.lr_scheduler.LambdaLR
    out = {}

    class EncoderDecoder(nn.Module):
        """
        A standard Encoder-Decoder architecture. Base for this and many
        other models.
        """

        def __init__(self, encoder, decoder, src_embed, tgt_embed, generator):
            super(EncoderDecoder, self).__init__()
            self.encoder = encoder
            self.decoder = decoder
            self.src_embed = src_embed
            self.tgt_embed = tgt_embed
            self.generator = generator

        def forward(self, src, tgt, src_mask, tgt_mask):
            "Take in and process masked src and target sequences."
            return self.decode(self.encode(src, src_mask), src_mask, tgt, tgt_mask)

        def encode(self, src, src_mask):
            return self.encoder(self.src_embed(src), src_mask)

        def decode(self, memory, src_mask, tgt, tgt_mask):
            return self.decoder(self.tgt_embed(tgt), memory, src_mask, tgt_mask)

    class Generator(nn.Module):
        "Define standard linear + softmax generation step."

        def __init__(self, d_model, vocab):
            super(Generator, self).__init__()
            self.proj = nn.Linear(d_model, vocab)

        def forward(self, x):
            return log_softmax(self.proj(x), dim=-1)

    def clones(module, N):
        "Produce N identical layers."
        return nn.ModuleList([copy.deepcopy(module) for _ in range(N)])

    class Encoder(nn.Module):
        "Core encoder is a stack of N layers"

        def __init__(self, layer, N):
            super(Encoder, self).__init__()
            self.layers = clones(layer, N)
            self.norm = LayerNorm(layer.size)

        def forward(self, x, mask):
            "Pass the input (and mask) through each layer in turn."
            for layer in self.layers:
                x = layer(x, mask)
            return self.norm(x)

    class LayerNorm(nn.Module):
        "Construct a layernorm module (See citation for details)."

        def __init__(self, features, eps=1e-6):
            super(LayerNorm, self).__init__()
            self.a_2 = nn.Parameter(torch.ones(features))
            self.b_2 = nn.Parameter(torch.zeros(features))
            self.eps = eps

        def forward(self, x):
            mean = x.mean(-1, keepdim=True)
            std = x.std(-1, keepdim=True)
            return self.a_2 * (x - mean) / (std + self.eps) + self.b_2

    class SublayerConnection(nn.Module):
        """
        A residual connection followed by a layer norm.
        Note for code simplicity the norm is first as opposed to last.
        """

        def __init__(self, size, dropout):
            super(SublayerConnection, self).__init__()
            self.norm = LayerNorm(size)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x, sublayer):
            "Apply residual connection to any sublayer with the same size."
            return x + self.dropout(sublayer(self.norm(x)))

    class EncoderLayer(nn.Module):
        "Encoder is made up of self-attn and feed forward (defined below)"

        def __init__(self, size, self_attn, feed_forward, dropout):
            super(EncoderLayer, self).__init__()
            self.self_attn = self_attn
            self.feed_forward = feed_forward
            self.sublayer = clones(SublayerConnection(size, dropout), 2)
            self.size = size

        def forward(self, x, mask):
            "Follow Figure 1 (left) for connections."
            x = self.sublayer[0](x, lambda x: self.self_attn(x, x, x, mask))
            return self.sublayer[1](x, self.feed_forward)

    class Decoder(nn.Module):
        "Generic N layer decoder with masking."

        def __init__(self, layer, N):
            super(Decoder, self).__init__()
            self.layers = clones(layer, N)
            self.norm = LayerNorm(layer.size)

        def forward(self, x, memory, src_mask, tgt_mask):
            for layer in self.layers:
                x = layer(x, memory, src_mask, tgt_mask)
            return self.norm(x)

    class DecoderLayer(nn.Module):
        "Decoder is made of self-attn, src-attn, and feed forward (defined below)"

        def __init__(self, size, self_attn, src_attn, feed_forward, dropout):
            super(DecoderLayer, self).__init__()
            self.size = size
            self.self_attn = self_attn
            self.src_attn = src_attn
            self.feed_forward = feed_forward
            self.sublayer = clones(SublayerConnection(size, dropout), 3)

        def forward(self, x, memory, src_mask, tgt_mask):
            "Follow Figure 1 (right) for connections."
            m = memory
            x = self.sublayer[0](x, lambda x: self.self_attn(x, x, x, tgt_mask))
            x = self.sublayer[1](x, lambda x: self.src_attn(x, m, m, src_mask))
            return self.sublayer[2](x, self.feed_forward)

    def subsequent_mask(size):
        "Mask out subsequent positions."
        attn_shape = (1, size, size)
        subsequent_mask = torch.triu(torch.ones(attn_shape), diagonal=1).type(
            torch.uint8
        )
        return subsequent_mask == 0

    def attention(query, key, value, mask=None, dropout=None):
        "Compute 'Scaled Dot Product Attention'"
        d_k = query.size(-1)
        scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(d_k)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        p_attn = scores.softmax(dim=-1)
        if dropout is not None:
            p_attn = dropout(p_attn)
        return torch.matmul(p_attn, value), p_attn

    class MultiHeadedAttention(nn.Module):
        def __init__(self, h, d_model, dropout=0.1):
            "Take in model size and number of heads."
            super(MultiHeadedAttention, self).__init__()
            assert d_model % h == 0
            # We assume d_v always equals d_k
            self.d_k = d_model // h
            self.h = h
            self.linears = clones(nn.Linear(d_model, d_model), 4)
            self.attn = None
            self.dropout = nn.Dropout(p=dropout)

        def forward(self, query, key, value, mask=None):
            "Implements Figure 2"
            if mask is not None:
                # Same mask applied to all h heads.
                mask = mask.unsqueeze(1)
            nbatches = query.size(0)

            # 1) Do all the linear projections in batch from d_model => h x d_k
            query, key, value = [
                lin(x).view(nbatches, -1, self.h, self.d_k).transpose(1, 2)
                for lin, x in zip(self.linears, (query, key, value))
            ]

            # 2) Apply attention on all the projected vectors in batch.
            x, self.attn = attention(
                query, key, value, mask=mask, dropout=self.dropout
            )

            # 3) "Concat" using a view and apply a final linear.
            x = (
                x.transpose(1, 2)
                .contiguous()
                .view(nbatches, -1, self.h * self.d_k)
            )
            del query
            del key
            del value
            return self.linears[-1](x)

    class PositionwiseFeedForward(nn.Module):
        "Implements FFN equation."

        def __init__(self, d_model, d_ff, dropout=0.1):
            super(PositionwiseFeedForward, self).__init__()
            self.w_1 = nn.Linear(d_model, d_ff)
            self.w_2 = nn.Linear(d_ff, d_model)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            return self.w_2(self.dropout(self.w_1(x).relu()))

    class Embeddings(nn.Module):
        def __init__(self, d_model, vocab):
            super(Embeddings, self).__init__()
            self.lut = nn.Embedding(vocab, d_model)
            self.d_model = d_model

        def forward(self, x):
            return self.lut(x) * math.sqrt(self.d_model)

    class PositionalEncoding(nn.Module):
        "Implement the PE function."

        def __init__(self, d_model, dropout, max_len=5000):
            super(PositionalEncoding, self).__init__()
            self.dropout = nn.Dropout(p=dropout)

            # Compute the positional encodings once in log space.
            pe = torch.zeros(max_len, d_model)
            position = torch.arange(0, max_len).unsqueeze(1)
            div_term = torch.exp(
                torch.arange(0, d_model, 2) * -(math.log(10000.0) / d_model)
            )
            pe[:, 0::2] = torch.sin(position * div_term)
            pe[:, 1::2] = torch.cos(position * div_term)
            pe = pe.unsqueeze(0)
            self.register_buffer("pe", pe)

        def forward(self, x):
            x = x + self.pe[:, : x.size(1)].requires_grad_(False)
            return self.dropout(x)

    def make_model(
        src_vocab, tgt_vocab, N=6, d_model=512, d_ff=2048, h=8, dropout=0.1
    ):
        "Helper: Construct a model from hyperparameters."
        c = copy.deepcopy
        attn = MultiHeadedAttention(h, d_model)
        ff = PositionwiseFeedForward(d_model, d_ff, dropout)
        position = PositionalEncoding(d_model, dropout, max_len=64)
        model = EncoderDecoder(
            Encoder(EncoderLayer(d_model, c(attn), c(ff), dropout), N),
            Decoder(DecoderLayer(d_model, c(attn), c(attn), c(ff), dropout), N),
            nn.Sequential(Embeddings(d_model, src_vocab), c(position)),
            nn.Sequential(Embeddings(d_model, tgt_vocab), c(position)),
            Generator(d_model, tgt_vocab),
        )

        # This was important from their code.
        # Initialize parameters with Glorot / fan_avg.
        for p in model.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        return model

    class Batch:
        """Object for holding a batch of data with mask during training."""

        def __init__(self, src, tgt=None, pad=2):  # 2 = <blank>
            self.src = src
            self.src_mask = (src != pad).unsqueeze(-2)
            if tgt is not None:
                self.tgt = tgt[:, :-1]
                self.tgt_y = tgt[:, 1:]
                self.tgt_mask = self.make_std_mask(self.tgt, pad)
                self.ntokens = (self.tgt_y != pad).data.sum()

        @staticmethod
        def make_std_mask(tgt, pad):
            "Create a mask to hide padding and future words."
            tgt_mask = (tgt != pad).unsqueeze(-2)
            tgt_mask = tgt_mask & subsequent_mask(tgt.size(-1)).type_as(
                tgt_mask.data
            )
            return tgt_mask

    class TrainState:
        """Track number of steps, examples, and tokens processed"""

        step: int = 0  # Steps in the current epoch
        accum_step: int = 0  # Number of gradient accumulation steps
        samples: int = 0  # total # of examples used
        tokens: int = 0  # total # of tokens processed

    def run_epoch(
        data_iter,
        model,
        loss_compute,
        optimizer,
        scheduler,
        mode="train",
        accum_iter=1,
        train_state=TrainState(),  # noqa: B008
    ):
        """Train a single epoch"""
        total_tokens = 0
        total_loss = 0
        tokens = 0
        n_accum = 0
        for i, batch in enumerate(data_iter):
            out = model.forward(
                batch.src, batch.tgt, batch.src_mask, batch.tgt_mask
            )
            loss, loss_node = loss_compute(out, batch.tgt_y, batch.ntokens)
            # loss_node = loss_node / accum_iter
            if mode == "train" or mode == "train+log":
                loss_node.backward()
                train_state.step += 1
                train_state.samples += batch.src.shape[0]
                train_state.tokens += batch.ntokens
                if i % accum_iter == 0:
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    n_accum += 1
                    train_state.accum_step += 1
                scheduler.step()

            total_loss += loss
            total_tokens += batch.ntokens
            tokens += batch.ntokens
            if i % 40 == 1 and (mode == "train" or mode == "train+log"):
                lr = optimizer.param_groups[0]["lr"]
                epoch_log.append(
                    (
                        "Epoch Step: %6d | Accumulation Step: %3d | Loss: %6.2f "
                        + "| Tokens / Sec: %7.1f | Learning Rate: %6.1e"
                    )
                    % (i, n_accum, loss / batch.ntokens, tokens / 1.0, lr)
                )
                tokens = 0
            del loss
            del loss_node
        return total_loss / total_tokens, train_state

    def rate(step, model_size, factor, warmup):
        """
        we have to default the step to 1 for LambdaLR function
        to avoid zero raising to negative power.
        """
        if step == 0:
            step = 1
        return factor * (
            model_size ** (-0.5) * min(step ** (-0.5), step * warmup ** (-1.5))
        )

    class LabelSmoothing(nn.Module):
        "Implement label smoothing."

        def __init__(self, size, padding_idx, smoothing=0.0):
            super(LabelSmoothing, self).__init__()
            self.criterion = nn.KLDivLoss(reduction="sum")
            self.padding_idx = padding_idx
            self.confidence = 1.0 - smoothing
            self.smoothing = smoothing
            self.size = size
            self.true_dist = None

        def forward(self, x, target):
            assert x.size(1) == self.size
            true_dist = x.data.clone()
            true_dist.fill_(self.smoothing / (self.size - 2))
            true_dist.scatter_(1, target.data.unsqueeze(1), self.confidence)
            true_dist[:, self.padding_idx] = 0
            mask = torch.nonzero(target.data == self.padding_idx)
            if mask.dim() > 0:
                true_dist.index_fill_(0, mask.squeeze(), 0.0)
            self.true_dist = true_dist
            return self.criterion(x, true_dist.clone().detach())

    # Example of label smoothing.
    crit = LabelSmoothing(5, 0, 0.4)
    predict = torch.FloatTensor(
        [
            [0, 0.2, 0.7, 0.1, 0],
            [0, 0.2, 0.7, 0.1, 0],
            [0, 0.2, 0.7, 0.1, 0],
            [0, 0.2, 0.7, 0.1, 0],
            [0, 0.2, 0.7, 0.1, 0],
        ]
    )
    out["smoothed_loss"] = crit(x=predict.log(), target=torch.LongTensor([2, 1, 0, 3, 3]))
    out["true_dist"] = crit.true_dist

    def loss(x, crit):
        d = x + 3 * 1
        predict = torch.FloatTensor([[0, x / d, 1 / d, 1 / d, 1 / d]])
        return crit(predict.log(), torch.LongTensor([1])).data

    crit = LabelSmoothing(5, 0, 0.1)
    out["penalization"] = [loss(x, crit) for x in range(1, 20, 6)]
    out["subsequent_mask"] = subsequent_mask(5)
    out["rates"] = [rate(s, 512, 1, 4000) for s in (0, 1, 2000, 4000, 8000)]

    def data_gen(V, batch_size, nbatches):
        "Generate random data for a src-tgt copy task."
        for i in range(nbatches):  # noqa: B007
            data = side.draw(torch.randint, 1, V, size=(batch_size, 10))
            data[:, 0] = 1
            src = data.requires_grad_(False).clone().detach()
            tgt = data.requires_grad_(False).clone().detach()
            yield Batch(src, tgt, 0)

    class SimpleLossCompute:
        "A simple loss compute and train function."

        def __init__(self, generator, criterion):
            self.generator = generator
            self.criterion = criterion

        def __call__(self, x, y, norm):
            x = self.generator(x)
            sloss = (
                self.criterion(
                    x.contiguous().view(-1, x.size(-1)), y.contiguous().view(-1)
                )
                / norm
            )
            return sloss.data * norm, sloss

    def greedy_decode(model, src, src_mask, max_len, start_symbol):
        memory = model.encode(src, src_mask)
        ys = torch.zeros(1, 1).fill_(start_symbol).type_as(src.data)
        for i in range(max_len - 1):  # noqa: B007
            out = model.decode(
                memory, src_mask, ys, subsequent_mask(ys.size(1)).type_as(src.data)
            )
            prob = model.generator(out[:, -1])
            _, next_word = torch.max(prob, dim=1)
            next_word = next_word.data[0]
            ys = torch.cat(
                [ys, torch.zeros(1, 1).type_as(src.data).fill_(next_word)], dim=1
            )
        return ys

    class DummyOptimizer(torch.optim.Optimizer):
        def __init__(self):
            self.param_groups = [{"lr": 0}]
            None  # noqa: B018

        def step(self):
            None  # noqa: B018

        def zero_grad(self, set_to_none=False):
            None  # noqa: B018

    class DummyScheduler:
        def step(self):
            None  # noqa: B018

    # Train the simple copy task.
    V = 11
    criterion = LabelSmoothing(size=V, padding_idx=0, smoothing=0.0)
    model = side.weights(make_model(V, V, N=2, d_model=32, d_ff=64, h=4))
    for m in model.modules():  # dropout off: no masks to replay
        if isinstance(m, nn.Dropout):
            m.p = 0.0

    optimizer = torch.optim.Adam(
        model.parameters(), lr=0.5, betas=(0.9, 0.98), eps=1e-9
    )
    lr_scheduler = LambdaLR(
        optimizer=optimizer,
        lr_lambda=lambda step: rate(
            step, model_size=model.src_embed[0].d_model, factor=1.0, warmup=400
        ),
    )

    batch_size = 8
    epoch_log = []
    eval_losses = []
    for epoch in range(2):  # noqa: B007
        model.train()
        run_epoch(
            data_gen(V, batch_size, 3),
            model,
            SimpleLossCompute(model.generator, criterion),
            optimizer,
            lr_scheduler,
            mode="train",
        )
        model.eval()
        eval_losses.append(run_epoch(
            data_gen(V, batch_size, 1),
            model,
            SimpleLossCompute(model.generator, criterion),
            DummyOptimizer(),
            DummyScheduler(),
            mode="eval",
        )[0])
    out["epoch_log"] = [float(s.split("Loss:")[1].split()[0]) for s in epoch_log]
    out["eval_losses"] = eval_losses
    out["lr"] = optimizer.param_groups[0]["lr"]

    model.eval()
    src = torch.LongTensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]])
    max_len = src.shape[1]
    src_mask = torch.ones(1, 1, max_len)
    out["decoded"] = greedy_decode(model, src, src_mask, max_len=max_len, start_symbol=0)
    out["attn"] = model.decoder.layers[-1].src_attn.attn
    # not the key projections' biases: their gradients are float noise (softmax does not
    # change when a row of scores shifts), which Adam scales up to steps of about lr either way
    out["weights"] = {k: v for k, v in model.state_dict().items()
                      if not k.endswith("attn.linears.1.bias")}
    return out


def test_annotated_transformer():
    run_both(annotated_transformer)


# -- 5. llama2.c (karpathy/llama2.c model.py, train.py, export.py): RMSNorm through x.float() and
#       type_as, real-valued rotary tables as non-persistent buffers, apply_rotary_emb by unbind
#       and stack(...).flatten(3), repeat_kv by expand/reshape, SDPA with dropout_p and is_causal
#       (and the manual path with its triu mask buffer), SwiGLU, tied output, scaled init of
#       w3/wo by name, last_loss, train.py's loop with a disabled GradScaler, nullcontext,
#       estimate_mfu, generate under @torch.inference_mode() with top_k, export.py's
#       serialize_fp32 by struct.pack --------------------------------------------------------

def llama2c(side: Side5, flash: bool, compiled: bool = False) -> dict:
    torch = side.lib
    nn = torch.nn
    F = nn.functional
    out = {}

    @dataclass
    class ModelArgs:
        # default hyperparameters for the Llama 7B model
        dim: int = 4096
        n_layers: int = 32
        n_heads: int = 32
        n_kv_heads: int | None = None
        vocab_size: int = 32000
        hidden_dim: int | None = None
        multiple_of: int = 256  # MLP hidden layer size will be multiple of
        norm_eps: float = 1e-5
        max_seq_len: int = 2048
        dropout: float = 0.0

    class RMSNorm(torch.nn.Module):
        def __init__(self, dim: int, eps: float):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(dim))

        def _norm(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

        def forward(self, x):
            output = self._norm(x.float()).type_as(x)
            return output * self.weight

    def precompute_freqs_cis(dim: int, end: int, theta: float = 10000.0):
        freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
        t = torch.arange(end, device=freqs.device)  # type: ignore
        freqs = torch.outer(t, freqs).float()  # type: ignore
        freqs_cos = torch.cos(freqs)  # real part
        freqs_sin = torch.sin(freqs)  # imaginary part
        return freqs_cos, freqs_sin

    def reshape_for_broadcast(freqs_cis, x):
        ndim = x.ndim
        assert 0 <= 1 < ndim
        assert freqs_cis.shape == (x.shape[1], x.shape[-1])
        shape = [d if i == 1 or i == ndim - 1 else 1 for i, d in enumerate(x.shape)]
        return freqs_cis.view(shape)

    def apply_rotary_emb(xq, xk, freqs_cos, freqs_sin):

        # reshape xq and xk to match the complex representation
        xq_r, xq_i = xq.float().reshape(xq.shape[:-1] + (-1, 2)).unbind(-1)
        xk_r, xk_i = xk.float().reshape(xk.shape[:-1] + (-1, 2)).unbind(-1)

        # reshape freqs_cos and freqs_sin for broadcasting
        freqs_cos = reshape_for_broadcast(freqs_cos, xq_r)
        freqs_sin = reshape_for_broadcast(freqs_sin, xq_r)

        # apply rotation using real numbers
        xq_out_r = xq_r * freqs_cos - xq_i * freqs_sin
        xq_out_i = xq_r * freqs_sin + xq_i * freqs_cos
        xk_out_r = xk_r * freqs_cos - xk_i * freqs_sin
        xk_out_i = xk_r * freqs_sin + xk_i * freqs_cos

        # flatten last two dimensions
        xq_out = torch.stack([xq_out_r, xq_out_i], dim=-1).flatten(3)
        xk_out = torch.stack([xk_out_r, xk_out_i], dim=-1).flatten(3)

        return xq_out.type_as(xq), xk_out.type_as(xk)

    def repeat_kv(x, n_rep: int):
        """torch.repeat_interleave(x, dim=2, repeats=n_rep)"""
        bs, slen, n_kv_heads, head_dim = x.shape
        if n_rep == 1:
            return x
        return (
            x[:, :, :, None, :]
            .expand(bs, slen, n_kv_heads, n_rep, head_dim)
            .reshape(bs, slen, n_kv_heads * n_rep, head_dim)
        )

    class Attention(nn.Module):
        def __init__(self, args: ModelArgs):
            super().__init__()
            self.n_kv_heads = args.n_heads if args.n_kv_heads is None else args.n_kv_heads
            assert args.n_heads % self.n_kv_heads == 0
            model_parallel_size = 1
            self.n_local_heads = args.n_heads // model_parallel_size
            self.n_local_kv_heads = self.n_kv_heads // model_parallel_size
            self.n_rep = self.n_local_heads // self.n_local_kv_heads
            self.head_dim = args.dim // args.n_heads
            self.wq = nn.Linear(args.dim, args.n_heads * self.head_dim, bias=False)
            self.wk = nn.Linear(args.dim, self.n_kv_heads * self.head_dim, bias=False)
            self.wv = nn.Linear(args.dim, self.n_kv_heads * self.head_dim, bias=False)
            self.wo = nn.Linear(args.n_heads * self.head_dim, args.dim, bias=False)
            self.attn_dropout = nn.Dropout(args.dropout)
            self.resid_dropout = nn.Dropout(args.dropout)
            self.dropout = args.dropout

            # use flash attention or a manual implementation?
            self.flash = hasattr(torch.nn.functional, 'scaled_dot_product_attention') and flash
            if not self.flash:
                out["WARNING: using slow attention. Flash Attention requires PyTorch >= 2.0"] = 1
                mask = torch.full((1, 1, args.max_seq_len, args.max_seq_len), float("-inf"))
                mask = torch.triu(mask, diagonal=1)
                self.register_buffer("mask", mask)

        def forward(
            self,
            x,
            freqs_cos,
            freqs_sin,
        ):
            bsz, seqlen, _ = x.shape

            # QKV
            xq, xk, xv = self.wq(x), self.wk(x), self.wv(x)
            xq = xq.view(bsz, seqlen, self.n_local_heads, self.head_dim)
            xk = xk.view(bsz, seqlen, self.n_local_kv_heads, self.head_dim)
            xv = xv.view(bsz, seqlen, self.n_local_kv_heads, self.head_dim)

            # RoPE relative positional embeddings
            xq, xk = apply_rotary_emb(xq, xk, freqs_cos, freqs_sin)

            # grouped multiquery attention: expand out keys and values
            xk = repeat_kv(xk, self.n_rep)  # (bs, seqlen, n_local_heads, head_dim)
            xv = repeat_kv(xv, self.n_rep)  # (bs, seqlen, n_local_heads, head_dim)

            # make heads into a batch dimension
            xq = xq.transpose(1, 2)  # (bs, n_local_heads, seqlen, head_dim)
            xk = xk.transpose(1, 2)
            xv = xv.transpose(1, 2)

            # flash implementation
            if self.flash:
                output = torch.nn.functional.scaled_dot_product_attention(
                    xq, xk, xv, attn_mask=None,
                    dropout_p=self.dropout if self.training else 0.0, is_causal=True)
            else:
                # manual implementation
                scores = torch.matmul(xq, xk.transpose(2, 3)) / math.sqrt(self.head_dim)
                assert hasattr(self, 'mask')
                # (bs, n_local_heads, seqlen, cache_len + seqlen)
                scores = scores + self.mask[:, :, :seqlen, :seqlen]
                scores = F.softmax(scores.float(), dim=-1).type_as(xq)
                scores = self.attn_dropout(scores)
                output = torch.matmul(scores, xv)  # (bs, n_local_heads, seqlen, head_dim)

            # restore time as batch dimension and concat heads
            output = output.transpose(1, 2).contiguous().view(bsz, seqlen, -1)

            # final projection into the residual stream
            output = self.wo(output)
            output = self.resid_dropout(output)
            return output

    class FeedForward(nn.Module):
        def __init__(self, dim: int, hidden_dim: int, multiple_of: int, dropout: float):
            super().__init__()
            if hidden_dim is None:
                hidden_dim = 4 * dim
                hidden_dim = int(2 * hidden_dim / 3)
                hidden_dim = multiple_of * ((hidden_dim + multiple_of - 1) // multiple_of)
            self.w1 = nn.Linear(dim, hidden_dim, bias=False)
            self.w2 = nn.Linear(hidden_dim, dim, bias=False)
            self.w3 = nn.Linear(dim, hidden_dim, bias=False)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))

    class TransformerBlock(nn.Module):
        def __init__(self, layer_id: int, args: ModelArgs):
            super().__init__()
            self.n_heads = args.n_heads
            self.dim = args.dim
            self.head_dim = args.dim // args.n_heads
            self.attention = Attention(args)
            self.feed_forward = FeedForward(
                dim=args.dim,
                hidden_dim=args.hidden_dim,
                multiple_of=args.multiple_of,
                dropout=args.dropout,
            )
            self.layer_id = layer_id
            self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
            self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)

        def forward(self, x, freqs_cos, freqs_sin):
            h = x + self.attention.forward(self.attention_norm(x), freqs_cos, freqs_sin)
            out = h + self.feed_forward.forward(self.ffn_norm(h))
            return out

    class Transformer(nn.Module):
        last_loss: torch.Tensor | None

        def __init__(self, params: ModelArgs):
            super().__init__()
            self.params = params
            self.vocab_size = params.vocab_size
            self.n_layers = params.n_layers

            self.tok_embeddings = nn.Embedding(params.vocab_size, params.dim)
            self.dropout = nn.Dropout(params.dropout)
            self.layers = torch.nn.ModuleList()
            for layer_id in range(params.n_layers):
                self.layers.append(TransformerBlock(layer_id, params))
            self.norm = RMSNorm(params.dim, eps=params.norm_eps)
            self.output = nn.Linear(params.dim, params.vocab_size, bias=False)

            # share the unembedding parameters with the embedding parameters
            # https://paperswithcode.com/method/weight-tying
            self.tok_embeddings.weight = self.output.weight

            # some useful precompute for the RoPE relative positional embeddings
            freqs_cos, freqs_sin = precompute_freqs_cis(self.params.dim // self.params.n_heads,
                                                        self.params.max_seq_len)
            self.register_buffer("freqs_cos", freqs_cos, persistent=False)
            self.register_buffer("freqs_sin", freqs_sin, persistent=False)

            # init all weights
            self.apply(self._init_weights)
            # apply special scaled init to the residual projections, per GPT-2 paper
            for pn, p in self.named_parameters():
                if pn.endswith('w3.weight') or pn.endswith('wo.weight'):
                    torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * params.n_layers))

            # Initialize attribute for the loss of the last forward call. This will be set if
            # the forward is called with a targets tensor.
            self.last_loss = None

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def forward(self, tokens, targets=None):
            _bsz, seqlen = tokens.shape
            h = self.tok_embeddings(tokens)
            h = self.dropout(h)
            freqs_cos = self.freqs_cos[:seqlen]
            freqs_sin = self.freqs_sin[:seqlen]

            for layer in self.layers:
                h = layer(h, freqs_cos, freqs_sin)
            h = self.norm(h)

            if targets is not None:
                # if we are given some desired targets also calculate the loss
                logits = self.output(h)
                self.last_loss = F.cross_entropy(logits.view(-1, logits.size(-1)),
                                                 targets.view(-1), ignore_index=-1)
            else:
                # inference-time mini-optimization: only forward the output on the very last
                # position; note: using list [-1] to preserve the time dim
                logits = self.output(h[:, [-1], :])
                self.last_loss = None

            return logits

        def estimate_mfu(self, fwdbwd_per_iter, dt):
            """ estimate model flops utilization (MFU) in units of A100 bfloat16 peak FLOPS """
            # first estimate the number of flops we do per iteration.
            # see PaLM paper Appendix B as ref: https://arxiv.org/abs/2204.02311
            N = sum(p.numel() for p in self.parameters())
            cfg = self.params
            L, H, Q, T = cfg.n_layers, cfg.n_heads, cfg.dim // cfg.n_heads, cfg.max_seq_len
            flops_per_token = 6 * N + 12 * L * H * Q * T
            flops_per_fwdbwd = flops_per_token * T
            flops_per_iter = flops_per_fwdbwd * fwdbwd_per_iter
            # express our flops throughput as ratio of A100 bfloat16 peak flops
            flops_achieved = flops_per_iter * (1.0 / dt)  # per second
            flops_promised = 312e12  # A100 GPU bfloat16 peak flops is 312 TFLOPS
            mfu = flops_achieved / flops_promised
            return mfu

        @torch.inference_mode()
        def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
            """
            Take a conditioning sequence of indices idx (LongTensor of shape (b,t)) and complete
            the sequence max_new_tokens times, feeding the predictions back into the model each
            time. Most likely you'll want to make sure to be in model.eval() mode of operation
            for this. Also note this is a super inefficient version of sampling with no
            key/value cache.
            """
            for _ in range(max_new_tokens):
                # if the sequence context is growing too long we must crop it at block_size
                idx_cond = (idx if idx.size(1) <= self.params.max_seq_len
                            else idx[:, -self.params.max_seq_len:])
                # forward the model to get the logits for the index in the sequence
                logits = self(idx_cond)
                logits = logits[:, -1, :]  # crop to just the final time step
                if temperature == 0.0:
                    # "sample" the single most likely index
                    _, idx_next = torch.topk(logits, k=1, dim=-1)
                else:
                    # pluck the logits at the final step and scale by desired temperature
                    logits = logits / temperature
                    # optionally crop the logits to only the top k options
                    if top_k is not None:
                        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                        logits[logits < v[:, [-1]]] = -float('Inf')
                    probs = F.softmax(logits, dim=-1)
                    idx_next = side.draw(torch.multinomial, probs, num_samples=1)
                # append sampled index to the running sequence and continue
                idx = torch.cat((idx, idx_next), dim=1)

            return idx

    # train.py, on a CPU
    batch_size = 2
    max_seq_len = 8
    vocab_size = 32
    dim, n_layers, n_heads, n_kv_heads, multiple_of, dropout = 16, 2, 4, 2, 8, 0.0
    gradient_accumulation_steps = 2
    learning_rate = 5e-4
    max_iters = 3
    weight_decay = 1e-1
    beta1, beta2 = 0.9, 0.95
    grad_clip = 1.0
    device = "cpu"
    dtype = "float32"
    torch.backends.cuda.matmul.allow_tf32 = True  # allow tf32 on matmul
    torch.backends.cudnn.allow_tf32 = True  # allow tf32 on cudnn
    device_type = "cuda" if "cuda" in device else "cpu"  # for later use in torch.autocast
    # note: float16 data type will automatically use a GradScaler
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16,
               "float16": torch.float16}[dtype]
    ctx = (
        nullcontext()
        if device_type == "cpu"
        else torch.amp.autocast(device_type=device_type, dtype=ptdtype)
    )
    tokens = np.random.default_rng(1).integers(0, vocab_size, 200)

    def iter_batches(split):
        # Task.iter_batches over pretokenized shards, here one array
        for i in range(0, len(tokens) - max_seq_len - 1, max_seq_len):
            chunk = torch.from_numpy(tokens[i:i + batch_size * max_seq_len + 1].astype(np.int64))
            x = chunk[:-1].view(batch_size, -1)
            y = chunk[1:].view(batch_size, -1)
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            yield x, y

    model_args = dict(dim=dim, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads,
                      vocab_size=vocab_size, multiple_of=multiple_of, max_seq_len=max_seq_len,
                      dropout=dropout)
    gptconf = ModelArgs(**model_args)
    model = side.weights(Transformer(gptconf))
    model.to(device)
    assert [n for n, _ in model.named_buffers()] == ["freqs_cos", "freqs_sin"] + (
        [] if flash else [f"layers.{i}.attention.mask" for i in range(n_layers)])
    assert "freqs_cos" not in model.state_dict()

    # initialize a GradScaler. If enabled=False scaler is a no-op
    scaler = torch.amp.GradScaler("cuda", enabled=(dtype == "float16"))
    # optimizer (model.configure_optimizers, as nanoGPT's)
    param_dict = {pn: p for pn, p in model.named_parameters() if p.requires_grad}
    decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
    nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
    optim_groups = [{'params': decay_params, 'weight_decay': weight_decay},
                    {'params': nodecay_params, 'weight_decay': 0.0}]
    optimizer = torch.optim.AdamW(optim_groups, lr=learning_rate, betas=(beta1, beta2))

    # compile the model
    if compiled:
        unoptimized_model = model
        model = side.compile(model)  # requires PyTorch 2.0
    raw_model = model

    train_batch_iter = iter_batches(split="train")
    X, Y = next(train_batch_iter)  # fetch the very first batch
    iter_num = 0
    losses = []
    while True:
        # forward backward update, with optional gradient accumulation to simulate larger
        # batch size and using the GradScaler if data type is float16
        for micro_step in range(gradient_accumulation_steps):  # noqa: B007
            with ctx:
                logits = model(X, Y)  # noqa: F841
                loss = raw_model.last_loss
                loss = loss / gradient_accumulation_steps
            # immediately async prefetch next batch while model is doing the forward pass
            X, Y = next(train_batch_iter)
            # backward pass, with gradient scaling if training in fp16
            scaler.scale(loss).backward()
        # clip the gradient
        if grad_clip != 0.0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        # step the optimizer and scaler if training in fp16
        scaler.step(optimizer)
        scaler.update()
        # flush the gradients as soon as we can, no need for this memory anymore
        optimizer.zero_grad(set_to_none=True)
        lossf = loss.item() * gradient_accumulation_steps
        losses.append(lossf)
        iter_num += 1
        if iter_num > max_iters:
            break
    out["losses"] = losses
    out["mfu"] = model.estimate_mfu(batch_size * gradient_accumulation_steps, 0.5)
    if compiled:
        model = unoptimized_model

    # sample.py
    model.eval()
    x = torch.tensor([[1, 2, 3]], dtype=torch.long, device=device)[None, ...][0]
    with torch.no_grad():
        with ctx:
            y = model.generate(x, 6, temperature=0.8, top_k=5)
    out["sample"] = y
    out["greedy"] = model.generate(x, 6, temperature=0.0)
    assert not torch.is_inference_mode_enabled()

    # export.py's legacy_export: the header, then every weight as float32 bytes
    def serialize_fp32(file, tensor):
        """ writes one fp32 tensor to file that is open in wb mode """
        d = tensor.detach().cpu().view(-1).to(torch.float32).numpy()
        b = struct.pack(f'{len(d)}f', *d)
        file.write(b)

    f = io.BytesIO()
    p = model.params
    shared_classifier = torch.equal(model.tok_embeddings.weight, model.output.weight)
    vocab_size = p.vocab_size
    if not shared_classifier:
        vocab_size = -vocab_size
    n_kv_heads = p.n_heads if p.n_kv_heads is None else p.n_kv_heads
    hidden_dim = model.layers[0].feed_forward.w1.weight.shape[0]
    header = struct.pack('iiiiiii', p.dim, hidden_dim, p.n_layers, p.n_heads,
                         n_kv_heads, vocab_size, p.max_seq_len)
    f.write(header)
    serialize_fp32(f, model.tok_embeddings.weight)
    for layer in model.layers:
        serialize_fp32(f, layer.attention_norm.weight)
    for layer in model.layers:
        serialize_fp32(f, layer.attention.wq.weight)
    serialize_fp32(f, model.norm.weight)
    serialize_fp32(f, model.freqs_cos[:p.max_seq_len])
    serialize_fp32(f, model.freqs_sin[:p.max_seq_len])
    out["export"] = np.frombuffer(f.getvalue()[len(header):], np.float32)
    out["header"] = list(struct.unpack('iiiiiii', f.getvalue()[:len(header)]))
    out["weights"] = dict(model.state_dict())
    return out


@COMPILED_FULL
@pytest.mark.parametrize("flash", [True, False], ids=["sdpa", "manual"])
def test_llama2c(flash, compiled):
    """train.py's torch.compile(model) as dlg.compile under -m sweep_full. train.py sets torch's
    tf32 flags, which torch refuses once torch.testing's internals (the OpInfo tests import
    them) froze the global flags: the run may set them, and they are put back after."""
    flags = torch.backends.cuda.matmul, torch.backends.cudnn
    before = [f.allow_tf32 for f in flags]
    with getattr(torch.backends, "__allow_nonbracketed_mutation")():
        try:
            run_both(functools.partial(llama2c, flash=flash, compiled=compiled),
                     compiled=compiled)
        finally:
            for f, value in zip(flags, before):
                f.allow_tf32 = value


# -- 6. Meta's llama (meta-llama/llama model.py, generation.py): precompute_freqs_cis by
#       torch.polar into complex64, apply_rotary_emb through view_as_complex/view_as_real, a KV
#       cache written in place under @torch.inference_mode() (cache_k.to(xq), slices assigned),
#       the causal mask hstacked after the cached positions, sample_top_p; its complex rotation
#       checked against llama2.c's real one ---------------------------------------------------

def meta_llama(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    F = nn.functional
    out = {}

    @dataclass
    class ModelArgs:
        dim: int = 4096
        n_layers: int = 32
        n_heads: int = 32
        n_kv_heads: int | None = None
        vocab_size: int = -1  # defined later by tokenizer
        multiple_of: int = 256  # make SwiGLU hidden layer size multiple of large power of 2
        ffn_dim_multiplier: float | None = None
        norm_eps: float = 1e-5

        max_batch_size: int = 32
        max_seq_len: int = 2048

    class RMSNorm(torch.nn.Module):
        def __init__(self, dim: int, eps: float = 1e-6):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(dim))

        def _norm(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

        def forward(self, x):
            output = self._norm(x.float()).type_as(x)
            return output * self.weight

    def precompute_freqs_cis(dim: int, end: int, theta: float = 10000.0):
        freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
        t = torch.arange(end, device=freqs.device)  # type: ignore
        freqs = torch.outer(t, freqs).float()  # type: ignore
        freqs_cis = torch.polar(torch.ones_like(freqs), freqs)  # complex64
        return freqs_cis

    def reshape_for_broadcast(freqs_cis, x):
        ndim = x.ndim
        assert 0 <= 1 < ndim
        assert freqs_cis.shape == (x.shape[1], x.shape[-1])
        shape = [d if i == 1 or i == ndim - 1 else 1 for i, d in enumerate(x.shape)]
        return freqs_cis.view(*shape)

    def apply_rotary_emb(xq, xk, freqs_cis):
        xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
        xk_ = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
        freqs_cis = reshape_for_broadcast(freqs_cis, xq_)
        xq_out = torch.view_as_real(xq_ * freqs_cis).flatten(3)
        xk_out = torch.view_as_real(xk_ * freqs_cis).flatten(3)
        return xq_out.type_as(xq), xk_out.type_as(xk)

    def repeat_kv(x, n_rep: int):
        """torch.repeat_interleave(x, dim=2, repeats=n_rep)"""
        bs, slen, n_kv_heads, head_dim = x.shape
        if n_rep == 1:
            return x
        return (
            x[:, :, :, None, :]
            .expand(bs, slen, n_kv_heads, n_rep, head_dim)
            .reshape(bs, slen, n_kv_heads * n_rep, head_dim)
        )

    class Attention(nn.Module):
        """Multi-head attention module."""
        def __init__(self, args: ModelArgs):
            super().__init__()
            self.n_kv_heads = args.n_heads if args.n_kv_heads is None else args.n_kv_heads
            model_parallel_size = 1  # fs_init.get_model_parallel_world_size()
            self.n_local_heads = args.n_heads // model_parallel_size
            self.n_local_kv_heads = self.n_kv_heads // model_parallel_size
            self.n_rep = self.n_local_heads // self.n_local_kv_heads
            self.head_dim = args.dim // args.n_heads

            # ColumnParallelLinear / RowParallelLinear on one process
            self.wq = nn.Linear(args.dim, args.n_heads * self.head_dim, bias=False)
            self.wk = nn.Linear(args.dim, self.n_kv_heads * self.head_dim, bias=False)
            self.wv = nn.Linear(args.dim, self.n_kv_heads * self.head_dim, bias=False)
            self.wo = nn.Linear(args.n_heads * self.head_dim, args.dim, bias=False)

            self.cache_k = torch.zeros(
                (
                    args.max_batch_size,
                    args.max_seq_len,
                    self.n_local_kv_heads,
                    self.head_dim,
                )
            )  # .cuda()
            self.cache_v = torch.zeros(
                (
                    args.max_batch_size,
                    args.max_seq_len,
                    self.n_local_kv_heads,
                    self.head_dim,
                )
            )  # .cuda()

        def forward(
            self,
            x,
            start_pos: int,
            freqs_cis,
            mask,
        ):
            bsz, seqlen, _ = x.shape
            xq, xk, xv = self.wq(x), self.wk(x), self.wv(x)

            xq = xq.view(bsz, seqlen, self.n_local_heads, self.head_dim)
            xk = xk.view(bsz, seqlen, self.n_local_kv_heads, self.head_dim)
            xv = xv.view(bsz, seqlen, self.n_local_kv_heads, self.head_dim)

            xq, xk = apply_rotary_emb(xq, xk, freqs_cis=freqs_cis)

            self.cache_k = self.cache_k.to(xq)
            self.cache_v = self.cache_v.to(xq)

            self.cache_k[:bsz, start_pos : start_pos + seqlen] = xk
            self.cache_v[:bsz, start_pos : start_pos + seqlen] = xv

            keys = self.cache_k[:bsz, : start_pos + seqlen]
            values = self.cache_v[:bsz, : start_pos + seqlen]

            # repeat k/v heads if n_kv_heads < n_heads
            keys = repeat_kv(keys, self.n_rep)  # (bs, cache_len + seqlen, n_local_heads, head_dim)
            # (bs, cache_len + seqlen, n_local_heads, head_dim)
            values = repeat_kv(values, self.n_rep)

            xq = xq.transpose(1, 2)  # (bs, n_local_heads, seqlen, head_dim)
            keys = keys.transpose(1, 2)  # (bs, n_local_heads, cache_len + seqlen, head_dim)
            values = values.transpose(1, 2)  # (bs, n_local_heads, cache_len + seqlen, head_dim)
            scores = torch.matmul(xq, keys.transpose(2, 3)) / math.sqrt(self.head_dim)
            if mask is not None:
                scores = scores + mask  # (bs, n_local_heads, seqlen, cache_len + seqlen)
            scores = F.softmax(scores.float(), dim=-1).type_as(xq)
            output = torch.matmul(scores, values)  # (bs, n_local_heads, seqlen, head_dim)
            output = output.transpose(1, 2).contiguous().view(bsz, seqlen, -1)
            return self.wo(output)

    class FeedForward(nn.Module):
        def __init__(
            self,
            dim: int,
            hidden_dim: int,
            multiple_of: int,
            ffn_dim_multiplier: float | None,
        ):
            super().__init__()
            hidden_dim = int(2 * hidden_dim / 3)
            # custom dim factor multiplier
            if ffn_dim_multiplier is not None:
                hidden_dim = int(ffn_dim_multiplier * hidden_dim)
            hidden_dim = multiple_of * ((hidden_dim + multiple_of - 1) // multiple_of)

            self.w1 = nn.Linear(dim, hidden_dim, bias=False)
            self.w2 = nn.Linear(hidden_dim, dim, bias=False)
            self.w3 = nn.Linear(dim, hidden_dim, bias=False)

        def forward(self, x):
            return self.w2(F.silu(self.w1(x)) * self.w3(x))

    class TransformerBlock(nn.Module):
        def __init__(self, layer_id: int, args: ModelArgs):
            super().__init__()
            self.n_heads = args.n_heads
            self.dim = args.dim
            self.head_dim = args.dim // args.n_heads
            self.attention = Attention(args)
            self.feed_forward = FeedForward(
                dim=args.dim,
                hidden_dim=4 * args.dim,
                multiple_of=args.multiple_of,
                ffn_dim_multiplier=args.ffn_dim_multiplier,
            )
            self.layer_id = layer_id
            self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
            self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)

        def forward(
            self,
            x,
            start_pos: int,
            freqs_cis,
            mask,
        ):
            h = x + self.attention(self.attention_norm(x), start_pos, freqs_cis, mask)
            out = h + self.feed_forward(self.ffn_norm(h))
            return out

    class Transformer(nn.Module):
        def __init__(self, params: ModelArgs):
            super().__init__()
            self.params = params
            self.vocab_size = params.vocab_size
            self.n_layers = params.n_layers

            self.tok_embeddings = nn.Embedding(params.vocab_size, params.dim)

            self.layers = torch.nn.ModuleList()
            for layer_id in range(params.n_layers):
                self.layers.append(TransformerBlock(layer_id, params))

            self.norm = RMSNorm(params.dim, eps=params.norm_eps)
            self.output = nn.Linear(params.dim, params.vocab_size, bias=False)

            self.freqs_cis = precompute_freqs_cis(
                # Note that self.params.max_seq_len is multiplied by 2 because the token limit
                # for the Llama 2 generation of models is 4096. Adding this multiplier instead
                # of using 4096 directly allows for dynamism of token lengths while training or
                # fine-tuning.
                self.params.dim // self.params.n_heads, self.params.max_seq_len * 2
            )

        @torch.inference_mode()
        def forward(self, tokens, start_pos: int):
            _bsz, seqlen = tokens.shape
            h = self.tok_embeddings(tokens)
            self.freqs_cis = self.freqs_cis.to(h.device)
            freqs_cis = self.freqs_cis[start_pos : start_pos + seqlen]

            mask = None
            if seqlen > 1:
                mask = torch.full(
                    (seqlen, seqlen), float("-inf"), device=tokens.device
                )

                mask = torch.triu(mask, diagonal=1)

                # When performing key-value caching, we compute the attention scores
                # only for the new sequence. Thus, the matrix of scores is of size
                # (seqlen, cache_len + seqlen), and the only masked entries are (i, j) for
                # j > cache_len + i, since row i corresponds to token cache_len + i.
                mask = torch.hstack([
                    torch.zeros((seqlen, start_pos), device=tokens.device),
                    mask
                ]).type_as(h)

            for layer in self.layers:
                h = layer(h, start_pos, freqs_cis, mask)
            h = self.norm(h)
            output = self.output(h).float()
            return output

    def sample_top_p(probs, p):
        probs_sort, probs_idx = torch.sort(probs, dim=-1, descending=True)
        probs_sum = torch.cumsum(probs_sort, dim=-1)
        mask = probs_sum - probs_sort > p
        probs_sort[mask] = 0.0
        probs_sort.div_(probs_sort.sum(dim=-1, keepdim=True))
        next_token = side.draw(torch.multinomial, probs_sort, num_samples=1)
        next_token = torch.gather(probs_idx, -1, next_token)
        return next_token

    params = ModelArgs(dim=16, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=24,
                       multiple_of=8, max_batch_size=2, max_seq_len=16)
    model = side.weights(Transformer(params))
    out["freqs_cis"] = torch.view_as_real(model.freqs_cis)
    assert model.freqs_cis.dtype == torch.complex64

    # the complex rotation is llama2.c's real one
    x = side.data(np.random.default_rng(2).standard_normal((2, 5, 4, 4)).astype(np.float32))
    xq, xk = apply_rotary_emb(x, x * 2, model.freqs_cis[:5])
    cos, sin = model.freqs_cis[:5].real, model.freqs_cis[:5].imag
    x_r, x_i = x.reshape(x.shape[:-1] + (-1, 2)).unbind(-1)
    real = torch.stack([x_r * cos[None, :, None] - x_i * sin[None, :, None],
                        x_r * sin[None, :, None] + x_i * cos[None, :, None]], -1).flatten(3)
    out["rope"] = [xq, xk]
    assert torch.allclose(xq, real, atol=1e-6)

    # generation.py's generate, temperature 0.6, top_p 0.9, two prompts of unequal length
    prompt_tokens = [[1, 5, 9, 2], [1, 7]]
    max_gen_len, temperature, top_p, pad_id, eos_id = 6, 0.6, 0.9, -1, 2
    bsz = len(prompt_tokens)
    min_prompt_len = min(len(t) for t in prompt_tokens)
    max_prompt_len = max(len(t) for t in prompt_tokens)
    total_len = min(params.max_seq_len, max_gen_len + max_prompt_len)
    tokens = torch.full((bsz, total_len), pad_id, dtype=torch.long)
    for k, t in enumerate(prompt_tokens):
        tokens[k, : len(t)] = torch.tensor(t, dtype=torch.long)
    prev_pos = 0
    eos_reached = torch.tensor([False] * bsz)
    input_text_mask = tokens != pad_id
    all_logits = []
    for cur_pos in range(min_prompt_len, total_len):
        logits = model.forward(tokens[:, prev_pos:cur_pos], prev_pos)
        assert not logits.requires_grad
        all_logits.append(logits)
        if temperature > 0:
            probs = torch.softmax(logits[:, -1] / temperature, dim=-1)
            next_token = sample_top_p(probs, top_p)
        else:
            next_token = torch.argmax(logits[:, -1], dim=-1)

        next_token = next_token.reshape(-1)
        # only replace token if prompt has already been generated
        next_token = torch.where(
            input_text_mask[:, cur_pos], tokens[:, cur_pos], next_token
        )
        tokens[:, cur_pos] = next_token
        eos_reached |= (~input_text_mask[:, cur_pos]) & (
            next_token == eos_id
        )
        prev_pos = cur_pos
        if all(eos_reached):
            break
    out["tokens"] = tokens
    out["logits"] = all_logits
    out["cache_k"] = model.layers[0].attention.cache_k
    # the KV cache's logits are those of one pass over the whole sequence
    full = model.forward(tokens[:, :prev_pos], 0)
    assert torch.allclose(full, torch.cat(all_logits, 1), atol=1e-5)
    return out


def test_meta_llama_complex_rope_kv_cache():
    run_both(meta_llama)


# -- 7. mamba-minimal (johnma2006/mamba-minimal model.py, demo.ipynb): MambaBlock's depthwise
#       Conv1d with padding d_conv - 1 cut back to l, split by sizes, softplus, the selective scan
#       by einsum and a Python loop over time, A_log/D parameters, the tied lm_head,
#       from_pretrained's 'backbone.' keys renamed into load_state_dict, generate with top_k by
#       probs[probs < values[:, -1, None]] = 0 (einops' einsum/rearrange/repeat written as
#       torch.einsum/transpose/repeat, the one change) ---------------------------------------

def mamba_minimal(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    F = nn.functional
    out = {}

    @dataclass
    class ModelArgs:
        d_model: int
        n_layer: int
        vocab_size: int
        d_state: int = 16
        expand: int = 2
        dt_rank: int | str = 'auto'
        d_conv: int = 4
        pad_vocab_size_multiple: int = 8
        conv_bias: bool = True
        bias: bool = False

        def __post_init__(self):
            self.d_inner = int(self.expand * self.d_model)

            if self.dt_rank == 'auto':
                self.dt_rank = math.ceil(self.d_model / 16)

            if self.vocab_size % self.pad_vocab_size_multiple != 0:
                self.vocab_size += (self.pad_vocab_size_multiple
                                    - self.vocab_size % self.pad_vocab_size_multiple)

    class Mamba(nn.Module):
        def __init__(self, args: ModelArgs):
            """Full Mamba model."""
            super().__init__()
            self.args = args

            self.embedding = nn.Embedding(args.vocab_size, args.d_model)
            self.layers = nn.ModuleList([ResidualBlock(args) for _ in range(args.n_layer)])
            self.norm_f = RMSNorm(args.d_model)

            self.lm_head = nn.Linear(args.d_model, args.vocab_size, bias=False)
            # Tie output projection to embedding weights.
            # See "Weight Tying" paper
            self.lm_head.weight = self.embedding.weight

        def forward(self, input_ids):
            x = self.embedding(input_ids)

            for layer in self.layers:
                x = layer(x)

            x = self.norm_f(x)
            logits = self.lm_head(x)

            return logits

    class ResidualBlock(nn.Module):
        def __init__(self, args: ModelArgs):
            """Simple block wrapping Mamba block with normalization and residual connection."""
            super().__init__()
            self.args = args
            self.mixer = MambaBlock(args)
            self.norm = RMSNorm(args.d_model)

        def forward(self, x):
            output = self.mixer(self.norm(x)) + x

            return output

    class MambaBlock(nn.Module):
        def __init__(self, args: ModelArgs):
            """A single Mamba block, as described in Figure 3 in Section 3.4 in the Mamba
            paper [1]."""
            super().__init__()
            self.args = args

            self.in_proj = nn.Linear(args.d_model, args.d_inner * 2, bias=args.bias)

            self.conv1d = nn.Conv1d(
                in_channels=args.d_inner,
                out_channels=args.d_inner,
                bias=args.conv_bias,
                kernel_size=args.d_conv,
                groups=args.d_inner,
                padding=args.d_conv - 1,
            )

            # x_proj takes in `x` and outputs the input-specific Δ, B, C
            self.x_proj = nn.Linear(args.d_inner, args.dt_rank + args.d_state * 2, bias=False)

            # dt_proj projects Δ from dt_rank to d_in
            self.dt_proj = nn.Linear(args.dt_rank, args.d_inner, bias=True)

            # repeat(torch.arange(1, args.d_state + 1), 'n -> d n', d=args.d_inner)
            A = torch.arange(1, args.d_state + 1).repeat(args.d_inner, 1)
            self.A_log = nn.Parameter(torch.log(A))
            self.D = nn.Parameter(torch.ones(args.d_inner))
            self.out_proj = nn.Linear(args.d_inner, args.d_model, bias=args.bias)

        def forward(self, x):
            (b, l, d) = x.shape  # noqa: E741

            x_and_res = self.in_proj(x)  # shape (b, l, 2 * d_in)
            (x, res) = x_and_res.split(split_size=[self.args.d_inner, self.args.d_inner], dim=-1)

            x = x.transpose(1, 2)  # rearrange(x, 'b l d_in -> b d_in l')
            x = self.conv1d(x)[:, :, :l]
            x = x.transpose(1, 2)  # rearrange(x, 'b d_in l -> b l d_in')

            x = F.silu(x)

            y = self.ssm(x)

            y = y * F.silu(res)

            output = self.out_proj(y)

            return output

        def ssm(self, x):
            (d_in, n) = self.A_log.shape

            # Compute ∆ A B C D, the state space parameters.
            #     A, D are input independent (see Mamba paper [1] Section 3.5.2 "Interpretation
            #     of A" for why A isn't selective)
            #     ∆, B, C are input-dependent (this is a key difference between Mamba and the
            #     linear time invariant S4, and is why Mamba is called **selective** state
            #     spaces)

            A = -torch.exp(self.A_log.float())  # shape (d_in, n)
            D = self.D.float()

            x_dbl = self.x_proj(x)  # (b, l, dt_rank + 2*n)

            # delta: (b, l, dt_rank). B, C: (b, l, n)
            (delta, B, C) = x_dbl.split(split_size=[self.args.dt_rank, n, n], dim=-1)
            delta = F.softplus(self.dt_proj(delta))  # (b, l, d_in)

            # similar to run_SSM(A, B, C, u) in The Annotated S4 [2]
            y = self.selective_scan(x, delta, A, B, C, D)

            return y

        def selective_scan(self, u, delta, A, B, C, D):
            (b, l, d_in) = u.shape  # noqa: E741
            n = A.shape[1]

            # Discretize continuous parameters (A, B)
            # - A is discretized using zero-order hold (ZOH) discretization (see Section 2
            #   Equation 4 in the Mamba paper [1])
            # - B is discretized using a simplified Euler discretization instead of ZOH. From a
            #   discussion with authors: "A is the more important term and the performance
            #   doesn't change much with the simplification on B"
            deltaA = torch.exp(torch.einsum('bld,dn->bldn', delta, A))
            deltaB_u = torch.einsum('bld,bln,bld->bldn', delta, B, u)

            # Perform selective scan (see scan_SSM() in The Annotated S4 [2])
            # Note that the below is sequential, while the official implementation does a much
            # faster parallel scan that is additionally hardware-aware (like FlashAttention).
            x = torch.zeros((b, d_in, n), device=deltaA.device)
            ys = []
            for i in range(l):
                x = deltaA[:, i] * x + deltaB_u[:, i]
                y = torch.einsum('bdn,bn->bd', x, C[:, i, :])
                ys.append(y)
            y = torch.stack(ys, dim=1)  # shape (b, l, d_in)

            y = y + u * D

            return y

    class RMSNorm(nn.Module):
        def __init__(self,
                     d_model: int,
                     eps: float = 1e-5):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(d_model))

        def forward(self, x):
            output = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight

            return output

    args = ModelArgs(d_model=16, n_layer=2, vocab_size=30, d_state=4)
    assert (args.vocab_size, args.dt_rank, args.d_inner) == (32, 1, 32)
    model = side.weights(Mamba(args))
    assert model.A_log.dtype == torch.float32 if hasattr(model, "A_log") else True
    out["A_log"] = model.layers[0].mixer.A_log
    # from_pretrained: a checkpoint whose keys start with 'backbone.'
    state_dict = {f"backbone.{k}": v.clone() + 0.01 for k, v in model.state_dict().items()}
    new_state_dict = {}
    for key in state_dict:
        new_key = key.replace('backbone.', '')
        new_state_dict[new_key] = state_dict[key]
    model.load_state_dict(new_state_dict)
    assert model.lm_head.weight is model.embedding.weight

    # a few training steps on next-token prediction
    data = torch.tensor(np.random.default_rng(3).integers(0, 30, (3, 9)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        logits = model(data[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), data[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    out["losses"] = losses

    def generate(model, input_ids, n_tokens_to_gen: int = 50, sample: bool = True,
                 top_k: int = 40):
        model.eval()

        for token_n in range(n_tokens_to_gen):  # noqa: B007
            with torch.no_grad():
                indices_to_input = input_ids
                next_token_logits = model(indices_to_input)[:, -1]

            probs = F.softmax(next_token_logits, dim=-1)
            (batch, vocab_size) = probs.shape

            if top_k is not None:
                (values, indices) = torch.topk(probs, k=top_k)
                probs[probs < values[:, -1, None]] = 0
                probs = probs / probs.sum(axis=1, keepdims=True)

            if sample:
                next_indices = side.draw(torch.multinomial, probs, num_samples=1)
            else:
                next_indices = torch.argmax(probs, dim=-1)[:, None]

            input_ids = torch.cat([input_ids, next_indices], dim=1)

        return input_ids

    prompt = torch.tensor([[3, 1, 4, 1, 5]])
    out["sampled"] = generate(model, prompt, 5, top_k=4)
    out["greedy"] = generate(model, prompt, 5, sample=False, top_k=None)
    out["weights"] = dict(model.state_dict())
    return out


def test_mamba_minimal():
    run_both(mamba_minimal)


# -- 8. efficient-kan (Blealtan/efficient-kan src/efficient_kan/kan.py, examples/mnist.py):
#       the grid buffer by arange().expand().contiguous(), uninitialised torch.Tensor(...)
#       parameters, reset_parameters through curve2coeff (torch.linalg.lstsq on batched A, B),
#       B-spline bases by the Cox-de Boor recursion, update_grid (sort, linspace as int64
#       indices, torch.concatenate, grid.copy_), the entropy regulariser, AdamW with
#       ExponentialLR and CrossEntropyLoss --------------------------------------------------

def efficient_kan(side: Side5) -> dict:
    torch = side.lib
    F = torch.nn.functional
    out = {}

    class KANLinear(torch.nn.Module):
        def __init__(
            self,
            in_features,
            out_features,
            grid_size=5,
            spline_order=3,
            scale_noise=0.1,
            scale_base=1.0,
            scale_spline=1.0,
            enable_standalone_scale_spline=True,
            base_activation=torch.nn.SiLU,
            grid_eps=0.02,
            grid_range=[-1, 1],  # noqa: B006
        ):
            super(KANLinear, self).__init__()
            self.in_features = in_features
            self.out_features = out_features
            self.grid_size = grid_size
            self.spline_order = spline_order

            h = (grid_range[1] - grid_range[0]) / grid_size
            grid = (
                (
                    torch.arange(-spline_order, grid_size + spline_order + 1) * h
                    + grid_range[0]
                )
                .expand(in_features, -1)
                .contiguous()
            )
            self.register_buffer("grid", grid)

            self.base_weight = torch.nn.Parameter(torch.Tensor(out_features, in_features))
            self.spline_weight = torch.nn.Parameter(
                torch.Tensor(out_features, in_features, grid_size + spline_order)
            )
            if enable_standalone_scale_spline:
                self.spline_scaler = torch.nn.Parameter(
                    torch.Tensor(out_features, in_features)
                )

            self.scale_noise = scale_noise
            self.scale_base = scale_base
            self.scale_spline = scale_spline
            self.enable_standalone_scale_spline = enable_standalone_scale_spline
            self.base_activation = base_activation()
            self.grid_eps = grid_eps

            self.reset_parameters()

        def reset_parameters(self):
            torch.nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5) * self.scale_base)
            with torch.no_grad():
                noise = (
                    (
                        side.draw(torch.rand, self.grid_size + 1, self.in_features,
                                  self.out_features)
                        - 1 / 2
                    )
                    * self.scale_noise
                    / self.grid_size
                )
                self.spline_weight.data.copy_(
                    (self.scale_spline if not self.enable_standalone_scale_spline else 1.0)
                    * self.curve2coeff(
                        self.grid.T[self.spline_order : -self.spline_order],
                        noise,
                    )
                )
                out.setdefault("initial_spline_weight", []).append(self.spline_weight.clone())
                if self.enable_standalone_scale_spline:
                    # torch.nn.init.constant_(self.spline_scaler, self.scale_spline)
                    torch.nn.init.kaiming_uniform_(self.spline_scaler,
                                                   a=math.sqrt(5) * self.scale_spline)

        def b_splines(self, x: torch.Tensor):
            """
            Compute the B-spline bases for the given input tensor.

            Args:
                x (torch.Tensor): Input tensor of shape (batch_size, in_features).

            Returns:
                torch.Tensor: B-spline bases tensor of shape (batch_size, in_features,
                grid_size + spline_order).
            """
            assert x.dim() == 2 and x.size(1) == self.in_features

            grid: torch.Tensor = (
                self.grid
            )  # (in_features, grid_size + 2 * spline_order + 1)
            x = x.unsqueeze(-1)
            bases = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).to(x.dtype)
            for k in range(1, self.spline_order + 1):
                bases = (
                    (x - grid[:, : -(k + 1)])
                    / (grid[:, k:-1] - grid[:, : -(k + 1)])
                    * bases[:, :, :-1]
                ) + (
                    (grid[:, k + 1 :] - x)
                    / (grid[:, k + 1 :] - grid[:, 1:(-k)])
                    * bases[:, :, 1:]
                )

            assert bases.size() == (
                x.size(0),
                self.in_features,
                self.grid_size + self.spline_order,
            )
            return bases.contiguous()

        def curve2coeff(self, x: torch.Tensor, y: torch.Tensor):
            """
            Compute the coefficients of the curve that interpolates the given points.
            """
            assert x.dim() == 2 and x.size(1) == self.in_features
            assert y.size() == (x.size(0), self.in_features, self.out_features)

            A = self.b_splines(x).transpose(
                0, 1
            )  # (in_features, batch_size, grid_size + spline_order)
            B = y.transpose(0, 1)  # (in_features, batch_size, out_features)
            solution = torch.linalg.lstsq(
                A, B
            ).solution  # (in_features, grid_size + spline_order, out_features)
            result = solution.permute(
                2, 0, 1
            )  # (out_features, in_features, grid_size + spline_order)

            assert result.size() == (
                self.out_features,
                self.in_features,
                self.grid_size + self.spline_order,
            )
            return result.contiguous()

        @property
        def scaled_spline_weight(self):
            return self.spline_weight * (
                self.spline_scaler.unsqueeze(-1)
                if self.enable_standalone_scale_spline
                else 1.0
            )

        def forward(self, x: torch.Tensor):
            assert x.size(-1) == self.in_features
            original_shape = x.shape
            x = x.reshape(-1, self.in_features)

            base_output = F.linear(self.base_activation(x), self.base_weight)
            spline_output = F.linear(
                self.b_splines(x).view(x.size(0), -1),
                self.scaled_spline_weight.view(self.out_features, -1),
            )
            output = base_output + spline_output

            output = output.reshape(*original_shape[:-1], self.out_features)
            return output

        @torch.no_grad()
        def update_grid(self, x: torch.Tensor, margin=0.01):
            assert x.dim() == 2 and x.size(1) == self.in_features
            batch = x.size(0)

            splines = self.b_splines(x)  # (batch, in, coeff)
            splines = splines.permute(1, 0, 2)  # (in, batch, coeff)
            orig_coeff = self.scaled_spline_weight  # (out, in, coeff)
            orig_coeff = orig_coeff.permute(1, 2, 0)  # (in, coeff, out)
            unreduced_spline_output = torch.bmm(splines, orig_coeff)  # (in, batch, out)
            unreduced_spline_output = unreduced_spline_output.permute(
                1, 0, 2
            )  # (batch, in, out)

            # sort each channel individually to collect data distribution
            x_sorted = torch.sort(x, dim=0)[0]
            grid_adaptive = x_sorted[
                torch.linspace(
                    0, batch - 1, self.grid_size + 1, dtype=torch.int64, device=x.device
                )
            ]

            uniform_step = (x_sorted[-1] - x_sorted[0] + 2 * margin) / self.grid_size
            grid_uniform = (
                torch.arange(
                    self.grid_size + 1, dtype=torch.float32, device=x.device
                ).unsqueeze(1)
                * uniform_step
                + x_sorted[0]
                - margin
            )

            grid = self.grid_eps * grid_uniform + (1 - self.grid_eps) * grid_adaptive
            grid = torch.concatenate(
                [
                    grid[:1]
                    - uniform_step
                    * torch.arange(self.spline_order, 0, -1, device=x.device).unsqueeze(1),
                    grid,
                    grid[-1:]
                    + uniform_step
                    * torch.arange(1, self.spline_order + 1, device=x.device).unsqueeze(1),
                ],
                dim=0,
            )

            self.grid.copy_(grid.T)
            self.spline_weight.data.copy_(self.curve2coeff(x, unreduced_spline_output))

        def regularization_loss(self, regularize_activation=1.0, regularize_entropy=1.0):
            """
            Compute the regularization loss.

            This is a dumb simulation of the original L1 regularization as stated in the
            paper, since the original one requires computing absolutes and entropy from the
            expanded (batch, in_features, out_features) intermediate tensor, which is hidden
            behind the F.linear function if we want an memory efficient implementation.
            """
            l1_fake = self.spline_weight.abs().mean(-1)
            regularization_loss_activation = l1_fake.sum()
            p = l1_fake / regularization_loss_activation
            regularization_loss_entropy = -torch.sum(p * p.log())
            return (
                regularize_activation * regularization_loss_activation
                + regularize_entropy * regularization_loss_entropy
            )

    class KAN(torch.nn.Module):
        def __init__(
            self,
            layers_hidden,
            grid_size=5,
            spline_order=3,
            scale_noise=0.1,
            scale_base=1.0,
            scale_spline=1.0,
            base_activation=torch.nn.SiLU,
            grid_eps=0.02,
            grid_range=[-1, 1],  # noqa: B006
        ):
            super(KAN, self).__init__()
            self.grid_size = grid_size
            self.spline_order = spline_order

            self.layers = torch.nn.ModuleList()
            for in_features, out_features in zip(layers_hidden, layers_hidden[1:]):
                self.layers.append(
                    KANLinear(
                        in_features,
                        out_features,
                        grid_size=grid_size,
                        spline_order=spline_order,
                        scale_noise=scale_noise,
                        scale_base=scale_base,
                        scale_spline=scale_spline,
                        base_activation=base_activation,
                        grid_eps=grid_eps,
                        grid_range=grid_range,
                    )
                )

        def forward(self, x: torch.Tensor, update_grid=False):
            for layer in self.layers:
                if update_grid:
                    layer.update_grid(x)
                x = layer(x)
            return x

        def regularization_loss(self, regularize_activation=1.0, regularize_entropy=1.0):
            return sum(
                layer.regularization_loss(regularize_activation, regularize_entropy)
                for layer in self.layers
            )

    rng = np.random.default_rng(4)
    images = side.data(rng.uniform(-1, 1, (24, 1, 3, 3)).astype(np.float32))
    labels = side.data((rng.integers(0, 3, 24)).astype(np.int64))
    trainloader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels),
                                              batch_size=8)

    # Define model
    model = side.weights(KAN([9, 6, 3]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    # Define optimizer
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    # Define learning rate scheduler
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.8)

    # Define loss
    criterion = torch.nn.CrossEntropyLoss()
    log = []
    for epoch in range(2):  # noqa: B007
        # Train
        model.train()
        for images, labels in trainloader:
            images = images.view(-1, 3 * 3).to(device)
            optimizer.zero_grad()
            output = model(images)
            loss = criterion(output, labels.to(device)) + 1e-3 * model.regularization_loss()
            loss.backward()
            optimizer.step()
            accuracy = (output.argmax(dim=1) == labels.to(device)).float().mean()
            log.append([loss.item(), accuracy.item(), optimizer.param_groups[0]['lr']])
        # Update learning rate
        scheduler.step()
    out["log"] = log
    with torch.no_grad():
        model(images.view(-1, 9)[:6], update_grid=True)
    out["grids"] = [layer.grid for layer in model.layers]
    out["weights"] = dict(model.state_dict())
    return out


def test_efficient_kan():
    run_both(efficient_kan)


# -- 9. DiT (facebookresearch/DiT models.py, train.py, sample.py): modulate, the sinusoidal
#       TimestepEmbedder, LabelEmbedder's token_drop by torch.rand < p and torch.where, adaLN-Zero
#       blocks (chunk(6, dim=1)) over timm's PatchEmbed/Attention/Mlp (written out), a frozen
#       sin-cos pos_embed Parameter copied from NumPy, zero-initialised outputs, unpatchify by
#       einsum('nhwpqc->nchpwq'), forward_with_cfg, train.py's deepcopy EMA with update_ema and
#       requires_grad(ema, False), an epsilon-prediction loss ----------------------------------

def dit(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    F = nn.functional
    out = {}

    # timm.models.vision_transformer's PatchEmbed, Attention and Mlp, as DiT imports them
    class PatchEmbed(nn.Module):
        def __init__(self, img_size, patch_size, in_chans, embed_dim, bias=True):
            super().__init__()
            self.patch_size = (patch_size, patch_size)
            self.grid_size = (img_size // patch_size, img_size // patch_size)
            self.num_patches = self.grid_size[0] * self.grid_size[1]
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size,
                                  bias=bias)
            self.norm = nn.Identity()

        def forward(self, x):
            x = self.proj(x)
            x = x.flatten(2).transpose(1, 2)  # NCHW -> NLC
            x = self.norm(x)
            return x

    class Attention(nn.Module):
        fused_attn: bool = True

        def __init__(self, dim, num_heads=8, qkv_bias=False, attn_drop=0., proj_drop=0.):
            super().__init__()
            assert dim % num_heads == 0, 'dim should be divisible by num_heads'
            self.num_heads = num_heads
            self.head_dim = dim // num_heads
            self.scale = self.head_dim ** -0.5
            self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
            self.q_norm = nn.Identity()
            self.k_norm = nn.Identity()
            self.attn_drop = nn.Dropout(attn_drop)
            self.proj = nn.Linear(dim, dim)
            self.proj_drop = nn.Dropout(proj_drop)

        def forward(self, x):
            B, N, C = x.shape
            qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            q, k = self.q_norm(q), self.k_norm(k)

            if self.fused_attn:
                x = F.scaled_dot_product_attention(
                    q, k, v,
                    dropout_p=self.attn_drop.p if self.training else 0.,
                )
            else:
                q = q * self.scale
                attn = q @ k.transpose(-2, -1)
                attn = attn.softmax(dim=-1)
                attn = self.attn_drop(attn)
                x = attn @ v

            x = x.transpose(1, 2).reshape(B, N, C)
            x = self.proj(x)
            x = self.proj_drop(x)
            return x

    class Mlp(nn.Module):
        def __init__(self, in_features, hidden_features=None, out_features=None,
                     act_layer=nn.GELU, drop=0.):
            super().__init__()
            out_features = out_features or in_features
            hidden_features = hidden_features or in_features
            self.fc1 = nn.Linear(in_features, hidden_features)
            self.act = act_layer()
            self.drop1 = nn.Dropout(drop)
            self.norm = nn.Identity()
            self.fc2 = nn.Linear(hidden_features, out_features)
            self.drop2 = nn.Dropout(drop)

        def forward(self, x):
            x = self.fc1(x)
            x = self.act(x)
            x = self.drop1(x)
            x = self.norm(x)
            x = self.fc2(x)
            x = self.drop2(x)
            return x

    def modulate(x, shift, scale):
        return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)

    class TimestepEmbedder(nn.Module):
        """
        Embeds scalar timesteps into vector representations.
        """
        def __init__(self, hidden_size, frequency_embedding_size=256):
            super().__init__()
            self.mlp = nn.Sequential(
                nn.Linear(frequency_embedding_size, hidden_size, bias=True),
                nn.SiLU(),
                nn.Linear(hidden_size, hidden_size, bias=True),
            )
            self.frequency_embedding_size = frequency_embedding_size

        @staticmethod
        def timestep_embedding(t, dim, max_period=10000):
            """
            Create sinusoidal timestep embeddings.
            :param t: a 1-D Tensor of N indices, one per batch element.
                              These may be fractional.
            :param dim: the dimension of the output.
            :param max_period: controls the minimum frequency of the embeddings.
            :return: an (N, D) Tensor of positional embeddings.
            """
            # https://github.com/openai/glide-text2im/blob/main/glide_text2im/nn.py
            half = dim // 2
            freqs = torch.exp(
                -math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32)
                / half
            ).to(device=t.device)
            args = t[:, None].float() * freqs[None]
            embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
            if dim % 2:
                embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
            return embedding

        def forward(self, t):
            t_freq = self.timestep_embedding(t, self.frequency_embedding_size)
            t_emb = self.mlp(t_freq)
            return t_emb

    class LabelEmbedder(nn.Module):
        """
        Embeds class labels into vector representations. Also handles label dropout for
        classifier-free guidance.
        """
        def __init__(self, num_classes, hidden_size, dropout_prob):
            super().__init__()
            use_cfg_embedding = dropout_prob > 0
            self.embedding_table = nn.Embedding(num_classes + use_cfg_embedding, hidden_size)
            self.num_classes = num_classes
            self.dropout_prob = dropout_prob

        def token_drop(self, labels, force_drop_ids=None):
            """
            Drops labels to enable classifier-free guidance.
            """
            if force_drop_ids is None:
                drop_ids = side.draw(torch.rand, labels.shape[0],
                                     device=labels.device) < self.dropout_prob
            else:
                drop_ids = force_drop_ids == 1
            labels = torch.where(drop_ids, self.num_classes, labels)
            return labels

        def forward(self, labels, train, force_drop_ids=None):
            use_dropout = self.dropout_prob > 0
            if (train and use_dropout) or (force_drop_ids is not None):
                labels = self.token_drop(labels, force_drop_ids)
            embeddings = self.embedding_table(labels)
            return embeddings

    class DiTBlock(nn.Module):
        """
        A DiT block with adaptive layer norm zero (adaLN-Zero) conditioning.
        """
        def __init__(self, hidden_size, num_heads, mlp_ratio=4.0, **block_kwargs):
            super().__init__()
            self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
            self.attn = Attention(hidden_size, num_heads=num_heads, qkv_bias=True,
                                  **block_kwargs)
            self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
            mlp_hidden_dim = int(hidden_size * mlp_ratio)
            approx_gelu = lambda: nn.GELU(approximate="tanh")  # noqa: E731
            self.mlp = Mlp(in_features=hidden_size, hidden_features=mlp_hidden_dim,
                           act_layer=approx_gelu, drop=0)
            self.adaLN_modulation = nn.Sequential(
                nn.SiLU(),
                nn.Linear(hidden_size, 6 * hidden_size, bias=True)
            )

        def forward(self, x, c):
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = \
                self.adaLN_modulation(c).chunk(6, dim=1)
            x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa,
                                                               scale_msa))
            x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp,
                                                              scale_mlp))
            return x

    class FinalLayer(nn.Module):
        """
        The final layer of DiT.
        """
        def __init__(self, hidden_size, patch_size, out_channels):
            super().__init__()
            self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
            self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels,
                                    bias=True)
            self.adaLN_modulation = nn.Sequential(
                nn.SiLU(),
                nn.Linear(hidden_size, 2 * hidden_size, bias=True)
            )

        def forward(self, x, c):
            shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
            x = modulate(self.norm_final(x), shift, scale)
            x = self.linear(x)
            return x

    def get_2d_sincos_pos_embed(embed_dim, grid_size, cls_token=False, extra_tokens=0):
        """
        grid_size: int of the grid height and width
        return:
        pos_embed: [grid_size*grid_size, embed_dim] or [1+grid_size*grid_size, embed_dim]
        (w/ or w/o cls_token)
        """
        grid_h = np.arange(grid_size, dtype=np.float32)
        grid_w = np.arange(grid_size, dtype=np.float32)
        grid = np.meshgrid(grid_w, grid_h)  # here w goes first
        grid = np.stack(grid, axis=0)

        grid = grid.reshape([2, 1, grid_size, grid_size])
        pos_embed = get_2d_sincos_pos_embed_from_grid(embed_dim, grid)
        if cls_token and extra_tokens > 0:
            pos_embed = np.concatenate([np.zeros([extra_tokens, embed_dim]), pos_embed], axis=0)
        return pos_embed

    def get_2d_sincos_pos_embed_from_grid(embed_dim, grid):
        assert embed_dim % 2 == 0

        # use half of dimensions to encode grid_h
        emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])  # (H*W, D/2)
        emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])  # (H*W, D/2)

        emb = np.concatenate([emb_h, emb_w], axis=1)  # (H*W, D)
        return emb

    def get_1d_sincos_pos_embed_from_grid(embed_dim, pos):
        """
        embed_dim: output dimension for each position
        pos: a list of positions to be encoded: size (M,)
        out: (M, D)
        """
        assert embed_dim % 2 == 0
        omega = np.arange(embed_dim // 2, dtype=np.float64)
        omega /= embed_dim / 2.
        omega = 1. / 10000**omega  # (D/2,)

        pos = pos.reshape(-1)  # (M,)
        out = np.einsum('m,d->md', pos, omega)  # (M, D/2), outer product

        emb_sin = np.sin(out)  # (M, D/2)
        emb_cos = np.cos(out)  # (M, D/2)

        emb = np.concatenate([emb_sin, emb_cos], axis=1)  # (M, D)
        return emb

    class DiT(nn.Module):
        """
        Diffusion model with a Transformer backbone.
        """
        def __init__(
            self,
            input_size=32,
            patch_size=2,
            in_channels=4,
            hidden_size=1152,
            depth=28,
            num_heads=16,
            mlp_ratio=4.0,
            class_dropout_prob=0.1,
            num_classes=1000,
            learn_sigma=True,
        ):
            super().__init__()
            self.learn_sigma = learn_sigma
            self.in_channels = in_channels
            self.out_channels = in_channels * 2 if learn_sigma else in_channels
            self.patch_size = patch_size
            self.num_heads = num_heads

            self.x_embedder = PatchEmbed(input_size, patch_size, in_channels, hidden_size,
                                         bias=True)
            self.t_embedder = TimestepEmbedder(hidden_size)
            self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)
            num_patches = self.x_embedder.num_patches
            # Will use fixed sin-cos embedding:
            self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, hidden_size),
                                          requires_grad=False)

            self.blocks = nn.ModuleList([
                DiTBlock(hidden_size, num_heads, mlp_ratio=mlp_ratio) for _ in range(depth)
            ])
            self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
            self.initialize_weights()

        def initialize_weights(self):
            # Initialize transformer layers:
            def _basic_init(module):
                if isinstance(module, nn.Linear):
                    torch.nn.init.xavier_uniform_(module.weight)
                    if module.bias is not None:
                        nn.init.constant_(module.bias, 0)
            self.apply(_basic_init)

            # Initialize (and freeze) pos_embed by sin-cos embedding:
            pos_embed = get_2d_sincos_pos_embed(self.pos_embed.shape[-1],
                                                int(self.x_embedder.num_patches ** 0.5))
            self.pos_embed.data.copy_(torch.from_numpy(pos_embed).float().unsqueeze(0))

            # Initialize patch_embed like nn.Linear (instead of nn.Conv2d):
            w = self.x_embedder.proj.weight.data
            nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
            nn.init.constant_(self.x_embedder.proj.bias, 0)

            # Initialize label embedding table:
            nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)

            # Initialize timestep embedding MLP:
            nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
            nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)

            # Zero-out adaLN modulation layers in DiT blocks:
            for block in self.blocks:
                nn.init.constant_(block.adaLN_modulation[-1].weight, 0)
                nn.init.constant_(block.adaLN_modulation[-1].bias, 0)

            # Zero-out output layers:
            nn.init.constant_(self.final_layer.adaLN_modulation[-1].weight, 0)
            nn.init.constant_(self.final_layer.adaLN_modulation[-1].bias, 0)
            nn.init.constant_(self.final_layer.linear.weight, 0)
            nn.init.constant_(self.final_layer.linear.bias, 0)

        def unpatchify(self, x):
            """
            x: (N, T, patch_size**2 * C)
            imgs: (N, H, W, C)
            """
            c = self.out_channels
            p = self.x_embedder.patch_size[0]
            h = w = int(x.shape[1] ** 0.5)
            assert h * w == x.shape[1]

            x = x.reshape(shape=(x.shape[0], h, w, p, p, c))
            x = torch.einsum('nhwpqc->nchpwq', x)
            imgs = x.reshape(shape=(x.shape[0], c, h * p, h * p))
            return imgs

        def forward(self, x, t, y):
            """
            Forward pass of DiT.
            x: (N, C, H, W) tensor of spatial inputs (images or latent representations of images)
            t: (N,) tensor of diffusion timesteps
            y: (N,) tensor of class labels
            """
            x = self.x_embedder(x) + self.pos_embed  # (N, T, D), where T = H * W / patch_size ** 2
            t = self.t_embedder(t)  # (N, D)
            y = self.y_embedder(y, self.training)  # (N, D)
            c = t + y  # (N, D)
            for block in self.blocks:
                x = block(x, c)  # (N, T, D)
            x = self.final_layer(x, c)  # (N, T, patch_size ** 2 * out_channels)
            x = self.unpatchify(x)  # (N, out_channels, H, W)
            return x

        def forward_with_cfg(self, x, t, y, cfg_scale):
            """
            Forward pass of DiT, but also batches the unconditional forward pass for
            classifier-free guidance.
            """
            # https://github.com/openai/glide-text2im/blob/main/notebooks/text2im.ipynb
            half = x[: len(x) // 2]
            combined = torch.cat([half, half], dim=0)
            model_out = self.forward(combined, t, y)
            # For exact reproducibility reasons, we apply classifier-free guidance on only
            # three channels by default. The standard approach to cfg applies it to all
            # channels. This can be done by uncommenting the following line and commenting-out
            # the line following that.
            # eps, rest = model_out[:, :self.in_channels], model_out[:, self.in_channels:]
            eps, rest = model_out[:, :3], model_out[:, 3:]
            cond_eps, uncond_eps = torch.split(eps, len(eps) // 2, dim=0)
            half_eps = uncond_eps + cfg_scale * (cond_eps - uncond_eps)
            eps = torch.cat([half_eps, half_eps], dim=0)
            return torch.cat([eps, rest], dim=1)

    @torch.no_grad()
    def update_ema(ema_model, model, decay=0.9999):
        """
        Step the EMA model towards the current model.
        """
        ema_params = collections.OrderedDict(ema_model.named_parameters())
        model_params = collections.OrderedDict(model.named_parameters())

        for name, param in model_params.items():
            # TODO: Consider applying only to params that require_grad to avoid small
            # numerical changes of pos_embed
            ema_params[name].mul_(decay).add_(param.data, alpha=1 - decay)

    def requires_grad(model, flag=True):
        """
        Set requires_grad flag for all parameters in a model.
        """
        for p in model.parameters():
            p.requires_grad = flag

    model = side.weights(DiT(input_size=8, patch_size=2, in_channels=4, hidden_size=32,
                             depth=2, num_heads=4, num_classes=5))
    out["pos_embed"] = model.pos_embed
    out["t_freq"] = TimestepEmbedder.timestep_embedding(torch.tensor([0, 10, 999]), 9)
    # Note that parameter initialization is done within the DiT constructor
    ema = copy.deepcopy(model)  # Create an EMA of the model for use after training
    requires_grad(ema, False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0)
    # Prepare models for training:
    update_ema(ema, model, decay=0)  # Ensure EMA is initialized with synced weights
    model.train()  # important! This enables embedding dropout for classifier-free guidance
    ema.eval()  # EMA model should always be in eval mode

    betas = np.linspace(1e-4, 0.02, 1000)
    alphas_cumprod = torch.tensor(np.cumprod(1 - betas), dtype=torch.float32)
    losses = []
    for step in range(3):  # noqa: B007
        x = side.draw(torch.randn, 4, 4, 8, 8)
        y = side.draw(torch.randint, 0, 5, (4,))
        t = side.draw(torch.randint, 0, 1000, (x.shape[0],))
        noise = side.draw(torch.randn_like, x)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x + (1 - a).sqrt() * noise
        model_output = model(x_t, t, y)
        B, C = x.shape[:2]
        assert model_output.shape == (B, C * 2, *x.shape[2:])
        model_output, model_var_values = torch.split(model_output, C, dim=1)
        loss = ((noise - model_output) ** 2).mean(dim=list(range(1, len(noise.shape))))
        loss = loss.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        update_ema(ema, model)
        losses.append(loss.item())
    out["losses"] = losses
    assert not any(p.requires_grad for p in ema.parameters())

    # sample.py's classifier-free guidance, one denoising call
    z = side.draw(torch.randn, 2, 4, 8, 8)
    class_labels = [1, 3]
    y = torch.tensor(class_labels)
    z = torch.cat([z, z], 0)
    y_null = torch.tensor([5] * 2)
    y = torch.cat([y, y_null], 0)
    with torch.no_grad():
        out["cfg"] = ema.forward_with_cfg(z, torch.tensor([500] * 4), y, cfg_scale=4.0)
    out["ema"] = dict(ema.state_dict())
    out["weights"] = dict(model.state_dict())
    return out


def test_dit():
    run_both(dit)


# -- 10. RWKV-4 (BlinkDL/RWKV-LM RWKV-v4/src/model.py): RWKV_TimeMix and RWKV_ChannelMix as
#        torch.jit.ScriptModule subclasses with @torch.jit.script_method, token shift by
#        nn.ZeroPad2d((0, 0, 1, -1)), the "fancy init" written element by element under
#        no_grad, the WKV recurrence (the CUDA kernel's formula, here in torch, numerically
#        stabilised as the kernel is), L2Wrap's custom backward by scatter_, GPT mode checked
#        against RNN mode (one token at a time with carried state) -------------------------

def rwkv4(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    F = nn.functional
    out = {}

    def RUN_CUDA(B, T, C, w, u, k, v):
        """The WKV kernel's forward (cuda/wkv_cuda.cu), on whole tensors: w = -exp(decay)."""
        w = -torch.exp(w.contiguous())
        aa = torch.zeros(B, C)
        bb = torch.zeros(B, C)
        pp = torch.full((B, C), -1e38)
        y = []
        for t in range(T):
            kk, vv = k[:, t], v[:, t]
            ww = u + kk
            p = torch.maximum(pp, ww)
            e1, e2 = torch.exp(pp - p), torch.exp(ww - p)
            y.append((e1 * aa + e2 * vv) / (e1 * bb + e2))
            ww = w + pp
            p = torch.maximum(ww, kk)
            e1, e2 = torch.exp(ww - p), torch.exp(kk - p)
            aa = e1 * aa + e2 * vv
            bb = e1 * bb + e2
            pp = p
        return torch.stack(y, dim=1)

    class L2Wrap(torch.autograd.Function):
        @staticmethod
        def forward(ctx, loss, y):
            ctx.save_for_backward(y)
            return loss

        @staticmethod
        def backward(ctx, grad_output):
            y = ctx.saved_tensors[0]
            # to encourage the logits to be close to 0
            factor = 1e-4 / (y.shape[0] * y.shape[1])
            maxx, ids = torch.max(y, -1, keepdim=True)
            gy = torch.zeros_like(y)
            gy.scatter_(-1, ids, maxx * factor)
            return (grad_output, gy)

    class RWKV_TimeMix(torch.jit.ScriptModule):
        def __init__(self, config, layer_id):
            super().__init__()
            self.layer_id = layer_id
            self.ctx_len = config.ctx_len
            self.n_embd = config.n_embd

            attn_sz = config.n_embd

            with torch.no_grad():  # fancy init
                ratio_0_to_1 = (layer_id / (config.n_layer - 1))  # 0 to 1
                ratio_1_to_almost0 = (1.0 - (layer_id / config.n_layer))  # 1 to ~0

                # fancy time_decay
                decay_speed = torch.ones(attn_sz)
                for h in range(attn_sz):
                    decay_speed[h] = -5 + 8 * (h / (attn_sz - 1)) ** (0.7 + 1.3 * ratio_0_to_1)
                self.time_decay = nn.Parameter(decay_speed)

                # fancy time_first
                zigzag = (torch.tensor([(i + 1) % 3 - 1 for i in range(attn_sz)]) * 0.5)
                self.time_first = nn.Parameter(torch.ones(attn_sz) * math.log(0.3) + zigzag)

                # fancy time_mix
                x = torch.ones(1, 1, config.n_embd)
                for i in range(config.n_embd):
                    x[0, 0, i] = i / config.n_embd
                self.time_mix_k = nn.Parameter(torch.pow(x, ratio_1_to_almost0))
                self.time_mix_v = nn.Parameter(torch.pow(x, ratio_1_to_almost0)
                                               + 0.3 * ratio_0_to_1)
                self.time_mix_r = nn.Parameter(torch.pow(x, 0.5 * ratio_1_to_almost0))

            self.time_shift = nn.ZeroPad2d((0, 0, 1, -1))

            self.key = nn.Linear(config.n_embd, attn_sz, bias=False)
            self.value = nn.Linear(config.n_embd, attn_sz, bias=False)
            self.receptance = nn.Linear(config.n_embd, attn_sz, bias=False)

            self.output = nn.Linear(attn_sz, config.n_embd, bias=False)

            self.key.scale_init = 0
            self.receptance.scale_init = 0
            self.output.scale_init = 0

        @torch.jit.script_method
        def jit_func(self, x):

            # Mix x with the previous timestep to produce xk, xv, xr
            xx = self.time_shift(x)
            xk = x * self.time_mix_k + xx * (1 - self.time_mix_k)
            xv = x * self.time_mix_v + xx * (1 - self.time_mix_v)
            xr = x * self.time_mix_r + xx * (1 - self.time_mix_r)

            # Use xk, xv, xr to produce k, v, r
            k = self.key(xk)
            v = self.value(xv)
            r = self.receptance(xr)
            sr = torch.sigmoid(r)

            return sr, k, v

        def forward(self, x):
            B, T, C = x.size()  # x = (Batch,Time,Channel)

            sr, k, v = self.jit_func(x)

            rwkv = sr * RUN_CUDA(B, T, C, self.time_decay, self.time_first, k, v)
            rwkv = self.output(rwkv)
            return rwkv

    class RWKV_ChannelMix(torch.jit.ScriptModule):
        def __init__(self, config, layer_id):
            super().__init__()
            self.layer_id = layer_id

            self.time_shift = nn.ZeroPad2d((0, 0, 1, -1))

            with torch.no_grad():  # fancy init of time_mix
                ratio_1_to_almost0 = (1.0 - (layer_id / config.n_layer))  # 1 to ~0

                x = torch.ones(1, 1, config.n_embd)
                for i in range(config.n_embd):
                    x[0, 0, i] = i / config.n_embd

                self.time_mix_k = nn.Parameter(torch.pow(x, ratio_1_to_almost0))
                self.time_mix_r = nn.Parameter(torch.pow(x, ratio_1_to_almost0))

            hidden_sz = 4 * config.n_embd
            self.key = nn.Linear(config.n_embd, hidden_sz, bias=False)
            self.receptance = nn.Linear(config.n_embd, config.n_embd, bias=False)
            self.value = nn.Linear(hidden_sz, config.n_embd, bias=False)

            self.value.scale_init = 0
            self.receptance.scale_init = 0

        @torch.jit.script_method
        def forward(self, x):
            xx = self.time_shift(x)
            xk = x * self.time_mix_k + xx * (1 - self.time_mix_k)
            xr = x * self.time_mix_r + xx * (1 - self.time_mix_r)

            k = self.key(xk)
            k = torch.square(torch.relu(k))
            kv = self.value(k)

            rkv = torch.sigmoid(self.receptance(xr)) * kv
            return rkv

    class GPTConfig:
        def __init__(self, vocab_size, ctx_len, **kwargs):
            self.vocab_size = vocab_size
            self.ctx_len = ctx_len
            for k, v in kwargs.items():
                setattr(self, k, v)

    class Block(nn.Module):
        def __init__(self, config, layer_id):
            super().__init__()
            self.config = config
            self.layer_id = layer_id

            self.ln1 = nn.LayerNorm(config.n_embd)
            self.ln2 = nn.LayerNorm(config.n_embd)

            if self.layer_id == 0:
                self.ln0 = nn.LayerNorm(config.n_embd)

            self.att = RWKV_TimeMix(config, layer_id)
            self.ffn = RWKV_ChannelMix(config, layer_id)

        def forward(self, x):
            if self.layer_id == 0:
                x = self.ln0(x)
            x = x + self.att(self.ln1(x))
            x = x + self.ffn(self.ln2(x))
            return x

    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.step = 0
            self.config = config

            self.emb = nn.Embedding(config.vocab_size, config.n_embd)

            self.blocks = nn.Sequential(*[Block(config, i) for i in range(config.n_layer)])

            self.ln_out = nn.LayerNorm(config.n_embd)
            self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

            self.ctx_len = config.ctx_len

        def forward(self, idx, targets=None):
            idx = idx.to(self.emb.weight.device)

            self.step += 1
            B, T = idx.size()
            assert T <= self.ctx_len, "Cannot forward, because len(input) > model ctx_len."

            x = self.emb(idx)
            x = self.blocks(x)
            x = self.ln_out(x)
            x = self.head(x)

            loss = None
            if targets is not None:
                loss = F.cross_entropy(x.view(-1, x.size(-1)), targets.to(x.device).view(-1))

            return L2Wrap.apply(loss, x)

    config = GPTConfig(20, 8, model_type='RWKV', n_layer=2, n_embd=8)
    model = side.weights(GPT(config))
    out["time_decay"] = [b.att.time_decay for b in model.blocks]
    assert isinstance(model.blocks[0].att, torch.jit.ScriptModule)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    data = torch.tensor(np.random.default_rng(5).integers(0, 20, (2, 9)))
    losses = []
    for _ in range(3):
        loss = model(data[:, :-1], data[:, 1:].contiguous())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    out["losses"] = losses
    out["head_grad"] = model.head.weight.grad

    # GPT mode is RNN mode: one token at a time, the shifted token and the WKV state carried
    with torch.no_grad():
        x = model.emb(data[:1])
        gpt = model.blocks(x)
        block = model.blocks[0]
        h = block.ln0(x)
        a = block.ln1(h)
        sr, k, v = block.att.jit_func(a)
        whole = RUN_CUDA(1, 8 + 1, 8, block.att.time_decay, block.att.time_first, k, v)
        steps = torch.cat([RUN_CUDA(1, t + 1, 8, block.att.time_decay, block.att.time_first,
                                    k[:, :t + 1], v[:, :t + 1])[:, -1:] for t in range(9)], 1)
        assert torch.allclose(whole, steps, atol=1e-6)
    out["gpt"] = gpt
    out["weights"] = dict(model.state_dict())
    return out


@pytest.mark.filterwarnings("ignore:`torch.jit.script:DeprecationWarning")
def test_rwkv4():
    run_both(rwkv4)


# -- 11. The Annotated Diffusion Model (huggingface/blog annotated-diffusion.md): the Unet of
#        weight-standardised convolutions (torch.var(unbiased=False), F.conv2d with every
#        argument), GroupNorm blocks with a time scale/shift, LinearAttention and Attention by
#        einsum (amax().detach()), nn.Upsample(mode="nearest") and a space-to-depth Downsample,
#        skip connections by torch.cat, the cosine/linear beta schedules, extract by gather,
#        q_sample, p_losses on the Huber loss and p_sample_loop's ancestral sampling (einops'
#        rearrange/reduce written as view/permute/mean, the one change) ----------------------

def annotated_diffusion(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    F = nn.functional
    out = {}

    def exists(x):
        return x is not None

    def default(val, d):
        if exists(val):
            return val
        return d() if inspect.isfunction(d) else d

    class Residual(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x, *args, **kwargs):
            return self.fn(x, *args, **kwargs) + x

    def Upsample(dim, dim_out=None):
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(dim, default(dim_out, dim), 3, padding=1),
        )

    class Rearrange(nn.Module):
        """einops' Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2)."""

        def forward(self, x):
            b, c, h, w = x.shape
            x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
            return x.reshape(b, c * 4, h // 2, w // 2)

    def Downsample(dim, dim_out=None):
        # No More Strided Convolutions or Pooling
        return nn.Sequential(
            Rearrange(),
            nn.Conv2d(dim * 4, default(dim_out, dim), 1),
        )

    class SinusoidalPositionEmbeddings(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.dim = dim

        def forward(self, time):
            device = time.device
            half_dim = self.dim // 2
            embeddings = math.log(10000) / (half_dim - 1)
            embeddings = torch.exp(torch.arange(half_dim, device=device) * -embeddings)
            embeddings = time[:, None] * embeddings[None, :]
            embeddings = torch.cat((embeddings.sin(), embeddings.cos()), dim=-1)
            return embeddings

    class WeightStandardizedConv2d(nn.Conv2d):
        """
        https://arxiv.org/abs/1903.10520
        weight standardization purportedly works synergistically with group normalization
        """

        def forward(self, x):
            eps = 1e-5 if x.dtype == torch.float32 else 1e-3

            weight = self.weight
            # reduce(weight, "o ... -> o 1 1 1", "mean") and partial(torch.var, unbiased=False)
            mean = weight.mean(dim=(1, 2, 3), keepdim=True)
            var = torch.var(weight, dim=(1, 2, 3), keepdim=True, unbiased=False)
            normalized_weight = (weight - mean) * (var + eps).rsqrt()

            return F.conv2d(
                x,
                normalized_weight,
                self.bias,
                self.stride,
                self.padding,
                self.dilation,
                self.groups,
            )

    class Block(nn.Module):
        def __init__(self, dim, dim_out, groups=8):
            super().__init__()
            self.proj = WeightStandardizedConv2d(dim, dim_out, 3, padding=1)
            self.norm = nn.GroupNorm(groups, dim_out)
            self.act = nn.SiLU()

        def forward(self, x, scale_shift=None):
            x = self.proj(x)
            x = self.norm(x)

            if exists(scale_shift):
                scale, shift = scale_shift
                x = x * (scale + 1) + shift

            x = self.act(x)
            return x

    class ResnetBlock(nn.Module):
        """https://arxiv.org/abs/1512.03385"""

        def __init__(self, dim, dim_out, *, time_emb_dim=None, groups=8):
            super().__init__()
            self.mlp = (
                nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2))
                if exists(time_emb_dim)
                else None
            )

            self.block1 = Block(dim, dim_out, groups=groups)
            self.block2 = Block(dim_out, dim_out, groups=groups)
            self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

        def forward(self, x, time_emb=None):
            scale_shift = None
            if exists(self.mlp) and exists(time_emb):
                time_emb = self.mlp(time_emb)
                time_emb = time_emb[:, :, None, None]  # rearrange(time_emb, "b c -> b c 1 1")
                scale_shift = time_emb.chunk(2, dim=1)

            h = self.block1(x, scale_shift=scale_shift)
            h = self.block2(h)
            return h + self.res_conv(x)

    class Attention(nn.Module):
        def __init__(self, dim, heads=4, dim_head=32):
            super().__init__()
            self.scale = dim_head**-0.5
            self.heads = heads
            hidden_dim = dim_head * heads
            self.to_qkv = nn.Conv2d(dim, hidden_dim * 3, 1, bias=False)
            self.to_out = nn.Conv2d(hidden_dim, dim, 1)

        def forward(self, x):
            b, c, h, w = x.shape
            qkv = self.to_qkv(x).chunk(3, dim=1)
            # rearrange(t, "b (h c) x y -> b h c (x y)", h=self.heads)
            q, k, v = map(lambda t: t.reshape(b, self.heads, -1, h * w), qkv)
            q = q * self.scale

            sim = torch.einsum("b h d i, b h d j -> b h i j", q, k)
            sim = sim - sim.amax(dim=-1, keepdim=True).detach()
            attn = sim.softmax(dim=-1)

            out = torch.einsum("b h i j, b h d j -> b h i d", attn, v)
            # rearrange(out, "b h (x y) d -> b (h d) x y", x=h, y=w)
            out = out.permute(0, 1, 3, 2).reshape(b, -1, h, w)
            return self.to_out(out)

    class LinearAttention(nn.Module):
        def __init__(self, dim, heads=4, dim_head=32):
            super().__init__()
            self.scale = dim_head**-0.5
            self.heads = heads
            hidden_dim = dim_head * heads
            self.to_qkv = nn.Conv2d(dim, hidden_dim * 3, 1, bias=False)

            self.to_out = nn.Sequential(nn.Conv2d(hidden_dim, dim, 1),
                                        nn.GroupNorm(1, dim))

        def forward(self, x):
            b, c, h, w = x.shape
            qkv = self.to_qkv(x).chunk(3, dim=1)
            q, k, v = map(lambda t: t.reshape(b, self.heads, -1, h * w), qkv)

            q = q.softmax(dim=-2)
            k = k.softmax(dim=-1)

            q = q * self.scale
            context = torch.einsum("b h d n, b h e n -> b h d e", k, v)

            out = torch.einsum("b h d e, b h d n -> b h e n", context, q)
            # rearrange(out, "b h c (x y) -> b (h c) x y", h=self.heads, x=h, y=w)
            out = out.reshape(b, -1, h, w)
            return self.to_out(out)

    class PreNorm(nn.Module):
        def __init__(self, dim, fn):
            super().__init__()
            self.fn = fn
            self.norm = nn.GroupNorm(1, dim)

        def forward(self, x):
            x = self.norm(x)
            return self.fn(x)

    class Unet(nn.Module):
        def __init__(
            self,
            dim,
            init_dim=None,
            out_dim=None,
            dim_mults=(1, 2, 4, 8),
            channels=3,
            self_condition=False,
            resnet_block_groups=4,
        ):
            super().__init__()

            # determine dimensions
            self.channels = channels
            self.self_condition = self_condition
            input_channels = channels * (2 if self_condition else 1)

            init_dim = default(init_dim, dim)
            # changed to 1 and 0 from 7,3
            self.init_conv = nn.Conv2d(input_channels, init_dim, 1, padding=0)

            dims = [init_dim, *map(lambda m: dim * m, dim_mults)]
            in_out = list(zip(dims[:-1], dims[1:]))

            block_klass = functools.partial(ResnetBlock, groups=resnet_block_groups)

            # time embeddings
            time_dim = dim * 4

            self.time_mlp = nn.Sequential(
                SinusoidalPositionEmbeddings(dim),
                nn.Linear(dim, time_dim),
                nn.GELU(),
                nn.Linear(time_dim, time_dim),
            )

            # layers
            self.downs = nn.ModuleList([])
            self.ups = nn.ModuleList([])
            num_resolutions = len(in_out)

            for ind, (dim_in, dim_out) in enumerate(in_out):
                is_last = ind >= (num_resolutions - 1)

                self.downs.append(
                    nn.ModuleList(
                        [
                            block_klass(dim_in, dim_in, time_emb_dim=time_dim),
                            block_klass(dim_in, dim_in, time_emb_dim=time_dim),
                            Residual(PreNorm(dim_in, LinearAttention(dim_in))),
                            Downsample(dim_in, dim_out)
                            if not is_last
                            else nn.Conv2d(dim_in, dim_out, 3, padding=1),
                        ]
                    )
                )

            mid_dim = dims[-1]
            self.mid_block1 = block_klass(mid_dim, mid_dim, time_emb_dim=time_dim)
            self.mid_attn = Residual(PreNorm(mid_dim, Attention(mid_dim)))
            self.mid_block2 = block_klass(mid_dim, mid_dim, time_emb_dim=time_dim)

            for ind, (dim_in, dim_out) in enumerate(reversed(in_out)):
                is_last = ind == (len(in_out) - 1)

                self.ups.append(
                    nn.ModuleList(
                        [
                            block_klass(dim_out + dim_in, dim_out, time_emb_dim=time_dim),
                            block_klass(dim_out + dim_in, dim_out, time_emb_dim=time_dim),
                            Residual(PreNorm(dim_out, LinearAttention(dim_out))),
                            Upsample(dim_out, dim_in)
                            if not is_last
                            else nn.Conv2d(dim_out, dim_in, 3, padding=1),
                        ]
                    )
                )

            self.out_dim = default(out_dim, channels)

            self.final_res_block = block_klass(dim * 2, dim, time_emb_dim=time_dim)
            self.final_conv = nn.Conv2d(dim, self.out_dim, 1)

        def forward(self, x, time, x_self_cond=None):
            if self.self_condition:
                x_self_cond = default(x_self_cond, lambda: torch.zeros_like(x))
                x = torch.cat((x_self_cond, x), dim=1)

            x = self.init_conv(x)
            r = x.clone()

            t = self.time_mlp(time)

            h = []

            for block1, block2, attn, downsample in self.downs:
                x = block1(x, t)
                h.append(x)

                x = block2(x, t)
                x = attn(x)
                h.append(x)

                x = downsample(x)

            x = self.mid_block1(x, t)
            x = self.mid_attn(x)
            x = self.mid_block2(x, t)

            for block1, block2, attn, upsample in self.ups:
                x = torch.cat((x, h.pop()), dim=1)
                x = block1(x, t)

                x = torch.cat((x, h.pop()), dim=1)
                x = block2(x, t)
                x = attn(x)

                x = upsample(x)

            x = torch.cat((x, r), dim=1)

            x = self.final_res_block(x, t)
            return self.final_conv(x)

    def cosine_beta_schedule(timesteps, s=0.008):
        """
        cosine schedule as proposed in https://arxiv.org/abs/2102.09672
        """
        steps = timesteps + 1
        x = torch.linspace(0, timesteps, steps)
        alphas_cumprod = torch.cos(((x / timesteps) + s) / (1 + s) * torch.pi * 0.5) ** 2
        alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
        betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
        return torch.clip(betas, 0.0001, 0.9999)

    def linear_beta_schedule(timesteps):
        beta_start = 0.0001
        beta_end = 0.02
        return torch.linspace(beta_start, beta_end, timesteps)

    timesteps = 20
    out["cosine"] = cosine_beta_schedule(timesteps)

    # define beta schedule
    betas = linear_beta_schedule(timesteps=timesteps)

    # define alphas
    alphas = 1. - betas
    alphas_cumprod = torch.cumprod(alphas, axis=0)
    alphas_cumprod_prev = F.pad(alphas_cumprod[:-1], (1, 0), value=1.0)
    sqrt_recip_alphas = torch.sqrt(1.0 / alphas)

    # calculations for diffusion q(x_t | x_{t-1}) and others
    sqrt_alphas_cumprod = torch.sqrt(alphas_cumprod)
    sqrt_one_minus_alphas_cumprod = torch.sqrt(1. - alphas_cumprod)

    # calculations for posterior q(x_{t-1} | x_t, x_0)
    posterior_variance = betas * (1. - alphas_cumprod_prev) / (1. - alphas_cumprod)

    def extract(a, t, x_shape):
        batch_size = t.shape[0]
        out = a.gather(-1, t.cpu())
        return out.reshape(batch_size, *((1,) * (len(x_shape) - 1))).to(t.device)

    # forward diffusion (using the nice property)
    def q_sample(x_start, t, noise=None):
        if noise is None:
            noise = side.draw(torch.randn_like, x_start)

        sqrt_alphas_cumprod_t = extract(sqrt_alphas_cumprod, t, x_start.shape)
        sqrt_one_minus_alphas_cumprod_t = extract(
            sqrt_one_minus_alphas_cumprod, t, x_start.shape
        )

        return sqrt_alphas_cumprod_t * x_start + sqrt_one_minus_alphas_cumprod_t * noise

    def p_losses(denoise_model, x_start, t, noise=None, loss_type="l1"):
        if noise is None:
            noise = side.draw(torch.randn_like, x_start)

        x_noisy = q_sample(x_start=x_start, t=t, noise=noise)
        predicted_noise = denoise_model(x_noisy, t)

        if loss_type == 'l1':
            loss = F.l1_loss(noise, predicted_noise)
        elif loss_type == 'l2':
            loss = F.mse_loss(noise, predicted_noise)
        elif loss_type == "huber":
            loss = F.smooth_l1_loss(noise, predicted_noise)
        else:
            raise NotImplementedError()

        return loss

    @torch.no_grad()
    def p_sample(model, x, t, t_index):
        betas_t = extract(betas, t, x.shape)
        sqrt_one_minus_alphas_cumprod_t = extract(
            sqrt_one_minus_alphas_cumprod, t, x.shape
        )
        sqrt_recip_alphas_t = extract(sqrt_recip_alphas, t, x.shape)

        # Equation 11 in the paper
        # Use our model (noise predictor) to predict the mean
        model_mean = sqrt_recip_alphas_t * (
            x - betas_t * model(x, t) / sqrt_one_minus_alphas_cumprod_t
        )

        if t_index == 0:
            return model_mean
        else:
            posterior_variance_t = extract(posterior_variance, t, x.shape)
            noise = side.draw(torch.randn_like, x)
            # Algorithm 2 line 4:
            return model_mean + torch.sqrt(posterior_variance_t) * noise

    # Algorithm 2 (including returning all images)
    @torch.no_grad()
    def p_sample_loop(model, shape):
        device = next(model.parameters()).device

        b = shape[0]
        # start from pure noise (for each example in the batch)
        img = side.draw(torch.randn, shape, device=device)
        imgs = []

        for i in reversed(range(0, timesteps, 10)):
            img = p_sample(model, img, torch.full((b,), i, device=device, dtype=torch.long), i)
            imgs.append(img.cpu().numpy())
        return imgs

    image_size, channels, batch_size = 8, 1, 8
    device = "cuda" if torch.cuda.is_available() else "cpu"

    model = side.weights(Unet(
        dim=image_size,
        channels=channels,
        dim_mults=(1, 2,),
        resnet_block_groups=4,
    ))
    model.to(device)

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = side.data(np.random.default_rng(6).uniform(-1, 1, (8, 1, 8, 8)).astype(np.float32))
    dataloader = torch.utils.data.DataLoader(images, batch_size=batch_size)
    losses = []
    for epoch in range(1):  # noqa: B007
        for step, batch in enumerate(dataloader):  # noqa: B007
            optimizer.zero_grad()

            batch_size = batch.shape[0]
            batch = batch.to(device)

            # Algorithm 1 line 3: sample t uniformally for every example in the batch
            t = side.draw(torch.randint, 0, timesteps, (batch_size,), device=device).long()

            loss = p_losses(model, batch, t, loss_type="huber")
            losses.append(loss.item())

            loss.backward()
            optimizer.step()
    out["losses"] = losses
    out["samples"] = p_sample_loop(model, shape=(2, channels, image_size, image_size))
    out["weights"] = dict(model.state_dict())
    return out


def test_annotated_diffusion():
    run_both(annotated_diffusion)


# -- 12. YOLOv5 (ultralytics/yolov5 models/yolo.py, utils/general.py, utils/metrics.py,
#        utils/loss.py): the Detect head (view/permute, _make_grid by meshgrid(indexing='ij'),
#        sigmoid().split((2, 2, nc + 1), 4), torch.Size comparisons), bbox_iou with CIoU
#        (atan, alpha under no_grad), box_iou, ComputeLoss's box, objectness and class terms
#        (tobj[b, a, gj, gi] = iou, smooth_BCE targets by t[range(n), tcls] = cp,
#        BCEWithLogitsLoss(pos_weight=...)), and non_max_suppression with torchvision's nms
#        written by hand (a greedy loop over argsort(descending=True)) ------------------------

def yolov5(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    out = {}

    class Detect(nn.Module):
        # YOLOv5 Detect head for detection models
        stride = None  # strides computed during build

        def __init__(self, nc=80, anchors=(), ch=(), inplace=True):  # detection layer
            super().__init__()
            self.nc = nc  # number of classes
            self.no = nc + 5  # number of outputs per anchor
            self.nl = len(anchors)  # number of detection layers
            self.na = len(anchors[0]) // 2  # number of anchors
            self.grid = [torch.empty(0) for _ in range(self.nl)]  # init grid
            self.anchor_grid = [torch.empty(0) for _ in range(self.nl)]  # init anchor grid
            # shape(nl,na,2)
            self.register_buffer('anchors', torch.tensor(anchors).float().view(self.nl, -1, 2))
            self.m = nn.ModuleList(nn.Conv2d(x, self.no * self.na, 1) for x in ch)  # output conv
            self.inplace = inplace  # use inplace ops (e.g. slice assignment)

        def forward(self, x):
            z = []  # inference output
            for i in range(self.nl):
                x[i] = self.m[i](x[i])  # conv
                bs, _, ny, nx = x[i].shape  # x(bs,255,20,20) to x(bs,3,20,20,85)
                x[i] = x[i].view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()

                if not self.training:  # inference
                    if self.grid[i].shape[2:4] != x[i].shape[2:4]:
                        self.grid[i], self.anchor_grid[i] = self._make_grid(nx, ny, i)

                    xy, wh, conf = x[i].sigmoid().split((2, 2, self.nc + 1), 4)
                    xy = (xy * 2 + self.grid[i]) * self.stride[i]  # xy
                    wh = (wh * 2) ** 2 * self.anchor_grid[i]  # wh
                    y = torch.cat((xy, wh, conf), 4)
                    z.append(y.view(bs, self.na * nx * ny, self.no))

            return x if self.training else (torch.cat(z, 1), x)

        def _make_grid(self, nx=20, ny=20, i=0):
            d = self.anchors[i].device
            t = self.anchors[i].dtype
            shape = 1, self.na, ny, nx, 2  # grid shape
            y, x = torch.arange(ny, device=d, dtype=t), torch.arange(nx, device=d, dtype=t)
            yv, xv = torch.meshgrid(y, x, indexing='ij')
            # add grid offset, i.e. y = 2.0 * x - 0.5
            grid = torch.stack((xv, yv), 2).expand(shape) - 0.5
            anchor_grid = (self.anchors[i] * self.stride[i]).view((1, self.na, 1, 1, 2)
                                                                  ).expand(shape)
            return grid, anchor_grid

    def xywh2xyxy(x):
        # Convert nx4 boxes from [x, y, w, h] to [x1, y1, x2, y2] where xy1=top-left,
        # xy2=bottom-right
        y = x.clone() if isinstance(x, torch.Tensor) else np.copy(x)
        y[..., 0] = x[..., 0] - x[..., 2] / 2  # top left x
        y[..., 1] = x[..., 1] - x[..., 3] / 2  # top left y
        y[..., 2] = x[..., 0] + x[..., 2] / 2  # bottom right x
        y[..., 3] = x[..., 1] + x[..., 3] / 2  # bottom right y
        return y

    def bbox_iou(box1, box2, xywh=True, GIoU=False, DIoU=False, CIoU=False, eps=1e-7):
        # Returns Intersection over Union (IoU) of box1(1,4) to box2(n,4)

        # Get the coordinates of bounding boxes
        if xywh:  # transform from xywh to xyxy
            (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.chunk(4, -1), box2.chunk(4, -1)
            w1_, h1_, w2_, h2_ = w1 / 2, h1 / 2, w2 / 2, h2 / 2
            b1_x1, b1_x2, b1_y1, b1_y2 = x1 - w1_, x1 + w1_, y1 - h1_, y1 + h1_
            b2_x1, b2_x2, b2_y1, b2_y2 = x2 - w2_, x2 + w2_, y2 - h2_, y2 + h2_
        else:  # x1, y1, x2, y2 = box1
            b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)
            b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
            w1, h1 = b1_x2 - b1_x1, (b1_y2 - b1_y1).clamp(eps)
            w2, h2 = b2_x2 - b2_x1, (b2_y2 - b2_y1).clamp(eps)

        # Intersection area
        inter = (b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp(0) * \
                (b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)).clamp(0)

        # Union Area
        union = w1 * h1 + w2 * h2 - inter + eps

        # IoU
        iou = inter / union
        if CIoU or DIoU or GIoU:
            # convex (smallest enclosing box) width
            cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1)
            ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1)  # convex height
            if CIoU or DIoU:  # Distance or Complete IoU https://arxiv.org/abs/1911.08287v1
                c2 = cw ** 2 + ch ** 2 + eps  # convex diagonal squared
                # center dist ** 2
                rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2
                        + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
                if CIoU:  # https://github.com/Zzh-tju/DIoU-SSD-pytorch/blob/master/utils/box/box_utils.py#L47
                    v = (4 / math.pi ** 2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)).pow(2)
                    with torch.no_grad():
                        alpha = v / (v - iou + (1 + eps))
                    return iou - (rho2 / c2 + v * alpha)  # CIoU
                return iou - rho2 / c2  # DIoU
            c_area = cw * ch + eps  # convex area
            return iou - (c_area - union) / c_area  # GIoU https://arxiv.org/pdf/1902.09630.pdf
        return iou  # IoU

    def box_iou(box1, box2, eps=1e-7):
        # inter(N,M) = (rb(N,M,2) - lt(N,M,2)).clamp(0).prod(2)
        (a1, a2), (b1, b2) = box1.unsqueeze(1).chunk(2, 2), box2.unsqueeze(0).chunk(2, 2)
        inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp(0).prod(2)

        # IoU = inter / (area1 + area2 - inter)
        return inter / ((a2 - a1).prod(2) + (b2 - b1).prod(2) - inter + eps)

    def nms(boxes, scores, iou_threshold):
        """torchvision.ops.nms, by hand: greedy, highest score first."""
        order = scores.argsort(descending=True)
        keep = []
        while order.numel() > 0:
            i = order[0]
            keep.append(i)
            if order.numel() == 1:
                break
            ious = box_iou(boxes[i][None], boxes[order[1:]])[0]
            order = order[1:][ious <= iou_threshold]
        return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long)

    def non_max_suppression(prediction, conf_thres=0.25, iou_thres=0.45, classes=None,
                            agnostic=False, multi_label=False, labels=(), max_det=300, nm=0):
        """Non-Maximum Suppression (NMS) on inference results to reject overlapping detections

        Returns:
             list of detections, on (n,6) tensor per image [xyxy, conf, cls]
        """
        # Checks
        assert 0 <= conf_thres <= 1, \
            f'Invalid Confidence threshold {conf_thres}, valid values are between 0.0 and 1.0'
        assert 0 <= iou_thres <= 1, f'Invalid IoU {iou_thres}, valid values are between 0.0 and 1.0'
        # YOLOv5 model in validation model, output = (inference_out, loss_out)
        if isinstance(prediction, (list, tuple)):
            prediction = prediction[0]  # select only inference output

        bs = prediction.shape[0]  # batch size
        nc = prediction.shape[2] - nm - 5  # number of classes
        xc = prediction[..., 4] > conf_thres  # candidates

        # Settings
        max_wh = 7680  # (pixels) maximum box width and height
        max_nms = 30000  # maximum number of boxes into torchvision.ops.nms()
        multi_label &= nc > 1  # multiple labels per box (adds 0.5ms/img)

        mi = 5 + nc  # mask start index
        output = [torch.zeros((0, 6 + nm), device=prediction.device)] * bs
        for xi, x in enumerate(prediction):  # image index, image inference
            x = x[xc[xi]]  # confidence

            # If none remain process next image
            if not x.shape[0]:
                continue

            # Compute conf
            x[:, 5:] *= x[:, 4:5]  # conf = obj_conf * cls_conf

            # Box/Mask
            box = xywh2xyxy(x[:, :4])  # center_x, center_y, width, height) to (x1, y1, x2, y2)
            mask = x[:, mi:]  # zero columns if no masks

            # Detections matrix nx6 (xyxy, conf, cls)
            if multi_label:
                i, j = (x[:, 5:mi] > conf_thres).nonzero(as_tuple=False).T
                x = torch.cat((box[i], x[i, 5 + j, None], j[:, None].float(), mask[i]), 1)
            else:  # best class only
                conf, j = x[:, 5:mi].max(1, keepdim=True)
                x = torch.cat((box, conf, j.float(), mask), 1)[conf.view(-1) > conf_thres]

            # Filter by class
            if classes is not None:
                x = x[(x[:, 5:6] == torch.tensor(classes, device=x.device)).any(1)]

            # Check shape
            n = x.shape[0]  # number of boxes
            if not n:  # no boxes
                continue
            # sort by confidence and remove excess boxes
            x = x[x[:, 4].argsort(descending=True)[:max_nms]]

            # Batched NMS
            c = x[:, 5:6] * (0 if agnostic else max_wh)  # classes
            boxes, scores = x[:, :4] + c, x[:, 4]  # boxes (offset by class), scores
            i = nms(boxes, scores, iou_thres)  # NMS
            i = i[:max_det]  # limit detections

            output[xi] = x[i]

        return output

    def smooth_BCE(eps=0.1):  # https://github.com/ultralytics/yolov3/issues/238#issuecomment-598028441
        # return positive, negative label smoothing BCE targets
        return 1.0 - 0.5 * eps, 0.5 * eps

    anchors = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119]]
    head = side.weights(Detect(nc=3, anchors=anchors, ch=(8, 16)))
    head.stride = torch.tensor([8., 16.])
    head.anchors /= head.stride.view(-1, 1, 1)
    feats = [side.data(np.random.default_rng(7).standard_normal((2, 8, 4, 4)).astype(np.float32)),
             side.data(np.random.default_rng(8).standard_normal((2, 16, 2, 2)).astype(np.float32))]

    # ComputeLoss.__call__ on targets build_targets would give (image, anchor, gj, gi, class)
    BCEcls = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0]))
    BCEobj = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0]))
    cp, cn = smooth_BCE(eps=0.0)
    balance = [4.0, 1.0]
    hyp = {'box': 0.05, 'obj': 1.0, 'cls': 0.5}
    indices = [(torch.tensor([0, 1, 1]), torch.tensor([0, 2, 1]), torch.tensor([1, 3, 0]),
                torch.tensor([2, 0, 3])),
               (torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([0, 1]),
                torch.tensor([1, 1]))]
    tbox = [torch.tensor([[0.3, 0.6, 1.5, 2.0], [0.7, 0.2, 3.0, 1.0], [0.5, 0.5, 2.5, 4.0]]),
            torch.tensor([[0.2, 0.4, 1.0, 1.5], [0.9, 0.1, 2.0, 3.0]])]
    tcls = [torch.tensor([0, 2, 1]), torch.tensor([1, 1])]
    anch = [head.anchors[0][indices[0][1]], head.anchors[1][indices[1][1]]]
    optimizer = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.937, nesterov=True)
    losses = []
    for _ in range(2):
        p = head([f.clone() for f in feats])
        lcls = torch.zeros(1)  # class loss
        lbox = torch.zeros(1)  # box loss
        lobj = torch.zeros(1)  # object loss
        for i, pi in enumerate(p):  # layer index, layer predictions
            b, a, gj, gi = indices[i]  # image, anchor, gridy, gridx
            tobj = torch.zeros(pi.shape[:4], dtype=pi.dtype)  # target obj

            n = b.shape[0]  # number of targets
            if n:
                # target-subset of predictions
                pxy, pwh, _, pcls = pi[b, a, gj, gi].split((2, 2, 1, head.nc), 1)

                # Regression
                pxy = pxy.sigmoid() * 2 - 0.5
                pwh = (pwh.sigmoid() * 2) ** 2 * anch[i]
                pbox = torch.cat((pxy, pwh), 1)  # predicted box
                iou = bbox_iou(pbox, tbox[i], CIoU=True).squeeze()  # iou(prediction, target)
                lbox += (1.0 - iou).mean()  # iou loss

                # Objectness
                iou = iou.detach().clamp(0).type(tobj.dtype)
                tobj[b, a, gj, gi] = iou  # iou ratio

                # Classification
                t = torch.full_like(pcls, cn)  # targets
                t[range(n), tcls[i]] = cp
                lcls += BCEcls(pcls, t)  # BCE

            obji = BCEobj(pi[..., 4], tobj)
            lobj += obji * balance[i]  # obj loss

        lbox *= hyp['box']
        lobj *= hyp['obj']
        lcls *= hyp['cls']
        bs = tobj.shape[0]  # batch size
        loss = (lbox + lobj + lcls) * bs
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(torch.cat((lbox, lobj, lcls)).detach())
    out["losses"] = losses

    head.eval()
    with torch.no_grad():
        pred, _ = head([f.clone() for f in feats])
    out["pred"] = pred
    out["grid"] = head.grid[0]
    # every box confident enough for a few to survive
    pred[..., 4] = pred[..., 4] * 3
    detections = non_max_suppression(pred, conf_thres=0.5, iou_thres=0.3)
    out["detections"] = [d for d in detections]
    out["multi"] = non_max_suppression(pred, conf_thres=0.4, iou_thres=0.5, multi_label=True,
                                       classes=[0, 2])
    out["giou"] = bbox_iou(tbox[0], tbox[0][:1], GIoU=True)
    out["diou_xyxy"] = bbox_iou(xywh2xyxy(tbox[0]), xywh2xyxy(tbox[0][1:2]), xywh=False,
                                DIoU=True)
    out["weights"] = dict(head.state_dict())
    return out


def test_yolov5_head_loss_nms():
    run_both(yolov5)


# -- 13. minbpe (karpathy/minbpe basic.py, base.py) feeding a model: BasicTokenizer's train,
#        encode and decode (bytes, get_stats, merge), the encoded lines as tensors through
#        pad_sequence(batch_first=True), Embedding(padding_idx=0), pack_padded_sequence with
#        enforce_sorted=False into a GRU, masked mean pooling, and
#        CrossEntropyLoss(label_smoothing=0.1) ---------------------------------------------

def get_stats(ids, counts=None):
    """
    Given a list of integers, return a dictionary of counts of consecutive pairs
    Example: [1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    Optionally allows to update an existing dictionary of counts
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):  # iterate consecutive elements
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, idx):
    """
    In the list of integers (ids), replace all consecutive occurrences
    of pair with the new integer token idx
    Example: ids=[1, 2, 3, 1, 2], pair=(1, 2), idx=4 -> [4, 3, 4]
    """
    newids = []
    i = 0
    while i < len(ids):
        # if not at the very last position AND the pair matches, replace it
        if ids[i] == pair[0] and i < len(ids) - 1 and ids[i + 1] == pair[1]:
            newids.append(idx)
            i += 2
        else:
            newids.append(ids[i])
            i += 1
    return newids


class BasicTokenizer:
    """minbpe's BasicTokenizer (its Tokenizer base's save/load left out)."""

    def __init__(self):
        self.merges = {}  # (int, int) -> int
        self.vocab = {idx: bytes([idx]) for idx in range(256)}  # int -> bytes

    def train(self, text, vocab_size, verbose=False):
        assert vocab_size >= 256
        num_merges = vocab_size - 256

        # input text preprocessing
        text_bytes = text.encode("utf-8")  # raw bytes
        ids = list(text_bytes)  # list of integers in range 0..255

        # iteratively merge the most common pairs to create new tokens
        merges = {}  # (int, int) -> int
        vocab = {idx: bytes([idx]) for idx in range(256)}  # int -> bytes
        for i in range(num_merges):
            # count up the number of times every consecutive pair appears
            stats = get_stats(ids)
            # find the pair with the highest count
            pair = max(stats, key=stats.get)
            # mint a new token: assign it the next available id
            idx = 256 + i
            # replace all occurrences of pair in ids with idx
            ids = merge(ids, pair, idx)
            # save the merge
            merges[pair] = idx
            vocab[idx] = vocab[pair[0]] + vocab[pair[1]]

        # save class variables
        self.merges = merges  # used in encode()
        self.vocab = vocab  # used in decode()

    def decode(self, ids):
        # given ids (list of integers), return Python string
        text_bytes = b"".join(self.vocab[idx] for idx in ids)
        text = text_bytes.decode("utf-8", errors="replace")
        return text

    def encode(self, text):
        # given a string text, return the token ids
        text_bytes = text.encode("utf-8")  # raw bytes
        ids = list(text_bytes)  # list of integers in range 0..255
        while len(ids) >= 2:
            # find the pair with the lowest merge index
            stats = get_stats(ids)
            pair = min(stats, key=lambda p: self.merges.get(p, float("inf")))
            # subtle: if there are no more merges available, the key will
            # result in an inf for every single pair, and the min will be
            # just the first pair in the list, arbitrarily
            # we can detect this terminating case by a membership check
            if pair not in self.merges:
                break  # nothing else can be merged anymore
            # otherwise let's merge the best pair (lowest merge index)
            idx = self.merges[pair]
            ids = merge(ids, pair, idx)
        return ids


def minbpe_classifier(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    out = {}
    tokenizer = BasicTokenizer()
    tokenizer.train(TEXT, 256 + 24)
    lines = [line for line in TEXT.split("\n") if line]
    encoded = [tokenizer.encode(line) for line in lines]
    assert [tokenizer.decode(ids) for ids in encoded] == lines
    out["lengths"] = [len(ids) for ids in encoded]
    labels = torch.tensor([int(line.endswith(":")) for line in lines])

    class Classifier(nn.Module):
        def __init__(self, vocab_size, dim, n_classes):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
            self.rnn = nn.GRU(dim, dim, batch_first=True)
            self.head = nn.Linear(2 * dim, n_classes)

        def forward(self, padded, lengths):
            emb = self.embedding(padded)
            packed = nn.utils.rnn.pack_padded_sequence(emb, lengths, batch_first=True,
                                                       enforce_sorted=False)
            _, h = self.rnn(packed)
            mask = (padded != 0).unsqueeze(-1).float()
            mean = (emb * mask).sum(1) / mask.sum(1).clamp(min=1)
            return self.head(torch.cat([h[-1], mean], dim=-1))

    # token ids shifted by one so that 0 pads
    seqs = [torch.tensor(ids) + 1 for ids in encoded]
    padded = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=0)
    lengths = torch.tensor([len(s) for s in seqs])
    out["padded"] = padded
    model = side.weights(Classifier(len(tokenizer.vocab) + 1, 8, 2))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = criterion(model(padded, lengths), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    out["losses"] = losses
    out["weights"] = dict(model.state_dict())
    return out


def test_minbpe_classifier():
    run_both(minbpe_classifier)


# -- 14. a training loop without Lightning, its metrics by hand as torchmetrics keeps them
#        (update/compute/reset on running sums), a confusion matrix by bincount, macro
#        precision/recall/F1 with nan_to_num, a running MeanMetric, random_split by a seeded
#        Generator, early stopping on the validation loss and the best weights kept by
#        copy.deepcopy(model.state_dict()) ----------------------------------------------------

def metrics_loop(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    F = nn.functional
    out = {}

    class MulticlassStats:
        """torchmetrics' StatScores: running confusion counts, computed on demand."""

        def __init__(self, num_classes):
            self.num_classes = num_classes
            self.reset()

        def reset(self):
            self.confmat = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)

        @torch.no_grad()
        def update(self, preds, target):
            if preds.is_floating_point():
                preds = preds.argmax(dim=-1)
            unique_mapping = target.to(torch.long) * self.num_classes + preds.to(torch.long)
            bins = torch.bincount(unique_mapping, minlength=self.num_classes ** 2)
            self.confmat += bins.reshape(self.num_classes, self.num_classes)

        def compute(self):
            tp = self.confmat.diag()
            fp = self.confmat.sum(0) - tp
            fn = self.confmat.sum(1) - tp
            accuracy = tp.sum() / self.confmat.sum()
            precision = torch.nan_to_num(tp / (tp + fp), nan=0.0)
            recall = torch.nan_to_num(tp / (tp + fn), nan=0.0)
            f1 = torch.nan_to_num(2 * precision * recall / (precision + recall), nan=0.0)
            return {"acc": accuracy, "precision": precision.mean(), "recall": recall.mean(),
                    "f1": f1.mean()}

    class MeanMetric:
        def __init__(self):
            self.reset()

        def reset(self):
            self.mean_value = torch.tensor(0.0)
            self.weight = torch.tensor(0.0)

        def update(self, value, weight=1.0):
            value = torch.as_tensor(value, dtype=torch.float32)
            self.mean_value += value * weight
            self.weight += weight

        def compute(self):
            return self.mean_value / self.weight

    rng = np.random.default_rng(9)
    X = side.data(rng.standard_normal((48, 5)).astype(np.float32))
    y = side.data((rng.standard_normal(48) > 0).astype(np.int64) + (rng.standard_normal(48) > 1))
    dataset = torch.utils.data.TensorDataset(X, y)
    train_set, val_set = side.split(torch.utils.data.random_split(
        dataset, [36, 12], generator=torch.Generator().manual_seed(42)))
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=12)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=6)

    model = side.weights(nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    train_stats, val_stats = MulticlassStats(3), MulticlassStats(3)
    train_loss, val_loss = MeanMetric(), MeanMetric()
    best, best_state, patience, bad_epochs = float("inf"), None, 2, 0
    history = []
    for epoch in range(8):  # noqa: B007
        model.train()
        for xb, yb in train_loader:
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_loss.update(loss.detach(), weight=len(yb))
            train_stats.update(logits, yb)
        model.eval()
        with torch.no_grad():
            for xb, yb in val_loader:
                logits = model(xb)
                val_loss.update(F.cross_entropy(logits, yb), weight=len(yb))
                val_stats.update(logits, yb)
        epoch_val = val_loss.compute().item()
        history.append([train_loss.compute(), epoch_val, *train_stats.compute().values(),
                        *val_stats.compute().values()])
        for metric in (train_stats, val_stats, train_loss, val_loss):
            metric.reset()
        if epoch_val < best:
            best, bad_epochs = epoch_val, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
            if bad_epochs >= patience:
                break
    out["history"] = history
    out["stopped_at"] = epoch
    model.load_state_dict(best_state)
    out["best"] = dict(model.state_dict())
    return out


def test_metrics_loop_by_hand():
    run_both(metrics_loop)


# -- 15. what the programs above print: print(model), print(optimizer) with its two groups and
#        a scheduler's initial_lr, print(loss), print(x), x.shape, the dtype's repr and the
#        groups' keys, as torch prints them (the library's name swapped) ----------------------

def printed(torch) -> list[str]:
    nn = torch.nn
    model = nn.Sequential(
        nn.Embedding(10, 4, padding_idx=0), nn.LayerNorm(4, eps=1e-6), nn.Linear(4, 8),
        nn.GELU(approximate='tanh'), nn.Dropout(0.1),
        nn.ModuleList([nn.Linear(8, 8, bias=False), nn.ReLU(inplace=True)]),
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.GroupNorm(2, 8),
        nn.Upsample(scale_factor=2, mode='nearest'), nn.ZeroPad2d((0, 0, 1, -1)),
        nn.Conv1d(4, 4, 3, groups=4, padding=2), nn.SiLU(),
        nn.TransformerEncoderLayer(8, 2, 16, batch_first=True))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": [p for p in model.parameters() if p.dim() < 2],
                                    "weight_decay": 0.0}],
                                  lr=3e-4, betas=(0.9, 0.95), fused=False)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    x = torch.arange(6.).reshape(2, 3)
    w = torch.ones(3, requires_grad=True)
    loss = torch.nn.functional.mse_loss(x @ w, torch.tensor([3.0, 12.5]))
    return [repr(model), repr(optimizer), str(list(optimizer.param_groups[0].keys())),
            str(scheduler.get_last_lr()), str(x), str(x.shape), repr(x.dtype), str(w),
            f"{loss:.4f}", str(loss.detach()), str(x.long() > 2), str(torch.randn(0, 3)),
            str(x.double() / 7), str(torch.tensor([1e-6, 1.0]))]


def test_printed_as_torch():
    for got, want in zip(printed(dlg), printed(torch)):
        assert got == want.replace("torch.", "dlg.")


# -- 16. Whisper (openai/whisper model.py, audio.py, decoding's kv cache): log_mel_spectrogram
#        by torch.stft with a Hann window, |stft[..., :-1]|**2 through mel filters, log10 and the
#        max - 8 floor; pad_or_trim; LayerNorm/Linear/Conv1d subclasses casting to the input's
#        dtype (Conv1d through _conv_forward), sinusoids, MultiHeadAttention with the sdpa
#        switch and disable_sdpa, a mask buffer by fill_(-inf).triu_(1), the decoder's cache
#        filled by forward hooks keyed by module (install_kv_cache_hooks), greedy decoding with
#        and without the cache, one training step (the sparse alignment_heads buffer left out:
#        dlg refuses to_sparse by name, checked here) -------------------------------------------

def whisper(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    F = nn.functional
    Tensor = torch.Tensor
    out = {}
    SAMPLE_RATE, N_FFT, HOP_LENGTH, N_SAMPLES = 1600, 32, 8, 160  # noqa: F841

    def pad_or_trim(array, length: int = N_SAMPLES, *, axis: int = -1):
        """
        Pad or trim the audio array to N_SAMPLES, as expected by the encoder.
        """
        if torch.is_tensor(array):
            if array.shape[axis] > length:
                array = array.index_select(
                    dim=axis, index=torch.arange(length, device=array.device)
                )

            if array.shape[axis] < length:
                pad_widths = [(0, 0)] * array.ndim
                pad_widths[axis] = (0, length - array.shape[axis])
                array = F.pad(array, [pad for sizes in pad_widths[::-1] for pad in sizes])
        return array

    def mel_filters(device, n_mels: int):
        """librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels), here as triangles
        over the bins (whisper loads them from mel_filters.npz)."""
        bins = N_FFT // 2 + 1
        centers = np.linspace(0, bins - 1, n_mels + 2)
        k = np.arange(bins)[None, :]
        low, mid, high = centers[:-2, None], centers[1:-1, None], centers[2:, None]
        tri = np.maximum(0, np.minimum((k - low) / (mid - low), (high - k) / (high - mid)))
        return torch.from_numpy(tri.astype(np.float32)).to(device)

    def log_mel_spectrogram(audio, n_mels: int = 80, padding: int = 0, device=None):
        if not torch.is_tensor(audio):
            audio = torch.from_numpy(audio)

        if device is not None:
            audio = audio.to(device)
        if padding > 0:
            audio = F.pad(audio, (0, padding))
        window = torch.hann_window(N_FFT).to(audio.device)
        stft = torch.stft(audio, N_FFT, HOP_LENGTH, window=window, return_complex=True)
        magnitudes = stft[..., :-1].abs() ** 2

        filters = mel_filters(audio.device, n_mels)
        mel_spec = filters @ magnitudes

        log_spec = torch.clamp(mel_spec, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        log_spec = (log_spec + 4.0) / 4.0
        return log_spec

    @dataclass
    class ModelDimensions:
        n_mels: int
        n_audio_ctx: int
        n_audio_state: int
        n_audio_head: int
        n_audio_layer: int
        n_vocab: int
        n_text_ctx: int
        n_text_state: int
        n_text_head: int
        n_text_layer: int

    class LayerNorm(nn.LayerNorm):
        def forward(self, x: Tensor) -> Tensor:
            return super().forward(x.float()).type(x.dtype)

    class Linear(nn.Linear):
        def forward(self, x: Tensor) -> Tensor:
            return F.linear(
                x,
                self.weight.to(x.dtype),
                None if self.bias is None else self.bias.to(x.dtype),
            )

    class Conv1d(nn.Conv1d):
        def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
            return super()._conv_forward(
                x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype)
            )

    def sinusoids(length, channels, max_timescale=10000):
        """Returns sinusoids for positional embedding"""
        assert channels % 2 == 0
        log_timescale_increment = np.log(max_timescale) / (channels // 2 - 1)
        inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
        scaled_time = torch.arange(length)[:, np.newaxis] * inv_timescales[np.newaxis, :]
        return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)

    @contextmanager
    def disable_sdpa():
        prev_state = MultiHeadAttention.use_sdpa
        try:
            MultiHeadAttention.use_sdpa = False
            yield
        finally:
            MultiHeadAttention.use_sdpa = prev_state

    SDPA_AVAILABLE = True

    class MultiHeadAttention(nn.Module):
        use_sdpa = True

        def __init__(self, n_state: int, n_head: int):
            super().__init__()
            self.n_head = n_head
            self.query = Linear(n_state, n_state)
            self.key = Linear(n_state, n_state, bias=False)
            self.value = Linear(n_state, n_state)
            self.out = Linear(n_state, n_state)

        def forward(
            self,
            x: Tensor,
            xa: Tensor | None = None,
            mask: Tensor | None = None,
            kv_cache: dict | None = None,
        ):
            q = self.query(x)

            if kv_cache is None or xa is None or self.key not in kv_cache:
                # hooks, if installed (i.e. kv_cache is not None), will prepend the cached kv
                # tensors; otherwise, perform key/value projections for self- or
                # cross-attention as usual.
                k = self.key(x if xa is None else xa)
                v = self.value(x if xa is None else xa)
            else:
                # for cross-attention, calculate keys and values once and reuse in subsequent
                # calls.
                k = kv_cache[self.key]
                v = kv_cache[self.value]

            wv, qk = self.qkv_attention(q, k, v, mask)
            return self.out(wv), qk

        def qkv_attention(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None):
            n_batch, n_ctx, n_state = q.shape
            scale = (n_state // self.n_head) ** -0.25
            q = q.view(*q.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
            k = k.view(*k.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
            v = v.view(*v.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)

            if SDPA_AVAILABLE and MultiHeadAttention.use_sdpa:
                a = F.scaled_dot_product_attention(
                    q, k, v, is_causal=mask is not None and n_ctx > 1
                )
                out = a.permute(0, 2, 1, 3).flatten(start_dim=2)
                qk = None
            else:
                qk = (q * scale) @ (k * scale).transpose(-1, -2)
                if mask is not None:
                    qk = qk + mask[:n_ctx, :n_ctx]
                qk = qk.float()

                w = F.softmax(qk, dim=-1).to(q.dtype)
                out = (w @ v).permute(0, 2, 1, 3).flatten(start_dim=2)
                qk = qk.detach()

            return out, qk

    class ResidualAttentionBlock(nn.Module):
        def __init__(self, n_state: int, n_head: int, cross_attention: bool = False):
            super().__init__()

            self.attn = MultiHeadAttention(n_state, n_head)
            self.attn_ln = LayerNorm(n_state)

            self.cross_attn = (
                MultiHeadAttention(n_state, n_head) if cross_attention else None
            )
            self.cross_attn_ln = LayerNorm(n_state) if cross_attention else None

            n_mlp = n_state * 4
            self.mlp = nn.Sequential(
                Linear(n_state, n_mlp), nn.GELU(), Linear(n_mlp, n_state)
            )
            self.mlp_ln = LayerNorm(n_state)

        def forward(
            self,
            x: Tensor,
            xa: Tensor | None = None,
            mask: Tensor | None = None,
            kv_cache: dict | None = None,
        ):
            x = x + self.attn(self.attn_ln(x), mask=mask, kv_cache=kv_cache)[0]
            if self.cross_attn:
                x = x + self.cross_attn(self.cross_attn_ln(x), xa, kv_cache=kv_cache)[0]
            x = x + self.mlp(self.mlp_ln(x))
            return x

    class AudioEncoder(nn.Module):
        def __init__(
            self, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_layer: int
        ):
            super().__init__()
            self.conv1 = Conv1d(n_mels, n_state, kernel_size=3, padding=1)
            self.conv2 = Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
            self.register_buffer("positional_embedding", sinusoids(n_ctx, n_state))

            self.blocks = nn.ModuleList(
                [ResidualAttentionBlock(n_state, n_head) for _ in range(n_layer)]
            )
            self.ln_post = LayerNorm(n_state)

        def forward(self, x: Tensor):
            """
            x : torch.Tensor, shape = (batch_size, n_mels, n_ctx)
                the mel spectrogram of the audio
            """
            x = F.gelu(self.conv1(x))
            x = F.gelu(self.conv2(x))
            x = x.permute(0, 2, 1)

            assert x.shape[1:] == self.positional_embedding.shape, "incorrect audio shape"
            x = (x + self.positional_embedding).to(x.dtype)

            for block in self.blocks:
                x = block(x)

            x = self.ln_post(x)
            return x

    class TextDecoder(nn.Module):
        def __init__(
            self, n_vocab: int, n_ctx: int, n_state: int, n_head: int, n_layer: int
        ):
            super().__init__()

            self.token_embedding = nn.Embedding(n_vocab, n_state)
            self.positional_embedding = nn.Parameter(torch.empty(n_ctx, n_state))

            self.blocks = nn.ModuleList(
                [
                    ResidualAttentionBlock(n_state, n_head, cross_attention=True)
                    for _ in range(n_layer)
                ]
            )
            self.ln = LayerNorm(n_state)

            mask = torch.empty(n_ctx, n_ctx).fill_(-np.inf).triu_(1)
            self.register_buffer("mask", mask, persistent=False)

        def forward(self, x: Tensor, xa: Tensor, kv_cache: dict | None = None):
            """
            x : torch.LongTensor, shape = (batch_size, <= n_ctx)
                the text tokens
            xa : torch.Tensor, shape = (batch_size, n_audio_ctx, n_audio_state)
                the encoded audio features to be attended on
            """
            offset = next(iter(kv_cache.values())).shape[1] if kv_cache else 0
            x = (
                self.token_embedding(x)
                + self.positional_embedding[offset : offset + x.shape[-1]]
            )
            x = x.to(xa.dtype)

            for block in self.blocks:
                x = block(x, xa, mask=self.mask, kv_cache=kv_cache)

            x = self.ln(x)
            logits = (
                x @ torch.transpose(self.token_embedding.weight.to(x.dtype), 0, 1)
            ).float()

            return logits

    class Whisper(nn.Module):
        def __init__(self, dims: ModelDimensions):
            super().__init__()
            self.dims = dims
            self.encoder = AudioEncoder(
                self.dims.n_mels,
                self.dims.n_audio_ctx,
                self.dims.n_audio_state,
                self.dims.n_audio_head,
                self.dims.n_audio_layer,
            )
            self.decoder = TextDecoder(
                self.dims.n_vocab,
                self.dims.n_text_ctx,
                self.dims.n_text_state,
                self.dims.n_text_head,
                self.dims.n_text_layer,
            )
            # use the last half among the decoder layers for time alignment by default;
            # to use a specific set of heads, see `set_alignment_heads()` below.
            all_heads = torch.zeros(
                self.dims.n_text_layer, self.dims.n_text_head, dtype=torch.bool
            )
            all_heads[self.dims.n_text_layer // 2 :] = True
            # self.register_buffer("alignment_heads", all_heads.to_sparse(), persistent=False)
            if side.on_torch:
                assert all_heads.to_sparse().is_sparse
            else:
                with pytest.raises(dlg.DlgTypeError, match="dlg has no sparse tensors"):
                    all_heads.to_sparse()

        def embed_audio(self, mel: Tensor):
            return self.encoder(mel)

        def logits(self, tokens: Tensor, audio_features: Tensor):
            return self.decoder(tokens, audio_features)

        def forward(self, mel: Tensor, tokens: Tensor) -> dict[str, Tensor]:
            return self.decoder(tokens, self.encoder(mel))

        @property
        def device(self):
            return next(self.parameters()).device

        def install_kv_cache_hooks(self, cache: dict | None = None):
            """
            The `MultiHeadAttention` module optionally accepts `kv_cache` which stores the
            key and value tensors calculated for the previous positions. This method returns
            a dictionary that stores all caches, and the necessary hooks for the key and
            value projection modules that save the intermediate tensors to be reused during
            later calculations.
            """
            cache = {**cache} if cache is not None else {}
            hooks = []

            def save_to_cache(module, _, output):
                if module not in cache or output.shape[1] > self.dims.n_text_ctx:
                    # save as-is, for the first token or cross attention
                    cache[module] = output
                else:
                    cache[module] = torch.cat([cache[module], output], dim=1).detach()
                return cache[module]

            def install_hooks(layer: nn.Module):
                if isinstance(layer, MultiHeadAttention):
                    hooks.append(layer.key.register_forward_hook(save_to_cache))
                    hooks.append(layer.value.register_forward_hook(save_to_cache))

            self.decoder.apply(install_hooks)
            return cache, hooks

    audio = side.data(np.sin(np.arange(150) * 0.3).astype(np.float32)
                      + 0.1 * np.random.default_rng(10).standard_normal(150).astype(np.float32))
    audio = pad_or_trim(audio)
    mel = log_mel_spectrogram(audio, n_mels=8)
    out["mel"] = mel
    dims = ModelDimensions(n_mels=8, n_audio_ctx=10, n_audio_state=16, n_audio_head=2,
                           n_audio_layer=1, n_vocab=12, n_text_ctx=8, n_text_state=16,
                           n_text_head=2, n_text_layer=2)
    model = Whisper(dims)
    with torch.no_grad():
        model.decoder.positional_embedding.normal_(0, 0.02)
    model = side.weights(model)
    mel = mel[None]

    # one training step, as a fine-tuning script takes it
    tokens = torch.tensor([[1, 5, 7, 3, 9, 2]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    logits = model(mel, tokens[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, dims.n_vocab), tokens[:, 1:].reshape(-1))
    loss.backward()
    optimizer.step()
    out["loss"] = loss

    # greedy decoding, with the decoder's key/value cache filled by forward hooks
    model.eval()
    with torch.no_grad():
        audio_features = model.embed_audio(mel)
        cache, hooks = model.install_kv_cache_hooks()
        tokens = torch.tensor([[1]])
        for i in range(5):
            logits = model.decoder(tokens if i == 0 else tokens[:, -1:], audio_features,
                                   kv_cache=cache)
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=-1)
        for hook in hooks:
            hook.remove()
        out["tokens"] = tokens
        out["cache_sizes"] = sorted(v.shape[1] for v in cache.values())
        # without the cache, on the whole sequence, the same logits (sdpa and manual paths)
        full = model.logits(tokens[:, :-1], audio_features)
        with disable_sdpa():
            manual = model.logits(tokens[:, :-1], audio_features)
        assert torch.allclose(full, manual, atol=1e-5)
        assert (full.argmax(-1) == tokens[:, 1:]).all()
        out["full"] = full
    out["weights"] = dict(model.state_dict())
    return out


def test_whisper():
    run_both(whisper)


# -- 17. T5 (huggingface/transformers modeling_t5.py, modeling_utils.py): T5LayerNorm (variance
#        in float32, no mean), the relative position bucket (abs, torch.log of a float position,
#        -inf cast to long for position 0 and discarded by torch.where, torch.min against
#        full_like), compute_bias through an Embedding of buckets, unscaled attention with the
#        bias added, get_extended_attention_mask's (1 - mask) * finfo(dtype).min and the causal
#        mask by repeat and <=, the gated-gelu feed-forward, trained by torch.optim.Adafactor --

def t5(side: Side5) -> dict:
    torch = side.lib
    nn = torch.nn
    out = {}

    class T5LayerNorm(nn.Module):
        def __init__(self, hidden_size, eps=1e-6):
            """
            Construct a layernorm module in the T5 style. No bias and no subtraction of mean.
            """
            super().__init__()
            self.weight = nn.Parameter(torch.ones(hidden_size))
            self.variance_epsilon = eps

        def forward(self, hidden_states):
            # T5 uses a layer_norm which only scales and doesn't shift, which is also known as
            # Root Mean Square Layer Normalization https://arxiv.org/abs/1910.07467 thus
            # variance is calculated w/o mean and there is no bias. Additionally we want to make
            # sure that the accumulation for half-precision inputs is done in fp32

            variance = hidden_states.to(torch.float32).pow(2).mean(-1, keepdim=True)
            hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)

            # convert into half-precision if necessary
            if self.weight.dtype in [torch.float16, torch.bfloat16]:
                hidden_states = hidden_states.to(self.weight.dtype)

            return self.weight * hidden_states

    class NewGELUActivation(nn.Module):
        def forward(self, input):
            return 0.5 * input * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi)
                                                   * (input + 0.044715 * torch.pow(input, 3.0))))

    class T5DenseGatedActDense(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
            self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
            self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
            self.dropout = nn.Dropout(config.dropout_rate)
            self.act = NewGELUActivation()

        def forward(self, hidden_states):
            hidden_gelu = self.act(self.wi_0(hidden_states))
            hidden_linear = self.wi_1(hidden_states)
            hidden_states = hidden_gelu * hidden_linear
            hidden_states = self.dropout(hidden_states)
            hidden_states = self.wo(hidden_states)
            return hidden_states

    class T5Attention(nn.Module):
        def __init__(self, config, has_relative_attention_bias=False):
            super().__init__()
            self.is_decoder = config.is_decoder
            self.has_relative_attention_bias = has_relative_attention_bias
            self.relative_attention_num_buckets = config.relative_attention_num_buckets
            self.relative_attention_max_distance = config.relative_attention_max_distance
            self.d_model = config.d_model
            self.key_value_proj_dim = config.d_kv
            self.n_heads = config.num_heads
            self.dropout = config.dropout_rate
            self.inner_dim = self.n_heads * self.key_value_proj_dim

            # Mesh TensorFlow initialization to avoid scaling before softmax
            self.q = nn.Linear(self.d_model, self.inner_dim, bias=False)
            self.k = nn.Linear(self.d_model, self.inner_dim, bias=False)
            self.v = nn.Linear(self.d_model, self.inner_dim, bias=False)
            self.o = nn.Linear(self.inner_dim, self.d_model, bias=False)

            if self.has_relative_attention_bias:
                self.relative_attention_bias = nn.Embedding(self.relative_attention_num_buckets,
                                                            self.n_heads)

        @staticmethod
        def _relative_position_bucket(relative_position, bidirectional=True, num_buckets=32,
                                      max_distance=128):
            """
            Adapted from Mesh Tensorflow:
            https://github.com/tensorflow/mesh/blob/0cb87fe07da627bf0b7e60475d59f95ed6b5be3d/mesh_tensorflow/transformer/transformer_layers.py#L593
            """
            relative_buckets = 0
            if bidirectional:
                num_buckets //= 2
                relative_buckets += (relative_position > 0).to(torch.long) * num_buckets
                relative_position = torch.abs(relative_position)
            else:
                relative_position = -torch.min(relative_position,
                                               torch.zeros_like(relative_position))
            # now relative_position is in the range [0, inf)

            # half of the buckets are for exact increments in positions
            max_exact = num_buckets // 2
            is_small = relative_position < max_exact

            # The other half of the buckets are for logarithmically bigger bins in positions up
            # to max_distance
            relative_position_if_large = max_exact + (
                torch.log(relative_position.float() / max_exact)
                / math.log(max_distance / max_exact)
                * (num_buckets - max_exact)
            ).to(torch.long)
            relative_position_if_large = torch.min(
                relative_position_if_large,
                torch.full_like(relative_position_if_large, num_buckets - 1)
            )

            relative_buckets += torch.where(is_small, relative_position,
                                            relative_position_if_large)
            return relative_buckets

        def compute_bias(self, query_length, key_length, device=None):
            """Compute binned relative position bias"""
            if device is None:
                device = self.relative_attention_bias.weight.device
            context_position = torch.arange(query_length, dtype=torch.long,
                                            device=device)[:, None]
            memory_position = torch.arange(key_length, dtype=torch.long, device=device)[None, :]
            # shape (query_length, key_length)
            relative_position = memory_position - context_position
            relative_position_bucket = self._relative_position_bucket(
                relative_position,  # shape (query_length, key_length)
                bidirectional=(not self.is_decoder),
                num_buckets=self.relative_attention_num_buckets,
                max_distance=self.relative_attention_max_distance,
            )
            # shape (query_length, key_length, num_heads)
            values = self.relative_attention_bias(relative_position_bucket)
            # shape (1, num_heads, query_length, key_length)
            values = values.permute([2, 0, 1]).unsqueeze(0)
            return values

        def forward(self, hidden_states, mask=None, position_bias=None):
            batch_size, seq_length = hidden_states.shape[:2]
            query_states = self.q(hidden_states).view(batch_size, -1, self.n_heads,
                                                      self.key_value_proj_dim).transpose(1, 2)
            key_states = self.k(hidden_states).view(batch_size, -1, self.n_heads,
                                                    self.key_value_proj_dim).transpose(1, 2)
            value_states = self.v(hidden_states).view(batch_size, -1, self.n_heads,
                                                      self.key_value_proj_dim).transpose(1, 2)

            # compute scores, equivalent of torch.einsum("bnqd,bnkd->bnqk", query_states,
            # key_states), compatible with onnx op>9
            scores = torch.matmul(query_states, key_states.transpose(3, 2))

            if position_bias is None:
                key_length = key_states.shape[-2]
                if not self.has_relative_attention_bias:
                    position_bias = torch.zeros(
                        (1, self.n_heads, seq_length, key_length), device=scores.device,
                        dtype=scores.dtype
                    )
                else:
                    position_bias = self.compute_bias(seq_length, key_length,
                                                      device=scores.device)

                if mask is not None:
                    causal_mask = mask[:, :, :, : key_states.shape[-2]]
                    position_bias = position_bias + causal_mask

            position_bias_masked = position_bias
            scores += position_bias_masked

            # (batch_size, n_heads, seq_length, key_length)
            attn_weights = nn.functional.softmax(scores.float(), dim=-1).type_as(scores)
            attn_weights = nn.functional.dropout(attn_weights, p=self.dropout,
                                                 training=self.training)

            attn_output = torch.matmul(attn_weights, value_states)

            attn_output = attn_output.transpose(1, 2).contiguous()
            attn_output = attn_output.view(batch_size, -1, self.inner_dim)
            attn_output = self.o(attn_output)

            return attn_output, position_bias

    class T5Block(nn.Module):
        def __init__(self, config, has_relative_attention_bias=False):
            super().__init__()
            self.attention = T5Attention(config, has_relative_attention_bias)
            self.layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
            self.ff_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
            self.ff = T5DenseGatedActDense(config)
            self.dropout = nn.Dropout(config.dropout_rate)

        def forward(self, hidden_states, mask=None, position_bias=None):
            normed = self.layer_norm(hidden_states)
            attention_output, position_bias = self.attention(normed, mask, position_bias)
            hidden_states = hidden_states + self.dropout(attention_output)
            hidden_states = hidden_states + self.dropout(self.ff(self.ff_norm(hidden_states)))
            return hidden_states, position_bias

    def get_extended_attention_mask(attention_mask, input_shape, is_decoder, dtype):
        if attention_mask.dim() == 3:
            extended_attention_mask = attention_mask[:, None, :, :]
        elif attention_mask.dim() == 2:
            # Provided a padding mask of dimensions [batch_size, seq_length]
            # - if the model is a decoder, apply a causal mask in addition to the padding mask
            # - if the model is an encoder, make the mask broadcastable to
            #   [batch_size, num_heads, seq_length, seq_length]
            if is_decoder:
                batch_size, seq_length = input_shape
                seq_ids = torch.arange(seq_length, device=attention_mask.device)
                causal_mask = seq_ids[None, None, :].repeat(batch_size, seq_length, 1) \
                    <= seq_ids[None, :, None]
                causal_mask = causal_mask.to(attention_mask.dtype)
                extended_attention_mask = causal_mask[:, None, :, :] \
                    * attention_mask[:, None, None, :]
            else:
                extended_attention_mask = attention_mask[:, None, None, :]
        else:
            raise ValueError(
                f"Wrong shape for input_ids (shape {input_shape}) or attention_mask (shape "
                f"{attention_mask.shape})"
            )

        # Since attention_mask is 1.0 for positions we want to attend and 0.0 for masked
        # positions, this operation will create a tensor which is 0.0 for positions we want to
        # attend and the dtype's smallest value for masked positions.
        extended_attention_mask = extended_attention_mask.to(dtype=dtype)  # fp16 compatibility
        extended_attention_mask = (1.0 - extended_attention_mask) * torch.finfo(dtype).min
        return extended_attention_mask

    class Config:
        d_model, d_kv, d_ff, num_heads, num_layers = 16, 4, 32, 4, 2
        relative_attention_num_buckets, relative_attention_max_distance = 8, 16
        dropout_rate, layer_norm_epsilon = 0.0, 1e-6

    class T5Stack(nn.Module):
        def __init__(self, config, vocab_size, is_decoder):
            super().__init__()
            config.is_decoder = is_decoder
            self.is_decoder = is_decoder
            self.embed_tokens = nn.Embedding(vocab_size, config.d_model)
            self.block = nn.ModuleList([T5Block(config, has_relative_attention_bias=bool(i == 0))
                                        for i in range(config.num_layers)])
            self.final_layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
            self.lm_head = nn.Linear(config.d_model, vocab_size, bias=False)

        def forward(self, input_ids, attention_mask):
            hidden_states = self.embed_tokens(input_ids)
            mask = get_extended_attention_mask(attention_mask, input_ids.shape, self.is_decoder,
                                               hidden_states.dtype)
            position_bias = None
            for layer in self.block:
                hidden_states, position_bias = layer(hidden_states, mask, position_bias)
            hidden_states = self.final_layer_norm(hidden_states)
            # Rescale output before projecting on vocab (tied embeddings)
            hidden_states = hidden_states * (Config.d_model ** -0.5)
            return self.lm_head(hidden_states), position_bias

    relative_position = torch.arange(40)[None, :] - torch.arange(40)[:, None]
    out["buckets"] = T5Attention._relative_position_bucket(relative_position, True, 32, 128)
    out["causal_buckets"] = T5Attention._relative_position_bucket(relative_position, False, 8, 16)
    input_ids = torch.tensor([[3, 7, 2, 9, 4, 0, 0], [5, 1, 8, 8, 6, 2, 11]])
    attention_mask = (input_ids != 0).long()
    losses = []
    for is_decoder in (False, True):
        model = side.weights(T5Stack(Config(), 12, is_decoder))
        optimizer = torch.optim.Adafactor(model.parameters(), lr=1e-2)
        for _ in range(2):
            logits, bias = model(input_ids, attention_mask)
            loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 12),
                                               input_ids[:, 1:].reshape(-1), ignore_index=0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        out[f"bias{is_decoder}"] = bias
        out[f"weights{is_decoder}"] = dict(model.state_dict())
    out["losses"] = losses
    return out


def test_t5_relative_bias_and_masks():
    run_both(t5)
