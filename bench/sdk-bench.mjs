// SPDX-License-Identifier: Apache-2.0
// The measuring half of bench/sdk (which starts `daytonad serve` and runs this with
// DAYTONA_API_URL / DAYTONA_API_KEY / DT_SDK_MODULES / DT_BENCH_* set): with the official
// @daytonaio/sdk, (1) create() -> first successful executeCommand('echo hi'), (2) executeCommand
// round trip next to the agent's own round trip on its unix socket, interleaved, (3) GET
// /api/sandbox/{id} requests/s with wrk (or a node load generator when wrk is missing).
// Every sandbox id it creates is appended to DT_BENCH_IDS before use, so the driver can check
// that none outlives the run.

import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const env = process.env;
const modules = env.DT_SDK_MODULES;
const { Daytona } = require(path.join(path.resolve(modules), '@daytonaio', 'sdk'));

const CREATE_N = Number(env.DT_BENCH_CREATE_N ?? 50);
const CREATE_WARMUP = Number(env.DT_BENCH_CREATE_WARMUP ?? 2);
const EXEC_N = Number(env.DT_BENCH_EXEC_N ?? 300);
const EXEC_WARMUP = 10;
const RPS_SECONDS = Number(env.DT_BENCH_RPS_SECONDS ?? 10);
const RPS_CONNS = Number(env.DT_BENCH_RPS_CONNECTIONS ?? 32);
const RPS_THREADS = Number(env.DT_BENCH_RPS_THREADS ?? 1);
const WRK = env.DT_BENCH_WRK || '';
const DATA_DIR = env.DT_BENCH_DATA_DIR;
const IDS_FILE = env.DT_BENCH_IDS;
const PHASES = new Set((env.DT_BENCH_PHASES || 'create,exec,rps').split(','));
const LABELS = { bench: 'sdk' };

const out = (s = '') => process.stdout.write(s + '\n');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Percentile with linear interpolation between ranks (as bench/runtime does).
function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const r = (p / 100) * (s.length - 1);
  const lo = Math.floor(r);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo] + (s[hi] - s[lo]) * (r - lo);
}

function loadavg() {
  return fs.readFileSync('/proc/loadavg', 'utf8').trim();
}

function met(ok) {
  return ok ? 'MET' : 'NOT MET';
}

function remember(sb) {
  if (IDS_FILE) fs.appendFileSync(IDS_FILE, sb.id + '\n');
}

async function remove(daytona, sb) {
  try {
    await daytona.delete(sb, 60, true);
  } catch (e) {
    out(`  cleanup: deleting ${sb.id}: ${e?.message ?? e}`);
  }
}

// The first executeCommand('echo hi') that returns "hi": retried (bounded) so a sandbox whose
// agent is not answering yet shows up as a slow sample, not as a failure.
async function firstEcho(sb) {
  const deadline = performance.now() + 30_000;
  let tries = 0;
  for (;;) {
    tries++;
    try {
      const r = await sb.process.executeCommand('echo hi');
      if (r.exitCode === 0 && r.result === 'hi\n') return tries;
      if (performance.now() > deadline) throw new Error(`unexpected result ${JSON.stringify(r)}`);
    } catch (e) {
      if (performance.now() > deadline) throw e;
    }
    await sleep(1);
  }
}

async function benchCreate(daytona) {
  const POOL = Number(env.DT_BENCH_POOL || 0);
  out(`(1) create() -> first successful executeCommand('echo hi'), ` +
      (POOL > 0 ? `WITH A WARM POOL of ${POOL} (refilled between iterations, untimed)` : 'WITHOUT A POOL') +
      `, ${CREATE_N} iterations after ${CREATE_WARMUP} warm-up, ` +
      `each sandbox deleted (and waited for) after, untimed`);
  const total = [];
  const create = [];
  const exec = [];
  let retried = 0;
  let failures = 0;
  for (let i = 0; i < CREATE_N + CREATE_WARMUP; i++) {
    let sb;
    try {
      const t0 = performance.now();
      sb = await daytona.create({ labels: LABELS });
      const t1 = performance.now();
      remember(sb);
      const tries = await firstEcho(sb);
      const t2 = performance.now();
      if (i >= CREATE_WARMUP) {
        total.push(t2 - t0);
        create.push(t1 - t0);
        exec.push(t2 - t1);
        if (tries > 1) retried++;
      }
    } catch (e) {
      failures++;
      out(`  iteration ${i}: FAILED: ${e?.message ?? e}`);
    } finally {
      if (sb) await remove(daytona, sb);
      if (POOL > 0) await new Promise((r) => setTimeout(r, 400)); /* let the pool refill */
    }
  }
  out(`  samples ${total.length}, failures ${failures}, first exec needed a retry in ${retried}`);
  out(`  create() -> 'hi':   p50 ${f2(pct(total, 50))} ms  p90 ${f2(pct(total, 90))} ms  ` +
      `p99 ${f2(pct(total, 99))} ms  max ${f2(Math.max(...total))} ms`);
  out(`    of which create() p50 ${f2(pct(create, 50))} ms  p99 ${f2(pct(create, 99))} ms; ` +
      `first exec p50 ${f2(pct(exec, 50))} ms  p99 ${f2(pct(exec, 99))} ms`);
  const p50 = pct(total, 50);
  const p99 = pct(total, 99);
  const how = POOL > 0 ? 'with the pool' : 'without a pool';
  out(`  target with the pool: p50 <= 15 ms (${met(p50 <= 15)} ${how}), ` +
      `p99 <= 50 ms (${met(p99 <= 50)} ${how})`);
  out(`  peers' medians on a pool hit: Daytona 110 ms (ours is ${f2(p50 / 110)}x), ` +
      `E2B 440 ms (${f2(p50 / 440)}x)`);
  return failures === 0 && total.length > 0;
}

// One HTTP/1.1 keep-alive connection (unix socket or TCP); request() sends DATA and
// resolves with the body of one Content-Length (or chunked) response.
class RawConn {
  constructor(connectOpts) {
    this.sock = net.connect(connectOpts);
    this.sock.setNoDelay(true);
    this.buf = Buffer.alloc(0);
    this.waiter = null;
    this.sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.poke();
    });
    this.sock.on('error', (e) => {
      if (this.waiter) this.waiter.reject(e);
      this.waiter = null;
    });
  }

  ready() {
    return new Promise((resolve, reject) => {
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
    });
  }

  poke() {
    if (!this.waiter) return;
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buf.subarray(0, end).toString('latin1');
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const status = Number(head.split(' ')[1]);
    let body;
    let used;
    if (m) {
      const n = Number(m[1]);
      if (this.buf.length < end + 4 + n) return;
      body = this.buf.subarray(end + 4, end + 4 + n);
      used = end + 4 + n;
    } else {
      // chunked: wait for the terminating chunk, then decode
      const term = this.buf.indexOf('\r\n0\r\n\r\n', end);
      if (term < 0) return;
      const parts = [];
      let p = end + 4;
      for (;;) {
        const eol = this.buf.indexOf('\r\n', p);
        const size = parseInt(this.buf.subarray(p, eol).toString('latin1'), 16);
        if (!size) break;
        parts.push(this.buf.subarray(eol + 2, eol + 2 + size));
        p = eol + 2 + size + 2;
      }
      body = Buffer.concat(parts);
      used = term + 7;
    }
    this.buf = this.buf.subarray(used);
    const w = this.waiter;
    this.waiter = null;
    w.resolve({ status, body: body.toString() });
  }

  request(data) {
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.sock.write(data);
    });
  }

  close() {
    this.sock.destroy();
  }
}

async function benchExec(sb) {
  const sockPath = path.join(DATA_DIR, 'sandboxes', sb.id, 'agent.sock');
  const agentConn = new RawConn({ path: sockPath });
  await agentConn.ready();
  // The toolbox route the SDK itself uses (toolboxProxyUrl/{id}/process/execute), without the
  // SDK: a raw keep-alive TCP connection to daytonad.
  const proxy = new URL(`${sb.toolboxProxyUrl.replace(/\/$/, '')}/${sb.id}/process/execute`);
  const proxyConn = new RawConn({ host: proxy.hostname, port: Number(proxy.port) });
  await proxyConn.ready();
  // The very body the SDK sends for executeCommand('echo hi') (undefined fields are dropped).
  const body = JSON.stringify({ command: 'echo hi' });
  const request = (target, extra) => Buffer.from(`POST ${target} HTTP/1.1\r\nHost: agent\r\n` +
    `${extra}Content-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  const agentReq = request('/process/execute', '');
  const proxyReq = request(proxy.pathname, `Authorization: Bearer ${env.DAYTONA_API_KEY}\r\n`);
  const raw = (conn, req, what) => async () => {
    const t = performance.now();
    const r = await conn.request(req);
    const dt = performance.now() - t;
    if (r.status !== 200 || !r.body.includes('"result":"hi\\n"')) {
      throw new Error(`${what}: HTTP ${r.status} ${r.body}`);
    }
    return dt;
  };
  const viaSdk = async () => {
    const t = performance.now();
    const r = await sb.process.executeCommand('echo hi');
    const dt = performance.now() - t;
    if (r.exitCode !== 0 || r.result !== 'hi\n') throw new Error(`SDK: ${JSON.stringify(r)}`);
    return dt;
  };
  const peers = [
    { name: 'SDK -> daytonad -> agent', run: viaSdk, t: [] },
    { name: 'raw HTTP -> daytonad -> agent', run: raw(proxyConn, proxyReq, 'daytonad'), t: [] },
    { name: "agent on its own socket", run: raw(agentConn, agentReq, 'agent'), t: [] },
  ];
  out(`(2) executeCommand('echo hi') round trip on one sandbox, ${EXEC_N} iterations after ` +
      `${EXEC_WARMUP} warm-up, interleaved (starting peer rotated each round) with the same ` +
      `request sent raw to daytonad's toolbox route and straight to the agent's socket ` +
      `(${sockPath})`);
  for (let i = 0; i < EXEC_N + EXEC_WARMUP; i++) {
    for (let k = 0; k < peers.length; k++) {
      const peer = peers[(i + k) % peers.length];
      const dt = await peer.run();
      if (i >= EXEC_WARMUP) peer.t.push(dt);
    }
  }
  agentConn.close();
  proxyConn.close();
  const a50 = pct(peers[2].t, 50);
  const a99 = pct(peers[2].t, 99);
  const sign = (x) => (x >= 0 ? '+' : '') + f2(x);
  for (const peer of peers) {
    const p50 = pct(peer.t, 50);
    const p99 = pct(peer.t, 99);
    out(`  ${peer.name.padEnd(30)} p50 ${f2(p50).padStart(6)} ms  p99 ${f2(p99).padStart(6)} ms` +
        (peer === peers[2] ? '' : `   p50 ${sign(p50 - a50)} ms  p99 ${sign(p99 - a99)} ms ` +
         `over the agent, ${f2(p50 / a50)}x`));
  }
  const extra = pct(peers[0].t, 50) - a50;
  out(`  the SDK path adds p50 ${sign(extra)} ms over the agent's own round trip ` +
      `(target <= 1 ms: ${met(extra <= 1)}); daytonad's proxy alone adds ` +
      `${sign(pct(peers[1].t, 50) - a50)} ms, the SDK client the rest`);
}

function runWrk(url, key) {
  return new Promise((resolve, reject) => {
    const argv = ['-t', String(RPS_THREADS), '-c', String(RPS_CONNS), '-d', `${RPS_SECONDS}s`,
      '--latency', '-H', `Authorization: Bearer ${key}`, url];
    const p = spawn(WRK, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    p.stdout.on('data', (d) => { text += d; });
    p.stderr.on('data', (d) => { text += d; });
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) reject(new Error(`wrk exited with ${code}: ${text}`));
      else resolve(text);
    });
  });
}

// Fallback without wrk: RPS_CONNS keep-alive connections each looping GETs for RPS_SECONDS.
// A single node thread is slower than the server, so this is a lower bound on its rate.
async function nodeLoad(url, key) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: RPS_CONNS });
  const deadline = performance.now() + RPS_SECONDS * 1000;
  let ok = 0;
  let bad = 0;
  const one = () => new Promise((resolve) => {
    http.get(url, { agent, headers: { Authorization: `Bearer ${key}` } }, (res) => {
      res.resume();
      res.on('end', () => { if (res.statusCode === 200) ok++; else bad++; resolve(); });
    }).on('error', () => { bad++; resolve(); });
  });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: RPS_CONNS }, async () => {
    while (performance.now() < deadline) await one();
  }));
  const secs = (performance.now() - t0) / 1000;
  agent.destroy();
  return { ok, bad, secs };
}

async function benchRps(sb) {
  const url = `${env.DAYTONA_API_URL.replace(/\/$/, '')}/sandbox/${sb.id}`;
  const key = env.DAYTONA_API_KEY;
  const probe = await fetch(url, { headers: { Authorization: `Bearer ${key}` } });
  const probeBody = await probe.text();
  if (probe.status !== 200 || !probeBody.includes(sb.id)) {
    throw new Error(`GET ${url}: HTTP ${probe.status} ${probeBody.slice(0, 300)}`);
  }
  out(`(3) GET /api/sandbox/{id} (authenticated, ${probeBody.length}-byte JSON answer), ` +
      `${RPS_SECONDS} s, ${RPS_CONNS} keep-alive connections`);
  let rate;
  if (WRK) {
    const text = await runWrk(url, key);
    const m = /Requests\/sec:\s*([\d.]+)/.exec(text);
    const non2xx = /Non-2xx or 3xx responses:\s*(\d+)/.exec(text);
    const sockErr = /Socket errors:[^\n]*/.exec(text);
    rate = m ? Number(m[1]) : NaN;
    const lat = (p) => (new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(text) || [])[1] ?? 'n/a';
    out(`  wrk -t${RPS_THREADS} -c${RPS_CONNS} (wrk shares the machine's cores with daytonad)`);
    out(`  ${rate.toFixed(0)} requests/s  latency p50 ${lat(50)}  p99 ${lat(99)}` +
        `${non2xx ? `  NON-2XX ANSWERS: ${non2xx[1]}` : ''}${sockErr ? `  ${sockErr[0]}` : ''}`);
    if (non2xx || !m) {
      out(text.replace(/^/gm, '    | '));
      rate = NaN;
    }
  } else {
    const r = await nodeLoad(url, key);
    rate = r.ok / r.secs;
    out('  wrk is not installed: node load generator (one client thread, a lower bound)');
    out(`  ${rate.toFixed(0)} requests/s (${r.ok} ok, ${r.bad} failed)`);
    if (r.bad) rate = NaN;
  }
  out(`  target >= 20000/s: ${met(rate >= 20000)} (${f2(rate / 20000)}x the target)`);
}

async function main() {
  const daytona = new Daytona();
  let ok = true;
  let sb;
  try {
    if (PHASES.has('create')) {
      ok = (await benchCreate(daytona)) && ok;
      out();
    }
    if (PHASES.has('exec') || PHASES.has('rps')) {
      sb = await daytona.create({ labels: LABELS });
      remember(sb);
      await firstEcho(sb);
      if (PHASES.has('exec')) {
        await benchExec(sb);
        out();
      }
      if (PHASES.has('rps')) {
        out(`load average before (3): ${loadavg()}`);
        await benchRps(sb);
      }
    }
  } catch (e) {
    ok = false;
    out(`FAILED: ${e?.stack ?? e}`);
  } finally {
    if (sb) await remove(daytona, sb);
    await daytona[Symbol.asyncDispose]();
  }
  process.exitCode = ok ? 0 : 1;
}

await main();
