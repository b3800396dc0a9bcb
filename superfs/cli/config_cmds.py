"""``superfs config check | example | make-secrets``: cluster files and the secrets they name.

``check`` exits 0 and prints a summary when the file is valid, else prints
one line naming the bad key and exits 2. ``--files`` also opens every file
it names (cluster secret, tokens, TLS certificates and key) and checks them,
as the daemons will at start-up; run it on the host whose files they are.
``make-secrets DIR`` creates ``DIR/secret`` (the capability key) and
``DIR/tokens`` (one daemon token) with mode 0600 unless they exist, for
systemd hosts and the compose file's init container.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys

from superfs import auth, config, config_file, tls

EXAMPLE = config_file.__doc__.split("An example (every key is optional except where a daemon needs it)::", 1)[1] \
    .split("\nRelative paths", 1)[0] if config_file.__doc__ else ""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("config", help="check a cluster file, or print an example",
                       description="The cluster file (TOML) is shared by every daemon and client of a "
                                   "cluster. 'check' validates one; 'example' prints a commented example.")
    csub = p.add_subparsers(title="config commands", metavar="COMMAND")
    c = csub.add_parser("check", help="validate a cluster file (exit 2 naming the bad key)",
                        description="Validate FILE: every key known, every value valid. Exit 0 if so.")
    c.add_argument("file", metavar="FILE")
    c.add_argument("--files", action="store_true",
                   help="also read and check the secret, token and TLS files it names")
    c.set_defaults(func=cmd_check)
    e = csub.add_parser("example", help="print a commented example cluster file")
    e.set_defaults(func=cmd_example)
    m = csub.add_parser("make-secrets", help="create the cluster secret and a daemon token in DIR (if missing)",
                        description="Create DIR/secret (the key directory and chunk capabilities are signed with) and "
                                    "DIR/tokens (one token with the daemon role: 'TOKEN any any daemon'), "
                                    "mode 0600. Existing files are kept. Point cluster.secret_file, "
                                    "auth.tokens_file and auth.token_file at them.")
    m.add_argument("dir", metavar="DIR")
    m.set_defaults(func=cmd_make_secrets)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def check_files(cf: config_file.ClusterFile) -> None:
    """Raise ConfigError unless every file the cluster file names is readable and valid."""
    try:
        if cf.secret_file:
            config.read_secret(cf.secret_file)
        if cf.auth.tokens_file:
            auth.load_tokens_file(cf.auth.tokens_file)
        if cf.auth.token_file:
            auth.read_token(cf.auth.token_file)
        if cf.tls is not None:
            tls.check(cf.tls, server=cf.tls.cert_file is not None)
    except OSError as e:
        raise config_file.ConfigError(f"cluster.secret_file: cannot read {cf.secret_file} ({e.strerror})") from None
    except (ValueError, auth.AuthError, tls.TlsError) as e:
        raise config_file.ConfigError(str(e)) from None


def cmd_check(args: argparse.Namespace) -> int:
    try:
        cf = config_file.load(args.file)
        if args.files:
            check_files(cf)
    except config_file.ConfigError as e:
        print(f"superfs: {e}", file=sys.stderr)
        return 2
    dir_addr = cf.dir_server.address if cf.dir_server else "(not set)"
    sec = []
    if cf.tls:
        sec.append("mutual TLS" if cf.tls.require_client_cert else "TLS")
    if cf.auth.tokens_file:
        sec.append("tokens")
    print(f"{args.file}: ok: cluster {cf.name!r}, dir server {dir_addr}, {len(cf.shards)} shards, "
          f"{len(cf.data_servers)} data servers, {cf.durability}, R={cf.replicas}, "
          f"security: {' + '.join(sec) or 'none'}")
    return 0


def cmd_example(args: argparse.Namespace) -> int:
    lines = EXAMPLE.strip("\n").splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    print("\n".join(line[indent:] for line in lines))
    return 0


def _create_secret_file(path: str, content: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(content)
    return True


def cmd_make_secrets(args: argparse.Namespace) -> int:
    os.makedirs(args.dir, mode=0o700, exist_ok=True)
    made = []
    if _create_secret_file(os.path.join(args.dir, "secret"), secrets.token_hex(32) + "\n"):
        made.append("secret")
    if _create_secret_file(os.path.join(args.dir, "tokens"),
                           "# credential  uids  gids  [daemon]   (see superfs/auth.py)\n"
                           f"{secrets.token_hex(32)} any any daemon\n"):
        made.append("tokens")
    print(f"superfs: {args.dir}: " + (f"created {', '.join(made)}" if made else "secret and tokens exist; kept"))
    return 0
