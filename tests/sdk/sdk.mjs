// SPDX-License-Identifier: Apache-2.0
// Shared by tests/sdk/*.test.mjs: loads the official @daytonaio/sdk from the node_modules that
// run-sdk-tests names (DT_SDK_MODULES, else NODE_PATH; ES modules ignore NODE_PATH, so it is
// required by absolute path through createRequire), and small helpers. Not a test file itself.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import crypto from 'node:crypto';

const require = createRequire(import.meta.url);
const modules = process.env.DT_SDK_MODULES || (process.env.NODE_PATH || '').split(path.delimiter)[0];

function loadSdk() {
  if (modules) {
    return require(path.join(path.resolve(modules), '@daytonaio', 'sdk'));
  }
  return require('@daytonaio/sdk');
}

export const sdk = loadSdk();
export const { Daytona } = sdk;

// A name no other test run uses (sandbox names are unique per organization).
export function uniq(prefix) {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
}

// `new Daytona()` from the environment (DAYTONA_API_URL, DAYTONA_API_KEY), as users do.
export function client() {
  return new Daytona();
}

// Close the client's Socket.IO connection so the test process exits promptly.
export async function dispose(daytona) {
  if (daytona) {
    await daytona[Symbol.asyncDispose]();
  }
}

// Delete sandboxes in cleanup: never throws (a test's own failure is the interesting one), but
// reports, and the harness fails the run on sandboxes left behind.
export async function deleteAll(daytona, sandboxes) {
  for (const sb of sandboxes) {
    if (!sb) continue;
    try {
      await daytona.delete(sb);
    } catch (e) {
      console.error(`cleanup: deleting sandbox ${sb.id}: ${e?.message ?? e}`);
    }
  }
}

// Assert that PROMISE rejects with an instance of CLASS; returns the error.
export async function rejectsWith(promise, cls, what = '') {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: expected ${cls.name}, but the call succeeded`);
  assert.ok(err instanceof cls,
    `${what}: expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message} (status ${err?.statusCode})`);
  return err;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Poll FN (async, returns truthy when done) every 100 ms for up to MS; returns its last value.
export async function until(fn, ms = 10000) {
  const deadline = Date.now() + ms;
  let v;
  while (!(v = await fn()) && Date.now() < deadline) {
    await sleep(100);
  }
  return v;
}

export const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
