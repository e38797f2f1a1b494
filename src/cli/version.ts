// The version `oz-worker --version` prints. The commit is embedded by
// scripts/build (`bun build --compile --define OZ_WORKER_COMMIT='"<sha>"'`);
// run from source it is "dev".
import pkg from "../../package.json" with { type: "json" };

declare const OZ_WORKER_COMMIT: string | undefined;

export const VERSION: string = pkg.version;
export const COMMIT: string = typeof OZ_WORKER_COMMIT === "string" && OZ_WORKER_COMMIT !== "" ? OZ_WORKER_COMMIT : "dev";

export function versionLine(): string {
  return `oz-worker ${VERSION} (commit ${COMMIT})`;
}
