// Runs a wasm32-wasip1 command under Node.js's WASI (V8). The filter library links the
// proxy-wasm SDK, whose host imports ("env" module) this program never calls; they are
// stubbed to fail loudly if it ever does.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";

const wasi = new WASI({ version: "preview1", args: ["ratio"], env: {} });
const module = await WebAssembly.compile(await readFile(process.argv[2]));
const env = {};
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === "env") {
    env[imp.name] = () => { throw new Error(`host call ${imp.name} in a benchmark`); };
  }
}
const instance = await WebAssembly.instantiate(module, {
  wasi_snapshot_preview1: wasi.wasiImport,
  env,
});
console.log(`runtime: V8 ${process.versions.v8} (Node.js ${process.version})`);
// The SDK also exports `_initialize` (a reactor's entry point); run the command's `_start`.
const { memory, _start } = instance.exports;
wasi.start({ exports: { memory, _start } });
