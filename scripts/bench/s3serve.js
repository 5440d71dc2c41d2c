'use strict';
// s3serve.js: scripts/s3/serve.js for the benchmark, plus one fix that lets
// s3fs talk to @20minutes/s3rver 4.0.4 with SigV4 checking on.
// usage: S3RVER_SECRET=... node --openssl-legacy-provider s3serve.js DIR KEY_ID
//
// s3fs signs bucket-level requests (GET /bench/?...) with the canonical URI
// "/bench/", as sent and as AWS checks it; s3rver rebuilds the URI from the
// bucket name ("/bench") and so rejects every such request with
// SignatureDoesNotMatch. Here the path as sent is kept aside, and the URI is
// taken as sent when it differs from s3rver's by that trailing slash alone.
// Nothing else changes: every request is still verified with our key pair.
const path = require('path');
const s3dir = path.join(__dirname, '..', 's3');
const v4 = require(path.join(s3dir, 'node_modules/@20minutes/s3rver/lib/signature/v4'));
const S3rver = require(path.join(s3dir, 'node_modules/@20minutes/s3rver'));
const RAW = 'x-bench-raw-path';

const getStringToSign = v4.getStringToSign;
v4.getStringToSign = function (canonicalRequest, sig) {
  const raw = canonicalRequest.headers[RAW];
  if (raw && raw === canonicalRequest.uri + '/') {
    canonicalRequest = { ...canonicalRequest, uri: raw };
  }
  return getStringToSign(canonicalRequest, sig);
};
const use = S3rver.prototype.use;
let first = true;
S3rver.prototype.use = function (fn) {
  if (first) {
    first = false;
    use.call(this, (ctx, next) => {
      ctx.req.headers[RAW] = ctx.path;
      return next();
    });
  }
  return use.call(this, fn);
};
require(path.join(s3dir, 'serve.js'));
