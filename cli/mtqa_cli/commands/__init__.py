"""One module per `mtqa` subcommand.

Each module defines ``HELP`` (one line), ``configure(parser)`` and ``run(args) -> int``. Modules
import their heavy dependencies inside ``run`` so that ``mtqa --help`` stays fast.
"""
