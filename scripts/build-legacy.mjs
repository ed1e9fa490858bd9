#!/usr/bin/env node
// Builds dist/client/longpoll.legacy.js: the ES5 client (global `LongPoll`, UMD) for browsers
// without fetch, Promise, Map or Set. Type-checks src/client/legacy first and fails on any error,
// transpiles each file to ES5 (TypeScript's transpileModule) in the order its tsconfig lists them,
// wraps them in one UMD closure, and refuses to write a bundle that does not parse as ES5.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const legacyDir = join(root, 'src/client/legacy');
const outputFile = join(root, 'dist/client/longpoll.legacy.js');

function fail(message) {
  process.stderr.write(`build-legacy: ${message}\n`);
  process.exit(1);
}

function loadProjectConfig() {
  const configPath = join(legacyDir, 'tsconfig.json');
  const { config, error } = ts.readConfigFile(configPath, ts.sys.readFile);
  if (error) fail(ts.formatDiagnostics([error], formatHost));
  const parsed = ts.parseJsonConfigFileContent(config, ts.sys, legacyDir, undefined, configPath);
  if (parsed.errors.length > 0) fail(ts.formatDiagnostics(parsed.errors, formatHost));
  return parsed;
}

const formatHost = {
  getCanonicalFileName: (fileName) => fileName,
  getCurrentDirectory: () => root,
  getNewLine: () => '\n',
};

function typeCheck(parsed) {
  const program = ts.createProgram(parsed.fileNames, parsed.options);
  const diagnostics = ts.getPreEmitDiagnostics(program);
  if (diagnostics.length > 0) {
    fail(`type errors in src/client/legacy:\n${ts.formatDiagnosticsWithColorAndContext(diagnostics, formatHost)}`);
  }
}

/**
 * The legacy files are ES modules only so that each type-checks on its own (and under the main
 * tsconfig). In the bundle they share one closure: imports are dropped and `export` keywords
 * removed, so every imported name resolves to the declaration of the same name in another file.
 */
function stripModuleSyntax(context) {
  const withoutExport = (modifiers) => modifiers?.filter((modifier) => modifier.kind !== ts.SyntaxKind.ExportKeyword);
  const visit = (node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node) || ts.isExportAssignment(node)) return undefined;
    if (ts.isFunctionDeclaration(node)) {
      const { factory } = context;
      return factory.updateFunctionDeclaration(node, withoutExport(node.modifiers), node.asteriskToken, node.name, node.typeParameters, node.parameters, node.type, node.body);
    }
    if (ts.isVariableStatement(node)) return context.factory.updateVariableStatement(node, withoutExport(node.modifiers), node.declarationList);
    return node;
  };
  return (sourceFile) => ts.visitEachChild(sourceFile, visit, context);
}

/** Top-level value names of one file; two files declaring the same name would clash in the closure. */
function topLevelNames(sourceFile) {
  const names = [];
  for (const statement of sourceFile.statements) {
    if (ts.isFunctionDeclaration(statement) && statement.name) names.push(statement.name.text);
    if (ts.isVariableStatement(statement) && !statement.modifiers?.some((modifier) => modifier.kind === ts.SyntaxKind.DeclareKeyword)) {
      for (const declaration of statement.declarationList.declarations) {
        if (ts.isIdentifier(declaration.name)) names.push(declaration.name.text);
      }
    }
  }
  return names;
}

function checkUniqueNames(fileNames) {
  const owners = new Map();
  for (const fileName of fileNames) {
    const sourceFile = ts.createSourceFile(fileName, readFileSync(fileName, 'utf8'), ts.ScriptTarget.ES5, true);
    for (const name of topLevelNames(sourceFile)) {
      if (owners.has(name)) fail(`\`${name}\` is declared in both ${relative(root, owners.get(name))} and ${relative(root, fileName)}`);
      owners.set(name, fileName);
    }
  }
}

function transpile(fileName) {
  const { outputText, diagnostics } = ts.transpileModule(readFileSync(fileName, 'utf8'), {
    fileName,
    reportDiagnostics: true,
    transformers: { before: [stripModuleSyntax] },
    compilerOptions: {
      target: ts.ScriptTarget.ES5,
      module: ts.ModuleKind.ESNext,
      removeComments: true,
      newLine: ts.NewLineKind.LineFeed,
    },
  });
  if (diagnostics?.length) fail(ts.formatDiagnostics(diagnostics, formatHost));
  // TypeScript keeps a file a module with an empty `export {}`; the closure needs none of that.
  const code = outputText.replace(/^export \{\};?$/m, '').trim();
  if (/^\s*(import|export)\b/m.test(code)) fail(`${relative(root, fileName)}: module syntax survived the build`);
  // Files holding only types emit nothing.
  return code === '' ? '' : `// ${relative(root, fileName)}\n${code}\n`;
}

function wrapUmd(body) {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  return `/*! longpoll-gateway legacy client ${version} (ES5, global LongPoll). Generated by scripts/build-legacy.mjs from src/client/legacy; do not edit. */
(function (root, factory) {
  if (typeof define === 'function' && define.amd) {
    define([], function () { return factory(root); });
  } else if (typeof module === 'object' && module && module.exports) {
    module.exports = factory(root);
  } else {
    root.LongPoll = factory(root);
  }
}(typeof self !== 'undefined' ? self : this, function (lpRoot) {
'use strict';
${body}
return lpExports;
}));
`;
}

async function assertParsesAsEs5(code) {
  let acorn;
  try {
    acorn = await import('acorn');
  } catch {
    process.stderr.write('build-legacy: acorn is not installed; skipping the ES5 syntax check\n');
    return;
  }
  try {
    acorn.parse(code, { ecmaVersion: 5, sourceType: 'script' });
  } catch (error) {
    fail(`the bundle is not ES5: ${error.message}`);
  }
}

const parsed = loadProjectConfig();
typeCheck(parsed);
const sources = parsed.fileNames.filter((fileName) => !fileName.endsWith('.d.ts'));
checkUniqueNames(sources);
const bundle = wrapUmd(sources.map(transpile).filter(Boolean).join('\n'));
await assertParsesAsEs5(bundle);
mkdirSync(dirname(outputFile), { recursive: true });
// Write-then-rename: a test or server reading the bundle never sees half a file.
const temporaryFile = `${outputFile}.${process.pid}.tmp`;
writeFileSync(temporaryFile, bundle);
renameSync(temporaryFile, outputFile);
const raw = Buffer.byteLength(bundle);
const gzipped = gzipSync(bundle, { level: 9 }).length;
console.log(`build-legacy: wrote ${relative(root, outputFile)} (${raw} bytes raw, ${gzipped} bytes gzip)`);
