"""The throw-away CA really signs a loopback certificate that Python's TLS client accepts."""

from __future__ import annotations

import socket
import ssl
import threading

from conus404.emulator.tls import make_tls_files


def test_a_client_trusting_the_bundle_completes_a_handshake_with_127_0_0_1(tmp_path):
    files = make_tls_files(tmp_path)
    assert files.server_key.stat().st_mode & 0o077 == 0, "the private key is not world-readable"
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.server_cert, files.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once():
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(files.ca_bundle))
    with socket.create_connection(("127.0.0.1", port)) as raw, client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.recv(2) == b"ok"
    thread.join(5)
    listener.close()
