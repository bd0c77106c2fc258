"""Racing threads in tests: calls started together on a barrier, their results collected in order."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


def at_once(calls: Sequence[Callable[[], Any]], *, expect: tuple[type[BaseException], ...] = (),
            timeout: float = 60.0) -> list[Any]:
    """Run each call in its own thread, all released by one barrier; what each returned, in the order of `calls`.

    An exception of a type in `expect` is returned in its call's place (a refusal the race is meant to
    produce); any other fails the test here, after every thread has ended, rather than only being printed
    by the thread. A thread still running after `timeout` seconds (a deadlock) fails the test too.
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except expect as refused:
            results[index] = refused
        except BaseException as error:  # handed to the test thread below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"threads still running after {timeout}s: {stuck}"
    if errors:
        raise errors[0]
    return results
