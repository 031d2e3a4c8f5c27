"""User-facing errors: every mistake a user can make is a DlgError carrying a source span.

`DlgError.format()` renders the `file:line:col: error: message` line, the source line and a caret
under the offending span; `dlgc` prints exactly that and exits non-zero, with no traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A region of source text: 1-based line and column, end exclusive, and the whole text."""

    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None
    source: str | None = None  # the whole text, shared by every span of one file (not serialised)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def snippet(self) -> str:
        """The source line and a caret line under the span (empty when the text is unknown)."""
        if self.source is None:
            return ""
        lines = self.source.splitlines()
        if not 1 <= self.line <= len(lines):
            return ""
        text = lines[self.line - 1].rstrip()
        start = max(self.col - 1, 0)
        if self.end_line == self.line and self.end_col is not None and self.end_col > self.col:
            width = self.end_col - self.col
        else:
            width = max(len(text) - start, 1)
        return f"    {text}\n    {' ' * start}^{'~' * (width - 1)}"

    def to_json(self) -> list:
        return [self.file, self.line, self.col, self.end_line, self.end_col]

    @staticmethod
    def from_json(data: list | None) -> Span | None:
        return None if data is None else Span(*data)


class DlgError(Exception):
    """A mistake in the user's program or data, reported at a source location when one exists."""

    kind = "error"

    def __init__(self, message: str, span: Span | None = None, notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.span = span
        self.notes = tuple(notes)

    def with_span(self, span: Span | None) -> DlgError:
        """Attach a span if the error has none yet (inner code raises, outer code knows where)."""
        if self.span is None and span is not None:
            self.span = span
        return self

    def with_note(self, note: str) -> DlgError:
        """Add context an outer layer knows (which epoch and batch a training error came from)."""
        self.notes = self.notes + (note,)
        return self

    def format(self) -> str:
        head = f"{self.span}: error: {self.message}" if self.span else f"error: {self.message}"
        parts = [head]
        if self.span is not None and self.span.snippet():
            parts.append(self.span.snippet())
        parts.extend(f"note: {n}" for n in self.notes)
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.format()


class DlgSyntaxError(DlgError):
    """The text does not parse."""


class DlgNameError(DlgError):
    """A name is unknown, duplicated or used as the wrong kind of thing."""


class DlgTypeError(DlgError):
    """Wrong dtype, wrong kind of argument, wrong number of arguments."""


class DlgShapeError(DlgTypeError):
    """Shapes that do not fit together (both shapes are in the message)."""


class DlgAttributeError(DlgTypeError):
    """An op or layer attribute is missing, unknown or of the wrong kind."""


class DlgImportError(DlgError):
    """A missing, unreadable or recursive import."""


class DlgValueError(DlgError):
    """Bad data at run time: wrong inputs, NaNs, corrupt files."""


class DlgNumericError(DlgValueError):
    """Anomaly mode (`dlg.set_anomaly`): an op turned finite inputs into a NaN or an Inf."""
