// Signs one webhook body with a provider's own library and prints the signature header's value:
//   node sign.mjs standard <whsec_secret> <msg id> <unix seconds> <body file>
//   node sign.mjs github <secret> <body file>
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { sign } from "@octokit/webhooks-methods";

const require = createRequire(import.meta.url);
const { Webhook } = require("standardwebhooks");
const [scheme, secret, ...rest] = process.argv.slice(2);
if (scheme === "standard") {
  const [id, seconds, file] = rest;
  process.stdout.write(new Webhook(secret).sign(id, new Date(Number(seconds) * 1000), readFileSync(file, "utf8")));
} else if (scheme === "github") {
  process.stdout.write(await sign(secret, readFileSync(rest[0], "utf8")));
} else {
  console.error(`unknown scheme ${scheme}`);
  process.exit(2);
}
