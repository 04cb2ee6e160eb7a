"""One module per function: what its Lambda handler runs, and the only code that imports ``wiring``.

``entrypoints/<function>.py`` assembles the function (the resolver with the routers it serves, or
the batch loop) and hands it the collaborators ``wiring/<function>.py`` builds; ``handler`` is
what ``lambdas/<function>/handler.py`` exposes to Lambda. The building stays in ``wiring``, apart
from the assembly, because tests replace or reset what it built (``wiring.reset()``) while
driving the very handler Lambda runs; the routers and the domain receive their collaborators
(the Protocols of ``*/ports.py``) and never reach for them. ``pyproject.toml``'s import-linter
contracts keep it so: entry points, then wiring, then adapters, then the domain, then the base.
"""
