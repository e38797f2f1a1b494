// The container image (scripts/image, from the Dockerfile) as the chart runs it. The test
// builds the image, or reuses the cached build when nothing changed (seconds), unpacks the
// OCI archive scripts/image wrote and checks what a runtime reads from it (user,
// entrypoint, env, labels, what the chart's probes need), then runs the binary from the
// image's root file system as uid 10001 with a read-only root, no capabilities and /tmp on
// a fresh tmpfs: the chart's pod security settings. Last, `oz-worker run` from the image
// with the chart's args, env and config, as the chart's ServiceAccount of the sandbox,
// against a dispatch server. Needs root, as scripts/image does.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { type DispatchServer, startDispatchServer } from "../support/dispatch.ts";
import { ensureHelm, type K8sObject, type Rendered, renderSeedInstall, renderWith, repoRoot, SEED_SET } from "../support/helm.ts";
import { type BuiltImage, buildImage, run, killPod, runAsPod, sha256, signalPod, startAsPod, type UnpackedImage, unpackOciArchive } from "../support/image.ts";
import { ensureSandbox, freshNamespace, kubectlApply, type Namespace, serviceAccountKubeconfig } from "../support/sandbox.ts";
import { waitFor } from "../support/wait.ts";

setDefaultTimeout(60_000);

const pkg = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string };

let built: BuiltImage;
let image: UnpackedImage;
let scratch = "";
let chart: Rendered;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("test/e2e/image.test.ts needs root (buildah's storage, mount namespaces), as CI runs");
  built = await buildImage();
  scratch = mkdtempSync(path.join(tmpdir(), "oz-worker-image-"));
  image = await unpackOciArchive(built.archive, scratch);
  await ensureHelm();
  chart = await renderSeedInstall();
}, 20 * 60_000);

let dispatch: DispatchServer | undefined;
let namespace: Namespace | undefined;

afterAll(async () => {
  await dispatch?.stop();
  await namespace?.cleanup();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}, 60_000);

/** The chart's worker container mount of its ConfigMap volume. */
function configMountPath(): string {
  const spec = chart.deployment().spec.template.spec;
  const volume = spec.volumes.find((v) => v.configMap !== undefined);
  const mount = chart.container().volumeMounts.find((m) => m.name === volume?.name);
  if (!mount) throw new Error("the chart mounts no ConfigMap volume into the worker container");
  return mount.mountPath;
}

/** The commit part of the tag scripts/image gave: `<version>-<commit>`. */
const refCommit = () => built.tag.slice(pkg.version.length + 1);

describe("scripts/image", () => {
  test("prints the archive, its size, the manifest digest, and the image reference as its last line", async () => {
    const head = (await run(["git", "rev-parse", "--short=12", "HEAD"], { timeoutMs: 10_000 })).stdout.trim();
    expect(built.ref).toMatch(new RegExp(`^localhost/oz-worker:${pkg.version.replaceAll(".", "\\.")}-${head}(-dirty)?$`));
    expect(`${built.repository}:${built.tag}`).toBe(built.ref);
    expect(built.repository).toBe("localhost/oz-worker");
    expect(built.archiveBytes).toBe(statSync(built.archive).size);
    expect(built.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(image.index.manifests[0]?.digest).toBe(built.digest);
    expect(sha256(image.manifestBytes)).toBe(built.digest);
    expect(image.index.manifests[0]?.annotations?.["org.opencontainers.image.ref.name"]).toBe(built.ref);
  });

  test("a second run with nothing changed reuses the build: same digest, archive untouched", async () => {
    const before = statSync(built.archive).mtimeMs;
    const again = await buildImage({ timeoutMs: 5 * 60_000 });
    expect(again.digest).toBe(built.digest);
    expect(again.ref).toBe(built.ref);
    expect(statSync(again.archive).mtimeMs).toBe(before);
  });
});

describe("the image config", () => {
  test("runs the binary as 10001:10001 from /tmp, with HOME and TMPDIR on /tmp", () => {
    const { config } = image.config;
    expect(image.config.os).toBe("linux");
    expect(config.User).toBe("10001:10001");
    expect(config.Entrypoint).toEqual(["/usr/local/bin/oz-worker"]);
    expect(config.WorkingDir).toBe("/tmp");
    expect(config.Env).toContain("HOME=/tmp");
    expect(config.Env).toContain("TMPDIR=/tmp");
  });

  test("carries the OCI labels with the package version", () => {
    const labels = image.config.config.Labels ?? {};
    expect(labels["org.opencontainers.image.title"]).toBe("oz-worker");
    expect(labels["org.opencontainers.image.version"]).toBe(pkg.version);
    expect(labels["org.opencontainers.image.licenses"]).toBe("Apache-2.0");
    expect(labels["org.opencontainers.image.revision"]).toBe(refCommit());
  });

  test("the binary is root's and not writable by the worker's user", () => {
    const st = statSync(path.join(image.rootfs, "usr/local/bin/oz-worker"));
    expect(st.uid).toBe(0);
    expect(st.mode & 0o777).toBe(0o755);
  });

  test("the chart's probes need no shell: each is an HTTP or TCP check of a declared port, or runs a program the image has", () => {
    const container = chart.container();
    const probes = [container.livenessProbe, container.readinessProbe].filter((p) => p !== undefined);
    expect(probes.length).toBeGreaterThan(0);
    const ports = new Set<string | number>((container.ports ?? []).flatMap((p) => [p.name, p.containerPort]));
    for (const probe of probes) {
      const target = (probe.httpGet ?? probe.tcpSocket) as { port: string | number } | undefined;
      if (target) {
        expect(ports.has(target.port)).toBe(true);
        continue;
      }
      const program = (probe.exec as { command: string[] } | undefined)?.command[0];
      expect(program).toBeDefined();
      accessSync(path.join(image.rootfs, program as string), constants.X_OK);
    }
  });

  test("holds no CA added on the build machine (only the build stage trusted it)", () => {
    expect(existsSync(path.join(image.rootfs, "usr/local/share/oz-build-host-cas.pem"))).toBe(false);
    expect(image.config.config.Env?.some((e) => e.startsWith("NODE_EXTRA_CA_CERTS="))).toBe(false);
  });
});

describe("under the chart's pod security settings", () => {
  test("the harness runs as uid 10001 with no capabilities, a read-only root and a writable /tmp", async () => {
    const res = await runAsPod(image, scratch, {
      command: ["/bin/sh", "-c"],
      args: ['id -u; id -g; grep CapEff /proc/self/status; touch /usr/local/bin/probe 2>&1; touch "$TMPDIR/probe" && echo tmp-writable; pwd'],
    });
    expect(res.code).toBe(0);
    const lines = res.stdout.trim().split("\n");
    expect(lines[0]).toBe("10001");
    expect(lines[1]).toBe("10001");
    expect(lines[2]).toMatch(/^CapEff:\s+0+$/);
    expect(lines[3]).toContain("Read-only file system");
    expect(lines.slice(4)).toEqual(["tmp-writable", "/tmp"]);
  });

  test("--help and --version: exit 0, the version and commit scripts/image tagged", async () => {
    const help = await runAsPod(image, scratch, { args: ["--help"] });
    expect(help.stderr).toBe("");
    expect(help.code).toBe(0);
    expect(help.stdout).toStartWith(`oz-worker ${pkg.version}`);
    const version = await runAsPod(image, scratch, { args: ["--version"] });
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toBe(`oz-worker ${pkg.version} (commit ${refCommit()})`);
  });

  test("validate-config accepts the config the chart renders, mounted read-only where the chart mounts it", async () => {
    const mountPath = configMountPath();
    const res = await runAsPod(image, scratch, {
      args: ["validate-config", "--config-file", `${mountPath}/config.yaml`, "--output", "json"],
      files: { mountPath, contents: { "config.yaml": chart.configText() } },
    });
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    const report = JSON.parse(res.stdout) as { valid: boolean; config: { workerId: string } };
    expect(report.valid).toBe(true);
    expect(report.config.workerId).toBe(chart.config().worker_id as string);
  });

  test("validate-config of a broken config: exit non-zero, the field named", async () => {
    const mountPath = configMountPath();
    const res = await runAsPod(image, scratch, {
      args: ["validate-config", "--config-file", `${mountPath}/config.yaml`],
      files: { mountPath, contents: { "config.yaml": "worker_id: image-check\nmax_concurrent_tasks: many\n" } },
    });
    expect(res.code).not.toBe(0);
    expect(res.stdout + res.stderr).toContain("max_concurrent_tasks");
  });

  test("render-pod prints the task Job for the chart's config", async () => {
    const mountPath = configMountPath();
    const res = await runAsPod(image, scratch, {
      args: ["render-pod", "--config-file", `${mountPath}/config.yaml`, "--output", "json"],
      files: { mountPath, contents: { "config.yaml": chart.configText() } },
    });
    expect(res.code).toBe(0);
    const list = JSON.parse(res.stdout) as { items: { kind: string }[] };
    expect(list.items.map((i) => i.kind)).toContain("Job");
  });
});

/** `args` with `flag`'s value replaced, or the pair appended. */
function withFlag(args: string[], flag: string, value: string): string[] {
  const at = args.indexOf(flag);
  return at === -1 ? [...args, flag, value] : args.map((a, i) => (i === at + 1 ? value : a));
}

describe("oz-worker run from the image, as the chart's pod", () => {
  test(
    "with the chart's args, env, config and ServiceAccount it passes its startup preflight, connects and turns ready; SIGTERM stops it",
    async () => {
      await ensureSandbox();
      dispatch = await startDispatchServer();
      namespace = await freshNamespace("image-run");
      const ns = namespace.name;
      const workerId = `image-run-${Date.now().toString(36)}`;
      const r = await renderWith({ namespace: ns }, ...SEED_SET, "--set", `worker.workerId=${workerId}`);
      await kubectlApply(r.objects.filter((o: K8sObject) => ["ServiceAccount", "Role", "RoleBinding"].includes(o.kind)));
      const kubeconfig = readFileSync(await serviceAccountKubeconfig(ns, r.one("ServiceAccount").metadata.name), "utf8");

      // The pod reaches the API server in-cluster; outside a cluster the only change to the
      // chart's config is a kubeconfig beside it. The pod has its own network namespace and
      // this harness shares the machine's, so the health server binds loopback, not 0.0.0.0.
      const mountPath = configMountPath();
      const config = r.config() as { backend: { kubernetes: Record<string, unknown> } };
      config.backend.kubernetes.kubeconfig = `${mountPath}/kubeconfig`;
      const container = r.container();
      let args = withFlag(container.args, "--health-addr", "127.0.0.1:0");
      args = withFlag(args, "--web-socket-url", dispatch.wsUrl);
      args = withFlag(args, "--log-format", "json");
      const env = Object.fromEntries(container.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value as string]));
      expect(container.env.find((e) => e.name === "WARP_API_KEY")?.valueFrom).toBeDefined();

      const proc = startAsPod(image, scratch, {
        args,
        env: { ...env, WARP_API_KEY: dispatch.apiKey },
        files: { mountPath, contents: { "config.yaml": stringify(config), kubeconfig } },
      });
      let output = "";
      const readers = [proc.stdout, proc.stderr].map(async (stream) => {
        for await (const chunk of stream.pipeThrough(new TextDecoderStream())) output += chunk;
      });
      const logs = () => output.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { msg: string; url?: string; status?: string; check?: string });
      // A worker that exits fails the waits at once instead of at their deadlines.
      const exited = proc.exited.then((code) => Promise.reject(new Error(`the worker exited ${code}`)));
      exited.catch(() => {});
      const unlessExited = <T>(wait: Promise<T>) => Promise.race([wait, exited]);
      try {
        const listening = await unlessExited(
          waitFor(() => logs().find((l) => l.msg === "health endpoints listening"), { what: "the worker's health endpoints", timeoutMs: 60_000 }),
        );
        await unlessExited(
          waitFor(() => logs().some((l) => l.msg === "Connected to Oz. Listening for tasks"), { what: "the worker to connect", timeoutMs: 60_000 }),
        );
        expect(logs().filter((l) => l.msg.startsWith("preflight ") && l.status !== undefined).map((l) => `${l.check} ${l.status}`)).toEqual([
          "connection pass",
          "permissions pass",
          "dry-run pass",
          "preflight-job pass",
        ]);
        const ready = await waitFor(
          async () => {
            const res = await fetch(`${listening.url}/readyz`);
            return res.status === 200 ? ((await res.json()) as { status: string }) : undefined;
          },
          { what: "/readyz to answer 200", timeoutMs: 30_000 },
        );
        expect(ready.status).toBe("ready");
        expect((await dispatch.workers()).map((w) => w.worker_id)).toContain(workerId);
      } catch (err) {
        killPod(proc);
        await Promise.all(readers);
        throw new Error(`${(err as Error).message}\nworker output:\n${output}`);
      }
      const stopping = performance.now();
      signalPod(proc, "SIGTERM");
      expect(await proc.exited).toBe(0);
      // The chart's terminationGracePeriodSeconds is 30.
      expect(performance.now() - stopping).toBeLessThan(30_000);
      await Promise.all(readers);
      expect(logs().some((l) => l.msg.startsWith("stop requested"))).toBe(true);
    },
    5 * 60_000,
  );
});
