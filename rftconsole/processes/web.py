"""One web process of `manage.py up`: Daphne serving the listening socket `up` opened and handed
down (`python -m rftconsole.processes.web --fd N rftconsole.asgi:application`).

Every web process accepts on the same socket, so N of them share one port and one accept queue,
and whichever is free takes the next connection. Daphne's own `--fd` option does the serving;
this wrapper only tells it the socket's address family first: Daphne's `fd:` endpoint assumes
IPv4, and an IPv6 socket adopted as IPv4 reports garbage client addresses, which sign-in
throttling and the audit log read (`up --host ::1`).
"""

from __future__ import annotations

import socket
import sys

from daphne.cli import CommandLineInterface
from twisted.plugins import fd_endpoint


def socket_family(fd: int) -> socket.AddressFamily:
    """The address family of the socket behind `fd`, read from the descriptor itself."""
    probe = socket.socket(fileno=fd)
    try:
        return probe.family
    finally:
        probe.detach()  # the descriptor stays open for Daphne


def inherited_fd(argv: list[str]) -> int:
    try:
        return int(argv[argv.index("--fd") + 1])
    except (ValueError, IndexError):
        raise SystemExit("usage: python -m rftconsole.processes.web --fd N APPLICATION") from None


def main(argv: list[str]) -> None:
    family = socket_family(inherited_fd(argv))
    parser = fd_endpoint.parser
    adopt = parser._parseServer
    # An instance attribute: the plugin's parseStreamServer calls self._parseServer.
    parser._parseServer = lambda reactor, fileno, domain=family: adopt(reactor, fileno, domain)  # type: ignore[method-assign]
    CommandLineInterface().run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
