#!/usr/bin/env node
// S3-compatible test server for sandboxd's storage tests: @20minutes/s3rver (it checks SigV4
// header and presigned signatures and supports multipart) on loopback.
//
//   node --openssl-legacy-provider tests/s3/s3rver.js [PORT] [DIR] [BUCKET...]
//   (the flag: s3rver's ListObjectsV2 continuation tokens use DES, which OpenSSL 3 keeps in
//    its legacy provider; without it listings of more than 1000 keys fail with InternalError)
//   (or S3RVER_PORT, S3RVER_DIR, S3RVER_BUCKETS=a,b; defaults 0 = any free port, a temp dir,
//    bucket "sandboxd-test")
//
// Prints "ready <port>" on stdout once it listens. Credentials are s3rver's built-in
// S3RVER / S3RVER. Virtual-hosted requests work as <bucket>.s3.localhost:<port>.
'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const S3rver = require('@20minutes/s3rver')

const args = process.argv.slice(2)
const port = Number(args[0] ?? process.env.S3RVER_PORT ?? 0)
const dir = args[1] ?? process.env.S3RVER_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), 's3rver-'))
const buckets = args.length > 2 ? args.slice(2) : (process.env.S3RVER_BUCKETS ?? 'sandboxd-test').split(',')

const server = new S3rver({
  address: '127.0.0.1',
  port,
  directory: dir,
  silent: !process.env.S3RVER_VERBOSE,
  serviceEndpoint: 'localhost',
  // s3rver computes the canonical URI of virtual-hosted requests as /<bucket>/<key> (the old
  // JS SDK's quirk), so correctly signed virtual-hosted requests fail there; a server started
  // with S3RVER_ALLOW_MISMATCHED_SIGNATURES=1 checks addressing only (signing is covered by
  // the SigV4 vectors in tests/unit/test-sigv4.c and the path-style server).
  allowMismatchedSignatures: process.env.S3RVER_ALLOW_MISMATCHED_SIGNATURES === '1',
  configureBuckets: buckets.filter(Boolean).map((name) => ({ name })),
})
server.run((err, addr) => {
  if (err) {
    console.error(`s3rver: ${err.message}`)
    process.exit(1)
  }
  console.log(`ready ${addr.port}`)
})
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)))
}
