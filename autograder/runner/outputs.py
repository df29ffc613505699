"""Bounded capture of a cell's outputs while it runs.

nbclient keeps every stream message and later tidies them with regular expressions that
take quadratic time on one very long line: a cell printing 100 MB would hang the grader.
Here each stream (stdout, stderr) of a cell is folded as it arrives, terminal control
characters applied line by line, and only its head and tail are kept.
"""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

MAX_OTHER_OUTPUTS = 100


def apply_controls(line: str) -> str:
    """What a terminal shows for one line: '\\r' restarts it, '\\b' erases a character."""
    if "\r" in line:
        segments = [s for s in line.split("\r") if s]
        line = segments[-1] if segments else ""
    if "\b" in line:
        parts = line.split("\b")
        shown = parts[0]
        for part in parts[1:]:
            shown = shown[:-1] + part
        line = shown
    return line


class StreamBuffer:
    """One stream of one cell: full lines kept as head and tail, the open line last."""

    def __init__(self, limit: int):
        self.half = max(1, limit // 2)
        self.head = ""
        self.tail = ""
        self.dropped = 0
        self.open_line = ""

    def feed(self, text: str) -> None:
        lines = (self.open_line + text).split("\n")
        self.open_line = lines.pop()
        if len(self.open_line) > 4 * self.half and "\r" not in self.open_line and "\b" not in self.open_line:
            lines.append(self.open_line)     # an endless line: keep it bounded too
            self.open_line = ""
        for line in lines:
            self._keep(apply_controls(line) + "\n")

    def _keep(self, text: str) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += text[:room]
            text = text[room:]
        if text:
            self.tail += text
            if len(self.tail) > self.half:
                self.dropped += len(self.tail) - self.half
                self.tail = self.tail[-self.half:]

    def render(self) -> str:
        last = apply_controls(self.open_line)
        if self.dropped:
            return f"{self.head}\n[… sortie tronquée à {2 * self.half} caractères …]\n{self.tail}{last}"
        return self.head + self.tail + last


class BoundedOutputClient(NotebookClient):
    """A NotebookClient whose memory for outputs is bounded per cell."""

    output_limit = 10000

    def reset_outputs(self) -> None:
        self._streams: dict[tuple[int, str], tuple[StreamBuffer, nbformat.NotebookNode]] = {}

    def output(self, outs, msg, display_id, cell_index):
        if not hasattr(self, "_streams"):
            self.reset_outputs()
        if msg["msg_type"] == "stream":
            name = msg["content"].get("name", "stdout")
            key = (cell_index, name)
            if key not in self._streams or self._streams[key][1] not in outs:
                node = nbformat.v4.new_output("stream", name=name, text="")
                outs.append(node)
                self._streams[key] = (StreamBuffer(self.output_limit), node)
            buffer, node = self._streams[key]
            buffer.feed(msg["content"].get("text", ""))
            node["text"] = buffer.render()
            return node
        if len(outs) >= MAX_OTHER_OUTPUTS:
            return None
        return super().output(outs, msg, display_id, cell_index)
