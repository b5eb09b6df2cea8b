"""One module per `mtqa` subcommand.

Each module defines ``HELP`` (one line), ``configure(parser)`` and ``run(args) -> int``, and
may list in ``EXTRAS`` the optional installs it needs (mtqa_cli.extras). Modules
import their heavy dependencies inside ``run`` so that ``mtqa --help`` stays fast.
"""
