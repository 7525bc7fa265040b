"""The import graph runs one way: registry ← resolver ← (sync, bench) ← the ``idnode`` CLI.

Every module's imports are read with ``ast`` (those inside functions and ``TYPE_CHECKING``
blocks too: a lazy import is still a dependency) and checked against the layers:

- ``registry/`` (the data and its stores) imports none of the others;
- ``resolver/`` (the query path, its transports and forwarding) imports neither ``sync/`` nor
  ``bench/``, except in the composition root, :data:`COMPOSITION_ROOT`;
- ``sync/`` and ``bench/`` do not import each other, and ``sync/`` uses only the node's
  public surface (:data:`NODE_SURFACE`), as any client of the node would.

Imports that break a rule and cannot move yet are listed in :data:`PENDING` with the reason;
an entry that is no longer needed fails the test too, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("registry", "resolver", "sync", "bench")

# The `idnode` command line: the one place that wires every package together.
COMPOSITION_ROOT = {
    "resolver/cli.py",  # builds the parser from every package's subcommands
    # `idnode keys` and `idnode verify`: CLI commands (imported by resolver/cli.py alone);
    # verify reads the node's registration (sync/state.py) for its trust root.
    "resolver/keycmds.py",
}

# What sync/ may use of resolver/: the node and its configuration, the forwarding
# configuration it sets, the CLI helpers its commands share, the version.
NODE_SURFACE = {
    "resolver",
    "resolver.cliutil",
    "resolver.config",
    "resolver.forward.base",
    "resolver.node",
}

# (module, imported module) → why it is still there; an entry that is no longer needed fails
# the test, so the list only shrinks. Issue 13 emptied it.
PENDING: dict[tuple[str, str], str] = {}


def imports(module: str, source: str) -> list[tuple[int, str]]:
    """(line, module) of every import in ``source``, the text of ``module`` (a path under
    ROOT), relative ones resolved."""
    package = module.split("/")[:-1]
    found = []
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, *([node.module] if node.module else [])])
            if node.module is None:  # `from . import x`: x is a module of the package
                found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, name))
    return found


def broken_rule(module: str, imported: str) -> str | None:
    """Which rule ``module`` (a path under ROOT) importing ``imported`` breaks, if any."""
    layer, target = module.split("/", 1)[0], imported.split(".", 1)[0]
    if target not in PACKAGES or target == layer:
        return None
    if layer == "registry":
        return "registry/ imports none of resolver/, sync/, bench/"
    if layer == "resolver" and target in ("sync", "bench") and module not in COMPOSITION_ROOT:
        return "resolver/ imports neither sync/ nor bench/ (outside the CLI)"
    if layer == "sync" and target == "resolver" and imported not in NODE_SURFACE:
        return "sync/ uses only the node's public surface of resolver/"
    if {layer, target} == {"sync", "bench"}:
        return "sync/ and bench/ do not import each other"
    return None


def violations() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            for line, imported in imports(module, path.read_text(encoding="utf-8")):
                rule = broken_rule(module, imported)
                if rule is not None:
                    found.setdefault((module, imported), []).append(f"{module}:{line}: {rule}")
    return found


def test_imports_run_one_way() -> None:
    found = violations()
    new = [where for key, wheres in found.items() if key not in PENDING for where in wheres]
    assert not new, "imports against the layers:\n" + "\n".join(new)
    stale = [f"{m} → {i}" for m, i in PENDING if (m, i) not in found]
    assert not stale, "no longer imported, remove from PENDING:\n" + "\n".join(stale)


def test_the_rules_catch_what_they_forbid() -> None:
    """The checker itself: each layer's forbidden imports are reported, allowed ones not."""
    assert broken_rule("registry/service.py", "resolver.core")
    assert broken_rule("registry/store/base.py", "sync.state")
    assert broken_rule("resolver/core.py", "sync.routing")
    assert broken_rule("resolver/http/api.py", "bench.cli")
    assert broken_rule("sync/agent.py", "resolver.core")
    assert broken_rule("sync/agent.py", "bench.procs")
    assert broken_rule("bench/runner.py", "sync.toplevel.cli")
    assert broken_rule("resolver/cli.py", "sync.cli") is None
    assert broken_rule("resolver/core.py", "registry.service") is None
    assert broken_rule("sync/agent.py", "resolver.node") is None
    assert broken_rule("bench/ceiling.py", "resolver.server") is None
    assert broken_rule("registry/service.py", "aiohttp") is None


def test_relative_imports_are_resolved() -> None:
    source = "from . import remote\nfrom ..core import Resolver\nimport sync.agent as a\n"
    assert imports("resolver/forward/link.py", source) == [
        (1, "resolver.forward.remote"),
        (2, "resolver.core"),
        (3, "sync.agent"),
    ]
