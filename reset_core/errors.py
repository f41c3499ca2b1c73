"""How a rejected configuration reads, in the CLI and in the app alike.

>>> from pydantic import BaseModel, ValidationError
>>> class Opts(BaseModel):
...     count: int
>>> try:
...     Opts(count="many")
... except ValidationError as e:
...     print(validation_message(e))
count: Input should be a valid integer, unable to parse string as an integer
"""

from __future__ import annotations

from pydantic import ValidationError


def validation_message(e: ValidationError) -> str:
    """One line naming each rejected field (dotted path) and why."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}" for err in e.errors()
    )


def rejection_message(e: ValueError) -> str:
    """A rejected option in one line: per field for a ValidationError, else its text.

    >>> rejection_message(ValueError("no saved panel 'nope'"))
    "no saved panel 'nope'"
    """
    return validation_message(e) if isinstance(e, ValidationError) else str(e)
