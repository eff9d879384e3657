/**
 * No Docker engine here, so the image is checked in parts: the Dockerfile's promises (LTS base,
 * etcdctl, non-root, entrypoint), and the built dist/ laid out as the image lays it out, run the way
 * the entrypoint runs it, importing nothing that `npm ci --omit=dev` leaves out.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { builtinModules } from 'node:module';
import { copyFile, mkdir, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface Instruction {
  op: string;
  args: string;
}

/** Dockerfile instructions with continuations joined and comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const joined = text.replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const space = l.indexOf(' ');
      return { op: l.slice(0, space).toUpperCase(), args: l.slice(space + 1).trim() };
    });
}

const instructions = parseDockerfile(await readFile(join(ROOT, 'Dockerfile'), 'utf8'));
const stages: Instruction[][] = [];
for (const i of instructions) {
  if (i.op === 'FROM') stages.push([]);
  stages.at(-1)?.push(i);
}
const runtime = stages.at(-1) ?? [];
const argDefaults = Object.fromEntries(
  instructions.filter((i) => i.op === 'ARG' && i.args.includes('=')).map((i) => i.args.split('=') as [string, string]),
);
const baseImage = (from: string) =>
  from.split(/\s+/)[0]?.replace(/\$\{(\w+)\}/g, (_m, name: string) => argDefaults[name] ?? '') ?? '';

test('Dockerfile: multi-stage on a Node LTS image, npm ci && build, production deps only at runtime', () => {
  assert.ok(stages.length >= 2, 'a build stage and a runtime stage');
  for (const stage of stages) {
    const image = baseImage(stage[0]?.args ?? '');
    const major = Number(/^node:(\d+)/.exec(image)?.[1]);
    assert.ok(major >= 22 && major % 2 === 0, `${image}: an even (LTS) Node major, 22 or newer`);
  }
  const all = instructions.map((i) => `${i.op} ${i.args}`).join('\n');
  assert.match(all, /RUN npm ci\b.*\nCOPY[\s\S]*RUN npm run build/);
  assert.match(all, /RUN npm ci --omit=dev/);
  assert.ok(
    runtime.some((i) => i.op === 'RUN' && /apt-get install .*\betcd-client\b/.test(i.args)),
    "etcdctl from Debian's etcd-client",
  );
  assert.ok(
    runtime.some((i) => i.op === 'RUN' && /apt-get install .*\bzstd\b/.test(i.args)),
    "the zstd codec's binary from Debian's zstd",
  );
  assert.ok(
    runtime.some((i) => i.op === 'RUN' && /apt-get install .*\bisal\b/.test(i.args)),
    "igzip, gzip's default levels, from Debian's isal",
  );
});

test('Dockerfile: runs as a non-root user, with the CLI as its entrypoint', () => {
  const user = runtime.filter((i) => i.op === 'USER').at(-1)?.args ?? 'root';
  const [uid] = user.split(':');
  assert.ok(uid && uid !== '0' && uid !== 'root', `USER ${user} is not root`);
  const entry = runtime.find((i) => i.op === 'ENTRYPOINT');
  assert.deepEqual(JSON.parse(entry?.args ?? 'null'), ['node', '/app/dist/cli/main.js']);
  assert.ok(runtime.some((i) => i.op === 'WORKDIR' && i.args === '/app'));
  assert.ok(
    runtime.some((i) => i.op === 'COPY' && /--from=\w+ \S+\/dist \.\/dist$/.test(i.args)),
    'dist/ is copied to /app/dist',
  );
});

test('Dockerfile: the build stage copies every folder the build compiles, and .dockerignore lets them through', async () => {
  const build = JSON.parse(await readFile(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
  const copied = (stages[0] ?? []).filter((i) => i.op === 'COPY').flatMap((i) => i.args.split(/\s+/).slice(0, -1));
  const ignore = (await readFile(join(ROOT, '.dockerignore'), 'utf8')).split('\n');
  for (const dir of build.include) {
    assert.ok(copied.includes(dir), `COPY ${dir} in the build stage`);
    assert.ok(ignore.includes(`!${dir}/`), `.dockerignore lets ${dir}/ through`);
  }
});

const app = join(ROOT, '.cache', `image-test-${process.pid}`, 'app');

before(async () => {
  // The image's layout: /app/package.json, /app/dist (npm run build), /app/node_modules.
  await mkdir(app, { recursive: true });
  await run('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', join(app, 'dist')], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
  await copyFile(join(ROOT, 'package.json'), join(app, 'package.json'));
  await symlink(join(ROOT, 'node_modules'), join(app, 'node_modules'));
});

after(async () => {
  await rm(dirname(app), { recursive: true, force: true });
});

test('the built entrypoint runs as the image runs it: node /app/dist/cli/main.js, without NODE_OPTIONS', async () => {
  const entry = join(app, 'dist/cli/main.js');
  // The process bounds its young generation itself (core/young-generation.ts); the image adds no flags.
  assert.equal(
    runtime.find((i) => i.op === 'ENV' && i.args.startsWith('NODE_OPTIONS=')),
    undefined,
    'the image sets NODE_OPTIONS',
  );
  const env = { ...process.env, NODE_OPTIONS: '' };
  const help = await run('node', [entry, '--help'], { cwd: app, env });
  for (const cmd of ['webhook', 'worker', 'snapshot', 'list', 'verify', 'restore'])
    assert.match(help.stdout, new RegExp(`\\b${cmd}\\b`));
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal((await run('node', [entry, '--version'], { cwd: app })).stdout.trim(), pkg.version);
  // A wrong value is a usage error (exit 2), as in the chart's pods.
  await assert.rejects(
    run('node', [entry, 'list', '--compression', 'lz4'], { cwd: app }),
    (err: { code?: number }) => err.code === 2,
  );
});

test('the built code imports only Node built-ins and production dependencies', async () => {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  const files = (await readdir(join(app, 'dist'), { recursive: true })).filter((f) => f.endsWith('.js'));
  assert.ok(files.length > 10);
  const missing: string[] = [];
  const seen = new Set<string>();
  for (const f of files) {
    const text = await readFile(join(app, 'dist', f), 'utf8');
    for (const m of text.matchAll(
      /^(?:import|export)\b[^;'"]*?\bfrom\s+['"]([^'"]+)['"]|^import\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm,
    )) {
      const spec = (m[1] ?? m[2] ?? m[3]) as string;
      if (spec.startsWith('.')) continue;
      if (spec.startsWith('node:') || builtinModules.includes(spec)) continue;
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string);
      seen.add(name);
      if (!(name in pkg.dependencies)) missing.push(`${relative(app, join(app, 'dist', f))}: ${spec}`);
    }
  }
  assert.ok(seen.has('commander') && seen.has('zod'), "the import scan finds the CLI's own dependencies");
  assert.deepEqual(missing, [], 'imported at run time but not in dependencies (npm ci --omit=dev drops it)');
});
