"""Deliberate faults of the reference wallet, for the suite's own self-tests.

Each fault breaks exactly one rule of the requirement catalogue and names the
requirement it breaks. A fault is a small branch in the normal code path
(``if config.fault == "..."``), never a second server; one fault is active at a
time (``WalletConfig(fault=...)``, ``conformance reference --fault NAME``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    name: str
    requirement: str  # the requirement id it breaks, e.g. "ENV-002"
    description: str

    @property
    def level(self) -> str:
        """MUST or SHOULD, from the requirement catalogue."""
        from conformance.contract import load

        return load().requirements[self.requirement].level


_CATALOGUE = (
    # ------------------------------------------------------------ envelope
    Fault("content-type-text-plain", "ENV-001",
          "Every response carries Content-Type: text/plain (the body is still the JSON envelope)."),
    Fault("ok-fail-both-true", "ENV-002",
          "Successful answers carry ok=true and fail=true."),
    Fault("ok-with-nonzero-code", "ENV-003",
          "Cancels answered US_0000001 or US_0000002 carry ok=true, fail=false and data {} although "
          'their code is not "0".'),
    Fault("code-as-number", "ENV-004",
          "Failure codes are JSON numbers (400) instead of strings; US_0000001/US_0000002 stay strings."),
    Fault("trace-not-echoed", "ENV-005",
          "The response trace is a wallet-generated id instead of the request's trace header."),
    Fault("negative-tm", "ENV-006",
          "tm is -1 in every response (the response schema's minimum 0 is broken too)."),
    Fault("msg-as-number", "ENV-007",
          "msg is the JSON number 0 in every response (the response schema's type is broken too)."),
    Fault("data-not-object-on-success", "ENV-008",
          "Successful execute and cancel answers carry data null instead of an object."),
    Fault("failure-data-as-string", "ENV-009",
          "Failure envelopes carry the code again as data (a string); the schema allows only an object or "
          "null."),
    Fault("status-201", "ENV-010",
          "Successful answers use HTTP status 201 instead of 200."),
    Fault("envelope-missing-bizcode", "ENV-011",
          "The envelope omits the bizCode field."),
    Fault("errors-as-http-400", "ENV-012",
          "Failure envelopes are sent with HTTP 400 instead of 200."),
    Fault("tm-implausible", "ENV-013",
          "tm is 3600000 (one hour) in every response, far more than the round trip."),
    # ------------------------------------------------------------ headers
    Fault("missing-trace-accepted", "HDR-001",
          "A request without the trace header is processed as if it had one."),
    Fault("missing-companyid-accepted", "HDR-002",
          "A request without the companyId header is processed as if it had one."),
    Fault("missing-timestamp-accepted", "HDR-003",
          "A balance or execute request without the timestamp header is processed."),
    Fault("cancel-requires-timestamp", "HDR-004",
          "A cancel without the timestamp header is rejected (INVALID_HEADER)."),
    Fault("header-names-case-sensitive", "HDR-005",
          "Only the exact spellings trace, companyId and timestamp are recognised; Trace, COMPANYID, "
          "TimeStamp count as missing."),
    Fault("non-integer-companyid-accepted", "HDR-006",
          "Any companyId value is accepted, e.g. 'abc' or '12.5'."),
    Fault("ten-digit-timestamp-accepted", "HDR-007",
          "A timestamp header of 10 to 14 digits (epoch seconds, too long) is accepted."),
    # ------------------------------------------------------------ request validation
    Fault("missing-ip-accepted", "VAL-001",
          "The ip body field is not required on execute and cancel."),
    Fault("long-username-accepted", "VAL-002",
          "userName's 48-character limit is not enforced; an over-long userName is resolved by "
          "thirdServerCode and currency alone, so the adjustment is applied."),
    Fault("long-requestuniqueno-accepted", "VAL-003",
          "requestUniqueNo's 48-character limit is not enforced (the other length limits still are)."),
    Fault("unknown-biztype-accepted", "VAL-004",
          "Any integer bizType is accepted, e.g. 99."),
    Fault("unknown-operationtype-accepted", "VAL-005",
          "An unknown operationType is accepted and handled like OPEN_POSITION (a debit)."),
    Fault("wrong-sign-accepted", "VAL-006",
          "The sign of amount is ignored: abs(amount) is used in the operation's direction."),
    Fault("amount-with-separators-accepted", "VAL-007",
          'Commas are removed from amount before parsing, so "1,000.00" is accepted as 1000.00.'),
    Fault("amount-digits-mismatch-accepted", "VAL-008",
          "An amount whose decimals differ from amountDigits is accepted when its value is exact "
          '("25.5" with amountDigits 2).'),
    Fault("ten-digit-requesttime-accepted", "VAL-009",
          "A requestTime of 10 to 14 digits is accepted."),
    Fault("wrong-json-types-accepted", "VAL-010",
          "amountDigits, bizType and orderId given as fractional numbers (2.5) are truncated to integers "
          "(Jackson ACCEPT_FLOAT_AS_INT): a value the platform never sent is acted on."),
    Fault("non-json-media-type-accepted", "VAL-011",
          "The Content-Type of the request is ignored: a JSON body sent as text/plain (or without a "
          "Content-Type) is processed."),
    # ------------------------------------------------------------ currency
    Fault("lowercase-currency-in-balance", "CUR-001",
          "The balance answers the currency in lower case (usd)."),
    Fault("non-iso-currency-in-balance", "CUR-002",
          "The balance answers a non-ISO currency code: X followed by the account's code (XUSD); "
          "CUR-001 fails with it."),
    Fault("currency-case-insensitive", "CUR-003",
          "Execute looks accounts up ignoring the case of currency, so an execute in usd moves the USD "
          "account's money (balance queries stay exact)."),
    # ------------------------------------------------------------ balance data
    Fault("balance-mixed-key-styles", "BAL-001",
          "The balance data mixes key styles: amountDigits is spelled in the other style (camel keys "
          "with amount_digits, snake keys with amountDigits)."),
    Fault("amount-thousands-separators", "BAL-002",
          "Balances of a million or more carry thousands separators (JPY: \"10,000,000\")."),
    Fault("amountdigits-as-string", "BAL-003",
          'amountDigits is the string "0" for accounts without decimals (JPY).'),
    Fault("amount-decimals-mismatch", "BAL-004",
          'The balance amount has one decimal fewer than amountDigits ("100000.0" with 2; '
          'an account without decimals answers "10000000.0" with 0).'),
    Fault("balance-username-not-echoed", "BAL-005",
          "The balance's userName is the account's thirdServerCode instead of the userName."),
    Fault("unknown-account-balance-zero", "BAL-006",
          'A balance query for an unknown account in a currency the wallet holds succeeds with amount 0 '
          '("0.00" for USD).'),
    Fault("balance-refused", "BAL-007",
          "A balance query is refused (BALANCE_UNAVAILABLE) while the account's balance differs from its opening "
          "balance: every adjustment invalidates a balance cache whose refill query fails."),
    Fault("balance-other-currency", "BAL-008",
          "A balance query for a known user in an ISO 4217 currency the wallet holds no account in falls back "
          "to the user's first (default) account and answers it: its currency, balance and decimals."),
    # ------------------------------------------------------------ execute
    Fault("slow-execute", "EXE-001",
          "An execute that credits money (NORMAL_CLOSE) sleeps 3.2 s before answering; debits stay fast."),
    Fault("execute-always-rejected", "EXE-002",
          "Every valid execute is rejected (code EXECUTE_REJECTED) and moves no money."),
    Fault("replay-moves-money-again", "EXE-003",
          "A replayed execute (same requestUniqueNo) answers the first code but is applied again; the "
          "ledger books it on the first record, so a cancel gives back everything."),
    Fault("replay-answers-different-code", "EXE-004",
          "A replayed execute answers code DUPLICATE_REQUEST (ok=false) instead of the first answer; "
          "no money moves."),
    Fault("close-debits", "EXE-005",
          "NORMAL_CLOSE debits the amount instead of crediting it."),
    Fault("insufficient-funds-overdraws", "EXE-006",
          "A debit beyond the balance is applied and takes the balance negative."),
    Fault("unknown-account-execute-accepted", "EXE-007",
          'An execute for an account the wallet does not hold answers "0" (nothing moves).'),
    # ------------------------------------------------------------ cancel
    Fault("cancel-unknown-answers-success", "CAN-001",
          'A cancel of a never-received execute answers "0" instead of US_0000002.'),
    Fault("cancel-rejected-answers-us0000002", "CAN-002",
          "A cancel of a received but rejected execute answers US_0000002 (never received) "
          "instead of US_0000001."),
    Fault("cancel-does-not-refund", "CAN-003",
          'A cancel of an applied execute answers "0" but gives nothing back.'),
    Fault("cancel-replay-refunds-twice", "CAN-004",
          "A replayed cancel (same requestUniqueNo) refunds the amount again."),
    Fault("second-cancel-refunds-again", "CAN-005",
          "A second cancel (new requestUniqueNo) of an already reversed execute refunds it again."),
    Fault("cancel-replay-answers-different-code", "CAN-006",
          "A replayed cancel answers code DUPLICATE_REQUEST (ok=false) instead of the first answer; "
          "no money moves."),
    Fault("second-cancel-refused", "CAN-007",
          "A second cancel of an already reversed execute answers ALREADY_REVERSED (ok=false); "
          "no money moves."),
    Fault("received-execute-answers-never-received", "CAN-008",
          "Only applied executes are stored: an execute refused for business reasons (insufficient funds, "
          "unknown account) leaves no trace, so its cancel answers US_0000002 and a replay is judged anew."),
    # ------------------------------------------------------------ robustness
    Fault("unknown-account-server-error", "ROB-001",
          "A balance query for an account the wallet does not hold answers HTTP 500 (with the JSON "
          "failure envelope)."),
    Fault("non-object-body-html-500", "ROB-001",
          "A JSON body that is not an object (an array, a string, a number) crashes the handler: HTTP 500 "
          "with an HTML error page (the JSON envelope rules on that answer break with it)."),
    Fault("malformed-json-answered-success", "ROB-002",
          'Execute and cancel answer a body that is not JSON with success (code "0", data {}); nothing '
          "moves."),
    Fault("get-answers-200", "ROB-003",
          "GET, PUT, DELETE ... on the three paths are routed to the POST handler and answered with success "
          '(HTTP 200, code "0", ok=true).'),
    Fault("slow-cancel", "ROB-004",
          "A cancel that claws back a credit (reverses a NORMAL_CLOSE) sleeps 3.2 s before answering."),
    Fault("flaky-trace-echo", "ENV-005",
          "Every third answer (a counter, not chance) echoes a stale trace from a pooled buffer: the rule "
          "breaks one time in three, so a replay of a failed test usually passes."),
    # ------------------------------------------------------------ delivery
    Fault("late-execute-applies-after-cancel", "DLV-001",
          "A NORMAL_CLOSE checks for a cancel on arrival, then makes a 3.3 s downstream call without a "
          "per-requestUniqueNo lock and commits without looking again: the platform's cancel arriving "
          "meanwhile answers US_0000002, then the late execute moves the money."),
    Fault("lost-cancel-answer-refunds-again", "DLV-002",
          "The cancel (under a per-requestUniqueNo lock) commits the refund, makes a 0.3 s notification call, "
          "and writes its idempotency record (and the reversal mark) in a second transaction that is skipped "
          "when the client has gone: a retry after a dropped connection refunds again."),
    Fault("idempotency-cache-ttl", "DLV-003",
          "Idempotency records live in a cache that expires ~2 s after the write (expireAfterWrite): a "
          "replayed execute or cancel arriving later moves the money again."),
    Fault("check-then-insert-race", "DLV-004",
          "The duplicate check reads without a lock, a 20 ms gap, then the insert (no unique constraint): "
          "concurrent duplicates of one execute both apply; sequential ones stay idempotent."),
    Fault("cancel-before-execute-forgotten", "DLV-005",
          "A cancel of an unknown requestUniqueNo answers US_0000002 but keeps nothing, so the execute "
          "arriving after it is applied."),
    Fault("lost-update-under-concurrency", "DLV-006",
          "An execute reads the balance in one transaction and writes back the computed balance in another, "
          "20 ms later, without a row lock: concurrent executes on one account lose updates."),
    Fault("mismatched-cancel-refunds-cancel-amount", "DLV-007",
          "A cancel gives back the amount it names, to the account it names, instead of what its execute "
          "moved on the execute's account."),
    Fault("overtrading-cancel-wrong-direction", "DLV-008",
          "The cancel of an applied ABNORMAL_OVERTRADING debits its amount again instead of giving it back "
          "(the negative amount read as the direction to apply)."),
    Fault("refused-execute-still-debits", "DLV-009",
          "A debit beyond the balance takes what is there (the balance goes to 0) and then answers "
          "INSUFFICIENT_FUNDS; its cancel answers US_0000001 and gives nothing back."),
    Fault("serialised-slow-executes", "DLV-010",
          "Every execute holds one global lock around a 0.5 s synchronous downstream call: alone it is in "
          "time, at concurrency 8 the queue passes 3 s."),
)

FAULTS: dict[str, Fault] = {fault.name: fault for fault in _CATALOGUE}
assert len(FAULTS) == len(_CATALOGUE), "duplicate fault name"


def check_fault_name(name: str | None) -> str | None:
    """The name if it is None or a known fault; ValueError otherwise."""
    if name is None or name in FAULTS:
        return name
    raise ValueError(f"unknown fault {name!r} (list them with --list-faults)")
