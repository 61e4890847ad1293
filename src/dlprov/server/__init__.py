"""``dlprov serve``: an HTTP server over a store, speaking the original DfAnalyzer protocol
(``/pde/...``), taking dlprov's own record batches (``/v1/batch``) and answering reads."""
