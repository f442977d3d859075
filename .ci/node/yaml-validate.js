// node .ci/node/yaml-validate.js SCHEMA FILE...: validate each YAML file against the JSON Schema
// with yaml-language-server, the checker behind the YAML extensions of VS Code, Neovim and others;
// prints one JSON list of {file, line, message} with each diagnostic as an editor shows it.
// Used by tests/test_schema_tools.py.
const fs = require("fs");
const path = require("path");
const { pathToFileURL } = require("url");
const { getLanguageService } = require("yaml-language-server");
const { TextDocument } = require("vscode-languageserver-textdocument");

const [schemaPath, ...files] = process.argv.slice(2);
const service = getLanguageService({
  schemaRequestService: async (uri) => fs.readFileSync(new URL(uri), "utf8"),
  workspaceContext: { resolveRelativePath: (rel, base) => new URL(rel, base).href },
});
service.configure({
  validate: true,
  schemas: [{ uri: pathToFileURL(path.resolve(schemaPath)).href, fileMatch: ["*.yaml", "*.yml"] }],
});

(async () => {
  const out = [];
  for (const file of files) {
    const doc = TextDocument.create(pathToFileURL(path.resolve(file)).href, "yaml", 1, fs.readFileSync(file, "utf8"));
    for (const d of await service.doValidation(doc, false)) {
      out.push({ file, line: d.range.start.line + 1, message: d.message });
    }
  }
  process.stdout.write(JSON.stringify(out) + "\n");
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
