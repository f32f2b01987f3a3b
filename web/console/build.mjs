// Builds the console into a directory (default dist/): app-<hash>.js and
// app-<hash>.css, named by a hash of their content, and index.html pointing
// at them. The output depends only on the sources and the pinned esbuild, so
// `make contract` rebuilds into a temporary directory and compares it with
// the committed dist/ (drift check).
//
//   node build.mjs [outdir]
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(process.argv[2] ?? join(here, "dist"));

const common = {
  bundle: true,
  minify: true,
  write: false,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
  absWorkingDir: here,
};

async function one(entry, options) {
  const result = await esbuild.build({ ...common, ...options, entryPoints: [join(here, entry)], outdir: "out" });
  if (result.outputFiles.length !== 1) throw new Error(`build: ${entry} gave ${result.outputFiles.length} files`);
  return result.outputFiles[0].contents;
}

function hashed(base, ext, bytes) {
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 12);
  return `${base}-${hash}.${ext}`;
}

const js = await one("src/main.ts", { format: "esm", target: "es2022", platform: "browser" });
const css = await one("src/app.css", { loader: { ".css": "css" } });
const jsName = hashed("app", "js", js);
const cssName = hashed("app", "css", css);
const template = await readFile(join(here, "src/index.html"), "utf8");
const html = template.replace("{{js}}", jsName).replace("{{css}}", cssName);
if (html.includes("{{")) throw new Error("build: index.html has an unfilled placeholder");

await mkdir(outdir, { recursive: true });
// Old hashed files go: dist/ holds exactly one build.
for (const name of await readdir(outdir)) {
  if (/^app-[0-9a-f]+\.(js|css)$/.test(name) || name === "index.html") await rm(join(outdir, name));
}
await writeFile(join(outdir, jsName), js);
await writeFile(join(outdir, cssName), css);
await writeFile(join(outdir, "index.html"), html);
console.log(`console: ${jsName} (${js.length} B), ${cssName} (${css.length} B), index.html -> ${outdir}`);
