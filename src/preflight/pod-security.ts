// Reading Pod Security admission's messages: the enforce rejection
// (`... is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true (...), ...`)
// and the warn/audit warning (`would violate PodSecurity "restricted:latest": ...`). Pure.

export interface PodSecurityViolation {
  /** The rule as admission names it: `runAsNonRoot != true`, `runAsUser=0`, `seccompProfile`. */
  rule: string;
  /** Admission's explanation, without the parentheses (which containers, what to set). */
  detail?: string;
}

export interface PodSecurityMessage {
  /** The level and version, as admission prints it: `restricted:latest`. */
  policy: string;
  /** `restricted`, `baseline` (the part before the colon). */
  level: string;
  /** True for a warning (`would violate`), false for a rejection (`violates`). */
  warning: boolean;
  violations: PodSecurityViolation[];
}

const PSA = /(would violate|violates) PodSecurity "([^"]+)":\s*(.*)$/s;

/** Parses a Pod Security admission rejection or warning; undefined for any other text. */
export function parsePodSecurity(message: string): PodSecurityMessage | undefined {
  const m = PSA.exec(message);
  if (!m) return undefined;
  const policy = m[2]!;
  return {
    policy,
    level: policy.split(":")[0]!,
    warning: m[1] === "would violate",
    violations: splitTopLevel(m[3]!.trim()).map(parseViolation),
  };
}

function parseViolation(item: string): PodSecurityViolation {
  const open = item.indexOf(" (");
  if (open < 0 || !item.endsWith(")")) return { rule: item };
  return { rule: item.slice(0, open), detail: item.slice(open + 2, -1) };
}

/** Splits at commas outside parentheses, brackets and double quotes. */
function splitTopLevel(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\\" && quoted) {
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (quoted) continue;
    else if (c === "(" || c === "[") depth++;
    else if ((c === ")" || c === "]") && depth > 0) depth--;
    else if (c === "," && depth === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = text.slice(start).trim();
  if (last) out.push(last);
  return out.filter(Boolean);
}

/** The rules that the root init container pattern (sidecar copy, preflight init) breaks. */
export function rootRelated(v: PodSecurityViolation): boolean {
  return /^runAsUser=0\b|^runAsNonRoot\b/.test(v.rule);
}

/**
 * What to change when Pod Security rejected the worker's pod shape in a namespace: relax the
 * namespace's enforce level, or (for the root init containers) switch to image volumes.
 */
export function podSecurityFix(namespace: string, psa: PodSecurityMessage, useImageVolumes: boolean): string {
  const rules = psa.violations.map((v) => v.rule).join(", ");
  const label = `kubectl label namespace ${namespace} --overwrite pod-security.kubernetes.io/enforce=baseline`;
  const root = psa.violations.some(rootRelated);
  const lines = [
    `Pod Security admission in namespace "${namespace}" enforces "${psa.policy}", which forbids the worker's pod shape (${rules}).`,
  ];
  if (root && !useImageVolumes) {
    lines.push(
      `Either set backend.kubernetes.use_image_volumes: true, so sidecars are mounted as image volumes and no container runs as root ` +
        `(the pods must still meet every other rule listed; needs image volume support, Kubernetes >= 1.33),`,
      `or relax the namespace's policy: ${label}   (or =privileged)`,
    );
  } else {
    lines.push(`Relax the namespace's policy: ${label}   (or =privileged), or run the worker in a namespace that allows this pod shape.`);
  }
  return lines.join("\n");
}
