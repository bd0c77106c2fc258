"""A registry grown to many kinds (15 actions x 10 objects, 10 phrasings each): router scale test and bench."""
from __future__ import annotations

from agents.router import IntentKind, KindRegistry

ACTIONS = ["export", "archive", "translate", "print", "forecast", "audit", "back up", "rename",
           "schedule", "delete", "share", "tag", "price", "compress", "sign"]
OBJECTS = ["supplier contracts", "podcast episodes", "warehouse stock", "employee timesheets",
           "domain names", "wedding photos", "tax receipts", "course videos", "shipping labels",
           "conference tickets"]
# Synthetic phrasings vary the verb form rather than pile on chat filler ("can you ... for me"):
# filler shared by ten near-identical examples would match any polite request, which says more
# about the generator than about the router.
TEMPLATES = ["{a} the {o}", "{a} our {o}", "{a} all {o}", "{a} {o}", "{o}: {a} them",
             "{a} the new {o}", "{a} the old {o}", "{a} last month's {o}", "{a} these {o}", "{a} some {o}"]


def kind_name(action: str, obj: str) -> str:
    return f"{action}_{obj}".replace(" ", "_")


def synthetic_kinds() -> list[IntentKind]:
    return [
        IntentKind(name=kind_name(a, o), description=f"{a.capitalize()} the {o}.", workflow=kind_name(a, o),
                   examples=[t.format(a=a, o=o) for t in TEMPLATES])
        for a in ACTIONS for o in OBJECTS
    ]


def grown(registry: KindRegistry, size: int) -> KindRegistry:
    """`registry` plus synthetic kinds up to `size` kinds in all."""
    return KindRegistry.from_kinds([*registry.kinds, *synthetic_kinds()[: size - len(registry.kinds)]])
