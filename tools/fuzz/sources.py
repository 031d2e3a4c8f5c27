"""Random .dlg sources: derivations of dlg.lark itself, and mutations of the shipped models.

Every generator is a function of one `random.Random`, so a case is replayed from its seed alone.
The derivations walk the rules Lark compiled from the grammar (`Lark.rules`), so a grammar
change reaches the fuzzer without edits here; past a depth budget each nonterminal takes its
shortest expansion, so every derivation ends. Names are drawn from the builtins, the models' own
words and a few shapes, so a fair share of sources get past the parser into the elaborator.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Callable
from functools import cache
from pathlib import Path

from lark import Lark
from lark.grammar import NonTerminal, Rule, Terminal

from dlg.functions import FUNCTIONS
from dlg.grammar.parser import GRAMMAR

ROOT = Path(__file__).resolve().parent.parent.parent
PRELUDE = ROOT / "dlg" / "grammar" / "prelude.dlg"


@cache
def seeds() -> tuple[str, ...]:
    """The shipped models: the texts mutations start from."""
    return tuple(p.read_text() for p in sorted((ROOT / "models").glob("*.dlg")))


@cache
def code_seeds() -> tuple[str, ...]:
    """The models without comments: word-level edits then land in code, not prose."""
    return tuple(re.sub(r"[ \t]*#[^\n]*", "", text) for text in seeds())


# ---- grammar derivations ----------------------------------------------------------------------
KEYWORDS = {"import", "model", "train", "layer", "def", "input", "param", "buffer", "output",
            "forward", "metric", "update", "emit", "return", "if", "else", "assert", "for", "in",
            "scan", "carry", "or", "and", "not", "true", "false", "none"}
WORD = re.compile(r'[A-Za-z_]\w*(?:\{\w+\}\w*)?|\d+\.\d*(?:e-?\d+)?|\d+|"[^"]*"')


@cache
def names() -> tuple[str, ...]:
    """Builtin function names, every word of the models and the prelude, and dtype names."""
    words = {m.group() for text in seeds() + (PRELUDE.read_text(),)
             for m in WORD.finditer(text) if re.fullmatch(r"[A-Za-z_]\w*", m.group())}
    pool = words | set(FUNCTIONS) | {"f32", "f64", "i64", "i32", "bool", "N", "T", "x", "y"}
    return tuple(sorted(pool - KEYWORDS))


def _terminal(name: str, rng: random.Random) -> str:
    """Text for one token of the grammar's regex terminals (keywords come from their string)."""
    if name == "NAME":
        return rng.choice(names())
    if name == "TEMPLATE_NAME":
        return rng.choice(["w_l{l}", "b_{i}{d}", "weight_ih_l{l}{dir}"])
    if name == "INT":
        return rng.choice(["0", "1", "2", "3", "4", "7", "10", "28", "128",
                           str(rng.randrange(10**6))])
    if name == "FLOAT":
        return rng.choice(["0.5", "1.0", "1e-3", ".25", "2.", "1e9", "3.5e-40"])
    if name == "STRING":
        return rng.choice(['""', '"mlp.dlg"', '"s"', '"a\\nb"', '"\\x41"', '"models/cnn.dlg"'])
    if name == "COMP_OP":
        return rng.choice(["==", "!=", "<=", ">=", "<", ">"])
    if name == "ADD_OP":
        return rng.choice("+-")
    if name == "MUL_OP":
        return rng.choice(["*", "/", "//", "%", "@"])
    raise KeyError(name)


class Grammar:
    """dlg.lark's compiled rules, indexed for random derivation."""

    def __init__(self) -> None:
        lark = Lark.open(str(GRAMMAR), parser="lalr")
        self.rules: dict[str, list[Rule]] = defaultdict(list)
        for rule in lark.rules:
            self.rules[rule.origin.name].append(rule)
        self.literals = {t.name: t.pattern.value for t in lark.terminals
                         if type(t.pattern).__name__ == "PatternStr"}
        self.height = self._heights()

    def _heights(self) -> dict[str, int]:
        """The least derivation depth of every nonterminal (a fixpoint over the rules)."""
        inf = 10**9
        height = dict.fromkeys(self.rules, inf)
        changed = True
        while changed:
            changed = False
            for name, rules in self.rules.items():
                best = min(1 + max((height[s.name] for s in r.expansion
                                    if isinstance(s, NonTerminal)), default=0) for r in rules)
                if best < height[name]:
                    height[name], changed = best, True
        return height

    def derive(self, symbol: str, rng: random.Random, budget: int) -> list[str]:
        """Tokens of a random derivation of `symbol`; beyond `budget` levels, the shortest."""
        out: list[str] = []
        self._derive(symbol, rng, budget, out)
        return out

    def _derive(self, symbol: str, rng: random.Random, budget: int, out: list[str]) -> None:
        rules = self.rules[symbol]
        if budget <= 0:
            shallow = min(self._rule_height(r) for r in rules)
            rules = [r for r in rules if self._rule_height(r) == shallow]
        for s in rng.choice(rules).expansion:
            if isinstance(s, Terminal):
                out.append(self.literals.get(s.name) or _terminal(s.name, rng))
            else:
                self._derive(s.name, rng, budget - 1, out)

    def _rule_height(self, rule: Rule) -> int:
        return max((self.height[s.name] for s in rule.expansion if isinstance(s, NonTerminal)),
                   default=0)


@cache
def grammar() -> Grammar:
    return Grammar()


def join(tokens: list[str], rng: random.Random) -> str:
    """Tokens separated by a space or a newline (never significant in dlg)."""
    return "".join(t + rng.choice([" ", " ", " ", "\n"]) for t in tokens)


def derived(rng: random.Random) -> str:
    """A whole module from the start symbol."""
    return join(grammar().derive("start", rng, rng.randrange(4, 24)), rng)


def expr_spliced(rng: random.Random) -> str:
    """A model whose word at a random place is replaced by a derived expression: the text mostly
    parses, so the elaborator meets odd but well-formed expressions in a real model."""
    text = rng.choice(code_seeds())
    at = rng.choice(list(WORD.finditer(text)))
    new = join(grammar().derive(rng.choice(["expr", "atom", "postfix", "sum"]), rng,
                                rng.randrange(1, 6)), rng)
    return text[:at.start()] + new + text[at.end():]


# ---- mutations of the models -----------------------------------------------------------------
TOKENS = ["{", "}", "(", ")", "[", "]", ",", ":", "=", "==", "**", "@", "-", ".", "...", "#",
          '"', "model", "layer", "param", "scan", "carry", "emit", "input", "output", "return",
          "if", "else", "for", "in", "x", "N", "f32", "1", "2.5", "w_l{l}", "\n", " "]
VALUES = ["0", "-1", "1", "3", "17", "0.5", '"s"', "none", "true", "()", "[1, 2]", "(1, 2)",
          "x", "N", "f64", "i64", "bool", "axis=1", "-0.0", "1e30", "2**40", "0 - 3"]


def byte_mutated(rng: random.Random) -> str:
    """Deletions, insertions of tokens or raw characters, duplications and replacements of
    character ranges: the edits that break syntax."""
    text = rng.choice(seeds())
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(text) + 1)
        j = min(len(text), i + rng.randrange(13))
        action = rng.choice(["delete", "insert", "duplicate", "replace", "byte"])
        if action == "delete":
            text = text[:i] + text[j:]
        elif action == "insert":
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif action == "duplicate":
            text = text[:i] + text[i:j] + text[i:]
        elif action == "replace":
            text = text[:i] + "".join(chr(rng.randrange(1, 0x250)) for _ in range(3)) + text[j:]
        else:  # flip one byte of the UTF-8 text, decoded leniently
            data = bytearray(text.encode())
            if data:
                data[min(i, len(data) - 1)] ^= 1 << rng.randrange(8)
            text = data.decode(errors="replace")
    return text


def token_mutated(rng: random.Random) -> str:
    """Words, numbers and strings replaced, swapped or deleted (brackets and operators stay):
    the text mostly parses, so it reaches the elaborator with wrong names, values and types."""
    text = rng.choice(code_seeds())
    for _ in range(rng.randint(1, 3)):
        words = list(WORD.finditer(text))
        at = rng.choice(words)
        action = rng.choice(["value", "word", "swap", "delete", "number"])
        if action == "swap":
            other = rng.choice(words[words.index(at):])
            if other is not at:
                text = (text[:at.start()] + other.group() + text[at.end():other.start()]
                        + at.group() + text[other.end():])
            continue
        if action == "value":
            new = rng.choice(VALUES)
        elif action == "word":
            new = rng.choice(words).group()
        elif action == "number":
            new = str(rng.choice([0, 1, 2, 5, 64, 10**5]))
        else:
            new = ""
        text = text[:at.start()] + new + text[at.end():]
    return text


def spliced(rng: random.Random) -> str:
    """Lines of one model spliced into another: layers and names from elsewhere."""
    a, b = (rng.choice(code_seeds()).split("\n") for _ in range(2))
    i, j = sorted(rng.randrange(len(b) + 1) for _ in range(2))
    at = rng.randrange(len(a) + 1)
    return "\n".join(a[:at] + b[i:j] + a[at:])


NESTINGS = [("-", ""), ("relu(", ")"), ("(", ")"), ("not ", ""), ("[", "]"), ("x + ", ""),
            ("x ** ", ""), ("f(", ")")]


def deep(rng: random.Random) -> str:
    """An expression nested 10 to 5,000 deep, and sometimes a def that calls itself: the
    sources that make recursive walkers overflow."""
    depth = int(10 ** rng.uniform(1, 3.7))
    expr = "x"
    for _ in range(depth):
        open_, close = rng.choice(NESTINGS)
        expr = open_ + expr + close
    recursion = rng.choice(["def f(x) { return x }", "def f(x) { return f(x) }",
                            "def f(x) { return f(-x) }"])
    return f"{recursion}\nmodel M {{\n    input x: f32[N, 3]\n    output y = {expr}\n}}\n"


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "derived": derived, "expr_spliced": expr_spliced, "byte": byte_mutated,
    "token": token_mutated, "spliced": spliced, "deep": deep}


def source(seed: int, index: int) -> tuple[str, str]:
    """Case `index` of campaign `seed`: (generator name, source text). Generators take turns."""
    kind = list(GENERATORS)[index % len(GENERATORS)]
    return kind, GENERATORS[kind](random.Random(f"{seed}:{index}"))
