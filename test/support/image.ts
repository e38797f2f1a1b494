// The container image as scripts/image builds it, for tests: build it (a warm cache makes
// that a few seconds), unpack its OCI archive into a root file system, and run the image's
// entrypoint from that root the way the chart's pod runs it: the image's user (10001:10001)
// with no capabilities and no_new_privs, a read-only root, a fresh tmpfs on /tmp, the
// image's Env and WorkingDir, and the config file mounted read-only where the chart mounts
// it. Needs root (scripts/image, mount namespaces); CI runs as root.
//
// The harness chroots into the image and drops privileges with the image's own
// /usr/bin/setpriv (util-linux, in every Debian image): the kernel checks that follow are
// the ones a container runtime sets up (user, capabilities, read-only mounts), not a
// re-implementation.

import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "./helm.ts";

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(argv: string[], options: { timeoutMs: number; cwd?: string }): Promise<Result> {
  const proc = Bun.spawn(argv, { cwd: options.cwd ?? repoRoot, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), options.timeoutMs);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** What scripts/image printed on standard output. */
export interface BuiltImage {
  archive: string;
  /** The archive's size in bytes, from the `size:` line. */
  archiveBytes: number;
  /** `sha256:<hex>`: the manifest digest. */
  digest: string;
  /** The last line, e.g. `localhost/oz-worker:0.1.0-0123456789ab`. */
  ref: string;
  /** The ref's parts, for the chart's `image.repository` and `image.tag`. */
  repository: string;
  tag: string;
  stdout: string;
}

/**
 * Runs scripts/image (with --load: also into the sandbox's real node; SANDBOX_PORT_BASE
 * and SANDBOX_DIR pass through the environment) and parses its output.
 */
export async function buildImage(options: { load?: boolean; timeoutMs?: number } = {}): Promise<BuiltImage> {
  const argv = [path.join(repoRoot, "scripts/image"), ...(options.load ? ["--load"] : [])];
  const res = await run(argv, { timeoutMs: options.timeoutMs ?? 15 * 60_000 });
  if (res.code !== 0) throw new Error(`scripts/image exited ${res.code}:\n${res.stderr.slice(-4000)}`);
  const lines = res.stdout.trimEnd().split("\n");
  const field = (key: string) => {
    const line = lines.find((l) => l.startsWith(`${key}: `));
    if (line === undefined) throw new Error(`scripts/image printed no "${key}:" line:\n${res.stdout}`);
    return line.slice(key.length + 2);
  };
  const bytes = /\((\d+) bytes\)/.exec(field("size"));
  if (!bytes) throw new Error(`scripts/image's size line has no byte count: ${field("size")}`);
  const ref = lines.at(-1) ?? "";
  const colon = ref.lastIndexOf(":");
  return {
    archive: field("archive"),
    archiveBytes: Number(bytes[1]),
    digest: field("digest"),
    ref,
    repository: ref.slice(0, colon),
    tag: ref.slice(colon + 1),
    stdout: res.stdout,
  };
}

// ---------------------------------------------------------------------------
// OCI archive

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** The parts of an OCI image config that a runtime uses. */
export interface ImageConfig {
  architecture: string;
  os: string;
  config: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    WorkingDir?: string;
    Labels?: Record<string, string>;
  };
}

export interface UnpackedImage {
  index: { manifests: Descriptor[] };
  /** The manifest's bytes, as the digest covers them. */
  manifestBytes: Buffer;
  manifest: { config: Descriptor; layers: Descriptor[] };
  config: ImageConfig;
  rootfs: string;
}

/** Unpacks the archive's single image into `dir`/rootfs, layer by layer, honouring whiteouts. */
export async function unpackOciArchive(archive: string, dir: string): Promise<UnpackedImage> {
  const layout = path.join(dir, "layout");
  const rootfs = path.join(dir, "rootfs");
  mkdirSync(layout, { recursive: true });
  mkdirSync(rootfs, { recursive: true });
  await mustRun(["tar", "-xf", archive, "-C", layout]);
  const blob = (d: Descriptor) => path.join(layout, "blobs", ...d.digest.split(":"));
  const index = JSON.parse(readFileSync(path.join(layout, "index.json"), "utf8")) as UnpackedImage["index"];
  if (index.manifests.length !== 1) throw new Error(`${archive}: expected one manifest, found ${index.manifests.length}`);
  const manifestBytes = readFileSync(blob(index.manifests[0] as Descriptor));
  const manifest = JSON.parse(manifestBytes.toString("utf8")) as UnpackedImage["manifest"];
  const config = JSON.parse(readFileSync(blob(manifest.config), "utf8")) as ImageConfig;
  for (const layer of manifest.layers) {
    const entries = (await mustRun(["tar", "-tf", blob(layer)])).split("\n").filter(Boolean);
    applyWhiteouts(rootfs, entries);
    await mustRun(["tar", "-xf", blob(layer), "-C", rootfs, "--numeric-owner", "--exclude=.wh.*"]);
  }
  return { index, manifestBytes, manifest, config, rootfs };
}

/** A layer's `.wh.NAME` deletes NAME from the layers below; `.wh..wh..opq` empties its folder. */
function applyWhiteouts(rootfs: string, entries: string[]): void {
  for (const entry of entries) {
    const name = path.posix.normalize(entry.replace(/^\.?\//, ""));
    const base = path.posix.basename(name);
    if (!base.startsWith(".wh.")) continue;
    const parent = path.join(rootfs, path.posix.dirname(name));
    if (base === ".wh..wh..opq") {
      for (const child of safeReaddir(parent)) rmSync(path.join(parent, child), { recursive: true, force: true });
    } else {
      rmSync(path.join(parent, base.slice(".wh.".length)), { recursive: true, force: true });
    }
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

async function mustRun(argv: string[]): Promise<string> {
  const res = await run(argv, { timeoutMs: 5 * 60_000 });
  if (res.code !== 0) throw new Error(`${argv.join(" ")} exited ${res.code}: ${res.stderr}`);
  return res.stdout;
}

export const sha256 = (bytes: Buffer): string => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

// ---------------------------------------------------------------------------
// Running the image as the chart's pod does

export interface PodRun {
  /** Replaces the image's Cmd, as a container's `args` do. */
  args: string[];
  /** Replaces the image's Entrypoint, as a container's `command` does. */
  command?: string[];
  /** Files to mount read-only at `mountPath` (a ConfigMap volume). */
  files?: { mountPath: string; contents: Record<string, string> };
  /** Added to the image's Env, as a container's `env` is. */
  env?: Record<string, string>;
  /** For runAsPod: SIGKILL after this long (default 60 s). */
  timeoutMs?: number;
}

// Runs inside fresh mount and PID namespaces: a read-only bind of the root, tmpfs on /tmp
// and /dev (with the usual character devices), /proc, and the config files read-only.
const HARNESS = `set -e
root=$1; files=$2; mount_path=$3; shift 3
mount --bind "$root" "$root"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/tmp"
mount -t proc proc "$root/proc"
mount -t tmpfs -o nosuid,mode=755 tmpfs "$root/dev"
for d in null zero full random urandom tty; do touch "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
if [ -n "$files" ]; then mount --bind "$files" "$root$mount_path"; mount -o remount,bind,ro "$root$mount_path"; fi
mount -o remount,bind,ro "$root"
exec chroot "$root" "$@"
`;

/** The image's user as setpriv flags: "UID:GID" (numeric, as the chart's runAsUser needs). */
function userFlags(user: string | undefined): string[] {
  const match = /^(\d+):(\d+)$/.exec(user ?? "");
  if (!match) throw new Error(`image config User is ${JSON.stringify(user)}; runAsNonRoot needs a numeric "UID:GID"`);
  return ["--reuid", match[1] as string, "--regid", match[2] as string, "--clear-groups"];
}

/** Runs the image's program as the pod would and waits for it to exit. */
export async function runAsPod(image: UnpackedImage, scratch: string, opts: PodRun): Promise<Result> {
  const proc = startAsPod(image, scratch, opts);
  const timer = setTimeout(() => killPod(proc), opts.timeoutMs ?? 60_000);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Starts the image's program as the pod would. Stop it with `signalPod`. */
export function startAsPod(image: UnpackedImage, scratch: string, opts: PodRun) {
  return Bun.spawn(podArgv(image, scratch, opts), { cwd: repoRoot, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
}

/**
 * Kills the program and so its whole PID namespace, then the harness. (unshare's
 * --kill-child does not survive the program's change of user.)
 */
export function killPod(harness: { pid: number; kill(signal: NodeJS.Signals): void }): void {
  try {
    signalPod(harness, "SIGKILL");
  } catch {
    // Already gone.
  }
  harness.kill("SIGKILL");
}

/**
 * Sends `signal` to the program, PID 1 of its PID namespace, as the kubelet signals a
 * container's first process (unshare, which started it, does not pass signals on).
 */
export function signalPod(harness: { pid: number }, signal: NodeJS.Signals): void {
  const children = readFileSync(`/proc/${harness.pid}/task/${harness.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
  if (children.length !== 1) throw new Error(`expected one process under the harness (pid ${harness.pid}), found ${children.length}`);
  process.kill(Number(children[0]), signal);
}

function podArgv(image: UnpackedImage, scratch: string, opts: PodRun): string[] {
  const { config } = image.config;
  let filesDir = "";
  if (opts.files) {
    filesDir = mkdtempSync(path.join(scratch, "files-"));
    chmodSync(filesDir, 0o755);
    for (const [name, text] of Object.entries(opts.files.contents)) writeFileSync(path.join(filesDir, name), text, { mode: 0o644 });
    // The runtime creates a volume's mount point in the root before making it read-only.
    mkdirSync(path.join(image.rootfs, opts.files.mountPath), { recursive: true });
  }
  const env = [...(config.Env ?? []), ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`)];
  const program = [...(opts.command ?? config.Entrypoint ?? []), ...opts.args];
  return [
    "unshare", "--mount", "--pid", "--fork", "--kill-child", "sh", "-c", HARNESS, "harness",
    image.rootfs, filesDir, opts.files?.mountPath ?? "",
    "/usr/bin/setpriv", ...userFlags(config.User), "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
    "/usr/bin/env", "-i", "--chdir", config.WorkingDir || "/", ...env, ...program,
  ];
}
