"""The web UI of ``dlprov ui``: server-rendered pages over any store, each with a JSON twin.

- :func:`dlprov.ui.app.create_ui` builds the app (mounted under ``/ui`` by ``dlprov serve``);
- :func:`dlprov.ui.app.serve_ui` runs it (``dlprov ui``).

The page handlers call the same :mod:`dlprov.query`, :mod:`dlprov.prov` and
:mod:`dlprov.graph` functions as the CLI; the modules here only shape their answers for pages.
Nothing here writes to the store. See ``docs/ui.md``.
"""
