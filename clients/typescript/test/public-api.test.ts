import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

// The built package, as the booking app gets it (`npm test` builds it first).
const DIST = fileURLToPath(new URL("../../dist/", import.meta.url));

function declarations(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) {
      return declarations(path);
    }
    return entry.name.endsWith(".d.ts") ? [path] : [];
  });
}

/** The declaration's code: comments and string literals blanked, so `any` in prose is not counted. */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, " ")
    .replace(/\/\/.*$/gm, " ")
    .replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g, '""');
}

describe("the public API", () => {
  it("is declared, entry point and generated types included", () => {
    const files = declarations(DIST).map((path) => path.slice(DIST.length));
    for (const expected of [
      "index.d.ts",
      "client.d.ts",
      "email-jobs.d.ts",
      "problems.d.ts",
      join("generated", "openapi.d.ts"),
    ]) {
      assert.ok(files.includes(expected), `${expected} missing from ${files.join(", ")}`);
    }
  });

  it("lets no `any` out: every declaration is typed", () => {
    const leaks = declarations(DIST).flatMap((path) =>
      code(readFileSync(path, "utf8"))
        .split("\n")
        .map((line, index) => ({ line, where: `${path.slice(DIST.length)}:${index + 1}` }))
        .filter(({ line }) => /\bany\b/.test(line))
        .map(({ line, where }) => `${where}: ${line.trim()}`),
    );
    assert.deepEqual(leaks, []);
  });

  it("the check finds an `any` where one is", () => {
    assert.match(code("export declare function f(x: any): void; // any\n"), /\bany\b/);
    assert.doesNotMatch(code('/** any */ export type T = "any";\n'), /\bany\b/);
  });
});
