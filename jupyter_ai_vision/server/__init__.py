"""Code that runs in the Jupyter server process, host-independent: finding and reading the
notebook a user is viewing (live YNotebook first), asking a running kernel for ``@name``,
one ``/see`` request whatever the host, and inline completion (``completion/``).

Rules: never block the event loop; confine every path to the server root (``paths.confine``)."""
