// The generated docs (README sections, docs/config.schema.json) match the code.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CONFIG_JSON_SCHEMA, generatedDocs, README, updateReadme } from "../../../src/cli/docs.ts";
import { configRows } from "../../../src/config/docs.ts";
import { ROOT } from "./cli-process.ts";

const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

describe("generated docs are up to date (run scripts/gen-config-docs when this fails)", () => {
  test.each([README, CONFIG_JSON_SCHEMA])("%s", async (path) => {
    const expected = (await generatedDocs(ROOT))[path];
    expect(read(path)).toBe(expected as string);
  });
});

describe("README", () => {
  test("starts with how to run the tests, under the demo marker", () => {
    const readme = read(README);
    const firstBlock = readme.slice(readme.indexOf("```sh"), readme.indexOf("```", readme.indexOf("```sh") + 5));
    expect(readme.indexOf("<!-- demo command goes first -->")).toBeLessThan(readme.indexOf("```sh"));
    expect(firstBlock).toContain("scripts/test");
    expect(readme).not.toMatch(/later issue/i);
  });

  test("the config table has a row for every key of the reference", () => {
    const keys = configRows().map((r) => r.key);
    const k = (name: string) => `backend.kubernetes.${name}`;
    expect(keys).toEqual([
      "worker_id",
      "cleanup",
      "max_concurrent_tasks",
      "idle_on_complete",
      ...[
        "kubeconfig", "namespace", "default_image", "image_pull_policy", "use_image_volumes", "preflight_image",
        "preflight_resources", "sidecar_image", "coding_cli_sidecars", "setup_command", "teardown_command",
        "extra_labels", "extra_annotations", "active_deadline_seconds", "ttl_seconds_after_finished",
        "workspace_size_limit", "unschedulable_timeout", "inline_task_env", "pod_template",
      ].map(k),
    ]);
    for (const key of keys) expect(read(README)).toContain(`| \`${key}\` |`);
  });

  test("updateReadme refuses a README without the markers", () => {
    expect(() => updateReadme("# no markers\n")).toThrow("markers");
  });
});

describe("docs/config.schema.json", () => {
  const schema = JSON.parse(read(CONFIG_JSON_SCHEMA));
  const k8s = schema.properties.backend.properties.kubernetes;

  test("describes the file: strict objects, enums, defaults", () => {
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(schema.additionalProperties).toBe(false);
    expect(k8s.additionalProperties).toBe(false);
    expect(k8s.properties.image_pull_policy).toMatchObject({ enum: ["Always", "Never", "IfNotPresent"], default: "IfNotPresent" });
    expect(schema.properties.max_concurrent_tasks).toMatchObject({ type: "integer", minimum: 0, default: 0 });
    expect(k8s.properties.unschedulable_timeout).toMatchObject({ type: "string", default: "30s" });
    expect(new RegExp(k8s.properties.unschedulable_timeout.pattern).test("1h30m")).toBe(true);
    expect(new RegExp(k8s.properties.unschedulable_timeout.pattern).test("30 seconds")).toBe(false);
    expect(Object.keys(schema.properties.backend.properties)).toEqual(["kubernetes"]);
  });

  test("pod_template is the PodSpec, with shared definitions", () => {
    const pod = k8s.properties.pod_template;
    expect(pod.additionalProperties).toBe(false);
    expect(pod.properties.containers.items).toEqual({ $ref: "#/$defs/Container" });
    expect(schema.$defs.Container.required).toEqual(["name"]);
    expect(schema.$defs.Container.properties.imagePullPolicy.enum).toEqual(["Always", "Never", "IfNotPresent"]);
    expect(schema.$defs.InitContainer.properties.restartPolicy.enum).toEqual(["Always"]);
    const quantity = schema.$defs.Quantity.anyOf[0].pattern;
    expect(["2", "500m", "4Gi", "1e3"].every((q) => new RegExp(quantity).test(q))).toBe(true);
    expect(new RegExp(quantity).test("lots")).toBe(false);
    // Every $ref resolves.
    const refs = [...read(CONFIG_JSON_SCHEMA).matchAll(/"\$ref": "#\/\$defs\/([^"]+)"/g)].map((m) => m[1] as string);
    for (const ref of refs) expect(schema.$defs).toHaveProperty(ref);
  });
});
