#!/usr/bin/env node
// An independent wallet for the MultiMarkets (TradeBoss) Webhook API, written by a
// vendor team from the public docs only (webhook-api.md). Standard library only.
//
// Choices this team made where the docs leave things open:
//   - every answer is HTTP 200; failures carry ok=false, fail=true and a numeric-looking code
//   - balance keys follow the docs' response example: snake_case (user_name, amount_digits)
//   - ABNORMAL_OVERTRADING is ignored (answered "0", balance untouched); the docs allow ignoring it
//   - an execute refused as invalid (bad headers/body) is not remembered: a cancel for it gets
//     US_0000002 (never received); an execute refused for business reasons (unknown account,
//     insufficient balance) is remembered: a cancel for it gets US_0000001
//   - null is accepted in optional fields (metadata, cancel orderId, cancel timestamp)
//   - Content-Type: application/json; charset=utf-8
//   - a cancel refunds what the original execute moved (the cancel's own amount is not compared)
//
// CLI: node node_wallet.js --port N --account THIRD:USER:CUR:BALANCE [--account ...]
"use strict";

const http = require("http");

const PREFIX = "/api/cats-gateway";
const DIGITS = { JPY: 0, KRW: 0, VND: 0, BHD: 3, KWD: 3, JOD: 3, OMR: 3, TND: 3, BTC: 8, ETH: 8, USDT: 6 };
const BIZ_TYPES = new Set([1, 2, 10, 11, 12]);
const OPERATIONS = new Set(["OPEN_POSITION", "NORMAL_CLOSE", "ABNORMAL_OVERTRADING"]);

class Invalid extends Error {}

function digitsOf(currency) {
  return Object.prototype.hasOwnProperty.call(DIGITS, currency) ? DIGITS[currency] : 2;
}

// decimal string -> {units: BigInt scaled to `digits`}; throws Invalid when not representable
function parseDecimal(text, digits, what) {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) throw new Invalid(`${what} is not a decimal number`);
  const frac = m[3] || "";
  const trimmed = frac.replace(/0+$/, "");
  if (trimmed.length > digits) throw new Invalid(`${what} has more than ${digits} decimal places`);
  const units = BigInt(m[2] + trimmed.padEnd(digits, "0"));
  return m[1] === "-" ? -units : units;
}

function formatUnits(units, digits) {
  const neg = units < 0n;
  let s = (neg ? -units : units).toString().padStart(digits + 1, "0");
  if (digits > 0) s = s.slice(0, s.length - digits) + "." + s.slice(s.length - digits);
  return (neg ? "-" : "") + s;
}

function parseArgs(argv) {
  let port = 0;
  const accounts = new Map();
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--port") port = Number(argv[++i]);
    else if (argv[i] === "--account") {
      const parts = String(argv[++i]).split(":");
      if (parts.length !== 4) throw new Error("--account wants THIRD:USER:CUR:BALANCE");
      const [third, user, currency, balance] = parts;
      const digits = digitsOf(currency);
      accounts.set(`${third}\u0000${user}\u0000${currency}`,
        { third, user, currency, digits, units: parseDecimal(balance, digits, "balance") });
    } else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error("bad --port");
  return { port, accounts };
}

function header(req, name) {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

function checkHeaders(req, timestampRequired) {
  const trace = header(req, "trace");
  if (trace === undefined || trace === "") throw new Invalid("header trace is required");
  const company = header(req, "companyId");
  if (company === undefined || company === "") throw new Invalid("header companyId is required");
  if (!/^\d{1,18}$/.test(company)) throw new Invalid("header companyId must be an integer");
  const ts = header(req, "timestamp");
  if (ts === undefined || ts === "") {
    if (timestampRequired) throw new Invalid("header timestamp is required");
  } else if (!/^\d{13}$/.test(ts)) throw new Invalid("header timestamp must be 13-digit epoch milliseconds");
}

function str(body, name, { required = true, max = null } = {}) {
  const v = body[name];
  if (v === undefined || v === null) {
    if (required) throw new Invalid(`${name} is required`);
    return null;
  }
  if (typeof v !== "string") throw new Invalid(`${name} must be a string`);
  if (required && v === "") throw new Invalid(`${name} must not be empty`);
  if (max !== null && v.length > max) throw new Invalid(`${name} is longer than ${max}`);
  return v;
}

function int(body, name, { required = true } = {}) {
  const v = body[name];
  if (v === undefined || v === null) {
    if (required) throw new Invalid(`${name} is required`);
    return null;
  }
  if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new Invalid(`${name} must be an integer`);
  return v;
}

function common(body) {
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new Invalid("body must be a JSON object");
  const f = {
    third: str(body, "thirdServerCode"),
    user: str(body, "userName", { max: 48 }),
    currency: str(body, "currency", { max: 16 }),
  };
  return f;
}

function adjustmentFields(body) {
  const f = common(body);
  f.bizType = int(body, "bizType");
  if (!BIZ_TYPES.has(f.bizType)) throw new Invalid("bizType must be one of 1, 2, 10, 11, 12");
  f.amountText = str(body, "amount");
  f.amountDigits = int(body, "amountDigits");
  if (f.amountDigits < 0 || f.amountDigits > 18) throw new Invalid("amountDigits out of range");
  // the amount may not carry more decimals than amountDigits says
  parseDecimal(f.amountText, f.amountDigits, "amount");
  f.requestUniqueNo = str(body, "requestUniqueNo", { max: 48 });
  const rt = int(body, "requestTime");
  if (!/^\d{13}$/.test(String(rt))) throw new Invalid("requestTime must be 13-digit epoch milliseconds");
  f.ip = str(body, "ip");
  f.metadata = str(body, "metadata", { required: false, max: 200 });
  return f;
}

class Wallet {
  constructor(accounts) {
    this.accounts = accounts;
    this.executes = new Map(); // requestUniqueNo -> {state, account, delta, reply}
    this.cancels = new Map(); // requestUniqueNo -> reply
  }

  account(f) {
    return this.accounts.get(`${f.third}\u0000${f.user}\u0000${f.currency}`);
  }

  balance(req, body) {
    checkHeaders(req, true);
    const f = common(body);
    const acc = this.account(f);
    if (!acc) return { code: "1004", msg: "account not found", data: {} };
    return {
      code: "0", msg: "success",
      data: { user_name: acc.user, currency: acc.currency, amount: formatUnits(acc.units, acc.digits), amount_digits: acc.digits },
    };
  }

  execute(req, body) {
    checkHeaders(req, true);
    const f = adjustmentFields(body);
    f.operationType = str(body, "operationType");
    if (!OPERATIONS.has(f.operationType)) throw new Invalid("operationType is not a known operation");
    int(body, "orderId");
    const seen = this.executes.get(f.requestUniqueNo);
    if (seen) return seen.reply;
    const remember = (state, acc, delta, reply) => {
      this.executes.set(f.requestUniqueNo, { state, acc, delta, reply });
      return reply;
    };
    const amountSign = f.amountText.startsWith("-") ? -1 : (/[1-9]/.test(f.amountText) ? 1 : 0);
    if (f.operationType === "ABNORMAL_OVERTRADING") {
      if (amountSign >= 0) throw new Invalid("amount must be negative for ABNORMAL_OVERTRADING");
    } else if (amountSign <= 0) throw new Invalid(`amount must be positive for ${f.operationType}`);
    const acc = this.account(f);
    if (!acc) return remember("failed", null, 0n, { code: "1004", msg: "account not found", data: {} });
    if (f.operationType === "ABNORMAL_OVERTRADING") {
      return remember("ignored", acc, 0n, { code: "0", msg: "ignored", data: {} });
    }
    let units;
    try {
      units = parseDecimal(f.amountText, acc.digits, "amount");
    } catch (e) {
      return remember("failed", acc, 0n, { code: "1003", msg: e.message, data: {} });
    }
    if (f.operationType === "OPEN_POSITION") {
      if (acc.units < units) return remember("failed", acc, 0n, { code: "1002", msg: "insufficient balance", data: {} });
      acc.units -= units;
      return remember("applied", acc, -units, { code: "0", msg: "success", data: {} });
    }
    acc.units += units;
    return remember("applied", acc, units, { code: "0", msg: "success", data: {} });
  }

  cancel(req, body) {
    checkHeaders(req, false);
    const f = adjustmentFields(body);
    if (!/[1-9]/.test(f.amountText) || f.amountText.startsWith("-")) throw new Invalid("amount must be positive");
    int(body, "orderId", { required: false });
    const reverse = str(body, "reverseRequestUniqueNo");
    str(body, "cancelRemark", { max: 200 });
    const seen = this.cancels.get(f.requestUniqueNo);
    if (seen) return seen;
    let reply;
    const exec = this.executes.get(reverse);
    if (!exec) reply = { code: "US_0000002", msg: "adjustment never received", data: {} };
    else if (exec.state === "failed") reply = { code: "US_0000001", msg: "adjustment received but not processed", data: {} };
    else {
      if (exec.state === "applied") {
        exec.acc.units -= exec.delta;
      }
      if (exec.state !== "cancelled") exec.state = "cancelled";
      reply = { code: "0", msg: "success", data: {} };
    }
    this.cancels.set(f.requestUniqueNo, reply);
    return reply;
  }
}

function send(res, trace, started, reply) {
  const ok = reply.code === "0";
  const payload = JSON.stringify({
    code: reply.code, msg: reply.msg, bizCode: "", tm: Date.now() - started,
    trace: trace === undefined ? "" : trace, msgParams: null, data: reply.data, ok, fail: !ok,
  });
  res.writeHead(200, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(payload) });
  res.end(payload);
}

function main() {
  let cfg;
  try {
    cfg = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`node_wallet: ${e.message}\n`);
    process.exit(2);
  }
  const wallet = new Wallet(cfg.accounts);
  const routes = {
    [`${PREFIX}/get-user-amount`]: (req, body) => wallet.balance(req, body),
    [`${PREFIX}/external-system-credit-limit-adjustment`]: (req, body) => wallet.execute(req, body),
    [`${PREFIX}/cancel-external-system-credit-limit-adjustment`]: (req, body) => wallet.cancel(req, body),
  };
  const server = http.createServer((req, res) => {
    const started = Date.now();
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const path = req.url.split("?")[0];
      const handler = routes[path];
      if (!handler) {
        res.writeHead(404, { "Content-Type": "text/plain" });
        res.end("not found");
        return;
      }
      const trace = header(req, "trace");
      if (req.method !== "POST") {
        send(res, trace, started, { code: "1005", msg: "method not allowed", data: {} });
        return;
      }
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch (e) {
        send(res, trace, started, { code: "1001", msg: "body is not valid JSON", data: {} });
        return;
      }
      let reply;
      try {
        reply = handler(req, body);
      } catch (e) {
        if (e instanceof Invalid) reply = { code: "1001", msg: `invalid request: ${e.message}`, data: {} };
        else {
          process.stderr.write(`node_wallet: ${e.stack}\n`);
          reply = { code: "9999", msg: "internal error", data: {} };
        }
      }
      send(res, trace, started, reply);
    });
  });
  server.listen(cfg.port, "127.0.0.1", () => {
    process.stdout.write(`http://127.0.0.1:${server.address().port}${PREFIX}\n`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main();
