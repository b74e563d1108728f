"""Errors a user can cause. The CLI turns them into one line on stderr and exit code 2."""


class UserError(Exception):
    """Bad input or usage: the message says what is wrong and what to do."""


def missing_extra(package: str, extra: str) -> UserError:
    """The error for an optional dependency that is not installed."""
    return UserError(f"{package} is not installed: pip install 'edgeld[{extra}]'")
