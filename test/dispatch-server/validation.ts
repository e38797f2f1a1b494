import * as v from "valibot";

/** One line naming each problem and where it is, for HTTP errors and logs. */
export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  return issues
    .map((issue) => {
      const path = v.getDotPath(issue);
      return path === null ? issue.message : `${path}: ${issue.message}`;
    })
    .join("; ");
}
