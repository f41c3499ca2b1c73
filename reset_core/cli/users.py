"""``reset-studio user hash NAME``: a password hash line for a shared deployment's secrets.

The password is read without echo (twice, to catch a typo) and never stored; the
printed line goes under ``[reset_studio.users]`` in ``.streamlit/secrets.toml``::

    reset-studio user hash alice
    # prints: alice = "$scrypt$ln=17,r=8,p=1$..."
    echo "$PW" | reset-studio user hash alice --stdin     # scripted, no prompt
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys

from reset_core.cli import exit_codes


def _cmd_user_hash(args: argparse.Namespace) -> int:
    from reset_core.deployment import hash_password

    if not re.fullmatch(r"[A-Za-z0-9_.@-]+", args.name):
        print(
            f"error: name: {args.name!r} may hold only letters, digits and _ . @ -",
            file=sys.stderr,
        )
        return exit_codes.REJECTED
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Again: ") != password:
            print("error: password: the two entries differ", file=sys.stderr)
            return exit_codes.REJECTED
    if len(password) < args.min_length:
        print(
            f"error: password: shorter than {args.min_length} characters",
            file=sys.stderr,
        )
        return exit_codes.REJECTED
    # A TOML basic string: json.dumps quotes it the same way for these characters.
    print(f"{args.name} = {json.dumps(hash_password(password))}")
    return exit_codes.OK


def add_commands(sub) -> None:
    """Add ``user hash`` to the ``reset-studio`` subparsers."""
    user = sub.add_parser("user", help="users of a shared deployment").add_subparsers(
        dest="user_command", required=True
    )
    h = user.add_parser(
        "hash",
        help="print a [reset_studio.users] line (name = password hash) for password login",
        description=__doc__.splitlines()[0],
    )
    h.add_argument("name", help="the user name to log in with (also the reviewer name)")
    h.add_argument("--stdin", action="store_true", help="read the password from one line of stdin")
    h.add_argument("--min-length", type=int, default=12, help="refuse shorter passwords")
    h.set_defaults(func=_cmd_user_hash)
