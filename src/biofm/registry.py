"""One `Registry` type and the axes: modalities, tokenizers, backbones, objectives,
heads, tasks, and the packaged corpora.

Components register themselves with a decorator beside their definition; configs
name them by string:

    @TOKENIZERS.register("esm2")
    class EsmTokenizer(Tokenizer): ...
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from biofm.errors import BiofmError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → component table with a helpful error for unknown names."""

    def __init__(self, axis: str) -> None:
        self.axis = axis
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.axis} {name!r} is registered twice")
            self._entries[name] = obj
            return obj
        return decorate

    def get(self, name: str) -> T:
        _import_builtin_components()
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none"
            raise BiofmError(f"unknown {self.axis} {name!r}",
                             fix=f"choose one of: {known}")
        return self._entries[name]

    def names(self) -> list[str]:
        _import_builtin_components()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        _import_builtin_components()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


TOKENIZERS: Registry = Registry("tokenizer")
BACKBONES: Registry = Registry("backbone")
OBJECTIVES: Registry = Registry("objective")
HEADS: Registry = Registry("head")
TASKS: Registry = Registry("task")
MODALITIES: Registry = Registry("modality")
CORPORA: Registry = Registry("corpus")

_loaded = False


def _import_builtin_components() -> None:
    """Import the modules whose decorators fill the registries (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import biofm.adapt.heads  # noqa: F401
    import biofm.backbones  # noqa: F401
    import biofm.objectives  # noqa: F401
    import biofm.modalities  # noqa: F401
