"""``circman5 user add|remove|list|passwd``: manage the HMI/API users from the shell.

Wiring (in ``circman5/cli.py``)::

    from circman5.api.user_cli import add_user_commands, run_user_command

    add_user_commands(commands)            # commands = parser.add_subparsers(dest="command")
    ...
    if args.command == "user":
        return run_user_command(args)

Passwords are read with a hidden prompt (asked twice), or from the first line of standard input
with ``--password-stdin`` (for scripts: ``echo "$PW" | circman5 user add alice --role admin
--password-stdin``). They are never accepted on the command line, where other users of the
machine could see them.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from circman5.api.roles import ROLES
from circman5.api.users import KEEP_SITES, UserStore, check_password
from circman5.errors import UserFileError, UserStoreError

__all__ = ["add_user_commands", "run_user_command"]


def add_user_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``user`` command (with add/remove/list/passwd) to ``subparsers``."""
    user = subparsers.add_parser("user", help="manage the users of the web HMI and API")
    actions = user.add_subparsers(dest="user_command", metavar="ACTION")
    actions.required = True

    add = actions.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES, help="the user's role")
    add.add_argument(
        "--site",
        action="append",
        dest="sites",
        metavar="SITE",
        help="a site the user sees on the site page (repeat; default: every site)",
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )

    remove = actions.add_parser("remove", help="delete a user")
    remove.add_argument("username")
    remove.add_argument("--force", action="store_true", help="even if it is the last admin")

    actions.add_parser("list", help="list the users and their roles")

    passwd = actions.add_parser("passwd", help="set a user's password (and role)")
    passwd.add_argument("username")
    passwd.add_argument("--role", choices=ROLES, help="also change the role")
    passwd.add_argument(
        "--site", action="append", dest="sites", metavar="SITE", help="set the user's sites"
    )
    passwd.add_argument("--all-sites", action="store_true", help="let the user see every site")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    return user


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise UserStoreError("the passwords do not match")
    check_password(password)
    return password


def run_user_command(args: argparse.Namespace, store: UserStore | None = None) -> int:
    """Run ``circman5 user ...``; returns the exit status (0 ok, 1 refused, 2 usage)."""
    users = store or UserStore()
    action = getattr(args, "user_command", None)
    try:
        if action == "add":
            password = _read_password(args.password_stdin)
            user = users.add(args.username, password, args.role, getattr(args, "sites", None))
            shown = f" for sites {', '.join(user.sites)}" if user.sites is not None else ""
            print(f"user '{user.username}' added with role {user.role}{shown}")
            return 0
        if action == "remove":
            current = users.get(args.username)
            if current is None:
                raise UserStoreError(f"no user '{args.username}'")
            admins = [u for u in users.list_users() if u.role == "admin"]
            if current.role == "admin" and len(admins) == 1 and not args.force:
                raise UserStoreError(
                    f"'{args.username}' is the last admin; add another admin first (or use --force)"
                )
            users.remove(args.username)
            print(f"user '{args.username}' removed")
            return 0
        if action == "list":
            listed = users.list_users()
            if not listed:
                print(
                    "no users yet; create the first admin with: circman5 user add NAME --role admin"
                )
                return 0
            width = max(len("USERNAME"), *(len(u.username) for u in listed))
            print(f"{'USERNAME':<{width}}  {'ROLE':<8}  {'SITES':<16}  CREATED")
            for u in listed:
                sites = ",".join(u.sites) if u.sites is not None else "*"
                print(f"{u.username:<{width}}  {u.role:<8}  {sites:<16}  {u.created_at}")
            return 0
        if action == "passwd":
            if users.get(args.username) is None:
                raise UserStoreError(f"no user '{args.username}'")
            password = _read_password(args.password_stdin)
            chosen = getattr(args, "sites", None)
            scope = None if getattr(args, "all_sites", False) else chosen or KEEP_SITES
            user = users.update(args.username, password=password, role=args.role, sites=scope)
            print(f"user '{user.username}' updated (role {user.role})")
            return 0
    except (UserStoreError, UserFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print("cancelled", file=sys.stderr)
        return 1
    print("usage: circman5 user {add,remove,list,passwd} ...", file=sys.stderr)
    return 2
