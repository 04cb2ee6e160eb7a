// Regenerates what the client takes from the service's committed documents, into src/generated/
// (or into the folder given as the first argument, which is how a test checks for staleness):
//   openapi.ts             openapi-typescript's types for ../../openapi.json, with its default settings
//   booking-email-v1.json  a copy of ../../schemas/booking-email-v1.json, which publishEmailJob
//                          validates every queue message against (a package cannot reach outside
//                          its own folder once packed)
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const repository = resolve(pkg, "..", "..");
const out = resolve(process.argv[2] ?? resolve(pkg, "src", "generated"));
mkdirSync(out, { recursive: true });

const manifest = createRequire(import.meta.url).resolve("openapi-typescript/package.json");
const cli = resolve(dirname(manifest), JSON.parse(readFileSync(manifest, "utf8")).bin["openapi-typescript"]);
execFileSync(process.execPath, [cli, resolve(repository, "openapi.json"), "--output", resolve(out, "openapi.ts")], {
  stdio: ["ignore", "ignore", "inherit"],
});
copyFileSync(resolve(repository, "schemas", "booking-email-v1.json"), resolve(out, "booking-email-v1.json"));
console.log(`generated: ${out}`);
