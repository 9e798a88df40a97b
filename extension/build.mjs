// Bundles the extension (and, with --tests, the unit tests; with --e2e, the end-to-end test) with esbuild.
import { build } from "esbuild";
import { readdirSync, rmSync } from "node:fs";

const tests = process.argv.includes("--tests");
const e2e = process.argv.includes("--e2e");
await build({
  entryPoints: ["extension/src/extension.ts"],
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  external: ["vscode"],
  outfile: "dist/extension.js",
  sourcemap: true,
});
if (tests) {
  rmSync("dist/test", { recursive: true, force: true }); // no stale bundles of tests since removed
  const entries = readdirSync("extension/test").filter((f) => f.endsWith(".test.ts"));
  await build({
    entryPoints: entries.map((f) => `extension/test/${f}`),
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    external: ["vscode"],
    outdir: "dist/test",
  });
}
if (e2e) {
  await build({
    entryPoints: ["extension/test/e2e/e2e.ts"],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    external: ["playwright-core"],
    outfile: "dist/e2e/e2e.js",
  });
  await build({
    entryPoints: ["extension/test/e2e/setup-pythons.ts"],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    outfile: "dist/e2e/setup-pythons.js",
  });
  await build({
    entryPoints: ["extension/test/e2e/walkthrough/walkthrough.ts"],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    external: ["playwright-core"],
    outfile: "dist/e2e/walkthrough.js",
  });
}
