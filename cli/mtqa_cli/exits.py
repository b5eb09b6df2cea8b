"""How an `mtqa` command ends: its exit code and, on failure, one line on stderr.

stdout carries only the command's output (a table, a report path, JSON with `--json`); every error
goes to stderr as `mtqa COMMAND: error: MESSAGE`. The codes are listed in `mtqa --help`
(mtqa_cli.helptext.EXIT_CODES); `code_for` maps the typed errors of the layers below to them, so
commands pass the exception to `fail` and do not pick codes themselves.
"""

from __future__ import annotations

import sys

OK = 0
FAILED = 1  # the command ran and could not do its work, for a reason none of the codes below name
USAGE = 2  # the command line itself is wrong (argparse uses 2 as well)
INPUT = 3  # a run, data path, image or file is missing or unreadable, a name is unknown, an
# output cannot be written
UNAVAILABLE = 4  # the server refused, is unreachable, timed out or its model is not ready
CHECK_FAILED = 5  # a check the command exists to make failed: accuracy gate, golden check, repo
INTERRUPTED = 130

# Typed errors -> exit code, by "module.Class" so that importing this module (and `mtqa --help`)
# loads none of the layers. The most derived class of an error that is listed decides.
CODES: dict[str, int] = {
    # input: what the user pointed at is missing, unreadable or unknown
    "builtins.FileNotFoundError": INPUT,
    "builtins.PermissionError": INPUT,
    "builtins.IsADirectoryError": INPUT,
    "builtins.NotADirectoryError": INPUT,
    "builtins.FileExistsError": INPUT,
    "mtqa.config.ConfigError": INPUT,
    "mtqa.checkpoint.CheckpointError": INPUT,
    "mtqa.data.errors.DatasetError": INPUT,
    "mtqa.data.decode.DecodeError": INPUT,
    "mtqa.evaluate.thresholds.ThresholdError": INPUT,
    "mtqa_client.decode.DecodeError": INPUT,
    "mtqa_client.errors.InvalidInputError": INPUT,
    "mtqa_builder.errors.CalibrationError": INPUT,
    "mtqa_builder.errors.RepositoryError": INPUT,
    "mtqa_builder.swap.errors.TargetError": INPUT,
    "mtqa_serving.errors.SecurityConfigError": INPUT,
    # the server: refused, unreachable, timed out, not ready
    "builtins.ConnectionError": UNAVAILABLE,
    "builtins.TimeoutError": UNAVAILABLE,
    "mtqa_client.errors.ServerUnavailableError": UNAVAILABLE,
    "mtqa_client.errors.ModelNotReadyError": UNAVAILABLE,
    "mtqa_client.errors.InferenceTimeoutError": UNAVAILABLE,
    "mtqa_client.errors.ServerOverloadedError": UNAVAILABLE,
    "mtqa_builder.swap.errors.ServerUnreachableError": UNAVAILABLE,
    # a check failed: the variant or version is not good enough
    "mtqa_builder.errors.GateError": CHECK_FAILED,
    "mtqa_builder.swap.errors.GoldenCheckError": CHECK_FAILED,
}


def code_for(error: BaseException) -> int:
    """The exit code of `error`: its most derived class listed in CODES; else that of the first
    error it gathers (`failures`, as the SDK's BatchError) or of the error it was raised from (a
    rolled-back swap keeps the golden check's 5); else FAILED."""
    for cls in type(error).__mro__:
        code = CODES.get(f"{cls.__module__}.{cls.__qualname__}")
        if code is not None:
            return code
    failures = getattr(error, "failures", None)
    if isinstance(failures, list) and failures and isinstance(failures[0], BaseException):
        return code_for(failures[0])
    cause = error.__cause__
    return code_for(cause) if cause is not None and cause is not error else FAILED


def fail(command: str, message: object, code: int | None = None) -> int:
    """Print `mtqa COMMAND: error: MESSAGE` on stderr and return `code`: by default the code of
    `message` when it is an exception (`code_for`), FAILED otherwise."""
    text = " ".join(str(message).split())  # one line, whatever the message holds
    print(f"mtqa {command}: error: {text}", file=sys.stderr, flush=True)
    if code is None:
        code = code_for(message) if isinstance(message, BaseException) else FAILED
    return code


def usage(command: str, message: object) -> int:
    """A usage error found after parsing (values that do not go together): exit code 2."""
    return fail(command, message, USAGE)


def bad_input(command: str, message: object) -> int:
    """A missing or unreadable path, an unknown name, an unwritable output: exit code 3."""
    return fail(command, message, INPUT)
