"""The guard that keeps tests off the network (tests/fixtures/network.py) refuses and reports
non-loopback connections, in this process and in Python subprocesses, and lets loopback through."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from fixtures import network

# TEST-NET-1 (RFC 5737): documentation-only, never routed; nothing is sent even without the guard.
OUTSIDE = ("192.0.2.1", 80)


def test_a_non_loopback_connect_is_refused_and_reported() -> None:
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="192.0.2.1"):
        sock.connect(OUTSIDE)
    refused = network._take_refusals()  # taken here, so this test itself passes
    assert len(refused) == 1 and "192.0.2.1" in refused[0] and "test_network_guard" in refused[0]


def test_a_datagram_may_pick_a_route_but_not_send_outside() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect(OUTSIDE)  # sends nothing (dask's get_ip does this)
        assert network._take_refusals() == []
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        pytest.raises(ConnectionRefusedError),
    ):
        udp.sendto(b"x", OUTSIDE)
    assert len(network._take_refusals()) == 1


def test_a_name_lookup_outside_is_refused_and_reported() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.com", 443)
    assert any("example.com" in line for line in network._take_refusals())


def test_a_python_subprocess_is_guarded_too() -> None:
    code = (
        "import socket\n"
        "s = socket.socket()\n"
        "try:\n"
        f"    s.connect({OUTSIDE!r})\n"
        "except ConnectionRefusedError as e:\n"
        "    print('refused:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused: tests may not reach the network" in out.stdout, out.stderr
    refused = network._take_refusals()
    assert len(refused) == 1 and "192.0.2.1" in refused[0]


def test_loopback_is_allowed(model_server) -> None:
    with socket.create_connection(("127.0.0.1", model_server.port), timeout=5):
        pass
    with socket.create_connection(("localhost", model_server.port), timeout=5):
        pass
    assert network._take_refusals() == []
