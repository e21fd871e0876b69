// SPDX-License-Identifier: Apache-2.0
// Drives daytonad's S3 subset (src/server/objstore.c) with the real @aws-sdk/client-s3 and
// lib-storage the Daytona SDK bundles, plus hand-signed raw requests for hostile input.
// Run by tests/server/test_objstore.py:
//   node objstore-client.mjs NODE_MODULES OBJECTS_DIR ACCESS_A_JSON ACCESS_B_JSON
// Prints "ok <name>" per check; exits non-zero on the first failure.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const [nodeModules, objectsDir, accessAJson, accessBJson] = process.argv.slice(2);
const require = createRequire(path.join(nodeModules, 'x.js'));
const s3 = require('@aws-sdk/client-s3');
const { Upload } = require('@aws-sdk/lib-storage');
const { SignatureV4 } = require('@smithy/signature-v4');

const A = JSON.parse(accessAJson);
const B = JSON.parse(accessBJson);
const bucket = A.bucket;
const onDisk = (key) => path.join(objectsDir, bucket, key);
const md5 = (b) => crypto.createHash('md5').update(b).digest('hex');

function client(acc, override = {}) {
    return new s3.S3Client({
        region: acc.region,
        endpoint: acc.storageUrl,
        forcePathStyle: true,
        maxAttempts: 1,
        credentials: {
            accessKeyId: acc.accessKey,
            secretAccessKey: override.secret ?? acc.secret,
            sessionToken: acc.sessionToken,
        },
    });
}

async function expectError(promise, status, code) {
    try {
        await promise;
    } catch (e) {
        const got = e.$metadata?.httpStatusCode;
        assert.equal(got, status, `expected ${status} ${code}, got ${got} ${e.name}: ${e.message}`);
        if (code)
            assert.equal(e.name, code, `expected ${code}, got ${e.name}`);
        return e;
    }
    assert.fail(`expected ${status} ${code}, but it succeeded`);
}

// Node's crypto in the shape @smithy/signature-v4 wants (a Checksum constructor).
class Sha256 {
    constructor(secret) {
        this.h = secret ? crypto.createHmac('sha256', secret) : crypto.createHash('sha256');
    }
    update(d) {
        this.h.update(d);
    }
    async digest() {
        return new Uint8Array(this.h.digest());
    }
    reset() {}
}

// A request signed by hand, so the body and headers can be anything: {path, headers, buf}.
async function sign(acc, method, key, { query = {}, body = '', headers = {}, date, payloadHash } = {}) {
    const url = new URL(acc.storageUrl);
    const p = `${url.pathname}/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
    const signer = new SignatureV4({
        credentials: { accessKeyId: acc.accessKey, secretAccessKey: acc.secret, sessionToken: acc.sessionToken },
        region: acc.region, service: 's3', sha256: Sha256, uriEscapePath: false, applyChecksum: false,
    });
    const buf = Buffer.from(body);
    const req = {
        method, protocol: url.protocol, hostname: url.hostname, port: Number(url.port), path: p, query,
        headers: {
            host: url.host,
            'x-amz-content-sha256': payloadHash ?? crypto.createHash('sha256').update(buf).digest('hex'),
            'content-length': String(buf.length),
            ...headers,
        },
        body: buf,
    };
    const signed = await signer.sign(req, { signingDate: date ?? new Date() });
    const qs = new URLSearchParams(query).toString();
    return { url, path: `${p}${qs ? '?' + qs : ''}`, headers: signed.headers, buf };
}

async function raw(acc, method, key, opts = {}) {
    const { url, path: target, headers, buf } = await sign(acc, method, key, opts);
    // node:http, not fetch: WHATWG URL parsing would resolve the '..' this test needs to send.
    const http = await import('node:http');
    return await new Promise((resolve, reject) => {
        const req = http.request({
            host: url.hostname, port: Number(url.port), method, path: target, headers,
        }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d) => { text += d; });
            res.on('end', () => resolve({ status: res.statusCode, body: text }));
        });
        req.on('error', reject);
        req.end(method === 'GET' || method === 'HEAD' ? undefined : buf);
    });
}

const ok = (name) => console.log(`ok ${name}`);
const a = client(A);
const pa = `${A.organizationId}/`;

// ListObjectsV2 of an empty prefix, exactly as ObjectStorage.folderExistsInS3 does.
{
    const r = await a.send(new s3.ListObjectsV2Command({ Bucket: bucket, Prefix: `${pa}nothing/`, MaxKeys: 1 }));
    assert.equal(r.KeyCount, 0);
    assert.ok(!r.Contents || r.Contents.length === 0);
    assert.equal(r.IsTruncated, false);
    ok('list-empty');
}

// PutObject of 1 MiB: bytes on disk, ETag, listing, Get and Head.
const one = crypto.randomBytes(1 << 20);
{
    const r = await a.send(new s3.PutObjectCommand({ Bucket: bucket, Key: `${pa}t/one.bin`, Body: one }));
    assert.equal(r.ETag, `"${md5(one)}"`);
    assert.ok(fs.readFileSync(onDisk(`${pa}t/one.bin`)).equals(one));
    const l = await a.send(new s3.ListObjectsV2Command({ Bucket: bucket, Prefix: `${pa}t/` }));
    assert.equal(l.KeyCount, 1);
    assert.equal(l.Contents[0].Key, `${pa}t/one.bin`);
    assert.equal(l.Contents[0].Size, 1 << 20);
    assert.ok(l.Contents[0].LastModified instanceof Date);
    const g = await a.send(new s3.GetObjectCommand({ Bucket: bucket, Key: `${pa}t/one.bin` }));
    assert.ok(Buffer.from(await g.Body.transformToByteArray()).equals(one));
    const h = await a.send(new s3.HeadObjectCommand({ Bucket: bucket, Key: `${pa}t/one.bin` }));
    assert.equal(h.ContentLength, 1 << 20);
    await expectError(a.send(new s3.GetObjectCommand({ Bucket: bucket, Key: `${pa}t/missing` })), 404, 'NoSuchKey');
    ok('put-get-1MiB');
}

// Listing order, MaxKeys and continuation.
{
    for (const k of ['b', 'a', 'c/d'])
        await a.send(new s3.PutObjectCommand({ Bucket: bucket, Key: `${pa}l/${k}`, Body: k }));
    const keys = [];
    let token;
    do {
        const r = await a.send(new s3.ListObjectsV2Command({
            Bucket: bucket, Prefix: `${pa}l/`, MaxKeys: 2, ContinuationToken: token,
        }));
        keys.push(...(r.Contents ?? []).map((c) => c.Key));
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    assert.deepEqual(keys, [`${pa}l/a`, `${pa}l/b`, `${pa}l/c/d`]);
    ok('list-pages');
}

// lib-storage Upload of 12 MiB: multipart (5 + 5 + 2 MiB parts).
{
    const big = crypto.randomBytes(12 << 20);
    const up = new Upload({ client: a, params: { Bucket: bucket, Key: `${pa}t/big.bin`, Body: big } });
    const r = await up.done();
    assert.match(r.ETag, /^"[0-9a-f]{32}-3"$/);
    assert.ok(fs.readFileSync(onDisk(`${pa}t/big.bin`)).equals(big));
    ok('multipart-12MiB');
}

// A stream body, as ObjectStorage.uploadAsTar passes it.
{
    const { PassThrough } = await import('node:stream');
    const data = crypto.randomBytes(7 << 20);
    const pass = new PassThrough();
    pass.end(data);
    await new Upload({ client: a, params: { Bucket: bucket, Key: `${pa}t/stream.bin`, Body: pass } }).done();
    assert.ok(fs.readFileSync(onDisk(`${pa}t/stream.bin`)).equals(data));
    ok('multipart-stream');
}

// Abort leaves nothing behind.
{
    const c = await a.send(new s3.CreateMultipartUploadCommand({ Bucket: bucket, Key: `${pa}t/aborted` }));
    await a.send(new s3.UploadPartCommand({
        Bucket: bucket, Key: `${pa}t/aborted`, UploadId: c.UploadId, PartNumber: 1, Body: 'x'.repeat(1000),
    }));
    assert.ok(fs.existsSync(path.join(objectsDir, '.uploads', c.UploadId)));
    await a.send(new s3.AbortMultipartUploadCommand({ Bucket: bucket, Key: `${pa}t/aborted`, UploadId: c.UploadId }));
    assert.ok(!fs.existsSync(path.join(objectsDir, '.uploads', c.UploadId)));
    await expectError(a.send(new s3.UploadPartCommand({
        Bucket: bucket, Key: `${pa}t/aborted`, UploadId: c.UploadId, PartNumber: 2, Body: 'y',
    })), 404, 'NoSuchUpload');
    ok('multipart-abort');
}

// Complete with a wrong ETag, with parts out of order, with malformed XML.
{
    const key = `${pa}t/bad-complete`;
    const c = await a.send(new s3.CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const p1 = await a.send(new s3.UploadPartCommand({ Bucket: bucket, Key: key, UploadId: c.UploadId, PartNumber: 1, Body: 'one' }));
    const p2 = await a.send(new s3.UploadPartCommand({ Bucket: bucket, Key: key, UploadId: c.UploadId, PartNumber: 2, Body: 'two' }));
    await expectError(a.send(new s3.CompleteMultipartUploadCommand({
        Bucket: bucket, Key: key, UploadId: c.UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"00000000000000000000000000000000"' }] },
    })), 400, 'InvalidPart');
    await expectError(a.send(new s3.CompleteMultipartUploadCommand({
        Bucket: bucket, Key: key, UploadId: c.UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 2, ETag: p2.ETag }, { PartNumber: 1, ETag: p1.ETag }] },
    })), 400, 'InvalidPartOrder');
    for (const body of ['', 'garbage', '<CompleteMultipartUpload><Part><PartNumber>x</PartNumber>',
        '<CompleteMultipartUpload><Part><PartNumber>99999</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>']) {
        const r = await raw(A, 'POST', key, { query: { uploadId: c.UploadId }, body });
        assert.equal(r.status, 400, `malformed complete body ${JSON.stringify(body)}: ${r.status} ${r.body}`);
        assert.match(r.body, /<Error><Code>(MalformedXML|InvalidPart)<\/Code>/);
    }
    const done = await a.send(new s3.CompleteMultipartUploadCommand({
        Bucket: bucket, Key: key, UploadId: c.UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: p2.ETag }] },
    }));
    assert.match(done.ETag, /-2"$/);
    assert.equal(fs.readFileSync(onDisk(key), 'utf8'), 'onetwo');
    ok('multipart-complete-errors');
}

// A wrong secret: 403 SignatureDoesNotMatch; nothing written.
{
    const bad = client(A, { secret: 'x'.repeat(64) });
    await expectError(bad.send(new s3.PutObjectCommand({ Bucket: bucket, Key: `${pa}t/forged`, Body: 'x' })),
        403, 'SignatureDoesNotMatch');
    await expectError(bad.send(new s3.ListObjectsV2Command({ Bucket: bucket, Prefix: pa })), 403, 'SignatureDoesNotMatch');
    assert.ok(!fs.existsSync(onDisk(`${pa}t/forged`)));
    // B's access key with A's secret.
    const mixed = client({ ...B, secret: A.secret });
    await expectError(mixed.send(new s3.ListObjectsV2Command({ Bucket: bucket, Prefix: `${B.organizationId}/` })), 403);
    // No signature at all.
    const r = await fetch(`${A.storageUrl}/${bucket}/${pa}t/one.bin`);
    assert.equal(r.status, 403);
    assert.match(await r.text(), /<Code>AccessDenied<\/Code>/);
    ok('bad-signature-403');
}

// A signature over a body hash the body does not match: 400, nothing written.
{
    const r = await raw(A, 'PUT', `${pa}t/lying`, { body: 'real body', payloadHash: crypto.createHash('sha256').update('other').digest('hex') });
    assert.equal(r.status, 400, r.body);
    assert.match(r.body, /XAmzContentSHA256Mismatch/);
    assert.ok(!fs.existsSync(onDisk(`${pa}t/lying`)));
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(0x12345678);
    const r2 = await raw(A, 'PUT', `${pa}t/badcrc`, { body: 'abc', headers: { 'x-amz-checksum-crc32': crc.toString('base64') } });
    assert.equal(r2.status, 400, r2.body);
    assert.match(r2.body, /BadDigest/);
    assert.ok(!fs.existsSync(onDisk(`${pa}t/badcrc`)));
    ok('payload-hash-and-crc-checked');
}

// An old signature: 403 RequestTimeTooSkewed.
{
    const r = await raw(A, 'GET', `${pa}t/one.bin`, { date: new Date(Date.now() - 20 * 60 * 1000) });
    assert.equal(r.status, 403, r.body);
    assert.match(r.body, /RequestTimeTooSkewed/);
    ok('clock-skew-403');
}

// Another organization's prefix: 403 AccessDenied for every operation.
{
    const pb = `${B.organizationId}/`;
    await expectError(a.send(new s3.PutObjectCommand({ Bucket: bucket, Key: `${pb}x`, Body: 'x' })), 403, 'AccessDenied');
    await expectError(a.send(new s3.ListObjectsV2Command({ Bucket: bucket, Prefix: pb })), 403, 'AccessDenied');
    await expectError(a.send(new s3.ListObjectsV2Command({ Bucket: bucket })), 403, 'AccessDenied');
    await expectError(a.send(new s3.CreateMultipartUploadCommand({ Bucket: bucket, Key: `${pb}x` })), 403, 'AccessDenied');
    const b = client(B);
    await expectError(b.send(new s3.GetObjectCommand({ Bucket: bucket, Key: `${pa}t/one.bin` })), 403, 'AccessDenied');
    // An upload id of A is no use to B either.
    const c = await a.send(new s3.CreateMultipartUploadCommand({ Bucket: bucket, Key: `${pa}t/mine` }));
    await expectError(b.send(new s3.UploadPartCommand({
        Bucket: bucket, Key: `${pb}t/mine`, UploadId: c.UploadId, PartNumber: 1, Body: 'x',
    })), 404, 'NoSuchUpload');
    await a.send(new s3.AbortMultipartUploadCommand({ Bucket: bucket, Key: `${pa}t/mine`, UploadId: c.UploadId }));
    // B's own space works.
    await b.send(new s3.PutObjectCommand({ Bucket: bucket, Key: `${pb}own`, Body: 'b' }));
    assert.equal(fs.readFileSync(onDisk(`${pb}own`), 'utf8'), 'b');
    await expectError(a.send(new s3.GetObjectCommand({ Bucket: 'other-bucket', Key: `${pa}x` })), 404, 'NoSuchBucket');
    ok('other-org-403');
}

// Hostile keys: 400 and nothing created outside the bucket.
{
    const bad = [`${pa}../${B.organizationId}/evil`, `${pa}a/../../evil`, `${pa}./x`, `${pa}a//b`,
        `${pa}${'k'.repeat(1100)}`, `${pa}a\u0000b`, `${pa}a\u0001b`, `${pa}${'n'.repeat(300)}/x`];
    for (const key of bad) {
        const r = await raw(A, 'PUT', key, { body: 'evil' });
        assert.equal(r.status, 400, `key ${JSON.stringify(key.slice(0, 60))}: ${r.status} ${r.body}`);
    }
    // Through the SDK too (it sends '..' unencoded).
    await expectError(a.send(new s3.PutObjectCommand({ Bucket: bucket, Key: `${pa}../evil`, Body: 'x' })), 400);
    await expectError(a.send(new s3.ListObjectsV2Command({ Bucket: bucket, Prefix: `${pa}../` })), 400);
    assert.ok(!fs.existsSync(path.join(objectsDir, bucket, 'evil')));
    assert.ok(!fs.existsSync(path.join(objectsDir, 'evil')));
    ok('hostile-keys-400');
}

// Oversized declared bodies are refused before a byte is stored.
{
    const url = new URL(A.storageUrl);
    const net = await import('node:net');
    const sock = net.connect(Number(url.port), url.hostname);
    await new Promise((res) => sock.on('connect', res));
    sock.write(`PUT ${url.pathname}/${bucket}/${pa}huge HTTP/1.1\r\nHost: ${url.host}\r\n` +
        `Content-Length: ${6 * 2 ** 30}\r\n\r\n`);
    const got = await new Promise((res) => { let s = ''; sock.on('data', (d) => { s += d; if (s.includes('\r\n\r\n')) res(s); }); });
    sock.destroy();
    assert.match(got, /^HTTP\/1\.1 403/); // unsigned: refused before anything else
    ok('unsigned-huge-refused');
}

// Signed but oversized or broken uploads: refused, and no temporary file survives.
{
    const net = await import('node:net');
    const send = async (method, key, opts, bodyBytes) => {
        const s = await sign(A, method, key, opts);
        const sock = net.connect(Number(s.url.port), s.url.hostname);
        await new Promise((res) => sock.on('connect', res));
        let head = `${method} ${s.path} HTTP/1.1\r\n`;
        for (const [k, v] of Object.entries(s.headers))
            head += `${k}: ${v}\r\n`;
        sock.write(head + '\r\n');
        if (bodyBytes)
            sock.write(Buffer.alloc(bodyBytes, 0x61));
        return sock;
    };
    const readHead = (sock) => new Promise((res) => {
        let t = '';
        sock.on('data', (d) => { t += d; if (t.includes('\r\n\r\n')) res(t); });
        sock.on('close', () => res(t));
    });
    const tmpFiles = () => [...fs.readdirSync(path.join(objectsDir, '.tmp')),
        ...fs.readdirSync(path.join(objectsDir, '.uploads')).flatMap((d) =>
            fs.readdirSync(path.join(objectsDir, '.uploads', d)).filter((f) => f.startsWith('.tmp')))];

    // Declared 6 GiB: 400 EntityTooLarge at once.
    let sock = await send('PUT', `${pa}t/huge`, { payloadHash: 'UNSIGNED-PAYLOAD', headers: { 'content-length': String(6 * 2 ** 30) } });
    assert.match(await readHead(sock), /^HTTP\/1\.1 400[^]*EntityTooLarge|^HTTP\/1\.1 400/);
    sock.destroy();
    // Client gone halfway: the temporary file is removed.
    sock = await send('PUT', `${pa}t/half`, { payloadHash: 'UNSIGNED-PAYLOAD', headers: { 'content-length': '1000000' } }, 300000);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(tmpFiles().length > 0, 'an upload in progress has a temporary file');
    sock.destroy();
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(tmpFiles(), []);
    assert.ok(!fs.existsSync(onDisk(`${pa}t/half`)));
    // The same for a part.
    const c = await a.send(new s3.CreateMultipartUploadCommand({ Bucket: bucket, Key: `${pa}t/halfpart` }));
    sock = await send('PUT', `${pa}t/halfpart`, { payloadHash: 'UNSIGNED-PAYLOAD', query: { partNumber: '1', uploadId: c.UploadId }, headers: { 'content-length': '1000000' } }, 300000);
    await new Promise((r) => setTimeout(r, 200));
    sock.destroy();
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(tmpFiles(), []);
    // Part numbers outside 1..10000.
    for (const n of ['0', '10001', 'x']) {
        const r = await raw(A, 'PUT', `${pa}t/halfpart`, { query: { partNumber: n, uploadId: c.UploadId }, body: 'x' });
        assert.equal(r.status, 400, `partNumber ${n}: ${r.body}`);
    }
    await a.send(new s3.AbortMultipartUploadCommand({ Bucket: bucket, Key: `${pa}t/halfpart`, UploadId: c.UploadId }));
    ok('no-leftovers');
}

// The Daytona SDK's own ObjectStorage.upload(): hash, tar, list, upload; then a no-op second time.
{
    const { ObjectStorage } = require(path.join(nodeModules, '@daytonaio/sdk/cjs/ObjectStorage.js'));
    const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-objstore-ctx-'));
    try {
        fs.mkdirSync(path.join(ctx, 'proj', 'sub'), { recursive: true });
        fs.writeFileSync(path.join(ctx, 'proj', 'requirements.txt'), 'requests==2.31.0\n');
        fs.writeFileSync(path.join(ctx, 'proj', 'sub', 'data.bin'), crypto.randomBytes(100000));
        const store = new ObjectStorage({
            endpointUrl: A.storageUrl, accessKeyId: A.accessKey, secretAccessKey: A.secret,
            sessionToken: A.sessionToken, bucketName: A.bucket, region: A.region,
        });
        const src = path.join(ctx, 'proj');
        const archivePath = src.replace(/^\//, '');
        const hash = await store.upload(src, A.organizationId, archivePath);
        assert.match(hash, /^[0-9a-f]{32}$/);
        const tarPath = onDisk(`${pa}${hash}/context.tar`);
        const st = fs.statSync(tarPath);
        assert.ok(st.size > 100000);
        const mtime = st.mtimeMs;
        assert.equal(await store.upload(src, A.organizationId, archivePath), hash);
        assert.equal(fs.statSync(tarPath).mtimeMs, mtime, 'second upload must be skipped');
        console.log(`context ${A.organizationId} ${hash} ${archivePath}`);
        ok('sdk-object-storage-upload');
    } finally {
        fs.rmSync(ctx, { recursive: true, force: true });
    }
}
