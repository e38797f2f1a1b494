// `backend.kubernetes.pod_template`: a Kubernetes PodSpec, checked the way the
// API server would read it. Field names are the PodSpec's own (camelCase, as in
// `kubectl explain pod.spec`); an unknown field is an error, not a silently
// dropped value. The parts users write by hand (containers, resources, env,
// mounts, security contexts, scheduling) are typed field by field; rarer parts
// (affinity terms, volume sources other than the common ones, probes'
// handlers) are checked for their known keys and otherwise left to the API
// server.
import type { V1PodSpec, V1ResourceRequirements } from "@kubernetes/client-node";
import * as v from "valibot";
import { type AnySchema, expected, named, show } from "./schema-kit.ts";
import { isNonNegativeQuantity } from "./units.ts";

type Entries = Record<string, AnySchema>;

/** A Kubernetes object: every field optional except `required`, unknown fields refused. */
function k8s(entries: Entries, required: readonly string[] = []): AnySchema {
  const out: v.ObjectEntries = {};
  for (const [key, schema] of Object.entries(entries)) out[key] = required.includes(key) ? schema : v.optional(schema);
  return v.strictObject(out) as unknown as AnySchema;
}

const str = v.string();
const bool = v.boolean();
const int = v.pipe(v.number(), v.integer(expected("an integer")));
const nonNegInt = v.pipe(v.number(), v.integer(expected("an integer")), v.minValue(0, expected("an integer >= 0")));
const strList = v.array(v.string());
const strMap = v.record(v.string(), v.string());
/** A mapping whose content is left to the API server. */
const anyMap = v.record(v.string(), v.unknown());
const list = (item: AnySchema) => v.array(item);
const oneOf = (...options: string[]) => v.picklist(options);

export const QUANTITY_JSON_SCHEMA = {
  anyOf: [
    { type: "string", pattern: "^[+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$" },
    { type: "number", minimum: 0 },
  ],
};

/** A non-negative Kubernetes quantity (`2`, `500m`, `4Gi`, `1e3`); numbers become strings. */
export const quantity = named("Quantity", v.pipe(
  v.custom<string | number>(isNonNegativeQuantity, expected("a Kubernetes quantity such as 2, 500m, 4Gi or 1e3")),
  v.transform((q): string => String(q)),
  v.metadata({ type: "quantity", jsonSchema: QUANTITY_JSON_SCHEMA }),
));

const intOrString = v.pipe(
  v.custom<number | string>(
    (x) => (typeof x === "number" && Number.isInteger(x)) || (typeof x === "string" && x !== ""),
    expected("a port number or name"),
  ),
  v.metadata({ type: "int or string", jsonSchema: { anyOf: [{ type: "integer" }, { type: "string" }] } }),
);

const resourceList = v.record(v.string(), quantity);

export const resourceRequirements = named("ResourceRequirements", k8s({
  requests: resourceList,
  limits: resourceList,
  claims: list(k8s({ name: str, request: str }, ["name"])),
}));

const keySelector = named("KeySelector", k8s({ name: str, key: str, optional: bool }, ["key"]));

const envVar = named("EnvVar", k8s(
  {
    name: str,
    value: str,
    valueFrom: k8s({
      configMapKeyRef: keySelector,
      secretKeyRef: keySelector,
      fieldRef: k8s({ apiVersion: str, fieldPath: str }, ["fieldPath"]),
      resourceFieldRef: k8s({ containerName: str, divisor: quantity, resource: str }, ["resource"]),
      fileKeyRef: k8s({ key: str, optional: bool, path: str, volumeName: str }, ["key", "path", "volumeName"]),
    }),
  },
  ["name"],
));

const envFromSource = named("EnvFromSource", k8s({
  prefix: str,
  configMapRef: k8s({ name: str, optional: bool }),
  secretRef: k8s({ name: str, optional: bool }),
}));

const volumeMount = named("VolumeMount", k8s(
  {
    name: str,
    mountPath: str,
    readOnly: bool,
    subPath: str,
    subPathExpr: str,
    mountPropagation: oneOf("None", "HostToContainer", "Bidirectional"),
    recursiveReadOnly: oneOf("Disabled", "IfPossible", "Enabled"),
  },
  ["name", "mountPath"],
));

const containerPort = named("ContainerPort", k8s(
  {
    containerPort: v.pipe(int, v.minValue(1, expected("a port between 1 and 65535")), v.maxValue(65535, expected("a port between 1 and 65535"))),
    hostIP: str,
    hostPort: int,
    name: str,
    protocol: oneOf("TCP", "UDP", "SCTP"),
  },
  ["containerPort"],
));

const profile = named("Profile", k8s({ type: oneOf("RuntimeDefault", "Unconfined", "Localhost"), localhostProfile: str }, ["type"]));
const seLinuxOptions = named("SELinuxOptions", k8s({ level: str, role: str, type: str, user: str }));
const windowsOptions = named("WindowsSecurityContextOptions", k8s({ gmsaCredentialSpec: str, gmsaCredentialSpecName: str, hostProcess: bool, runAsUserName: str }));

const securityContext = named("SecurityContext", k8s({
  allowPrivilegeEscalation: bool,
  appArmorProfile: profile,
  capabilities: k8s({ add: strList, drop: strList }),
  privileged: bool,
  procMount: oneOf("Default", "Unmasked"),
  readOnlyRootFilesystem: bool,
  runAsGroup: nonNegInt,
  runAsNonRoot: bool,
  runAsUser: nonNegInt,
  seLinuxOptions,
  seccompProfile: profile,
  windowsOptions,
}));

const podSecurityContext = k8s({
  appArmorProfile: profile,
  fsGroup: nonNegInt,
  fsGroupChangePolicy: oneOf("OnRootMismatch", "Always"),
  runAsGroup: nonNegInt,
  runAsNonRoot: bool,
  runAsUser: nonNegInt,
  seLinuxChangePolicy: oneOf("Recursive", "MountOption"),
  seLinuxOptions,
  seccompProfile: profile,
  supplementalGroups: list(nonNegInt),
  supplementalGroupsPolicy: oneOf("Merge", "Strict"),
  sysctls: list(k8s({ name: str, value: str }, ["name", "value"])),
  windowsOptions,
});

// Handlers are checked for their known keys; their insides are the API server's business.
const handler = { exec: anyMap, httpGet: anyMap, tcpSocket: anyMap, grpc: anyMap };

const probe = named("Probe", k8s({
  ...handler,
  failureThreshold: int,
  initialDelaySeconds: int,
  periodSeconds: int,
  successThreshold: int,
  terminationGracePeriodSeconds: int,
  timeoutSeconds: int,
}));

const lifecycleHandler = named("LifecycleHandler", k8s({ exec: k8s({ command: strList }), httpGet: anyMap, tcpSocket: anyMap, sleep: k8s({ seconds: int }, ["seconds"]) }));

const lifecycle = k8s({ postStart: lifecycleHandler, preStop: lifecycleHandler, stopSignal: str });

const IMAGE_PULL_POLICIES = ["Always", "Never", "IfNotPresent"] as const;

function container(name: string, restartPolicies: readonly string[]): AnySchema {
  return named(name, k8s(
    {
      name: str,
      image: str,
      imagePullPolicy: v.picklist(IMAGE_PULL_POLICIES),
      command: strList,
      args: strList,
      workingDir: str,
      env: list(envVar),
      envFrom: list(envFromSource),
      ports: list(containerPort),
      resources: resourceRequirements,
      resizePolicy: list(k8s({ resourceName: str, restartPolicy: oneOf("NotRequired", "RestartContainer") }, ["resourceName", "restartPolicy"])),
      restartPolicy: v.picklist(restartPolicies),
      restartPolicyRules: list(anyMap),
      volumeMounts: list(volumeMount),
      volumeDevices: list(k8s({ name: str, devicePath: str }, ["name", "devicePath"])),
      livenessProbe: probe,
      readinessProbe: probe,
      startupProbe: probe,
      lifecycle,
      securityContext,
      stdin: bool,
      stdinOnce: bool,
      tty: bool,
      terminationMessagePath: str,
      terminationMessagePolicy: oneOf("File", "FallbackToLogsOnError"),
    },
    ["name"],
  ));
}

/** Every volume source a PodSpec knows; exactly one of them per volume. */
export const VOLUME_SOURCES = [
  "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "configMap", "csi", "downwardAPI",
  "emptyDir", "ephemeral", "fc", "flexVolume", "flocker", "gcePersistentDisk", "gitRepo", "glusterfs",
  "hostPath", "image", "iscsi", "nfs", "persistentVolumeClaim", "photonPersistentDisk", "portworxVolume",
  "projected", "quobyte", "rbd", "scaleIO", "secret", "storageos", "vsphereVolume",
] as const;

const typedVolumeSources: Entries = {
  emptyDir: k8s({ medium: str, sizeLimit: quantity }),
  configMap: k8s({ name: str, items: list(anyMap), defaultMode: int, optional: bool }),
  secret: k8s({ secretName: str, items: list(anyMap), defaultMode: int, optional: bool }),
  persistentVolumeClaim: k8s({ claimName: str, readOnly: bool }, ["claimName"]),
  hostPath: k8s({ path: str, type: str }, ["path"]),
  image: k8s({ reference: str, pullPolicy: v.picklist(IMAGE_PULL_POLICIES) }),
};

const volume = named("Volume", v.pipe(
  k8s(
    Object.fromEntries([["name", str], ...VOLUME_SOURCES.map((s) => [s, typedVolumeSources[s] ?? anyMap] as const)]),
    ["name"],
  ),
  v.check((vol) => {
    const sources = VOLUME_SOURCES.filter((s) => (vol as Record<string, unknown>)[s] !== undefined);
    return sources.length === 1;
  }, (issue) => {
    const sources = VOLUME_SOURCES.filter((s) => (issue.input as Record<string, unknown>)[s] !== undefined);
    return sources.length === 0
      ? `expected exactly one volume source (emptyDir, configMap, secret, persistentVolumeClaim, ...); got none`
      : `expected exactly one volume source; got ${sources.length} (${sources.join(", ")})`;
  }),
));

const toleration = k8s({
  key: str,
  operator: oneOf("Exists", "Equal"),
  value: str,
  effect: oneOf("NoSchedule", "PreferNoSchedule", "NoExecute"),
  tolerationSeconds: int,
});

type Named = { name?: unknown; image?: unknown };

/** Container names must be unique across containers and init containers. */
function uniqueContainerNames(spec: Record<string, unknown>): string | undefined {
  const seen = new Set<string>();
  for (const c of [...((spec.initContainers as Named[] | undefined) ?? []), ...((spec.containers as Named[] | undefined) ?? [])]) {
    if (typeof c.name !== "string") continue;
    if (seen.has(c.name)) return c.name;
    seen.add(c.name);
  }
  return undefined;
}

const podSpecSchema = v.pipe(
  k8s({
    activeDeadlineSeconds: v.pipe(int, v.minValue(1, expected("a positive integer"))),
    affinity: k8s({ nodeAffinity: anyMap, podAffinity: anyMap, podAntiAffinity: anyMap }),
    automountServiceAccountToken: bool,
    containers: v.pipe(
      list(container("Container", ["Always", "OnFailure", "Never"])),
      v.rawCheck(({ dataset, addIssue }) => {
        if (!dataset.typed) return;
        (dataset.value as Named[]).forEach((c, i) => {
          if (c.name !== "task" && (typeof c.image !== "string" || c.image === "")) {
            addIssue({
              message: `container ${show(c.name)} needs an image (only the "task" container gets its image from the worker)`,
              path: [{ type: "array", origin: "value", input: dataset.value as unknown[], key: i, value: c }],
            });
          }
        });
      }),
    ),
    dnsConfig: k8s({ nameservers: strList, searches: strList, options: list(k8s({ name: str, value: str })) }),
    dnsPolicy: oneOf("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"),
    enableServiceLinks: bool,
    ephemeralContainers: list(anyMap),
    hostAliases: list(k8s({ ip: str, hostnames: strList }, ["ip"])),
    hostIPC: bool,
    hostNetwork: bool,
    hostPID: bool,
    hostUsers: bool,
    hostname: str,
    hostnameOverride: str,
    imagePullSecrets: list(k8s({ name: str })),
    initContainers: v.pipe(
      list(container("InitContainer", ["Always"])),
      v.rawCheck(({ dataset, addIssue }) => {
        if (!dataset.typed) return;
        (dataset.value as Named[]).forEach((c, i) => {
          if (typeof c.image !== "string" || c.image === "") {
            addIssue({
              message: `init container ${show(c.name)} needs an image`,
              path: [{ type: "array", origin: "value", input: dataset.value as unknown[], key: i, value: c }],
            });
          }
        });
      }),
    ),
    nodeName: str,
    nodeSelector: strMap,
    os: k8s({ name: oneOf("linux", "windows") }, ["name"]),
    overhead: resourceList,
    preemptionPolicy: oneOf("PreemptLowerPriority", "Never"),
    priority: int,
    priorityClassName: str,
    readinessGates: list(k8s({ conditionType: str }, ["conditionType"])),
    resourceClaims: list(k8s({ name: str, resourceClaimName: str, resourceClaimTemplateName: str }, ["name"])),
    resources: resourceRequirements,
    restartPolicy: oneOf("Always", "OnFailure", "Never"),
    runtimeClassName: str,
    schedulerName: str,
    schedulingGates: list(k8s({ name: str }, ["name"])),
    schedulingGroup: k8s({ podGroupName: str }),
    securityContext: podSecurityContext,
    serviceAccount: str,
    serviceAccountName: str,
    setHostnameAsFQDN: bool,
    shareProcessNamespace: bool,
    subdomain: str,
    terminationGracePeriodSeconds: nonNegInt,
    tolerations: list(toleration),
    topologySpreadConstraints: list(anyMap),
    volumes: v.pipe(
      list(volume),
      v.rawCheck(({ dataset, addIssue }) => {
        if (!dataset.typed) return;
        (dataset.value as Named[]).forEach((vol, i) => {
          if (vol.name === "workspace") {
            addIssue({
              message: `volume name "workspace" is reserved: oz-worker mounts its own workspace volume at /workspace`,
              path: [{ type: "array", origin: "value", input: dataset.value as unknown[], key: i, value: vol }],
            });
          }
        });
      }),
    ),
  }),
  v.check(
    (spec) => uniqueContainerNames(spec as Record<string, unknown>) === undefined,
    (issue) => `container names must be unique across containers and initContainers; ${show(uniqueContainerNames(issue.input as Record<string, unknown>))} appears twice`,
  ),
);

/** The pod_template schema; its output is a V1PodSpec with quantities as strings. */
export const PodSpecSchema = podSpecSchema as unknown as v.GenericSchema<unknown, V1PodSpec>;
/** Resource requirements (requests, limits, claims) with quantities as strings. */
export const ResourceRequirementsSchema = resourceRequirements as unknown as v.GenericSchema<unknown, V1ResourceRequirements>;
