"""The memory layer's error tree: one root that callers can catch, subclasses that carry their data."""
from __future__ import annotations

import pytest

import memory
from memory.errors import MemoryLayerError, MemoryNotFound


@pytest.mark.parametrize("handler", [
    pytest.param(MemoryLayerError, id="the_memory_layer_root"),
    pytest.param(LookupError, id="lookup_error_as_before_the_root"),
    pytest.param(memory.MemoryNotFound, id="the_name_the_package_exports"),
])
def test_memory_not_found_is_caught_by(handler: type[BaseException]) -> None:
    with pytest.raises(handler) as caught:
        raise MemoryNotFound(42)
    assert caught.value.memory_id == 42  # type: ignore[attr-defined]
    assert str(caught.value) == "memory 42 not found"


def test_the_root_is_not_the_builtin_memory_error() -> None:
    assert not issubclass(MemoryLayerError, MemoryError)
    assert memory.MemoryLayerError is MemoryLayerError
    from memory.index import MemoryNotFound as from_index

    assert from_index is MemoryNotFound
