"""What a shipped file format is: its name, suffix and the runtimes that can run its files."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    """A shipped file format. `runtimes` lists the runtimes (names in `edgekit.runtimes`) that can
    run its files, the default first; evaluation measures a file on every one the recipe names."""

    name: str  # as written in export.formats
    suffix: str  # ".tflite"
    runtimes: tuple[str, ...]
    description: str = ""

    @property
    def default_runtime(self) -> str:
        return self.runtimes[0]
