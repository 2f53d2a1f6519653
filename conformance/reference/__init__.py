"""The embedded reference wallet: a conforming implementation of the three webhook operations.

It is the default target of ``conformance run`` and the subject of the suite's
fault self-tests (:data:`FAULTS`) and conforming-variant self-tests (:data:`VARIANTS`).
Starlette + uvicorn over a SQLite ledger.

    from conformance.reference import WalletConfig, serve
    with serve(WalletConfig()) as url:   # http://127.0.0.1:PORT/api/cats-gateway
        ...
"""

from conformance.reference.accounts import DEFAULT_ACCOUNTS, Account
from conformance.reference.config import WalletConfig
from conformance.reference.faults import FAULTS, Fault
from conformance.reference.server import serve
from conformance.reference.variants import VARIANTS, Variant

__all__ = ["DEFAULT_ACCOUNTS", "FAULTS", "VARIANTS", "Account", "Fault", "Variant", "WalletConfig", "serve"]
