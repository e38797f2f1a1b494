import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { loadKubeconfig } from "../../../scripts/lib/kube.ts";
import { dedicatedApiserverArgs, retargetKubeconfig } from "../../../scripts/lib/sandbox.ts";
import { workerConfigYaml } from "../../../scripts/lib/worker.ts";

describe("dedicatedApiserverArgs", () => {
  test("moves the port, disables the identity lease, adds the audit log", () => {
    const argv = ["--etcd-servers", "http://127.0.0.1:26379", "--secure-port", "26443", "--feature-gates=Foo=true", "--v=1"];
    expect(dedicatedApiserverArgs(argv, 30000, "/p.yaml", "/a.log")).toEqual([
      "--etcd-servers",
      "http://127.0.0.1:26379",
      "--v=1",
      "--secure-port",
      "30000",
      "--feature-gates=Foo=true,APIServerIdentity=false",
      "--audit-policy-file",
      "/p.yaml",
      "--audit-log-path",
      "/a.log",
      "--audit-log-maxsize",
      "0",
    ]);
  });

  test("--secure-port=N form and no feature gates", () => {
    const out = dedicatedApiserverArgs(["--secure-port=1", "--audit-log-path", "/old"], 2, "/p", "/a");
    expect(out.filter((a) => a.includes("secure-port") || a === "1" || a === "/old")).toEqual(["--secure-port"]);
    expect(out).toContain("--feature-gates=APIServerIdentity=false");
  });
});

const KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster:
    server: https://127.0.0.1:26443/
    certificate-authority-data: ${Buffer.from("CA").toString("base64")}
users:
- name: ns.sa
  user:
    token: tok
contexts:
- name: sandbox
  context:
    cluster: sandbox
    user: ns.sa
    namespace: ns
current-context: sandbox
`;

test("loadKubeconfig and retargetKubeconfig", () => {
  const dir = mkdtempSync(join(tmpdir(), "kc-"));
  const path = join(dir, "kc");
  writeFileSync(path, KUBECONFIG);
  expect(loadKubeconfig(path)).toEqual({ server: "https://127.0.0.1:26443", ca: "CA", token: "tok", namespace: "ns" });
  const moved = retargetKubeconfig(path, "https://127.0.0.1:30000", join(dir, "kc2"));
  expect(loadKubeconfig(moved).server).toBe("https://127.0.0.1:30000");
  expect(readFileSync(moved, "utf8")).toContain("token: tok");
});

test("workerConfigYaml is the documented config shape", () => {
  const yaml = workerConfigYaml({ workerId: "demo-worker", kubeconfig: "/k c", namespace: "ns", maxConcurrentTasks: 5, unschedulableTimeout: "10s" });
  expect(parse(yaml)).toEqual({
    worker_id: "demo-worker",
    max_concurrent_tasks: 5,
    backend: { kubernetes: { kubeconfig: "/k c", namespace: "ns", unschedulable_timeout: "10s" } },
  });
});
