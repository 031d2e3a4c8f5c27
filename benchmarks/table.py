"""The results: one row per (model, what), one cell per peer; rendered as aligned text for the
terminal or as Markdown tables (`--markdown`), from the same rows."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Cell:
    """A peer's median ms per call, or why there is none (missing, n/a, error, wrong output)."""

    ms: float | None = None
    note: str = ""

    @property
    def valid(self) -> bool:
        return self.ms is not None and not self.note

    def text(self) -> str:
        if self.ms is None:
            return self.note
        return ms_text(self.ms) + (f" ({self.note})" if self.note else "")


@dataclass
class Row:
    model: str
    what: str  # "infer b64", "train b64", "100 steps b100"
    flops: int
    cells: dict[str, Cell] = field(default_factory=dict)  # by peer name; "dlg" among them

    def fastest(self) -> tuple[str, float] | None:
        """The fastest peer (dlg aside) with a valid time."""
        times = [(c.ms, name) for name, c in self.cells.items() if name != "dlg" and c.valid]
        return (min(times)[1], min(times)[0]) if times else None  # type: ignore[return-value]

    def ratio(self) -> float | None:
        """dlg's time over the fastest peer's: below 1 means dlg is ahead."""
        dlg, best = self.cells.get("dlg"), self.fastest()
        return dlg.ms / best[1] if dlg and dlg.valid and best else None  # type: ignore[operator]

    def gflops(self, peer: str) -> float | None:
        cell = self.cells.get(peer)
        return self.flops / (cell.ms * 1e6) if cell and cell.valid and self.flops else None


def flops_text(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return str(n)


def gflops_text(g: float) -> str:
    return f"{g:.0f}" if g >= 10 else f"{g:.2g}" if g >= 0.01 else "<0.01"


def ms_text(ms: float) -> str:
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.3g}"


def times_table(rows: list[Row], peers: list[str]) -> tuple[list[str], list[list[str]]]:
    """Median ms per call per peer, the fastest peer and dlg's ratio to it."""
    head = ["model", "what", "FLOP", *peers, "fastest peer", "dlg / fastest"]
    body = []
    for r in rows:
        best, ratio = r.fastest(), r.ratio()
        body.append([r.model, r.what, flops_text(r.flops),
                     *(r.cells[p].text() if p in r.cells else "" for p in peers),
                     f"{best[0]} {ms_text(best[1])}" if best else "-",
                     f"{ratio:.2f}x" if ratio is not None else "-"])
    return head, body


def throughput_table(rows: list[Row], peers: list[str], peak: float
                     ) -> tuple[list[str], list[list[str]]]:
    """Each cell's GFLOP/s and its fraction of the measured peak."""
    def cell(r: Row, p: str) -> str:
        g = r.gflops(p)
        return f"{gflops_text(g)} ({100 * g / peak:.0f}%)" if g is not None else "-"
    head = ["model", "what", *peers]
    return head, [[r.model, r.what, *(cell(r, p) for p in peers)] for r in rows]


LABELS = ("model", "what")  # columns of names, aligned left (numbers align right)


def render(head: list[str], body: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = [head, ["---"] * len(head), *body]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    left = [h in LABELS for h in head]
    return "\n".join("  ".join(c.ljust(w) if lj else c.rjust(w)
                               for c, w, lj in zip(line, widths, left))
                     for line in [head, *body]).rstrip()
