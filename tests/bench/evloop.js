'use strict';
// The event-loop figure of make bench (scripts/bench_evloop.sh), node's side.
//
//   node evloop.js -t HOST:PORT -p PATH -n N -l LEN -s SHA256 [-x HOST:PORT] [-T SECONDS]
//
// As tests/bench/evloop.py fetch: N concurrent GETs of PATH from the target
// on node's one loop (net.Socket), each on a fresh connection; with -x each
// speaks SOCKS5 to that proxy first (RFC 1928: no authentication, CONNECT to
// the target's IPv4 address), without it connects straight to the target.
// Every body must be LEN bytes with sha256 SHA256. One line on stdout:
// "evloop: ok n=N ms=WALL" (first connect to last body, no start-up), or
// "evloop: failed: WHY" and status 1. -T bounds the whole (default 30 s).
const net = require('net');
const crypto = require('crypto');

// RFC 1928 values.
const S5_VERSION = 0x05;
const S5_METHOD_NONE = 0x00;
const S5_CMD_CONNECT = 0x01;
const S5_ATYP_IPV4 = 0x01;
const S5_ATYP_DOMAIN = 0x03;
const S5_ATYP_IPV6 = 0x04;
const S5_REP_SUCCEEDED = 0x00;

function parseArgs(argv) {
  const a = { T: 30 };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i], v = argv[i + 1];
    if (!/^-[tpnlsxT]$/.test(k) || v === undefined) {
      console.error('usage: evloop.js -t HOST:PORT -p PATH -n N -l LEN -s SHA256 [-x HOST:PORT] [-T S]');
      process.exit(2);
    }
    a[k[1]] = v;
  }
  for (const k of ['t', 'p', 'n', 'l', 's'])
    if (a[k] === undefined) { console.error('evloop.js: -' + k + ' is needed'); process.exit(2); }
  a.n = Number(a.n); a.l = Number(a.l); a.T = Number(a.T);
  return a;
}

function hostport(text) {
  const i = text.lastIndexOf(':');
  return [text.slice(0, i), Number(text.slice(i + 1))];
}

// Bytes of the SOCKS5 reply that are complete in buf, or 0 for "need more".
function replyLength(buf) {
  if (buf.length < 5) return 0;
  let n;
  if (buf[3] === S5_ATYP_IPV4) n = 4 + 4 + 2;
  else if (buf[3] === S5_ATYP_IPV6) n = 4 + 16 + 2;
  else if (buf[3] === S5_ATYP_DOMAIN) n = 4 + 1 + buf[4] + 2;
  else return -1;
  return buf.length >= n ? n : 0;
}

function fetchOne(a, i) {
  return new Promise((resolve, reject) => {
    const [thost, tport] = hostport(a.t);
    const [chost, cport] = a.x ? hostport(a.x) : [thost, tport];
    const get = Buffer.from(`GET ${a.p}?n=${i} HTTP/1.0\r\nHost: ${a.t}\r\n\r\n`);
    let state = a.x ? 'method' : 'http';
    let buf = Buffer.alloc(0);
    const sock = net.connect({ host: chost, port: cport });
    const fail = (why) => { sock.destroy(); reject(new Error(`fetch ${i}: ${why}`)); };
    sock.on('connect', () => {
      if (state === 'method') sock.write(Buffer.from([S5_VERSION, 1, S5_METHOD_NONE]));
      else sock.write(get);
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (state === 'method') {
        if (buf.length < 2) return;
        if (buf[0] !== S5_VERSION || buf[1] !== S5_METHOD_NONE) return fail('SOCKS5 method reply ' + buf.subarray(0, 2).toString('hex'));
        buf = buf.subarray(2);
        const req = Buffer.alloc(10);
        req.set([S5_VERSION, S5_CMD_CONNECT, 0, S5_ATYP_IPV4]);
        req.set(thost.split('.').map(Number), 4);
        req.writeUInt16BE(tport, 8);
        sock.write(req);
        state = 'reply';
      }
      if (state === 'reply') {
        const n = replyLength(buf);
        if (n < 0) return fail('SOCKS5 reply ATYP ' + buf[3]);
        if (n === 0) return;
        if (buf[0] !== S5_VERSION || buf[1] !== S5_REP_SUCCEEDED) return fail('SOCKS5 reply ' + buf.subarray(0, 4).toString('hex'));
        buf = buf.subarray(n);
        state = 'http';
        sock.write(get);
      }
    });
    sock.on('error', (e) => reject(new Error(`fetch ${i}: ${e.message}`)));
    sock.on('end', () => {
      if (state !== 'http') return fail('EOF during the SOCKS5 handshake');
      const sep = buf.indexOf('\r\n\r\n');
      const status = buf.subarray(0, Math.max(0, buf.indexOf('\r\n'))).toString('latin1');
      if (sep < 0 || !/^HTTP\/1\.[01] 200 /.test(status)) return fail('bad response head ' + JSON.stringify(status.slice(0, 60)));
      const body = buf.subarray(sep + 4);
      if (body.length !== a.l) return fail(`${body.length} body bytes, not ${a.l}`);
      if (crypto.createHash('sha256').update(body).digest('hex') !== a.s) return fail('body sha256 differs');
      resolve();
    });
  });
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const timer = setTimeout(() => {
    console.log(`evloop: failed: not done after ${a.T} s`);
    process.exit(1);
  }, a.T * 1000);
  const t0 = process.hrtime.bigint();
  const results = await Promise.allSettled(Array.from({ length: a.n }, (_, i) => fetchOne(a, i)));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  clearTimeout(timer);
  const bad = results.filter((r) => r.status === 'rejected');
  if (bad.length > 0) {
    console.log(`evloop: failed: ${bad.length} of ${a.n} fetches failed, first: ${String(bad[0].reason.message).slice(0, 120)}`);
    process.exit(1);
  }
  console.log(`evloop: ok n=${a.n} ms=${ms.toFixed(1)}`);
}

main();
