"""Code that runs in the user's kernel: the IPython extension (figure capture, ``%%ai``
helpers) and ``@name`` resolution. Never ``eval``s user text; every repr is bounded."""
