"""Code that runs in the Jupyter server process, host-independent: finding and reading the
notebook a user is viewing (live YNotebook first), and asking a running kernel for ``@name``.

Rules: never block the event loop; confine every path to the server root."""
