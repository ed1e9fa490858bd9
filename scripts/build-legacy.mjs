#!/usr/bin/env node
// Builds dist/client/longpoll.legacy.js: the ES5 client (global `LongPoll`, or AMD / CommonJS) for
// browsers without fetch, Promise, Map or Set. Type-checks src/client/legacy and the shared core it
// imports against the ES5 library first and fails on any error, bundles from
// src/client/legacy/index.ts with esbuild (each file lowered to ES5 by TypeScript), and refuses to
// write a bundle that does not parse as ES5.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';
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
 * esbuild bundles (resolution, scope hoisting, minification); TypeScript lowers each file to ES5 on
 * the way in, because esbuild cannot lower let/const, arrow functions or destructuring to ES5.
 */
const es5Plugin = {
  name: 'typescript-to-es5',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, (args) => {
      const { outputText, diagnostics } = ts.transpileModule(readFileSync(args.path, 'utf8'), {
        fileName: args.path,
        reportDiagnostics: true,
        compilerOptions: { target: ts.ScriptTarget.ES5, module: ts.ModuleKind.ESNext, removeComments: true, importHelpers: false },
      });
      if (diagnostics?.length) fail(ts.formatDiagnostics(diagnostics, formatHost));
      // A helper (__assign, __spreadArray, __extends) would be copied into every file that needs it.
      if (/\b__\w+\s*=\s*\(this && this\.__/.test(outputText)) fail(`${relative(root, args.path)} needs a TypeScript helper; write it without spread/rest/classes`);
      return { contents: outputText, loader: 'js' };
    });
  },
};

async function bundle() {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const result = await esbuild.build({
    entryPoints: [join(legacyDir, 'index.ts')],
    bundle: true,
    format: 'iife',
    target: 'es5',
    minify: true,
    legalComments: 'inline',
    charset: 'utf8',
    banner: { js: `/*! longpoll-gateway legacy client ${version} (ES5) */` },
    plugins: [es5Plugin],
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
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
const code = await bundle();
await assertParsesAsEs5(code);
mkdirSync(dirname(outputFile), { recursive: true });
// Write-then-rename: a test or server reading the bundle never sees half a file.
const temporaryFile = `${outputFile}.${process.pid}.tmp`;
writeFileSync(temporaryFile, code);
renameSync(temporaryFile, outputFile);
const raw = Buffer.byteLength(code);
const gzipped = gzipSync(code, { level: 9 }).length;
console.log(`build-legacy: wrote ${relative(root, outputFile)} (${raw} bytes raw, ${gzipped} bytes gzip)`);
