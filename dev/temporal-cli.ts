import { spawn, execFile } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Finds (or builds, once) the Temporal CLI that runs the local dev server.
 *
 * v1.5.1 is pinned because it bundles Temporal Server 1.29.1 and every later CLI tag has a `replace`
 * directive in its go.mod, which makes `go install module@version` refuse it. Keep this in sync with
 * TEMPORAL_CLI_VERSION in scripts/install-tools.sh.
 */
const TEMPORAL_CLI_VERSION = 'v1.5.1';
const TEMPORAL_CLI_GO_PACKAGE = 'github.com/temporalio/cli/cmd/temporal';
/** The Go module that `go version -m` reports for a binary built from TEMPORAL_CLI_GO_PACKAGE. */
const TEMPORAL_CLI_GO_MODULE = 'github.com/temporalio/cli';

/** `<repo>/.tools`: the project-local tools folder (gitignored). Binaries live in its `bin/`. */
export const DEFAULT_TOOLS_DIR = path.resolve(__dirname, '..', '.tools');

/** A cold `go install` of the CLI compiles the whole Temporal server: minutes, not hours. */
const GO_INSTALL_TIMEOUT_MS = 30 * 60_000;
const GO_QUERY_TIMEOUT_MS = 15_000;

export interface FindTemporalCliOptions {
  /** TEMPORAL_CLI_PATH: used as is; an error if it is not an executable file. */
  cliPath?: string;
  /** The tools folder (usually DEFAULT_TOOLS_DIR); the CLI is looked for, and built, in `<toolsDir>/bin`. */
  toolsDir: string;
  log: (line: string) => void;
}

/**
 * Returns the path of a Temporal CLI, trying in order: `cliPath`, `temporal` on PATH,
 * `<toolsDir>/bin/temporal`, a fresh `go install` into `<toolsDir>/bin` when Go is present.
 * Returns undefined when none of these works, so the caller can fall back to @temporalio/testing's
 * own download. Throws only when `cliPath` is given and is not an executable file.
 */
export async function findTemporalCli(opts: FindTemporalCliOptions): Promise<string | undefined> {
  if (opts.cliPath !== undefined) {
    const explicit = path.resolve(opts.cliPath);
    if (!(await isExecutableFile(explicit))) {
      throw new Error(`TEMPORAL_CLI_PATH=${opts.cliPath} is not an executable file`);
    }
    return explicit;
  }

  const onPath = await findOnPath('temporal', process.env.PATH ?? '');
  if (onPath !== undefined) return onPath;

  const binDir = path.join(opts.toolsDir, 'bin');
  const local = path.join(binDir, 'temporal');
  const goAvailable = await hasGo();
  if ((await isExecutableFile(local)) && (await isLocalBuildCurrent(local, goAvailable, opts.log))) {
    return local;
  }

  if (!goAvailable) {
    opts.log(
      'Temporal CLI not found and Go is not installed; falling back to the @temporalio/testing download',
    );
    return undefined;
  }
  return (await goInstallTemporalCli(binDir, opts.log)) ? local : undefined;
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) return false;
    await fs.access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function findOnPath(name: string, searchPath: string): Promise<string | undefined> {
  for (const dir of searchPath.split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/** Runs a short command, resolving to its stdout, or undefined if it fails or times out. */
function tryExec(file: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: GO_QUERY_TIMEOUT_MS }, (error, stdout) => {
      resolve(error ? undefined : stdout);
    });
  });
}

async function hasGo(): Promise<boolean> {
  return (await tryExec('go', ['version'])) !== undefined;
}

/**
 * `go install` does not stamp the CLI's own version (`temporal --version` says 0.0.0-DEV), but the
 * module version is in the binary's build info, which `go version -m` reads.
 */
async function goModuleVersion(binary: string, goModule: string): Promise<string | undefined> {
  const info = await tryExec('go', ['version', '-m', binary]);
  if (info === undefined) return undefined;
  for (const line of info.split('\n')) {
    const [kind, module, version] = line.trim().split(/\s+/);
    if (kind === 'mod' && module === goModule) return version;
  }
  return undefined;
}

/**
 * A local build of another version (the pin moved since it was built) is rebuilt. Without Go we cannot
 * tell, nor rebuild, so whatever is there is used.
 */
async function isLocalBuildCurrent(
  binary: string,
  goAvailable: boolean,
  log: (line: string) => void,
): Promise<boolean> {
  if (!goAvailable) return true;
  const version = await goModuleVersion(binary, TEMPORAL_CLI_GO_MODULE);
  if (version === TEMPORAL_CLI_VERSION) return true;
  log(`${binary} is ${version ?? 'an unknown version'}, not ${TEMPORAL_CLI_VERSION}; rebuilding it`);
  return false;
}

/** Streams `go install` output to the log; resolves to whether the binary was built. */
async function goInstallTemporalCli(binDir: string, log: (line: string) => void): Promise<boolean> {
  await fs.mkdir(binDir, { recursive: true });
  const target = `${TEMPORAL_CLI_GO_PACKAGE}@${TEMPORAL_CLI_VERSION}`;
  log(`Building the Temporal CLI ${TEMPORAL_CLI_VERSION} with go install into ${binDir}.`);
  log('This takes a few minutes the first time only (the Go build cache keeps it afterwards).');
  const started_ms = Date.now();
  const exitCode = await runStreaming('go', ['install', target], { ...process.env, GOBIN: binDir }, log);
  const elapsed_s = Math.round((Date.now() - started_ms) / 1000);
  if (exitCode === 0) {
    log(`Built the Temporal CLI in ${elapsed_s}s`);
    return true;
  }
  log(
    `go install ${target} failed (${exitCode}) after ${elapsed_s}s; falling back to the @temporalio/testing download`,
  );
  return false;
}

/** Spawns a command, logging each output line; resolves to the exit code, or a description if it never exited. */
function runStreaming(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<number | string> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const forward = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') log(`  ${line}`);
    };
    child.stdout.on('data', forward);
    child.stderr.on('data', forward);
    const timer = setTimeout(() => child.kill('SIGKILL'), GO_INSTALL_TIMEOUT_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve(error.message);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? `killed by ${signal ?? 'unknown signal'}`);
    });
  });
}
