"""Errors that reach the user as one line: a bad value, what is allowed, no traceback."""

from __future__ import annotations


class ShufflebenchError(Exception):
    """Base of every error the CLI turns into a one-line message and a non-zero exit."""

    exit_code = 2


class UsageError(ShufflebenchError, ValueError):
    """The user asked for something that does not exist or is not allowed (exit code 2)."""


class SetupError(ShufflebenchError):
    """The environment lacks something the request needs: a provider, a host, a package (exit code 2)."""


class MeasurementError(ShufflebenchError):
    """A measurement could not be taken or does not hold (outputs disagree, remote crash) (exit code 1)."""

    exit_code = 1


def allowed(values) -> str:
    """Format allowed values for an error message: ``1, 2, 3`` (in the order given)."""
    return ", ".join(str(v) for v in values)
