// Node programs for tests/preload_evloop.bats (libuv: non-blocking connect,
// then epoll).
//
//   node evloop.js many N URL
//       N http.get of URL at once, each on a connection of its own. Prints
//       "K ok" (K: answers with status 200 read to the end), the sha256
//       shared by every body (or "bodies differ"), and the wall time of the
//       N fetches in ms (start-up not counted).
//   node evloop.js timer HOST PORT LINGER_MS
//       net.connect(PORT, HOST), and a 200 ms timer set at the same moment.
//       When the timer fires, prints "timer MS connected=BOOL" (MS: how long
//       after it was set), then stays LINGER_MS longer (so the test can see
//       the connection) and exits.
"use strict";
const crypto = require("crypto");
const http = require("http");
const net = require("net");

const TIMEOUT_MS = 20000;
const TIMER_MS = 200;

function many(n, url) {
	const t0 = process.hrtime.bigint();
	const shas = new Set();
	let ok = 0, done = 0;
	const finish = () => {
		const ms = Number(process.hrtime.bigint() - t0) / 1e6;
		console.log(`${ok} ok`);
		console.log(shas.size === 1 ? [...shas][0] : "bodies differ");
		console.log(Math.round(ms).toString());
		process.exit(0);
	};
	const one = () => {
		if (++done === n) finish();
	};
	setTimeout(() => { console.error("timed out"); finish(); }, TIMEOUT_MS).unref();
	for (let i = 0; i < n; i++) {
		http.get(url, { agent: false }, (res) => {
			const h = crypto.createHash("sha256");
			res.on("data", (d) => h.update(d));
			res.on("end", () => {
				if (res.statusCode === 200) {
					ok++;
					shas.add(h.digest("hex"));
				}
				one();
			});
			res.on("error", one);
		}).on("error", (e) => { console.error(e.code || e.message); one(); });
	}
}

function timer(host, port, linger) {
	let connected = false;
	const t0 = process.hrtime.bigint();
	const s = net.connect(port, host);
	s.on("connect", () => { connected = true; });
	s.on("error", (e) => { console.error("connect error: " + e.code); });
	setTimeout(() => {
		const ms = Number(process.hrtime.bigint() - t0) / 1e6;
		console.log(`timer ${Math.round(ms)} connected=${connected}`);
		setTimeout(() => process.exit(0), linger);
	}, TIMER_MS);
}

const [op, ...args] = process.argv.slice(2);
if (op === "many")
	many(Number(args[0]), args[1]);
else if (op === "timer")
	timer(args[0], Number(args[1]), Number(args[2]));
else {
	console.error("unknown op " + op);
	process.exit(2);
}
