"""Calls a running account server with stock Python Thrift clients, over every transport and
protocol a plain Apache Thrift client may use (framed or buffered, binary or compact): Apache
Thrift's own Python library with code from the Apache `thrift` compiler, and thriftpy2.

Not part of `cargo test` (it needs Python and the Thrift compiler); an interoperability check to
run by hand:

    apt-get install thrift-compiler
    python -m venv /tmp/py && /tmp/py/bin/pip install thrift thriftpy2
    cargo run -p account -- --config <a config whose [server] listen is 127.0.0.1:8810>
    /tmp/py/bin/python services/account/tests/python/stock_clients.py 127.0.0.1 8810

Exits non-zero on the first unexpected answer.
"""

import importlib
import os
import subprocess
import sys
import tempfile
import uuid

import thriftpy2
from thriftpy2.protocol import TBinaryProtocolFactory, TCompactProtocolFactory
from thriftpy2.rpc import make_client
from thriftpy2.transport import TBufferedTransportFactory, TFramedTransportFactory

HERE = os.path.dirname(os.path.abspath(__file__))
IDL = os.path.join(HERE, "..", "..", "..", "..", "idl", "account.thrift")


def thriftpy2_clients(host: str, port: int):
    """(label, client, types module, close) for each transport and protocol, via thriftpy2."""
    account = thriftpy2.load(IDL, module_name="account_thrift")
    combos = [
        ("framed", TFramedTransportFactory(), "binary", TBinaryProtocolFactory()),
        ("framed", TFramedTransportFactory(), "compact", TCompactProtocolFactory()),
        ("buffered", TBufferedTransportFactory(), "binary", TBinaryProtocolFactory()),
        ("buffered", TBufferedTransportFactory(), "compact", TCompactProtocolFactory()),
    ]
    for transport_name, transport, protocol_name, protocol in combos:
        client = make_client(
            account.AccountService,
            host,
            port,
            trans_factory=transport,
            proto_factory=protocol,
            timeout=5000,
        )
        yield f"thriftpy2 {transport_name}/{protocol_name}", client, account, client.close


def apache_clients(host: str, port: int):
    """(label, client, types module, close) for each transport and protocol, via Apache Thrift."""
    from thrift.protocol import TBinaryProtocol, TCompactProtocol
    from thrift.transport import TSocket, TTransport

    out = tempfile.mkdtemp(prefix="account-gen-py-")
    subprocess.run(["thrift", "--gen", "py", "-out", out, IDL], check=True)
    sys.path.insert(0, out)
    service = importlib.import_module("account.AccountService")
    types = importlib.import_module("account.ttypes")
    for transport_name, wrap in [
        ("framed", TTransport.TFramedTransport),
        ("buffered", TTransport.TBufferedTransport),
    ]:
        for protocol_name, protocol in [
            ("binary", TBinaryProtocol.TBinaryProtocol),
            ("compact", TCompactProtocol.TCompactProtocol),
        ]:
            socket = TSocket.TSocket(host, port)
            socket.setTimeout(5000)
            transport = wrap(socket)
            transport.open()
            client = service.Client(protocol(transport))
            yield f"apache {transport_name}/{protocol_name}", client, types, transport.close


def exercise(label: str, client, account) -> None:
    status = client.Ping(account.PingRequest()).status
    assert status == "SERVING", (label, status)

    username = f"py{uuid.uuid4().hex[:12]}"
    request = account.CreateAccountRequest(
        username=username.upper(), password="pw", name="Py Thon"
    )
    created = client.CreateAccount(request)
    assert created.username == username and created.roles == ["ROLE_USER"], created

    try:
        client.CreateAccount(request)
        raise AssertionError(f"{label}: a duplicate registration was accepted")
    except account.Conflict as conflict:
        assert conflict.field == "username", conflict

    try:
        client.CreateAccount(account.CreateAccountRequest(username="a b", password="", name=""))
        raise AssertionError(f"{label}: an invalid registration was accepted")
    except account.InvalidInput as invalid:
        fields = [e.field for e in invalid.errors]
        assert fields == ["username", "password", "name"], fields

    # No TTHeader, so no token: protected methods refuse with the declared exception.
    try:
        client.GetAccountByUsername(account.GetAccountByUsernameRequest(username=username))
        raise AssertionError(f"{label}: an anonymous read was allowed")
    except account.Unauthenticated:
        pass


def main(host: str, port: int) -> None:
    for clients in (apache_clients, thriftpy2_clients):
        for label, client, account, close in clients(host, port):
            exercise(label, client, account)
            close()
            print(f"{label}: ok")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
