"""Placeholder: sub-commands are registered by the module that implements them."""


def register(subparsers) -> None:
    return None
