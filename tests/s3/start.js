// Usage: node start.js DIRECTORY [PORT] — serves S3 on 127.0.0.1 (credentials S3RVER/S3RVER) with the bucket
// connector-imports, and prints "s3 ready PORT" (port 0 or none: a free one). The package ships no working bin.
const S3rver = require('@20minutes/s3rver');
new S3rver({
  address: '127.0.0.1', port: Number(process.argv[3] || 0), directory: process.argv[2], silent: true,
  vhostBuckets: false, configureBuckets: [{ name: 'connector-imports' }],
}).run().then((address) => console.log(`s3 ready ${address.port}`), (e) => { console.error(e); process.exit(1); });
