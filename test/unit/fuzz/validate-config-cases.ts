// Random and mutated YAML config files for the validate-config fuzz test, from a seeded PRNG:
// the same seed gives the same cases. Pure (no I/O).
import { prng } from "../../support/prng.ts";

export interface FuzzCase {
  /** How it was made, for the failure message. */
  how: string;
  yaml: string;
  output: "text" | "json";
}

const KEYS = [
  "worker_id", "cleanup", "max_concurrent_tasks", "idle_on_complete", "log_level", "api_key", "web_socket_url",
  "backend", "kubernetes", "namespace", "kubeconfig", "default_image", "image_pull_policy", "use_image_volumes",
  "preflight_image", "preflight_resources", "sidecar_image", "coding_cli_sidecars", "setup_command",
  "teardown_command", "extra_labels", "extra_annotations", "active_deadline_seconds", "ttl_seconds_after_finished",
  "workspace_size_limit", "unschedulable_timeout", "inline_task_env", "pod_template", "containers", "env",
  "resources", "requests", "limits", "cpu", "memory", "volumes", "name", "image", "<<", "__proto__", "constructor",
];

/** Scalars and small YAML fragments of every awkward kind. */
const VALUES = [
  "0", "-1", "1e309", "-1e309", "9007199254740993", "0x1F", "0o17", "0b101", ".inf", "-.inf", ".nan", "NaN", "~", "null",
  "true", "false", "yes", "no", "on", "off", "Y", "''", '""', "' '", '"\\u0000"', '"\\x00\\x07"', '"\\uD800"',
  "2001-12-14t21:59:43.10-05:00", "12:30:45", "10m", "30 seconds", "-5m", "99999999h", "1Gi", "-1Gi", "1e3Mi", "2.5",
  "Always", "always", "IfNotPresent", "[]", "{}", "[1, [2, [3]]]", "{a: {b: {c: d}}}", "!!binary aGVsbG8=",
  "!!js/function 'function(){}'", "!custom tag", "!!str 123", "!!int '12'", "!!float x", "!!set {a, b}",
  "!!omap [a: 1]", "*undefined_alias", "&anchor value", "|\n  block\n  text", ">-\n  folded", '"unterminated',
  "'unterminated", "[unclosed", "{unclosed: 1", "a: b: c", "- - -", "? complex\n: key", "%TAG ! tag:x:",
  "\u202eRTL", "中文", "\ud83d\ude00", "\t\ttabs", "value # comment", "http://x/?a=b&c", "ws://127.0.0.1:1/ws",
];

const SEEDS: string[] = [
  "worker_id: w\nbackend:\n  kubernetes:\n    namespace: agents\n",
  "worker_id: w\nmax_concurrent_tasks: 3\ncleanup: false\nbackend:\n  kubernetes:\n    namespace: a\n    unschedulable_timeout: 2m\n    inline_task_env: true\n",
  "worker_id: w\nbackend:\n  kubernetes:\n    namespace: a\n    pod_template:\n      containers:\n        - name: task\n          resources: { requests: { cpu: 2, memory: 4Gi } }\n      volumes:\n        - name: c\n          emptyDir: { sizeLimit: 1Gi }\n",
  "worker_id: w\nbackend:\n  kubernetes:\n    namespace: a\n    extra_labels: { team: x }\n    extra_annotations: { example.com/o: p }\n    active_deadline_seconds: 3600\n    ttl_seconds_after_finished: 60\n",
];

export class CaseGenerator {
  readonly #rand: () => number;
  readonly #bases: string[];

  /** `fixtures`: real config files to mutate, besides the built-in seeds. */
  constructor(seed: number, fixtures: readonly string[] = []) {
    this.#rand = prng(seed);
    this.#bases = [...SEEDS, ...fixtures];
  }

  #int(n: number): number {
    return Math.floor(this.#rand() * n);
  }

  #pick<T>(items: readonly T[]): T {
    return items[this.#int(items.length)]!;
  }

  #chars(n: number): string {
    const alphabet = "ab: -_{}[],'\"#&*!|>%@`\n\t\\\u0000\u0085\u00a0\u2028\ufeff\ud800é中😀";
    let s = "";
    for (let i = 0; i < n; i++) s += alphabet[this.#int(alphabet.length)];
    return s;
  }

  next(): FuzzCase {
    const output = this.#rand() < 0.3 ? "json" : "text";
    const r = this.#rand();
    if (r < 0.15) return { how: "random characters", yaml: this.#chars(this.#int(400)), output };
    if (r < 0.3) return { how: "random structure", yaml: this.#randomDoc(), output };
    if (r < 0.4) return this.#special(output);
    let yaml = this.#pick(this.#bases);
    const steps: string[] = [];
    const n = 1 + this.#int(4);
    for (let i = 0; i < n; i++) {
      const m = this.#mutate(yaml);
      yaml = m.yaml;
      steps.push(m.how);
    }
    return { how: `mutated: ${steps.join(", ")}`, yaml, output };
  }

  #randomDoc(depth = 0): string {
    const lines: string[] = [];
    const n = 1 + this.#int(5);
    const indent = "  ".repeat(depth);
    for (let i = 0; i < n; i++) {
      const key = this.#rand() < 0.8 ? this.#pick(KEYS) : this.#chars(1 + this.#int(8)).replace(/\n/g, "");
      if (depth < 4 && this.#rand() < 0.35) lines.push(`${indent}${key}:\n${this.#randomDoc(depth + 1)}`);
      else if (this.#rand() < 0.15) lines.push(`${indent}${key}:\n${indent}  - ${this.#pick(VALUES)}\n${indent}  - ${this.#pick(VALUES)}`);
      else lines.push(`${indent}${key}: ${this.#pick(VALUES)}`);
    }
    return lines.join("\n");
  }

  #special(output: "text" | "json"): FuzzCase {
    const variants: [string, () => string][] = [
      ["alias bomb", () => {
        const rows = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
        for (let i = 1; i < 9; i++) rows.push(`${"abcdefghi"[i]}: &${"abcdefghi"[i]} [${Array(9).fill(`*${"abcdefghi"[i - 1]}`).join(",")}]`);
        return `worker_id: w\n${rows.join("\n")}\n`;
      }],
      ["flow nesting 10,000 deep", () => `worker_id: ${"[".repeat(10_000)}${"]".repeat(10_000)}\n`],
      ["block nesting 500 deep", () => Array.from({ length: 500 }, (_, i) => `${" ".repeat(i)}k:`).join("\n") + " v\n"],
      ["a 2 MB value", () => `worker_id: ${"w".repeat(2 * 1024 * 1024)}\nbackend: { kubernetes: { namespace: a } }\n`],
      ["10,000 keys", () => `worker_id: w\nbackend:\n  kubernetes:\n    namespace: a\n    extra_labels:\n${Array.from({ length: 10_000 }, (_, i) => `      k${i}: v`).join("\n")}\n`],
      ["duplicate keys", () => "worker_id: a\nworker_id: b\nbackend: { kubernetes: { namespace: a, namespace: b } }\n"],
      ["merge key from a scalar", () => "base: &b 1\nworker_id: w\nbackend:\n  kubernetes:\n    <<: *b\n    namespace: a\n"],
      ["merge key loop", () => "a: &a { <<: *a }\n"],
      ["many documents", () => "worker_id: a\n---\nworker_id: b\n---\n- 1\n"],
      ["BOM and CRLF", () => "\ufeffworker_id: w\r\nbackend:\r\n  kubernetes:\r\n    namespace: a\r\n"],
      ["tabs for indentation", () => "worker_id: w\nbackend:\n\tkubernetes:\n\t\tnamespace: a\n"],
      ["top level is a list", () => "- worker_id: w\n"],
      ["top level is a scalar", () => this.#pick(VALUES)],
      ["empty", () => ""],
      ["only comments", () => "# nothing\n# here\n"],
      ["NUL bytes", () => "worker_id: w\u0000\nbackend: {kubernetes: {namespace: \u0000}}\n"],
      ["prototype keys", () => "__proto__: { polluted: 1 }\nconstructor: { prototype: { x: 1 } }\nworker_id: w\nbackend: { kubernetes: { namespace: a, __proto__: { x: 1 } } }\n"],
      ["complex keys", () => "? [a, b]\n: 1\n? { x: 1 }\n: 2\nworker_id: w\n"],
      ["pod_template of the wrong shape", () => `worker_id: w\nbackend: { kubernetes: { namespace: a, pod_template: ${this.#pick(VALUES)} } }\n`],
      ["containers of the wrong shape", () => `worker_id: w\nbackend: { kubernetes: { namespace: a, pod_template: { containers: ${this.#pick(["1", "{}", "[1]", "[[]]", "[{name: 1}]", "[{resources: {limits: {cpu: -1}}}]"])} } } }\n`],
    ];
    const [how, make] = this.#pick(variants);
    return { how, yaml: make(), output };
  }

  #mutate(yaml: string): { how: string; yaml: string } {
    const lines = yaml.split("\n");
    const at = this.#int(Math.max(1, lines.length));
    const ops: [string, () => void][] = [
      ["delete a line", () => lines.splice(at, 1)],
      ["duplicate a line", () => lines.splice(at, 0, lines[at] ?? "")],
      ["swap two lines", () => {
        const j = this.#int(lines.length);
        [lines[at], lines[j]] = [lines[j] ?? "", lines[at] ?? ""];
      }],
      ["indent a line", () => (lines[at] = `${" ".repeat(1 + this.#int(5))}${lines[at] ?? ""}`)],
      ["dedent a line", () => (lines[at] = (lines[at] ?? "").trimStart())],
      ["replace a value", () => {
        const line = lines[at] ?? "";
        const colon = line.indexOf(":");
        lines[at] = colon >= 0 ? `${line.slice(0, colon + 1)} ${this.#pick(VALUES)}` : `${line} ${this.#pick(VALUES)}`;
      }],
      ["replace a key", () => (lines[at] = (lines[at] ?? "").replace(/^(\s*)[^:\s]+:/, `$1${this.#pick(KEYS)}:`))],
      ["insert characters", () => {
        const line = lines[at] ?? "";
        const p = this.#int(line.length + 1);
        lines[at] = line.slice(0, p) + this.#chars(1 + this.#int(5)) + line.slice(p);
      }],
      ["truncate", () => lines.splice(at)],
      ["insert a random block", () => lines.splice(at, 0, this.#randomDoc(this.#int(3)))],
    ];
    const [how, op] = this.#pick(ops);
    op();
    return { how, yaml: lines.join("\n") };
  }
}
