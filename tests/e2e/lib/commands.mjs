// External commands for the offline checks of the deployment files
// (deploy.test.mjs, observability.test.mjs). Node built-ins and the "yaml"
// package of package.json.
//
//   import { run, runOk, which, kustomize } from './lib/commands.mjs';
//
// run(cmd, args, opts) -> {status, stdout, stderr}: cmd (no shell) in the
//   repository, 60 s at most; opts go to spawnSync. Throws when it cannot start.
// runOk(cmd, args, opts) -> stdout; asserts the exit status 0 (the message
//   holds the output).
// which(cmd) -> the command's path, or null when it is not installed.
// kustomize(dir) -> the objects `kubectl kustomize dir` renders.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';

import { sourceDir } from './harness.mjs';

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: sourceDir, encoding: 'utf8', timeout: 60000, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return r;
}

export function runOk(cmd, args, opts) {
  const r = run(cmd, args, opts);
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export const which = (cmd) => run('sh', ['-c', `command -v ${cmd}`]).stdout.trim() || null;

export function kustomize(dir) {
  assert.ok(which('kubectl'), 'kubectl is installed');
  const out = runOk('kubectl', ['kustomize', dir]);
  return parseAllDocuments(out).map((d) => d.toJSON()).filter(Boolean);
}
