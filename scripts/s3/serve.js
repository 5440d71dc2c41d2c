'use strict';
// Starts @20minutes/s3rver (SigV4 verified) for the s3:// tests.
// usage: node serve.js DIR ACCESS_KEY_ID   (the secret is read from the
// environment, S3RVER_SECRET, so it never shows in argv)
// Binds 127.0.0.1 on a free port and prints "port N" once listening.
// The built-in S3RVER/S3RVER key pair is revoked: only ours signs.
const S3rver = require('@20minutes/s3rver');
const AWSAccount = require('@20minutes/s3rver/lib/models/account');

const [dir, keyId] = process.argv.slice(2);
const secret = process.env.S3RVER_SECRET;
if (!dir || !keyId || !secret) {
  console.error('usage: S3RVER_SECRET=... node serve.js DIR ACCESS_KEY_ID');
  process.exit(2);
}
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
AWSAccount.DUMMY_ACCOUNT.createKeyPair(keyId, secret);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory: dir,
  vhostBuckets: false,
});
server.run().then((addr) => {
  console.log(`port ${addr.port}`);
}, (err) => {
  console.error(err);
  process.exit(1);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
