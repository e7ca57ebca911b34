"""``circman5 opcua create-certificate | trust | test``: OPC UA security from the shell.

Wiring (in ``circman5/cli.py``)::

    from circman5.service.opcua_cli import add_opcua_commands, run_opcua_command

    add_opcua_commands(commands)           # commands = parser.add_subparsers(dest="command")
    ...
    if args.command == "opcua":
        return run_opcua_command(args)

``--config FILE`` (the service TOML) supplies the data directory, the application URI and, with
``--connector NAME``, the server URL and where the pinned or trusted certificate belongs.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from circman5.errors import ConfigError, ConnectorError

if TYPE_CHECKING:
    from circman5.connectors.opcua.config import OpcUaConnectorSettings
    from circman5.settings import Settings

__all__ = ["add_opcua_commands", "certificate_problems", "run_opcua_command"]

DEFAULT_APPLICATION_URI = "urn:circman5:edge:client"


def add_opcua_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``opcua`` (create-certificate, trust, test) to ``subparsers``."""
    opcua = subparsers.add_parser(
        "opcua", help="OPC UA security: client certificate, server trust, connection test"
    )
    actions = opcua.add_subparsers(dest="opcua_command", metavar="ACTION")
    actions.required = True

    create = actions.add_parser(
        "create-certificate", help="make the service's application instance certificate and key"
    )
    _config_options(create)
    create.add_argument(
        "--application-uri", help=f"default: the connector's, or {DEFAULT_APPLICATION_URI}"
    )
    create.add_argument(
        "--hostname", action="append", default=[], help="DNS name in the certificate (repeatable)"
    )
    create.add_argument(
        "--ip", action="append", default=[], help="IP address in the certificate (repeatable)"
    )
    create.add_argument("--days", type=int, default=730, help="validity in days (default 730)")
    create.add_argument("--key-size", type=int, default=2048, choices=(2048, 3072, 4096))
    create.add_argument("--name", default="client", help="file name prefix (default client)")
    create.add_argument("--output", type=Path, help="directory (default <data_dir>/opcua)")
    create.add_argument("--force", action="store_true", help="replace existing files")

    trust = actions.add_parser(
        "trust", help="fetch a server's certificate, show it, and pin or trust it"
    )
    _config_options(trust)
    trust.add_argument("--url", help="opc.tcp://host:port (default: the connector's url)")
    trust.add_argument(
        "--output",
        type=Path,
        help="file to write (default: the connector's server_certificate, a file in its "
        "trust_dir, or <data_dir>/opcua/trusted/<host>_<port>.der)",
    )
    trust.add_argument("--yes", action="store_true", help="store without asking")
    trust.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")

    test = actions.add_parser(
        "test", help="connect once with a connector's settings and say why it fails, if it does"
    )
    _config_options(test)
    test.add_argument("--timeout", type=float, default=15.0, help="seconds (default 15)")
    return opcua


def _config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        dest="settings_file",
        type=Path,
        default=argparse.SUPPRESS,
        help="service settings file (edge.toml); same as the global --config",
    )
    parser.add_argument("--connector", help="name of the OPC UA connector in the settings")


def run_opcua_command(args: argparse.Namespace) -> int:
    try:
        if args.opcua_command == "create-certificate":
            return _create(args)
        if args.opcua_command == "trust":
            return _trust(args)
        if args.opcua_command == "test":
            return _test(args)
    except ConnectorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 2


def certificate_problems(settings: Settings) -> list[str]:
    """What the OPC UA connectors' certificates would make fail before any server is asked
    (missing files, expired, application URI mismatch): for ``circman5 check-config``."""
    from circman5.connectors.opcua.config import OpcUaConnectorSettings
    from circman5.connectors.opcua.refusals import OpcUaRefused, check_local

    problems: list[str] = []
    for connector in settings.connectors:
        if not isinstance(connector, OpcUaConnectorSettings):
            continue
        try:
            check_local(connector)
        except OpcUaRefused as err:
            problems.append(f"opcua connector {connector.name}: {err.reason}")
    return problems


# -- settings --------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings | None:
    if args.settings_file is None:
        return None
    from circman5.settings import load_settings

    return load_settings(args.settings_file)


def _connector(
    settings: Settings | None, name: str | None, required: bool
) -> OpcUaConnectorSettings | None:
    from circman5.connectors.opcua.config import OpcUaConnectorSettings

    if settings is None:
        if name is not None or required:
            raise ConfigError("(command line)", "--config", "needs the service settings (TOML)")
        return None
    candidates = [c for c in settings.connectors if isinstance(c, OpcUaConnectorSettings)]
    if name is not None:
        for connector in candidates:
            if connector.name == name:
                return connector
        names = ", ".join(c.name for c in candidates) or "none"
        raise ConfigError(
            "(command line)", "--connector", f"no OPC UA connector '{name}' (there are: {names})"
        )
    if len(candidates) == 1:
        return candidates[0]
    if required or len(candidates) > 1:
        names = ", ".join(c.name for c in candidates) or "none"
        raise ConfigError(
            "(command line)", "--connector", f"name the OPC UA connector (there are: {names})"
        )
    return None


def _data_dir(settings: Settings | None) -> Path:
    from circman5.paths import data_dir

    if settings is not None and settings.data_dir is not None:
        return settings.data_dir
    return data_dir()


# -- create-certificate ----------------------------------------------------------------------------


def _create(args: argparse.Namespace) -> int:
    from circman5.connectors.opcua.certificates import create_certificate, describe_certificate

    settings = _settings(args)
    connector = _connector(settings, args.connector, required=False)
    uri = args.application_uri or (
        connector.security.application_uri if connector else DEFAULT_APPLICATION_URI
    )
    directory = args.output or _data_dir(settings) / "opcua"
    target = directory / f"{args.name}_cert.der"
    if target.exists() and not args.force:
        print(f"{target} exists; --force replaces it (and the server must trust the new one)")
        return 1
    hostnames = args.hostname or [socket.gethostname(), socket.getfqdn(), "localhost"]
    files = create_certificate(
        directory,
        application_uri=uri,
        name=args.name,
        hostnames=hostnames,
        ip_addresses=args.ip or _host_addresses(),
        days=args.days,
        key_size=args.key_size,
    )
    from cryptography import x509

    info = describe_certificate(x509.load_der_x509_certificate(files.cert_der.read_bytes()))
    print(f"certificate: {files.cert_der} (also {files.cert_pem.name})")
    print(f"private key: {files.key_pem} (mode 0600)")
    for line in info.lines():
        print("  " + line)
    print(
        f"""
In the connector's [connectors.security] section:

    certificate = "{files.cert_der}"
    private_key = "{files.key_pem}"
    application_uri = "{uri}"

On the server, trust this certificate ({files.cert_der.name}, SHA-1 {info.sha1}):
  - most servers put an unknown client certificate into a "rejected" list at the first
    connection attempt: move it to "trusted" (node-opcua: pki/rejected -> pki/trusted/certs;
    open62541 / Prosys / Unified Automation: the server's PKI "rejected" -> "trusted" folder or
    its certificate page; Siemens S7-1500: TIA Portal, PLC properties > OPC UA > Server >
    Security > trusted clients; KEPServerEX: OPC UA Configuration Manager > Trusted Clients);
  - or import {files.cert_der.name} into the server's trusted client certificates beforehand.
Then pin the server: circman5 opcua trust --config <settings.toml> --connector <name>"""
    )
    return 0


# -- trust -----------------------------------------------------------------------------------------


def _host_addresses() -> list[str]:
    """127.0.0.1 and this host's IPv4 addresses (as far as its name resolves)."""
    found = ["127.0.0.1"]
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return found
    for info in infos:
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    return found


def _trust(args: argparse.Namespace) -> int:
    from circman5.connectors.opcua.certificates import (
        describe_certificate,
        fetch_server_certificates,
        store_certificate,
    )

    settings = _settings(args)
    connector = _connector(settings, args.connector, required=args.url is None)
    url = args.url or (connector.url if connector else None)
    if url is None:
        raise ConfigError("(command line)", "--url", "give the server's opc.tcp:// URL")
    found = asyncio.run(fetch_server_certificates(url, args.timeout))
    if len(found) > 1:
        print(f"{url} presents {len(found)} certificates; storing the first one")
    server = found[0]
    info = describe_certificate(server.certificate)
    print(f"server certificate of {url}:")
    for line in info.lines():
        print("  " + line)
    print(f"  endpoints:       {', '.join(server.endpoints)}")
    if info.days_left() < 0:
        print("  WARNING: this certificate has expired")
    target = args.output or _trust_target(settings, connector, url)
    if not args.yes:
        if not sys.stdin.isatty():
            print("not stored: confirm with --yes when not on a terminal", file=sys.stderr)
            return 1
        answer = input(f"Trust this certificate and store it as {target}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not stored")
            return 1
    store_certificate(server.certificate, target)
    print(f"stored {target}")
    if connector is None or (
        connector.security.server_certificate is None and connector.security.trust_dir is None
    ):
        print(f'pin it in [connectors.security]:  server_certificate = "{target}"')
    return 0


def _trust_target(
    settings: Settings | None, connector: OpcUaConnectorSettings | None, url: str
) -> Path:
    if connector is not None:
        security = connector.security
        if security.server_certificate is not None:
            return security.server_certificate
        if security.trust_dir is not None:
            return security.trust_dir / f"{connector.name}.der"
    host = url.removeprefix("opc.tcp://").split("/", 1)[0].replace(":", "_")
    return _data_dir(settings) / "opcua" / "trusted" / f"{host}.der"


# -- test ------------------------------------------------------------------------------------------


def _test(args: argparse.Namespace) -> int:
    settings = _settings(args)
    connector = _connector(settings, args.connector, required=True)
    assert connector is not None
    from circman5.connectors.opcua.probe import probe_connection

    ok, message = asyncio.run(probe_connection(connector, args.timeout))
    print(f"opcua {connector.name} ({connector.url}): {message}")
    return 0 if ok else 1
